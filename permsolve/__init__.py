"""permsolve: permutation search for tile pruning.

Pose the problem, pick a solver, get permutations that keep more importance
under a tile mask.

>>> import numpy as np
>>> import permsolve
>>> S = np.random.default_rng(0).random((16, 16))
>>> p = permsolve.TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
>>> r = permsolve.solve(p, "hungarian")
>>> r.retained >= permsolve.solve(p, "identity").retained
True
"""
from .masks import MASKS, Mask, get_mask, register_mask
from .metrics import METRICS, importance
from .problem import Member, TileProblem, parse_tile
from .registry import Solver, available_solvers, get_solver, register, solve
from .result import SolveResult

__version__ = "0.1.0"

_LAZY = {"permute_model": "permsolve.torch.permute", "prune_model": "permsolve.torch.prune"}


def __getattr__(name):  # lazy: ``import permsolve`` must not import torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'permsolve' has no attribute {name!r}")


__all__ = ["TileProblem", "Member", "SolveResult", "Solver", "solve", "available_solvers", "get_solver",
           "register", "importance", "METRICS", "MASKS", "Mask", "get_mask", "register_mask",
           "parse_tile", "__version__", "permute_model", "prune_model"]
