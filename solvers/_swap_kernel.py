"""Compiled kernels of the ``swap`` solver (numba).

The state of one matrix, rows being permuted, is

* ``R`` (``mp x nb``): the row profile, ``R[r, b]`` the importance of
  original row ``r`` inside column block ``b``; rows ``r >= m`` are zero
  padding that completes the last tile row and never moves;
* ``grp`` (``mb x h``): the original row in each slot of each tile row;
* ``T`` (``mb x nb``): the tile scores, ``T[a] = sum of R[grp[a]]``;
* ``tau`` (``mb``): the threshold each tile row is scored against.

With a threshold the kept importance of tile row ``a`` is approximated by
``F_a = sum_b max(T[a, b] - tau[a], 0)`` (plus a constant): it equals the kept
importance exactly when ``tau`` is the score of the last tile kept and no tile
crosses it, and is never below it (the top-``k`` sum is the minimum over
``tau`` of ``sum max(T - tau, 0) + k tau``).  A swap of row ``i`` of tile row
``a`` with row ``j`` of tile row ``c`` adds ``d = R[j] - R[i]`` to ``T[a]``
and subtracts it from ``T[c]``; its gain in ``F`` is computed in ``O(nb)``.

Loading this file with ``_NOJIT = True`` in its namespace gives the same code
as plain Python (for the tests, which check the compiled code against it).
"""
from __future__ import annotations

import numpy as np

try:
    _NOJIT  # noqa: B018  (set by the loader of the plain-Python copy)
except NameError:
    _NOJIT = False

if _NOJIT:
    def njit(f):
        return f
else:
    import numba

    njit = numba.njit(cache=True, nogil=True, error_model="numpy")


@njit
def swap_gain(R, x, y, ri, rj):
    """Gain in ``F`` of moving ``d = R[rj] - R[ri]`` into the tile row with
    margins ``x`` (``T - tau``) and out of the one with margins ``y``."""
    g = 0.0
    for b in range(x.shape[0]):
        d = R[rj, b] - R[ri, b]
        xv = x[b]
        yv = y[b]
        g += max(xv + d, 0.0) - max(xv, 0.0) + max(yv - d, 0.0) - max(yv, 0.0)
    return g


@njit
def improve_pair_plain(R, grp, T, tau, a, c, m, max_swaps, eps):
    """:func:`improve_pair` written plainly (every block of every swap): the reference for the tests."""
    h = grp.shape[1]
    nb = T.shape[1]
    x = T[a] - tau[a]
    y = T[c] - tau[c]
    total = 0.0
    made = 0
    for _ in range(max_swaps):
        best = eps
        bi = -1
        bj = -1
        for i in range(h):
            ri = grp[a, i]
            if ri >= m:
                continue
            for j in range(h):
                rj = grp[c, j]
                if rj >= m:
                    continue
                g = swap_gain(R, x, y, ri, rj)
                if g > best:
                    best = g
                    bi = i
                    bj = j
        if bi < 0:
            break
        ri = grp[a, bi]
        rj = grp[c, bj]
        for b in range(nb):
            d = R[rj, b] - R[ri, b]
            T[a, b] += d
            T[c, b] -= d
            x[b] += d
            y[b] -= d
        grp[a, bi] = rj
        grp[c, bj] = ri
        total += best
        made += 1
    return made, total


@njit
def pair_gains(R, grp, T, tau, a, c, m, G):
    """``G[i, j]``: gain in ``F`` of swapping slot ``i`` of tile row ``a`` with slot ``j`` of ``c``
    (``-inf`` where either is a padding row).  Returns nothing; fills ``G``.

    Only blocks near the threshold need the nonlinear formula: with ``D_b`` the
    spread of ``R[., b]`` over the two tile rows' rows (so ``|d_b| <= D_b``), a
    block with both margins ``>= D_b`` or both ``<= -D_b`` gains nothing, one with
    ``x_b >= D_b >= -y_b`` gains exactly ``d_b`` and the mirror case ``-d_b``; those
    linear parts are summed once per row.  The rest (``active`` blocks) are copied
    into a small dense block and evaluated for every pair.
    """
    h = grp.shape[1]
    nb = T.shape[1]
    rows = np.empty(2 * h, dtype=np.int64)
    for t in range(h):
        rows[t] = grp[a, t]
        rows[h + t] = grp[c, t]
    act = np.empty(nb, dtype=np.int64)
    sign = np.zeros(nb)
    na = 0
    ta = tau[a]
    tc = tau[c]
    for b in range(nb):
        # |d_b| = |R[j, b] - R[i, b]|, i from a, j from c: at most D
        lo_a = hi_a = R[rows[0], b]
        lo_c = hi_c = R[rows[h], b]
        for t in range(1, h):
            v = R[rows[t], b]
            lo_a = min(lo_a, v)
            hi_a = max(hi_a, v)
            v = R[rows[h + t], b]
            lo_c = min(lo_c, v)
            hi_c = max(hi_c, v)
        D = max(hi_c - lo_a, hi_a - lo_c)
        xv = T[a, b] - ta
        yv = T[c, b] - tc
        if (xv >= D and yv >= D) or (xv <= -D and yv <= -D):
            continue
        if xv >= D and yv <= -D:
            sign[b] = 1.0
        elif xv <= -D and yv >= D:
            sign[b] = -1.0
        else:
            act[na] = b
            na += 1
    u = np.zeros(2 * h)
    L = np.empty((2 * h, na))
    for t in range(2 * h):
        r = rows[t]
        acc = 0.0
        for b in range(nb):
            if sign[b] != 0.0:
                acc += sign[b] * R[r, b]
        u[t] = acc
        for q in range(na):
            L[t, q] = R[r, act[q]]
    xa = np.empty(na)
    ya = np.empty(na)
    base = np.empty(na)
    for q in range(na):
        xa[q] = T[a, act[q]] - ta
        ya[q] = T[c, act[q]] - tc
        base[q] = max(xa[q], 0.0) + max(ya[q], 0.0)
    for i in range(h):
        for j in range(h):
            if rows[i] >= m or rows[h + j] >= m:
                G[i, j] = -np.inf
                continue
            g = u[h + j] - u[i]
            for q in range(na):
                d = L[h + j, q] - L[i, q]
                g += max(xa[q] + d, 0.0) + max(ya[q] - d, 0.0) - base[q]
            G[i, j] = g


@njit
def improve_pair(R, grp, T, tau, a, c, m, max_swaps, eps):
    """Best-improvement swaps between tile rows ``a`` and ``c`` (at most ``max_swaps``).

    Updates ``grp`` and ``T`` in place; returns ``(swaps made, gain in F)``.
    Gains come from :func:`pair_gains`, recomputed after every swap.
    """
    h = grp.shape[1]
    nb = T.shape[1]
    G = np.empty((h, h))
    total = 0.0
    made = 0
    for _ in range(max_swaps):
        pair_gains(R, grp, T, tau, a, c, m, G)
        best = eps
        bi = -1
        bj = -1
        for i in range(h):
            for j in range(h):
                if G[i, j] > best:
                    best = G[i, j]
                    bi = i
                    bj = j
        if bi < 0:
            break
        ri = grp[a, bi]
        rj = grp[c, bj]
        for b in range(nb):
            d = R[rj, b] - R[ri, b]
            T[a, b] += d
            T[c, b] -= d
        grp[a, bi] = rj
        grp[c, bj] = ri
        total += best
        made += 1
    return made, total


@njit
def improve_pairs(R, grp, T, tau, pairs, m, max_swaps, eps):
    """:func:`improve_pair` on each row of ``pairs`` in turn; returns (swaps, gain)."""
    made = 0
    total = 0.0
    for p in range(pairs.shape[0]):
        k, g = improve_pair(R, grp, T, tau, pairs[p, 0], pairs[p, 1], m, max_swaps, eps)
        made += k
        total += g
    return made, total


@njit
def group_scores(R, grp):
    """``T[a] = sum of R[grp[a]]``, summed in slot order (the same on every run)."""
    mb, h = grp.shape
    nb = R.shape[1]
    T = np.zeros((mb, nb))
    for a in range(mb):
        for t in range(h):
            r = grp[a, t]
            for b in range(nb):
                T[a, b] += R[r, b]
    return T
