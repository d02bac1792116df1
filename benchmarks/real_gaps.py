"""Issue 12's real-layer table: the share of the greedy-to-bound gap each solver closes, gaps to the tightest bound.

Layers: every digits-zoo Linear/Conv2d weight with at least two tile rows, and
the all-MiniLM-L6-v2 encoder weights of ``--minilm-layers`` (skipped, with a
line saying so, when the optional package is missing).  Importance |W|, rows
permuted, global mask, sparsity 0.5, tiles ``--tiles``.  ``hungarian`` runs to
convergence, the anytime solvers for ``--time-limit`` seconds.

The tightest bound is the minimum of the allocation bound (the problem's own),
:func:`permsolve.lagrange.tight_bound` (``parts="auto"``: exact pricing of
column-block ranges, ``--lagrange`` seconds, steps aimed at the best value found),
:func:`permsolve.spectral.spectral_bound` and, with ``--ilp SECONDS``, the bound
``ilp`` proves when started from the best answer found (its set-partitioning
program; it may also find a better answer, which then counts as the best
known).  *Closed* is ``(value - greedy) / (tightest bound - greedy)``.

Usage::

    python benchmarks/real_gaps.py [--time-limit 10] [--solvers hungarian,anneal,swap] [--tiles 16x16,32x1]
                                   [--minilm-layers 0,5] [--ilp 0] [--lagrange 10] [--quick] [--out results/scale]

Prints one line per layer and the medians; writes ``real_gaps.md`` and ``real_gaps.csv`` under ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

MINILM_PARTS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


def layers(minilm_layers, log):
    from permsolve.problems.real import SourceUnavailable, minilm_weight, zoo_layers, zoo_weight

    out = [(f"{m}.{layer}", lambda m=m, layer=layer: zoo_weight(m, layer)) for m, layer, _ in zoo_layers()]
    try:
        for i in minilm_layers:
            for part in MINILM_PARTS:
                key = f"encoder.layer.{i}.{part}.weight"
                out.append((f"minilm.L{i}.{part}", lambda key=key: minilm_weight(key)))
        if minilm_layers:
            out[-1][1]()
    except SourceUnavailable as e:
        log(f"# {e}")
        out = [x for x in out if not x[0].startswith("minilm")]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--solvers", default="hungarian,anneal,swap")
    ap.add_argument("--tiles", default="16x16,32x1")
    ap.add_argument("--minilm-layers", default="0,5", help="MiniLM encoder layers (comma separated; '' for none)")
    ap.add_argument("--ilp", type=float, default=0.0, metavar="SECONDS", help="ilp from the best answer (0: skip)")
    ap.add_argument("--lagrange", type=float, default=10.0, metavar="SECONDS",
                    help="time for tight_bound (the decomposed exact-pricing Lagrangian)")
    ap.add_argument("--quick", action="store_true", help="the first 6 rows only")
    ap.add_argument("--out", default="results/scale")
    args = ap.parse_args(argv)
    try:
        tiles = [tuple(int(x) for x in t.split("x")) for t in args.tiles.split(",")]
        mini = [int(x) for x in args.minilm_layers.split(",") if x.strip()]
        if not args.time_limit > 0 or args.ilp < 0 or any(len(t) != 2 for t in tiles):
            raise ValueError
    except ValueError:
        print("real_gaps: bad --tiles (HxW,...), --minilm-layers (ints), --time-limit (> 0) or --ilp (>= 0)",
              file=sys.stderr)
        return 2
    import numpy as np

    from permsolve import TileProblem, available_solvers, importance, solve
    from permsolve.certify import tighter_bounds

    names = ["greedy"] + [s for s in args.solvers.split(",") if s and s != "greedy"]
    unknown = [s for s in names if s not in available_solvers()]
    if unknown:
        print(f"real_gaps: unknown solver(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    t0 = time.time()
    loads = [os.getloadavg()[0]]
    rows = []
    for label, get in layers(mini, print):
        W = get()
        for h, w in tiles:
            if W.shape[0] < 2 * h:       # one tile row: every row order keeps the same tiles
                continue
            S = importance(W, "l1")
            p = TileProblem.from_matrix(S, tile=(h, w), sparsity=0.5)
            res = {}
            for k in names:
                cls = available_solvers()[k]
                anytime = cls.anytime and cls.randomized   # a search (hungarian converges on its own)
                res[k] = solve(p, k, time_limit=args.time_limit if anytime else None, seed=0)
            best = max(res.values(), key=lambda r: r.retained)
            best_value = best.retained
            bounds = {"allocation": p.bound, **tighter_bounds(p, args.lagrange, target=best_value)}
            if args.ilp > 0:
                il = solve(p, "ilp", time_limit=args.ilp, init=best)
                bounds["ilp"] = il.bound
                best_value = max(best_value, il.retained)
            tight = min(bounds.values())
            which = min(bounds, key=bounds.get)
            if tight < best_value * (1 - 1e-9):     # a bound below a found value is a bug in the bound
                raise AssertionError(f"{label} {h}x{w}: bound {which} {tight!r} below a found value {best_value!r}")
            g = res["greedy"].retained
            row = {"layer": label, "shape": f"{S.shape[0]}x{S.shape[1]}", "tile": f"{h}x{w}",
                   "total": p.total, "allocation_bound": p.bound, "tightest_bound": tight, "tightest": which,
                   "best_known": best_value, **{f"{b}_bound": v for b, v in bounds.items()}}
            for k, r in res.items():
                row[f"{k}_kept"] = r.fraction
                row[f"{k}_seconds"] = r.seconds
                row[f"{k}_closed"] = (r.retained - g) / (tight - g) if tight > g * (1 + 1e-12) else float("nan")
                row[f"{k}_gap"] = (tight - r.retained) / tight if tight > 0 else 0.0
            rows.append(row)
            loads.append(os.getloadavg()[0])
            print(f"{label:<44} {row['shape']:>9} {row['tile']:>5} bound {100 * tight / p.total:.3f}% ({which}) " +
                  " ".join(f"{k} {100 * row[k + '_kept']:.3f}%/{100 * row[k + '_closed']:.1f}%" for k in names),
                  flush=True)
            if args.quick and len(rows) >= 6:
                break
        if args.quick and len(rows) >= 6:
            break
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "real_gaps.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    cmd = (f"python benchmarks/real_gaps.py --time-limit {args.time_limit:g} --solvers {args.solvers} "
           f"--tiles {args.tiles} --minilm-layers '{args.minilm_layers}' --ilp {args.ilp:g} --lagrange {args.lagrange:g}"
           f"{' --quick' if args.quick else ''}")
    md = [f"Real layers, rows permuted, global mask, s = 0.5, importance |W|. Each cell: kept share of sum |W| "
          f"(share of the greedy-to-bound gap closed; gap to the tightest bound). The tightest bound is the least of "
          f"the allocation bound, `tight_bound` ({args.lagrange:g} s), `spectral_bound`" + (f" and ilp's proven bound ({args.ilp:g} s from "
          f"the best answer)" if args.ilp > 0 else "") + f"; the column says which. hungarian to convergence, "
          f"anytime solvers {args.time_limit:g} s. Command: `{cmd}` ({time.time() - t0:.0f} s; 1-min load average "
          f"median {statistics.median(loads):.1f}, max {max(loads):.1f}).", "",
          "| layer | shape | tile | tightest bound | " + " | ".join(names) + " |",
          "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        md.append(f"| {r['layer']} | {r['shape']} | {r['tile']} | {100 * r['tightest_bound'] / r['total']:.3f}% "
                  f"({r['tightest']}) | " + " | ".join(
                      f"{100 * r[k + '_kept']:.3f}% ({100 * r[k + '_closed']:.1f}%; {100 * r[k + '_gap']:.2f}%)"
                      for k in names) + " |")
    md.append("")
    for tile in dict.fromkeys(r["tile"] for r in rows):
        for src in ("zoo", "minilm", "all"):
            sub = [r for r in rows if r["tile"] == tile and (src == "all" or r["layer"].startswith("minilm") == (src == "minilm"))]
            if not sub:
                continue
            parts = []
            for k in names[1:]:
                vals = [r[f"{k}_closed"] for r in sub if not np.isnan(r[f"{k}_closed"])]
                if vals:
                    parts.append(f"{k} {100 * statistics.median(vals):.1f}% (gap {100 * statistics.median(r[k + '_gap'] for r in sub):.2f}%)")
            md.append(f"- tile {tile}, {src} ({len(sub)} layers): median share of the greedy gap closed: " + ", ".join(parts))
    (out / "real_gaps.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[-6:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
