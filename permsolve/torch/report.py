"""What :func:`~permsolve.torch.permute.permute_model` reports: one :class:`GroupReport` per channel group.

The tolerances of its output check (:data:`RTOL`, and :data:`RTOL64` for the
float64 recheck) and the error it raises when the check fails
(:class:`PermutationError`) are here too.

Examples
--------
>>> rep = PermuteReport(groups=[GroupReport("fc1", 4, ["fc1 rows", "fc2 cols"], "greedy", 1.0, 2.0)],
...                     prunable=["fc1", "fc2", "head"], permuted=["fc1", "fc2"])
>>> rep.retained_after, round(rep.coverage, 3)
(2.0, 0.667)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PermuteReport", "GroupReport", "PermutationError", "RTOL", "RTOL64"]

#: the outputs may differ by at most RTOL * max |output| after permuting
RTOL = 1e-5
#: the same in float64, where a model whose float32 outputs moved by more than RTOL is checked again
RTOL64 = 1e-9


class PermutationError(RuntimeError):
    """The permuted model does not compute what the original did.

    :func:`~permsolve.torch.permute.permute_model` restores the model's state before raising it.

    Examples
    --------
    >>> issubclass(PermutationError, RuntimeError)
    True
    """


@dataclass
class GroupReport:
    """What happened to one channel group.

    Attributes
    ----------
    name, size, members : the group's name, its number of channel units, its bindings (as text)
    solver : the solver's name (None: the group had no problem to solve)
    retained_before, retained_after : the group problem's value on the original and on the final order
    total, bound : the problem's total importance and an upper bound on what it can retain
    seconds : solver time
    perm : the permutation applied (``perm[i]`` = old channel at position i), None if skipped
    skipped : why the group was left as it was (None: it was solved)

    Examples
    --------
    >>> import numpy as np
    >>> g = GroupReport("fc1", 3, ["fc1 rows", "fc2 cols"], "greedy", perm=np.array([2, 0, 1]))
    >>> g.permuted, g.to_dict()["size"]
    (True, 3)
    """

    name: str
    size: int
    members: list[str]
    solver: str | None
    retained_before: float = float("nan")
    retained_after: float = float("nan")
    total: float = float("nan")
    bound: float = float("nan")
    seconds: float = 0.0
    perm: np.ndarray | None = None
    skipped: str | None = None

    @property
    def permuted(self) -> bool:
        """Whether the permutation moved anything (it is not the identity)."""
        return self.perm is not None and not np.array_equal(self.perm, np.arange(len(self.perm)))

    def to_dict(self) -> dict:
        """The report as plain data (JSON-ready but for numpy scalars), without the permutation itself."""
        d = {k: getattr(self, k) for k in ("name", "size", "members", "solver", "retained_before",
                                           "retained_after", "total", "bound", "seconds", "skipped")}
        d["permuted"] = self.permuted
        return d


@dataclass
class PermuteReport:
    """Per-group outcome of :func:`~permsolve.torch.permute.permute_model`, plus what was blocked and the output check.

    Attributes
    ----------
    groups : one :class:`GroupReport` per free channel group, in graph order
    blocked : ``(group name, reasons)`` of every group that may not be permuted
    opaque : modules that could not be traced, with the reason
    max_abs_diff, max_abs_output : the output check: max |after - before| and max |output|
    check_dtype : ``"model"``, or ``"float64"`` where the check was made again on float64 copies
    seconds : wall time of the whole call
    prunable : every prunable weight matrix (Linear, Conv, Conv1D) of the model, by module name
    permuted : the prunable matrices whose rows or columns were actually moved
    tracer : ``"fx"`` or ``"export"`` (``""``: nothing could be traced)
    output_perms : model outputs that come back permuted (``permute_outputs=True``):
        leaf index -> ``(dim, index array)``
    objective_before, objective_after : the model objective (importance kept by every bound
        matrix's mask, summed) before and after
    sweeps : passes over the groups (1 for the ``layer`` scope)

    Examples
    --------
    >>> rep = PermuteReport(prunable=["fc1", "fc2"], permuted=["fc1"], tracer="fx")
    >>> rep.coverage, rep.coverage_line()
    (0.5, 'coverage: 1/2 prunable weight matrices permuted (50 %, traced with fx); not permuted: fc2')
    """

    groups: list[GroupReport] = field(default_factory=list)
    blocked: list[tuple[str, list[str]]] = field(default_factory=list)
    opaque: dict[str, str] = field(default_factory=dict)
    max_abs_diff: float = 0.0
    max_abs_output: float = 0.0
    #: precision of the output check: the model's own, or ``"float64"`` where the float32 outputs moved
    #: by more than RTOL (sums reordered) and the check was made again on float64 copies (to RTOL64)
    check_dtype: str = "model"
    seconds: float = 0.0
    #: every prunable weight matrix (Linear, Conv, Conv1D) of the model, by module name
    prunable: list[str] = field(default_factory=list)
    #: the prunable matrices whose rows or columns were actually moved
    permuted: list[str] = field(default_factory=list)
    tracer: str = ""
    #: model outputs that come back permuted (``permute_outputs=True``): leaf index -> (dim, index array)
    output_perms: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Permuted weight matrices / prunable weight matrices (1.0 for a model without any)."""
        return len(self.permuted) / len(self.prunable) if self.prunable else 1.0

    def coverage_line(self) -> str:
        """One line: how many prunable matrices were permuted, the tracer, and which were not."""
        untouched = [n for n in self.prunable if n not in set(self.permuted)]
        tail = f"; not permuted: {', '.join(untouched[:8])}{' ...' if len(untouched) > 8 else ''}" if untouched else ""
        return (f"coverage: {len(self.permuted)}/{len(self.prunable)} prunable weight matrices permuted "
                f"({100 * self.coverage:.0f} %, traced with {self.tracer or 'nothing'}){tail}")
    #: model objective (importance kept by every bound matrix's mask, summed) before and after
    objective_before: float = float("nan")
    objective_after: float = float("nan")
    #: passes over the groups (1 for ``layer``)
    sweeps: int = 0

    @property
    def retained_before(self) -> float:
        """Sum over the solved groups of their problem's value on the original order."""
        return float(sum(g.retained_before for g in self.groups if g.skipped is None))

    @property
    def retained_after(self) -> float:
        """Sum over the solved groups of their problem's value on the final order."""
        return float(sum(g.retained_after for g in self.groups if g.skipped is None))

    def to_dict(self) -> dict:
        """The report as plain data: every group's :meth:`GroupReport.to_dict`, coverage, the check."""
        return {"groups": [g.to_dict() for g in self.groups], "blocked": self.blocked, "opaque": self.opaque,
                "max_abs_diff": self.max_abs_diff, "max_abs_output": self.max_abs_output,
                "check_dtype": self.check_dtype, "seconds": self.seconds, "tracer": self.tracer, "coverage": self.coverage,
                "prunable": self.prunable, "permuted": self.permuted,
                "permuted_outputs": sorted(self.output_perms),
                "objective_before": self.objective_before,
                "objective_after": self.objective_after, "sweeps": self.sweeps}

    def table(self) -> str:
        """Plain-text table, one line per group."""
        lines = [f"{'group':<28} {'size':>5} {'solver':<10} {'before':>12} {'after':>12} {'bound':>12}  members"]
        for g in self.groups:
            if g.skipped:
                lines.append(f"{g.name:<28} {g.size:>5} {'-':<10} skipped: {g.skipped}")
                continue
            lines.append(f"{g.name:<28} {g.size:>5} {g.solver:<10} {g.retained_before:>12.4g} "
                         f"{g.retained_after:>12.4g} {g.bound:>12.4g}  {', '.join(g.members)}")
        for name, why in self.blocked:
            lines.append(f"{name:<28} blocked: {'; '.join(why)}")
        lines.append(self.coverage_line())
        if self.output_perms:
            lines.append(f"model outputs permuted (opt-in): leaves {sorted(self.output_perms)}")
        tol, where = (RTOL64, " (in float64)") if self.check_dtype == "float64" else (RTOL, "")
        lines.append(f"output check{where}: max |diff| {self.max_abs_diff:.3g} <= {tol:g} * {self.max_abs_output:.3g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
