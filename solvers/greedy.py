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
        run.offer(greedy_perms(problem))
        run.nit = 1
