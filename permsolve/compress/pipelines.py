"""The three compression pipelines on the digits model zoo: SR-init, TRP and tile pruning.

:func:`run_srinit`, :func:`run_trp` and :func:`run_tile` each take a zoo model
name, compress the trained model one way, fine-tune it with the same short
schedule (SGD, lr 0.01, momentum 0.9, cosine; SR-init's recipe) and return a
:class:`CompressResult`: parameters and MACs before/after, accuracy before,
right after compression and after fine-tuning.

Splits: fine-tuning and TRP training use ``train``; SR-init sensitivities are
measured on ``val``; every reported accuracy is on ``test`` (so the data that
chose what to remove never scores the result).

The comparison of the three at matched budgets (``permsolve compare``) is
:func:`permsolve.compress.compare.compare`; its table and plot are in
:mod:`permsolve.compress.report`.

Examples
--------
>>> r = run_tile("mlp", remove_fraction=0.3, solver="identity", ft=FinetuneConfig(epochs=0))
>>> r.method, round(r.params_kept, 2)
('tile', 0.7)
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

from torch import nn

from . import srinit, trp
from ._train import accuracy, finetune
from .flops import count, count_params

__all__ = ["CompressResult", "FinetuneConfig", "run_srinit", "run_trp", "run_tile", "sensitivities",
           "tile_sparsity_for", "sensitivity_allocation", "METHODS"]

#: the three pipelines
METHODS = ("srinit", "trp", "tile")


@dataclass
class FinetuneConfig:
    """The short fine-tune every method gets (SR-init's recipe: SGD, momentum, cosine).

    Attributes
    ----------
    epochs : passes over the ``train`` split (0: no fine-tune)
    lr : SGD learning rate (cosine-annealed to 0)
    momentum : SGD momentum
    weight_decay : SGD weight decay
    batch_size : mini-batch size
    seed : seed of the batch order

    Examples
    --------
    >>> FinetuneConfig(epochs=3).lr
    0.01
    """

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    seed: int = 0


@dataclass
class CompressResult:
    """Outcome of one compression run (accuracies are fractions on ``split``).

    Attributes
    ----------
    method : ``srinit``, ``trp`` or ``tile``
    model : zoo model name
    params_before, params_after : parameter counts (tile pruning: non-zero weights after)
    flops_before, flops_after : multiply-accumulates for one image
    acc_before, acc_compressed, acc_finetuned : accuracy of the trained model, right after
        compression and after the fine-tune
    split : the split the accuracies are measured on
    seconds : wall time of the whole pipeline
    details : method-specific figures (removed blocks, ranks, sparsities, ...)

    Examples
    --------
    >>> r = CompressResult("tile", "mlp", 100, 40, 100, 40, 0.9, 0.8, 0.85)
    >>> r.params_kept, r.to_json()["params_kept"]
    (0.4, 0.4)
    """

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
        """Fraction of the parameters kept, ``params_after / params_before``.

        Examples
        --------
        >>> CompressResult("trp", "mlp", 10, 5, 10, 5, 0.9, 0.5, 0.8).params_kept
        0.5
        """
        return self.params_after / self.params_before

    def to_json(self) -> dict:
        """Every field as a JSON-ready dict, plus ``params_kept``.

        Returns
        -------
        dict

        Examples
        --------
        >>> sorted(CompressResult("trp", "mlp", 10, 5, 10, 5, 0.9, 0.5, 0.8).to_json())[:3]
        ['acc_before', 'acc_compressed', 'acc_finetuned']
        """
        d = asdict(self)
        d["params_kept"] = self.params_kept
        return d

    def summary(self) -> str:
        """Human-readable lines: parameters, MACs, accuracies and time (``permsolve compress``'s output).

        Returns
        -------
        str

        Examples
        --------
        >>> print(CompressResult("trp", "mlp", 10, 5, 10, 5, 0.9, 0.5, 0.8).summary().splitlines()[1])
        params      10 -> 5 (50.0% kept)
        """
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

    Parameters
    ----------
    model : a zoo model (not changed: every re-initialisation is on a copy)
    seeds : re-initialisation seeds; the drop is their mean
    split : digits split the accuracy drops are measured on

    Returns
    -------
    permsolve.compress.srinit.Sensitivity

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
    name : zoo model name (it must have residual blocks)
    threshold : remove every removable block whose mean validation drop is ``<=`` it
    remove_fraction : instead, remove the least sensitive blocks until this
        fraction of the parameters is gone (overrides ``threshold``)
    seeds : re-initialisation seeds; the drop is their mean
    sensitivity : precomputed sensitivities (skips the measurement)
    sens_split, report_split : splits of the sensitivities and of the reported accuracies (must differ)
    ft : the fine-tune (default :class:`FinetuneConfig`)
    model : the trained model (default: ``zoo.load(name)``); changed in place

    Returns
    -------
    CompressResult
        ``details``: removed blocks, sensitivities, the blocks, the fine-tune.

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

    Parameters
    ----------
    name : zoo model name
    config : TRP's hyper-parameters (default :class:`~permsolve.compress.trp.TRPConfig`; copied)
    remove_fraction : fraction of the parameters to remove (fixes the ranks)
    baseline : also fine-tune the plain truncated SVD at the same ranks
    report_split : split of the reported accuracies
    ft : the fine-tune (default :class:`FinetuneConfig`)
    seed : seed of TRP's training
    model : the trained model (default: ``zoo.load(name)``)

    Returns
    -------
    CompressResult
        ``details``: ranks, layers, the configuration, training losses, the SVD baseline.

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

    Parameters
    ----------
    model : the model (not changed)
    remove_fraction : fraction of all its parameters to zero
    tile, metric, budget : as in :func:`permsolve.torch.prune.tile_masks`

    Returns
    -------
    float
        the tile sparsity (1.0 when even that removes too little).

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

    Parameters
    ----------
    name : zoo model name
    sparsity, remove_fraction : fraction of tiles pruned, or of all parameters to match
    solver : registered permutation solver (``identity``: plain tile pruning)
    tile, metric, budget : tile shape, importance metric, sparsity budget
    time_limit, seed : passed to the solver
    report_split : split of the reported accuracies
    sens, sens_seeds : precomputed sensitivities, or the seeds to measure them (``budget="sensitivity"``)
    ft : the fine-tune (default :class:`FinetuneConfig`)
    model : the trained model (default: ``zoo.load(name)``)

    Returns
    -------
    CompressResult
        ``details``: solver, tile, sparsities, retained importance before and after the permutation.

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


