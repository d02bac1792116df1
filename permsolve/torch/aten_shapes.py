"""Handlers of the torch.export front end for shape ops: view/reshape/flatten, transpose/permute, split into heads.

A reshape keeps the channel dim (it moves, or merges with the dims after it:
each channel becomes a unit of them), splits it into attention heads
``(..., H*d) -> (..., H, d)`` (one channel space per head), or merges heads
back; ``transpose``/``permute`` move the axes; ``expand``/``repeat_interleave``
repeat key-value heads (grouped-query attention); ``select``/``slice``/
``split``/``chunk``/``unbind`` keep or split the channels.  The handlers are
methods ``op_<aten name>`` of ``_ShapeOps``, a mixin of the builder in
:mod:`permsolve.torch.aten`.

Examples
--------
>>> import torch
>>> from permsolve.torch.aten import export_graph
>>> class Split(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.a, self.b, self.c = torch.nn.Linear(4, 8), torch.nn.Linear(3, 4), torch.nn.Linear(5, 4)
...     def forward(self, x):
...         y, z = self.a(x).split([3, 5], dim=-1)
...         return self.b(y) + self.c(z)
>>> g = export_graph(Split(), (torch.randn(2, 4),))
>>> [[str(b) for b in grp.bindings] for grp in g.free_groups()]
[['a rows', 'b cols'], ['a rows[3:+5x1]', 'c cols']]
"""
from __future__ import annotations

import math
from dataclasses import replace

from .aten_base import Heads, _arg, _shape
from .channels import Layout, Seg, _Blocked

__all__: list[str] = []


class _ShapeOps:
    """``op_*`` handlers for shape ops (a mixin of the builder: the spaces are ``_AtenBase``'s)."""

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
