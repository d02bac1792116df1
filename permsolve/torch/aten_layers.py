"""Handlers of the torch.export front end for layers: linear, Conv1D, conv, embedding, norms, pad, pool.

A layer reads its input channels (*consumer* bindings: columns of the weight's
matrix view) and writes a new channel space (*producer* bindings: the
weight's rows and the bias); norms, depthwise convs and per-channel tensors
are *passengers* that move with the channels.  The handlers are methods
``op_<aten name>`` of ``_LayerOps``, a mixin of the builder in
:mod:`permsolve.torch.aten`.

Examples
--------
>>> import torch
>>> from permsolve.torch.aten import export_graph
>>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Conv2d(8, 4, 1))
>>> [str(b) for grp in export_graph(m, (torch.randn(1, 3, 8, 8),)).free_groups() for b in grp.bindings]
['0 rows', '1 channels', '2 cols']
"""
from __future__ import annotations

import math

from torch import nn

from .aten_base import _arg, _shape
from .channels import Binding, Layout, Seg, _Blocked, is_conv1d

__all__: list[str] = []


class _LayerOps:
    """``op_*`` handlers for layers (a mixin of the builder: the spaces and parameters are ``_AtenBase``'s)."""

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
