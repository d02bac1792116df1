"""TRP: layer selection, projection, nuclear-norm term, decomposition = truncation, budget ranks."""
import numpy as np
import pytest
import torch
from torch import nn

from permsolve.compress import trp
from permsolve.compress.flops import count, count_params
from permsolve.zoo.models import AlexNet, ResNet


def _models():
    torch.manual_seed(0)
    res = ResNet(blocks=(2, 2), widths=(8, 16))
    res.train()
    with torch.no_grad():
        res(torch.randn(32, 1, 8, 8))
    return {"resnet": res.eval(), "alexnet": AlexNet().eval()}


def test_select_layers_skips_first_1x1_and_grouped_convs():
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 8, 3),
                        nn.Conv2d(8, 8, 1), nn.Flatten(), nn.Linear(8, 4))
    assert trp.select_layers(net) == ["2"]
    assert trp.select_layers(net, include_linear=True) == ["2", "5"]
    res = _models()["resnet"]
    sel = trp.select_layers(res)
    assert "conv1" not in sel and not any("downsample" in n for n in sel)
    assert len(sel) == 8                      # 4 blocks x 2 convs


@pytest.mark.parametrize("name", ["resnet", "alexnet"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decomposed_model_computes_the_truncated_weights(name, seed):
    model = _models()[name]
    layers = trp.select_layers(model, include_linear=True)
    rng = np.random.default_rng(seed)
    mods = dict(model.named_modules())
    ranks = {n: int(rng.integers(1, min(mods[n].weight.shape[0], mods[n].weight[0].numel()) + 1)) for n in layers}
    truncated = trp.truncate(model, ranks)
    small, got = trp.decompose(truncated, ranks)
    assert got == ranks
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        a, b = truncated(x), small(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert count_params(small)[0] == trp.decomposed_params(truncated, ranks)
    # every layer with a saving really became two smaller layers
    factored = [n for n, m in small.named_modules() if isinstance(m, nn.Sequential) and n in ranks]
    assert factored
    for n in factored:
        first, second = dict(small.named_modules())[n]
        r = first.out_channels if isinstance(first, nn.Conv2d) else first.out_features
        assert r == ranks[n] and second.weight.shape[1] == ranks[n]
    assert count_params(small)[0] <= count_params(model)[0]


def test_truncation_has_the_requested_rank_and_low_ranks_shrink_flops():
    model = _models()["resnet"]
    layers = trp.select_layers(model)
    ranks = {n: 2 for n in layers}
    t = trp.truncate(model, ranks)
    for n in layers:
        W = dict(t.named_modules())[n].weight
        assert int(torch.linalg.matrix_rank(W.reshape(W.shape[0], -1).double(), rtol=1e-6)) == 2
    small, _ = trp.decompose(t, ranks)
    x = torch.zeros(1, 1, 8, 8)
    assert count(small, x).flops < count(model, x).flops
    assert count(small, x).params < count(model, x).params


def test_threshold_rank_drops_small_singular_values():
    lin = nn.Linear(6, 6, bias=False)
    U, _ = torch.linalg.qr(torch.randn(6, 6))
    V, _ = torch.linalg.qr(torch.randn(6, 6))
    s = torch.tensor([3.0, 1.0, 0.5, 0.04, 0.01, 0.0])
    with torch.no_grad():
        lin.weight.copy_((U * s) @ V.T)
    small, ranks = trp.decompose(nn.Sequential(lin), layers=["0"], threshold=0.05)
    assert ranks == {"0": 3}


@pytest.mark.parametrize("energy", [0.5, 0.8, 0.9, 0.99])
def test_energy_rank_is_the_smallest_rank_holding_the_energy(energy):
    s = torch.sort(torch.rand(40, generator=torch.Generator().manual_seed(3)), descending=True).values
    k = trp.energy_rank(s, energy)
    e = (s ** 2).cumsum(0) / (s ** 2).sum()
    assert e[k - 1] >= energy - 1e-9
    assert k == 1 or e[k - 2] < energy


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 8, 8, generator=g)
    return X, (X.flatten(1)[:, :5].sum(1) * 2).long().clamp(max=9)


def test_projection_is_applied_every_m_iterations():
    """With a zero learning rate the weights stay exactly at their last projection."""
    model = _models()["alexnet"]
    X, y = _data()
    cfg = trp.TRPConfig(epochs=1, lr=0.0, momentum=0.0, weight_decay=0.0, m=2, batch_size=32, energy=0.7)
    log = trp.train(model, X, y, cfg)
    assert log.projections == 2                                 # iterations 0 and 2 of 4
    for n, k in log.ranks.items():
        W = dict(model.named_modules())[n].weight
        S = torch.linalg.svdvals(W.reshape(W.shape[0], -1).double())
        assert int((S > 1e-6 * S[0]).sum()) == k
        assert k < min(W.shape[0], W[0].numel())


def test_nuclear_norm_term_lowers_the_nuclear_norm():
    X, y = _data()

    def nuclear(lam):
        model = _models()["alexnet"]
        cfg = trp.TRPConfig(epochs=2, lr=0.05, m=1, lam=lam, energy=1.0, batch_size=32)
        trp.train(model, X, y, cfg, seed=0)
        mods = dict(model.named_modules())
        return sum(float(torch.linalg.svdvals(mods[n].weight.detach().reshape(mods[n].weight.shape[0], -1)).sum())
                   for n in trp.select_layers(model))

    assert nuclear(0.05) < nuclear(0.0)


def test_fixed_ranks_for_a_budget():
    model = _models()["resnet"]
    layers = trp.select_layers(model)
    total = count_params(model)[0]
    for frac in (0.3, 0.5):
        ranks = trp.ranks_for_budget(model, layers, frac)
        assert set(ranks) == set(layers)
        assert trp.decomposed_params(model, ranks) <= (1 - frac) * total
    X, y = _data(64)
    ranks = trp.ranks_for_budget(model, layers, 0.5)
    log = trp.train(model, X, y, trp.TRPConfig(epochs=1, ranks=ranks, batch_size=32))
    assert log.ranks == ranks
