"""The ``ilp`` solver's view of a problem: items (the permuted axis) assigned to blocks.

Both of its models (:mod:`._ilp_compact`, :mod:`._ilp_patterns`) start from the
:class:`BlockModel` of the problem; this module also holds the small pieces
they share (integer scaling of the scores, the run bookkeeping of a stop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from permsolve.bounds import col_profile, row_profile
from permsolve.masks import GlobalMask, RowBalancedMask
from permsolve.problem import TileProblem

__all__ = ["BlockModel", "block_model", "MARGIN"]

#: share of the time limit kept back for the final bookkeeping after the solver returns
MARGIN = 0.05


@dataclass
class BlockModel:
    """The problem seen as "assign items to blocks" (items = the free axis).

    Attributes
    ----------
    R : (n_items, n_fixed) importance of item ``i`` in fixed block ``b``
    sizes : number of items in each free block (the last one may be shorter)
    side : full block size (the tile's side along the free axis)
    k : total kept tiles (``global``)
    balanced : None (global), ``"free"`` (every free block keeps ``kb``) or
        ``"fixed"`` (every fixed block keeps ``kb``)
    kb : tiles kept per balanced block
    perm_name : which permutation of the problem this is

    Examples
    --------
    >>> import numpy as np
    >>> bm = BlockModel(R=np.ones((5, 2)), sizes=np.array([2, 2, 1]), side=2, k=3, balanced=None, kb=0,
    ...                 perm_name="row")
    >>> bm.n_free, bm.n_fixed, bm.n_full
    (3, 2, 2)
    >>> bm.perm_from_blocks(np.array([1, 0, 2, 0, 1])).tolist()
    [1, 3, 0, 4, 2]
    """

    R: np.ndarray
    sizes: np.ndarray
    side: int
    k: int
    balanced: str | None
    kb: int
    perm_name: str

    @property
    def n_free(self) -> int:
        """Number of blocks along the permuted axis."""
        return len(self.sizes)

    @property
    def n_fixed(self) -> int:
        """Number of blocks along the fixed axis."""
        return self.R.shape[1]

    @property
    def n_full(self) -> int:
        """Number of blocks of full size (interchangeable)."""
        return int(np.sum(self.sizes == self.side))

    def perm_from_blocks(self, block_of: np.ndarray) -> np.ndarray:
        """Permutation placing block 0's items first (ascending), then block 1's...

        Parameters
        ----------
        block_of : block of each item

        Returns
        -------
        numpy.ndarray
            the permutation (int64), item at each position

        Examples
        --------
        >>> import numpy as np
        >>> bm = BlockModel(np.ones((4, 1)), np.array([2, 2]), 2, 1, None, 0, "row")
        >>> bm.perm_from_blocks(np.array([1, 0, 1, 0])).tolist()
        [1, 3, 0, 2]
        """
        return np.lexsort((np.arange(len(block_of)), block_of)).astype(np.int64)

    def blocks_from_perm(self, perm: np.ndarray) -> np.ndarray:
        """Block of each item, relabelled canonically (full blocks ordered by their first item).

        Parameters
        ----------
        perm : item at each position

        Returns
        -------
        numpy.ndarray
            block of each item; the full blocks are numbered in the order of their smallest item

        Examples
        --------
        >>> import numpy as np
        >>> bm = BlockModel(np.ones((4, 1)), np.array([2, 2]), 2, 1, None, 0, "row")
        >>> bm.blocks_from_perm(np.array([1, 3, 0, 2])).tolist()
        [0, 1, 0, 1]
        """
        n = len(perm)
        pos_block = np.repeat(np.arange(self.n_free), self.sizes)
        block_of = np.empty(n, dtype=np.int64)
        block_of[np.asarray(perm)] = pos_block
        # canonical order of the full blocks: by their smallest item
        nf = self.n_full
        first = np.full(self.n_free, n, dtype=np.int64)
        np.minimum.at(first, block_of, np.arange(n))
        order = np.argsort(first[:nf], kind="stable")
        relabel = np.arange(self.n_free)
        relabel[order] = np.arange(nf)
        return relabel[block_of]


def block_model(problem: TileProblem) -> BlockModel:
    """The :class:`BlockModel` of a single-matrix problem permuted on rows or on columns.

    Parameters
    ----------
    problem : a single matrix with a global or row-balanced mask, permuted on one axis

    Returns
    -------
    BlockModel

    Raises
    ------
    ValueError
        for several matrices, both axes, or another mask family

    Examples
    --------
    >>> import numpy as np
    >>> p = TileProblem.from_matrix(np.ones((5, 4)), tile=(2, 2), sparsity=0.5)
    >>> bm = block_model(p)
    >>> bm.sizes.tolist(), bm.k, bm.R.shape
    ([2, 2, 1], 3, (5, 2))
    """
    if not problem.is_single or problem.axis not in ("rows", "cols"):
        raise ValueError("ilp handles a single matrix permuted on rows or on columns")
    mem = problem.members[0]
    S, (h, w) = mem.importance, mem.tile
    mb, nb = mem.grid
    if not isinstance(mem.mask, (GlobalMask, RowBalancedMask)):
        raise ValueError(f"ilp does not know the mask family {mem.mask}")
    mask = mem.mask.name
    if problem.axis == "rows":
        R, side, n_free, n_items = row_profile(S, w), h, mb, S.shape[0]
        balanced = "free" if mask == "row-balanced" else None
    else:
        R, side, n_free, n_items = col_profile(S, h), w, nb, S.shape[1]
        balanced = "fixed" if mask == "row-balanced" else None
    sizes = np.full(n_free, side, dtype=np.int64)
    sizes[-1] = n_items - side * (n_free - 1)
    kb = mem.mask.per_row(nb, mem.sparsity) if mask == "row-balanced" else 0
    return BlockModel(R=R, sizes=sizes, side=side, k=mem.n_kept, balanced=balanced, kb=kb,
                      perm_name="row" if problem.axis == "rows" else "col")


def _scaled(R: np.ndarray, scale: float) -> np.ndarray:
    """``R*scale`` rounded up (strictly above for ``R > 0``): integer over-estimates."""
    Rc = np.floor(R * scale).astype(np.int64) + 1
    Rc[R <= 0] = 0
    return Rc


def _top_sums(Rc: np.ndarray, counts: int) -> np.ndarray:
    """``out[j, b]`` = sum of the ``j`` largest entries of column ``b`` (``j = 0..counts``)."""
    Rs = -np.sort(-Rc, axis=0)
    n = Rs.shape[0]
    if counts > n:
        Rs = np.vstack([Rs, np.zeros((counts - n, Rs.shape[1]), dtype=Rs.dtype)])
    return np.vstack([np.zeros((1, Rs.shape[1]), dtype=Rs.dtype), np.cumsum(Rs[:counts], axis=0)])


def _gap(value: float, bound: float) -> float:
    """Relative gap ``(bound - value) / bound`` (0 for a zero bound)."""
    return (bound - value) / bound if bound > 0 else 0.0


def _give_up(problem: TileProblem, run, why: str) -> None:
    """End the solve before the model runs: the incumbent stands, with the problem's bound."""
    run.proven_bound = problem.bound
    run.info.update(status="NOT_STARTED", best_bound=problem.bound, gap=_gap(run.best, problem.bound),
                    stopped=why)


def _incumbent_blocks(problem: TileProblem, bm: BlockModel, run) -> tuple[np.ndarray, np.ndarray]:
    """The incumbent as (block of each item, kept tiles as a (free, fixed) bool array)."""
    perm = run.best_perms[bm.perm_name]
    block_of = np.repeat(np.arange(bm.n_free), bm.sizes)[np.argsort(perm)]
    keep = problem.masks({bm.perm_name: perm})[0]
    if bm.perm_name == "col":
        keep = keep.T
    return block_of, keep
