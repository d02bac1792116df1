"""Evaluate and apply one swap on one binding: the member-level steps of the ``anneal`` kernel.

A binding is one (member, axis) a permutation drives.  A swap of positions
``p`` and ``q`` moves ``unit`` elements each; an element whose tile row
(column) changes adds one profile row (``O(nb)``) to one tile row and
subtracts it from the other (:func:`_eval_binding`).  The changed groups' new
kept sums come from :mod:`permsolve.solvers._anneal_topk`; the sorted scores,
the band (:mod:`permsolve.solvers._anneal_band`) and the profiles are updated
only on acceptance (:func:`_apply_binding`).

The member table ``mem`` (int64, one row per member, columns ``M_*``) and the
stats counters (``ST_*``) are laid out here.  Loaded with ``_NOJIT = True``
in its namespace (``kernel="python"``) this file runs as plain Python.
"""
from __future__ import annotations

import numpy as np

from ._kernel_jit import kernel_jit, kernel_sibling

njit = kernel_jit(globals())
_topk = kernel_sibling(globals(), "_anneal_topk")
_band = kernel_sibling(globals(), "_anneal_band")
_topk_band, _topk_fresh, _topk_full, _topk_merge = (_topk._topk_band, _topk._topk_fresh, _topk._topk_full,
                                                     _topk._topk_merge)
_band_apply, B_SIZE, B_ABOVE = _band._band_apply, _band.B_SIZE, _band.B_ABOVE

# columns of the member table (int64, one row per member): shape, tile, grid, offsets of its
# importance (S), tiles (T, sv, sid, pos), row and column profiles (R, C; -1: that axis is not
# permuted) and groups (ksum), whether the mask is global, and how many tiles a group keeps
(M_M, M_N, M_H, M_W, M_MB, M_NB, M_SOFF, M_TOFF, M_ROFF, M_COFF, M_GLOBAL, M_K, M_GOFF) = range(13)
M_FIELDS = 13

# stats counters (int64)
ST_UNUSED, ST_ACCEPTED, ST_IMPROVED, ST_MOVES, ST_FALLBACK, ST_REBUILD = range(6)
N_STATS = 6

INF = np.inf


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
def _eval_binding(mem, bandf, bandn, mi, axis, unit, perm, pbase, p, q, T, R, C, sv, sid, pos, ksum,
                  stats, slots, ch_id, ch_val, g_val, buf, buf2, gids, gvals):
    """Delta of the kept sum of member ``mi`` when positions ``p``, ``q`` swap.

    The arrays are the fields of the kernel's named tuples
    (:mod:`permsolve.solvers._anneal_kernel`), passed one by one: a call
    passing the tuples whole ran 10 % slower (``benchmarks/anneal_speed.py
    --compare``).  ``slots``, ``ch_id``, ``ch_val`` and ``g_val`` are this binding's scratch
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
        bn = bandn[mi, B_SIZE]
        new = _topk_band(svm[:bn], sidm[:bn], Tm, k, ksum[goff_m], ch_id[:c], ch_val[:c], bandf[mi, 0],
                         bandf[mi, 1], bandn[mi, B_ABOVE], slots, ns, axis, nb, buf, buf2)
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
def _apply_binding(mem, bandf, bandn, mi, axis, unit, perm, pbase, p, q, ns, S, T, R, C, sv, sid, pos, ksum,
                   slots, ch_id, ch_val, g_val, hole, order, tmp_v, tmp_i, stats):
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
        if _band_apply(Tm, svm, sidm, mem[mi, M_K], bandf[mi], bandn[mi], ch_id[:c], ch_val[:c], hole, order,
                       tmp_v, tmp_i):
            stats[ST_REBUILD] += 1
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

