"""The ``permsolve`` command.

Each sub-command lives in a module of this package exposing
``add_parser(subparsers)`` (which sets ``func`` on its parser) and is listed in
:data:`COMMANDS`.  Bad input raises :class:`UsageError` or ``ValueError`` and
becomes a one-line message with exit status 2; nothing prints a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "UsageError", "COMMANDS", "seconds"]

#: sub-command modules, in the order ``permsolve --help`` lists them
COMMANDS = ["solve", "solvers", "bench", "report", "zoo", "prune", "compress", "compare"]


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2.

    Examples
    --------
    >>> try:
    ...     raise UsageError("--tile is required with the global mask")
    ... except UsageError as e:
    ...     print(e)
    --tile is required with the global mask
    """


def seconds(text: str) -> float:
    """argparse type of ``--time-limit``: a finite number of seconds > 0 (NaN, inf, 0 and 1e300 are refused).

    Parameters
    ----------
    text : str
        The command-line value.

    Returns
    -------
    float
        The seconds.

    Raises
    ------
    argparse.ArgumentTypeError
        For a value :func:`permsolve.registry.check_time_limit` refuses.

    Examples
    --------
    >>> seconds("2.5")
    2.5
    >>> seconds("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --time-limit must be a finite number of seconds > 0 (or None for no limit), got 0
    """
    from permsolve.registry import check_time_limit

    try:
        return check_time_limit(float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("time_limit", "--time-limit", 1)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``permsolve`` argument parser, one sub-parser per module of :data:`COMMANDS`."""
    parser = _Parser(prog="permsolve", description="Permutation search for tile pruning.")
    from permsolve import __version__
    parser.add_argument("--version", action="version", version=f"permsolve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``permsolve`` command; bad input is one line on stderr and status 2, never a traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status of the sub-command (2 for bad input, 130 when interrupted).

    Examples
    --------
    >>> import contextlib, io
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     status = main(["solvers"])
    >>> status, "greedy" in out.getvalue()
    (0, True)
    >>> main(["solve", "no-such-file.npy", "--tile", "4x4", "--sparsity", "0.5"])   # one line on stderr
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"permsolve {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"permsolve {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
