"""``permsolve solvers``: list the registered solvers."""
from __future__ import annotations


def add_parser(sub):
    """Add the ``solvers`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["solvers"].parse_args([]).func.__name__
    'run'
    """
    p = sub.add_parser("solvers", help="list the registered solvers")
    p.set_defaults(func=run)


def run(args):
    """Print every registered solver and its description, one a line.

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
    >>> import argparse, contextlib, io
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = run(argparse.Namespace())
    >>> status, "greedy" in out.getvalue(), "hungarian" in out.getvalue()
    (0, True, True)
    """
    from permsolve.registry import solvers

    reg = solvers()
    width = max(map(len, reg))
    for name, cls in reg.items():
        print(f"{name:<{width}}  {cls.description}")
    return 0
