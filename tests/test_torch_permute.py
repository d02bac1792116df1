"""permute_model: every solver leaves the model's function unchanged, and really permutes."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from permsolve import registry  # noqa: E402
from permsolve import zoo  # noqa: E402
from permsolve.torch import permute as permute_mod  # noqa: E402
from permsolve.torch.permute import PermutationError, permute_model  # noqa: E402

SOLVERS = list(registry.solvers())
LIMITED = 0.2   # seconds per group for anytime solvers


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _x(n=32):
    return zoo.digits("val")[0][:n]


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return model.eval()


def _run(model, solver, **kw):
    opts = dict(tile=(8, 8), sparsity=0.5, solver=solver, on_unsupported="skip", seed=1)
    if solver not in ("identity", "greedy", "hungarian"):
        opts["time_limit"] = LIMITED
    opts.update(kw)
    return permute_model(model, _x(), **opts)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", zoo.names())
def test_trained_zoo_outputs_unchanged(name, solver):
    model = zoo.load(name)
    x = _x()
    with torch.no_grad():
        ref = model(x)
    rep = _run(model, solver)      # raises PermutationError if the outputs change
    with torch.no_grad():
        out = model(x)
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    ran = [g for g in rep.groups if g.skipped is None]
    if solver in ("greedy", "hungarian", "identity"):
        assert len(ran) == len(rep.groups) > 0
    for g in ran:
        if solver != "greedy":  # greedy applies TileTrans's sort even where it keeps less
            assert g.retained_after >= g.retained_before * (1 - 1e-9)
        assert g.retained_after <= g.bound * (1 + 1e-9)
    if solver == "identity":
        assert not any(g.permuted for g in ran)
    if solver == "hungarian":
        assert any(g.permuted for g in ran)


@pytest.mark.parametrize("scope", ["layer", "group"])
@pytest.mark.parametrize("name", ["resnet", "concatnet"])
def test_random_weights_nondefault_batchnorm(name, scope):
    x = _x()
    permuted = []
    for solver in ("greedy", "hungarian"):
        torch.manual_seed(7)
        model = _randomize_bn(zoo.build(name))
        with torch.no_grad():
            ref = model(x)
        rep = _run(model, solver, scope=scope, tile=(4, 4))
        permuted += [g.permuted for g in rep.groups]
        with torch.no_grad():
            assert float((model(x) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert any(permuted)


def _perm_of(rep, bindings, n):
    """The permutation the report applied to a binding such as ``"conv1 rows"`` (identity if none)."""
    for g in rep.groups:
        if g.perm is not None and bindings in g.members:
            return torch.from_numpy(g.perm)
    return torch.arange(n)


def test_layers_really_are_permuted():
    model = zoo.load("resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = permute_model(model, _x(), tile=(8, 8), sparsity=0.5, solver="hungarian")
    after = model.state_dict()
    g = next(g for g in rep.groups if g.name == "layer3.0.conv1")
    assert g.permuted
    p = torch.from_numpy(g.perm)
    q = _perm_of(rep, "layer3.0.conv1 cols[0:+32x9]", 32)      # its input: the stage-2 stream
    W0, W1 = before["layer3.0.conv1.weight"], after["layer3.0.conv1.weight"]
    assert torch.equal(W1, W0[p][:, q]) and not torch.equal(W1, W0)
    assert torch.equal(after["layer3.0.bn1.running_mean"], before["layer3.0.bn1.running_mean"][p])
    assert torch.equal(after["layer3.0.bn1.running_var"], before["layer3.0.bn1.running_var"][p])
    r = _perm_of(rep, "layer3.0.conv2 rows", 64)                # its output: the stage-3 stream
    assert torch.equal(after["layer3.0.conv2.weight"], before["layer3.0.conv2.weight"][r][:, p])
    assert sum(g.permuted for g in rep.groups) >= 6


def test_flatten_and_concat_consumers_permuted_by_blocks():
    model = zoo.load("concatnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = permute_model(model, _x(), tile=(8, 8), sparsity=0.5, solver="hungarian")
    after = model.state_dict()
    by = {g.name: (torch.from_numpy(g.perm) if g.perm is not None else None) for g in rep.groups}
    assert sum(g.permuted for g in rep.groups) >= 3
    # conv (64 channels of 4x4) -> flatten -> fc1: each channel is a block of 16 columns
    p_conv, p_fc1 = by["conv"], by["fc1"]
    W0 = before["fc1.weight"][p_fc1].reshape(64, 64, 16)
    assert torch.equal(after["fc1.weight"], W0[:, p_conv].reshape(64, 1024))
    # concat: branch_a's 32 channels at offset 0, pw's 48 at offset 32 of bn and of conv's input
    p_a, p_pw = by["branch_a.0"], by["pw"]
    cat = torch.cat([p_a, 32 + p_pw])
    assert torch.equal(after["bn.running_mean"], before["bn.running_mean"][cat])
    assert torch.equal(after["conv.weight"], before["conv.weight"][p_conv][:, cat])


def test_wrong_permutation_is_caught_and_model_restored(monkeypatch):
    model = _randomize_bn(zoo.build("resnet"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    real = permute_mod.apply_binding

    def forgetful(mod, b, perm):       # the TileTrans bug: BatchNorm statistics left alone
        if b.role == "channels":
            return
        real(mod, b, perm)
    monkeypatch.setattr(permute_mod, "apply_binding", forgetful)
    with pytest.raises(PermutationError, match="changed the model's eval-mode outputs"):
        permute_model(model, _x(), tile=(8, 8), sparsity=0.5, solver="hungarian")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


def test_opaque_part_left_alone_rest_permuted():
    from tests.test_torch_graph import _WithOdd
    torch.manual_seed(0)
    model = _WithOdd().eval()
    a0 = model.a.weight.clone()
    rep = permute_model(model, torch.randn(16, 6), tile=(2, 2), sparsity=0.5, solver="hungarian")
    assert torch.equal(model.a.weight, a0)
    assert "odd" in rep.opaque and any("odd" in "; ".join(w) for _, w in rep.blocked)
    assert [g.name for g in rep.groups] == ["b"]


def test_bad_arguments():
    m = zoo.build("mlp")
    with pytest.raises(ValueError, match="unknown scope"):
        permute_model(m, _x(), tile=(8, 8), sparsity=0.5, scope="net")
    with pytest.raises(ValueError, match="unknown solver"):
        permute_model(m, _x(), tile=(8, 8), sparsity=0.5, solver="nope")
    with pytest.raises(ValueError, match="needs gradients"):
        permute_model(m, _x(), tile=(8, 8), sparsity=0.5, metric="taylor")


def test_lazy_export_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, permsolve; assert 'torch' not in sys.modules; "
            "f = permsolve.permute_model; assert 'torch' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_float32_rounding_is_judged_in_float64(monkeypatch):
    """Reordered sums move float32 outputs a little; the check then decides on float64 copies."""
    model = _randomize_bn(zoo.build("resnet"))
    monkeypatch.setattr(permute_mod, "RTOL", 0.0)     # any float32 rounding now fails the float32 check
    rep = permute_model(model, _x(), tile=(8, 8), sparsity=0.5, solver="hungarian")
    assert rep.check_dtype == "float64"
    assert rep.max_abs_diff <= permute_mod.RTOL64 * rep.max_abs_output
    assert "output check (in float64)" in rep.table()
    assert model.conv1.weight.dtype == torch.float32           # the model itself stays float32


def test_wrong_permutation_is_caught_in_float64_too(monkeypatch):
    model = _randomize_bn(zoo.build("resnet"))
    real = permute_mod.apply_binding

    def forgetful(mod, b, perm):
        if b.role == "channels":
            return
        real(mod, b, perm)
    monkeypatch.setattr(permute_mod, "apply_binding", forgetful)
    monkeypatch.setattr(permute_mod, "RTOL", 0.0)
    with pytest.raises(PermutationError, match="changed the model's eval-mode outputs"):
        permute_model(model, _x(), tile=(8, 8), sparsity=0.5, solver="hungarian")
