"""Upper bounds on the importance any permutation can retain.

Every solver's value is checked against these: a value above the bound is a
bug.  The bound of a problem is the sum of its members' bounds, each computed
as if that member's permuted axes were free (sharing a permutation between
members only removes freedom, so the sum stays valid).

Rows free, columns fixed (the TileTrans case): in column block ``b``, ``j``
tiles of ``h`` rows hold at most the ``j*h`` largest row sums of that block;
allocating the ``k`` kept tiles over blocks greedily (the marginal gains never
increase) gives the bound.  The mask family supplies the variants for its own
budget rule; see :mod:`permsolve.masks`.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> S = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
>>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
>>> p.evaluate(), p.bound          # identity order splits the pairs; the bound says 4 is possible
(2.0, 4.0)
>>> p.evaluate({"row": np.array([0, 2, 1, 3])})
4.0
"""
from __future__ import annotations

import numpy as np

from typing import TYPE_CHECKING

from .masks import topk_sum
from .tiles import tile_scores

if TYPE_CHECKING:
    from .problem import Member

__all__ = ["member_bound", "row_profile", "col_profile", "unstructured_bound"]


def row_profile(S: np.ndarray, w: int) -> np.ndarray:
    """``R[i, b]``: importance of row ``i`` inside column block ``b`` (``w`` wide).

    Parameters
    ----------
    S : (m, n) array
        Importance matrix.
    w : int
        Width of a column block (the tile width); a last, narrower block is zero-padded.

    Returns
    -------
    (m, ceil(n / w)) array
        Row sums of every column block.

    Examples
    --------
    >>> row_profile(np.arange(6.0).reshape(2, 3), 2)
    array([[1., 2.],
           [7., 5.]])
    """
    m, n = S.shape
    nb = -(-n // w)
    if nb * w != n:
        S = np.hstack([S, np.zeros((m, nb * w - n))])
    return S.reshape(m, nb, w).sum(axis=2)


def col_profile(S: np.ndarray, h: int) -> np.ndarray:
    """``C[j, a]``: importance of column ``j`` inside row block ``a`` (``h`` tall).

    Parameters
    ----------
    S : (m, n) array
        Importance matrix.
    h : int
        Height of a row block (the tile height); a last, shorter block is zero-padded.

    Returns
    -------
    (n, ceil(m / h)) array
        Column sums of every row block: ``row_profile(S.T, h)``.

    Examples
    --------
    >>> col_profile(np.arange(6.0).reshape(3, 2), 2)
    array([[2., 4.],
           [4., 5.]])
    """
    return row_profile(S.T, h)


def unstructured_bound(member: "Member") -> float:
    """What unstructured pruning of the same number of weights keeps: always valid, loose.

    Parameters
    ----------
    member : Member
        The matrix, its tile shape and its mask.

    Returns
    -------
    float
        Sum of the ``n_kept * h * w`` largest entries of the importance.

    Examples
    --------
    >>> from permsolve import Member
    >>> unstructured_bound(Member(np.arange(8.0).reshape(2, 4), (1, 2), 0.5))
    22.0
    """
    h, w = member.tile
    return topk_sum(member.importance, member.n_kept * h * w)   # a partition, not a full sort


def member_bound(member: "Member") -> float:
    """Upper bound on the member's retained importance over its free axes.

    Parameters
    ----------
    member : Member
        The matrix; its axes bound to a permutation are free, the others fixed.

    Returns
    -------
    float
        The mask family's bound for the free axes, capped by :func:`unstructured_bound`
        (with no free axis: the retained importance itself).

    Examples
    --------
    >>> from permsolve import Member
    >>> S = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
    >>> member_bound(Member(S, (2, 2), 0.5)), member_bound(Member(S, (2, 2), 0.5, rows="r"))
    (2.0, 4.0)
    """
    S, (h, w), s, mask = member.importance, member.tile, member.sparsity, member.mask
    mb, nb = member.grid
    free = member.free_axes          # axes whose order cannot matter (N:M rows) count as fixed
    if not free:
        return mask.retained(tile_scores(S, h, w), s)
    if free == {"rows"}:
        b = mask.bound_free_rows(row_profile(S, w), h, mb, s)
    elif free == {"cols"}:
        b = mask.bound_free_cols(col_profile(S, h), w, nb, s)
    else:
        b = mask.bound_free_both(S, h, w, s)   # tile families already cap it by unstructured pruning
    return float(min(b, unstructured_bound(member)))
