"""A spectral upper bound for tile masks with the rows permuted (global and row-balanced masks).

The allocation bound (:mod:`permsolve.bounds`) lets every column block sort
its own rows, so with tall tiles (32x1: 32 rows share one column) it sits far
above anything reachable.  This bound charges the rows of a tile row for
sharing their blocks, through the spectrum of what is left of the row profile
after a part whose best arrangement is known exactly.

**Setting.** ``R`` is the row profile (``m x nb``, padded with zero rows to
``mb * h``); a solution splits the rows into ``mb`` tile rows ``H_a`` of ``h``
rows and gives tile row ``a`` a set ``B_a`` of ``j_a`` kept column blocks
(global mask: ``sum j_a = k``; row-balanced: every ``j_a = kb``), keeping
``sum_a 1_{H_a}^T R 1_{B_a}``.

**Split.** Write ``R = L + E`` where the ``L`` part of a tile row is easy to
bound exactly and ``E`` is whatever is left.  Three splits are tried and the
least bound is kept (each is valid on its own):

* ``L = c sigma_1 u v^T`` (leading singular pair by power iteration, ``u, v >= 0``,
  ``c`` on a small grid): ``u(H_a) v(B_a) <= u(H_a) V(j_a)``, ``V(j)`` the sum of
  the ``j`` largest entries of ``v``.  Over all splits of the rows into tile
  rows, ``sum_a u(H_a) V(j_a)`` is largest when the rows sorted by ``u`` are cut
  into consecutive groups (sums ``U_1 >= U_2 >= ...``) matched with the
  ``j_a`` in decreasing order (rearrangement inequality);
* ``L = u v^T`` with ``u = R 1 / sum(v)`` (so every row of ``E`` sums to 0);
* ``L = alpha 1^T + 1 beta^T`` (row and column means; ``E`` double-centred):
  ``j alpha(H) + h beta(B) <= j alpha(H) + h (top-j sum of beta)``, again with
  the rearrangement over ``alpha``.

**Rest.** ``1_H^T E 1_B = <y, 1_B>`` with ``y = E^T 1_H``: at most
``||y|| sqrt(j)``, and at most ``||y|| sqrt(j (nb - j) / nb)`` when the rows of
``E`` sum to 0 (then ``y`` sums to 0).  ``||y||^2 = 1_H^T E E^T 1_H`` is at most
``h sigma_1(E)^2``, the ``h`` largest Gershgorin row sums ``q_r`` (``G_rr`` plus
the ``h - 1`` largest other entries of row ``r`` of ``G = E E^T``), and
``((h/mp) ||E^T 1|| + sigma_1(P E) sqrt(h - h^2/mp))^2`` (``P`` centres the
columns).  Also ``1_H^T E 1_B`` is at most the ``j`` best blocks' own ``h`` best
entries, and the ``h`` best rows' own ``j`` best entries; ``e(j)`` is the least.
So every solution keeps at most ``max over j of sum_a f_a(j_a)``,
``f_a(j) = L_a(j) + e(j)``: for the global mask the ``k`` largest marginal gains
``f_a(j) - f_a(j-1)`` over all ``(a, j)`` bound it (any admissible ``j`` uses
``k`` of them), for the row-balanced mask ``sum_a f_a(kb)``.

**All tile rows at once.** ``sum_a <y_a, 1_{B_a}> <= sqrt(sum_a phi(j_a))
sqrt(Q)`` (Cauchy-Schwarz), ``Q = sum_a ||y_a||^2 = <G, Z>`` with ``Z`` the
partition matrix (``mb`` eigenvalues ``h``, one along ``1``): ``Q <= h sum_{i <=
mb} sigma_i(E)^2`` (Ky Fan), ``<= sum_r q_r``, ``<= (h/mp) ||E^T 1||^2 + h
sum_{i < mb} sigma_i(P E)^2``.  ``sqrt(X Q) <= (X / t + t) sqrt(Q) / 2`` for every
``t > 0`` keeps it separable in the ``j_a``; a grid of ``t`` is tried.

Singular values come from ``eigvalsh`` of the smaller Gram matrix, rounded up;
the result is rounded up by ``1e-9`` relative.  Cost: seconds at 1536x384
under load (a handful of eigenvalue problems).  Measured on the real layers:
``docs/scale.md``.  Only numpy.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> S = np.abs(np.random.default_rng(0).standard_normal((256, 128)))
>>> p = TileProblem.from_matrix(S, tile=(32, 1), sparsity=0.5)
>>> b = spectral_bound(p)
>>> bool(b < p.bound), bool(b >= p.evaluate())
(True, True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

from .bounds import row_profile
from .masks import GlobalMask, RowBalancedMask

if TYPE_CHECKING:
    from .problem import Member, TileProblem

__all__ = ["spectral_rows", "member_spectral_bound", "spectral_bound"]

_SAFE = 1e-9          # relative slack on computed norms (eigenvalue round-off is ~1e-15)
_SCALES = (0.55, 0.7, 0.85, 1.0)


def _sv2(E: np.ndarray) -> np.ndarray:
    """Squared singular values of ``E``, decreasing, each rounded up (eigenvalues of the smaller Gram matrix)."""
    G = E.T @ E if E.shape[0] >= E.shape[1] else E @ E.T
    lam = np.linalg.eigvalsh(G)[::-1]
    # eigvalsh is backward stable: every eigenvalue is within a few eps * ||G|| of the exact one
    return np.maximum(lam, 0.0) * (1 + _SAFE) + 1e-12 * max(float(lam[0]), 0.0) + 1e-300


def _cum_top(X: np.ndarray, axis: int, depth: int) -> np.ndarray:
    """Cumulative sums of the entries of ``X`` sorted decreasing along ``axis``, first ``depth`` of them."""
    Xs = -np.sort(-X, axis=axis)
    return np.cumsum(np.take(Xs, np.arange(depth), axis=axis), axis=axis)


def _gram_row_bounds(E: np.ndarray, h: int) -> np.ndarray:
    """``q[r]``: ``G[r, r]`` plus the ``h - 1`` largest other entries of row ``r`` of ``G = E E^T``.

    For any set ``H`` of ``h`` rows, ``||E^T 1_H||^2 = 1_H^T G 1_H <= sum_{r in H} q[r]``.
    """
    G = E @ E.T
    d = np.diag(G).copy()
    if h <= 1:
        return d
    np.fill_diagonal(G, -np.inf)
    n = G.shape[0]
    part = np.partition(G, n - (h - 1), axis=1)[:, n - (h - 1):]
    return d + part.sum(axis=1)


def _top_by_block_and_row(E: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Two bounds on ``1_H^T E 1_B`` for ``j = |B| = 0..nb``: blocks pick their own rows; rows their own blocks."""
    col = _cum_top(E, 0, h)[h - 1]                      # per block: sum of its h largest entries
    by_col = np.concatenate([[0.0], np.cumsum(-np.sort(-col))])
    rowc = np.hstack([np.zeros((E.shape[0], 1)), np.cumsum(-np.sort(-E, axis=1), axis=1)])   # rowc[r, j]
    by_row = -np.sort(-rowc, axis=0)[:h].sum(axis=0)
    return by_col, by_row


def _allocate(F: np.ndarray, k: int | None, kb: int | None) -> float:
    """Upper bound on ``max sum_a F[a, j_a]`` over ``sum_a j_a = k`` (or every ``j_a = kb``); ``F[:, 0] = 0``.

    Any admissible ``j`` uses ``k`` of the marginal gains ``F[a, j] - F[a, j - 1]``, so
    the ``k`` largest of them bound it (and equal it when every row of ``F`` is concave).
    """
    if kb is not None:
        return float(F[:, kb].sum())
    d = np.diff(F, axis=1).ravel()
    kk = min(int(k), d.size)
    return float(np.partition(d, d.size - kk)[d.size - kk:].sum()) if kk > 0 else 0.0


def _bound(F: np.ndarray, E: np.ndarray, h: int, mb: int, k, kb, centred: bool) -> float:
    """The bound from ``R = L + E``, ``F[a, j]`` bounding the ``L`` part of tile row ``a`` keeping ``j`` blocks.

    ``centred``: every row of ``E`` sums to 0, so ``E^T 1_H`` sums to 0 and
    ``<E^T 1_H, 1_B> <= ||E^T 1_H|| sqrt(j (nb - j) / nb)``; otherwise ``sqrt(j)``.
    """
    mp, nb = E.shape
    js = np.arange(nb + 1)
    phi = js * (nb - js) / nb if centred else js.astype(float)
    s2 = _sv2(E)
    # 1_H = (h/mp) 1 + b with b orthogonal to 1 and ||b||^2 = h - h^2/mp; E^T b = (P E)^T b, P the centring
    csum = E.sum(axis=0)
    sc2 = _sv2(E - csum / mp)
    q = _gram_row_bounds(E, h) * (1 + _SAFE)
    by_col, by_row = _top_by_block_and_row(E, h)
    # one tile row: ||E^T 1_H||^2 <= h sigma_1^2, <= the h largest q, <= (split along 1 and 1-perp)^2
    along = (h / mp) * float(np.linalg.norm(csum)) * (1 + _SAFE)
    norm_h = np.sqrt(max(0.0, min(h * s2[0], float(np.sort(q)[-h:].sum()),
                                  (along + np.sqrt(sc2[0]) * np.sqrt(max(0.0, h - h * h / mp))) ** 2)))
    e = np.minimum(np.minimum(np.sqrt(phi) * norm_h, by_col), by_row)
    e[0] = 0.0
    best = _allocate(F + e[None, :], k, kb)
    # all tile rows at once: sum_a sqrt(phi(j_a)) ||E^T 1_{H_a}|| <= sqrt(sum_a phi(j_a)) sqrt(Q),
    # Q = sum_a ||E^T 1_{H_a}||^2 <= h (sum of the mb largest sigma^2) (Ky Fan), <= sum q,
    # sqrt(X) Q^(1/2) <= (X / t + t) Q^(1/2) / 2 for every t > 0 makes it separable in the j_a
    # and Z = sum_a 1_{H_a} 1_{H_a}^T = (h/mp) 1 1^T + (a PSD part on 1-perp with mb - 1 eigenvalues h)
    perp = (h / mp) * float(csum @ csum) * (1 + _SAFE) + h * float(np.sum(sc2[:mb - 1]))
    cq = np.sqrt(max(0.0, min(h * float(np.sum(s2[:mb])), float(q.sum()), perp)))
    spread = mb * phi[kb] if kb is not None else float(np.max(phi)) * mb
    for t in np.sqrt(max(spread, 1e-300)) * np.geomspace(0.02, 2.0, 24):
        best = min(best, _allocate(F + (cq / (2 * t)) * phi[None, :], k, kb) + cq * t / 2)
    return float(best)


def _rank_one(R: np.ndarray, h: int, mb: int, k, kb) -> float:
    """``R = sigma u v^T + E``, ``u, v >= 0`` the leading singular pair: rearrangement on the rank-one part."""
    # power iteration from the column sums: every iterate is >= 0, and any u, v >= 0 give a valid bound
    v = R.sum(axis=0)
    for _ in range(30):
        v = R.T @ (R @ v)
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.inf
        v = v / nv
    V = np.concatenate([[0.0], np.cumsum(-np.sort(-v))])
    best = np.inf
    for c in _SCALES:                                 # a smaller rank-one part often leaves a smaller rest
        cu = c * (R @ v)                              # about c sigma_1 u, >= 0
        Ug = -np.sort(-cu).reshape(mb, h).sum(axis=1)  # consecutive groups of the sorted u, decreasing
        best = min(best, _bound(Ug[:, None] * V[None, :], R - np.outer(cu, v), h, mb, k, kb, False))
    return best


def _rank_one_centred(R: np.ndarray, h: int, mb: int, k, kb) -> float:
    """``R = u v^T + E`` with ``u = R 1 / sum(v)``, so every row of ``E`` sums to 0."""
    rows = R.sum(axis=1)
    if not rows.any():
        return 0.0
    v = R.T @ rows / float(rows @ rows)               # least squares against the row sums, >= 0
    u = rows / v.sum()
    Ug = -np.sort(-u).reshape(mb, h).sum(axis=1)
    V = np.concatenate([[0.0], np.cumsum(-np.sort(-v))])
    return _bound(Ug[:, None] * V[None, :], R - np.outer(u, v), h, mb, k, kb, True)


def _separable(R: np.ndarray, h: int, mb: int, k, kb) -> float:
    """``R = alpha 1^T + 1 beta^T + E`` with ``E`` double-centred (row sums 0)."""
    mp, nb = R.shape
    js = np.arange(nb + 1)
    alpha = R.mean(axis=1)
    beta = R.mean(axis=0) - R.mean()
    Ag = -np.sort(-alpha).reshape(mb, h).sum(axis=1)   # consecutive groups of the sorted alpha
    Bc = np.concatenate([[0.0], np.cumsum(-np.sort(-beta))])
    F = Ag[:, None] * js[None, :] + h * Bc[None, :]
    return _bound(F, R - alpha[:, None] - beta[None, :], h, mb, k, kb, True)


def spectral_rows(R: np.ndarray, h: int, mb: int, k: int | None = None, kb: int | None = None) -> float:
    """Spectral bound with the rows free, from the row profile ``R`` (``m x nb``).

    Give ``k`` (global mask: total kept tiles) or ``kb`` (every tile row keeps ``kb``).

    Parameters
    ----------
    R : (m, nb) array, >= 0
        Importance of each row in each column block.
    h : int
        Rows per tile.
    mb : int
        Number of tile rows (``R`` is padded with zero rows to ``mb * h``).
    k, kb : int, optional
        Kept tiles in all (global mask) or per tile row (row-balanced).

    Returns
    -------
    float
        An upper bound on the importance any row order keeps.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.random.default_rng(0).random((16, 4))
    >>> T = R.reshape(4, 4, 4).sum(axis=1)            # tile scores of the identity order
    >>> bool(spectral_rows(R, 4, 4, k=8) >= np.sort(T.ravel())[-8:].sum())
    True
    """
    R = np.asarray(R, dtype=np.float64)
    m, nb = R.shape
    mp = mb * h
    if mp < m:
        raise ValueError(f"{mb} tile rows of {h} hold fewer than {m} rows")
    if (k is None) == (kb is None):
        raise ValueError("give exactly one of k and kb")
    if mp > m:
        R = np.vstack([R, np.zeros((mp - m, nb))])
    if k is not None and k <= 0:
        return 0.0
    b = min(_rank_one(R, h, mb, k, kb), _rank_one_centred(R, h, mb, k, kb), _separable(R, h, mb, k, kb))
    return float(b * (1 + _SAFE))       # outward rounding: where the bound is exact, round-off could dip below


def member_spectral_bound(member: "Member") -> float:
    """The least of the member's own bound and the spectral bound.

    The spectral bound applies with the rows permuted and the columns fixed
    (global and row-balanced masks) and, for the global mask, with the columns
    permuted and the rows fixed (the transposed matrix); other cases return
    ``member.bound()``.

    Parameters
    ----------
    member : permsolve.problem.Member

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve.problem import Member
    >>> mem = Member(np.random.default_rng(1).random((64, 32)), (32, 1), 0.5, rows="r")
    >>> member_spectral_bound(mem) <= mem.bound()
    True
    """
    own = member.bound()
    S, (h, w), s, mask = member.importance, member.tile, member.sparsity, member.mask
    mb, nb = member.grid
    if member.rows is not None and member.cols is None:
        R, hh, mbb = row_profile(S, w), h, mb
    elif member.cols is not None and member.rows is None and isinstance(mask, GlobalMask):
        R, hh, mbb = row_profile(S.T, h), w, nb
    else:
        return own
    if isinstance(mask, GlobalMask):
        b = spectral_rows(R, hh, mbb, k=mask.n_kept(mb, nb, s))
    elif isinstance(mask, RowBalancedMask) and member.cols is None:
        b = spectral_rows(R, hh, mbb, kb=mask.per_row(nb, s))
    else:
        return own
    return float(min(own, b))


def spectral_bound(problem_or_member: Union["TileProblem", "Member"]) -> float:
    """A valid upper bound on the retained importance, at most the problem's own bound.

    For a problem, the sum of its members' bounds (sharing a permutation between
    members only removes freedom).

    Parameters
    ----------
    problem_or_member : TileProblem or Member

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((64, 64)), tile=(32, 1), sparsity=0.5)
    >>> spectral_bound(p) <= p.bound
    True
    """
    members = getattr(problem_or_member, "members", None)
    if members is None:
        return member_spectral_bound(problem_or_member)
    total = float(sum(member_spectral_bound(m) for m in members))
    return min(total, float(problem_or_member.bound))
