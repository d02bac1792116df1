"""Built-in solvers, one module each.  Importing this package registers them.

Installed as ``permsolve.solvers``.
"""
from . import identity, greedy, hungarian  # noqa: F401

for _optional in ("ilp", "anneal", "nm_anneal", "nm_exact", "swap"):
    try:  # a solver whose module is missing must not take the others down
        __import__(f"{__name__}.{_optional}")
    except ModuleNotFoundError as _e:  # pragma: no cover - only while a module is absent
        if _e.name != f"{__name__}.{_optional}":
            raise
from . import auto  # noqa: E402,F401  (meta solver: delegates to the best benchmarked one)
