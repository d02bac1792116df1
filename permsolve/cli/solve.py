"""``permsolve solve``: solve one matrix from a file.

``permsolve solve PATH --tile HxW --sparsity S --solver NAME [--axis rows|cols|both]
[--mask global|row-balanced|N:M] [--metric l1|l2|none] [--key TENSOR]
[--time-limit SECONDS] [--seed N] [--certify SECONDS] [--json]``

``--certify SECONDS`` spends that long (plus the spectral bound's seconds) on
the tighter bounds of :func:`permsolve.certify.certify` after the solve, so
``bound`` and the gap are measured against the tightest bound known; the
text output names the bound that decided and ``--json`` adds
``bound_source`` and ``certify_seconds``.

A weight with more than two dimensions (a conv's ``(C_out, C_in, kh, kw)``) is
viewed as ``(C_out, C_in*kh*kw)``; with ``--axis cols`` or ``both`` its columns
move by whole input channels, so ``col_perm`` has ``C_in`` entries.

With ``--mask N:M`` (``2:4``, ``4:8``, ...) neither ``--tile`` nor ``--sparsity``
is needed and the axis defaults to ``cols``; a conv weight is then viewed as
``(C_out, kh*kw*C_in)``, the layout N:M kernels use, and ``col_perm`` permutes
its input channels.
"""
from __future__ import annotations

import json
import sys

from . import UsageError, seconds


def add_parser(sub):
    """Add the ``solve`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["solve"].parse_args(['w.npy', '--tile', '4x4', '--sparsity', '0.5']).tile
    '4x4'
    """
    p = sub.add_parser("solve", help="find a permutation for one matrix",
                       description="Find row/column permutations that keep the most importance under a tile mask.")
    p.add_argument("path", metavar="PATH", help=".npy, .npz, .pt/.pth state dict or .safetensors")
    p.add_argument("--tile", default=None, metavar="HxW",
                   help="tile shape, e.g. 16x16 or 32x1 (not with an N:M mask)")
    p.add_argument("--sparsity", default=None, type=float, metavar="S",
                   help="fraction of tiles pruned, in [0, 1) (not with an N:M mask)")
    p.add_argument("--solver", default="greedy", metavar="NAME", help="see `permsolve solvers` (default: greedy)")
    p.add_argument("--axis", default=None, choices=["rows", "cols", "both"],
                   help="permuted axis (default: rows; cols for an N:M mask)")
    p.add_argument("--mask", default="global", metavar="MASK",
                   help="global (default), row-balanced, or N:M such as 2:4")
    p.add_argument("--metric", default="l1", choices=["l1", "l2", "none"])
    p.add_argument("--key", default=None, metavar="TENSOR", help="tensor name inside the file")
    p.add_argument("--time-limit", type=seconds, default=None, metavar="SECONDS")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--certify", type=_certify_seconds, default=None, metavar="SECONDS",
                   help="after the solve, tighten the bound for this long (Lagrangian with exact pricing, "
                        "spectral bound) and report the gap to it")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _certify_seconds(text: str) -> float:
    """argparse type of ``--certify``: as ``--time-limit``, with its own name in the message."""
    import argparse

    try:
        return seconds(text)
    except argparse.ArgumentTypeError as e:
        msg = str(e).replace("--time-limit", "--certify", 1).replace(" (or None for no limit)", "")
        raise argparse.ArgumentTypeError(msg) from None


def _problem(S, shape, tile, sparsity, mask, axis):
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
    if unit == 1 or axis == "rows":
        return TileProblem.from_matrix(S, tile=tile, sparsity=sparsity, mask=mask, axis=axis)
    mem = Member(S, tile, sparsity, mask, rows="row" if axis == "both" else None, cols="col", col_unit=unit)
    return TileProblem([mem], axis=axis)


def run(args):
    """Solve the matrix of one file and print the result (``--json``: one JSON object).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0; bad input raises :class:`~permsolve.cli.UsageError` or ``ValueError``.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from permsolve.cli import main
    >>> f = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> np.save(f, np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]]))
    >>> main(["solve", f, "--tile", "2x2", "--sparsity", "0.5", "--solver", "greedy"])  # doctest: +ELLIPSIS
    solver    greedy
    matrix    4x4, tile 2x2, sparsity 0.5, mask global, axis rows
    retained  2 of 4 (50.00%)
    bound     4 (gap 50.000%)
    time      ... s
    0
    """
    from permsolve.io import load_tensor
    from permsolve.metrics import importance
    from permsolve.problem import TileProblem, parse_tile
    from permsolve.registry import get_solver

    from permsolve.masks import get_mask

    solver_cls = get_solver(args.solver)          # unknown solver: fail before reading anything
    mask = get_mask(args.mask)
    if mask.fixed_tile is not None:               # N:M: the mask fixes tile and sparsity
        for flag, value in (("--tile", args.tile), ("--sparsity", args.sparsity)):
            if value is not None:
                raise UsageError(f"{flag} does not apply to the {mask} mask (it fixes tile and sparsity)")
        (h, w), sparsity = mask.fixed_tile, mask.fixed_sparsity
    else:
        for flag, value in (("--tile", args.tile), ("--sparsity", args.sparsity)):
            if value is None:
                raise UsageError(f"{flag} is required with the {mask} mask")
        h, w = parse_tile(args.tile)
        sparsity = args.sparsity
    if not 0.0 <= sparsity < 1.0:
        raise UsageError(f"--sparsity must be in [0, 1), got {sparsity}")
    axis = args.axis or ("cols" if "rows" in mask.invariant_axes else "rows")
    W = load_tensor(args.path, args.key)
    if W.ndim < 2:
        raise UsageError(f"tensor has shape {W.shape}: a weight matrix needs 2 or more dimensions")
    if mask.fixed_tile is not None:
        problem = _nm_problem(W, mask, axis, args.metric)
        m, n = problem.members[0].shape
    else:
        S = importance(W, args.metric)
        m, n = S.shape
        if h > m or w > n:
            raise UsageError(f"tile {h}x{w} is larger than the {m}x{n} matrix")
        problem = _problem(S, W.shape, (h, w), sparsity, mask, axis)
    result = solver_cls().solve(problem, time_limit=args.time_limit, seed=args.seed)
    if args.certify is not None:
        from permsolve.certify import certify

        result = certify(problem, result, time_limit=args.certify)
    if args.json:
        obj = result.to_json()
        if args.certify is not None:
            obj.update(bound_source=result.info["bound_source"], certify_seconds=result.info["certify_seconds"])
        json.dump(obj, sys.stdout)
        print()
    else:
        print(f"solver    {result.solver}")
        print(f"matrix    {m}x{n}, tile {h}x{w}, sparsity {sparsity:g}, mask {mask}, axis {axis}")
        print(f"retained  {result.retained:.6g} of {result.total:.6g} ({100 * result.fraction:.2f}%)")
        src = f"  [{result.info['bound_source']} bound]" if args.certify is not None else ""
        print(f"bound     {result.bound:.6g} (gap {100 * result.gap:.3f}%){'  optimal' if result.optimal else ''}{src}")
        print(f"time      {result.seconds:.3f} s")
    return 0


def _nm_problem(W, mask, axis: str, metric: str):
    """An N:M problem over a weight: a conv weight ``(C_out, C_in, kh, kw)`` is viewed as
    ``(C_out, kh*kw*C_in)`` (groups run along input channels at every spatial position),
    and a column permutation moves whole input channels (strided units of ``kh*kw``)."""
    import numpy as np

    from permsolve.metrics import importance
    from permsolve.problem import Member, TileProblem

    S = importance(W, metric)                       # (C_out, C_in*kh*kw), channel-major
    c_out = W.shape[0]
    c_in = W.shape[1]
    spatial = S.shape[1] // c_in if W.ndim > 2 else 1
    if spatial > 1:                                 # to (C_out, kh*kw*C_in)
        S = np.ascontiguousarray(S.reshape(c_out, c_in, spatial).transpose(0, 2, 1).reshape(c_out, -1))
    if c_in % mask.m:
        raise UsageError(f"{mask} needs the input channels ({c_in}) to be a multiple of {mask.m}")
    mem = Member(S, mask=mask, rows="row" if axis in ("rows", "both") else None,
                 cols="col" if axis in ("cols", "both") else None,
                 col_unit=spatial, col_layout="strided" if spatial > 1 else "contiguous")
    return TileProblem([mem], axis=axis)
