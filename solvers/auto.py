"""``auto``: run the solver the benchmark results recommend for this problem's size and time limit.

The choice is :func:`permsolve.bench.auto.choose` (stored results written by
``permsolve report``, or ``hungarian`` when there are none); the chosen solver
runs through :func:`permsolve.solve` with this run's remaining time, seed and
warm start.  ``result.info["auto"]`` says what was chosen and why.
"""
from __future__ import annotations

from permsolve.registry import Solver, register


@register
class Auto(Solver):
    name = "auto"
    description = "pick the best solver for this size and time limit from the stored benchmark results"
    options = {"table": None}
    anytime = True
    randomized = True

    def _solve(self, problem, run, rng):
        from permsolve.bench.auto import choose
        from permsolve.registry import get_solver

        tl = None if run.time_limit is None else max(run.time_left(), 1e-3)
        chosen, limit, why = choose(problem, tl, table=self.opts["table"])
        delegate = get_solver(chosen)()          # construction (a JIT warm-up) counts against this run's time
        if limit is not None:
            limit = max(run.time_left(), 1e-3)
        t0 = run.elapsed()
        res = delegate.solve(problem, time_limit=limit, seed=int(rng.integers(2**31 - 1)),
                             init=run.best_perms if run.has_init else None)
        start = run.best
        run.offer(res.perms, res.retained)
        # the delegate's anytime trace, on this run's clock
        run.trace = [run.trace[0]] + [(t0 + t, v) for t, v in res.trace if v > start]
        if run.trace[-1][1] < run.best:
            run.trace.append((run.elapsed(), run.best))
        if res.optimal:
            run.proven_bound = res.retained
        run.nit = res.nit
        run.info = {"auto": {"solver": chosen, "why": why, "time_limit": limit}, **res.info}
