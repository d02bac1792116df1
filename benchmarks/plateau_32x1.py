"""Has the search stopped improving on 32x1 tiles?  anneal at 10 s against 60 s with three seeds, and from a
spectral start, next to the tightest bound.

For each layer (default: the zoo's ``resnet.layer3.0.conv1`` and MiniLM's
``encoder.layer.0.attention.self.query``, when the MiniLM package is
installed): importance |W|, 32x1 tiles, s = 0.5, rows permuted, global mask.
``anneal`` runs for 10 s (seed 0), for 60 s (seeds 0, 1, 2), and for 10 s from
recursive spectral bisection (rows split in two by the leading left singular
vector of the double-centred row profile, recursively, in whole tile rows).
The bound is the least of :func:`permsolve.certify.tighter_bounds` (10 s) and
the allocation bound.  ``--lagrange-times`` also prints the Lagrangian decomposition bound
(:func:`permsolve.lagrange.tight_bound`, ``parts="auto"``) after each of those budgets, to see
whether more time on the bound closes the gap.  ``--restarts SECONDS`` adds, on layers of two
tile rows only, random-restart hill climbing (:func:`restarts`), a search independent of anneal.

Usage::

    python benchmarks/plateau_32x1.py [--long 60] [--layers zoo:resnet:layer3.0.conv1,minilm:...]
                                      [--lagrange-times 10,60,180] [--restarts 120]

About 7 minutes with the defaults (add the sum of ``--lagrange-times`` per layer).  Prints one
line per layer.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

DEFAULT = "zoo:resnet:layer3.0.conv1,minilm:encoder.layer.0.attention.self.query.weight"


def bisection(R: np.ndarray, idx: np.ndarray, h: int) -> list[np.ndarray]:
    """Recursive spectral bisection of the rows ``idx`` into groups of whole tile rows."""
    if len(idx) <= h:
        return [idx]
    X = R[idx] - R[idx].mean(axis=0, keepdims=True)
    X = X - X.mean(axis=1, keepdims=True)
    u = np.linalg.svd(X, full_matrices=False)[0][:, 0]
    order = idx[np.argsort(u, kind="stable")]
    left = (-(-len(idx) // h) // 2) * h
    return bisection(R, order[:left], h) + bisection(R, order[left:], h)


def restarts(S: np.ndarray, k: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Best-swap hill climbing from random splits of the rows into two tile rows of ``h = m / 2``.

    For a two-tile-row layer with ``h x 1`` tiles: each climb swaps the row pair (one from each tile
    row) that raises the kept importance most, every pair evaluated exactly (the ``k`` largest of
    the ``2n`` tile sums), until no swap does.  Returns the value each climb ended at, one per
    random start, for ``seconds``.
    """
    m, _ = S.shape
    h = m // 2
    col = S.sum(axis=0)
    rng = np.random.default_rng(seed)

    def kept(A):
        return np.sort(np.concatenate([A, col - A], axis=-1), axis=-1)[..., -k:].sum(axis=-1)

    out = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x = np.zeros(m, dtype=bool)
        x[rng.permutation(m)[:h]] = True
        A = S[x].sum(axis=0)
        v = kept(A)
        while True:
            g1, g2 = np.flatnonzero(x), np.flatnonzero(~x)
            D = S[g2][None, :, :] - S[g1][:, None, :]          # row g1[i] out, g2[j] in
            V = kept(A[None, None, :] + D)
            i, j = np.unravel_index(np.argmax(V), V.shape)
            if V[i, j] <= v * (1 + 1e-13):
                break
            x[g1[i]], x[g2[j]] = False, True
            A, v = A + D[i, j], V[i, j]
        out.append(v)
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", type=float, default=60.0, help="seconds of the long runs")
    ap.add_argument("--layers", default=DEFAULT, help="zoo:MODEL:LAYER or minilm:KEY, comma separated")
    ap.add_argument("--lagrange-times", default="", help="seconds, comma separated: the Lagrangian "
                    "bound after each budget (none by default)")
    ap.add_argument("--restarts", type=float, default=0.0, help="seconds of random-restart hill "
                    "climbing on two-tile-row layers (0: none)")
    args = ap.parse_args(argv)
    from permsolve import TileProblem, importance, solve
    from permsolve.bounds import row_profile
    from permsolve.certify import tighter_bounds
    from permsolve.lagrange import tight_bound
    from permsolve.problems.real import SourceUnavailable, minilm_weight, zoo_weight

    for spec in args.layers.split(","):
        kind, *rest = spec.split(":")
        try:
            W = zoo_weight(*rest) if kind == "zoo" else minilm_weight(rest[0])
        except SourceUnavailable as e:
            print(f"{spec}: skipped ({e})")
            continue
        S = importance(W, "l1")
        p = TileProblem.from_matrix(S, tile=(32, 1), sparsity=0.5)
        pct = lambda v: f"{100 * v / p.total:.4f}%"  # noqa: E731
        short = solve(p, "anneal", time_limit=10, seed=0).retained
        longs = [solve(p, "anneal", time_limit=args.long, seed=s).retained for s in (0, 1, 2)]
        start = {"row": np.concatenate(bisection(row_profile(S, 1), np.arange(S.shape[0]), 32))}
        spectral = p.evaluate(start)
        from_spectral = solve(p, "anneal", time_limit=10, seed=0, init=start).retained
        bound = min(p.bound, *tighter_bounds(p, 10.0, target=max(short, *longs)).values())
        print(f"{spec} {S.shape[0]}x{S.shape[1]}: anneal 10 s {pct(short)}; {args.long:g} s seeds 0-2 "
              f"{', '.join(pct(v) for v in longs)}; spectral start {pct(spectral)}, anneal 10 s from it "
              f"{pct(from_spectral)}; bound {pct(bound)}; load {os.getloadavg()[0]:.1f}", flush=True)
        for t in [float(x) for x in args.lagrange_times.split(",") if x.strip()]:
            b = tight_bound(p, time_limit=t, target=max(short, *longs), parts="auto")
            print(f"    Lagrangian decomposition after {t:g} s: {pct(b)}", flush=True)
        if args.restarts > 0 and S.shape[0] == 64:
            v = restarts(S, p.members[0].n_kept, args.restarts)
            best = max(short, *longs)
            print(f"    {len(v)} random-restart climbs in {args.restarts:g} s: best {pct(v.max())}, median "
                  f"{pct(float(np.median(v)))}; {int((v >= best * (1 - 1e-12)).sum())} reach anneal's best "
                  f"{pct(best)}, {int((v > best * (1 + 1e-12)).sum())} exceed it", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
