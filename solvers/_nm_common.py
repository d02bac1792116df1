"""What the N:M solvers share: the kernel loader, the search state on a raw
matrix, the anytime search itself, and the reduction of an N:M problem to one
matrix whose columns are permuted.

The search works on a plain ``(rows, cols)`` array so that benchmarks and
tests can run it without building a problem; the solvers wrap it.
"""
from __future__ import annotations

import importlib.util
import math
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["load_kernel", "warmup", "NMState", "anneal_search", "window_cost"]

_KERNELS: dict[str, object] = {}
_WARM: dict[str, float] = {}


def load_kernel(kind: str = "numba"):
    """The kernel module: ``"numba"`` (compiled, cached on disk) or ``"python"`` (the same code, plain Python)."""
    if kind in _KERNELS:
        return _KERNELS[kind]
    if kind == "numba":
        from . import _nm_kernel as mod
    elif kind == "python":
        path = Path(__file__).with_name("_nm_kernel.py")
        name = f"{__package__}._nm_kernel_python"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        mod._NOJIT = True
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    else:
        raise ValueError(f"kernel must be 'numba' or 'python', got {kind!r}")
    _KERNELS[kind] = mod
    return mod


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


def window_cost(rows: int, n: int, m: int, k: int) -> float:
    """Rough operation count of one ``k``-group window re-partition (its subset table)."""
    return math.comb(k * m, m) * rows * (m + 3) + math.comb(k * m - 1, m - 1) * (
        math.comb((k - 1) * m - 1, m - 1) if k == 3 else 1)


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
        self.perm = np.arange(C, dtype=np.int64)
        self.best_perm = self.perm.copy()
        self.vals = np.zeros(2)
        self.stats = np.zeros(self.k.N_STATS, dtype=np.int64)
        self._tabs: dict[int, np.ndarray] = {}
        self.set_perm(self.perm if perm is None else perm)

    def set_perm(self, perm: np.ndarray, keep_best: bool = False) -> float:
        """Rebuild the state for ``perm`` (clears float drift); returns the drift of the old incremental value."""
        self.perm[:] = np.asarray(perm, dtype=np.int64)
        exact = float(self.k.init_state(self.ST, self.perm, self.n, self.m, self.P, self.gv))
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
        return float(self.k.anneal_moves(self.P, self.gv, self.perm, self.best_perm, self.n, self.m,
                                         np.ascontiguousarray(rand, dtype=np.float64), float(temp), float(alpha),
                                         self.vals, self.stats))

    def probe(self, rand: np.ndarray) -> np.ndarray:
        """Deltas of random swaps, none applied."""
        out = np.zeros(rand.shape[0])
        self.k.probe(self.P, self.gv, self.n, self.m, np.ascontiguousarray(rand, dtype=np.float64), out)
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
        gain = float(self.k.window_sweep(self.ST, self.P, self.gv, self.perm, self.n, self.m, windows, tab,
                                         tol, self.vals))
        if self.vals[0] > self.vals[1]:
            self.vals[1] = self.vals[0]
            self.best_perm[:] = self.perm
        return gain


def _all_windows(G: int, k: int) -> np.ndarray:
    return np.array(list(combinations(range(G), k)), dtype=np.int64).reshape(-1, k)


def anneal_search(S: np.ndarray, n: int, m: int, *, rng: np.random.Generator,
                  init: np.ndarray | None = None,
                  offer: Callable[[np.ndarray, float], None] = lambda perm, value: None,
                  time_left: Callable[[], float] = lambda: math.inf,
                  rounds: int | None = None, moves_per_col: int = 2000, t0_factor: float = 0.5,
                  t_end_factor: float = 0.01, reheat: float = 0.3, windows: int = 3,
                  window_share: float = 0.3, kernel: str = "numba", info: dict | None = None) -> np.ndarray:
    """Anytime N:M search: rounds of annealing over cross-group swaps, each polished by exact window re-partitions.

    Round 1 anneals from ``init`` (identity if None) from ``t0_factor`` x the
    mean loss of random worsening moves down to ``t_end_factor`` x that;
    every later round restarts from the best permutation found so far at
    ``reheat`` x the first round's start temperature (a perturbation that keeps
    most of the structure).  After the annealing, windows of 2 groups, then
    (``windows=3``) of 3 groups, are re-partitioned optimally until none gains;
    when all pairs (triples) cost too much for ``window_share`` of a round, a
    random sample of them is used.  ``offer(perm, value)`` receives every new
    best.  Stops after ``rounds`` rounds or when ``time_left()`` runs out
    (checked every few milliseconds).  Returns the best permutation.

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
    info.update(rounds=0, moves=0, window_gain=0.0, start_value=best, max_drift=0.0)
    if G < 2:
        return best_perm

    def take(perm, value):
        nonlocal best_perm, best
        if value > best + 1e-12 * max(1.0, abs(best)):
            best_perm, best = perm.copy(), value
            offer(best_perm, best)

    deltas = st.probe(rng.random((min(4000, 50 * C), 3)))
    neg = -deltas[deltas < 0]
    scale = float(neg.mean()) if neg.size else float(np.abs(deltas).mean())
    if not scale > 0:
        return best_perm
    t_top = t0_factor * scale
    t_end = t_end_factor * scale
    per_round = max(1000, int(moves_per_col) * C)
    # windows: all of them when a sweep is affordable, else a sample
    ops_per_move = R * 2 * (m + 3)
    ks = [k for k in (2, 3) if k <= windows and k <= G and k * m <= st.k.WINDOW_MAX_BITS]
    budget_ops = window_share * per_round * ops_per_move
    wlists = {}
    for k in ks:
        total = math.comb(G, k)
        afford = max(1, int(budget_ops / (len(ks) * window_cost(R, n, m, k))))
        wlists[k] = (total, afford)
    chunk = 2048
    r = 0
    while rounds is None or r < rounds:
        if time_left() <= 0:
            break
        st.set_perm(best_perm)
        temp = t_top if r == 0 else reheat * t_top
        if temp <= t_end:
            temp = 2 * t_end
        alpha = (t_end / temp) ** (1.0 / per_round)
        done = 0
        stopped = False
        while done < per_round:
            k_moves = min(chunk, per_round - done)
            tc = time.perf_counter()
            temp = st.anneal(rng.random((k_moves, 3)), temp, alpha)
            dt = time.perf_counter() - tc
            done += k_moves
            if dt > 0:                      # aim at ~5 ms per call
                chunk = int(min(1 << 16, max(64, chunk * 0.005 / dt)))
            if st.best > best:
                take(st.best_perm, st.best)
            if time_left() <= 0:
                stopped = True
                break
        info["moves"] += done
        info["max_drift"] = max(info["max_drift"], abs(st.set_perm(st.perm, keep_best=True)))
        take(st.best_perm, st.best)
        if stopped:
            break
        # polish the final state of the annealing with exact window re-partitions
        for _ in range(20):
            gained = 0.0
            for k in ks:
                total, afford = wlists[k]
                if total <= afford:
                    wl = _all_windows(G, k)
                    wl = wl[rng.permutation(len(wl))]
                else:
                    wl = np.sort(np.array([rng.choice(G, size=k, replace=False) for _ in range(afford)]), axis=1)
                step = max(1, min(len(wl), int(2e6 / window_cost(R, n, m, k))))   # ~ms per call
                for i in range(0, len(wl), step):
                    g = st.windows(wl[i:i + step])
                    gained += g
                    if time_left() <= 0:
                        break
                if time_left() <= 0:
                    break
            info["window_gain"] += gained
            take(st.best_perm, st.best)
            if gained <= 1e-12 * max(1.0, best) or time_left() <= 0 or any(t > a for t, a in wlists.values()):
                break
        r += 1
        info["rounds"] = r
    info["moves"] = int(st.stats[st.k.ST_MOVES])
    info["accepted"] = int(st.stats[st.k.ST_ACCEPTED])
    return best_perm
