"""Sensitivity allocation of per-layer sparsities, and parameter/MAC counting."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as tprune

from permsolve.compress.flops import count, count_flops, count_params
from permsolve.compress.srinit import allocate_sparsity


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 100_000), min_size=1, max_size=30),
       sparsity=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1),
       power=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_allocation_meets_global_sparsity_within_one_percent(sizes, sparsity, seed, power):
    rng = np.random.default_rng(seed)
    names = [f"l{i}" for i in range(len(sizes))]
    sz = dict(zip(names, sizes))
    scores = dict(zip(names, rng.uniform(-0.05, 1.0, len(sizes))))
    a = allocate_sparsity(sz, scores, sparsity, power=power)
    glob = sum(a[n] * sz[n] for n in names) / sum(sizes)
    assert abs(glob - sparsity) <= 0.01
    assert all(-1e-12 <= a[n] <= 0.95 + 1e-12 for n in names)
    # less sensitive layers are pruned at least as much
    order = sorted(names, key=lambda n: max(scores[n], 0.0))
    for lo, hi in zip(order, order[1:]):
        assert a[lo] >= a[hi] - 1e-9


def test_uniform_when_power_zero_and_refuses_impossible():
    a = allocate_sparsity({"a": 10, "b": 30}, {"a": 0.0, "b": 0.9}, 0.4, power=0.0)
    assert a == {"a": pytest.approx(0.4), "b": pytest.approx(0.4)}
    with pytest.raises(ValueError):
        allocate_sparsity({"a": 10}, {"a": 0.0}, 0.99)


def test_counts_by_hand_with_stride_groups_and_linear():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False),
                        nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    c = count(net, torch.zeros(7, 3, 8, 8))
    conv1 = 8 * 3 * 9 * 16
    conv2 = 8 * 2 * 9 * 16
    lin = 128 * 5
    assert c.flops == conv1 + conv2 + lin
    assert c.layer_flops == {"0": conv1, "1": conv2, "4": lin}
    assert c.params == sum(p.numel() for p in net.parameters())


def test_nonzero_counting_sees_torch_prune_masks():
    lin = nn.Linear(10, 4)
    mask = torch.ones(4, 10)
    mask[:, :5] = 0
    tprune.custom_from_mask(lin, "weight", mask)
    assert count_params(lin)[0] == 44                       # not weight_orig + weight
    assert count_params(lin, nonzero=True)[0] == 24
    assert count_flops(lin, torch.zeros(1, 10), nonzero=True)[0] == 20


@pytest.fixture
def one_thread():
    """These models are tiny: one torch thread is much faster on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name,sparsity,tile", [("mlp", 0.3, (8, 8)), ("mlp", 0.7, (16, 1)),
                                                 ("resnet", 0.5, (8, 8)), ("resnet", 0.7, (16, 1))])
def test_prune_model_sensitivity_budget_meets_global_sparsity(name, sparsity, tile, one_thread):
    from permsolve import zoo
    from permsolve.compress.srinit import sensitivity_allocation
    from permsolve.torch import prune_model

    model = zoo.load(name)
    alloc = sensitivity_allocation(model, sparsity)          # measured here, by the caller
    rep = prune_model(model, zoo.digits("val")[0][:2], tile=tile, sparsity=sparsity, solver="identity",
                      budget="sensitivity", layer_sparsity=alloc)
    assert abs(rep.weight_sparsity - sparsity) <= 0.01
    # every layer's mask prunes its allocated share of tiles (up to rounding to whole tiles)
    for l in rep.layers:
        assert abs(l.tiles_pruned / l.tiles - alloc[l.name]) <= 1.0 / l.tiles + 1e-9, l.name
    if name == "resnet":   # block sensitivities differ a lot: the allocation is far from uniform
        assert max(alloc.values()) - min(alloc.values()) > 0.3


def test_sensitivity_budget_needs_the_allocation():
    from permsolve import zoo
    from permsolve.torch import prune_model

    with pytest.raises(ValueError, match="needs layer_sparsity"):
        prune_model(zoo.load("mlp"), zoo.digits("val")[0][:2], tile=(8, 8), sparsity=0.5, solver="identity",
                    budget="sensitivity", layer_sparsity={"fc1": 0.5})


def test_prune_cli_measures_sensitivities_for_the_sensitivity_budget(tmp_path, capsys, one_thread):
    from permsolve.cli import main

    out = tmp_path / "mlp.pt"
    assert main(["prune", "mlp", "--tile", "8x8", "--sparsity", "0.5", "--solver", "identity",
                 "--budget", "sensitivity", "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert abs(d["weight_sparsity"] - 0.5) <= 0.01
    assert main(["prune", "permsolve.zoo.models:MLP", "--input-shape", "4,1,8,8", "--tile", "8x8",
                 "--sparsity", "0.3", "--budget", "sensitivity", "--out", str(out)]) == 2
    assert "needs a zoo model" in capsys.readouterr().err
