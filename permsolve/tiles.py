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

__all__ = ["parse_tile", "expand_perm", "tile_scores"]


def parse_tile(tile: str | Sequence[int]) -> tuple[int, int]:
    """Parse ``"16x16"`` or ``(16, 16)`` into a pair of positive ints."""
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


def expand_perm(perm: np.ndarray, unit: int) -> np.ndarray:
    """Index array over elements for a permutation over units of size ``unit``."""
    perm = np.asarray(perm, dtype=np.int64)
    if unit == 1:
        return perm
    return (perm[:, None] * unit + np.arange(unit)).ravel()


def tile_scores(P: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum of ``P`` over each ``h x w`` tile; edge tiles are zero-padded."""
    m, n = P.shape
    mb, nb = -(-m // h), -(-n // w)
    if mb * h != m or nb * w != n:
        Q = np.zeros((mb * h, nb * w), dtype=P.dtype)
        Q[:m, :n] = P
        P = Q
    return P.reshape(mb, h, nb, w).sum(axis=(1, 3))
