"""What a sweep runs: instances x solvers x time budgets x seeds.

A sweep is described by flags or by a small TOML or JSON file::

    suite = "standard"            # or: instances = ["gauss-512x512-t32x32-s50-0", ...]
    solvers = ["greedy", "hungarian", "anneal"]   # default: every registered solver but "auto"
    budgets = [1, 4, 16]          # seconds (time_limit of permsolve.solve)
    seeds = [0, 1, 2]
    db = "results/permsolve.sqlite"
    workers = 2                   # default: the machine's cores
    # scheduler = "tcp://127.0.0.1:8786"
    [options.hungarian]           # keyword options passed to one solver
    max_rounds = 50

A solver that does not use its seed (``randomized = False``) runs only the
first seed: the other seeds would repeat the same computation.  A solver that
does not handle an instance (its ``supports`` refuses the instance's mask,
axis or layout) is left out of that instance's cells, and :meth:`SweepConfig.plan`
says why.

Examples
--------
>>> cfg = SweepConfig(suite="smoke", solvers=["identity", "greedy"], budgets=[0.5, 1], seeds=[0, 1])
>>> cells = cfg.cells()
>>> len(cells)          # 3 instances x 2 solvers x 2 budgets x 1 seed (neither is randomized)
12
>>> cells[0].key
'gauss-64x64-t8x8-s50-0|identity|0.5|0|{}'
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SweepConfig", "Cell", "supports", "unsupported", "load_config", "SUITE_DEFAULTS", "DEFAULT_DB",
           "default_solvers"]

#: where results go unless ``--db`` says otherwise
DEFAULT_DB = "results/permsolve.sqlite"

#: budgets (seconds) and seeds a suite uses unless told otherwise
SUITE_DEFAULTS = {
    "smoke": {"budgets": [0.5], "seeds": [0]},
    "standard": {"budgets": [0.5, 2.0, 8.0], "seeds": [0, 1, 2]},
    "large": {"budgets": [10.0, 60.0], "seeds": [0]},
    "real": {"budgets": [1.0, 5.0], "seeds": [0]},
    "nm": {"budgets": [1.0, 10.0], "seeds": [0, 1]},
}

#: solvers a sweep leaves out unless named: ``auto`` only delegates to the others
META_SOLVERS = ("auto",)


def default_solvers() -> list[str]:
    """Every registered solver except the meta solver ``auto``.

    Returns
    -------
    list of str
        Solver names, in registration order.

    Examples
    --------
    >>> {"identity", "greedy", "hungarian"} <= set(default_solvers())
    True
    """
    from permsolve.registry import solvers

    return [s for s in solvers() if s not in META_SOLVERS]


def unsupported(cls, problem) -> str | None:
    """None if solver class ``cls`` handles ``problem``, else its reason; without constructing it.

    ``Solver.supports`` reads class attributes (and at most the options);
    constructing a solver can be costly (a JIT warm-up), so its own ``__init__`` is
    skipped (:meth:`~permsolve.registry.Solver.unprepared`, default options).

    Parameters
    ----------
    cls : type
        A registered :class:`~permsolve.registry.Solver` subclass.
    problem : TileProblem
        The problem (a small stand-in of the same kind, mask and layout will do).

    Returns
    -------
    str or None
        The solver's reason for refusing ``problem``, or None.

    Examples
    --------
    >>> from permsolve.registry import get_solver
    >>> from permsolve import TileProblem
    >>> import numpy as np
    >>> p = TileProblem.from_matrix(np.ones((4, 4)), tile=(2, 2), sparsity=0.5, axis="both")
    >>> unsupported(get_solver("greedy"), p) is None, "axis=both" in unsupported(get_solver("ilp"), p)
    (True, True)
    """
    try:
        return cls.unprepared().supports(problem)
    except Exception:  # a solver whose supports() needs a fully built instance
        return cls().supports(problem)


def supports(cls, problem) -> bool:
    """Whether solver class ``cls`` handles ``problem``, without constructing it (see :func:`unsupported`).

    Parameters
    ----------
    cls : type
        A registered :class:`~permsolve.registry.Solver` subclass.
    problem : TileProblem
        The problem.

    Returns
    -------
    bool
        True when :func:`unsupported` gives no reason.

    Examples
    --------
    >>> from permsolve.registry import get_solver
    >>> from permsolve import TileProblem
    >>> import numpy as np
    >>> supports(get_solver("greedy"), TileProblem.from_matrix(np.ones((4, 4)), tile=(2, 2), sparsity=0.5))
    True
    """
    return unsupported(cls, problem) is None


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: an instance, a solver with options, a time budget, a seed.

    Parameters
    ----------
    instance : Instance
        The instance (:class:`permsolve.problems.library.Instance`).
    solver : str
        Registered solver name.
    budget : float
        Time limit, seconds.
    seed : int
        Seed of the solve.
    options : tuple
        The solver's options as sorted ``(name, value)`` pairs.

    Examples
    --------
    >>> from permsolve.problems.library import get_instance
    >>> c = Cell(get_instance("gauss-64x64-t8x8-s50-0"), "hungarian", 2.0, 0, (("max_rounds", 5),))
    >>> c.key
    'gauss-64x64-t8x8-s50-0|hungarian|2|0|{"max_rounds": 5}'
    >>> c.payload()["options"]
    {'max_rounds': 5}
    """

    instance: object          # permsolve.problems.library.Instance
    solver: str
    budget: float
    seed: int
    options: tuple = ()       # sorted (name, value) pairs

    @property
    def key(self) -> str:
        """Unique, stable key of the cell (the database's UNIQUE column)."""
        return f"{self.instance.name}|{self.solver}|{self.budget:g}|{self.seed}|{json.dumps(dict(self.options), sort_keys=True)}"

    def payload(self) -> dict:
        """What a worker needs: a plain dict (the instance as a recipe)."""
        return {"key": self.key, "instance": self.instance.to_dict(), "solver": self.solver,
                "budget": self.budget, "seed": self.seed, "options": dict(self.options)}


@dataclass
class SweepConfig:
    """A sweep's description; empty fields take the suite's defaults.

    Parameters
    ----------
    suite : ``smoke``, ``standard``, ``large``, ``real`` or ``nm`` (ignored when ``instances`` is given)
    instances : instance names from the catalogue (``permsolve bench --list``)
    solvers : registered solver names; default all but ``auto``
    budgets : time limits in seconds
    seeds : seeds; only the first is used for solvers that ignore it
    options : ``{solver: {option: value}}``
    db : SQLite file
    scheduler : address of an existing Dask scheduler; None starts a LocalCluster
    workers : LocalCluster worker processes (default: the machine's cores)
    manifest : manifest JSON to update (default ``problems/manifest.json``)

    Examples
    --------
    >>> cfg = SweepConfig(suite="standard", solvers=["greedy"])
    >>> cfg.budgets, cfg.seeds, cfg.resolved_solvers()
    ([0.5, 2.0, 8.0], [0, 1, 2], ['greedy'])
    >>> SweepConfig(suite="smoke", budgets=[1, 1])
    Traceback (most recent call last):
    ...
    ValueError: budgets and seeds must not repeat
    """

    suite: str | None = "smoke"
    instances: list[str] = field(default_factory=list)
    solvers: list[str] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    db: str = DEFAULT_DB
    scheduler: str | None = None
    workers: int | None = None
    manifest: str | None = None

    def __post_init__(self):
        if not self.instances and self.suite not in SUITE_DEFAULTS:
            raise ValueError(f"unknown suite {self.suite!r}; known suites: {', '.join(SUITE_DEFAULTS)}")
        defaults = SUITE_DEFAULTS.get(self.suite or "", SUITE_DEFAULTS["smoke"])
        self.budgets = [float(b) for b in (self.budgets or defaults["budgets"])]
        self.seeds = [int(s) for s in (self.seeds or defaults["seeds"])]
        from permsolve.registry import MAX_TIME_LIMIT
        if any(not np.isfinite(b) or b <= 0 or b > MAX_TIME_LIMIT for b in self.budgets):
            raise ValueError(f"budgets must be finite positive seconds (at most {MAX_TIME_LIMIT:g}), got {self.budgets}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if len(set(self.budgets)) != len(self.budgets) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("budgets and seeds must not repeat")

    # ------------------------------------------------------------ resolve
    def resolved_solvers(self) -> list[str]:
        """The solver names, checked (unknown solvers or options are a ``ValueError``), without repeats."""
        from permsolve.registry import solvers

        known = solvers()
        names = self.solvers or default_solvers()
        unknown = [s for s in names if s not in known]
        if unknown:
            raise ValueError(f"unknown solver {unknown[0]!r}; known solvers: {', '.join(known)}")
        for s, opts in self.options.items():
            if s not in known:
                raise ValueError(f"options given for unknown solver {s!r}")
            known[s].unprepared(**opts)   # unknown options and bad values fail here, before anything runs
        return list(dict.fromkeys(names))

    def resolved_instances(self) -> tuple[list, list[str]]:
        """``(instances, skipped reasons)``."""
        from permsolve.problems.library import get_instance, load_suite

        if self.instances:
            return [get_instance(n) for n in dict.fromkeys(self.instances)], []
        s = load_suite(self.suite)
        return s.instances, s.skipped

    def cells(self) -> list[Cell]:
        """Every cell of the sweep, in a stable order (solvers that cannot handle an instance left out)."""
        return self.plan()[0]

    def plan(self) -> tuple[list[Cell], list[tuple[str, str, str]]]:
        """``(cells, left out)``: the cells, and ``(solver, instance, reason)`` for every pair a solver refuses.

        Examples
        --------
        >>> cfg = SweepConfig(instances=["uniform-128x64-2:4-1"], solvers=["greedy", "anneal"], budgets=[1])
        >>> cells, out = cfg.plan()
        >>> [c.solver for c in cells], out[0][:2]
        (['greedy'], ('anneal', 'uniform-128x64-2:4-1'))
        """
        from permsolve.registry import solvers

        registry = solvers()
        instances, _ = self.resolved_instances()
        out, left_out = [], []
        for inst in instances:
            # supports() only looks at the problem's kind: a small stand-in avoids building big matrices here
            probe = inst.probe()
            for solver in self.resolved_solvers():
                cls = registry[solver]
                why = unsupported(cls, probe)
                if why:
                    left_out.append((solver, inst.name, why))
                    continue
                seeds = self.seeds if cls.randomized else self.seeds[:1]
                opts = tuple(sorted(self.options.get(solver, {}).items()))
                for budget in self.budgets:
                    for seed in seeds:
                        out.append(Cell(inst, solver, budget, seed, opts))
        return out, left_out

    def to_dict(self) -> dict:
        """The sweep as a plain dict (stored with every row; the manifest path left out)."""
        return {"suite": self.suite, "instances": self.instances, "solvers": self.solvers, "budgets": self.budgets,
                "seeds": self.seeds, "options": self.options, "db": str(self.db), "scheduler": self.scheduler,
                "workers": self.workers}


def load_config(path: str | os.PathLike, **overrides) -> SweepConfig:
    """Read a sweep from a ``.toml`` or ``.json`` file; non-empty ``overrides`` win.

    Parameters
    ----------
    path : str or Path
        The sweep file (keys: the fields of :class:`SweepConfig`).
    **overrides
        Field values that replace the file's (None, ``[]`` and ``{}`` are ignored).

    Returns
    -------
    SweepConfig
        The sweep.

    Raises
    ------
    ValueError
        For a missing or malformed file, or an unknown key.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "sweep.toml")
    >>> _ = open(f, "w").write('suite = "smoke"\\nsolvers = ["greedy"]\\nbudgets = [0.25]\\n')
    >>> load_config(f, seeds=[3]).seeds
    [3]
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such config file: {path}")
    if path.suffix.lower() == ".toml":
        import tomllib

        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path.name}: {e}") from None
    elif path.suffix.lower() == ".json":
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path.name}: {e}") from None
    else:
        raise ValueError(f"config must be .toml or .json, got {path.name}")
    allowed = {"suite", "instances", "solvers", "budgets", "seeds", "options", "db", "scheduler", "workers", "manifest"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path.name}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(allowed))}")
    data.update({k: v for k, v in overrides.items() if v not in (None, [], {})})
    return SweepConfig(**data)
