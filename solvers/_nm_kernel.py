"""Kernels of the N:M column-permutation search (numba, on raw arrays).

The problem: ``S`` is ``(rows, cols)``, float64, ``>= 0``, ``cols % m == 0``.
A column permutation ``perm`` (``perm[i]`` = original column at position
``i``) splits the permuted columns into ``G = cols / m`` groups of ``m``
consecutive positions; in every row each group keeps its ``n`` largest
entries.  The value of ``perm`` is the sum of what is kept.  Only *which*
columns share a group matters, not the order of the groups nor the order
inside a group, so the search is over partitions of the columns into groups
of ``m``.

State of the search (all arrays owned by the caller):

* ``ST``: ``S.T`` as a C-contiguous ``(cols, rows)`` array (a column's entries
  are contiguous);
* ``P``: the permuted columns, ``P[i] = ST[perm[i]]``, so group ``g`` is the
  contiguous block ``P[g*m:(g+1)*m]``;
* ``gv``: ``(G, rows)``, what group ``g`` keeps in each row;
* ``vals``: ``[current value, best value]``, and ``best_perm``.

A swap of two positions in different groups changes exactly two groups of
every row, so its exact effect costs ``O(rows * m)`` (:func:`swap_delta`).
:func:`window_apply` re-partitions the ``k * m`` columns of ``k`` groups
(``k`` = 2 or 3) optimally by enumerating every partition (the value of each
``m``-subset of the window is tabulated once, summed over rows).
:func:`exact_dp` solves a whole small problem exactly by dynamic programming
over column subsets.

Loading this file with ``_NOJIT = True`` in its namespace gives the same code
as plain Python (slow; the tests hold the compiled kernels against it).
"""
from __future__ import annotations

import math

import numpy as np

if globals().get("_NOJIT", False):  # pragma: no cover - exercised through the plain-Python copy
    def njit(f):
        return f
    _njit_fast = njit
else:
    import numba

    njit = numba.njit(cache=True, nogil=True, error_model="numpy")
    # the 2:4 delta loop may reorder its sum (so it vectorises); values stay exact
    # to rounding, and the state is rebuilt from scratch between rounds
    _njit_fast = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz", "arcp", "contract"})

#: widest problem :func:`exact_dp` accepts (its table has ``2**cols`` entries)
EXACT_MAX_COLS = 24
#: widest window :func:`window_apply` accepts (its table has ``2**(k*m)`` entries)
WINDOW_MAX_BITS = 16

# stats (int64): moves tried, moves accepted, new bests
ST_MOVES, ST_ACCEPTED, ST_IMPROVED = range(3)
N_STATS = 3


@njit
def topn_buf(buf, m, n):
    """Sum of the ``n`` largest of ``buf[:m]`` (``0 < n < m <= 16``)."""
    if m == 4 and n == 2:
        a, b, c, d = buf[0], buf[1], buf[2], buf[3]
        hi1, lo1 = (a, b) if a >= b else (b, a)
        hi2, lo2 = (c, d) if c >= d else (d, c)
        if hi1 >= hi2:
            return hi1 + max(hi2, lo1)
        return hi2 + max(hi1, lo2)
    largest = 2 * n <= m
    k = n if largest else m - n
    tot = 0.0
    if not largest:
        for i in range(m):
            tot += buf[i]
    taken = 0
    acc = 0.0
    for _ in range(k):
        bi = -1
        bv = 0.0
        for i in range(m):
            if (taken >> i) & 1:
                continue
            v = buf[i]
            if bi < 0 or (largest and v > bv) or ((not largest) and v < bv):
                bi = i
                bv = v
        taken |= 1 << bi
        acc += bv
    return acc if largest else tot - acc


@njit
def value(ST, perm, n, m):
    """Value of column permutation ``perm`` of ``S`` (given as ``ST = S.T``)."""
    C, R = ST.shape
    buf = np.empty(m)
    tot = 0.0
    for g in range(C // m):
        for r in range(R):
            for j in range(m):
                buf[j] = ST[perm[g * m + j], r]
            tot += topn_buf(buf, m, n)
    return tot


@_njit_fast
def _refresh_group(P, gv, TN, TN1, g, m, n, rank):
    """Recompute ``gv``, ``TN``, ``TN1`` of group ``g`` for every row; returns the change of its value.

    Branch-free, so the loops over rows vectorise: ``rank[i, r]`` counts the
    entries of row ``r`` ranked above entry ``i`` (larger, or equal with a lower
    index), so the ranks of a row are ``0 .. m-1``; the kept entries are those
    of rank ``< n``, ``TN`` is the entry of rank ``n-1`` and ``TN1`` of rank ``n``.
    ``rank`` is an ``(m, rows)`` scratch array.
    """
    R = P.shape[1]
    base = g * m
    for i in range(m):
        rk = rank[i]
        Vi = P[base + i]
        for r in range(R):
            rk[r] = 0.0
        for j in range(m):
            if j == i:
                continue
            Vj = P[base + j]
            if j < i:
                for r in range(R):
                    rk[r] += 1.0 if Vj[r] >= Vi[r] else 0.0
            else:
                for r in range(R):
                    rk[r] += 1.0 if Vj[r] > Vi[r] else 0.0
    G = gv[g]
    T = TN[g]
    T1 = TN1[g]
    old = 0.0
    for r in range(R):
        old += G[r]
        G[r] = 0.0
    kept = n - 1.0
    for i in range(m):
        Vi = P[base + i]
        rk = rank[i]
        for r in range(R):
            x = Vi[r]
            k = rk[r]
            G[r] += x if k < n else 0.0
            T[r] = x if k == kept else T[r]
            T1[r] = x if k == n else T1[r]
    new = 0.0
    for r in range(R):
        new += G[r]
    return new - old


@njit
def init_state(ST, perm, n, m, P, gv, TN, TN1):
    """Fill ``P``, ``gv`` and the per-row thresholds ``TN`` (n-th largest of each group) and ``TN1``
    ((n+1)-th largest) for ``perm``; returns the exact value."""
    C, R = ST.shape
    for i in range(C):
        P[i, :] = ST[perm[i], :]
    rank = np.empty((m, R))
    gv[:] = 0.0
    tot = 0.0
    for g in range(C // m):
        tot += _refresh_group(P, gv, TN, TN1, g, m, n, rank)
    return tot


@_njit_fast
def swap_delta(P, gv, TN, TN1, m, p, q):
    """Exact change of value when positions ``p`` and ``q`` (different groups) swap, in O(rows).

    In one row, a group whose entry ``x`` leaves and ``y`` enters keeps
    ``old - x + max(y, t1)`` when ``x`` was kept (``x >= t``, ``t`` its n-th
    largest, ``t1`` its (n+1)-th: the best pruned entry may move up) and
    ``old - t + max(y, t)`` when ``x`` was pruned (``y`` replaces the smallest
    kept one if larger); ties give the same value both ways.  The loop has no
    branches (selects only), so it vectorises.
    """
    R = P.shape[1]
    a = p // m
    b = q // m
    X = P[p]
    Y = P[q]
    ga = gv[a]
    gb = gv[b]
    ta = TN[a]
    tb = TN[b]
    ta1 = TN1[a]
    tb1 = TN1[b]
    d = 0.0
    for r in range(R):
        x = X[r]
        y = Y[r]
        ka = x >= ta[r]
        kb = y >= tb[r]
        d += max(y, ta1[r] if ka else ta[r]) - (x if ka else ta[r])
        d += max(x, tb1[r] if kb else tb[r]) - (y if kb else tb[r])
    return d


@njit
def apply_swap(P, gv, TN, TN1, perm, n, m, p, q, rank):
    """Make the swap of positions ``p`` and ``q``; the two groups' statistics are recomputed.

    Returns the change of value (from the recomputation, not the delta)."""
    R = P.shape[1]
    for r in range(R):
        t = P[p, r]
        P[p, r] = P[q, r]
        P[q, r] = t
    t = perm[p]
    perm[p] = perm[q]
    perm[q] = t
    d = _refresh_group(P, gv, TN, TN1, p // m, m, n, rank)
    return d + _refresh_group(P, gv, TN, TN1, q // m, m, n, rank)


@njit
def _draw(rand0, rand1, C, m):
    p = min(int(rand0 * C), C - 1)
    a = p // m
    q = min(int(rand1 * (C - m)), C - m - 1)
    if q >= a * m:
        q += m
    return p, q


@njit
def probe(P, gv, TN, TN1, m, rand, out):
    """Deltas of random swaps (``rand[i, 0:2]`` uniforms), none applied."""
    C = P.shape[0]
    for i in range(rand.shape[0]):
        p, q = _draw(rand[i, 0], rand[i, 1], C, m)
        out[i] = swap_delta(P, gv, TN, TN1, m, p, q)


@njit
def anneal_moves(P, gv, TN, TN1, perm, best_perm, n, m, rand, temp, alpha, vals, stats):
    """Metropolis swaps, one per row of ``rand`` (``(k, 3)`` uniforms).

    The temperature is multiplied by ``alpha`` after each move; returns it.
    ``vals = [current, best]`` and ``best_perm`` are kept up to date (the best
    permutation is copied only when the search leaves it).
    """
    C, R = P.shape
    rank = np.empty((m, R))
    cur = vals[0]
    best = vals[1]
    tol = 1e-12 * max(1.0, abs(best))
    at_best = False          # current state is the best and best_perm is stale
    for i in range(rand.shape[0]):
        p, q = _draw(rand[i, 0], rand[i, 1], C, m)
        d = swap_delta(P, gv, TN, TN1, m, p, q)
        stats[ST_MOVES] += 1
        if d >= 0.0 or (temp > 0.0 and rand[i, 2] < math.exp(d / temp)):
            if d < 0.0 and at_best:
                best_perm[:] = perm
                at_best = False
            cur += apply_swap(P, gv, TN, TN1, perm, n, m, p, q, rank)
            stats[ST_ACCEPTED] += 1
            if cur > best + tol:
                best = cur
                at_best = True
                stats[ST_IMPROVED] += 1
        temp *= alpha
    if at_best:
        best_perm[:] = perm
    vals[0] = cur
    vals[1] = best
    return temp


@njit
def _subset_values(P, n, m, pos, W, tab, idx, buf):
    """``tab[s]`` = value kept (summed over rows) by the columns at ``pos[j]``, ``j`` in ``s``,
    for every ``s`` of ``m`` bits out of ``W`` (Gosper's enumeration)."""
    R = P.shape[1]
    s = (1 << m) - 1
    lim = 1 << W
    while s < lim:
        c = 0
        for j in range(W):
            if (s >> j) & 1:
                idx[c] = pos[j]
                c += 1
        tot = 0.0
        for r in range(R):
            for j in range(m):
                buf[j] = P[idx[j], r]
            tot += topn_buf(buf, m, n)
        tab[s] = tot
        lo = s & -s
        rr = s + lo
        s = (((rr ^ s) >> 2) // lo) | rr


@njit
def _combos_with_low(rest, m, W, bits):
    """Number of subsets of ``rest`` (a bitmask over ``W`` bits) with ``m`` bits that contain
    its lowest bit; they are written to ``bits``."""
    idx = np.empty(W, dtype=np.int64)
    c = 0
    low = -1
    for j in range(W):
        if (rest >> j) & 1:
            if low < 0:
                low = j
            else:
                idx[c] = j
                c += 1
    # choose m-1 of the c others
    k = m - 1
    cnt = 0
    if k == 0:
        bits[0] = 1 << low
        return 1
    t = (1 << k) - 1
    while t < (1 << c):
        s = 1 << low
        for j in range(c):
            if (t >> j) & 1:
                s |= 1 << idx[j]
        bits[cnt] = s
        cnt += 1
        lo = t & -t
        rr = t + lo
        t = (((rr ^ t) >> 2) // lo) | rr
    return cnt


@njit
def window_apply(ST, P, gv, TN, TN1, perm, n, m, groups, tab, tol):
    """Re-partition the columns of ``groups`` (2 or 3 group indices) optimally.

    Every partition of the window's ``k*m`` columns into ``k`` groups is
    valued from ``tab`` (``2**(k*m)`` entries, filled here).  The best one is
    applied when it gains more than ``tol``; returns the gain (0 if none).
    """
    k = groups.shape[0]
    W = k * m
    R = P.shape[1]
    pos = np.empty(W, dtype=np.int64)
    for t in range(k):
        for j in range(m):
            pos[t * m + j] = groups[t] * m + j
    idx = np.empty(m, dtype=np.int64)
    buf = np.empty(m)
    rank = np.empty((m, R))
    _subset_values(P, n, m, pos, W, tab, idx, buf)
    full = (1 << W) - 1
    cur = 0.0
    for t in range(k):
        cur += tab[((1 << m) - 1) << (t * m)]
    best = cur
    b1 = 0
    b2 = 0
    ncomb = 1
    for i in range(1, m):   # C(W-1, m-1) subsets hold bit 0
        ncomb = ncomb * (W - i) // i
    first = np.empty(ncomb, dtype=np.int64)
    nf = _combos_with_low(full, m, W, first)
    if k == 2:
        for i in range(nf):
            s = first[i]
            v = tab[s] + tab[full ^ s]
            if v > best:
                best = v
                b1 = s
    else:
        n2 = 1
        for i in range(1, m):
            n2 = n2 * (W - m - i) // i
        second = np.empty(n2, dtype=np.int64)
        for i in range(nf):
            s = first[i]
            rest = full ^ s
            c2 = _combos_with_low(rest, m, W, second)
            ts = tab[s]
            for j in range(c2):
                s2 = second[j]
                v = ts + tab[s2] + tab[rest ^ s2]
                if v > best:
                    best = v
                    b1 = s
                    b2 = s2
    if best <= cur + tol:
        return 0.0
    # new assignment of original columns
    sets = np.empty(k, dtype=np.int64)
    sets[0] = b1
    if k == 2:
        sets[1] = full ^ b1
    else:
        sets[1] = b2
        sets[2] = full ^ b1 ^ b2
    newcols = np.empty(W, dtype=np.int64)
    c = 0
    for t in range(k):
        for j in range(W):
            if (sets[t] >> j) & 1:
                newcols[c] = perm[pos[j]]
                c += 1
    d = 0.0
    for t in range(k):
        g = groups[t]
        for j in range(m):
            perm[g * m + j] = newcols[t * m + j]
            P[g * m + j, :] = ST[newcols[t * m + j], :]
        d += _refresh_group(P, gv, TN, TN1, g, m, n, rank)
    return d


@njit
def window_sweep(ST, P, gv, TN, TN1, perm, n, m, windows, tab, tol, vals):
    """:func:`window_apply` on each row of ``windows`` in turn (``(w, k)`` group indices).

    Adds the gains to ``vals[0]`` (and ``vals[1]`` when the best is passed);
    returns the total gain.
    """
    tot = 0.0
    for i in range(windows.shape[0]):
        tot += window_apply(ST, P, gv, TN, TN1, perm, n, m, windows[i], tab, tol)
    vals[0] += tot
    return tot


@njit
def _comb_rank(s, C, m, binom):
    """Rank of the ``m``-subset ``s`` (bitmask over ``C`` bits) in the combinatorial number system."""
    r = 0
    k = 0
    for j in range(C):
        if (s >> j) & 1:
            k += 1
            r += binom[j, k]
    return r


@njit
def exact_dp(ST, n, m):
    """Optimal partition of all columns into groups of ``m``, by DP over column subsets.

    ``f[U]`` is the best value of the columns outside ``U`` (``U`` a union of
    chosen groups); the next group always holds the lowest column outside
    ``U`` (a canonical order, so each partition is counted once).  A subset is
    reachable only if at least ``|U|/m`` columns below its lowest free column
    exist, which prunes the table.  Returns ``(value, perm, transitions)``.
    Needs ``cols <= EXACT_MAX_COLS``.
    """
    C, R = ST.shape
    binom = np.zeros((C + 1, m + 1), dtype=np.int64)
    for a in range(C + 1):
        binom[a, 0] = 1
        for b in range(1, min(a, m) + 1):
            binom[a, b] = binom[a - 1, b - 1] + (binom[a - 1, b] if b <= a - 1 else 0)
    ng = binom[C, m]
    gval = np.empty(ng)
    buf = np.empty(m)
    idx = np.empty(m, dtype=np.int64)
    s = (1 << m) - 1
    lim = 1 << C
    while s < lim:
        c = 0
        for j in range(C):
            if (s >> j) & 1:
                idx[c] = j
                c += 1
        tot = 0.0
        for r in range(R):
            for j in range(m):
                buf[j] = ST[idx[j], r]
            tot += topn_buf(buf, m, n)
        gval[_comb_rank(s, C, m, binom)] = tot
        lo = s & -s
        rr = s + lo
        s = (((rr ^ s) >> 2) // lo) | rr
    full = lim - 1
    f = np.full(lim, -1.0)
    f[full] = 0.0
    ncomb = binom[C - 1, m - 1]
    cand = np.empty(ncomb, dtype=np.int64)
    trans = 0
    for U in range(full - 1, -1, -1):
        pc = 0
        x = U
        while x:
            x &= x - 1
            pc += 1
        if pc % m:
            continue
        low = 0
        while (U >> low) & 1:
            low += 1
        if low < pc // m:
            continue          # unreachable: too few groups could have led here
        cnt = _combos_with_low(full ^ U, m, C, cand)
        best = -1.0
        for i in range(cnt):
            g = cand[i]
            fv = f[U | g]
            if fv < 0.0:
                continue
            v = gval[_comb_rank(g, C, m, binom)] + fv
            if v > best:
                best = v
        trans += cnt
        f[U] = best
    # walk the optimal choices from the empty set
    perm = np.empty(C, dtype=np.int64)
    U = 0
    c = 0
    while U != full:
        cnt = _combos_with_low(full ^ U, m, C, cand)
        target = f[U]
        chosen = -1
        bestv = -1.0
        for i in range(cnt):
            g = cand[i]
            fv = f[U | g]
            if fv < 0.0:
                continue
            v = gval[_comb_rank(g, C, m, binom)] + fv
            if v > bestv:
                bestv = v
                chosen = g
        for j in range(C):
            if (chosen >> j) & 1:
                perm[c] = j
                c += 1
        U |= chosen
    return f[0], perm, trans
