"""Incremental move evaluation for the ``anneal`` solver (numba kernel).

The state of a problem is flattened into a few 1-D arrays so that one compiled
function handles any number of members, permutations and units.  Per member
the kernel keeps

* ``T``: the tile-score matrix, ``mb x nb``, in permuted coordinates;
* ``R``: the row profile (``R[x, b]`` = original row ``x`` inside column block
  ``b`` under the current column permutation) when the rows are permuted;
* ``C``: the column profile (``C[y, a]`` = original column ``y`` inside row
  block ``a`` under the current row permutation) when the columns are permuted;
* the tile scores of every mask *group* sorted ascending (``sv``, ``sid``), the
  rank of each tile in its group (``pos``) and each group's kept sum (``ksum``).
  The global mask has one group (all tiles, keep ``k``); the row-balanced mask
  has one group per tile row (keep ``kb``).

A swap of positions ``p`` and ``q`` of a permutation moves ``unit`` elements
each; an element whose tile row (column) changes adds one profile row
(``O(nb)``) to one tile row and subtracts it from the other.  The new kept sum
of a group whose tiles partly changed is found from the sorted array by
walking the old boundary (:func:`_topk_merge`); a group whose tiles all changed
(a tile row under a row move, row-balanced mask) by counting against its old
threshold (:func:`_topk_fresh`).  Both are exact (no approximation: ties do
not change a top-k *sum*).  The sorted arrays and profiles are updated only on
acceptance.

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

    njit = numba.njit(cache=True, nogil=True)

# columns of the member table (int64, one row per member)
M_M, M_N, M_H, M_W, M_MB, M_NB, M_SOFF, M_TOFF, M_ROFF, M_COFF, M_GLOBAL, M_K, M_GOFF, M_NGROUPS, M_GS = range(15)
M_FIELDS = 15

# stats array (int64)
ST_STAMP, ST_ACCEPTED, ST_IMPROVED, ST_MOVES = range(4)

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
def _topk_merge(sv, sid, pos, mark, stamp, toff, gbase, gs, k, ksum_old, T, ids, vals, coff, c, buf, buf2):
    """Exact new top-``k`` sum of a group after ``c`` of its tiles change.

    ``sv[toff+gbase : toff+gbase+gs]`` holds the group's old scores sorted
    ascending, ``sid`` their member-local tile ids and ``pos[toff+id]`` the rank
    of a tile in its group; ``ids[coff:coff+c]`` are the changed tiles and
    ``vals[coff:coff+c]`` their new scores; ``T`` holds the old scores.
    """
    if k <= 0:
        return 0.0
    if k >= gs:
        s = ksum_old
        for t in range(c):
            s += vals[coff + t] - T[toff + ids[coff + t]]
        return s
    lo = gs - k
    base = toff + gbase
    c_kept = 0
    sum_a = ksum_old
    for t in range(c):
        tid = toff + ids[coff + t]
        mark[tid] = stamp
        if pos[tid] >= lo:
            c_kept += 1
            sum_a -= T[tid]
    # smallest unchanged kept (u_min) and largest unchanged pruned (u_max)
    j = lo
    while j < gs and mark[toff + sid[base + j]] == stamp:
        j += 1
    j_a = j
    u_min = sv[base + j] if j < gs else INF
    j = lo - 1
    while j >= 0 and mark[toff + sid[base + j]] == stamp:
        j -= 1
    j_b = j
    u_max = sv[base + j] if j >= 0 else -INF
    n_hi = 0
    s_hi = 0.0
    n_ab = 0
    s_ab = 0.0
    for t in range(c):
        v = vals[coff + t]
        if v > u_max:
            n_ab += 1
            s_ab += v
            if v > u_min:
                n_hi += 1
                s_hi += v
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
            v = vals[coff + t]
            if v > u_max and v <= u_min:
                buf[nm] = v
                nm += 1
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
            if mark[toff + sid[base + j]] != stamp:
                buf2[nw] = sv[base + j]  # descending
                nw += 1
            j -= 1
        floor = buf2[nw - 1] if nw == r else -INF
        nl = 0
        for t in range(c):
            v = vals[coff + t]
            if v <= u_max and v > floor:
                buf[nl] = v
                nl += 1
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
        if mark[toff + sid[base + j]] != stamp:
            buf2[na] = sv[base + j]  # ascending
            na += 1
        j += 1
    ceil = buf2[na - 1] if na == r else INF
    nl = 0
    for t in range(c):
        v = vals[coff + t]
        if v > u_min and v < ceil:
            buf[nl] = v
            nl += 1
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
def _topk_fresh(vals, off, n, k, guess, buf):
    """Exact top-``k`` sum of ``vals[off:off+n]``, counting against a guessed threshold."""
    if k <= 0:
        return 0.0
    if k >= n:
        s = 0.0
        for t in range(n):
            s += vals[off + t]
        return s
    n_gt = 0
    s_gt = 0.0
    for t in range(n):
        v = vals[off + t]
        if v > guess:
            n_gt += 1
            s_gt += v
    if n_gt == k:
        return s_gt
    if n_gt > k:
        r = n_gt - k  # drop the r smallest of those above the guess
        if r > 16:
            nb = 0
            for t in range(n):
                v = vals[off + t]
                if v > guess:
                    buf[nb] = v
                    nb += 1
            _sort_asc(buf, nb)
            s = 0.0
            for t in range(r):
                s += buf[t]
            return s_gt - s
        cnt = 0
        for t in range(n):
            v = vals[off + t]
            if v > guess and (cnt < r or v < buf[r - 1]):
                j = cnt - 1 if cnt < r else r - 2
                while j >= 0 and buf[j] > v:
                    buf[j + 1] = buf[j]
                    j -= 1
                buf[j + 1] = v
                if cnt < r:
                    cnt += 1
        s = 0.0
        for t in range(r):
            s += buf[t]
        return s_gt - s
    r = k - n_gt  # add the r largest of those at or below the guess
    if r > 16:
        nb = 0
        for t in range(n):
            v = vals[off + t]
            if v <= guess:
                buf[nb] = v
                nb += 1
        _sort_asc(buf, nb)
        s = 0.0
        for t in range(nb - r, nb):
            s += buf[t]
        return s_gt + s
    cnt = 0
    for t in range(n):
        v = vals[off + t]
        if v <= guess and (cnt < r or v > buf[r - 1]):
            j = cnt - 1 if cnt < r else r - 2
            while j >= 0 and buf[j] < v:  # descending
                buf[j + 1] = buf[j]
                j -= 1
            buf[j + 1] = v
            if cnt < r:
                cnt += 1
    s = 0.0
    for t in range(r):
        s += buf[t]
    return s_gt + s


@njit
def _merge_update(sv, sid, pos, mark, stamp, toff, gbase, gs, ids, vals, coff, c, order, tmp_v, tmp_i):
    """Replace ``c`` scores of a sorted group (accepted move): merge in ``O(gs + c log c)``."""
    base = toff + gbase
    for t in range(c):
        mark[toff + ids[coff + t]] = stamp
        order[t] = t
    # sort the changed entries by new value (insertion sort: c is small per group,
    # or use argsort when large)
    if c > 24:
        o = np.argsort(vals[coff:coff + c])
        for t in range(c):
            order[t] = o[t]
    else:
        for i in range(1, c):
            oi = order[i]
            v = vals[coff + oi]
            j = i - 1
            while j >= 0 and vals[coff + order[j]] > v:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = oi
    i = 0
    t = 0
    for w in range(gs):
        while i < gs and mark[toff + sid[base + i]] == stamp:
            i += 1
        if t < c and (i >= gs or vals[coff + order[t]] <= sv[base + i]):
            tmp_v[w] = vals[coff + order[t]]
            tmp_i[w] = ids[coff + order[t]]
            t += 1
        else:
            tmp_v[w] = sv[base + i]
            tmp_i[w] = sid[base + i]
            i += 1
    for w in range(gs):
        sv[base + w] = tmp_v[w]
        sid[base + w] = tmp_i[w]
        pos[toff + tmp_i[w]] = w


@njit
def _resort_group(T, sv, sid, pos, toff, gbase, gs):
    """Sort a whole group from ``T`` (all its tiles changed)."""
    base = toff + gbase
    o = np.argsort(T[base:base + gs])
    for w in range(gs):
        tid = gbase + o[w]
        sv[base + w] = T[toff + tid]
        sid[base + w] = tid
        pos[toff + tid] = w


@njit
def _slot_of(slots, soff, ns, a):
    for s in range(ns):
        if slots[soff + s] == a:
            return s
    return -1


@njit
def _eval_binding(mem, mi, axis, unit, perm, pbase, p, q, S, T, R, C, sv, sid, pos, mark, ksum,
                  stats, slots, soff, ch_id, ch_val, choff, g_val, goff, buf, buf2, gids, gvals):
    """Delta of the kept sum of member ``mi`` when positions ``p``, ``q`` swap.

    Fills the member's changed tiles (``ch_id``/``ch_val`` from ``choff``) and
    the new kept sum of each changed group (``g_val`` from ``goff``); returns
    ``(delta, number of changed slots)``.
    """
    h = mem[mi, M_H]
    w = mem[mi, M_W]
    mb = mem[mi, M_MB]
    nb = mem[mi, M_NB]
    toff = mem[mi, M_TOFF]
    up = perm[pbase + p]
    uq = perm[pbase + q]
    blk = h if axis == 0 else w
    span = nb if axis == 0 else mb   # tiles per changed slot
    ns = 0
    for e in range(unit):
        i1 = p * unit + e
        i2 = q * unit + e
        a1 = i1 // blk
        a2 = i2 // blk
        if a1 == a2:
            continue
        x1 = up * unit + e
        x2 = uq * unit + e
        s1 = _slot_of(slots, soff, ns, a1)
        if s1 < 0:
            s1 = ns
            slots[soff + ns] = a1
            ns += 1
            for b in range(span):
                if axis == 0:
                    ch_val[choff + s1 * span + b] = T[toff + a1 * nb + b]
                else:
                    ch_val[choff + s1 * span + b] = T[toff + b * nb + a1]
        s2 = _slot_of(slots, soff, ns, a2)
        if s2 < 0:
            s2 = ns
            slots[soff + ns] = a2
            ns += 1
            for b in range(span):
                if axis == 0:
                    ch_val[choff + s2 * span + b] = T[toff + a2 * nb + b]
                else:
                    ch_val[choff + s2 * span + b] = T[toff + b * nb + a2]
        if axis == 0:
            r1 = mem[mi, M_ROFF] + x1 * nb
            r2 = mem[mi, M_ROFF] + x2 * nb
            c1 = choff + s1 * span
            c2 = choff + s2 * span
            for b in range(nb):
                d = R[r2 + b] - R[r1 + b]
                ch_val[c1 + b] += d
                ch_val[c2 + b] -= d
        else:
            r1 = mem[mi, M_COFF] + x1 * mb
            r2 = mem[mi, M_COFF] + x2 * mb
            c1 = choff + s1 * span
            c2 = choff + s2 * span
            for a in range(mb):
                d = C[r2 + a] - C[r1 + a]
                ch_val[c1 + a] += d
                ch_val[c2 + a] -= d
    if ns == 0:
        return 0.0, 0
    for s in range(ns):
        a = slots[soff + s]
        for b in range(span):
            if axis == 0:
                ch_id[choff + s * span + b] = a * nb + b
            else:
                ch_id[choff + s * span + b] = b * nb + a
    goff_m = mem[mi, M_GOFF]
    k = mem[mi, M_K]
    delta = 0.0
    if mem[mi, M_GLOBAL] == 1:
        stats[ST_STAMP] += 1
        new = _topk_merge(sv, sid, pos, mark, stats[ST_STAMP], toff, 0, mb * nb, k, ksum[goff_m], T,
                          ch_id, ch_val, choff, ns * span, buf, buf2)
        g_val[goff] = new
        return new - ksum[goff_m], ns
    if axis == 0:
        # row-balanced, row move: the changed tile rows are whole groups
        for s in range(ns):
            a = slots[soff + s]
            guess = sv[toff + a * nb + nb - k] if k > 0 else 0.0
            new = _topk_fresh(ch_val, choff + s * nb, nb, k, guess, buf)
            g_val[goff + s] = new
            delta += new - ksum[goff_m + a]
        return delta, ns
    # row-balanced, column move: every tile row has ns changed tiles
    for a in range(mb):
        for s in range(ns):
            gids[s] = ch_id[choff + s * mb + a]
            gvals[s] = ch_val[choff + s * mb + a]
        stats[ST_STAMP] += 1
        new = _topk_merge(sv, sid, pos, mark, stats[ST_STAMP], toff, a * nb, nb, k, ksum[goff_m + a], T,
                          gids, gvals, 0, ns, buf, buf2)
        g_val[goff + a] = new
        delta += new - ksum[goff_m + a]
    return delta, ns


@njit
def _apply_binding(mem, mi, axis, unit, perm, pbase, p, q, ns, S, T, R, C, sv, sid, pos, mark, ksum,
                   stats, slots, soff, ch_id, ch_val, choff, g_val, goff, order, tmp_v, tmp_i, gids, gvals):
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
    soff_s = mem[mi, M_SOFF]
    goff_m = mem[mi, M_GOFF]
    span = nb if axis == 0 else mb
    c = ns * span
    # sorted groups first (the global merge needs nothing from T)
    if mem[mi, M_GLOBAL] == 1:
        stats[ST_STAMP] += 1
        _merge_update(sv, sid, pos, mark, stats[ST_STAMP], toff, 0, mb * nb, ch_id, ch_val, choff, c,
                      order, tmp_v, tmp_i)
        ksum[goff_m] = g_val[goff]
    for t in range(c):
        T[toff + ch_id[choff + t]] = ch_val[choff + t]
    if mem[mi, M_GLOBAL] == 0:
        if axis == 0:
            for s in range(ns):
                a = slots[soff + s]
                _resort_group(T, sv, sid, pos, toff, a * nb, nb)
                ksum[goff_m + a] = g_val[goff + s]
        else:
            for a in range(mb):
                for s in range(ns):
                    gids[s] = ch_id[choff + s * mb + a]
                    gvals[s] = ch_val[choff + s * mb + a]
                stats[ST_STAMP] += 1
                _merge_update(sv, sid, pos, mark, stats[ST_STAMP], toff, a * nb, nb, gids, gvals, 0, ns,
                              order, tmp_v, tmp_i)
                ksum[goff_m + a] = g_val[goff + a]
    # the other axis's profile, when this member is permuted on both axes
    up = perm[pbase + p]
    uq = perm[pbase + q]
    if axis == 0 and mem[mi, M_COFF] >= 0:
        coff = mem[mi, M_COFF]
        for e in range(unit):
            a1 = (p * unit + e) // h
            a2 = (q * unit + e) // h
            if a1 == a2:
                continue
            x1 = soff_s + (up * unit + e) * n
            x2 = soff_s + (uq * unit + e) * n
            for y in range(n):
                d = S[x2 + y] - S[x1 + y]
                C[coff + y * mb + a1] += d
                C[coff + y * mb + a2] -= d
    elif axis == 1 and mem[mi, M_ROFF] >= 0:
        roff = mem[mi, M_ROFF]
        for e in range(unit):
            b1 = (p * unit + e) // w
            b2 = (q * unit + e) // w
            if b1 == b2:
                continue
            y1 = up * unit + e
            y2 = uq * unit + e
            for x in range(m):
                d = S[soff_s + x * n + y2] - S[soff_s + x * n + y1]
                R[roff + x * nb + b1] += d
                R[roff + x * nb + b2] -= d


@njit
def run_moves(mem, perm_off, perm_cumw, bind_off, bind_mem, bind_axis, bind_unit, bind_soff, bind_choff,
              bind_goff, bind_ns, perm, best_perm, S, T, R, C, sv, sid, pos, mark, ksum, slots, ch_id, ch_val,
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
            d, ns = _eval_binding(mem, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q, S, T, R, C,
                                  sv, sid, pos, mark, ksum, stats, slots, bind_soff[bi], ch_id, ch_val,
                                  bind_choff[bi], g_val, bind_goff[bi], buf, buf2, gids, gvals)
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
                _apply_binding(mem, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q, bind_ns[bi],
                               S, T, R, C, sv, sid, pos, mark, ksum, stats, slots, bind_soff[bi], ch_id, ch_val,
                               bind_choff[bi], g_val, bind_goff[bi], order, tmp_v, tmp_i, gids, gvals)
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
