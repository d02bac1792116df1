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

The solver starts from ``hungarian``'s answer (``anneal``'s, on a fixed
schedule, for row-balanced columns), run from TileTrans's order or from the warm
start ``init`` with a fifth of the time left (:func:`~permsolve.solvers._common.run_start`),
and gives the incumbent to the solver as a hint;
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

The code: :mod:`._ilp_blocks` (the block model), :mod:`._ilp_compact` (the
compact model), :mod:`._ilp_patterns` (the pattern model) and
:mod:`._ilp_backends` (its integer programs, built once for SCIP and CP-SAT).
"""
from __future__ import annotations

import dataclasses
import time

from permsolve.masks import GlobalMask, RowBalancedMask
from permsolve.registry import Options as _BaseOptions
from permsolve.registry import Solver, register

from ._common import run_start
from ._ilp_backends import BACKENDS, load as _load_backends
from ._ilp_blocks import MARGIN as _MARGIN  # noqa: F401  (re-exported)
from ._ilp_blocks import BlockModel, _gap, _give_up, _scaled, _top_sums, block_model  # noqa: F401
from ._ilp_compact import solve_compact
from ._ilp_patterns import ENUM_SECONDS as _ENUM_SECONDS
from ._ilp_patterns import _Columns, _subsets, _top, n_patterns as _n_patterns, solve_patterns  # noqa: F401

__all__ = ["ILP", "BlockModel", "block_model"]

#: share of the time left that the start solver may use
_START_SHARE = 0.2


def _backends() -> None:
    """Import OR-Tools and scipy.optimize (about 2 s): see :func:`._ilp_backends.load`."""
    _load_backends()


@register
class ILP(Solver):
    """Exact solver: an integer program over the rows' assignment to tile rows, with a proven bound.

    Set partitioning of the units into blocks (column generation, SCIP or CP-SAT) or a compact CP-SAT
    model; reports the proven bound, and ``optimal`` when the incumbent meets it (module docstring).

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "ilp")
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('ilp', True, True)
    """
    name = "ilp"
    description = "exact: set partitioning of rows into blocks (column generation + SCIP), or a compact CP-SAT model"

    @dataclasses.dataclass(frozen=True)
    class Options(_BaseOptions):
        """Options of ``ilp``.

        Attributes
        ----------
        start : solver giving the start and the hint (any registered one but ilp), none, or auto (hungarian; anneal for row-balanced columns)
        model : patterns (set partitioning), compact (items to blocks, CP-SAT), or auto
        max_patterns : auto: the patterns model when there are at most this many possible blocks, else compact
        backend : integer programs of the patterns model: scip (pywraplp) or cp-sat
        mip_columns : patterns: most columns in one restricted integer program
        num_workers : CP-SAT workers (1 is deterministic; more use interleave_search)
        precision : CP-SAT: relative cost of rounding the scores to integers, in (0, 1e-3)
        cuts : compact: the G_b tangent cuts and the row cuts
        symmetry : compact: break the symmetry of interchangeable blocks
        log : print the backend's log

        Examples
        --------
        >>> from permsolve.registry import get_solver
        >>> get_solver("ilp").Options(model="compact").backend
        'scip'
        >>> get_solver("ilp").Options(backend="gurobi")
        Traceback (most recent call last):
        ...
        ValueError: ilp: backend must be cp-sat or scip, got 'gurobi'
        """

        start: str = "auto"
        model: str = "auto"
        max_patterns: int = 1_000_000
        backend: str = "scip"
        mip_columns: int = 10_000
        num_workers: int = 1
        precision: float = 1e-10
        cuts: bool = True
        symmetry: bool = True
        log: bool = False

        def validate(self) -> None:
            """Raise ``ValueError`` for an unknown backend, model or start, or a value out of range."""
            if self.backend not in BACKENDS:
                raise ValueError(f"ilp: backend must be cp-sat or scip, got {self.backend!r}")
            if self.model not in ("auto", "patterns", "compact"):
                raise ValueError(f"ilp: model must be auto, patterns or compact, got {self.model!r}")
            if self.start not in ("none", "auto"):
                from permsolve.registry import solvers
                known = sorted(set(solvers()) - {"ilp"})
                if self.start not in known:
                    raise ValueError(f"ilp: start must be none or one of {', '.join(known)}, got {self.start!r}")
            if int(self.num_workers) < 1:
                raise ValueError(f"ilp: num_workers must be >= 1, got {self.num_workers}")
            if not (0 < float(self.precision) < 1e-3):
                raise ValueError(f"ilp: precision must be in (0, 1e-3), got {self.precision}")

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
        o = self.config
        bm = block_model(problem)
        self._start(problem, run, bm, rng)
        run.info.update(backend=o.backend)
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
        model = o.model
        n_pat = _n_patterns(bm)
        # enumerating the patterns cannot be interrupted (about 2e-6 s each on a loaded 2-core machine)
        enum_s = _ENUM_SECONDS * n_pat
        if model == "auto":
            model = "patterns" if n_pat <= int(o.max_patterns) else "compact"
            if model == "patterns" and run.time_limit is not None and enum_s > 0.5 * run.time_left():
                model = "compact"
        run.info["model"] = model
        if model == "patterns" and run.time_limit is not None and enum_s > run.time_left():
            _give_up(problem, run, f"enumerating {n_pat} patterns would take about {enum_s:.1f} s")
            return
        if model == "patterns":
            solve_patterns(problem, bm, run, rng, o)
        else:
            solve_compact(problem, bm, run, rng, o)      # the compact model always runs on CP-SAT

    def _start(self, problem, run, bm, rng):
        """Warm start (:func:`~permsolve.solvers._common.run_start`): the start solver runs from
        ``init`` (TileTrans's order without one) with a fifth of the time left."""
        from permsolve.registry import SOLVERS

        start = self.config.start
        if start == "none":
            return
        if start == "auto":
            # row-balanced columns: the block + keep program finds few improvements by itself,
            # and a strong incumbent is what shrinks it (measured: 0/3 -> 2/3 proven at 32x32)
            start = "anneal" if bm.balanced == "fixed" and "anneal" in SOLVERS else "hungarian"
        options = {}
        budget = None if run.time_limit is None else max(1e-3, _START_SHARE * run.time_left())
        if start == "anneal" and (budget is None or 0.05 * bm.R.shape[0] <= budget):
            # a fixed schedule (about 1.6 s at 32 units; it reaches the optimum on the 32x32
            # instances we tried) is reproducible; a time-limited one depends on machine speed.
            # A number of moves (5000 a unit, as moves_per_unit would give without a limit)
            # fixes it even under the time limit, which is then only a safety net
            units = sum(n for n in problem.perm_sizes.values() if n >= 2)
            options = {"moves": max(100_000, 5000 * units), "restarts": 4}
        t = time.perf_counter()
        what = run_start(problem, run, start, share=_START_SHARE, from_init=True,
                         seed=int(rng.integers(2**31 - 1)), options=options)
        run.info["start"] = {"solver": what, "value": run.best, "seconds": time.perf_counter() - t}

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
