"""Issue 12's large-layer figures: the anytime solvers at 4096-8192 rows against hungarian run to convergence.

Each instance is ``scaled(m, n, sigma=0.5, seed=0)`` (:mod:`permsolve.problems.generators`:
lognormal row and column scales), 16x16 tiles, sparsity 0.5, global mask, rows
permuted.  ``hungarian`` runs without a time limit (to convergence); each
anytime solver runs with the instance's time limit.  For every anytime solver
the table gives its value, its wall time against the limit, and the first
time its trace reached hungarian's converged value (and that time as a share
of hungarian's).  Gaps are to the allocation bound (the tightest valid bound
known here).

Usage::

    python benchmarks/large_scale.py [--sizes 4096x4096,4096x11008,8192x8192] [--limits 60,60,120]
                                     [--solvers swap,anneal] [--out results/scale]

Prints the table and writes ``large_scale.md`` and ``large_scale.json`` under ``--out``
(``--sizes 1024x1024 --limits 10`` is a one-minute check).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _reach(trace, value, rel=1e-12):
    """First time in ``trace`` at which the best value was >= ``value``."""
    for t, v in trace:
        if v >= value - rel * abs(value):
            return float(t)
    return None


def run_size(m: int, n: int, limit: float, solvers: list[str], log=print) -> dict:
    from permsolve import TileProblem, solve
    from permsolve.problems.generators import scaled
    from permsolve.registry import get_solver

    S = scaled(m, n, sigma=0.5, seed=0)
    p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5)
    t = time.perf_counter()
    bound = p.bound
    row = {"m": m, "n": n, "limit": limit, "bound": bound, "total": p.total,
           "bound_seconds": time.perf_counter() - t, "load_before": os.getloadavg()[0]}
    g = solve(p, "greedy")
    row["greedy"] = {"retained": g.retained, "seconds": g.seconds}
    log(f"{m}x{n}: bound {bound / p.total:.5f}, greedy {g.fraction:.5f}")
    h = solve(p, "hungarian")
    row["hungarian"] = {"retained": h.retained, "seconds": h.seconds, "nit": h.nit,
                        "trace": [[float(a), float(b)] for a, b in h.trace]}
    log(f"  hungarian (to convergence) {h.fraction:.5f} in {h.seconds:.1f} s, {h.nit} rounds")
    for name in solvers:
        obj = get_solver(name)()            # compile before the clock starts
        r = obj.solve(p, time_limit=limit, seed=0)
        reach = _reach(r.trace, h.retained)
        row[name] = {"retained": r.retained, "seconds": r.seconds, "nit": r.nit, "reach_hungarian": reach,
                     "trace": [[float(a), float(b)] for a, b in r.trace]}
        log(f"  {name} ({limit:g} s) {r.fraction:.5f} in {r.seconds:.1f} s; reaches hungarian's value "
            f"{'never' if reach is None else f'at {reach:.1f} s ({reach / h.seconds:.2f} of its time)'}")
    row["load_after"] = os.getloadavg()[0]
    return row


def table(rows: list[dict], solvers: list[str]) -> list[str]:
    head = ("| instance | bound | greedy | hungarian (converged) | " +
            " | ".join(f"{s} at the limit | {s}: time to hungarian's value" for s in solvers) + " | load avg |")
    out = [head, "|---|---:|---:|---:|" + "---:|---:|" * len(solvers) + "---|"]
    for r in rows:
        tot, b = r["total"], r["bound"]

        def cell(v):
            return f"{100 * v / tot:.3f}% (gap {100 * (b - v) / b:.3f}%)"

        h = r["hungarian"]
        cells = [f"{r['m']}x{r['n']}", f"{100 * b / tot:.3f}%", cell(r["greedy"]["retained"]),
                 f"{cell(h['retained'])}, {h['seconds']:.1f} s"]
        for s in solvers:
            x = r[s]
            cells.append(f"{cell(x['retained'])}, {x['seconds']:.1f} s of {r['limit']:g} "
                         f"({'+' if x['retained'] > h['retained'] else ''}{100 * (x['retained'] - h['retained']) / tot:.4f} points vs hungarian)")
            cells.append("never" if x["reach_hungarian"] is None else
                         f"{x['reach_hungarian']:.1f} s ({x['reach_hungarian'] / h['seconds']:.2f})")
        cells.append(f"{r['load_before']:.1f} / {r['load_after']:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def write(rows: list[dict], names: list[str], cmd: str, seconds: float, out: Path) -> None:
    """``large_scale.md`` (printed too), ``large_scale.json`` and the anytime plot ``large_scale.png``."""
    from permsolve.bench.env import environment

    md = [f"Issue 12, large layers: `scaled(m, n, sigma=0.5, seed=0)`, tile 16x16, s = 0.5, global mask, rows "
          f"permuted. Values are the retained share of all importance; gaps are to the allocation bound. "
          f"hungarian runs to convergence; the anytime solvers to their limit. In parentheses after the time "
          f"to reach hungarian's value: that time as a share of hungarian's. Command: `{cmd}` "
          f"({seconds:.0f} s). CPU: {environment()['cpu']}, {os.cpu_count()} cores, load average "
          f"(1 min) before / after each instance in the last column.", "", *table(rows, names), "",
          "![anytime traces](large_scale.png)"]
    print("\n".join(md))
    (out / "large_scale.md").write_text("\n".join(md) + "\n")
    (out / "large_scale.json").write_text(json.dumps({"command": cmd, "seconds": seconds, "rows": rows}, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), squeeze=False)
    for ax, r in zip(axes[0], rows):
        tot, g = r["total"], r["greedy"]["retained"]
        for k in ["hungarian", *names]:
            tr = [(max(t, 1e-2), 100 * v / tot) for t, v in r[k]["trace"] if v >= g]
            if tr:
                t, v = zip(*tr)
                ax.step(list(t) + [r[k]["seconds"]], list(v) + [v[-1]], where="post", label=k)
        ax.axhline(100 * g / tot, color="0.6", ls=":", lw=1, label="greedy")
        ax.set_xscale("log")
        ax.set_title(f"{r['m']}x{r['n']}, limit {r['limit']:g} s", fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylabel("kept share of importance (%)")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "large_scale.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4096x4096,4096x11008,8192x8192")
    ap.add_argument("--limits", default="60,60,120", help="time limit per size (one value: for all)")
    ap.add_argument("--solvers", default="swap", help="anytime solvers, comma separated")
    ap.add_argument("--out", default="results/scale")
    ap.add_argument("--replot", metavar="JSON", help="rewrite the table and plot from an earlier large_scale.json")
    args = ap.parse_args(argv)
    if args.replot:
        try:
            data = json.loads(Path(args.replot).read_text())
        except (OSError, ValueError) as e:
            print(f"large_scale: cannot read {args.replot}: {e}", file=sys.stderr)
            return 2
        names = [k for k in data["rows"][0] if isinstance(data["rows"][0][k], dict) and k not in ("greedy", "hungarian")]
        write(data["rows"], names, data["command"], data.get("seconds", 0.0), Path(args.out))
        return 0
    try:
        sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.sizes.split(",")]
        limits = [float(x) for x in args.limits.split(",")]
        if any(len(s) != 2 or min(s) < 16 for s in sizes) or any(t <= 0 for t in limits):
            raise ValueError
    except ValueError:
        print("large_scale: --sizes needs MxN,... (each >= 16) and --limits positive seconds", file=sys.stderr)
        return 2
    if len(limits) == 1:
        limits = limits * len(sizes)
    if len(limits) != len(sizes):
        print("large_scale: give one time limit, or one per size", file=sys.stderr)
        return 2
    from permsolve.registry import solvers as registered

    names = [s for s in args.solvers.split(",") if s]
    unknown = [s for s in names if s not in registered()]
    if unknown:
        print(f"large_scale: unknown solver(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.time()
    for (m, n), lim in zip(sizes, limits):
        rows.append(run_size(m, n, lim, names, log=lambda s: print(s, flush=True)))
    cmd = (f"python benchmarks/large_scale.py --sizes {args.sizes} --limits {args.limits} "
           f"--solvers {args.solvers}")
    write(rows, names, cmd, time.time() - t0, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
