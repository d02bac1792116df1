"""Issue 2's quality figures: planted instances and real trained layers.

1. Planted instances (hidden row groups, shuffled; the planted order attains
   the bound, so it is optimal): each solver's value as a share of the optimum.
2. Real trained layer matrices of the digits model zoo, |W|, rows permuted,
   tiles 16x16 and 32x1 at sparsity 0.5: each solver's retained fraction and
   the share of the gap between greedy (TileTrans) and the bound it closes.

Usage::

    python benchmarks/solver_quality.py [--time-limit 10] [--quick] [--out results/quality]

Writes ``planted.md``, ``real.md`` and ``real.csv`` under ``--out`` and prints them.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from permsolve import TileProblem, available_solvers as solvers, importance, solve
from permsolve.problems.planted import planted


def run(problem, name, limit, seed=0):
    cls = solvers()[name]
    if cls().supports(problem):
        return None
    return solve(problem, name, time_limit=limit if cls.anytime else None, seed=seed)


def planted_table(names, limit, quick):
    cases = [(128, 128, (8, 8)), (256, 256, (16, 16)), (512, 512, (16, 16)), (256, 64, (32, 1))]
    seeds = [0] if quick else [0, 1, 2]
    if quick:
        cases = cases[:2]
    lines = ["| instance | mask | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for m, n, tile in cases:
        for mask in ("global", "row-balanced"):
            per = {k: [] for k in names}
            for seed in seeds:
                inst = planted(m, n, tile=tile, seed=seed)
                p = TileProblem.from_matrix(inst.S, tile=inst.tile, sparsity=inst.sparsity, mask=mask)
                opt = p.evaluate({"row": inst.row_perm})
                assert abs(opt - p.bound) <= 1e-9 * p.bound, "planted order must attain the bound"
                for k in names:
                    r = run(p, k, limit, seed)
                    per[k].append(np.nan if r is None else r.retained / opt)
            cells = [f"{100 * min(v):.3f}%" if not np.isnan(v).any() else "n/a" for v in per.values()]
            lines.append(f"| planted {m}x{n} tile {tile[0]}x{tile[1]} (worst of {len(seeds)} seeds) | {mask} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def real_table(names, limit, quick, tiles=("16x16", "32x1"), sparsity=0.5):
    from permsolve.problems.real import zoo_layers, zoo_weight

    rows = []
    solved = {}     # (layer, tile) -> (problem, hungarian's result), for ilp_ties
    layers = zoo_layers()
    for model, layer, (m, n) in layers:
        for tile in tiles:
            h, w = (int(x) for x in tile.split("x"))
            if m < 2 * h:        # one tile row: every row order gives the same tiles
                continue
            S = importance(zoo_weight(model, layer), "l1")
            p = TileProblem.from_matrix(S, tile=(h, w), sparsity=sparsity)
            res = {k: run(p, k, limit) for k in names}
            solved[(f"{model}.{layer}", tile)] = (p, res.get("hungarian"))
            g = res["greedy"].retained
            row = {"layer": f"{model}.{layer}", "shape": f"{m}x{n}", "tile": tile, "bound": p.bound, "total": p.total}
            for k, r in res.items():
                if r is None:
                    continue
                row[f"{k}_fraction"] = r.fraction
                row[f"{k}_closed"] = (r.retained - g) / (p.bound - g) if p.bound > g else float("nan")
                row[f"{k}_seconds"] = r.seconds
            rows.append(row)
            print(f"{row['layer']:<28} {row['shape']:>9} {tile:>6} " + " ".join(
                f"{k}={100 * row.get(k + '_fraction', np.nan):.3f}%/{100 * row.get(k + '_closed', np.nan):.1f}%"
                for k in names), flush=True)
            if quick and len(rows) >= 4:
                return rows, solved
    return rows, solved


def ilp_ties(rows, solved, limit):
    """Where anneal does not beat hungarian: is hungarian's answer optimal?

    ``solved`` maps (layer, tile) to the problem and hungarian's result from
    :func:`real_table`.  ``ilp`` starts from hungarian's permutation (so it can only improve it) and
    either proves it optimal, finds better, or stops at ``limit`` seconds with a
    bound.  Returns markdown lines.
    """
    lines = [f"Layers where anneal does not beat hungarian: `ilp` from hungarian's answer, {limit:g} s", "",
             "| layer | tile | hungarian kept | ilp kept | ilp bound | proven optimal | seconds |",
             "|---|---|---:|---:|---:|---|---:|"]
    for r in rows:
        if r.get("anneal_fraction", 0) > r.get("hungarian_fraction", 0) + 1e-12 or r["bound"] <= r["total"] * r.get("hungarian_fraction", 0) * (1 + 1e-9):
            continue      # anneal is better, or hungarian already reaches the allocation bound
        p, hu = solved[(r["layer"], r["tile"])]
        il = solve(p, "ilp", time_limit=limit, init=hu)
        r.update(ilp_fraction=il.fraction, ilp_bound=il.bound, ilp_optimal=il.optimal)
        line = (f"| {r['layer']} | {r['tile']} | {100 * hu.fraction:.3f}% | {100 * il.fraction:.3f}% | "
                f"{100 * il.bound / p.total:.3f}% | {'yes' if il.optimal else 'no'} | {il.seconds:.1f} |")
        lines.append(line)
        print(line, flush=True)
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per anytime solver run")
    ap.add_argument("--solvers", nargs="+", default=["identity", "greedy", "hungarian", "anneal"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/quality")
    ap.add_argument("--ilp-ties", type=float, default=60.0, metavar="SECONDS",
                    help="ilp time limit on the layers where anneal does not beat hungarian (0: skip)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    names = [k for k in args.solvers if k in solvers()]

    print("# planted instances: value / optimum (worst of the seeds)")
    lines = planted_table(names, args.time_limit, args.quick)
    (out / "planted.md").write_text("\n".join(lines) + "\n")

    print("\n# real layers: retained fraction / share of the greedy-to-bound gap closed")
    rows, solved = real_table(names, args.time_limit, args.quick)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("layer", "shape", "tile", "bound", "total"), k))
    with open(out / "real.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    md = ["| layer | shape | tile | " + " | ".join(f"{k} kept (gap closed)" for k in names) + " |",
          "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        md.append(f"| {r['layer']} | {r['shape']} | {r['tile']} | " + " | ".join(
            f"{100 * r[k + '_fraction']:.3f}% ({100 * r[k + '_closed']:.1f}%)" if k + "_fraction" in r else "n/a"
            for k in names) + " |")
    # summary: how often each comparison the issue asks for holds
    summary = []
    for tile in sorted({r["tile"] for r in rows}):
        sub = [r for r in rows if r["tile"] == tile]
        for a, b in (("hungarian", "greedy"), ("anneal", "hungarian")):
            if all(f"{k}_fraction" in r for r in sub for k in (a, b)):
                ge = sum(r[f"{a}_fraction"] >= r[f"{b}_fraction"] for r in sub)
                gt = sum(r[f"{a}_fraction"] > r[f"{b}_fraction"] for r in sub)
                med = statistics.median(r[f"{a}_closed"] for r in sub)
                summary.append(f"- tile {tile}: {a} >= {b} on {ge}/{len(sub)} layers, > on {gt}/{len(sub)}; "
                               f"median share of the greedy gap closed by {a}: {100 * med:.1f}%")
    md += [""] + summary
    if args.ilp_ties > 0 and "anneal" in names and "hungarian" in names:
        md += ["", *ilp_ties(rows, solved, args.ilp_ties)]
    (out / "real.md").write_text("\n".join(md) + "\n")
    print("\n".join(summary))
    print(f"\nwritten to {out}/ in {time.time() - t0:.0f} s "
          f"(command: python benchmarks/solver_quality.py --time-limit {args.time_limit:g}{' --quick' if args.quick else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
