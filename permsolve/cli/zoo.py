"""``permsolve zoo``: list the digits model zoo with validation accuracy.

``permsolve zoo [--json]``
"""
from __future__ import annotations

import json
import sys


def add_parser(sub):
    p = sub.add_parser("zoo", help="list the trained digits models (names other commands take)",
                       description="List the model zoo trained on scikit-learn's digits data.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args):
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
