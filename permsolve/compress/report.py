"""The comparison's outputs: ``table.csv``, ``table.md`` and the accuracy-against-parameters plot.

:func:`write_table` and :func:`plot` take the rows of
:func:`permsolve.compress.compare.compare` (one dict per model, method and budget).

Examples
--------
>>> import tempfile
>>> row = {"model": "m", "method": "x", "budget_removed": 0.5, "params_kept": 0.5, "flops_kept": 0.5,
...        "acc_before": 0.9, "acc_compressed": 0.8, "acc_finetuned": 0.85, "seconds": 1.0}
>>> [p.name for p in write_table([row], tempfile.mkdtemp())]
['table.csv', 'table.md']
"""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["COLUMNS", "write_table", "plot"]

#: the main columns, first in ``table.csv``
COLUMNS = ["model", "method", "budget_removed", "params_kept", "flops_kept", "acc_before", "acc_compressed",
           "acc_finetuned", "seconds"]


def write_table(rows: list[dict], out_dir: Path, *, meta: dict | None = None) -> tuple[Path, Path]:
    """Write ``table.csv`` (every column) and ``table.md`` (the main columns) under ``out_dir``.

    Parameters
    ----------
    rows : the rows of :func:`permsolve.compress.compare.compare`
    out_dir : folder (created if missing)
    meta : settings, written as the first line of ``table.md``

    Returns
    -------
    (Path, Path)
        the CSV and the Markdown file.

    Examples
    --------
    >>> import tempfile
    >>> row = {"model": "m", "method": "x", "budget_removed": 0.5, "params_kept": 0.5, "flops_kept": 0.5,
    ...        "acc_before": 0.9, "acc_compressed": 0.8, "acc_finetuned": 0.85, "seconds": 1.0}
    >>> csv_path, md_path = write_table([row], tempfile.mkdtemp())
    >>> "| x | 50% |" in md_path.read_text()
    True"""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS))
    csv_path = out_dir / "table.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})
    md = []
    if meta:
        md.append("Settings: " + ", ".join(f"{k} = {v}" for k, v in meta.items()) + "\n")
    for name in dict.fromkeys(r["model"] for r in rows):
        sub = [r for r in rows if r["model"] == name]
        md.append(f"### {name} (test accuracy before compression {sub[0]['acc_before']:.4f})\n")
        md.append("| method | target removed | params kept | MACs kept | acc. compressed | acc. fine-tuned |")
        md.append("|---|---:|---:|---:|---:|---:|")
        for r in sorted(sub, key=lambda r: (r["budget_removed"], r["method"])):
            md.append(f"| {r['method']} | {100 * r['budget_removed']:.0f}% | {100 * r['params_kept']:.1f}% | "
                      f"{100 * r['flops_kept']:.1f}% | {r['acc_compressed']:.4f} | {r['acc_finetuned']:.4f} |")
        md.append("")
    md_path = out_dir / "table.md"
    md_path.write_text("\n".join(md))
    return csv_path, md_path


def plot(rows: list[dict], path: Path) -> Path:
    """Plot accuracy against parameters kept, one line per method, one column per model.

    Top row: after fine-tuning; bottom row: right after compression.

    Parameters
    ----------
    rows : the rows of :func:`permsolve.compress.compare.compare`
    path : image file to write (its folder is created if missing)

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> row = {"model": "m", "method": "x", "budget_removed": 0.5, "params_kept": 0.5, "flops_kept": 0.5,
    ...        "acc_before": 0.9, "acc_compressed": 0.8, "acc_finetuned": 0.85, "seconds": 1.0}
    >>> plot([row], pathlib.Path(tempfile.mkdtemp()) / "p.png").exists()
    True"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 7.5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for j, name in enumerate(models):
        for i, key in enumerate(("acc_finetuned", "acc_compressed")):
            ax = axes[i][j]
            for k, meth in enumerate(methods):
                pts = sorted((r["params_kept"], r[key]) for r in rows if r["model"] == name and r["method"] == meth)
                if pts:
                    ax.plot([100 * p for p, _ in pts], [100 * a for _, a in pts], marker="o", ms=4,
                            color=cmap(k % 10), label=meth, ls="--" if meth == "svd" else "-")
            base = [r["acc_before"] for r in rows if r["model"] == name][0]
            ax.axhline(100 * base, color="gray", lw=0.8, ls=":")
            ax.set_title(f"{name}: {'after fine-tune' if i == 0 else 'right after compression'}", fontsize=10)
            ax.set_xlabel("parameters kept (%)")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            if i == 0:
                lo = min(100 * r["acc_finetuned"] for r in rows if r["model"] == name)
                ax.set_ylim(max(0, min(lo - 2, 100 * base - 5)), 100.5)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
