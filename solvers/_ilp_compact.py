"""The ``ilp`` solver's compact model: items to blocks, on CP-SAT.

* ``x[i, a]`` (bool): item ``i`` lies in free block ``a``; block ``a`` holds
  ``size_a`` items.
* ``y[a, b]`` (bool): tile ``(a, b)`` is kept (``sum y = k``, or ``kb`` per
  free block / fixed block).
* ``z[a, b]`` (int): kept score, ``z <= sum_i R[i,b] x[i,a]`` and
  ``z <= M[a,b] y[a,b]`` with the tight big-M ``M[a,b]`` = the ``size_a``
  largest entries of ``R[:, b]``.  Objective: maximise ``sum z``.
* bound cuts (the tangents of the concave ``G_b``, see :mod:`permsolve.solvers.ilp`)
  and symmetry breaking of the interchangeable full blocks.

Scores are scaled to integers and rounded up, so ``best_bound / scale`` is a
valid upper bound; the scale costs at most ``precision`` (relative).
"""
from __future__ import annotations

import math
import time

import numpy as np

from permsolve.problem import TileProblem

from ._ilp_blocks import MARGIN, BlockModel, _gap, _give_up, _scaled, _top_sums

__all__ = ["solve_compact"]


def solve_compact(problem: TileProblem, bm: BlockModel, run, rng: np.random.Generator, config) -> None:
    """Solve the compact model of ``bm`` on CP-SAT, improving ``run`` and setting its proven bound.

    Parameters
    ----------
    problem : the (normalised) problem
    bm : its :func:`~permsolve.solvers._ilp_blocks.block_model`
    run : the solve's :class:`~permsolve.result.Run`; its incumbent is the hint
    rng : seeds CP-SAT
    config : the ``ilp`` solver's options (``precision``, ``symmetry``, ``cuts``, ``num_workers``, ``log``)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.registry import get_solver
    >>> from permsolve.result import Run
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((6, 4)), tile=(2, 2), sparsity=0.5)
    >>> run = Run(p, None, None)
    >>> solve_compact(p, block_model(p), run, np.random.default_rng(0), get_solver("ilp").Options())
    >>> run.info["status"], run.best >= p.evaluate(), run.proven_bound >= run.best
    ('OPTIMAL', True, True)
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    R, sizes, side = bm.R, bm.sizes, bm.side
    n, nfix = R.shape
    A, nf = bm.n_free, bm.n_full
    bound = problem.bound
    # rounding error: at most one unit per kept (item, fixed block) pair
    pairs = max(1, min(bm.k, A * nfix) * side)
    scale = pairs / (float(config.precision) * bound)
    Rc = _scaled(R, scale)
    top = _top_sums(Rc, n)                          # top[j, b]: j largest of column b
    M = top[sizes]                                   # M[a, b] = top[size_a, b]

    # rough cost of building the model in Python (25 us a variable or constraint, 1 us a term)
    estimate = 25e-6 * (n * A + 3 * n * nf + 2 * A * nfix) + 1e-6 * A * nfix * n
    if run.time_limit is not None and estimate > 0.4 * (run.time_left() - MARGIN * run.time_limit):
        return _give_up(problem, run, f"building the model would take about {estimate:.2g} s")
    model = cp_model.CpModel()
    Sum, WSum = cp_model.LinearExpr.Sum, cp_model.LinearExpr.WeightedSum
    # x[i, a]; with symmetry breaking, item i can only be in full block a <= i
    allowed = np.ones((n, A), dtype=bool)
    if config.symmetry and nf > 1:
        allowed[:, :nf] = np.arange(n)[:, None] >= np.arange(nf)[None, :]
    x = np.empty((n, A), dtype=object)
    for i, a in zip(*np.nonzero(allowed)):
        x[i, a] = model.NewBoolVar("")
    y = np.array([[model.NewBoolVar("") for b in range(nfix)] for a in range(A)], dtype=object)
    z = np.array([[model.NewIntVar(0, int(M[a, b]), "") for b in range(nfix)] for a in range(A)],
                 dtype=object)
    cols_x = [list(x[allowed[:, a], a]) for a in range(A)]
    for i in range(n):
        model.AddExactlyOne(list(x[i, allowed[i]]))
    for a in range(A):
        model.Add(Sum(cols_x[a]) == int(sizes[a]))
    if config.symmetry and nf > 1:
        # started[i, a] = number of items <= i in block a (a prefix sum, so the LP is unchanged);
        # block a may hold item i only if block a-1 holds an earlier item
        for a in range(nf - 1):
            prev = None
            for i in range(a, n - 1):
                cur = model.NewIntVar(0, int(sizes[a]), "")
                model.Add(cur == (x[i, a] if prev is None else prev + x[i, a]))
                if allowed[i + 1, a + 1]:
                    model.Add(x[i + 1, a + 1] <= cur)
                prev = cur
        if run.time_limit is not None and time.perf_counter() - t0 > 0.5 * max(0.0, run.time_left()):
            return _give_up(problem, run, "building the model took the time")
    # masks
    if bm.balanced is None:
        model.Add(Sum(list(y.ravel())) == bm.k)
    elif bm.balanced == "free":
        for a in range(A):
            model.Add(Sum(list(y[a])) == bm.kb)
    else:
        for b in range(nfix):
            model.Add(Sum(list(y[:, b])) == bm.kb)
    # tile scores
    for a in range(A):
        idx = np.flatnonzero(allowed[:, a])
        for b in range(nfix):
            coef = Rc[idx, b]
            nz = coef > 0
            model.Add(z[a, b] <= WSum(list(x[idx[nz], a]), coef[nz].tolist()))
            model.Add(z[a, b] <= int(M[a, b]) * y[a, b])
    if run.time_limit is not None and time.perf_counter() - t0 > 0.5 * max(0.0, run.time_left()):
        return _give_up(problem, run, "building the model took the time")
    # bound cuts
    if config.cuts:
        G = top[np.minimum(np.arange(A + 1) * side, n)]  # G[j, b]
        for b in range(nfix):
            zs = Sum(list(z[:, b]))
            if bm.balanced == "fixed":
                model.Add(zs <= int(G[bm.kb, b]))
                continue
            ns = Sum(list(y[:, b]))
            for j in range(A):
                slope = int(G[j + 1, b] - G[j, b])
                if j > 0 and slope == int(G[j, b] - G[j - 1, b]):
                    continue  # same line as the previous cut
                model.Add(zs - slope * ns <= int(G[j, b]) - slope * j)
                if slope == 0:
                    break
        if bm.balanced == "free":
            P = np.sort(Rc, axis=1)[:, ::-1][:, : bm.kb].sum(axis=1)
            for a in range(A):
                idx = np.flatnonzero(allowed[:, a])
                model.Add(Sum(list(z[a])) <= WSum(list(x[idx, a]), P[idx].tolist()))
    model.Maximize(Sum(list(z.ravel())))

    # hint: the incumbent, relabelled to satisfy the symmetry breaking
    block_of = bm.blocks_from_perm(run.best_perms[bm.perm_name])
    _hint(model, bm, problem, block_of, x, y, z, Rc, allowed)

    build = time.perf_counter() - t0
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.random_seed = int(rng.integers(2**31 - 1))
    p.num_workers = int(config.num_workers)
    if p.num_workers > 1:
        p.interleave_search = True
    p.log_search_progress = bool(config.log)
    if run.time_limit is not None:
        p.max_time_in_seconds = max(0.01, run.time_left() - MARGIN * run.time_limit)

    solved = {"n": 0}
    perm_name = bm.perm_name
    var_x = [(i, a, x[i, a].Index()) for i in range(n) for a in range(A) if allowed[i, a]]
    xi = np.array([v[0] for v in var_x]); xa = np.array([v[1] for v in var_x])
    xidx = np.array([v[2] for v in var_x])

    class _Callback(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(cb):
            sol = np.asarray(cb.response_proto.solution, dtype=np.int64)
            on = sol[xidx] > 0
            blk = np.empty(n, dtype=np.int64)
            blk[xi[on]] = xa[on]
            run.offer({perm_name: bm.perm_from_blocks(blk)})
            solved["n"] += 1

    status = solver.Solve(model, _Callback())
    name = solver.StatusName(status)
    run.nit = solved["n"]
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound_int = solver.BestObjectiveBound()
        proven = math.nextafter(float(bound_int) / scale, math.inf) if np.isfinite(bound_int) else bound
        proven = min(proven, bound)
    elif status == cp_model.UNKNOWN:
        proven = bound      # stopped before any solution: CP-SAT's bound means nothing then
    else:
        raise RuntimeError(f"ilp: CP-SAT returned {name}; this is a bug in the model")
    run.proven_bound = proven
    run.info.update(status=name, best_bound=proven, gap=_gap(run.best, proven), scale=scale,
                    build_seconds=build, solve_seconds=solver.WallTime(), conflicts=solver.NumConflicts(),
                    branches=solver.NumBranches(), solutions=solved["n"])


def _hint(model, bm: BlockModel, problem: TileProblem, block_of, x, y, z, Rc, allowed) -> None:
    """Hint the solution ``block_of`` (its best mask and integer tile scores) to ``model``."""
    n, A = len(block_of), bm.n_free
    perm = bm.perm_from_blocks(block_of)
    keep = problem.masks({bm.perm_name: perm})[0]
    if bm.perm_name == "col":
        keep = keep.T                                  # (free, fixed)
    onehot = np.zeros((n, A), dtype=np.int64)
    onehot[np.arange(n), block_of] = 1
    T = onehot.T @ Rc                                  # integer tile scores (free, fixed)
    for i in range(n):
        for a in range(A):
            if allowed[i, a]:
                model.AddHint(x[i, a], int(onehot[i, a]))
    for a in range(A):
        for b in range(bm.n_fixed):
            model.AddHint(y[a, b], int(keep[a, b]))
            model.AddHint(z[a, b], int(T[a, b]) if keep[a, b] else 0)
