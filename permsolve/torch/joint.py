"""The whole-model objective and coordinate ascent over channel groups.

:func:`~permsolve.torch.permute.permute_model` solves one channel group at a
time.  What every group's permutation changes is the importance the tile (or
N:M) masks of the model's weight matrices keep, summed over all of them: the
**model objective** :func:`model_objective`.  A matrix touches two groups (its
rows belong to the group it writes, its columns to the group it reads), so the
best order of one group depends on the others.

* ``scope="layer"``: one pass, each group solved for its producers' rows
  (TileTrans).
* ``scope="group"``: the layer pass, then one pass in which every group is
  re-solved for every matrix it touches (producers' rows, consumers' columns,
  depthwise convs), each matrix's other axis as currently permuted, starting
  from the current order (so the solver is never worse on its problem).
* ``scope="joint"``: the group pass repeated until a whole pass raises the
  model objective by less than ``tol`` (relative), or ``max_sweeps`` passes.

A step is kept only when the model objective does not fall (a group's problem
is the model objective up to a constant, except where it holds a column slice
of a matrix, as for a concatenation; the check makes every scope monotone
anyway), so ``joint >= group >= layer`` in model objective, by construction.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from torch import nn

from ..masks import get_mask
from ..metrics import importance as importance_of
from ..problem import Member

__all__ = ["model_objective", "matrix_value", "ascent_pass"]


def _mask_view(mod: nn.Module, M: np.ndarray, mask) -> np.ndarray:
    """The matrix a mask acts on: N:M runs along input channels at each spatial position,
    so a conv's ``(C_out, C_in*kh*kw)`` view becomes ``(C_out, kh*kw*C_in)``."""
    if mask.fixed_tile is None or M.ndim != 2:
        return M
    w = getattr(mod, "weight", None)
    if w is not None and w.dim() > 2 and w.shape[-1] * w.shape[-2] > 1:
        c_out, c_in = w.shape[0], w.shape[1]
        return np.ascontiguousarray(M.reshape(c_out, c_in, -1).transpose(0, 2, 1).reshape(c_out, -1))
    return M


def matrix_value(mod: nn.Module, weight: np.ndarray, *, tile, sparsity: float, mask, metric: str) -> float:
    """Importance the best mask keeps in one weight matrix.

    Parameters
    ----------
    mod : nn.Module
        The module that holds the weight (its shape decides how an N:M mask
        runs over a conv's kernel positions).
    weight : (out, in*kh*kw) array
        The module's weight matrix view (the effective weight).
    tile : tuple of int or str
        Tile shape ``(h, w)`` or ``"hxw"``; ignored by a mask that fixes it (N:M).
    sparsity : float
        Fraction of tiles pruned; ignored by a mask that fixes it (N:M).
    mask : str or Mask
        Mask family (``"global"``, ``"row-balanced"``, ``"2:4"``, ...).
    metric : str
        Importance metric of the weights (``"l1"``, ``"l2"``, ...).

    Returns
    -------
    float
        The retained importance; 0 for a matrix the mask cannot apply to (an
        N:M mask on a column count that is not a multiple of M): it is not
        pruned, and no permutation changes that.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> W = np.array([[1.0, -2.0], [3.0, 4.0]])
    >>> matrix_value(nn.Linear(2, 2), W, tile=(1, 1), sparsity=0.5, mask="global", metric="l1")
    7.0
    >>> matrix_value(nn.Linear(2, 2), W, tile=None, sparsity=0.5, mask="2:4", metric="l1")  # 2 columns, not 4
    0.0
    """
    mask = get_mask(mask)
    S = _mask_view(mod, importance_of(weight, metric), mask)
    try:
        mem = Member(S, None if mask.fixed_tile else tile, None if mask.fixed_sparsity is not None else sparsity,
                     mask)
    except ValueError:
        return 0.0
    return mem.retained({})


def model_objective(model: nn.Module, modules: list[str], weight_of: Callable[[nn.Module], np.ndarray], *,
                    tile, sparsity: float, mask, metric: str = "l1",
                    layer_sparsity: Mapping[str, float] | None = None) -> dict[str, float]:
    """Retained importance of each named module's weight matrix at its own sparsity.

    Parameters
    ----------
    model : nn.Module
        The model.
    modules : list of str
        Names of the modules whose weights count (names that are not modules
        with a weight, such as the model's outputs, are left out).
    weight_of : callable
        ``module -> (out, in*kh*kw)`` numpy matrix (the effective weight).
    tile, sparsity, mask, metric
        As in :func:`~permsolve.torch.permute.permute_model`.
    layer_sparsity : dict, optional
        Module name -> sparsity, overriding ``sparsity``.

    Returns
    -------
    dict
        module name -> retained importance; their sum is the model objective.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from permsolve.torch.permute import weight_matrix
    >>> _ = torch.manual_seed(0)
    >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> v = model_objective(m, ["0", "2"], weight_matrix, tile=(2, 2), sparsity=0.5, mask="global")
    >>> {k: round(x, 3) for k, x in v.items()}
    {'0': 4.858, '2': 1.843}
    """
    mods = dict(model.named_modules())
    ls = dict(layer_sparsity or {})
    out = {}
    for name in modules:
        mod = mods.get(name)         # bindings that are not modules (the model's outputs) hold no weight
        if mod is None or getattr(mod, "weight", None) is None:
            continue
        s = min(max(float(ls.get(name, sparsity)), 0.0), 1.0 - 1e-9)
        out[name] = matrix_value(mod, weight_of(mod), tile=tile, sparsity=s, mask=mask, metric=metric)
    return out


def ascent_pass(groups, step: Callable, values: Callable[[list[str]], float], *, rtol: float = 1e-12) -> float:
    """One coordinate-ascent pass over ``groups``, undoing every step that lowers the objective.

    For each group, ``step(group)`` proposes and applies a permutation and
    returns an undo callable (or None when it changed nothing); a step that
    lowers the objective of the modules it touches is undone.

    Parameters
    ----------
    groups : iterable of Group
        The channel groups, visited in order (``ChannelGraph.free_groups()``).
    step : callable
        ``group -> undo or None``: permutes the group in place; ``undo()``
        restores the order it had before.
    values : callable
        ``module names -> float``: the model objective of those modules as the
        model is now (e.g. the sum of :func:`model_objective`).
    rtol : float
        A step is undone when it lowers the objective by more than ``rtol``
        relative to its value before the step.

    Returns
    -------
    float
        The gain of the pass in model objective (>= 0).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from permsolve.torch.graph import channel_graph
    >>> from permsolve.torch.permute import apply_permutation, weight_matrix
    >>> _ = torch.manual_seed(0)
    >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> groups = channel_graph(m, torch.randn(3, 4)).free_groups()
    >>> def values(names):
    ...     return sum(model_objective(m, names, weight_matrix, tile=(2, 2), sparsity=0.5,
    ...                                mask="global").values())
    >>> rng = np.random.default_rng(1)
    >>> def step(group):      # propose a random order; the undo puts the old one back
    ...     perm = rng.permutation(group.size)
    ...     apply_permutation(m, group, perm)
    ...     return lambda: apply_permutation(m, group, np.argsort(perm))
    >>> _ = apply_permutation(m, groups[0], np.random.default_rng(11).permutation(8))  # a poor order
    >>> before = values(["0", "2"])
    >>> gains = [ascent_pass(groups, step, values) for _ in range(3)]
    >>> [round(g, 3) for g in gains]
    [0.0, 0.17, 0.0]
    >>> round(values(["0", "2"]) - before, 6) == round(sum(gains), 6)
    True
    """
    gain = 0.0
    for g in groups:
        names = sorted({b.module for b in g.bindings})
        before = values(names)
        undo = step(g)
        if undo is None:
            continue
        after = values(names)
        if after < before - rtol * max(abs(before), np.finfo(float).tiny):
            undo()
        else:
            gain += after - before
    return gain
