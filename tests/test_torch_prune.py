"""prune_model: tile masks, budgets, masks surviving fine-tuning, the prune CLI."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import prune as tprune  # noqa: E402

from permsolve import zoo  # noqa: E402
from permsolve.cli import main  # noqa: E402
from permsolve.masks import n_pruned  # noqa: E402
from permsolve.metrics import importance  # noqa: E402
from permsolve.problem import tile_scores  # noqa: E402
from permsolve.torch.prune import TilePruning, prunable_layers, prune_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n=32):
    return zoo.digits("val")[0][:n]


def _tile_structure_ok(W, h, w):
    """Every h x w tile of the matrix view is all zero or has no forced zero pattern."""
    M = W.detach().reshape(W.shape[0], -1).numpy()
    m, n = M.shape
    for a in range(0, m, h):
        for b in range(0, n, w):
            t = M[a:a + h, b:b + w]
            if (t == 0).any() and not (t == 0).all():
                return False
    return True


@pytest.mark.parametrize("budget", ["global", "layer"])
def test_masks_keep_tile_structure_after_optimizer_step(budget):
    model = zoo.load("alexnet")
    h, w = 8, 8
    prune_model(model, _x(), tile=(h, w), sparsity=0.6, solver="greedy", budget=budget)
    layers = prunable_layers(model)
    masks0 = {n: m.weight_mask.clone() for n, m in layers.items()}
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    X, y = zoo.digits("train")
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X[:128]), y[:128]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        model(X[:2])                     # the pre-hooks recompute weight = weight_orig * mask
    for n, m in layers.items():
        assert torch.equal(m.weight_mask, masks0[n])
        assert torch.equal(m.weight == 0, masks0[n] == 0)   # pruned tiles are still exactly zero
        assert _tile_structure_ok(m.weight, h, w)
    tprune.remove(layers["features.2"], "weight")
    assert "weight" in dict(layers["features.2"].named_parameters())


def test_layer_budget_prunes_each_layer_to_sparsity():
    model = zoo.load("resnet")
    rep = prune_model(model, _x(), tile=(16, 16), sparsity=0.5, solver="greedy", budget="layer")
    for l in rep.layers:
        assert l.tiles_pruned == n_pruned(0.5, l.tiles)
    fc = next(l for l in rep.layers if l.name == "fc")     # 10x64 with 16x16 tiles: 1x4 padded tiles
    assert fc.tiles == 4 and fc.tiles_pruned == 2


def test_global_budget_is_one_threshold_over_tile_means():
    model = zoo.load("concatnet")
    h, w = 8, 8
    rep = prune_model(model, _x(), tile=(h, w), sparsity=0.7, solver="identity", budget="global")
    assert rep.permute is None
    total = sum(l.tiles for l in rep.layers)
    assert sum(l.tiles_pruned for l in rep.layers) == n_pruned(0.7, total)
    kept, pruned = [], []
    for name, mod in prunable_layers(model).items():
        W = (mod.weight_orig * 1.0).detach().reshape(mod.weight.shape[0], -1).double().numpy()
        T = tile_scores(importance(W, "l1"), h, w) / tile_scores(np.ones_like(W), h, w)
        K = tile_scores(mod.weight_mask.reshape(W.shape).double().numpy(), h, w) > 0
        kept += list(T[K]); pruned += list(T[~K])
    assert max(pruned) <= min(kept)
    rates = {l.name: l.tiles_pruned / l.tiles for l in rep.layers}
    assert max(rates.values()) - min(rates.values()) > 0.2   # the global rule is uneven across layers


def test_report_matches_the_weights():
    model = zoo.load("mlp")
    rep = prune_model(model, _x(), tile=(16, 16), sparsity=0.5, solver="hungarian", budget="layer")
    for l in rep.layers:
        mod = dict(model.named_modules())[l.name]
        assert l.weight_sparsity == pytest.approx(float((mod.weight_mask == 0).float().mean()))
        assert l.retained == pytest.approx(float(mod.weight.detach().abs().sum()), rel=1e-5)


def test_permutation_retains_more_than_plain_tile_pruning():
    res = {}
    for solver in ("identity", "hungarian"):
        model = zoo.load("alexnet")
        res[solver] = prune_model(model, _x(), tile=(8, 8), sparsity=0.6, solver=solver,
                                  budget="layer").retained_fraction
    assert res["hungarian"] > res["identity"] + 0.02


def test_layer_sparsity_override():
    model = zoo.load("mlp")
    rep = prune_model(model, _x(), tile=(16, 16), sparsity=0.5, solver="identity", budget="global",
                      layer_sparsity={"fc1": 0.25, "fc3": 1.0})
    by = {l.name: l for l in rep.layers}
    assert by["fc1"].tiles_pruned == n_pruned(0.25, by["fc1"].tiles)
    assert by["fc3"].tiles_pruned == by["fc3"].tiles and by["fc3"].weight_sparsity == 1.0
    with pytest.raises(ValueError, match="not prunable"):
        prune_model(zoo.load("mlp"), _x(), tile=(16, 16), sparsity=0.5, layer_sparsity={"relu": 0.5})


def test_tile_pruning_combines_with_an_earlier_mask():
    lin = nn.Linear(4, 4)
    m1 = torch.ones(4, 4); m1[0, 0] = 0
    m2 = torch.ones(4, 4); m2[3, 3] = 0
    TilePruning.apply(lin, "weight", mask=m1)
    TilePruning.apply(lin, "weight", mask=m2)
    assert torch.equal(lin.weight_mask, m1 * m2)


def test_prune_cli_zoo_and_factory(tmp_path, capsys):
    out = tmp_path / "mlp.pt"
    assert main(["prune", "mlp", "--tile", "16x16", "--sparsity", "0.5", "--solver", "greedy",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validation accuracy" in text and "fc1" in text
    state = torch.load(out, weights_only=True)
    m = zoo.build("mlp")
    m.load_state_dict(state)                 # masks made permanent: the plain model's keys
    zeros = sum(int((mod.weight == 0).sum()) for mod in (m.fc1, m.fc2, m.fc3))
    assert zeros >= 0.3 * sum(mod.weight.numel() for mod in (m.fc1, m.fc2, m.fc3))
    out2 = tmp_path / "f.pt"
    assert main(["prune", "permsolve.zoo.models:MLP", "--input-shape", "4,1,8,8", "--tile", "8x8",
                 "--sparsity", "0.3", "--budget", "layer", "--out", str(out2), "--keep-masks"]) == 0
    assert "fc1.weight_mask" in torch.load(out2, weights_only=True)
    assert main(["prune", "nosuch:thing", "--input-shape", "1,4", "--tile", "8x8", "--sparsity", "0.3",
                 "--out", str(out2)]) == 2
