"""Tables and plots from the results database.

:func:`write_report` writes, into one folder:

* ``report.md``: ranking of the solvers per time budget, a gap-to-best-known
  matrix, and per instance and solver: retained fraction, gap to the bound,
  gap to the best known value, time (medians over seeds);
* ``results.csv`` (one line per instance, solver, budget) and ``ranking.csv``;
* ``anytime.png``/``.svg``: quality against time from the anytime traces
  (median over seeds, shaded min-max), one panel per instance;
* ``pareto.png``/``.svg``: time against gap for every solver and budget, with
  the Pareto front, one panel per instance family;
* ``auto.json``: the best solver per instance (size, tile, sparsity, mask,
  axis) and budget, the table of the ``auto`` solver; copy it to
  ``permsolve/data/auto.json`` to ship it, or point ``$PERMSOLVE_AUTO_TABLE``
  (or the solver's ``table`` option) at it.

Gaps are relative: ``(best - value) / best`` with ``best`` the best value ever
found for the instance (the manifest's, or a better one in the database), and
``(bound - value) / bound`` with the best bound known.

Examples
--------
>>> import tempfile, os
>>> from permsolve.bench.config import SweepConfig
>>> from permsolve.bench.db import ResultsDB
>>> from permsolve.bench.runner import run_cell
>>> d = tempfile.mkdtemp()
>>> db = ResultsDB(os.path.join(d, "r.sqlite"))
>>> for c in SweepConfig(suite="smoke", solvers=["identity", "greedy"], budgets=[1]).cells():
...     _ = db.insert(run_cell(c.payload()))
>>> files = write_report(db.path, os.path.join(d, "out"), manifest=os.path.join(d, "m.json"))
>>> sorted(os.path.basename(f) for f in files)[:3]
['anytime.png', 'anytime.svg', 'auto.json']
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["write_report", "collect", "summarise", "ranking"]


# ---------------------------------------------------------------- data
def collect(db_path, manifest=None) -> tuple[list[dict], dict, dict, list[dict]]:
    """``(ok rows with gaps, best value per instance, best bound per instance, error rows)``.

    Parameters
    ----------
    db_path : str or Path
        The results database.
    manifest : str or Path, optional
        Manifest whose best values and bounds join the database's (default ``problems/manifest.json``).

    Returns
    -------
    ok : list of dict
        The rows with ``status="ok"``, with ``fraction``, ``gap_best`` and ``gap_bound`` added.
    best, bound : dict
        Best value and best bound known per instance.
    errors : list of dict
        The other rows.

    Examples
    --------
    >>> import tempfile, os
    >>> from permsolve.bench.db import ResultsDB
    >>> d = tempfile.mkdtemp()
    >>> with ResultsDB(os.path.join(d, "r.sqlite")) as db:
    ...     for s, v in (("x", 3.0), ("y", 4.0)):
    ...         _ = db.insert({"cell": s, "instance": "i", "solver": s, "status": "ok", "value": v,
    ...                        "bound": 5.0, "total": 8.0})
    >>> ok, best, bound, errors = collect(os.path.join(d, "r.sqlite"), manifest=os.path.join(d, "m.json"))
    >>> best, bound, [r["gap_best"] for r in ok], errors
    ({'i': 4.0}, {'i': 5.0}, [0.25, 0.0], [])
    """
    from permsolve.problems.manifest import Manifest

    from .db import ResultsDB

    with ResultsDB(db_path) as db:
        rows = db.rows()
    man = Manifest(manifest)
    ok = [r for r in rows if r["status"] == "ok"]
    errors = [r for r in rows if r["status"] != "ok"]
    best, bound = {}, {}
    for r in ok:
        i = r["instance"]
        best[i] = max(best.get(i, -math.inf), r["value"])
        bound[i] = min(bound.get(i, math.inf), r["bound"])
    for i in best:
        e = man.get(i)
        if e:
            if e.get("best_value") is not None:
                best[i] = max(best[i], e["best_value"])
            if e.get("best_bound") is not None:
                bound[i] = min(bound[i], e["best_bound"])
    for r in ok:
        i = r["instance"]
        r["fraction"] = r["value"] / r["total"] if r["total"] else 1.0
        r["gap_best"] = (best[i] - r["value"]) / best[i] if best[i] > 0 else 0.0
        r["gap_bound"] = (bound[i] - r["value"]) / bound[i] if bound[i] > 0 else 0.0
    return ok, best, bound, errors


def summarise(rows: list[dict]) -> list[dict]:
    """Medians over seeds per (instance, solver, budget).

    Parameters
    ----------
    rows : list of dict
        The ok rows of :func:`collect`.

    Returns
    -------
    list of dict
        One row per (instance, solver, budget): medians of ``fraction``, ``gap_bound``, ``gap_best``
        and ``seconds``, the range of ``gap_best``, the number of runs and of proven optima.

    Examples
    --------
    >>> rows = [{"instance": "i", "family": "f", "rows": 4, "cols": 4, "tile": "2x2", "solver": "s", "budget": 1.0,
    ...          "fraction": 0.5, "gap_bound": 0.1, "gap_best": g, "seconds": 0.1, "optimal": 0} for g in (0.0, 0.2, 0.1)]
    >>> summarise(rows)[0]["gap_best"], summarise(rows)[0]["runs"]
    (0.1, 3)
    """
    groups = defaultdict(list)
    for r in rows:
        groups[(r["instance"], r["solver"], r["budget"])].append(r)
    out = []
    for (inst, solver, budget), rs in sorted(groups.items()):
        g = np.array([r["gap_best"] for r in rs])
        out.append({"instance": inst, "family": rs[0]["family"], "rows": rs[0]["rows"], "cols": rs[0]["cols"],
                    "tile": rs[0]["tile"], **{k: rs[0][k] for k in ("sparsity", "mask", "axis") if k in rs[0]},
                    "mask": _mask_of(rs[0]), "solver": solver, "budget": budget, "runs": len(rs),
                    "fraction": float(np.median([r["fraction"] for r in rs])),
                    "gap_bound": float(np.median([r["gap_bound"] for r in rs])),
                    "gap_best": float(np.median(g)), "gap_best_min": float(g.min()), "gap_best_max": float(g.max()),
                    "seconds": float(np.median([r["seconds"] for r in rs])),
                    "optimal": sum(int(r["optimal"] or 0) for r in rs)})
    return out


def _mask_of(row: dict) -> str:
    """A row's mask spec (rows written before masks were recorded are ``global``)."""
    return row.get("mask") or "global"


def ranking(summary: list[dict]) -> list[dict]:
    """Per mask and budget: each solver's mean rank over instances (1 = best gap), mean gap, wins, mean time.

    Instances of different masks are different problems (a 2:4 instance and a
    tile instance share no scale), so each mask is ranked on its own.

    Parameters
    ----------
    summary : list of dict
        The rows of :func:`summarise`.

    Returns
    -------
    list of dict
        Per mask, budget and solver: ``mean_rank``, ``mean_gap_best``, ``max_gap_best``, ``wins``,
        ``mean_seconds`` and ``place``, best first.

    Examples
    --------
    >>> summary = [{"instance": i, "solver": s, "budget": 1.0, "gap_best": g, "seconds": 0.1}
    ...            for i, s, g in [("a", "x", 0.0), ("a", "y", 0.1), ("b", "x", 0.0), ("b", "y", 0.0)]]
    >>> [(r["mask"], r["solver"], r["mean_rank"], r["wins"]) for r in ranking(summary)]
    [('global', 'x', 1.25, 2), ('global', 'y', 1.75, 1)]
    """
    from scipy.stats import rankdata

    out = []
    keys = sorted({(_mask_of(s), s["budget"]) for s in summary})
    for mask, budget in keys:
        by_inst = defaultdict(dict)
        for s in summary:
            if s["budget"] == budget and _mask_of(s) == mask:
                by_inst[s["instance"]][s["solver"]] = s
        acc = defaultdict(lambda: {"ranks": [], "gaps": [], "wins": 0, "secs": []})
        for inst, sols in by_inst.items():
            names = sorted(sols)
            gaps = np.array([sols[n]["gap_best"] for n in names])
            gaps_r = np.round(gaps, 9)            # ties within float noise share a rank
            ranks = rankdata(gaps_r, method="average")
            for n, rk, gp in zip(names, ranks, gaps):
                a = acc[n]
                a["ranks"].append(rk)
                a["gaps"].append(gp)
                a["secs"].append(sols[n]["seconds"])
                a["wins"] += bool(round(gp, 9) <= gaps_r.min())
        rows = [{"mask": mask, "budget": budget, "solver": n, "instances": len(a["ranks"]), "mean_rank": float(np.mean(a["ranks"])),
                 "mean_gap_best": float(np.mean(a["gaps"])), "max_gap_best": float(np.max(a["gaps"])),
                 "wins": a["wins"], "mean_seconds": float(np.mean(a["secs"]))} for n, a in acc.items()]
        rows.sort(key=lambda r: (r["mean_rank"], r["mean_gap_best"]))
        for i, r in enumerate(rows, 1):
            r["place"] = i
        out += rows
    return out


# ------------------------------------------------------------- tables
def _pct(x: float) -> str:
    if abs(x) < 1e-9:          # float noise of a sum taken in another order
        return "0"
    return f"{100 * x:.3g}"


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(summary, rank, best, bound, errors, meta, manifest) -> str:
    budgets = sorted({s["budget"] for s in summary})
    solvers = sorted({s["solver"] for s in summary})
    instances = sorted({s["instance"] for s in summary})
    parts = ["# Benchmark report", "",
             f"{meta['runs']} runs from `{meta['db']}` ({meta['errors']} errors), "
             f"{len(instances)} instances, solvers {', '.join(solvers)}, budgets {', '.join(f'{b:g}' for b in budgets)} s. "
             f"CPU: {meta['cpu']}" + (f", {meta['load']}" if meta.get("load") else "") +
             f"; commit(s): {', '.join(meta['commits']) or 'unknown'}. Written by `permsolve report`.", "",
             "Gaps are in percent: *gap to best* = (best known - value) / best known, *gap to bound* = "
             "(best bound - value) / best bound; medians over seeds. Time is the solver's wall time in seconds "
             "(its budget is a limit; solvers that converge stop earlier).", ""]
    masks = sorted({_mask_of(s) for s in summary}, key=lambda m: (m != "global", m))
    parts += ["## Ranking per mask and time budget", "",
              "Each mask is ranked on its own instances. Mean rank over the instances each solver ran on "
              "(1 = smallest gap to best known; ties share a rank), "
              "mean and worst gap, the number of instances where it is best (ties count for all) out of those it ran "
              "on (a solver that does not handle an instance's mask or axes, or failed on it, has fewer; one that "
              "handles none of a mask's instances is absent), mean time.", ""]
    for mask, b in [(m, b) for m in masks for b in budgets]:
        rs = [r for r in rank if r["budget"] == b and r["mask"] == mask]
        if not rs:
            continue
        parts += [f"**mask {mask}, budget {b:g} s**", "",
                  _md_table(["place", "solver", "mean rank", "mean gap to best %", "worst gap %", "best on", "mean time s"],
                            [[r["place"], r["solver"], f"{r['mean_rank']:.2f}", _pct(r["mean_gap_best"]),
                             _pct(r["max_gap_best"]), f"{r['wins']}/{r['instances']}", f"{r['mean_seconds']:.3g}"]
                             for r in rs]), ""]
    top = budgets[-1]
    cell = {(s["instance"], s["solver"]): s for s in summary if s["budget"] == top}
    mask_of = {s["instance"]: _mask_of(s) for s in summary}
    parts += [f"## Gap to best known (%) and time (s) at budget {top:g} s", "",
              "One table per mask; `-`: the solver did not run on the instance (it does not handle it).", ""]
    for mask in masks:
        insts = [i for i in instances if mask_of[i] == mask]
        sols = [s for s in solvers if any((i, s) in cell for i in insts)]
        if not insts or not sols:
            continue
        parts += [f"**mask {mask}**", "",
                  _md_table(["instance"] + sols,
                            [[f"`{i}`"] + [(f"{_pct(cell[i, s]['gap_best'])} ({cell[i, s]['seconds']:.2g} s)"
                                             if (i, s) in cell else "-") for s in sols] for i in insts]), ""]
    parts += ["## Per instance", ""]
    by_inst = defaultdict(list)
    for s in summary:
        by_inst[s["instance"]].append(s)
    for i in instances:
        ss = by_inst[i]
        e = manifest.get(i) or {}
        who = e.get("best_value_by") or {}
        parts += [f"### `{i}`", "",
                  f"{ss[0]['rows']}x{ss[0]['cols']}, mask {ss[0]['mask']}, tile {ss[0]['tile']}, "
                  f"family {ss[0]['family']}. "
                  f"Best known {best[i]:.10g} ({who.get('solver', 'this database')}), best bound {bound[i]:.10g}"
                  + (f"; provenance: {e['provenance']}" if e.get("provenance") else "") + ".", "",
                  _md_table(["solver", "budget s", "runs", "retained fraction", "gap to bound %", "gap to best %",
                             "time s", "optimal"],
                            [[s["solver"], f"{s['budget']:g}", s["runs"], f"{s['fraction']:.6f}", _pct(s["gap_bound"]),
                              _pct(s["gap_best"]) + (f" [{_pct(s['gap_best_min'])}, {_pct(s['gap_best_max'])}]"
                                                     if s["runs"] > 1 else ""),
                              f"{s['seconds']:.3g}", s["optimal"]] for s in sorted(ss, key=lambda s: (s["solver"], s["budget"]))]),
                  ""]
    if errors:
        parts += ["## Errors", ""]
        parts += [f"- `{r['cell']}`: {r['error']}" for r in errors[:50]]
        if len(errors) > 50:
            parts.append(f"- ... and {len(errors) - 50} more")
        parts.append("")
    return "\n".join(parts)


def _write_csv(path, rows):
    if not rows:
        Path(path).write_text("")
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# -------------------------------------------------------------- plots
def _colors(solvers):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(sorted(solvers))}


def _curve(trace, end, grid):
    """Best value at each time of ``grid`` (NaN after ``end``, the run's end)."""
    ts = np.array([t for t, _ in trace])
    vs = np.array([v for _, v in trace])
    idx = np.searchsorted(ts, grid, side="right") - 1
    out = vs[np.clip(idx, 0, None)].astype(float)
    out[grid > end] = np.nan
    return out


def plot_anytime(rows, best, out_dir) -> list[str]:
    """Quality (gap to best known) against time, one panel per instance, at each instance's largest budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    instances = sorted({r["instance"] for r in rows})
    solvers = sorted({r["solver"] for r in rows})
    colors = _colors(solvers)
    ncols = min(4, len(instances))
    nrows = -(-len(instances) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    tmin = 1e-4
    for ax, inst in zip(axes.flat, instances):
        rs = [r for r in rows if r["instance"] == inst]
        top = max(r["budget"] for r in rs)
        rs = [r for r in rs if r["budget"] == top]
        # runs that overshoot their budget (a step that cannot be interrupted) are shown to their end
        tmax = max(top * 1.3, 1.1 * max(r["seconds"] for r in rs))
        # the trace times themselves are on the grid, so no improvement falls between two grid points
        marks = [max(t, tmin) for r in rs for t, _ in r["trace"]] + [max(r["seconds"], tmin) for r in rs]
        grid = np.unique(np.concatenate([np.logspace(math.log10(tmin), math.log10(tmax), 240), marks]))
        b = best[inst]
        ymax = 0.0
        for s in solvers:
            runs = [r for r in rs if r["solver"] == s]
            if not runs:
                continue
            # each run holds its final value once it ends; the curve stops where the last seed ends
            curves = np.array([_curve(r["trace"], math.inf, grid) for r in runs])
            gaps = 100 * (b - curves) / b
            alive = grid <= max(max(r["seconds"] for r in runs), tmin)
            med = np.median(gaps, axis=0)
            lo, hi = gaps.min(axis=0), gaps.max(axis=0)
            med[~alive] = np.nan
            ax.plot(grid, med, color=colors[s], lw=1.6, label=s, drawstyle="steps-post")
            if len(runs) > 1:
                ax.fill_between(grid, lo, hi, where=alive, color=colors[s], alpha=0.2, step="post", lw=0)
            last = np.flatnonzero(alive)
            if last.size:
                ax.plot(grid[last[-1]], med[last[-1]], "o", color=colors[s], ms=4)
            ymax = max(ymax, float(hi[alive].max()) if alive.any() else 0.0)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylim(bottom=-0.001, top=max(ymax * 1.5, 0.1))
        ax.set_xlim(tmin, tmax)
        ax.axvline(top, color="0.5", lw=0.8, ls=":")
        ax.set_title(inst, fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel("gap to best known (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(instances):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colors[s], lw=2) for s in solvers]
    _frame(fig, handles, solvers, "Quality against time at the largest budget (median over seeds, shaded: "
           "min-max; dot: run ends; dotted line: the budget; lower is better)")
    return _save(fig, out_dir, "anytime")


def plot_pareto(summary, out_dir) -> list[str]:
    """Mean time against mean gap to best known, each solver and budget a point, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({(s["family"], _mask_of(s)) for s in summary})
    solvers = sorted({s["solver"] for s in summary})
    budgets = sorted({s["budget"] for s in summary})
    colors = _colors(solvers)
    markers = dict(zip(budgets, "os^DvP*X"))
    ncols = min(3, len(families))
    nrows = -(-len(families) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False)
    for ax, (fam, mask) in zip(axes.flat, families):
        pts = []
        of_panel = [x for x in summary if x["family"] == fam and _mask_of(x) == mask]
        for s in solvers:
            for b in budgets:
                ss = [x for x in of_panel if x["solver"] == s and x["budget"] == b]
                if not ss:
                    continue
                t = float(np.mean([x["seconds"] for x in ss]))
                g = 100 * float(np.mean([x["gap_best"] for x in ss]))
                pts.append((max(t, 1e-5), g, s, b))
                ax.plot(max(t, 1e-5), g, markers[b], color=colors[s], ms=6, alpha=0.85)
        pts.sort()
        front, best_g = [], math.inf
        for t, g, s, b in pts:
            if g < best_g - 1e-12:
                front.append((t, g))
                best_g = g
        if front:
            fx, fy = zip(*front)
            ax.plot(fx, fy, "-", color="k", lw=1, alpha=0.6, drawstyle="steps-post", zorder=0)
        n_inst = len({x["instance"] for x in of_panel})
        ax.set_title(f"{fam}, mask {mask} ({n_inst} instance{'s' if n_inst > 1 else ''})", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylim(bottom=-0.001, top=max([g for _, g, _, _ in pts] + [0.05]) * 1.8)
        ax.set_xlabel("mean time (s)", fontsize=8)
        ax.set_ylabel("mean gap to best known (%)", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(families):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colors[s], marker="o", lw=0) for s in solvers]
    handles += [plt.Line2D([], [], color="gray", marker=markers[b], lw=0) for b in budgets]
    labels = list(solvers) + [f"budget {b:g} s" for b in budgets]
    _frame(fig, handles, labels, "Time against gap per instance family and mask; black steps: the Pareto front "
           "(no other point is both faster and better)")
    return _save(fig, out_dir, "pareto")


def _frame(fig, handles, labels, title):
    """Title on top, legend at the bottom, panels in between (sizes in inches, so any grid fits)."""
    height = fig.get_figheight()
    ncol = min(len(labels), 8)
    legend_rows = -(-len(labels) // ncol)
    bottom = (0.1 + 0.25 * legend_rows) / height
    top = 1 - 0.3 / height
    fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=10)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, bottom, 1, top))


def _save(fig, out_dir, stem) -> list[str]:
    import matplotlib.pyplot as plt

    files = []
    for ext in ("png", "svg"):
        f = os.path.join(out_dir, f"{stem}.{ext}")
        fig.savefig(f, dpi=110, metadata={"Date": None} if ext == "svg" else None)
        files.append(f)
    plt.close(fig)
    return files


# --------------------------------------------------------------- auto
def auto_table(summary) -> dict:
    """The ``auto`` solver's table: for each instance and budget, the solvers ranked by gap to best known.

    Examples
    --------
    >>> t = auto_table([{"instance": "i", "family": "f", "rows": 4, "cols": 4, "tile": "2x2", "budget": 1.0,
    ...                  "solver": s, "gap_best": g, "seconds": 0.1} for s, g in (("x", 0.2), ("y", 0.0))])
    >>> t["entries"][0]["ranking"][0][0]
    'y'
    """
    groups = defaultdict(list)
    for s in summary:
        groups[(s["instance"], s["budget"])].append(s)
    entries = []
    for (inst, budget), ss in sorted(groups.items()):
        ss = sorted(ss, key=lambda s: (round(s["gap_best"], 9), s["seconds"]))
        entries.append({"instance": inst, "family": ss[0]["family"], "rows": ss[0]["rows"], "cols": ss[0]["cols"],
                        "tile": ss[0]["tile"],
                        **{k: ss[0][k] for k in ("sparsity", "mask", "axis") if ss[0].get(k) is not None},
                        "budget": budget,
                        "ranking": [[s["solver"], s["gap_best"], s["seconds"]] for s in ss]})
    return {"about": "best solver per instance and time budget (gap to best known, median seconds); "
                     "written by `permsolve report`, read by the auto solver",
            "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "entries": entries}


# ------------------------------------------------------------ report
def write_report(db_path, out_dir, *, manifest=None) -> list[str]:
    """Write the tables, plots and ``auto.json`` for database ``db_path`` into ``out_dir``.

    Parameters
    ----------
    db_path : SQLite results database written by ``permsolve bench``
    out_dir : folder (created)
    manifest : manifest JSON with the best known values (default ``problems/manifest.json``)

    Returns
    -------
    list of str
        The files written, sorted.

    Raises
    ------
    ValueError
        When the database holds no successful run.

    Examples
    --------
    The module's example writes a whole report; with nothing to report:

    >>> import tempfile, os
    >>> from permsolve.bench.db import ResultsDB
    >>> d = tempfile.mkdtemp()
    >>> ResultsDB(os.path.join(d, "r.sqlite")).close()
    >>> write_report(os.path.join(d, "r.sqlite"), os.path.join(d, "out"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...r.sqlite holds no successful run to report
    """
    from permsolve.problems.manifest import Manifest

    rows, best, bound, errors = collect(db_path, manifest)
    if not rows:
        raise ValueError(f"{db_path} holds no successful run to report")
    os.makedirs(out_dir, exist_ok=True)
    summary = summarise(rows)
    rank = ranking(summary)
    meta = {"runs": len(rows) + len(errors), "errors": len(errors), "db": str(db_path),
            "cpu": sorted({r["env"].get("cpu", "?") for r in rows if r.get("env")}) or ["?"],
            "commits": sorted({(r.get("config") or {}).get("commit") or "" for r in rows} - {""})}
    meta["cpu"] = "; ".join(meta["cpu"])
    loads = [r["env"]["loadavg"][0] for r in rows if r.get("env") and r["env"].get("loadavg")]
    cores = sorted({r["env"].get("cores") for r in rows if r.get("env") and r["env"].get("cores")})
    meta["load"] = (f"{'/'.join(map(str, cores))} cores; 1-min load average during the runs: median "
                    f"{np.median(loads):.1f}, max {np.max(loads):.1f}" if loads else "")
    files = []
    md = os.path.join(out_dir, "report.md")
    Path(md).write_text(_markdown(summary, rank, best, bound, errors, meta, Manifest(manifest)))
    files.append(md)
    for name, data in (("results.csv", summary), ("ranking.csv", rank)):
        _write_csv(os.path.join(out_dir, name), data)
        files.append(os.path.join(out_dir, name))
    files += plot_anytime(rows, best, out_dir)
    files += plot_pareto(summary, out_dir)
    auto = os.path.join(out_dir, "auto.json")
    with open(auto, "w") as f:
        json.dump(auto_table(summary), f, indent=1)
        f.write("\n")
    files.append(auto)
    return sorted(files)
