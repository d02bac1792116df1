"""``permsolve report``: tables and plots from the results database.

``permsolve report [--db PATH] [--out DIR] [--budget-plot SECONDS]``
"""
from __future__ import annotations


def add_parser(sub):
    """Add the ``report`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["report"].parse_args(['--out', 'tables']).out
    'tables'
    """
    p = sub.add_parser("report", help="tables and plots from the benchmark database",
                       description="Markdown and CSV tables (retained fraction, gap to bound, gap to best known, time; "
                                   "ranking per budget), quality-vs-time and Pareto plots (PNG and SVG), and the "
                                   "auto solver's table.")
    p.add_argument("--db", default="results/permsolve.sqlite", metavar="PATH")
    p.add_argument("--out", default="results/bench", metavar="DIR")
    p.add_argument("--manifest", default=None, metavar="PATH", help="default: problems/manifest.json")
    p.set_defaults(func=run)


def run(args):
    """Write the report of a results database (:func:`permsolve.bench.report.write_report`) and list its files.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0.

    Raises
    ------
    FileNotFoundError
        When ``args.db`` does not exist (``permsolve`` prints it in one line, status 2).

    Examples
    --------
    >>> import argparse
    >>> run(argparse.Namespace(db="no/such.sqlite", out="tables", manifest=None))
    Traceback (most recent call last):
    ...
    FileNotFoundError: no results database at no/such.sqlite; run `permsolve bench` first
    """
    from pathlib import Path

    from permsolve.bench.report import write_report

    if not Path(args.db).exists():
        raise FileNotFoundError(f"no results database at {args.db}; run `permsolve bench` first")
    files = write_report(args.db, args.out, manifest=args.manifest)
    for f in files:
        print(f)
    return 0
