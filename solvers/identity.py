"""``identity``: no permutation, the baseline of plain tile pruning."""
from __future__ import annotations

from permsolve.registry import Solver, register


@register
class Identity(Solver):
    """No permutation: the value of plain tile pruning, the baseline every solver is compared with.

    Takes no options; with a warm start it returns the warm start when that is better.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.arange(16.0).reshape(4, 4), tile=(2, 2), sparsity=0.5)
    >>> r = Identity().solve(p)
    >>> r.retained == p.evaluate(), r.perms["row"].tolist()
    (True, [0, 1, 2, 3])
    """

    name = "identity"
    description = "no permutation: plain tile pruning (the baseline)"
    permutes = False

    def _solve(self, problem, run, rng):
        run.offer(problem.identity())
