"""Shared training helpers of the compression pipelines (data batches, SGD with cosine, evaluation)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["batches", "accuracy", "sgd_cosine", "finetune", "ZeroMask"]


def batches(X: torch.Tensor, y: torch.Tensor, batch_size: int, rng: np.random.Generator):
    """Shuffled mini-batches of ``(X, y)`` (one epoch)."""
    order = torch.from_numpy(rng.permutation(len(X)))
    for i in range(0, len(X), batch_size):
        idx = order[i:i + batch_size]
        yield X[idx], y[idx]


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(X, y)`` in eval mode, as a fraction."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(X), batch_size):
        correct += int((model(X[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was)
    return correct / max(len(X), 1)


def sgd_cosine(params, lr: float, momentum: float, weight_decay: float, steps: int):
    """SGD with momentum and a cosine learning-rate schedule over ``steps`` steps."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    return opt, sched


class ZeroMask:
    """Keeps the exactly-zero entries of Conv/Linear weights at zero while training.

    Records which weight entries are zero when created (e.g. pruned tiles) and
    re-zeroes them after every optimiser step, so fine-tuning cannot regrow a
    pruned tile.  Layers masked by ``torch.nn.utils.prune`` hooks or a
    parametrization are left to their own mechanism.
    """

    def __init__(self, model: nn.Module):
        self.masks = []
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                if hasattr(mod, "weight_orig") or hasattr(mod, "parametrizations"):
                    continue                      # mask already enforced by a hook / parametrization
                w = mod.weight
                if isinstance(w, torch.Tensor) and bool((w == 0).any()):
                    self.masks.append((mod, (w != 0).detach().clone()))

    @torch.no_grad()
    def apply(self) -> None:
        for mod, keep in self.masks:
            mod.weight.mul_(keep)


def finetune(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, epochs: int = 10,
             lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
             batch_size: int = 64, seed: int = 0, keep_zeros: bool = True,
             after_step: Callable[[int], None] | None = None) -> nn.Module:
    """Fine-tune ``model`` in place with SGD (momentum) and a cosine schedule; returns it in eval mode.

    The default hyper-parameters are SR-init's fine-tuning recipe (SGD, lr
    0.01, momentum 0.9, cosine schedule).  With ``keep_zeros`` exactly-zero
    Conv/Linear weight entries stay zero (see :class:`ZeroMask`).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(64, 4, generator=g); y = (X[:, 0] > 0).long()
    >>> m = nn.Linear(4, 2)
    >>> _ = finetune(m, X, y, epochs=30, lr=0.1)
    >>> accuracy(m, X, y) > 0.9
    True
    """
    if epochs <= 0:
        return model.eval()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    steps = epochs * ((len(X) + batch_size - 1) // batch_size)
    opt, sched = sgd_cosine([p for p in model.parameters() if p.requires_grad], lr, momentum,
                            weight_decay, steps)
    mask = ZeroMask(model) if keep_zeros else None
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step = 0
    for _ in range(epochs):
        for xb, yb in batches(X, y, batch_size, rng):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
            sched.step()
            if mask is not None:
                mask.apply()
            if after_step is not None:
                after_step(step)
            step += 1
    return model.eval()
