"""Behaviour unchanged?  Every registered solver on fixed instances with fixed budgets, no wall clock.

A refactoring that is meant to change no behaviour must give the same answers: this script solves a fixed
set of seeded instances (tile masks global and row-balanced on rows, columns and both axes; a coupled
problem; N:M 2:4 and 4:8) with every solver that accepts them, and permutes every digits-zoo model with
``permute_model`` (greedy and hungarian, scopes layer and group), each with a budget that does not depend on
the machine's speed (anneal: a fixed number of moves; swap, nm-anneal: a fixed number of rounds; the rest
run to completion), and writes the retained value of each (solver, instance) as JSON.  ``--compare`` reads
an earlier JSON (from another commit) and lists every value that moved.

Run::

    .venv/bin/python benchmarks/behaviour_check.py --out /tmp/before.json        # on the old commit
    .venv/bin/python benchmarks/behaviour_check.py --compare /tmp/before.json    # on the new one

Exit status 1 when ``--compare`` finds a value that moved by more than 1e-12 relative.  About a minute.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: options that make each solver's work independent of the clock
BUDGETS = {
    "anneal": {"moves": 20000},
    "swap": {"rounds": 3},
    "nm-anneal": {"rounds": 3},
}


def instances():
    """``(name, problem)`` pairs: small, seeded, covering the problem kinds and mask families."""
    from permsolve.problem import Member, TileProblem

    out = []
    for seed, (m, n) in enumerate([(16, 16), (32, 24), (24, 32)]):
        rng = np.random.default_rng(seed)
        S = rng.lognormal(0.0, 1.0, (m, n)) * rng.lognormal(0.0, 0.5, (m, 1))
        for tile in ((4, 4), (8, 1)):
            for axis in ("rows", "cols", "both"):
                for mask in ("global", "row-balanced"):
                    name = f"{m}x{n}|{tile[0]}x{tile[1]}|{axis}|{mask}"
                    out.append((name, TileProblem.from_matrix(S, tile=tile, sparsity=0.5, mask=mask, axis=axis)))
    rng = np.random.default_rng(7)
    A, B = rng.random((16, 12)), rng.random((8, 16))
    out.append(("coupled 16x12+8x16|4x4", TileProblem([Member(A, (4, 4), 0.5, rows="p"),
                                                        Member(B, (4, 4), 0.5, cols="p")])))
    for nm in ("2:4", "4:8"):
        S = np.random.default_rng(3).random((16, 16))
        out.append((f"16x16|{nm}|cols", TileProblem.from_matrix(S, mask=nm, sparsity=0.5)))
    return out


def run() -> dict:
    from permsolve.registry import get_solver, solvers

    values = {}
    for name, problem in instances():
        for sname, cls in sorted(solvers().items()):
            try:
                solver = cls(**BUDGETS.get(sname, {}))
            except ValueError:
                continue
            if solver.supports(problem):
                continue
            if sname == "ilp" and sum(m.importance.size for m in problem.members) > 256:
                continue        # the exact solver on the 16x16 instances only: the larger ones take minutes
            r = solver.solve(problem, seed=0)
            values[f"{sname}|{name}"] = r.retained
    return values


def run_torch() -> dict:
    """``permute_model`` on every zoo model: greedy and hungarian, scopes layer and group (deterministic)."""
    import torch

    from permsolve import zoo
    from permsolve.torch.permute import permute_model

    torch.set_num_threads(1)
    x = zoo.digits("val")[0][:32]
    values = {}
    for name in zoo.names():
        for solver in ("greedy", "hungarian"):
            for scope in ("layer", "group"):
                model = zoo.load(name)
                rep = permute_model(model, x, tile=(8, 8), sparsity=0.5, solver=solver, scope=scope,
                                    on_unsupported="skip")
                values[f"torch|{name}|{solver}|{scope}"] = float(rep.objective_after)
    return values


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the values here (JSON)")
    ap.add_argument("--compare", type=Path, help="compare with the values of an earlier run")
    ap.add_argument("--no-torch", dest="torch", action="store_false", help="leave out the permute_model part")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    values = run()
    if args.torch:
        values.update(run_torch())
    print(f"{len(values)} solves in {time.perf_counter() - t:.1f} s")
    if args.out:
        args.out.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    if args.compare:
        old = json.loads(args.compare.read_text())
        moved = [(k, old[k], values[k]) for k in sorted(set(old) & set(values))
                 if abs(old[k] - values[k]) > 1e-12 * max(abs(old[k]), 1e-300)]
        only_old, only_new = sorted(set(old) - set(values)), sorted(set(values) - set(old))
        for k, a, b in moved:
            print(f"moved: {k}: {a!r} -> {b!r} ({(b - a) / a:+.3e} relative)")
        for k in only_old:
            print(f"only before: {k}")
        for k in only_new:
            print(f"only now: {k}")
        print(f"{len(set(old) & set(values))} compared, {len(moved)} moved, {len(only_old)} only before, "
              f"{len(only_new)} only now")
        return 1 if moved else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
