"""The digits model zoo: split, models, shipped checkpoints, fine-tuning."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from permsolve import zoo  # noqa: E402
from permsolve.cli import main  # noqa: E402


def test_split_is_fixed_disjoint_and_stratified():
    parts = {s: zoo.digits(s) for s in zoo.SPLITS}
    assert {s: len(y) for s, (X, y) in parts.items()} == {"train": 1078, "val": 359, "test": 360}
    for X, y in parts.values():
        assert X.shape[1:] == (1, 8, 8) and X.dtype == torch.float32 and y.dtype == torch.int64
        assert 0.0 <= float(X.min()) and float(X.max()) <= 1.0
        counts = np.bincount(y.numpy(), minlength=10) / len(y)
        assert np.all(np.abs(counts - 0.1) < 0.02)   # stratified: every class about 10%
    from permsolve.zoo.data import _split_indices
    idx = _split_indices()
    all_idx = np.concatenate(list(idx.values()))
    assert len(np.unique(all_idx)) == len(all_idx) == 1797
    X2, y2 = zoo.digits("val")
    assert torch.equal(X2, parts["val"][0]) and torch.equal(y2, parts["val"][1])


def test_bad_names():
    with pytest.raises(ValueError, match="known models"):
        zoo.build("vgg")
    with pytest.raises(ValueError, match="splits are"):
        zoo.digits("dev")


@pytest.mark.parametrize("name", zoo.names())
def test_models_forward_and_checkpoints(name):
    model = zoo.build(name)
    assert model(zoo.digits("val")[0][:5]).shape == (5, 10)
    trained = zoo.load(name)
    assert not trained.training
    rec = zoo.info(name)
    assert rec["params"] == sum(p.numel() for p in trained.parameters())
    acc = zoo.evaluate(trained, "val")
    assert acc == pytest.approx(rec["val_acc"], abs=1e-9)   # the JSON describes the shipped weights
    assert acc > 0.9
    assert zoo.evaluate(model, "val") < 0.5   # untrained is near chance: load() really loads


def test_finetune_is_seeded_and_improves():
    a, b = zoo.build("mlp"), zoo.build("mlp")
    b.load_state_dict(a.state_dict())
    zoo.finetune(a, epochs=2, seed=3)
    zoo.finetune(b, epochs=2, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert zoo.evaluate(a) > 0.5


def test_resnet_layer_sizes():
    m = zoo.build("resnet")
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    shapes = {tuple(c.weight.reshape(c.weight.shape[0], -1).shape) for c in convs}
    assert (64, 576) in shapes and (16, 144) in shapes
    assert sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules()) == 1 + 9 * 2 + 2


def test_zoo_cli(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in zoo.names():
        assert name in out
    assert main(["zoo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == set(zoo.names()) and all("val_acc" in v for v in data.values())
