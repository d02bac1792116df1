"""2:4 pruning of every zoo model, with and without channel permutation, next to tile pruning at 50 %.

For every zoo model: load the trained checkpoint, ``prune_model(..., mask="2:4")``
with solver ``identity`` (plain 2:4), ``greedy`` and ``hungarian``, and the
best N:M solver in the registry when one is registered (the first of
``--nm-solvers`` that ``permsolve.get_solver`` knows; otherwise the table says
it was not there); then the same layers tile-pruned at the same 50 % with
16x1 tiles (the tile of the repository's compression comparison), per layer
(``budget="layer"``: each layer keeps 50 %, as 2:4 does), unpermuted
(``identity``) and permuted (``hungarian``, TileTrans's row permutation).
Layers 2:4 cannot prune (input channels not a multiple of 4: the first conv,
the depthwise conv) stay dense in both.  Accuracy on the validation split
one-shot and after a short fine-tune (``zoo.finetune``: Adam, lr 1e-3, the
TileTrans experiment's recipe; masks stay in force), median over the
fine-tune seeds (each model is pruned once, with seed 0; each seed fine-tunes a copy).

    .venv/bin/python benchmarks/nm_models.py                 # ~3 min on 2 cores
    .venv/bin/python benchmarks/nm_models.py --seeds 0 --epochs 1 --models mlp

Writes ``results/nm/models.md``, ``models.csv`` and ``run.txt`` (command, commit,
wall time, load average).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FIELDS = ["model", "method", "solver", "dense_acc", "acc_oneshot", "acc_finetuned", "acc_finetuned_runs",
          "retained_fraction", "weight_sparsity", "pruned_layers", "dense_layers", "seconds"]


def _registered(names):
    from permsolve.registry import get_solver

    for n in names:
        try:
            get_solver(n)
            return n
        except ValueError:
            continue
    return None


def run_one(name: str, method: str, solver: str, args, X_check) -> dict:
    """Prune once (seed 0), evaluate, then fine-tune a copy per seed and evaluate each."""
    import copy

    import torch

    from permsolve import zoo
    from permsolve.torch.prune import nm_masks, prune_model

    from permsolve.registry import get_solver

    t0 = time.perf_counter()
    cls = get_solver(solver)
    # a seeded search runs until its time is up; the deterministic ones (hungarian) converge on their own
    tl = args.time_limit if cls.anytime and cls.randomized else None
    model = zoo.load(name)
    if method == "2:4":
        rep = prune_model(model, X_check, mask="2:4", solver=solver, time_limit=tl, seed=0)
    else:       # tile 16x1 at 50 % on the layers 2:4 prunes, each layer to 50 %
        _, skipped = nm_masks(model, mask="2:4")
        rep = prune_model(model, X_check, tile=(16, 1), sparsity=0.5, budget="layer", solver=solver,
                          time_limit=tl, seed=0, layer_sparsity={n: 0.0 for n in skipped})
        rep.skipped = skipped
    acc1 = zoo.evaluate(model, "val")
    accs = []
    for seed in args.seeds:
        m = copy.deepcopy(model)
        torch.manual_seed(seed)
        zoo.finetune(m, epochs=args.epochs, lr=args.lr, seed=seed)
        accs.append(zoo.evaluate(m, "val"))
    pruned = [l for l in rep.layers if l.weight_sparsity > 0]
    return {"model": name, "method": method, "solver": solver, "acc_oneshot": acc1,
            "acc_finetuned": statistics.median(accs), "acc_finetuned_runs": " ".join(f"{a:.4f}" for a in accs),
            "retained_fraction": sum(l.retained for l in pruned) / max(sum(l.total for l in pruned), 1e-300),
            "weight_sparsity": sum(l.weight_sparsity * l.shape[0] * l.shape[1] for l in pruned)
            / max(sum(l.shape[0] * l.shape[1] for l in pruned), 1),
            "pruned_layers": len(pruned), "dense_layers": ", ".join(sorted(rep.skipped)),
            "seconds": time.perf_counter() - t0}


def write_table(rows, nm_solver, missing, args, out: Path, wall: float, load) -> None:
    lines = ["# 2:4 pruning of the digits zoo, next to 16x1 tile pruning at the same 50 %", "",
             f"Written by `python benchmarks/nm_models.py {' '.join(sys.argv[1:])}`. Validation accuracy (%) "
             f"one-shot / after {args.epochs} epoch(s) of `zoo.finetune` (Adam, lr {args.lr:g}; masks stay in force), "
             f"median over fine-tune seeds {', '.join(map(str, args.seeds))}; *retained*: fraction of sum |W| kept "
             "over the pruned layers. 2:4 keeps 2 of every 4 consecutive input weights of each output "
             "(a conv's along its input channels at every spatial position); the permuting solvers reorder input "
             "channels for it. Tile rows prune 50 % of the 16x1 tiles of each of the same layers (per layer, "
             "`budget=\"layer\"`), `hungarian` there is TileTrans's row permutation. Layers 2:4 cannot prune "
             "(input channels not a multiple of 4) stay dense in both (last column).", ""]
    if nm_solver is None:
        lines += [f"No N:M search solver was registered ({', '.join(missing)} looked up): its rows are absent.", ""]
    lines += ["| model | dense | method | solver | one-shot | fine-tuned | retained | dense layers |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {100 * r['dense_acc']:.1f} | {r['method']} | {r['solver']} | "
                     f"{100 * r['acc_oneshot']:.1f} | {100 * r['acc_finetuned']:.1f} | {r['retained_fraction']:.4f} | "
                     f"{r['dense_layers'] or '-'} |")
    from permsolve import zoo

    n_val = len(zoo.digits("val")[1])
    lines += ["", f"The validation split has {n_val} images: one image is {100 / n_val:.2f} points. Wall time "
              f"{wall:.0f} s; load average at the start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.", ""]
    (out / "models.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--nm-solvers", nargs="+", default=["nm-anneal", "nm-exact"],
                    help="the first one registered is used as the best N:M solver")
    ap.add_argument("--time-limit", type=float, default=1.0, help="seconds per channel group (anytime solvers)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "nm")
    ap.add_argument("--report-only", action="store_true", help="rewrite models.md from models.csv and run.txt")
    args = ap.parse_args(argv)
    if args.report_only:
        with open(args.out / "models.csv") as f:
            rows = [{k: (v if k in ("model", "method", "solver", "dense_layers", "acc_finetuned_runs") else float(v))
                     for k, v in r.items()} for r in csv.DictReader(f)]
        run = dict(line.split(": ", 1) for line in (args.out / "run.txt").read_text().splitlines())
        have = {r["solver"] for r in rows if r["method"] == "2:4"}
        nm_solver = next((s for s in args.nm_solvers if s in have), None)
        sys.argv = ["nm_models.py", *run["command"].split()[2:]]
        write_table(rows, nm_solver, args.nm_solvers, args, args.out, float(run["wall seconds"]),
                    [float(x) for x in run["load average at start"].split()])
        return 0

    import torch

    from permsolve import zoo

    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    t0 = time.perf_counter()
    models = args.models or [m for m in zoo.names() if zoo.checkpoint_path(m).exists()]
    nm_solver = _registered(args.nm_solvers)
    if nm_solver is None:
        print(f"note: no N:M solver registered ({', '.join(args.nm_solvers)}): left out", file=sys.stderr)
    X_check = zoo.digits("train")[0][:128]
    plan = [("2:4", s) for s in ["identity", "greedy", "hungarian"] + ([nm_solver] if nm_solver else [])]
    plan += [("tile 16x1", "identity"), ("tile 16x1", "hungarian")]
    rows = []
    for name in models:
        dense = zoo.evaluate(zoo.load(name), "val")
        for method, solver in plan:
            r = run_one(name, method, solver, args, X_check)
            r["dense_acc"] = dense
            rows.append(r)
            print(f"[{time.perf_counter() - t0:5.0f}s] {name:<10} {method:<9} {solver:<10} retained "
                  f"{r['retained_fraction']:.4f} acc {r['acc_oneshot']:.3f} -> {r['acc_finetuned']:.3f}", flush=True)
    wall = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "models.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    write_table(rows, nm_solver, args.nm_solvers, args, args.out, wall, load)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    (args.out / "run.txt").write_text(f"command: python benchmarks/nm_models.py {' '.join(sys.argv[1:])}\n"
                                      f"commit: {commit or 'unknown'}\nwall seconds: {wall:.0f}\n"
                                      f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
                                      f"torch threads: {args.threads}\n")
    print(f"wrote {args.out / 'models.md'} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
