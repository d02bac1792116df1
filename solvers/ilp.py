"""``ilp``: an exact model of the one-axis tile-permutation problem (OR-Tools).

Rows permuted (columns fixed; ``cols`` is the same model on the transpose):
the permutation only matters through *which rows share a tile row* (a row
block), so the model assigns rows to blocks.  With ``R[i, b]`` the importance
of row ``i`` in column block ``b``:

* ``x[i, a]`` (bool): row ``i`` lies in row block ``a``; each row in one
  block, block ``a`` holds ``size_a`` rows (``h``, the last one less when
  ``h`` does not divide ``m``: zero padding).
* ``y[a, b]`` (bool): tile ``(a, b)`` is kept.  ``global``: ``sum y = k``;
  ``row-balanced``: every tile row keeps ``kb`` tiles.
* ``z[a, b]`` (int): kept score of tile ``(a, b)``, ``z <= sum_i R[i,b] x[i,a]``
  and ``z <= M[a,b] y[a,b]`` with the tight big-M ``M[a,b]`` = the ``size_a``
  largest entries of ``R[:, b]``.  Objective: maximise ``sum z``.

What makes the bound useful (a naive model stalls with a useless bound at 32
rows):

* **bound cuts**: in column block ``b``, ``n_b = sum_a y[a,b]`` kept tiles
  hold at most ``G_b(n_b)``, the ``n_b*h`` largest entries of ``R[:, b]``.
  ``G_b`` is concave piecewise linear, so ``sum_a z[a,b] <= G_b(j) +
  (G_b(j+1)-G_b(j)) (n_b - j)`` for every ``j`` is valid; with them the root
  relaxation is at least as strong as :attr:`TileProblem.bound`.  For
  ``row-balanced`` rows a block also keeps at most the ``kb`` best column
  blocks of each of its rows: ``sum_b z[a,b] <= sum_i P_i x[i,a]``.
* **symmetry breaking**: full blocks are interchangeable, so block ``a`` may
  hold row ``i`` only if an earlier row lies in block ``a-1`` (the first rows
  of the blocks increase; the shorter last block is not part of the chain).

CP-SAT needs integer coefficients: ``R`` is scaled and rounded **up**
(``floor(R*scale)+1`` for ``R > 0``), so the integer optimum over-estimates
every solution and ``best_bound/scale`` stays a valid upper bound; ``scale`` is
chosen so that the rounding costs at most ``precision`` (relative) of the
bound.  The value reported is recomputed exactly by the base class.

The solver starts from ``hungarian``'s answer (or greedy's, or the warm start
``init`` if better) and gives it to the solver as a hint; every improving
solution goes to the anytime trace through a solution callback.

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
from permsolve.problem import TileProblem
from permsolve.registry import Solver, register

__all__ = ["ILP", "BlockModel", "block_model"]

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
    mask = mem.mask.name
    if mask not in ("global", "row-balanced"):
        raise ValueError(f"ilp does not know the mask family {mask!r}")
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
    description = "exact CP-SAT/MIP model (rows to blocks) with bound cuts and symmetry breaking; proves optimality"
    options = {
        "start": "hungarian",     # heuristic giving the hint: hungarian, greedy or none
        "backend": "cp-sat",      # cp-sat, or a MIP through pywraplp: scip, cbc, highs
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

    # ------------------------------------------------------------------ main
    def _solve(self, problem, run, rng):
        o = self.opts
        if o["backend"] not in ("cp-sat", "scip", "cbc", "highs"):
            raise ValueError(f"ilp: backend must be cp-sat, scip, cbc or highs, got {o['backend']!r}")
        if o["start"] not in ("hungarian", "greedy", "none"):
            raise ValueError(f"ilp: start must be hungarian, greedy or none, got {o['start']!r}")
        if int(o["num_workers"]) < 1:
            raise ValueError(f"ilp: num_workers must be >= 1, got {o['num_workers']}")
        if not (0 < float(o["precision"]) < 1e-3):
            raise ValueError(f"ilp: precision must be in (0, 1e-3), got {o['precision']}")
        bm = block_model(problem)
        self._start(problem, run)
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
        if o["backend"] == "cp-sat":
            self._cpsat(problem, bm, run, rng)
        else:
            self._mip(problem, bm, run, rng)

    def _start(self, problem, run):
        """Warm start: ``init`` is already the incumbent; add the heuristic's answer."""
        start = self.opts["start"]
        if start == "none":
            return
        from permsolve.registry import get_solver
        budget = None if run.time_limit is None else max(1e-3, 0.2 * run.time_left())
        res = get_solver(start)().solve(problem, time_limit=budget, init=run.best_perms if run.has_init else None)
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
        if run.best >= bound - 1e-12 * max(1.0, abs(bound)):
            return "the start reaches the bound"
        return None

    # --------------------------------------------------------------- CP-SAT
    def _cpsat(self, problem, bm: BlockModel, run, rng):
        from ortools.sat.python import cp_model

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

        model = cp_model.CpModel()
        # x[i, a]; with symmetry breaking, item i can only be in full block a <= i
        allowed = np.ones((n, A), dtype=bool)
        if o["symmetry"] and nf > 1:
            allowed[:, :nf] = np.arange(n)[:, None] >= np.arange(nf)[None, :]
        x = np.empty((n, A), dtype=object)
        for i in range(n):
            for a in range(A):
                x[i, a] = model.NewBoolVar(f"x{i}_{a}") if allowed[i, a] else 0
        y = np.array([[model.NewBoolVar(f"y{a}_{b}") for b in range(nfix)] for a in range(A)], dtype=object)
        z = np.array([[model.NewIntVar(0, int(M[a, b]), f"z{a}_{b}") for b in range(nfix)] for a in range(A)],
                     dtype=object)
        for i in range(n):
            model.AddExactlyOne([x[i, a] for a in range(A) if allowed[i, a]])
        for a in range(A):
            model.Add(sum(x[i, a] for i in range(n) if allowed[i, a]) == int(sizes[a]))
        if o["symmetry"] and nf > 1:
            for a in range(1, nf):
                for i in range(a, n):
                    # block a may hold item i only if block a-1 holds an earlier item
                    model.Add(x[i, a] <= sum(x[j, a - 1] for j in range(a - 1, i)))
        # masks
        if bm.balanced is None:
            model.Add(sum(y.ravel()) == bm.k)
        elif bm.balanced == "free":
            for a in range(A):
                model.Add(sum(y[a]) == bm.kb)
        else:
            for b in range(nfix):
                model.Add(sum(y[:, b]) == bm.kb)
        # tile scores
        for a in range(A):
            idx = np.flatnonzero(allowed[:, a])
            for b in range(nfix):
                coef = Rc[idx, b]
                nz = coef > 0
                model.Add(z[a, b] <= cp_model.LinearExpr.WeightedSum(list(x[idx[nz], a]), coef[nz].tolist()))
                model.Add(z[a, b] <= int(M[a, b]) * y[a, b])
        # bound cuts
        if o["cuts"]:
            G = top[np.minimum(np.arange(A + 1) * side, n)]  # G[j, b]
            for b in range(nfix):
                zs = sum(z[:, b])
                if bm.balanced == "fixed":
                    model.Add(zs <= int(G[bm.kb, b]))
                    continue
                ns = sum(y[:, b])
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
                    model.Add(sum(z[a]) <= cp_model.LinearExpr.WeightedSum(list(x[idx, a]), P[idx].tolist()))
        model.Maximize(sum(z.ravel()))

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
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN) and name != "MODEL_INVALID":
            bound_int = solver.BestObjectiveBound()
            proven = math.nextafter(float(bound_int) / scale, math.inf) if np.isfinite(bound_int) else bound
            proven = min(proven, bound)
        else:
            raise RuntimeError(f"ilp: CP-SAT returned {name}; this is a bug in the model")
        run.proven_bound = proven
        run.info.update(status=name, best_bound=proven, gap=_gap(run.best, proven), scale=scale,
                        build_seconds=build, solve_seconds=solver.WallTime(), conflicts=solver.NumConflicts(),
                        branches=solver.NumBranches(), solutions=solved["n"])

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

    # ------------------------------------------------------------------ MIP
    def _mip(self, problem, bm, run, rng):
        raise NotImplementedError


def _gap(value: float, bound: float) -> float:
    return (bound - value) / bound if bound > 0 else 0.0
