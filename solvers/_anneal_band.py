"""The sorted band of a global mask: the ``anneal`` kernel's state for a member whose
whole matrix is one top-``k`` group.

Sorting all ``mb * nb`` tiles would make every accepted move cost a merge over
the whole matrix; only a *band* around the top-``k`` boundary is kept sorted,
by (score, id): every tile scoring in ``[lo, hi]`` (``band_f``), with its size
and the number of tiles above it (all kept) in ``band_n``.  A move whose
answer depends on a tile outside the band is recomputed from scratch (see
:func:`permsolve.solvers._anneal_topk._topk_band`); the band is rebuilt when
the boundary drifts within ``BAND_MARGIN`` of an end or it grows beyond
``BAND_MAX``.

Loaded with ``_NOJIT = True`` in its namespace (``kernel="python"``) this file
runs as plain Python.
"""
from __future__ import annotations

import numpy as np

from ._kernel_jit import kernel_jit

njit = kernel_jit(globals())

# half-width of the sorted band kept around the top-k boundary,
# the margin below which it is rebuilt, and the size above which it is rebuilt
BAND_HALF = 128
BAND_MARGIN = 8
BAND_MAX = 6 * BAND_HALF

# entries of a member's band_n (int64): the band's size, the tiles above it
B_SIZE, B_ABOVE = 0, 1

INF = np.inf


@njit
def _lex_lower(sv, sid, lo, hi, v, i):
    """First index ``j`` in ``[lo, hi)`` with ``(sv[j], sid[j]) >= (v, i)``.

    Binary search with the step chosen by arithmetic instead of a branch: the
    comparisons are unpredictable, and mispredicted branches made the search
    the largest cost of an accepted global-mask move.
    """
    first = lo
    length = hi - lo
    while length > 0:
        half = length >> 1
        x = sv[first + half]
        c = int((x < v) | ((x == v) & (sid[first + half] < i)))
        first += (half + 1) * c
        length = half + (length - 2 * half - 1) * c
    return first


@njit
def band_rebuild(T, sv, sid, k, band_f, band_n):
    """Choose a new band around the top-``k`` boundary of ``T`` (a global-mask member).

    The band is every tile scoring between the values of ranks
    ``n - k - BAND_HALF`` and ``n - k + BAND_HALF - 1`` (so ties at either end
    are inside); the two values come from ``np.partition`` (linear) and only
    the band is sorted, so a rebuild costs ``O(n + band log band)``, not a sort
    of all tiles.

    Parameters
    ----------
    T : float64 ``(n,)``, the member's tile scores
    sv, sid : float64, int64 ``(n,)``; receive the band, sorted by score (ties by id), and its ids
    k : tiles kept
    band_f : float64 ``(2,)``; receives the thresholds ``[lo, hi]`` (-inf / inf when no tile lies beyond)
    band_n : int64 ``(2,)``; receives the band's size and the number of tiles above it

    Returns
    -------
    None

    Examples
    --------
    >>> import numpy as np
    >>> T = np.arange(10.0)[::-1].copy()
    >>> sv, sid, band_f, band_n = np.zeros(10), np.zeros(10, dtype=np.int64), np.zeros(2), np.zeros(2, dtype=np.int64)
    >>> band_rebuild(T, sv, sid, 3, band_f, band_n)
    >>> band_n.tolist(), band_f.tolist(), sid[:3].tolist()      # all ten tiles are within BAND_HALF
    ([10, 0], [-inf, inf], [9, 8, 7])
    """
    n = T.shape[0]
    b = n - k
    if b < 0:
        b = 0
    start = b - BAND_HALF
    end = b + BAND_HALF
    if start < 0:
        start = 0
    if end > n:
        end = n
    lo_v = -INF
    hi_v = INF
    if start > 0:
        lo_v = np.partition(T, start)[start]
    if end < n:
        hi_v = np.partition(T, end - 1)[end - 1]
    bn = 0
    below = 0
    above = 0
    for t in range(n):
        v = T[t]
        inside = (v >= lo_v) & (v <= hi_v)
        sid[bn] = t               # branch-free collection, in id order
        bn += inside
        below += v < lo_v
        above += v > hi_v
    vals = np.empty(bn)
    for j in range(bn):
        vals[j] = T[sid[j]]
    o = np.argsort(vals, kind="mergesort")    # stable: ties stay in id order
    ids = sid[:bn].copy()
    for j in range(bn):
        sid[j] = ids[o[j]]
        sv[j] = vals[o[j]]
    band_f[0] = lo_v if below > 0 else -INF
    band_f[1] = hi_v if above > 0 else INF
    band_n[B_SIZE] = bn
    band_n[B_ABOVE] = above


@njit
def _band_apply(T, sv, sid, k, band_f, band_n, ids, vals, hole, order, tmp_v, tmp_i):
    """Commit changed tile scores to a global-mask member: ``T`` and the band.

    ``ids``/``vals``: the changed tiles and their new scores; ``hole`` (zeros,
    left zero), ``order``, ``tmp_v`` and ``tmp_i`` are scratch.  Returns
    whether the band was rebuilt (it had drifted too close to an end, or grown
    too large).
    """
    bn = band_n[B_SIZE]
    n_above = band_n[B_ABOVE]
    lo_th = band_f[0]
    hi_th = band_f[1]
    c = vals.shape[0]
    svb = sv[:bn]
    n_ins = 0
    for t in range(c):
        tid = ids[t]
        old = T[tid]
        new = vals[t]
        n_above += int(new > hi_th) - int(old > hi_th)
        if (old >= lo_th) & (old <= hi_th):      # rare: leaves the band
            hole[_lex_lower(svb, sid, 0, bn, old, tid)] = 1
        if (new >= lo_th) & (new <= hi_th):      # rare: enters the band
            j = n_ins - 1
            while j >= 0 and (vals[order[j]] > new or (vals[order[j]] == new and ids[order[j]] > tid)):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = t
            n_ins += 1
        T[tid] = new
    # drop the holes (a branch-free compaction into tmp), then copy the kept
    # runs back around the few insertions, each placed by binary search: two
    # plain passes, where a merge over the whole band branched per entry
    w = 0
    for i in range(bn):
        tmp_v[w] = sv[i]
        tmp_i[w] = sid[i]
        keep = hole[i] == 0
        hole[i] = 0
        w += keep
    src = 0
    dst = 0
    for t in range(n_ins):
        nv = vals[order[t]]
        ni = ids[order[t]]
        lo = _lex_lower(tmp_v, tmp_i, src, w, nv, ni)
        for j in range(src, lo):
            sv[dst] = tmp_v[j]
            sid[dst] = tmp_i[j]
            dst += 1
        sv[dst] = nv
        sid[dst] = ni
        dst += 1
        src = lo
    for j in range(src, w):
        sv[dst] = tmp_v[j]
        sid[dst] = tmp_i[j]
        dst += 1
    bn = dst
    kb = k - n_above
    band_n[B_SIZE] = bn
    band_n[B_ABOVE] = n_above
    if (kb < BAND_MARGIN and hi_th < INF) or (bn - kb < BAND_MARGIN and lo_th > -INF) or bn > BAND_MAX:
        if 0 < k < T.shape[0]:
            band_rebuild(T, sv, sid, k, band_f, band_n)
            return True
    return False

