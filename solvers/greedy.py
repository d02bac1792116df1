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
    """TileTrans's order: units sorted ascending by L1 importance, one stable sort, no search.

    Without a warm start it returns that order even where the identity keeps more (it is
    the published method, reproduced as it is); with one, the better of the two.  No options.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> S = np.array([[4.0, 4], [1, 1], [3, 3], [2, 2]])
    >>> r = Greedy().solve(TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5))
    >>> r.perms["row"].tolist(), r.retained
    ([1, 3, 2, 0], 14.0)
    """

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
