"""SR-init layer pruning (Tang, Lu, Xuan 2023; code huitang-zjut/SR-init).

For each residual block in turn, the block's whole state (conv weights,
BatchNorm affine parameters and running statistics) is replaced by a seeded
random initialisation (PyTorch's default ``reset_parameters``), and the drop
of validation accuracy is measured; the trained state is put back before the
next block.  Blocks whose drop is small contribute little: they are removed
(replaced by the identity, i.e. only the shortcut is kept), the first block of
each stage is always kept (it changes the shape), and the smaller network is
fine-tuned (SGD, lr 0.01, momentum 0.9, cosine schedule).

Two departures from the authors' code, both on purpose: the drop is measured
on a validation split, never on the split used to report accuracy, and it is
averaged over several re-initialisation seeds (mean and spread reported).

The same sensitivities drive :func:`allocate_sparsity`, a per-layer sparsity
allocation for tile pruning (less sensitive layers pruned more).

A residual block is recognised structurally: a module with a ``downsample``
or ``shortcut`` attribute (``None``, ``nn.Identity`` or a module) and at least
one Conv2d of its own, whose forward is ``relu(body(x) + shortcut(x))``; a
module may also declare itself with ``is_residual_block = True``.

Examples
--------
>>> import torch
>>> from permsolve.compress import srinit
>>> from permsolve.zoo.models import ResNet
>>> net = ResNet(blocks=(2, 2), widths=(4, 8)).eval()
>>> [(b.name, b.removable) for b in srinit.residual_blocks(net)]
[('layer1.0', False), ('layer1.1', True), ('layer2.0', False), ('layer2.1', True)]
>>> small = srinit.remove_blocks(net, ['layer1.1', 'layer2.1'])
>>> small(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .flops import count_params, weight_layers

__all__ = ["Block", "Sensitivity", "residual_blocks", "reinit_", "block_sensitivity",
           "layer_sensitivity", "remove_blocks", "select_blocks", "allocate_sparsity",
           "layer_scores", "sensitivity_allocation", "digits_evaluator"]


@dataclass
class Block:
    """One residual block of a model, as :func:`residual_blocks` finds it.

    Attributes
    ----------
    name : str
        Qualified module name (``"layer1.1"``).
    stage : str
        Name of the parent module (the stage).
    index : int
        Position in the stage.
    removable : bool
        Not the first of its stage and an identity shortcut: removing it keeps the shapes.
    params : int
        Parameters of the block.

    Examples
    --------
    >>> from permsolve.zoo.models import ResNet
    >>> residual_blocks(ResNet(blocks=(2,), widths=(4,)))[1]
    Block(name='layer1.1', stage='layer1', index=1, removable=True, params=304)
    """

    name: str
    stage: str
    index: int
    removable: bool
    params: int


def _is_block(mod: nn.Module) -> bool:
    if getattr(mod, "is_residual_block", False):
        return True
    if not (hasattr(mod, "downsample") or hasattr(mod, "shortcut")):
        return False
    return any(isinstance(c, nn.Conv2d) for c in mod.children())


def _has_identity_shortcut(mod: nn.Module) -> bool:
    sc = getattr(mod, "downsample", None) if hasattr(mod, "downsample") else getattr(mod, "shortcut", None)
    if sc is None or isinstance(sc, nn.Identity):
        return True
    return isinstance(sc, nn.Sequential) and len(sc) == 0


def residual_blocks(model: nn.Module) -> list[Block]:
    """The residual blocks of ``model`` in module order.

    A block is ``removable`` when it is not the first block of its stage (its
    parent container) and its shortcut is the identity (so input and output
    shapes agree and removing it leaves the shortcut).

    Parameters
    ----------
    model : torch.nn.Module
        Any model; blocks nested in a block are not listed.

    Returns
    -------
    list of Block
        The blocks, in ``named_modules`` order.

    Examples
    --------
    >>> from permsolve.zoo.models import ResNet
    >>> len(residual_blocks(ResNet()))
    9
    """
    blocks = []
    seen_index: dict[str, int] = {}
    for name, mod in model.named_modules():
        if not name or not _is_block(mod):
            continue
        if any(name.startswith(b.name + ".") for b in blocks):
            continue                                  # a block nested in a block
        stage = name.rpartition(".")[0]
        idx = seen_index.get(stage, 0)
        seen_index[stage] = idx + 1
        blocks.append(Block(name, stage, idx, idx > 0 and _has_identity_shortcut(mod),
                            sum(p.numel() for p in mod.parameters())))
    return blocks


def reinit_(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise ``module`` in place with PyTorch's default init, seeded.

    Every submodule with ``reset_parameters`` is reset (conv/linear weights
    and biases; BatchNorm weight, bias and running statistics).  The global
    RNG state is left as it was.

    Parameters
    ----------
    module : torch.nn.Module
        The module to reset (all its submodules).
    seed : int
        Seed of the initialisation.

    Returns
    -------
    torch.nn.Module
        ``module`` itself.

    Examples
    --------
    >>> from torch import nn
    >>> bn = nn.BatchNorm2d(3); _ = bn.running_mean.fill_(5.0)
    >>> float(reinit_(bn, 0).running_mean.sum())
    0.0
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.reset_running_stats()
    return module


@dataclass
class Sensitivity:
    """Accuracy drops from re-initialising each unit (block or layer).

    Attributes
    ----------
    base : float
        Accuracy of the trained model on the measurement split.
    drops : dict
        Unit name -> list of drops (``base - acc``), one per seed.
    split : str
        The split the drops were measured on.

    Examples
    --------
    >>> s = Sensitivity(0.9, {"layer1.1": [0.1, 0.3], "layer1.2": [0.0]})
    >>> s.mean, s.std["layer1.2"]
    ({'layer1.1': 0.2, 'layer1.2': 0.0}, 0.0)
    >>> sorted(s.to_json())
    ['base', 'drops', 'mean', 'split', 'std']
    """

    base: float
    drops: dict = field(default_factory=dict)
    split: str = "val"

    @property
    def mean(self) -> dict:
        """Unit name -> mean drop over the seeds."""
        return {k: float(np.mean(v)) for k, v in self.drops.items()}

    @property
    def std(self) -> dict:
        """Unit name -> standard deviation of the drops (``ddof=1``; 0 for one seed)."""
        return {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in self.drops.items()}

    def table(self) -> str:
        """One line per unit: mean drop, spread (std) and min..max over seeds."""
        lines = [f"{'unit':<14} {'mean drop':>10} {'std':>8} {'min':>8} {'max':>8}"]
        for k, v in self.drops.items():
            lines.append(f"{k:<14} {np.mean(v):>10.4f} {self.std[k]:>8.4f} {min(v):>8.4f} {max(v):>8.4f}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """The sensitivities as a JSON-ready dict (with the means and spreads)."""
        return {"base": self.base, "split": self.split, "drops": self.drops,
                "mean": self.mean, "std": self.std}


def _unit_sensitivity(model: nn.Module, units: dict, evaluate: Callable[[nn.Module], float],
                      seeds: Iterable[int], split: str) -> Sensitivity:
    model.eval()
    base = float(evaluate(model))
    sens = Sensitivity(base, {}, split)
    for name, mods in units.items():
        saved = [copy.deepcopy(m.state_dict()) for m in mods]
        drops = []
        for s in seeds:
            for m in mods:
                reinit_(m, s)
            drops.append(base - float(evaluate(model)))
            for m, sd in zip(mods, saved):
                m.load_state_dict(sd)
        sens.drops[name] = drops
    model.eval()
    return sens


def block_sensitivity(model: nn.Module, evaluate: Callable[[nn.Module], float], *,
                      seeds: Iterable[int] = (0, 1, 2, 3, 4), split: str = "val",
                      blocks: list[Block] | None = None) -> Sensitivity:
    """SR-init sensitivity of every residual block of ``model``.

    ``evaluate(model) -> accuracy`` must measure on a split that is not used
    to report results (the validation split).  The model is restored after
    each block.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (left in eval mode, its state unchanged).
    evaluate : callable
        ``evaluate(model) -> accuracy``, on a split not used to report results (validation).
    seeds : iterable of int
        Re-initialisation seeds; the drop is measured once per seed.
    split : str
        Name of the measurement split, recorded in the result.
    blocks : list of Block, optional
        The blocks to measure (default: :func:`residual_blocks`).

    Returns
    -------
    Sensitivity
        The drops per block and seed.

    Examples
    --------
    >>> import torch
    >>> from permsolve.zoo.models import ResNet
    >>> net = ResNet(blocks=(2,), widths=(4,)).eval()
    >>> X = torch.randn(16, 1, 8, 8); y = torch.randint(0, 10, (16,))
    >>> acc = lambda m: float((m(X).argmax(1) == y).float().mean())
    >>> s = block_sensitivity(net, acc, seeds=(0, 1))
    >>> sorted(s.drops), len(s.drops['layer1.0'])
    (['layer1.0', 'layer1.1'], 2)
    """
    blocks = residual_blocks(model) if blocks is None else blocks
    mods = dict(model.named_modules())
    return _unit_sensitivity(model, {b.name: [mods[b.name]] for b in blocks}, evaluate, tuple(seeds), split)


def layer_sensitivity(model: nn.Module, evaluate: Callable[[nn.Module], float], *,
                      seeds: Iterable[int] = (0, 1, 2, 3, 4), split: str = "val") -> Sensitivity:
    """SR-init's measurement applied to single Conv/Linear layers (for models without blocks).

    Each Conv/Linear layer (with the BatchNorm that directly follows it in
    module order, if any) is re-initialised in turn.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (its state unchanged afterwards).
    evaluate : callable
        ``evaluate(model) -> accuracy``, on a split not used to report results (validation).
    seeds : iterable of int
        Re-initialisation seeds; the drop is measured once per seed.
    split : str
        Name of the measurement split, recorded in the result.

    Returns
    -------
    Sensitivity
        The drops per layer and seed.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> X = torch.randn(16, 4); y = torch.randint(0, 2, (16,))
    >>> sorted(layer_sensitivity(net, lambda m: float((m(X).argmax(1) == y).float().mean()), seeds=(0,)).drops)
    ['0', '2']
    """
    named = list(model.named_modules())
    units = {}
    for i, (name, mod) in enumerate(named):
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            group = [mod]
            for nxt_name, nxt in named[i + 1:]:
                if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                    group.append(nxt)
                    break
                if isinstance(nxt, (nn.Conv2d, nn.Linear)):
                    break
            units[name] = group
    return _unit_sensitivity(model, units, evaluate, tuple(seeds), split)


def remove_blocks(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Copy of ``model`` with the named residual blocks replaced by ``nn.Identity``.

    Only removable blocks (identity shortcut, not first of their stage) are
    accepted; the copy really holds fewer parameters.

    Parameters
    ----------
    model : torch.nn.Module
        The model (not modified).
    names : iterable of str
        Removable block names (see :func:`residual_blocks`).

    Returns
    -------
    torch.nn.Module
        The smaller copy.

    Raises
    ------
    ValueError
        For a name that is not a block, or a block that cannot be removed.

    Examples
    --------
    >>> from permsolve.zoo.models import ResNet
    >>> from permsolve.compress.flops import count_params
    >>> net = ResNet(blocks=(2,), widths=(4,))
    >>> count_params(net)[0] - count_params(remove_blocks(net, ['layer1.1']))[0]
    304
    """
    names = list(names)
    info = {b.name: b for b in residual_blocks(model)}
    for n in names:
        if n not in info:
            raise ValueError(f"{n!r} is not a residual block; blocks: {', '.join(info)}")
        if not info[n].removable:
            raise ValueError(f"block {n!r} cannot be removed (first of its stage or its shortcut changes the shape)")
    out = copy.deepcopy(model)
    for n in names:
        parent_name, _, attr = n.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        if isinstance(parent, nn.Sequential):
            parent[int(attr)] = nn.Identity()
        else:
            setattr(parent, attr, nn.Identity())
    return out


def select_blocks(model: nn.Module, sens: Sensitivity, *, threshold: float | None = None,
                  remove_fraction: float | None = None) -> list[str]:
    """Blocks to remove: by a drop ``threshold`` or by a parameter budget.

    With ``threshold``, every removable block whose mean drop is ``<=
    threshold`` goes.  With ``remove_fraction`` (of all the model's
    parameters) the threshold is set by the budget: removable blocks are taken
    in increasing order of mean drop until the removed parameters reach the
    fraction (or no removable block is left).

    Parameters
    ----------
    model : torch.nn.Module
        The model the sensitivities were measured on.
    sens : Sensitivity
        Block sensitivities.
    threshold : float, optional
        Largest mean drop of a removed block.
    remove_fraction : float, optional
        Fraction of all parameters to remove (give this or ``threshold``).

    Returns
    -------
    list of str
        Block names, least sensitive first.

    Examples
    --------
    >>> from permsolve.zoo.models import ResNet
    >>> net = ResNet(blocks=(3,), widths=(4,))
    >>> s = Sensitivity(1.0, {'layer1.0': [0.5], 'layer1.1': [0.01], 'layer1.2': [0.2]})
    >>> select_blocks(net, s, threshold=0.1), select_blocks(net, s, remove_fraction=0.5)
    (['layer1.1'], ['layer1.1', 'layer1.2'])
    """
    if (threshold is None) == (remove_fraction is None):
        raise ValueError("give exactly one of threshold= and remove_fraction=")
    blocks = [b for b in residual_blocks(model) if b.removable and b.name in sens.drops]
    mean = sens.mean
    blocks.sort(key=lambda b: (mean[b.name], b.name))
    if threshold is not None:
        return [b.name for b in blocks if mean[b.name] <= threshold]
    total = count_params(model)[0]
    chosen, removed = [], 0
    for b in blocks:
        if removed >= remove_fraction * total:
            break
        chosen.append(b.name)
        removed += b.params
    return chosen


def layer_scores(model: nn.Module, sens: Sensitivity) -> dict:
    """Sensitivity of each Conv/Linear layer, from block or layer sensitivities.

    A layer inside a measured block gets that block's mean drop; a layer
    measured on its own gets its own; a layer covered by neither (stem, head,
    downsample outside a block) gets the largest measured drop, i.e. it is
    treated as the most sensitive.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    sens : Sensitivity
        Block or layer sensitivities of ``model``.

    Returns
    -------
    dict
        Layer name -> score (mean accuracy drop), for every Conv/Linear layer.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    >>> layer_scores(net, Sensitivity(1.0, {'0': [0.3]}))
    {'0': 0.3, '1': 0.3}
    """
    mean = sens.mean
    top = max(mean.values()) if mean else 0.0
    out = {}
    for name, _ in weight_layers(model):
        score = None
        if name in mean:
            score = mean[name]
        else:
            for unit, v in mean.items():
                if name.startswith(unit + "."):
                    score = v
                    break
        out[name] = top if score is None else score
    return out


def allocate_sparsity(sizes: dict, scores: dict, sparsity: float, *, floor: float = 0.01,
                      power: float = 0.5, max_sparsity: float = 0.95, tol: float = 1e-9) -> dict:
    """Per-layer sparsities meeting a global weight sparsity, less sensitive layers pruned more.

    Layer ``l`` keeps a density ``d_l = clip(c * (max(score_l, 0) + floor) ** power,
    1 - max_sparsity, 1)`` of its ``sizes[l]`` weights; ``c`` is found by
    bisection so that ``sum(sizes * (1 - d)) / sum(sizes) == sparsity``.  With
    ``power = 0`` every layer gets the global sparsity (uniform allocation).

    Parameters
    ----------
    sizes : dict
        Layer name -> number of prunable weights.
    scores : dict
        Layer name -> sensitivity (accuracy drop; larger = keep more).
    sparsity : float
        Requested global fraction of weights pruned, in ``[0, max_sparsity]``.
    floor : float
        Added to every score, so an insensitive layer is not pruned entirely.
    power : float
        How strongly the density follows the score.
    max_sparsity : float
        No layer is pruned beyond this.
    tol : float
        Relative tolerance of the bisection on the kept weights.

    Returns
    -------
    dict
        Layer name -> sparsity; the size-weighted mean equals ``sparsity``
        (within ``tol``) whenever ``sparsity <= max_sparsity``.

    Examples
    --------
    >>> a = allocate_sparsity({'a': 100, 'b': 100}, {'a': 0.0, 'b': 0.5}, 0.5)
    >>> a['a'] > 0.5 > a['b'], round((a['a'] + a['b']) / 2, 6)
    (True, 0.5)
    """
    if not 0.0 <= sparsity <= max_sparsity:
        raise ValueError(f"sparsity must be in [0, {max_sparsity}], got {sparsity}")
    names = list(sizes)
    n = np.array([float(sizes[k]) for k in names])
    w = np.array([(max(float(scores[k]), 0.0) + floor) ** power for k in names])
    lo_d = 1.0 - max_sparsity
    target = (1.0 - sparsity) * n.sum()

    def kept(c):
        return float((n * np.clip(c * w, lo_d, 1.0)).sum())

    lo, hi = 0.0, 1.0 / w.min()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if kept(mid) < target:
            lo = mid
        else:
            hi = mid
        if abs(kept(hi) - target) <= tol * n.sum():
            break
    d = np.clip(hi * w, lo_d, 1.0)
    return {k: float(1.0 - di) for k, di in zip(names, d)}


def digits_evaluator(split: str = "val") -> Callable[[nn.Module], float]:
    """``evaluate(model) -> accuracy`` on a split of the zoo's digits data (default: validation).

    Parameters
    ----------
    split : {"train", "val", "test"}
        The digits split.

    Returns
    -------
    callable
        ``evaluate(model) -> float``, the fraction classified correctly.

    Examples
    --------
    >>> from permsolve import zoo
    >>> ev = digits_evaluator("val")
    >>> ev(zoo.load("mlp")) > 0.9
    True
    """
    from permsolve import zoo

    from ._train import accuracy
    X, y = zoo.digits(split)
    return lambda m: accuracy(m, X, y)


def sensitivity_allocation(model: nn.Module, sparsity: float, *, evaluate: Callable[[nn.Module], float] | None = None,
                           sens: Sensitivity | None = None, seeds: Iterable[int] = (0, 1, 2),
                           layers: Iterable[str] | None = None, **kwargs) -> dict:
    """Per-layer sparsities of the Conv/Linear layers from SR-init sensitivities.

    Sensitivities are measured per residual block (per layer for a model
    without blocks) with ``evaluate`` (default: accuracy on the digits
    validation split, for zoo models), or taken from ``sens``; then
    :func:`allocate_sparsity` spreads ``sparsity`` over the layers' weights.
    Pass the result to ``prune_model(..., budget="sensitivity", layer_sparsity=...)``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    sparsity : float
        Global fraction of the layers' weights to prune.
    evaluate : callable, optional
        ``evaluate(model) -> accuracy`` (default: :func:`digits_evaluator`).
    sens : Sensitivity, optional
        Sensitivities measured already (then nothing is evaluated).
    seeds : iterable of int
        Re-initialisation seeds of the measurement.
    layers : iterable of str, optional
        The layers to allocate over (default: every Conv/Linear layer).
    **kwargs
        Passed to :func:`allocate_sparsity` (``floor``, ``power``, ``max_sparsity``).

    Returns
    -------
    dict
        Layer name -> sparsity.

    Examples
    --------
    >>> from permsolve import zoo
    >>> m = zoo.load("mlp")
    >>> a = sensitivity_allocation(m, 0.5, seeds=(0,))
    >>> sizes = {n: l.weight.numel() for n, l in weight_layers(m)}
    >>> abs(sum(a[n] * sizes[n] for n in a) / sum(sizes.values()) - 0.5) < 0.01
    True
    """
    if sens is None:
        ev = evaluate or digits_evaluator("val")
        if residual_blocks(model):
            sens = block_sensitivity(model, ev, seeds=seeds)
        else:
            sens = layer_sensitivity(model, ev, seeds=seeds)
    mods = dict(weight_layers(model))
    names = list(mods) if layers is None else list(layers)
    sizes = {n: int(mods[n].weight.numel()) for n in names}
    scores = layer_scores(model, sens)
    return allocate_sparsity(sizes, {n: scores[n] for n in names}, sparsity, **kwargs)
