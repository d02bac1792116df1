"""TRP, Trained Rank Pruning (Xu et al.; code yuhuixu1993/Trained-Rank-Pruning).

During training, every ``m`` iterations each selected layer's weight (a conv
viewed as ``C_out x C_in*kh*kw``, the "channel" scheme) is replaced in place
by its truncated SVD keeping ``energy`` (90%) of the sum of squared singular
values, and on the same iterations a nuclear-norm subgradient
``lam * U_k V_k^T`` (``lam = 3e-4``) is added to the weight's gradient.  After
training every selected layer is decomposed, singular values below
``threshold`` (0.05) dropped, into two layers: a ``kh x kw`` conv to ``r``
channels followed by a ``1 x 1`` conv (``sqrt(sigma)`` folded into each
factor), or two Linear layers.

The baseline that shows what training buys, :func:`truncate` /
:func:`decompose` applied to the trained model at the same ranks, is plain
truncated SVD without any training.

Selected layers (the paper's choice): every Conv2d except the first one and
the ``1 x 1`` convs (and grouped convs); Linear layers only when asked
(``include_linear=True``; an MLP has nothing else).

Examples
--------
>>> import torch
>>> from torch import nn
>>> from permsolve.compress import trp
>>> net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
...                     nn.Flatten(), nn.Linear(8 * 64, 10))
>>> trp.select_layers(net)
['2']
>>> small, ranks = trp.decompose(trp.truncate(net, {'2': 3}), {'2': 3})
>>> x = torch.randn(2, 1, 8, 8)
>>> bool(torch.allclose(small(x), trp.truncate(net, {'2': 3})(x), atol=1e-5))
True
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._train import batches, sgd_cosine
from .flops import count_params

__all__ = ["TRPConfig", "select_layers", "energy_rank", "svd", "truncate", "decompose",
           "decomposed_params", "ranks_for_budget", "rank_from_threshold", "train", "TrainLog"]


@dataclass
class TRPConfig:
    """Hyper-parameters of TRP (paper defaults; every one settable).

    Attributes
    ----------
    energy : float
        Fraction of sum(sigma^2) kept by each periodic projection (paper: 0.9).
    m : int
        Projection / nuclear-norm period in iterations (paper: 1 to 5).
    lam : float
        Weight of the nuclear-norm subgradient ``U_k V_k^T`` (paper: 3e-4).
    threshold : float
        Singular values below it are dropped at decomposition (paper: 0.05).
    epochs, lr, momentum, weight_decay, batch_size : training schedule
        (SGD with momentum and a cosine schedule, started from the trained model).
    include_linear : bool
        Also train and decompose Linear layers.
    ranks : dict or None
        Fixed ranks per layer instead of the energy rule (used to meet a
        parameter budget; then the projection keeps exactly these ranks).

    Examples
    --------
    >>> TRPConfig(m=2).energy, TRPConfig(m=2).lam
    (0.9, 0.0003)
    """

    energy: float = 0.9
    m: int = 5
    lam: float = 3e-4
    threshold: float = 0.05
    epochs: int = 20
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 64
    include_linear: bool = False
    ranks: dict | None = None


def _modules(model: nn.Module) -> dict:
    return dict(model.named_modules())


def select_layers(model: nn.Module, *, include_linear: bool = False) -> list[str]:
    """Names of the layers TRP trains to low rank: all Conv2d but the first and the 1x1 ones.

    Grouped convs are skipped (their matrix view is block-diagonal).  Linear
    layers are added with ``include_linear``.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    include_linear : bool
        Also select the Linear layers.

    Returns
    -------
    list of str
        Module names, in module order.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(4, 2))
    >>> select_layers(net), select_layers(net, include_linear=True)
    (['1'], ['1', '4'])
    """
    out = []
    first_conv = True
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            if first_conv:
                first_conv = False
                continue
            if mod.groups != 1 or tuple(mod.kernel_size) == (1, 1):
                continue
            out.append(name)
        elif isinstance(mod, nn.Linear) and include_linear:
            out.append(name)
    return out


def energy_rank(s: torch.Tensor, energy: float) -> int:
    """Smallest ``k`` whose top-``k`` singular values hold ``energy`` of sum(sigma^2).

    Parameters
    ----------
    s : torch.Tensor
        Singular values, descending.
    energy : float
        Fraction in ``(0, 1]``.

    Returns
    -------
    int
        The rank, between 1 and ``len(s)``.

    Examples
    --------
    >>> import torch
    >>> energy_rank(torch.tensor([3.0, 1.0, 0.1]), 0.85)
    1
    >>> energy_rank(torch.tensor([3.0, 1.0, 0.1]), 0.99)
    2
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    e = torch.cumsum(s.double() ** 2, 0)
    total = float(e[-1])
    if total == 0.0:
        return 1
    k = int(torch.searchsorted(e, torch.tensor(energy * total, dtype=e.dtype) * (1 - 1e-12)).item()) + 1
    return max(1, min(k, len(s)))


def svd(weight: torch.Tensor):
    """SVD of a weight in its matrix view ``(out, in*kh*kw)``: ``U, S, Vh`` (float64).

    Parameters
    ----------
    weight : torch.Tensor
        A Linear or conv weight.

    Returns
    -------
    U, S, Vh : torch.Tensor
        The thin SVD of the matrix view, float64.

    Examples
    --------
    >>> import torch
    >>> U, S, Vh = svd(torch.ones(4, 2, 3, 3))
    >>> tuple(U.shape), tuple(Vh.shape), round(float(S[0]), 6)
    ((4, 4), (4, 18), 8.485281)
    """
    M = weight.detach().reshape(weight.shape[0], -1).double()
    return torch.linalg.svd(M, full_matrices=False)


def _low_rank(weight: torch.Tensor, k: int) -> torch.Tensor:
    U, S, Vh = svd(weight)
    k = max(1, min(k, len(S)))
    return ((U[:, :k] * S[:k]) @ Vh[:k]).reshape(weight.shape).to(weight.dtype)


def truncate(model: nn.Module, ranks: dict) -> nn.Module:
    """Copy of ``model`` whose listed layers hold their rank-``r`` truncated SVD (same shapes).

    This is the plain truncated-SVD baseline: no training, only the truncation.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    ranks : dict
        Layer name -> rank.

    Returns
    -------
    torch.nn.Module
        The truncated copy (``model`` is not modified).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> t = truncate(nn.Sequential(nn.Linear(6, 5)), {'0': 2})
    >>> int(torch.linalg.matrix_rank(t[0].weight))
    2
    """
    out = copy.deepcopy(model)
    mods = _modules(out)
    with torch.no_grad():
        for name, r in ranks.items():
            w = mods[name].weight
            w.copy_(_low_rank(w, int(r)))
    return out


def _factor_params(mod: nn.Module, r: int) -> int:
    w = mod.weight
    c_out, fan_in = w.shape[0], w[0].numel()
    return r * fan_in + c_out * r + (mod.bias.numel() if mod.bias is not None else 0)


def _dense_params(mod: nn.Module) -> int:
    return mod.weight.numel() + (mod.bias.numel() if mod.bias is not None else 0)


def _factorize(mod: nn.Module, r: int) -> nn.Module:
    """Two-layer replacement of ``mod`` computing its rank-``r`` truncation."""
    U, S, Vh = svd(mod.weight)
    r = max(1, min(r, len(S)))
    root = torch.sqrt(S[:r])
    A = (root[:, None] * Vh[:r]).to(mod.weight.dtype)          # r x fan_in
    B = (U[:, :r] * root[None, :]).to(mod.weight.dtype)        # out x r
    has_bias = mod.bias is not None
    if isinstance(mod, nn.Linear):
        first = nn.Linear(mod.in_features, r, bias=False)
        second = nn.Linear(r, mod.out_features, bias=has_bias)
        first.weight.data.copy_(A)
        second.weight.data.copy_(B)
    else:
        first = nn.Conv2d(mod.in_channels, r, mod.kernel_size, stride=mod.stride, padding=mod.padding,
                          dilation=mod.dilation, bias=False, padding_mode=mod.padding_mode)
        second = nn.Conv2d(r, mod.out_channels, 1, bias=has_bias)
        first.weight.data.copy_(A.reshape(r, *mod.weight.shape[1:]))
        second.weight.data.copy_(B.reshape(mod.out_channels, r, 1, 1))
    if has_bias:
        second.bias.data.copy_(mod.bias.detach())
    return nn.Sequential(first, second)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def rank_from_threshold(weight: torch.Tensor, threshold: float) -> int:
    """Number of singular values of ``weight`` (matrix view) at or above ``threshold`` (at least 1).

    Parameters
    ----------
    weight : torch.Tensor
        A Linear or conv weight.
    threshold : float
        Smallest singular value kept.

    Returns
    -------
    int
        The rank.

    Examples
    --------
    >>> import torch
    >>> rank_from_threshold(torch.diag(torch.tensor([1.0, 0.1, 0.01])), 0.05)
    2
    """
    return max(1, int((svd(weight)[1] >= threshold).sum()))


def decompose(model: nn.Module, ranks: dict | None = None, *, layers: list[str] | None = None,
              threshold: float = 0.05) -> tuple[nn.Module, dict]:
    """Replace layers by two smaller ones; returns ``(new_model, ranks)``.

    ``ranks`` gives the rank of each layer; without it the rank of each layer
    in ``layers`` (default :func:`select_layers`) is its number of singular
    values ``>= threshold``.  A layer whose factorisation would not have
    fewer parameters than the dense layer is kept dense but truncated to its
    rank, so the returned model always computes the truncated weights.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    ranks : dict, optional
        Layer name -> rank.
    layers : list of str, optional
        Layers to decompose when ``ranks`` is not given (default :func:`select_layers`).
    threshold : float
        Smallest singular value kept when ``ranks`` is not given.

    Returns
    -------
    new_model : torch.nn.Module
        The decomposed copy.
    ranks : dict
        The rank of every decomposed layer.

    Examples
    --------
    >>> from torch import nn
    >>> from permsolve.compress.flops import count_params
    >>> net = nn.Sequential(nn.Linear(64, 64))
    >>> small, r = decompose(net, {'0': 8})
    >>> count_params(small)[0], r
    (1088, {'0': 8})
    """
    if ranks is None:
        mods = _modules(model)
        layers = select_layers(model) if layers is None else layers
        ranks = {n: rank_from_threshold(mods[n].weight, threshold) for n in layers}
    out = copy.deepcopy(model)
    mods = _modules(out)
    for name, r in ranks.items():
        mod = mods[name]
        if _factor_params(mod, r) < _dense_params(mod):
            _set_module(out, name, _factorize(mod, r))
        else:
            with torch.no_grad():
                mod.weight.copy_(_low_rank(mod.weight, r))
    return out, dict(ranks)


def decomposed_params(model: nn.Module, ranks: dict) -> int:
    """Parameter count of ``decompose(model, ranks)`` without building it.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    ranks : dict
        Layer name -> rank.

    Returns
    -------
    int
        Parameters of the decomposed model.

    Examples
    --------
    >>> from torch import nn
    >>> decomposed_params(nn.Sequential(nn.Linear(64, 64)), {'0': 8})
    1088
    """
    total = count_params(model)[0]
    mods = _modules(model)
    for name, r in ranks.items():
        total -= max(0, _dense_params(mods[name]) - _factor_params(mods[name], r))
    return total


def ranks_for_budget(model: nn.Module, layers: list[str], remove_fraction: float) -> dict:
    """Per-layer ranks whose decomposition removes about ``remove_fraction`` of all parameters.

    One energy level is shared by all layers (each layer keeps the rank that
    holds that fraction of its sum(sigma^2)); it is found by bisection so that
    the decomposed model has at most ``(1 - remove_fraction)`` of the
    parameters when reachable, otherwise every layer goes to rank 1.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    layers : list of str
        The layers to decompose.
    remove_fraction : float
        Fraction of all parameters to remove, in ``[0, 1)``.

    Returns
    -------
    dict
        Layer name -> rank.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64))
    >>> r = ranks_for_budget(net, ['0', '1'], 0.5)
    >>> decomposed_params(net, r) <= 0.5 * sum(p.numel() for p in net.parameters())
    True
    """
    if not 0.0 <= remove_fraction < 1.0:
        raise ValueError(f"remove_fraction must be in [0, 1), got {remove_fraction}")
    mods = _modules(model)
    spectra = {n: svd(mods[n].weight)[1] for n in layers}
    total = count_params(model)[0]
    target = (1.0 - remove_fraction) * total

    def ranks_at(e):
        return {n: energy_rank(s, e) if e > 0 else 1 for n, s in spectra.items()}

    lo, hi = 0.0, 1.0
    if decomposed_params(model, ranks_at(1.0)) <= target:
        return ranks_at(1.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if decomposed_params(model, ranks_at(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return ranks_at(lo)


@dataclass
class TrainLog:
    """What :func:`train` did: the ranks after the last projection and the loss per epoch.

    Attributes
    ----------
    ranks : dict
        Layer name -> rank of the last projection.
    losses : list of float
        Mean training loss of every epoch.
    projections : int
        Number of projection iterations.

    Examples
    --------
    >>> TrainLog(ranks={"1": 3}, losses=[0.5], projections=4).projections
    4
    """

    ranks: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)
    projections: int = 0


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, config: TRPConfig | None = None, *,
          layers: list[str] | None = None, seed: int = 0) -> TrainLog:
    """Train ``model`` in place with TRP's periodic low-rank projection and nuclear-norm term.

    Every ``config.m`` iterations, before the forward pass, each layer in
    ``layers`` (default :func:`select_layers`) is replaced by its truncated
    SVD (rank from ``config.energy``, or ``config.ranks`` when given); after
    the backward pass of that iteration ``lam * U_k V_k^T`` is added to its
    gradient.  SGD with momentum and a cosine schedule.

    Parameters
    ----------
    model : torch.nn.Module
        The model (trained in place, left in eval mode).
    X, y : torch.Tensor
        Training inputs and class labels.
    config : TRPConfig, optional
        Hyper-parameters (default: the paper's).
    layers : list of str, optional
        Layers to train to low rank (default :func:`select_layers`; ``config.ranks`` wins).
    seed : int
        Seeds the batch order and torch's global generator.

    Returns
    -------
    TrainLog
        Ranks, losses and the number of projections.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(128, 16, generator=g); y = (X[:, :2].sum(1) > 0).long()
    >>> net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> log = train(net, X, y, TRPConfig(epochs=3, include_linear=True), seed=0)
    >>> sorted(log.ranks) == ['0', '2'] and log.projections > 0
    True
    """
    cfg = config or TRPConfig()
    if cfg.m < 1:
        raise ValueError(f"m must be >= 1, got {cfg.m}")
    layers = select_layers(model, include_linear=cfg.include_linear) if layers is None else list(layers)
    if cfg.ranks is not None:
        layers = list(cfg.ranks)
    mods = _modules(model)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    steps_per_epoch = (len(X) + cfg.batch_size - 1) // cfg.batch_size
    opt, sched = sgd_cosine(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay,
                            cfg.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    log = TrainLog()
    it = 0
    model.train()
    for _ in range(cfg.epochs):
        total, n = 0.0, 0
        for xb, yb in batches(X, y, cfg.batch_size, rng):
            subgrads = {}
            if it % cfg.m == 0:
                with torch.no_grad():
                    for name in layers:
                        w = mods[name].weight
                        U, S, Vh = svd(w)
                        k = cfg.ranks[name] if cfg.ranks is not None else energy_rank(S, cfg.energy)
                        k = max(1, min(int(k), len(S)))
                        w.copy_(((U[:, :k] * S[:k]) @ Vh[:k]).reshape(w.shape).to(w.dtype))
                        subgrads[name] = (U[:, :k] @ Vh[:k]).reshape(w.shape).to(w.dtype)
                        log.ranks[name] = k
                log.projections += 1
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            for name, g in subgrads.items():
                w = mods[name].weight
                if w.grad is None:
                    w.grad = cfg.lam * g
                else:
                    w.grad.add_(g, alpha=cfg.lam)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
            it += 1
        log.losses.append(total / max(n, 1))
    model.eval()
    return log
