"""Fuzz every registered solver: random instances at ordinary and extreme scales.

Each instance is a random importance matrix (uniform, lognormal-scaled rows and
columns, sparse, or small integers with many ties), a tile, a sparsity, a mask
family (global, row-balanced, or one time in five N:M: 1:2, 2:4, 1:4, 3:4) and an axis, multiplied by a scale drawn from one of these classes:

* ``1``: ordinary;
* ``small``: 1e-10 or 1e-13 (where an absolute tolerance floor of 1e-9 used to
  make every solver claim optimality);
* ``pow2``: ``2**k`` for k in -990 ... 1000 (1e-298 ... 1e301), where the answer must not change at all;
* ``wide``: log-uniform over 1e-300 ... 1e300;
* ``extreme``: exactly 1e-300 or 1e300;
* ``refused``: 1e308 (the total overflows float64) or 1e-310 (subnormal): the
  solvers must refuse with a one-line ``ValueError``, counted as refusals.
  A refusal of a problem whose total is finite and at least ``2**-1000`` is a
  violation.

Tiny instances (at most 8 units on the permuted axis, 5 on each axis for
``both``) get their exact optimum by brute force over all permutations (one
per set of blocks).  Every solve is checked:

* ``value``: the permutations are permutations, ``retained`` equals the value
  recomputed from them, is finite, and is at most the true optimum (tiny) or
  the problem's bound;
* ``bound``: the reported ``bound`` is at least the true optimum (tiny) and at
  least ``retained``;
* ``optimal``: a claim of optimality holds (``retained`` reaches the optimum);
* ``scale``: against the same instance at scale 1, ``bound / scale`` is equal
  (relative 1e-9) at every scale; at a power of two the whole answer
  (permutation, ``retained / scale``, ``optimal``) is the same, and ``ilp``'s
  ``optimal`` is the same at every scale.  At other scales ``c * S`` is itself
  rounded, which can break an exact tie (integer matrices) or steer a search
  (anneal) another way: such differences of ``retained`` are listed as
  *divergences* (with their relative size and sign), not violations, since
  the answer is still checked against the optimum and the bound;
* ``json``: ``to_json()`` serialises with ``allow_nan=False``.

All comparisons are relative 1e-9.  Anything else raised (a traceback) is a
violation too.  Writes ``results/reliability/fuzz.json`` and ``fuzz.md``;
exits 1 if there is any violation.

Run::

    .venv/bin/python benchmarks/fuzz.py                  # 520 instances, seed 0
    .venv/bin/python benchmarks/fuzz.py --instances 50 --seed 7
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

import permsolve
from permsolve import TileProblem, get_solver, solve
from permsolve.registry import MIN_TOTAL

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-9
# deterministic budgets (moves, not clocks) where a solver has them
OPTIONS = {"anneal": {"moves": 4000, "restarts": 2}, "nm-anneal": {"moves_per_col": 500}}
# ilp gets a limit only as a safety net (a limited run is not compared across scales); auto runs
# without one, so that it delegates to a solver without a clock (a timed anneal is not reproducible)
LIMIT = {"ilp": 60.0}


KINDS = ("uniform", "lognormal", "sparse", "integer")


def matrix(rng: np.random.Generator, m: int, n: int) -> tuple[str, np.ndarray]:
    kind = int(rng.integers(4))
    if kind == 0:
        return KINDS[0], rng.random((m, n))
    if kind == 1:
        return KINDS[1], np.abs(rng.standard_normal((m, n))) * rng.lognormal(size=(m, 1)) * rng.lognormal(size=(1, n))
    if kind == 2:
        S = rng.random((m, n))
        S[rng.random((m, n)) < 0.6] = 0.0
        return KINDS[2], S
    return KINDS[3], rng.integers(0, 3, size=(m, n)).astype(float)


def draw_scale(rng: np.random.Generator) -> tuple[str, float]:
    u = rng.random()
    if u < 0.25:
        return "1", 1.0
    if u < 0.35:
        return "pow2", math.ldexp(1.0, int(rng.integers(-990, 1001)))
    if u < 0.50:
        return "small", float(rng.choice([1e-10, 1e-13]))
    if u < 0.80:
        return "wide", float(10.0 ** rng.uniform(-300, 300))
    if u < 0.95:
        return "extreme", float(rng.choice([1e-300, 1e300]))
    return "refused", float(rng.choice([1e308, 1e-310]))


def draw_nm_instance(rng: np.random.Generator, idx: int) -> dict:
    """An N:M instance: columns (or both axes) permuted; the mask fixes tile and sparsity."""
    mask = str(rng.choice(["1:2", "2:4", "1:4", "3:4"]))
    g = int(mask.split(":")[1])
    axis = str(rng.choice(["cols", "cols", "both"]))
    tiny = rng.random() < 0.75
    if tiny:
        m, n = int(rng.integers(1, 4 if axis == "both" else 7)), g * int(rng.integers(1, 8 // g + 1))
    else:
        m, n = int(rng.integers(4, 33)), g * int(rng.integers(2, 32 // g + 1))
    label, scale = draw_scale(rng)
    kind, S = matrix(rng, m, n)
    return {"id": idx, "S": S, "kind": kind, "tile": None, "sparsity": None, "mask": mask, "axis": axis,
            "tiny": tiny, "scale_class": label, "scale": scale}


def draw_instance(rng: np.random.Generator, idx: int) -> dict:
    if rng.random() < 0.2:
        return draw_nm_instance(rng, idx)
    axis = str(rng.choice(["rows", "rows", "cols", "both"]))
    mask = str(rng.choice(["global", "row-balanced"]))
    tiny = rng.random() < 0.75
    if tiny:
        if axis == "both":
            m, n = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        elif axis == "rows":
            m, n = int(rng.integers(2, 9)), int(rng.integers(1, 9))
        else:
            m, n = int(rng.integers(1, 9)), int(rng.integers(2, 9))
    else:
        m, n = int(rng.integers(8, 33)), int(rng.integers(8, 33))
    h, w = int(rng.integers(1, min(m, 4) + 1)), int(rng.integers(1, min(n, 4) + 1))
    s = float(rng.choice([0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9]))
    label, scale = draw_scale(rng)
    kind, S = matrix(rng, m, n)
    return {"id": idx, "S": S, "kind": kind, "tile": (h, w), "sparsity": s, "mask": mask, "axis": axis,
            "tiny": tiny, "scale_class": label, "scale": scale}


def _block_perms(size: int, side: int):
    """One permutation per assignment of units to ordered blocks (sorted inside each block)."""
    for p in itertools.permutations(range(size)):
        if all(list(p[i:i + side]) == sorted(p[i:i + side]) for i in range(0, size, side)):
            yield np.array(p)


def brute_force(problem: TileProblem) -> float:
    mem = problem.members[0]
    h, w = mem.tile
    if getattr(mem.mask, "fixed_tile", None) is not None:     # N:M: only the group of m columns matters
        h, w = 1, mem.mask.m
    choices = {}
    for name, side in (("row", h), ("col", w)):
        if name in problem.perm_sizes:
            choices[name] = list(_block_perms(problem.perm_sizes[name], side))
    best = -math.inf
    names = list(choices)
    for combo in itertools.product(*(choices[k] for k in names)):
        best = max(best, problem.evaluate(dict(zip(names, combo))))
    return best


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(abs(a), abs(b))


def check(problem, res, opt, ref) -> list[str]:
    bad = []
    for k, n in problem.perm_sizes.items():
        if sorted(np.asarray(res.perms[k]).tolist()) != list(range(n)):
            bad.append(f"value: {k} is not a permutation")
            return bad
    again = problem.evaluate(res.perms)
    if not all(math.isfinite(x) for x in (res.retained, res.bound, res.total)):
        bad.append(f"value: non-finite retained/bound/total {res.retained}/{res.bound}/{res.total}")
    if not close(res.retained, again):
        bad.append(f"value: retained {res.retained!r} but the permutation keeps {again!r}")
    if res.retained > res.bound * (1 + TOL):
        bad.append(f"bound: retained {res.retained!r} above bound {res.bound!r}")
    if opt is not None:
        if res.retained > opt * (1 + TOL):
            bad.append(f"value: retained {res.retained!r} above the brute-force optimum {opt!r}")
        if res.bound < opt * (1 - TOL):
            bad.append(f"bound: bound {res.bound!r} below the brute-force optimum {opt!r}")
        if res.optimal and res.retained < opt * (1 - TOL):
            bad.append(f"optimal: claimed at {res.retained!r}, the optimum is {opt!r}")
    elif res.optimal and res.retained < res.bound * (1 - TOL):
        bad.append(f"optimal: claimed at {res.retained!r} below its own bound {res.bound!r}")
    if ref is not None:
        c, r0, exact = ref
        same = (close(res.retained / c, r0.retained) and res.optimal == r0.optimal
                and all(np.array_equal(res.perms[k], r0.perms[k]) for k in res.perms))
        what = (f"at scale {c:.3g} retained/c {res.retained / c!r} bound/c {res.bound / c!r} optimal {res.optimal}; "
                f"at scale 1: {r0.retained!r} {r0.bound!r} {r0.optimal}")
        if not close(res.bound / c, r0.bound):
            bad.append(f"scale: the problem's bound moved: {what}")
        elif exact and not same:
            bad.append(f"scale: a power-of-two scale changed the answer: {what}")
        elif not exact and get_solver(res.solver).exact and res.optimal != r0.optimal:
            bad.append(f"scale: {res.solver}'s proof depends on the scale: {what}")
    try:
        json.dumps(res.to_json(), allow_nan=False)
    except ValueError as e:
        bad.append(f"json: {e}")
    return bad


def run_solver(problem, name):
    return solve(problem, name, seed=1, time_limit=LIMIT.get(name), **OPTIONS.get(name, {}))


def fuzz(n_instances: int, seed: int, log=print) -> dict:
    rng = np.random.default_rng(seed)
    names = sorted(permsolve.available_solvers())
    stats = Counter()
    by_class = {}
    violations, refusals, divergences = [], [], []
    t_start = time.perf_counter()
    for idx in range(n_instances):
        inst = draw_instance(rng, idx)
        c = inst["scale"]
        cls = by_class.setdefault(inst["scale_class"], Counter())
        cls["instances"] += 1
        stats["instances"] += 1
        with np.errstate(over="ignore", under="ignore"):
            S = inst["S"] * c
        shape = "" if inst["tile"] is None else f" tile {inst['tile'][0]}x{inst['tile'][1]} s={inst['sparsity']}"
        desc = (f"#{idx} {inst['kind']} {inst['S'].shape[0]}x{inst['S'].shape[1]}{shape} {inst['mask']} "
                f"{inst['axis']} scale {c:.3g}")
        try:
            problem = TileProblem.from_matrix(S, tile=inst["tile"], sparsity=inst["sparsity"],
                                              mask=inst["mask"], axis=inst["axis"])
            base = (TileProblem.from_matrix(inst["S"], tile=inst["tile"], sparsity=inst["sparsity"],
                                            mask=inst["mask"], axis=inst["axis"]) if c != 1.0 else None)
        except ValueError as e:          # the problem itself refuses the matrix
            refusals.append(f"{desc}: problem: {e}")
            stats["refusals"] += 1
            continue
        opt = None
        if inst["tiny"]:
            with np.errstate(over="ignore"):
                opt = brute_force(problem)
            if not math.isfinite(opt):
                opt = None
            else:
                stats["brute_forced"] += 1
        for name in names:
            solver = permsolve.get_solver(name)(**OPTIONS.get(name, {}))
            if solver.supports(problem):
                stats["unsupported"] += 1
                continue
            stats["solves"] += 1
            cls["solves"] += 1
            try:
                res = run_solver(problem, name)
            except ValueError as e:
                msg = str(e)
                # a refusal is right only where float64 cannot hold the sums (see permsolve.registry.normalise)
                due = not math.isfinite(problem.total) or problem.total < MIN_TOTAL
                if "\n" in msg or not msg:
                    violations.append(f"{desc} {name}: unclear refusal {msg!r}")
                elif not due:
                    violations.append(f"{desc} {name}: refused a representable problem: {msg}")
                else:
                    refusals.append(f"{desc} {name}: {msg}")
                    stats["refusals"] += 1
                    cls["refusals"] += 1
                continue
            except Exception:
                violations.append(f"{desc} {name}: raised\n{traceback.format_exc()}")
                continue
            ref = None
            limited = LIMIT.get(name) is not None and res.seconds >= 0.5 * LIMIT[name]
            if base is not None and not limited:
                r0 = run_solver(base, name)
                ref = (c, r0, math.frexp(c)[0] == 0.5)
                if not ref[2] and not close(res.retained / c, r0.retained):
                    divergences.append({"instance": idx, "solver": name, "scale": c, "kind": inst["kind"],
                                        "rel": res.retained / c / r0.retained - 1 if r0.retained else 0.0,
                                        "optimal": [bool(r0.optimal), bool(res.optimal)]})
            stats["optimal_claims"] += bool(res.optimal)
            cls["optimal_claims"] += bool(res.optimal)
            for why in check(problem, res, opt, ref):
                violations.append(f"{desc} {name}: {why}")
                cls["violations"] += 1
        if (idx + 1) % 50 == 0:
            log(f"{idx + 1}/{n_instances} instances, {stats['solves']} solves, {len(violations)} violations, "
                f"{time.perf_counter() - t_start:.0f} s")
    stats["violations"] = len(violations)
    return {"seed": seed, "stats": dict(stats), "by_scale": {k: dict(v) for k, v in by_class.items()},
            "violations": violations, "refusals": refusals, "divergences": divergences, "solvers": names,
            "seconds": time.perf_counter() - t_start}


def write(out: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fuzz.json").write_text(json.dumps(out, indent=1))
    s = out["stats"]
    lines = [f"# Fuzz run (`{out['command']}`)", "",
             f"commit {out['commit']}, {out['seconds']:.0f} s, load average {out['load']}, solvers: "
             f"{', '.join(out['solvers'])}", "",
             f"| instances | brute-forced | solves | optimal claims | refusals | violations |",
             f"|---:|---:|---:|---:|---:|---:|",
             f"| {s.get('instances', 0)} | {s.get('brute_forced', 0)} | {s.get('solves', 0)} | "
             f"{s.get('optimal_claims', 0)} | {s.get('refusals', 0)} | {s.get('violations', 0)} |", "",
             "| scale class | instances | solves | optimal claims | refusals | violations |",
             "|---|---:|---:|---:|---:|---:|"]
    for k in ("1", "pow2", "small", "wide", "extreme", "refused"):
        v = out["by_scale"].get(k, {})
        lines.append(f"| {k} | {v.get('instances', 0)} | {v.get('solves', 0)} | {v.get('optimal_claims', 0)} | "
                     f"{v.get('refusals', 0)} | {v.get('violations', 0)} |")
    div = out["divergences"]
    if div:
        per = Counter(d["solver"] for d in div)
        rel = [d["rel"] for d in div]
        lines += ["", f"Divergences at scales that are not powers of two (the answer differs from the scale-1 "
                      f"answer; both checked against optimum and bound): {len(div)} "
                      f"({', '.join(f'{k} {v}' for k, v in sorted(per.items()))}); relative difference of "
                      f"retained from {min(rel):+.2e} to {max(rel):+.2e}, {sum(r > 0 for r in rel)} better and "
                      f"{sum(r < 0 for r in rel)} worse than at scale 1; matrices: "
                      f"{', '.join(f'{k} {v}' for k, v in sorted(Counter(d['kind'] for d in div).items()))}."]
    if out["refusals"]:
        lines += ["", "Refusals (first 5):", ""] + [f"- {r}" for r in out["refusals"][:5]]
    if out["violations"]:
        lines += ["", "Violations:", ""] + [f"- {v.splitlines()[0]}" for v in out["violations"]]
    (folder / "fuzz.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=520)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "reliability"))
    args = ap.parse_args(argv)
    out = fuzz(args.instances, args.seed, log=lambda m: print(m, file=sys.stderr, flush=True))
    out["command"] = "python benchmarks/fuzz.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip() or "?"
    except OSError:
        out["commit"] = "?"
    try:
        out["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        out["load"] = platform.node()
    write(out, Path(args.out))
    s = out["stats"]
    print(f"{s.get('instances', 0)} instances ({s.get('brute_forced', 0)} brute-forced), {s.get('solves', 0)} solves, "
          f"{s.get('optimal_claims', 0)} optimal claims, {s.get('refusals', 0)} refusals, "
          f"{len(out['divergences'])} divergences, {s.get('violations', 0)} violations, {out['seconds']:.0f} s")
    for v in out["violations"][:20]:
        print("VIOLATION", v.splitlines()[0])
    return 1 if out["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
