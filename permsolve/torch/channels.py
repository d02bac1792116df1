"""The data of a channel graph: layouts, bindings, groups, and how groups are formed.

Both front ends (the torch.fx builder, :mod:`permsolve.torch.fx_builder`, and
the torch.export one, :mod:`permsolve.torch.aten`) track, for every tensor,
which axis carries channels (a :class:`Layout` of :class:`Seg` segments, each
naming a *channel space*), record which module axes a space's permutation acts
on (:class:`Binding`), and hand their spaces to :func:`finish`, which forms
the :class:`Group` objects of a :class:`ChannelGraph`.

Examples
--------
>>> import torch
>>> from permsolve.torch.graph import channel_graph
>>> g = channel_graph(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)), torch.randn(2, 8))
>>> grp, = g.free_groups()
>>> grp.size, [str(b) for b in grp.producers], [str(b) for b in grp.consumers]
(16, ['0 rows'], ['1 cols'])
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import torch
from torch import nn

__all__ = ["Seg", "Layout", "Binding", "Group", "ChannelGraph", "is_conv1d", "tensor_axes", "split_inputs",
           "finish"]


@dataclass(frozen=True)
class Seg:
    """``n`` channel units of space ``space``, each ``unit`` consecutive elements wide.

    Attributes
    ----------
    space : the channel space (a node of the builder's graph)
    n : number of channel units
    unit : elements per unit (``h*w`` for a flattened conv channel, 1 otherwise)

    Examples
    --------
    >>> Seg(0, 16, unit=9)
    Seg(space=0, n=16, unit=9)
    """

    space: int
    n: int
    unit: int = 1


@dataclass(frozen=True)
class Layout:
    """Channel layout of a tensor: its channel dim and the segments along it.

    Attributes
    ----------
    axis : the channel dim
    ndim : the tensor's number of dims
    segs : the segments along ``axis``, in order (a concatenation has several)
    heads : ``(head space, unit)`` when this axis is an attention output whose whole heads may move
        (set by the torch.export front end, :mod:`permsolve.torch.aten`)

    Examples
    --------
    >>> lay = Layout(1, 4, (Seg(0, 8), Seg(1, 4, unit=2)))      # a cat of 8 channels and 4 two-wide ones
    >>> [(off, s.space) for off, s in lay.offsets()]
    [(0, 0), (8, 1)]
    """

    axis: int
    ndim: int
    segs: tuple[Seg, ...]
    #: ``(head space, unit)`` when this axis is an attention output whose whole
    #: heads may move (set by the torch.export front end, :mod:`permsolve.torch.aten`)
    heads: tuple[int, int] | None = None

    def offsets(self):
        """``(first element, segment)`` of every segment along the channel dim, in order.

        Returns
        -------
        iterator of ``(int, Seg)``

        Examples
        --------
        >>> list(Layout(1, 2, (Seg(3, 2, unit=4), Seg(5, 1))).offsets())
        [(0, Seg(space=3, n=2, unit=4)), (8, Seg(space=5, n=1, unit=1))]
        """
        off = 0
        for s in self.segs:
            yield off, s
            off += s.n * s.unit


@dataclass(frozen=True)
class Binding:
    """One axis of one module that a group's permutation acts on.

    Attributes
    ----------
    module : qualified name of the module (``"<output>"`` for a model output)
    role : ``"rows"`` (producer: weight rows and bias), ``"cols"`` (consumer:
        columns of the weight's matrix view ``(out, in*kh*kw)``) or
        ``"channels"`` (passenger: dim 0 of every per-channel tensor, e.g. a
        BatchNorm's weight, bias and running statistics, a depthwise conv's
        weight and bias)
    offset : first element of the bound range on that axis
    n, unit : the range holds ``n`` units of ``unit`` consecutive elements
    param : for a ``"channels"`` binding, the one tensor of the module it
        permutes (e.g. an RMSNorm's ``weight`` or a layer-scale parameter used in
        an elementwise product), on dim ``dim``; None: the module's per-channel
        tensors (weight, bias, running statistics) on dim 0.  For an
        ``"output"`` binding (model outputs permuted by explicit opt-in),
        ``param`` is the index of the output leaf and ``dim`` its channel dim.
    dim : the tensor dim of a ``"channels"`` or ``"output"`` binding
    rows_block : ``(first row, rows)``: a ``cols`` binding that acts on these rows only

    Examples
    --------
    >>> str(Binding("fc2", "cols", 0, 16, 1)), str(Binding("conv2", "cols", 32, 8, 9))
    ('fc2 cols', 'conv2 cols[32:+8x9]')
    """

    module: str
    role: str
    offset: int
    n: int
    unit: int
    param: str | None = None
    dim: int = 0
    #: ``(first row, rows)``: a ``cols`` binding that acts on these rows only (one group of a grouped conv)
    rows_block: tuple[int, int] | None = None

    def __str__(self) -> str:
        extra = "" if (self.offset == 0 and self.unit == 1) else f"[{self.offset}:+{self.n}x{self.unit}]"
        what = f" {self.param}" if self.param is not None and self.role == "channels" else ""
        block = f"@rows[{self.rows_block[0]}:+{self.rows_block[1]}]" if self.rows_block else ""
        return f"{self.module}{what} {self.role}{extra}{block}"


@dataclass
class Group:
    """A set of channel dimensions that must share one permutation.

    Attributes
    ----------
    gid : index of the group in its :class:`ChannelGraph`
    size : number of channel units the permutation moves
    spaces : the channel spaces merged into this group
    bindings : every module axis the permutation acts on
    blocked : why the group may not be permuted (empty: it may)
    order : position of its first node in the traced graph

    Examples
    --------
    >>> g = Group(0, 16, [0], [Binding("fc1", "rows", 0, 16, 1), Binding("fc2", "cols", 0, 16, 1)])
    >>> g.name, [str(b) for b in g.consumers], g.passengers
    ('fc1', ['fc2 cols'], [])
    """

    gid: int
    size: int
    spaces: list[int]
    bindings: list[Binding]
    blocked: list[str] = field(default_factory=list)
    order: int = 0  # position of its first node in the graph

    @property
    def name(self) -> str:
        """The first producer's module name (``+k`` for k more producers), else ``group<gid>``."""
        producers = [b.module for b in self.bindings if b.role == "rows"]
        return producers[0] + (f"+{len(producers) - 1}" if len(producers) > 1 else "") if producers else f"group{self.gid}"

    @property
    def producers(self) -> list[Binding]:
        """The ``rows`` bindings (layers that write the channels)."""
        return [b for b in self.bindings if b.role == "rows"]

    @property
    def consumers(self) -> list[Binding]:
        """The ``cols`` bindings (layers that read the channels)."""
        return [b for b in self.bindings if b.role == "cols"]

    @property
    def passengers(self) -> list[Binding]:
        """The ``channels`` bindings (per-channel tensors that move along)."""
        return [b for b in self.bindings if b.role == "channels"]


@dataclass
class ChannelGraph:
    """All channel groups of a model, the networkx graph and what was blocked.

    Attributes
    ----------
    groups : every group (blocked ones included)
    graph : ``networkx.Graph`` whose nodes are channel spaces and whose edges
        say "same permutation"
    opaque : modules fx could not trace, with the reason (``""``: the whole
        model, when nothing could be traced)
    traced : False when nothing could be traced at all
    tracer : ``"fx"`` or ``"export"``: which front end built the graph

    Examples
    --------
    >>> import torch
    >>> from permsolve.torch.graph import channel_graph
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> g = channel_graph(m, torch.randn(2, 8))
    >>> g.tracer, len(g.free_groups()), len(g.blocked_groups())     # the model's input and output are blocked
    ('fx', 1, 2)
    """

    groups: list[Group]
    graph: nx.Graph
    opaque: dict[str, str]
    traced: bool = True
    tracer: str = "fx"

    def free_groups(self) -> list[Group]:
        """Groups that may be permuted, in graph order."""
        return [g for g in self.groups if not g.blocked and g.bindings]

    def blocked_groups(self) -> list[Group]:
        """Groups that may not be permuted (each says why in ``blocked``), in graph order."""
        return [g for g in self.groups if g.blocked]



class _Blocked(Exception):
    """Raised by a front end's handler: the op blocks the channels of its inputs, for reason ``why``."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def is_conv1d(mod: nn.Module) -> bool:
    """True for ``transformers.pytorch_utils.Conv1D`` (GPT-2): a Linear whose weight is stored ``(in, out)``.

    Parameters
    ----------
    mod : any module

    Returns
    -------
    bool

    Examples
    --------
    >>> import torch
    >>> is_conv1d(torch.nn.Linear(2, 3))
    False
    """
    return type(mod).__name__ == "Conv1D" and hasattr(mod, "nf") and getattr(mod, "weight", None) is not None


def tensor_axes(mod: nn.Module, b: Binding) -> list[tuple[str, int]]:
    """``(tensor name, dim)`` pairs of ``mod`` that binding ``b`` permutes.

    A conv's ``cols`` act on the flattened ``in*kh*kw`` axis, reported as dim 1.

    Parameters
    ----------
    mod : the module ``b`` names
    b : one of its bindings

    Returns
    -------
    list of ``(tensor name, dim)``

    Examples
    --------
    >>> import torch
    >>> tensor_axes(torch.nn.Linear(4, 8), Binding("fc", "rows", 0, 8, 1))
    [('weight', 0), ('bias', 0)]
    """
    if b.role == "rows":
        return [("weight", 1 if is_conv1d(mod) else 0), ("bias", 0)]
    if b.role == "cols":
        return [("weight", 0 if is_conv1d(mod) else 1)]
    if b.role == "channels":
        if b.param is not None:
            return [(b.param, b.dim)]
        return [("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0)]
    return []


def _stored(mod: nn.Module, name: str):
    for n in (name, name + "_orig"):
        t = mod._parameters.get(n)
        if t is None:
            t = mod._buffers.get(n)
        if t is not None:
            return t
    return None


def split_inputs(example_inputs) -> tuple[tuple, dict]:
    """``(args, kwargs)`` from a tensor, a tuple of positional arguments or a dict of keyword arguments.

    Parameters
    ----------
    example_inputs : a tensor, a tuple (or list) of positional arguments, or a dict of keyword arguments

    Returns
    -------
    ``(tuple, dict)``

    Raises
    ------
    TypeError
        for anything else.

    Examples
    --------
    >>> import torch
    >>> split_inputs(torch.zeros(2))[0][0].shape, split_inputs({"input_ids": 1})
    (torch.Size([2]), ((), {'input_ids': 1}))
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise TypeError(f"example_inputs must be a tensor, a tuple of positional arguments or a dict of "
                    f"keyword arguments, got {type(example_inputs).__name__}")


def finish(b, model: nn.Module, opaque: dict[str, str], tracer: str) -> ChannelGraph:
    """Groups from a builder's spaces: connected components, with shared weights checked.

    A module whose weights are used more than once blocks its groups; a tensor
    shared between modules (tied embeddings) is fine when every binding of one
    of its dims lies in the same group with the same range (it is permuted once),
    else it blocks.

    Parameters
    ----------
    b : a front end's builder after its run: ``graph`` (spaces as nodes, edges: same permutation),
        ``space_size``, ``space_order``, ``blocked``, ``bindings`` and ``calls`` (module -> times called)
    model : the traced model
    opaque : modules that could not be traced, with the reason
    tracer : the front end's name (``"fx"`` or ``"export"``)

    Returns
    -------
    :class:`ChannelGraph`

    Examples
    --------
    >>> import types
    >>> import networkx as nx
    >>> import torch
    >>> G = nx.Graph()
    >>> G.add_edge(0, 1)                   # spaces 0 and 1: one permutation (a residual add, say)
    >>> b = types.SimpleNamespace(graph=G, space_size={0: 4, 1: 4}, space_order={0: 0, 1: 1}, blocked={},
    ...                           calls={"0": 1, "1": 1}, bindings={0: [Binding("0", "rows", 0, 4, 1)],
    ...                                                             1: [Binding("1", "rows", 0, 4, 1)]})
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(2, 4))
    >>> [(grp.size, grp.name) for grp in finish(b, m, {}, "fx").groups]
    [(4, '0+1')]
    """
    modules = dict(model.named_modules())
    comps = sorted(nx.connected_components(b.graph), key=lambda c: min(b.space_order[s] for s in c))
    comp_of = {s: i for i, c in enumerate(comps) for s in c}
    bad: dict[int, list[str]] = {}
    for name, n in b.calls.items():
        if n > 1:
            for space, bl in b.bindings.items():
                if any(bb.module == name for bb in bl):
                    bad.setdefault(comp_of[space], []).append(f"{name} is called {n} times (shared weights)")
    uses: dict[tuple[int, int], set] = {}
    names: dict[tuple[int, int], set] = {}
    for space, bl in b.bindings.items():
        for bb in bl:
            mod = modules.get(bb.module)
            if mod is None:
                continue
            for tname, dim in tensor_axes(mod, bb):
                t = _stored(mod, tname)
                if t is None:
                    continue
                key = (id(t), dim, bb.rows_block)
                uses.setdefault(key, set()).add((comp_of[space], bb.offset, bb.n, bb.unit))
                names.setdefault(key, set()).add(f"{bb.module}.{tname}")
    for key, u in uses.items():
        u = sorted(u)
        for i, x in enumerate(u):
            for y in u[i + 1:]:
                if x[0] != y[0] and not _compatible(x[1:], y[1:]):
                    why = (f"{' and '.join(sorted(names[key]))}: one tensor bound by different channel "
                           "groups on overlapping ranges")
                    bad.setdefault(x[0], []).append(why)
                    bad.setdefault(y[0], []).append(why)
    groups = []
    for gid, comp in enumerate(comps):
        spaces = sorted(comp)
        sizes = {b.space_size[s] for s in spaces}
        binds = [bb for s in spaces for bb in b.bindings.get(s, [])]
        blocked = sorted({w for s in spaces for w in b.blocked.get(s, [])} | set(bad.get(gid, [])))
        if len(sizes) != 1:
            blocked.append(f"spaces of different sizes {sorted(sizes)} were merged")
        groups.append(Group(gid, next(iter(sizes)), spaces, binds, blocked,
                            order=min(b.space_order[s] for s in spaces)))
    return ChannelGraph(groups, b.graph, opaque, tracer=tracer)


def _compatible(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Two bindings ``(offset, n, unit)`` of one tensor dim by different groups may both apply.

    Disjoint ranges are independent; a range inside one unit of the other
    (the dims of one head inside the whole-head space) moves with that unit.
    """
    (o1, n1, u1), (o2, n2, u2) = a, b
    e1, e2 = o1 + n1 * u1, o2 + n2 * u2
    if e1 <= o2 or e2 <= o1:
        return True
    for (oa, ua, ea), (ob, eb) in (((o1, u1, e1), (o2, e2)), ((o2, u2, e2), (o1, e1))):
        if oa <= ob and eb <= ea and (ob - oa) // ua == (eb - 1 - oa) // ua:
            return True
    return False
