"""``nm-exact``: the optimal N:M column permutation of a narrow problem, proven.

Dynamic programming over column subsets (see
:func:`permsolve.solvers._nm_kernel.exact_dp`): the value of every group of
``m`` columns is tabulated once, summed over rows; ``f[U]``, the best value
of the columns outside ``U``, is built from the full set down, the next group
always holding the lowest free column, so each partition is counted once.
Its table has ``2**cols`` entries and its work grows like the number of
transitions, so it refuses problems wider than ``max_cols`` (at most 24) or
whose estimated transitions exceed ``max_transitions`` (2:4 on 24 columns:
8.9e7 transitions, about 13 s; 4:8 on 24: 1.6e9).  The problem reduction is
that of ``nm-anneal``.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 12)), mask="2:4")
>>> r = solve(p, "nm-exact")
>>> r.optimal
True
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from permsolve import registry
from permsolve.masks import NMMask
from permsolve.registry import Solver, register

from ._nm_common import NMReduction, load_kernel, warmup

__all__ = ["NMExact", "dp_transitions", "MAX_COLS"]

#: widest problem the DP kernel takes (its table has ``2**cols`` entries): ``_nm_kernel.EXACT_MAX_COLS``,
#: repeated here so that checking the options does not import numba (a test checks they agree)
MAX_COLS = 24


def dp_transitions(cols: int, m: int) -> int:
    """Upper bound on the transitions of the subset DP for ``cols`` columns and groups of ``m``.

    A subset ``U`` of ``k*m`` columns is reached only if it holds columns ``0 .. k-1``;
    from it ``C(cols - k*m - 1, m - 1)`` groups hold the lowest free column.

    Parameters
    ----------
    cols : int
        number of columns
    m : int
        group size (the M of N:M)

    Returns
    -------
    int
        the bound on the number of transitions (the DP's work)

    Examples
    --------
    >>> dp_transitions(16, 4) >= 181350
    True
    """
    tot = 0
    for k in range(cols // m):
        tot += math.comb(cols - k, k * m - k) * math.comb(cols - k * m - 1, m - 1)
    return tot


@register
class NMExact(Solver):
    """Proven optimal N:M column permutation by dynamic programming over column subsets.

    Proven optimal column permutation for N:M masks by dynamic programming over column subsets
    (problems with at most ``MAX_COLS`` columns).

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), mask="2:4", sparsity=0.5)
    >>> r = solve(p, "nm-exact")
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('nm-exact', True, True)
    """
    name = "nm-exact"
    description = "N:M: proven optimal column permutation by DP over column subsets (narrow problems)"
    exact = True
    masks = (NMMask,)

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """Options of ``nm-exact``.

        Attributes
        ----------
        max_cols : refuse problems with more permuted columns than this, in [1, :data:`MAX_COLS`]
        max_transitions : refuse problems whose DP needs more transitions than this, > 0
            (as :func:`dp_transitions` estimates them; 2:4 on 24 columns needs 8.9e7)

        Examples
        --------
        >>> NMExact.Options().max_cols
        24
        >>> NMExact.Options(max_cols=30)
        Traceback (most recent call last):
        ...
        ValueError: max_cols must be in [1, 24]
        """

        max_cols: int = MAX_COLS
        max_transitions: float = 1e8

        def validate(self) -> None:
            """Refuse ``max_cols`` outside [1, :data:`MAX_COLS`] and ``max_transitions <= 0`` (``ValueError``)."""
            if not 1 <= int(self.max_cols) <= MAX_COLS:
                raise ValueError(f"max_cols must be in [1, {MAX_COLS}]")
            if not self.max_transitions > 0:
                raise ValueError("max_transitions must be > 0")

    def __init__(self, **options):
        super().__init__(**options)
        self.jit_seconds = warmup("numba")

    def supports(self, problem):
        red = NMReduction(problem)
        if red.why:
            return red.why
        c = self.config
        if red.size > int(c.max_cols):
            return (f"nm-exact: {red.size} permuted columns are more than it can do (max_cols="
                    f"{c.max_cols}; its table has 2**cols entries); use nm-anneal")
        est = dp_transitions(red.size, red.m) if red.size else 0
        if est > float(c.max_transitions):
            return (f"nm-exact: {red.size} columns in groups of {red.m} need about {est:.2g} DP transitions, "
                    f"more than max_transitions={c.max_transitions:.2g}; use nm-anneal")
        return None

    def _solve(self, problem, run, rng):
        red = NMReduction(problem)
        if red.name is None or red.size <= red.m:
            run.proven_bound = run.best          # nothing the permutation can change
            return
        K = load_kernel("numba")
        value, perm, trans = K.exact_dp(np.ascontiguousarray(red.S.T), red.n, red.m)
        perms = {k: v.copy() for k, v in run.best_perms.items()}
        perms[red.name] = perm
        run.offer(perms)
        run.nit = int(trans)
        # the DP's optimum is the best any permutation can do: what it found is proven optimal
        run.proven_bound = problem.evaluate(perms)
        run.info.update(dp_value=float(value), transitions=int(trans))
