"""``auto``: run the solver that stored benchmark results recommend for this problem and time limit.

The table comes from, in order: the ``table`` option (a dict or a path), the
file named by the environment variable ``PERMSOLVE_AUTO_TABLE``, and the copy
shipped with the package, ``permsolve/data/auto.json`` (what ``permsolve
report`` wrote for the committed standard suite, ``results/bench/auto.json``).
The solver never reads the benchmark database or the checkout's ``results/``.

:func:`choose` takes the entries at the largest benchmarked budget that fits
the time limit; among them it keeps the instances with the problem's axis
(``rows``, ``cols``, ``both`` or ``coupled``) and mask family when the table
has any (otherwise all of them, and ``why`` says so), then the instances
nearest in size and tile shape (number of matrix entries, tile height and
width, on a log scale, within a factor of 2 of the nearest), and picks the
solver with the smallest mean gap over them.  Without a time limit, or
without any entry, it runs :data:`DEFAULT`: the results say what is best *for
a time budget*, and a solver that runs until its time is up would never stop.
The chosen solver runs through :func:`permsolve.solve` with this run's
remaining time, seed and warm start; ``result.info["auto"]`` says what was
chosen and why.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> p = TileProblem.from_matrix(np.ones((64, 64)), tile=(8, 8), sparsity=0.5)
>>> t = {"entries": [{"rows": 64, "cols": 64, "tile": "8x8", "mask": "global", "axis": "rows", "budget": 1.0,
...                   "ranking": [["greedy", 0.0, 0.01], ["identity", 0.2, 0.01]]}]}
>>> choose(p, 5.0, table=t)[0]
'greedy'
>>> choose(p, 5.0, table={"entries": []})[0]
'hungarian'
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from importlib import resources
from pathlib import Path

from permsolve import registry
from permsolve.registry import Solver, register

__all__ = ["Auto", "choose", "load_table", "table_path", "problem_features", "DEFAULT", "ENV_VAR"]

#: the choice when no stored result applies: exact assignment steps, converges on its own
DEFAULT = "hungarian"
#: environment variable naming a table file to use instead of the shipped one
ENV_VAR = "PERMSOLVE_AUTO_TABLE"


def table_path():
    """The table in use when none is given: ``$PERMSOLVE_AUTO_TABLE``, else the shipped copy (or None).

    Returns
    -------
    pathlib.Path or importlib.resources.abc.Traversable or None

    Examples
    --------
    >>> str(table_path()).endswith("auto.json")
    True
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    shipped = resources.files("permsolve").joinpath("data", "auto.json")
    return shipped if shipped.is_file() else None


def load_table(table=None) -> dict:
    """The table: a dict as given, a path, or :func:`table_path`; ``{"entries": []}`` if there is none.

    Parameters
    ----------
    table : dict, str, Path or None
        the table itself, a JSON file holding it, or None for the packaged one (:func:`table_path`)

    Returns
    -------
    dict
        the table, with its ``entries`` list

    Examples
    --------
    >>> load_table({"entries": []})
    {'entries': []}
    >>> len(load_table()["entries"]) > 0
    True
    """
    if isinstance(table, dict):
        return table
    path = Path(table) if table else table_path()
    if path is None or not path.is_file():
        return {"entries": []}
    return json.loads(path.read_text())


def problem_features(problem) -> dict:
    """What :func:`choose` matches on: ``entries``, ``tile`` (h, w), ``mask`` and ``axis`` of ``problem``.

    ``axis`` is ``rows``, ``cols`` or ``both`` for one matrix, ``coupled`` for
    several; tile and mask are the first member's.

    Parameters
    ----------
    problem : TileProblem
        the problem to describe

    Returns
    -------
    dict
        ``{"entries": int, "tile": (h, w), "mask": str, "axis": str}``

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> problem_features(TileProblem.from_matrix(np.ones((8, 6)), tile=(4, 2), sparsity=0.5, axis="cols"))
    {'entries': 48, 'tile': (4, 2), 'mask': 'global', 'axis': 'cols'}
    """
    mem = problem.members
    if len(mem) == 1:
        m = mem[0]
        axis = {(True, False): "rows", (False, True): "cols", (True, True): "both"}.get(
            (m.rows is not None, m.cols is not None), "coupled")
    else:
        axis = "coupled"
    mask = mem[0].mask
    if not isinstance(mask, str):   # a Mask: its spec text ("2:4") where it has one, else its family name
        mask = str(mask) if type(mask).__str__ is not object.__str__ else mask.name
    return {"entries": int(sum(m.importance.size for m in mem)), "tile": tuple(int(t) for t in mem[0].tile),
            "mask": mask, "axis": axis}


def _supports(cls, problem) -> bool:
    """Whether ``cls`` handles ``problem``, without constructing it (construction may JIT-compile)."""
    try:
        return cls.unprepared().supports(problem) is None
    except Exception:  # a solver whose supports() needs a fully built instance
        return cls().supports(problem) is None


def _tile_of(entry):
    try:
        h, w = (int(x) for x in str(entry["tile"]).lower().split("x"))
        return h, w
    except (KeyError, ValueError):
        return None


def choose(problem, time_limit: float | None, *, table=None, exclude=("auto",)) -> tuple[str, float | None, str]:
    """``(solver, time limit to give it, why)`` for ``problem`` under ``time_limit`` seconds.

    Parameters
    ----------
    problem : :class:`~permsolve.TileProblem`
    time_limit : seconds, or None: the table is indexed by time budget, so
        without one the choice is :data:`DEFAULT` (deterministic, stops on its own)
    table : dict, path or None (see :func:`load_table`)
    exclude : solver names never chosen

    Returns
    -------
    tuple
        the solver's name, the time limit to pass on, and a sentence saying why

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.ones((64, 64)), tile=(8, 8), sparsity=0.5, mask="row-balanced")
    >>> e = dict(rows=64, cols=64, tile="8x8", axis="rows", budget=1.0)
    >>> t = {"entries": [{**e, "mask": "global", "ranking": [["greedy", 0.0, 0.1], ["hungarian", 0.1, 0.1]]},
    ...                  {**e, "mask": "row-balanced", "ranking": [["hungarian", 0.0, 0.1], ["greedy", 0.1, 0.1]]}]}
    >>> choose(p, 2.0, table=t)[0]
    'hungarian'
    """
    from permsolve.registry import solvers

    known = {n: c for n, c in solvers().items() if n not in exclude and _supports(c, problem)}
    entries = load_table(table).get("entries", [])
    f = problem_features(problem)
    default = DEFAULT if DEFAULT in known else ("greedy" if "greedy" in known else next(iter(known), DEFAULT))
    # anytime solvers built for this problem's mask family (nm-anneal for N:M): the choice where the
    # table knows nothing of the family, since a generic solver may do no better than the identity there
    specialists = sorted(n for n, c in known.items() if c.anytime and not c.exact and c.masks
                         and all(isinstance(m.mask, c.masks) for m in problem.members))
    fam = problem.members[0].mask.name
    if specialists and not any(_family_of(e.get("mask")) == fam for e in entries):
        return specialists[0], time_limit, (f"no benchmark results for the {fam} family: {specialists[0]}, "
                                            "the anytime solver built for it")
    if not entries:
        return default, time_limit, "no benchmark results: default"
    if time_limit is None:
        return default, None, "no time limit: default (the results are indexed by time budget)"
    budgets = sorted({float(e["budget"]) for e in entries})
    fitting = [b for b in budgets if b <= time_limit * (1 + 1e-9)]
    budget = fitting[-1] if fitting else budgets[0]
    es = [e for e in entries if float(e["budget"]) == budget]
    notes = []
    for key in ("axis", "mask"):   # an entry without the field (an older table) matches anything
        same = [e for e in es if e.get(key) in (None, f[key])]
        if same:
            es = same
            if any(key in e for e in same):
                notes.append(f"{key} {f[key]}")
        else:
            notes.append(f"no benchmarked instance with {key} {f[key]}, nearest of the others")

    def dist(e):
        d = abs(math.log(max(e["rows"] * e["cols"], 1)) - math.log(max(f["entries"], 1)))
        t = _tile_of(e)
        if t is not None:
            d += abs(math.log(t[0] / f["tile"][0])) + abs(math.log(t[1] / f["tile"][1]))
        return d

    ds = [dist(e) for e in es]
    near = [e for e, d in zip(es, ds) if d <= min(ds) + math.log(2)]
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
    gap = sum(g for g, _ in full[best]) / len(full[best])
    tiles = sorted({e["tile"] for e in near if "tile" in e})
    return best, time_limit, (f"best mean gap ({100 * gap:.3g}%) at budget {budget:g} s over {len(near)} benchmarked "
                              f"instance(s) of about {f['entries']} entries"
                              + (f", tile {'/'.join(tiles)}" if tiles else "")
                              + (f" ({'; '.join(notes)})" if notes else ""))


def _family_of(spec) -> str | None:
    """Family name of a table entry's mask text (``"2:4"`` -> ``"N:M"``), None if absent or unknown."""
    if spec is None:
        return None
    from permsolve.masks import get_mask
    try:
        return get_mask(spec).name
    except ValueError:
        return None


@register
class Auto(Solver):
    """Pick and run the solver stored benchmark results rank best for this problem.

    Pick the solver for this problem and time limit from stored benchmark results (:func:`choose`)
    and run it; a mask family without results goes to that family's anytime specialist.

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "auto")
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('auto', True, True)
    """
    name = "auto"
    description = "pick the best solver for this problem and time limit from stored benchmark results"
    anytime = True
    randomized = True

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """Options of ``auto``.

        Attributes
        ----------
        table : the recommendations: a dict as :func:`load_table` returns, a path to one (JSON), or None
            (``$PERMSOLVE_AUTO_TABLE``, else the shipped copy)

        Examples
        --------
        >>> Auto.Options(table={"entries": []}).table
        {'entries': []}
        >>> Auto.Options(table=3)
        Traceback (most recent call last):
        ...
        ValueError: table must be a dict, a path or None, got int
        """

        table: dict | str | os.PathLike | None = None

        def validate(self) -> None:
            """Refuse a table that is neither a dict, a path nor None (``ValueError``)."""
            if self.table is not None and not isinstance(self.table, (dict, str, os.PathLike)):
                raise ValueError(f"table must be a dict, a path or None, got {type(self.table).__name__}")

    def _solve(self, problem, run, rng):
        from permsolve.registry import get_solver

        tl = None if run.time_limit is None else max(run.time_left(), 1e-3)
        chosen, limit, why = choose(problem, tl, table=self.config.table)
        delegate = get_solver(chosen)()          # construction (a JIT warm-up) counts against this run's time
        if limit is not None:
            limit = max(run.time_left(), 1e-3)
        t0 = run.elapsed()
        res = delegate.solve(problem, time_limit=limit, seed=int(rng.integers(2**31 - 1)),
                             init=run.best_perms if run.has_init else None)
        start = run.best
        run.offer(res.perms, res.retained)
        # the delegate's anytime trace, on this run's clock
        run.trace = [run.trace[0]] + [(t0 + t, v) for t, v in res.trace if v > start]
        if run.trace[-1][1] < run.best:
            run.trace.append((run.elapsed(), run.best))
        if res.optimal:
            run.proven_bound = res.retained
        run.nit = res.nit
        run.info = {"auto": {"solver": chosen, "why": why, "time_limit": limit}, **res.info}
