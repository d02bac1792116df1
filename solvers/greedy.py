"""``greedy``: TileTrans's heuristic (Li, Ai, Ino, IJCNN 2022).

Units (rows for ``rows``, columns for ``cols``) are sorted ascending by their
L1 importance, with a stable sort, which is the order TileTrans's code builds.
For coupled problems the importance of every matrix bound to a permutation is
summed first, as TileTrans does for the writers of a residual stream.
"""
from __future__ import annotations

from permsolve.registry import Solver, register

from ._common import greedy_perms


@register
class Greedy(Solver):
    name = "greedy"
    description = "TileTrans: sort rows ascending by L1 importance (one stable sort)"

    def _solve(self, problem, run, rng):
        # TileTrans's order as it is, even where the identity keeps more; with a
        # warm start, only if it beats it (the contract: never worse than init)
        if run.has_init:
            run.offer(greedy_perms(problem))
        else:
            run.adopt(greedy_perms(problem))
        run.nit = 1
