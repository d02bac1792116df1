"""Sweeps over any grid of named axes: model-level cells, run by a task function.

:class:`~permsolve.bench.config.SweepConfig` describes matrix cells (an
instance, a solver, a budget, a seed) that :func:`permsolve.solve` runs.  An
experiment whose cell is something else (prune a zoo model at one tile shape,
budget, solver and sparsity, then fine-tune it) describes its grid as a
:class:`GridConfig` instead and gives a task function; :func:`run_grid` runs it
on the same runner (:func:`permsolve.bench.runner.run_cells`): Dask, one SQLite
row per finished cell in its own transaction, resume by cell key.

A cell's key is its point on the axes plus the options every cell shares (so a
rerun with other options runs again); ``settings`` (threads, ...) reach the
task but not the key.  The task's return value is stored as the row's ``info``
(JSON); :func:`grid_results` reads them back in grid order.

Examples
--------
>>> cfg = GridConfig(axes={"model": ["mlp"], "solver": ["identity", "greedy"]}, options={"seed": 0})
>>> [c.key for c in cfg.cells()]
['model=mlp|solver=identity|{"seed": 0}', 'model=mlp|solver=greedy|{"seed": 0}']
>>> cfg.cells()[0].payload()["point"]
{'model': 'mlp', 'solver': 'identity'}
"""
from __future__ import annotations

import itertools
import json
import os
import time
import traceback
from dataclasses import dataclass, field

from .config import DEFAULT_DB

__all__ = ["GridConfig", "TaskCell", "run_task", "run_grid", "grid_results"]


@dataclass(frozen=True)
class TaskCell:
    """One cell of a :class:`GridConfig`.

    Attributes
    ----------
    point : ``((axis, value), ...)`` in the grid's axis order
    options : sorted ``(name, value)`` pairs shared by every cell; part of the key
    settings : sorted ``(name, value)`` pairs the task gets but the key ignores

    Examples
    --------
    >>> c = TaskCell((("model", "mlp"), ("solver", "greedy")), (("seed", 0),))
    >>> c.key, c.instance, c.solver
    ('model=mlp|solver=greedy|{"seed": 0}', 'mlp', 'greedy')
    """

    point: tuple
    options: tuple = ()
    settings: tuple = ()

    @property
    def key(self) -> str:
        """Unique, stable key of the cell (the database's UNIQUE column)."""
        return "|".join(f"{k}={v}" for k, v in self.point) + "|" + json.dumps(dict(self.options), sort_keys=True)

    @property
    def instance(self) -> str:
        """The database's ``instance`` column: the point's values but the solver's, joined by ``|``."""
        return "|".join(str(v) for k, v in self.point if k != "solver")

    @property
    def solver(self) -> str:
        """The database's ``solver`` column: the point's ``solver`` value, or ``-``."""
        return str(dict(self.point).get("solver", "-"))

    def payload(self) -> dict:
        """What the task gets: ``{"key", "point", "options", "settings"}`` (plain dicts)."""
        return {"key": self.key, "point": dict(self.point), "options": dict(self.options),
                "settings": dict(self.settings)}

    def lost_row(self, exc) -> dict:
        """The row stored when the worker running the cell died."""
        from .runner import _now

        return {**_base_row(self.payload()), "status": "error",
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                "finished_at": _now()}


@dataclass
class GridConfig:
    """A sweep over the product of named axes (the first axis outermost), run by a task function.

    Attributes
    ----------
    axes : ``{axis: [values]}``; values must be JSON-able and print stably (they make the key)
    options : shared by every cell and part of its key (time limits, seeds, epochs)
    settings : shared by every cell, not part of its key (threads)
    db : SQLite file
    scheduler : address of an existing Dask scheduler; None starts a LocalCluster
    workers : LocalCluster worker processes (default: the machine's cores)

    Examples
    --------
    >>> len(GridConfig(axes={"a": [1, 2, 3], "b": ["x", "y"]}).cells())
    6
    """

    axes: dict
    options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    db: str = DEFAULT_DB
    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self):
        if not self.axes or any(not list(v) for v in self.axes.values()):
            raise ValueError("a grid needs at least one axis, and every axis at least one value")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def cells(self) -> list[TaskCell]:
        """Every cell, in the product order of the axes (repeated points once).

        Examples
        --------
        >>> [dict(c.point)["b"] for c in GridConfig(axes={"a": [1], "b": ["x", "y", "x"]}).cells()]
        ['x', 'y']
        """
        names = list(self.axes)
        opts = tuple(sorted(self.options.items()))
        sets = tuple(sorted(self.settings.items()))
        cells = [TaskCell(tuple(zip(names, values)), opts, sets)
                 for values in itertools.product(*(self.axes[n] for n in names))]
        return list({c.key: c for c in cells}.values())

    def to_dict(self) -> dict:
        """The configuration as stored in each row's ``config`` column.

        Examples
        --------
        >>> GridConfig(axes={"a": [1]}, workers=2).to_dict()["workers"]
        2
        """
        return {"axes": self.axes, "options": self.options, "settings": self.settings, "db": str(self.db),
                "scheduler": self.scheduler, "workers": self.workers}


def _base_row(payload: dict) -> dict:
    point = payload["point"]
    return {"cell": payload["key"], "instance": "|".join(str(v) for k, v in point.items() if k != "solver"),
            "solver": str(point.get("solver", "-")), "options": payload["options"],
            "seed": payload["options"].get("seed")}


def run_task(task, payload: dict) -> dict:
    """Run ``task(payload)`` (on a worker) and return its database row; ``info`` is what it returned.

    Never raises for a failing task: the row then has ``status="error"`` and the message.

    Parameters
    ----------
    task : callable
        ``task(payload) -> dict``, the cell's work
    payload : dict
        the cell's :meth:`TaskCell.payload`

    Returns
    -------
    dict
        the database row: the cell's key fields, ``status``, ``info`` (or ``error``), timing and environment

    Examples
    --------
    >>> cell = GridConfig(axes={"x": [2]}).cells()[0]
    >>> row = run_task(lambda p: {"square": p["point"]["x"] ** 2}, cell.payload())
    >>> row["status"], row["info"], row["instance"]
    ('ok', {'square': 4}, '2')
    >>> run_task(lambda p: 1 / 0, cell.payload())["error"]
    'ZeroDivisionError: division by zero'
    """
    from .env import environment
    from .runner import _now

    row = {**_base_row(payload), "env": {**environment(), "loadavg": list(os.getloadavg())},
           "started_at": _now()}
    t0 = time.perf_counter()
    try:
        row.update(status="ok", info=task(payload))
    except Exception as e:  # a failing cell is a result to store, not a reason to stop the sweep
        msg = str(e).splitlines()[0] if str(e) else ""
        row.update(status="error", error=f"{type(e).__name__}: {msg}",
                   info={"traceback": traceback.format_exc()[-4000:]})
    row["wall"] = row["seconds"] = time.perf_counter() - t0
    row["finished_at"] = _now()
    return row


def run_grid(config: GridConfig, task, *, progress: bool = True, retry_errors: bool = False, on_start=None,
             on_row=None):
    """Run the cells of ``config`` not yet in its database, each by ``task(payload)`` on a worker.

    Parameters
    ----------
    config : the grid
    task : picklable function ``payload -> dict`` (a module-level function, or a lambda); its
        dict becomes the row's ``info``.  It runs in a worker process, so it caches what it
        wants to keep between cells itself.
    progress : show a tqdm progress bar on stderr
    retry_errors : run again the cells stored with ``status="error"``
    on_start : called with the :class:`~permsolve.bench.runner.SweepSummary` once the cells
        to run are known (``cells`` and ``skipped`` set), before anything runs
    on_row : called with every row stored now

    Returns
    -------
    permsolve.bench.runner.SweepSummary

    Examples
    --------
    >>> import tempfile, os
    >>> cfg = GridConfig(axes={"x": [1, 2]}, db=os.path.join(tempfile.mkdtemp(), "g.sqlite"), workers=1)
    >>> run_grid(cfg, lambda p: {"y": 10 * p["point"]["x"]}, progress=False).ran  # doctest: +SKIP
    2
    >>> [r["y"] for r in grid_results(cfg)]  # doctest: +SKIP
    [10, 20]
    """
    from .db import ResultsDB
    from .runner import SweepSummary, run_cells

    t0 = time.perf_counter()
    cells = config.cells()
    db = ResultsDB(config.db)
    summary = SweepSummary(cells=len(cells), db=str(db.path))
    try:
        if retry_errors:
            db.delete_errors([c.key for c in cells])
        done = db.finished_cells()
        todo = [c for c in cells if c.key not in done]
        summary.skipped = len(cells) - len(todo)
        if on_start is not None:
            on_start(summary)
        if todo:
            # no Dask profiler in the workers: its 10 ms sampling made the tiletrans cells 1.5x slower
            # on a loaded 2-core machine
            run_cells(todo, run_task, config, db, summary, args=(task,), progress=progress, on_row=on_row,
                      desc="permsolve grid", worker_profile=False)
    finally:
        db.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def grid_results(config: GridConfig, *, errors: list | None = None) -> list[dict | None]:
    """The stored ``info`` of every cell of ``config``, in grid order (None: not stored, or failed).

    Parameters
    ----------
    config : the grid
    errors : if a list, ``(cell key, error message)`` of every failed cell is appended to it

    Returns
    -------
    list
        one entry per cell of :meth:`GridConfig.cells`.

    Examples
    --------
    >>> import tempfile, os
    >>> from permsolve.bench.db import ResultsDB
    >>> cfg = GridConfig(axes={"x": [1, 2]}, db=os.path.join(tempfile.mkdtemp(), "g.sqlite"))
    >>> c = cfg.cells()[1]
    >>> with ResultsDB(cfg.db) as db:
    ...     db.insert({"cell": c.key, "instance": c.instance, "solver": c.solver, "status": "ok", "info": {"y": 20}})
    True
    >>> grid_results(cfg)
    [None, {'y': 20}]
    """
    from .db import ResultsDB

    keys = [c.key for c in config.cells()]
    with ResultsDB(config.db) as db:
        stored = {r["cell"]: r for r in db.rows()}
    out = []
    for k in keys:
        r = stored.get(k)
        if r is not None and r["status"] != "ok" and errors is not None:
            errors.append((k, r.get("error")))
        out.append(r["info"] if r is not None and r["status"] == "ok" else None)
    return out
