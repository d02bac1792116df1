"""The manifest: for every instance, its provenance, the best value ever found and the best bound.

``problems/manifest.json`` (in the repository) holds one entry per instance::

    {"family": ..., "provenance": ..., "shape": [m, n], "tile": [h, w], "sparsity": ...,
     "mask": ..., "axis": ..., "total": ...,
     "best_value": v, "best_value_by": {"solver": ..., "seed": ..., "budget": ..., "date": ...},
     "best_bound": b, "best_bound_by": "..."}

:meth:`Manifest.record` raises the best value when a run beats it and lowers the
best bound when a run proves a tighter one.  A bound below a found value is
impossible; :class:`BoundViolation` stops the caller (it is a bug in a solver
or in a bound, never something to paper over).

Examples
--------
>>> import tempfile, os
>>> from permsolve.problems.library import get_instance
>>> m = Manifest(os.path.join(tempfile.mkdtemp(), "manifest.json"))
>>> inst = get_instance("gauss-64x64-t8x8-s50-0")
>>> e = m.ensure(inst)
>>> m.record(inst.name, e["best_bound"] * 0.9, e["best_bound"], {"solver": "demo"})
['best_value']
>>> try:
...     m.record(inst.name, e["best_bound"] * 1.1, e["best_bound"], {"solver": "bad"})
... except BoundViolation as err:
...     print("stopped")
stopped
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

from permsolve.result import REL_TOL

__all__ = ["Manifest", "BoundViolation", "InstanceChanged", "DEFAULT_MANIFEST"]

#: the repository's manifest, next to this module
DEFAULT_MANIFEST = Path(__file__).with_name("manifest.json")


class BoundViolation(AssertionError):
    """A value above a bound: a bug in a solver or in a bound.

    Examples
    --------
    >>> issubclass(BoundViolation, AssertionError)
    True
    """


def _dump(entries: dict) -> str:
    """JSON with one line per instance field: readable, and a diff shows what changed."""
    lines = ['{', ' "about": "best value ever found and best bound of every instance; updated by `permsolve bench`",',
             ' "instances": {']
    items = list(entries.items())
    for i, (name, e) in enumerate(items):
        fields = [f'   {json.dumps(k)}: {json.dumps(v, sort_keys=True)}' for k, v in e.items()]
        lines.append(f'  {json.dumps(name)}: {{')
        lines.append(",\n".join(fields))
        lines.append("  }" + ("," if i < len(items) - 1 else ""))
    lines += [" }", "}", ""]
    return "\n".join(lines)


class InstanceChanged(ValueError):
    """An instance no longer matches its manifest entry (its total importance differs): stale best values.

    Examples
    --------
    >>> issubclass(InstanceChanged, ValueError)
    True
    """


def _exceeds(value: float, bound: float) -> bool:
    return value > bound * (1 + REL_TOL) + REL_TOL


def _today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Manifest:
    """The JSON manifest at ``path`` (created on first save).

    Parameters
    ----------
    path : JSON file; defaults to ``problems/manifest.json`` of the checkout.

    Examples
    --------
    >>> import tempfile, os
    >>> m = Manifest(os.path.join(tempfile.mkdtemp(), "manifest.json"))
    >>> "gauss-64x64-t8x8-s50-0" in m, m.get("gauss-64x64-t8x8-s50-0"), m.best_value("x")
    (False, None, None)
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else DEFAULT_MANIFEST
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path) as f:
                self.entries = json.load(f).get("instances", {})

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def get(self, name: str) -> dict | None:
        """The entry of instance ``name``, or None."""
        return self.entries.get(name)

    def best_value(self, name: str) -> float | None:
        """The best value recorded for instance ``name``, or None."""
        e = self.entries.get(name)
        return None if e is None else e.get("best_value")

    def ensure(self, inst, *, shape=None, total: float | None = None, bound: float | None = None,
               known_optimum: float | None = None) -> dict:
        """Create the entry of ``inst`` if missing and return it (does not save).

        ``shape``, ``total``, ``bound`` and ``known_optimum`` may come from a run
        (a sweep's worker builds the problem); when omitted the problem is built here.
        """
        e = self.entries.get(inst.name)
        if e is not None:
            if total is not None and abs(e["total"] - total) > 1e-9 * max(1.0, abs(total)):
                raise InstanceChanged(f"{inst.name}: total importance {total!r} differs from the manifest's "
                                      f"{e['total']!r}; the instance changed (new weights or generator?): remove its "
                                      f"entry from {self.path} to start its records afresh")
            return e
        if bound is None or total is None or shape is None:
            problem = inst.problem()
            shape, total, bound = problem.members[0].shape, problem.total, problem.bound
            known_optimum = inst.known_optimum
        e = {"family": inst.family, "provenance": inst.provenance, "recipe": inst.to_dict(),
             "shape": [int(x) for x in shape], "tile": list(inst.tile), "sparsity": inst.sparsity,
             "mask": inst.mask, "axis": inst.axis, "total": float(total),
             "best_value": None, "best_value_by": None,
             "best_bound": float(bound), "best_bound_by": "permsolve.bounds (TileProblem.bound)"}
        if known_optimum is not None:
            if _exceeds(known_optimum, bound):
                raise BoundViolation(f"{inst.name}: planted optimum {known_optimum} exceeds the bound {bound}")
            e["best_value"] = float(known_optimum)
            e["best_value_by"] = {"solver": "planted construction", "date": _today()}
        self.entries[inst.name] = e
        return e

    def record(self, name: str, value: float, bound: float | None, who: dict) -> list[str]:
        """Merge one run's value and bound into the entry of ``name``.

        Returns the fields that changed (``best_value``, ``best_bound``).

        Raises
        ------
        BoundViolation
            if a value exceeds a bound: the run's value above the best bound, or
            the run's bound below the best value.
        KeyError
            if ``name`` has no entry (call :meth:`ensure` first).
        """
        e = self.entries[name]
        changed = []
        best_bound = e.get("best_bound")
        best_value = e.get("best_value")
        if best_bound is not None and _exceeds(value, best_bound):
            raise BoundViolation(f"{name}: {who.get('solver')} found {value!r}, above the best bound {best_bound!r} "
                                 f"({e.get('best_bound_by')}): a bug")
        if bound is not None and best_value is not None and _exceeds(best_value, bound):
            raise BoundViolation(f"{name}: {who.get('solver')} reports bound {bound!r}, below the best value "
                                 f"{best_value!r} found by {e.get('best_value_by')}: a bug")
        if bound is not None and _exceeds(value, bound):
            raise BoundViolation(f"{name}: {who.get('solver')} value {value!r} exceeds its own bound {bound!r}: a bug")
        if best_value is None or value > best_value * (1 + REL_TOL) + REL_TOL:
            e["best_value"] = float(value)
            e["best_value_by"] = {**who, "date": _today()}
            changed.append("best_value")
        if bound is not None and (best_bound is None or bound < best_bound * (1 - REL_TOL) - REL_TOL):
            e["best_bound"] = float(bound)
            e["best_bound_by"] = {**who, "date": _today()}
            changed.append("best_bound")
        return changed

    def save(self) -> None:
        """Write atomically (temporary file, then rename): a kill never leaves half a manifest."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = _dump(dict(sorted(self.entries.items())))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifest-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
