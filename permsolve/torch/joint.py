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
    """Importance the best mask keeps in one weight matrix (``weight``: its ``(out, in*kh*kw)`` view).

    Returns 0 for a matrix the mask cannot apply to (an N:M mask on a column
    count that is not a multiple of M): it is not pruned, and no permutation
    changes that.
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
    model : the model
    modules : names of the modules whose weights count
    weight_of : ``module -> (out, in*kh*kw)`` numpy matrix (the effective weight)
    tile, sparsity, mask, metric : as in :func:`~permsolve.torch.permute.permute_model`
    layer_sparsity : per-module sparsity overriding ``sparsity``

    Returns
    -------
    dict
        module name -> retained importance; their sum is the model objective.
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
    """One coordinate-ascent pass: ``step(group)`` proposes and applies a permutation and
    returns an undo callable (or None when it changed nothing); a step that lowers the
    objective of the modules it touches is undone.

    Returns
    -------
    float
        the gain of the pass in model objective (>= 0).
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
