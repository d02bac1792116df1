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
``target``, halved when five (exact pricing: twenty) steps bring nothing; every iterate gives a valid
bound and the smallest is kept.  The answer is the minimum of this and the
problem's own bound (:mod:`permsolve.bounds`), so it is never looser.

**Exact pricing** (``exact``, the default when ``2**nb * mb * h <=`` :data:`MAX_WORK`):
for a fixed block set ``B`` the best ``H`` is the ``h`` rows with the largest
``s_B[r] - lambda_r``, so enumerating every ``B`` (:mod:`permsolve._pricing`,
Gray-code order) gives ``g(j)`` exactly, and the kept tiles are split among the
tile rows exactly (a knapsack over ``j``) instead of through the envelope.
**Decomposition** (``parts``, for wider layers): cut the blocks into ranges
``P_1..P_q`` and let every range choose its own rows, at multipliers
``mu_p = lambda / q + delta_p`` with ``sum_p delta_p = 0``.  Since
``sum_{r in H} lambda_r = sum_p sum_{r in H} mu_{p, r}``, giving each range its
own ``H_p`` only enlarges the maximum: still an upper bound for every
``(lambda, delta)``.  The ``delta`` follow the subgradient as well (charging the
ranges for choosing different rows), first with every range cut in
:data:`SPLIT` pieces for :data:`FIRST_SHARE` of the time, then with the ranges
themselves, started from the merged pieces' multipliers (a merged range prices
at most the sum of its pieces, so the bound only tightens).

**Measured (docs/scale.md):** the relaxed pricing stays above the allocation
bound on most digits-zoo layers (0.6376 against 0.6334 of sum |W| on
``mlp.fc1``, 16x16); exact pricing proves ``resnet.layer2.0.conv1`` (16x16,
9 blocks) optimal to 0.002 % of sum |W|, where the allocation bound leaves 3.5
points, and the decomposition tightens the wider layers (figures in
docs/scale.md).

numpy, and numba for the exact pricing; no solver is imported.

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

__all__ = ["tight_bound", "member_tight_bound", "lagrangian_rows", "exact_applies", "parts_for"]


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
                    time_limit: float = 5.0, iters: int | None = None, grid: int = 24,
                    target: float | None = None, exact: bool | None = None,
                    parts: int | str | None = None) -> float:
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
    iters : int, optional
        Most subgradient iterations (default 200; 2000 per level with exact pricing).
    grid : int
        Size of the grid of tile counts ``j`` at which the pricing is evaluated (global mask).
    target : float, optional
        A value known to be reachable (or any estimate below the bound), for the step
        sizes; the result is valid whatever it is.
    exact : bool, optional
        Price exactly, by enumerating every set of column blocks (:mod:`permsolve._pricing`),
        and split the kept tiles among the tile rows exactly (a knapsack over tile counts)
        instead of through the two relaxations and the concave envelope.  Default: when
        ``2**nb * mb * h <= MAX_WORK``.
    parts : int or "auto", optional
        Split the column blocks into this many ranges and price each exactly, letting each
        range choose its own rows (a Lagrangian decomposition, for ``nb`` too large to
        enumerate; ``"auto"``: the fewest that fit :data:`MAX_WORK`, :func:`parts_for`).
        Implies the exact split of the kept tiles.

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
    if kb is None and int(k) <= 0:
        return 0.0
    if parts == "auto":
        parts = parts_for(nb, mp)
    if exact is None:
        exact = exact_applies(nb, mp)
    if exact or parts is not None:
        P = int(parts) if parts is not None else 1
        return _lagrangian_exact(R, h, mb, k, kb, t_end=t_end, iters=2000 if iters is None else int(iters),
                                 target=target, parts=P)
    iters = 200 if iters is None else int(iters)
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


#: the most ``2**nb * mb * h`` (block sets times rows) for which the exact pricing is the default:
#: about one second per subgradient iteration on one core
MAX_WORK = 6e7


def exact_applies(nb: int, rows: int) -> bool:
    """Whether the exact pricing is cheap enough to be the default for ``nb`` column blocks.

    Parameters
    ----------
    nb : int
        Column blocks.
    rows : int
        Rows, padded (``mb * h``).

    Returns
    -------
    bool
        ``2**nb * rows <= MAX_WORK``.

    Examples
    --------
    >>> exact_applies(18, 64), exact_applies(36, 64)
    (True, False)
    """
    return parts_for(nb, rows) == 1


def _allocate(g: np.ndarray, mb: int, k: int) -> tuple[float, list[int]]:
    """``max sum_a g(j_a)`` over ``sum_a j_a = k``, ``0 <= j_a <= nb``, and the ``j_a`` (a knapsack):
    the max-plus convolution of ``mb`` copies of ``g`` at ``k``."""
    G, picks = _maxplus([g] * mb)
    return float(G[k]), [int(p[k]) for p in picks]


def parts_for(nb: int, rows: int, work: float | None = None) -> int:
    """How many parts the ``nb`` column blocks are split into so that exact pricing of each fits ``work``.

    Parameters
    ----------
    nb : int
        Column blocks.
    rows : int
        Rows, padded (``mb * h``).
    work : float, optional
        The most ``sum over parts of 2**size * rows``; default :data:`MAX_WORK`.

    Returns
    -------
    int
        The fewest parts of near-equal size (1: no split) whose enumeration fits, at least 1.

    Examples
    --------
    >>> parts_for(18, 64), parts_for(36, 64), parts_for(384, 384)
    (1, 2, 32)
    """
    work = MAX_WORK if work is None else float(work)
    for P in range(1, max(nb, 1) + 1):
        q = -(-nb // P)
        if q <= 62 and P * 2.0 ** q * rows <= work:
            return P
    return max(nb, 1)


def _maxplus(gs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Max-plus convolution of the parts' pricing values, and each part's count for every total."""
    G = gs[0].copy()
    picks = [np.arange(len(G))[:, None]]          # picks[...][J] = counts of the parts so far
    for g in gs[1:]:
        n1, n2 = len(G), len(g)
        tot = np.full(n1 + n2 - 1, -np.inf)
        arg = np.zeros(n1 + n2 - 1, dtype=np.int64)
        for j in range(n2):
            cand = G + g[j]
            sl = slice(j, j + n1)
            better = cand > tot[sl]
            tot[sl] = np.where(better, cand, tot[sl])
            arg[sl] = np.where(better, j, arg[sl])
        prev = picks[-1]
        picks.append(np.column_stack([prev[np.arange(len(tot)) - arg].reshape(len(tot), -1), arg]))
        G = tot
    return G, [picks[-1][:, p] for p in range(len(gs))]


def _lagrangian_exact(R: np.ndarray, h: int, mb: int, k: int | None, kb: int | None, *, t_end: float,
                      iters: int, target: float | None, parts: int = 1) -> float:
    """Two levels: every part split in ``SPLIT`` for a share of the time (fast iterations that find
    good multipliers), then the parts themselves, started from the first level's multipliers
    (a merged part's multipliers are the sum of its pieces', so the bound only tightens)."""
    mp, nb = R.shape
    P = max(1, min(int(parts), nb))
    cuts = np.linspace(0, nb, P + 1).round().astype(int)
    fine = [c for p in range(P) for c in np.linspace(cuts[p], cuts[p + 1], SPLIT + 1).round().astype(int)[:-1]]
    fine = np.unique(np.append(fine, nb))
    jbar = max(1, int(round(kb if kb is not None else k / mb)))
    lam = -np.sort(-R, axis=1)[:, :jbar].sum(axis=1) * (1.0 - 1.0 / max(2.0, mb))
    now = time.perf_counter()
    t_mid = now + FIRST_SHARE * max(0.0, t_end - now)
    best = np.inf
    if len(fine) - 1 > P:
        best, lam, dfine = _subgradient(R, h, mb, k, kb, fine, lam, np.zeros((len(fine) - 1, mp)),
                                        t_end=t_mid, iters=iters, target=target)
        owner = np.searchsorted(cuts, fine[:-1], side="right") - 1     # the coarse part of each piece
        delta = np.zeros((P, mp))
        np.add.at(delta, owner, dfine)
        delta += lam / (len(fine) - 1) * np.bincount(owner, minlength=P)[:, None] - lam / P
    else:
        delta = np.zeros((P, mp))
    b2, _, _ = _subgradient(R, h, mb, k, kb, cuts, lam, delta, t_end=t_end, iters=iters, target=target,
                            best=best)
    return float(min(best, b2))


#: pieces per part in the first level of the exact Lagrangian, and that level's share of the time
SPLIT, FIRST_SHARE = 4, 0.3


def _subgradient(R, h, mb, k, kb, cuts, lam, delta, *, t_end, iters, target, best=np.inf):
    """Subgradient steps on ``(lam, delta)`` with the column blocks cut at ``cuts``; (best, lam, delta).

    Exact pricing of every range and an exact split of the kept tiles (rows padded).  With
    more than one range each tile row's pricing lets every range choose its own ``h`` rows, at
    multipliers ``lam / P + delta_p`` (``sum_p delta_p = 0``): still an upper bound, and the
    ``delta`` follow the subgradient too, charging the ranges for disagreeing on the rows.
    """
    from ._pricing import price_subsets, subset_rows

    mp, nb = R.shape
    P = len(cuts) - 1
    Rs = [np.ascontiguousarray(R[:, cuts[p]:cuts[p + 1]]) for p in range(P)]
    first = best
    best, step_scale, stall = np.inf, 1.0, 0
    best_lam, best_delta = lam, delta
    for _ in range(int(iters)):
        if np.isfinite(best) and time.perf_counter() > t_end:
            break
        mus = [lam / P + delta[p] for p in range(P)]
        priced = [price_subsets(Rs[p], mus[p], h) for p in range(P)]
        G, picks = _maxplus([g for g, _ in priced]) if P > 1 else (priced[0][0], [np.arange(nb + 1)])
        if kb is not None:
            val, js = mb * float(G[kb]), [int(kb)] * mb
        else:
            val, js = _allocate(G, mb, int(k))
        L = float(lam.sum() + val)
        if not np.isfinite(best) or L < best - 1e-12 * abs(best):
            best, stall, best_lam, best_delta = L, 0, lam, delta
        else:
            stall += 1
            if stall >= 20:
                step_scale *= 0.5
                stall = 0
        use = np.zeros((P, mp))
        rows = {}                     # (range, its tile count) -> rows: the same for every tile row
        for j in js:
            for p in range(P):
                jp = int(picks[p][j])
                if (p, jp) not in rows:
                    rows[p, jp] = subset_rows(Rs[p], mus[p], h, int(priced[p][1][jp]))
                use[p, rows[p, jp]] += 1.0
        g_lam = 1.0 - use.sum(axis=0) / P
        g_delta = -(use - use.mean(axis=0))
        norm = float(g_lam @ g_lam + (g_delta * g_delta).sum())
        if norm <= 1e-18 or step_scale < 1e-9:
            break
        tgt = target if target is not None else 0.97 * min(best, first)
        t = step_scale * max(L - tgt, 1e-12 * abs(L)) / norm
        lam = lam - t * g_lam
        delta = delta - t * g_delta
    return float(best) * (1 + 1e-12), best_lam, best_delta


def member_tight_bound(member: "Member", *, time_limit: float = 5.0, target: float | None = None,
                       parts: int | str | None = None) -> float:
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
    target : float, optional
        A value known to be reachable (the best answer found), for the step sizes;
        the bound is valid whatever it is.
    parts : int or "auto", optional
        As for :func:`lagrangian_rows` (``"auto"``: the decomposition bound at any size).

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
        lag = lagrangian_rows(R, hh, mbb, k=mask.n_kept(mb, nb, s), time_limit=time_limit, target=target,
                              parts=parts)
    elif isinstance(mask, RowBalancedMask) and member.cols is None:
        lag = lagrangian_rows(R, hh, mbb, kb=mask.per_row(nb, s), time_limit=time_limit, target=target,
                              parts=parts)
    else:
        return own
    return float(min(own, lag))


def tight_bound(problem_or_member: Union["TileProblem", "Member"], time_limit: float = 5.0,
                target: float | None = None, parts: int | str | None = None) -> float:
    """A valid upper bound on the retained importance, at most the problem's own bound.

    For a problem, the sum of its members' bounds (sharing a permutation between
    members only removes freedom); ``time_limit`` is shared among them.

    Parameters
    ----------
    problem_or_member : TileProblem or Member
        What to bound.
    time_limit : float
        Seconds in all.
    target : float, optional
        A value known to be reachable, for the step sizes (used for a one-member problem
        or a member; the bound is valid whatever it is).
    parts : int or "auto", optional
        As for :func:`lagrangian_rows`.

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
        return member_tight_bound(problem_or_member, time_limit=time_limit, target=target, parts=parts)
    if len(members) == 1:
        return min(member_tight_bound(members[0], time_limit=time_limit, target=target, parts=parts),
                   float(problem_or_member.bound))
    share = float(time_limit) / len(members)
    total = float(sum(member_tight_bound(m, time_limit=share, parts=parts) for m in members))
    return min(total, float(problem_or_member.bound))
