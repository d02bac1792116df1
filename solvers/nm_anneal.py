"""``nm-anneal``: anytime search for N:M column permutations.

Rounds of simulated annealing over swaps of two columns in different groups
(each swap valued exactly in ``O(rows * m)``: it changes two groups of every
row), the first from the start point, every later one re-heated from the best
permutation found so far; after each, windows of 2 and 3 groups are
re-partitioned optimally (every split of their ``2m`` or ``3m`` columns is
valued from a table of all ``m``-subsets).  See
:func:`permsolve.solvers._nm_common.anneal_search` for the schedule.

Every member must be N:M with one pattern; members sharing the column
permutation are one problem over their stacked rows, a strided conv binding
(unit ``kh*kw``) is its ``(C_out*kh*kw, C_in)`` view, and row permutations
(which cannot change an N:M value) are returned as given.

The options are the fields of :class:`NMAnneal.Options`.  Deterministic for
a given seed when it stops by its own budget (no time limit); under a time
limit the schedule follows the clock.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.random.default_rng(0).random((16, 16))
>>> p = TileProblem.from_matrix(S, mask="2:4")
>>> r = solve(p, "nm-anneal", seed=0, rounds=2, moves_per_col=200)
>>> r.retained >= p.evaluate(None)
True
"""
from __future__ import annotations

import dataclasses

from permsolve import registry
from permsolve.masks import NMMask
from permsolve.registry import Solver, register

from ._nm_common import NMReduction, anneal_search, warmup

__all__ = ["NMAnneal"]


@register
class NMAnneal(Solver):
    """N:M column permutation by annealing over column swaps and exact group re-partitions.

    Column permutation for N:M masks: annealing over column swaps between groups, with exact
    re-partitions of 2 or 3 groups at a time (see the module docstring for the options).

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 16)), mask="2:4", sparsity=0.5)
    >>> r = solve(p, "nm-anneal", rounds=2)
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('nm-anneal', True, True)
    """
    name = "nm-anneal"
    description = "N:M: annealing over cross-group column swaps plus exact 2-3 group re-partitions"
    anytime = True
    masks = (NMMask,)
    randomized = True

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """Options of ``nm-anneal``.

        Attributes
        ----------
        rounds : annealing rounds (>= 1); None: 4 without a time limit, as many as fit with one
        moves_per_col : swaps per round, per column (>= 1)
        t0_factor : start temperature, a multiple of the mean loss of random worsening swaps (> 0)
        t_end_factor : end temperature, the same multiple (0 < t_end_factor < t0_factor)
        reheat : later rounds start at this multiple of the first start temperature (> 0)
        windows : largest window re-partitioned after each round, 0 (none), 2 or 3 groups; windows of 3
            only when a sweep over all triples fits the polish budget
        window_share : at most this share of a round's annealing time goes to the windows, in [0, 10]
        kernel : ``"numba"`` (compiled) or ``"python"`` (the same code, uncompiled: slow)

        Examples
        --------
        >>> NMAnneal.Options(rounds=2).windows
        3
        >>> NMAnneal.Options(windows=4)
        Traceback (most recent call last):
        ...
        ValueError: windows must be 0, 2 or 3, got 4
        """

        rounds: int | None = None
        moves_per_col: int = 15000
        t0_factor: float = 0.5
        t_end_factor: float = 0.05
        reheat: float = 0.5
        windows: int = 3
        window_share: float = 0.25
        kernel: str = "numba"

        def validate(self) -> None:
            """Refuse an unknown kernel or window size, and counts or temperatures out of range (``ValueError``)."""
            if self.kernel not in ("numba", "python"):
                raise ValueError(f"kernel must be 'numba' or 'python', got {self.kernel!r}")
            if self.rounds is not None and int(self.rounds) < 1:
                raise ValueError("rounds must be >= 1 or None")
            if int(self.moves_per_col) < 1:
                raise ValueError("moves_per_col must be >= 1")
            if not (self.t0_factor > 0 and 0 < self.t_end_factor < self.t0_factor and self.reheat > 0):
                raise ValueError("need 0 < t_end_factor < t0_factor and reheat > 0")
            if self.windows not in (0, 2, 3):
                raise ValueError(f"windows must be 0, 2 or 3, got {self.windows!r}")
            if not 0 <= self.window_share <= 10:
                raise ValueError("window_share must be in [0, 10]")

    def __init__(self, **options):
        super().__init__(**options)
        o = self.config
        # compile (or load the cached kernels) now, before any solve's clock starts
        self.jit_seconds = warmup(o.kernel) if o.kernel == "numba" else 0.0

    def supports(self, problem):
        return NMReduction(problem).why

    def _solve(self, problem, run, rng):
        red = NMReduction(problem)
        o = self.config
        run.info.update(kernel=o.kernel, jit_seconds=self.jit_seconds)
        if red.name is None or red.size <= red.m:
            return
        base = {k: v.copy() for k, v in run.best_perms.items()}

        def offer(perm, value):
            base[red.name] = perm
            run.offer(base)

        info = {}
        anneal_search(red.S, red.n, red.m, rng=rng, init=run.best_perms[red.name], offer=offer,
                      time_left=run.time_left, rounds=o.rounds, moves_per_col=int(o.moves_per_col),
                      t0_factor=float(o.t0_factor), t_end_factor=float(o.t_end_factor),
                      reheat=float(o.reheat), windows=int(o.windows), window_share=float(o.window_share),
                      kernel=o.kernel, info=info)
        run.nit = int(info.get("moves", 0))
        run.info.update(info)
