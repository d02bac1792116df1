"""Read a weight or importance matrix from ``.npy``, ``.npz``, a PyTorch
checkpoint (``.pt``/``.pth`` state dict) or ``.safetensors``.

Examples
--------
>>> import numpy as np, tempfile, os
>>> d = tempfile.mkdtemp(); f = os.path.join(d, "w.npz")
>>> np.savez(f, a=np.ones((2, 3)))
>>> load_tensor(f, "a").shape
(2, 3)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_tensor", "list_tensors", "FORMATS"]

FORMATS = (".npy", ".npz", ".pt", ".pth", ".safetensors")


def _as_real(name: str, arr) -> np.ndarray:
    """``arr`` as float64; a dtype that is not a plain real number is refused, not converted."""
    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64, copy=False)
    what = {"c": "complex (the imaginary part would be lost)", "V": "structured (record)", "M": "datetime64",
            "m": "timedelta64", "O": "object", "U": "string", "S": "bytes"}.get(kind, str(arr.dtype))
    label = f"tensor {name!r}" if name else "the array"
    raise ValueError(f"{label} has dtype {arr.dtype} ({what}); a weight or importance must be real numbers")


def _flatten(obj, prefix: str, out: dict, torch) -> None:
    """Tensors of a (nested) state dict under dotted names; anything else that is not a dict is skipped."""
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[name] = v
        elif isinstance(v, dict):
            _flatten(v, f"{name}.", out, torch)


def _tensors(path: Path) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {"": np.load(path, allow_pickle=False)}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if suffix in (".pt", ".pth"):
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if isinstance(obj, torch.Tensor):
            obj = {"": obj}
        if not isinstance(obj, dict):
            raise ValueError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
        flat: dict = {}
        _flatten(obj, "", flat, torch)          # nested dicts: "encoder.weight" as in a module's state dict
        out = {}
        for k, v in flat.items():
            if v.is_complex():
                _as_real(k, v.numpy())          # refused with the dtype named
            out[k] = v.detach().double().numpy()
        return out
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(path)))
        except Exception:  # bf16 tensors cannot be read by numpy: go through torch
            from safetensors.torch import load_file as load_torch

            return {k: v.double().numpy() for k, v in load_torch(str(path)).items()}
    raise ValueError(f"unsupported file type {suffix or '(none)'}; use one of {', '.join(FORMATS)}")


def list_tensors(path) -> list[str]:
    """Names of the tensors in ``path`` (``[""]`` for a bare ``.npy`` array).

    Parameters
    ----------
    path : str or Path
        A file of one of the :data:`FORMATS`.

    Returns
    -------
    list of str
        Tensor names (dotted for a nested state dict), in file order.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(f, a=np.ones(2), b=np.zeros((2, 2)))
    >>> list_tensors(f)
    ['a', 'b']
    """
    return list(_tensors(Path(path)))


def load_tensor(path, key: str | None = None) -> np.ndarray:
    """Load one tensor as float64.

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.npz``, ``.pt``/``.pth`` (state dict) or ``.safetensors`` file.
    key : str, optional
        The tensor's name (see :func:`list_tensors`); may be omitted when the file holds
        exactly one tensor.

    Returns
    -------
    float64 array
        The tensor (real numbers only: a complex or structured dtype is refused).

    Raises
    ------
    ValueError
        For a missing, unreadable or unsupported file, or an unknown or missing ``key``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> np.save(f, np.arange(6, dtype=np.int32).reshape(2, 3))
    >>> load_tensor(f)
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a file")
    if not path.is_file():       # a FIFO or a device would block the reader forever
        raise ValueError(f"{path} is not a regular file (a pipe or a device?); save the tensor to a file first")
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    try:
        tensors = _tensors(path)
    except Exception as e:  # corrupt or foreign file: one line, not a traceback
        raise ValueError(f"cannot read {path.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not tensors:
        raise ValueError(f"{path.name} holds no tensor")
    if key in (None, ""):
        if len(tensors) != 1:
            raise ValueError(f"{path.name} holds {len(tensors)} tensors; name one with --key: {', '.join(tensors)}")
        (arr,) = tensors.values()
    else:
        if key not in tensors:
            shown = ", ".join(list(tensors)[:40]) + (" ..." if len(tensors) > 40 else "")
            raise ValueError(f"no tensor {key!r} in {path.name}; keys: {shown}")
        arr = tensors[key]
    return _as_real(key or "", arr)
