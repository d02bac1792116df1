"""``make demo``: compare every registered solver on real trained layer matrices.

Loads layers of the digits model zoo (trained weights shipped in the package),
poses the TileTrans problem (``|W|``, rows permuted, one tile mask) and prints,
per solver, the retained fraction, the gap to the bound, the share of the
greedy-to-bound gap the solver closes, and the time.

Run ``python -m permsolve.demo --help`` for the options.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from permsolve import TileProblem, available_solvers as solvers, importance, parse_tile, solve

DEFAULT_LAYERS = ["mlp:fc1", "resnet:layer3.2.conv2"]


def compare(S: np.ndarray, *, tile, sparsity: float, mask: str = "global", axis: str = "rows",
            time_limit: float = 5.0, names=None, seed: int = 0) -> list[dict]:
    """Run each solver on one matrix; returns one row per solver.

    Parameters
    ----------
    S : (m, n) array
        Importance matrix.
    tile, sparsity, mask, axis
        As in :meth:`permsolve.TileProblem.from_matrix`.
    time_limit : float
        Seconds for each anytime solver (the others run to completion).
    names : list of str, optional
        Solvers to run (default: every registered one but ``auto``); those that do not
        handle the problem are left out.
    seed : int
        Seed of the randomized solvers.

    Returns
    -------
    list of dict
        Per solver: ``solver``, ``retained``, ``fraction``, ``bound``, ``gap``, ``optimal``,
        ``seconds`` and ``closed`` (share of greedy's gap to the bound it closes; NaN without greedy).

    Examples
    --------
    >>> S = np.random.default_rng(0).random((32, 32))
    >>> rows = compare(S, tile=(8, 8), sparsity=0.5, names=["identity", "greedy"])
    >>> [r["solver"] for r in rows]
    ['identity', 'greedy']
    """
    problem = TileProblem.from_matrix(S, tile=tile, sparsity=sparsity, mask=mask, axis=axis)
    rows, greedy = [], None
    for name in names or solvers():
        cls = solvers()[name]
        if cls.unprepared().supports(problem) or name == "auto":
            continue
        r = solve(problem, name, time_limit=time_limit if cls.anytime else None, seed=seed)
        if name == "greedy":
            greedy = r.retained
        rows.append({"solver": name, "retained": r.retained, "fraction": r.fraction, "bound": r.bound,
                     "gap": r.gap, "optimal": r.optimal, "seconds": r.seconds})
    for row in rows:
        denom = row["bound"] - greedy if greedy is not None else 0
        row["closed"] = (row["retained"] - greedy) / denom if greedy is not None and denom > 0 else float("nan")
    return rows


def print_table(rows, out=sys.stdout) -> None:
    """Print the rows of :func:`compare` as a table.

    Parameters
    ----------
    rows : list of dict
        What :func:`compare` returns.
    out : file
        Where to print (default: stdout).

    Examples
    --------
    >>> print_table([{"solver": "greedy", "fraction": 0.5, "gap": 0.1, "closed": 0.0, "seconds": 0.01,
    ...               "optimal": False}], out=sys.stdout)  # doctest: +NORMALIZE_WHITESPACE
      solver      retained  gap to bound  greedy gap closed  time [s]
      greedy        50.00%        10.000%               0.0%      0.01
    """
    print(f"  {'solver':<10} {'retained':>9} {'gap to bound':>13} {'greedy gap closed':>18} {'time [s]':>9}", file=out)
    for r in rows:
        closed = "" if np.isnan(r["closed"]) else f"{100 * r['closed']:.1f}%"
        star = " (optimal)" if r["optimal"] else ""
        print(f"  {r['solver']:<10} {100 * r['fraction']:8.2f}% {100 * r['gap']:12.3f}% {closed:>18} "
              f"{r['seconds']:9.2f}{star}", file=out)


def main(argv=None) -> int:
    """``python -m permsolve.demo``: compare the solvers on trained layers of the digits zoo.

    Parameters
    ----------
    argv : list of str, optional
        ``[--layers MODEL:LAYER ...] [--tiles HxW ...] [--sparsity S] [--mask M] [--time-limit T]
        [--solvers NAME ...]`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0, or 2 for an unknown layer or bad value.

    Examples
    --------
    >>> import contextlib, io
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["--layers", "mlp:fc3", "--tiles", "2x2", "--solvers", "identity", "greedy"])
    >>> status, "greedy" in out.getvalue()
    (0, True)
    """
    ap = argparse.ArgumentParser(prog="python -m permsolve.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--layers", nargs="+", default=DEFAULT_LAYERS, metavar="MODEL:LAYER",
                    help=f"zoo layers to use (default: {' '.join(DEFAULT_LAYERS)})")
    ap.add_argument("--tiles", nargs="+", default=["16x16", "32x1"], metavar="HxW")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--mask", default="global", choices=["global", "row-balanced"])
    ap.add_argument("--time-limit", type=float, default=5.0, help="seconds for each anytime solver")
    ap.add_argument("--solvers", nargs="+", default=None)
    args = ap.parse_args(argv)
    from permsolve.problems.real import zoo_weight

    try:
        for spec in args.layers:
            model, _, layer = spec.partition(":")
            W = zoo_weight(model, layer)
            S = importance(W, "l1")
            for tile in args.tiles:
                h, w = parse_tile(tile)
                print(f"\n{model}.{layer}  |W| {S.shape[0]}x{S.shape[1]}  tile {h}x{w}  sparsity {args.sparsity:g}  "
                      f"mask {args.mask}  rows permuted  (anytime solvers: {args.time_limit:g} s)")
                print_table(compare(S, tile=(h, w), sparsity=args.sparsity, mask=args.mask,
                                    time_limit=args.time_limit, names=args.solvers))
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    print("\n'greedy gap closed' = (retained - greedy) / (bound - greedy): the share of TileTrans's "
          "distance to the bound that a solver recovers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
