"""SR-init: block detection, re-initialisation, sensitivity, block removal, selection."""
import copy

import pytest
import torch
from torch import nn

from permsolve.compress import srinit
from permsolve.compress.flops import count, count_params
from permsolve.zoo.models import ResNet


def _net(blocks=(3, 3, 3), widths=(4, 8, 16), seed=0):
    torch.manual_seed(seed)
    net = ResNet(blocks=blocks, widths=widths)
    # non-trivial BatchNorm statistics, so that eval mode is not the identity
    net.train()
    with torch.no_grad():
        net(torch.randn(32, 1, 8, 8))
    return net.eval()


def test_blocks_found_and_first_of_each_stage_kept():
    blocks = srinit.residual_blocks(_net())
    assert [b.name for b in blocks] == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    assert [b.removable for b in blocks] == [i > 0 for s in range(3) for i in range(3)]
    mods = dict(_net().named_modules())
    for b in blocks:
        assert b.params == sum(p.numel() for p in mods[b.name].parameters())


@pytest.mark.parametrize("removed", [["layer1.1"], ["layer2.2", "layer3.1"],
                                     ["layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]])
def test_removal_keeps_model_runnable_and_params_match_kept_blocks(removed):
    net = _net()
    small = srinit.remove_blocks(net, removed)
    x = torch.randn(5, 1, 8, 8)
    out = small(x)
    assert out.shape == (5, 10) and torch.isfinite(out).all()
    blocks = srinit.residual_blocks(net)
    outside = count_params(net)[0] - sum(b.params for b in blocks)       # stem, head
    kept = sum(b.params for b in blocks if b.name not in removed)
    assert count_params(small)[0] == outside + kept
    assert sum(p.numel() for p in small.parameters()) == outside + kept
    # the remaining blocks are found again, the removed ones are gone
    assert {b.name for b in srinit.residual_blocks(small)} == {b.name for b in blocks} - set(removed)
    assert count(small, x).flops < count(net, x).flops
    # the original is untouched
    assert torch.equal(net(x), _net()(x))


def test_removed_block_is_exactly_the_identity():
    net = _net(blocks=(2,), widths=(4,))
    small = srinit.remove_blocks(net, ["layer1.1"])
    x = torch.randn(3, 1, 8, 8)
    h = net.relu(net.bn1(net.conv1(x)))
    expect = net.fc(torch.flatten(net.avgpool(net.layer1[0](h)), 1))
    assert torch.allclose(small(x), expect, atol=1e-6)


def test_removing_first_block_or_unknown_module_is_refused():
    net = _net()
    with pytest.raises(ValueError, match="cannot be removed"):
        srinit.remove_blocks(net, ["layer2.0"])
    with pytest.raises(ValueError, match="not a residual block"):
        srinit.remove_blocks(net, ["fc"])


def test_reinit_resets_whole_block_state_seeded_and_leaves_global_rng():
    net = _net()
    block = net.layer2[1]
    before = copy.deepcopy(block.state_dict())
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    srinit.reinit_(block, seed=7)
    assert torch.equal(torch.rand(1), expected_next)          # global RNG untouched
    after = block.state_dict()
    for key in ("conv1.weight", "conv2.weight", "bn1.running_mean", "bn1.running_var", "bn2.running_mean"):
        assert not torch.equal(before[key], after[key]), key
    assert torch.all(after["bn1.running_var"] == 1) and torch.all(after["bn1.weight"] == 1)
    other = copy.deepcopy(_net().layer2[1])
    srinit.reinit_(other, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), after.values()))
    srinit.reinit_(other, seed=8)
    assert not torch.equal(other.conv1.weight, block.conv1.weight)


def test_sensitivity_restores_model_and_reports_every_seed():
    net = _net()
    state = copy.deepcopy(net.state_dict())
    X = torch.randn(64, 1, 8, 8)
    y = net(X).argmax(1)                                     # base accuracy 1.0 by construction
    sens = srinit.block_sensitivity(net, lambda m: float((m(X).argmax(1) == y).float().mean()), seeds=(0, 1, 2))
    assert sens.base == 1.0
    assert set(sens.drops) == {b.name for b in srinit.residual_blocks(net)}
    assert all(len(v) == 3 and all(0.0 <= d <= 1.0 for d in v) for v in sens.drops.values())
    assert any(m > 0 for m in sens.mean.values())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert "mean drop" in sens.table()


def test_select_by_threshold_and_by_budget():
    net = _net()
    names = [b.name for b in srinit.residual_blocks(net)]
    drops = {n: [0.5] for n in names}
    drops.update({"layer3.2": [0.0], "layer1.1": [0.01], "layer2.1": [0.02], "layer3.1": [0.3]})
    sens = srinit.Sensitivity(1.0, drops)
    assert srinit.select_blocks(net, sens, threshold=0.02) == ["layer3.2", "layer1.1", "layer2.1"]
    total = count_params(net)[0]
    blocks = {b.name: b for b in srinit.residual_blocks(net)}
    for frac in (0.1, 0.3, 0.5):
        chosen = srinit.select_blocks(net, sens, remove_fraction=frac)
        removed = sum(blocks[n].params for n in chosen)
        assert all(blocks[n].removable for n in chosen)
        # enough removed, or every removable block is gone; and the last one was needed
        assert removed >= frac * total or len(chosen) == sum(b.removable for b in blocks.values())
        assert removed - blocks[chosen[-1]].params < frac * total
    with pytest.raises(ValueError):
        srinit.select_blocks(net, sens)


def test_layer_sensitivity_for_models_without_blocks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    X = torch.randn(64, 1, 8, 8)
    y = net(X).argmax(1)
    sens = srinit.layer_sensitivity(net, lambda m: float((m(X).argmax(1) == y).float().mean()), seeds=(0, 1))
    assert set(sens.drops) == {"1", "3"}
    scores = srinit.layer_scores(net, sens)
    assert scores == {k: pytest.approx(v) for k, v in sens.mean.items()}
