"""What the N:M solvers share: the kernel loader, the search state on a raw
matrix, the anytime search itself, and the reduction of an N:M problem to one
matrix whose columns are permuted.

The search works on a plain ``(rows, cols)`` array so that benchmarks and
tests can run it without building a problem; the solvers wrap it.
"""
from __future__ import annotations

import math
import time
from itertools import combinations
from typing import Callable

import numpy as np

from ._common import load_kernel_module

__all__ = ["load_kernel", "warmup", "NMState", "anneal_search", "window_moves", "NMReduction"]

_KERNELS: dict[str, object] = {}
_WARM: dict[str, float] = {}


def load_kernel(kind: str = "numba"):
    """The kernel module: ``"numba"`` (compiled, cached on disk) or ``"python"`` (the same code, plain Python)."""
    return load_kernel_module("_nm_kernel", kind, _KERNELS, "")


def warmup(kind: str = "numba") -> float:
    """Compile (or load from the on-disk cache) every kernel once per process; returns the seconds it took.

    Called when a solver is created, so that compiling is never charged to a solve's time limit.

    Examples
    --------
    >>> warmup() >= 0.0
    True
    """
    if kind in _WARM:
        return 0.0
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    S = rng.random((3, 8))
    for n, m in ((2, 4), (1, 2)):       # the 2:4 fast path and the general top-n
        st = NMState(S, n, m, kernel=kind)
        st.anneal(rng.random((16, 3)), 0.1, 0.99)
        st.probe(rng.random((4, 3)))
        st.windows(np.array([[0, 1]], dtype=np.int64))
        if m == 2:
            st.windows(np.array([[0, 1, 2]], dtype=np.int64))
        K = st.k
        K.exact_dp(st.ST, n, m)
        K.value(st.ST, st.perm, n, m)
    _WARM[kind] = time.perf_counter() - t
    return _WARM[kind]


def window_moves(n: int, m: int, k: int) -> int:
    """Cost of one ``k``-group window re-partition in swap moves (rows cancel: both are linear in them).

    Its table values ``C(k*m, m)`` subsets, each a top-``n`` of ``m`` per row; measured: 650 to 1000 moves
    for 2:4 pairs, 3700 to 7300 for 2:4 triples, 1.8 million for 4:8 pairs (the model: 840, 5940, 515 000).

    Examples
    --------
    >>> window_moves(2, 4, 2)
    840
    """
    return math.comb(k * m, m) * (m + min(n, m - n) * m)


class NMState:
    """Incremental search state of an N:M column-permutation problem on a raw matrix.

    Parameters
    ----------
    S : (rows, cols) array, >= 0, ``cols % m == 0``
    n, m : keep ``n`` of every ``m`` consecutive permuted columns, in every row
    perm : column permutation to start from (identity if None)
    kernel : ``"numba"`` or ``"python"``

    Examples
    --------
    >>> import numpy as np
    >>> st = NMState(np.arange(8.0).reshape(1, 8), 2, 4)
    >>> st.current                       # (2 + 3) + (6 + 7)
    18.0
    """

    def __init__(self, S: np.ndarray, n: int, m: int, perm: np.ndarray | None = None, kernel: str = "numba"):
        self.k = load_kernel(kernel)
        S = np.asarray(S, dtype=np.float64)
        R, C = S.shape
        if C % m:
            raise ValueError(f"{C} columns are not a multiple of m={m}")
        self.n, self.m, self.rows, self.cols, self.groups = int(n), int(m), R, C, C // m
        self.ST = np.ascontiguousarray(S.T)
        self.P = np.empty((C, R))
        self.gv = np.empty((C // m, R))
        self.TN = np.empty((C // m, R))
        self.TN1 = np.empty((C // m, R))
        self.perm = np.arange(C, dtype=np.int64)
        self.best_perm = self.perm.copy()
        self.vals = np.zeros(2)
        self.stats = np.zeros(self.k.N_STATS, dtype=np.int64)
        self._tabs: dict[int, np.ndarray] = {}
        self.set_perm(self.perm if perm is None else perm)

    def set_perm(self, perm: np.ndarray, keep_best: bool = False) -> float:
        """Rebuild the state for ``perm`` (clears float drift); returns the drift of the old incremental value."""
        self.perm[:] = np.asarray(perm, dtype=np.int64)
        exact = float(self.k.init_state(self.ST, self.perm, self.n, self.m, self.P, self.gv, self.TN, self.TN1))
        drift = float(self.vals[0]) - exact
        self.vals[0] = exact
        if not keep_best or exact > self.vals[1]:
            self.vals[1] = exact
            self.best_perm[:] = self.perm
        return drift

    @property
    def current(self) -> float:
        return float(self.vals[0])

    @property
    def best(self) -> float:
        return float(self.vals[1])

    def anneal(self, rand: np.ndarray, temp: float, alpha: float) -> float:
        """Metropolis swaps, one per row of ``rand`` (``(k, 3)`` uniforms); returns the final temperature."""
        return float(self.k.anneal_moves(self.P, self.gv, self.TN, self.TN1, self.perm, self.best_perm, self.n, self.m,
                                         np.ascontiguousarray(rand, dtype=np.float64), float(temp), float(alpha),
                                         self.vals, self.stats))

    def probe(self, rand: np.ndarray) -> np.ndarray:
        """Deltas of random swaps, none applied."""
        out = np.zeros(rand.shape[0])
        self.k.probe(self.P, self.gv, self.TN, self.TN1, self.m, np.ascontiguousarray(rand, dtype=np.float64), out)
        return out

    def windows(self, windows: np.ndarray) -> float:
        """Re-partition each window (row of group indices) optimally, in turn; returns the gain."""
        windows = np.ascontiguousarray(windows, dtype=np.int64)
        bits = windows.shape[1] * self.m
        if bits > self.k.WINDOW_MAX_BITS:
            raise ValueError(f"a window of {windows.shape[1]} groups of {self.m} is too wide")
        tab = self._tabs.get(bits)
        if tab is None:
            tab = self._tabs[bits] = np.zeros(1 << bits)
        tol = 1e-12 * max(1.0, abs(self.current))
        gain = float(self.k.window_sweep(self.ST, self.P, self.gv, self.TN, self.TN1, self.perm, self.n, self.m, windows, tab,
                                         tol, self.vals))
        if self.vals[0] > self.vals[1]:
            self.vals[1] = self.vals[0]
            self.best_perm[:] = self.perm
        return gain


def _all_windows(G: int, k: int) -> np.ndarray:
    return np.array(list(combinations(range(G), k)), dtype=np.int64).reshape(-1, k)


def _window_lists(G: int, ks: list[int], rng: np.random.Generator, cap: int = 20000):
    """Windows to polish with, in a random order: every pair (triple) when there are at most ``cap``; else
    ``cap`` random pairs (and no triples: sampled triples did not pay)."""
    out = []
    for k in ks:
        if math.comb(G, k) <= cap:
            wl = _all_windows(G, k)
            out.append((k, wl[rng.permutation(len(wl))], True))
        elif k == 2:
            a = rng.integers(0, G, size=cap)
            b = (a + 1 + rng.integers(0, G - 1, size=cap)) % G
            out.append((k, np.sort(np.stack([a, b], axis=1), axis=1), False))
    return out


def anneal_search(S: np.ndarray, n: int, m: int, *, rng: np.random.Generator,
                  init: np.ndarray | None = None,
                  offer: Callable[[np.ndarray, float], None] = lambda perm, value: None,
                  time_left: Callable[[], float] = lambda: math.inf,
                  rounds: int | None = None, moves_per_col: int = 15000, t0_factor: float = 0.5,
                  t_end_factor: float = 0.05, reheat: float = 0.5, windows: int = 3,
                  window_share: float = 0.25, timed_rounds: int = 4, kernel: str = "numba",
                  info: dict | None = None) -> np.ndarray:
    """Anytime N:M search: rounds of annealing over cross-group swaps, each polished by exact window re-partitions.

    Round 1 anneals from ``init`` (identity if None) from ``t0_factor`` x the
    mean loss of random worsening swaps down to ``t_end_factor`` x that, in
    ``moves_per_col * cols`` moves; every later round restarts from the best
    permutation found so far at ``reheat`` x the first round's start
    temperature (a perturbation that keeps most of the structure).  Under a
    time limit (``time_left`` finite) a round's temperature follows the larger
    of its share of the moves and its share of the time: the first
    ``timed_rounds`` rounds each get an equal share of the time left, so a
    large problem still cools within its limit; a small one finishes its moves
    early and starts more rounds.  After each annealing, windows of 2 groups,
    then (``windows=3``) of 3 groups, are re-partitioned optimally, in a
    random order, until a full pass gains nothing or they have cost
    ``window_share`` x the round's swaps (counted by :func:`window_moves`, so
    the budget does not depend on the clock; a size whose single window costs
    more than half of it is skipped).  ``offer(perm, value)`` receives every
    new best.  Stops after ``rounds`` rounds (None: 4 without a time limit,
    unlimited with one) or when ``time_left()`` runs out (checked every ~5 ms).
    Returns the best permutation.  Without a time limit the search is
    deterministic for a given ``rng`` state.

    Examples
    --------
    >>> import numpy as np
    >>> S = np.random.default_rng(0).random((16, 16))
    >>> perm = anneal_search(S, 2, 4, rng=np.random.default_rng(0), rounds=2, moves_per_col=100)
    >>> sorted(perm.tolist()) == list(range(16))
    True
    """
    info = {} if info is None else info
    st = NMState(S, n, m, init, kernel=kernel)
    R, C, G = st.rows, st.cols, st.groups
    best_perm, best = st.perm.copy(), st.current
    info.update(rounds=0, moves=0, window_gain=0.0, windows=0, start_value=best, max_drift=0.0)
    timed = math.isfinite(time_left())
    if rounds is None:
        rounds = None if timed else 4
    if G < 2:
        return best_perm

    def take(perm, value):
        nonlocal best_perm, best
        if value > best + 1e-12 * abs(best):           # relative: no floor (issue 11)
            best_perm, best = perm.copy(), value
            offer(best_perm, best)

    n_probe = min(4000, 50 * C)
    tp = time.perf_counter()
    deltas = st.probe(rng.random((n_probe, 3)))
    rate = n_probe / max(time.perf_counter() - tp, 1e-9)       # swaps a second, roughly
    # a swap that changes nothing comes out as +-1e-17 of float noise: not a worsening (issue 11),
    # or the temperature would depend on the magnitude of S
    real = deltas[np.abs(deltas) > 1e-12 * float(S.sum())]
    neg = -real[real < 0]
    scale = float(neg.mean()) if neg.size else (float(np.abs(real).mean()) if real.size else 0.0)
    if not scale > 0:
        return best_perm
    t_top = t0_factor * scale
    t_end = t_end_factor * scale
    per_round = max(1000, int(moves_per_col) * C)
    ks = [k for k in (2, 3) if k <= windows and k <= G and k * m <= st.k.WINDOW_MAX_BITS]
    wlists = _window_lists(G, ks, rng)
    if timed:   # rounds sharing the time: as many as get a whole round of moves each, at most timed_rounds
        timed_rounds = max(1, min(int(timed_rounds), int(0.7 * rate * time_left() / per_round)))
    info["planned_rounds"] = timed_rounds if timed else rounds
    chunk = 2048
    r = 0
    while rounds is None or r < rounds:
        if time_left() <= 0:
            break
        st.set_perm(best_perm)
        t_start = reheat * t_top if r > 0 else t_top
        t_start = max(t_start, 2 * t_end)
        log_ratio = math.log(t_end / t_start)
        round_time = time_left() / max(1, timed_rounds - r) if timed else math.inf
        r0 = time.perf_counter()
        done = 0
        stopped = False
        temp = t_start
        while True:
            frac = done / per_round
            if timed:
                frac = max(frac, (time.perf_counter() - r0) / round_time)
            if frac >= 1.0:
                break
            temp = t_start * math.exp(log_ratio * frac)
            k_moves = chunk if timed else min(chunk, per_round - done)
            # within a call the temperature follows the move schedule
            alpha = math.exp(log_ratio / per_round)
            tc = time.perf_counter()
            st.anneal(rng.random((k_moves, 3)), temp, alpha)
            dt = time.perf_counter() - tc
            done += k_moves
            if dt > 0:                      # aim at ~5 ms per call
                chunk = int(min(1 << 16, max(64, chunk * 0.005 / dt)))
            if st.best > best:
                take(st.best_perm, st.best)
            if time_left() <= 0:
                stopped = True
                break
        info["max_drift"] = max(info["max_drift"], abs(st.set_perm(st.perm, keep_best=True)))
        take(st.best_perm, st.best)
        if stopped:
            break
        # polish the final state of the annealing with exact window re-partitions,
        # budgeted in swap-move equivalents (deterministic), and by the clock under a limit
        budget = window_share * done
        for k, wl, complete in wlists:
            cost = window_moves(n, m, k)
            sweep = cost * len(wl)
            if cost > 0.5 * budget and sweep > 2e5:   # (a complete small sweep is always cheap)
                continue
            if k == 3 and sweep > max(budget, 2e5):
                continue        # triples only when a whole sweep fits: sampled ones did not pay on 128x64

            budget = max(budget, min(2e5, cost * len(wl)))
            step = max(1, min(len(wl), int(2e5 // cost)))
            out = False
            while not out:
                gained = 0.0
                for i in range(0, len(wl), step):
                    part = wl[i:i + step]
                    gained += st.windows(part)
                    info["windows"] += len(part)
                    budget -= cost * len(part)
                    if budget <= 0 or time_left() <= 0:
                        out = True
                        break
                info["window_gain"] += gained
                take(st.best_perm, st.best)
                if gained <= 1e-12 * max(1.0, best) or not complete:
                    break
            if budget <= 0 or time_left() <= 0:
                break
        r += 1
        info["rounds"] = r
    info["moves"] = int(st.stats[st.k.ST_MOVES])
    info["accepted"] = int(st.stats[st.k.ST_ACCEPTED])
    return best_perm


# ---------------------------------------------------------------- problems
def _nm_mask_class():
    try:
        from permsolve.masks import NMMask
    except ImportError:  # pragma: no cover - only before the mask spec exists
        return None
    return NMMask


class NMReduction:
    """An N:M problem as one matrix whose columns are permuted.

    Every member's columns bound to the one column permutation ``name`` are
    stacked: a member with unit 1, or with unit ``u`` in the ``"strided"``
    layout (a conv weight viewed as ``(C_out, kh*kw*C_in)``, unit ``q`` at
    ``q, q+P, ...``), is the matrix ``(rows*u, P)``: each group of ``m``
    permuted columns lies inside one block of ``P`` columns when ``P % m == 0``.
    Members whose columns are not permuted keep a constant value, and so do
    members with contiguous units whose size is a multiple of ``m`` (a Linear
    after a flatten: every N:M group lies inside one channel's block, and a
    permutation moves whole groups); row permutations never change an N:M value.

    Attributes
    ----------
    S : stacked ``(rows, P)`` matrix (None when no member's columns are permuted)
    n, m : the pattern
    name : the column permutation (None when there is none)
    """

    def __init__(self, problem):
        self.why = None
        NMMask = _nm_mask_class()
        if NMMask is None:
            self.why = "N:M solvers need permsolve.masks.NMMask (the mask spec)"
            return
        pats = set()
        names = set()
        for mem in problem.members:
            if not isinstance(mem.mask, NMMask):
                self.why = f"N:M solvers handle only N:M masks, not {str(mem.mask)!r}"
                return
            pats.add((int(mem.mask.n), int(mem.mask.m)))
            if mem.cols is not None:
                names.add(mem.cols)
        if len(pats) != 1:
            self.why = "N:M solvers need one N:M pattern shared by every member"
            return
        (self.n, self.m), = pats
        if len(names) > 1:
            self.why = (f"N:M solvers handle one column permutation per problem, this one has {len(names)} "
                        f"({', '.join(sorted(names))})")
            return
        self.name = next(iter(names)) if names else None
        blocks = []
        for mem in problem.members:
            if mem.cols is None:
                continue
            S, u = mem.importance, int(mem.col_unit)
            P = S.shape[1] // u
            layout = getattr(mem, "col_layout", "contiguous")
            if u > 1 and layout != "strided" and u % self.m == 0:
                continue    # every N:M group lies inside one unit: permuting units moves whole groups
            if u > 1 and layout != "strided":
                self.why = (f"N:M solvers need column unit 1 or the strided layout; member {mem.name or '?'} has "
                            f"contiguous units of {u} (view a conv weight as (C_out, kh*kw*C_in))")
                return
            if P % self.m:
                self.why = f"{P} permuted column units of member {mem.name or '?'} are not a multiple of m={self.m}"
                return
            blocks.append(S.reshape(S.shape[0] * u, P))
        self.S = np.ascontiguousarray(np.vstack(blocks)) if blocks else None
        self.size = 0 if self.S is None else self.S.shape[1]
