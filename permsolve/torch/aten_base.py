"""The torch.export front end's core: attention layouts, op tables and the builder's base.

:class:`Heads` and :class:`Scores` are the layouts of attention tensors (next
to :class:`~permsolve.torch.channels.Layout`, the layout of a tensor with a
channel dim).  ``_AtenBase`` holds the builder's channel spaces, its lookup
of lifted parameters and its walk over the aten graph, which sends each node
to an ``op_<aten name>`` handler of the op mixins
(:mod:`~permsolve.torch.aten_layers`, :mod:`~permsolve.torch.aten_shapes`,
:mod:`~permsolve.torch.aten_attention`); :mod:`permsolve.torch.aten` puts them
together and says what the front end understands.

Examples
--------
>>> import torch
>>> from permsolve.torch.aten import export_graph
>>> m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))
>>> [sorted(str(b) for b in grp.bindings) for grp in export_graph(m, (torch.randn(2, 8),)).free_groups()]
[['0 rows', '1 bias channels', '1 weight channels', '2 cols']]
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import networkx as nx
import torch
from torch import nn

from .channels import Binding, Layout, Seg, _Blocked

__all__ = ["Heads", "Scores"]


@dataclass(frozen=True)
class Heads:
    """Layout of an attention tensor ``(..., H, ..., d)``.

    Attributes
    ----------
    ndim : the tensor's number of dims
    head_axis, dim_axis : the axes of heads and of dims inside a head
    H, d : number of heads and dims per head
    dims : per head, the channel space of its ``d`` dims (None: blocked)
    src : the producer binding the heads were split from (whole-head moves)
    rep : every source head appears ``rep`` times in a row (grouped-query attention)
    bcast : ``(axis, g)`` of an ``expand`` copy right after the head axis, not yet merged
    hspace, hunit : after attention, the whole-head space and how many heads one of its units holds
    hblock : why whole heads cannot move (None: they can)
    src_space : the channel space the heads were split from (-1: none)

    Examples
    --------
    >>> h = Heads(4, 1, 3, H=2, d=8, dims=(5, 6))      # (B, H, T, d): head h's dims are space dims[h]
    >>> h.H * h.d, h.hspace is None
    (16, True)
    """

    ndim: int
    head_axis: int
    dim_axis: int
    H: int
    d: int
    dims: tuple[int, ...] | None
    src: Binding | None = None
    rep: int = 1
    bcast: tuple[int, int] | None = None
    hspace: int | None = None
    hunit: int = 1
    hblock: str | None = None
    src_space: int = -1


@dataclass(frozen=True)
class Scores:
    """Attention weights ``q @ k^T`` of eager attention ``(..., H, Tq, Tk)``: no channels, only heads.

    Attributes
    ----------
    ndim : the tensor's number of dims
    q, k : the query and key layouts it came from
    hblock : why whole heads cannot move (None: they can)

    Examples
    --------
    >>> q = Heads(4, 1, 3, H=2, d=8, dims=(5, 6))
    >>> Scores(4, q, q).q.H
    2
    """

    ndim: int
    q: Heads
    k: Heads
    hblock: str | None = None


_UNARY = {"gelu", "gelu_", "silu", "silu_", "relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_", "dropout",
          "dropout_", "neg", "to", "_to_copy", "alias", "clone", "contiguous", "detach", "abs", "exp", "sqrt",
          "rsqrt", "erf", "hardtanh", "hardtanh_", "clamp", "clamp_", "clamp_min", "clamp_max", "leaky_relu",
          "hardswish", "hardsigmoid", "elu", "softplus", "mish", "lift_fresh_copy", "_softmax", "softmax",
          "log_softmax", "_log_softmax", "log", "reciprocal", "square", "sin", "cos", "type_as",
          "feature_dropout", "alpha_dropout", "gelu_tanh", "relu6", "selu", "celu", "logsigmoid", "sign"}
_ELEMENTWISE = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "rsub", "maximum", "minimum", "pow",
                "where", "masked_fill", "masked_fill_", "eq", "ne", "lt", "le", "gt", "ge", "bitwise_and",
                "__and__", "__or__", "logical_and", "logical_or", "addcmul", "lerp"}
_REDUCE = {"mean", "sum", "amax", "amin", "var", "std", "max", "min", "logsumexp"}
_NOOP = {"_assert_tensor_metadata", "sym_size", "sym_numel", "sym_stride", "_assert_scalar", "detach_",
         "sym_constrain_range_for_size", "_assert_async"}


def _name(node) -> str:
    t = node.target
    if t is operator.getitem:
        return "getitem"
    packet = getattr(t, "overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(t, "__name__", str(t))


def _shape(x):
    v = x.meta.get("val") if isinstance(x, torch.fx.Node) else None
    return tuple(int(s) for s in v.shape) if isinstance(v, torch.Tensor) else None


def _arg(node, i, key, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


class _AtenBase:
    """Channel spaces, parameters and the walk over the aten graph (the op handlers are in the mixins)."""

    def __init__(self, model: nn.Module, ep, permute_outputs: bool):
        self.model = model
        self.modules = dict(model.named_modules())
        self.gm = ep.graph_module
        sig = ep.graph_signature
        self.fqn = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.permute_outputs = permute_outputs
        self.graph = nx.Graph()
        self.n_spaces = 0
        self.space_size: dict[int, int] = {}
        self.space_order: dict[int, int] = {}
        self.blocked: dict[int, list[str]] = {}
        self.bindings: dict[int, list[Binding]] = {}
        self.calls: dict[str, int] = {}
        self.env: dict = {}
        self.pos = 0
        self.retired: dict[int, list[int]] = {}   # split space -> its pieces
        self.misused: set[int] = set()
        self.parent: dict[int, int] = {}
        self.head_src: dict[int, list[int]] = {}  # head space -> spaces of the Q, K, V rows it moves
        self.head_out: dict[int, int] = {}        # head space -> output projections that read it

    # ---- spaces
    def new_space(self, n: int) -> int:
        s = self.n_spaces
        self.n_spaces += 1
        self.graph.add_node(s)
        self.space_size[s] = n
        self.space_order[s] = self.pos
        return s

    def _leaves(self, s: int) -> list[int]:
        if s not in self.retired:
            return [s]
        return [x for c in self.retired[s] for x in self._leaves(c)]

    def _ancestors(self, s: int) -> list[int]:
        out = [s]
        while out[-1] in self.parent:
            out.append(self.parent[out[-1]])
        return out

    def block_space(self, s: int, why: str) -> None:
        for x in self._leaves(s):
            self.blocked.setdefault(x, []).append(why)

    def _reuse(self, s: int) -> bool:
        """A split space used again: block its pieces (their split no longer says it all)."""
        if s not in self.retired:
            return False
        self.misused.add(s)
        self.block_space(s, f"channels split into heads or pieces are also used unsplit ({self._where})")
        return True

    def bind(self, s: int, b: Binding) -> None:
        if self._reuse(s):
            return
        self.bindings.setdefault(s, []).append(b)

    def fresh(self, node, axis: int) -> Layout | None:
        shape = _shape(node)
        if shape is None or len(shape) <= axis:
            return None
        return Layout(axis, len(shape), (Seg(self.new_space(shape[axis]), shape[axis]),))

    def block(self, lay, why: str) -> None:
        if isinstance(lay, Layout):
            for seg in lay.segs:
                self.block_space(seg.space, why)
            if lay.heads is not None:
                self.block_space(lay.heads[0], why)
        elif isinstance(lay, Heads):
            for s in lay.dims or ():
                self.block_space(s, why)
            if lay.hspace is not None:
                self.block_space(lay.hspace, why)
        elif isinstance(lay, (list, tuple)):
            for x in lay:
                self.block(x, why)

    def merge_spaces(self, a: int, b: int, why: str) -> None:
        ra, rb = self._reuse(a), self._reuse(b)
        if ra or rb:
            if not ra:
                self.block_space(a, f"merged with split channels ({why})")
            if not rb:
                self.block_space(b, f"merged with split channels ({why})")
            return
        self.graph.add_edge(a, b, why=why)

    def merge(self, a: Layout, b: Layout, why: str) -> bool:
        if len(a.segs) != len(b.segs) or any((x.n, x.unit) != (y.n, y.unit) for x, y in zip(a.segs, b.segs)):
            return False
        for x, y in zip(a.segs, b.segs):
            self.merge_spaces(x.space, y.space, why)
        return True

    # ---- parameters
    def param(self, x) -> tuple[str, str] | None:
        """``(module, tensor name)`` of a lifted parameter or buffer (a pruned ``orig * mask`` too)."""
        if not isinstance(x, torch.fx.Node):
            return None
        if x.op == "placeholder" and x.name in self.fqn:
            mod, _, name = self.fqn[x.name].rpartition(".")
            return mod, name
        if x.op == "call_function" and _name(x) == "mul" and len(x.args) == 2:
            a, b = (self.param(y) for y in x.args)
            if a and b and a[0] == b[0] and {a[1], b[1]} == {"weight_orig", "weight_mask"}:
                return a[0], "weight"
        return None

    def weight_module(self, w, kind: str) -> str:
        p = self.param(w)
        if p is None or p[1] != "weight" or p[0] not in self.modules:
            raise _Blocked(f"{self._where}: {kind} with a weight that is not a module's parameter")
        if kind != "embedding":   # a tied embedding is looked up, not applied: it may share a layer's weight
            self.calls[p[0]] = self.calls.get(p[0], 0) + 1
        return p[0]

    def param_ref(self, x):
        """``(module, name, ndim)`` when ``x`` is a parameter, possibly expanded, cast or unsqueezed in front."""
        lead = 0
        while isinstance(x, torch.fx.Node) and x.op == "call_function" and _name(x) in (
                "expand", "to", "_to_copy", "alias", "clone", "contiguous", "unsqueeze", "view", "reshape",
                "type_as"):
            if _name(x) in ("unsqueeze", "view", "reshape"):
                a, b = _shape(x.args[0]), _shape(x)
                if a is None or b is None or len(b) < len(a) or b[len(b) - len(a):] != a:
                    return None  # only leading dims of size 1 may be added
            x = x.args[0]
        p = self.param(x)
        if p is None or p[0] not in self.modules:
            return None
        return p[0], p[1], len(_shape(x) or ())

    # ---- run
    def layouts_in(self, node) -> list:
        found = []

        def visit(a):
            v = self.env.get(a)
            if v is not None:
                found.append(v)
            return a
        torch.fx.node.map_arg((node.args, node.kwargs), visit)
        flat = []
        for v in found:
            flat.extend(v if isinstance(v, list) else [v])
        return [v for v in flat if v is not None]

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            self.pos += 1
            self._where = node.name
            ins = self.layouts_in(node)
            self.consumed: set[int] = set()
            try:
                out = self.visit(node)
            except _Blocked as b:
                self.block(ins, b.why)
                out = None
            self.env[node] = out
            outs = out if isinstance(out, list) else [out]
            carried = {o.heads[0] for o in outs if isinstance(o, Layout) and o.heads} | {
                o.hspace for o in outs if isinstance(o, Heads) and o.hspace is not None}
            for lay in ins:
                hs = lay.heads[0] if isinstance(lay, Layout) and lay.heads else getattr(lay, "hspace", None)
                if hs is not None and hs not in carried and hs not in self.consumed:
                    self.block_space(hs, f"{node.name}: the attention output goes through {_name(node)}, "
                                         "which whole-head moves do not cross")
        for hs in self.head_src:
            if self.head_out.get(hs, 0) != 1:
                self.block_space(hs, "the attention output is not read by exactly one linear layer")
            if any(a in self.misused for s in self.head_src[hs] for a in self._ancestors(s)):
                self.block_space(hs, "the query, key or value channels are also used elsewhere")

    def visit(self, node):
        op = node.op
        if op == "placeholder":
            return self.placeholder(node)
        if op == "output":
            return self.output(node)
        if op == "get_attr":
            return None
        if op != "call_function":
            raise _Blocked(f"unknown op {op}")
        name = _name(node)
        ins = self.layouts_in(node)
        if name in _NOOP:
            return None
        if not ins and name not in ("linear", "addmm", "mm", "conv1d", "conv2d", "conv3d", "convolution",
                                    "embedding"):
            return None
        h = getattr(self, "op_" + name, None)
        if h is not None:
            return h(node)
        if name in _UNARY:
            return self.env.get(node.args[0]) if node.args else None
        if name in _ELEMENTWISE:
            return self.elementwise(node)
        if name in _REDUCE:
            return self.reduce(node)
        raise _Blocked(f"{node.name}: aten.{name} is not an op the channel graph knows")

    # ---- inputs and outputs
    def placeholder(self, node):
        if node.name in self.fqn:
            return None
        v = node.meta.get("val")
        shape = _shape(node)
        if shape is None or len(shape) < 2 or not v.dtype.is_floating_point:
            return None
        users = {_name(u) for u in node.users if u.op == "call_function"}
        axis = 1 if users & {"conv1d", "conv2d", "conv3d", "convolution"} else len(shape) - 1
        lay = self.fresh(node, axis)
        self.block(lay, f"model input {node.name}")
        return lay

    def output(self, node):
        leaves = torch.utils._pytree.tree_leaves(node.args[0])
        for i, leaf in enumerate(leaves):
            lay = self.env.get(leaf)
            if lay is None:
                continue
            if self.permute_outputs and isinstance(lay, Layout) and lay.heads is None:
                for off, seg in lay.offsets():
                    self.bind(seg.space, Binding("<output>", "output", off, seg.n, seg.unit, param=str(i),
                                                 dim=lay.axis))
            else:
                self.block(lay, "model output" + ("" if isinstance(lay, Layout) else " (attention heads)"))
        return None
