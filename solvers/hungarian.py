"""``hungarian``: alternate best mask and best permutation (TETRIS-style, exact steps).

(a) For the current permutations, the best mask of each matrix is its mask
family's ``select``.  (b) With those masks fixed, the best order of one
permutation is a linear assignment problem (``scipy.optimize.linear_sum_assignment``)
over ``G[q, p]``, the importance unit ``q`` keeps at position ``p``.  Each step
can only raise the retained importance; it stops when a full round gains less
than ``tol`` (relative) or the time runs out.
"""
from __future__ import annotations

import time

from permsolve.registry import Solver, register

from ._common import assignment_seconds, assignment_step, preload, start_from_greedy


@register
class Hungarian(Solver):
    name = "hungarian"
    description = "alternate best mask / best permutation (linear assignment) until no gain"
    options = {"start": "greedy", "max_rounds": 100, "tol": 1e-12}
    anytime = True

    def __init__(self, **options):
        super().__init__(**options)
        preload()

    def _solve(self, problem, run, rng):
        start = self.opts["start"]
        if start not in ("greedy", "identity"):
            raise ValueError(f"hungarian: start must be 'greedy' or 'identity', got {start!r}")
        if start == "greedy" and not run.has_init:
            start_from_greedy(problem, run)
        perms = {k: v.copy() for k, v in run.best_perms.items()}
        value = run.best
        # seconds a step of each permutation takes (estimated, then the last one measured): a step cannot
        # be interrupted, so one is not begun when it would not end in time
        step = {}
        if run.time_limit is not None:
            guess = assignment_seconds(problem) / max(1, len(problem.perm_names)) + 2 * run.eval_seconds
            step = {name: guess for name in problem.perm_names}
        stop = False
        for rounds in range(1, int(self.opts["max_rounds"]) + 1):
            before = value
            for name in problem.perm_names:
                if run.expired() or run.time_left() < step.get(name, 0.0):
                    stop = True
                    break
                t = time.perf_counter()
                masks = problem.masks(perms)
                perms[name] = assignment_step(problem, perms, name, masks)
                value = problem.evaluate(perms)
                run.offer(perms, value)
                step[name] = time.perf_counter() - t
            run.nit = rounds
            if stop or run.expired() or value <= before * (1 + self.opts["tol"]):
                break
