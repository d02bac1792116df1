"""``permsolve compress``: compress one zoo model with SR-init, TRP or tile pruning.

``permsolve compress --method srinit|trp|tile --model NAME [--quick] [--json]
[--remove-fraction F] [--threshold T] [--seeds N] [--energy E] [--m M] [--lam L]
[--trp-threshold T] [--trp-epochs N] [--include-linear] [--solver NAME] [--tile HxW]
[--sparsity S] [--budget global|layer|sensitivity] [--epochs N] [--lr LR] [--seed N] [--threads N]``

Prints the parameter count and MACs before and after, and the accuracy
before compression, right after it and after the short fine-tune (test
split; SR-init's sensitivities are measured on the validation split).
``--quick`` shortens every schedule (under 3 minutes on 2 cores).
"""
from __future__ import annotations

import json
import sys

from . import UsageError, seconds

QUICK = {"seeds": 2, "epochs": 3, "trp_epochs": 6}
FULL = {"seeds": 5, "epochs": 10, "trp_epochs": 20}


def add_parser(sub):
    """Add the ``compress`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["compress"].parse_args(['--method', 'trp', '--model', 'mlp']).method
    'trp'
    """
    p = sub.add_parser("compress", help="compress a zoo model (SR-init, TRP, tile pruning)",
                       description="Compress one digits zoo model with SR-init layer pruning, TRP trained "
                                   "low-rank, or (permuted) tile pruning, then fine-tune it briefly.")
    p.add_argument("--method", required=True, choices=["srinit", "trp", "tile"])
    p.add_argument("--model", required=True, metavar="NAME", help="zoo model (permsolve.zoo.names())")
    p.add_argument("--quick", action="store_true", help="short schedules (fewer seeds and epochs)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--remove-fraction", type=float, default=None, metavar="F",
                   help="parameter budget: fraction of all parameters to remove (srinit, trp, tile)")
    g = p.add_argument_group("SR-init")
    g.add_argument("--threshold", type=float, default=0.05, metavar="T",
                   help="remove blocks whose mean validation accuracy drop is <= T (default 0.05)")
    g.add_argument("--seeds", type=int, default=None, metavar="N", help="re-initialisation seeds (default 5; quick 2)")
    g = p.add_argument_group("TRP")
    g.add_argument("--energy", type=float, default=0.9, help="energy kept by each projection (default 0.9)")
    g.add_argument("--m", type=int, default=5, help="projection period in iterations (default 5)")
    g.add_argument("--lam", type=float, default=3e-4, help="nuclear-norm weight (default 3e-4)")
    g.add_argument("--trp-threshold", type=float, default=0.05, metavar="T",
                   help="singular values below T are dropped at decomposition (default 0.05)")
    g.add_argument("--trp-epochs", type=int, default=None, metavar="N", help="TRP training epochs (default 20; quick 6)")
    g.add_argument("--trp-lr", type=float, default=0.01, metavar="LR", help="TRP training learning rate (default 0.01)")
    g.add_argument("--include-linear", action="store_true", help="also decompose Linear layers")
    g.add_argument("--no-baseline", action="store_true", help="skip the truncated-SVD baseline")
    g = p.add_argument_group("tile pruning")
    g.add_argument("--solver", default="greedy", metavar="NAME", help="permutation solver; identity = none (default greedy)")
    g.add_argument("--tile", default="16x1", metavar="HxW",
                   help="tile shape (default 16x1: TileTrans's 128x1 shape scaled to these small layers)")
    g.add_argument("--sparsity", type=float, default=None, metavar="S",
                   help="fraction of tiles pruned (default: match --remove-fraction, itself default 0.5)")
    g.add_argument("--budget", default="global", choices=["global", "layer", "sensitivity"])
    g.add_argument("--time-limit", type=seconds, default=None, metavar="SECONDS", help="per permutation group")
    g = p.add_argument_group("fine-tuning (SGD, momentum 0.9, cosine)")
    g.add_argument("--epochs", type=int, default=None, help="fine-tune epochs (default 10; quick 3)")
    g.add_argument("--lr", type=float, default=0.01, help="fine-tune learning rate (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these tiny models "
                                                           "on a shared machine)")
    p.set_defaults(func=run)


def run(args):
    """Compress one zoo model with the chosen method, fine-tune it, and print the summary.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0; bad input raises :class:`~permsolve.cli.UsageError`.

    Examples
    --------
    >>> from permsolve.cli import main
    >>> main(["compress", "--method", "trp", "--model", "no-such-model"])   # refused: status 2
    2
    """
    import torch

    from permsolve import zoo
    from permsolve.compress import compare as C
    from permsolve.compress.trp import TRPConfig
    from permsolve.problem import parse_tile

    if args.model not in zoo.names():
        raise UsageError(f"unknown zoo model {args.model!r}; models: {', '.join(zoo.names())}")
    if args.remove_fraction is not None and not 0.0 <= args.remove_fraction < 1.0:
        raise UsageError(f"--remove-fraction must be in [0, 1), got {args.remove_fraction}")
    if args.threads < 1:
        raise UsageError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    d = QUICK if args.quick else FULL
    ft = C.FinetuneConfig(epochs=d["epochs"] if args.epochs is None else args.epochs, lr=args.lr, seed=args.seed)
    if args.method == "srinit":
        n = d["seeds"] if args.seeds is None else args.seeds
        if n < 1:
            raise UsageError("--seeds must be >= 1")
        res = C.run_srinit(args.model, threshold=args.threshold, remove_fraction=args.remove_fraction,
                           seeds=tuple(range(n)), ft=ft)
    elif args.method == "trp":
        cfg = TRPConfig(energy=args.energy, m=args.m, lam=args.lam, threshold=args.trp_threshold,
                        epochs=d["trp_epochs"] if args.trp_epochs is None else args.trp_epochs,
                        lr=args.trp_lr, include_linear=args.include_linear)
        res = C.run_trp(args.model, config=cfg, remove_fraction=args.remove_fraction,
                        baseline=not args.no_baseline, ft=ft, seed=args.seed)
    else:
        tile = parse_tile(args.tile)
        if args.sparsity is not None and not 0.0 <= args.sparsity < 1.0:
            raise UsageError(f"--sparsity must be in [0, 1), got {args.sparsity}")
        from permsolve.registry import get_solver
        get_solver(args.solver)
        rf = 0.5 if args.remove_fraction is None else args.remove_fraction
        res = C.run_tile(args.model, sparsity=args.sparsity, remove_fraction=rf, solver=args.solver, tile=tile,
                         budget=args.budget, time_limit=args.time_limit, seed=args.seed, ft=ft,
                         sens_seeds=tuple(range(d["seeds"] if args.seeds is None else args.seeds)))
    if args.json:
        json.dump(res.to_json(), sys.stdout)
        print()
    else:
        print(res.summary())
        det = res.details
        if args.method == "srinit":
            print(f"removed     {', '.join(det['removed']) or '(none)'}")
            print(f"sensitivity (mean/std of the accuracy drop over {len(det['seeds'])} seeds, "
                  f"{det['sensitivity']['split']} split, base {det['sensitivity']['base']:.4f})")
            s = det["sensitivity"]
            for k in s["mean"]:
                print(f"  {k:<12} {s['mean'][k]:+.4f} +- {s['std'][k]:.4f}")
        elif args.method == "trp":
            print(f"ranks       {det['ranks']}")
            if "svd_baseline" in det:
                b = det["svd_baseline"]
                print(f"SVD at the same ranks, no training: compressed {b['acc_compressed']:.4f}  "
                      f"fine-tuned {b['acc_finetuned']:.4f}")
        else:
            print(f"tiles       {det['tile'][0]}x{det['tile'][1]}, solver {det['solver']}, budget {det['budget']}, "
                  f"sparsity {det['sparsity']:.4f}, weight sparsity {det['weight_sparsity']:.4f}")
    return 0
