"""The graph of coupled channel dimensions of a PyTorch model.

Permuting the channels of one tensor permutes the rows (output channels) of
every layer that writes it and the columns (input channels) of every layer
that reads it.  :func:`channel_graph` finds which channel dimensions must
share one permutation (a **group**), and which layer axes a group's
permutation acts on (its **bindings**), from a torch.fx trace
(:mod:`permsolve.torch.fx_builder`, which lists how each operation is
treated) or a non-strict ``torch.export`` one (:mod:`permsolve.torch.aten`).
The data types (:class:`~permsolve.torch.channels.Layout`,
:class:`~permsolve.torch.channels.Binding`,
:class:`~permsolve.torch.channels.Group`,
:class:`~permsolve.torch.channels.ChannelGraph`) live in
:mod:`permsolve.torch.channels` and are importable from here too.

Examples
--------
>>> import torch
>>> from torch import nn
>>> m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
>>> g = channel_graph(m, torch.randn(2, 8))
>>> [(grp.size, [str(b) for b in grp.bindings]) for grp in g.free_groups()]
[(16, ['0 rows', '2 cols'])]
"""
from __future__ import annotations

import networkx as nx
from torch import nn

# the data types and helpers, re-exported: ``from permsolve.torch.graph import Layout, finish, ...`` keeps working
from .channels import (Binding, ChannelGraph, Group, Layout, Seg, _Blocked, _compatible, _stored,  # noqa: F401
                       finish, is_conv1d, split_inputs, tensor_axes)
from .fx_builder import _Builder, _input_axis, _meta_shape  # noqa: F401
from .trace import shape_prop, trace

__all__ = ["Binding", "Group", "ChannelGraph", "channel_graph"]


TRACERS = ("auto", "fx", "export")


def channel_graph(model: nn.Module, example_inputs, *, tracer: str = "auto",
                  permute_outputs: bool = False) -> ChannelGraph:
    """Trace ``model`` and group its coupled channel dimensions.

    Parameters
    ----------
    model : the model (not modified; run once in eval mode without gradients)
    example_inputs : a tensor, a tuple of positional arguments, or a dict of
        keyword arguments (Hugging Face models: ``{"input_ids": ..., "attention_mask": ...}``)
    tracer : ``"auto"`` (torch.fx when it traces the whole model and has no
        grouped conv, else non-strict ``torch.export``; see docs/models.md),
        ``"fx"`` or ``"export"``
    permute_outputs : export only: let the channels of model outputs (e.g. a
        transformer's hidden states) be permuted; the outputs then come back
        permuted, so this is an explicit opt-in (``"output"`` bindings say how)

    Returns
    -------
    :class:`ChannelGraph`; ``free_groups()`` are the groups that may be permuted.
    ``traced`` is False (and ``opaque[""]`` says why) when nothing could be traced,
    for instance when torch.export refuses data-dependent control flow.

    Examples
    --------
    >>> from permsolve import zoo
    >>> g = channel_graph(zoo.build("resnet"), zoo.digits("val")[0][:2])
    >>> len(g.free_groups()), sum(len(grp.producers) > 1 for grp in g.free_groups())
    (12, 3)
    """
    if tracer not in TRACERS:
        raise ValueError(f"unknown tracer {tracer!r}; tracers are: {', '.join(TRACERS)}")
    args, kwargs = split_inputs(example_inputs)
    fx_graph = None
    if tracer in ("auto", "fx") and not kwargs and not permute_outputs:
        traced = trace(model)
        if traced.graph_module is not None:
            gm = traced.graph_module
            shape_prop(gm, args)
            b = _Builder(model, gm, traced.opaque)
            b.run()
            fx_graph = finish(b, model, traced.opaque, "fx")
            grouped = any("grouped conv" in w for grp in fx_graph.groups for w in grp.blocked)
            if tracer == "fx" or not (traced.opaque or grouped):
                return fx_graph
        elif tracer == "fx":
            return ChannelGraph([], nx.Graph(), traced.opaque, traced=False)
    if tracer == "fx":
        raise ValueError("tracer='fx' takes positional example inputs only (use 'export' for keyword inputs)")
    from .aten import export_graph

    graph = export_graph(model, args, kwargs, permute_outputs=permute_outputs)
    if not graph.traced and fx_graph is not None:
        return fx_graph  # fx traced it with some modules kept opaque (their channels blocked): safe
    return graph
