"""``permsolve bench``: run a benchmark sweep (instances x solvers x budgets x seeds).

``permsolve bench [CONFIG] [--suite smoke|standard|large] [--instances NAME,...]
[--solvers NAME,...] [--budgets SECONDS,...] [--seeds N,...] [--db PATH]
[--scheduler ADDRESS] [--workers N] [--manifest PATH] [--retry-errors] [--list] [--init-manifest] [--dry-run] [--no-progress]``
"""
from __future__ import annotations

import sys

from . import UsageError


def _csv(kind):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise ValueError("empty list")
        return [kind(t) for t in items]
    parse.__name__ = f"list of {kind.__name__}"
    return parse


def add_parser(sub):
    """Add the ``bench`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["bench"].parse_args(['--budgets', '0.5,2']).budgets
    [0.5, 2.0]
    """
    p = sub.add_parser("bench", help="run a benchmark sweep into the results database",
                       description="Run instances x solvers x time budgets x seeds, in parallel on Dask, "
                                   "into a SQLite database.  Re-running skips the cells already stored.")
    p.add_argument("config", nargs="?", metavar="CONFIG", help="sweep file (.toml or .json); flags override it")
    p.add_argument("--suite", default=None, help="smoke, standard, large, real or nm (default: smoke)")
    p.add_argument("--instances", type=_csv(str), default=None, metavar="NAME,...",
                   help="instance names instead of a suite (see --list)")
    p.add_argument("--solvers", type=_csv(str), default=None, metavar="NAME,...",
                   help="default: every registered solver except auto")
    p.add_argument("--budgets", type=_csv(float), default=None, metavar="SECONDS,...", help="time limits")
    p.add_argument("--seeds", type=_csv(int), default=None, metavar="N,...")
    p.add_argument("--db", default=None, metavar="PATH", help="SQLite file (default: results/permsolve.sqlite)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="existing Dask scheduler, e.g. tcp://127.0.0.1:8786 (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="LocalCluster workers (default: cores)")
    p.add_argument("--manifest", default=None, metavar="PATH", help="manifest to update (default: problems/manifest.json)")
    p.add_argument("--retry-errors", action="store_true", help="run again the cells stored with an error")
    p.add_argument("--list", action="store_true", help="list the suite's instances and exit")
    p.add_argument("--init-manifest", action="store_true",
                   help="add the instances' manifest entries (provenance, total, bound) without running anything")
    p.add_argument("--dry-run", action="store_true", help="print the cells that would run and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    """Run (or, with ``--list``, ``--dry-run``, ``--init-manifest``, only plan) a benchmark sweep.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status: 0; 1 when some cells stored an error; 2 for a changed instance; 3 for a value
        above a bound (a bug).

    Examples
    --------
    >>> import contextlib, io
    >>> from permsolve.cli import main
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["bench", "--suite", "smoke", "--solvers", "identity", "--budgets", "1",
    ...                    "--seeds", "0", "--dry-run"])
    >>> status, len(out.getvalue().splitlines()) > 0
    (0, True)
    """
    from permsolve.bench.config import SweepConfig, load_config
    from permsolve.problems.manifest import BoundViolation, InstanceChanged

    over = {"suite": args.suite, "instances": args.instances, "solvers": args.solvers, "budgets": args.budgets,
            "seeds": args.seeds, "db": args.db, "scheduler": args.scheduler, "workers": args.workers,
            "manifest": args.manifest}
    if args.config:
        cfg = load_config(args.config, **over)
    else:
        cfg = SweepConfig(**{k: v for k, v in over.items() if v is not None})
    if args.instances and args.suite:
        raise UsageError("give --suite or --instances, not both")
    instances, skipped = cfg.resolved_instances()
    for why in skipped:
        print(f"note: {why}", file=sys.stderr)
    if args.list:
        for inst in instances:
            m, n = inst.shape()
            print(f"{inst.name:48s} {inst.family:9s} {m}x{n} tile {inst.tile[0]}x{inst.tile[1]} s={inst.sparsity:g} "
                  f"mask {inst.mask} axis {inst.axis}")
        return 0
    if args.init_manifest:
        from permsolve.problems.manifest import Manifest

        man = Manifest(cfg.manifest)
        new = [inst.name for inst in instances if inst.name not in man]
        for inst in instances:
            man.ensure(inst)
        man.save()
        print(f"{len(new)} new manifest entries in {man.path} ({len(instances)} instances)")
        return 0
    cells, left_out = cfg.plan()
    for line in left_out_notes(left_out):
        print(f"note: {line}", file=sys.stderr)
    if args.dry_run:
        for c in cells:
            print(c.key)
        print(f"{len(cells)} cells", file=sys.stderr)
        return 0
    try:
        from permsolve.bench.runner import run_sweep

        s = run_sweep(cfg, progress=not args.no_progress, retry_errors=args.retry_errors)
    except BoundViolation as e:
        print(f"permsolve bench: BUG: {e}", file=sys.stderr)
        print("permsolve bench: stopped; a value above a bound means a solver or a bound is wrong", file=sys.stderr)
        return 3
    except InstanceChanged as e:
        print(f"permsolve bench: error: {e}", file=sys.stderr)
        return 2
    for line in s.improved:
        print(f"manifest: {line}")
    also = (f", {s.concurrent} run here but stored first by another sweep on the same database (its results kept)"
            if s.concurrent else "")
    print(f"{s.cells} cells: {s.ran} run now ({s.errors} errors), {s.skipped} already in {s.db}{also}; "
          f"{s.seconds:.1f} s")
    return 1 if s.errors else 0


def left_out_notes(left_out) -> list[str]:
    """One line per (solver, reason): the instances that solver leaves out and why.

    Parameters
    ----------
    left_out : iterable of (str, str, str)
        ``(solver, instance, reason)`` triples, as :meth:`SweepConfig.plan` returns them.

    Returns
    -------
    list of str
        The notes, at most four instance names each.

    Examples
    --------
    >>> left_out_notes([("anneal", "a", "no N:M"), ("anneal", "b", "no N:M")])
    ['anneal skips 2 instances (a, b): no N:M']
    """
    by = {}
    for solver, inst, why in left_out:
        by.setdefault((solver, why), []).append(inst)
    out = []
    for (solver, why), insts in by.items():
        names = ", ".join(insts[:4]) + (f", ... {len(insts) - 4} more" if len(insts) > 4 else "")
        out.append(f"{solver} skips {len(insts)} instance{'s' if len(insts) > 1 else ''} ({names}): {why}")
    return out
