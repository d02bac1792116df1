"""The environment a run happened in: versions, CPU, host, commit.

Examples
--------
>>> e = environment()
>>> sorted(k for k in ("python", "cpu", "versions") if k in e)
['cpu', 'python', 'versions']
"""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["environment", "git_commit"]

PACKAGES = ("permsolve", "numpy", "scipy", "ortools", "numba", "networkx", "torch", "dask", "distributed")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def environment() -> dict:
    """Versions of the packages that matter, the CPU, core count and host of this process.

    Returns
    -------
    dict
        ``python``, ``platform``, ``cpu``, ``cores``, ``host`` and ``versions`` (package -> version);
        computed once per process.

    Examples
    --------
    >>> env = environment()
    >>> env["cores"] >= 1, "numpy" in env["versions"]
    (True, True)
    """
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count()
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": _cpu_model(),
            "cores": cores, "host": platform.node(), "versions": versions}


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` when files changed), or None outside git.

    Parameters
    ----------
    path : str or Path, optional
        A folder of the checkout (default: the one this package is in).

    Returns
    -------
    str or None
        The commit hash, ``+dirty`` appended when tracked files changed.

    Examples
    --------
    >>> c = git_commit()
    >>> c is None or len(c.split("+")[0]) == 40
    True
    """
    root = Path(path) if path else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
