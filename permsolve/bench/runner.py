"""Run a sweep on Dask and store each finished cell.

:func:`run_cell` runs on a worker: it rebuilds the instance from its recipe,
calls :func:`permsolve.solve` and returns a plain dict.  :func:`run_sweep` is
the client: it skips the cells already in the database, submits the rest
(``client.submit``), and, as each one completes (``as_completed``), commits its
row in its own transaction and merges its value and bound into the manifest.

By default it starts an embedded :class:`dask.distributed.LocalCluster`, one
single-threaded worker process per core; ``scheduler="tcp://host:port"`` sends
the same cells to an existing cluster instead.

Examples
--------
>>> from permsolve.bench.config import SweepConfig
>>> from permsolve.problems.library import get_instance
>>> cell = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["greedy"], budgets=[1]).cells()[0]
>>> out = run_cell(cell.payload())
>>> out["status"], out["value"] <= out["bound"]
('ok', True)
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["run_cell", "run_cells", "run_sweep", "SweepSummary"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lru_cache(maxsize=2)
def _problem(recipe_json: str):
    """Build (and keep, per worker process) the problem of a recipe."""
    from permsolve.problems.library import Instance

    inst = Instance.from_dict(json.loads(recipe_json))
    p = inst.problem()
    p.bound  # noqa: B018  (cached property: computed once per worker, not inside the timed solve)
    return inst, p, inst.known_optimum


def run_cell(payload: dict) -> dict:
    """Run one cell (on a worker) and return its result row (without sweep/config columns).

    Never raises for a failing solver: the row then has ``status="error"`` and the message.

    Parameters
    ----------
    payload : dict
        :meth:`Cell.payload <permsolve.bench.config.Cell.payload>`: the cell's key, instance
        recipe, solver, options, budget and seed.

    Returns
    -------
    dict
        One row of the results database (see :data:`permsolve.bench.db.COLUMNS`).

    Examples
    --------
    >>> from permsolve.bench.config import SweepConfig
    >>> cell = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["identity"], budgets=[1]).cells()[0]
    >>> row = run_cell(cell.payload())
    >>> row["status"], row["solver"], row["rows"], row["value"] <= row["bound"]
    ('ok', 'identity', 64, True)
    """
    from permsolve.bench.env import environment
    from permsolve.registry import solve

    started = _now()
    t0 = time.perf_counter()
    inst_d = payload["instance"]
    row = {"cell": payload["key"], "instance": inst_d["name"], "family": inst_d["family"],
           "tile": "x".join(map(str, inst_d["tile"])), "sparsity": inst_d["sparsity"], "mask": inst_d["mask"],
           "axis": inst_d["axis"], "solver": payload["solver"], "options": payload["options"],
           "budget": payload["budget"], "seed": payload["seed"], "recipe": inst_d,
           "env": {**environment(), "loadavg": list(os.getloadavg())},
           "started_at": started}
    try:
        inst, problem, known = _problem(json.dumps(inst_d, sort_keys=True))
        m, n = problem.members[0].shape
        row.update(rows=m, cols=n, problem_bound=problem.bound, known_optimum=known, total=problem.total)
        r = solve(problem, payload["solver"], time_limit=payload["budget"], seed=payload["seed"],
                  **payload["options"])
        row.update(status="ok", value=r.retained, bound=r.bound, optimal=int(bool(r.optimal)), seconds=r.seconds,
                   nit=int(r.nit), trace=[[float(t), float(v)] for t, v in r.trace], info=r.info)
    except Exception as e:  # a failing solver is a result to store, not a reason to stop the sweep
        msg = str(e).splitlines()[0] if str(e) else ""
        row.update(status="error", error=f"{type(e).__name__}: {msg}",
                   info={"traceback": traceback.format_exc()[-4000:]})
    row["wall"] = time.perf_counter() - t0
    row["finished_at"] = _now()
    return row


@dataclass
class SweepSummary:
    """What a sweep did: cell counts, manifest changes and the time it took.

    Attributes
    ----------
    cells : cells in the sweep
    skipped : cells already in the database
    ran : cells run and stored now
    concurrent : cells run now but stored meanwhile by another sweep (its result is kept)
    errors : cells stored with ``status="error"``
    improved : manifest changes, one line each
    skipped_instances : instances whose source is not available
    seconds : wall time of the sweep
    db : path of the results database

    Examples
    --------
    >>> SweepSummary(cells=3, skipped=3, db="r.sqlite").ran
    0
    """

    cells: int = 0                 # cells in the sweep
    skipped: int = 0               # already in the database
    ran: int = 0                   # run and stored now
    concurrent: int = 0            # run now, but stored meanwhile by another sweep (its result is kept)
    errors: int = 0                # stored with status "error"
    improved: list[str] = field(default_factory=list)   # manifest changes, one line each
    skipped_instances: list[str] = field(default_factory=list)   # sources not available
    seconds: float = 0.0
    db: str = ""


def sync_manifest(db, manifest, *, save: bool = True) -> list[str]:
    """Merge every stored run into the manifest (best value up, best bound down).

    Run at the start and the end of a sweep, so a kill between a commit and a
    manifest write loses nothing.

    Parameters
    ----------
    db : ResultsDB
        The results database.
    manifest : Manifest
        The instance manifest (:class:`permsolve.problems.manifest.Manifest`).
    save : bool
        Write the manifest when something changed.

    Returns
    -------
    list of str
        The changes, one line each.

    Raises
    ------
    BoundViolation
        On a stored value above a stored bound (a bug).

    Examples
    --------
    >>> import os, tempfile
    >>> from permsolve.bench.db import ResultsDB
    >>> from permsolve.problems.manifest import Manifest
    >>> d = tempfile.mkdtemp()
    >>> sync_manifest(ResultsDB(os.path.join(d, "r.sqlite")), Manifest(os.path.join(d, "m.json")))
    []
    """
    from permsolve.problems.library import Instance

    changes = []
    for r in db.rows("status = 'ok'"):
        changes += _merge(manifest, r, Instance.from_dict(r["recipe"]))
    if save and changes:
        manifest.save()
    return changes


def _merge(manifest, row, inst) -> list[str]:
    manifest.ensure(inst, shape=(row["rows"], row["cols"]), total=row["total"], bound=row["problem_bound"],
                    known_optimum=row["known_optimum"])
    who = {"solver": row["solver"], "budget": row["budget"], "seed": row["seed"], "cell": row["cell"]}
    changed = manifest.record(inst.name, row["value"], row["bound"], who)
    return [f"{inst.name}: new {c} {row['value' if c == 'best_value' else 'bound']:.10g} by {row['solver']}"
            for c in changed]


def _client(config, profile: bool = True):
    import dask
    from dask.distributed import Client, LocalCluster

    if config.scheduler:
        return Client(config.scheduler, timeout="30s"), None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    with dask.config.set({"distributed.worker.profile.enabled": profile}):   # the workers take it at spawn
        cluster = LocalCluster(n_workers=config.workers or cores, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR, host="127.0.0.1")
    return Client(cluster), cluster


def run_sweep(config, *, progress: bool = True, retry_errors: bool = False) -> SweepSummary:
    """Run the cells of ``config`` not yet in its database.

    Parameters
    ----------
    config : :class:`~permsolve.bench.config.SweepConfig`
    progress : show a tqdm progress bar (with the time left) on stderr
    retry_errors : run again the cells stored with ``status="error"``

    Returns
    -------
    SweepSummary
        What ran, what was skipped, the manifest changes.

    Raises
    ------
    BoundViolation
        when a value exceeds a bound (a bug): the sweep stops at once.

    Examples
    --------
    A sweep whose cells are all stored already runs nothing (and starts no cluster):

    >>> import os, tempfile
    >>> from permsolve.bench.config import SweepConfig
    >>> from permsolve.bench.db import ResultsDB
    >>> d = tempfile.mkdtemp()
    >>> cfg = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["identity"], budgets=[1],
    ...                   db=os.path.join(d, "r.sqlite"), manifest=os.path.join(d, "m.json"))
    >>> db = ResultsDB(cfg.db)
    >>> db.insert(run_cell(cfg.cells()[0].payload()))
    True
    >>> db.close()
    >>> s = run_sweep(cfg, progress=False)
    >>> s.cells, s.skipped, s.ran
    (1, 1, 0)
    """
    from permsolve.problems.manifest import Manifest

    from .db import ResultsDB

    t0 = time.perf_counter()
    cells = config.cells()
    _, skipped_instances = config.resolved_instances()
    db = ResultsDB(config.db)
    manifest = Manifest(config.manifest)
    summary = SweepSummary(cells=len(cells), db=str(db.path), skipped_instances=skipped_instances)
    try:
        summary.improved += sync_manifest(db, manifest)
        if retry_errors:
            db.delete_errors([c.key for c in cells])
        done = db.finished_cells()
        todo = [c for c in cells if c.key not in done]
        summary.skipped = len(cells) - len(todo)
        if not todo:
            summary.seconds = time.perf_counter() - t0
            return summary

        def on_row(row):
            if row["status"] == "ok":
                changes = _merge(manifest, row, _instance_of(row))
                if changes:
                    manifest.save()
                    summary.improved += changes

        # big budgets first: the long cells start early and the last ones to finish are short
        todo.sort(key=lambda c: (-c.budget, c.instance.name, c.solver, c.seed))
        run_cells(todo, run_cell, config, db, summary, progress=progress, on_row=on_row)
        summary.improved += sync_manifest(db, manifest)
    finally:
        db.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def run_cells(todo, fn, config, db, summary, *, args=(), progress: bool = True, on_row=None,
              desc: str = "permsolve bench", worker_profile: bool = True) -> None:
    """Run ``fn(*args, cell.payload())`` for every cell of ``todo`` on Dask and store each row as it finishes.

    The one loop behind :func:`run_sweep` and :func:`permsolve.bench.grid.run_grid`:
    it starts the client (``config.scheduler`` or a LocalCluster of
    ``config.workers`` processes), submits every cell, and as each one completes
    inserts its row (with the sweep id and ``config.to_dict()`` plus the commit)
    in its own transaction, then calls ``on_row(row)`` for the rows it stored.
    A worker that died leaves a ``status="error"`` row.  ``summary``'s
    ``ran``, ``errors`` and ``concurrent`` counts are updated in place.

    Parameters
    ----------
    todo : cells (``.key``, ``.payload()``) not yet in ``db``
    fn : picklable worker function; returns one database row (``permsolve.bench.db.COLUMNS``)
    config : a sweep config (``scheduler``, ``workers``, ``to_dict()``)
    db : the open :class:`~permsolve.bench.db.ResultsDB`
    summary : the :class:`SweepSummary` to update
    args : arguments passed to ``fn`` before the payload
    progress : show a tqdm bar on stderr
    on_row : called with every row stored now (an exception stops the sweep; the rows stored stay)
    desc : the bar's label
    worker_profile : keep Dask's statistical profiler on in the LocalCluster's workers (it samples the
        running task every 10 ms, which slows tasks on a loaded machine)

    Examples
    --------
    >>> import tempfile, os
    >>> from permsolve.bench.config import SweepConfig
    >>> from permsolve.bench.db import ResultsDB
    >>> cfg = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["greedy"], budgets=[1], workers=1)
    >>> db, summary = ResultsDB(os.path.join(tempfile.mkdtemp(), "r.sqlite")), SweepSummary()
    >>> run_cells(cfg.cells(), run_cell, cfg, db, summary, progress=False)  # doctest: +SKIP
    >>> summary.ran, db.count()  # doctest: +SKIP
    (1, 1)
    """
    from .env import git_commit

    sweep_id = uuid.uuid4().hex[:12]
    cfg = {**config.to_dict(), "commit": git_commit()}
    client, cluster = _client(config, profile=worker_profile)
    futures = []
    try:
        from dask.distributed import as_completed

        futures = [client.submit(fn, *args, c.payload(), key=f"permsolve-cell-{uuid.uuid4().hex}", pure=False)
                   for c in todo]
        bar = _bar(len(todo), progress, desc)
        for fut in as_completed(futures):
            try:
                row = fut.result()
            except Exception as e:   # the worker died (KilledWorker, out of memory): store why
                row = _lost_row(todo[futures.index(fut)], e)
            row.update(sweep=sweep_id, config=cfg)
            if not db.insert(row):
                summary.concurrent += 1
            else:
                summary.ran += 1
                summary.errors += row["status"] != "ok"
                if on_row is not None:
                    on_row(row)
            bar.set_postfix_str(f"{row['instance'][:28]} {row['solver']} {row['status']}", refresh=False)
            bar.update(1)
            fut.release()
        bar.close()
    finally:
        for f in futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def _instance_of(row):
    from permsolve.problems.library import Instance

    return Instance.from_dict(row["recipe"])


def _lost_row(cell, exc) -> dict:
    if hasattr(cell, "lost_row"):          # a grid cell knows its own columns
        return cell.lost_row(exc)
    inst = cell.instance
    return {"cell": cell.key, "instance": inst.name, "family": inst.family, "tile": "x".join(map(str, inst.tile)),
            "sparsity": inst.sparsity, "mask": inst.mask, "axis": inst.axis, "solver": cell.solver,
            "options": dict(cell.options), "budget": cell.budget, "seed": cell.seed, "recipe": inst.to_dict(),
            "status": "error", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "finished_at": _now()}


def _bar(total: int, enabled: bool, desc: str = "permsolve bench"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cell", disable=not enabled, dynamic_ncols=True, smoothing=0.1, desc=desc)
