"""Handlers of the torch.export front end for attention and elementwise ops.

Elementwise ops merge the channel spaces of their operands (a residual add)
and bind a per-channel parameter operand as a passenger (RMSNorm written out,
layer scale); on attention tensors they follow the heads, and a tensor that
varies along the head dim (rotary embeddings) blocks the per-head dims.
``scaled_dot_product_attention`` and eager attention (``q @ k^T``, softmax,
``@ v``) merge head h of the query with head h of the key and give the
output one more space for whole-head moves; ``cat`` and reductions are here
too.  The handlers are methods ``op_<aten name>`` of ``_AttentionOps``, a
mixin of the builder in :mod:`permsolve.torch.aten`.

Examples
--------
>>> import torch
>>> from permsolve.torch.aten import export_graph
>>> class Res(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.a, self.b, self.c = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)
...     def forward(self, x):
...         return self.c(torch.relu(self.a(x)) + self.b(x))
>>> [sorted(str(b) for b in grp.bindings) for grp in export_graph(Res(), (torch.randn(2, 4),)).free_groups()]
[['a rows', 'b rows', 'c cols']]
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .aten_base import Heads, Scores, _arg, _name, _shape
from .channels import Binding, Layout, _Blocked

__all__: list[str] = []


class _AttentionOps:
    """``op_*`` handlers for attention, elementwise ops, ``cat`` and reductions (a mixin of the builder)."""

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
