"""Scaling benchmark: time and peak memory of every solver against matrix size.

Each (solver, size) runs in a fresh process, so the peak memory (``ru_maxrss``)
belongs to that solve alone.  Matrices are ``scaled`` lognormal instances
(:func:`permsolve.problems.generators.scaled`, seed 0), square, tile 32x32,
sparsity 0.5, rows permuted.  A solver that passes ``--timeout`` at one size is
not run at larger ones.  The growth exponent is the least-squares slope of
log(time) against log(rows) over the sizes that finished below the time limit.

Usage::

    python benchmarks/scaling.py [--sizes 256,512,1024,2048,4096] [--solvers greedy,hungarian,anneal]
                                 [--tile 32x32] [--time-limit 600] [--timeout 900] [--out results/bench]

Writes ``scaling.csv``, ``scaling.md``, ``scaling.png`` and ``scaling.svg`` into ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def _one(solver: str, size: int, tile: str, time_limit: float | None) -> dict:
    """Run in the child process: build, solve, measure."""
    import resource

    import numpy as np

    from permsolve.problem import TileProblem, parse_tile
    from permsolve.problems.generators import scaled
    from permsolve.registry import get_solver

    cls = get_solver(solver)
    solver_obj = cls()                       # construction (JIT warm-up) is not part of the solve
    t = time.perf_counter()
    S = scaled(size, size, sigma=0.5, seed=0)
    p = TileProblem.from_matrix(S, tile=parse_tile(tile), sparsity=0.5)
    bound = p.bound
    build = time.perf_counter() - t
    rss_before = _rss_now()
    r = solver_obj.solve(p, time_limit=time_limit, seed=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"solver": solver, "size": size, "tile": tile, "seconds": r.seconds, "build_seconds": build,
            "peak_rss": peak, "rss_before_solve": rss_before, "gap": (bound - r.retained) / bound,
            "nit": int(r.nit), "hit_limit": bool(time_limit is not None and r.seconds >= 0.9 * time_limit),
            "status": "ok"}


def _cpu() -> str:
    from permsolve.bench.env import environment

    return environment()["cpu"]


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _read_csv(path, time_limit):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            for k in ("seconds", "build_seconds", "gap", "wall"):
                r[k] = float(r[k]) if r.get(k) else None
            for k in ("size", "peak_rss", "rss_before_solve", "nit"):
                r[k] = int(float(r[k])) if r.get(k) else None
            if r["status"] == "ok":
                r["hit_limit"] = time_limit is not None and r["seconds"] >= 0.9 * time_limit
            rows.append(r)
    return rows


def _fit(points):
    """Slope of log(seconds) against log(size), or None with fewer than 2 points."""
    import numpy as np

    pts = [(s, t) for s, t in points if t > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="256,512,1024,2048,4096")
    ap.add_argument("--solvers", default=None, help="default: every registered solver except auto")
    ap.add_argument("--tile", default="32x32")
    ap.add_argument("--time-limit", type=float, default=600.0, help="solver time limit (seconds)")
    ap.add_argument("--timeout", type=float, default=900.0, help="kill a run after this many seconds")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--one", nargs=2, metavar=("SOLVER", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--replot", metavar="CSV", help="rewrite the table and plot from an earlier scaling.csv")
    args = ap.parse_args(argv)
    if args.replot:
        rows = _read_csv(args.replot, args.time_limit)
        os.makedirs(args.out, exist_ok=True)
        write(rows, Path(args.out), args)
        return 0
    tl = None if args.time_limit <= 0 else args.time_limit
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.tile, tl)))
        return 0

    from permsolve.bench.config import default_solvers

    names = args.solvers.split(",") if args.solvers else default_solvers()    # all but the meta solvers
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for solver in names:
        for size in sizes:
            cmd = [sys.executable, __file__, "--one", solver, str(size), "--tile", args.tile,
                   "--time-limit", str(args.time_limit)]
            t = time.perf_counter()
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                if out.returncode:
                    row = {"solver": solver, "size": size, "tile": args.tile, "status": "error",
                           "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
                else:
                    row = json.loads(out.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row = {"solver": solver, "size": size, "tile": args.tile, "status": "timeout",
                       "error": f"killed after {args.timeout:g} s"}
            row["wall"] = time.perf_counter() - t
            rows.append(row)
            msg = (f"{solver:10s} {size:5d}  {row['seconds']:9.3f} s  peak {row['peak_rss'] / 2**30:6.2f} GiB  "
                   f"gap {100 * row['gap']:.3f}%{'  (hit the time limit)' if row['hit_limit'] else ''}"
                   if row["status"] == "ok" else f"{solver:10s} {size:5d}  {row['status']}: {row.get('error')}")
            print(msg, flush=True)
            if row["status"] != "ok":
                break
    os.makedirs(args.out, exist_ok=True)
    write(rows, Path(args.out), args)
    return 0


def write(rows, out: Path, args) -> None:
    fields = ["solver", "size", "tile", "status", "seconds", "build_seconds", "peak_rss", "rss_before_solve", "gap",
              "nit", "hit_limit", "wall", "error"]
    with open(out / "scaling.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    sizes = sorted({r["size"] for r in rows})
    cell = {(r["solver"], r["size"]): r for r in rows}
    load = os.getloadavg()[0]
    lines = [f"Time (s) / peak memory (GiB, whole process) / gap to bound (%) of one solve; square `scaled` matrices, "
             f"tile {args.tile}, sparsity 0.5, time limit {args.time_limit:g} s. "
             f"Command: `python benchmarks/scaling.py --sizes {','.join(map(str, sizes))} --solvers {','.join(solvers)} "
             f"--time-limit {args.time_limit:g}`. CPU: {_cpu()}, {os.cpu_count()} cores; load average when written: "
             f"{load:.1f}.", "",
             "| solver | " + " | ".join(f"{s}x{s}" for s in sizes) + " | time exponent |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for s in solvers:
        cells = []
        for n in sizes:
            r = cell.get((s, n))
            if r is None:
                cells.append("-")
            elif r["status"] != "ok":
                cells.append(r["status"])
            else:
                cells.append(f"{r['seconds']:.3g}{'*' if r['hit_limit'] else ''} / {r['peak_rss'] / 2**30:.2f} / "
                             f"{100 * r['gap']:.2f}")
        pts = [(n, cell[s, n]["seconds"]) for n in sizes if (s, n) in cell and cell[s, n]["status"] == "ok"
               and not cell[s, n]["hit_limit"] and cell[s, n]["seconds"] > 1e-3]
        k = _fit(pts)
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {'-' if k is None else f'{k:.2f}'} |")
    lines += ["", "`*`: stopped by the time limit (excluded from the exponent fit). Exponent: slope of log time "
              "against log rows over sizes whose solve took more than 1 ms."]
    (out / "scaling.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for s in solvers:
        ok = [cell[s, n] for n in sizes if (s, n) in cell and cell[s, n]["status"] == "ok"]
        if not ok:
            continue
        a1.plot([r["size"] for r in ok], [max(r["seconds"], 1e-5) for r in ok], "o-", label=s)
        a2.plot([r["size"] for r in ok], [r["peak_rss"] / 2**30 for r in ok], "o-", label=s)
    for ax, lab in ((a1, "solve time (s)"), (a2, "peak memory, whole process (GiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("rows = columns")
        ax.set_ylabel(lab)
        ax.grid(True, alpha=0.3)
    a1.set_yscale("log")
    if args.time_limit and args.time_limit > 0:
        a1.axhline(args.time_limit, color="0.5", ls=":", lw=1)
        a1.text(sizes[0], args.time_limit * 1.15, "time limit", fontsize=7, color="0.4")
    a1.legend(fontsize=8)
    fig.suptitle(f"Scaling, tile {args.tile}, sparsity 0.5, time limit {args.time_limit:g} s", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"scaling.{ext}", dpi=110, metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
