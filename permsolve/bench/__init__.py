"""The benchmark suite: sweeps of instances x solvers x time budgets x seeds.

* :mod:`~permsolve.bench.config` describes a sweep (:class:`SweepConfig`),
* :mod:`~permsolve.bench.runner` runs it on Dask and stores each finished cell,
* :mod:`~permsolve.bench.grid` runs other grids (model-level cells: a task
  function per cell) on the same runner and store,
* :mod:`~permsolve.bench.db` is the SQLite results database,
* :mod:`~permsolve.bench.report` turns the database into tables and plots,
* :mod:`~permsolve.bench.auto` picks a solver from the stored results
  (the ``auto`` solver).

Examples
--------
>>> from permsolve.bench import SweepConfig
>>> cfg = SweepConfig(suite="smoke", solvers=["greedy"], budgets=[1.0], seeds=[0])
>>> len(cfg.cells())
3
"""
from .config import Cell, SweepConfig, load_config
from .db import ResultsDB
from .grid import GridConfig, TaskCell, run_grid

__all__ = ["SweepConfig", "Cell", "load_config", "ResultsDB", "run_sweep", "write_report", "GridConfig", "TaskCell",
           "run_grid"]


def run_sweep(config, **kw):
    """Run a sweep; see :func:`permsolve.bench.runner.run_sweep`.

    Parameters
    ----------
    config : SweepConfig
        The sweep.
    **kw
        ``progress``, ``retry_errors``.

    Returns
    -------
    SweepSummary
        What ran and what was skipped.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> cfg = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["identity"], budgets=[1],
    ...                   db=os.path.join(d, "r.sqlite"), manifest=os.path.join(d, "m.json"))
    >>> cfg.db.endswith("r.sqlite"), callable(run_sweep)
    (True, True)
    """
    from .runner import run_sweep as _run

    return _run(config, **kw)


def write_report(db, out, **kw):
    """Write tables and plots; see :func:`permsolve.bench.report.write_report`.

    Parameters
    ----------
    db : str or Path
        The results database.
    out : str or Path
        Folder for the report.
    **kw
        ``manifest``.

    Returns
    -------
    list of str
        The files written.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> ResultsDB(os.path.join(d, "r.sqlite")).close()
    >>> write_report(os.path.join(d, "r.sqlite"), os.path.join(d, "out"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...r.sqlite holds no successful run to report
    """
    from .report import write_report as _write

    return _write(db, out, **kw)
