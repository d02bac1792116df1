"""The ``ilp`` solver's pattern (set-partitioning) model.

A column is a block (a set S of items of the block's size) with the set B of
fixed blocks it keeps; its value is ``sum_{b in B} T[S, b]`` with ``T[S, b] =
sum_{i in S} R[i, b]``.  Rows: every item covered once, the number of full
blocks (and of short blocks), and the mask (global: ``sum |B| = k``; balanced
per fixed block: ``#{columns with b in B} = kb``; balanced per free block:
``|B| = kb`` in every column).  Blocks are unlabelled, so there is no symmetry,
and the LP relaxation is far tighter than the compact model's: it already pays
for using the same rows in every column block.

1. Column generation on the LP (HiGHS through scipy): the pricing problem is
   solved exactly by enumerating all subsets (vectorised): for duals
   ``(pi, sigma, mu)`` the best B of S keeps the b with ``T[S,b] - mu_b > 0``.
2. For any duals y, every solution x satisfies ``value(x) = b.y + sum_c rc_c x_c``
   (rc = reduced cost), so a solution containing S is worth at most
   ``b.y + rc(S) + (blocks-1) max(0, max rc)``: subsets for which this is below the
   incumbent cannot be in a better solution and are dropped (reduced-cost
   fixing), and ``b.y + blocks max(0, max rc)`` is a valid bound.
3. The integer programs over the surviving subsets are built once for both
   backends and solved by SCIP or CP-SAT (:mod:`._ilp_backends`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from permsolve.problem import TileProblem

from ._ilp_backends import PatternContext, explicit_program, pattern_program
from ._ilp_blocks import MARGIN, BlockModel, _gap, _incumbent_blocks

__all__ = ["solve_patterns", "n_patterns", "ENUM_SECONDS"]

#: seconds to enumerate and price one pattern (measured: 1.2 to 3.5 s for 635,376 on a loaded 2-core machine)
ENUM_SECONDS = 4e-6


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest values, largest first (ties by index)."""
    count = max(0, min(int(count), len(values)))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-values, count - 1)[:count] if count < len(values) else np.arange(len(values))
    return idx[np.lexsort((idx, -values[idx]))]


def n_patterns(bm: BlockModel) -> int:
    """Number of possible blocks: ``C(n, side)``, plus ``C(n, short)`` for a shorter last block.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> n_patterns(block_model(TileProblem.from_matrix(np.ones((5, 4)), tile=(2, 2), sparsity=0.5)))
    15
    """
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


def solve_patterns(problem: TileProblem, bm: BlockModel, run, rng: np.random.Generator, config) -> None:
    """Solve the set-partitioning model of ``bm``, improving ``run`` and setting its proven bound.

    Column generation on the LP, reduced-cost fixing, then restricted integer
    programs and the exact one on ``config.backend`` (see the module docstring).

    Parameters
    ----------
    problem : the (normalised) problem
    bm : its :func:`~permsolve.solvers._ilp_blocks.block_model`
    run : the solve's :class:`~permsolve.result.Run`; its incumbent is the first column set and the hint
    rng : seeds the backend
    config : the ``ilp`` solver's options (``backend``, ``mip_columns``, ``precision``, ``num_workers``, ``log``)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.registry import get_solver
    >>> from permsolve.result import Run
    >>> from permsolve.solvers._ilp_blocks import block_model
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 4)), tile=(2, 2), sparsity=0.5)
    >>> run = Run(p, None, None)
    >>> solve_patterns(p, block_model(p), run, np.random.default_rng(0), get_solver("ilp").Options())
    >>> run.info["status"], run.best >= p.evaluate(), run.proven_bound >= run.best * (1 - 1e-9)
    ('OPTIMAL', True, True)
    """
    from scipy.optimize import linprog

    t0 = time.perf_counter()
    cols = _Columns(bm)
    n, nfix, nblocks = bm.R.shape[0], bm.n_fixed, bm.n_free
    b = cols.rhs()
    ctx = PatternContext(problem, bm, cols, config, run, rng)

    def incumbent_columns():
        return cols.columns_of(*_incumbent_blocks(problem, bm, run), bm)

    q_master, keep_master = incumbent_columns()
    y = None
    lagr = problem.bound
    it = 0
    # ---- 1. column generation
    t_it = time.perf_counter() - t0     # enumerating the subsets costs about one pricing pass
    while run.time_left() - MARGIN * (run.time_limit or 0) > 1.5 * t_it:
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
    if run.time_limit is not None and run.time_left() - MARGIN * run.time_limit < 4 * t_it:
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
    rate = 2e-5 if config.backend == "cp-sat" else 4e-5   # seconds to build, per unit of the program
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
        exact = len(survive) <= (4 * cap if rounds == 1 else max(cap, int(config.mip_columns)))
        if exact:
            q = np.union1d(survive, q_inc)
        else:
            q = np.union1d(_top(rcx, min(cap, int(config.mip_columns))), q_inc)
            if rounds == 1:
                q = np.union1d(q, master_items)
        if run.time_limit is not None:
            # building the program costs time too: keep what can be built in half the time left
            fits = int(0.5 * max(0.0, run.time_left() - MARGIN * run.time_limit) / (rate * unit))
            if fits < len(q):
                exact = False
                q = np.union1d(_top(rcx, fits), q_inc)
            if run.time_left() < 0.1 * run.time_limit or fits < len(q_inc):
                break
        share = 1.0 if exact else 0.15
        if explicit:
            program = explicit_program(ctx, q // J, (q % J) if J > 1 else np.full(len(q), bm.kb), Fall)
        else:
            program = pattern_program(ctx, q)
        st, bnd = program.solve(share)
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
