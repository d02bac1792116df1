"""The TileTrans experiment's report (``benchmarks/tiletrans_experiment.py``): tables, summary and
figures from ``results.csv``.

:func:`load_rows` reads the rows; :func:`write_tables` writes ``results.md``, :func:`write_summary`
``summary.md`` (where plain tile pruning loses >= 10 points, what permutation recovers there, and how
retained importance relates to accuracy), :func:`compare_scope` ``scope_comparison.md`` and
:func:`plot` one ``<model>.png`` per model.  ``python benchmarks/tiletrans_experiment.py --report-only``
runs them on an existing ``results.csv``.

Examples
--------
>>> _order({"b", "x", "a"}, ["b", "a"])
['b', 'a', 'x']
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["COLORS", "load_rows", "write_tables", "write_summary", "compare_scope", "plot"]

#: plot colour of each solver (also the solvers' order in the tables)
COLORS = {"identity": "black", "greedy": "tab:blue", "hungarian": "tab:orange", "anneal": "tab:green",
          "ilp": "tab:red"}

#: the committed full grid (the examples read it)
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "results" / "tiletrans" / "results.csv"


def load_rows(path: Path) -> list[dict]:
    """Read ``results.csv``: the accuracies, sparsities and retained fractions as floats.

    Parameters
    ----------
    path : the CSV file (columns ``tiletrans_experiment.FIELDS``)

    Returns
    -------
    list of dict

    Examples
    --------
    >>> rows = load_rows(EXAMPLE_CSV)
    >>> len(rows), type(rows[0]["acc_oneshot"]).__name__
    (864, 'float')
    """
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("sparsity", "dense_acc", "acc_oneshot", "acc_finetuned", "weight_sparsity", "retained_fraction"):
            r[k] = float(r[k])
    return rows


def _index(rows):
    idx = {}
    for r in rows:
        idx[(r["model"], r["tile"], r["budget"], r["scope"], r["solver"], round(r["sparsity"], 2))] = r
    return idx


def _order(values, preferred):
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def write_tables(rows, out: Path) -> None:
    """Write ``results.md``: per model, tile, budget and scope, the accuracy of every solver and sparsity.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    out : folder to write in

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> write_tables(load_rows(EXAMPLE_CSV), out)
    >>> (out / "results.md").read_text().splitlines()[0]
    '# TileTrans experiment on the digits zoo: validation accuracy (%)'
    """
    idx = _index(rows)
    lines = ["# TileTrans experiment on the digits zoo: validation accuracy (%)", "",
             "Each cell: one-shot / after fine-tuning (one epoch) with masks kept.  Last column: retained "
             "L1 importance of each solver, as a fraction of all importance of the pruned layers.", ""]
    combos = sorted({(r["model"], r["tile"], r["budget"], r["scope"]) for r in rows},
                    key=lambda c: (_order({r["model"] for r in rows}, ["mlp", "alexnet", "resnet", "concatnet"]).index(c[0]),
                                   c[1], c[2], c[3]))
    solvers = _order({r["solver"] for r in rows}, list(COLORS))
    for model, tile, budget, scope in combos:
        dense = next(r["dense_acc"] for r in rows if r["model"] == model)
        lines += [f"## {model}, tile {tile}, budget {budget}, scope {scope} (dense {100 * dense:.1f})", "",
                  "| sparsity | " + " | ".join(solvers) + " | retained " + " / ".join(solvers) + " |",
                  "|---:|" + "---:|" * (len(solvers) + 1)]
        sps = sorted({round(r["sparsity"], 2) for r in rows if (r["model"], r["tile"], r["budget"], r["scope"]) == (model, tile, budget, scope)})
        for s in sps:
            cells, rets = [], []
            for sv in solvers:
                r = idx.get((model, tile, budget, scope, sv, s))
                if r is None:
                    cells.append("-"); rets.append("-")
                    continue
                cells.append(f"{100 * r['acc_oneshot']:.1f} / {100 * r['acc_finetuned']:.1f}")
                rets.append(f"{r['retained_fraction']:.3f}")
            lines.append(f"| {s:.1f} | " + " | ".join(cells) + " | " + " / ".join(rets) + " |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def _spearman(x, y) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _s10_aggregate(at_s10: dict, perm_solvers: list[str]) -> list[str]:
    """The README's headline: gains over identity at s10, aggregated over the cells."""
    import numpy as np

    def gains(cells, pick):
        return np.array([pick(c) - idn for _, idn, c in cells])

    def fmt(g):
        return (f"{100 * np.median(g):+.1f} ({100 * g.mean():+.1f}), {int((g > 1e-9).sum())} / "
                f"{int((g < -1e-9).sum())}")

    lines = ["", "## Aggregated over the cells above", "",
             "Gains over identity at s10, points of accuracy: median (mean), cells better / worse.  `best` is the "
             "best permuting solver of each cell, picked afterwards (so it flatters); `recovered` is the median "
             "share of identity's loss (dense - identity) that the solver wins back.", "",
             "| phase | cells | identity's loss (median) | " + " | ".join(perm_solvers) +
             " | best | greedy recovered | best recovered | better solver vs greedy (better / worse) |",
             "|---|---:|---:|" + "---:|" * (len(perm_solvers) + 4)]
    for phase, cells in at_s10.items():
        cells = [c for c in cells if "greedy" in c[2]]
        if not cells:
            continue
        loss = np.array([d - i for d, i, _ in cells])
        per = [fmt(gains(cells, lambda c, sv=sv: c.get(sv, np.nan))) for sv in perm_solvers]
        best = gains(cells, lambda c: max(c.values()))
        greedy = gains(cells, lambda c: c["greedy"])
        others = [sv for sv in perm_solvers if sv != "greedy"]
        vs = np.array([max((c[sv] for sv in others if sv in c), default=np.nan) - c["greedy"] for _, _, c in cells])
        lines.append(f"| {phase} | {len(cells)} | {100 * np.median(loss):.1f} | " + " | ".join(per) +
                     f" | {fmt(best)} | {100 * np.median(greedy / loss):.0f}% | {100 * np.median(best / loss):.0f}% | "
                     f"{int((vs > 1e-9).sum())} / {int((vs < -1e-9).sum())} |")
    return lines


def write_summary(rows, out: Path) -> None:
    """Write ``summary.md``: what permutation recovers where plain tile pruning loses >= 10 points,
    aggregated, and whether more retained importance means more accuracy.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    out : folder to write in

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> write_summary(load_rows(EXAMPLE_CSV), out)
    >>> (out / "summary.md").read_text().splitlines()[0]
    '# Where plain tile pruning loses >= 10 points: what permutation recovers'
    """
    import numpy as np

    idx = _index(rows)
    solvers = _order({r["solver"] for r in rows}, list(COLORS))
    perm_solvers = [s for s in solvers if s != "identity"]
    lines = ["# Where plain tile pruning loses >= 10 points: what permutation recovers", "",
             "s10 = smallest sparsity at which `identity` (plain tile pruning) is >= 10 points below the dense "
             "model (one-shot, resp. after fine-tuning).  Columns give accuracy in points at s10 and the gain over "
             "identity; `best` is the best permuting solver at that sparsity.", "",
             "| model | tile | budget | scope | phase | s10 | dense | identity | greedy (gain) | best (gain) |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    combos = sorted({(r["model"], r["tile"], r["budget"], r["scope"]) for r in rows})
    at_s10 = {"one-shot": [], "fine-tuned": []}     # per cell: dense, identity, {solver: acc}
    for model, tile, budget, scope in combos:
        for phase, col in (("one-shot", "acc_oneshot"), ("fine-tuned", "acc_finetuned")):
            sps = sorted({round(r["sparsity"], 2) for r in rows
                          if (r["model"], r["tile"], r["budget"], r["scope"], r["solver"]) == (model, tile, budget, scope, "identity")})
            s10 = None
            for s in sps:
                r = idx[(model, tile, budget, scope, "identity", s)]
                if not math.isnan(r[col]) and r["dense_acc"] - r[col] >= 0.10:
                    s10 = s
                    break
            if s10 is None:
                lines.append(f"| {model} | {tile} | {budget} | {scope} | {phase} | none | | | | |")
                continue
            base = idx[(model, tile, budget, scope, "identity", s10)]
            cells = {}
            for sv in perm_solvers:
                r = idx.get((model, tile, budget, scope, sv, s10))
                if r is not None:
                    cells[sv] = r[col]
            at_s10[phase].append((base["dense_acc"], base[col], cells))
            g = cells.get("greedy", float("nan"))
            best_sv = max(cells, key=lambda k: cells[k]) if cells else None
            best = cells.get(best_sv, float("nan"))
            lines.append(f"| {model} | {tile} | {budget} | {scope} | {phase} | {s10:.1f} | {100 * base['dense_acc']:.1f} | "
                         f"{100 * base[col]:.1f} | {100 * g:.1f} ({100 * (g - base[col]):+.1f}) | "
                         f"{best_sv} {100 * best:.1f} ({100 * (best - base[col]):+.1f}) |")
    lines += _s10_aggregate(at_s10, perm_solvers)
    # retained importance vs accuracy
    lines += ["", "## Does more retained importance mean more accuracy?", "",
              "Per model: over all (tile, budget, scope, sparsity) cells, the gain of each permuting solver over "
              "identity in retained importance (points of the total) and in one-shot accuracy (points); "
              "Spearman rank correlation between the two gains, and the share of cells where the solver "
              "retains more but is less accurate.", "",
              "| model | solver | cells | mean retained gain | mean acc gain (one-shot) | mean acc gain (fine-tuned) | "
              "Spearman(ret gain, acc gain) | more retained but less accurate |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model in sorted({r["model"] for r in rows}):
        for sv in perm_solvers:
            dr, da, df = [], [], []
            for r in rows:
                if r["model"] != model or r["solver"] != sv:
                    continue
                b = idx.get((model, r["tile"], r["budget"], r["scope"], "identity", round(r["sparsity"], 2)))
                if b is None:
                    continue
                dr.append(r["retained_fraction"] - b["retained_fraction"])
                da.append(r["acc_oneshot"] - b["acc_oneshot"])
                df.append(r["acc_finetuned"] - b["acc_finetuned"])
            if not dr:
                continue
            dr, da, df = map(np.asarray, (dr, da, df))
            worse = float(np.mean((dr > 1e-9) & (da < 0)))
            lines.append(f"| {model} | {sv} | {len(dr)} | {100 * dr.mean():+.2f} | {100 * da.mean():+.2f} | "
                         f"{100 * (np.nanmean(df) if np.isfinite(df).any() else np.nan):+.2f} | {_spearman(dr, da):.2f} | "
                         f"{100 * worse:.0f}% |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def compare_scope(rows, other_csv: Path, out: Path) -> None:
    """``scope_comparison.md``: these runs against the same configurations in ``other_csv``
    (other scope), paired by model, tile, budget, solver and sparsity.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    other_csv : ``results.csv`` of the same grid with the other scope
    out : folder to write in (nothing is written without pairs)

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> compare_scope(load_rows(EXAMPLE_CSV.parent / "scope" / "results.csv"), EXAMPLE_CSV, out)
    >>> (out / "scope_comparison.md").read_text().startswith("# Scope group (these runs) against layer")
    True
    """
    import numpy as np

    other = {(r["model"], r["tile"], r["budget"], r["solver"], round(r["sparsity"], 2)): r
             for r in load_rows(other_csv)}
    pairs = []
    for r in rows:
        o = other.get((r["model"], r["tile"], r["budget"], r["solver"], round(r["sparsity"], 2)))
        if r["solver"] != "identity" and o is not None and o["scope"] != r["scope"]:
            pairs.append((r, o))
    if not pairs:
        return
    dr = np.array([r["retained_fraction"] - o["retained_fraction"] for r, o in pairs])
    lines = [f"# Scope {pairs[0][0]['scope']} (these runs) against {pairs[0][1]['scope']} ({other_csv})", "",
             f"{len(pairs)} paired runs (same model, tile, budget, solver, sparsity).  Retained importance "
             f"difference: largest {100 * np.abs(dr).max():.2f} points, mean {100 * dr.mean():+.2f}.", "",
             "| phase | median change | mean change | better / worse |", "|---|---:|---:|---:|"]
    for phase, col in (("one-shot", "acc_oneshot"), ("fine-tuned", "acc_finetuned")):
        d = np.array([r[col] - o[col] for r, o in pairs])
        lines.append(f"| {phase} | {100 * np.median(d):+.1f} | {100 * d.mean():+.1f} | "
                     f"{int((d > 1e-9).sum())} / {int((d < -1e-9).sum())} |")
    d = sorted(pairs, key=lambda p: p[0]["acc_oneshot"] - p[1]["acc_oneshot"])
    lines += ["", "Largest one-shot changes:", ""]
    for r, o in d[:2] + d[-2:]:
        lines.append(f"- {r['model']} {r['tile']} {r['budget']} {r['solver']} s = {r['sparsity']:.1f}: "
                     f"{100 * o['acc_oneshot']:.1f} ({o['scope']}) -> {100 * r['acc_oneshot']:.1f} ({r['scope']})")
    (out / "scope_comparison.md").write_text("\n".join(lines) + "\n")


def plot(rows, out: Path) -> None:
    """Write ``<model>.png`` per model: accuracy against sparsity, one line per solver (solid one-shot,
    dashed fine-tuned), one panel per tile shape, budget and scope.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    out : folder to write in

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> plot([r for r in load_rows(EXAMPLE_CSV) if r["model"] == "mlp"], out)
    >>> [p.name for p in out.iterdir()]
    ['mlp.png']
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        tiles = _order({r["tile"] for r in mine}, ["16x16", "32x1", "8x8"])
        budgets = _order({r["budget"] for r in mine}, ["global", "layer"])
        scopes = _order({r["scope"] for r in mine}, ["layer", "group"])
        panels = [(b, sc) for b in budgets for sc in scopes]
        fig, axes = plt.subplots(len(panels), len(tiles), figsize=(4.2 * len(tiles), 3.4 * len(panels)),
                                 squeeze=False, sharey=True)
        dense = mine[0]["dense_acc"]
        for i, (budget, scope) in enumerate(panels):
            for j, tile in enumerate(tiles):
                ax = axes[i][j]
                for sv in _order({r["solver"] for r in mine}, list(COLORS)):
                    pts = sorted((r["sparsity"], r["acc_oneshot"], r["acc_finetuned"]) for r in mine
                                 if (r["tile"], r["budget"], r["scope"], r["solver"]) == (tile, budget, scope, sv))
                    if not pts:
                        continue
                    x = [p[0] for p in pts]
                    ax.plot(x, [100 * p[1] for p in pts], "-o", ms=3, color=COLORS.get(sv), label=f"{sv} one-shot")
                    ax.plot(x, [100 * p[2] for p in pts], "--", color=COLORS.get(sv), alpha=0.7,
                            label=f"{sv} fine-tuned")
                ax.axhline(100 * dense, color="grey", lw=0.8, ls=":")
                ax.set_title(f"tile {tile}, budget {budget}" + (f", scope {scope}" if len(scopes) > 1 else ""),
                             fontsize=9)
                ax.set_xlabel("tile sparsity")
                if j == 0:
                    ax.set_ylabel("validation accuracy (%)")
                ax.set_ylim(0, 100)
                ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"{model}: tile pruning with and without permutation (dotted: dense)", fontsize=11)
        fig.tight_layout()
        fig.savefig(out / f"{model}.png", dpi=90)
        plt.close(fig)
