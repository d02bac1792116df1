"""Certify an answer: the tightest valid bound known for its problem, and so its measured optimality gap.

A :class:`~permsolve.SolveResult` carries the problem's own bound (the
allocation bound of :mod:`permsolve.bounds`) or a solver's proof.  On real
layers that bound can sit points above anything reachable.  :func:`certify`
spends a few seconds on the tighter bounds, the Lagrangian with exact pricing
(:func:`permsolve.lagrange.tight_bound` with ``parts="auto"``, its steps aimed
at the answer's value) and :func:`permsolve.spectral.spectral_bound`, and
returns the answer with the least of them.  ``info["bound_source"]`` says
which bound decided.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.abs(np.random.default_rng(0).standard_normal((32, 64)))
>>> p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5)
>>> r = solve(p, "hungarian")
>>> c = certify(p, r, time_limit=2.0)
>>> bool(r.retained <= c.bound <= r.bound), c.info["bound_source"] in ("lagrange", "spectral", r.solver, "problem")
(True, True)
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from .result import REL_TOL, SolveResult

if TYPE_CHECKING:
    from .problem import TileProblem

__all__ = ["certify", "tighter_bounds"]


def tighter_bounds(problem: "TileProblem", time_limit: float = 10.0, target: float | None = None) -> dict:
    """The bounds tighter than the allocation bound: ``{"lagrange": ..., "spectral": ...}``.

    Parameters
    ----------
    problem : TileProblem
        What to bound.
    time_limit : float
        Seconds for the Lagrangian (:func:`permsolve.lagrange.tight_bound`, ``parts="auto"``).
    target : float, optional
        A value known to be reachable (the best answer), for the Lagrangian's step sizes.

    Returns
    -------
    dict
        Each bound by name; each is valid, and at most the problem's own bound.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((32, 32)), tile=(16, 16), sparsity=0.5)
    >>> b = tighter_bounds(p, time_limit=0.5)
    >>> sorted(b), all(v <= p.bound * (1 + 1e-12) for v in b.values())
    (['lagrange', 'spectral'], True)
    """
    from .lagrange import tight_bound
    from .spectral import spectral_bound

    return {"lagrange": float(tight_bound(problem, time_limit=float(time_limit), target=target, parts="auto")),
            "spectral": float(spectral_bound(problem))}


def certify(problem: "TileProblem", result: SolveResult, time_limit: float = 10.0) -> SolveResult:
    """``result`` with the tightest valid bound known for ``problem``, and ``optimal`` from it.

    Parameters
    ----------
    problem : TileProblem
        The problem ``result`` answers.
    result : SolveResult
        An answer (any solver's).
    time_limit : float
        Seconds for the Lagrangian (the spectral bound takes milliseconds to seconds more).

    Returns
    -------
    SolveResult
        A copy whose ``bound`` is the least of ``result.bound``, the Lagrangian and the
        spectral bound; ``info["bound_source"]`` is ``"lagrange"``, ``"spectral"``, or, when
        neither is tighter, ``"problem"`` (or the solver's name when its proof was the bound);
        ``info["certify_seconds"]`` is the time spent.

    Raises
    ------
    ValueError
        If ``time_limit`` is not a positive number.
    RuntimeError
        If a bound came out below ``result.retained`` (a bug in a bound: nothing is returned).

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> S = np.abs(np.random.default_rng(1).standard_normal((32, 32)))
    >>> p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5)
    >>> c = certify(p, solve(p, "hungarian"), time_limit=1.0)
    >>> c.gap <= solve(p, "hungarian").gap
    True
    """
    if not (isinstance(time_limit, (int, float)) and 0 < time_limit < float("inf")):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    t0 = time.perf_counter()
    own = float(result.bound)
    own_source = result.solver if own < float(problem.bound) * (1 - REL_TOL) else "problem"
    bounds = {own_source: own, **tighter_bounds(problem, time_limit, target=result.retained)}
    source = min(bounds, key=bounds.get)
    bound = bounds[source]
    if bound < result.retained * (1 - REL_TOL) - REL_TOL * abs(result.total):
        raise RuntimeError(f"the {source} bound {bound!r} is below the answer's value {result.retained!r}: "
                           f"a bug in that bound")
    bound = max(bound, result.retained)       # float noise only, checked above
    if bounds[source] >= own * (1 - REL_TOL):
        source, bound = own_source, own
    info = dict(result.info, bound_source=source, certify_seconds=time.perf_counter() - t0)
    return dataclasses.replace(result, bound=bound, optimal=bool(result.optimal or
                                                                 result.retained >= bound * (1 - REL_TOL)),
                               info=info)
