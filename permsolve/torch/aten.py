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
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

import networkx as nx
import torch
from torch import nn

from .graph import Binding, ChannelGraph, Layout, Seg, _Blocked, finish, is_conv1d

__all__ = ["Heads", "Scores", "export_graph", "export_program", "TraceError"]


class TraceError(RuntimeError):
    """The model could not be traced at all (for instance data-dependent control flow)."""


@dataclass(frozen=True)
class Heads:
    """Layout of an attention tensor ``(..., H, ..., d)``.

    head_axis, dim_axis : the axes of heads and of dims inside a head
    dims : per head, the channel space of its ``d`` dims (None: blocked)
    src : the producer binding the heads were split from (whole-head moves)
    rep : every source head appears ``rep`` times in a row (grouped-query attention)
    bcast : ``(axis, g)`` of an ``expand`` copy right after the head axis, not yet merged
    hspace, hunit : after attention, the whole-head space and how many heads one of its units holds
    hblock : why whole heads cannot move (None: they can)
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
    """Attention weights ``q @ k^T`` of eager attention ``(..., H, Tq, Tk)``: no channels, only heads."""

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


class _AtenBuilder:
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

    # ---- layers
    def _read_cols(self, name: str, lay, ndim_ok: bool, kind: str) -> None:
        if lay is None:
            return
        if not isinstance(lay, Layout) or not ndim_ok:
            self.block(lay, f"{name} ({kind}) reads the last dim, which is not the channel dim here")
            return
        for off, seg in lay.offsets():
            self.bind(seg.space, Binding(name, "cols", off, seg.n, seg.unit))
        if lay.heads is not None:
            hs, unit = lay.heads
            self.bind(hs, Binding(name, "cols", 0, self.space_size[hs], unit))
            self.head_out[hs] = self.head_out.get(hs, 0) + 1
            self.consumed.add(hs)

    def _produce_rows(self, node, name: str, axis: int):
        out = self.fresh(node, axis)
        if out is not None:
            self.bind(out.segs[0].space, Binding(name, "rows", 0, out.segs[0].n, 1))
        return out

    def op_linear(self, node):
        x, w = node.args[0], node.args[1]
        name = self.weight_module(w, "linear")
        b = _arg(node, 2, "bias")
        if b is not None and self.param(b) != (name, "bias"):
            raise _Blocked(f"{node.name}: linear whose bias is not its module's")
        lay = self.env.get(x)
        self._read_cols(name, lay, isinstance(lay, Layout) and lay.axis == lay.ndim - 1, "Linear")
        return self._produce_rows(node, name, len(_shape(node)) - 1)

    def op_addmm(self, node):
        bias, x, w = node.args[:3]
        name = self.weight_module(w, "addmm")
        if not is_conv1d(self.modules[name]) or self.param(bias) != (name, "bias") or node.kwargs:
            raise _Blocked(f"{node.name}: addmm that is not a Conv1D layer (weight stored (in, out))")
        lay = self.env.get(x)
        self._read_cols(name, lay, isinstance(lay, Layout) and lay.axis == 1, "Conv1D")
        return self._produce_rows(node, name, 1)

    def op_mm(self, node):
        x, w = node.args[:2]
        p = self.param(w)
        if p is None or not is_conv1d(self.modules.get(p[0], nn.Module())):
            raise _Blocked(f"{node.name}: matrix product that is not a layer")
        name = self.weight_module(w, "mm")
        lay = self.env.get(x)
        self._read_cols(name, lay, isinstance(lay, Layout) and lay.axis == 1, "Conv1D")
        return self._produce_rows(node, name, 1)

    def op_matmul(self, node):
        """Eager attention: ``q @ k^T`` (per head, Q and K dims share a permutation), then ``weights @ v``."""
        a, b = (self.env.get(x) for x in node.args[:2])
        nd = len(_shape(node))
        if isinstance(a, Heads) and isinstance(b, Heads) and a.ndim == b.ndim == nd \
                and a.head_axis == b.head_axis == nd - 3 and a.dim_axis == nd - 1 and b.dim_axis == nd - 2 \
                and a.hspace is None and b.hspace is None and a.H == b.H:
            self._merge_qk(node, a, b)
            return Scores(nd, a, b, a.hblock or b.hblock)
        if isinstance(a, Scores) and isinstance(b, Heads) and b.ndim == nd and b.head_axis == nd - 3 \
                and b.dim_axis == nd - 1 and b.hspace is None and b.H == a.q.H:
            return self._attention_out(node, a.q, a.k, b, a.hblock)
        raise _Blocked(f"{node.name}: matrix product of activations that is not attention "
                       "(q @ k^T, then weights @ v, on tensors split into heads)")

    op_bmm = op_matmul

    def _conv(self, node, groups: int):
        x, w = node.args[0], node.args[1]
        name = self.weight_module(w, "convolution")
        mod = self.modules[name]
        b = _arg(node, 2, "bias")
        if b is not None and self.param(b) != (name, "bias"):
            raise _Blocked(f"{node.name}: convolution whose bias is not its module's")
        lay = self.env.get(x)
        wshape = _shape(w)
        c_out, c_in_g = wshape[0], wshape[1]
        k = math.prod(wshape[2:])
        plain = isinstance(lay, Layout) and lay.axis == 1 and lay.heads is None and all(
            s.unit == 1 for s in lay.segs)
        if groups == 1:
            if lay is not None and not plain:
                self.block(lay, f"{name} (conv) reads dim 1, which is not a plain channel dim here")
            elif lay is not None:
                for off, seg in lay.offsets():
                    self.bind(seg.space, Binding(name, "cols", off * k, seg.n, k))
            return self._produce_rows(node, name, 1)
        if groups == c_out and c_in_g == 1 and plain and sum(s.n for s in lay.segs) == c_out:
            for off, seg in lay.offsets():
                self.bind(seg.space, Binding(name, "channels", off, seg.n, 1))
            return Layout(1, len(_shape(node)), lay.segs)
        return self._grouped_conv(node, name, lay, plain, groups, c_out, c_in_g, k)

    def _grouped_conv(self, node, name, lay, plain, groups, c_out, c_in_g, k):
        """Grouped conv: each group of input (output) channels is a space of its own, permuted inside it."""
        cog = c_out // groups
        nd = len(_shape(node))
        if lay is not None:
            if not plain or sum(s.n for s in lay.segs) != c_in_g * groups:
                self.block(lay, f"{name} (grouped conv) reads dim 1, which is not a plain channel dim here")
            else:
                try:
                    pieces = self._split(node, lay, 1, [c_in_g] * groups)
                except _Blocked as e:
                    self.block(lay, f"{name} is a grouped conv (groups={groups}) whose input channels cannot be "
                                    f"split into its groups ({e.why})")
                    pieces = []
                for j, piece in enumerate(pieces):
                    for off, seg in piece.offsets():
                        self.bind(seg.space, Binding(name, "cols", off * k, seg.n, k, rows_block=(j * cog, cog)))
        segs = []
        for j in range(groups):
            sp = self.new_space(cog)
            self.bind(sp, Binding(name, "rows", j * cog, cog, 1))
            segs.append(Seg(sp, cog, 1))
        return Layout(1, nd, tuple(segs))

    def op_conv1d(self, node):
        return self._conv(node, _arg(node, 6, "groups", 1))

    op_conv2d = op_conv3d = op_conv1d

    def op_convolution(self, node):
        if _arg(node, 6, "transposed", False):
            raise _Blocked(f"{node.name}: transposed convolution")
        return self._conv(node, _arg(node, 8, "groups", 1))

    def op_embedding(self, node):
        w = node.args[0]
        name = self.weight_module(w, "embedding")
        out = self.fresh(node, len(_shape(node)) - 1)
        self.bind(out.segs[0].space, Binding(name, "cols", 0, out.segs[0].n, 1))
        return out

    def _passengers(self, node, lay, tensors, kind: str):
        if lay is None:
            return None
        if not isinstance(lay, Layout) or lay.heads is not None or any(s.unit != 1 for s in lay.segs):
            raise _Blocked(f"{node.name}: {kind} of a tensor whose channels are not a plain dim")
        for t in tensors:
            if t is None:
                continue
            p = self.param(t)
            if p is None:
                raise _Blocked(f"{node.name}: {kind} with a per-channel tensor that is not a parameter")
            for off, seg in lay.offsets():
                self.bind(seg.space, Binding(p[0], "channels", off, seg.n, 1, param=p[1], dim=0))
        return lay

    def op_layer_norm(self, node):
        lay = self.env.get(node.args[0])
        k = len(node.args[1])
        if isinstance(lay, Layout):
            first = lay.ndim - k
            if lay.axis < first:
                return lay
            if lay.axis != first or k != 1:
                raise _Blocked(f"{node.name}: layer norm over dims that are more than the channel dim")
        return self._passengers(node, lay, [_arg(node, 2, "weight"), _arg(node, 3, "bias")], "layer norm")

    def op_rms_norm(self, node):
        lay = self.env.get(node.args[0])
        k = len(node.args[1])
        if isinstance(lay, Layout) and (lay.axis != lay.ndim - 1 or k != 1):
            raise _Blocked(f"{node.name}: RMS norm over dims that are not the channel dim")
        return self._passengers(node, lay, [_arg(node, 2, "weight")], "RMS norm")

    def _batch_norm(self, node, tensors):
        lay = self.env.get(node.args[0])
        if isinstance(lay, Layout) and lay.axis != 1:
            raise _Blocked(f"{node.name}: batch norm over dim 1, which is not the channel dim")
        return self._passengers(node, lay, tensors, "batch norm")

    def op_batch_norm(self, node):
        return self._batch_norm(node, node.args[1:5])

    def op__native_batch_norm_legit_no_training(self, node):
        return [self._batch_norm(node, node.args[1:5]), None, None]

    def op_group_norm(self, node):
        lay = self.env.get(node.args[0])
        g = node.args[1]
        if isinstance(lay, Layout):
            c = sum(s.n * s.unit for s in lay.segs)
            if lay.axis != 1 or g not in (1, c):
                raise _Blocked(f"{node.name}: group norm with {g} groups of channels")
        return self._passengers(node, lay, [_arg(node, 2, "weight"), _arg(node, 3, "bias")], "group norm")

    def op_pad(self, node):
        lay = self.env.get(node.args[0])
        pad = list(_arg(node, 1, "pad", []))
        if isinstance(lay, Layout):
            k = len(pad) // 2          # pads the last k dims, last dim first
            back = lay.ndim - 1 - lay.axis
            if back >= k or (pad[2 * back] == 0 and pad[2 * back + 1] == 0):
                return lay
        raise _Blocked(f"{node.name}: padding of the channel dim")

    op_constant_pad_nd = op_reflection_pad2d = op_replication_pad2d = op_pad

    def _pool(self, node, spatial: int):
        lay = self.env.get(node.args[0])
        if isinstance(lay, Layout) and lay.axis == lay.ndim - spatial - 1 and lay.heads is None:
            return lay
        raise _Blocked(f"{node.name}: pooling over the channel dim")

    def op_adaptive_avg_pool2d(self, node):
        return self._pool(node, 2)

    op_avg_pool2d = op_max_pool2d = op_adaptive_max_pool2d = op_adaptive_avg_pool2d

    def op_adaptive_avg_pool1d(self, node):
        return self._pool(node, 1)

    op_avg_pool1d = op_max_pool1d = op_adaptive_avg_pool1d

    def op_max_pool2d_with_indices(self, node):
        lay = self._pool(node, 2)
        return [lay, lay]      # the indices are spatial positions: they move with their channels

    def op_native_dropout(self, node):
        return [self.env.get(node.args[0]), None]

    # ---- elementwise
    def elementwise(self, node):
        out_shape = _shape(node)
        if out_shape is None:
            raise _Blocked(f"{node.name}: elementwise op without a tensor result")
        nd = len(out_shape)
        lays, others = [], []
        for a in list(node.args) + list(node.kwargs.values()):
            if isinstance(a, torch.fx.Node):
                v = self.env.get(a)
                (lays if v is not None else others).append(v if v is not None else a)
        if any(isinstance(l, list) for l in lays):
            raise _Blocked(f"{node.name}: elementwise op on a tuple")
        if all(isinstance(l, Layout) for l in lays):
            lays = [replace(l, axis=l.axis + nd - l.ndim, ndim=nd) for l in lays]
            first = lays[0]
            if first.heads is not None and len(lays) > 1:
                raise _Blocked(f"{node.name}: elementwise op on an attention output")
            for o in others:
                self._flat_operand(node, first, o, nd)
            for other in lays[1:]:
                if other.axis != first.axis or not self.merge(first, other, node.name):
                    raise _Blocked(f"{node.name}: elementwise op on tensors with different channel layouts")
            return first
        if all(isinstance(l, Heads) for l in lays):
            return self._heads_elementwise(node, lays, others, nd)
        if len(lays) == 1 and isinstance(lays[0], Scores) and lays[0].ndim == nd:
            sc = lays[0]
            for o in others:       # an additive mask: fine unless it differs per head
                shape = _shape(o)
                if shape is not None and len(shape) >= 3 and shape[-3] != 1:
                    sc = replace(sc, hblock=sc.hblock or f"{node.name}: attention weights changed per head ({o.name})")
            return sc
        raise _Blocked(f"{node.name}: elementwise op between attention heads and plain channels")

    def _flat_operand(self, node, lay: Layout, o, nd: int) -> None:
        shape = _shape(o)
        if shape is None:
            return  # a python number computed from sizes
        back = nd - lay.axis
        if len(shape) < back or shape[len(shape) - back] == 1:
            return  # broadcast along the channel dim
        ref = self.param_ref(o)
        if ref is None or lay.heads is not None or any(s.unit != 1 for s in lay.segs):
            raise _Blocked(f"{node.name}: elementwise op with a per-channel tensor ({o.name}) that is neither "
                           "a layer output nor a parameter")
        mod, pname, pdim = ref
        dim = pdim - back
        if dim < 0:
            raise _Blocked(f"{node.name}: per-channel parameter {mod}.{pname} broadcast in an unknown way")
        for off, seg in lay.offsets():
            self.bind(seg.space, Binding(mod, "channels", off, seg.n, 1, param=pname, dim=dim))

    def _heads_elementwise(self, node, lays: list[Heads], others, nd):
        lays = [replace(l, head_axis=l.head_axis + nd - l.ndim, dim_axis=l.dim_axis + nd - l.ndim, ndim=nd,
                        bcast=None if l.bcast is None else (l.bcast[0] + nd - l.ndim, l.bcast[1]))
                for l in lays]
        first = lays[0]
        if any((l.head_axis, l.dim_axis, l.H, l.d, l.rep) != (first.head_axis, first.dim_axis, first.H, first.d,
                                                              first.rep) for l in lays):
            raise _Blocked(f"{node.name}: elementwise op on attention tensors of different layouts")
        if any(l.hspace is not None for l in lays):
            raise _Blocked(f"{node.name}: elementwise op on an attention output")
        dims, hblock, src = first.dims, first.hblock, first.src
        for l in lays[1:]:
            if dims is not None and l.dims is not None:
                for a, b in zip(dims, l.dims):
                    if a != b:
                        self.merge_spaces(a, b, node.name)
            elif dims is not None or l.dims is not None:
                self.block(replace(first, dims=dims or l.dims, hspace=None),
                           f"{node.name}: added to head dims that cannot be permuted")
                dims = None
            hblock = hblock or l.hblock
            if l.src != src:
                hblock = hblock or f"{node.name}: combines heads of different layers"
        for o in others:
            shape = _shape(o)
            if shape is None:
                continue
            pad = (1,) * (nd - len(shape)) + shape
            if pad[first.dim_axis] != 1 and dims is not None:
                self.block(replace(first, dims=dims, hspace=None),
                           f"{node.name}: a tensor that varies along the head dim ({o.name}; rotary embedding: "
                           "every pair of dims has its own frequency) multiplies the heads")
                dims = None
            if pad[first.head_axis] != 1:
                hblock = hblock or f"{node.name}: a tensor that differs per head ({o.name})"
        return replace(first, dims=dims, hblock=hblock, src=src)

    def reduce(self, node):
        lay = self.env.get(node.args[0])
        if lay is None or isinstance(lay, list):
            return None
        dims = _arg(node, 1, "dim")
        if isinstance(lay, Heads):
            raise _Blocked(f"{node.name}: reduction of attention heads")
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0) or _name(node) in ("max", "min") \
                and len(node.args) < 2:
            return None  # reduced over everything: a permutation does not change it
        if isinstance(dims, int):
            dims = [dims]
        if not all(isinstance(d, int) for d in dims):
            raise _Blocked(f"{node.name}: reduction over unknown dims")
        dims = [d % lay.ndim for d in dims]
        if _name(node) in ("max", "min"):
            raise _Blocked(f"{node.name}: max/min with indices (an argmax over channels moves with them)")
        if lay.axis in dims:
            return None  # the whole channel dim is reduced: invariant under a permutation of it
        keep = _arg(node, 2, "keepdim", False)
        if keep:
            return lay
        shift = sum(1 for d in dims if d < lay.axis)
        return replace(lay, axis=lay.axis - shift, ndim=lay.ndim - len(dims))

    # ---- shapes
    def op_view(self, node):
        return self.reshape(node, self.env.get(node.args[0]), _shape(node.args[0]), _shape(node))

    op_reshape = op_view_copy = op__unsafe_view = op_view

    def op_flatten(self, node):
        return self.reshape(node, self.env.get(node.args[0]), _shape(node.args[0]), _shape(node))

    def op_unsqueeze(self, node):
        lay = self.env.get(node.args[0])
        return self.reshape(node, lay, _shape(node.args[0]), _shape(node), unsqueeze=node.args[1])

    def op_squeeze(self, node):
        return self.reshape(node, self.env.get(node.args[0]), _shape(node.args[0]), _shape(node))

    def reshape(self, node, lay, a, b, unsqueeze=None):
        if lay is None:
            return None
        if isinstance(lay, list) or a is None or b is None:
            raise _Blocked(f"{node.name}: reshape of unknown shapes")
        if a == b:
            return lay
        if isinstance(lay, Heads):
            return self.reshape_heads(node, lay, a, b, unsqueeze)
        return self.reshape_flat(node, lay, a, b)

    def reshape_flat(self, node, lay: Layout, a, b):
        ax = lay.axis
        P, C, Q = math.prod(a[:ax]), a[ax], math.prod(a[ax + 1:])
        for j in range(len(b)):
            if math.prod(b[:j]) != P:
                continue
            if b[j] == C and math.prod(b[j + 1:]) == Q:
                return Layout(j, len(b), lay.segs, lay.heads)
            # flatten: the channel dim merged with the dims after it (each channel a unit of them)
            for k in range(ax + 2, len(a) + 1):
                f = math.prod(a[ax + 1:k])
                if b[j] == C * f and math.prod(b[j + 1:]) == math.prod(a[k:]):
                    if lay.heads is not None:
                        break
                    return Layout(j, len(b), tuple(Seg(s.space, s.n, s.unit * f) for s in lay.segs))
            # split into heads: (..., H*d, ...) -> (..., H, d, ...)
            if j + 1 < len(b) and b[j] * b[j + 1] == C and math.prod(b[j + 2:]) == Q and b[j] > 1:
                return self.split_heads(node, lay, j, b)
        raise _Blocked(f"{node.name}: reshape {a} -> {b} moves the channel dim in a way the graph does not follow")

    def split_space(self, node, s: int, sizes: list[int]) -> list[int]:
        bl = self.bindings.get(s, [])
        if s in self.retired or self.graph.degree(s) or not bl or any(
                b.unit != 1 or b.n != self.space_size[s] or b.rows_block for b in bl):
            raise _Blocked(f"{node.name}: channels split into heads or pieces are also used unsplit")
        pieces, start = [], 0
        for n in sizes:
            c = self.new_space(n)
            self.bindings[c] = [replace(b, offset=b.offset + start, n=n) for b in bl]
            for w in self.blocked.get(s, []):
                self.blocked.setdefault(c, []).append(w)
            pieces.append(c)
            start += n
        self.retired[s] = pieces
        for c in pieces:
            self.parent[c] = s
        self.bindings[s] = []
        return pieces

    def split_heads(self, node, lay: Layout, j: int, b):
        H, d = b[j], b[j + 1]
        if len(lay.segs) != 1 or lay.segs[0].unit != 1 or lay.heads is not None:
            raise _Blocked(f"{node.name}: heads split from channels that are not one layer's output")
        s = lay.segs[0].space
        rows = [b for b in self.bindings.get(s, []) if b.role == "rows"]
        src = rows[0] if len(rows) == 1 and len(self.bindings[s]) == 1 else None
        dims = tuple(self.split_space(node, s, [d] * H))
        return Heads(len(b), j, j + 1, H, d, dims, src, src_space=s)

    def reshape_heads(self, node, lay: Heads, a, b, unsqueeze):
        ha, da = lay.head_axis, lay.dim_axis
        if unsqueeze is not None:
            u = unsqueeze % len(b)

            def sh(x):
                return x + 1 if x >= u else x
            bc = None if lay.bcast is None else (sh(lay.bcast[0]), lay.bcast[1])
            if u == ha + 1 and u != sh(da):
                bc = (u, 1)
            return replace(lay, ndim=len(b), head_axis=sh(ha), dim_axis=sh(da), bcast=bc)
        # merge heads and dims back into one channel dim
        if da == ha + 1 and len(b) == len(a) - 1 and b[:ha] == a[:ha] and b[ha] == lay.H * lay.d \
                and b[ha + 1:] == a[da + 1:]:
            if lay.dims is None:
                out = self.fresh(node, ha)
                self.block(out, f"{node.name}: head dims that cannot be permuted become channels")
                if lay.hspace is not None:
                    self.block_space(lay.hspace, f"{node.name}: head dims that cannot be permuted")
                return out
            segs = tuple(Seg(s, lay.d, 1) for s in lay.dims)
            heads = (lay.hspace, lay.hunit * lay.d) if lay.hspace is not None else None
            return Layout(ha, len(b), segs, heads)
        # grouped-query attention: merge an expanded copy axis into the heads
        if lay.bcast is not None and lay.bcast[0] == ha + 1 and len(b) == len(a) - 1 and b[:ha] == a[:ha] \
                and b[ha] == lay.H * a[ha + 1] and b[ha + 1:] == a[ha + 2:] and lay.hspace is None:
            g = a[ha + 1]
            dims = None if lay.dims is None else tuple(s for s in lay.dims for _ in range(g))
            return replace(lay, ndim=len(b), dim_axis=da - 1, H=lay.H * g, rep=lay.rep * g, dims=dims, bcast=None)
        # both axes untouched (e.g. the identity reshape of an sdpa output)
        m = {}
        for ax in (ha, da):
            P, C, Q = math.prod(a[:ax]), a[ax], math.prod(a[ax + 1:])
            hit = [j for j in range(len(b)) if math.prod(b[:j]) == P and b[j] == C and math.prod(b[j + 1:]) == Q]
            if not hit:
                raise _Blocked(f"{node.name}: reshape {a} -> {b} of attention heads")
            m[ax] = hit[0]
        return replace(lay, ndim=len(b), head_axis=m[ha], dim_axis=m[da], bcast=None)

    def op_expand(self, node):
        lay = self.env.get(node.args[0])
        a, b = _shape(node.args[0]), _shape(node)
        off = len(b) - len(a)
        if isinstance(lay, Layout):
            if b[lay.axis + off] != a[lay.axis]:
                raise _Blocked(f"{node.name}: expand of the channel dim")
            return replace(lay, axis=lay.axis + off, ndim=len(b))
        if isinstance(lay, Heads):
            bc = lay.bcast
            for i, (x, y) in enumerate(zip(a, b[off:])):
                if x != y:
                    if bc is not None and i == bc[0] and x == 1:
                        bc = (i, y)
                    else:
                        raise _Blocked(f"{node.name}: expand of attention heads along dim {i}")
            return replace(lay, ndim=len(b), head_axis=lay.head_axis + off, dim_axis=lay.dim_axis + off,
                           bcast=None if bc is None else (bc[0] + off, bc[1]))
        raise _Blocked(f"{node.name}: expand")

    def op_repeat_interleave(self, node):
        lay = self.env.get(node.args[0])
        reps = node.args[1] if len(node.args) > 1 else node.kwargs.get("repeats")
        dim = _arg(node, 2, "dim")
        if isinstance(lay, Heads) and isinstance(reps, int) and dim is not None \
                and dim % lay.ndim == lay.head_axis and lay.hspace is None:
            dims = None if lay.dims is None else tuple(s for s in lay.dims for _ in range(reps))
            return replace(lay, H=lay.H * reps, rep=lay.rep * reps, dims=dims)
        raise _Blocked(f"{node.name}: repeat_interleave that is not a repetition of key-value heads")

    def op_transpose(self, node):
        lay = self.env.get(node.args[0])
        nd = len(_shape(node))
        i, j = node.args[1] % nd, node.args[2] % nd
        order = list(range(nd))
        order[i], order[j] = order[j], order[i]
        return self.permute_axes(node, lay, order)

    def op_permute(self, node):
        nd = len(_shape(node))
        return self.permute_axes(node, self.env.get(node.args[0]), [d % nd for d in node.args[1]])

    def op_t(self, node):
        return self.permute_axes(node, self.env.get(node.args[0]), [1, 0])

    def permute_axes(self, node, lay, order):
        """``order[k]`` is the input axis that becomes axis k."""
        where = {src: k for k, src in enumerate(order)}
        if isinstance(lay, Layout):
            return replace(lay, axis=where[lay.axis])
        if isinstance(lay, Heads):
            bc = None if lay.bcast is None else (where[lay.bcast[0]], lay.bcast[1])
            return replace(lay, head_axis=where[lay.head_axis], dim_axis=where[lay.dim_axis], bcast=bc)
        raise _Blocked(f"{node.name}: transpose of a tuple")

    def op_select(self, node):
        lay = self.env.get(node.args[0])
        dim = node.args[1] % len(_shape(node.args[0]))
        if isinstance(lay, Layout) and dim != lay.axis:
            return replace(lay, axis=lay.axis - (dim < lay.axis), ndim=lay.ndim - 1)
        raise _Blocked(f"{node.name}: selecting one index of the channel dim or of attention heads")

    def op_slice(self, node):
        lay = self.env.get(node.args[0])
        a, b = _shape(node.args[0]), _shape(node)
        dim = _arg(node, 1, "dim", 0) % len(a)
        if a == b:
            return lay
        if isinstance(lay, Layout) and dim != lay.axis:
            return lay
        if isinstance(lay, Heads) and dim not in (lay.head_axis, lay.dim_axis):
            return lay
        if isinstance(lay, Heads) and dim == lay.dim_axis and lay.hspace is None:
            if lay.dims is not None:
                self.block(replace(lay, hspace=None), f"{node.name}: a slice inside the head dims (rotary "
                                                      "embedding: rotate_half pairs dims i and i+d/2)")
            return replace(lay, dims=None, d=b[dim])
        raise _Blocked(f"{node.name}: slicing the channel dim")

    def op_split(self, node):
        lay = self.env.get(node.args[0])
        a = _shape(node.args[0])
        size = node.args[1]
        dim = _arg(node, 2, "dim", 0) % len(a)
        sizes = [size] * (a[dim] // size) + ([a[dim] % size] if a[dim] % size else []) \
            if isinstance(size, int) else list(size)
        return self._split(node, lay, dim, sizes)

    def op_split_with_sizes(self, node):
        lay = self.env.get(node.args[0])
        a = _shape(node.args[0])
        return self._split(node, lay, _arg(node, 2, "dim", 0) % len(a), list(node.args[1]))

    def op_chunk(self, node):
        lay = self.env.get(node.args[0])
        a = _shape(node.args[0])
        dim = _arg(node, 2, "dim", 0) % len(a)
        n = node.args[1]
        size = -(-a[dim] // n)
        sizes = [min(size, a[dim] - i * size) for i in range(n) if i * size < a[dim]]
        return self._split(node, lay, dim, sizes)

    def _split(self, node, lay, dim, sizes):
        if not isinstance(lay, Layout):
            raise _Blocked(f"{node.name}: split of attention heads")
        if dim != lay.axis:
            return [lay] * len(sizes)
        if lay.heads is not None or len(lay.segs) != 1 or lay.segs[0].unit != 1:
            # pieces that line up with the segments
            out, segs, acc = [], list(lay.segs), []
            for n in sizes:
                tot = 0
                while segs and tot < n:
                    acc.append(segs.pop(0))
                    tot += acc[-1].n * acc[-1].unit
                if tot != n or lay.heads is not None:
                    raise _Blocked(f"{node.name}: split of the channel dim across segments")
                out.append(Layout(lay.axis, lay.ndim, tuple(acc)))
                acc = []
            return out
        pieces = self.split_space(node, lay.segs[0].space, sizes)
        return [Layout(lay.axis, lay.ndim, (Seg(p, n, 1),)) for p, n in zip(pieces, sizes)]

    def op_unbind(self, node):
        lay = self.env.get(node.args[0])
        dim = _arg(node, 1, "dim", 0) % len(_shape(node.args[0]))
        n = _shape(node.args[0])[dim]
        if isinstance(lay, Layout) and dim != lay.axis:
            return [replace(lay, axis=lay.axis - (dim < lay.axis), ndim=lay.ndim - 1)] * n
        raise _Blocked(f"{node.name}: unbind of the channel dim")

    def op_getitem(self, node):
        v = self.env.get(node.args[0])
        if isinstance(v, list):
            return v[node.args[1]]
        raise _Blocked(f"{node.name}: indexing a tensor with channels")

    def op_cat(self, node):
        tensors = node.args[0]
        nd = len(_shape(node))
        dim = _arg(node, 1, "dim", 0) % nd
        lays = [self.env.get(t) for t in tensors]
        known = [l for l in lays if l is not None]
        if all(isinstance(l, Layout) for l in known):
            first = known[0]
            if any(l.axis != first.axis or l.ndim != first.ndim or l.heads for l in known):
                raise _Blocked(f"{node.name}: concatenation of tensors with different channel dims")
            if dim == first.axis:
                if len(known) != len(lays):
                    raise _Blocked(f"{node.name}: concatenation of channels with a tensor without known channels")
                return Layout(dim, nd, tuple(s for l in lays for s in l.segs))
            for t, l in zip(tensors, lays):
                if l is None:
                    self._flat_operand(node, first, t, nd)
            for l in known[1:]:
                if not self.merge(first, l, node.name):
                    raise _Blocked(f"{node.name}: concatenation along a non-channel dim of different layouts")
            return first
        if all(isinstance(l, Heads) for l in known) and len(known) == len(lays):
            first = known[0]
            if any((l.head_axis, l.dim_axis, l.H, l.rep) != (first.head_axis, first.dim_axis, first.H, first.rep)
                   or l.hspace is not None for l in known):
                raise _Blocked(f"{node.name}: concatenation of different attention tensors")
            hblock = next((l.hblock for l in known if l.hblock), None)
            if any(l.src != first.src for l in known):
                hblock = hblock or f"{node.name}: concatenates heads of different layers"
            if dim == first.dim_axis:
                for l in known:
                    if l.dims is not None:
                        self.block(replace(l, hspace=None), f"{node.name}: concatenation inside the head dims")
                return replace(first, dims=None, d=_shape(node)[dim], hblock=hblock)
            if dim == first.head_axis:
                raise _Blocked(f"{node.name}: concatenation of heads")
            return self._heads_elementwise(node, known, [], nd)
        raise _Blocked(f"{node.name}: concatenation of attention heads with other tensors")

    op_concat = op_cat

    def op_scaled_dot_product_attention(self, node):
        q, k, v = (self.env.get(x) for x in node.args[:3])
        mask = _arg(node, 3, "attn_mask")
        gqa = node.kwargs.get("enable_gqa", False)
        if not all(isinstance(x, Heads) for x in (q, k, v)):
            raise _Blocked(f"{node.name}: attention on tensors that are not split into heads")
        nd = q.ndim
        for x in (q, k, v):
            if x.ndim != nd or x.head_axis != nd - 3 or x.dim_axis != nd - 1 or x.hspace is not None:
                raise _Blocked(f"{node.name}: attention inputs not laid out (..., heads, tokens, dims)")
        if gqa and k.H != q.H:
            g = q.H // k.H
            k, v = [replace(x, H=x.H * g, rep=x.rep * g,
                            dims=None if x.dims is None else tuple(s for s in x.dims for _ in range(g)))
                    for x in (k, v)]
        if not (q.H == k.H == v.H):
            raise _Blocked(f"{node.name}: query, key and value have different numbers of heads")
        self._merge_qk(node, q, k)
        ms = _shape(mask) if isinstance(mask, torch.fx.Node) else None
        why = f"{node.name}: the attention mask differs per head" if ms is not None and len(ms) >= 3 \
            and ms[-3] != 1 else None
        return self._attention_out(node, q, k, v, why)

    def _merge_qk(self, node, q: Heads, k: Heads) -> None:
        """Per head, the query dims and the key dims share one permutation."""
        if q.dims is not None and k.dims is not None:
            for a, b in zip(q.dims, k.dims):
                if a != b:
                    self.merge_spaces(a, b, f"{node.name} (query and key dims of one head)")
        else:
            for x in (q, k):
                if x.dims is not None:
                    self.block(x, f"{node.name}: the {'key' if x is q else 'query'} dims of these heads "
                                  "cannot be permuted")

    def _attention_out(self, node, q: Heads, k: Heads, v: Heads, why: str | None) -> Heads:
        """The attention output: the value's per-head dims, and one space for whole-head moves."""
        nd = q.ndim
        hs = None
        g = k.rep
        if q.src is not None and k.src is not None and v.src is not None:
            why = why or q.hblock or k.hblock or v.hblock
            if q.rep != 1 or k.rep != v.rep or q.H % g:
                why = why or f"{node.name}: query heads repeated, or key and value repeated differently"
            n = q.H // g
            hs = self.new_space(n)
            for x, unit in ((q, g * q.d), (k, k.d), (v, v.d)):
                self.bind(hs, Binding(x.src.module, "rows", x.src.offset, n, unit))
            self.head_src[hs] = [x.src_space for x in (q, k, v)]
            if why:
                self.block_space(hs, why)
        return Heads(nd, nd - 3, nd - 1, q.H, v.d, v.dims, None, 1, None, hs, g if hs is not None else 1)


def export_program(model: nn.Module, args: tuple = (), kwargs: dict | None = None):
    """Non-strict ``torch.export`` of ``model`` in eval mode (its modes are restored).

    Raises :class:`TraceError` with the reason when the model cannot be captured
    (data-dependent control flow is refused, never guessed).

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

    When the model cannot be exported the graph has ``traced=False`` and
    ``opaque[""]`` holds the reason.

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
