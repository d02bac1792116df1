"""The tile-permutation problem.

Given importance matrices, tile shapes, sparsities and mask families, find
permutations that maximise the importance kept by the best tile mask.

A problem has one or more **members** (matrices) and one or more named
**permutations**.  Each member binds its rows and/or its columns to a
permutation; several members may share one (the rows of a producer layer and
the columns of its consumers, say).  A binding has a **unit**: the number of
consecutive indices that move together (a conv consumer's ``kh*kw`` columns of
one input channel).  A permutation of ``P`` units then acts on ``P*unit``
indices of each matrix bound to it.

Convention: ``perm[i]`` is the original unit placed at position ``i``, so a
single matrix permuted on both axes is ``S[row_perm][:, col_perm]``.

Examples
--------
>>> import numpy as np
>>> S = np.arange(16.0).reshape(4, 4)
>>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, axis="rows")
>>> p.evaluate({"row": np.arange(4)})
92.0
>>> p.evaluate({"row": np.array([0, 3, 1, 2])}) <= p.bound
True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from .bounds import member_bound
from .masks import Mask, get_mask
from .tiles import LAYOUTS, expand_perm, parse_tile, tile_scores, unit_positions

#: entries gathered at a time when a permuted matrix is evaluated (16 MB of float64)
GATHER_ENTRIES = 1 << 21

__all__ = ["Member", "TileProblem", "AXES", "parse_tile", "expand_perm", "unit_positions", "tile_scores"]

AXES = ("rows", "cols", "both")


@dataclass(eq=False)
class Member:
    """One importance matrix of a problem.

    Parameters
    ----------
    importance : (m, n) array, finite and >= 0
    tile : (h, w); for a mask family that fixes it (N:M: 1x1) it may be omitted
    sparsity : fraction of this matrix's tiles to prune, in [0, 1); for a mask
        family that fixes it (N:M: ``1 - N/M``) it may be omitted
    mask : mask spec (``"global"``, ``"row-balanced"``, ``"2:4"``) or :class:`~permsolve.masks.Mask`
    rows, cols : name of the permutation acting on this axis, or None (fixed)
    row_unit, col_unit : indices that move together on that axis
    row_layout, col_layout : how a unit's indices lie on that axis, ``"contiguous"``
        or ``"strided"`` (see :func:`permsolve.tiles.unit_positions`)
    name : label for reports

    Examples
    --------
    >>> import numpy as np
    >>> m = Member(np.ones((4, 8)), mask="2:4", cols="c")
    >>> m.tile, m.sparsity, m.n_kept
    ((1, 1), 0.5, 16)
    """

    importance: np.ndarray
    tile: tuple[int, int] | None = None
    sparsity: float | None = None
    mask: Mask | str = "global"
    rows: str | None = None
    cols: str | None = None
    row_unit: int = 1
    col_unit: int = 1
    name: str = ""
    row_layout: str = "contiguous"
    col_layout: str = "contiguous"

    def __post_init__(self):
        S = np.asarray(self.importance)
        if S.dtype.kind not in "biuf":
            raise ValueError(f"importance must be real numbers, got dtype {S.dtype}")
        S = S.astype(np.float64, copy=False)
        if S.ndim != 2:
            raise ValueError(f"importance must be a 2-D matrix, got shape {S.shape}")
        if S.size == 0:
            raise ValueError("importance matrix is empty")
        if not np.all(np.isfinite(S)):
            raise ValueError("importance contains NaN or inf")
        if (S < 0).any():
            raise ValueError("importance must be >= 0 (use a metric such as l1)")
        self.importance = S
        self.mask = get_mask(self.mask)
        fixed_tile, fixed_s = self.mask.fixed_tile, self.mask.fixed_sparsity
        if self.tile is None:
            if fixed_tile is None:
                raise ValueError(f"mask {self.mask} needs a tile shape")
            self.tile = fixed_tile
        self.tile = parse_tile(self.tile)
        if fixed_tile is not None and self.tile != fixed_tile:
            raise ValueError(f"mask {self.mask} works on {fixed_tile[0]}x{fixed_tile[1]} tiles, "
                             f"got {self.tile[0]}x{self.tile[1]}")
        if self.sparsity is None:
            if fixed_s is None:
                raise ValueError(f"mask {self.mask} needs a sparsity")
            self.sparsity = fixed_s
        s = float(self.sparsity)
        if not (0.0 <= s < 1.0):
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if fixed_s is not None and abs(s - fixed_s) > 1e-12:
            raise ValueError(f"mask {self.mask} implies sparsity {fixed_s:g}, got {s:g}")
        self.sparsity = s
        self.mask.check_grid(*self.grid)
        if self.rows is not None and self.rows == self.cols:
            raise ValueError("one permutation cannot act on both axes of the same matrix")
        m, n = S.shape
        for size, unit, axis, layout in ((m, self.row_unit, "rows", self.row_layout),
                                         (n, self.col_unit, "cols", self.col_layout)):
            if unit < 1 or size % unit:
                raise ValueError(f"{axis} unit {unit} does not divide {size}")
            if layout not in LAYOUTS:
                raise ValueError(f"{axis} layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)`` of the importance matrix."""
        return self.importance.shape

    @property
    def grid(self) -> tuple[int, int]:
        """Number of tile rows and tile columns (edge tiles included)."""
        (m, n), (h, w) = self.shape, self.tile
        return -(-m // h), -(-n // w)

    @property
    def n_kept(self) -> int:
        """Number of tiles the mask keeps."""
        return self.mask.n_kept(*self.grid, self.sparsity)

    def _gather_indices(self, perms: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Element gather indices of the rows and the columns (None: the identity, no gather)."""
        def index(name, unit, layout):
            if name is None:
                return None
            p = np.asarray(perms[name])
            if np.array_equal(p, np.arange(p.size)):
                return None                   # the identity: no gather (a copy of a large matrix)
            return expand_perm(p, unit, layout)

        return (index(self.rows, self.row_unit, self.row_layout),
                index(self.cols, self.col_unit, self.col_layout))

    def permuted(self, perms: Mapping[str, np.ndarray]) -> np.ndarray:
        """The importance with ``perms`` applied to its bound axes (no copy for identities)."""
        S = self.importance
        ri, ci = self._gather_indices(perms)
        if ri is not None and ci is not None:
            return S[np.ix_(ri, ci)]          # one gather, not two copies
        if ri is not None:
            return S[ri]
        if ci is not None:
            return S[:, ci]
        return S

    def _slab_rows(self) -> int:
        """Rows per slab of a gathered evaluation: whole tile rows, about :data:`GATHER_ENTRIES` entries."""
        h, n = self.tile[0], self.shape[1]
        return h * max(1, GATHER_ENTRIES // (h * n))

    @staticmethod
    def _gather(S: np.ndarray, rows: np.ndarray, ci: np.ndarray | None) -> np.ndarray:
        """``S[rows][:, ci]`` as one C-ordered slab (``np.take``: its result is contiguous)."""
        X = np.take(S, rows, axis=0)
        return X if ci is None else np.take(X, ci, axis=1)

    def gather_seconds(self) -> float:
        """Estimated seconds the gather of a permuted evaluation adds to one of the identity.

        Times the gather of one slab under a non-identity order of every bound axis (the faster
        of two) and scales it by the number of slabs; 0 when no axis is bound.
        :class:`~permsolve.result.Run` adds it to the evaluation it keeps in reserve, which, timed
        on the identity, skipped the gather.
        """
        m, n = self.shape
        if self.rows is None and self.cols is None:
            return 0.0
        k = min(m, self._slab_rows())
        rng = np.random.default_rng(0)        # a scattered order: a reversed one streams, faster
        rows = rng.permutation(m)[:k] if self.rows is not None else np.arange(k)
        ci = rng.permutation(n) if self.cols is not None else None
        best = float("inf")
        for _ in range(2):                    # the first also pays the fresh slab's page faults
            t = time.perf_counter()
            self._gather(self.importance, rows, ci)
            best = min(best, time.perf_counter() - t)
        return best * m / k

    @property
    def free_axes(self) -> frozenset[str]:
        """Axes bound to a permutation whose order can change this member's value."""
        axes = {a for a, p in (("rows", self.rows), ("cols", self.cols)) if p is not None}
        return frozenset(axes) - self.mask.invariant_axes

    def slabs(self, perms: Mapping[str, np.ndarray]):
        """The permuted importance a slab of whole tile rows at a time (:data:`GATHER_ENTRIES` entries).

        Yields ``(start, rows, X)``: ``X`` is ``permuted(perms)[start:start + len(rows)]``, a fresh
        C-ordered array, and ``rows`` the original indices of its rows.  A permuted matrix is never
        gathered whole: a copy of an 8192 x 8192 matrix is 512 MB of fresh pages, whose cost (0.5 to
        1.5 s measured) depends on the allocator more than on the matrix.
        """
        return self._slabs(*self._gather_indices(perms))

    def _slabs(self, ri: np.ndarray | None, ci: np.ndarray | None):
        """:meth:`slabs` from the gather indices of :meth:`_gather_indices`."""
        S, m = self.importance, self.shape[0]
        k = self._slab_rows()
        for a in range(0, m, k):
            rows = ri[a:a + k] if ri is not None else np.arange(a, min(a + k, m))
            yield a, rows, self._gather(S, rows, ci)

    def tile_scores(self, perms: Mapping[str, np.ndarray]) -> np.ndarray:
        """Importance inside every tile, ``(mb, nb)``, for these permutations (gathered in :meth:`slabs`)."""
        h, w = self.tile
        ri, ci = self._gather_indices(perms)
        if ri is None and ci is None:
            return tile_scores(self.importance, h, w)
        return np.concatenate([tile_scores(X, h, w) for _, _, X in self._slabs(ri, ci)])

    def retained(self, perms: Mapping[str, np.ndarray]) -> float:
        """Importance kept by the best mask of this member for these permutations."""
        return self.mask.retained(self.tile_scores(perms), self.sparsity)

    def best_mask(self, perms: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean ``(mb, nb)`` mask of kept tiles, in permuted coordinates."""
        return self.mask.select(self.tile_scores(perms), self.sparsity)

    def bound(self) -> float:
        """Upper bound on :meth:`retained` over all permutations of the free axes."""
        return member_bound(self)


@dataclass(eq=False)
class TileProblem:
    """Maximise the importance kept under tile masks, over permutations.

    Build a single-matrix problem with :meth:`from_matrix`; build coupled
    problems (several matrices sharing a permutation) from :class:`Member`
    objects directly.

    Parameters
    ----------
    members : list of :class:`Member`
    perm_sizes : number of units of each named permutation; inferred from the
        members when omitted.
    axis : ``"rows"``, ``"cols"`` or ``"both"`` for a :meth:`from_matrix` problem (reports only),
        else None.

    Examples
    --------
    >>> import numpy as np
    >>> W1, W2 = np.ones((4, 4)), np.arange(16.0).reshape(4, 4)
    >>> p = TileProblem([Member(W1, (2, 2), 0.5, rows="h"), Member(W2, (2, 2), 0.5, cols="h")])
    >>> p.perm_sizes, p.kind, p.total
    ({'h': 4}, 'coupled', 136.0)
    >>> p.evaluate(), p.evaluate({"h": np.array([2, 3, 0, 1])}), p.members[0].n_kept
    (100.0, 100.0, 2)
    """

    members: list[Member]
    perm_sizes: dict[str, int] = field(default_factory=dict)
    axis: str | None = None  # set by from_matrix, for reports

    def __post_init__(self):
        if not self.members:
            raise ValueError("a problem needs at least one member")
        sizes = dict(self.perm_sizes)
        for mem in self.members:
            for name, length, unit in ((mem.rows, mem.shape[0], mem.row_unit), (mem.cols, mem.shape[1], mem.col_unit)):
                if name is None:
                    continue
                units = length // unit
                if sizes.setdefault(name, units) != units:
                    raise ValueError(f"permutation {name!r} has {sizes[name]} units, but member "
                                     f"{mem.name or '?'} binds {units}")
        self.perm_sizes = sizes

    # ------------------------------------------------------------------ build
    @classmethod
    def from_matrix(cls, S: np.ndarray, *, tile=None, sparsity: float | None = None,
                    mask: str | Mask = "global", axis: str | None = None, name: str = "") -> "TileProblem":
        """One matrix, permuted on ``axis`` (``rows``, ``cols`` or ``both``).

        The permutations are named ``"row"`` and ``"col"``.  ``axis`` defaults
        to ``"rows"`` (TileTrans), or to ``"cols"`` for a mask whose value rows
        cannot change (N:M); ``tile`` and ``sparsity`` may be omitted when the
        mask fixes them.

        Examples
        --------
        >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), mask="2:4")
        >>> p.axis, p.perm_names, p.members[0].sparsity
        ('cols', ['col'], 0.5)
        """
        mask = get_mask(mask)
        if axis is None:
            axis = "cols" if "rows" in mask.invariant_axes else "rows"
        if axis not in AXES:
            raise ValueError(f"axis must be one of {', '.join(AXES)}, got {axis!r}")
        mem = Member(S, tile, sparsity, mask,
                     rows="row" if axis in ("rows", "both") else None,
                     cols="col" if axis in ("cols", "both") else None, name=name)
        return cls([mem], axis=axis)

    # ------------------------------------------------------------- evaluate
    @property
    def perm_names(self) -> list[str]:
        """Names of the permutations, in order of first appearance."""
        return list(self.perm_sizes)

    def identity(self) -> dict[str, np.ndarray]:
        """The identity permutation of every name."""
        return {k: np.arange(n) for k, n in self.perm_sizes.items()}

    def check_perms(self, perms: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Validate a permutation dict (missing names default to the identity)."""
        out = self.identity()
        for k, p in (perms or {}).items():
            if p is None:
                continue
            if k not in out:
                raise ValueError(f"unknown permutation {k!r}; this problem has {', '.join(out) or 'none'}")
            p = np.asarray(p, dtype=np.int64)
            n = self.perm_sizes[k]
            if p.shape != (n,) or not np.array_equal(np.sort(p), np.arange(n)):
                raise ValueError(f"{k} permutation is not a permutation of range({n})")
            out[k] = p
        return out

    def evaluate(self, perms: Mapping[str, np.ndarray] | None = None) -> float:
        """Retained importance of the best masks for these permutations."""
        perms = self.check_perms(perms)
        return float(sum(m.retained(perms) for m in self.members))

    def masks(self, perms: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Best tile mask of each member for these permutations."""
        perms = self.check_perms(perms)
        return [m.best_mask(perms) for m in self.members]

    def gather_seconds(self) -> float:
        """Estimated seconds a permuted evaluation takes beyond one of the identity.

        The sum of :meth:`Member.gather_seconds` over the members.
        """
        return float(sum(m.gather_seconds() for m in self.members))

    @cached_property
    def total(self) -> float:
        """Sum of all importance: what sparsity 0 would keep."""
        return float(sum(m.importance.sum() for m in self.members))

    @cached_property
    def bound(self) -> float:
        """A valid upper bound on :meth:`evaluate` over all permutations."""
        return float(sum(m.bound() for m in self.members))

    @property
    def is_single(self) -> bool:
        """One matrix."""
        return len(self.members) == 1

    @property
    def kind(self) -> str:
        """What the permutations act on: ``"rows"``, ``"cols"``, ``"both"`` or ``"coupled"``.

        Derived from the members: ``"rows"``, ``"cols"`` or ``"both"`` for one matrix with one
        permutation per free axis, else ``"coupled"`` (several matrices sharing permutations).  Solvers declare the kinds they handle in ``Solver.axes``.

        Examples
        --------
        >>> import numpy as np
        >>> S = np.ones((4, 4))
        >>> TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, axis="both").kind
        'both'
        >>> TileProblem([Member(S, (2, 2), 0.5, rows="p"), Member(S, (2, 2), 0.5, cols="p")]).kind
        'coupled'
        """
        if not self.is_single:
            return "coupled"
        m = self.members[0]
        if m.rows is not None and m.cols is not None:
            return "both"
        return "rows" if m.rows is not None else "cols"

    def describe(self) -> str:
        """One line per member, ``; ``-joined: shape, tile, sparsity, mask and bindings (for logs)."""
        parts = []
        for m in self.members:
            h, w = m.tile
            parts.append(f"{m.name or 'matrix'} {m.shape[0]}x{m.shape[1]} tile {h}x{w} "
                         f"s={m.sparsity:g} mask={m.mask} rows={m.rows} cols={m.cols}")
        return "; ".join(parts)
