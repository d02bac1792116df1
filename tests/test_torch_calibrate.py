"""Activation-aware pruning: input_norms measures what it says, and prune_model_activation's masks are
the best tile masks for |W| * a of the permuted model (the permutation found on the scaled copy is the
one the model gets, and the model still computes the same function before its masks)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from permsolve.masks import get_mask  # noqa: E402
from permsolve.problem import tile_scores  # noqa: E402
from permsolve.torch.calibrate import input_norms, prune_model_activation  # noqa: E402
from permsolve.torch.prune import prunable_layers, prune_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mlp(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 6))
    with torch.no_grad():   # very unequal input scales, so that activation importance differs from |W|
        net[0].weight.mul_(torch.linspace(0.1, 3.0, 12)[None, :])
    return net.eval()


def _x(n=96, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=g) * torch.linspace(3.0, 0.2, 12)[None, :]


def test_input_norms_linear_conv_and_padding_by_hand():
    lin = nn.Linear(3, 2)
    x = torch.tensor([[[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]], [[1.0, 2.0, 2.0], [100.0, 100.0, 100.0]]])
    mask = torch.tensor([[1, 1], [1, 0]])       # the last token of the second example is padding

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x, attention_mask=None):
            return self.lin(x)

    a = input_norms(Wrap(), [{"x": x, "attention_mask": mask}])["lin"]
    real = x[mask.bool()]
    np.testing.assert_allclose(a, torch.sqrt((real.double() ** 2).mean(0)).numpy(), rtol=1e-12)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3))
    xc = torch.randn(4, 2, 5, 5)
    ac = input_norms(conv, [xc[:2], xc[2:]])["0"]      # two batches pool into one statistic
    per_channel = torch.sqrt((xc ** 2).mean(dim=(0, 2, 3))).numpy()
    np.testing.assert_allclose(ac, np.repeat(per_channel, 9), rtol=1e-6)


def _keep_tiles(mod, h, w):
    m = mod.weight_mask.detach().numpy().reshape(mod.weight_mask.shape[0], -1)
    return m[::h, ::w] > 0


@pytest.mark.parametrize("solver", ["identity", "greedy"])
def test_masks_are_best_for_activation_importance_of_the_permuted_model(solver):
    X, tile, s = _x(), (4, 4), 0.5
    net = _mlp()
    ref = net(X).detach()
    rep = prune_model_activation(net, X, act_norms=input_norms(net, [X]), tile=tile, sparsity=s, solver=solver,
                                 budget="layer")
    if solver == "greedy":
        assert any(g.permuted for g in rep.permute.groups)
    # the dense function of the permuted model is unchanged
    dense = _mlp()
    dense.load_state_dict({k.replace("_orig", ""): v for k, v in net.state_dict().items() if not k.endswith("_mask")})
    torch.testing.assert_close(dense(X).detach(), ref, rtol=1e-5, atol=1e-5)
    # the masks are the best per-layer tile masks of |W| * a, a measured again on the permuted model
    a = input_norms(dense, [X])
    mods = prunable_layers(net)
    for name, d in prunable_layers(dense).items():
        imp = np.abs(d.weight.detach().double().numpy()) * a[name][None, :]
        best = get_mask("global").select(tile_scores(imp, *tile), s)
        np.testing.assert_array_equal(_keep_tiles(mods[name], *tile), best)


def test_activation_importance_changes_the_masks_and_keeps_them_through_training():
    X = _x()
    a_net, l_net = _mlp(), _mlp()
    prune_model_activation(a_net, X, act_norms=input_norms(a_net, [X]), tile=(4, 4), sparsity=0.5,
                           solver="identity", budget="layer")
    prune_model(l_net, X, tile=(4, 4), sparsity=0.5, solver="identity", budget="layer")
    assert not torch.equal(a_net[0].weight_mask, l_net[0].weight_mask)
    opt = torch.optim.SGD(a_net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        a_net(X).pow(2).mean().backward()
        opt.step()
    assert bool((a_net[0].weight[a_net[0].weight_mask == 0] == 0).all())


def test_bad_arguments():
    net, X = _mlp(), _x()
    a = input_norms(net, [X])
    with pytest.raises(ValueError, match="lacks prunable layers"):
        prune_model_activation(net, X, act_norms={"0": a["0"]}, tile=(4, 4), sparsity=0.5)
    with pytest.raises(ValueError, match="metric"):
        prune_model_activation(net, X, act_norms=a, tile=(4, 4), sparsity=0.5, metric="l1")
    with pytest.raises(ValueError, match="columns"):
        prune_model_activation(net, X, act_norms={**a, "0": a["0"][:3]}, tile=(4, 4), sparsity=0.5)
