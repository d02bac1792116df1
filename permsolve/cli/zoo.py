"""``permsolve zoo``: list the digits model zoo with validation accuracy.

``permsolve zoo [--json]``
"""
from __future__ import annotations

import json
import sys


def add_parser(sub):
    """Add the ``zoo`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["zoo"].parse_args(['--json']).json
    True
    """
    p = sub.add_parser("zoo", help="list the trained digits models (names other commands take)",
                       description="List the model zoo trained on scikit-learn's digits data.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args):
    """Print the zoo models with their parameter count and accuracies (``--json``: one object).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0.

    Examples
    --------
    >>> import argparse, contextlib, io, json
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = run(argparse.Namespace(json=True))
    >>> status, "mlp" in json.loads(out.getvalue())
    (0, True)
    """
    from permsolve import zoo

    rows = {}
    for name in zoo.names():
        try:
            rows[name] = zoo.info(name)
        except FileNotFoundError:
            rows[name] = {}
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'name':<10} {'params':>8} {'val acc':>8} {'test acc':>8}")
    for name, r in rows.items():
        if not r:
            print(f"{name:<10} {'-':>8} {'(no checkpoint: python -m permsolve.zoo.train)'}")
            continue
        print(f"{name:<10} {r['params']:>8} {r['val_acc']:>8.4f} {r['test_acc']:>8.4f}")
    return 0
