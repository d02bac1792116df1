"""The compression pipelines on the digits model zoo, and their comparison.

:func:`run_srinit`, :func:`run_trp` and :func:`run_tile` each take a zoo model
name, compress the trained model one way, fine-tune it with the same short
schedule (SGD, lr 0.01, momentum 0.9, cosine; SR-init's recipe) and return a
:class:`CompressResult`: parameters and MACs before/after, accuracy before,
right after compression and after fine-tuning.

Splits: fine-tuning and TRP training use ``train``; SR-init sensitivities are
measured on ``val``; every reported accuracy is on ``test`` (so the data that
chose what to remove never scores the result).

:func:`compare` runs every method at matched parameter budgets (fractions of
the parameters removed) and writes a Markdown table, a CSV and a plot.
"""
from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from permsolve.registry import get_solver

from . import srinit, trp
from ._train import accuracy, finetune
from .flops import count, count_params, weight_layers

__all__ = ["CompressResult", "FinetuneConfig", "run_srinit", "run_trp", "run_tile", "compare",
           "tile_sparsity_for", "METHODS"]

METHODS = ("srinit", "trp", "tile")


@dataclass
class FinetuneConfig:
    """The short fine-tune every method gets (SR-init's recipe: SGD, momentum, cosine)."""

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    seed: int = 0


@dataclass
class CompressResult:
    """Outcome of one compression run (accuracies are fractions on ``split``)."""

    method: str
    model: str
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    acc_before: float
    acc_compressed: float
    acc_finetuned: float
    split: str = "test"
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def params_kept(self) -> float:
        return self.params_after / self.params_before

    def to_json(self) -> dict:
        d = asdict(self)
        d["params_kept"] = self.params_kept
        return d

    def summary(self) -> str:
        return "\n".join([
            f"method      {self.method} on {self.model}",
            f"params      {self.params_before} -> {self.params_after} ({100 * self.params_kept:.1f}% kept)",
            f"MACs        {self.flops_before} -> {self.flops_after} "
            f"({100 * self.flops_after / max(self.flops_before, 1):.1f}% kept)",
            f"accuracy    before {self.acc_before:.4f}  compressed {self.acc_compressed:.4f}  "
            f"fine-tuned {self.acc_finetuned:.4f}  ({self.split} split)",
            f"time        {self.seconds:.1f} s",
        ])


def _data(split):
    from permsolve import zoo
    return zoo.digits(split)


def _example():
    return _data("val")[0][:2]


def _ft(model: nn.Module, ft: FinetuneConfig) -> nn.Module:
    X, y = _data("train")
    return finetune(model, X, y, epochs=ft.epochs, lr=ft.lr, momentum=ft.momentum,
                    weight_decay=ft.weight_decay, batch_size=ft.batch_size, seed=ft.seed)


def _acc(model, split):
    X, y = _data(split)
    return accuracy(model, X, y)


def _load(name: str) -> nn.Module:
    from permsolve import zoo
    return zoo.load(name)


def _check_splits(sens_split: str, report_split: str) -> None:
    if sens_split == report_split:
        raise ValueError(f"the sensitivity split and the reporting split must differ (both {sens_split!r})")


# ----------------------------------------------------------------------------------------------- SR-init

def sensitivities(model: nn.Module, *, seeds=(0, 1, 2, 3, 4), split: str = "val") -> srinit.Sensitivity:
    """SR-init sensitivities of ``model`` on a digits split: per block, or per layer without blocks.

    Examples
    --------
    >>> from permsolve import zoo
    >>> s = sensitivities(zoo.load("mlp"), seeds=(0,))
    >>> sorted(s.drops), s.split
    (['fc1', 'fc2', 'fc3'], 'val')"""
    X, y = _data(split)
    ev = (lambda m: accuracy(m, X, y))
    if srinit.residual_blocks(model):
        return srinit.block_sensitivity(model, ev, seeds=seeds, split=split)
    return srinit.layer_sensitivity(model, ev, seeds=seeds, split=split)


def run_srinit(name: str, *, threshold: float | None = 0.05, remove_fraction: float | None = None,
               seeds=(0, 1, 2, 3, 4), sens_split: str = "val", report_split: str = "test",
               ft: FinetuneConfig | None = None, sensitivity: srinit.Sensitivity | None = None,
               model: nn.Module | None = None) -> CompressResult:
    """SR-init on zoo model ``name``: block sensitivities, removal, fine-tune.

    Parameters
    ----------
    threshold : remove every removable block whose mean validation drop is ``<=`` it
    remove_fraction : instead, remove the least sensitive blocks until this
        fraction of the parameters is gone (overrides ``threshold``)
    seeds : re-initialisation seeds; the drop is their mean
    sensitivity : precomputed sensitivities (skips the measurement)

    Examples
    --------
    >>> r = run_srinit("resnet", seeds=(0,), ft=FinetuneConfig(epochs=0))  # doctest: +SKIP
    >>> r.params_after < r.params_before  # doctest: +SKIP
    True
    """
    _check_splits(sens_split, report_split)
    t0 = time.perf_counter()
    ft = ft or FinetuneConfig()
    model = _load(name) if model is None else model
    blocks = srinit.residual_blocks(model)
    if not blocks:
        raise ValueError(f"model {name!r} has no residual blocks; SR-init removes residual blocks")
    ex = _example()
    before = count(model, ex)
    acc_before = _acc(model, report_split)
    sens = sensitivity or srinit.block_sensitivity(
        model, (lambda m, d=_data(sens_split): accuracy(m, *d)), seeds=seeds, split=sens_split)
    if remove_fraction is not None:
        removed = srinit.select_blocks(model, sens, remove_fraction=remove_fraction)
    else:
        removed = srinit.select_blocks(model, sens, threshold=threshold)
    small = srinit.remove_blocks(model, removed)
    after = count(small, ex)
    acc_c = _acc(small, report_split)
    _ft(small, ft)
    acc_f = _acc(small, report_split)
    return CompressResult("srinit", name, before.params, after.params, before.flops, after.flops,
                          acc_before, acc_c, acc_f, report_split, time.perf_counter() - t0,
                          {"removed": removed, "threshold": threshold, "remove_fraction": remove_fraction,
                           "seeds": list(seeds), "sensitivity": sens.to_json(),
                           "blocks": [asdict(b) for b in blocks], "finetune": asdict(ft)})


# ----------------------------------------------------------------------------------------------- TRP

def run_trp(name: str, *, config: trp.TRPConfig | None = None, remove_fraction: float | None = None,
            baseline: bool = True, report_split: str = "test", ft: FinetuneConfig | None = None,
            seed: int = 0, model: nn.Module | None = None) -> CompressResult:
    """TRP on zoo model ``name``: trained low rank from the trained model, decomposition, fine-tune.

    With ``remove_fraction`` the ranks are fixed up front (:func:`trp.ranks_for_budget`
    on the trained weights) and the projection keeps exactly them; otherwise
    the paper's energy rule and decomposition threshold decide.  With
    ``baseline`` the trained model is also truncated (plain SVD, no training)
    at the same ranks, decomposed and fine-tuned the same way; its figures
    are in ``details["svd_baseline"]``.  A model without selectable convs
    (the MLP), or whose convs alone cannot meet ``remove_fraction``, gets its
    Linear layers selected too (``details["config"]["include_linear"]``).

    Examples
    --------
    >>> r = run_trp("mlp", config=trp.TRPConfig(epochs=1), ft=FinetuneConfig(epochs=0))
    >>> r.params_after < r.params_before and "svd_baseline" in r.details
    True
    """
    t0 = time.perf_counter()
    cfg = copy.deepcopy(config) if config is not None else trp.TRPConfig()
    ft = ft or FinetuneConfig()
    model = _load(name) if model is None else model
    ex = _example()
    before = count(model, ex)
    acc_before = _acc(model, report_split)
    layers = trp.select_layers(model, include_linear=cfg.include_linear)
    if not layers:
        cfg.include_linear = True
        layers = trp.select_layers(model, include_linear=True)
    if not layers:
        raise ValueError(f"model {name!r} has no layer TRP can decompose")
    if remove_fraction is not None:
        cfg.ranks = trp.ranks_for_budget(model, layers, remove_fraction)
        target = (1 - remove_fraction) * before.params
        if trp.decomposed_params(model, cfg.ranks) > target and not cfg.include_linear:
            # the convs alone cannot meet the budget (e.g. a large Linear head): add the Linear layers
            cfg.include_linear = True
            layers = trp.select_layers(model, include_linear=True)
            cfg.ranks = trp.ranks_for_budget(model, layers, remove_fraction)
    trained = copy.deepcopy(model)
    X, y = _data("train")
    log = trp.train(trained, X, y, cfg, layers=layers, seed=seed)
    ranks = dict(cfg.ranks) if cfg.ranks is not None else None
    small, ranks = trp.decompose(trained, ranks, layers=layers, threshold=cfg.threshold)
    after = count(small, ex)
    acc_c = _acc(small, report_split)
    _ft(small, ft)
    acc_f = _acc(small, report_split)
    details = {"ranks": ranks, "layers": layers, "config": {k: v for k, v in asdict(cfg).items() if k != "ranks"},
               "fixed_ranks": cfg.ranks is not None, "train_losses": log.losses,
               "projections": log.projections, "finetune": asdict(ft)}
    if baseline:
        base, _ = trp.decompose(trp.truncate(model, ranks), ranks)
        b_c = _acc(base, report_split)
        _ft(base, ft)
        details["svd_baseline"] = {"params_after": count_params(base)[0], "acc_compressed": b_c,
                                   "acc_finetuned": _acc(base, report_split)}
    return CompressResult("trp", name, before.params, after.params, before.flops, after.flops,
                          acc_before, acc_c, acc_f, report_split, time.perf_counter() - t0, details)


# ----------------------------------------------------------------------------------------------- tile

def _prunable(model: nn.Module) -> dict:
    from permsolve.torch.prune import prunable_layers
    return prunable_layers(model)


def tile_sparsity_for(model: nn.Module, remove_fraction: float, *, tile=(16, 1), metric: str = "l1",
                      budget: str = "global") -> float:
    """Tile sparsity whose masks zero about ``remove_fraction`` of all the model's parameters.

    Found by bisection on the masks of the unpermuted model (cheap; a
    permutation changes which tiles go, hardly how many weights).

    Examples
    --------
    >>> from permsolve import zoo
    >>> s = tile_sparsity_for(zoo.load("mlp"), 0.5)
    >>> 0.45 < s < 0.55
    True
    """
    from permsolve.torch.prune import tile_masks
    from permsolve.problem import parse_tile

    h, w = parse_tile(tile)
    total = count_params(model)[0]
    layers = _prunable(model)
    target = remove_fraction * total

    def zeros(s):
        masks = tile_masks(model, tile=(h, w), sparsity=s, metric=metric, budget=budget, layers=layers)
        z = 0
        for n, keep in masks.items():
            m, k = layers[n].weight.shape[0], layers[n].weight[0].numel()
            elem = keep.repeat(h, 0).repeat(w, 1)[:m, :k]
            z += int((~elem).sum())
        return z

    lo, hi = 0.0, 1.0
    if zeros(hi) < target:
        return 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if zeros(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


sensitivity_allocation = srinit.sensitivity_allocation


def run_tile(name: str, *, sparsity: float | None = None, remove_fraction: float | None = 0.5,
             solver: str = "greedy", tile=(16, 1), metric: str = "l1", budget: str = "global",
             time_limit: float | None = None, seed: int = 0, report_split: str = "test",
             sens: srinit.Sensitivity | None = None, sens_seeds=(0, 1, 2),
             ft: FinetuneConfig | None = None, model: nn.Module | None = None) -> CompressResult:
    """Tile pruning of zoo model ``name`` (after a permutation by ``solver``; ``identity`` = none).

    ``sparsity`` is the fraction of tiles pruned; without it, ``remove_fraction``
    of all parameters is matched (:func:`tile_sparsity_for`).  ``budget`` is
    ``global`` (TileTrans), ``layer``, or ``sensitivity`` (SR-init allocation:
    per-layer weight sparsities from the validation sensitivities).
    Parameters and MACs after pruning count the non-zero weights only.

    Examples
    --------
    >>> r = run_tile("mlp", remove_fraction=0.3, solver="identity", ft=FinetuneConfig(epochs=0))
    >>> round(r.params_kept, 2)
    0.7
    """
    from permsolve.torch.prune import prune_model

    t0 = time.perf_counter()
    ft = ft or FinetuneConfig()
    model = _load(name) if model is None else model
    ex = _example()
    before = count(model, ex)
    acc_before = _acc(model, report_split)
    layers = _prunable(model)
    layer_sparsity = None
    prune_budget = budget
    if budget == "sensitivity":
        total = count_params(model)[0]
        weights = sum(l.weight.numel() for l in layers.values())
        frac = sparsity if sparsity is not None else min(0.95, remove_fraction * total / weights)
        layer_sparsity = sensitivity_allocation(model, frac, sens=sens, seeds=sens_seeds)
        prune_budget, s = "layer", frac
    else:
        s = sparsity if sparsity is not None else tile_sparsity_for(model, remove_fraction, tile=tile,
                                                                    metric=metric, budget=budget)
    pruned = copy.deepcopy(model)
    rep = prune_model(pruned, ex, tile=tile, sparsity=s, solver=solver, metric=metric, budget=prune_budget,
                      time_limit=time_limit, seed=seed, layer_sparsity=layer_sparsity)
    after = count(pruned, ex, nonzero=True)
    acc_c = _acc(pruned, report_split)
    _ft(pruned, ft)
    acc_f = _acc(pruned, report_split)
    details = {"solver": solver, "tile": list(tile), "budget": budget, "sparsity": s,
               "weight_sparsity": rep.weight_sparsity, "retained_fraction": rep.retained_fraction,
               "layer_sparsity": layer_sparsity, "finetune": asdict(ft)}
    if rep.permute is not None:
        details["retained_before_permutation"] = rep.permute.retained_before
        details["retained_after_permutation"] = rep.permute.retained_after
    return CompressResult("tile", name, before.params, after.params, before.flops, after.flops,
                          acc_before, acc_c, acc_f, report_split, time.perf_counter() - t0, details)


# ----------------------------------------------------------------------------------------------- comparison

#: which methods run on which zoo model (SR-init needs residual blocks)
def methods_for(name: str, model: nn.Module, best_solver: str) -> list[str]:
    """Method labels that apply to zoo model ``name``.

    Examples
    --------
    >>> from permsolve import zoo
    >>> methods_for("resnet", zoo.build("resnet"), "anneal")[-3:]
    ['srinit', 'trp', 'svd']"""
    out = ["tile-identity", "tile-greedy", f"tile-{best_solver}", f"tile-{best_solver}+uniform",
           f"tile-{best_solver}+sensitivity"]
    if srinit.residual_blocks(model):
        out.append("srinit")
    out += ["trp", "svd"]
    return out


def _row(model: str, label: str, budget: float, res: CompressResult, **extra) -> dict:
    return {"model": model, "method": label, "budget_removed": budget,
            "params_kept": res.params_after / res.params_before,
            "flops_kept": res.flops_after / max(res.flops_before, 1),
            "params_after": res.params_after, "params_before": res.params_before,
            "acc_before": res.acc_before, "acc_compressed": res.acc_compressed,
            "acc_finetuned": res.acc_finetuned, "seconds": round(res.seconds, 1), **extra}


def compare(models=None, *, budgets=(0.3, 0.5, 0.7), quick: bool = False, best_solver: str = "anneal",
            time_limit: float | None = 1.0, tile=(16, 1), seeds=None, ft: FinetuneConfig | None = None,
            trp_config: trp.TRPConfig | None = None, methods=None, log=print) -> list[dict]:
    """Every method on every zoo model at matched parameter budgets; one row per (model, method, budget).

    ``budgets`` are fractions of all parameters removed.  Tile pruning with
    solver identity / greedy / ``best_solver`` (TileTrans's global budget,
    ``tile``), ``best_solver`` with the same sparsity in every layer
    ("+uniform") and with the SR-init sensitivity allocation ("+sensitivity"), SR-init (models
    with residual blocks), TRP with ranks fixed by the budget, and the plain
    truncated SVD at TRP's ranks ("svd").  All get the same fine-tune.

    Examples
    --------
    >>> rows = compare(["mlp"], budgets=(0.5,), quick=True, methods=["tile-identity"], log=lambda *a: None)
    >>> [(r["method"], r["budget_removed"]) for r in rows]
    [('tile-identity', 0.5)]
    """
    from permsolve import zoo

    models = list(models or zoo.names())
    ft = ft or FinetuneConfig(epochs=3 if quick else 10)
    seeds = tuple(seeds if seeds is not None else (range(2) if quick else range(5)))
    tcfg = trp_config or trp.TRPConfig(epochs=6 if quick else 20)
    rows = []
    for name in models:
        model = _load(name)
        labels = methods_for(name, model, best_solver)
        if methods is not None:
            labels = [l for l in labels if l in methods or l.split("+")[0] in methods]
        t0 = time.perf_counter()
        sens = sensitivities(model, seeds=seeds, split="val")
        log(f"[{name}] sensitivities on val ({len(seeds)} seeds) in {time.perf_counter() - t0:.1f} s")
        for b in budgets:
            for label in labels:
                if label == "svd":
                    continue                                   # produced by the trp run
                t1 = time.perf_counter()
                if label == "srinit":
                    res = run_srinit(name, remove_fraction=b, sensitivity=sens, ft=ft, model=_load(name))
                    rows.append(_row(name, label, b, res, removed=" ".join(res.details["removed"])))
                elif label == "trp":
                    res = run_trp(name, config=tcfg, remove_fraction=b, ft=ft, model=_load(name))
                    rows.append(_row(name, "trp", b, res))
                    if "svd" in labels:
                        base = res.details["svd_baseline"]
                        rows.append({**rows[-1], "method": "svd", "acc_compressed": base["acc_compressed"],
                                     "acc_finetuned": base["acc_finetuned"], "params_after": base["params_after"],
                                     "params_kept": base["params_after"] / res.params_before})
                else:
                    solver, _, alloc = label[len("tile-"):].partition("+")
                    res = run_tile(name, remove_fraction=b, solver=solver, tile=tile,
                                   budget={"": "global", "uniform": "layer", "sensitivity": "sensitivity"}[alloc],
                                   sens=sens,
                                   time_limit=time_limit if get_solver(solver).anytime else None,
                                   ft=ft, model=_load(name))
                    rows.append(_row(name, label, b, res))
                for r in rows[-2:] if label == "trp" and "svd" in labels else rows[-1:]:
                    log(f"[{name}] {r['method']:<28} budget {b:.2f}: kept {r['params_kept']:.3f}  "
                        f"acc {r['acc_before']:.4f} -> {r['acc_compressed']:.4f} -> {r['acc_finetuned']:.4f}  "
                        f"({time.perf_counter() - t1:.1f} s)")
    return rows


COLUMNS = ["model", "method", "budget_removed", "params_kept", "flops_kept", "acc_before", "acc_compressed",
           "acc_finetuned", "seconds"]


def write_table(rows: list[dict], out_dir: Path, *, meta: dict | None = None) -> tuple[Path, Path]:
    """Write ``table.csv`` (every column) and ``table.md`` (the main columns) under ``out_dir``.

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
    """Accuracy against parameters kept, one line per method, one column per model
    (top: after fine-tuning; bottom: right after compression).

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
