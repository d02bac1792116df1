"""``problems/real.py`` reads the zoo's checkpoints as weight files, without the zoo's model code."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from permsolve.problems import real


def test_checkpoint_matrices_are_the_models_linear_and_conv_weights():
    from permsolve import zoo

    assert real.zoo_models() == zoo.names()
    for name in zoo.names():
        net = zoo.load(name)
        mods = {n: m for n, m in net.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
        layers = real.zoo_layers(name)
        assert [layer for _, layer, _ in layers] == list(mods)
        for _, layer, shape in layers:
            W = mods[layer].weight.detach().double().numpy()
            assert np.array_equal(real.zoo_weight(name, layer), W.reshape(W.shape[0], -1)), (name, layer)


def test_reading_zoo_instances_does_not_import_the_zoo():
    code = ("import sys; from permsolve.problems.library import get_instance; "
            "get_instance('zoo-mlp-fc2-t8x8-s50').problem(); "
            "print('permsolve.zoo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_checkpoint_folder_is_a_one_line_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(real.ZOO_ENV_VAR, str(tmp_path))
    with pytest.raises(real.SourceUnavailable, match="no .*info.json"):
        real.zoo_layers()
    (tmp_path / "info.json").write_text('{"mlp": {}}')
    with pytest.raises(real.SourceUnavailable, match="no checkpoint for 'mlp'"):
        real.zoo_layers()
