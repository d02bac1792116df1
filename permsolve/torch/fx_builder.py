"""The torch.fx front end of the channel graph: a builder over a torch.fx trace.

:func:`~permsolve.torch.graph.channel_graph` uses it when torch.fx traces the
whole model (else the torch.export front end, :mod:`permsolve.torch.aten`).

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
>>> from permsolve.torch.graph import channel_graph
>>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
...                         torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
>>> [str(b) for grp in channel_graph(m, torch.randn(2, 3, 6, 6)).free_groups() for b in grp.bindings]
['0 rows', '1 channels', '4 cols[0:+8x16]']
"""
from __future__ import annotations

import math
import operator

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from .channels import Binding, Layout, Seg, _Blocked

__all__: list[str] = []


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
