"""The integer programs of the ``ilp`` pattern model, written once for both backends.

A program is built through a small backend-neutral interface (:class:`_CpSatProgram`,
:class:`_ScipProgram`: variables, the few constraint shapes the programs use, the
objective, a hint) by :func:`pattern_program` (subsets with kept-tile variables) and
:func:`explicit_program` (columns that fix their kept tiles), then solved by
``program.solve(share)``, which offers the solution(s) to the run and returns
``(status name, valid upper bound or None)``.

CP-SAT needs integer coefficients: its objective is scaled and rounded **up**
(:func:`~permsolve.solvers._ilp_blocks._scaled`), so the integer optimum
over-estimates every solution and ``best_bound / scale`` stays a valid bound.
SCIP (through pywraplp) works in floating point, with gap 0; its dual bound carries
its own tolerances (about 1e-9 relative).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from permsolve.problem import TileProblem

from ._ilp_blocks import MARGIN, BlockModel, _incumbent_blocks, _scaled

__all__ = ["load", "PatternContext", "new_program", "pattern_program", "explicit_program", "BACKENDS"]

#: the backends a pattern program can be solved by
BACKENDS = ("scip", "cp-sat")


def load() -> None:
    """Import OR-Tools (CP-SAT, pywraplp) and scipy's ``linprog``: about 2 s, paid once.

    The ``ilp`` solver calls it from its constructor, so that neither loading the
    registry nor the first solve's clock pays for the imports.

    Examples
    --------
    >>> load()
    >>> import sys
    >>> "ortools.sat.python.cp_model" in sys.modules
    True
    """
    from ortools.linear_solver import pywraplp  # noqa: F401
    from ortools.sat.python import cp_model  # noqa: F401
    from scipy.optimize import linprog  # noqa: F401


@dataclass
class PatternContext:
    """What the integer programs of one pattern solve share.

    Attributes
    ----------
    problem : the (normalised) problem
    bm : its block model
    cols : every subset with its tile sums (``_Columns`` of :mod:`._ilp_patterns`)
    config : the ``ilp`` solver's options (``backend``, ``precision``, ``num_workers``, ``log``)
    run : the solve's run: its incumbent is the hint, and every solution found is offered to it
    rng : seeds the backends

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.registry import get_solver
    >>> from permsolve.result import Run
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> from permsolve.solvers._ilp_patterns import _Columns
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((6, 4)), tile=(2, 2), sparsity=0.5)
    >>> bm = block_model(p)
    >>> ctx = PatternContext(p, bm, _Columns(bm), get_solver("ilp").Options(), Run(p, None, None),
    ...                      np.random.default_rng(0))
    >>> len(ctx.cols.subs)          # every pair of the 6 rows
    15
    """

    problem: TileProblem
    bm: BlockModel
    cols: Any
    config: Any
    run: Any
    rng: np.random.Generator

    @property
    def n(self) -> int:
        """Number of items (subset entries ``>= n`` are padding)."""
        return self.cols.n


class _Program:
    """A program under construction; subclasses add one backend's variables and constraints.

    ``select(lam, sub, fam)`` names the selection variables once built: ``lam[c]``
    says column ``c`` is used; it covers the items ``sub[c]`` (padded with ``n``)
    and belongs to family ``fam[c]`` (full blocks first, then the short one).
    """

    backend: str

    #: CP-SAT's ``linearization_level`` for this program (None: its default; SCIP ignores it)
    linearization: int | None = None

    def __init__(self, ctx: PatternContext):
        self.ctx = ctx
        self.t0 = time.perf_counter()
        self.lam = self.sub = self.fam = None

    def select(self, lam: list, sub: np.ndarray, fam: np.ndarray) -> None:
        self.lam, self.sub, self.fam = lam, sub, fam

    def _offer(self, on: np.ndarray) -> None:
        """Offer the solution using columns ``on`` (indices of ``lam``) to the run."""
        ctx, sub, n = self.ctx, self.sub, self.ctx.n
        on = on[np.argsort(self.fam[on], kind="stable")]     # full blocks first, the short one last
        blk = np.empty(n, dtype=np.int64)
        for a, c in enumerate(on):
            blk[sub[c][sub[c] < n]] = a
        ctx.run.offer({ctx.bm.perm_name: ctx.bm.perm_from_blocks(blk)})
        ctx.run.nit += 1

    def _seconds(self, share: float) -> float | None:
        """Seconds the backend may use: ``share`` of what is left, less the margin (None: no limit)."""
        run = self.ctx.run
        if run.time_limit is None:
            return None
        return max(0.01, share * (run.time_left() - MARGIN * run.time_limit))


class _CpSatProgram(_Program):
    """A program on CP-SAT: every variable is integer, the objective is scaled to integers."""

    backend = "cp-sat"

    def __init__(self, ctx: PatternContext):
        super().__init__(ctx)
        from ortools.sat.python import cp_model

        self.cp = cp_model
        self.model = cp_model.CpModel()
        self.scale = 1.0

    def bools(self, names):
        return [self.model.NewBoolVar(nm) for nm in names]

    # a kept-tile variable: 0/1 here (CP-SAT has no continuous variables)
    shares = bools

    def exactly_one(self, vs):
        self.model.AddExactlyOne(vs)

    def sum_eq(self, vs, rhs):
        self.model.Add(self.cp.LinearExpr.Sum(vs) == rhs)

    def sum_eq_var(self, vs, coef, v):
        """``sum(vs) == coef * v``."""
        self.model.Add(sum(vs) == coef * v)

    def le(self, a, b):
        self.model.Add(a <= b)

    def weighted_eq(self, vs, coefs, rhs):
        self.model.Add(self.cp.LinearExpr.WeightedSum(vs, np.asarray(coefs).tolist()) == rhs)

    def maximize(self, vs, values, roundings: int):
        """Maximise ``sum values * vs``; ``roundings``: most variables at 1 at once (the rounding error)."""
        ctx = self.ctx
        self.scale = roundings / (float(ctx.config.precision) * ctx.problem.bound)
        coefs = _scaled(np.asarray(values), self.scale)
        self.model.Maximize(self.cp.LinearExpr.WeightedSum(vs, coefs.ravel().tolist()))

    def hint(self, vs, vals):
        for v, x in zip(vs, vals):
            self.model.AddHint(v, x)

    def solve(self, share: float):
        """Solve; each solution found is offered.  Returns ``(status name, valid bound or None)``."""
        cp_model, ctx, run = self.cp, self.ctx, self.ctx.run
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.random_seed = int(ctx.rng.integers(2**31 - 1))
        p.num_workers = int(ctx.config.num_workers)
        if p.num_workers > 1:
            p.interleave_search = True
        p.log_search_progress = bool(ctx.config.log)
        if self.linearization is not None:
            p.linearization_level = self.linearization
        seconds = self._seconds(share)
        if seconds is not None:
            p.max_time_in_seconds = seconds
        lam_idx = np.array([v.Index() for v in self.lam])
        program = self

        class _Callback(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(cb):
                sol = np.asarray(cb.response_proto.solution, dtype=np.int64)
                program._offer(np.flatnonzero(sol[lam_idx] > 0))

        run.info["last_build_seconds"] = time.perf_counter() - self.t0
        status = solver.Solve(self.model, _Callback())
        run.info["last_solve_seconds"] = solver.WallTime()
        name = solver.StatusName(status)
        if name in ("MODEL_INVALID", "INFEASIBLE"):
            raise RuntimeError(f"ilp: CP-SAT returned {name} on the pattern program; this is a bug")
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return name, None       # no bound (CP-SAT's best_objective_bound means nothing then)
        bnd = solver.BestObjectiveBound()
        if not np.isfinite(bnd):
            return name, None
        return name, math.nextafter(float(bnd) / self.scale, math.inf)


class _ScipProgram(_Program):
    """A program on SCIP through pywraplp (floating point; kept-tile variables continuous in [0, 1])."""

    backend = "scip"

    def __init__(self, ctx: PatternContext):
        super().__init__(ctx)
        from ortools.linear_solver import pywraplp

        self.pl = pywraplp
        self.s = pywraplp.Solver.CreateSolver("SCIP")
        self.obj = None

    def bools(self, names):
        return [self.s.BoolVar(nm) for nm in names]

    def shares(self, names):
        return [self.s.NumVar(0.0, 1.0, nm) for nm in names]

    def exactly_one(self, vs):
        self.s.Add(self.s.Sum(vs) == 1)

    def sum_eq(self, vs, rhs):
        self.s.Add(self.s.Sum(vs) == rhs)

    def sum_eq_var(self, vs, coef, v):
        """``sum(vs) == coef * v``."""
        self.s.Add(self.s.Sum(vs) == coef * v)

    def le(self, a, b):
        self.s.Add(a <= b)

    def weighted_eq(self, vs, coefs, rhs):
        ct = self.s.Constraint(float(rhs), float(rhs))
        for v, c in zip(vs, coefs):
            ct.SetCoefficient(v, float(c))

    def maximize(self, vs, values, roundings: int):
        """Maximise ``sum values * vs`` (``roundings`` is for CP-SAT's integer scaling)."""
        self.obj = self.s.Objective()
        for v, c in zip(vs, np.asarray(values).ravel()):
            self.obj.SetCoefficient(v, float(c))
        self.obj.SetMaximization()

    def hint(self, vs, vals):
        self.s.SetHint(vs, [1.0 if x else 0.0 for x in vals])

    def solve(self, share: float):
        """Solve and offer the solution.  Returns ``(status name, SCIP's dual bound or None)``."""
        pywraplp, s, ctx, run = self.pl, self.s, self.ctx, self.ctx.run
        s.SetNumThreads(1)
        s.SetSolverSpecificParametersAsString(f"randomization/randomseedshift = {int(ctx.rng.integers(2**20))}\n"
                                              "limits/gap = 0\nlimits/absgap = 0\n")
        if ctx.config.log:
            s.EnableOutput()
        seconds = self._seconds(share)
        if seconds is not None:
            s.SetTimeLimit(int(1000 * seconds))
        run.info["last_build_seconds"] = time.perf_counter() - self.t0
        t1 = time.perf_counter()
        st = s.Solve()
        run.info["last_solve_seconds"] = time.perf_counter() - t1
        name = {pywraplp.Solver.OPTIMAL: "OPTIMAL", pywraplp.Solver.FEASIBLE: "FEASIBLE"}.get(st, f"STATUS_{st}")
        if st not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            return name, None
        lv = np.array([v.solution_value() for v in self.lam])
        self._offer(np.flatnonzero(lv > 0.5))
        # SCIP's dual bound carries its feasibility tolerances (about 1e-9 relative here)
        return name, float(self.obj.BestBound())


def new_program(ctx: PatternContext) -> _Program:
    """An empty program on the backend ``ctx.config.backend`` (``"scip"`` or ``"cp-sat"``).

    Examples
    --------
    >>> from permsolve.registry import get_solver
    >>> ctx = PatternContext(None, None, None, get_solver("ilp").Options(backend="cp-sat"), None, None)
    >>> new_program(ctx).backend
    'cp-sat'
    """
    return {"cp-sat": _CpSatProgram, "scip": _ScipProgram}[ctx.config.backend](ctx)


def _hint_columns(ctx: PatternContext):
    """The incumbent: its blocks' subsets (indices into ``ctx.cols``) and kept tiles (free, fixed)."""
    block_of, keep = _incumbent_blocks(ctx.problem, ctx.bm, ctx.run)
    q_inc, _ = ctx.cols.columns_of(block_of, keep, ctx.bm)
    return q_inc, keep


def pattern_program(ctx: PatternContext, q: np.ndarray) -> _Program:
    """Set partitioning over the subsets ``q``, with kept-tile variables ``w[c, j]`` (any mask).

    Every item is covered once, each family has its number of blocks, ``w[c, j] <= lam[c]``,
    and the mask holds on the ``w``; the objective is the kept tile sums.  The incumbent
    is the hint.

    Parameters
    ----------
    ctx : the solve's :class:`PatternContext` (the backend is ``ctx.config.backend``)
    q : indices of the subsets (rows of ``ctx.cols.subs``); the incumbent's must be among them

    Returns
    -------
    the program, ready for ``program.solve(share)``

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.registry import get_solver
    >>> from permsolve.result import Run
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> from permsolve.solvers._ilp_patterns import _Columns
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((6, 4)), tile=(2, 2), sparsity=0.5)
    >>> bm = block_model(p)
    >>> for backend in ("scip", "cp-sat"):
    ...     run = Run(p, None, None)
    ...     ctx = PatternContext(p, bm, _Columns(bm), get_solver("ilp").Options(backend=backend), run,
    ...                          np.random.default_rng(0))
    ...     status, bound = pattern_program(ctx, np.arange(15)).solve(1.0)
    ...     print(status, bound >= run.best * (1 - 1e-9) >= p.evaluate() * (1 - 1e-9))
    OPTIMAL True
    OPTIMAL True
    """
    prog = new_program(ctx)
    cols, bm = ctx.cols, ctx.bm
    n, nfix, nq = cols.n, cols.nfix, len(q)
    T = cols.T[q]
    sub = cols.subs[q]
    lam = prog.bools([f"l{c}" for c in range(nq)])
    w = [prog.shares([f"w{c}_{j}" for j in range(nfix)]) for c in range(nq)]
    # cover every item once
    owners = [[] for _ in range(n)]
    for c in range(nq):
        for i in sub[c]:
            if i < n:
                owners[i].append(lam[c])
    for i in range(n):
        prog.exactly_one(owners[i])
    for f, cnt in enumerate(cols.fam_count):
        prog.sum_eq([lam[c] for c in np.flatnonzero(cols.fam[q] == f)], int(cnt))
    for c in range(nq):
        for j in range(nfix):
            prog.le(w[c][j], lam[c])
    if bm.balanced is None:
        prog.sum_eq([w[c][j] for c in range(nq) for j in range(nfix)], bm.k)
    elif bm.balanced == "free":
        for c in range(nq):
            prog.sum_eq_var(w[c], bm.kb, lam[c])
    else:
        for j in range(nfix):
            prog.sum_eq([w[c][j] for c in range(nq)], bm.kb)
    # one rounding (at most one unit) per kept tile
    prog.maximize([w[c][j] for c in range(nq) for j in range(nfix)], T, roundings=max(1, bm.k))
    # hint: the incumbent
    q_inc, keep = _hint_columns(ctx)
    pos = {int(v): c for c, v in enumerate(q)}
    chosen = {pos[int(v)]: a for a, v in enumerate(q_inc) if int(v) in pos}
    hv, hx = [], []
    for c in range(nq):
        a = chosen.get(c)
        hv.append(lam[c]); hx.append(a is not None)
        for j in range(nfix):
            hv.append(w[c][j]); hx.append(bool(a is not None and keep[a, j]))
    prog.hint(hv, hx)
    prog.select(lam, sub, cols.fam[q])
    prog.linearization = 2          # CP-SAT: the w <= lam links in its LP relaxation
    return prog


def explicit_program(ctx: PatternContext, qs: np.ndarray, js: np.ndarray, Fall: np.ndarray) -> _Program:
    """Set partitioning over columns ``(subset qs[c], keeps its js[c] best tiles)``: no linking variables.

    For the masks that fix a block's kept tiles from their number (global: the ``j`` best;
    row-balanced rows: the ``kb`` best).  ``Fall[q, j]`` is the value of subset ``q``
    keeping its ``j`` best tiles.  The incumbent is the hint.

    Parameters
    ----------
    ctx : the solve's :class:`PatternContext` (the backend is ``ctx.config.backend``)
    qs, js : subset and number of kept tiles of each column
    Fall : value of every (subset, kept count)

    Returns
    -------
    the program, ready for ``program.solve(share)``

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.registry import get_solver
    >>> from permsolve.result import Run
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> from permsolve.solvers._ilp_patterns import _Columns
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((6, 4)), tile=(2, 2), sparsity=0.5)
    >>> bm = block_model(p)
    >>> cols = _Columns(bm)
    >>> Fall = np.hstack([np.zeros((15, 1)), np.cumsum(-np.sort(-cols.T, axis=1), axis=1)])
    >>> qs, js = np.repeat(np.arange(15), 3), np.tile(np.arange(3), 15)
    >>> for backend in ("scip", "cp-sat"):
    ...     run = Run(p, None, None)
    ...     ctx = PatternContext(p, bm, cols, get_solver("ilp").Options(backend=backend), run,
    ...                          np.random.default_rng(0))
    ...     status, bound = explicit_program(ctx, qs, js, Fall).solve(1.0)
    ...     print(status, bound >= run.best * (1 - 1e-9) >= p.evaluate() * (1 - 1e-9))
    OPTIMAL True
    OPTIMAL True
    """
    prog = new_program(ctx)
    cols, bm = ctx.cols, ctx.bm
    n, nc = cols.n, len(qs)
    lam = prog.bools([f"c{c}" for c in range(nc)])
    sub = cols.subs[qs]
    # cover every item once: owners of item i, vectorised
    rows, cc = np.nonzero(sub < n)
    items = sub[rows, cc]
    order = np.argsort(items, kind="stable")
    items, rows = items[order], rows[order]
    cuts = np.searchsorted(items, np.arange(n + 1))
    for i in range(n):
        prog.exactly_one([lam[c] for c in rows[cuts[i]:cuts[i + 1]]])
    fam = cols.fam[qs]
    for f, cnt in enumerate(cols.fam_count):
        prog.sum_eq([lam[c] for c in np.flatnonzero(fam == f)], int(cnt))
    if bm.balanced is None:
        prog.weighted_eq(lam, js, bm.k)
    # one rounding per block
    prog.maximize(lam, Fall[qs, js], roundings=max(1, bm.n_free))
    # hint: the incumbent
    q_inc, keep = _hint_columns(ctx)
    j_inc = keep.sum(axis=1) if bm.balanced is None else np.full(len(q_inc), bm.kb)
    inc = set(zip(q_inc.tolist(), j_inc.tolist()))
    prog.hint(lam, [(int(qs[c]), int(js[c])) in inc for c in range(nc)])
    prog.select(lam, sub, fam)
    return prog
