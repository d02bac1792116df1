"""``permsolve report``: tables and plots from the results database.

``permsolve report [--db PATH] [--out DIR] [--budget-plot SECONDS]``
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("report", help="tables and plots from the benchmark database",
                       description="Markdown and CSV tables (retained fraction, gap to bound, gap to best known, time; "
                                   "ranking per budget), quality-vs-time and Pareto plots (PNG and SVG), and the "
                                   "auto solver's table.")
    p.add_argument("--db", default="results/permsolve.sqlite", metavar="PATH")
    p.add_argument("--out", default="results/bench", metavar="DIR")
    p.add_argument("--manifest", default=None, metavar="PATH", help="default: problems/manifest.json")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from permsolve.bench.report import write_report

    if not Path(args.db).exists():
        raise FileNotFoundError(f"no results database at {args.db}; run `permsolve bench` first")
    files = write_report(args.db, args.out, manifest=args.manifest)
    for f in files:
        print(f)
    return 0
