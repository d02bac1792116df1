"""The digits data set (scikit-learn's bundled copy) and its fixed split.

1797 images of 8x8 pixels, 10 classes.  The split is stratified and seeded,
60% train / 20% validation / 20% test, so every experiment sees the same
samples.  Pixel values are scaled to [0, 1] (the raw range is 0..16).
Nothing is downloaded: ``sklearn.datasets.load_digits`` reads a file inside
the scikit-learn package.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["SPLITS", "SPLIT_SEED", "digits"]

SPLITS = ("train", "val", "test")
#: seed of the stratified split; changing it changes every checkpoint's meaning
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    y = load_digits().target
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=SPLIT_SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=SPLIT_SEED)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    return X, d.target.astype(np.int64)


def digits(split: str = "train"):
    """Images and labels of one split.

    Parameters
    ----------
    split : str
        ``"train"`` (1078 samples), ``"val"`` (359) or ``"test"`` (360).

    Returns
    -------
    X : torch.Tensor
        float32 ``(N, 1, 8, 8)``, values in [0, 1].
    y : torch.Tensor
        int64 ``(N,)``, class labels 0..9.

    Examples
    --------
    >>> X, y = digits("val")
    >>> tuple(X.shape), X.dtype, y.dtype
    ((359, 1, 8, 8), torch.float32, torch.int64)
    """
    import torch

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are: {', '.join(SPLITS)}")
    X, y = _arrays()
    idx = _split_indices()[split]
    return torch.from_numpy(X[idx].copy()), torch.from_numpy(y[idx].copy())
