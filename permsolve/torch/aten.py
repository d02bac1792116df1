"""Channel graph from a non-strict ``torch.export`` trace (the aten graph).

torch.fx cannot trace most real models (Hugging Face transformers: keyword
handling, ``co_varnames``, control flow on shapes).  Non-strict
``torch.export`` runs the model's Python on fake tensors and records every
aten op it executes, with static shapes; it refuses data-dependent control
flow (a branch on a tensor's *value*) instead of guessing a branch, and that
refusal is passed on as a clear error.

The builder walks the aten graph and tracks, for every tensor, which axis
carries channels (a :class:`~permsolve.torch.graph.Layout`) or, for attention,
a head axis and a head-dim axis (:class:`Heads`).  Parameters are lifted to
placeholders; ``graph_signature`` maps them back to their modules, so
bindings name modules as the fx front end does.

What it understands
-------------------
- ``linear``, GPT-2's ``Conv1D`` (``addmm``/``mm`` with a weight stored
  ``(in, out)``), ``conv1d/2d/3d`` (plain, depthwise), ``embedding`` (its
  weight's columns), ``layer_norm``, ``rms_norm``, batch/group norm.
- RMSNorm and layer-scale written out: ``pow``/``mean``/``rsqrt`` (a
  reduction over the whole channel dim does not change under a permutation)
  and an elementwise product with a per-channel parameter (a passenger).
- ``view``/``reshape``/``flatten``/``transpose``/``permute``/``unsqueeze``/
  ``expand``/``select``/``slice``/``split``/``cat``, elementwise ops, gelu/silu
  gating (``silu(gate) * up``: gate and up share one permutation).
- Attention: ``view (B, T, H*d) -> (B, T, H, d)`` splits a channel space into
  one space per head; ``scaled_dot_product_attention`` merges head h of the
  query with head h of the key (per head: Q and K rows share a permutation)
  and passes the value's per-head spaces to its output, whose columns in the
  output projection follow.  Whole heads form one more space: Q, K, V rows and
  the output projection's columns move by whole heads.  Grouped-query
  attention (``expand``/``repeat_interleave`` of key-value heads, or
  ``enable_gqa``): a key-value head and its query heads move together.
  Eager attention (``q @ k^T`` with ``aten.matmul``, scale, mask, softmax,
  then ``@ v``) is read the same way.
- Rotary embeddings (``x * cos + rotate_half(x) * sin``): the product with a
  tensor that varies along the head dim, and the slices of ``rotate_half``,
  block the per-head Q/K dims (every pair of dims has its own frequency, so
  no permutation of dims inside a head keeps the scores); whole heads still move.

Anything else that touches channels blocks them, with the reason.

The builder is put together from op mixins, one module each:
:mod:`~permsolve.torch.aten_base` (the attention layouts :class:`Heads` and
:class:`Scores`, channel spaces, parameters, the walk over the graph),
:mod:`~permsolve.torch.aten_layers` (layers),
:mod:`~permsolve.torch.aten_shapes` (view/reshape/transpose/permute, heads)
and :mod:`~permsolve.torch.aten_attention` (attention, elementwise ops).
"""
from __future__ import annotations

import networkx as nx
import torch
from torch import nn

from .aten_attention import _AttentionOps
from .aten_base import _ELEMENTWISE, _NOOP, _REDUCE, _UNARY, Heads, Scores, _AtenBase, _arg, _name, _shape  # noqa: F401
from .aten_layers import _LayerOps
from .aten_shapes import _ShapeOps
from .channels import Binding, ChannelGraph, Layout, Seg, _Blocked, finish, is_conv1d  # noqa: F401

__all__ = ["Heads", "Scores", "export_graph", "export_program", "TraceError"]


class TraceError(RuntimeError):
    """The model could not be traced at all (for instance data-dependent control flow).

    :func:`export_program` raises it with the reason; :func:`export_graph`
    turns it into a graph with ``traced=False`` whose ``opaque[""]`` holds
    that reason.

    Examples
    --------
    >>> import torch
    >>> class Branchy(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x * 2 if x.sum() > 0 else x   # branches on a tensor's value
    >>> try:
    ...     export_program(Branchy(), (torch.randn(3),))
    ... except TraceError as e:
    ...     print("data-dependent control flow" in str(e))
    True
    """


class _AtenBuilder(_LayerOps, _ShapeOps, _AttentionOps, _AtenBase):
    """The channel-graph builder over an aten graph: ``_AtenBase`` walks it, the mixins handle the ops."""


def export_program(model: nn.Module, args: tuple = (), kwargs: dict | None = None):
    """Non-strict ``torch.export`` of ``model`` in eval mode (its modes are restored).

    Parameters
    ----------
    model : nn.Module
        The model; run on fake tensors in eval mode, its training flags restored afterwards.
    args : tuple
        Positional example inputs of ``model.forward``.
    kwargs : dict, optional
        Keyword example inputs (Hugging Face models: ``input_ids``, ``attention_mask``).

    Returns
    -------
    torch.export.ExportedProgram
        The aten graph of one forward pass, with static shapes.

    Raises
    ------
    TraceError
        With the reason, when the model cannot be captured (data-dependent
        control flow is refused, never guessed).

    Examples
    --------
    >>> import torch
    >>> ep = export_program(torch.nn.Linear(4, 2), (torch.randn(3, 4),))
    >>> [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    ['aten.linear.default']
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return torch.export.export(model, tuple(args), dict(kwargs or {}), strict=False)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear error
        msg = str(e).strip().splitlines()
        first = next((l for l in msg if l.strip()), "")
        kind = type(e).__name__
        dd = "data-dependent" in str(e).lower() or "GuardOnDataDependent" in kind or "UserError" in kind \
            and "control flow" in str(e).lower()
        why = (f"torch.export cannot capture the model: {kind}: {first[:300]}"
               + (" (data-dependent control flow: the branch depends on tensor values, so no single "
                  "permutation can be proven safe for every input; it is refused, not guessed)" if dd else ""))
        raise TraceError(why) from e
    finally:
        for m, mode in modes:
            m.training = mode


def export_graph(model: nn.Module, args: tuple = (), kwargs: dict | None = None, *,
                 permute_outputs: bool = False) -> ChannelGraph:
    """The :class:`~permsolve.torch.graph.ChannelGraph` of ``model`` from its aten graph.

    Parameters
    ----------
    model : nn.Module
        The model (not modified; exported once in eval mode, see :func:`export_program`).
    args : tuple
        Positional example inputs of ``model.forward``.
    kwargs : dict, optional
        Keyword example inputs.
    permute_outputs : bool
        Let the channels of the model's outputs be permuted (the outputs then
        come back permuted; ``"output"`` bindings say how); off by default.

    Returns
    -------
    ChannelGraph
        The channel groups of ``model``.  When the model cannot be exported
        the graph has ``traced=False`` and ``opaque[""]`` holds the reason.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    >>> g = export_graph(m, (torch.randn(2, 5, 8),))     # (batch, tokens, channels)
    >>> [sorted(str(b) for b in grp.bindings) for grp in g.free_groups()]
    [['0 rows', '2 cols']]
    """
    try:
        ep = export_program(model, args, kwargs)
    except TraceError as e:
        return ChannelGraph([], nx.Graph(), {"": str(e)}, traced=False, tracer="export")
    b = _AtenBuilder(model, ep, permute_outputs)
    b.run()
    return finish(b, model, {}, "export")
