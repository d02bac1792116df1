"""Exact top-``k`` sums after a few scores change: the selection primitives of the ``anneal`` kernel.

A group (the tiles one mask rule keeps the top ``k`` of) whose tiles partly
changed gets its new kept sum from its sorted old scores: walk the old
boundary skipping changed tiles (:func:`_walk`), then one pass over the
changed tiles and the few cases of :func:`_topk_cases` (:func:`_topk_merge`
for a fully sorted group, :func:`_topk_band` for the sorted band of a global
mask, which may answer NaN when the band does not decide it: then
:func:`_topk_full`).  A group whose tiles all changed is selected afresh
against its old threshold (:func:`_topk_fresh`, with :func:`_rank_split`).
All are exact: ties do not change a top-``k`` *sum*.

These functions take plain arrays and know nothing of the member table; the
driver is :mod:`permsolve.solvers._anneal_kernel`.  Loaded with ``_NOJIT =
True`` in its namespace (``kernel="python"``) this file runs as plain Python.
"""
from __future__ import annotations

import numpy as np

from ._kernel_jit import kernel_jit

njit = kernel_jit(globals())

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

