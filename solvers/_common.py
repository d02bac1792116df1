"""Pieces several solvers share: TileTrans's order and the exact assignment step."""
from __future__ import annotations

from typing import Mapping

import time

import numpy as np

from permsolve.bounds import col_profile, row_profile
from permsolve.problem import TileProblem
from permsolve.tiles import expand_perm, unit_positions

__all__ = ["load_kernel_module", "run_start", "l1_order", "greedy_perms", "placement_gain", "assignment_step"]


def preload() -> None:
    """Import what the assignment step needs (scipy.optimize, OR-Tools' min-cost flow: about 1 s).

    Solvers call it in their constructor, so that the import is neither paid by
    a command that never assigns (``greedy``) nor charged to a solve's clock.
    It also times one small transport step (:func:`assignment_seconds` scales it).

    Examples
    --------
    >>> preload()
    """
    import scipy.optimize  # noqa: F401
    from ortools.graph.python import min_cost_flow  # noqa: F401
    _flow_seconds_per_arc()     # the timing that assignment_seconds scales


def _unit_sums(member, axis: str) -> np.ndarray:
    S = member.importance
    if axis == "rows":
        v, u, lay = S.sum(axis=1), member.row_unit, member.row_layout
    else:
        v, u, lay = S.sum(axis=0), member.col_unit, member.col_layout
    return v[unit_positions(v.size // u, u, lay)].sum(axis=1)


def l1_order(problem: TileProblem, name: str) -> np.ndarray:
    """TileTrans's order for permutation ``name``: units ascending by summed L1 importance.

    The importance of every matrix bound to ``name`` is summed per unit (stable sort).

    Parameters
    ----------
    problem : TileProblem
        The problem.
    name : str
        One of ``problem.perm_names``.

    Returns
    -------
    int array
        The permutation (``perm[i]`` is the unit placed at position ``i``).

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.array([[3.0, 3], [1, 1], [2, 2], [0, 4]]), tile=(2, 2), sparsity=0.5)
    >>> l1_order(p, "row").tolist()          # row sums 6, 2, 4, 4: ties keep their order
    [1, 2, 3, 0]
    """
    total = np.zeros(problem.perm_sizes[name])
    for m in problem.members:
        if m.rows == name:
            total += _unit_sums(m, "rows")
        if m.cols == name:
            total += _unit_sums(m, "cols")
    return np.argsort(total, kind="stable")


def greedy_perms(problem: TileProblem) -> dict[str, np.ndarray]:
    """:func:`l1_order` of every permutation of ``problem``: TileTrans's answer.

    Parameters
    ----------
    problem : TileProblem
        The problem.

    Returns
    -------
    dict of str to int array
        ``{name: permutation}``.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.array([[2.0, 0], [0, 1]]), tile=(1, 1), sparsity=0.5, axis="both")
    >>> {k: v.tolist() for k, v in greedy_perms(p).items()}
    {'row': [1, 0], 'col': [1, 0]}
    """
    return {name: l1_order(problem, name) for name in problem.perm_names}


def start_from_greedy(problem: TileProblem, run) -> None:
    """Make TileTrans's order the incumbent unless the identity is strictly better.

    The search solvers start here.  Where the objective cannot tell the two
    apart (a layer the global budget prunes entirely, or not at all) the sort
    is kept, as TileTrans would: under a global threshold it can still lift a
    layer's best tiles above the threshold.

    Parameters
    ----------
    problem : TileProblem
        The problem being solved.
    run : Run
        The solve's :class:`~permsolve.result.Run`.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> from permsolve.result import Run
    >>> p = TileProblem.from_matrix(np.array([[3.0, 3], [1, 1], [2, 2], [0, 4]]), tile=(2, 2), sparsity=0.5)
    >>> run = Run(p, None, None)
    >>> start_from_greedy(p, run)
    >>> run.best_perms["row"].tolist(), run.best
    ([1, 2, 3, 0], 10.0)
    """
    run.offer(greedy_perms(problem), ties=True)


def run_start(problem: TileProblem, run, start: str, *, share: float = 0.25, from_init: bool = False,
              seed: int = 0, options: Mapping | None = None, fits=None) -> str:
    """Make ``start``'s answer the incumbent of ``run``: the one warm start of every search solver.

    Parameters
    ----------
    problem : the (normalised) problem being solved
    run : the solve's :class:`~permsolve.result.Run`; its incumbent is the caller's ``init`` if one was given
    start : ``"identity"`` or ``"none"`` (keep the incumbent: the init, else the identity), ``"greedy"``
        (TileTrans's order), or the name of any registered solver, run with ``share`` of the time left from
        the init (see ``from_init``) or, without one, from its own start (TileTrans's order is offered
        first either way)
    share : share of ``run.time_left()`` the start solver may use (no limit when the run has none)
    from_init : with an init, still run the start solver, from the init (the ilp does); by default an
        init *is* the start and nothing runs
    seed, options : the start solver's seed and options (options it does not have are dropped)
    fits : ``fits(budget)`` (seconds, or None) -> bool; False skips the start solver (for a solver
        whose steps cannot be interrupted and would overrun the budget)

    Returns
    -------
    str
        what the start was: ``"init"``, ``"identity"``, ``"greedy"``, a solver's name, or
        ``"<name> skipped"`` (TileTrans's order is then the start)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.result import Run
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> run = Run(p, None, None)
    >>> run_start(p, run, "hungarian"), run.best >= p.evaluate()
    ('hungarian', True)
    """
    if start in ("identity", "none"):
        return "init" if run.has_init else "identity"
    if run.has_init and not from_init:
        return "init"
    if not run.has_init:
        start_from_greedy(problem, run)
    if start == "greedy":
        return "greedy"
    from permsolve.registry import get_solver

    budget = None if run.time_limit is None else max(1e-3, share * run.time_left())
    if fits is not None and not fits(budget):
        return f"{start} skipped"
    cls = get_solver(start)
    opts = {k: v for k, v in (options or {}).items() if k in cls.options}
    # from the caller's init if there is one; else the start solver makes its own start (the same
    # TileTrans order for hungarian; anneal's own hungarian start for the ilp's anneal start)
    res = cls(**opts).solve(problem, time_limit=budget, seed=seed, init=run.best_perms if run.has_init else None)
    run.offer(res.perms, res.retained)
    return start


def position_classes(problem: TileProblem, name: str) -> np.ndarray:
    """Class of each position of permutation ``name``: positions with the same gains share one.

    Positions whose elements fall in the same tile blocks of every bound matrix are
    interchangeable.  With unit 1 and ``h``-row tiles there are ``ceil(P/h)`` classes, not ``P``.

    Parameters
    ----------
    problem : TileProblem
        The problem.
    name : str
        One of ``problem.perm_names``.

    Returns
    -------
    int64 array
        The class of every position, ``0 .. classes - 1``.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.ones((6, 4)), tile=(2, 2), sparsity=0.5)
    >>> position_classes(p, "row").tolist()
    [0, 0, 1, 1, 2, 2]
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
    """``G[q, p]``: importance kept by unit ``q`` at position ``p`` of permutation ``name``.

    The other permutations and the tile masks are fixed.  Permuting ``name`` by
    ``perm`` then keeps ``sum_p G[perm[p], p]``.

    Parameters
    ----------
    problem : TileProblem
        The problem.
    perms : mapping
        The current permutations (those other than ``name`` are kept).
    name : str
        The permutation to place.
    masks : list of bool arrays
        The tile mask of every member (``problem.masks(perms)``), fixed.
    positions : int array, optional
        Compute only these columns of ``G``.

    Returns
    -------
    (P, len(positions)) array
        The gains.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> S = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
    >>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
    >>> perms = p.identity()
    >>> p.masks(perms)[0].astype(int)        # ties: the first tile row's two tiles are kept
    array([[1, 1],
           [0, 0]])
    >>> placement_gain(p, perms, "row", p.masks(perms))
    array([[1., 1., 0., 0.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.]])
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
    # relative to the largest gain (Gc / span <= 1 cannot overflow, as 2**36 / 1e-300 did), so the integer
    # costs, and the ties among them, are the same whatever the scale of the importance
    unit = Gc / span if span > 0 else Gc
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        np.repeat(np.arange(P), C), P + np.tile(np.arange(C), P), np.ones(P * C, dtype=np.int64),
        (-np.rint(unit * 2.0 ** 36)).astype(np.int64).ravel())
    flow.set_nodes_supplies(np.arange(P + C), np.concatenate([np.ones(P, dtype=np.int64), -capacity.astype(np.int64)]))
    status = flow.solve()
    if status != flow.OPTIMAL:  # pragma: no cover - a balanced bipartite flow always has a solution
        raise RuntimeError(f"min-cost flow failed with status {status}")
    return flow.flows(arcs).reshape(P, C).argmax(axis=1)


def _quantised(G: np.ndarray) -> np.ndarray:
    """``G`` rounded to integers (as floats) on a grid of ``2**-36`` of its largest entry.

    The assignment's own arithmetic on them is then exact, so exact ties (positions
    of one class, units that gain the same) are broken the same way at every scale
    of the importance, instead of by float noise; the rounding costs at most
    ``P * 2**-37`` of the largest gain.
    """
    span = float(np.abs(G).max()) if G.size else 0.0
    if span == 0.0:
        return G
    bits = min(36, 52 - max(1, G.shape[0]).bit_length())     # sums of P entries stay below 2**53
    return np.rint(G / span * 2.0 ** bits)


def assignment_step(problem: TileProblem, perms: Mapping[str, np.ndarray], name: str,
                    masks: list[np.ndarray]) -> np.ndarray:
    """Best permutation ``name`` for fixed tile masks: a linear assignment problem.

    Positions in the same class (see :func:`position_classes`) have the same gains,
    so when there are far fewer classes than positions the assignment is solved
    as a transportation problem over classes (a min-cost flow with ``P x classes``
    arcs, instead of a ``P x P`` assignment); units then fill their class's
    positions in ascending order.

    Parameters
    ----------
    problem : TileProblem
        The problem.
    perms : mapping
        The current permutations (those other than ``name`` are kept).
    name : str
        The permutation to choose.
    masks : list of bool arrays
        The tile mask of every member, fixed.

    Returns
    -------
    int64 array
        The permutation maximising the importance kept under ``masks``.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> S = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
    >>> p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
    >>> perms = p.identity()
    >>> masks = [np.array([[True, False], [False, True]])]
    >>> perm = assignment_step(p, perms, "row", masks)
    >>> p.evaluate({"row": perm})
    4.0
    """
    P = problem.perm_sizes[name]
    cls = position_classes(problem, name)
    n_cls = int(cls.max()) + 1 if P else 0
    if 2 * n_cls > P:
        from scipy.optimize import linear_sum_assignment   # imported by the solvers' constructors

        G = placement_gain(problem, perms, name, masks)
        units, positions = linear_sum_assignment(_quantised(G), maximize=True)
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


def assignment_seconds(problem: TileProblem) -> float:
    """Rough time of one round of exact assignment steps.

    Where positions fall into few classes (unit 1 and tall tiles), a step is a
    min-cost flow over ``P x classes`` arcs (about 0.2 s at 4096 x 128 here);
    otherwise a dense ``P x P`` assignment: a 256-unit LSA scaled by ``(P/256)^3``,
    times 4 (building the gain matrix, evaluating, structured matrices).

    Parameters
    ----------
    problem : TileProblem
        The problem.

    Returns
    -------
    float
        Estimated seconds, from steps timed on this machine now.

    Examples
    --------
    >>> from permsolve import TileProblem
    >>> assignment_seconds(TileProblem.from_matrix(np.ones((64, 8)), tile=(8, 1), sparsity=0.5)) > 0
    True
    """
    from scipy.optimize import linear_sum_assignment

    G = np.random.default_rng(0).random((256, 256))
    t = time.perf_counter()
    linear_sum_assignment(G, maximize=True)
    base = time.perf_counter() - t
    total = 0.0
    for name, n in problem.perm_sizes.items():
        classes = int(position_classes(problem, name).max()) + 1 if n else 0
        total += _flow_seconds_per_arc() * n * classes if 2 * classes <= n else 4.0 * base * (n / 256) ** 3
    return float(total)


_FLOW: dict = {}


def _flow_seconds_per_arc() -> float:
    """Seconds per arc of the transport step, timed once per process on a 1024 x 64 instance
    (this machine, its present load), times 2 for building the gains around it."""
    if "per_arc" not in _FLOW:
        G = np.random.default_rng(0).random((1024, 64))
        t = time.perf_counter()
        _transport(G, np.full(64, 16))
        _FLOW["per_arc"] = 2.0 * (time.perf_counter() - t) / G.size
    return _FLOW["per_arc"]


def load_kernel_module(stem: str, kind: str, cache: dict, who: str = ""):
    """A numba kernel module of this package, compiled (``"numba"``) or as plain Python (``"python"``).

    ``"numba"`` is compiled and cached on disk; ``"python"`` is the same source
    executed with ``_NOJIT = True``, so its functions run as plain Python: the copy
    the kernels are tested against move by move.  The plain-Python copy of a file is
    made once per process (``sys.modules``), so the files of a kernel split in several
    share their copies (:mod:`permsolve.solvers._kernel_jit`).

    Parameters
    ----------
    stem : str
        Module name in this package (``"_swap_kernel"``).
    kind : {"numba", "python"}
        Which copy.
    cache : dict
        Kind -> module, the caller's; filled here.
    who : str
        Prefix of the error message.

    Returns
    -------
    module
        The kernel module.

    Raises
    ------
    ValueError
        For another ``kind``.

    Examples
    --------
    >>> load_kernel_module("_swap_kernel", "python", {"python": "loaded before"})
    'loaded before'
    >>> load_kernel_module("_swap_kernel", "cuda", {}, who="swap: ")
    Traceback (most recent call last):
    ...
    ValueError: swap: kernel must be 'numba' or 'python', got 'cuda'
    """
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    if kind in cache:
        return cache[kind]
    if kind == "numba":
        mod = importlib.import_module(f"{__package__}.{stem}")
    elif kind == "python":
        name = f"{__package__}.{stem}_python"
        mod = sys.modules.get(name)
        if mod is None:
            path = Path(__file__).with_name(f"{stem}.py")
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            mod._NOJIT = True
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        raise ValueError(f"{who}kernel must be 'numba' or 'python', got {kind!r}")
    cache[kind] = mod
    return mod
