"""The graph of coupled channel dimensions of a PyTorch model.

Permuting the channels of one tensor permutes the rows (output channels) of
every layer that writes it and the columns (input channels) of every layer
that reads it.  This module finds, from a torch.fx trace, which channel
dimensions must share one permutation (a **group**), and which layer axes a
group's permutation acts on (its **bindings**).

How each operation is treated
-----------------------------
- ``Linear`` (on the last dimension) and ``Conv1d/2d/3d`` with ``groups=1``
  end a channel space: their input channels are *consumer* bindings (columns
  of the matrix view; a conv's ``kh*kw`` columns of one channel move as one
  unit) and their output channels start a new space (*producer* binding: the
  weight's rows and the bias).
- Depthwise convs (``groups == in == out``), BatchNorm (weight, bias, running
  mean and variance), InstanceNorm, GroupNorm with 1 or C groups, LayerNorm
  whose normalised dims start at the channel dim, per-channel PReLU: the
  channels pass through, the per-channel tensors are *passenger* bindings.
- Elementwise activations, dropout, pooling, softmax, ``mean``/``sum`` over
  other dims: the channels pass through unchanged.
- ``add``/``sub``/``mul``/``div`` of two tensors with the same channel layout:
  both spaces are merged into one group (all branches feeding a residual add
  share one permutation); a scalar or broadcast operand is fine.
- ``torch.cat`` along the channel dim: the result's channels are the pieces'
  channels at offsets (a *layout* of segments); along another dim: merge.
- ``flatten``/``view``/``reshape`` from ``(N, C, H, W)`` to ``(N, C*H*W)``:
  each channel becomes a unit of ``H*W`` consecutive features.
- Everything else (an unknown module or function, an opaque untraceable
  module, a grouped conv, a module called twice, shared parameters) *blocks*
  every channel space it touches, and so does the model's input and output:
  a blocked group is reported with its reasons and left unpermuted.

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

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from .trace import shape_prop, trace

__all__ = ["Binding", "Group", "ChannelGraph", "channel_graph"]


# --------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Seg:
    """``n`` channel units of space ``space``, each ``unit`` consecutive elements wide."""

    space: int
    n: int
    unit: int = 1


@dataclass(frozen=True)
class Layout:
    """Channel layout of a tensor: its channel dim and the segments along it."""

    axis: int
    ndim: int
    segs: tuple[Seg, ...]
    #: ``(head space, unit)`` when this axis is an attention output whose whole
    #: heads may move (set by the torch.export front end, :mod:`permsolve.torch.aten`)
    heads: tuple[int, int] | None = None

    def offsets(self):
        off = 0
        for s in self.segs:
            yield off, s
            off += s.n * s.unit


@dataclass(frozen=True)
class Binding:
    """One axis of one module that a group's permutation acts on.

    role : ``"rows"`` (producer: weight rows and bias), ``"cols"`` (consumer:
        columns of the weight's matrix view ``(out, in*kh*kw)``) or
        ``"channels"`` (passenger: dim 0 of every per-channel tensor, e.g. a
        BatchNorm's weight, bias and running statistics, a depthwise conv's
        weight and bias)
    offset : first element of the bound range on that axis
    n, unit : the range holds ``n`` units of ``unit`` consecutive elements
    param : for a ``"channels"`` binding, the one tensor of the module it
        permutes (e.g. an RMSNorm's ``weight`` or a layer-scale parameter used in
        an elementwise product), on dim ``dim``; None: the module's per-channel
        tensors (weight, bias, running statistics) on dim 0.  For an
        ``"output"`` binding (model outputs permuted by explicit opt-in),
        ``param`` is the index of the output leaf and ``dim`` its channel dim.
    """

    module: str
    role: str
    offset: int
    n: int
    unit: int
    param: str | None = None
    dim: int = 0
    #: ``(first row, rows)``: a ``cols`` binding that acts on these rows only (one group of a grouped conv)
    rows_block: tuple[int, int] | None = None

    def __str__(self) -> str:
        extra = "" if (self.offset == 0 and self.unit == 1) else f"[{self.offset}:+{self.n}x{self.unit}]"
        what = f" {self.param}" if self.param is not None and self.role == "channels" else ""
        block = f"@rows[{self.rows_block[0]}:+{self.rows_block[1]}]" if self.rows_block else ""
        return f"{self.module}{what} {self.role}{extra}{block}"


@dataclass
class Group:
    """A set of channel dimensions that must share one permutation."""

    gid: int
    size: int
    spaces: list[int]
    bindings: list[Binding]
    blocked: list[str] = field(default_factory=list)
    order: int = 0  # position of its first node in the graph

    @property
    def name(self) -> str:
        producers = [b.module for b in self.bindings if b.role == "rows"]
        return producers[0] + (f"+{len(producers) - 1}" if len(producers) > 1 else "") if producers else f"group{self.gid}"

    @property
    def producers(self) -> list[Binding]:
        return [b for b in self.bindings if b.role == "rows"]

    @property
    def consumers(self) -> list[Binding]:
        return [b for b in self.bindings if b.role == "cols"]

    @property
    def passengers(self) -> list[Binding]:
        return [b for b in self.bindings if b.role == "channels"]


@dataclass
class ChannelGraph:
    """All channel groups of a model, the networkx graph and what was blocked.

    Attributes
    ----------
    groups : every group (blocked ones included)
    graph : ``networkx.Graph`` whose nodes are channel spaces and whose edges
        say "same permutation"
    opaque : modules fx could not trace, with the reason (``""``: the whole
        model, when nothing could be traced)
    traced : False when nothing could be traced at all
    tracer : ``"fx"`` or ``"export"``: which front end built the graph
    """

    groups: list[Group]
    graph: nx.Graph
    opaque: dict[str, str]
    traced: bool = True
    tracer: str = "fx"

    def free_groups(self) -> list[Group]:
        """Groups that may be permuted, in graph order."""
        return [g for g in self.groups if not g.blocked and g.bindings]

    def blocked_groups(self) -> list[Group]:
        return [g for g in self.groups if g.blocked]


# ----------------------------------------------------------------- op tables
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Hardtanh, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Identity,
                nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Softsign,
                nn.Tanhshrink, nn.LogSigmoid)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
          nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
          nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d)
_BATCHNORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

_UNARY_FUNCS = {torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.abs, torch.neg, torch.exp,
                F.relu, F.relu6, F.gelu, F.silu, F.leaky_relu, F.hardswish, F.hardsigmoid, F.hardtanh,
                F.elu, F.selu, F.mish, F.softplus, F.dropout, F.dropout1d, F.dropout2d, F.sigmoid, F.tanh,
                operator.neg, torch.clone}
_UNARY_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "abs", "neg", "exp", "contiguous",
                  "clone", "detach", "float", "clamp", "clamp_", "clamp_min", "clamp_max"}
_POOL_FUNCS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
               F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
               F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_BINARY_FUNCS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul,
                 torch.add, torch.sub, torch.mul, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_SOFTMAX = (nn.Softmax, nn.LogSoftmax)
_METADATA = {"size", "dim", "numel", "type", "device"}


def _input_axis(node: fx.Node, modules: dict, ndim: int) -> int:
    """Channel dim of a model input: the last one if a Linear reads it, else dim 1."""
    for u in node.users:
        if u.op == "call_module" and isinstance(modules.get(u.target), nn.Linear):
            return ndim - 1
    return 1


def _meta_shape(node) -> tuple[int, ...] | None:
    tm = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    shape = getattr(tm, "shape", None)
    return tuple(shape) if shape is not None else None


class _Builder:
    def __init__(self, model: nn.Module, gm: fx.GraphModule, opaque: dict[str, str]):
        self.model = model
        self.gm = gm
        self.opaque = opaque
        self.graph = nx.Graph()
        self.n_spaces = 0
        self.space_size: dict[int, int] = {}
        self.space_order: dict[int, int] = {}
        self.blocked: dict[int, list[str]] = {}
        self.bindings: dict[int, list[Binding]] = {}
        self.calls: dict[str, int] = {}
        self.env: dict[fx.Node, Layout | None] = {}
        self.pos = 0

    # ---- spaces
    def new_space(self, n: int) -> int:
        s = self.n_spaces
        self.n_spaces += 1
        self.graph.add_node(s)
        self.space_size[s] = n
        self.space_order[s] = self.pos
        return s

    def block(self, layout: Layout | None, why: str) -> None:
        if layout is None:
            return
        for seg in layout.segs:
            self.blocked.setdefault(seg.space, []).append(why)

    def bind(self, space: int, b: Binding) -> None:
        self.bindings.setdefault(space, []).append(b)

    def merge(self, a: Layout, b: Layout, why: str) -> bool:
        """Same channels in ``a`` and ``b``: union the spaces segment by segment."""
        if a.axis != b.axis or len(a.segs) != len(b.segs) or any(
                (x.n, x.unit) != (y.n, y.unit) for x, y in zip(a.segs, b.segs)):
            return False
        for x, y in zip(a.segs, b.segs):
            self.graph.add_edge(x.space, y.space, why=why)
        return True

    # ---- helpers
    def layouts_in(self, node: fx.Node) -> list[Layout]:
        found: list[Layout] = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(self.env.get(n)) or n)
        return [l for l in found if l is not None]

    def block_inputs(self, node: fx.Node, why: str) -> None:
        for l in self.layouts_in(node):
            self.block(l, why)

    def fresh(self, node: fx.Node, axis: int) -> Layout | None:
        shape = _meta_shape(node)
        if shape is None or len(shape) <= axis:
            return None
        return Layout(axis, len(shape), (Seg(self.new_space(shape[axis]), shape[axis]),))

    def first_arg(self, node: fx.Node) -> tuple[fx.Node | None, Layout | None]:
        x = node.args[0] if node.args else next(iter(node.kwargs.values()), None)
        if isinstance(x, fx.Node):
            return x, self.env.get(x)
        return None, None

    def with_ndim(self, layout: Layout, node: fx.Node) -> Layout:
        shape = _meta_shape(node)
        return layout if shape is None else Layout(layout.axis, len(shape), layout.segs)

    # ---- run
    def run(self) -> None:
        modules = dict(self.model.named_modules())
        for node in self.gm.graph.nodes:
            self.pos += 1
            try:
                self.env[node] = self.visit(node, modules)
            except _Blocked as b:
                self.block_inputs(node, b.why)
                self.env[node] = None

    def visit(self, node: fx.Node, modules: dict[str, nn.Module]) -> Layout | None:
        op = node.op
        if op == "placeholder":
            shape = _meta_shape(node)
            if shape is None or len(shape) < 2:
                return None
            axis = _input_axis(node, modules, len(shape))
            lay = Layout(axis, len(shape), (Seg(self.new_space(shape[axis]), shape[axis]),))
            self.block(lay, f"model input {node.name}")
            return lay
        if op == "output":
            self.block_inputs(node, "model output")
            return None
        if op == "get_attr":
            return None
        if op == "call_module":
            mod = modules[node.target]
            self.calls[node.target] = self.calls.get(node.target, 0) + 1
            return self.visit_module(node, node.target, mod)
        if op == "call_function":
            return self.visit_function(node, node.target)
        if op == "call_method":
            return self.visit_method(node, node.target)
        raise _Blocked(f"unknown fx op {op}")

    # ---- modules
    def visit_module(self, node, name: str, mod: nn.Module) -> Layout | None:
        x, lay = self.first_arg(node)
        kind = type(mod).__name__
        if name in self.opaque:
            raise _Blocked(f"{name} ({kind}) could not be traced: {self.opaque[name]}")
        if isinstance(mod, nn.Linear):
            if lay is not None:
                if lay.axis != lay.ndim - 1:
                    self.block(lay, f"{name} (Linear) reads dim -1, not the channel dim {lay.axis}")
                else:
                    for off, seg in lay.offsets():
                        self.bind(seg.space, Binding(name, "cols", off, seg.n, seg.unit))
            shape = _meta_shape(node)
            out = self.fresh(node, len(shape) - 1) if shape else None
            if out is not None:
                self.bind(out.segs[0].space, Binding(name, "rows", 0, out.segs[0].n, 1))
            return out
        if isinstance(mod, _CONVS):
            k = math.prod(mod.kernel_size)
            if mod.groups == 1:
                if lay is not None:
                    if lay.axis != 1 or any(s.unit != 1 for s in lay.segs):
                        self.block(lay, f"{name} ({kind}) reads dim 1, which is not a plain channel dim here")
                    else:
                        for off, seg in lay.offsets():
                            self.bind(seg.space, Binding(name, "cols", off * k, seg.n, k))
                out = self.fresh(node, 1)
                if out is not None:
                    self.bind(out.segs[0].space, Binding(name, "rows", 0, out.segs[0].n, 1))
                return out
            if mod.groups == mod.in_channels == mod.out_channels and lay is not None and lay.axis == 1 \
                    and all(s.unit == 1 for s in lay.segs):
                for off, seg in lay.offsets():
                    self.bind(seg.space, Binding(name, "channels", off, seg.n, 1))
                return self.with_ndim(lay, node)
            why = (f"{name} ({kind}) is a grouped conv (groups={mod.groups}, in={mod.in_channels}, "
                   f"out={mod.out_channels}): a permutation would have to stay inside each group")
            self.block(lay, why)
            out = self.fresh(node, 1)
            self.block(out, why)
            return out
        if isinstance(mod, _BATCHNORMS):
            return self.passenger(node, name, kind, lay, channel_axis_required=1)
        if isinstance(mod, nn.GroupNorm):
            if mod.num_groups not in (1, mod.num_channels):
                raise _Blocked(f"{name} (GroupNorm) has {mod.num_groups} groups of channels")
            return self.passenger(node, name, kind, lay, channel_axis_required=1)
        if isinstance(mod, nn.LayerNorm):
            if lay is None:
                return None
            k = len(mod.normalized_shape)
            first = lay.ndim - k
            if lay.axis < first:      # normalised dims do not include the channels
                return lay
            if lay.axis != first:
                raise _Blocked(f"{name} (LayerNorm) normalises dims that start after the channel dim")
            return self.passenger(node, name, kind, lay, channel_axis_required=first)
        if isinstance(mod, nn.PReLU):
            if mod.num_parameters == 1:
                return lay
            return self.passenger(node, name, kind, lay, channel_axis_required=1)
        if isinstance(mod, _ACTIVATIONS):
            return lay
        if isinstance(mod, _SOFTMAX):
            return lay
        if isinstance(mod, _POOLS):
            return self.pool(node, name, lay)
        if isinstance(mod, nn.Flatten):
            return self.flatten(node, lay, mod.start_dim, mod.end_dim)
        raise _Blocked(f"{name} ({kind}) is not a module the channel graph knows")

    def passenger(self, node, name, kind, lay, channel_axis_required):
        if lay is None:
            return None
        if lay.axis != channel_axis_required or any(s.unit != 1 for s in lay.segs):
            raise _Blocked(f"{name} ({kind}) normalises dim {channel_axis_required}, not the channel dim")
        for off, seg in lay.offsets():
            self.bind(seg.space, Binding(name, "channels", off, seg.n, 1))
        return lay

    def pool(self, node, name, lay):
        if lay is None:
            return None
        if lay.axis != 1:
            raise _Blocked(f"{name}: pooling over the channel dim")
        return self.with_ndim(lay, node)

    def flatten(self, node, lay, start: int, end: int):
        if lay is None:
            return None
        x = node.args[0] if node.args else None
        shape = _meta_shape(x)
        if shape is None:
            raise _Blocked(f"{node.name}: flatten of a tensor of unknown shape")
        d = len(shape)
        start, end = start % d, end % d
        a = lay.axis
        if a < start:
            return Layout(a, d - (end - start), lay.segs)
        if a > end:
            return Layout(a - (end - start), d - (end - start), lay.segs)
        if any(shape[i] != 1 for i in range(start, a)):
            raise _Blocked(f"{node.name}: flatten puts dims before the channel dim in front of it")
        factor = math.prod(shape[a + 1:end + 1])
        return Layout(start, d - (end - start), tuple(Seg(s.space, s.n, s.unit * factor) for s in lay.segs))

    # ---- functions and methods
    def visit_function(self, node, fn) -> Layout | None:
        if fn is getattr:
            return None
        if fn is operator.getitem:
            if self.first_arg(node)[1] is not None:
                raise _Blocked(f"{node.name}: indexing or slicing a tensor with channels")
            return None
        if fn in _UNARY_FUNCS:
            return self.first_arg(node)[1]
        if fn in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax):
            return self.first_arg(node)[1]
        if fn in _POOL_FUNCS:
            return self.pool(node, node.name, self.first_arg(node)[1])
        if fn in _BINARY_FUNCS:
            return self.binary(node)
        if fn is torch.cat or fn is torch.concat:
            return self.cat(node)
        if fn is torch.flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, self.first_arg(node)[1], start, end)
        if fn in (torch.mean, torch.sum, torch.amax, torch.amin):
            return self.reduce(node)
        if fn in (torch.reshape,):
            return self.reshape(node)
        name = getattr(fn, "__name__", repr(fn))
        raise _Blocked(f"{node.name}: function {name} is not one the channel graph knows")

    def visit_method(self, node, meth: str) -> Layout | None:
        if meth in _METADATA:
            return None
        if meth in _UNARY_METHODS:
            return self.first_arg(node)[1]
        if meth in ("softmax", "log_softmax"):
            return self.first_arg(node)[1]
        if meth in _BINARY_METHODS:
            return self.binary(node)
        if meth == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, self.first_arg(node)[1], start, end)
        if meth in ("view", "reshape"):
            return self.reshape(node)
        if meth in ("mean", "sum", "amax", "amin"):
            return self.reduce(node)
        raise _Blocked(f"{node.name}: method .{meth}() is not one the channel graph knows")

    def binary(self, node) -> Layout | None:
        out_shape = _meta_shape(node)
        operands = [a for a in list(node.args[:2]) + [node.kwargs.get("other")] if a is not None]
        layouts, others = [], []
        for a in operands:
            if isinstance(a, fx.Node) and self.env.get(a) is not None:
                layouts.append(self.env[a])
            elif isinstance(a, fx.Node):
                others.append(a)
        if not layouts:
            return None
        first = layouts[0]
        if out_shape is None or len(out_shape) != first.ndim:
            raise _Blocked(f"{node.name}: broadcasting changes the number of dims")
        # an operand without channels is fine only if it broadcasts along the channel dim
        for o in others:
            shape = _meta_shape(o)
            if shape is None:
                if o.op == "call_method" and o.target in _METADATA or o.op == "call_function" and o.target is getattr:
                    continue  # a python number computed from sizes
                raise _Blocked(f"{node.name}: elementwise op with an operand of unknown shape")
            back = first.ndim - first.axis  # channel dim counted from the right
            if len(shape) >= back and shape[len(shape) - back] != 1:
                raise _Blocked(f"{node.name}: elementwise op with a per-channel tensor ({o.name}) "
                               "that is not a layer output")
        for other in layouts[1:]:
            if not self.merge(first, other, node.name):
                raise _Blocked(f"{node.name}: elementwise op on tensors with different channel layouts")
        return first

    def cat(self, node) -> Layout | None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        lays = [self.env.get(t) if isinstance(t, fx.Node) else None for t in tensors]
        if any(l is None for l in lays):
            raise _Blocked(f"{node.name}: concatenation of a tensor without known channels")
        d = lays[0].ndim
        dim = dim % d
        if any(l.axis != lays[0].axis or l.ndim != d for l in lays):
            raise _Blocked(f"{node.name}: concatenation of tensors with different channel dims")
        if dim == lays[0].axis:
            return Layout(dim, d, tuple(s for l in lays for s in l.segs))
        for l in lays[1:]:
            if not self.merge(lays[0], l, node.name):
                raise _Blocked(f"{node.name}: concatenation along a non-channel dim of different layouts")
        return lays[0]

    def reduce(self, node) -> Layout | None:
        lay = self.first_arg(node)[1]
        if lay is None:
            return None
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        if dims is None:
            raise _Blocked(f"{node.name}: reduction over all dims, channels included")
        dims = [dims] if isinstance(dims, int) else list(dims)
        dims = [d % lay.ndim for d in dims]
        if lay.axis in dims:
            raise _Blocked(f"{node.name}: reduction over the channel dim")
        if keep:
            return lay
        shift = sum(1 for d in dims if d < lay.axis)
        return Layout(lay.axis - shift, lay.ndim - len(dims), lay.segs)

    def reshape(self, node) -> Layout | None:
        lay = self.first_arg(node)[1]
        if lay is None:
            return None
        x = node.args[0]
        a, b = _meta_shape(x), _meta_shape(node)
        if a is None or b is None:
            raise _Blocked(f"{node.name}: reshape of unknown shapes")
        if a == b:
            return lay
        for k in range(1, len(a)):
            if b == a[:k] + (math.prod(a[k:]),):
                return self.flatten(node, lay, k, -1)
        raise _Blocked(f"{node.name}: reshape {a} -> {b} is not a flatten of trailing dims")


class _Blocked(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def is_conv1d(mod: nn.Module) -> bool:
    """True for ``transformers.pytorch_utils.Conv1D`` (GPT-2): a Linear whose weight is stored ``(in, out)``."""
    return type(mod).__name__ == "Conv1D" and hasattr(mod, "nf") and getattr(mod, "weight", None) is not None


def tensor_axes(mod: nn.Module, b: Binding) -> list[tuple[str, int]]:
    """``(tensor name, dim)`` pairs of ``mod`` that binding ``b`` permutes.

    A conv's ``cols`` act on the flattened ``in*kh*kw`` axis, reported as dim 1.
    """
    if b.role == "rows":
        return [("weight", 1 if is_conv1d(mod) else 0), ("bias", 0)]
    if b.role == "cols":
        return [("weight", 0 if is_conv1d(mod) else 1)]
    if b.role == "channels":
        if b.param is not None:
            return [(b.param, b.dim)]
        return [("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0)]
    return []


def _stored(mod: nn.Module, name: str):
    for n in (name, name + "_orig"):
        t = mod._parameters.get(n)
        if t is None:
            t = mod._buffers.get(n)
        if t is not None:
            return t
    return None


def split_inputs(example_inputs) -> tuple[tuple, dict]:
    """``(args, kwargs)`` from a tensor, a tuple of positional arguments or a dict of keyword arguments.

    Examples
    --------
    >>> import torch
    >>> split_inputs(torch.zeros(2))[0][0].shape, split_inputs({"input_ids": 1})
    (torch.Size([2]), ((), {'input_ids': 1}))
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise TypeError(f"example_inputs must be a tensor, a tuple of positional arguments or a dict of "
                    f"keyword arguments, got {type(example_inputs).__name__}")


def finish(b, model: nn.Module, opaque: dict[str, str], tracer: str) -> ChannelGraph:
    """Groups from a builder's spaces: connected components, with shared weights checked.

    A module whose weights are used more than once blocks its groups; a tensor
    shared between modules (tied embeddings) is fine when every binding of one
    of its dims lies in the same group with the same range (it is permuted once),
    else it blocks.
    """
    modules = dict(model.named_modules())
    comps = sorted(nx.connected_components(b.graph), key=lambda c: min(b.space_order[s] for s in c))
    comp_of = {s: i for i, c in enumerate(comps) for s in c}
    bad: dict[int, list[str]] = {}
    for name, n in b.calls.items():
        if n > 1:
            for space, bl in b.bindings.items():
                if any(bb.module == name for bb in bl):
                    bad.setdefault(comp_of[space], []).append(f"{name} is called {n} times (shared weights)")
    uses: dict[tuple[int, int], set] = {}
    names: dict[tuple[int, int], set] = {}
    for space, bl in b.bindings.items():
        for bb in bl:
            mod = modules.get(bb.module)
            if mod is None:
                continue
            for tname, dim in tensor_axes(mod, bb):
                t = _stored(mod, tname)
                if t is None:
                    continue
                key = (id(t), dim, bb.rows_block)
                uses.setdefault(key, set()).add((comp_of[space], bb.offset, bb.n, bb.unit))
                names.setdefault(key, set()).add(f"{bb.module}.{tname}")
    for key, u in uses.items():
        u = sorted(u)
        for i, x in enumerate(u):
            for y in u[i + 1:]:
                if x[0] != y[0] and not _compatible(x[1:], y[1:]):
                    why = (f"{' and '.join(sorted(names[key]))}: one tensor bound by different channel "
                           "groups on overlapping ranges")
                    bad.setdefault(x[0], []).append(why)
                    bad.setdefault(y[0], []).append(why)
    groups = []
    for gid, comp in enumerate(comps):
        spaces = sorted(comp)
        sizes = {b.space_size[s] for s in spaces}
        binds = [bb for s in spaces for bb in b.bindings.get(s, [])]
        blocked = sorted({w for s in spaces for w in b.blocked.get(s, [])} | set(bad.get(gid, [])))
        if len(sizes) != 1:
            blocked.append(f"spaces of different sizes {sorted(sizes)} were merged")
        groups.append(Group(gid, next(iter(sizes)), spaces, binds, blocked,
                            order=min(b.space_order[s] for s in spaces)))
    return ChannelGraph(groups, b.graph, opaque, tracer=tracer)


def _compatible(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Two bindings ``(offset, n, unit)`` of one tensor dim by different groups may both apply.

    Disjoint ranges are independent; a range inside one unit of the other
    (the dims of one head inside the whole-head space) moves with that unit.
    """
    (o1, n1, u1), (o2, n2, u2) = a, b
    e1, e2 = o1 + n1 * u1, o2 + n2 * u2
    if e1 <= o2 or e2 <= o1:
        return True
    for (oa, ua, ea), (ob, eb) in (((o1, u1, e1), (o2, e2)), ((o2, u2, e2), (o1, e1))):
        if oa <= ob and eb <= ea and (ob - oa) // ua == (eb - 1 - oa) // ua:
            return True
    return False


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
