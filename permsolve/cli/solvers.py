"""``permsolve solvers``: list the registered solvers."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("solvers", help="list the registered solvers")
    p.set_defaults(func=run)


def run(args):
    from permsolve.registry import solvers

    reg = solvers()
    width = max(map(len, reg))
    for name, cls in reg.items():
        print(f"{name:<{width}}  {cls.description}")
    return 0
