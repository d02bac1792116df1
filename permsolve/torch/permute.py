"""Permute a PyTorch model's channels without changing what it computes.

:func:`permute_model` builds one :class:`~permsolve.TileProblem` per channel
group (see :mod:`permsolve.torch.graph`; the problems:
:mod:`permsolve.torch.matrices`), solves it with :func:`permsolve.solve` (any
registered solver), writes the permutation into every bound tensor (weights,
biases, BatchNorm running statistics, pruning masks: :func:`apply_permutation`)
and checks that the model's eval-mode outputs did not change.  What it
reports: :mod:`permsolve.torch.report`.  The names of those modules are
importable from here too.
"""
from __future__ import annotations

import copy
import itertools
import time
import warnings
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..problem import expand_perm
from ..registry import get_solver, solve
from .aten import TraceError
from .channels import Binding, ChannelGraph, Group, is_conv1d, split_inputs, tensor_axes  # noqa: F401
from .graph import channel_graph
from .joint import ascent_pass, model_objective
# the problems and the report, re-exported: ``from permsolve.torch.permute import group_problem, ...`` keeps working
from .matrices import (SCOPES, _group_tile_problem, _member_sparsity, _nm_members, _weight,  # noqa: F401
                       channel_last, group_problem, mask_arguments, nm_unsupported, nm_weight_matrix,
                       prunable_layers, weight_matrix)
from .report import RTOL, RTOL64, GroupReport, PermutationError, PermuteReport

__all__ = ["permute_model", "PermuteReport", "GroupReport", "PermutationError", "TraceError", "weight_matrix",
           "group_problem", "apply_permutation", "prunable_layers", "SCOPES", "RTOL", "channel_last",
           "nm_weight_matrix", "nm_unsupported", "mask_arguments"]


# -------------------------------------------------------------- writing a permutation
def _tensors(mod: nn.Module, base: str) -> list[torch.Tensor]:
    """The stored tensors behind ``base`` (``weight`` or ``weight_orig`` and ``weight_mask``)."""
    out = []
    for name in (base, base + "_orig", base + "_mask"):
        t = mod._parameters.get(name)
        if t is None:
            t = mod._buffers.get(name)
        if t is not None:
            out.append(t)
    if not out:  # a pruned tensor is a plain attribute recomputed on forward
        t = getattr(mod, base, None)
        if isinstance(t, torch.Tensor):
            out.append(t)
    return out


def _permute_dim(t: torch.Tensor, dim: int, idx: torch.Tensor) -> None:
    with torch.no_grad():
        t.copy_(t.index_select(dim, idx.to(t.device)))


def _binding_keys(mod: nn.Module, b: Binding) -> set:
    return {(id(t), dim, b.offset) for tname, dim in tensor_axes(mod, b) for t in _tensors(mod, tname)
            if t is not None and t.dim() > 0}


def apply_binding(mod: nn.Module, b: Binding, perm: np.ndarray) -> bool:
    """Write permutation ``perm`` (over ``b.n`` units) into the tensors of one binding.

    Returns whether anything was written.
    """
    perm = np.asarray(perm, dtype=np.int64)
    elems = b.offset + expand_perm(perm, b.unit)
    wrote = False
    for tname, dim in tensor_axes(mod, b):
        for t in _tensors(mod, tname):
            if t is None or t.dim() == 0 or t.dim() <= dim:
                continue
            if b.rows_block is not None:   # one group of a grouped conv: its rows only
                t = t.narrow(0, *b.rows_block)
            if b.role == "cols" and dim == 1 and (t.dim() > 2 or b.rows_block is not None):
                # conv: the flattened in*kh*kw axis
                shape = t.shape
                flat = t.reshape(shape[0], -1)
                idx = np.arange(flat.shape[1])
                idx[b.offset:b.offset + b.n * b.unit] = elems
                with torch.no_grad():
                    t.copy_(flat.index_select(1, torch.from_numpy(idx).to(t.device)).reshape(shape))
            elif b.offset == 0 and b.n * b.unit == t.shape[dim]:   # the whole dim: one gather, no copy back
                with torch.no_grad():
                    t.data = t.index_select(dim, torch.from_numpy(elems).to(t.device))
            else:   # only the bound range moves
                part = t.narrow(dim, b.offset, b.n * b.unit)
                local = torch.from_numpy(elems - b.offset).to(t.device)
                with torch.no_grad():
                    part.copy_(part.index_select(dim, local))
            wrote = True
    return wrote


def apply_permutation(model: nn.Module, group: Group, perm: np.ndarray, seen: set | None = None) -> set[str]:
    """Permute every tensor bound to ``group`` by ``perm`` (``perm[i]`` = old channel at position i).

    Weights, biases, BatchNorm running statistics and pruning masks move
    together, in place; ``"output"`` bindings (permuted model outputs) are
    left to the caller.

    Parameters
    ----------
    model : nn.Module
        The model whose modules the group's bindings name.
    group : Group
        A channel group of ``model`` (:func:`~permsolve.torch.graph.channel_graph`).
    perm : (group.size,) int array
        The new order: ``perm[i]`` is the old channel put at position ``i``.
    seen : set, optional
        Collects the ``(tensor, dim, offset)`` already permuted, so that a
        tensor shared by two modules (tied input and output embeddings) is
        permuted once; pass the same set for every group of one model.

    Returns
    -------
    set of str
        The names of the modules whose tensors were written.

    Raises
    ------
    PermutationError
        When some, not all, of a binding's tensors were already permuted through another module.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from permsolve.torch.graph import channel_graph
    >>> _ = torch.manual_seed(0)
    >>> m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> x = torch.randn(3, 4)
    >>> y = m(x)
    >>> group, = channel_graph(m, x).free_groups()
    >>> w = m[0].weight.detach().clone()
    >>> sorted(apply_permutation(m, group, np.array([5, 4, 3, 2, 1, 0])))
    ['0', '2']
    >>> torch.equal(m[0].weight, w.flip(0)), torch.allclose(m(x), y, atol=1e-6)
    (True, True)
    """
    modules = dict(model.named_modules())
    seen = set() if seen is None else seen
    touched = set()
    for b in group.bindings:
        if b.role == "output":
            continue
        mod = modules[b.module]
        keys = _binding_keys(mod, b)
        if keys and keys <= seen:
            touched.add(b.module)
            continue
        if keys & seen:
            raise PermutationError(f"{b}: some of its tensors were already permuted through another module")
        seen |= keys
        if apply_binding(mod, b, perm):
            touched.add(b.module)
    return touched


# -------------------------------------------------------------- the check
def _low_precision(model: nn.Module) -> bool:
    """Whether some floating-point parameter or buffer of ``model`` is below float64."""
    return any(t.is_floating_point() and t.dtype != torch.float64
               for t in itertools.chain(model.parameters(), model.buffers()))


def _check_in_float64(model: nn.Module, saved: dict, example_inputs, out_idx: dict) -> tuple[float, float]:
    """``(max |diff|, max |output|)`` between the model in state ``saved`` and the model as it is now
    (``out_idx``: the outputs permuted by opt-in), both run in float64 on copies of ``model``."""
    def to64(x):
        return x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    inputs = torch.utils._pytree.tree_map(to64, example_inputs)
    ref, new = copy.deepcopy(model), copy.deepcopy(model)
    ref.load_state_dict(saved)
    outs = []
    for m in (ref, new):
        m.double()
        with _EvalMode(m):
            outs.append(_outputs(m, inputs))
    del ref, new
    return _difference(*outs, out_idx)


def _difference(before: list, after: list, out_idx: dict) -> tuple[float, float]:
    """``(max |diff|, max |output|)`` between outputs ``after`` and ``before`` put in the order of
    ``out_idx`` (the model outputs permuted by opt-in: leaf -> (dim, index array))."""
    expected = list(before)
    for leaf, (dim, idx) in out_idx.items():
        expected[leaf] = before[leaf].index_select(dim, torch.from_numpy(idx).to(before[leaf].device))
    scale = max((float(t.abs().max()) for t in expected if t.numel()), default=0.0)
    diff = max((float((a - b).abs().max()) for a, b in zip(after, expected) if a.numel()), default=0.0)
    return diff, scale


def _outputs(model: nn.Module, example_inputs) -> list[torch.Tensor]:
    args, kwargs = split_inputs(example_inputs)
    with torch.no_grad():
        out = model(*args, **kwargs)
    leaves, _ = torch.utils._pytree.tree_flatten(out)
    return [t.detach().clone() for t in leaves if isinstance(t, torch.Tensor)]


class _EvalMode:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def _as_tuple(example_inputs):
    """Positional inputs as a tuple; a dict of keyword inputs is kept as it is."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, dict):
        return example_inputs
    return tuple(example_inputs)


TRACE_FAILURE = ("error", "warn")


def permute_model(model: nn.Module, example_inputs, *, tile=None, sparsity: float | None = None,
                  solver: str = "greedy",
                  metric: str = "l1", scope: str = "layer", time_limit: float | None = None, seed: int = 0,
                  mask: str = "global", layer_sparsity: Mapping[str, float] | None = None,
                  on_unsupported: str = "error", graph: ChannelGraph | None = None, tracer: str = "auto",
                  permute_outputs: bool = False, on_trace_failure: str = "error",
                  max_sweeps: int = 10, tol: float = 1e-9,
                  **solver_options) -> PermuteReport:
    """Permute ``model``'s channels in place to help tile pruning; the function is unchanged.

    Parameters
    ----------
    model : any ``torch.nn.Module`` (Hugging Face transformers included: see docs/models.md)
    example_inputs : a tensor, a tuple of positional arguments, or a dict of keyword
        arguments (``{"input_ids": ..., "attention_mask": ...}``); used to trace and
        for the output check
    tile : ``(h, w)`` or ``"HxW"``; tiles larger than a matrix are zero-padded edge tiles
        (not needed with an N:M mask)
    sparsity : fraction of each matrix's tiles the problem prunes (not needed with an N:M mask)
    solver : any registered solver (``permsolve solvers``); ``identity`` changes nothing
    metric : importance metric (``l1`` or ``l2``; the others need data this function does not have)
    scope : ``layer`` (TileTrans: producers decide), ``group`` (then one pass where all members
        count) or ``joint`` (group passes until the model objective stops improving); see
        :mod:`permsolve.torch.joint`.  In model objective ``joint >= group >= layer``.
    time_limit : seconds per group, for anytime solvers
    seed : seed of randomized solvers
    mask : mask of the per-matrix problems (``"global"``, ``"row-balanced"``, ``"2:4"``, ...); with
        N:M the consumers' input channels carry the objective (:func:`group_problem`)
    layer_sparsity : module name -> sparsity, overriding ``sparsity`` for that layer
    on_unsupported : ``error`` (raise) or ``skip`` (leave the group unpermuted and
        say so) when the solver refuses a group's problem
    graph : a :func:`~permsolve.torch.graph.channel_graph` already built for this model
    tracer : ``auto``, ``fx`` or ``export`` (see :func:`~permsolve.torch.graph.channel_graph`)
    permute_outputs : explicit opt-in: channels that are model outputs (a
        transformer's hidden states) may be permuted too; those outputs then come
        back permuted (``report.output_perms`` says how) and the check allows for it
    on_trace_failure : ``error`` (raise :class:`TraceError` when nothing can be
        traced) or ``warn`` (warn and return a report that permuted nothing)
    max_sweeps, tol : ``joint`` stops after ``max_sweeps`` passes over the groups, or when a
        pass raises the model objective by less than ``tol`` (relative)
    **solver_options : passed to the solver

    Returns
    -------
    :class:`PermuteReport`, with ``coverage`` (permuted / prunable weight matrices)
    and every blocked group with its reasons.

    Raises
    ------
    TraceError
        if the model cannot be traced at all (``on_trace_failure="error"``).
    PermutationError
        if the eval-mode outputs on ``example_inputs`` change by more than
        ``1e-5 * max |output|`` and, for a float32 (or lower) model, by more than
        ``1e-9 * max |output|`` when both are recomputed on float64 copies (a
        permutation reorders sums, which alone moves deep float32 outputs by
        about 1e-5); the model's original state is restored first.

    Examples
    --------
    >>> import torch
    >>> from permsolve import zoo
    >>> model = zoo.load("mlp")
    >>> X = zoo.digits("val")[0][:64]
    >>> rep = permute_model(model, X, tile=(16, 16), sparsity=0.5)
    >>> rep.retained_after >= rep.retained_before, rep.coverage
    (True, 1.0)
    """
    t0 = time.perf_counter()
    mask, tile, sparsity = mask_arguments(mask, tile, sparsity)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes are: {', '.join(SCOPES)}")
    if metric in ("taylor", "activation"):
        raise ValueError(f"metric {metric!r} needs gradients or activations; permute_model takes l1, l2")
    if on_unsupported not in ("error", "skip"):
        raise ValueError(f"on_unsupported must be 'error' or 'skip', got {on_unsupported!r}")
    if on_trace_failure not in TRACE_FAILURE:
        raise ValueError(f"on_trace_failure must be 'error' or 'warn', got {on_trace_failure!r}")
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    solver_obj = get_solver(solver)(**solver_options)  # validates the name and options early
    example_inputs = _as_tuple(example_inputs)
    if graph is None:
        graph = channel_graph(model, example_inputs, tracer=tracer, permute_outputs=permute_outputs)
    prunable = list(prunable_layers(model))
    report = PermuteReport(opaque=dict(graph.opaque), prunable=prunable, tracer=graph.tracer if graph.traced else "")
    if not graph.traced:
        why = graph.opaque.get("", "not traceable")
        msg = f"{type(model).__name__} could not be traced, nothing was permuted: {why}"
        if on_trace_failure == "error":
            raise TraceError(msg + " (pass on_trace_failure='warn' to get an empty report instead)")
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        report.blocked.append(("<model>", [why]))
        report.seconds = time.perf_counter() - t0
        return report
    for g in graph.blocked_groups():
        if g.bindings:
            report.blocked.append((g.name, g.blocked))

    with _EvalMode(model):
        before = _outputs(model, example_inputs)
    saved = copy.deepcopy(model.state_dict())

    free = sorted(graph.free_groups(), key=lambda g: g.order)
    # the model objective counts the prunable matrices (not norms, not embeddings)
    bound_modules = sorted({b.module for g in free for b in g.bindings} & set(prunable))

    def objective(names) -> float:
        return float(sum(model_objective(model, names, weight_matrix, tile=tile, sparsity=sparsity, mask=mask,
                                         metric=metric, layer_sparsity=layer_sparsity).values()))

    report.objective_before = objective(bound_modules)
    kw = dict(tile=tile, sparsity=sparsity, metric=metric, mask=mask, layer_sparsity=layer_sparsity)
    start_value = {}
    if scope != "layer":       # each group's problem (in this scope) on the unchanged model, for the report
        for g in free:
            try:
                start_value[g.gid] = group_problem(model, g, scope=scope, **kw).evaluate()
            except ValueError:
                pass
    composed = {g.gid: np.arange(g.size) for g in free}
    reports: dict[int, GroupReport] = {}
    for g in free:   # the layer pass: TileTrans's objective, each group solved once
        members = [str(b) for b in g.bindings]
        try:
            problem = group_problem(model, g, scope="layer", **kw)
        except ValueError as e:
            reports[g.gid] = GroupReport(g.name, g.size, members, None, skipped=str(e))
            continue
        why = solver_obj.supports(problem)
        if why:
            if on_unsupported == "error":
                raise ValueError(f"group {g.name}: {why}")
            reports[g.gid] = GroupReport(g.name, g.size, members, solver, skipped=why)
            continue
        res = solve(problem, solver, time_limit=time_limit, seed=seed, **solver_options)
        (perm,) = res.perms.values()
        perm = np.asarray(perm, dtype=np.int64)
        reports[g.gid] = GroupReport(g.name, g.size, members, solver, problem.evaluate(),
                                     res.retained, problem.total, res.bound, res.seconds, perm)
        if not np.array_equal(perm, np.arange(perm.size)):
            apply_permutation(model, g, perm)
        composed[g.gid] = perm
    report.sweeps = 1

    def step(g):
        """Re-solve one group for every matrix it touches, from the current order."""
        rep = reports[g.gid]
        try:
            problem = group_problem(model, g, scope="group", **kw)
        except ValueError:
            return None
        if solver_obj.supports(problem):
            return None
        res = solve(problem, solver, time_limit=time_limit, seed=seed, init=problem.identity(), **solver_options)
        rep.seconds += res.seconds
        (perm,) = res.perms.values()
        perm = np.asarray(perm, dtype=np.int64)
        if np.array_equal(perm, np.arange(perm.size)):
            return None
        apply_permutation(model, g, perm)
        composed[g.gid] = composed[g.gid][perm]

        def undo():
            inv = np.argsort(perm)
            apply_permutation(model, g, inv)
            composed[g.gid] = composed[g.gid][inv]
        return undo

    if scope != "layer":
        active = [g for g in free if reports[g.gid].skipped is None]
        f = objective(bound_modules)
        for _ in range(1 if scope == "group" else max(1, int(max_sweeps))):
            gain = ascent_pass(active, step, objective)
            report.sweeps += 1
            if gain <= tol * max(abs(f), np.finfo(float).tiny):
                break
            f += gain
        for g in active:          # before / after / bound of each group's problem in this scope
            rep = reports[g.gid]
            problem = group_problem(model, g, scope=scope, **kw)
            rep.retained_before = start_value.get(g.gid, rep.retained_before)
            rep.retained_after, rep.total, rep.bound = problem.evaluate(), problem.total, problem.bound
            rep.perm = composed[g.gid]
    report.groups = [reports[g.gid] for g in free]
    report.objective_after = objective(bound_modules)
    touched: set[str] = set()
    out_idx: dict[int, tuple[int, np.ndarray]] = {}
    for g in free:     # what really moved: coverage, and the model outputs permuted by opt-in
        perm = composed[g.gid]
        if np.array_equal(perm, np.arange(perm.size)):
            continue
        touched |= {b.module for b in g.bindings if b.role != "output"}
        for b in g.bindings:
            if b.role == "output":
                leaf = int(b.param)
                dim, idx = out_idx.get(leaf, (b.dim, None))
                if idx is None:
                    idx = np.arange(before[leaf].shape[b.dim])
                idx[b.offset:b.offset + b.n * b.unit] = b.offset + expand_perm(perm, b.unit)
                out_idx[leaf] = (dim, idx)
    report.permuted = [n for n in prunable if n in touched]
    report.output_perms = out_idx
    with _EvalMode(model):
        after = _outputs(model, example_inputs)
    diff, scale = _difference(before, after, out_idx)
    report.max_abs_diff, report.max_abs_output = diff, scale
    same = len(after) == len(before) and diff <= RTOL * scale
    if len(after) == len(before) and not same and _low_precision(model):
        # a permutation reorders sums (a LayerNorm's over permuted channels, say): in float32 that alone
        # can move deep outputs by about 1e-5 relative.  Decide in float64, where reordering moves them by
        # about 1e-15 and a wrong permutation still by the size of the outputs.
        diff64, scale64 = _check_in_float64(model, saved, example_inputs, out_idx)
        if diff64 <= RTOL64 * scale64:
            same = True
            report.check_dtype = "float64"
            report.max_abs_diff, report.max_abs_output = diff64, scale64
    report.seconds = time.perf_counter() - t0
    if not same:
        model.load_state_dict(saved)
        raise PermutationError(
            f"permuting changed the model's eval-mode outputs: max |diff| {diff:.3g} > {RTOL:g} * "
            f"max |output| {scale:.3g}; the model was restored. Groups: "
            + "; ".join(f"{g.name} [{', '.join(g.members)}]" for g in report.groups if g.permuted))
    return report
