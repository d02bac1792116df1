"""``swap``: row swaps between pairs of tile rows under a threshold objective, for large matrices.

For one matrix with tile masks, a permutation of the rows only matters
through which tile row each row lands in.  The search keeps each tile row's
set of rows and its tile scores ``T``; the best mask keeps the tiles above a
threshold ``tau`` (the score of the last kept tile: one threshold for the
global mask, one per tile row for the row-balanced mask), so with ``tau``
held fixed the kept importance of a tile row is ``sum_b max(T[a, b] - tau, 0)``
plus a constant, and the gain of swapping two rows between two tile rows is
exact for every tile that does not cross ``tau`` and costs ``O(nb)`` (see
:mod:`permsolve.solvers._swap_kernel`).  Unlike an assignment step with the
mask held fixed (``hungarian``), a swap sees tiles enter and leave the mask.

One **round** visits every pair of tile rows once, in an order drawn from the
seed, and makes up to ``max_swaps`` best-improvement swaps in each; ``tau`` and
the exact kept importance are recomputed after every ``batch`` pairs (so a
swap that looked good at the old threshold but lost is undone by later ones,
and the run keeps the best answer seen).  When a round makes no swap (or
``patience`` rounds raise no best value: swaps judged at a stale threshold can
cycle), it takes one exact assignment step (``hungarian``'s step: best order
for the current mask) and goes on if that gained.  At a local optimum of both,
with time left, it perturbs the best answer (``kick_share`` of the rows swapped
at random between tile rows) and searches again (iterated local search).  With both axes permuted, rounds alternate between the
rows and the columns (the columns are the rows of the transposed matrix,
tiles transposed; the global mask only).

The options are the fields of :class:`Swap.Options`.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.random.default_rng(0).random((64, 64))
>>> p = TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.5)
>>> r = solve(p, "swap", rounds=3)
>>> r.retained >= solve(p, "greedy").retained
True
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from permsolve import registry
from permsolve.bounds import row_profile
from permsolve.masks import GlobalMask, RowBalancedMask
from permsolve.registry import Solver, register

from ._common import assignment_step, load_kernel_module, run_start

__all__ = ["Swap", "SwapState", "load_kernel"]

_KERNELS: dict[str, object] = {}


def load_kernel(kind: str = "numba"):
    """The kernel module: ``"numba"`` (compiled, cached on disk) or ``"python"`` (plain Python).

    Parameters
    ----------
    kind : str
        ``"numba"`` or ``"python"``

    Returns
    -------
    module
        the kernel, with the same functions in either kind

    Examples
    --------
    >>> k = load_kernel("python")
    >>> hasattr(k, "group_scores")
    True
    """
    return load_kernel_module("_swap_kernel", kind, _KERNELS, "swap: ")


class SwapState:
    """Tile rows of one matrix along one axis: the rows in each, their tile scores, the thresholds.

    Parameters
    ----------
    member : the problem's single member
    perms : current permutations
    axis : ``"rows"`` or ``"cols"`` (the columns as rows of the transposed matrix)
    kernel : ``"numba"`` or ``"python"``

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> st = SwapState(p.members[0], p.identity(), "rows")
    >>> bool(abs(st.value() - p.evaluate()) < 1e-9)
    True
    """

    def __init__(self, member, perms, axis: str, kernel: str = "numba"):
        self.k = load_kernel(kernel)
        self.member, self.axis = member, axis
        S, (h, w) = member.importance, member.tile
        if axis == "rows":
            if member.cols is not None:
                S = S[:, perms[member.cols]]
            perm = perms[member.rows]
        else:
            if member.rows is not None:
                S = S[perms[member.rows]]
            S, (h, w), perm = S.T, (w, h), perms[member.cols]
        self.m, self.h = S.shape[0], h
        mb = -(-self.m // h)
        R = row_profile(S, w)
        self.R = np.vstack([R, np.zeros((mb * h - self.m, R.shape[1]))]) if mb * h > self.m else R
        self.R = np.ascontiguousarray(self.R)
        slots = np.concatenate([np.asarray(perm, dtype=np.int64), np.arange(self.m, mb * h)])
        self.grp = np.ascontiguousarray(slots.reshape(mb, h))
        self.T = self.k.group_scores(self.R, self.grp)
        self.mask, self.s = member.mask, member.sparsity
        self.eps = 1e-12 * max(float(self.T.max()), 1e-300)
        self.update_tau()

    @property
    def mb(self) -> int:
        """Number of tile rows (groups of rows)."""
        return self.grp.shape[0]

    def perm(self) -> np.ndarray:
        """The current permutation (a copy): the original row at each position."""
        return self.grp.ravel()[: self.m].copy()

    def scores(self) -> np.ndarray:
        """Tile scores in the member's own orientation."""
        return self.T if self.axis == "rows" else self.T.T

    def value(self, fresh: bool = False) -> float:
        """Exact kept importance of the current rows (``fresh``: tile scores recomputed first)."""
        if fresh:
            self.T = self.k.group_scores(self.R, self.grp)
        return self.mask.retained(self.scores(), self.s)

    def update_tau(self) -> None:
        """Recompute the threshold objective's cut from the current tile scores."""
        T, mb, nb = self.T, *self.T.shape
        big = 2.0 * float(np.abs(T).max()) + 1.0
        if isinstance(self.mask, RowBalancedMask):
            kb = self.mask.per_row(nb, self.s)
            if kb <= 0:
                self.tau = np.full(mb, big)
            elif kb >= nb:
                self.tau = np.full(mb, -big)
            else:
                self.tau = np.ascontiguousarray(np.partition(T, nb - kb, axis=1)[:, nb - kb])
            return
        k = self.mask.n_kept(mb, nb, self.s)
        if k <= 0:
            t = big
        elif k >= T.size:
            t = -big
        else:
            v = T.ravel()
            t = float(np.partition(v, v.size - k)[v.size - k])
        self.tau = np.full(mb, t)

    def improve(self, pairs: np.ndarray, max_swaps: int) -> int:
        """Swaps on ``pairs`` (rows of tile-row indices); returns the number of swaps made."""
        made, _ = self.k.improve_pairs(self.R, self.grp, self.T, self.tau, pairs, self.m,
                                       int(max_swaps), self.eps)
        return int(made)


def _all_pairs(mb: int, rng: np.random.Generator) -> np.ndarray:
    a, c = np.triu_indices(mb, 1)
    pairs = np.stack([a, c], axis=1).astype(np.int64)
    flip = rng.random(len(pairs)) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    return np.ascontiguousarray(pairs[rng.permutation(len(pairs))])


def _kick(perm: np.ndarray, h: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """``perm`` with ``max(2, share * len)`` random swaps of positions in different tile rows."""
    perm = perm.copy()
    n = len(perm)
    if n <= h:
        return perm
    for _ in range(max(2, int(share * n))):
        p, q = rng.integers(n, size=2)
        if p // h != q // h:
            perm[p], perm[q] = perm[q], perm[p]
    return perm


@register
class Swap(Solver):
    """Row swaps between pairs of tile rows, with an exact assignment step when stuck.

    Local search by row swaps between pairs of tile rows under a threshold objective (numba), with
    an exact assignment step when no swap gains (see the module docstring).

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "swap", rounds=2)
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('swap', True, True)
    """
    name = "swap"
    description = "row swaps between pairs of tile rows, threshold objective (numba); exact assignment step when stuck"
    anytime = True
    randomized = True
    axes = frozenset({"rows", "cols", "both"})

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """Options of ``swap``.

        Attributes
        ----------
        start : ``"auto"``, ``"greedy"`` (the better of TileTrans's order and the identity), ``"hungarian"``
            (``hungarian`` from TileTrans's order, for at most ``start_share`` of the time left) or
            ``"identity"``; a warm start (``init``) replaces it
        auto_hungarian_units : ``start="auto"`` is ``hungarian`` up to this many units per permutation
            (its steps are cheap there, and swaps alone can stop below its fixed point on small layers),
            ``greedy`` above (at 4096 rows hungarian needs a minute, swaps pass its value in seconds)
        start_share : share of the time left that the ``hungarian`` start may use, in (0, 1]
        rounds : stop after this many rounds per axis (>= 1); None: until converged or the time limit.
            With ``rounds`` set and no time limit the search is deterministic
        max_swaps : swaps per pair of tile rows and visit (best improvement each), >= 1
        batch : pairs between two threshold updates and time checks, >= 1
        patience : rounds without a new best value after which the swaps count as stalled
        assign : take an exact assignment step when swaps stall (skipped when it would not fit in the
            time left: it cannot be interrupted)
        kicks : perturbations at local optima; None: as many as the time limit allows (none without one)
        kick_share : share of the rows a perturbation swaps (at least two swaps)
        kernel : ``"numba"`` (compiled) or ``"python"`` (the same code, not compiled)

        Examples
        --------
        >>> Swap.Options(rounds=3).rounds
        3
        >>> Swap.Options(batch=0)
        Traceback (most recent call last):
        ...
        ValueError: max_swaps and batch must be >= 1
        """

        start: str = "auto"
        auto_hungarian_units: int = 1024
        start_share: float = 0.25
        rounds: int | None = None
        max_swaps: int = 4
        batch: int = 256
        patience: int = 2
        assign: bool = True
        kicks: int | None = None
        kick_share: float = 0.05
        kernel: str = "numba"

        def validate(self) -> None:
            """Refuse an unknown start or kernel, and counts or shares out of range (``ValueError``)."""
            if self.start not in ("auto", "greedy", "hungarian", "identity"):
                raise ValueError(f"start must be 'auto', 'greedy', 'hungarian' or 'identity', got {self.start!r}")
            if not 0 < self.start_share <= 1:
                raise ValueError("start_share must be in (0, 1]")
            if self.rounds is not None and int(self.rounds) < 1:
                raise ValueError("rounds must be >= 1 or None")
            if int(self.max_swaps) < 1 or int(self.batch) < 1:
                raise ValueError("max_swaps and batch must be >= 1")
            if self.kernel not in ("numba", "python"):
                raise ValueError(f"kernel must be 'numba' or 'python', got {self.kernel!r}")

    def __init__(self, **options):
        super().__init__(**options)
        if self.config.kernel == "numba":      # compile (or load the cache) before any solve's clock starts
            self._warm()

    @staticmethod
    def _warm():
        from permsolve.problem import TileProblem

        p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
        st = SwapState(p.members[0], p.identity(), "rows")
        st.improve(np.array([[0, 1]], dtype=np.int64), 1)

    def supports(self, problem):
        why = super().supports(problem)
        if why:
            return why
        m = problem.members[0]
        if m.row_unit != 1 or m.col_unit != 1:
            return "solver 'swap' handles units of one row or column only"
        if isinstance(m.mask, RowBalancedMask):
            if m.cols is not None:
                return "solver 'swap' handles the row-balanced mask with the rows permuted only"
        elif not isinstance(m.mask, GlobalMask):
            return f"solver 'swap' handles the global and row-balanced masks, not {m.mask.name!r}"
        return None

    def _solve(self, problem, run, rng):
        o = self.config
        start = o.start
        if start == "auto":
            start = "hungarian" if max(problem.perm_sizes.values()) <= int(o.auto_hungarian_units) else "greedy"
        got = run_start(problem, run, start, share=o.start_share)
        if got not in ("init", "identity"):
            run.info["start"] = got
        mem = problem.members[0]
        axes = [a for a, name in (("rows", mem.rows), ("cols", mem.cols)) if name is not None]
        names = {"rows": mem.rows, "cols": mem.cols}
        perms = {k: v.copy() for k, v in run.best_perms.items()}
        max_rounds = None if o.rounds is None else int(o.rounds)
        done = {a: 0 for a in axes}
        stuck = {a: False for a in axes}
        stall = {a: 0 for a in axes}
        swaps = assign_gain = kicks = 0
        assign_seconds = 0.0
        max_kicks = o.kicks
        if max_kicks is None:
            max_kicks = 0 if run.time_limit is None else 1 << 62
        last_offer = time.perf_counter()
        while not run.expired():
            if all(stuck.values()):
                if kicks >= int(max_kicks) or (max_rounds is not None and all(d >= max_rounds for d in done.values())):
                    break
                # iterated local search: perturb the best answer, search again from there
                perms = {k: v.copy() for k, v in run.best_perms.items()}
                for axis in axes:
                    perms[names[axis]] = _kick(perms[names[axis]], mem.tile[0 if axis == "rows" else 1],
                                               float(o.kick_share), rng)
                stuck = {a: False for a in axes}
                kicks += 1
            for axis in axes:
                if run.expired() or stuck[axis] or (max_rounds is not None and done[axis] >= max_rounds):
                    stuck[axis] = stuck[axis] or (max_rounds is not None and done[axis] >= max_rounds)
                    continue
                before = run.best
                st = SwapState(mem, perms, axis, o.kernel)
                pairs = _all_pairs(st.mb, rng)
                made = 0
                for lo in range(0, len(pairs), int(o.batch)):
                    made += st.improve(pairs[lo: lo + int(o.batch)], o.max_swaps)
                    st.update_tau()
                    if time.perf_counter() - last_offer > 1.0:     # anytime trace, cheaply
                        perms[names[axis]] = st.perm()
                        run.offer(perms, st.value(fresh=True))
                        last_offer = time.perf_counter()
                    if run.expired():
                        break
                done[axis] += 1
                swaps += made
                perms[names[axis]] = st.perm()
                value = st.value(fresh=True)
                run.offer(perms, value)
                # swaps that gain at a stale threshold can cycle: a round that does not raise
                # the best value counts as stalled
                stall[axis] = 0 if run.best > before + 1e-12 * abs(before) else stall[axis] + 1
                if (made == 0 or stall[axis] >= int(o.patience)) and not run.expired():
                    stall[axis] = 0
                    # the assignment step cannot be interrupted: take it only if it fits
                    fits = run.time_limit is None or run.time_left() > max(1.5 * assign_seconds, 0.1 * run.time_limit)
                    if o.assign and fits:
                        t_a = time.perf_counter()
                        masks = problem.masks(perms)
                        perms[names[axis]] = assignment_step(problem, perms, names[axis], masks)
                        new = problem.evaluate(perms)
                        assign_seconds = time.perf_counter() - t_a
                        gained = run.offer(perms, new)
                        assign_gain += int(gained)
                        if not gained:
                            stuck[axis] = True
                            perms = {k: v.copy() for k, v in run.best_perms.items()}
                    else:
                        stuck[axis] = True
                if run.best > before + 1e-12 * abs(before):
                    for other in axes:          # the other axis sees a new matrix: worth another look
                        if other != axis:
                            stuck[other] = False
                # other axes continue from the best answer, not from a worse current state
                if run.best > value:
                    perms = {k: v.copy() for k, v in run.best_perms.items()}
            if max_rounds is not None and all(d >= max_rounds for d in done.values()) and kicks >= int(max_kicks):
                break
        run.nit = int(sum(done.values()))
        run.info.update(swaps=int(swaps), rounds=dict(done), assignment_steps_gained=int(assign_gain),
                        kicks=int(kicks))
