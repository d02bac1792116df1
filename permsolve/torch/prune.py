"""Tile pruning of a PyTorch model, after an optional channel permutation.

:func:`prune_model` permutes the model (:func:`~permsolve.torch.permute.permute_model`;
solver ``identity``, or any solver whose ``permutes`` is False, means plain tile
pruning), then zeroes whole tiles of every Linear and Conv weight with :class:`TilePruning`, a
``torch.nn.utils.prune.BasePruningMethod``: the mask is a buffer applied by a
forward pre-hook, so it stays in force while the model is fine-tuned, and
``torch.nn.utils.prune.remove`` makes it permanent.

Tiles are ``h x w`` blocks of the matrix view ``(out, in*kh*kw)``.  A tile
that runs past the edge of a matrix (every tile, when the tile is larger than
the matrix) is clipped to the matrix.  Inside one layer tiles are ranked by
their summed importance, as in the core problem (an edge tile counts as
zero-padded, so it ranks low); the global rule ranks tiles across layers by
their *mean* importance over the entries they really have, as TileTrans's
``mean |W|`` over a partial tile does, so that a 16-channel layer under 32x1
tiles is not judged half as important as a 64-channel one.

Budgets
-------
``global`` (TileTrans): one threshold over the mean importance of every tile
(over its real entries) of every pruned layer; ``round(s * all tiles)`` tiles with the lowest means
are pruned, so a layer may end up much sparser than ``s``, or fully pruned.
``layer``: every layer keeps its own best ``1 - s`` of tiles (the mask
family ``mask``).  An N:M mask (``mask="2:4"``) is a per-layer rule of its
own: in every output row, each group of M consecutive input weights of the
``(C_out, kh, kw, C_in)`` order keeps its N largest (:func:`nm_masks`); it
fixes tile and sparsity, and layers whose input channel count is not a
multiple of M stay dense and are listed in ``PruneReport.skipped``.  ``layer_sparsity`` (a dict module name -> sparsity)
overrides ``s`` per layer, for allocations computed elsewhere (sensitivity).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ..masks import get_mask, n_pruned
from ..metrics import importance as importance_of
from ..problem import parse_tile, tile_scores
from ..registry import get_solver
from .graph import is_conv1d
from .permute import (PermuteReport, _as_tuple, channel_last, mask_arguments, nm_unsupported, nm_weight_matrix,
                      permute_model, prunable_layers, weight_matrix)

__all__ = ["TilePruning", "prune_model", "PruneReport", "LayerReport", "prunable_layers", "tile_masks",
           "nm_masks", "BUDGETS"]

BUDGETS = {
    "global": "one threshold over the mean importance of all tiles of all pruned layers (TileTrans)",
    "layer": "every layer prunes the fraction `sparsity` of its own tiles",
    "sensitivity": "per-layer sparsities allocated from sensitivities by the caller, given as layer_sparsity",
}


class TilePruning(tprune.BasePruningMethod):
    """A ``torch.nn.utils.prune`` method that applies a precomputed tile mask.

    ``PRUNING_TYPE = "global"``: the mask covers the whole tensor, and is
    combined (logical and) with any earlier mask on the same tensor.

    Parameters
    ----------
    mask : torch.Tensor
        Shaped like the pruned tensor: 1 keeps an entry, 0 prunes it.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(4, 4)
    >>> mask = torch.ones(4, 4); mask[:2, :2] = 0
    >>> _ = TilePruning.apply(lin, "weight", mask=mask)
    >>> int((lin.weight == 0).sum())
    4
    """

    PRUNING_TYPE = "global"

    def __init__(self, mask: torch.Tensor):
        self.mask = mask

    def compute_mask(self, t, default_mask):
        return default_mask * self.mask.to(dtype=default_mask.dtype, device=default_mask.device)


@dataclass
class LayerReport:
    """Pruning outcome of one layer.

    Attributes
    ----------
    name : str
        Qualified module name.
    shape : tuple of int
        ``(out, in*kh*kw)``: the weight's matrix view (N:M: the ``(C_out, kh*kw*C_in)`` view).
    tiles : int
        Tiles of the matrix (N:M: weights).
    tiles_pruned : int
        Tiles (N:M: weights) the mask prunes.
    weight_sparsity : float
        Fraction of the weights the mask zeroes.
    retained : float
        Importance the mask keeps.
    total : float
        Importance of the whole matrix.

    Examples
    --------
    >>> rep = LayerReport("fc", (4, 8), tiles=8, tiles_pruned=4, weight_sparsity=0.5, retained=30.0, total=40.0)
    >>> rep.retained_fraction
    0.75
    >>> rep.to_dict()["shape"]
    [4, 8]
    """

    name: str
    shape: tuple[int, int]
    tiles: int
    tiles_pruned: int
    weight_sparsity: float
    retained: float
    total: float

    @property
    def retained_fraction(self) -> float:
        """Fraction of the matrix's importance the mask keeps (1 for an all-zero matrix)."""
        return self.retained / self.total if self.total > 0 else 1.0

    def to_dict(self) -> dict:
        """The fields and ``retained_fraction`` as a JSON-ready dict."""
        return {"name": self.name, "shape": list(self.shape), "tiles": self.tiles,
                "tiles_pruned": self.tiles_pruned, "weight_sparsity": self.weight_sparsity,
                "retained": self.retained, "total": self.total, "retained_fraction": self.retained_fraction}


@dataclass
class PruneReport:
    """Per-layer achieved sparsity and retained importance, and the permutation report.

    What :func:`prune_model` returns; ``str(report)`` is :meth:`table`.

    Attributes
    ----------
    layers : list of LayerReport
        One per pruned layer.
    permute : PermuteReport or None
        The report of the permutation, None when the solver does not permute.
    budget : str
        The budget that was applied (``"global"`` or ``"layer"``).
    sparsity : float
        The sparsity asked for.
    tile : tuple of int
        The tile shape ``(h, w)``.
    seconds : float
        Wall time of the whole call.
    mask : str
        The mask family.
    skipped : dict
        Layers left dense, with the reason (N:M: input channels not a multiple of M).

    Examples
    --------
    >>> fc = LayerReport("fc", (4, 8), tiles=8, tiles_pruned=4, weight_sparsity=0.5, retained=30.0, total=40.0)
    >>> rep = PruneReport([fc], budget="layer", sparsity=0.5, tile=(2, 2))
    >>> rep.weight_sparsity, rep.retained_fraction
    (0.5, 0.75)
    >>> print(rep.table())
    layer                            matrix  tiles pruned w-sparsity  retained
    fc                              4x8          8      4      0.500     0.750
    all                                          8      4      0.500     0.750
    """

    layers: list[LayerReport] = field(default_factory=list)
    permute: PermuteReport | None = None
    budget: str = "global"
    sparsity: float = 0.0
    tile: tuple[int, int] = (1, 1)
    seconds: float = 0.0
    mask: str = "global"
    #: layers left dense, with the reason (N:M: input channels not a multiple of M)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def weight_sparsity(self) -> float:
        """Fraction of all pruned layers' weights that are zeroed by the masks."""
        n = sum(l.shape[0] * l.shape[1] for l in self.layers)
        z = sum(l.weight_sparsity * l.shape[0] * l.shape[1] for l in self.layers)
        return z / n if n else 0.0

    @property
    def retained_fraction(self) -> float:
        """Fraction of all pruned layers' importance that the masks keep."""
        tot = sum(l.total for l in self.layers)
        return sum(l.retained for l in self.layers) / tot if tot > 0 else 1.0

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict (layers and permutation report included)."""
        return {"budget": self.budget, "sparsity": self.sparsity, "tile": list(self.tile), "mask": self.mask,
                "skipped": dict(self.skipped),
                "weight_sparsity": self.weight_sparsity, "retained_fraction": self.retained_fraction,
                "seconds": self.seconds, "layers": [l.to_dict() for l in self.layers],
                "permute": self.permute.to_dict() if self.permute else None}

    def table(self) -> str:
        """A text table: one line per layer, a total, then the layers left dense."""
        lines = [f"{'layer':<28} {'matrix':>10} {'tiles':>6} {'pruned':>6} {'w-sparsity':>10} {'retained':>9}"]
        for l in self.layers:
            lines.append(f"{l.name:<28} {l.shape[0]:>4}x{l.shape[1]:<5} {l.tiles:>6} {l.tiles_pruned:>6} "
                         f"{l.weight_sparsity:>10.3f} {l.retained_fraction:>9.3f}")
        lines.append(f"{'all':<28} {'':>10} {sum(l.tiles for l in self.layers):>6} "
                     f"{sum(l.tiles_pruned for l in self.layers):>6} {self.weight_sparsity:>10.3f} "
                     f"{self.retained_fraction:>9.3f}")
        lines += [f"{name:<28} not pruned: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _expand(keep: np.ndarray, h: int, w: int, m: int, n: int) -> np.ndarray:
    return np.repeat(np.repeat(keep, h, axis=0), w, axis=1)[:m, :n]


def tile_masks(model: nn.Module, *, tile, sparsity: float, metric: str = "l1", budget: str = "global",
               mask: str = "global", layer_sparsity: Mapping[str, float] | None = None,
               layers: Mapping[str, nn.Module] | None = None) -> dict[str, np.ndarray]:
    """Boolean keep-masks ``(mb, nb)`` of tiles for each prunable layer (nothing is changed).

    Parameters
    ----------
    model : nn.Module
        The model.
    tile : tuple of int or str
        Tile shape ``(h, w)`` or ``"hxw"`` over each weight's ``(out, in*kh*kw)`` view.
    sparsity : float
        Fraction of tiles to prune, in [0, 1].
    metric : str
        Importance metric of the weights (``"l1"``, ``"l2"``, ...).
    budget : str
        ``"global"`` (one threshold over the mean importance of the tiles of
        all layers) or ``"layer"`` (every layer prunes ``sparsity`` of its own
        tiles); see :data:`BUDGETS`.
    mask : str
        Mask family of the per-layer rule (``"global"`` or ``"row-balanced"``).
    layer_sparsity : dict, optional
        Module name -> sparsity; those layers follow their own sparsity whatever the budget.
    layers : dict, optional
        Module name -> module of the layers to mask (default: :func:`prunable_layers`).

    Returns
    -------
    dict
        Module name -> boolean array ``(ceil(out / h), ceil(in*kh*kw / w))``, True for a kept tile.

    Examples
    --------
    >>> from permsolve import zoo
    >>> m = tile_masks(zoo.load("mlp"), tile=(16, 16), sparsity=0.5, budget="layer")
    >>> {k: (v.shape, int(v.sum())) for k, v in m.items()}["fc1"]
    ((16, 4), 32)
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> tiny = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> {k: v.astype(int).tolist() for k, v in tile_masks(tiny, tile=(2, 2), sparsity=0.5).items()}
    {'0': [[0, 0, 1, 0], [0, 1, 0, 1]], '2': [[1, 1]]}
    """
    h, w = parse_tile(tile)
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; budgets are: {', '.join(BUDGETS)}")
    layers = prunable_layers(model) if layers is None else layers
    ls = dict(layer_sparsity or {})
    unknown = sorted(set(ls) - set(layers))
    if unknown:
        raise ValueError(f"layer_sparsity names layers that are not prunable: {', '.join(unknown)}")
    scores, sizes = {}, {}
    for name, mod in layers.items():
        imp = importance_of(weight_matrix(mod), metric)
        scores[name] = tile_scores(imp, h, w)
        sizes[name] = tile_scores(np.ones_like(imp), h, w)   # real entries of each (clipped) tile
    keep: dict[str, np.ndarray] = {}
    fam = get_mask(mask)
    for name, T in scores.items():
        if name in ls or budget == "layer":
            s = float(ls.get(name, sparsity))
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"sparsity of {name} must be in [0, 1], got {s}")
            keep[name] = np.zeros(T.shape, bool) if s >= 1.0 else fam.select(T, s)
    rest = [n for n in scores if n not in keep]
    if rest:  # global budget: one threshold over the tile means of the remaining layers
        means = np.concatenate([(scores[n] / sizes[n]).ravel() for n in rest])
        k = n_pruned(float(sparsity), means.size)
        flat_keep = np.ones(means.size, bool)
        flat_keep[np.argsort(means, kind="stable")[:k]] = False
        pos = 0
        for n in rest:
            size = scores[n].size
            keep[n] = flat_keep[pos:pos + size].reshape(scores[n].shape)
            pos += size
    return {n: keep[n] for n in scores}


def nm_masks(model: nn.Module, *, mask: str = "2:4", metric: str = "l1",
             layers: Mapping[str, nn.Module] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """N:M keep-masks in each layer's weight shape, and the layers N:M cannot prune (nothing is changed).

    In every output row, each group of M consecutive weights of the
    :func:`~permsolve.torch.permute.nm_weight_matrix` view (a conv's
    ``(C_out, kh, kw, C_in)`` order: groups over input channels at every
    spatial position) keeps its N most important.

    Parameters
    ----------
    model : nn.Module
        The model.
    mask : str or Mask
        An N:M mask family, such as ``"2:4"``.
    metric : str
        Importance metric of the weights (``"l1"``, ``"l2"``, ...).
    layers : dict, optional
        Module name -> module of the layers to mask (default: :func:`prunable_layers`).

    Returns
    -------
    keep : dict
        Module name -> boolean array shaped like its weight, True for a kept weight.
    skipped : dict
        Module name -> why N:M cannot prune it (it stays dense).

    Examples
    --------
    >>> from permsolve import zoo
    >>> keep, skipped = nm_masks(zoo.load("alexnet"), mask="2:4")
    >>> keep["features.2"].shape, float(keep["features.2"].mean()), skipped
    ((64, 32, 3, 3), 0.5, {'features.0': '2:4 needs the input channels (1) to be a multiple of 4'})
    """
    fam = get_mask(mask)
    layers = prunable_layers(model) if layers is None else layers
    keep, skipped = {}, {}
    for name, mod in layers.items():
        why = nm_unsupported(mod, fam)
        if why:
            skipped[name] = why
            continue
        imp = importance_of(nm_weight_matrix(mod), metric)
        sel = fam.select(imp, fam.fixed_sparsity)
        shape = tuple(mod.weight.shape)
        if len(shape) > 2:        # (C_out, kh, kw, C_in) back to (C_out, C_in, kh, kw)
            sel = np.moveaxis(sel.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
        if is_conv1d(mod):        # GPT-2's Conv1D stores (in, out)
            sel = sel.T
        keep[name] = np.ascontiguousarray(sel.reshape(shape))
    return keep, skipped


def _prune_nm(model, example_inputs, mask, *, solver, metric, scope, budget, time_limit, seed,
              layer_sparsity, solver_options) -> PruneReport:
    """:func:`prune_model` with an N:M mask: permute the consumers' input channels, then N:M-prune."""
    t0 = time.perf_counter()
    if budget not in (None, "layer"):
        raise ValueError(f"budget {budget!r} does not apply to the {mask} mask (every layer keeps {mask})")
    if layer_sparsity:
        raise ValueError(f"layer_sparsity does not apply to the {mask} mask (it fixes the sparsity)")
    perm_report = None
    if get_solver(solver).permutes:     # a solver that never permutes (identity): plain tile pruning
        perm_report = permute_model(model, _as_tuple(example_inputs), mask=mask, solver=solver, metric=metric,
                                    scope=scope, time_limit=time_limit, seed=seed, **solver_options)
    layers = prunable_layers(model)
    keep, skipped = nm_masks(model, mask=mask, metric=metric, layers=layers)
    report = PruneReport(permute=perm_report, budget="layer", sparsity=mask.fixed_sparsity, tile=(1, 1),
                         mask=str(mask), skipped=skipped)
    for name, k in keep.items():
        mod = layers[name]
        imp = importance_of(nm_weight_matrix(mod), metric)
        kept = k.T if is_conv1d(mod) else _nm_view(k)
        TilePruning.apply(mod, "weight", mask=torch.from_numpy(k.astype(np.float32)))
        report.layers.append(LayerReport(name, imp.shape, k.size, int((~k).sum()), float(1.0 - k.mean()),
                                         float(imp[kept].sum()), float(imp.sum())))
    report.seconds = time.perf_counter() - t0
    return report


def _nm_view(a: np.ndarray) -> np.ndarray:
    """An array shaped like a weight, in the :func:`~permsolve.torch.permute.nm_weight_matrix` view."""
    if a.ndim > 2:
        a = np.moveaxis(a, 1, -1)
    return a.reshape(a.shape[0], -1)


def global_allocation(model: nn.Module, *, tile, sparsity: float, metric: str = "l1") -> dict[str, float]:
    """Per-layer tile sparsity that the global budget gives on the model as it is."""
    masks = tile_masks(model, tile=tile, sparsity=sparsity, metric=metric, budget="global")
    return {n: 1.0 - float(k.mean()) for n, k in masks.items()}


def prune_model(model: nn.Module, example_inputs, *, tile=None, sparsity: float | None = None,
                solver: str = "greedy", metric: str = "l1", scope: str = "layer", budget: str | None = None,
                time_limit: float | None = None, seed: int = 0, mask: str = "global",
                layer_sparsity: Mapping[str, float] | None = None, **solver_options) -> PruneReport:
    """Permute ``model`` for tile pruning, then tile-prune every Linear and Conv weight in place.

    Parameters
    ----------
    model, example_inputs, tile, sparsity, solver, metric, scope, time_limit, seed, mask :
        as for :func:`~permsolve.torch.permute.permute_model`; ``solver="identity"`` (a solver
        whose ``permutes`` class attribute is False) skips the permutation (plain tile pruning).
    budget : ``global`` (one threshold over all layers' tile means, TileTrans; the default),
        ``layer`` (each layer prunes ``sparsity`` of its tiles) or ``sensitivity``
        (every layer pruned to the sparsity that ``layer_sparsity`` allocates to it
        from measured sensitivities, e.g.
        ``permsolve.compress.srinit.sensitivity_allocation``; the measurement is the
        caller's, since it needs data and an accuracy function); an N:M mask is per layer
    mask : ``global``, ``row-balanced`` or N:M such as ``"2:4"``; N:M needs neither ``tile`` nor
        ``sparsity`` and prunes along input channels (:func:`nm_masks`); layers it cannot prune
        are listed in ``PruneReport.skipped``
    layer_sparsity : module name -> sparsity; those layers are pruned to their own
        sparsity whatever the budget (the others follow ``budget``); with
        ``budget="sensitivity"`` it must cover every prunable layer

    Notes
    -----
    With the global budget, the permutation problems get the per-layer sparsity
    the global threshold gives on the unpermuted model; the final masks come
    from the threshold over the permuted weights.

    Returns
    -------
    :class:`PruneReport`: per layer the achieved weight sparsity and retained importance.

    Examples
    --------
    >>> from permsolve import zoo
    >>> model = zoo.load("mlp")
    >>> rep = prune_model(model, zoo.digits("val")[0][:32], tile=(16, 16), sparsity=0.5)
    >>> round(rep.weight_sparsity, 2) > 0.3, zoo.evaluate(model) > 0.5
    (True, True)
    """
    t0 = time.perf_counter()
    mask, tile, sparsity = mask_arguments(mask, tile, sparsity)
    if channel_last(mask):
        return _prune_nm(model, example_inputs, mask, solver=solver, metric=metric, scope=scope, budget=budget,
                         time_limit=time_limit, seed=seed, layer_sparsity=layer_sparsity,
                         solver_options=solver_options)
    budget = "global" if budget is None else budget
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; budgets are: {', '.join(BUDGETS)}")
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if budget == "sensitivity":  # the allocation comes in as an argument (measured by the caller)
        missing = sorted(set(prunable_layers(model)) - set(layer_sparsity or {}))
        if missing:
            raise ValueError(f"budget='sensitivity' needs layer_sparsity (an allocation from sensitivities, e.g. "
                             f"permsolve.compress.srinit.sensitivity_allocation) for every layer; missing: "
                             f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        budget = "layer"
    layers = prunable_layers(model)
    perm_report = None
    if get_solver(solver).permutes:     # a solver that never permutes (identity): plain tile pruning
        alloc = dict(layer_sparsity or {})
        if budget == "global":
            glob = global_allocation(model, tile=tile, sparsity=sparsity, metric=metric)
            alloc = {**glob, **alloc}
        perm_report = permute_model(model, _as_tuple(example_inputs), tile=tile, sparsity=sparsity,
                                    solver=solver, metric=metric, scope=scope, time_limit=time_limit,
                                    seed=seed, mask=mask, layer_sparsity=alloc or None, **solver_options)
    keep = tile_masks(model, tile=tile, sparsity=sparsity, metric=metric, budget=budget, mask=mask,
                      layer_sparsity=layer_sparsity, layers=layers)
    h, w = tile
    report = PruneReport(permute=perm_report, budget=budget, sparsity=float(sparsity), tile=tile, mask=str(mask))
    for name, mod in layers.items():
        W = weight_matrix(mod)
        m, n = W.shape
        elem = _expand(keep[name], h, w, m, n)
        imp = importance_of(W, metric)
        stored = elem.T if is_conv1d(mod) else elem   # GPT-2's Conv1D stores its weight (in, out)
        t_mask = torch.from_numpy(np.ascontiguousarray(stored).reshape(mod.weight.shape).astype(np.float32))
        TilePruning.apply(mod, "weight", mask=t_mask)
        report.layers.append(LayerReport(name, (m, n), keep[name].size, int((~keep[name]).sum()),
                                         float(1.0 - elem.mean()), float(imp[elem].sum()), float(imp.sum())))
    report.seconds = time.perf_counter() - t0
    return report
