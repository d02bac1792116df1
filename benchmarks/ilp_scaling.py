"""How large a problem can ``ilp`` prove optimal, and how fast?

Prints one table row per (size, tile, instance family, mask, model/backend):
how many seeds were proven optimal within the time limit, the median and the
largest time, and the largest remaining gap (bound - value) / bound.

Instance families:
  random     S ~ U[0, 1)
  lognormal  U[0, 1) scaled by lognormal(0, 1) factors per row and per column

Run::

    .venv/bin/python benchmarks/ilp_scaling.py              # the done-when figures
    .venv/bin/python benchmarks/ilp_scaling.py --compare    # patterns vs compact model, CP-SAT vs SCIP
    .venv/bin/python benchmarks/ilp_scaling.py --large      # 48x48 and 64x64
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from permsolve import TileProblem, solve


def instance(family: str, m: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    S = rng.random((m, n))
    if family == "lognormal":
        S = S * rng.lognormal(0.0, 1.0, size=(m, 1)) * rng.lognormal(0.0, 1.0, size=(1, n))
    return S


def run_row(m, n, tile, family, mask, seeds, time_limit, axis="rows", **options):
    times, gaps, proved, heur_gain = [], [], 0, []
    for seed in seeds:
        p = TileProblem.from_matrix(instance(family, m, n, seed), tile=tile, sparsity=0.5, mask=mask, axis=axis)
        t = time.perf_counter()
        r = solve(p, "ilp", time_limit=time_limit, seed=seed, **options)
        times.append(time.perf_counter() - t)
        proved += bool(r.optimal)
        gaps.append(r.gap)
        start = r.info.get("start", {}).get("value", r.trace[0][1])
        heur_gain.append((r.retained - start) / r.retained if r.retained > 0 else 0.0)
    return {
        "size": f"{m}x{n}", "tile": f"{tile[0]}x{tile[1]}", "family": family, "mask": mask, "axis": axis,
        "options": ",".join(f"{k}={v}" for k, v in options.items()) or "default",
        "proved": f"{proved}/{len(seeds)}", "median_s": statistics.median(times), "max_s": max(times),
        "max_gap": max(gaps), "vs_start": statistics.median(heur_gain),
    }


def print_table(rows, header=True):
    head = ["size", "tile", "family", "mask", "axis", "options", "proved", "median_s", "max_s", "max_gap",
            "vs_start"]
    if header:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        cells = []
        for h in head:
            v = r[h]
            if h in ("median_s", "max_s"):
                v = f"{v:.2f}"
            elif h in ("max_gap", "vs_start"):
                v = f"{100 * v:.3f}%"
            cells.append(str(v))
        print("| " + " | ".join(cells) + " |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the 16x16 rows")
    ap.add_argument("--large-seeds", type=int, default=3, help="seeds of the larger sizes")
    ap.add_argument("--compare", action="store_true", help="patterns (SCIP, CP-SAT) vs compact model")
    ap.add_argument("--large", action="store_true", help="48x48 and 64x64 random matrices instead (slow)")
    args = ap.parse_args(argv)
    seeds = list(range(args.seeds))
    rows = []
    if args.compare:
        for m, family, mask in [(16, "random", "global"), (16, "lognormal", "row-balanced"),
                                (24, "lognormal", "row-balanced"), (32, "random", "global")]:
            for opts in ({"backend": "scip"}, {"backend": "cp-sat"}, {"model": "compact"}):
                rows.append(run_row(m, m, (4, 4), family, mask, seeds, 60, **opts))
                print_table(rows[-1:], header=False)
        print()
        print_table(rows)
        return
    if args.large:
        for m in (48, 64):
            for mask in ("global", "row-balanced"):
                rows.append(run_row(m, m, (4, 4), "random", mask, list(range(args.large_seeds)), 60))
                print_table(rows[-1:], header=False)
        print()
        print_table(rows)
        return
    plan = [(16, 16, 10), (24, 24, 60), (32, 16, 60), (32, 32, 60)]
    for m, n, limit in plan:
        for family in ("random", "lognormal"):
            for mask in ("global", "row-balanced"):
                sd = seeds if m * n <= 256 else list(range(args.large_seeds))
                rows.append(run_row(m, n, (4, 4), family, mask, sd, limit))
                print_table(rows[-1:], header=False)
    # the columns axis on one size
    for mask in ("global", "row-balanced"):
        rows.append(run_row(32, 32, (4, 4), "random", mask, list(range(args.large_seeds)), 60, axis="cols"))
        print_table(rows[-1:], header=False)
    # row-balanced on columns: the weak case; the default start there is anneal, this is hungarian's
    rows.append(run_row(32, 32, (4, 4), "random", "row-balanced", list(range(args.large_seeds)), 60, axis="cols",
                        start="hungarian"))
    print_table(rows[-1:], header=False)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
