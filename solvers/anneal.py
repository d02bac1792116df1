"""``anneal``: simulated annealing over unit swaps, with exact incremental evaluation.

A move swaps two units of one permutation (two rows, two columns, or two
units of a permutation shared by several matrices, which changes every bound
matrix at once).  Its effect on the kept importance is computed exactly in
``O(n/w)`` per moved element plus the mask update (see
:mod:`permsolve.solvers._anneal_kernel`), never by recomputing the matrix.
Moves are accepted by the Metropolis rule under a geometric cooling schedule
whose start temperature is calibrated from the deltas of random moves at the
start point.  Several restarts each re-anneal from the best permutation found
so far; the best is offered to the run as it improves.

Options (:class:`Anneal.Options`)
---------------------------------
start : ``"auto"`` (default), ``"greedy"``, ``"hungarian"`` or ``"identity"``
    Where to start when no warm start (``init``) is given.  ``auto`` is
    ``hungarian`` for permutations of at most ``auto_hungarian_units`` units
    and ``greedy`` above (an assignment round is cheap up to there: a
    transportation problem over tile rows).  ``greedy`` takes
    the better of TileTrans's order and the identity; ``hungarian`` then
    improves it with the ``hungarian`` solver for at most ``start_share`` of
    the time left (checked between its assignment steps, which cannot be
    interrupted; the start is skipped when one round of steps, estimated
    from a small assignment scaled by ``P^3``, would not fit).
moves : int or None
    Moves per restart.  None: with a time limit, each restart gets an equal
    share of the remaining time and its temperature follows the larger of the
    time used and the moves done out of ``max_moves_per_unit * units /
    restarts`` (so small problems stop early); without a time limit,
    ``moves_per_unit * units`` moves (at least 100 000 either way).
restarts : int
t0_factor, t_end_factor : float
    Start temperature = ``t0_factor`` x the mean loss of the worsening moves
    among ``calib_moves`` random moves; end temperature = ``t_end_factor`` x
    the start temperature.
kernel : ``"numba"`` (default) or ``"python"`` (same code, not compiled: slow)

The search is deterministic for a given seed when the schedule counts moves
(``moves`` set, or no time limit); with a clock-driven schedule the number of
moves depends on the machine.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem, solve
>>> S = np.random.default_rng(0).random((32, 32))
>>> p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
>>> r = solve(p, "anneal", seed=1, moves=20000, restarts=1)
>>> r.retained >= solve(p, "greedy").retained
True
"""
from __future__ import annotations

import dataclasses
import time
from typing import Mapping

import numpy as np

from permsolve import registry
from permsolve.bounds import col_profile, row_profile
from permsolve.masks import GlobalMask, RowBalancedMask
from permsolve.problem import TileProblem, expand_perm, tile_scores
from permsolve.registry import Solver, register

from ._common import assignment_seconds as _assignment_seconds, load_kernel_module, preload, run_start

__all__ = ["Anneal", "AnnealState", "load_kernel", "warmup"]

_KERNELS: dict[str, object] = {}
_WARM: dict[str, float] = {}


def load_kernel(kind: str = "numba"):
    """The kernel module: ``"numba"`` (compiled, cached on disk) or ``"python"`` (plain Python).

    Parameters
    ----------
    kind : ``"numba"`` or ``"python"``

    Returns
    -------
    module
        :mod:`permsolve.solvers._anneal_kernel`, or its plain-Python copy (which loads the
        plain-Python copies of the kernel's other files)

    Examples
    --------
    >>> load_kernel("python").run_moves.__module__
    'permsolve.solvers._anneal_kernel_python'
    """
    return load_kernel_module("_anneal_kernel", kind, _KERNELS, "anneal: ")


def warmup(kind: str = "numba") -> float:
    """Compile (or load from the on-disk cache) the kernel; returns the seconds it took.

    Done once per process, when an ``anneal`` solver is created, so that the
    compile time is never charged to a solve's time limit.

    Parameters
    ----------
    kind : str
        ``"numba"`` (the compiled kernel) or ``"python"`` (its plain-Python copy)

    Returns
    -------
    float
        the seconds the compilation (or the cache load) took

    Examples
    --------
    >>> warmup() >= 0.0
    True
    """
    if kind in _WARM:
        return 0.0
    t = time.perf_counter()
    from permsolve.problem import Member
    rng = np.random.default_rng(0)
    # one tiny problem that exercises both masks, both axes and units > 1
    a = Member(rng.random((8, 6)), (2, 4), 0.5, "global", rows="p", cols="c", name="a")
    b = Member(rng.random((6, 8)), (4, 4), 0.5, "row-balanced", rows="c", cols="p", col_unit=1, name="b")
    c = Member(rng.random((4, 16)), (2, 4), 0.5, "row-balanced", cols="p", col_unit=2, name="c")
    prob = TileProblem([a, b, c])
    st = AnnealState(prob, prob.identity(), kernel=kind)
    st.run(rng.random((64, 4)), 1.0, 1.0)
    st.probe(rng.random((16, 4)))
    _WARM[kind] = time.perf_counter() - t
    return _WARM[kind]


class AnnealState:
    """Flattened incremental state of a problem for the kernel.

    Parameters
    ----------
    problem : the problem (masks ``global`` or ``row-balanced``)
    perms : the permutations to start from
    kernel : ``"numba"`` or ``"python"``

    Attributes
    ----------
    data, masks, walk, scratch : the kernel's state, the named tuples of
        :mod:`permsolve.solvers._anneal_kernel` (what the moves only read; the tile
        scores, profiles and masks; the permutations, best values and counters; work arrays)
    stats : ``walk.stats``, the counters (``ST_*`` of the kernel module ``k``)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> st = AnnealState(p, p.identity())
    >>> bool(abs(st.current - p.evaluate(p.identity())) < 1e-9)
    True
    """

    def __init__(self, problem: TileProblem, perms: Mapping[str, np.ndarray], kernel: str = "numba"):
        self.k = load_kernel(kernel)
        K = self.k
        self.problem = problem
        self.names = problem.perm_names
        sizes = [problem.perm_sizes[nm] for nm in self.names]
        self.perm_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        w = np.array([s if s >= 2 else 0 for s in sizes], dtype=np.float64)
        if w.sum() == 0:
            w[:] = 1.0
        cw = np.cumsum(w) / w.sum()
        cw[-1] = 2.0  # r0 < 1 always lands in range
        self.perm_cumw = cw
        pidx = {nm: i for i, nm in enumerate(self.names)}

        nm_ = len(problem.members)
        mem = np.zeros((nm_, K.M_FIELDS), dtype=np.int64)
        s_off = t_off = r_off = c_off = g_off = 0
        binds = []  # (perm index, member, axis, unit)
        max_gs = 1
        max_tiles = 1
        for mi, m in enumerate(problem.members):
            (rows, cols), (h, wd) = m.shape, m.tile
            mb, nb = m.grid
            if isinstance(m.mask, GlobalMask):
                glob, kk, ng, gs = 1, m.mask.n_kept(mb, nb, m.sparsity), 1, mb * nb
            elif isinstance(m.mask, RowBalancedMask):
                glob, kk, ng, gs = 0, m.mask.per_row(nb, m.sparsity), mb, nb
            else:
                raise ValueError(f"anneal handles the global and row-balanced masks, not {m.mask.name!r}")
            mem[mi, [K.M_M, K.M_N, K.M_H, K.M_W, K.M_MB, K.M_NB]] = rows, cols, h, wd, mb, nb
            mem[mi, K.M_SOFF], mem[mi, K.M_TOFF] = s_off, t_off
            mem[mi, K.M_ROFF] = r_off if m.rows is not None else -1
            mem[mi, K.M_COFF] = c_off if m.cols is not None else -1
            mem[mi, [K.M_GLOBAL, K.M_K, K.M_GOFF]] = glob, kk, g_off
            s_off += rows * cols
            t_off += mb * nb
            g_off += ng
            if m.rows is not None:
                r_off += rows * nb
                binds.append((pidx[m.rows], mi, 0, m.row_unit))
            if m.cols is not None:
                c_off += cols * mb
                binds.append((pidx[m.cols], mi, 1, m.col_unit))
            max_gs = max(max_gs, gs)
            max_tiles = max(max_tiles, mb * nb)
        self.n_groups = g_off
        binds.sort(key=lambda b: b[0])
        nbind = len(binds)
        soff, choff, goff = [], [], []
        so = co = go = 0
        max_slots = 1
        for _, mi, axis, unit in binds:
            mb, nb = mem[mi, K.M_MB], mem[mi, K.M_NB]
            blk = mem[mi, K.M_H] if axis == 0 else mem[mi, K.M_W]
            nblk = mb if axis == 0 else nb
            slots = int(min(nblk, 2 * (unit // blk + 2)))
            span = nb if axis == 0 else mb
            soff.append(so)
            choff.append(co)
            goff.append(go)
            so += slots
            co += slots * span
            go += 1 if mem[mi, K.M_GLOBAL] else (2 * slots if axis == 0 else mb)
            max_slots = max(max_slots, slots)
        bind = np.array([b[1:] for b in binds], dtype=np.int64).reshape(nbind, 3)    # member, axis, unit
        self.data = K.ProblemData(
            mem=mem, perm_off=self.perm_off, perm_cumw=self.perm_cumw,
            bind_off=np.searchsorted([b[0] for b in binds], np.arange(len(self.names) + 1)).astype(np.int64),
            bind_mem=bind[:, 0].copy(), bind_axis=bind[:, 1].copy(), bind_unit=bind[:, 2].copy(),
            bind_soff=np.array(soff, dtype=np.int64), bind_choff=np.array(choff, dtype=np.int64),
            bind_goff=np.array(goff, dtype=np.int64),
            # one writable member: its own entries, not a copy (the kernel only reads them; numba
            # types a read-only array differently, so such an array is copied)
            S=(problem.members[0].importance.ravel()
               if nm_ == 1 and problem.members[0].importance.flags.writeable
               else np.concatenate([m.importance.ravel() for m in problem.members])))
        nt = max(t_off, 1)
        self.masks = K.MaskState(
            T=np.zeros(nt), R=np.zeros(max(r_off, 1)), C=np.zeros(max(c_off, 1)), sv=np.zeros(nt),
            sid=np.zeros(nt, dtype=np.int64), pos=np.zeros(nt, dtype=np.int64), ksum=np.zeros(max(g_off, 1)),
            bandf=np.zeros((nm_, 2)), bandn=np.zeros((nm_, 2), dtype=np.int64))
        perm = np.zeros(int(self.perm_off[-1]), dtype=np.int64)
        self.walk = K.WalkState(perm=perm, best_perm=np.zeros_like(perm), values=np.zeros(2),
                                stats=np.zeros(K.N_STATS, dtype=np.int64))
        self.stats = self.walk.stats
        big = max(max_tiles, co, 1)
        self.scratch = K.Scratch(
            bind_ns=np.zeros(nbind, dtype=np.int64), slots=np.zeros(max(so, 1), dtype=np.int64),
            ch_id=np.zeros(max(co, 1), dtype=np.int64), ch_val=np.zeros(max(co, 1)), g_val=np.zeros(max(go, 1)),
            buf=np.zeros(big + 2 * max_gs),   # _topk_fresh: 3 x a group
            buf2=np.zeros(big), gids=np.zeros(max_slots, dtype=np.int64), gvals=np.zeros(max_slots),
            order=np.zeros(big, dtype=np.int64), tmp_v=np.zeros(max_gs), tmp_i=np.zeros(max_gs, dtype=np.int64),
            hole=np.zeros(max_gs, dtype=np.uint8))
        self.set_perms(perms)

    # ------------------------------------------------------------------ state
    def set_perms(self, perms: Mapping[str, np.ndarray], keep_best: bool = False) -> float:
        """Rebuild every array from scratch for ``perms`` (also clears float drift).

        Returns the drift: old incremental value minus the exact one.
        """
        K = self.k
        ms, ws = self.masks, self.walk
        perms = self.problem.check_perms(perms)
        for i, nm in enumerate(self.names):
            ws.perm[self.perm_off[i]:self.perm_off[i + 1]] = perms[nm]
        for mi, m in enumerate(self.problem.members):
            row = self.data.mem[mi]
            h, w = m.tile
            mb, nb = m.grid
            t0 = row[K.M_TOFF]
            (rows, cols), ro, co = m.shape, row[K.M_ROFF], row[K.M_COFF]
            # tiles, row profiles (rows in their own order) and column profiles (columns in theirs),
            # from one pass over the permuted matrix, a slab at a time (never a whole copy of it)
            T = ms.T[t0:t0 + mb * nb].reshape(mb, nb)
            R = ms.R[ro:ro + rows * nb].reshape(rows, nb) if m.rows is not None else None
            C = ms.C[co:co + cols * mb].reshape(cols, mb) if m.cols is not None else None
            cexp = expand_perm(perms[m.cols], m.col_unit) if m.cols is not None else None
            for a, rws, X in m.slabs(perms):
                ta = a // h
                Ts = tile_scores(X, h, w)
                T[ta:ta + Ts.shape[0]] = Ts
                if R is not None:
                    R[rws] = row_profile(X, w)
                if C is not None:
                    C[cexp, ta:ta + Ts.shape[0]] = col_profile(X, h)
            g0, kk = row[K.M_GOFF], row[K.M_K]
            if row[K.M_GLOBAL]:
                sl = slice(t0, t0 + mb * nb)
                K.band_rebuild(ms.T[sl], ms.sv[sl], ms.sid[sl], kk, ms.bandf[mi], ms.bandn[mi])
                ms.ksum[g0] = np.sort(T.ravel())[mb * nb - kk:].sum() if kk > 0 else 0.0
            else:
                o = np.argsort(T, axis=1, kind="stable")
                sv = np.take_along_axis(T, o, axis=1)
                ids = o + (np.arange(mb) * nb)[:, None]
                ms.sv[t0:t0 + mb * nb] = sv.ravel()
                ms.sid[t0:t0 + mb * nb] = ids.ravel()
                ms.pos[t0 + ids.ravel()] = np.tile(np.arange(nb), mb)
                ms.ksum[g0:g0 + mb] = sv[:, nb - kk:].sum(axis=1) if kk > 0 else 0.0
        exact = float(ms.ksum[:self.n_groups].sum())
        drift = float(ws.values[0] - exact)
        ws.values[0] = exact
        if not keep_best or exact > ws.values[1]:
            ws.values[1] = exact
            ws.best_perm[:] = ws.perm
        return drift

    @property
    def current(self) -> float:
        """Kept importance of the current permutations (incremental)."""
        return float(self.walk.values[0])

    @property
    def best(self) -> float:
        """Kept importance of the best permutations since the last :meth:`set_perms`."""
        return float(self.walk.values[1])

    def perms(self) -> dict[str, np.ndarray]:
        """The current permutations, by name."""
        return {nm: self.walk.perm[self.perm_off[i]:self.perm_off[i + 1]].copy() for i, nm in enumerate(self.names)}

    def best_perms(self) -> dict[str, np.ndarray]:
        """The best permutations seen since the last :meth:`set_perms`."""
        return {nm: self.walk.best_perm[self.perm_off[i]:self.perm_off[i + 1]].copy()
                for i, nm in enumerate(self.names)}

    # ------------------------------------------------------------------ moves
    def _call(self, rand, temp, alpha, probe, deltas):
        return self.k.run_moves(self.data, self.masks, self.walk, self.scratch, rand, float(temp), float(alpha),
                                probe, deltas)

    def run(self, rand: np.ndarray, temp: float, alpha: float) -> float:
        """Metropolis moves, one per row of ``rand`` (``(n, 4)`` uniforms); returns the final temperature."""
        return float(self._call(np.ascontiguousarray(rand, dtype=np.float64), temp, alpha, False,
                                np.zeros(1)))

    def probe(self, rand: np.ndarray) -> np.ndarray:
        """Deltas of the moves ``rand`` describes, none applied."""
        rand = np.ascontiguousarray(rand, dtype=np.float64)
        deltas = np.zeros(rand.shape[0])
        self._call(rand, 0.0, 1.0, True, deltas)
        return deltas


@register
class Anneal(Solver):
    """Simulated annealing over unit swaps with exact incremental evaluation (numba).

    Swaps two units (rows or columns) of a permutation; each move's change of the kept importance is
    computed exactly from the tiles it touches.  With ``moves`` set and no time limit the run is
    deterministic for a seed; see the module docstring for the schedule.

    Parameters
    ----------
    **options
        the solver's options: the fields of :class:`Options` (unknown ones are an error)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem, solve
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    >>> r = solve(p, "anneal", moves=20000)
    >>> r.solver, r.retained >= p.evaluate(), r.retained <= r.bound
    ('anneal', True, True)
    """
    name = "anneal"
    description = "simulated annealing over unit swaps, exact incremental evaluation (numba)"

    @dataclasses.dataclass(frozen=True)
    class Options(registry.Options):
        """The ``anneal`` solver's options (see the module docstring for how they act).

        Attributes
        ----------
        start : where to start without an init: ``"auto"``, ``"greedy"``, ``"hungarian"`` or ``"identity"``
        auto_hungarian_units : ``"auto"`` is ``"hungarian"`` for permutations of at most this many units
        moves : moves per restart, or None (from the time limit, else ``moves_per_unit``)
        moves_per_unit : without a time limit, moves per restart per unit (at least 100 000)
        max_moves_per_unit : under a time limit, the most moves per unit (a small problem stops early)
        restarts : restarts, each from the best permutations so far
        t0_factor : start temperature, times the mean loss of the worsening calibration moves
        t_end_factor : end temperature, times the start temperature
        calib_moves : random moves that calibrate the start temperature
        start_share : share of the time left that the hungarian start may use
        resync_moves : moves between rebuilds of the state from scratch (clears float drift)
        kernel : ``"numba"`` (compiled) or ``"python"`` (the same code, not compiled: slow)

        Examples
        --------
        >>> Anneal.Options(moves=1000).moves
        1000
        >>> Anneal.Options(restarts=0)
        Traceback (most recent call last):
        ...
        ValueError: anneal: restarts must be >= 1
        """
        start: str = "auto"
        auto_hungarian_units: int = 8192
        moves: int | None = None
        moves_per_unit: int = 2000
        max_moves_per_unit: int = 20000
        restarts: int = 1
        t0_factor: float = 1.0
        t_end_factor: float = 1e-3
        calib_moves: int = 2000
        start_share: float = 0.25
        resync_moves: int = 1 << 20
        kernel: str = "numba"

        def validate(self) -> None:
            """Raise ``ValueError`` for a value out of range."""
            if self.start not in ("auto", "greedy", "hungarian", "identity"):
                raise ValueError(f"anneal: start must be 'auto', 'greedy', 'hungarian' or 'identity', "
                                 f"got {self.start!r}")
            if self.kernel not in ("numba", "python"):
                raise ValueError(f"anneal: kernel must be 'numba' or 'python', got {self.kernel!r}")
            if self.moves is not None and int(self.moves) < 1:
                raise ValueError("anneal: moves must be >= 1")
            if int(self.restarts) < 1:
                raise ValueError("anneal: restarts must be >= 1")
            if not (self.t0_factor > 0 and 0 < self.t_end_factor <= 1):
                raise ValueError("anneal: need t0_factor > 0 and 0 < t_end_factor <= 1")
            if not 0 <= self.start_share <= 1:
                raise ValueError("anneal: start_share must be in [0, 1]")

    anytime = True
    randomized = True
    axes = frozenset({"rows", "cols", "both", "coupled"})

    def __init__(self, **options):
        super().__init__(**options)
        kernel = self.config.kernel
        # compile (or load the cached kernel) now, before any solve's clock starts
        self.jit_seconds = warmup(kernel) if kernel == "numba" else 0.0
        preload()          # the hungarian start's imports

    def supports(self, problem):
        why = super().supports(problem)
        if why:
            return why
        for m in problem.members:
            if not isinstance(m.mask, (GlobalMask, RowBalancedMask)):
                return f"solver 'anneal' handles the global and row-balanced masks, not {m.mask}"
            for unit, layout in ((m.row_unit, m.row_layout), (m.col_unit, m.col_layout)):
                if unit > 1 and layout != "contiguous":
                    return f"solver 'anneal' moves contiguous units only, not {layout} ones ({m.name or 'matrix'})"
        return None

    # ------------------------------------------------------------------ solve
    def _start(self, problem, run) -> None:
        """The start (:func:`~permsolve.solvers._common.run_start`): an init is the start; else
        ``start``, with ``"auto"`` resolved by size, and ``run.info["start"]`` says which."""
        c = self.config
        if run.has_init or c.start == "identity":
            run_start(problem, run, "identity")     # the init, else the identity: nothing to run
            return
        # time_left() already holds one evaluation back for the final recomputation
        if run.time_limit is not None and run.time_left() < 1.1 * run.eval_seconds:
            run.info["start"] = "identity (no time to evaluate another start)"
            return
        mode = c.start
        if mode == "auto":
            small = max(problem.perm_sizes.values(), default=0) <= int(c.auto_hungarian_units)
            mode = "hungarian" if small else "greedy"
        run.info["start"] = mode

        def fits(budget):
            # one assignment step cannot be interrupted: skip the start when a step would not
            # fit in the share (estimated from a small LSA, x P^3); a round also evaluates the
            # problem about three times (masks, value, the sub-solve's checks)
            return budget is None or (run.time_left() > budget
                                      and _assignment_seconds(problem) + 4 * run.eval_seconds < budget)

        used = run_start(problem, run, mode, share=c.start_share, fits=fits)
        if used.endswith(" skipped"):
            run.info["hungarian_start_skipped"] = True

    def _solve(self, problem, run, rng):
        o = self.config
        self._start(problem, run)
        # building the state costs about three evaluations (measured: 3 to 3.5 at 4096 x 4096): where
        # it would not end within the limit, the start is the answer (said in info), not an overrun
        if run.time_limit is not None and run.time_left() < 3 * run.eval_seconds:
            run.info.update(kernel=o.kernel, jit_seconds=self.jit_seconds, moves=0,
                            skipped="no time left to build the annealing state")
            return
        st = AnnealState(problem, run.best_perms, kernel=o.kernel)
        units = int(sum(n for n in problem.perm_sizes.values() if n >= 2))
        info = {"kernel": o.kernel, "jit_seconds": self.jit_seconds, "start_value": run.best,
                "t0": [], "moves": 0, "accepted": 0, "max_drift": 0.0}
        run.info.update(info)
        if units == 0 or run.expired():
            return
        restarts = int(o.restarts)
        timed = o.moves is None and run.time_limit is not None
        per_restart = int(o.moves) if o.moves is not None else max(100_000, int(o.moves_per_unit) * units)
        cap = max(100_000, int(o.max_moves_per_unit) * units) // restarts
        # a chunk cannot be interrupted: under a time limit the first is small and the next ones
        # follow the measured rate.  Probes do not predict it: at 8192 x 8192 with both axes 2,000
        # probes took 15 ms and the first 2,709 moves 2.5 s (accepted moves move the mask's band)
        chunk = 64 if timed else 4096
        t_begin = time.perf_counter()
        last_offer = t_begin
        since_resync = 0
        max_drift = 0.0
        for r in range(restarts):
            if run.expired():
                break
            if r > 0:   # restart 0 starts from the state just built (rebuilding it costs O(m*n))
                max_drift = max(max_drift, abs(st.set_perms(run.best_perms)))
            deltas = st.probe(rng.random((int(o.calib_moves), 4)))
            # a move that changes nothing comes out as +-1e-17 of float noise: count it as 0, not
            # as a worsening, or the temperature would depend on the importance's magnitude
            real = deltas[np.abs(deltas) > 1e-12 * problem.total]
            neg = -real[real < 0]
            scale = float(neg.mean()) if neg.size else (float(np.abs(real).mean()) if real.size else 0.0)
            if not scale > 0:
                break            # no move changes anything: nothing to anneal
            t0 = o.t0_factor * scale
            t_end = o.t_end_factor * t0
            run.info["t0"].append(t0)
            temp = t0
            r_start = time.perf_counter()
            # the last offer evaluates once more before the base class's recomputation
            budget = (run.time_left() - run.eval_seconds) / (restarts - r) if timed else None
            # under a time limit the schedule's progress is the larger of the
            # time used and the moves done out of ``cap``: small problems
            # finish early, large ones follow the clock
            done = 0
            if timed:
                chunk = max(64, min(chunk, cap // 100))
            while True:
                if timed:
                    frac = max((time.perf_counter() - r_start) / budget, done / cap)
                    if frac >= 1.0:
                        break
                    temp = t0 * (t_end / t0) ** frac
                    n = chunk
                    alpha = 1.0
                else:
                    n = min(chunk, per_restart - done)
                    if n <= 0:
                        break
                    alpha = (t_end / t0) ** (1.0 / per_restart)
                tc = time.perf_counter()
                temp = st.run(rng.random((n, 4)), temp, alpha)
                dt = time.perf_counter() - tc
                done += n
                since_resync += n
                if timed and dt > 0:   # aim at ~20 ms per chunk
                    chunk = int(min(1 << 16, cap // 100, max(64, chunk * 0.02 / dt)))
                if since_resync >= o.resync_moves:
                    max_drift = max(max_drift, abs(st.set_perms(st.perms(), keep_best=True)))
                    since_resync = 0
                now = time.perf_counter()
                # an offer evaluates the problem: at most a fifth of the time goes to them
                if st.best > run.best and now - last_offer > max(0.25, 4 * run.eval_seconds):
                    run.offer(st.best_perms())
                    last_offer = now
                if run.expired():
                    break
            if st.best > run.best:
                run.offer(st.best_perms())
                last_offer = time.perf_counter()
        elapsed = time.perf_counter() - t_begin
        moves = int(st.walk.stats[st.k.ST_MOVES])
        run.nit = moves
        stats = st.walk.stats
        run.info.update(moves=moves, accepted=int(stats[st.k.ST_ACCEPTED]), max_drift=max_drift,
                        band_rebuilds=int(stats[st.k.ST_REBUILD]), band_fallbacks=int(stats[st.k.ST_FALLBACK]),
                        moves_per_second=moves / elapsed if elapsed > 0 else float("nan"))
