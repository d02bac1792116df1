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

Options (defaults in :attr:`NMAnneal.options`)
---------------------------------------------
rounds : int or None
    Annealing rounds; None: 4 without a time limit, as many as fit with one.
moves_per_col : int
    Swaps per round, per column.
t0_factor, t_end_factor, reheat : float
    Start and end temperature as multiples of the mean loss of random
    worsening swaps; later rounds start at ``reheat`` x the first start.
windows : 0, 2 or 3
    Largest window re-partitioned after each round (0: none); windows of 3
    groups only when a sweep over all triples fits the polish budget.
window_share : float
    At most this share of a round's annealing time goes to the windows.
kernel : ``"numba"`` (default) or ``"python"`` (the same code, uncompiled: slow)

Deterministic for a given seed when it stops by its own budget (no time
limit); under a time limit the schedule follows the clock.

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

from permsolve.masks import NMMask
from permsolve.registry import Solver, register

from ._nm_common import NMReduction, anneal_search, warmup

__all__ = ["NMAnneal"]


@register
class NMAnneal(Solver):
    name = "nm-anneal"
    description = "N:M: annealing over cross-group column swaps plus exact 2-3 group re-partitions"
    options = {"rounds": None, "moves_per_col": 15000, "t0_factor": 0.5, "t_end_factor": 0.05, "reheat": 0.5,
               "windows": 3, "window_share": 0.25, "kernel": "numba"}
    anytime = True
    masks = (NMMask,)
    randomized = True

    def __init__(self, **options):
        super().__init__(**options)
        o = self.opts
        if o["kernel"] not in ("numba", "python"):
            raise ValueError(f"nm-anneal: kernel must be 'numba' or 'python', got {o['kernel']!r}")
        if o["rounds"] is not None and int(o["rounds"]) < 1:
            raise ValueError("nm-anneal: rounds must be >= 1 or None")
        if int(o["moves_per_col"]) < 1:
            raise ValueError("nm-anneal: moves_per_col must be >= 1")
        if not (o["t0_factor"] > 0 and 0 < o["t_end_factor"] < o["t0_factor"] and o["reheat"] > 0):
            raise ValueError("nm-anneal: need 0 < t_end_factor < t0_factor and reheat > 0")
        if o["windows"] not in (0, 2, 3):
            raise ValueError(f"nm-anneal: windows must be 0, 2 or 3, got {o['windows']!r}")
        if not 0 <= o["window_share"] <= 10:
            raise ValueError("nm-anneal: window_share must be in [0, 10]")
        # compile (or load the cached kernels) now, before any solve's clock starts
        self.jit_seconds = warmup(o["kernel"]) if o["kernel"] == "numba" else 0.0

    def supports(self, problem):
        return NMReduction(problem).why

    def _solve(self, problem, run, rng):
        red = NMReduction(problem)
        o = self.opts
        run.info.update(kernel=o["kernel"], jit_seconds=self.jit_seconds)
        if red.name is None or red.size <= red.m:
            return
        base = {k: v.copy() for k, v in run.best_perms.items()}

        def offer(perm, value):
            base[red.name] = perm
            run.offer(base)

        info = {}
        anneal_search(red.S, red.n, red.m, rng=rng, init=run.best_perms[red.name], offer=offer,
                      time_left=run.time_left, rounds=o["rounds"], moves_per_col=int(o["moves_per_col"]),
                      t0_factor=float(o["t0_factor"]), t_end_factor=float(o["t_end_factor"]),
                      reheat=float(o["reheat"]), windows=int(o["windows"]), window_share=float(o["window_share"]),
                      kernel=o["kernel"], info=info)
        run.nit = int(info.get("moves", 0))
        run.info.update(info)
