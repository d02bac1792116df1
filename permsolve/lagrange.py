"""A Lagrangian upper bound for tile masks with the rows permuted.

The problem, for one matrix whose rows are permuted (columns fixed): split the
rows (padded with zero rows to ``mb * h``) into ``mb`` tile rows of ``h`` rows,
give tile row ``a`` a set ``B_a`` of ``j_a`` kept column blocks (global mask:
``sum j_a = k``; row-balanced: every ``j_a = kb``), and keep
``sum_a sum_{b in B_a} sum_{r in H_a} R[r, b]``, ``R`` the row profile.

**Relaxation.** Give every row a multiplier ``lambda_r`` and drop "each row
lies in exactly one tile row".  For any ``lambda``,

    value <= sum_r lambda_r + sum_a g(j_a),
    g(j) = max over |H| = h, |B| = j of  sum_{b in B} sum_{r in H} (R[r, b] - lambda_r / j)

(``lambda_r`` is spread over the ``j`` blocks of the tile row).  Two
relaxations of ``g`` make it computable, and the smaller is used: each block
picks its own ``h`` rows (``g(j) <= top-j sum over b of v_b(j)``, ``v_b(j)`` the
sum of the ``h`` largest ``R[r, b] - lambda_r / j``), or each row keeps its own
``j`` best blocks (``g(j) <= `` the ``h`` largest ``C[r, j] - lambda_r``, ``C[r, j]``
the sum of row ``r``'s ``j`` largest block sums).  ``g(0)`` is minus the ``h``
smallest multipliers.  ``g`` never decreases with ``j`` (``R >= 0``), so a
bound at ``j'`` holds for every ``j <= j'`` and only a grid of ``j`` is
evaluated.  The tile rows are interchangeable, so ``sum_a g(j_a)`` under
``sum j_a = k`` is at most ``mb`` times the concave envelope of those bounds at
``k / mb`` (row-balanced: ``mb * g(kb)``).

**Multipliers.** Subgradient descent on ``lambda`` (the subgradient is one
minus how often the pricing uses each row) with Polyak steps towards
``target``, halved when five steps bring nothing; every iterate gives a valid
bound and the smallest is kept.  The answer is the minimum of this and the
problem's own bound (:mod:`permsolve.bounds`), so it is never looser.

**Measured (docs/scale.md):** on the digits-zoo layers this Lagrangian stays
above the allocation bound (for instance 0.6376 against 0.6334 of sum |W| on
``mlp.fc1`` with 16x16 tiles, 0.7244 against 0.7238 on ``mlp.fc2``), so
:func:`tight_bound` returns the allocation bound there: a tighter pricing is
still to be found.

Only numpy; no solver is imported.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> S = np.random.default_rng(0).random((64, 64))
>>> p = TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.5)
>>> tight_bound(p, time_limit=1.0) <= p.bound
True
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Union

import numpy as np

from .bounds import row_profile
from .masks import GlobalMask, RowBalancedMask

if TYPE_CHECKING:
    from .problem import Member, TileProblem

__all__ = ["tight_bound", "member_tight_bound", "lagrangian_rows"]


def _tops(X: np.ndarray, h: int) -> np.ndarray:
    """Per column: the sum of the ``h`` largest entries and a 0/1 matrix marking them."""
    n = X.shape[0]
    idx = np.argpartition(-X, h - 1, axis=0)[:h] if h < n else np.broadcast_to(np.arange(n)[:, None], X.shape)
    vals = np.take_along_axis(X, idx, axis=0)
    return vals.sum(axis=0), idx


def _envelope(js: np.ndarray, gs: np.ndarray, x: float) -> tuple[float, int, int, float]:
    """Upper concave envelope of points ``(js, gs)`` at ``x``: (value, i1, i2, weight of i1)."""
    best = (-np.inf, 0, 0, 1.0)
    for i in range(len(js)):
        if js[i] > x:
            continue
        for t in range(len(js)):
            if js[t] < x:
                continue
            if js[t] == js[i]:
                v, wgt = gs[i], 1.0
            else:
                wgt = (js[t] - x) / (js[t] - js[i])
                v = wgt * gs[i] + (1 - wgt) * gs[t]
            if v > best[0]:
                best = (float(v), i, t, float(wgt))
    return best


def lagrangian_rows(R: np.ndarray, h: int, mb: int, k: int | None = None, kb: int | None = None, *,
                    time_limit: float = 5.0, iters: int = 200, grid: int = 24,
                    target: float | None = None) -> float:
    """Lagrangian bound with the rows free, from the row profile ``R`` (``m x nb``).

    Parameters
    ----------
    R : (m, nb) array
        Row profile: ``R[i, b]`` is the importance of row ``i`` in column block ``b``.
    h : int
        Tile height (rows per tile row).
    mb : int
        Number of tile rows (the rows are padded with zero rows to ``mb * h``).
    k : int, optional
        Global mask: the total number of kept tiles.  Give ``k`` or ``kb``.
    kb : int, optional
        Row-balanced mask: the tiles every tile row keeps.
    time_limit : float
        Seconds for the subgradient iterations.
    iters : int
        Most iterations.
    grid : int
        Size of the grid of tile counts ``j`` at which the pricing is evaluated (global mask).
    target : float, optional
        A value known to be reachable (or any estimate below the bound), for the step
        sizes; the result is valid whatever it is.

    Returns
    -------
    float
        The smallest Lagrangian bound over the iterations.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.random.default_rng(0).random((16, 4))
    >>> T = R.reshape(4, 4, 4).sum(axis=1)            # tile scores of the identity order
    >>> bool(lagrangian_rows(R, 4, 4, k=8, time_limit=0.5) >= np.sort(T.ravel())[-8:].sum())
    True
    """
    t_end = time.perf_counter() + float(time_limit)
    R = np.asarray(R, dtype=np.float64)
    m, nb = R.shape
    mp = mb * h
    if mp > m:
        R = np.vstack([R, np.zeros((mp - m, nb))])
    if kb is not None:
        js = np.array([int(kb)])
        x = float(kb)
    else:
        kk = int(k)
        if kk <= 0:
            return 0.0
        # an evaluation grid that is dense around k / mb, plus 0 and nb
        x = kk / mb
        near = np.arange(max(0, int(np.floor(x)) - grid // 4), min(nb, int(np.ceil(x)) + grid // 4) + 1)
        far = np.unique(np.linspace(0, nb, grid // 2).round().astype(int))
        js = np.unique(np.concatenate([near, far, [0, nb]]))
    # start: each row's value in its best blocks at the average tile count, scaled to the bound's level
    jbar = max(1, int(round(x)))
    part = -np.sort(-R, axis=1)[:, :jbar].sum(axis=1)
    lam = part * (1.0 - 1.0 / max(2.0, mb))  # slightly below the row's own best: a neutral start
    Cs = np.hstack([np.zeros((mp, 1)), np.cumsum(-np.sort(-R, axis=1), axis=1)])  # Cs[r, j]: r's j best blocks
    best = np.inf
    step_scale = 1.0
    stall = 0
    for it in range(int(iters)):
        gs = np.empty(len(js))
        uses = []
        for i, j in enumerate(js):
            if np.isfinite(best) and time.perf_counter() > t_end:
                return float(best)      # an unfinished iteration gives no bound
            if j == 0:
                sel = np.argpartition(lam, h - 1)[:h] if h < mp else np.arange(mp)
                gs[i] = -lam[sel].sum()
                u = np.zeros(mp)
                u[sel] = 1.0
                uses.append(u)
                continue
            v, idx = _tops(R - lam[:, None] / j, h)
            if j < nb:
                bsel = np.argpartition(-v, j - 1)[:j]
            else:
                bsel = np.arange(nb)
            gb = v[bsel].sum()
            # the other relaxation: every row keeps its own j best blocks
            rv = Cs[:, j] - lam
            hsel = np.argpartition(-rv, h - 1)[:h] if h < mp else np.arange(mp)
            gr = rv[hsel].sum()
            if gr < gb:
                gs[i] = gr
                u = np.zeros(mp)
                u[hsel] = 1.0
            else:
                gs[i] = gb
                u = np.bincount(idx[:, bsel].ravel(), minlength=mp) / j
            uses.append(u)
        if kb is None:
            # g never decreases in j, so g(j) <= the smallest bound at any j' >= j; every integer
            # j in (js[i-1], js[i]] is bounded by the value at js[i]
            ge = np.minimum.accumulate(gs[::-1])[::-1]
            src = np.array([int(np.flatnonzero(gs[i:] == ge[i])[0]) + i for i in range(len(js))])
            pj = np.concatenate([[js[0]], js[:-1] + 1, js[1:]]).astype(float)
            pg = np.concatenate([[ge[0]], ge[1:], ge[1:]])
            ps = np.concatenate([[src[0]], src[1:], src[1:]])
            env, p1, p2, wgt = _envelope(pj, pg, x)
            i1, i2 = ps[p1], ps[p2]
        else:
            env, i1, i2, wgt = gs[0], 0, 0, 1.0
        L = float(lam.sum() + mb * env)
        if not np.isfinite(best) or L < best - 1e-12 * abs(best):
            best, stall = L, 0
        else:
            stall += 1
            if stall >= 5:
                step_scale *= 0.5
                stall = 0
        use = mb * (wgt * uses[i1] + (1 - wgt) * uses[i2])
        gsub = 1.0 - use               # dL / dlambda
        norm = float(gsub @ gsub)
        if norm <= 1e-18 or time.perf_counter() > t_end:
            break
        tgt = target if target is not None else 0.97 * best
        t = step_scale * max(L - tgt, 1e-12 * abs(L)) / norm
        lam = lam - t * gsub
    return float(best)


def member_tight_bound(member: "Member", *, time_limit: float = 5.0) -> float:
    """The tightest valid bound known for one member: min of its own bound and the Lagrangian.

    The Lagrangian applies with the rows permuted and the columns fixed (global and
    row-balanced masks) and, for the global mask, with the columns permuted and the
    rows fixed (the transposed matrix); other cases return ``member.bound()``.

    Parameters
    ----------
    member : Member
        One matrix of a problem.
    time_limit : float
        Seconds for the Lagrangian.

    Returns
    -------
    float
        ``min(member.bound(), Lagrangian)``.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve.problem import Member
    >>> mem = Member(np.random.default_rng(1).random((32, 32)), (4, 4), 0.5, rows="r")
    >>> member_tight_bound(mem, time_limit=0.5) <= mem.bound()
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
        lag = lagrangian_rows(R, hh, mbb, k=mask.n_kept(mb, nb, s), time_limit=time_limit)
    elif isinstance(mask, RowBalancedMask) and member.cols is None:
        lag = lagrangian_rows(R, hh, mbb, kb=mask.per_row(nb, s), time_limit=time_limit)
    else:
        return own
    return float(min(own, lag))


def tight_bound(problem_or_member: Union["TileProblem", "Member"], time_limit: float = 5.0) -> float:
    """A valid upper bound on the retained importance, at most the problem's own bound.

    For a problem, the sum of its members' bounds (sharing a permutation between
    members only removes freedom); ``time_limit`` is shared among them.

    Parameters
    ----------
    problem_or_member : TileProblem or Member
        What to bound.
    time_limit : float
        Seconds in all.

    Returns
    -------
    float
        A valid bound, at most ``problem.bound`` (``member.bound()`` for a member).

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((32, 32)), tile=(4, 4), sparsity=0.5)
    >>> tight_bound(p, time_limit=0.5) <= p.bound
    True
    """
    members = getattr(problem_or_member, "members", None)
    if members is None:
        return member_tight_bound(problem_or_member, time_limit=time_limit)
    share = float(time_limit) / len(members)
    total = float(sum(member_tight_bound(m, time_limit=share) for m in members))
    return min(total, float(problem_or_member.bound))
