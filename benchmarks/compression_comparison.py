"""Compression comparison on the digits zoo: tile pruning (identity / greedy / best solver,
SR-init allocation), SR-init layer pruning and TRP (with its truncated-SVD baseline) at
matched parameter budgets, same short fine-tune.

    .venv/bin/python benchmarks/compression_comparison.py [--quick] [--out results/compression]
        [--pipelines] [any other `permsolve compare` option]

Writes table.md, table.csv, rows.json and accuracy_vs_params.png under --out.  With
--pipelines it also runs the two paper-default pipelines on the ResNet
(`permsolve compress --method srinit|trp --model resnet --json`) and stores their JSON and
wall time in pipelines.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from permsolve import zoo
    from permsolve.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/compression"))
    ap.add_argument("--pipelines", action="store_true", help="also time the paper-default pipelines on resnet")
    ap.add_argument("--quick", action="store_true")
    args, rest = ap.parse_known_args(argv)
    models = [m for m in zoo.names() if zoo.checkpoint_path(m).exists()]
    missing = sorted(set(zoo.names()) - set(models))
    if missing:
        print(f"no checkpoint for {', '.join(missing)}: left out", file=sys.stderr)
    if "--models" not in rest:
        rest = ["--models", *models, *rest]
    rc = cli(["compare", "--out", str(args.out), *(["--quick"] if args.quick else []), *rest])
    if rc or not args.pipelines:
        return rc
    runs = {}
    for method in ("srinit", "trp"):
        argv_m = ["compress", "--method", method, "--model", "resnet", "--json", *(["--quick"] if args.quick else [])]
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = cli(argv_m)
        wall = time.perf_counter() - t0
        if rc:
            return rc
        runs[method] = {"command": "permsolve " + " ".join(argv_m), "wall_seconds": round(wall, 1),
                        "result": json.loads(buf.getvalue())}
        r = runs[method]["result"]
        print(f"{method}: params {r['params_before']} -> {r['params_after']}, acc {r['acc_before']:.4f} -> "
              f"{r['acc_compressed']:.4f} -> {r['acc_finetuned']:.4f} ({wall:.0f} s)")
    (args.out / "pipelines.json").write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
