"""``hungarian``: alternate best mask and best permutation (TETRIS-style, exact steps).

(a) For the current permutations, the best mask of each matrix is its mask
family's ``select``.  (b) With those masks fixed, the best order of one
permutation is a linear assignment problem (``scipy.optimize.linear_sum_assignment``)
over ``G[q, p]``, the importance unit ``q`` keeps at position ``p``.  Each step
can only raise the retained importance; it stops when a full round gains less
than ``tol`` (relative) or the time runs out.
"""
from __future__ import annotations

import dataclasses
import time

from permsolve import registry
from permsolve.registry import Solver, register

from ._common import assignment_seconds, assignment_step, preload, run_start

__all__ = ["Hungarian"]


@register
class Hungarian(Solver):
    """Alternating assignment: best mask, then best order for it, until a round gains nothing.

    Alternate the best mask for the current order with the best order for that mask (a linear
    assignment per permutation), from TileTrans's order, until a round gains nothing.

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "hungarian")
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('hungarian', True, True)
    """
    name = "hungarian"
    description = "alternate best mask / best permutation (linear assignment) until no gain"
    anytime = True

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """Options of ``hungarian``.

        Attributes
        ----------
        start : ``"greedy"`` (TileTrans's order, unless the identity keeps strictly more) or ``"identity"``;
            a warm start (``init``) replaces it
        max_rounds : at most this many rounds (one assignment step per permutation each)
        tol : stop when a round raises the value by less than this share of it

        Examples
        --------
        >>> Hungarian.Options(max_rounds=5).max_rounds
        5
        >>> Hungarian.Options(start="swap")
        Traceback (most recent call last):
        ...
        ValueError: start must be 'greedy' or 'identity', got 'swap'
        """

        start: str = "greedy"
        max_rounds: int = 100
        tol: float = 1e-12

        def validate(self) -> None:
            """Refuse a start other than ``greedy`` and ``identity`` (``ValueError``)."""
            if self.start not in ("greedy", "identity"):
                raise ValueError(f"start must be 'greedy' or 'identity', got {self.start!r}")

    def __init__(self, **options):
        super().__init__(**options)
        preload()

    def _solve(self, problem, run, rng):
        c = self.config
        run_start(problem, run, c.start)
        perms = {k: v.copy() for k, v in run.best_perms.items()}
        value = run.best
        # seconds a step of each permutation takes (estimated, then the last one measured): a step cannot
        # be interrupted, so one is not begun when it would not end in time
        measured = {}
        guess = 0.0
        if run.time_limit is not None:
            guess = assignment_seconds(problem) / max(1, len(problem.perm_names)) + 2 * run.eval_seconds
        stop = False
        for rounds in range(1, int(c.max_rounds) + 1):
            before = value
            for name in problem.perm_names:
                # until a step of this permutation is measured, expect it to last as long as the
                # slowest one measured (both axes of a square matrix: the estimate was 2x too short)
                need = measured.get(name, max([guess, *measured.values()]))
                if run.expired() or run.time_left() < need:
                    stop = True
                    break
                t = time.perf_counter()
                masks = problem.masks(perms)
                perms[name] = assignment_step(problem, perms, name, masks)
                value = problem.evaluate(perms)
                run.offer(perms, value)
                measured[name] = time.perf_counter() - t
            run.nit = rounds
            if stop or run.expired() or value <= before * (1 + c.tol):
                break
