"""The result every solver returns, and the run book-keeping they share."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .problem import TileProblem

__all__ = ["SolveResult", "Run", "REL_TOL"]

#: relative tolerance used to compare values with bounds (float sums differ in order)
REL_TOL = 1e-9


@dataclass
class SolveResult:
    """What a solver found.

    Attributes
    ----------
    solver : registered name of the solver
    perms : best permutation of each named permutation of the problem
    retained : importance kept, recomputed independently from ``perms``
    total : all importance of the problem
    bound : best valid upper bound known (the problem's, or a solver's proof if tighter)
    optimal : True when ``retained`` is proven optimal (it reaches ``bound``)
    seconds : wall time of the whole solve call: set-up (the bound, a scaled copy), search and the
        final recomputation; not the solver's construction (a JIT compilation happens there)
    trace : ``(seconds, best value)`` each time the best value improved
    nit : iterations (solver-specific unit: rounds, moves, ...)
    info : solver-specific details

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.arange(16.0).reshape(4, 4), tile=(2, 2), sparsity=0.5)
    >>> r = solve(p, "identity")
    >>> r.retained, r.total, r.perms["row"].tolist()
    (92.0, 120.0, [0, 1, 2, 3])
    >>> round(r.fraction, 4), r.to_json()["row_perm"]
    (0.7667, [0, 1, 2, 3])
    """

    solver: str
    perms: dict[str, np.ndarray]
    retained: float
    total: float
    bound: float
    optimal: bool
    seconds: float
    trace: list[tuple[float, float]] = field(default_factory=list)
    nit: int = 0
    info: dict = field(default_factory=dict)

    @property
    def row_perm(self) -> np.ndarray | None:
        """The permutation named ``"row"`` (a :meth:`TileProblem.from_matrix` problem), or None."""
        return self.perms.get("row")

    @property
    def col_perm(self) -> np.ndarray | None:
        """The permutation named ``"col"``, or None."""
        return self.perms.get("col")

    @property
    def fraction(self) -> float:
        """Retained share of all importance."""
        return self.retained / self.total if self.total > 0 else 1.0

    @property
    def gap(self) -> float:
        """Relative gap to the bound, ``(bound - retained) / bound``."""
        return (self.bound - self.retained) / self.bound if self.bound > 0 else 0.0

    def to_json(self) -> dict:
        """The ``permsolve solve --json`` object."""
        def lst(p):
            return None if p is None else [int(x) for x in p]
        return {
            "solver": self.solver,
            "retained": self.retained,
            "total": self.total,
            "fraction": self.fraction,
            "bound": self.bound,
            "optimal": bool(self.optimal),
            "row_perm": lst(self.row_perm),
            "col_perm": lst(self.col_perm),
            "seconds": self.seconds,
            "trace": [[float(t), float(v)] for t, v in self.trace],
            "nit": int(self.nit),
        }


class Run:
    """Clock, incumbent and anytime trace of one solve.

    Solvers call :meth:`offer` with every solution they want kept; only
    improvements are recorded.  :meth:`expired` says when the time limit is up.

    Parameters
    ----------
    problem : TileProblem
        The problem being solved.
    time_limit : float or None
        Seconds from ``start``; None: no limit.
    init : mapping or None
        Warm start ``{perm name: permutation}`` (missing names: the identity); the first incumbent.
    start : float, optional
        ``time.perf_counter()`` when the solve was called (default: now).

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> S = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
    >>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
    >>> run = Run(p, time_limit=None, init=None)
    >>> run.best, run.offer({"row": np.array([1, 0, 3, 2])}), run.offer({"row": np.array([0, 2, 1, 3])})
    (2.0, False, True)
    >>> run.best, run.best_perms["row"].tolist(), len(run.trace), run.expired()
    (4.0, [0, 2, 1, 3], 2, False)
    """

    def __init__(self, problem: TileProblem, time_limit: float | None, init: Mapping | None,
                 start: float | None = None):
        self.problem = problem
        self.time_limit = None if time_limit is None else float(time_limit)
        if self.time_limit is not None and not (0 < self.time_limit < float("inf")):
            raise ValueError(f"time_limit must be a finite number of seconds > 0, got {time_limit}")
        #: the clock starts when the solve was called (``start``), so set-up counts against the limit
        self.start = time.perf_counter() if start is None else float(start)
        self.has_init = bool(init)
        self.best_perms = problem.check_perms(init)
        t = time.perf_counter()
        self.best = problem.evaluate(self.best_perms)
        #: what one evaluation costs: :meth:`time_left` keeps that back for the final recomputation.
        #: Timed on the identity, the evaluation skipped the gather a permuted one does (8192 x 8192
        #: with both axes: 0.1 s against 0.5 s), so the gather's estimate is added.
        self.eval_seconds = time.perf_counter() - t
        identity = all(np.array_equal(p, np.arange(p.size)) for p in self.best_perms.values())
        if self.time_limit is not None and identity:
            self.eval_seconds += problem.gather_seconds()
        self.init_value = self.best
        self.trace: list[tuple[float, float]] = [(0.0, self.best)]
        self.nit = 0
        self.info: dict = {}
        self.proven_bound: float | None = None

    def elapsed(self) -> float:
        """Seconds since the solve started."""
        return time.perf_counter() - self.start

    def time_left(self) -> float:
        """Seconds left, less the reserve for the independent recomputation of the value at the end."""
        if self.time_limit is None:
            return float("inf")
        return self.time_limit - self.elapsed() - self.eval_seconds

    def expired(self) -> bool:
        """True once :meth:`time_left` is used up (never without a time limit)."""
        return self.time_left() <= 0

    def adopt(self, perms: Mapping[str, np.ndarray], value: float | None = None) -> None:
        """Make ``perms`` the incumbent even if it is worse than the identity.

        For constructive heuristics that must return their own answer (TileTrans's
        order) when no warm start was given; with a warm start use :meth:`offer`,
        so the result is never worse than it.
        """
        if value is None:
            value = self.problem.evaluate(perms)
        self.best = float(value)
        self.best_perms = {k: np.asarray(v, dtype=np.int64).copy() for k, v in perms.items()}
        self.trace = [(self.elapsed(), self.best)]   # the adopted answer starts the trace

    def offer(self, perms: Mapping[str, np.ndarray], value: float | None = None, *, ties: bool = False) -> bool:
        """Keep ``perms`` if better than the incumbent (``ties``: or as good); returns True if kept.

        ``value`` is the value of ``perms`` when the caller knows it (else it is evaluated).
        """
        if value is None:
            value = self.problem.evaluate(perms)
        tol = REL_TOL * abs(self.best)        # relative: no floor, so tiny problems are not frozen
        if value > self.best + tol or (ties and value >= self.best - tol):
            self.best = float(value)
            self.best_perms = {k: np.asarray(v, dtype=np.int64).copy() for k, v in perms.items()}
            self.trace.append((self.elapsed(), self.best))
            return True
        return False
