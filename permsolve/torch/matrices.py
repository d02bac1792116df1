"""The weight matrices of a model and the :class:`~permsolve.TileProblem` of one channel group.

:func:`weight_matrix` and :func:`nm_weight_matrix` view a layer's weight as
the matrix a tile or N:M mask prunes; :func:`group_problem` builds, from the
current weights, the problem :func:`~permsolve.torch.permute.permute_model`
solves for one channel group in a given scope (:data:`SCOPES`).

Examples
--------
>>> import torch
>>> from permsolve.torch.graph import channel_graph
>>> m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
>>> grp, = channel_graph(m, torch.randn(2, 8)).free_groups()
>>> p = group_problem(m, grp, tile=(4, 4), sparsity=0.5, scope="group")
>>> [mem.name for mem in p.members], p.perm_sizes
(['0 rows', '2 cols'], {'perm': 16})
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..masks import Mask, get_mask
from ..metrics import importance as importance_of
from ..problem import Member, TileProblem, parse_tile
from .channels import Group, is_conv1d

__all__ = ["SCOPES", "weight_matrix", "prunable_layers", "channel_last", "nm_weight_matrix", "nm_unsupported",
           "mask_arguments", "group_problem"]

SCOPES = {
    "layer": "TileTrans: the producers' rows decide (their retained importance is the objective); "
             "consumers and passengers follow",
    "group": "the layer pass, then one pass where every matrix of a group counts (producers' rows, "
             "consumers' columns, depthwise convs), each step kept only if the model objective does not fall",
    "joint": "group passes repeated until the model objective (all matrices, both axes) stops improving",
}


def _weight(mod: nn.Module) -> torch.Tensor:
    """The weight as the model uses it (``weight_orig * weight_mask`` if pruned)."""
    w = getattr(mod, "weight")
    return w.detach()


def weight_matrix(mod: nn.Module, rows: slice | None = None, cols: slice | None = None) -> np.ndarray:
    """Matrix view ``(out, in*kh*kw)`` of a Linear/Conv weight (Conv1D: its transpose), as float64 numpy.

    A pruned layer's weight is ``weight_orig * weight_mask`` (as the model uses it).

    Parameters
    ----------
    mod : a Linear, Conv or GPT-2 ``Conv1D`` layer
    rows, cols : only that block of the matrix view (converted alone, which is cheaper)

    Returns
    -------
    ``numpy.ndarray`` (float64)

    Examples
    --------
    >>> import torch
    >>> weight_matrix(torch.nn.Conv2d(4, 2, 3)).shape, weight_matrix(torch.nn.Linear(8, 6), rows=slice(0, 2)).shape
    ((2, 36), (2, 8))
    """
    w = _weight(mod)
    if hasattr(mod, "weight_orig") and hasattr(mod, "weight_mask"):
        w = (mod.weight_orig * mod.weight_mask).detach()
    if is_conv1d(mod):
        w = w.t()
    w = w.reshape(w.shape[0], -1)
    if rows is not None:
        w = w[rows]
    if cols is not None:
        w = w[:, cols]
    return w.double().cpu().numpy()


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear, (non-transposed) Conv and GPT-2 ``Conv1D`` layer with a weight, by qualified name.

    Parameters
    ----------
    model : any module

    Returns
    -------
    dict of module name -> module, in ``named_modules`` order

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
    ...                         torch.nn.Linear(8, 2))
    >>> list(prunable_layers(m))
    ['0', '3']
    """
    return {name: m for name, m in model.named_modules()
            if (isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or is_conv1d(m))
            and getattr(m, "weight", None) is not None}


def channel_last(mask: str | Mask) -> bool:
    """Whether ``mask`` runs along input channels at each spatial position (N:M), not over tiles.

    A family that fixes its tile (N:M: 1x1 elements) is the sparsity of sparse
    tensor cores: a conv weight is then viewed as ``(C_out, kh*kw*C_in)``
    (:func:`nm_weight_matrix`), a Linear as ``(out, in)``.

    Parameters
    ----------
    mask : a mask name (``"global"``, ``"row-balanced"``, ``"2:4"``, ...) or a :class:`~permsolve.masks.Mask`

    Returns
    -------
    bool

    Examples
    --------
    >>> channel_last("2:4"), channel_last("global")
    (True, False)
    """
    return get_mask(mask).fixed_tile is not None


def nm_weight_matrix(mod: nn.Module) -> np.ndarray:
    """Matrix view ``(C_out, kh*kw*C_in)`` of a Linear/Conv weight, input channels fastest, float64 numpy.

    The layout N:M kernels use: row ``o`` lists, for every spatial position in
    turn, the weights of all input channels.  A Linear weight is ``(out, in)``.

    Parameters
    ----------
    mod : a Linear, Conv or GPT-2 ``Conv1D`` layer (a pruned one: ``weight_orig * weight_mask``)

    Returns
    -------
    ``numpy.ndarray`` (float64)

    Examples
    --------
    >>> conv = torch.nn.Conv2d(4, 2, 3)
    >>> M = nm_weight_matrix(conv)
    >>> M.shape, float(M[1, 4]) == float(conv.weight.detach()[1, 0, 0, 1])
    ((2, 36), True)
    """
    w = _weight(mod)
    if hasattr(mod, "weight_orig") and hasattr(mod, "weight_mask"):
        w = (mod.weight_orig * mod.weight_mask).detach()
    if is_conv1d(mod):    # GPT-2's Conv1D stores (in, out)
        w = w.t()
    if w.dim() > 2:
        w = w.movedim(1, -1)
    return w.reshape(w.shape[0], -1).double().cpu().numpy()


def nm_unsupported(mod: nn.Module, mask: str | Mask) -> str | None:
    """None if ``mask`` (N:M) can prune ``mod``'s weight, else why not (in one line).

    Groups of M run along the input channels, so the input channel count (of
    each conv group) must be a multiple of M, as in NVIDIA's ASP.

    Parameters
    ----------
    mod : a layer with a weight
    mask : the N:M mask (name or :class:`~permsolve.masks.Mask`)

    Returns
    -------
    None, or the reason as one line

    Examples
    --------
    >>> nm_unsupported(torch.nn.Linear(8, 2), "2:4") is None, nm_unsupported(torch.nn.Conv2d(1, 8, 3), "2:4")
    (True, '2:4 needs the input channels (1) to be a multiple of 4')
    """
    mask = get_mask(mask)
    c_in = _weight(mod).shape[1]
    try:
        mask.check_grid(1, c_in)
    except ValueError as e:
        m = getattr(mask, "m", None)
        return f"{mask} needs the input channels ({c_in}) to be a multiple of {m}" if m else f"{c_in} input channels: {e}"
    return None


def mask_arguments(mask, tile, sparsity) -> tuple[Mask, tuple[int, int], float]:
    """``(mask, tile, sparsity)`` checked: a family that fixes tile and sparsity (N:M) fills them in.

    Parameters
    ----------
    mask : mask name or :class:`~permsolve.masks.Mask`
    tile : ``(h, w)``, ``"HxW"`` or None (only with a mask that fixes it)
    sparsity : fraction pruned, or None (only with a mask that fixes it)

    Returns
    -------
    ``(Mask, (h, w), float)``

    Raises
    ------
    ValueError
        if a fixed tile or sparsity is contradicted, or a needed one is missing.

    Examples
    --------
    >>> mask_arguments("2:4", None, None)
    (NMMask(n=2, m=4), (1, 1), 0.5)
    >>> mask_arguments("global", "16x1", 0.5)
    (GlobalMask(), (16, 1), 0.5)
    """
    mask = get_mask(mask)
    if mask.fixed_tile is not None:
        if tile is not None and parse_tile(tile) != mask.fixed_tile:
            raise ValueError(f"tile does not apply to the {mask} mask (it fixes tile and sparsity)")
        if sparsity is not None and abs(float(sparsity) - mask.fixed_sparsity) > 1e-12:
            raise ValueError(f"the {mask} mask implies sparsity {mask.fixed_sparsity:g}, got {sparsity}")
        return mask, mask.fixed_tile, mask.fixed_sparsity
    if tile is None or sparsity is None:
        raise ValueError(f"the {mask} mask needs tile= and sparsity=")
    return mask, parse_tile(tile), float(sparsity)


def _member_sparsity(s: float) -> float:
    return min(max(float(s), 0.0), 1.0 - 1e-9)


def group_problem(model: nn.Module, group: Group, *, tile=None, sparsity: float | None = None, metric: str = "l1",
                  scope: str = "layer", mask: str = "global",
                  layer_sparsity: Mapping[str, float] | None = None) -> TileProblem:
    """The :class:`~permsolve.TileProblem` of one channel group, from the current weights.

    Every member binds the group's one permutation, named ``"perm"`` (``"row"``
    or ``"col"`` when the problem has a single matrix): producers
    with their rows (unit 1), consumers with a column range (unit ``kh*kw``
    for a conv, ``h*w`` for a flattened channel), depthwise convs with their
    rows.  ``scope="layer"`` counts the producers only.

    With an N:M mask (:func:`channel_last`) the producers' rows cannot change
    the value, so the consumers' input channels carry the objective whatever
    the scope (see :func:`_nm_members`).

    Parameters
    ----------
    model : the model, as it is now (its weights give the importance)
    group : a free group of the model's :func:`~permsolve.torch.graph.channel_graph`
    tile, sparsity, metric, mask : as for :func:`~permsolve.torch.permute.permute_model`
    scope : ``"layer"`` (producers only) or ``"group"``/``"joint"`` (every matrix the group touches)
    layer_sparsity : module name -> sparsity, overriding ``sparsity`` for that layer

    Returns
    -------
    :class:`~permsolve.TileProblem`; its one permutation moves the group's channels

    Raises
    ------
    ValueError
        if the group has no weight matrix to optimise (or, N:M, no consumer the mask can prune).

    Examples
    --------
    >>> import torch
    >>> from permsolve.torch.graph import channel_graph
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> grp, = channel_graph(m, torch.randn(2, 8)).free_groups()
    >>> p = group_problem(m, grp, tile=(4, 4), sparsity=0.5)          # layer scope: the producer's rows
    >>> [mem.name for mem in p.members], p.perm_sizes
    (['0 rows'], {'row': 16})
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes are: {', '.join(SCOPES)}")
    if channel_last(mask):
        return _group_tile_problem(_nm_members(model, group, get_mask(mask), metric), group)
    modules = dict(model.named_modules())
    prunable = prunable_layers(model)
    ls = dict(layer_sparsity or {})
    members: list[Member] = []
    producers = {b.module for b in group.producers}
    seen: set = set()
    for b in group.bindings:
        mod = prunable.get(b.module)
        if mod is None or b.role == "output" or (b.role == "channels" and b.param is not None):
            continue
        key = (id(mod.weight), b.role, b.offset)
        if key in seen:     # tied weights: one matrix, one member
            continue
        seen.add(key)
        s = _member_sparsity(ls.get(b.module, sparsity))
        rng = slice(b.offset, b.offset + b.n * b.unit)
        if b.role == "rows":
            M = importance_of(weight_matrix(mod, rows=rng), metric)
            members.append(Member(M, tile, s, mask, rows="perm", row_unit=b.unit, name=f"{b.module} rows"))
        elif scope == "layer":
            continue
        elif b.role == "cols":
            if b.module in producers:  # the same permutation on both axes: counted by its rows
                continue
            blk = None if b.rows_block is None else slice(b.rows_block[0], sum(b.rows_block))
            M = importance_of(weight_matrix(mod, rows=blk, cols=rng), metric)
            members.append(Member(M, tile, s, mask, cols="perm", col_unit=b.unit, name=f"{b.module} cols"))
        elif b.role == "channels" and isinstance(mod, nn.modules.conv._ConvNd):
            M = importance_of(weight_matrix(mod), metric)[b.offset:b.offset + b.n]
            members.append(Member(M, tile, s, mask, rows="perm", name=f"{b.module} depthwise"))
    return _group_tile_problem(members, group)


def _group_tile_problem(members: list[Member], group: Group) -> TileProblem:
    if not members:
        raise ValueError(f"group {group.name} has no weight matrix to optimise")
    if len(members) == 1:  # a single-matrix problem, named as from_matrix names it
        m = members[0]
        axis = "rows" if m.rows else "cols"
        pname = "row" if m.rows else "col"
        m.rows, m.cols = (pname, None) if m.rows else (None, pname)
        return TileProblem(members, {pname: group.size}, axis=axis)
    return TileProblem(members, {"perm": group.size})


def _nm_members(model: nn.Module, group: Group, mask: Mask, metric: str) -> list[Member]:
    """The members of an N:M group problem: every consumer's input channels of the group.

    A conv consumer's matrix is its :func:`nm_weight_matrix` restricted to the
    group's channels at every spatial position, ``(C_out, kh*kw*n)``, whose
    channel units are strided (``kh*kw`` columns ``n`` apart); a Linear's is its
    column range (contiguous units: ``h*w`` features of a flattened channel).
    Consumers that N:M cannot prune (:func:`nm_unsupported`) are left out (they
    stay dense); a channel range that splits an N:M group of its layer is an
    error (the group is then skipped with that reason).
    """
    modules = dict(model.named_modules())
    producers = {b.module for b in group.producers}
    members = []
    for b in group.consumers:
        mod = modules[b.module]
        if b.module in producers or getattr(mod, "weight", None) is None or nm_unsupported(mod, mask):
            continue
        S = importance_of(nm_weight_matrix(mod), metric)
        c_in = _weight(mod).shape[1]
        if _weight(mod).dim() > 2:            # conv: k = kh*kw spatial positions, channels fastest
            k = S.shape[1] // c_in
            c0 = b.offset // b.unit
            cols = (np.arange(k)[:, None] * c_in + c0 + np.arange(b.n)[None, :]).ravel()
            unit, layout = k, "strided" if k > 1 else "contiguous"
        else:
            cols = np.arange(b.offset, b.offset + b.n * b.unit)
            unit, layout = b.unit, "contiguous"
        gid = mask.groups(1, S.shape[1], mask.fixed_sparsity)[0].ravel()
        if np.isin(gid, gid[cols]).sum() != cols.size:
            raise ValueError(f"{b}: the group's channels split {mask} groups of {b.module}'s inputs")
        members.append(Member(S[:, cols], mask=mask, cols="perm", col_unit=unit, col_layout=layout,
                              name=f"{b.module} cols"))
    if not members:
        raise ValueError(f"group {group.name}: no consumer the {mask} mask can prune")
    return members
