"""Exact pricing for the Lagrangian bound of :mod:`permsolve.lagrange`, by enumerating block subsets.

With row multipliers ``lam``, one tile row's pricing problem is

    g(j) = max over |B| = j, |H| = h of  sum_{r in H} (sum_{b in B} R[r, b] - lam[r]).

For a fixed block set ``B`` the best ``H`` is the ``h`` rows with the largest
``s_B[r] - lam[r]`` (``s_B`` the row sums over ``B``), so ``g`` is exact once
every ``B`` is visited.  The subsets are visited in Gray-code order (one block
enters or leaves per step, ``O(m)`` to update ``s_B``), and the ``h`` largest
values come from a quickselect: ``O(2^nb m)`` in all, so this is for a few
tens of blocks at most (:data:`MAX_WORK` in :mod:`permsolve.lagrange` decides).

A numba kernel (cached on disk); the module imports numba only when the
kernel is first needed.

Examples
--------
>>> import numpy as np
>>> R = np.array([[3.0, 0.0], [0.0, 3.0], [1.0, 1.0], [2.0, 2.0]])
>>> g, codes = price_subsets(R, np.zeros(4), 2)
>>> [float(x) for x in g]           # j = 0, 1, 2: best 2 rows over the best j blocks
[0.0, 5.0, 7.0]
>>> int(codes[2])                   # both blocks: bits 0 and 1
3
"""
from __future__ import annotations

import numpy as np

__all__ = ["price_subsets", "subset_rows"]

_KERNEL = None


def _build():
    import numba

    @numba.njit(cache=True, nogil=True)
    def top_sum(v, h, buf):
        m = v.shape[0]
        for i in range(m):
            buf[i] = v[i]
        lo, hi, kth = 0, m - 1, h - 1       # afterwards buf[:h] holds the h largest
        while lo < hi:
            piv = buf[(lo + hi) // 2]
            i, j = lo, hi
            while i <= j:
                while buf[i] > piv:
                    i += 1
                while buf[j] < piv:
                    j -= 1
                if i <= j:
                    t = buf[i]
                    buf[i] = buf[j]
                    buf[j] = t
                    i += 1
                    j -= 1
            if kth <= j:
                hi = j
            elif kth >= i:
                lo = i
            else:
                break
        s = 0.0
        for i in range(h):
            s += buf[i]
        return s

    @numba.njit(cache=True, nogil=True)
    def price(R, lam, h):
        m, nb = R.shape
        g = np.full(nb + 1, -np.inf)
        codes = np.zeros(nb + 1, np.int64)
        v = np.empty(m)
        buf = np.empty(m)
        for i in range(m):
            v[i] = -lam[i]
        g[0] = top_sum(v, h, buf)
        code = 0
        pc = 0
        for t in range(1, 1 << nb):
            b = 0
            while not (t >> b) & 1:
                b += 1
            code ^= 1 << b
            if (code >> b) & 1:
                pc += 1
                for i in range(m):
                    v[i] += R[i, b]
            else:
                pc -= 1
                for i in range(m):
                    v[i] -= R[i, b]
            val = top_sum(v, h, buf)
            if val > g[pc]:
                g[pc] = val
                codes[pc] = code
        return g, codes

    return price


def price_subsets(R: np.ndarray, lam: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact pricing values ``g(0..nb)`` and, for each ``j``, a best block set as a bit mask.

    Parameters
    ----------
    R : (m, nb) array
        Row profile (``R[r, b]``: row ``r``'s importance in column block ``b``), ``nb <= 62``.
    lam : (m,) array
        Row multipliers.
    h : int
        Rows per tile row, ``1 <= h <= m``.

    Returns
    -------
    g : (nb + 1,) float64 array
        ``g[j]``: the best ``h``-row, ``j``-block value less the rows' multipliers.
    codes : (nb + 1,) int64 array
        ``codes[j]``: bit ``b`` set when block ``b`` is in a best set of ``j`` blocks.

    Examples
    --------
    >>> import numpy as np
    >>> g, _ = price_subsets(np.ones((3, 2)), np.array([0.0, 1.0, 2.0]), 1)
    >>> [float(x) for x in g]
    [0.0, 1.0, 2.0]
    """
    global _KERNEL
    R = np.ascontiguousarray(R, dtype=np.float64)
    if R.shape[1] > 62:
        raise ValueError(f"exact pricing enumerates 2^nb block sets; nb = {R.shape[1]} is too many")
    if _KERNEL is None:
        _KERNEL = _build()
    return _KERNEL(R, np.ascontiguousarray(lam, dtype=np.float64), int(h))


def subset_rows(R: np.ndarray, lam: np.ndarray, h: int, code: int) -> np.ndarray:
    """The ``h`` rows a best tile row with block set ``code`` takes (for the subgradient).

    Parameters
    ----------
    R, lam, h : as for :func:`price_subsets`
    code : int
        A block set as a bit mask.

    Returns
    -------
    (h,) int array
        Row indices.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(int(r) for r in subset_rows(np.array([[1.0, 0], [0, 5.0], [2.0, 0]]), np.zeros(3), 2, 1))
    [0, 2]
    """
    nb = R.shape[1]
    blocks = [b for b in range(nb) if (int(code) >> b) & 1]
    v = R[:, blocks].sum(axis=1) - lam
    return np.argpartition(-v, h - 1)[:h] if h < len(v) else np.arange(len(v))
