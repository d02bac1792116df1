"""TileTrans on the digits zoo: does permuting before tile pruning save accuracy?

For every zoo model, tile shape, budget, solver and sparsity: load the trained
checkpoint, ``prune_model`` (solver ``identity`` = plain tile pruning),
measure validation accuracy right away (one-shot), fine-tune briefly with the
masks kept and measure again.  Writes, under ``--out``:

- ``results.csv``: one row per configuration, written when the grid is complete;
- ``results.sqlite``: the benchmark runner's store (:mod:`permsolve.bench.grid`): one row per finished
  configuration, committed as it finishes; a rerun, interrupted or not, runs only the configurations
  (with the same time limit, seed, epochs and learning rate) not in it yet, and retries failed ones.
  A clean checkout has none (it is not committed), so it reruns everything;
- ``run.txt``: the command, commit and wall time of the run;
- ``results.md``: the accuracy tables;
- ``summary.md``: per model/tile/budget, the sparsity where plain tile pruning
  loses >= 10 points and what greedy and the best solver recover there, plus
  how retained importance relates to accuracy;
- ``<model>.png``: accuracy against sparsity, one line per solver.

The tables and figures are ``benchmarks/tiletrans_report.py``.

Usage (from the repository root)::

    python benchmarks/tiletrans_experiment.py            # the full grid, 864 runs, 2 processes
    python benchmarks/tiletrans_experiment.py --quick    # a few minutes: 16x16, global, 4 sparsities
    python benchmarks/tiletrans_experiment.py --report-only   # redo tables and plots from results.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tiletrans_report import (COLORS, compare_scope, load_rows, plot, write_summary,  # noqa: E402,F401
                              write_tables)

FIELDS = ["model", "tile", "budget", "scope", "solver", "sparsity", "dense_acc", "acc_oneshot", "acc_finetuned",
          "weight_sparsity", "retained_fraction", "permuted_groups", "groups", "permute_seconds", "seconds"]
SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
def searches(solver: str) -> bool:
    """Whether ``solver`` is a seeded search that runs until its time is up (so it gets the time limit);
    the deterministic solvers (identity, greedy, hungarian) stop on their own and run without one.

    Examples
    --------
    >>> searches("anneal"), searches("hungarian")
    (True, False)
    """
    from permsolve.registry import get_solver

    cls = get_solver(solver)
    return bool(cls.anytime and cls.randomized)


_WORKER: dict = {}


def _worker_state(threads: int) -> dict:
    """Per worker process: the torch threads, the batch ``prune_model`` checks on, the dense accuracies."""
    import torch

    from permsolve import zoo

    torch.set_num_threads(threads)
    if not _WORKER:
        _WORKER["X_check"] = zoo.digits("train")[0][:128]
        _WORKER["dense"] = {}
    return _WORKER


def run_one(payload: dict) -> dict:
    """The grid's task: prune one configuration, evaluate, fine-tune, evaluate again; return its CSV row.

    Parameters
    ----------
    payload : a :class:`permsolve.bench.grid.TaskCell` payload: ``point`` (model, tile, budget, scope,
        solver, sparsity), ``options`` (time_limit, seed, finetune_epochs, lr), ``settings`` (threads)

    Returns
    -------
    dict
        the ``results.csv`` row (:data:`FIELDS`), values formatted as written.

    Examples
    --------
    >>> args = main_parser().parse_args(["--models", "mlp", "--tiles", "16x16", "--budgets", "global",
    ...                                  "--solvers", "greedy", "--sparsities", "0.5", "--finetune-epochs", "0"])
    >>> row = run_one(grid_config(args).cells()[0].payload())
    >>> row["solver"], row["sparsity"], list(row) == FIELDS
    ('greedy', '0.50', True)
    """
    from permsolve import zoo
    from permsolve.torch.prune import prune_model

    cfg, opts = payload["point"], payload["options"]
    state = _worker_state(payload["settings"].get("threads", 1))     # a worker's set-up: not timed
    t0 = time.perf_counter()
    name, s, solver = cfg["model"], float(cfg["sparsity"]), cfg["solver"]
    dense = state["dense"].get(name)
    if dense is None:
        dense = state["dense"][name] = zoo.evaluate(zoo.load(name), "val")
    model = zoo.load(name)
    tl = opts["time_limit"] if searches(solver) else None
    rep = prune_model(model, state["X_check"], tile=cfg["tile"], sparsity=s, solver=solver, scope=cfg["scope"],
                      budget=cfg["budget"], time_limit=tl, seed=opts["seed"])
    acc1 = zoo.evaluate(model, "val")
    acc2 = float("nan")
    if opts["finetune_epochs"] > 0:
        zoo.finetune(model, epochs=opts["finetune_epochs"], lr=opts["lr"], seed=opts["seed"])
        acc2 = zoo.evaluate(model, "val")
    groups = rep.permute.groups if rep.permute else []
    row = dict(cfg)
    row.update(dense_acc=f"{dense:.4f}", acc_oneshot=f"{acc1:.4f}", acc_finetuned=f"{acc2:.4f}",
               weight_sparsity=f"{rep.weight_sparsity:.4f}", retained_fraction=f"{rep.retained_fraction:.5f}",
               permuted_groups=sum(g.permuted for g in groups), groups=len(groups),
               permute_seconds=f"{rep.permute.seconds if rep.permute else 0.0:.3f}",
               seconds=f"{time.perf_counter() - t0:.2f}")
    return row


def grid_config(args):
    """The experiment's grid as a benchmark-runner config (:class:`permsolve.bench.grid.GridConfig`).

    Parameters
    ----------
    args : the parsed command line (:func:`main_parser`; ``models`` filled in)

    Returns
    -------
    permsolve.bench.grid.GridConfig
        axes model, tile, budget, scope, solver, sparsity (in that order: ``results.csv``'s order);
        options time_limit, seed, finetune_epochs, lr (part of each cell's key); threads; the store
        ``<out>/results.sqlite``; ``--jobs`` workers.

    Examples
    --------
    >>> args = main_parser().parse_args(["--models", "mlp", "--solvers", "identity", "greedy"])
    >>> len(grid_config(args).cells())       # 3 tiles x 2 budgets x 1 scope x 2 solvers x 9 sparsities
    108
    """
    from permsolve.bench.grid import GridConfig

    return GridConfig(axes={"model": list(args.models), "tile": list(args.tiles), "budget": list(args.budgets),
                            "scope": list(args.scopes), "solver": list(args.solvers),
                            "sparsity": [f"{s:.2f}" for s in args.sparsities]},
                      options={"time_limit": args.time_limit, "seed": args.seed,
                               "finetune_epochs": args.finetune_epochs, "lr": args.lr},
                      settings={"threads": args.threads}, db=str(args.out / "results.sqlite"), workers=args.jobs)


def run_grid(args) -> int:
    """Run, on the benchmark runner, every configuration not yet in ``results.sqlite``, ``--jobs`` at a time.

    Each finished configuration is committed to ``results.sqlite`` (an interrupted run resumes from it;
    failed ones are retried).  When the whole grid is stored, its rows are written in grid order to
    ``results.csv`` and the invocation to ``run.txt`` (unless nothing ran now); otherwise the failures
    are listed and 1 returned.

    Parameters
    ----------
    args : the parsed command line (``models`` filled in, ``out`` created)

    Returns
    -------
    int
        0 when ``results.csv`` was written, 1 when configurations failed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> args = main_parser().parse_args(["--models", "mlp", "--tiles", "16x16", "--budgets", "global",
    ...     "--solvers", "identity", "--sparsities", "0.5", "--finetune-epochs", "0", "--jobs", "1",
    ...     "--out", tempfile.mkdtemp()])
    >>> run_grid(args)  # doctest: +SKIP
    1 configurations, 0 already in results.sqlite, 1 to run with 1 process(es)
    ...
    0
    """
    import subprocess

    from permsolve.bench.grid import grid_results
    from permsolve.bench.grid import run_grid as run_on_runner

    cfg = grid_config(args)
    store = Path(cfg.db).name
    final = args.out / "results.csv"
    t_start = time.perf_counter()
    count = {"todo": 0, "done": 0}

    def started(summary):
        count["todo"] = summary.cells - summary.skipped
        print(f"{summary.cells} configurations, {summary.skipped} already in {store}, "
              f"{count['todo']} to run with {args.jobs} process(es)", flush=True)

    def finished(db_row):
        count["done"] += 1
        head = f"[{time.perf_counter() - t_start:7.0f}s {count['done']}/{count['todo']}]"
        if db_row["status"] != "ok":
            print(f"{head} {db_row['cell']} failed: {db_row['error']}", flush=True)
            return
        row = db_row["info"]
        print(f"{head} {row['model']} {row['tile']} "
              f"{row['budget']} {row['scope']} {row['solver']:<9} s={float(row['sparsity']):.1f} "
              f"ret {float(row['retained_fraction']):.3f} acc {float(row['acc_oneshot']):.3f} "
              f"-> ft {float(row['acc_finetuned']):.3f}", flush=True)

    task = run_one
    if __name__ == "__main__":      # by reference, not by value: each worker process keeps its caches
        import importlib

        task = importlib.import_module("tiletrans_experiment").run_one
    summary = run_on_runner(cfg, task, progress=False, retry_errors=True, on_start=started, on_row=finished)
    errors = []
    rows = grid_results(cfg, errors=errors)
    if any(r is None for r in rows):
        for k, e in errors:
            print(f"failed: {k}: {e}", file=sys.stderr)
        print(f"{sum(r is None for r in rows)} configuration(s) missing or failed (a rerun retries them): "
              f"{final.name} not written", file=sys.stderr)
        return 1
    with final.open("w", newline="") as g:
        wf = csv.DictWriter(g, FIELDS)
        wf.writeheader()
        for r in rows:
            wf.writerow(r)
    if summary.ran == 0:          # nothing ran now: run.txt still describes the run that did
        return 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    (args.out / "run.txt").write_text(
        f"command: python benchmarks/tiletrans_experiment.py {' '.join(sys.argv[1:])}\n"
        f"commit: {commit or 'unknown'}\nconfigurations: {len(rows)} ({summary.ran} run now)\n"
        f"wall seconds (this invocation): {time.perf_counter() - t_start:.0f}\njobs: {args.jobs}\n")
    return 0


def diagnose(spec: list[str], solvers: list[str], out: Path, threads: int) -> None:
    """Why does a solver that retains more importance lose accuracy?  For one
    configuration, per solver, metric and scope: one-shot accuracy, retained
    importance, and the accuracy when the mask of one layer is lifted (which
    layer's pruning does the damage).  Appends a section to ``diagnosis.md``."""
    import torch

    from permsolve import zoo
    from permsolve.torch.prune import prune_model

    torch.set_num_threads(threads)
    model_name, tile, budget, s = spec[0], spec[1], spec[2], float(spec[3])
    X = zoo.digits("train")[0][:128]
    lines = [f"## {model_name}, tile {tile}, budget {budget}, sparsity {s:g}", "",
             f"Command: `python benchmarks/tiletrans_experiment.py --diagnose {' '.join(spec)}`", "",
             "`lift X` = one-shot accuracy with the mask of layer X removed (all other masks kept).", ""]
    header = None
    for scope in ("layer", "group"):
        for metric in ("l1", "l2"):
            for sv in solvers:
                if sv == "identity" and scope == "group":
                    continue
                model = zoo.load(model_name)
                rep = prune_model(model, X, tile=tile, sparsity=s, solver=sv, scope=scope, budget=budget,
                                  metric=metric, time_limit=0.2 if searches(sv) else None)
                acc = zoo.evaluate(model)
                lifts = []
                mods = dict(model.named_modules())
                for l in rep.layers:
                    mask = mods[l.name].weight_mask
                    saved = mask.clone()
                    mask.fill_(1)
                    lifts.append(zoo.evaluate(model))
                    mask.copy_(saved)
                if header is None:
                    header = [l.name for l in rep.layers]
                    lines += ["| solver | scope | metric | acc | retained | " +
                              " | ".join(f"{n} retained" for n in header) + " | " +
                              " | ".join(f"lift {n}" for n in header) + " |",
                              "|---|---|---|---:|---:|" + "---:|" * (2 * len(header))]
                lines.append(f"| {sv} | {scope} | {metric} | {100 * acc:.1f} | {rep.retained_fraction:.3f} | " +
                             " | ".join(f"{l.retained_fraction:.3f}" for l in rep.layers) + " | " +
                             " | ".join(f"{100 * a:.1f}" for a in lifts) + " |")
                print(lines[-1], flush=True)
    path = out / "diagnosis.md"
    new = not path.exists()
    with path.open("a") as f:
        if new:
            f.write("# Per-layer diagnosis: which layer's pruning costs the accuracy\n\n")
        f.write("\n".join(lines) + "\n\n")


def main_parser() -> argparse.ArgumentParser:
    """The command line (``--help``).

    Examples
    --------
    >>> main_parser().parse_args([]).solvers
    ['identity', 'greedy', 'hungarian', 'anneal']
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--tiles", nargs="+", default=["16x16", "32x1", "8x8"])
    ap.add_argument("--budgets", nargs="+", default=["global", "layer"])
    ap.add_argument("--scopes", nargs="+", default=["layer"])
    ap.add_argument("--solvers", nargs="+", default=["identity", "greedy", "hungarian", "anneal"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=SPARSITIES)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--time-limit", type=float, default=0.2, help="seconds per channel group for anneal etc.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (1 is fastest on a busy machine)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="configurations run in parallel, one Dask worker process each (default: 2, or 1 on one core)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "tiletrans")
    ap.add_argument("--quick", action="store_true", help="16x16, global, sparsities 0.3 0.5 0.7 0.9")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--compare-with", type=Path, default=None, metavar="CSV",
                    help="also write scope_comparison.md: these runs against the same configurations in CSV")
    ap.add_argument("--diagnose", nargs=4, metavar=("MODEL", "TILE", "BUDGET", "SPARSITY"),
                    help="per-layer look at one configuration (appends to diagnosis.md)")
    return ap


def main(argv=None) -> int:
    args = main_parser().parse_args(argv)
    from permsolve import zoo

    if args.models is None:
        args.models = zoo.names()
    if args.quick:
        args.tiles, args.budgets, args.sparsities = ["16x16"], ["global"], [0.3, 0.5, 0.7, 0.9]
        if args.out == ROOT / "results" / "tiletrans":
            args.out = ROOT / "results" / "tiletrans" / "quick"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.diagnose:
        diagnose(args.diagnose, args.solvers, args.out, args.threads)
        return 0
    if not args.report_only:
        rc = run_grid(args)
        if rc:
            return rc
    rows = load_rows(args.out / "results.csv")
    write_tables(rows, args.out)
    write_summary(rows, args.out)
    plot(rows, args.out)
    if args.compare_with:
        compare_scope(rows, args.compare_with, args.out)
    print(f"wrote {args.out}/results.csv, results.md, summary.md and one PNG per model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
