"""Activation-aware (Wanda-style) importance from calibration data.

The ``activation`` metric of :mod:`permsolve.metrics` scores a weight by
``|W[i, j]| * a[j]``, where ``a[j]`` is the size of column ``j``'s input
(Sun et al., "A Simple and Effective Pruning Approach for Large Language
Models", ICLR 2024).  :func:`input_norms` measures ``a`` on calibration
batches with forward hooks; :func:`prune_model_activation` prunes with it.

How the permutation search sees activation importance
-----------------------------------------------------
``|W| * a`` is the ``l1`` importance of the weight with its columns scaled by
``a``.  A permutation moves a column's scale with the column, so the search
runs on a scaled copy of the model (with ``l1``) through the ordinary
:func:`~permsolve.torch.prune.prune_model`, and the permutations it finds are
then replayed on the model itself with
:func:`~permsolve.torch.permute.apply_permutation` (same channel graph, same
bindings, so every tensor the copy moved moves the same way), and the tile
masks chosen on the copy are put on the model.  The model's eval-mode outputs
are checked after the replay, as :func:`~permsolve.torch.permute.permute_model`
checks them.
"""
from __future__ import annotations

import copy
import time
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ..registry import get_solver
from .graph import channel_graph, is_conv1d, split_inputs
from .permute import RTOL, PermutationError, _EvalMode, _outputs, apply_permutation
from .prune import PruneReport, TilePruning, prunable_layers, prune_model

__all__ = ["input_norms", "prune_model_activation"]


def _call(model: nn.Module, batch):
    args, kwargs = split_inputs(dict(batch) if isinstance(batch, Mapping) else batch)
    return model(*args, **kwargs)


def _linear_like(mod: nn.Module) -> bool:
    return isinstance(mod, nn.Linear) or is_conv1d(mod)


def input_norms(model: nn.Module, batches: Iterable, *, layers: Mapping[str, nn.Module] | None = None,
                mask_key: str = "attention_mask") -> dict[str, np.ndarray]:
    """Root-mean-square input of every prunable layer, per column of its matrix view.

    Parameters
    ----------
    model : the model (run in eval mode, without gradients; its mode is restored)
    batches : iterable of model inputs: a tensor, a tuple of positional
        arguments or a dict of keyword arguments per batch
    layers : name -> module to measure (default: every Linear and Conv layer)
    mask_key : when a dict batch holds a ``(batch, tokens)`` mask under this
        key, the positions where it is 0 (padding) are left out of the layers
        whose input is ``(batch, tokens, channels)``

    Returns
    -------
    dict name -> float64 array, one entry per column of the layer's matrix
    view ``(out, in*kh*kw)``: ``sqrt(mean x_j^2)`` over every token, position
    and example.  For a convolution, the RMS of each input channel over all
    positions is repeated for its ``kh*kw`` columns.  The RMS differs from
    Wanda's L2 norm by the square root of the token count, the same for every
    layer, so it ranks weights exactly as Wanda does, within a layer and
    across layers.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> x = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, -2.0]])
    >>> input_norms(lin, [x])["0"]
    array([1., 0., 2.])
    """
    layers = prunable_layers(model) if layers is None else dict(layers)
    sums = {n: None for n in layers}
    counts = {n: 0 for n in layers}
    current: dict = {}

    def hook(name, mod):
        def fn(_mod, args):
            x = args[0].detach().double()
            if _linear_like(mod):
                x = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(1, -1)
                m = current.get("mask")
                if m is not None and args[0].dim() == 3 and tuple(args[0].shape[:2]) == tuple(m.shape):
                    x = x[m.reshape(-1).bool()]
                sq, cnt = (x * x).sum(0), x.shape[0]
            else:  # conv: (N, C, *spatial); per channel over batch and positions
                c = x.shape[1]
                flat = x.transpose(0, 1).reshape(c, -1)
                sq, cnt = (flat * flat).sum(1), flat.shape[1]
            sums[name] = sq if sums[name] is None else sums[name] + sq
            counts[name] += cnt
        return fn

    handles = [mod.register_forward_pre_hook(hook(n, mod)) for n, mod in layers.items()]
    try:
        with _EvalMode(model), torch.no_grad():
            for batch in batches:
                current["mask"] = batch.get(mask_key) if isinstance(batch, Mapping) else None
                _call(model, batch)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, mod in layers.items():
        if sums[name] is None:
            raise ValueError(f"layer {name} was not run by any calibration batch")
        rms = torch.sqrt(sums[name] / max(counts[name], 1)).cpu().numpy()
        if not _linear_like(mod):
            rms = np.repeat(rms, int(np.prod(mod.weight.shape[2:])))
        out[name] = rms
    return out


def _scaled_copy(model: nn.Module, act_norms: Mapping[str, np.ndarray], layers) -> nn.Module:
    """Deep copy of ``model`` whose prunable layers' weight columns are multiplied by ``act_norms``."""
    scaled = copy.deepcopy(model)
    mods = dict(scaled.named_modules())
    for name in layers:
        mod = mods[name]
        p = mod._parameters.get("weight_orig", mod._parameters.get("weight"))
        a = torch.as_tensor(np.asarray(act_norms[name], dtype=np.float64), dtype=p.dtype, device=p.device)
        with torch.no_grad():
            if is_conv1d(mod):   # weight stored (in, out): the matrix view's columns are its rows
                flat, a_b = p, a[:, None]
                ncols = p.shape[0]
            else:
                flat = p.view(p.shape[0], -1)
                a_b, ncols = a[None, :], flat.shape[1]
            if a.shape != (ncols,):
                raise ValueError(f"act_norms[{name!r}] has {a.numel()} entries, the weight has {ncols} columns")
            flat.mul_(a_b)
        if hasattr(mod, "weight_orig"):  # refresh the masked weight the pre-hook recomputes
            mod.weight = mod.weight_orig * mod.weight_mask
    return scaled


def prune_model_activation(model: nn.Module, example_inputs, *, act_norms: Mapping[str, np.ndarray], tile,
                           sparsity: float, solver: str = "greedy", **kwargs) -> PruneReport:
    """:func:`~permsolve.torch.prune.prune_model` with activation-aware importance ``|W| * a``.

    Parameters
    ----------
    model, example_inputs, tile, sparsity, solver, **kwargs :
        as for :func:`~permsolve.torch.prune.prune_model` (``metric`` must not be given)
    act_norms : layer name -> per-column input size ``a`` (:func:`input_norms`),
        for every Linear and Conv layer of ``model``

    Returns
    -------
    :class:`~permsolve.torch.prune.PruneReport`; retained importance is in
    units of ``|W| * a``.

    Raises
    ------
    PermutationError
        if replaying the permutations changes the model's eval-mode outputs on
        ``example_inputs`` (the model is restored first)

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    >>> X = torch.randn(64, 8)
    >>> rep = prune_model_activation(net, X, act_norms=input_norms(net, [X]), tile=(4, 4), sparsity=0.5)
    >>> round(rep.weight_sparsity, 2)
    0.5
    """
    if "metric" in kwargs:
        raise ValueError("prune_model_activation sets the metric itself (activation); do not pass metric=")
    t0 = time.perf_counter()
    layers = prunable_layers(model)
    missing = sorted(set(layers) - set(act_norms))
    if missing:
        raise ValueError(f"act_norms lacks prunable layers: {', '.join(missing)}")
    inputs = dict(example_inputs) if isinstance(example_inputs, Mapping) else example_inputs
    scaled = _scaled_copy(model, act_norms, layers)
    if get_solver(solver).permutes and kwargs.get("graph") is None:
        kwargs["graph"] = channel_graph(model, inputs, permute_outputs=bool(kwargs.get("permute_outputs")))
    graph = kwargs.get("graph")
    rep = prune_model(scaled, inputs, tile=tile, sparsity=sparsity, solver=solver, metric="l1", **kwargs)
    if rep.permute is not None:
        _replay(model, graph, rep.permute, inputs)
    smods = dict(scaled.named_modules())
    for name, mod in layers.items():
        TilePruning.apply(mod, "weight", mask=smods[name].weight_mask.detach().clone())
    rep.seconds = time.perf_counter() - t0
    return rep


def _replay(model: nn.Module, graph, perm_report, inputs) -> None:
    """Apply the permutations of ``perm_report`` (found on a scaled copy) to ``model``; check its outputs."""
    saved = copy.deepcopy(model.state_dict())
    with _EvalMode(model):
        before = _outputs(model, inputs)
    # permute_model reports one group per free group, in this order (group names need not be unique)
    free = sorted(graph.free_groups(), key=lambda g: g.order)
    if len(free) != len(perm_report.groups) or any(g.name != r.name or g.size != r.size
                                                   for g, r in zip(free, perm_report.groups)):
        raise RuntimeError("the permutation report does not match the channel graph's free groups")
    for g, gr in zip(free, perm_report.groups):
        if gr.permuted:
            apply_permutation(model, g, gr.perm)
    expected = list(before)
    for leaf, (dim, idx) in perm_report.output_perms.items():   # outputs permuted on request
        expected[leaf] = before[leaf].index_select(dim, torch.from_numpy(idx).to(before[leaf].device))
    with _EvalMode(model):
        after = _outputs(model, inputs)
    scale = max((float(t.abs().max()) for t in expected if t.numel()), default=0.0)
    diff = max((float((a - b).abs().max()) for a, b in zip(after, expected) if a.numel()), default=0.0)
    if len(after) != len(expected) or not diff <= RTOL * scale:
        model.load_state_dict(saved)
        raise PermutationError(f"replaying the permutations changed the model's eval-mode outputs: "
                               f"max |diff| {diff:.3g} > {RTOL:g} * {scale:.3g}; the model was restored")
