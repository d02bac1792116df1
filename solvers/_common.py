"""Pieces several solvers share: TileTrans's order and the exact assignment step."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from permsolve.bounds import col_profile, row_profile
from permsolve.problem import TileProblem
from permsolve.tiles import expand_perm, unit_positions

__all__ = ["l1_order", "greedy_perms", "placement_gain", "assignment_step"]


def _unit_sums(member, axis: str) -> np.ndarray:
    S = member.importance
    if axis == "rows":
        v, u, lay = S.sum(axis=1), member.row_unit, member.row_layout
    else:
        v, u, lay = S.sum(axis=0), member.col_unit, member.col_layout
    return v[unit_positions(v.size // u, u, lay)].sum(axis=1)


def l1_order(problem: TileProblem, name: str) -> np.ndarray:
    """TileTrans's order for permutation ``name``: units sorted ascending by the
    summed L1 importance over every matrix bound to it (stable sort)."""
    total = np.zeros(problem.perm_sizes[name])
    for m in problem.members:
        if m.rows == name:
            total += _unit_sums(m, "rows")
        if m.cols == name:
            total += _unit_sums(m, "cols")
    return np.argsort(total, kind="stable")


def greedy_perms(problem: TileProblem) -> dict[str, np.ndarray]:
    return {name: l1_order(problem, name) for name in problem.perm_names}


def start_from_greedy(problem: TileProblem, run) -> None:
    """Make TileTrans's order the incumbent unless the identity is strictly better.

    The search solvers start here.  Where the objective cannot tell the two
    apart (a layer the global budget prunes entirely, or not at all) the sort
    is kept, as TileTrans would: under a global threshold it can still lift a
    layer's best tiles above the threshold.
    """
    run.offer(greedy_perms(problem), ties=True)


def position_classes(problem: TileProblem, name: str) -> np.ndarray:
    """Class of each position of permutation ``name``: positions whose elements fall in
    the same tile blocks of every bound matrix are interchangeable (same gains).

    With unit 1 and ``h``-row tiles there are ``ceil(P/h)`` classes, not ``P``.
    """
    P = problem.perm_sizes[name]
    keys = []
    for mem in problem.members:
        for bound, unit, lay, blk in ((mem.rows, mem.row_unit, mem.row_layout, mem.tile[0]),
                                      (mem.cols, mem.col_unit, mem.col_layout, mem.tile[1])):
            if bound == name:
                keys.append(unit_positions(P, unit, lay) // blk)
    if not keys:
        return np.zeros(P, dtype=np.int64)
    _, cls = np.unique(np.hstack(keys), axis=0, return_inverse=True)
    return cls.ravel()


def placement_gain(problem: TileProblem, perms: Mapping[str, np.ndarray], name: str,
                   masks: list[np.ndarray], positions: np.ndarray | None = None) -> np.ndarray:
    """``G[q, p]``: importance kept by unit ``q`` placed at position ``p`` of
    permutation ``name``, with the other permutations and the tile masks fixed.

    Permuting ``name`` by ``perm`` then keeps ``sum_p G[perm[p], p]``.  With
    ``positions``, only those columns of ``G`` are computed.
    """
    P = problem.perm_sizes[name]
    pos = np.arange(P) if positions is None else np.asarray(positions)
    G = np.zeros((P, len(pos)))
    for mem, M in zip(problem.members, masks):
        h, w = mem.tile
        Mf = M.astype(np.float64)
        if mem.rows == name:
            A = mem.importance if mem.cols is None else \
                mem.importance[:, expand_perm(perms[mem.cols], mem.col_unit, mem.col_layout)]
            V = row_profile(A, w) @ Mf.T            # V[r, a]: row r in tile row a
            u, lay, blk = mem.row_unit, mem.row_layout, h
        elif mem.cols == name:
            A = mem.importance if mem.rows is None else \
                mem.importance[expand_perm(perms[mem.rows], mem.row_unit, mem.row_layout)]
            V = col_profile(A, h) @ Mf              # V[c, b]: column c in tile column b
            u, lay, blk = mem.col_unit, mem.col_layout, w
        else:
            continue
        # element e of the unit at position p lands in block upos[p, e] // blk
        upos = unit_positions(P, u, lay)
        blocks = upos[pos] // blk                   # (positions, u)
        Vr = V[upos]                                # (units, u, blocks): unit q's elements
        for e in range(u):
            G += Vr[:, e, :][:, blocks[:, e]]
    return G


def _transport(Gc: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Class of each unit maximising ``sum_q Gc[q, class(q)]`` with ``capacity[c]`` units
    per class: a transportation problem, solved as a min-cost flow (OR-Tools).

    Gains are scaled to integers; the rounding costs at most ``P / 2**37`` of the
    largest gain in total.
    """
    from ortools.graph.python import min_cost_flow

    P, C = Gc.shape
    span = float(np.abs(Gc).max())
    scale = 2.0 ** 36 / span if span > 0 else 1.0
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        np.repeat(np.arange(P), C), P + np.tile(np.arange(C), P), np.ones(P * C, dtype=np.int64),
        (-np.rint(Gc * scale)).astype(np.int64).ravel())
    flow.set_nodes_supplies(np.arange(P + C), np.concatenate([np.ones(P, dtype=np.int64), -capacity.astype(np.int64)]))
    status = flow.solve()
    if status != flow.OPTIMAL:  # pragma: no cover - a balanced bipartite flow always has a solution
        raise RuntimeError(f"min-cost flow failed with status {status}")
    return flow.flows(arcs).reshape(P, C).argmax(axis=1)


def assignment_step(problem: TileProblem, perms: Mapping[str, np.ndarray], name: str,
                    masks: list[np.ndarray]) -> np.ndarray:
    """Best permutation ``name`` for fixed tile masks: a linear assignment problem.

    Positions in the same class (see :func:`position_classes`) have the same gains,
    so when there are far fewer classes than positions the assignment is solved
    as a transportation problem over classes (a min-cost flow with ``P x classes``
    arcs, instead of a ``P x P`` assignment); units then fill their class's
    positions in ascending order.
    """
    P = problem.perm_sizes[name]
    cls = position_classes(problem, name)
    n_cls = int(cls.max()) + 1 if P else 0
    if 2 * n_cls > P:
        G = placement_gain(problem, perms, name, masks)
        units, positions = linear_sum_assignment(G, maximize=True)
        perm = np.empty_like(units)
        perm[positions] = units
        return perm
    first = np.zeros(n_cls, dtype=np.int64)
    first[cls[::-1]] = np.arange(P)[::-1]          # a representative position per class
    Gc = placement_gain(problem, perms, name, masks, positions=first)
    unit_class = _transport(Gc, np.bincount(cls, minlength=n_cls))
    perm = np.empty(P, dtype=np.int64)
    for c in range(n_cls):
        perm[np.flatnonzero(cls == c)] = np.flatnonzero(unit_class == c)
    return perm
