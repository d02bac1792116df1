"""A small model zoo trained on scikit-learn's bundled digits data.

Four models (``mlp``, ``alexnet``, ``resnet``, ``concatnet``, see
:mod:`permsolve.zoo.models`) with trained checkpoints shipped in the package,
so every experiment starts from the same weights.  Nothing is downloaded.
``python -m permsolve.zoo.train`` re-creates the checkpoints (a few minutes on
2 CPU cores, seeded).

Examples
--------
>>> from permsolve import zoo
>>> zoo.names()
['mlp', 'alexnet', 'resnet', 'concatnet']
>>> model = zoo.load("mlp")
>>> zoo.evaluate(model, "val") > 0.9
True
"""
from __future__ import annotations

import json
from pathlib import Path

from .data import SPLITS, digits

__all__ = ["names", "build", "load", "digits", "evaluate", "finetune", "info", "checkpoint_path",
           "SPLITS", "CHECKPOINTS"]

#: folder of the shipped checkpoints (``<name>.pt``) and ``info.json``
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def names() -> list[str]:
    """Names of the zoo's models, in a fixed order.

    Returns
    -------
    list of str
        The names :func:`build` and :func:`load` take.

    Examples
    --------
    >>> names()[0]
    'mlp'
    """
    from .models import FACTORIES

    return list(FACTORIES)


def build(name: str):
    """A fresh, untrained model (``torch.nn.Module``) of the zoo.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    torch.nn.Module
        The model, freshly initialised (torch's global generator).

    Raises
    ------
    ValueError
        For an unknown name.

    Examples
    --------
    >>> m = build("resnet")
    >>> sum(p.numel() for p in m.parameters()) > 200_000
    True
    """
    from .models import FACTORIES

    try:
        factory = FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(FACTORIES)}") from None
    return factory()


def checkpoint_path(name: str) -> Path:
    """Path of the shipped checkpoint of ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    Path
        ``CHECKPOINTS / "<name>.pt"`` (it may not exist before ``python -m permsolve.zoo.train``).

    Examples
    --------
    >>> checkpoint_path("mlp").name
    'mlp.pt'
    """
    build(name)  # validates the name
    return CHECKPOINTS / f"{name}.pt"


def load(name: str):
    """The trained model ``name``, in eval mode.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    torch.nn.Module
        The model with its shipped checkpoint loaded.

    Raises
    ------
    FileNotFoundError
        When the checkpoint is missing.

    Examples
    --------
    >>> m = load("alexnet")
    >>> m.training
    False
    """
    import torch

    model = build(name)
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint for {name!r} at {path}; run `python -m permsolve.zoo.train`")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def info(name: str) -> dict:
    """What the training script recorded for ``name``: ``val_acc``, ``test_acc``, ``params``, ...

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    dict
        The entry of ``CHECKPOINTS / "info.json"``.

    Examples
    --------
    >>> sorted(info("mlp"))[:3]
    ['epochs', 'lr', 'params']
    """
    build(name)
    path = CHECKPOINTS / "info.json"
    if not path.exists():
        raise FileNotFoundError(f"no {path}; run `python -m permsolve.zoo.train`")
    data = json.loads(path.read_text())
    if name not in data:
        raise FileNotFoundError(f"{path} has no entry for {name!r}; run `python -m permsolve.zoo.train`")
    return data[name]


def evaluate(model, split: str = "val", batch_size: int = 512) -> float:
    """Accuracy (a fraction) of ``model`` on a digits split, in eval mode.

    The model's train/eval mode is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier of ``(N, 1, 8, 8)`` images into 10 classes.
    split : {"train", "val", "test"}
        The digits split.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    float
        The fraction of the split classified correctly.

    Examples
    --------
    >>> 0.0 <= evaluate(build("mlp"), "val") <= 1.0
    True
    """
    import torch

    X, y = digits(split)
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(X[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def finetune(model, epochs: int = 3, lr: float = 1e-3, seed: int = 0, batch_size: int = 64,
             weight_decay: float = 0.0):
    """Train ``model`` a little on the train split (Adam, cross-entropy); returns it in eval mode.

    Pruning masks made by :func:`permsolve.prune_model` are
    ``torch.nn.utils.prune`` forward pre-hooks, so they stay in force: the
    optimizer updates ``weight_orig`` and the pruned tiles remain zero.

    Parameters
    ----------
    model : torch.nn.Module
        A zoo model (trained in place).
    epochs : int
        Passes over the train split.
    lr : float
        Adam's learning rate (cosine-annealed to 0).
    seed : int
        Seeds the batch order and torch's global generator.
    batch_size : int
        Images per step.
    weight_decay : float
        Adam's weight decay.

    Returns
    -------
    torch.nn.Module
        ``model``, in eval mode.

    Examples
    --------
    >>> m = finetune(build("mlp"), epochs=1)
    >>> m.training
    False
    """
    import torch
    import torch.nn.functional as F

    X, y = digits("train")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(y) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()
