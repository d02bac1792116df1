"""``ilp``: exact models of the one-axis tile-permutation problem (OR-Tools).

Rows permuted (columns fixed; ``cols`` is the same model on the transpose):
the permutation only matters through *which rows share a tile row* (a row
block).  ``R[i, b]`` is the importance of row ``i`` in column block ``b``.
Two models; ``model="auto"`` takes the first when the number of possible
blocks, ``C(m, h)``, is at most ``max_patterns`` (1e6: 64 rows with 4-row
tiles), else the second.

**patterns** (set partitioning, the default).  A column is a block (a set S of
``h`` rows) with the set B of column blocks it keeps, worth ``sum_{b in B}
sum_{i in S} R[i, b]``; every row is covered once, the number of blocks is
fixed, and the mask adds ``sum |B| = k`` (``global``), ``|B| = kb``
(``row-balanced`` rows) or ``kb`` per column block (``row-balanced`` cols).
Blocks are unlabelled, so there is no symmetry to break, and the LP relaxation
pays for using the same rows in every column block, which the allocation bound
(:attr:`TileProblem.bound`) does not: on random 32x32 matrices with 4x4 tiles
its bound is 0.1 to 0.3 % above the optimum where the allocation bound is 3 %
above.  Steps: (1) column generation on the LP (HiGHS through scipy), pricing
every subset exactly (vectorised); (2) for any duals ``y``, every solution has
``value = b.y + sum(reduced costs of its columns)``, so ``b.y + blocks *
max(0, max rc)`` is a valid bound, and a column whose reduced cost drops
that below the incumbent is never part of a better solution (reduced-cost
fixing); (3) restricted integer programs over the best columns raise the
incumbent (which shrinks the survivors), then the exact program over all
survivors goes to SCIP (default) or CP-SAT.

**compact** (rows to blocks, CP-SAT; for larger tiles):

* ``x[i, a]`` (bool): row ``i`` lies in row block ``a``; block ``a`` holds
  ``size_a`` rows (``h``; the last one fewer when ``h`` does not divide ``m``).
* ``y[a, b]`` (bool): tile ``(a, b)`` is kept (``sum y = k``, or ``kb`` per
  tile row / tile column).
* ``z[a, b]`` (int): kept score, ``z <= sum_i R[i,b] x[i,a]`` and
  ``z <= M[a,b] y[a,b]`` with the tight big-M ``M[a,b]`` = the ``size_a``
  largest entries of ``R[:, b]``.  Objective: maximise ``sum z``.
* **bound cuts**: in column block ``b``, ``n_b = sum_a y[a,b]`` kept tiles
  hold at most ``G_b(n_b)``, the ``n_b*h`` largest entries of ``R[:, b]``;
  ``G_b`` is concave piecewise linear, so its tangent lines ``sum_a z[a,b] <=
  G_b(j) + (G_b(j+1)-G_b(j)) (n_b - j)`` are valid cuts, and the root
  relaxation is at least as strong as the allocation bound.  For
  ``row-balanced`` rows a block also keeps at most the ``kb`` best column
  blocks of each of its rows: ``sum_b z[a,b] <= sum_i P_i x[i,a]``.
* **symmetry breaking**: full blocks are interchangeable, so block ``a`` may
  hold row ``i`` only if an earlier row lies in block ``a-1`` (the first rows
  of the blocks increase; the shorter last block is not in the chain).

CP-SAT needs integer coefficients: scores are scaled and rounded **up**
(``floor(v*scale)+1`` for ``v > 0``), so the integer optimum over-estimates
every solution and ``best_bound/scale`` stays a valid upper bound; ``scale`` is
chosen so that the rounding costs at most ``precision`` (relative).  SCIP
works in floating point; its dual bound carries its own tolerances (about
1e-9 relative).  The value reported is recomputed exactly by the base class.

The solver starts from ``hungarian``'s answer (or greedy's; a warm start
``init`` is kept if better) and gives the incumbent to the solver as a hint;
every improving solution reaches the anytime trace through a solution
callback.  Single-threaded solvers with a fixed seed make a run that ends by
proof deterministic; ``num_workers > 1`` (CP-SAT) uses ``interleave_search``.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.random.default_rng(0).random((8, 8))
>>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
>>> r = solve(p, "ilp", time_limit=10)
>>> r.optimal, r.retained >= solve(p, "hungarian").retained
(True, True)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from permsolve.bounds import col_profile, row_profile
from permsolve.masks import GlobalMask, RowBalancedMask
from permsolve.problem import TileProblem
from permsolve.registry import Solver, register

__all__ = ["ILP", "BlockModel", "block_model"]

# OR-Tools and scipy.optimize (about 2 s of imports) are imported when an ILP solver is
# constructed (:func:`_backends`), not when the registry loads this module: a command that
# runs another solver does not pay for them, and the first solve's clock does not either
pywraplp = cp_model = linprog = None


def _backends() -> None:
    global pywraplp, cp_model, linprog
    if linprog is None:
        from ortools.linear_solver import pywraplp as _pl
        from ortools.sat.python import cp_model as _cp
        from scipy.optimize import linprog as _lp
        pywraplp, cp_model, linprog = _pl, _cp, _lp


#: seconds to enumerate and price one pattern (measured: 1.2 to 3.5 s for 635,376 on a loaded 2-core machine)
_ENUM_SECONDS = 4e-6

#: share of the time limit kept back for the final bookkeeping after the solver returns
_MARGIN = 0.05


@dataclass
class BlockModel:
    """The problem seen as "assign items to blocks" (items = the free axis).

    Attributes
    ----------
    R : (n_items, n_fixed) importance of item ``i`` in fixed block ``b``
    sizes : number of items in each free block (the last one may be shorter)
    side : full block size (the tile's side along the free axis)
    k : total kept tiles (``global``)
    balanced : None (global), ``"free"`` (every free block keeps ``kb``) or
        ``"fixed"`` (every fixed block keeps ``kb``)
    kb : tiles kept per balanced block
    perm_name : which permutation of the problem this is
    """

    R: np.ndarray
    sizes: np.ndarray
    side: int
    k: int
    balanced: str | None
    kb: int
    perm_name: str

    @property
    def n_free(self) -> int:
        return len(self.sizes)

    @property
    def n_fixed(self) -> int:
        return self.R.shape[1]

    @property
    def n_full(self) -> int:
        """Number of blocks of full size (interchangeable)."""
        return int(np.sum(self.sizes == self.side))

    def perm_from_blocks(self, block_of: np.ndarray) -> np.ndarray:
        """Permutation placing block 0's items first (ascending), then block 1's..."""
        return np.lexsort((np.arange(len(block_of)), block_of)).astype(np.int64)

    def blocks_from_perm(self, perm: np.ndarray) -> np.ndarray:
        """Block of each item, relabelled canonically (full blocks ordered by their first item)."""
        n = len(perm)
        pos_block = np.repeat(np.arange(self.n_free), self.sizes)
        block_of = np.empty(n, dtype=np.int64)
        block_of[np.asarray(perm)] = pos_block
        # canonical order of the full blocks: by their smallest item
        nf = self.n_full
        first = np.full(self.n_free, n, dtype=np.int64)
        np.minimum.at(first, block_of, np.arange(n))
        order = np.argsort(first[:nf], kind="stable")
        relabel = np.arange(self.n_free)
        relabel[order] = np.arange(nf)
        return relabel[block_of]


def block_model(problem: TileProblem) -> BlockModel:
    """The :class:`BlockModel` of a single-matrix problem permuted on rows or on columns.

    Examples
    --------
    >>> import numpy as np
    >>> p = TileProblem.from_matrix(np.ones((5, 4)), tile=(2, 2), sparsity=0.5)
    >>> bm = block_model(p)
    >>> bm.sizes.tolist(), bm.k, bm.R.shape
    ([2, 2, 1], 3, (5, 2))
    """
    if not problem.is_single or problem.axis not in ("rows", "cols"):
        raise ValueError("ilp handles a single matrix permuted on rows or on columns")
    mem = problem.members[0]
    S, (h, w) = mem.importance, mem.tile
    mb, nb = mem.grid
    if not isinstance(mem.mask, (GlobalMask, RowBalancedMask)):
        raise ValueError(f"ilp does not know the mask family {mem.mask}")
    mask = mem.mask.name
    if problem.axis == "rows":
        R, side, n_free, n_items = row_profile(S, w), h, mb, S.shape[0]
        balanced = "free" if mask == "row-balanced" else None
    else:
        R, side, n_free, n_items = col_profile(S, h), w, nb, S.shape[1]
        balanced = "fixed" if mask == "row-balanced" else None
    sizes = np.full(n_free, side, dtype=np.int64)
    sizes[-1] = n_items - side * (n_free - 1)
    kb = mem.mask.per_row(nb, mem.sparsity) if mask == "row-balanced" else 0
    return BlockModel(R=R, sizes=sizes, side=side, k=mem.n_kept, balanced=balanced, kb=kb,
                      perm_name="row" if problem.axis == "rows" else "col")


def _scaled(R: np.ndarray, scale: float) -> np.ndarray:
    """``R*scale`` rounded up (strictly above for ``R > 0``): integer over-estimates."""
    Rc = np.floor(R * scale).astype(np.int64) + 1
    Rc[R <= 0] = 0
    return Rc


def _top_sums(Rc: np.ndarray, counts: int) -> np.ndarray:
    """``out[j, b]`` = sum of the ``j`` largest entries of column ``b`` (``j = 0..counts``)."""
    Rs = -np.sort(-Rc, axis=0)
    n = Rs.shape[0]
    if counts > n:
        Rs = np.vstack([Rs, np.zeros((counts - n, Rs.shape[1]), dtype=Rs.dtype)])
    return np.vstack([np.zeros((1, Rs.shape[1]), dtype=Rs.dtype), np.cumsum(Rs[:counts], axis=0)])


@register
class ILP(Solver):
    name = "ilp"
    description = "exact: set partitioning of rows into blocks (column generation + SCIP), or a compact CP-SAT model"
    options = {
        "start": "auto",          # solver giving the start and the hint (hungarian, greedy, anneal...), none,
                                  # or auto: hungarian, anneal for row-balanced columns
        "model": "auto",          # patterns (set partitioning), compact (rows to blocks), auto
        "max_patterns": 1_000_000,  # auto: patterns when C(n, h) is at most this, else compact
        "backend": "scip",        # integer program of the patterns model: scip (pywraplp) or cp-sat
        "mip_columns": 10_000,    # patterns: most subsets in one restricted integer program
        "num_workers": 1,         # CP-SAT workers (1 is deterministic; >1 uses interleave_search)
        "precision": 1e-10,       # CP-SAT: relative cost of rounding the scores to integers
        "cuts": True,             # the G_b tangent cuts and row cuts
        "symmetry": True,         # break the symmetry of interchangeable blocks
        "log": False,             # print the solver's log
    }
    exact = True
    anytime = True
    randomized = True
    axes = frozenset({"rows", "cols"})
    #: the mask families this solver's programs encode
    masks = (GlobalMask, RowBalancedMask)

    def supports(self, problem):
        why = super().supports(problem)
        if why:
            return why
        for m in problem.members:
            if not isinstance(m.mask, self.masks):
                return f"solver 'ilp' encodes the global and row-balanced masks, not {m.mask}"
        return None

    def __init__(self, **options):
        super().__init__(**options)
        _backends()

    # ------------------------------------------------------------------ main
    def _solve(self, problem, run, rng):
        o = self.opts
        if o["backend"] not in ("cp-sat", "scip"):
            raise ValueError(f"ilp: backend must be cp-sat or scip, got {o['backend']!r}")
        if o["model"] not in ("auto", "patterns", "compact"):
            raise ValueError(f"ilp: model must be auto, patterns or compact, got {o['model']!r}")
        if o["start"] not in ("none", "auto"):
            from permsolve.registry import solvers
            known = sorted(set(solvers()) - {self.name})
            if o["start"] not in known:
                raise ValueError(f"ilp: start must be none or one of {', '.join(known)}, got {o['start']!r}")
        if int(o["num_workers"]) < 1:
            raise ValueError(f"ilp: num_workers must be >= 1, got {o['num_workers']}")
        if not (0 < float(o["precision"]) < 1e-3):
            raise ValueError(f"ilp: precision must be in (0, 1e-3), got {o['precision']}")
        bm = block_model(problem)
        self._start(problem, run, bm, rng)
        run.info.update(backend=o["backend"])
        # trivial cases: no permutation changes the value, or the start already meets the bound
        why = self._trivial(problem, bm, run)
        if why:
            run.proven_bound = run.best
            run.info.update(status="OPTIMAL", best_bound=run.best, gap=0.0, shortcut=why)
            return
        if run.expired():
            run.info.update(status="NOT_STARTED", best_bound=problem.bound,
                            gap=_gap(run.best, problem.bound))
            return
        model = o["model"]
        n_pat = _n_patterns(bm)
        # enumerating the patterns cannot be interrupted (about 2e-6 s each on a loaded 2-core machine)
        enum_s = _ENUM_SECONDS * n_pat
        if model == "auto":
            model = "patterns" if n_pat <= int(o["max_patterns"]) else "compact"
            if model == "patterns" and run.time_limit is not None and enum_s > 0.5 * run.time_left():
                model = "compact"
        run.info["model"] = model
        if model == "patterns" and run.time_limit is not None and enum_s > run.time_left():
            self._give_up(problem, run, f"enumerating {n_pat} patterns would take about {enum_s:.1f} s")
            return
        if model == "patterns":
            self._patterns(problem, bm, run, rng)
        else:
            self._cpsat(problem, bm, run, rng)      # the compact model always runs on CP-SAT

    def _start(self, problem, run, bm, rng):
        """Warm start: ``init`` is already the incumbent; add the heuristic's answer."""
        from permsolve.registry import SOLVERS, get_solver

        start = self.opts["start"]
        if start == "none":
            return
        if start == "auto":
            # row-balanced columns: the block + keep program finds few improvements by itself,
            # and a strong incumbent is what shrinks it (measured: 0/3 -> 2/3 proven at 32x32)
            start = "anneal" if bm.balanced == "fixed" and "anneal" in SOLVERS else "hungarian"
        budget = None if run.time_limit is None else max(1e-3, 0.2 * run.time_left())
        opts = {}
        if start == "anneal" and (budget is None or 0.05 * bm.R.shape[0] <= budget):
            # a fixed schedule (about 1.6 s at 32 units; it reaches the optimum on the 32x32
            # instances we tried) is reproducible; a time-limited one depends on machine speed
            budget, opts = None, {"moves_per_unit": 5000, "restarts": 4}
        cls = get_solver(start)
        opts = {k: v for k, v in opts.items() if k in cls.options}
        res = cls(**opts).solve(problem, time_limit=budget, seed=int(rng.integers(2**31 - 1)),
                                init=run.best_perms if run.has_init else None)
        run.offer(res.perms, res.retained)
        run.info["start"] = {"solver": start, "value": res.retained, "seconds": res.seconds}

    def _trivial(self, problem, bm: BlockModel, run) -> str | None:
        if problem.total <= 0:
            return "all-zero matrix"
        if bm.n_free <= 1:
            return "one block along the permuted axis"
        if bm.side == 1:
            return "blocks of one item: every order keeps the same tiles"
        if bm.k <= 0:
            return "no tile kept"
        if bm.k >= bm.n_free * bm.n_fixed:
            return "every tile kept"
        bound = problem.bound
        if run.best >= bound * (1 - 1e-12):
            return "the start reaches the bound"
        return None

    # --------------------------------------------------------------- CP-SAT
    def _cpsat(self, problem, bm: BlockModel, run, rng):
        o = self.opts
        t0 = time.perf_counter()
        R, sizes, side = bm.R, bm.sizes, bm.side
        n, nfix = R.shape
        A, nf = bm.n_free, bm.n_full
        bound = problem.bound
        # rounding error: at most one unit per kept (item, fixed block) pair
        pairs = max(1, min(bm.k, A * nfix) * side)
        scale = pairs / (float(o["precision"]) * bound)
        Rc = _scaled(R, scale)
        top = _top_sums(Rc, n)                          # top[j, b]: j largest of column b
        M = top[sizes]                                   # M[a, b] = top[size_a, b]

        # rough cost of building the model in Python (25 us a variable or constraint, 1 us a term)
        estimate = 25e-6 * (n * A + 3 * n * nf + 2 * A * nfix) + 1e-6 * A * nfix * n
        if run.time_limit is not None and estimate > 0.4 * (run.time_left() - _MARGIN * run.time_limit):
            return self._give_up(problem, run, f"building the model would take about {estimate:.2g} s")
        model = cp_model.CpModel()
        Sum, WSum = cp_model.LinearExpr.Sum, cp_model.LinearExpr.WeightedSum
        # x[i, a]; with symmetry breaking, item i can only be in full block a <= i
        allowed = np.ones((n, A), dtype=bool)
        if o["symmetry"] and nf > 1:
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
        if o["symmetry"] and nf > 1:
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
                return self._give_up(problem, run, "building the model took the time")
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
            return self._give_up(problem, run, "building the model took the time")
        # bound cuts
        if o["cuts"]:
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
        self._hint_cpsat(model, bm, problem, run, block_of, x, y, z, Rc, allowed)

        build = time.perf_counter() - t0
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.random_seed = int(rng.integers(2**31 - 1))
        p.num_workers = int(o["num_workers"])
        if p.num_workers > 1:
            p.interleave_search = True
        p.log_search_progress = bool(o["log"])
        if run.time_limit is not None:
            p.max_time_in_seconds = max(0.01, run.time_left() - _MARGIN * run.time_limit)

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

    def _give_up(self, problem, run, why):
        run.proven_bound = problem.bound
        run.info.update(status="NOT_STARTED", best_bound=problem.bound, gap=_gap(run.best, problem.bound),
                        stopped=why)

    def _hint_cpsat(self, model, bm, problem, run, block_of, x, y, z, Rc, allowed):
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

    # ------------------------------------------------------------- patterns
    def _patterns(self, problem, bm, run, rng):
        _solve_patterns(self.opts, problem, bm, run, rng)


def _gap(value: float, bound: float) -> float:
    return (bound - value) / bound if bound > 0 else 0.0


# ====================================================================== patterns
#
# Set-partitioning model: a column is a block (a set S of items of the block's
# size) with the set B of fixed blocks it keeps; its value is sum_{b in B} T[S, b]
# with T[S, b] = sum_{i in S} R[i, b].  Rows: every item covered once, the number
# of full blocks (and of short blocks), and the mask (global: sum |B| = k;
# balanced per fixed block: #{columns with b in B} = kb; balanced per free block:
# |B| = kb in every column).  Blocks are unlabelled, so there is no symmetry, and
# the LP relaxation is far tighter than the compact model's: it already pays for
# using the same rows in every column block.
#
# 1. Column generation on the LP (HiGHS through scipy): the pricing problem is
#    solved exactly by enumerating all subsets (vectorised): for duals
#    (pi, sigma, mu) the best B of S keeps the b with T[S,b] - mu_b > 0.
# 2. For any duals y, every solution x satisfies value(x) = b.y + sum_c rc_c x_c
#    (rc = reduced cost), so a solution containing S is worth at most
#    b.y + rc(S) + (blocks-1) max(0, max rc): subsets for which this is below the
#    incumbent cannot be in a better solution and are dropped (reduced-cost
#    fixing), and b.y + blocks max(0, max rc) is a valid bound.
# 3. The integer program over the surviving subsets goes to CP-SAT (or SCIP).


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest values, largest first (ties by index)."""
    count = max(0, min(int(count), len(values)))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-values, count - 1)[:count] if count < len(values) else np.arange(len(values))
    return idx[np.lexsort((idx, -values[idx]))]


def _n_patterns(bm: BlockModel) -> int:
    n = bm.R.shape[0]
    total = math.comb(n, bm.side)
    r = int(bm.sizes[-1])
    if r != bm.side:
        total += math.comb(n, r)
    return total


def _subsets(n: int, size: int) -> np.ndarray:
    """All ``size``-subsets of ``range(n)``, one per row, in lexicographic order."""
    import itertools

    count = math.comb(n, size)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n), size)),
                       dtype=np.int32, count=count * size)
    return flat.reshape(count, size)


class _Columns:
    """All subsets of both families with their tile sums, and pricing."""

    def __init__(self, bm: BlockModel):
        n, nfix = bm.R.shape
        self.n, self.nfix, self.side = n, nfix, bm.side
        r = int(bm.sizes[-1])
        fams = [(bm.side, bm.n_full)] + ([(r, 1)] if r != bm.side else [])
        self.fam_count = np.array([c for _, c in fams], dtype=np.int64)
        parts, fam = [], []
        for f, (size, _) in enumerate(fams):
            sub = _subsets(n, size)
            if size < bm.side:
                sub = np.hstack([sub, np.full((len(sub), bm.side - size), n, dtype=np.int32)])
            parts.append(sub)
            fam.append(np.full(len(sub), f, dtype=np.int64))
        self.subs = np.vstack(parts)                           # (nS, side), padded with n
        self.fam = np.concatenate(fam)
        ends = np.cumsum([len(p) for p in parts])
        self._fam_range = [(int(e - len(p)), int(e)) for e, p in zip(ends, parts)]
        self._keys = self._key(self.subs)                      # sorted within each family
        self.subs_t = np.ascontiguousarray(self.subs.T)       # (side, nS): fast gathers
        Rp = np.vstack([bm.R, np.zeros((1, nfix))])
        self.T = Rp[self.subs_t[0]]                            # (nS, nfix): the blocks' tile sums
        for t in range(1, bm.side):
            self.T += Rp[self.subs_t[t]]
        self.balanced, self.k, self.kb = bm.balanced, bm.k, bm.kb
        self.n_mask_rows = {None: 1, "fixed": nfix, "free": 0}[bm.balanced]
        self.n_rows = n + len(fams) + self.n_mask_rows

    def best_keep(self, q: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For subsets ``q``: the best kept set B (bool (len(q), nfix)) and its priced value."""
        T = self.T[q]
        if self.balanced == "free":
            keep = np.zeros(T.shape, dtype=bool)
            if self.kb > 0:
                order = np.argsort(-T, axis=1, kind="stable")[:, : self.kb]
                np.put_along_axis(keep, order, True, axis=1)
            return keep, (T * keep).sum(axis=1)
        D = T - mu
        keep = D > 0
        return keep, np.where(keep, D, 0.0).sum(axis=1)

    def reduced_costs(self, y: np.ndarray) -> np.ndarray:
        """Reduced cost of the best column of every subset, for duals ``y``."""
        n = self.n
        pi = np.append(y[:n], 0.0)
        if self.balanced == "free":
            if not hasattr(self, "_topkb"):
                self._topkb = self.best_keep(np.arange(len(self.T)), None)[1]
            rc = self._topkb.copy()
        else:
            D = self.T - self._mu(y)
            np.maximum(D, 0.0, out=D)
            rc = D.sum(axis=1)
        for t in range(self.side):
            rc -= pi[self.subs_t[t]]
        rc -= y[n:n + len(self.fam_count)][self.fam]
        return rc

    def _mu(self, y):
        off = self.n + len(self.fam_count)
        if self.balanced is None:
            return np.full(self.nfix, y[off])
        if self.balanced == "fixed":
            return y[off:off + self.nfix]
        return np.zeros(self.nfix)

    def rhs(self) -> np.ndarray:
        b = [np.ones(self.n), self.fam_count.astype(float)]
        if self.balanced is None:
            b.append([float(self.k)])
        elif self.balanced == "fixed":
            b.append(np.full(self.nfix, float(self.kb)))
        return np.concatenate(b)

    def matrix(self, q: np.ndarray, keep: np.ndarray):
        """Constraint matrix (sparse) and values of columns (subset q[c], kept set keep[c])."""
        from scipy.sparse import csc_matrix

        n, nc = self.n, len(q)
        sub = self.subs[q]
        real = sub < n
        rows = [sub[real]]
        cols = [np.repeat(np.arange(nc), self.side).reshape(nc, self.side)[real]]
        vals = [np.ones(int(real.sum()))]
        rows.append(n + self.fam[q]); cols.append(np.arange(nc)); vals.append(np.ones(nc))
        off = n + len(self.fam_count)
        if self.balanced is None:
            rows.append(np.full(nc, off)); cols.append(np.arange(nc)); vals.append(keep.sum(axis=1).astype(float))
        elif self.balanced == "fixed":
            c, b = np.nonzero(keep)
            rows.append(off + b); cols.append(c); vals.append(np.ones(len(c)))
        A = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(self.n_rows, nc))
        return A, (self.T[q] * keep).sum(axis=1)

    def columns_of(self, block_of: np.ndarray, keep_blocks: np.ndarray, bm: BlockModel):
        """Subset indices (and kept sets) of a solution given as item -> block and a (free, fixed) mask."""
        q, keep = [], []
        for a in range(bm.n_free):
            items = np.sort(np.flatnonzero(block_of == a))
            q.append(self.lookup(items))
            keep.append(keep_blocks[a])
        return np.array(q), np.array(keep, dtype=bool)

    def lookup(self, items: np.ndarray) -> int:
        """Index of the subset made of ``items`` (sorted): binary search on the lexicographic keys."""
        key = self._key(np.concatenate([np.sort(items), np.full(self.side - len(items), self.n)])[None, :])[0]
        f = 0 if len(items) == self.side else 1
        lo, hi = self._fam_range[f]
        i = lo + int(np.searchsorted(self._keys[lo:hi], key))
        if i >= hi or self._keys[i] != key:
            raise KeyError(tuple(items))
        return i

    def _key(self, sub: np.ndarray) -> np.ndarray:
        key = np.zeros(len(sub), dtype=np.int64)
        for t in range(sub.shape[1]):
            key = key * (self.n + 1) + sub[:, t]
        return key


def _solve_patterns(o, problem, bm: BlockModel, run, rng):
    t0 = time.perf_counter()
    cols = _Columns(bm)
    n, nfix, nblocks = bm.R.shape[0], bm.n_fixed, bm.n_free
    b = cols.rhs()

    def incumbent_columns():
        perm = run.best_perms[bm.perm_name]
        block_of = np.repeat(np.arange(nblocks), bm.sizes)[np.argsort(perm)]
        keep = problem.masks({bm.perm_name: perm})[0]
        if bm.perm_name == "col":
            keep = keep.T
        return cols.columns_of(block_of, keep, bm)

    q_master, keep_master = incumbent_columns()
    y = None
    lagr = problem.bound
    it = 0
    # ---- 1. column generation
    t_it = time.perf_counter() - t0     # enumerating the subsets costs about one pricing pass
    while run.time_left() - _MARGIN * (run.time_limit or 0) > 1.5 * t_it:
        t1 = time.perf_counter()
        it += 1
        A, v = cols.matrix(q_master, keep_master)
        for method in ("highs-ds", "highs-ipm"):
            res = linprog(-v, A_eq=A, b_eq=b, bounds=(0, None), method=method)
            if res.status == 0:
                break
            run.info.setdefault("lp_failures", []).append(f"{method}: {res.message}")
        if res.status != 0:
            break
        y = -res.eqlin.marginals
        rc = cols.reduced_costs(y)
        lagr = min(lagr, float(b @ y) + nblocks * max(0.0, float(rc.max())))
        new = np.flatnonzero(rc > 1e-9 * abs(lagr))   # relative: the problem's own scale
        if len(new) == 0:
            break
        new = new[np.argsort(-rc[new], kind="stable")[:max(50, 4 * n)]]
        t_it = time.perf_counter() - t1
        q_master = np.concatenate([q_master, new])
        keep_master = np.vstack([keep_master, cols.best_keep(new, cols._mu(y))[0]])
    # b.y + blocks*max(0, max rc) is a valid bound for any y; the margin covers our float sums
    lagr = lagr * (1 + 1e-12)
    run.info.update(cg_iterations=it, lp_bound=lagr, patterns=len(cols.subs), cg_seconds=time.perf_counter() - t0)
    if y is None:
        run.proven_bound = problem.bound
        run.info.update(status="NOT_STARTED", best_bound=problem.bound, gap=_gap(run.best, problem.bound))
        return
    proven = lagr
    status = "LP"
    if run.time_limit is not None and run.time_left() - _MARGIN * run.time_limit < 4 * t_it:
        # no time left for the integer program (preparing it costs a few pricing passes)
        run.proven_bound = min(proven, problem.bound)
        run.info.update(status=status, best_bound=run.proven_bound, gap=_gap(run.best, run.proven_bound))
        return
    rc = cols.reduced_costs(y)
    rc_pos = max(0.0, float(rc.max()))
    # The integer program's columns: with a mask that fixes the kept set of a
    # block from its size (global: the j best; balanced per free block: the kb best),
    # explicit columns (subset, j) with no linking variables; otherwise subsets with
    # kept-tile variables w[S, b].  ``rcx`` is the reduced cost of each column.
    explicit = bm.balanced != "fixed"
    if explicit:
        Fall = np.hstack([np.zeros((len(cols.T), 1)), np.cumsum(-np.sort(-cols.T, axis=1), axis=1)])
        piS = np.append(y[:n], 0.0)[cols.subs].sum(axis=1) + y[n:n + len(cols.fam_count)][cols.fam]
        if bm.balanced is None:
            J = nfix + 1
            rcx = (Fall - np.arange(J) * cols._mu(y)[0] - piS[:, None]).ravel()
        else:
            J = 1
            rcx = Fall[:, bm.kb] - piS
        unit = bm.side + 2
    else:
        J, rcx, unit = 1, rc, nfix + 1

    def items(q_, keep_):
        if explicit and bm.balanced is None:
            return q_ * J + keep_.sum(axis=1)
        return q_

    def incumbent_items():
        return items(*incumbent_columns())

    # the columns column generation produced hold the LP optimum's support: the first
    # restricted program takes them all (when the LP optimum is integral, that is the answer)
    master_items = np.unique(items(q_master, keep_master))

    # first a small restricted program (the best columns by reduced cost) to raise the
    # incumbent, which shrinks the survivors of the fixing; then the exact program
    cap = 8 * n
    rate = 2e-5 if o["backend"] == "cp-sat" else 4e-5   # seconds to build, per unit of the program
    rounds = 0
    survive = np.zeros(0, dtype=np.int64)
    while True:
        rounds += 1
        V = run.best
        tol = 1e-10 * abs(V)
        if lagr <= V + tol:
            status = "OPTIMAL"
            proven = min(proven, max(lagr, V))
            break
        # a solution using column c is worth at most b.y + rc(c) + (nblocks-1) rc_pos
        limit = V - tol - float(b @ y) - (nblocks - 1) * rc_pos
        survive = np.flatnonzero(rcx >= limit)
        q_inc = incumbent_items()
        # after the first round (usually a good incumbent), go exact as soon as the survivors fit
        exact = len(survive) <= (4 * cap if rounds == 1 else max(cap, int(o["mip_columns"])))
        if exact:
            q = np.union1d(survive, q_inc)
        else:
            q = np.union1d(_top(rcx, min(cap, int(o["mip_columns"]))), q_inc)
            if rounds == 1:
                q = np.union1d(q, master_items)
        if run.time_limit is not None:
            # building the program costs time too: keep what can be built in half the time left
            fits = int(0.5 * max(0.0, run.time_left() - _MARGIN * run.time_limit) / (rate * unit))
            if fits < len(q):
                exact = False
                q = np.union1d(_top(rcx, fits), q_inc)
            if run.time_left() < 0.1 * run.time_limit or fits < len(q_inc):
                break
        share = 1.0 if exact else 0.15
        if explicit:
            st, bnd = _explicit_mip(o, problem, bm, cols, q // J, (q % J) if J > 1 else np.full(len(q), bm.kb),
                                    Fall, run, rng, share)
        else:
            mip = _pattern_mip if o["backend"] == "cp-sat" else _pattern_mip_scip
            st, bnd = mip(o, problem, bm, cols, q, run, rng, share)
        if run.info.get("last_build_seconds"):
            rate = max(rate, run.info["last_build_seconds"] / (len(q) * unit))
        run.info.setdefault("mip_rounds", []).append({
            "columns": int(len(q)), "survivors": int(len(survive)), "exact": bool(exact), "status": st,
            "build_s": run.info.pop("last_build_seconds", None), "solve_s": run.info.pop("last_solve_seconds", None)})
        if exact:
            status = st
            if bnd is not None:
                # solutions using a dropped subset are worth < V <= run.best
                proven = min(proven, max(bnd, V))
            break
        # next: a restricted program four times as large (each one raises the incumbent and so
        # shrinks the survivors), until the survivors fit
        cap *= 4
    run.proven_bound = min(proven, problem.bound)
    run.info.update(status=status, best_bound=run.proven_bound, gap=_gap(run.best, run.proven_bound),
                    survivors=int(len(survive)))


def _pattern_mip(o, problem, bm, cols: _Columns, q: np.ndarray, run, rng, share: float):
    """Integer program over subsets ``q``; returns (status name, valid bound on that program or None)."""
    t0 = time.perf_counter()
    n, nfix = cols.n, cols.nfix
    nq = len(q)
    T = cols.T[q]
    bound = problem.bound
    pairs = max(1, bm.k)   # one rounding (at most one unit) per kept tile
    scale = pairs / (float(o["precision"]) * bound)
    Tc = _scaled(T, scale)
    model = cp_model.CpModel()
    lam = [model.NewBoolVar(f"l{c}") for c in range(nq)]
    w = [[model.NewBoolVar(f"w{c}_{j}") for j in range(nfix)] for c in range(nq)]
    sub = cols.subs[q]
    # cover every item once
    owners = [[] for _ in range(n)]
    for c in range(nq):
        for i in sub[c]:
            if i < n:
                owners[i].append(lam[c])
    for i in range(n):
        model.AddExactlyOne(owners[i])
    for f, cnt in enumerate(cols.fam_count):
        model.Add(sum(lam[c] for c in np.flatnonzero(cols.fam[q] == f)) == int(cnt))
    for c in range(nq):
        for j in range(nfix):
            model.Add(w[c][j] <= lam[c])
    if bm.balanced is None:
        model.Add(sum(w[c][j] for c in range(nq) for j in range(nfix)) == bm.k)
    elif bm.balanced == "free":
        for c in range(nq):
            model.Add(sum(w[c]) == bm.kb * lam[c])
    else:
        for j in range(nfix):
            model.Add(sum(w[c][j] for c in range(nq)) == bm.kb)
    wflat = [w[c][j] for c in range(nq) for j in range(nfix)]
    model.Maximize(cp_model.LinearExpr.WeightedSum(wflat, Tc.ravel().tolist()))
    # hint: the incumbent
    perm = run.best_perms[bm.perm_name]
    block_of = np.repeat(np.arange(bm.n_free), bm.sizes)[np.argsort(perm)]
    keep = problem.masks({bm.perm_name: perm})[0]
    if bm.perm_name == "col":
        keep = keep.T
    qi, _ = cols.columns_of(block_of, keep, bm)
    pos = {int(v): c for c, v in enumerate(q)}
    chosen = {pos[int(v)]: a for a, v in enumerate(qi) if int(v) in pos}
    for c in range(nq):
        a = chosen.get(c)
        model.AddHint(lam[c], a is not None)
        for j in range(nfix):
            model.AddHint(w[c][j], bool(a is not None and keep[a, j]))

    return _solve_patterns_cpsat(model, lam, cols.fam[q], sub, n, bm, run, rng, o, share, scale, t0,
                                 linearization=2)


def _solve_patterns_cpsat(model, lam, fam, sub, n: int, bm, run, rng, o, share: float, scale: float,
                          t0: float, linearization: int | None = None):
    """Solve a pattern program built with CP-SAT; offer each solution's blocks to the run.

    ``lam[c]`` selects column ``c`` (rows ``sub[c]``, family ``fam[c]``).  Returns
    ``(status name, valid upper bound or None)``.
    """
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.random_seed = int(rng.integers(2**31 - 1))
    p.num_workers = int(o["num_workers"])
    if p.num_workers > 1:
        p.interleave_search = True
    p.log_search_progress = bool(o["log"])
    if linearization is not None:
        p.linearization_level = linearization
    if run.time_limit is not None:
        p.max_time_in_seconds = max(0.01, share * (run.time_left() - _MARGIN * run.time_limit))
    lam_idx = np.array([v.Index() for v in lam])

    class _Callback(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(cb):
            sol = np.asarray(cb.response_proto.solution, dtype=np.int64)
            on = np.flatnonzero(sol[lam_idx] > 0)
            on = on[np.argsort(fam[on], kind="stable")]     # full blocks first, the short one last
            blk = np.empty(n, dtype=np.int64)
            for a, c in enumerate(on):
                blk[sub[c][sub[c] < n]] = a
            run.offer({bm.perm_name: bm.perm_from_blocks(blk)})
            run.nit += 1

    run.info["last_build_seconds"] = time.perf_counter() - t0
    status = solver.Solve(model, _Callback())
    run.info["last_solve_seconds"] = solver.WallTime()
    name = solver.StatusName(status)
    if name in ("MODEL_INVALID", "INFEASIBLE"):
        raise RuntimeError(f"ilp: CP-SAT returned {name} on the pattern program; this is a bug")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None       # no bound (CP-SAT's best_objective_bound means nothing then)
    bnd = solver.BestObjectiveBound()
    if not np.isfinite(bnd):
        return name, None
    return name, math.nextafter(float(bnd) / scale, math.inf)


def _incumbent_blocks(problem, bm: BlockModel, run):
    perm = run.best_perms[bm.perm_name]
    block_of = np.repeat(np.arange(bm.n_free), bm.sizes)[np.argsort(perm)]
    keep = problem.masks({bm.perm_name: perm})[0]
    if bm.perm_name == "col":
        keep = keep.T
    return block_of, keep


def _pattern_mip_scip(o, problem, bm, cols: _Columns, q: np.ndarray, run, rng, share: float):
    """The same integer program solved by SCIP through pywraplp (floating point)."""
    t0 = time.perf_counter()
    n, nfix, nq = cols.n, cols.nfix, len(q)
    T = cols.T[q]
    sub = cols.subs[q]
    s = pywraplp.Solver.CreateSolver("SCIP")
    lam = [s.BoolVar(f"l{c}") for c in range(nq)]
    w = [[s.NumVar(0.0, 1.0, f"w{c}_{j}") for j in range(nfix)] for c in range(nq)]
    owners = [[] for _ in range(n)]
    for c in range(nq):
        for i in sub[c]:
            if i < n:
                owners[i].append(lam[c])
    for i in range(n):
        s.Add(s.Sum(owners[i]) == 1)
    for f, cnt in enumerate(cols.fam_count):
        s.Add(s.Sum([lam[c] for c in np.flatnonzero(cols.fam[q] == f)]) == int(cnt))
    for c in range(nq):
        for j in range(nfix):
            s.Add(w[c][j] <= lam[c])
    if bm.balanced is None:
        s.Add(s.Sum([w[c][j] for c in range(nq) for j in range(nfix)]) == bm.k)
    elif bm.balanced == "free":
        for c in range(nq):
            s.Add(s.Sum(w[c]) == bm.kb * lam[c])
    else:
        for j in range(nfix):
            s.Add(s.Sum([w[c][j] for c in range(nq)]) == bm.kb)
    obj = s.Objective()
    for c in range(nq):
        for j in range(nfix):
            obj.SetCoefficient(w[c][j], float(T[c, j]))
    obj.SetMaximization()
    block_of, keep = _incumbent_blocks(problem, bm, run)
    qi, _ = cols.columns_of(block_of, keep, bm)
    pos = {int(v): c for c, v in enumerate(q)}
    hint_vars, hint_vals = [], []
    chosen = {pos[int(v)]: a for a, v in enumerate(qi) if int(v) in pos}
    for c in range(nq):
        a = chosen.get(c)
        hint_vars.append(lam[c]); hint_vals.append(1.0 if a is not None else 0.0)
        for j in range(nfix):
            hint_vars.append(w[c][j]); hint_vals.append(1.0 if (a is not None and keep[a, j]) else 0.0)
    s.SetHint(hint_vars, hint_vals)
    return _scip_solve(s, obj, lam, sub, cols.fam[q], n, bm, o, run, rng, share, t0)


def _explicit_mip(o, problem, bm, cols: _Columns, qs: np.ndarray, js: np.ndarray, Fall: np.ndarray,
                  run, rng, share: float):
    """Set partitioning over columns (subset qs[c], keeps its js[c] best tiles), CP-SAT."""
    if o["backend"] == "scip":
        return _explicit_mip_scip(o, problem, bm, cols, qs, js, Fall, run, rng, share)
    t0 = time.perf_counter()
    n, nc = cols.n, len(qs)
    val = Fall[qs, js]
    scale = max(1, bm.n_free) / (float(o["precision"]) * problem.bound)   # one rounding per block
    vc = _scaled(val, scale)
    model = cp_model.CpModel()
    lam = [model.NewBoolVar(f"c{c}") for c in range(nc)]
    sub = cols.subs[qs]
    # cover every item once: owners of item i, vectorised
    rows, cc = np.nonzero(sub < n)
    items = sub[rows, cc]
    order = np.argsort(items, kind="stable")
    items, rows = items[order], rows[order]
    cuts = np.searchsorted(items, np.arange(n + 1))
    for i in range(n):
        model.AddExactlyOne([lam[c] for c in rows[cuts[i]:cuts[i + 1]]])
    fam = cols.fam[qs]
    for f, cnt in enumerate(cols.fam_count):
        model.Add(cp_model.LinearExpr.Sum([lam[c] for c in np.flatnonzero(fam == f)]) == int(cnt))
    if bm.balanced is None:
        model.Add(cp_model.LinearExpr.WeightedSum(lam, js.tolist()) == bm.k)
    model.Maximize(cp_model.LinearExpr.WeightedSum(lam, vc.tolist()))
    # hint: the incumbent
    block_of, keep = _incumbent_blocks(problem, bm, run)
    q_inc, _ = cols.columns_of(block_of, keep, bm)
    j_inc = keep.sum(axis=1) if bm.balanced is None else np.full(len(q_inc), bm.kb)
    inc = set(zip(q_inc.tolist(), j_inc.tolist()))
    for c in range(nc):
        model.AddHint(lam[c], (int(qs[c]), int(js[c])) in inc)

    return _solve_patterns_cpsat(model, lam, fam, sub, n, bm, run, rng, o, share, scale, t0)


def _explicit_mip_scip(o, problem, bm, cols: _Columns, qs, js, Fall, run, rng, share):
    """:func:`_explicit_mip` through SCIP (pywraplp, floating point, gap 0)."""
    t0 = time.perf_counter()
    n, nc = cols.n, len(qs)
    val = Fall[qs, js]
    s = pywraplp.Solver.CreateSolver("SCIP")
    lam = [s.BoolVar(f"c{c}") for c in range(nc)]
    sub = cols.subs[qs]
    rows, cc = np.nonzero(sub < n)
    items = sub[rows, cc]
    order = np.argsort(items, kind="stable")
    items, rows = items[order], rows[order]
    cuts = np.searchsorted(items, np.arange(n + 1))
    for i in range(n):
        s.Add(s.Sum([lam[c] for c in rows[cuts[i]:cuts[i + 1]]]) == 1)
    fam = cols.fam[qs]
    for f, cnt in enumerate(cols.fam_count):
        s.Add(s.Sum([lam[c] for c in np.flatnonzero(fam == f)]) == int(cnt))
    if bm.balanced is None:
        ct = s.Constraint(float(bm.k), float(bm.k))
        for c in range(nc):
            ct.SetCoefficient(lam[c], float(js[c]))
    obj = s.Objective()
    for c in range(nc):
        obj.SetCoefficient(lam[c], float(val[c]))
    obj.SetMaximization()
    block_of, keep = _incumbent_blocks(problem, bm, run)
    q_inc, _ = cols.columns_of(block_of, keep, bm)
    j_inc = keep.sum(axis=1) if bm.balanced is None else np.full(len(q_inc), bm.kb)
    inc = set(zip(q_inc.tolist(), j_inc.tolist()))
    s.SetHint(lam, [1.0 if (int(qs[c]), int(js[c])) in inc else 0.0 for c in range(nc)])
    return _scip_solve(s, obj, lam, sub, fam, n, bm, o, run, rng, share, t0)


def _scip_solve(s, obj, lam, sub, fam, n, bm, o, run, rng, share, t0):
    """Solve a set-partitioning program built in SCIP (``lam[c]``: column ``c`` is used) and
    offer its solution; returns the status name and SCIP's dual bound (None if no solution).

    Column ``c`` covers the units ``sub[c]`` (entries ``>= n`` are padding) and belongs to
    family ``fam[c]``; the chosen columns become tile blocks in family order.
    """
    s.SetNumThreads(1)
    s.SetSolverSpecificParametersAsString(f"randomization/randomseedshift = {int(rng.integers(2**20))}\n"
                                          "limits/gap = 0\nlimits/absgap = 0\n")
    if o["log"]:
        s.EnableOutput()
    if run.time_limit is not None:
        s.SetTimeLimit(int(1000 * max(0.01, share * (run.time_left() - _MARGIN * run.time_limit))))
    run.info["last_build_seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    st = s.Solve()
    run.info["last_solve_seconds"] = time.perf_counter() - t1
    name = {pywraplp.Solver.OPTIMAL: "OPTIMAL", pywraplp.Solver.FEASIBLE: "FEASIBLE"}.get(st, f"STATUS_{st}")
    if st not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return name, None
    lv = np.array([v.solution_value() for v in lam])
    on = np.flatnonzero(lv > 0.5)
    on = on[np.argsort(fam[on], kind="stable")]
    blk = np.empty(n, dtype=np.int64)
    for a, c in enumerate(on):
        blk[sub[c][sub[c] < n]] = a
    run.offer({bm.perm_name: bm.perm_from_blocks(blk)})
    run.nit += 1
    # SCIP's dual bound carries its feasibility tolerances (about 1e-9 relative here)
    return name, float(obj.BestBound())
