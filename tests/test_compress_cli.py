"""``permsolve compress`` / ``permsolve compare``: the JSON contract and bad input."""
import json

import pytest
import torch

from permsolve.cli import main


@pytest.fixture(autouse=True)
def _restore_threads():
    """The commands set torch's thread count (default 1); put it back for the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)

KEYS = {"params_before", "params_after", "flops_before", "flops_after", "acc_before", "acc_compressed",
        "acc_finetuned"}


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("method,extra", [("trp", ["--trp-epochs", "2"]), ("tile", ["--solver", "greedy"])])
def test_compress_json_contract(capsys, method, extra):
    rc, out, _ = _run(capsys, ["compress", "--method", method, "--model", "mlp", "--quick", "--json",
                               "--epochs", "1", *extra])
    assert rc == 0
    d = json.loads(out)
    assert KEYS <= set(d)
    assert d["params_after"] < d["params_before"] and d["flops_after"] < d["flops_before"]
    for k in ("acc_before", "acc_compressed", "acc_finetuned"):
        assert 0.0 <= d[k] <= 1.0
    assert d["acc_before"] > 0.9


@pytest.mark.slow
def test_compress_srinit_resnet_text(capsys):
    rc, out, _ = _run(capsys, ["compress", "--method", "srinit", "--model", "resnet", "--seeds", "1",
                               "--epochs", "1", "--remove-fraction", "0.3"])
    assert rc == 0
    assert "removed" in out and "layer3" in out and "sensitivity" in out


@pytest.mark.parametrize("argv,msg", [
    (["compress", "--method", "srinit", "--model", "mlp", "--quick"], "no residual blocks"),
    (["compress", "--method", "trp", "--model", "nosuch"], "unknown zoo model"),
    (["compress", "--method", "tile", "--model", "mlp", "--solver", "nosuch"], "nosuch"),
    (["compress", "--method", "tile", "--model", "mlp", "--remove-fraction", "1.5"], "remove-fraction"),
    (["compare", "--budgets", "0"], "budgets"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, msg):
    rc, out, err = _run(capsys, argv)
    assert rc == 2
    assert msg in err and len(err.strip().splitlines()) == 1


def test_compare_writes_table_and_plot(tmp_path, capsys):
    rc, out, _ = _run(capsys, ["compare", "--models", "mlp", "--budgets", "0.5", "--quick", "--out", str(tmp_path),
                               "--methods", "tile-identity", "trp", "svd"])
    assert rc == 0
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"tile-identity", "trp", "svd"}
    assert all(abs(r["params_kept"] - 0.5) < 0.05 for r in rows)
    assert (tmp_path / "table.md").read_text().count("| tile-identity |") == 1
    assert (tmp_path / "table.csv").exists() and (tmp_path / "accuracy_vs_params.png").stat().st_size > 1000
