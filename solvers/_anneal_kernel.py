"""Incremental move evaluation for the ``anneal`` solver (numba kernel).

The state of a problem is flattened into a few 1-D arrays so that one compiled
function handles any number of members, permutations and units.  Per member
the kernel keeps

* ``T``: the tile-score matrix, ``mb x nb``, in permuted coordinates;
* ``R``: the row profile (``R[x, b]`` = original row ``x`` inside column block
  ``b`` under the current column permutation) when the rows are permuted;
* ``C``: the column profile (``C[y, a]`` = original column ``y`` inside row
  block ``a`` under the current row permutation) when the columns are permuted;
* each group's kept sum (``ksum``) and its scores in sorted order: the
  row-balanced mask has one group per tile row (keep ``kb``), fully sorted
  (``sv``, ``sid``) with each tile's rank (``pos``); the global mask has one
  group (all tiles, keep ``k``) of which only a *band* around the top-``k``
  boundary is kept sorted, by (score, id): every tile scoring in
  ``[lo, hi]`` (``bandf``), with the counts in the member table.

A swap of positions ``p`` and ``q`` of a permutation moves ``unit`` elements
each; an element whose tile row (column) changes adds one profile row
(``O(nb)``) to one tile row and subtracts it from the other.  The new kept sum
of a group whose tiles partly changed is found from the sorted scores by
walking the old boundary, skipping changed tiles, then one pass over the
changed tiles (:func:`_topk_band` for the global mask, :func:`_topk_merge` for
a row of the row-balanced mask); a group whose tiles all changed (a tile row
under a row move, row-balanced mask) by counting against its old threshold and selecting the
few values that cross it (:func:`_topk_fresh`; when only rows are permuted, a
row-balanced tile row keeps just that threshold, not a sorted order).  All are exact (ties do not change a top-k *sum*); a
global-mask move whose answer depends on a tile outside the band is
recomputed from scratch (:func:`_topk_full`, rare).  The sorted scores and
the profiles are updated only on acceptance.

Loading this file with ``_NOJIT = True`` in its namespace gives the same code
as plain Python (``kernel="python"``: slow, for debugging and for checking the
compiled code).
"""
from __future__ import annotations

import math

import numpy as np

if globals().get("_NOJIT", False):  # pragma: no cover - exercised through kernel="python"
    def njit(f):
        return f
else:
    import numba

    # (forcing inline="always" on the helpers gained < 5 % and cost 40 % more compile time)
    njit = numba.njit(cache=True, nogil=True, error_model="numpy")

# columns of the member table (int64, one row per member)
(M_M, M_N, M_H, M_W, M_MB, M_NB, M_SOFF, M_TOFF, M_ROFF, M_COFF, M_GLOBAL, M_K, M_GOFF, M_NGROUPS, M_GS,
 M_BN, M_NABOVE) = range(17)
M_FIELDS = 17

# stats array (int64)
ST_UNUSED, ST_ACCEPTED, ST_IMPROVED, ST_MOVES, ST_FALLBACK, ST_REBUILD = range(6)
N_STATS = 6

# global mask: half-width of the sorted band kept around the top-k boundary,
# the margin below which it is rebuilt, and the size above which it is rebuilt
BAND_HALF = 128
BAND_MARGIN = 8
BAND_MAX = 6 * BAND_HALF

INF = np.inf


@njit
def _sort_asc(buf, n):
    """Sort ``buf[:n]`` ascending in place (insertion sort when small)."""
    if n > 24:
        buf[:n].sort()
        return
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit
def _is_changed(tid, slots, ns, axis, nb):
    """Whether tile ``tid`` lies in a changed tile row (``axis`` 0) or tile column (1)."""
    a = tid // nb if axis == 0 else tid % nb
    for s in range(ns):
        if slots[s] == a:
            return True
    return False


@njit
def _walk(sv, sid, lo, slots, ns, axis, nb):
    """From the boundary index ``lo``: first unchanged index at or above it and last below it."""
    gs = sv.shape[0]
    j = lo
    while j < gs and _is_changed(sid[j], slots, ns, axis, nb):
        j += 1
    i = lo - 1
    while i >= 0 and _is_changed(sid[i], slots, ns, axis, nb):
        i -= 1
    return j, i


@njit
def _topk_cases(sv, sid, j_a, j_b, u_min, u_max, c_kept, sum_a, n_hi, s_hi, n_ab, s_ab, vals, open_above,
                open_below, slots, ns, axis, nb, buf, buf2):
    """New top-``k`` sum from the boundary counts (see :func:`_topk_band`).

    ``u_min``: smallest unchanged kept score (index ``j_a`` in ``sv``), ``u_max``:
    largest unchanged pruned (index ``j_b``); ``c_kept``: changed tiles that
    were kept; ``sum_a``: old kept sum minus their old scores; ``n_hi``/``s_hi``
    and ``n_ab``/``s_ab``: count and sum of the new scores above ``u_min`` and
    above ``u_max``.  ``open_above``/``open_below``: unchanged tiles may exist
    beyond ``sv`` (a band); a walk that runs off such an end returns NaN.
    """
    gs = sv.shape[0]
    c = vals.shape[0]
    if n_hi <= c_kept and c_kept <= n_ab:
        # all unchanged kept stay; c_kept new scores are kept, the n_hi above
        # u_min and the best (c_kept - n_hi) of those in (u_max, u_min]
        need = c_kept - n_hi
        if need == 0:
            return sum_a + s_hi
        if need == n_ab - n_hi:
            return sum_a + s_ab
        nm = 0
        for t in range(c):
            v = vals[t]
            buf[nm] = v                    # branch-free: see _rank_split
            nm += (v > u_max) & (v <= u_min)
        _sort_asc(buf, nm)
        s = 0.0
        for t in range(nm - need, nm):
            s += buf[t]
        return sum_a + s_hi + s
    if c_kept > n_ab:
        # fewer new scores above u_max than kept slots they held: the r best
        # of (unchanged pruned, new scores <= u_max) fill the gap
        r = c_kept - n_ab
        nw = 0
        j = j_b
        while nw < r and j >= 0:
            if not _is_changed(sid[j], slots, ns, axis, nb):
                buf2[nw] = sv[j]  # descending
                nw += 1
            j -= 1
        if nw < r and open_below:
            return np.nan
        floor = buf2[nw - 1] if nw == r else -INF
        nl = 0
        for t in range(c):
            v = vals[t]
            buf[nl] = v
            nl += (v <= u_max) & (v > floor)
        _sort_asc(buf, nl)
        s = 0.0
        i1 = 0
        i2 = nl - 1
        for _ in range(r):
            if i1 < nw and (i2 < 0 or buf2[i1] >= buf[i2]):
                s += buf2[i1]
                i1 += 1
            else:
                s += buf[i2]
                i2 -= 1
        return sum_a + s_ab + s
    # c_kept < n_hi: unchanged kept plus new scores above u_min are k + r
    # candidates, all >= everything else; drop the r smallest of them
    r = n_hi - c_kept
    na = 0
    j = j_a
    while na < r and j < gs:
        if not _is_changed(sid[j], slots, ns, axis, nb):
            buf2[na] = sv[j]  # ascending
            na += 1
        j += 1
    if na < r and open_above:
        return np.nan
    ceil = buf2[na - 1] if na == r else INF
    nl = 0
    for t in range(c):
        v = vals[t]
        buf[nl] = v
        nl += (v > u_min) & (v < ceil)
    _sort_asc(buf, nl)
    s = 0.0
    i1 = 0
    i2 = 0
    for _ in range(r):
        if i1 < na and (i2 >= nl or buf2[i1] <= buf[i2]):
            s += buf2[i1]
            i1 += 1
        else:
            s += buf[i2]
            i2 += 1
    return sum_a + s_hi - s


@njit
def _topk_merge(sv, sid, pos, T, k, ksum_old, ids, vals, slots, ns, axis, nb, buf, buf2):
    """Exact new top-``k`` sum of a (row-balanced) group after some of its tiles change.

    ``sv`` holds the group's old scores sorted ascending and ``sid`` their
    (member-local) tile ids; ``pos[id]`` is the rank of a tile in its group and
    ``T[id]`` its old score.  ``ids`` are the changed tiles (those in the
    tile rows/columns ``slots[:ns]``) and ``vals`` their new scores.
    """
    gs = sv.shape[0]
    c = vals.shape[0]
    if k <= 0:
        return 0.0
    if k >= gs:
        s = ksum_old
        for t in range(c):
            s += vals[t] - T[ids[t]]
        return s
    lo = gs - k
    j_a, j_b = _walk(sv, sid, lo, slots, ns, axis, nb)
    u_min = sv[j_a] if j_a < gs else INF
    u_max = sv[j_b] if j_b >= 0 else -INF
    c_kept = 0
    sum_a = ksum_old
    n_hi = 0
    s_hi = 0.0
    n_ab = 0
    s_ab = 0.0
    for t in range(c):
        tid = ids[t]
        kept = pos[tid] >= lo
        c_kept += kept
        sum_a -= T[tid] if kept else 0.0
        v = vals[t]
        ab = v > u_max
        hi = v > u_min
        n_ab += ab
        s_ab += v if ab else 0.0
        n_hi += hi
        s_hi += v if hi else 0.0
    return _topk_cases(sv, sid, j_a, j_b, u_min, u_max, c_kept, sum_a, n_hi, s_hi, n_ab, s_ab, vals, False,
                       False, slots, ns, axis, nb, buf, buf2)


@njit
def _topk_band(svb, sidb, T, k, ksum_old, ids, vals, lo_th, hi_th, n_above, slots, ns, axis, nb, buf, buf2):
    """Exact new top-``k`` sum of a global mask after some tiles change, or NaN.

    ``svb``/``sidb`` is the band: every tile whose score lies in
    ``[lo_th, hi_th]``, sorted by (score, id); ``n_above`` tiles score above it
    (all kept), the rest below (all pruned).  Within the band a tile is kept
    when it sorts at or after the band's boundary entry, so no per-tile flag
    is needed.  The changed tiles ``ids`` are those in the tile rows/columns
    ``slots[:ns]``; ``vals`` are their new scores.  NaN: the answer depends on
    a tile outside the band (the caller recomputes from scratch).
    """
    ntiles = T.shape[0]
    bn = svb.shape[0]
    c = vals.shape[0]
    if k <= 0:
        return 0.0
    if k >= ntiles:
        s = ksum_old
        for t in range(c):
            s += vals[t] - T[ids[t]]
        return s
    lo = bn - (k - n_above)
    th_v = svb[lo] if lo < bn else INF
    th_i = sidb[lo] if lo < bn else 0
    # smallest unchanged kept (u_min) and largest unchanged pruned (u_max)
    j_a, j_b = _walk(svb, sidb, lo, slots, ns, axis, nb)
    if j_a < bn:
        u_min = svb[j_a]
    elif hi_th == INF:
        u_min = INF
    else:
        return np.nan
    if j_b >= 0:
        u_max = svb[j_b]
    elif lo_th == -INF:
        u_max = -INF
    else:
        return np.nan
    # one pass: which changed tiles were kept, and where the new scores fall
    c_kept = 0
    sum_a = ksum_old
    n_hi = 0
    s_hi = 0.0
    n_ab = 0
    s_ab = 0.0
    for t in range(c):
        tid = ids[t]
        old = T[tid]
        # kept: above the band, or in it at/after the boundary entry (branch-free:
        # whether a changed tile was kept is a coin flip near the boundary)
        kept = (old > hi_th) | (old > th_v) | ((old == th_v) & (tid >= th_i))
        c_kept += kept
        sum_a -= old if kept else 0.0
        v = vals[t]
        ab = v > u_max
        hi = v > u_min
        n_ab += ab
        s_ab += v if ab else 0.0
        n_hi += hi
        s_hi += v if hi else 0.0
    return _topk_cases(svb, sidb, j_a, j_b, u_min, u_max, c_kept, sum_a, n_hi, s_hi, n_ab, s_ab, vals,
                       hi_th < INF, lo_th > -INF, slots, ns, axis, nb, buf, buf2)


@njit
def _topk_full(T, ids, vals, k, buf):
    """Top-``k`` sum from scratch (fallback when the band does not decide it)."""
    n = T.shape[0]
    for t in range(n):
        buf[t] = T[t]
    for t in range(vals.shape[0]):
        buf[ids[t]] = vals[t]
    b = buf[:n]
    b.sort()
    s = 0.0
    for t in range(n - k, n):
        s += b[t]
    return s


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
def band_rebuild(T, sv, sid, k, mem, mi, bandf):
    """Choose a new band around the top-``k`` boundary of ``T`` (a global-mask member).

    Writes the band into ``sv``/``sid`` (sorted by score, ties by id), its
    size, the number of tiles above it and its thresholds.  The band is every
    tile scoring between the values of ranks ``n - k - BAND_HALF`` and
    ``n - k + BAND_HALF - 1`` (so ties at either end are inside); the two
    values come from ``np.partition`` (linear) and only the band is sorted,
    so a rebuild costs ``O(n + band log band)``, not a sort of all tiles.
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
    bandf[mi, 0] = lo_v if below > 0 else -INF
    bandf[mi, 1] = hi_v if above > 0 else INF
    mem[mi, M_BN] = bn
    mem[mi, M_NABOVE] = above


@njit
def _band_apply(T, sv, sid, k, mem, mi, bandf, ids, vals, hole, order, tmp_v, tmp_i, stats):
    """Commit changed tile scores to a global-mask member: ``T`` and the band."""
    bn = mem[mi, M_BN]
    n_above = mem[mi, M_NABOVE]
    lo_th = bandf[mi, 0]
    hi_th = bandf[mi, 1]
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
    mem[mi, M_BN] = bn
    mem[mi, M_NABOVE] = n_above
    if (kb < BAND_MARGIN and hi_th < INF) or (bn - kb < BAND_MARGIN and lo_th > -INF) or bn > BAND_MAX:
        if 0 < k < T.shape[0]:
            band_rebuild(T, sv, sid, k, mem, mi, bandf)
            stats[ST_REBUILD] += 1


@njit
def _rank_split(buf, n, j):
    """Sum of the ``j`` smallest of ``buf[:n]`` and the value of rank ``j``
    (ascending, 0-based); ``buf[n:3n]`` is scratch.

    Quickselect whose three-way partitions write every value to both halves
    and advance each half's end by a comparison, so the loop has no
    data-dependent branch: around a top-``k`` threshold each comparison is a
    coin flip, and branchy code spent most of its time in mispredictions
    (row-balanced moves on 1024x1024 evaluate about 2.2x faster than with a
    guarded insertion plus sort, ``benchmarks/anneal_speed.py``).
    """
    size = n       # three regions of this size: [0, size), [size, 2 size), [2 size, 3 size)
    src = 0
    acc = 0.0
    while True:
        if n <= 2:
            if n == 1:
                return acc, buf[src]
            lo = min(buf[src], buf[src + 1])
            hi = max(buf[src], buf[src + 1])
            return (acc, lo) if j == 0 else (acc + lo, hi)
        x = buf[src]
        y = buf[src + (n >> 1)]
        z = buf[src + n - 1]
        pivot = max(min(x, y), min(max(x, y), z))     # median of three
        # the two regions not being read
        o1 = size if src == 0 else 0
        o2 = 2 * size if src != 2 * size else size
        nl = 0
        ng = 0
        sl = 0.0
        for t in range(src, src + n):
            v = buf[t]
            lt = v < pivot
            buf[o1 + nl] = v
            buf[o2 + ng] = v
            nl += lt
            ng += v > pivot
            sl += v if lt else 0.0
        ne = n - nl - ng
        if j < nl:
            src, n = o1, nl
        elif j < nl + ne:
            return acc + sl + (j - nl) * pivot, pivot
        else:
            acc += sl + ne * pivot
            j -= nl + ne
            src, n = o2, ng


@njit
def _topk_fresh(vals, k, guess, buf):
    """Exact top-``k`` sum of ``vals`` and the ``k``-th largest value.

    One pass counts the values above a guessed threshold (the group's old
    ``k``-th largest); when the count is off by ``r``, the ``r`` values to drop
    (or add) are selected from those above (at or below) the guess by
    :func:`_rank_split`.  ``buf`` needs ``3 * len(vals)`` entries.
    """
    n = vals.shape[0]
    if k <= 0:
        return 0.0, INF
    if k >= n:
        s = 0.0
        lo = INF
        for t in range(n):
            s += vals[t]
            lo = min(lo, vals[t])
        return s, lo
    n_gt = 0
    s_gt = 0.0
    for t in range(n):
        v = vals[t]
        gt = v > guess
        n_gt += gt
        s_gt += v if gt else 0.0
    if n_gt > k:
        # drop the r smallest of the values above the guess
        nb = 0
        for t in range(n):
            v = vals[t]
            buf[nb] = v
            nb += v > guess
        s, th = _rank_split(buf, nb, n_gt - k)
        return s_gt - s, th
    r = k - n_gt
    if r == 0:
        th = INF
        for t in range(n):
            v = vals[t]
            th = min(th, v if v > guess else INF)
        return s_gt, th
    # add the r largest of those at or below the guess
    nb = 0
    s_le = 0.0
    for t in range(n):
        v = vals[t]
        buf[nb] = v
        le = v <= guess
        nb += le
        s_le += v if le else 0.0
    s, th = _rank_split(buf, nb, nb - r)
    return s_gt + s_le - s, th


@njit
def _move_one(sv, sid, pos, tid, v):
    """Give tile ``tid`` of a sorted group the new score ``v``: shift it to its
    place, ``O(displacement)`` (an accepted column move changes only a couple
    of tiles per tile row, by a little)."""
    n = sv.shape[0]
    i = pos[tid]
    while i + 1 < n and sv[i + 1] < v:
        sv[i] = sv[i + 1]
        sid[i] = sid[i + 1]
        pos[sid[i]] = i
        i += 1
    while i > 0 and sv[i - 1] > v:
        sv[i] = sv[i - 1]
        sid[i] = sid[i - 1]
        pos[sid[i]] = i
        i -= 1
    sv[i] = v
    sid[i] = tid
    pos[tid] = i


@njit
def _resort_group(T, sv, sid, pos):
    """Re-sort a group whose tiles all changed: insertion sort from the old order
    (the old order is nearly right, so this is close to linear)."""
    gs = sv.shape[0]
    for w in range(gs):
        sv[w] = T[sid[w]]
    for i in range(1, gs):
        v = sv[i]
        d = sid[i]
        j = i - 1
        while j >= 0 and sv[j] > v:
            sv[j + 1] = sv[j]
            sid[j + 1] = sid[j]
            j -= 1
        sv[j + 1] = v
        sid[j + 1] = d
    for w in range(gs):
        pos[sid[w]] = w


@njit
def _slot_of(slots, ns, a):
    for s in range(ns):
        if slots[s] == a:
            return s
    return -1


@njit
def _eval_binding(mem, bandf, mi, axis, unit, perm, pbase, p, q, T, R, C, sv, sid, pos, ksum,
                  stats, slots, ch_id, ch_val, g_val, buf, buf2, gids, gvals):
    """Delta of the kept sum of member ``mi`` when positions ``p``, ``q`` swap.

    ``slots``, ``ch_id``, ``ch_val`` and ``g_val`` are this binding's scratch
    views; they receive the changed tile rows (columns), the changed tiles
    with their new scores and the new kept sum of each changed group.
    Returns ``(delta, number of changed slots)``.
    """
    h = mem[mi, M_H]
    w = mem[mi, M_W]
    mb = mem[mi, M_MB]
    nb = mem[mi, M_NB]
    toff = mem[mi, M_TOFF]
    ntiles = mb * nb
    Tm = T[toff:toff + ntiles]
    up = perm[pbase + p]
    uq = perm[pbase + q]
    blk = h if axis == 0 else w
    span = nb if axis == 0 else mb   # tiles per changed slot
    ns = 0
    for e in range(unit):
        a1 = (p * unit + e) // blk
        a2 = (q * unit + e) // blk
        if a1 == a2:
            continue
        x1 = up * unit + e
        x2 = uq * unit + e
        # the two slots are opened by the same code written out twice: a shared helper
        # (plain or inline="always") made evaluation 10-25 % slower
        # (benchmarks/anneal_speed.py --compare)
        s1 = _slot_of(slots, ns, a1)
        if s1 < 0:
            s1 = ns
            slots[ns] = a1
            ns += 1
            cv = ch_val[s1 * span:(s1 + 1) * span]
            if axis == 0:
                tv = Tm[a1 * nb:(a1 + 1) * nb]
                for b in range(nb):
                    cv[b] = tv[b]
            else:
                for a in range(mb):
                    cv[a] = Tm[a * nb + a1]
        s2 = _slot_of(slots, ns, a2)
        if s2 < 0:
            s2 = ns
            slots[ns] = a2
            ns += 1
            cv = ch_val[s2 * span:(s2 + 1) * span]
            if axis == 0:
                tv = Tm[a2 * nb:(a2 + 1) * nb]
                for b in range(nb):
                    cv[b] = tv[b]
            else:
                for a in range(mb):
                    cv[a] = Tm[a * nb + a2]
        c1 = ch_val[s1 * span:(s1 + 1) * span]
        c2 = ch_val[s2 * span:(s2 + 1) * span]
        if axis == 0:
            roff = mem[mi, M_ROFF]
            p1 = R[roff + x1 * nb:roff + (x1 + 1) * nb]
            p2 = R[roff + x2 * nb:roff + (x2 + 1) * nb]
        else:
            coff = mem[mi, M_COFF]
            p1 = C[coff + x1 * mb:coff + (x1 + 1) * mb]
            p2 = C[coff + x2 * mb:coff + (x2 + 1) * mb]
        for b in range(span):
            d = p2[b] - p1[b]
            c1[b] += d
            c2[b] -= d
    if ns == 0:
        return 0.0, 0
    c = ns * span
    for s in range(ns):
        a = slots[s]
        iv = ch_id[s * span:(s + 1) * span]
        if axis == 0:
            for b in range(nb):
                iv[b] = a * nb + b
        else:
            for b in range(mb):
                iv[b] = b * nb + a
    goff_m = mem[mi, M_GOFF]
    k = mem[mi, M_K]
    svm = sv[toff:toff + ntiles]
    sidm = sid[toff:toff + ntiles]
    posm = pos[toff:toff + ntiles]
    if mem[mi, M_GLOBAL] == 1:
        bn = mem[mi, M_BN]
        new = _topk_band(svm[:bn], sidm[:bn], Tm, k, ksum[goff_m], ch_id[:c], ch_val[:c], bandf[mi, 0],
                         bandf[mi, 1], mem[mi, M_NABOVE], slots, ns, axis, nb, buf, buf2)
        if new != new:
            new = _topk_full(Tm, ch_id[:c], ch_val[:c], k, buf)
            stats[ST_FALLBACK] += 1
        g_val[0] = new
        return new - ksum[goff_m], ns
    delta = 0.0
    if axis == 0:
        # row-balanced, row move: the changed tile rows are whole groups
        # (g_val holds the new sum and the new k-th largest of each changed row)
        for s in range(ns):
            a = slots[s]
            guess = svm[a * nb + nb - k] if 0 < k < nb else 0.0
            new, th = _topk_fresh(ch_val[s * nb:(s + 1) * nb], k, guess, buf)
            g_val[2 * s] = new
            g_val[2 * s + 1] = th
            delta += new - ksum[goff_m + a]
        return delta, ns
    # row-balanced, column move: every tile row has ns changed tiles
    lo = nb - k
    for a in range(mb):
        if ns == 2 and 0 < k and k < nb:
            # two changed tiles in this row: the boundary case of _topk_merge
            # inline (no walk beyond the two), else the general routine
            t1 = ch_id[a]
            t2 = ch_id[mb + a]
            v1 = ch_val[a]
            v2 = ch_val[mb + a]
            p1 = posm[t1]
            p2 = posm[t2]
            sva = svm[a * nb:(a + 1) * nb]
            j = lo
            while j == p1 or j == p2:
                j += 1
            u_min = sva[j] if j < nb else INF
            i = lo - 1
            while i == p1 or i == p2:
                i -= 1
            u_max = sva[i] if i >= 0 else -INF
            k1 = p1 >= lo
            k2 = p2 >= lo
            c_kept = int(k1) + int(k2)
            sum_a = ksum[goff_m + a] - (Tm[t1] if k1 else 0.0) - (Tm[t2] if k2 else 0.0)
            n_hi = int(v1 > u_min) + int(v2 > u_min)
            n_ab = int(v1 > u_max) + int(v2 > u_max)
            if n_hi <= c_kept and c_kept <= n_ab:
                s_hi = (v1 if v1 > u_min else 0.0) + (v2 if v2 > u_min else 0.0)
                need = c_kept - n_hi
                if need == 0:
                    new = sum_a + s_hi
                elif need == n_ab - n_hi:
                    new = sum_a + (v1 if v1 > u_max else 0.0) + (v2 if v2 > u_max else 0.0)
                else:        # need 1 of the two, both in (u_max, u_min]
                    new = sum_a + s_hi + max(v1, v2)
                g_val[a] = new
                delta += new - ksum[goff_m + a]
                continue
        for s in range(ns):
            gids[s] = ch_id[s * mb + a]
            gvals[s] = ch_val[s * mb + a]
        new = _topk_merge(svm[a * nb:(a + 1) * nb], sidm[a * nb:(a + 1) * nb], posm, Tm, k, ksum[goff_m + a],
                          gids[:ns], gvals[:ns], slots, ns, axis, nb, buf, buf2)
        g_val[a] = new
        delta += new - ksum[goff_m + a]
    return delta, ns


@njit
def _apply_binding(mem, bandf, mi, axis, unit, perm, pbase, p, q, ns, S, T, R, C, sv, sid, pos, ksum,
                   slots, ch_id, ch_val, g_val, hole, order, tmp_v, tmp_i, gids, gvals, stats):
    """Commit an accepted swap to member ``mi``'s state (before the permutation itself swaps)."""
    if ns == 0:
        return
    m = mem[mi, M_M]
    n = mem[mi, M_N]
    h = mem[mi, M_H]
    w = mem[mi, M_W]
    mb = mem[mi, M_MB]
    nb = mem[mi, M_NB]
    toff = mem[mi, M_TOFF]
    ntiles = mb * nb
    soff_s = mem[mi, M_SOFF]
    goff_m = mem[mi, M_GOFF]
    span = nb if axis == 0 else mb
    c = ns * span
    Tm = T[toff:toff + ntiles]
    svm = sv[toff:toff + ntiles]
    sidm = sid[toff:toff + ntiles]
    posm = pos[toff:toff + ntiles]
    if mem[mi, M_GLOBAL] == 1:
        _band_apply(Tm, svm, sidm, mem[mi, M_K], mem, mi, bandf, ch_id[:c], ch_val[:c], hole, order,
                    tmp_v, tmp_i, stats)
        ksum[goff_m] = g_val[0]
    elif axis == 0:
        for t in range(c):
            Tm[ch_id[t]] = ch_val[t]
        k = mem[mi, M_K]
        for s in range(ns):
            a = slots[s]
            if mem[mi, M_COFF] >= 0:
                # column moves read the row's full sorted order
                _resort_group(Tm, svm[a * nb:(a + 1) * nb], sidm[a * nb:(a + 1) * nb], posm)
            elif 0 < k < nb:
                # rows only: a row move reads just the k-th largest (its guess)
                svm[a * nb + nb - k] = g_val[2 * s + 1]
            ksum[goff_m + a] = g_val[2 * s]
    else:
        for t in range(c):
            Tm[ch_id[t]] = ch_val[t]
        for a in range(mb):
            sva = svm[a * nb:(a + 1) * nb]
            sida = sidm[a * nb:(a + 1) * nb]
            for s in range(ns):
                _move_one(sva, sida, posm, ch_id[s * mb + a], ch_val[s * mb + a])
            ksum[goff_m + a] = g_val[a]
    # the other axis's profile, when this member is permuted on both axes
    up = perm[pbase + p]
    uq = perm[pbase + q]
    if axis == 0 and mem[mi, M_COFF] >= 0:
        coff = mem[mi, M_COFF]
        Cm = C[coff:coff + n * mb]
        for e in range(unit):
            a1 = (p * unit + e) // h
            a2 = (q * unit + e) // h
            if a1 == a2:
                continue
            s1 = S[soff_s + (up * unit + e) * n:soff_s + (up * unit + e + 1) * n]
            s2 = S[soff_s + (uq * unit + e) * n:soff_s + (uq * unit + e + 1) * n]
            for y in range(n):
                d = s2[y] - s1[y]
                Cm[y * mb + a1] += d
                Cm[y * mb + a2] -= d
    elif axis == 1 and mem[mi, M_ROFF] >= 0:
        roff = mem[mi, M_ROFF]
        Rm = R[roff:roff + m * nb]
        Sm = S[soff_s:soff_s + m * n]
        for e in range(unit):
            b1 = (p * unit + e) // w
            b2 = (q * unit + e) // w
            if b1 == b2:
                continue
            y1 = up * unit + e
            y2 = uq * unit + e
            for x in range(m):
                d = Sm[x * n + y2] - Sm[x * n + y1]
                Rm[x * nb + b1] += d
                Rm[x * nb + b2] -= d


@njit
def run_moves(mem, bandf, perm_off, perm_cumw, bind_off, bind_mem, bind_axis, bind_unit, bind_soff, bind_choff,
              bind_goff, bind_ns, perm, best_perm, S, T, R, C, sv, sid, pos, hole, ksum, slots, ch_id, ch_val,
              g_val, buf, buf2, gids, gvals, order, tmp_v, tmp_i, rand, n_moves, temp, alpha, probe, deltas,
              values, stats):
    """Run ``n_moves`` Metropolis moves (or, with ``probe``, only record their deltas).

    ``rand[i]`` holds four uniforms for move ``i``: which permutation, the two
    positions, the acceptance draw.  ``values = [current, best]`` is updated
    in place; ``best_perm`` gets a copy of ``perm`` whenever ``best`` improves.
    Returns the temperature after the last move.
    """
    npm = perm_cumw.shape[0]
    cur = values[0]
    best = values[1]
    for it in range(n_moves):
        r0 = rand[it, 0]
        pi = 0
        while pi < npm - 1 and r0 >= perm_cumw[pi]:
            pi += 1
        pbase = perm_off[pi]
        P = perm_off[pi + 1] - pbase
        if P < 2:
            continue
        p = int(rand[it, 1] * P)
        q = int(rand[it, 2] * (P - 1))
        if p >= P:
            p = P - 1
        if q >= P - 1:
            q = P - 2
        if q >= p:
            q += 1
        delta = 0.0
        for bi in range(bind_off[pi], bind_off[pi + 1]):
            so = bind_soff[bi]
            co = bind_choff[bi]
            go = bind_goff[bi]
            d, ns = _eval_binding(mem, bandf, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q, T, R, C,
                                  sv, sid, pos, ksum, stats, slots[so:], ch_id[co:], ch_val[co:],
                                  g_val[go:], buf, buf2, gids, gvals)
            bind_ns[bi] = ns
            delta += d
        stats[ST_MOVES] += 1
        if probe:
            deltas[it] = delta
            continue
        if delta >= 0.0:
            accept = True
        elif temp > 0.0:
            accept = rand[it, 3] < math.exp(delta / temp)
        else:
            accept = False
        if accept:
            for bi in range(bind_off[pi], bind_off[pi + 1]):
                so = bind_soff[bi]
                co = bind_choff[bi]
                go = bind_goff[bi]
                _apply_binding(mem, bandf, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q, bind_ns[bi],
                               S, T, R, C, sv, sid, pos, ksum, slots[so:], ch_id[co:], ch_val[co:],
                               g_val[go:], hole, order, tmp_v, tmp_i, gids, gvals, stats)
            tmp = perm[pbase + p]
            perm[pbase + p] = perm[pbase + q]
            perm[pbase + q] = tmp
            cur += delta
            stats[ST_ACCEPTED] += 1
            if cur > best + 1e-12 * abs(best):
                best = cur
                for t in range(perm.shape[0]):
                    best_perm[t] = perm[t]
                stats[ST_IMPROVED] += 1
        temp *= alpha
    values[0] = cur
    values[1] = best
    return temp
