"""The comparison behind ``permsolve compare``: every pipeline at matched parameter budgets.

:func:`compare` runs tile pruning (several solvers and allocations), SR-init
and TRP with its SVD baseline on the zoo models at matched budgets (fractions
of the parameters removed), one row per (model, method, budget).

The pipelines themselves are in :mod:`permsolve.compress.pipelines`, the table
and the plot in :mod:`permsolve.compress.report`; both are re-exported here, so
``from permsolve.compress import compare as C; C.run_tile(...)`` keeps working.

Examples
--------
>>> rows = compare(["mlp"], budgets=(0.5,), quick=True, methods=["tile-identity"], log=lambda *a: None)
>>> rows[0]["method"], rows[0]["params_kept"] < 0.55
('tile-identity', True)
"""
from __future__ import annotations

import time

from torch import nn

from permsolve.registry import get_solver

from . import srinit, trp
from .pipelines import (METHODS, CompressResult, FinetuneConfig, _load, run_srinit, run_tile, run_trp,
                        sensitivities, sensitivity_allocation, tile_sparsity_for)
from .report import COLUMNS, plot, write_table

__all__ = ["CompressResult", "FinetuneConfig", "run_srinit", "run_trp", "run_tile", "compare",
           "tile_sparsity_for", "METHODS", "methods_for", "sensitivities", "sensitivity_allocation",
           "write_table", "plot", "COLUMNS"]


#: which methods run on which zoo model (SR-init needs residual blocks)
def methods_for(name: str, model: nn.Module, best_solver: str) -> list[str]:
    """Method labels that apply to zoo model ``name``.

    Parameters
    ----------
    name : zoo model name
    model : the model (SR-init applies only when it has residual blocks)
    best_solver : the permutation solver of the ``tile-BEST`` labels

    Returns
    -------
    list of str

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

    Parameters
    ----------
    models : zoo model names (default: all)
    budgets : fractions of all parameters removed
    quick : short schedules (3 fine-tune epochs, 2 sensitivity seeds, 6 TRP epochs)
    best_solver, time_limit : the ``tile-BEST`` solver and its time limit per permutation group
    tile : tile shape
    seeds, ft, trp_config : override the sensitivity seeds, the fine-tune, TRP's configuration
    methods : keep only these labels (see :func:`methods_for`; ``tile-BEST`` also keeps its variants)
    log : called with one progress line per run

    Returns
    -------
    list of dict
        one row per (model, method, budget): parameters and MACs kept, the three accuracies, seconds.

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


