"""Mask families: which tiles (or elements) of a permuted matrix are kept.

A mask is a small frozen, parametrised object.  Every family describes its
admissible masks the same way, by **groups**: each tile of the tile grid
belongs to one group, and group ``g`` keeps exactly ``keep[g]`` of its tiles.
The best mask for given tile scores keeps the ``keep[g]`` highest-scoring
tiles of every group (:meth:`Mask.select`).  The families here:

* ``global``: one group, the ``k`` best tiles of the matrix (TileTrans's rule);
* ``row-balanced``: one group per row of tiles (load-balanced kernels);
* ``N:M`` (e.g. ``2:4``): elements are 1x1 tiles; in every row each group of
  ``M`` consecutive columns keeps its ``N`` largest entries (the sparsity that
  sparse tensor cores accelerate).

Each family also gives upper bounds on what any permutation can retain (see
:mod:`permsolve.bounds`), because they depend on the budget rule.

Adding a family is one small frozen subclass with a ``parse`` classmethod,
registered with :func:`register_mask`; nothing else changes (solvers that do
not handle it say so in their ``supports``).

Examples
--------
>>> import numpy as np
>>> T = np.array([[4.0, 1.0], [3.0, 2.0]])
>>> get_mask("global").select(T, 0.5).astype(int)
array([[1, 0],
       [1, 0]])
>>> nm = get_mask("2:4")
>>> nm, str(nm), nm.fixed_sparsity
(NMMask(n=2, m=4), '2:4', 0.5)
>>> nm.select(np.array([[1.0, 5, 3, 2, 0, 0, 9, 1]]), 0.5).astype(int)
array([[0, 1, 1, 0, 0, 0, 1, 1]])
"""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

__all__ = ["Mask", "GlobalMask", "RowBalancedMask", "NMMask", "FAMILIES", "MASKS", "get_mask",
           "register_mask", "n_pruned", "topk_sum"]


def n_pruned(s: float, count: int) -> int:
    """Number of items pruned out of ``count`` at sparsity ``s``: ``round(s * count)``, half up.

    The product is taken on the decimal value of ``s`` as written (its shortest
    ``repr``), exactly, so ``0.15 * 10`` is 1.5 and rounds up to 2, and
    ``0.4999999999995 * 1`` rounds down to 0; no float noise, no fudge.

    Parameters
    ----------
    s : float
        Sparsity, the fraction pruned.
    count : int
        Number of items (tiles, or the tiles of one group).

    Returns
    -------
    int
        How many of the ``count`` items are pruned.

    Examples
    --------
    >>> n_pruned(0.5, 3), n_pruned(0.15, 10), n_pruned(0.4999999999995, 1), n_pruned(0.1, 10)
    (2, 2, 0, 1)
    """
    q = Fraction(repr(float(s))) * int(count)
    return int(math.floor(q + Fraction(1, 2)))


def topk_sum(values: np.ndarray, k: int) -> float:
    """Sum of the ``k`` largest entries of ``values`` (all of them when ``k >= size``).

    Parameters
    ----------
    values : array
        Any shape; it is flattened.
    k : int
        How many entries to sum (0 or less: none).

    Returns
    -------
    float
        The sum, found with a partition rather than a full sort.

    Examples
    --------
    >>> topk_sum(np.array([3.0, 1.0, 2.0]), 2)
    5.0
    """
    if k <= 0:
        return 0.0
    v = np.asarray(values).ravel()
    if k >= v.size:
        return float(v.sum())
    return float(np.partition(v, v.size - k)[v.size - k:].sum())


_topk_sum = topk_sum  # the name used before it was public


def _row_topk_sum(A: np.ndarray, k: int) -> float:
    """Sum over the rows of ``A`` of each row's ``k`` largest entries (one partition for all rows)."""
    A = np.asarray(A)
    if k <= 0 or A.size == 0:
        return 0.0
    n = A.shape[1]
    if k >= n:
        return float(A.sum())
    return float(np.partition(A, n - k, axis=1)[:, n - k:].sum())


def _select_by_groups(T: np.ndarray, gid: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Keep the ``keep[g]`` highest scores of every group ``g``; ties go to the earlier position."""
    flat, g = T.ravel(), gid.ravel()
    order = np.lexsort((np.arange(flat.size), -flat, g))   # by group, then score descending, then position
    gs = g[order]
    start = np.searchsorted(gs, gs, side="left")            # first index of each element's group run
    rank = np.arange(flat.size) - start
    out = np.zeros(flat.size, dtype=bool)
    out[order[rank < keep[gs]]] = True
    return out.reshape(T.shape)


@dataclass(frozen=True)
class Mask(ABC):
    """A family of admissible masks over a grid of tile scores.

    Subclasses set ``name`` (the family) and ``description``, implement
    :meth:`groups`, :meth:`parse` and the three bounds, and may override
    :meth:`select` / :meth:`retained` with faster code.

    Examples
    --------
    >>> import numpy as np
    >>> mask = get_mask("row-balanced")
    >>> isinstance(mask, Mask), mask.spec, mask.n_kept(2, 4, 0.5)
    (True, 'row-balanced', 4)
    >>> mask.admissible(np.array([[1, 1, 0, 0], [0, 1, 0, 1]]), 0.5)
    True
    """

    name: ClassVar[str]
    description: ClassVar[str]

    # ----------------------------------------------------------- identity
    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> "Mask | None":
        """The mask that ``text`` names, or None if ``text`` is not of this family."""

    @classmethod
    def examples(cls) -> list["Mask"]:
        """Representative instances, for tests parametrised over every family."""
        return [cls()]

    @property
    def spec(self) -> str:
        """The text that names this mask (``get_mask(mask.spec) == mask``)."""
        return self.name

    def __str__(self) -> str:
        return self.spec

    # ------------------------------------------------- what the family fixes
    @property
    def fixed_tile(self) -> tuple[int, int] | None:
        """The tile shape this family requires, or None (any tile)."""
        return None

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity this family implies, or None (any sparsity)."""
        return None

    @property
    def invariant_axes(self) -> frozenset[str]:
        """Axes whose permutation cannot change the retained importance."""
        return frozenset()

    def check_grid(self, mb: int, nb: int) -> None:
        """Raise ValueError if this family cannot mask an ``mb x nb`` tile grid."""

    # --------------------------------------------------------------- groups
    @abstractmethod
    def groups(self, mb: int, nb: int, s: float) -> tuple[np.ndarray, np.ndarray]:
        """``(gid, keep)``: the group of every tile (int array ``(mb, nb)``) and how many tiles each group keeps."""

    def n_kept(self, mb: int, nb: int, s: float) -> int:
        """Total number of tiles kept in an ``mb x nb`` grid of tiles."""
        return int(self.groups(mb, nb, s)[1].sum())

    def select(self, T: np.ndarray, s: float) -> np.ndarray:
        """Boolean array, shape of ``T``: the best mask of this family for tile scores ``T``."""
        gid, keep = self.groups(*T.shape, s)
        return _select_by_groups(np.asarray(T, dtype=np.float64), gid, keep)

    def retained(self, T: np.ndarray, s: float) -> float:
        """Importance kept by the best mask of this family for tile scores ``T``."""
        return float(T[self.select(T, s)].sum())

    def admissible(self, keep_mask: np.ndarray, s: float) -> bool:
        """True when the boolean ``keep_mask`` (shape of the tile grid) is a mask of this family."""
        keep_mask = np.asarray(keep_mask, dtype=bool)
        if keep_mask.ndim != 2:
            return False
        gid, keep = self.groups(*keep_mask.shape, s)
        counts = np.bincount(gid.ravel(), weights=keep_mask.ravel(), minlength=keep.size)
        return bool(np.array_equal(counts.astype(np.int64), keep))

    # --------------------------------------------------------------- bounds
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
    return topk_sum(gains, k)


@dataclass(frozen=True)
class GlobalMask(Mask):
    """Keep the ``k`` tiles with the largest scores anywhere in the matrix (TileTrans's rule).

    Examples
    --------
    >>> import numpy as np
    >>> GlobalMask().select(np.array([[1.0, 5.0], [4.0, 2.0]]), 0.5).astype(int)
    array([[0, 1],
           [1, 0]])
    """

    name: ClassVar[str] = "global"
    description: ClassVar[str] = "the k highest-scoring tiles of the matrix are kept"

    @classmethod
    def parse(cls, text):
        return cls() if text.strip().lower() == cls.name else None

    def groups(self, mb, nb, s):
        n = mb * nb
        return np.zeros((mb, nb), dtype=np.int64), np.array([n - n_pruned(s, n)], dtype=np.int64)

    def n_kept(self, mb, nb, s):
        n = mb * nb
        return n - n_pruned(s, n)

    def select(self, T, s):
        k = self.n_kept(*T.shape, s)
        keep = np.zeros(T.size, dtype=bool)
        if k > 0:
            # stable order: ties broken by position, so the mask is deterministic
            order = np.argsort(-T.ravel(), kind="stable")
            keep[order[:k]] = True
        return keep.reshape(T.shape)

    def retained(self, T, s):
        return topk_sum(T, self.n_kept(*T.shape, s))

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
        unstructured = topk_sum(S, k * h * w)
        per_row = _row_topk_sum(S, min(nb, k) * w)
        return min(unstructured, per_row)


@dataclass(frozen=True)
class RowBalancedMask(Mask):
    """Every row of tiles keeps the same number of tiles, ``nb - round(s * nb)``.

    Examples
    --------
    >>> import numpy as np
    >>> RowBalancedMask().select(np.array([[1.0, 5.0], [4.0, 2.0]]), 0.5).astype(int)
    array([[0, 1],
           [1, 0]])
    >>> RowBalancedMask().retained(np.array([[1.0, 5.0], [4.0, 3.0]]), 0.5)
    9.0
    """

    name: ClassVar[str] = "row-balanced"
    description: ClassVar[str] = "every row of tiles keeps nb - round(s*nb) tiles (load-balanced kernels)"

    @classmethod
    def parse(cls, text):
        return cls() if text.strip().lower() == cls.name else None

    def per_row(self, nb: int, s: float) -> int:
        """Tiles kept by every row of tiles."""
        return nb - n_pruned(s, nb)

    def groups(self, mb, nb, s):
        gid = np.repeat(np.arange(mb, dtype=np.int64), nb).reshape(mb, nb)
        return gid, np.full(mb, self.per_row(nb, s), dtype=np.int64)

    def n_kept(self, mb, nb, s):
        return mb * self.per_row(nb, s)

    def select(self, T, s):
        mb, nb = T.shape
        kb = self.per_row(nb, s)
        keep = np.zeros(T.shape, dtype=bool)
        if kb > 0:
            order = np.argsort(-T, axis=1, kind="stable")[:, :kb]
            np.put_along_axis(keep, order, True, axis=1)
        return keep

    def retained(self, T, s):
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
        per_row = _row_topk_sum(R, kb)
        return min(split, per_row)

    def bound_free_cols(self, C, w, nb, s):
        kb = self.per_row(nb, s)
        # each (fixed) tile row keeps kb tiles of w columns: at most the kb*w
        # largest column sums of that row block
        return _row_topk_sum(C.T, kb * w)

    def bound_free_both(self, S, h, w, s):
        m, n = S.shape
        mb, nb = -(-m // h), -(-n // w)
        kb = self.per_row(nb, s)
        unstructured = topk_sum(S, mb * kb * h * w)
        per_row = _row_topk_sum(S, kb * w)
        return min(unstructured, per_row)


_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class NMMask(Mask):
    """N:M sparsity: in every row, each group of ``m`` consecutive columns keeps its ``n`` largest entries.

    Elements are 1x1 tiles (``fixed_tile``), the sparsity is ``1 - n/m``
    (``fixed_sparsity``), and the column count must be a multiple of ``m``.
    Permuting rows cannot change the value (``invariant_axes``); permuting
    columns decides which entries share a group.

    Parameters
    ----------
    n : int
        Entries kept per group.
    m : int
        Group size (consecutive columns), ``1 <= n < m <= 16``.

    Examples
    --------
    >>> NMMask(2, 4).groups(1, 8, 0.5)[0]
    array([[0, 0, 0, 0, 1, 1, 1, 1]])
    >>> NMMask(1, 2).retained(np.array([[1.0, 2.0], [4.0, 3.0]]), 0.5)
    6.0
    """

    n: int
    m: int

    name: ClassVar[str] = "N:M"
    description: ClassVar[str] = "in every row, each group of M consecutive columns keeps its N largest (e.g. 2:4)"

    def __post_init__(self):
        n, m = self.n, self.m
        if isinstance(n, bool) or isinstance(m, bool) or int(n) != n or int(m) != m:
            raise ValueError(f"N:M needs integers, got {n!r}:{m!r}")
        if not (1 <= n < m <= 16):
            raise ValueError(f"N:M needs 1 <= N < M <= 16, got {n}:{m}")
        object.__setattr__(self, "n", int(n))
        object.__setattr__(self, "m", int(m))

    @classmethod
    def parse(cls, text):
        hit = _NM.match(text)
        return cls(int(hit.group(1)), int(hit.group(2))) if hit else None

    @classmethod
    def examples(cls):
        return [cls(2, 4), cls(1, 4), cls(4, 8)]

    @property
    def spec(self):
        return f"{self.n}:{self.m}"

    @property
    def fixed_tile(self):
        return (1, 1)

    @property
    def fixed_sparsity(self):
        return 1.0 - self.n / self.m

    @property
    def invariant_axes(self):
        return frozenset({"rows"})

    def check_grid(self, mb, nb):
        if nb % self.m:
            raise ValueError(f"{self.spec} sparsity needs the column count to be a multiple of {self.m}, got {nb}")

    def groups(self, mb, nb, s):
        self.check_grid(mb, nb)
        per = nb // self.m
        gid = (np.arange(mb, dtype=np.int64)[:, None] * per + np.arange(nb, dtype=np.int64)[None, :] // self.m)
        return gid, np.full(mb * per, self.n, dtype=np.int64)

    def n_kept(self, mb, nb, s):
        self.check_grid(mb, nb)
        return mb * (nb // self.m) * self.n

    def select(self, T, s):
        mb, nb = T.shape
        self.check_grid(mb, nb)
        G = np.asarray(T, dtype=np.float64).reshape(mb, nb // self.m, self.m)
        order = np.argsort(-G, axis=2, kind="stable")[:, :, : self.n]
        keep = np.zeros(G.shape, dtype=bool)
        np.put_along_axis(keep, order, True, axis=2)
        return keep.reshape(mb, nb)

    def retained(self, T, s):
        mb, nb = T.shape
        self.check_grid(mb, nb)
        G = np.asarray(T, dtype=np.float64).reshape(mb, nb // self.m, self.m)
        return float(np.partition(G, self.m - self.n, axis=2)[:, :, self.m - self.n:].sum())

    def bound_free_rows(self, R, h, mb, s):
        # R is the matrix itself (1x1 tiles); rows do not change the value: exact
        return self.retained(R, s)

    def bound_free_cols(self, C, w, nb, s):
        # C[j, a] = S[a, j]: every row keeps n of every m, so at most its n*nb/m largest
        k = C.shape[0] // self.m * self.n
        return _row_topk_sum(C.T, k)

    def bound_free_both(self, S, h, w, s):
        return self.bound_free_cols(S.T, w, S.shape[1], s)


FAMILIES: dict[str, type[Mask]] = {}
#: representative masks by spec text (every family's ``examples()``), for tests and listings
MASKS: dict[str, Mask] = {}


def register_mask(cls: type[Mask]) -> type[Mask]:
    """Register a mask family (class decorator); a duplicate family name is an error.

    Parameters
    ----------
    cls : type
        A :class:`Mask` subclass with a unique ``name`` and a ``parse`` classmethod.

    Returns
    -------
    type
        ``cls`` itself, now known to :func:`get_mask` (its ``examples()`` join :data:`MASKS`).

    Raises
    ------
    ValueError
        When a family of that name is already registered.

    Examples
    --------
    >>> class Whole(GlobalMask):
    ...     name = "whole"
    ...     @classmethod
    ...     def parse(cls, text):
    ...         return cls() if text == "whole" else None
    >>> register_mask(Whole) is Whole, get_mask("whole")
    (True, Whole())
    >>> del FAMILIES["whole"], MASKS["whole"]      # leave the registry as it was
    """
    if cls.name in FAMILIES:
        raise ValueError(f"mask family {cls.name!r} is already registered")
    FAMILIES[cls.name] = cls
    for ex in cls.examples():
        MASKS[ex.spec] = ex
    return cls


register_mask(GlobalMask)
register_mask(RowBalancedMask)
register_mask(NMMask)


def get_mask(mask: "str | Mask") -> Mask:
    """The mask that ``mask`` names (``"global"``, ``"row-balanced"``, ``"2:4"``), or ``mask`` itself.

    Parameters
    ----------
    mask : str or Mask
        A spec text of a registered family, or a mask.

    Returns
    -------
    Mask
        The parsed mask (``mask`` unchanged if it is one already).

    Raises
    ------
    ValueError
        When no family recognises the text, or the family refuses it (``"4:2"``).

    Examples
    --------
    >>> get_mask("2:4") == NMMask(2, 4), get_mask("global")
    (True, GlobalMask())
    """
    if isinstance(mask, Mask):
        return mask
    if isinstance(mask, str):
        for fam in FAMILIES.values():
            try:
                found = fam.parse(mask)
            except ValueError as e:   # e.g. "4:2": the family recognised it and refused it
                raise ValueError(f"mask {mask!r}: {e}") from None
            if found is not None:
                return found
    known = ", ".join("N:M (e.g. 2:4)" if n == "N:M" else n for n in FAMILIES)
    raise ValueError(f"unknown mask {mask!r}; known masks: {known}")
