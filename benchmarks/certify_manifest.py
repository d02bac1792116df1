"""Tighten the best bound of every benchmark instance in the manifest, so the suite's gaps are measured gaps.

For each instance of ``problems/manifest.json`` (or those whose name contains
``--only``): the exact-pricing Lagrangian (:func:`permsolve.lagrange.tight_bound`,
``parts="auto"``, ``--seconds`` seconds, steps aimed at the instance's best
value) and :func:`permsolve.spectral.spectral_bound`.  A bound below the best
value stored is a bug and stops the script (:class:`problems.manifest.BoundViolation`);
a tighter one is recorded as the instance's ``best_bound`` (``best_bound_by``
names the bound and its seconds), which ``permsolve report`` then uses for
*gap to bound*.  Writes ``certified.md`` (old and new gap to the best value per
instance) under ``--out``.

Usage::

    python benchmarks/certify_manifest.py [--seconds 5] [--only NAME-PART] [--out results/bench] [--dry-run]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="Lagrangian seconds per instance")
    ap.add_argument("--only", default="", help="only instances whose name contains this")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--dry-run", action="store_true", help="compute and print, but leave the manifest as it is")
    args = ap.parse_args(argv)
    if not 0 < args.seconds < 1e6:
        print("certify_manifest: --seconds must be a positive number", file=sys.stderr)
        return 2
    from permsolve.certify import tighter_bounds
    from permsolve.problems.library import get_instance
    from permsolve.problems.manifest import DEFAULT_MANIFEST, Manifest

    man = Manifest(DEFAULT_MANIFEST)
    names = sorted(n for n in man.entries if args.only in n)
    if not names:
        print(f"certify_manifest: no instance name contains {args.only!r}", file=sys.stderr)
        return 2
    t0 = time.time()
    rows = []
    for i, name in enumerate(names, 1):
        e = man.entries[name]
        best, old = e.get("best_value"), e.get("best_bound")
        if best is None or old is None:
            print(f"[{i}/{len(names)}] {name}: no best value or bound stored; skipped", flush=True)
            continue
        try:
            p = get_instance(name).problem()
        except Exception as err:       # an instance the catalog no longer builds, or whose source is missing
            print(f"[{i}/{len(names)}] {name}: {err}; skipped", flush=True)
            continue
        t = time.perf_counter()
        bounds = tighter_bounds(p, args.seconds, target=best)
        src = min(bounds, key=bounds.get)
        new = float(bounds[src])
        secs = time.perf_counter() - t
        if not args.dry_run:
            man.record(name, best, new, {"solver": f"certify ({src} bound, {args.seconds:g} s)"})
        final = man.entries[name]["best_bound"] if not args.dry_run else min(old, new)
        gap_old, gap_new = (old - best) / old, (final - best) / final
        rows.append((name, best / e["total"], gap_old, gap_new, src if final < old else "-", secs))
        print(f"[{i}/{len(names)}] {name}: gap {100 * gap_old:.3f}% -> {100 * gap_new:.3f}% "
              f"({src if final < old else 'unchanged'}, {secs:.1f} s)", flush=True)
    if not args.dry_run:
        man.save()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/certify_manifest.py --seconds %g%s" % (args.seconds, f" --only {args.only}" if args.only else "")
    md = [f"# Measured optimality gaps of the benchmark instances", "",
          f"Best value found by any solver over the best bound known, before and after `{cmd}` "
          f"({time.time() - t0:.0f} s, 1-min load average {os.getloadavg()[0]:.1f} at the end). "
          f"*Tightened by* names the bound that moved the instance's `best_bound` in `problems/manifest.json`.", "",
          "| instance | best value (share of sum) | gap before | gap after | tightened by | seconds |",
          "|---|---:|---:|---:|---|---:|"]
    md += [f"| {n} | {100 * v:.3f} % | {100 * a:.3f} % | {100 * b:.3f} % | {s} | {secs:.1f} |"
           for n, v, a, b, s, secs in rows]
    if rows:
        md += ["", f"Median gap: {100 * statistics.median(r[2] for r in rows):.3f} % before, "
                   f"{100 * statistics.median(r[3] for r in rows):.3f} % after; "
                   f"{sum(r[4] != '-' for r in rows)} of {len(rows)} instances tightened; "
                   f"{sum(r[3] < 1e-6 for r in rows)} proven optimal to 1e-6, "
                   f"{sum(r[3] < 1e-6 <= r[2] for r in rows)} of them by this run."]
    if not args.dry_run:
        (out / "certified.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[-1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
