"""`permsolve solve` and `permsolve solvers`: the fixed command-line contract."""
import json
import subprocess
import sys

import numpy as np
import pytest

from permsolve.cli import main

from .conftest import scaled_matrix


def cli(*args):
    """Run the real command in a subprocess: exit status, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "permsolve", *map(str, args)], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def npy(tmp_path):
    f = tmp_path / "w.npy"
    np.save(f, scaled_matrix(32, 24, seed=1) - 0.5)  # signed, like a weight
    return f


def test_solve_json_contract(npy):
    code, out, err = cli("solve", npy, "--tile", "4x4", "--sparsity", "0.5", "--solver", "hungarian", "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in ("solver", "retained", "total", "fraction", "bound", "optimal", "row_perm", "col_perm", "seconds"):
        assert key in d
    assert d["solver"] == "hungarian" and d["col_perm"] is None
    assert sorted(d["row_perm"]) == list(range(32))
    W = np.load(npy)
    assert d["total"] == pytest.approx(np.abs(W).sum())
    assert d["retained"] <= d["bound"] * (1 + 1e-9)
    assert d["fraction"] == pytest.approx(d["retained"] / d["total"])


def test_solve_both_axes_and_text_output(npy, capsys):
    assert main(["solve", str(npy), "--tile", "4x4", "--sparsity", "0.5", "--axis", "both", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert sorted(d["col_perm"]) == list(range(24)) and sorted(d["row_perm"]) == list(range(32))
    assert main(["solve", str(npy), "--tile", "4x4", "--sparsity", "0.5", "--mask", "row-balanced"]) == 0
    assert "retained" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["npz", "pt", "safetensors"])
def test_solve_reads_containers(tmp_path, fmt, capsys):
    W = scaled_matrix(16, 16, seed=2).astype(np.float32)
    f = tmp_path / f"m.{fmt}"
    if fmt == "npz":
        np.savez(f, layer=W, other=W[:4])
    elif fmt == "pt":
        import torch
        torch.save({"layer": torch.from_numpy(W), "other": torch.zeros(3)}, f)
    else:
        from safetensors.numpy import save_file
        save_file({"layer": W, "other": W[:4]}, str(f))
    assert main(["solve", str(f), "--key", "layer", "--tile", "4x4", "--sparsity", "0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total"] == pytest.approx(np.abs(W.astype(np.float64)).sum(), rel=1e-6)


def test_conv_weight_is_viewed_per_output_channel(tmp_path, capsys):
    import torch
    W = torch.randn(8, 3, 3, 3)
    f = tmp_path / "c.pt"
    torch.save({"conv.weight": W}, f)
    assert main(["solve", str(f), "--key", "conv.weight", "--tile", "4x9", "--sparsity", "0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["row_perm"]) == 8


def test_solvers_lists_descriptions():
    code, out, _ = cli("solvers")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"identity", "greedy", "hungarian"} <= set(names)
    assert all(len(line.split(None, 1)) == 2 for line in out.splitlines())


def _bad(tmp_path, arr=None, name="w.npy"):
    f = tmp_path / name
    if arr is not None:
        np.save(f, arr)
    return f


BAD = [
    # (array or None, extra args, expected words in the message)
    (np.array([[1.0, np.nan], [0, 1]]), [], "NaN or inf"),
    (np.array([[1.0, np.inf], [0, 1]]), [], "NaN or inf"),
    (np.array([[1.0, -1.0], [0, 1]]), ["--metric", "none"], ">= 0"),
    (np.ones(8), [], "2 or more dimensions"),
    (np.ones((4, 4)), ["--sparsity", "1.0"], "[0, 1)"),
    (np.ones((4, 4)), ["--sparsity", "-0.1"], "[0, 1)"),
    (np.ones((4, 4)), ["--tile", "8x2"], "larger than"),
    (np.ones((4, 4)), ["--tile", "4"], "HxW"),
    (np.ones((4, 4)), ["--solver", "magic"], "known solvers"),
    (np.ones((4, 4)), ["--time-limit", "0"], "time-limit"),
    (np.ones((4, 4)), ["--certify", "nan"], "--certify must be"),
]


@pytest.mark.parametrize("arr,extra,words", BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_one_line_exit_2(tmp_path, arr, extra, words):
    f = _bad(tmp_path, arr)
    args = ["solve", f, "--tile", "2x2", "--sparsity", "0.5"]
    # later flags win in argparse
    code, out, err = cli(*args, *extra)
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert words in err


def test_unknown_key_lists_existing_keys(tmp_path):
    f = tmp_path / "m.npz"
    np.savez(f, alpha=np.ones((4, 4)), beta=np.ones((4, 4)))
    code, _, err = cli("solve", f, "--key", "gamma", "--tile", "2x2", "--sparsity", "0.5")
    assert code == 2 and "alpha" in err and "beta" in err and len(err.strip().splitlines()) == 1


def test_missing_file_and_wrong_type(tmp_path):
    code, _, err = cli("solve", tmp_path / "nope.npy", "--tile", "2x2", "--sparsity", "0.5")
    assert code == 2 and "no such file" in err
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    code, _, err = cli("solve", bad, "--tile", "2x2", "--sparsity", "0.5")
    assert code == 2 and "unsupported file type" in err
    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"not numpy at all")
    code, _, err = cli("solve", corrupt, "--tile", "2x2", "--sparsity", "0.5")
    assert code == 2 and "cannot read" in err and "Traceback" not in err


def test_missing_required_flag_is_usage_error(tmp_path):
    f = _bad(tmp_path, np.ones((4, 4)))
    code, _, err = cli("solve", f, "--tile", "2x2")
    assert code == 2 and "--sparsity" in err
