"""``permsolve solve``: solve one matrix from a file.

``permsolve solve PATH --tile HxW --sparsity S --solver NAME [--axis rows|cols|both]
[--mask global|row-balanced] [--metric l1|l2|none] [--key TENSOR]
[--time-limit SECONDS] [--seed N] [--json]``

A weight with more than two dimensions (a conv's ``(C_out, C_in, kh, kw)``) is
viewed as ``(C_out, C_in*kh*kw)``; with ``--axis cols`` or ``both`` its columns
move by whole input channels, so ``col_perm`` has ``C_in`` entries.
"""
from __future__ import annotations

import json
import sys

from . import UsageError, seconds


def add_parser(sub):
    p = sub.add_parser("solve", help="find a permutation for one matrix",
                       description="Find row/column permutations that keep the most importance under a tile mask.")
    p.add_argument("path", metavar="PATH", help=".npy, .npz, .pt/.pth state dict or .safetensors")
    p.add_argument("--tile", required=True, metavar="HxW", help="tile shape, e.g. 16x16 or 32x1")
    p.add_argument("--sparsity", required=True, type=float, metavar="S", help="fraction of tiles pruned, in [0, 1)")
    p.add_argument("--solver", default="greedy", metavar="NAME", help="see `permsolve solvers` (default: greedy)")
    p.add_argument("--axis", default="rows", choices=["rows", "cols", "both"])
    p.add_argument("--mask", default="global", choices=["global", "row-balanced"])
    p.add_argument("--metric", default="l1", choices=["l1", "l2", "none"])
    p.add_argument("--key", default=None, metavar="TENSOR", help="tensor name inside the file")
    p.add_argument("--time-limit", type=seconds, default=None, metavar="SECONDS")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _problem(S, shape, tile, args):
    """The problem of one matrix; a conv weight's columns move by whole input channels.

    A weight of shape ``(C_out, C_in, kh, kw)`` is viewed as ``(C_out, C_in*kh*kw)``
    with each input channel's ``kh*kw`` columns side by side, so ``--axis cols``
    permutes units of ``kh*kw`` columns: ``col_perm`` is a permutation of the
    ``C_in`` input channels, the one a model can apply.
    """
    from permsolve.problem import Member, TileProblem

    unit = 1
    for d in shape[2:]:
        unit *= int(d)
    if unit == 1 or args.axis == "rows":
        return TileProblem.from_matrix(S, tile=tile, sparsity=args.sparsity, mask=args.mask, axis=args.axis)
    mem = Member(S, tile, args.sparsity, args.mask, rows="row" if args.axis == "both" else None,
                 cols="col", col_unit=unit)
    return TileProblem([mem], axis=args.axis)


def run(args):
    from permsolve.io import load_tensor
    from permsolve.metrics import importance
    from permsolve.problem import TileProblem, parse_tile
    from permsolve.registry import get_solver

    solver_cls = get_solver(args.solver)          # unknown solver: fail before reading anything
    h, w = parse_tile(args.tile)
    if not 0.0 <= args.sparsity < 1.0:
        raise UsageError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    W = load_tensor(args.path, args.key)
    if W.ndim < 2:
        raise UsageError(f"tensor has shape {W.shape}: a weight matrix needs 2 or more dimensions")
    S = importance(W, args.metric)
    m, n = S.shape
    if h > m or w > n:
        raise UsageError(f"tile {h}x{w} is larger than the {m}x{n} matrix")
    problem = _problem(S, W.shape, (h, w), args)
    result = solver_cls().solve(problem, time_limit=args.time_limit, seed=args.seed)
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        print()
    else:
        print(f"solver    {result.solver}")
        print(f"matrix    {m}x{n}, tile {h}x{w}, sparsity {args.sparsity:g}, mask {args.mask}, axis {args.axis}")
        print(f"retained  {result.retained:.6g} of {result.total:.6g} ({100 * result.fraction:.2f}%)")
        print(f"bound     {result.bound:.6g} (gap {100 * result.gap:.3f}%){'  optimal' if result.optimal else ''}")
        print(f"time      {result.seconds:.3f} s")
    return 0
