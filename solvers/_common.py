"""Pieces several solvers share: TileTrans's order and the exact assignment step."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from permsolve.bounds import col_profile, row_profile
from permsolve.problem import TileProblem

__all__ = ["l1_order", "greedy_perms", "placement_gain", "assignment_step"]


def _unit_sums(member, axis: str, perms: Mapping[str, np.ndarray]) -> np.ndarray:
    S = member.importance
    if axis == "rows":
        return S.sum(axis=1).reshape(-1, member.row_unit).sum(axis=1)
    return S.sum(axis=0).reshape(-1, member.col_unit).sum(axis=1)


def l1_order(problem: TileProblem, name: str) -> np.ndarray:
    """TileTrans's order for permutation ``name``: units sorted ascending by the
    summed L1 importance over every matrix bound to it (stable sort)."""
    total = np.zeros(problem.perm_sizes[name])
    for m in problem.members:
        if m.rows == name:
            total += _unit_sums(m, "rows", {})
        if m.cols == name:
            total += _unit_sums(m, "cols", {})
    return np.argsort(total, kind="stable")


def greedy_perms(problem: TileProblem) -> dict[str, np.ndarray]:
    return {name: l1_order(problem, name) for name in problem.perm_names}


def placement_gain(problem: TileProblem, perms: Mapping[str, np.ndarray], name: str,
                   masks: list[np.ndarray]) -> np.ndarray:
    """``G[q, p]``: importance kept by unit ``q`` placed at position ``p`` of
    permutation ``name``, with the other permutations and the tile masks fixed.

    Permuting ``name`` by ``perm`` then keeps ``sum_p G[perm[p], p]``.
    """
    P = problem.perm_sizes[name]
    G = np.zeros((P, P))
    for mem, M in zip(problem.members, masks):
        h, w = mem.tile
        Mf = M.astype(np.float64)
        if mem.rows == name:
            A = mem.importance if mem.cols is None else mem.importance[:, _expand(perms[mem.cols], mem.col_unit)]
            V = row_profile(A, w) @ Mf.T            # V[r, a]: row r in tile row a
            u, blk = mem.row_unit, h
        elif mem.cols == name:
            A = mem.importance if mem.rows is None else mem.importance[_expand(perms[mem.rows], mem.row_unit)]
            V = col_profile(A, h) @ Mf              # V[c, b]: column c in tile column b
            u, blk = mem.col_unit, w
        else:
            continue
        # element e of the unit at position p lands in block (p*u + e) // blk
        blocks = (np.arange(P)[:, None] * u + np.arange(u)) // blk     # (P, u)
        Vr = V.reshape(P, u, -1)
        for e in range(u):
            G += Vr[:, e, :][:, blocks[:, e]]
    return G


def _expand(perm, unit):
    from permsolve.problem import expand_perm
    return expand_perm(perm, unit)


def assignment_step(problem: TileProblem, perms: Mapping[str, np.ndarray], name: str,
                    masks: list[np.ndarray]) -> np.ndarray:
    """Best permutation ``name`` for fixed tile masks: a linear assignment problem."""
    G = placement_gain(problem, perms, name, masks)
    units, positions = linear_sum_assignment(G, maximize=True)
    perm = np.empty_like(units)
    perm[positions] = units
    return perm
