"""``identity``: no permutation, the baseline of plain tile pruning."""
from __future__ import annotations

from permsolve.registry import Solver, register


@register
class Identity(Solver):
    name = "identity"
    description = "no permutation: plain tile pruning (the baseline)"
    permutes = False

    def _solve(self, problem, run, rng):
        run.offer(problem.identity())
