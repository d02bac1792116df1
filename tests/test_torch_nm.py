"""N:M masks on PyTorch models: permute_model / prune_model with mask="2:4" (and 4:8), the prune CLI."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from permsolve import zoo  # noqa: E402
from permsolve.cli import main  # noqa: E402
from permsolve.masks import get_mask  # noqa: E402
from permsolve.torch.permute import group_problem, nm_weight_matrix, permute_model  # noqa: E402
from permsolve.torch.graph import channel_graph  # noqa: E402
from permsolve.torch.prune import nm_masks, prunable_layers, prune_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n=32):
    return zoo.digits("val")[0][:n]


def _channel_last(W: torch.Tensor) -> np.ndarray:
    """(C_out, kh, kw, C_in) order of a weight, flattened per output: the order N:M groups run in."""
    W = W.detach()
    if W.dim() > 2:
        W = W.permute(0, *range(2, W.dim()), 1)
    return W.reshape(W.shape[0], -1).numpy()


def _check_nm(model, rep, n, m):
    """Every pruned layer: exactly n of every m consecutive input weights nonzero per output; the rest dense."""
    layers = prunable_layers(model)
    expected_skips = {name for name, mod in layers.items() if mod.weight.shape[1] % m}
    assert set(rep.skipped) == expected_skips
    for name, mod in layers.items():
        if name in expected_skips:
            assert not hasattr(mod, "weight_mask")          # left dense, and said so
            assert (mod.weight != 0).all()
            continue
        nonzero = (_channel_last(mod.weight) != 0).reshape(mod.weight.shape[0], -1, m).sum(axis=2)
        assert (nonzero == n).all(), name
        kept = _channel_last(mod.weight_mask).reshape(mod.weight.shape[0], -1, m).sum(axis=2)
        assert (kept == n).all(), name
    assert {l.name for l in rep.layers} == set(layers) - expected_skips
    for l in rep.layers:
        assert l.weight_sparsity == pytest.approx(1 - n / m)


@pytest.mark.parametrize("spec", ["2:4", "4:8"])
@pytest.mark.parametrize("name", zoo.names())
def test_prune_nm_on_every_zoo_model(name, spec):
    mask = get_mask(spec)
    x = _x()
    # the permutation alone computes what the original did (permute_model's own check raises otherwise)
    model = zoo.load(name)
    with torch.no_grad():
        ref = model(x)
    prep = permute_model(model, x, mask=spec, solver="hungarian")
    with torch.no_grad():
        out = model(x)
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert prep.groups and all(g.skipped is None for g in prep.groups)
    assert any(g.permuted for g in prep.groups)
    for g in prep.groups:
        assert g.retained_before - 1e-9 <= g.retained_after <= g.bound * (1 + 1e-9)
    # pruning: the structure, and the permutation keeps at least what plain N:M pruning keeps
    plain = prune_model(zoo.load(name), x, mask=spec, solver="identity")
    model = zoo.load(name)
    rep = prune_model(model, x, mask=spec, solver="hungarian")
    assert rep.permute is not None and plain.permute is None
    for r in (plain, rep):
        assert r.mask == spec and r.tile == (1, 1) and r.sparsity == pytest.approx(1 - mask.n / mask.m)
    _check_nm(model, rep, mask.n, mask.m)
    assert rep.retained_fraction >= plain.retained_fraction - 1e-12


@pytest.mark.parametrize("name", zoo.names())
def test_prune_nm_anneal_on_every_zoo_model(name):
    """nm-anneal runs on every zoo model (alexnet's features.7 feeds a Linear in flattened blocks of 4
    columns, whole 2:4 groups, which used to stop it) and keeps at least what hungarian's N:M step keeps."""
    x = _x()
    ref = prune_model(zoo.load(name), x, mask="2:4", solver="hungarian")
    model = zoo.load(name)
    rep = prune_model(model, x, mask="2:4", solver="nm-anneal", rounds=2, moves_per_col=200)
    assert rep.permute is not None and all(g.skipped is None for g in rep.permute.groups)
    _check_nm(model, rep, 2, 4)
    assert rep.retained_fraction >= ref.retained_fraction - 1e-9


def test_nm_group_problem_is_the_consumers_columns_in_strided_units():
    model = zoo.load("alexnet")
    g = next(gr for gr in channel_graph(model, _x(4)).free_groups() if gr.name == "features.2")
    for scope in ("layer", "group"):     # producers' rows cannot change an N:M value: consumers decide
        p = group_problem(model, g, mask="2:4", scope=scope)
        (mem,) = p.members
        assert p.axis == "cols" and mem.cols == "col" and mem.rows is None
        assert (mem.col_unit, mem.col_layout, mem.shape) == (9, "strided", (96, 9 * 64))
        assert np.allclose(mem.importance, np.abs(nm_weight_matrix(model.features[5])))
    # the problem's value is what N:M pruning of the consumer keeps, for any channel order
    perm = np.random.default_rng(0).permutation(64)
    keep, _ = nm_masks(model, mask="2:4")
    W = np.abs(model.features[5].weight.detach().numpy())
    assert p.evaluate() == pytest.approx(W[keep["features.5"]].sum())
    moved = copy.deepcopy(model)
    from permsolve.torch.permute import apply_permutation
    apply_permutation(moved, g, perm)
    keep2, _ = nm_masks(moved, mask="2:4")
    W2 = np.abs(moved.features[5].weight.detach().numpy())
    assert p.evaluate({"col": perm}) == pytest.approx(W2[keep2["features.5"]].sum())


class _Split(nn.Module):
    """A concatenation of 6 + 10 channels read by one conv: 2:4 groups straddle the two pieces."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 6, 3, padding=1)
        self.b = nn.Conv2d(1, 10, 3, padding=1)
        self.c = nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        y = torch.relu(self.c(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)))
        return self.fc(y.flatten(1))


def test_group_that_splits_nm_groups_is_skipped_with_its_reason():
    torch.manual_seed(0)
    model = _Split().eval()
    rep = permute_model(model, _x(8), mask="2:4", solver="hungarian")
    by = {g.name: g for g in rep.groups}
    assert "split 2:4 groups" in by["a"].skipped and "split 2:4 groups" in by["b"].skipped
    assert by["c"].skipped is None      # c's 8 channels feed the Linear in 64-feature units
    prep = prune_model(_Split().eval(), _x(8), mask="2:4", solver="identity")
    assert set(prep.skipped) == {"a", "b"}          # one input channel: not a multiple of 4


def test_nm_masks_survive_an_optimizer_step():
    model = zoo.load("resnet")
    rep = prune_model(model, _x(), mask="2:4", solver="greedy")
    layers = {n: m for n, m in prunable_layers(model).items() if n not in rep.skipped}
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
        model(X[:2])
    _check_nm(model, rep, 2, 4)
    for n, m in layers.items():
        assert torch.equal(m.weight_mask, masks0[n])


def test_nm_bad_arguments():
    m = zoo.build("mlp")
    with pytest.raises(ValueError, match="tile does not apply"):
        prune_model(m, _x(4), mask="2:4", tile=(16, 16))
    with pytest.raises(ValueError, match="implies sparsity"):
        prune_model(m, _x(4), mask="2:4", sparsity=0.75)
    with pytest.raises(ValueError, match="budget 'global' does not apply"):
        prune_model(m, _x(4), mask="2:4", budget="global")
    with pytest.raises(ValueError, match="layer_sparsity does not apply"):
        prune_model(m, _x(4), mask="2:4", layer_sparsity={"fc1": 0.5})
    with pytest.raises(ValueError, match="needs tile= and sparsity="):
        permute_model(m, _x(4), mask="global", sparsity=0.5)
    with pytest.raises(ValueError, match="unknown mask"):
        prune_model(m, _x(4), mask="2:")
    assert not any(hasattr(l, "weight_mask") for l in prunable_layers(m).values())   # nothing happened


def test_prune_cli_nm(tmp_path, capsys):
    out = tmp_path / "p.pt"
    assert main(["prune", "alexnet", "--mask", "2:4", "--solver", "hungarian", "--out", str(out), "--json"]) == 0
    import json
    d = json.loads(capsys.readouterr().out)
    assert d["mask"] == "2:4" and d["tile"] == [1, 1] and set(d["skipped"]) == {"features.0"}
    state = torch.load(out, weights_only=True)
    W = state["features.5.weight"]
    assert ((_channel_last(W) != 0).reshape(W.shape[0], -1, 4).sum(axis=2) == 2).all()
    for argv, msg in ((["--tile", "8x8"], "--tile does not apply"), (["--budget", "global"], "--budget does not")):
        assert main(["prune", "mlp", "--mask", "2:4", *argv, "--out", str(out)]) == 2
        assert msg in capsys.readouterr().err
    assert main(["prune", "mlp", "--tile", "8x8", "--out", str(out)]) == 2
    assert "--sparsity is required" in capsys.readouterr().err


@pytest.mark.parametrize("scope", ["group", "joint"])
def test_nm_scopes_keep_the_function_and_never_lower_the_objective(scope):
    model = zoo.load("concatnet")
    x = _x()
    with torch.no_grad():
        ref = model(x)
    layer = permute_model(zoo.load("concatnet"), x, mask="2:4", solver="hungarian")
    rep = permute_model(model, x, mask="2:4", solver="hungarian", scope=scope)
    with torch.no_grad():
        assert float((model(x) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert rep.objective_after >= layer.objective_after * (1 - 1e-12) >= rep.objective_before * (1 - 1e-12)
