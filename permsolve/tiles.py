"""Tile arithmetic shared by the problem and the bounds.

Examples
--------
>>> import numpy as np
>>> tile_scores(np.ones((3, 5)), 2, 2)
array([[4., 4., 2.],
       [2., 2., 1.]])
>>> parse_tile("16x16")
(16, 16)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["parse_tile", "expand_perm", "unit_positions", "tile_scores", "LAYOUTS"]

#: how the elements of one unit of a binding lie along its axis (see :func:`unit_positions`)
LAYOUTS = ("contiguous", "strided")


def parse_tile(tile: str | Sequence[int]) -> tuple[int, int]:
    """Parse ``"16x16"`` or ``(16, 16)`` into a pair of positive ints.

    Parameters
    ----------
    tile : str or pair of int
        ``"HxW"`` (``×`` also accepted) or ``(h, w)``.

    Returns
    -------
    tuple of int
        ``(h, w)``, both >= 1.

    Raises
    ------
    ValueError
        When ``tile`` is not of that form or a side is below 1.

    Examples
    --------
    >>> parse_tile("4x8"), parse_tile([2, 2])
    ((4, 8), (2, 2))
    """
    if isinstance(tile, str):
        parts = tile.lower().replace("×", "x").split("x")
        if len(parts) != 2:
            raise ValueError(f"tile must look like HxW (e.g. 16x16), got {tile!r}")
        try:
            tile = (int(parts[0]), int(parts[1]))
        except ValueError:
            raise ValueError(f"tile must look like HxW (e.g. 16x16), got {tile!r}") from None
    h, w = (int(t) for t in tile)
    if h < 1 or w < 1:
        raise ValueError(f"tile sides must be >= 1, got {h}x{w}")
    return h, w


def unit_positions(P: int, unit: int, layout: str = "contiguous") -> np.ndarray:
    """Element indices of each of ``P`` units of ``unit`` elements: an int array ``(P, unit)``.

    Parameters
    ----------
    P : int
        Number of units.
    unit : int
        Elements per unit.
    layout : {"contiguous", "strided"}
        How a unit's elements lie along the axis.

    Returns
    -------
    (P, unit) int64 array
        Row ``q``: the element indices of unit ``q``.

    Notes
    -----

    ``"contiguous"``: unit ``q`` holds ``q*unit ... q*unit + unit - 1`` (a conv
    weight viewed as ``(C_out, C_in*kh*kw)``: one input channel's ``kh*kw``
    columns).  ``"strided"``: unit ``q`` holds ``q, q + P, q + 2P, ...`` (a conv
    weight viewed as ``(C_out, kh*kw*C_in)``, the layout N:M kernels use).

    Examples
    --------
    >>> unit_positions(3, 2).tolist(), unit_positions(3, 2, "strided").tolist()
    ([[0, 1], [2, 3], [4, 5]], [[0, 3], [1, 4], [2, 5]])
    """
    if layout == "contiguous":
        return np.arange(P * unit, dtype=np.int64).reshape(P, unit)
    if layout == "strided":
        return np.arange(P * unit, dtype=np.int64).reshape(unit, P).T.copy()
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def expand_perm(perm: np.ndarray, unit: int, layout: str = "contiguous") -> np.ndarray:
    """Index array over elements for a permutation over units of size ``unit``.

    Position ``p`` of the permutation receives unit ``perm[p]``: element ``e``
    of that unit moves to element ``e`` of position ``p`` (see :func:`unit_positions`).

    Parameters
    ----------
    perm : sequence of int
        A permutation of ``range(P)`` over units.
    unit : int
        Elements per unit.
    layout : {"contiguous", "strided"}
        How a unit's elements lie along the axis.

    Returns
    -------
    (P * unit,) int64 array
        Gather indices: ``x[expand_perm(perm, unit)]`` permutes the units of ``x``.

    Examples
    --------
    >>> expand_perm([1, 0], 2).tolist(), expand_perm([1, 0], 2, "strided").tolist()
    ([2, 3, 0, 1], [1, 0, 3, 2])
    """
    perm = np.asarray(perm, dtype=np.int64)
    if unit == 1:
        return perm
    pos = unit_positions(len(perm), unit, layout)
    idx = np.empty(len(perm) * unit, dtype=np.int64)
    idx[pos.ravel()] = pos[perm].ravel()
    return idx


def tile_scores(P: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum of ``P`` over each ``h x w`` tile; edge tiles are zero-padded.

    Parameters
    ----------
    P : (m, n) array
        Importance matrix (in permuted order).
    h, w : int
        Tile height and width.

    Returns
    -------
    (ceil(m / h), ceil(n / w)) array
        ``T[a, b]``: the importance inside tile ``(a, b)``.

    Examples
    --------
    >>> tile_scores(np.arange(8.0).reshape(2, 4), 2, 2)
    array([[10., 18.]])
    """
    m, n = P.shape
    mb, nb = -(-m // h), -(-n // w)
    if mb * h != m or nb * w != n:
        Q = np.zeros((mb * h, nb * w), dtype=P.dtype)
        Q[:m, :n] = P
        P = Q
    return P.reshape(mb, h, nb, w).sum(axis=(1, 3))
