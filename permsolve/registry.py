"""Solver registry and the one public entry point, :func:`solve`.

Solvers live in ``permsolve.solvers`` (one module each) and register
themselves with :func:`register`.  The registry imports that package the first
time a solver is looked up, so the problem code never imports a solver.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.random.default_rng(0).random((8, 8))
>>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
>>> r = solve(p, "greedy")
>>> r.solver, r.retained <= r.bound
('greedy', True)
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from typing import Any, ClassVar, Mapping

import numpy as np

from .problem import TileProblem
from .result import REL_TOL, Run, SolveResult

__all__ = ["Solver", "Options", "register", "get_solver", "solvers", "available_solvers", "solve", "SOLVERS",
           "check_time_limit", "normalise", "ENTRY_POINT_GROUP", "load_plugins"]

SOLVERS: dict[str, type["Solver"]] = {}

#: entry-point group through which an installed package adds solvers (see :func:`load_plugins`)
ENTRY_POINT_GROUP = "permsolve.solvers"
_plugins_loaded = False


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the solvers' option classes: a frozen dataclass whose fields are the options.

    A solver declares ``class Options(permsolve.registry.Options)`` with one
    annotated field per option (its default and, in the class docstring, what
    it does) and checks the values in :meth:`validate`, which raises
    ``ValueError`` with a one-line reason.  ``Solver(**kw)`` builds it (unknown
    keywords are an error) and keeps it as ``solver.config``.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class MyOptions(Options):
    ...     rounds: int = 10
    ...     def validate(self):
    ...         if self.rounds < 1:
    ...             raise ValueError("rounds must be >= 1")
    >>> MyOptions(rounds=3).rounds
    3
    >>> MyOptions(rounds=0)
    Traceback (most recent call last):
    ...
    ValueError: rounds must be >= 1
    """

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` when a value is out of range (the base class accepts everything)."""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}`` in declaration order."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.{f.name} has no default: every solver option needs one")
        return out


def _options_from_dict(owner: str, options: Mapping[str, Any]) -> type[Options]:
    """An :class:`Options` dataclass with the keys of a plain ``options`` dict as fields (older plugins)."""
    fields = [(k, Any, dataclasses.field(default_factory=(lambda v=v: copy.deepcopy(v))))
              for k, v in options.items()]
    return dataclasses.make_dataclass(f"{owner}Options", fields, bases=(Options,), frozen=True)


class Solver:
    """Base class of all solvers.

    Subclasses set the class attributes and implement :meth:`_solve`, which
    improves ``run`` (calling ``run.offer``) until done or ``run.expired()``.

    Class attributes
    ----------------
    name, description : registry name and one-line description
    Options : the option dataclass (a subclass of :class:`Options`); ``solver.config`` is its instance.
        A subclass may instead set ``options`` to a plain ``{name: default}`` dict, from which the
        dataclass is made.
    options : ``{option: default}``, derived from ``Options`` (read-only by convention)
    exact : can prove optimality
    anytime : improves over time and stops cleanly at the time limit
    randomized : uses the seed
    permutes : False for a solver that always returns the identity (plain tile pruning, the
        baseline): model surgery then skips the permutation step instead of running it for nothing
    axes : which problem kinds it handles, a subset of
        ``{"rows", "cols", "both", "coupled"}``

    Parameters
    ----------
    **options
        The solver's options (the fields of its ``Options``); an unknown name or a value
        that ``Options.validate`` refuses is a ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> @register
    ... class Reverse(Solver):
    ...     name, description = "reverse-example", "the rows in reverse order"
    ...     axes = frozenset({"rows"})
    ...     options = {"repeat": 1}
    ...     def _solve(self, problem, run, rng):
    ...         run.offer({"row": np.arange(problem.perm_sizes["row"])[::-1]})
    >>> p = TileProblem.from_matrix(np.diag([1.0, 0, 0, 1]), tile=(2, 2), sparsity=0.5)
    >>> r = Reverse(repeat=2).solve(p)
    >>> r.solver, r.retained, Reverse.options, Reverse(repeat=2).config.repeat
    ('reverse-example', 2.0, {'repeat': 1}, 2)
    >>> del SOLVERS["reverse-example"]        # leave the registry as it was
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    options: ClassVar[dict[str, Any]] = {}
    exact: ClassVar[bool] = False
    anytime: ClassVar[bool] = False
    randomized: ClassVar[bool] = False
    permutes: ClassVar[bool] = True
    axes: ClassVar[frozenset[str]] = frozenset({"rows", "cols", "both", "coupled"})
    #: mask families (classes) the solver is built for, or None: any family, through the generic
    #: mask API.  ``auto`` sends a problem whose mask has no benchmark results to such a specialist.
    masks: ClassVar[tuple | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "Options" in own:
            if not (isinstance(own["Options"], type) and issubclass(own["Options"], Options)
                    and dataclasses.is_dataclass(own["Options"])):
                raise TypeError(f"{cls.__name__}.Options must be a dataclass subclassing permsolve.registry.Options")
            cls.options = cls.Options.defaults()
        elif "options" in own:
            cls.Options = _options_from_dict(cls.__name__, own["options"])
            cls.options = cls.Options.defaults()

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ValueError(f"solver {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                             f"its options are: {known}")
        try:
            #: the options, typed (an instance of ``self.Options``)
            self.config = self.Options(**options)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(f"{self.name}:") else f"{self.name}: {msg}") from None
        #: the same as a plain dict (kept for solvers written against the dict interface)
        self.opts = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}

    @classmethod
    def unprepared(cls, **options) -> "Solver":
        """An instance with ``options`` (checked as by the constructor) whose own ``__init__`` was skipped.

        Enough to ask :meth:`supports` (class attributes and ``self.config``)
        or to check options, without the preparations a solver's constructor
        makes (a numba warm-up, importing an ILP backend: up to seconds).  Not
        meant for solving: construct the solver for that.

        Parameters
        ----------
        **options : the solver's options; unknown ones and bad values are an error, as in ``cls(**options)``

        Returns
        -------
        Solver
            an instance of ``cls`` with ``config`` and ``opts`` set

        Examples
        --------
        >>> import numpy as np
        >>> from permsolve import TileProblem
        >>> nm = get_solver("nm-exact").unprepared()
        >>> nm.config.max_cols
        24
        >>> "N:M" in nm.supports(TileProblem.from_matrix(np.ones((4, 4)), tile=(2, 2), sparsity=0.5))
        True
        """
        obj = cls.__new__(cls)
        Solver.__init__(obj, **options)
        return obj

    def supports(self, problem: TileProblem) -> str | None:
        """None if this solver handles ``problem``, else the reason why not (from ``problem.kind``)."""
        kind = problem.kind
        if kind not in self.axes:
            return f"solver {self.name!r} does not handle axis={kind} (it handles: {', '.join(sorted(self.axes))})"
        return None

    def solve(self, problem: TileProblem, *, time_limit: float | None = None, seed: int = 0,
              init: Mapping[str, np.ndarray] | SolveResult | None = None) -> SolveResult:
        """Solve ``problem``; see :func:`permsolve.solve`.

        The solver works on a copy of the problem whose importance is divided by
        a power of two (:func:`normalise`), so that its largest entry lies in
        ``[1, 2)``: the division is exact, so the search is the same at every
        scale, and no tolerance of a solver or of a library it calls can depend
        on the magnitude of the importance.  The value and bound reported are
        recomputed on the problem as given.
        """
        why = self.supports(problem)
        if why:
            raise ValueError(why)
        time_limit = check_time_limit(time_limit)
        t_start = time.perf_counter()           # the time limit covers the whole call
        if isinstance(init, SolveResult):
            init = init.perms
        work, scale = normalise(problem)
        run = Run(work, time_limit, init, start=t_start)
        rng = np.random.default_rng(seed)
        self._solve(work, run, rng)
        # independent recomputation: the reported value never comes from the solver's own bookkeeping
        retained = problem.evaluate(run.best_perms)
        bound = problem.bound                   # cached: normalise computed it
        seconds = run.elapsed()
        if run.proven_bound is not None:
            bound = min(bound, max(run.proven_bound * scale, retained))
        if retained > bound * (1 + REL_TOL):
            raise AssertionError(f"{self.name}: value {retained} exceeds the bound {bound}: a bug")
        # relative to the bound only: an absolute floor would call every tiny problem solved
        optimal = retained >= bound * (1 - REL_TOL)
        trace = [(t, v * scale) for t, v in run.trace]
        info = _unscale_info(run.info, scale)
        return SolveResult(self.name, run.best_perms, retained, problem.total, bound, optimal,
                           seconds, trace, run.nit, info)

    def _solve(self, problem: TileProblem, run: Run, rng: np.random.Generator) -> None:
        raise NotImplementedError


#: largest time limit accepted, in seconds (about 31 years; larger values overflow the solvers' clocks)
MAX_TIME_LIMIT = 1e9
#: smallest total importance solved: below it float64 sums lose their relative precision (subnormals)
MIN_TOTAL = 2.0 ** -1000


def check_time_limit(time_limit: float | None) -> float | None:
    """``time_limit`` as a float, or None; NaN, infinite, non-positive or huge values are refused.

    Parameters
    ----------
    time_limit : float or None
        Seconds, or None for no limit.

    Returns
    -------
    float or None
        The limit as a float (None stays None).

    Raises
    ------
    ValueError
        When it is not a number, not finite, not positive or above ``MAX_TIME_LIMIT``.

    Examples
    --------
    >>> check_time_limit(2), check_time_limit(None)
    (2.0, None)
    >>> check_time_limit(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: time_limit must be a finite number of seconds > 0 (or None for no limit), got nan
    """
    if time_limit is None:
        return None
    try:
        t = float(time_limit)
    except (TypeError, ValueError):
        raise ValueError(f"time_limit must be a number of seconds, got {time_limit!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"time_limit must be a finite number of seconds > 0 (or None for no limit), got {t:g}")
    if t > MAX_TIME_LIMIT:
        raise ValueError(f"time_limit must be at most {MAX_TIME_LIMIT:g} s (use None for no limit), got {t:g}")
    return t


def normalise(problem: TileProblem) -> tuple[TileProblem, float]:
    """``(copy, scale)``: ``problem`` divided by a power of two so its largest entry lies in ``[1, 2)``.

    Every importance is divided by ``scale``.  Dividing by a power of two is exact, so the copy's arithmetic is the
    original's, scaled.  Refuses (``ValueError``) a problem whose total
    importance overflows float64, or is so small (below ``2**-1000``, about
    1e-301) that sums lose their relative precision.  Returns ``(problem, 1.0)``
    when it is already normalised or all zero.

    Parameters
    ----------
    problem : TileProblem
        The problem as given (not modified).

    Returns
    -------
    copy : TileProblem
        The scaled copy (with its ``bound`` and ``total`` already set), or ``problem`` itself.
    scale : float
        The power of two it was divided by.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.full((2, 2), 3e-9), tile=(1, 1), sparsity=0.5)
    >>> q, scale = normalise(p)
    >>> float(q.members[0].importance.max()), scale == 2.0 ** -29
    (1.610612736, True)
    """
    top = max(float(m.importance.max()) for m in problem.members)
    if top == 0.0:
        return problem, 1.0
    if not math.isfinite(problem.total):
        raise ValueError(f"importance too large: its sum overflows float64 (largest entry {top:.3g}); "
                         "divide it by a constant")
    if problem.total < MIN_TOTAL:
        raise ValueError(f"importance too small: its sum {problem.total:.3g} is below 2**-1000 and float64 "
                         "sums lose their precision there; multiply it by a constant")
    bound = problem.bound          # computed once, on the original; the copy's is the same, divided exactly
    scale = math.ldexp(1.0, math.frexp(top)[1] - 1)
    if scale == 1.0:
        return problem, 1.0
    members = [dataclasses.replace(m, importance=m.importance / scale) for m in problem.members]
    copy = dataclasses.replace(problem, members=members)
    copy.__dict__["bound"] = bound / scale      # seeds the cached_property
    copy.__dict__["total"] = problem.total / scale
    return copy, scale


#: keys of ``SolveResult.info`` (at any depth) that hold importance values, scaled back after a solve
_VALUE_KEYS = frozenset({"best_bound", "lp_bound", "start_value", "value", "t0", "max_drift"})


def _unscale_info(info: dict, scale: float, top: bool = True) -> dict:
    if scale == 1.0:
        return dict(info)
    out = {}
    for k, v in info.items():
        if isinstance(v, dict):
            v = _unscale_info(v, scale, top=False)
        elif k in _VALUE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v) * scale
        elif k in _VALUE_KEYS and isinstance(v, list) and all(isinstance(x, float) for x in v):
            v = [x * scale for x in v]
        out[k] = v
    if top:
        out.setdefault("importance_scale", scale)
    return out


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: add a solver under its ``name``; duplicate names are refused.

    Parameters
    ----------
    cls : type
        A :class:`Solver` subclass with a ``name`` and a ``description``.

    Returns
    -------
    type
        ``cls`` itself, now found by :func:`get_solver` and :func:`solve`.

    Raises
    ------
    TypeError
        When ``cls`` has no name or no description.
    ValueError
        When another class is registered under that name.

    Examples
    --------
    >>> class Noop(Solver):
    ...     name, description = "noop-example", "keeps the identity"
    ...     def _solve(self, problem, run, rng):
    ...         pass
    >>> register(Noop) is Noop, get_solver("noop-example") is Noop
    (True, True)
    >>> del SOLVERS["noop-example"]           # leave the registry as it was
    """
    if not getattr(cls, "name", None) or not getattr(cls, "description", None):
        raise TypeError(f"{cls.__name__} needs a name and a description")
    if cls.name in SOLVERS and SOLVERS[cls.name] is not cls:
        raise ValueError(f"a solver named {cls.name!r} is already registered")
    SOLVERS[cls.name] = cls
    return cls


def _load() -> None:
    import permsolve.solvers  # noqa: F401  (registers the built-in solvers)

    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True      # set first: a plugin that lists the solvers while loading must not recurse
        load_plugins()


def load_plugins(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Load the solvers that installed packages declare as entry points of ``group``.

    A third-party package registers a solver without editing permsolve by
    declaring, in its ``pyproject.toml``::

        [project.entry-points."permsolve.solvers"]
        mysolver = "mypackage.solver:MySolver"

    The object may be a :class:`Solver` subclass (it is registered here, if its
    module did not already do so with :func:`register`) or a module whose
    import registers its solvers.  A plugin that fails to import, names
    something else, or clashes with a registered name gives a
    ``RuntimeWarning`` naming it and is skipped; it never breaks the registry.
    The registry calls this once, the first time a solver is looked up.

    Parameters
    ----------
    group : str
        The entry-point group to read.

    Returns
    -------
    list of str
        The names of the entry points that loaded.

    Examples
    --------
    >>> load_plugins("permsolve.no-such-group")
    []
    """
    import types
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=group)
    except Exception as e:  # pragma: no cover - a broken metadata directory on sys.path
        warnings.warn(f"permsolve: could not read the {group!r} entry points: {type(e).__name__}: {e}",
                      RuntimeWarning, stacklevel=2)
        return []
    loaded = []
    for ep in eps:
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, Solver):
                register(obj)
            elif not isinstance(obj, types.ModuleType):
                raise TypeError(f"{ep.value} is neither a Solver subclass nor a module")
        except Exception as e:
            warnings.warn(f"permsolve: solver plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                          f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
            continue
        loaded.append(ep.name)
    return loaded


def solvers() -> dict[str, type[Solver]]:
    """All registered solvers, by name (the built-in ones and the plugins, loaded on the first call).

    Returns
    -------
    dict of str to type
        ``{name: Solver subclass}``, a copy.

    Examples
    --------
    >>> s = solvers()
    >>> "greedy" in s and "hungarian" in s, s["greedy"].name
    (True, 'greedy')
    """
    _load()
    return dict(SOLVERS)


#: the name exported at the package level (``permsolve.solvers`` is the sub-package of solver modules)
available_solvers = solvers


def get_solver(name: str) -> type[Solver]:
    """The solver class registered as ``name``.

    Parameters
    ----------
    name : str
        A registered name (``permsolve solvers`` lists them).

    Returns
    -------
    type
        The :class:`Solver` subclass.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_solver("greedy").name, get_solver("identity").exact
    ('greedy', False)
    """
    _load()
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(SOLVERS)}") from None


def solve(problem: TileProblem, solver: str = "greedy", *, time_limit: float | None = None, seed: int = 0,
          init: Mapping[str, np.ndarray] | SolveResult | None = None, **options) -> SolveResult:
    """Solve ``problem`` with the solver registered as ``solver``.

    Parameters
    ----------
    problem : :class:`~permsolve.TileProblem`
    solver : registered name (see ``permsolve solvers``)
    time_limit : seconds; anytime solvers return their best when it runs out
    seed : makes randomized solvers deterministic
    init : warm start, ``{perm name: permutation}`` or an earlier :class:`SolveResult`; the result is never
        worse than it
    **options : the solver's own keyword options; unknown ones are an error

    Returns
    -------
    SolveResult
        The best permutations found, their value recomputed on ``problem``, and the bound.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "hungarian", time_limit=5)
    >>> r.solver, p.evaluate() <= r.retained <= r.bound, r.retained == p.evaluate(r.perms)
    ('hungarian', True, True)
    >>> solve(p, "identity", init=r).retained == r.retained      # a warm start is never lost
    True
    """
    return get_solver(solver)(**options).solve(problem, time_limit=time_limit, seed=seed, init=init)
