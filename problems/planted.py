"""Planted instances: the optimum is known because the planted order attains the bound.

Rows fall in hidden groups of ``h`` rows (one tile row each).  Each group has
its own ``blocks_per_group`` important column blocks, filled with values in
``[1, 2)``; everything else is noise in ``[0, noise)``.  The rows are then
shuffled.  With ``k`` = number of important (group, block) pairs, the planted
grouping keeps every important tile, and the row bound of
:mod:`permsolve.bounds` equals that value whenever every important tile
outweighs every noise tile (``noise * h * w < h * w``, always true for
``noise < 1``), so the planted grouping is optimal and the bound is tight.

Every group has the same number of important blocks, so row L1 norms carry
no information about the groups: TileTrans's sort cannot find them.

Examples
--------
>>> inst = planted(32, 32, tile=(4, 4), blocks_per_group=2, seed=0)
>>> from permsolve import TileProblem
>>> p = TileProblem.from_matrix(inst.S, tile=(4, 4), sparsity=inst.sparsity)
>>> bool(abs(p.evaluate({"row": inst.row_perm}) - p.bound) < 1e-9 * p.bound)
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlantedInstance", "planted"]


@dataclass
class PlantedInstance:
    """A planted instance and its known optimum (see :func:`planted`).

    Attributes
    ----------
    S : (m, n) array
        The shuffled importance matrix.
    tile : (int, int)
        The tile shape it is planted for.
    sparsity : float
        The sparsity at which the planted tiles are exactly the kept ones.
    row_perm : array of int
        A row permutation attaining the optimum.
    optimum : float
        Retained importance of ``row_perm`` (equals the bound).

    Examples
    --------
    >>> inst = planted(8, 8, tile=(2, 2), blocks_per_group=1, seed=0)
    >>> inst.S.shape, inst.tile, inst.sparsity
    ((8, 8), (2, 2), 0.75)
    """

    S: np.ndarray           #: the shuffled importance matrix
    tile: tuple[int, int]
    sparsity: float         #: the sparsity at which the planted tiles are exactly the kept ones
    row_perm: np.ndarray    #: a permutation attaining the optimum
    optimum: float          #: retained importance of ``row_perm`` (equals the bound)


def planted(m: int, n: int, *, tile=(16, 16), blocks_per_group: int | None = None, noise: float = 0.3,
            seed: int = 0) -> PlantedInstance:
    """A shuffled ``m x n`` instance with hidden row groups; see the module docstring.

    Parameters
    ----------
    m, n : int
        Shape; ``m`` must be a multiple of ``h`` and ``n`` of ``w``.
    tile : (int, int)
        Tile shape ``(h, w)``.
    blocks_per_group : int, optional
        Important column blocks per row group (default: half of them, sparsity 0.5).
    noise : float
        Noise level, in ``[0, 1)`` (so the planted order stays optimal).
    seed : int
        Seed of the instance.

    Returns
    -------
    PlantedInstance
        The matrix, its sparsity, an optimal row permutation and the optimum.

    Examples
    --------
    >>> inst = planted(16, 16, tile=(4, 4), seed=1)
    >>> inst.sparsity, bool(inst.optimum > 0)
    (0.5, True)
    """
    h, w = tile
    if m % h or n % w:
        raise ValueError(f"planted instances need {m}x{n} divisible by the tile {h}x{w}")
    if not 0 <= noise < 1:
        raise ValueError("noise must be in [0, 1) for the planted order to stay optimal")
    rng = np.random.default_rng(seed)
    G, nb = m // h, n // w
    kb = nb // 2 if blocks_per_group is None else int(blocks_per_group)
    if not 1 <= kb <= nb:
        raise ValueError(f"blocks_per_group must be in [1, {nb}]")
    P = noise * rng.random((m, n))
    for g in range(G):
        for b in rng.choice(nb, size=kb, replace=False):
            P[g * h:(g + 1) * h, b * w:(b + 1) * w] = 1.0 + rng.random((h, w))
    shuffle = rng.permutation(m)          # S[i] = P[shuffle[i]]
    S = P[shuffle]
    row_perm = np.argsort(shuffle)        # S[row_perm] = P
    T = P.reshape(G, h, nb, w).sum(axis=(1, 3))
    k = G * kb
    optimum = float(np.sort(T.ravel())[::-1][:k].sum())
    return PlantedInstance(S, (h, w), 1.0 - kb / nb, row_perm, optimum)
