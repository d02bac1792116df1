"""torch.fx tracing with a fallback for the parts fx cannot trace.

:func:`trace` first traces the whole model.  When that fails it looks for the
modules whose own ``forward`` cannot be traced (their children treated as
opaque calls) and traces again with those modules kept as single, opaque
calls.  Opaque calls are unknown to the channel graph, so every channel
dimension they touch is blocked: left unpermuted, and reported with the
reason fx gave.  If the top-level ``forward`` itself cannot be traced the
result has no graph and nothing is permuted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn

__all__ = ["Traced", "trace"]


@dataclass
class Traced:
    """Outcome of :func:`trace`.

    Attributes
    ----------
    graph_module : torch.fx.GraphModule or None
        The traced model, or None if its own ``forward`` could not be traced.
    opaque : dict
        Qualified module name -> why fx could not trace it (kept as one opaque call).

    Examples
    --------
    >>> import torch
    >>> t = trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    >>> type(t.graph_module).__name__, t.opaque
    ('Sequential', {})
    >>> Traced(None, {"": "the model's own forward cannot be traced"}).graph_module is None
    True
    """

    graph_module: fx.GraphModule | None
    opaque: dict[str, str] = field(default_factory=dict)


class _Tracer(fx.Tracer):
    def __init__(self, opaque=(), all_children: bool = False):
        super().__init__()
        self.opaque = set(opaque)
        self.all_children = all_children

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if self.all_children or qualname in self.opaque:
            return True
        return super().is_leaf_module(m, qualname)


def _why(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def _graph_module(model: nn.Module, tracer: _Tracer) -> fx.GraphModule:
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def trace(model: nn.Module) -> Traced:
    """Trace ``model``; untraceable sub-modules become opaque calls.

    Parameters
    ----------
    model : nn.Module
        The model, traced symbolically by torch.fx (it is not run).

    Returns
    -------
    Traced
        The graph module, and the sub-modules kept as opaque calls with the
        reason fx gave; ``graph_module`` is None (and ``opaque[""]`` says why)
        when the model's own ``forward`` cannot be traced.

    Examples
    --------
    >>> import torch
    >>> class Odd(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x * 2 if x.sum() > 0 else x   # data-dependent: fx cannot trace it
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 4), Odd(), torch.nn.Linear(4, 2))
    >>> t = trace(m)
    >>> list(t.opaque)
    ['1']
    """
    try:
        return Traced(_graph_module(model, _Tracer()))
    except Exception as e:  # noqa: BLE001 - any tracing failure falls back
        top_error = _why(e)
    opaque: dict[str, str] = {}
    for qualname, mod in model.named_modules():
        if qualname == "" or any(qualname.startswith(o + ".") for o in opaque):
            continue
        if _Tracer().is_leaf_module(mod, qualname):
            continue
        try:
            _Tracer(all_children=True).trace(mod)
        except Exception as e:  # noqa: BLE001
            opaque[qualname] = _why(e)
    try:
        return Traced(_graph_module(model, _Tracer(opaque)), opaque)
    except Exception as e:  # noqa: BLE001
        return Traced(None, {"": f"the model's own forward cannot be traced ({_why(e) or top_error})", **opaque})


def shape_prop(gm: fx.GraphModule, example_inputs: tuple) -> None:
    """Record each node's output shape in ``node.meta["tensor_meta"]`` (eval mode, no grad)."""
    from torch.fx.passes.shape_prop import ShapeProp

    modes = [(m, m.training) for m in gm.modules()]
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*example_inputs)
    finally:
        for m, mode in modes:
            m.training = mode
