"""Which solver to run for a problem of a given size and time budget, from stored results.

``permsolve report`` writes ``auto.json``: for each benchmarked instance and
budget, the solvers ranked by their gap to the best known value.
:func:`choose` takes the entries of the problem's mask (an entry without a
``mask`` applies to every tile mask, as tables written before masks were
recorded), at the largest benchmarked budget that fits the time limit, keeps the instances closest in size (number of matrix
entries, within a factor of 2 of the closest), and picks the solver with the
smallest mean gap over them.  Without a table it picks :data:`DEFAULT`.

The table is, in order: the ``table`` argument, the file named by the
environment variable ``PERMSOLVE_AUTO_TABLE``, ``results/bench/auto.json`` of
the checkout.  Without a time limit it runs :data:`DEFAULT`: the results say
what is best *for a time budget*, and a solver that runs until its time is up
would never stop.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> p = TileProblem.from_matrix(np.ones((64, 64)), tile=(8, 8), sparsity=0.5)
>>> t = {"entries": [{"rows": 64, "cols": 64, "budget": 1.0,
...                   "ranking": [["greedy", 0.0, 0.01], ["identity", 0.2, 0.01]]}]}
>>> choose(p, 5.0, table=t)[0]
'greedy'
>>> choose(p, 5.0, table={"entries": []})[0]
'hungarian'
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["choose", "load_table", "table_path", "DEFAULT"]

#: the choice when no stored result applies: exact assignment steps, converges on its own
DEFAULT = "hungarian"


def table_path() -> Path | None:
    """The auto table in use (see the module docstring), or None if there is none."""
    env = os.environ.get("PERMSOLVE_AUTO_TABLE")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parents[2] / "results" / "bench" / "auto.json"
    return p if p.exists() else None


def load_table(table=None) -> dict:
    """The table: a dict as given, a path, or the default location; ``{"entries": []}`` if none."""
    if isinstance(table, dict):
        return table
    path = Path(table) if table else table_path()
    if path is None or not path.exists():
        return {"entries": []}
    with open(path) as f:
        return json.load(f)


def choose(problem, time_limit: float | None, *, table=None, exclude=("auto",)) -> tuple[str, float | None, str]:
    """``(solver, time limit to give it, why)`` for ``problem`` under ``time_limit`` seconds.

    Parameters
    ----------
    problem : :class:`~permsolve.TileProblem`
    time_limit : seconds, or None: the table is indexed by time budget, so
        without one the choice is :data:`DEFAULT` (deterministic, stops on its own)
    table : dict, path or None (see :func:`load_table`)
    """
    from permsolve.registry import solvers

    from .config import supports

    known = {n: c for n, c in solvers().items() if n not in exclude and supports(c, problem)}
    masks = {str(m.mask) for m in problem.members}
    tiled = all(m.mask.fixed_tile is None for m in problem.members)
    entries = [e for e in load_table(table).get("entries", [])
               if (e["mask"] in masks if "mask" in e else tiled)]
    size = sum(m.importance.size for m in problem.members)
    default = DEFAULT if DEFAULT in known else "greedy"
    if not entries:
        return default, time_limit, f"no benchmark results for mask {', '.join(sorted(masks))}: default"
    if time_limit is None:
        return default, None, "no time limit: default (the results are indexed by time budget)"
    budgets = sorted({float(e["budget"]) for e in entries})
    fitting = [b for b in budgets if b <= time_limit * (1 + 1e-9)]
    budget = fitting[-1] if fitting else budgets[0]
    es = [e for e in entries if float(e["budget"]) == budget]
    dist = [abs(math.log(max(e["rows"] * e["cols"], 1)) - math.log(max(size, 1))) for e in es]
    dmin = min(dist)
    near = [e for e, d in zip(es, dist) if d <= dmin + math.log(2)]
    scores = {}
    for e in near:
        for name, gap, secs in e["ranking"]:
            if name in known:
                scores.setdefault(name, []).append((gap, secs))
    full = {n: v for n, v in scores.items() if len(v) == len(near)} or scores
    if not full:
        return default, time_limit, "no benchmarked solver handles this problem: default"
    best = min(full, key=lambda n: (round(sum(g for g, _ in full[n]) / len(full[n]), 9),
                                    sum(s for _, s in full[n]) / len(full[n])))
    limit = time_limit
    gap = sum(g for g, _ in full[best]) / len(full[best])
    return best, limit, (f"best mean gap ({100 * gap:.3g}%) at budget {budget:g} s over {len(near)} benchmarked "
                         f"instance(s) of about {size} entries")
