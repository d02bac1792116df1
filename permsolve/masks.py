"""Tile-mask families.

A mask family decides which tiles of a (permuted) matrix are kept, given the
matrix of tile scores ``T`` (shape ``(mb, nb)``: tile rows by tile columns) and
the sparsity ``s``.  Each family also supplies an upper bound on what any
permutation can retain (see :mod:`permsolve.bounds`), because how many tiles a
block of rows or columns may keep depends on the family.

Adding a family is one small subclass registered with :func:`register_mask`.

Examples
--------
>>> import numpy as np
>>> T = np.array([[4.0, 1.0], [3.0, 2.0]])
>>> get_mask("global").select(T, 0.5).astype(int)
array([[1, 0],
       [1, 0]])
>>> get_mask("row-balanced").select(T, 0.5).astype(int)
array([[1, 0],
       [1, 0]])
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

__all__ = ["Mask", "GlobalMask", "RowBalancedMask", "MASKS", "get_mask", "register_mask", "n_pruned"]


def n_pruned(s: float, count: int) -> int:
    """Number of items pruned out of ``count`` at sparsity ``s``: ``round(s * count)``.

    Rounds half up (``floor(s * count + 0.5)``) so that the result never depends
    on banker's rounding.
    """
    return int(math.floor(s * count + 0.5 + 1e-12))


def _topk_sum(values: np.ndarray, k: int) -> float:
    if k <= 0:
        return 0.0
    v = values.ravel()
    if k >= v.size:
        return float(v.sum())
    return float(np.partition(v, v.size - k)[v.size - k:].sum())


class Mask(ABC):
    """A family of tile masks.

    Subclasses set ``name`` and ``description`` and implement :meth:`select`,
    :meth:`n_kept` and the two bounds.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def n_kept(self, mb: int, nb: int, s: float) -> int:
        """Total number of tiles kept in an ``mb x nb`` grid of tiles."""

    @abstractmethod
    def select(self, T: np.ndarray, s: float) -> np.ndarray:
        """Boolean array, shape of ``T``: the best mask of this family for tile scores ``T``."""

    def retained(self, T: np.ndarray, s: float) -> float:
        """Importance kept by the best mask of this family for tile scores ``T``."""
        return float(T[self.select(T, s)].sum())

    @abstractmethod
    def bound_free_rows(self, R: np.ndarray, h: int, mb: int, s: float) -> float:
        """Upper bound when rows are permuted freely and columns are fixed.

        ``R[i, b]`` is the importance of row ``i`` inside column block ``b``.
        """

    @abstractmethod
    def bound_free_cols(self, C: np.ndarray, w: int, nb: int, s: float) -> float:
        """Upper bound when columns are permuted freely and rows are fixed.

        ``C[j, a]`` is the importance of column ``j`` inside row block ``a``.
        """

    @abstractmethod
    def bound_free_both(self, S: np.ndarray, h: int, w: int, s: float) -> float:
        """Upper bound when rows and columns are both permuted freely."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _block_gain_bound(R: np.ndarray, h: int, mb: int, k: int) -> float:
    """Best split of ``k`` tiles over the column blocks of ``R``.

    In column block ``b``, ``j`` tiles of ``h`` rows hold at most the ``j*h``
    largest entries of ``R[:, b]``.  The marginal gain of one more tile in a
    block never increases, so taking the ``k`` largest marginal gains over all
    blocks is the best split, and a valid bound.
    """
    m, nb = R.shape
    if k <= 0:
        return 0.0
    depth = mb * h
    Rs = -np.sort(-R, axis=0)  # descending per column block
    if depth > m:
        Rs = np.vstack([Rs, np.zeros((depth - m, nb))])
    gains = Rs[:depth].reshape(mb, h, nb).sum(axis=1)  # gains[j, b]: j-th tile of block b
    return _topk_sum(gains, k)


class GlobalMask(Mask):
    """Keep the ``k`` tiles with the largest scores anywhere in the matrix (TileTrans's rule)."""

    name = "global"
    description = "the k highest-scoring tiles of the matrix are kept"

    def n_kept(self, mb: int, nb: int, s: float) -> int:
        n = mb * nb
        return n - n_pruned(s, n)

    def select(self, T: np.ndarray, s: float) -> np.ndarray:
        k = self.n_kept(*T.shape, s)
        keep = np.zeros(T.size, dtype=bool)
        if k > 0:
            # stable order: ties broken by position, so the mask is deterministic
            order = np.argsort(-T.ravel(), kind="stable")
            keep[order[:k]] = True
        return keep.reshape(T.shape)

    def retained(self, T: np.ndarray, s: float) -> float:
        return _topk_sum(T, self.n_kept(*T.shape, s))

    def bound_free_rows(self, R, h, mb, s):
        nb = R.shape[1]
        return _block_gain_bound(R, h, mb, self.n_kept(mb, nb, s))

    def bound_free_cols(self, C, w, nb, s):
        mb = C.shape[1]
        return _block_gain_bound(C, w, nb, self.n_kept(mb, nb, s))

    def bound_free_both(self, S, h, w, s):
        m, n = S.shape
        mb, nb = -(-m // h), -(-n // w)
        k = self.n_kept(mb, nb, s)
        # k tiles hold at most the k*h*w largest entries; each row lies in one
        # tile row, which keeps at most min(nb, k) tiles: min(nb, k)*w entries.
        unstructured = _topk_sum(S, k * h * w)
        per_row = float(sum(_topk_sum(row, min(nb, k) * w) for row in S))
        return min(unstructured, per_row)


class RowBalancedMask(Mask):
    """Every row of tiles keeps the same number of tiles, ``nb - round(s * nb)``."""

    name = "row-balanced"
    description = "every row of tiles keeps nb - round(s*nb) tiles (load-balanced kernels)"

    def per_row(self, nb: int, s: float) -> int:
        return nb - n_pruned(s, nb)

    def n_kept(self, mb: int, nb: int, s: float) -> int:
        return mb * self.per_row(nb, s)

    def select(self, T: np.ndarray, s: float) -> np.ndarray:
        mb, nb = T.shape
        kb = self.per_row(nb, s)
        keep = np.zeros(T.shape, dtype=bool)
        if kb > 0:
            order = np.argsort(-T, axis=1, kind="stable")[:, :kb]
            np.put_along_axis(keep, order, True, axis=1)
        return keep

    def retained(self, T: np.ndarray, s: float) -> float:
        mb, nb = T.shape
        kb = self.per_row(nb, s)
        if kb <= 0:
            return 0.0
        return float(np.partition(T, nb - kb, axis=1)[:, nb - kb:].sum())

    def bound_free_rows(self, R, h, mb, s):
        nb = R.shape[1]
        kb = self.per_row(nb, s)
        # (a) the split bound with k = mb*kb tiles, each block holding at most mb
        split = _block_gain_bound(R, h, mb, mb * kb)
        # (b) each row sits in one tile row, which keeps kb tiles: a row keeps at
        #     most its kb best block sums
        per_row = float(sum(_topk_sum(r, kb) for r in R))
        return min(split, per_row)

    def bound_free_cols(self, C, w, nb, s):
        kb = self.per_row(nb, s)
        # each (fixed) tile row keeps kb tiles of w columns: at most the kb*w
        # largest column sums of that row block
        return float(sum(_topk_sum(C[:, a], kb * w) for a in range(C.shape[1])))

    def bound_free_both(self, S, h, w, s):
        m, n = S.shape
        mb, nb = -(-m // h), -(-n // w)
        kb = self.per_row(nb, s)
        unstructured = _topk_sum(S, mb * kb * h * w)
        per_row = float(sum(_topk_sum(row, kb * w) for row in S))
        return min(unstructured, per_row)


MASKS: dict[str, Mask] = {}


def register_mask(cls: type[Mask]) -> type[Mask]:
    """Register a mask family under its ``name``; a duplicate name is an error."""
    if cls.name in MASKS:
        raise ValueError(f"mask family {cls.name!r} is already registered")
    MASKS[cls.name] = cls()
    return cls


register_mask(GlobalMask)
register_mask(RowBalancedMask)


def get_mask(mask: str | Mask) -> Mask:
    """Return the mask family named ``mask`` (or ``mask`` itself if it is a :class:`Mask`)."""
    if isinstance(mask, Mask):
        return mask
    try:
        return MASKS[mask]
    except KeyError:
        raise ValueError(f"unknown mask {mask!r}; known masks: {', '.join(MASKS)}") from None
