"""``permsolve compare``: every compression method on the zoo models at matched parameter budgets.

``permsolve compare [--models NAME ...] [--budgets F ...] [--quick] [--out DIR]
[--best-solver NAME] [--time-limit SECONDS] [--tile HxW] [--json]``

Writes ``table.csv``, ``table.md``, ``rows.json`` and ``accuracy_vs_params.png`` under ``--out``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import UsageError, seconds


def add_parser(sub):
    """Add the ``compare`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["compare"].parse_args(['--budgets', '0.5']).budgets
    [0.5]
    """
    p = sub.add_parser("compare", help="compare tile pruning, SR-init and TRP at matched parameter budgets",
                       description="Tile pruning (identity/greedy/best solver, SR-init allocation), SR-init and "
                                   "TRP on the zoo models at matched parameter budgets, same short fine-tune.")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME", help="zoo models (default: all)")
    p.add_argument("--budgets", nargs="+", type=float, default=[0.3, 0.5, 0.7], metavar="F",
                   help="fractions of parameters removed (default 0.3 0.5 0.7)")
    p.add_argument("--methods", nargs="+", default=None, metavar="M",
                   help="restrict to these labels (tile-identity tile-greedy tile-BEST tile-BEST+uniform tile-BEST+sensitivity srinit trp svd)")
    p.add_argument("--quick", action="store_true", help="short schedules")
    p.add_argument("--out", type=Path, default=Path("results/compression"), metavar="DIR")
    p.add_argument("--best-solver", default="anneal", metavar="NAME", help="the 'best' permutation solver (default anneal)")
    p.add_argument("--time-limit", type=seconds, default=1.0, metavar="SECONDS",
                   help="time limit per permutation group of the best solver (default 1)")
    p.add_argument("--tile", default="16x1", metavar="HxW",
                   help="tile shape (default 16x1: TileTrans's 128x1 shape scaled to these small layers)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of progress lines")
    p.set_defaults(func=run)


def run(args):
    """Run :func:`permsolve.compress.compare.compare` and write its tables, rows and plot under ``--out``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0; bad input raises :class:`~permsolve.cli.UsageError`.

    Examples
    --------
    >>> from permsolve.cli import main
    >>> main(["compare", "--budgets", "1.5"])       # refused before any work: status 2
    2
    """
    import torch

    from permsolve import zoo
    from permsolve.compress import compare as C
    from permsolve.problem import parse_tile
    from permsolve.registry import get_solver

    for m in args.models or []:
        if m not in zoo.names():
            raise UsageError(f"unknown zoo model {m!r}; models: {', '.join(zoo.names())}")
    for b in args.budgets:
        if not 0.0 < b < 1.0:
            raise UsageError(f"budgets must be in (0, 1), got {b}")
    get_solver(args.best_solver)
    tile = parse_tile(args.tile)
    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    rows = C.compare(args.models, budgets=tuple(args.budgets), quick=args.quick, best_solver=args.best_solver,
                     time_limit=args.time_limit, tile=tile, methods=args.methods, log=log)
    meta = {"quick": args.quick, "tile": args.tile, "best solver": args.best_solver,
            "time limit per group": f"{args.time_limit} s", "fine-tune": "SGD lr 0.01 momentum 0.9 cosine, "
            f"{3 if args.quick else 10} epochs", "accuracy split": "test", "sensitivity split": "val",
            "wall time": f"{time.perf_counter() - t0:.0f} s", "torch threads": args.threads}
    C.write_table(rows, args.out, meta=meta)
    C.plot(rows, args.out / "accuracy_vs_params.png")
    (args.out / "rows.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if args.json:
        json.dump(rows, sys.stdout)
        print()
    else:
        print(f"wrote {args.out}/table.md, table.csv, rows.json, accuracy_vs_params.png "
              f"({time.perf_counter() - t0:.0f} s)")
    return 0
