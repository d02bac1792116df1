"""asv benchmarks of the registered solvers (``asv run --python=same --quick``).

* ``Smoke``: every solver on the smoke instances: ``time_solve``,
  ``track_gap`` (percent below the best value ever found, from
  ``problems/manifest.json``, the way scipy tracks ``quadratic_assignment``
  scores against known optima) and ``track_retained``.
* ``Scaling``: ``time_solve`` across sizes 256 to 4096 and tile shapes 32x32 and
  128x1, ``peakmem_solve`` at 4096x4096 with 32x32 tiles, ``track_gap_bound``.

Anytime solvers run under a time limit (:data:`TIME_LIMIT`), so their
``time_*`` is at most that; their quality at that limit is what ``track_*``
follows.  Sizes above 1024 for solvers other than the one-pass ones (not
``anytime``: identity, greedy) take minutes: they run only with
``PERMSOLVE_ASV_FULL=1`` (skipped otherwise, which asv shows as ``n/a``).
``PERMSOLVE_ASV_SOLVERS=a,b`` and ``PERMSOLVE_ASV_INSTANCES=x,y`` narrow the
parameter matrix.
"""
import os

import numpy as np

from permsolve.bench.config import default_solvers
from permsolve.problem import TileProblem, parse_tile
from permsolve.problems.generators import scaled
from permsolve.problems.library import load_suite
from permsolve.problems.manifest import Manifest
from permsolve.registry import get_solver, solve

FULL = os.environ.get("PERMSOLVE_ASV_FULL") == "1"
SOLVERS = default_solvers()            # every registered solver but the meta ones (auto)
if os.environ.get("PERMSOLVE_ASV_SOLVERS"):  # narrow the matrix (the CI test uses it)
    SOLVERS = [s for s in os.environ["PERMSOLVE_ASV_SOLVERS"].split(",") if s in SOLVERS]
FAST = tuple(s for s in SOLVERS if not get_solver(s).anytime)     # one pass: identity, greedy
TIME_LIMIT = 2.0
SMOKE = [i.name for i in load_suite("smoke").instances]
if os.environ.get("PERMSOLVE_ASV_INSTANCES"):
    SMOKE = [n for n in os.environ["PERMSOLVE_ASV_INSTANCES"].split(",") if n in SMOKE]
SIZES = [256, 1024, 2048, 4096]
TILES = ["32x32", "128x1"]


def _skip_large(solver, size):
    if size > 1024 and solver not in FAST and not FULL:
        raise NotImplementedError("set PERMSOLVE_ASV_FULL=1 to run sizes above 1024 for this solver")


def _skip_unsupported(solver, problem):
    """asv shows a benchmark whose setup raises NotImplementedError as n/a: a solver built for
    another mask family (nm-anneal on a tile mask) or problem kind is skipped, not failed."""
    why = get_solver(solver)().supports(problem)
    if why:
        raise NotImplementedError(why)


def _matrix_problem(size, tile):
    S = scaled(size, size, sigma=0.5, seed=0)
    p = TileProblem.from_matrix(S, tile=parse_tile(tile), sparsity=0.5)
    p.bound  # noqa: B018  (cached; not part of the timed solve)
    return p


class Smoke:
    """Every solver on the smoke instances: time and quality."""

    params = (SOLVERS, SMOKE)
    param_names = ["solver", "instance"]
    timeout = 120

    def setup(self, solver, instance):
        from permsolve.problems.library import get_instance

        inst = get_instance(instance)
        self.problem = inst.problem()
        _skip_unsupported(solver, self.problem)
        self.problem.bound  # noqa: B018
        entry = Manifest().get(instance) or {}
        self.best = entry.get("best_value") or self.problem.bound

    def time_solve(self, solver, instance):
        solve(self.problem, solver, time_limit=TIME_LIMIT / 4, seed=0)

    def track_gap(self, solver, instance):
        r = solve(self.problem, solver, time_limit=TIME_LIMIT / 4, seed=0)
        return max(0.0, 100.0 * (self.best - r.retained) / self.best)

    track_gap.unit = "%"

    def track_retained(self, solver, instance):
        r = solve(self.problem, solver, time_limit=TIME_LIMIT / 4, seed=0)
        return r.fraction

    track_retained.unit = "fraction"


class Scaling:
    """Solvers across matrix sizes and tile shapes (scaled lognormal matrices, sparsity 0.5)."""

    params = (SOLVERS, SIZES, TILES)
    param_names = ["solver", "size", "tile"]
    timeout = 900
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self, solver, size, tile):
        _skip_large(solver, size)
        self.problem = _matrix_problem(size, tile)
        _skip_unsupported(solver, self.problem)

    def time_solve(self, solver, size, tile):
        solve(self.problem, solver, time_limit=TIME_LIMIT, seed=0)

    def track_gap_bound(self, solver, size, tile):
        r = solve(self.problem, solver, time_limit=TIME_LIMIT, seed=0)
        return max(0.0, 100.0 * r.gap)

    track_gap_bound.unit = "%"


class PeakMem:
    """Peak memory of a 4096x4096 solve with 32x32 tiles (the process's peak, matrix included)."""

    params = [s for s in SOLVERS if s in ("identity", "greedy", "hungarian", "anneal")]
    param_names = ["solver"]
    timeout = 900

    def setup(self, solver):
        _skip_large(solver, 4096)
        self.problem = _matrix_problem(4096, "32x32")
        _skip_unsupported(solver, self.problem)

    def peakmem_solve(self, solver):
        solve(self.problem, solver, time_limit=TIME_LIMIT, seed=0)
