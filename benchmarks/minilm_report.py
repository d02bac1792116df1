"""The MiniLM study's report (``benchmarks/minilm_experiment.py``): ``results.md`` and ``minilm.png``
from the rows of ``results.csv``.

:func:`load_rows` reads ``results.csv`` (or the partial file of an unfinished run); :func:`write_report`
writes the tables, the paired comparisons (:func:`comparisons`) and the layer sensitivities;
:func:`plot` draws the held-out cosine of every cell.  ``python benchmarks/minilm_experiment.py
--report-only`` runs them on an existing ``results.csv``.

Examples
--------
>>> _label({"tile": "16x16", "solver": "greedy", "scope": "group"}), _label({"tile": "1x1"})
('greedy/group', 'unstructured')
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["SOLVERS", "COLORS", "load_rows", "comparisons", "write_report", "plot"]

#: the committed rows of an unfinished full run (the examples read them)
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "results" / "minilm_unfinished" / "results.csv"

#: the solvers of the study, in report order
SOLVERS = ["identity", "greedy", "hungarian", "anneal"]
#: plot colour of each solver (and of the unstructured reference)
COLORS = {"identity": "black", "greedy": "tab:blue", "hungarian": "tab:orange", "anneal": "tab:green",
          "unstructured": "tab:red"}


def load_rows(path: Path) -> list[dict]:
    """Read ``results.csv`` (or ``results.partial.csv``): numbers as floats and ints, sparsity rounded.

    Parameters
    ----------
    path : the CSV file (columns ``minilm_experiment.FIELDS``)

    Returns
    -------
    list of dict

    Examples
    --------
    >>> rows = load_rows(EXAMPLE_CSV)
    >>> rows[0]["phase"], type(rows[0]["cosine"]).__name__, type(rows[0]["groups"]).__name__
    ('oneshot', 'float', 'int')
    """
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("sparsity", "cosine", "nn_agree", "dev_cosine", "dev_nn_agree", "weight_sparsity",
                  "retained_fraction", "prune_seconds", "seconds"):
            r[k] = float(r[k])
        for k in ("cosine_oneshot", "nn_agree_oneshot"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else float("nan")
        r["permuted_groups"], r["groups"] = int(r["permuted_groups"]), int(r["groups"])
        r["sparsity"] = round(r["sparsity"], 2)
    return rows


def _label(r) -> str:
    if r["tile"] == "1x1":
        return "unstructured"
    return r["solver"] if r["solver"] == "identity" else f"{r['solver']}/{r['scope']}"


def _paired(rows, pick_a, pick_b, match) -> tuple[np.ndarray, int]:
    """Differences a - b of cosine over pairs of rows that agree on ``match`` keys."""
    b_idx = {tuple(r[k] for k in match): r for r in rows if pick_b(r)}
    d = [r["cosine"] - b_idx[tuple(r[k] for k in match)]["cosine"] for r in rows
         if pick_a(r) and tuple(r[k] for k in match) in b_idx]
    return np.asarray(d), len(d)


def _fmt_pairs(d: np.ndarray) -> str:
    if not len(d):
        return "| 0 | - | - | - |"
    return (f"| {len(d)} | {np.median(d):+.3f} | {d.mean():+.3f} | {int((d > 1e-4).sum())} / "
            f"{int((d < -1e-4).sum())} |")


def comparisons(rows) -> list[str]:
    """The Markdown lines of the paired comparisons: cells that differ in one factor only.

    Parameters
    ----------
    rows : as from :func:`load_rows`

    Returns
    -------
    list of str

    Examples
    --------
    >>> comparisons(load_rows(EXAMPLE_CSV))[0]
    '## What helped: paired comparisons of the held-out mean cosine'
    """
    one = [r for r in rows if r["phase"] == "oneshot" and r["tile"] != "1x1"]
    lines = ["## What helped: paired comparisons of the held-out mean cosine", "",
             "Each line pairs cells that differ in one factor only; differences are in cosine (a - b).", "",
             "| comparison (a vs b) | pairs | median | mean | a better / worse |", "|---|---:|---:|---:|---:|"]
    match_all = ("tile", "sparsity", "budget", "solver", "scope")
    d, _ = _paired(one, lambda r: r["metric"] == "activation", lambda r: r["metric"] == "l1", match_all)
    lines.append("| activation vs l1 importance (one-shot, every cell) " + _fmt_pairs(d))
    unst = [r for r in rows if r["phase"] == "oneshot" and r["tile"] == "1x1"]
    d, _ = _paired(unst, lambda r: r["metric"] == "activation", lambda r: r["metric"] == "l1",
                   ("sparsity", "budget"))
    lines.append("| activation vs l1, unstructured " + _fmt_pairs(d))
    for sv in sorted({r["solver"] for r in one} - {"identity"}, key=SOLVERS.index):
        for sc in sorted({r["scope"] for r in one if r["solver"] == sv}):
            d, _ = _paired(one, lambda r, sv=sv, sc=sc: (r["solver"], r["scope"]) == (sv, sc),
                           lambda r: r["solver"] == "identity", ("tile", "sparsity", "budget", "metric"))
            lines.append(f"| {sv}/{sc} vs identity (no permutation) " + _fmt_pairs(d))
    d, _ = _paired(one, lambda r: r["scope"] == "group", lambda r: r["scope"] == "layer",
                   ("tile", "sparsity", "budget", "metric", "solver"))
    lines.append("| scope group vs layer (same solver) " + _fmt_pairs(d))
    d, _ = _paired(one, lambda r: r["budget"] == "global", lambda r: r["budget"] == "layer",
                   ("tile", "sparsity", "metric", "solver", "scope"))
    lines.append("| global vs per-layer budget " + _fmt_pairs(d))
    sens = [r for r in rows if r["phase"] == "sensitivity"]
    if sens:
        base = [r for r in one if r["budget"] == "layer"]
        d, _ = _paired(sens + base, lambda r: r["phase"] == "sensitivity", lambda r: r["phase"] == "oneshot",
                       ("tile", "sparsity", "metric", "solver", "scope"))
        lines.append("| sensitivity allocation vs per-layer budget " + _fmt_pairs(d))
        baseg = [r for r in one if r["budget"] == "global"]
        d, _ = _paired(sens + baseg, lambda r: r["phase"] == "sensitivity", lambda r: r["phase"] == "oneshot",
                       ("tile", "sparsity", "metric", "solver", "scope"))
        lines.append("| sensitivity allocation vs global budget " + _fmt_pairs(d))
    res = [r for r in rows if r["phase"] == "residual"]
    if res:
        base = [r for r in one if r["budget"] == "layer"]
        d, _ = _paired(res + base, lambda r: r["phase"] == "residual", lambda r: r["phase"] == "oneshot",
                       ("tile", "sparsity", "metric", "solver", "scope"))
        lines.append("| residual stream permuted too vs not (same solver) " + _fmt_pairs(d))
        d, _ = _paired(res + base, lambda r: r["phase"] == "residual", lambda r: r["solver"] == "identity",
                       ("tile", "sparsity", "metric"))
        lines.append("| residual stream permuted too vs identity " + _fmt_pairs(d))
    dist = [r for r in rows if r["phase"] == "distill"]
    if dist:
        d = np.array([r["cosine"] - r["cosine_oneshot"] for r in dist])
        lines.append("| distilled vs the same cell one-shot " + _fmt_pairs(d))
        dd = [r for r in dist if r["tile"] != "1x1"]
        d, _ = _paired(dd, lambda r: r["solver"] != "identity", lambda r: r["solver"] == "identity",
                       ("tile", "sparsity", "budget", "metric"))
        lines.append("| after distillation: permuted vs identity " + _fmt_pairs(d))
        d, _ = _paired(dist, lambda r: r["metric"] == "activation", lambda r: r["metric"] == "l1",
                       ("tile", "sparsity", "budget", "solver", "scope"))
        lines.append("| after distillation: activation vs l1 " + _fmt_pairs(d))
    return lines


def write_report(rows, out: Path, sens: dict | None = None, note: str = "") -> None:
    """Write ``results.md``: one-shot and retained-importance tables, the other phases, comparisons.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    out : folder to write ``results.md`` in
    sens : ``{scan key: {layer: dev cosine drop}}`` (``sensitivity.json``), tabulated when given
    note : a paragraph put under the introduction (an unfinished run says so)

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> write_report(load_rows(EXAMPLE_CSV), out)
    >>> (out / "results.md").read_text().splitlines()[0]
    '# MiniLM (all-MiniLM-L6-v2): tile pruning every encoder Linear'
    """
    one = [r for r in rows if r["phase"] == "oneshot"]
    labels = [l for l in ["identity"] + [f"{s}/{sc}" for s in SOLVERS[1:] for sc in ("layer", "group")]
              if any(_label(r) == l for r in one)]
    has_unst = any(r["tile"] == "1x1" for r in one)
    unst = {(r["sparsity"], r["budget"], r["metric"]): r for r in one if r["tile"] == "1x1"}
    idx = {(r["tile"], r["sparsity"], r["budget"], r["metric"], _label(r)): r for r in one}
    lines = ["# MiniLM (all-MiniLM-L6-v2): tile pruning every encoder Linear", "",
             "Held-out mean cosine of sentence embeddings to the dense model / nearest-neighbour agreement.  "
             "Columns: solver/scope (`identity` = plain tile pruning); `unstructured` = magnitude pruning of "
             "single weights at the same sparsity and budget, same importance.  Generated by "
             "`benchmarks/minilm_experiment.py` (see run.txt).", ""] + ([note, ""] if note else []) + [
             "## One-shot", "",
             "| tile | sparsity | budget | importance | " + " | ".join(labels) +
             (" | unstructured |" if has_unst else " |"),
             "|---|---:|---|---|" + "---:|" * (len(labels) + has_unst)]
    combos = sorted({(r["tile"], r["sparsity"], r["budget"], r["metric"]) for r in one if r["tile"] != "1x1"},
                    key=lambda c: (c[0], c[1], c[2] != "layer", c[2], c[3] != "l1", c[3]))
    for tile, s, budget, metric in combos:
        cells = []
        for lab in labels:
            r = idx.get((tile, s, budget, metric, lab))
            cells.append(f"{r['cosine']:.3f} / {r['nn_agree']:.2f}" if r else "-")
        u = unst.get((s, budget, metric))
        line = f"| {tile} | {s:.2f} | {budget} | {metric} | " + " | ".join(cells)
        line += (f" | {u['cosine']:.3f} / {u['nn_agree']:.2f} |" if u else " | - |") if has_unst else " |"
        lines.append(line)
    perm = [r for r in one if r["solver"] != "identity"]
    if perm:
        lines += ["", f"Channel groups permuted per cell: {min(r['permuted_groups'] for r in perm)} to "
                      f"{max(r['permuted_groups'] for r in perm)} of {max(r['groups'] for r in perm)} "
                      f"(free groups the tracer found)."]
    # retained importance
    lines += ["", "## Retained importance (fraction of the pruned layers' importance kept by the masks)", "",
              "| tile | sparsity | budget | importance | " + " | ".join(labels) + " |",
              "|---|---:|---|---|" + "---:|" * len(labels)]
    for tile, s, budget, metric in combos:
        cells = [f"{idx[(tile, s, budget, metric, lab)]['retained_fraction']:.3f}"
                 if (tile, s, budget, metric, lab) in idx else "-" for lab in labels]
        lines.append(f"| {tile} | {s:.2f} | {budget} | {metric} | " + " | ".join(cells) + " |")
    for phase, title in (("sensitivity", "Sensitivity allocation (per-layer sparsities from the dev text)"),
                         ("residual", "Residual stream permuted too (opt-in `permute_outputs=True`: the hidden "
                                      "states come back permuted; the dense embeddings are compared in that order)"),
                         ("distill", "Short distillation on the calibration text, masks kept")):
        pr = [r for r in rows if r["phase"] == phase]
        if not pr:
            continue
        lines += ["", f"## {title}", "",
                  "| tile | sparsity | budget | importance | solver | cosine / nn | one-shot cosine / nn | dev cosine |",
                  "|---|---:|---|---|---|---:|---:|---:|"]
        for r in pr:
            if phase == "distill":
                before = f"{r['cosine_oneshot']:.3f} / {r['nn_agree_oneshot']:.2f}"
            else:
                b = idx.get((r["tile"], r["sparsity"], "layer", r["metric"], _label(r)))
                before = f"{b['cosine']:.3f} / {b['nn_agree']:.2f} (per-layer)" if b else "-"
            lines.append(f"| {r['tile']} | {r['sparsity']:.2f} | {r['budget']} | {r['metric']} | {_label(r)} | "
                         f"{r['cosine']:.3f} / {r['nn_agree']:.2f} | {before} | {r['dev_cosine']:.3f} |")
    lines += [""] + comparisons(rows)
    # the probe of BACKGROUND.md
    probe = [idx.get(("16x16", s, "layer", "l1", lab)) for s in (0.5, 0.25) for lab in ("identity", "greedy/layer",
                                                                                          "anneal/layer")]
    if all(probe):
        u5, u25 = unst.get((0.5, "layer", "l1")), unst.get((0.25, "layer", "l1"))
        lines += ["", "## The probe's setting (mask only, l1, per-layer, 16x16)", "",
                  f"s = 0.5: identity {probe[0]['cosine']:.3f}, greedy {probe[1]['cosine']:.3f}, anneal "
                  f"{probe[2]['cosine']:.3f}" + (f", unstructured {u5['cosine']:.3f}" if u5 else "") +
                  " (probe: 0.149, 0.166, 0.170, 0.723).  "
                  f"s = 0.25: {probe[3]['cosine']:.3f} / {probe[4]['cosine']:.3f} / {probe[5]['cosine']:.3f}" +
                  (f", unstructured {u25['cosine']:.3f}" if u25 else "") + " (probe: 0.392 / 0.398 / 0.458, 0.956)."]
    if sens:
        lines += ["", "## Layer sensitivities (dev cosine drop when that layer alone is tile-pruned)", ""]
        names = list(next(iter(sens.values())))
        keys = list(sens)
        lines += ["| layer | " + " | ".join(k.replace("|", " ") for k in keys) + " |", "|---|" + "---:|" * len(keys)]
        for n in names:
            lines.append(f"| {n.replace('encoder.layer.', 'L')} | " + " | ".join(f"{sens[k][n]:.3f}" for k in keys) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def plot(rows, out: Path) -> None:
    """Draw ``minilm.png``: the held-out cosine of every one-shot cell, and of the other phases.

    Parameters
    ----------
    rows : as from :func:`load_rows`
    out : folder to write ``minilm.png`` in

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> plot(load_rows(EXAMPLE_CSV), out)
    >>> (out / "minilm.png").stat().st_size > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = [r for r in rows if r["phase"] == "oneshot" and r["tile"] != "1x1"]
    combos = sorted({(r["tile"], r["sparsity"], r["budget"], r["metric"]) for r in one},
                    key=lambda c: (c[0], c[1], c[2] != "layer", c[2], c[3] != "l1", c[3]))
    unst = {(r["sparsity"], r["budget"], r["metric"]): r for r in rows if r["phase"] == "oneshot" and r["tile"] == "1x1"}
    extra = [r for r in rows if r["phase"] in ("sensitivity", "residual", "distill")]
    fig, axes = plt.subplots(1, 2 if extra else 1, figsize=(13 if extra else 7, 0.32 * len(combos) + 1.8),
                             squeeze=False)
    ax = axes[0][0]
    for y, c in enumerate(combos):
        for r in one:
            if (r["tile"], r["sparsity"], r["budget"], r["metric"]) != c:
                continue
            filled = r["scope"] in ("layer", "-")
            ax.plot(r["cosine"], y, "o", ms=5, color=COLORS[r["solver"]],
                    mfc=COLORS[r["solver"]] if filled else "none")
        u = unst.get(c[1:])
        if u:
            ax.plot(u["cosine"], y, "x", ms=6, color=COLORS["unstructured"])
    ax.set_yticks(range(len(combos)))
    ax.set_yticklabels([f"{t} s={s:.2f} {b} {m}" for t, s, b, m in combos], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("held-out mean cosine to the dense embeddings")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=COLORS[s], label=s) for s in SOLVERS]
    handles += [plt.Line2D([], [], marker="o", ls="", color="grey", mfc="none", label="scope group (hollow)"),
                plt.Line2D([], [], marker="x", ls="", color=COLORS["unstructured"], label="unstructured")]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_title("one-shot tile pruning", fontsize=10)
    if extra:
        ax2 = axes[0][1]
        idx = {(r["tile"], r["sparsity"], r["budget"], r["metric"], r["solver"], r["scope"]): r for r in one}
        for y, r in enumerate(extra):
            if r["phase"] == "distill":
                x0 = r["cosine_oneshot"]
            else:
                b = idx.get((r["tile"], r["sparsity"], "layer", r["metric"], r["solver"], r["scope"]))
                x0 = b["cosine"] if b else np.nan
            col = COLORS["unstructured"] if r["tile"] == "1x1" else COLORS[r["solver"]]
            if np.isfinite(x0) and abs(r["cosine"] - x0) > 1e-3:
                ax2.annotate("", xy=(r["cosine"], y), xytext=(x0, y), arrowprops=dict(arrowstyle="->", color=col))
                ax2.plot(x0, y, "o", ms=3, color=col)
            else:
                ax2.plot(r["cosine"], y, "s", ms=4, color=col)
        ax2.set_yticks(range(len(extra)))
        ax2.set_yticklabels([f"{r['phase']}: {r['tile']} s={r['sparsity']:.2f} {r['metric']} {_label(r)}"
                             for r in extra], fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlim(0, 1)
        ax2.grid(alpha=0.3)
        ax2.set_xlabel("held-out mean cosine (arrow: from one-shot per-layer budget)")
        ax2.set_title("sensitivity allocation, residual stream, distillation", fontsize=10)
    fig.suptitle("all-MiniLM-L6-v2, every encoder Linear tile-pruned", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "minilm.png", dpi=90)
    plt.close(fig)
