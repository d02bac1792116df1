"""Parameter and FLOP counting for models made of Conv2d and Linear layers.

FLOPs are counted as multiply-accumulate operations (MACs) of the Conv2d and
Linear layers, measured with forward hooks on one example input, the
convention of the SR-init and TRP papers.  Other operations (BatchNorm, ReLU,
additions, pooling) are not counted; their cost is small next to the
convolutions and does not change under the methods compared here.

With ``nonzero=True`` a weight entry that is exactly zero counts neither as a
parameter nor as a MAC, which is how a tile-pruned model (same shapes, zeroed
tiles) is compared with a model that really became smaller.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from permsolve.compress.flops import count
>>> m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
>>> c = count(m, torch.zeros(1, 1, 8, 8))
>>> c.params == (4 * 9 + 4) + (256 * 10 + 10)
True
>>> c.flops == 4 * 9 * 64 + 256 * 10
True
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Counts", "count", "count_params", "count_flops", "weight_layers"]

_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class Counts:
    """Parameter and MAC counts of a model.

    Attributes
    ----------
    params : int
        All parameters (Conv/Linear weights and biases, normalisation
        affine parameters, anything else the model holds as a Parameter).
    flops : int
        Multiply-accumulates of the Conv/Linear layers for one input sample.
    layer_params : dict
        Weight + bias entries per Conv/Linear layer (qualified module name).
    layer_flops : dict
        MACs per Conv/Linear layer for one sample.

    Examples
    --------
    >>> Counts(params=18, flops=15).layer_params
    {}
    """

    params: int
    flops: int
    layer_params: dict = field(default_factory=dict)
    layer_flops: dict = field(default_factory=dict)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and Linear modules of ``model`` with their qualified names, in module order.

    Parameters
    ----------
    model : torch.nn.Module
        The model.

    Returns
    -------
    list of (str, torch.nn.Module)
        ``(qualified name, module)`` of every Conv1d/2d/3d and Linear layer.

    Examples
    --------
    >>> from torch import nn
    >>> [n for n, _ in weight_layers(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))]
    ['0', '2']
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _WEIGHT_LAYERS)]


def _numel(t: torch.Tensor | None, nonzero: bool) -> int:
    if t is None:
        return 0
    return int(torch.count_nonzero(t).item()) if nonzero else int(t.numel())


def count_params(model: nn.Module, *, nonzero: bool = False) -> tuple[int, dict]:
    """Number of parameters of ``model`` and the per-layer counts of its Conv/Linear layers.

    The effective ``weight`` of a Conv/Linear layer is counted (so a layer
    under a ``torch.nn.utils.parametrize`` mask is counted through its masked
    weight, not through its stored original).

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    nonzero : bool
        Count only the non-zero entries (what pruning removed does not count).

    Returns
    -------
    total : int
        All parameters.
    per_layer : dict
        Qualified name -> weight + bias entries of each Conv/Linear layer.

    Examples
    --------
    >>> from torch import nn
    >>> count_params(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))[0]
    12
    """
    total = 0
    per_layer = {}
    for name, mod in model.named_modules():
        if isinstance(mod, _WEIGHT_LAYERS):
            n = _numel(mod.weight, nonzero) + _numel(mod.bias, nonzero)
            per_layer[name] = n
            total += n
        elif type(mod).__name__ in ("ParametrizationList",) or ".parametrizations" in f".{name}":
            continue
        else:
            for pname, p in mod.named_parameters(recurse=False):
                total += _numel(p, nonzero)
    return total, per_layer


def count_flops(model: nn.Module, example_inputs, *, nonzero: bool = False) -> tuple[int, dict]:
    """MACs of the Conv/Linear layers of ``model`` for one sample.

    ``example_inputs`` is a tensor or a tuple of tensors; its batch size does
    not matter (the count is divided by it).

    Parameters
    ----------
    model : torch.nn.Module
        The model (run once in eval mode, its mode restored).
    example_inputs : torch.Tensor or tuple of torch.Tensor
        An input batch.
    nonzero : bool
        Count only the non-zero entries (what pruning removed does not count).

    Returns
    -------
    total : int
        MACs per sample.
    per_layer : dict
        Qualified name -> MACs of each Conv/Linear layer.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> count_flops(nn.Linear(5, 3), torch.zeros(4, 5))[0]
    15
    """
    per_layer: dict[str, int] = {}
    hooks = []

    def make_hook(name):
        def hook(mod, inp, out):
            batch = out.shape[0] if out.dim() > 1 else 1
            w = mod.weight
            per_out = _numel(w, nonzero)
            if isinstance(mod, nn.Linear):
                # one MAC per weight entry for each output position (leading dims)
                positions = out.numel() // (out.shape[-1] * max(batch, 1))
                macs = per_out * positions
            else:
                spatial = out[0, 0].numel()            # output positions per channel
                macs = per_out * spatial               # weight has C_out x C_in/groups x k...
            per_layer[name] = per_layer.get(name, 0) + int(macs)
        return hook

    for name, mod in weight_layers(model):
        hooks.append(mod.register_forward_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(example_inputs, (tuple, list)):
                model(*example_inputs)
            else:
                model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return sum(per_layer.values()), per_layer


def count(model: nn.Module, example_inputs, *, nonzero: bool = False) -> Counts:
    """Parameters and MACs of ``model`` (see :func:`count_params`, :func:`count_flops`).

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    example_inputs : torch.Tensor or tuple of torch.Tensor
        An input batch.
    nonzero : bool
        Count only the non-zero entries (what pruning removed does not count).

    Returns
    -------
    Counts
        Totals and per-layer counts.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> count(nn.Linear(5, 3), torch.zeros(1, 5))
    Counts(params=18, flops=15, layer_params={'': 18}, layer_flops={'': 15})
    """
    params, lp = count_params(model, nonzero=nonzero)
    flops, lf = count_flops(model, example_inputs, nonzero=nonzero)
    return Counts(params, flops, lp, lf)
