"""Edges from issue 11: each is a one-line error with exit status 2, or a correct answer."""
import json
import math
import os
import pickle
import sqlite3

import numpy as np
import pytest
import torch

from permsolve import TileProblem, solve
from permsolve.cli import main
from permsolve.io import load_tensor
from permsolve.registry import check_time_limit


def run_cli(capsys, *args):
    """In-process ``permsolve``: (exit status, stdout, stderr); argparse's own errors included."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def npy(tmp_path):
    def make(S, name="w.npy"):
        f = tmp_path / name
        np.save(f, S)
        return f
    return make


# ------------------------------------------------------------ magnitudes


def test_cli_huge_entries_refused_not_infinity(capsys, npy):
    f = npy(np.full((8, 8), 1e308))
    code, out, err = run_cli(capsys, "solve", f, "--tile", "2x2", "--sparsity", "0.5", "--metric", "none",
                             "--solver", "hungarian", "--json")
    one_line_error(code, err, "overflows")
    assert out == ""


@pytest.mark.parametrize("c", [1e-300, 1e300])
def test_cli_extreme_scales_solve_with_finite_json(capsys, npy, c):
    S = np.random.default_rng(0).random((8, 8))
    f = npy(S * c)
    code, out, err = run_cli(capsys, "solve", f, "--tile", "2x2", "--sparsity", "0.5", "--metric", "none",
                             "--solver", "hungarian", "--json")
    assert code == 0, err
    d = json.loads(out, parse_constant=lambda x: pytest.fail(f"{x} in the JSON"))
    assert d["retained"] == pytest.approx(20.454970 * c, rel=1e-6) and math.isfinite(d["bound"])


# ------------------------------------------------------------ time limits


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e300", "0", "-1", "soon"])
def test_cli_time_limit_refused(capsys, npy, bad):
    f = npy(np.ones((4, 4)))
    code, out, err = run_cli(capsys, "solve", f, "--tile", "2x2", "--sparsity", "0.5", "--solver", "ilp",
                             "--time-limit", bad)
    one_line_error(code, err, "--time-limit")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300, 0.0, -2.0])
@pytest.mark.parametrize("name", ["anneal", "ilp", "hungarian", "auto"])
def test_api_time_limit_refused(bad, name):
    p = TileProblem.from_matrix(np.ones((4, 4)), tile=(2, 2), sparsity=0.5)
    with pytest.raises(ValueError, match="time_limit"):
        solve(p, name, time_limit=bad)


def test_check_time_limit_accepts_ordinary_values():
    assert check_time_limit(None) is None and check_time_limit(0.5) == 0.5 and check_time_limit(1e9) == 1e9


def test_ilp_small_scale_is_as_fast_and_exact_as_scale_one():
    """ilp on an 8x9 matrix (tile 2x3, columns) scaled by 1e-8 ran > 300 s; now it is the scale-1 solve."""
    S = np.random.default_rng(0).random((8, 9))
    res = [solve(TileProblem.from_matrix(S * c, tile=(2, 3), sparsity=0.5, axis="cols"), "ilp", time_limit=120)
           for c in (1.0, 1e-8)]
    assert res[0].optimal and res[1].optimal
    assert res[1].retained == pytest.approx(1e-8 * res[0].retained, rel=1e-12)
    assert res[1].seconds < 10 * res[0].seconds + 5


# ------------------------------------------------------------ files


def test_fifo_is_refused_without_blocking(tmp_path):
    f = tmp_path / "pipe.npy"
    os.mkfifo(f)
    with pytest.raises(ValueError, match="not a regular file"):
        load_tensor(f)


@pytest.mark.parametrize("arr, word", [
    (np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]), "structured"),
    (np.ones((2, 2)) + 1j, "complex"),
    (np.array(["2020-01-01"] * 4, dtype="datetime64[D]").reshape(2, 2), "datetime64"),
    (np.array([[1, 2], [3, 4]], dtype="timedelta64[s]"), "timedelta64"),
])
def test_non_real_dtypes_refused(tmp_path, arr, word):
    f = tmp_path / "x.npy"
    np.save(f, arr)
    with pytest.raises(ValueError, match=word):
        load_tensor(f)


def test_complex_torch_tensor_refused(tmp_path):
    f = tmp_path / "c.pt"
    torch.save({"w": torch.ones(2, 2, dtype=torch.complex64)}, f)
    with pytest.raises(ValueError, match="complex"):
        load_tensor(f, "w")


def test_nested_pt_dicts_are_read_under_dotted_names(tmp_path):
    f = tmp_path / "n.pt"
    torch.save({"encoder": {"layer": {"weight": torch.arange(6.0).reshape(2, 3)}}, "step": 3}, f)
    assert load_tensor(f).shape == (2, 3)
    assert load_tensor(f, "encoder.layer.weight")[1, 2] == 5.0


def test_cli_fifo_and_dtype_errors_are_one_line(capsys, tmp_path, npy):
    os.mkfifo(tmp_path / "p.npy")
    code, _, err = run_cli(capsys, "solve", tmp_path / "p.npy", "--tile", "2x2", "--sparsity", "0.5")
    one_line_error(code, err, "regular file")
    f = npy(np.ones((4, 4)) + 2j, "c.npy")
    code, _, err = run_cli(capsys, "solve", f, "--tile", "2x2", "--sparsity", "0.5")
    one_line_error(code, err, "complex")


# ------------------------------------------------------------ conv weights


def test_cols_of_a_conv_weight_move_whole_input_channels(capsys, tmp_path):
    W = np.random.default_rng(0).standard_normal((8, 6, 3, 3))
    f = tmp_path / "conv.npy"
    np.save(f, W)
    code, out, err = run_cli(capsys, "solve", f, "--tile", "4x9", "--sparsity", "0.5", "--axis", "cols",
                             "--solver", "hungarian", "--json")
    assert code == 0, err
    d = json.loads(out)
    perm = d["col_perm"]
    assert sorted(perm) == list(range(6))                     # input channels, not 54 columns
    # applied to the model's weight, the permutation keeps what the solve reports
    Wp = np.abs(W[:, perm]).reshape(8, -1)
    p = TileProblem.from_matrix(Wp, tile=(4, 9), sparsity=0.5, axis="rows")
    assert p.evaluate() == pytest.approx(d["retained"], rel=1e-12)


# ------------------------------------------------------------ prune


def _prune(capsys, tmp_path, *extra, out=None):
    out = out or tmp_path / "p.pt"
    return run_cli(capsys, "prune", "mlp", "--tile", "8x8", "--sparsity", "0.5", "--out", out, *extra)


class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)


@pytest.mark.parametrize("kind", ["text", "truncated", "npy", "module", "folder", "other-model", "tensor",
                                  "unreadable"])
def test_prune_bad_checkpoint_is_one_line(capsys, tmp_path, kind):
    from permsolve import zoo

    ck = tmp_path / "ck.pt"
    if kind == "text":
        ck.write_text("hello\n")
    elif kind == "truncated":
        torch.save(zoo.build("mlp").state_dict(), ck)
        ck.write_bytes(ck.read_bytes()[:200])
    elif kind == "npy":
        ck = tmp_path / "ck.npy"
        np.save(ck, np.ones(3))
    elif kind == "module":
        with open(ck, "wb") as fh:
            pickle.dump(_Module(), fh)
    elif kind == "folder":
        ck.mkdir()
    elif kind == "other-model":
        torch.save(zoo.build("alexnet").state_dict(), ck)
    elif kind == "tensor":
        torch.save(torch.ones(3), ck)
    elif kind == "unreadable":
        torch.save(zoo.build("mlp").state_dict(), ck)
        ck.chmod(0)
        if os.access(ck, os.R_OK):
            pytest.skip("running as root: chmod 0 does not stop reading")
    code, out, err = _prune(capsys, tmp_path, "--checkpoint", ck)
    one_line_error(code, err, "--checkpoint")
    assert not (tmp_path / "p.pt").exists()


def test_prune_mismatched_shapes_named(capsys, tmp_path):
    from permsolve import zoo

    state = zoo.build("mlp").state_dict()
    k = next(iter(state))
    state[k] = torch.zeros(tuple(s + 1 for s in state[k].shape))
    torch.save(state, tmp_path / "ck.pt")
    code, _, err = _prune(capsys, tmp_path, "--checkpoint", tmp_path / "ck.pt")
    one_line_error(code, err, "does not fit", k)


def test_prune_out_checked_before_the_work(capsys, tmp_path):
    code, _, err = _prune(capsys, tmp_path, out=tmp_path / "missing" / "p.pt")
    one_line_error(code, err, "does not exist")
    code, _, err = _prune(capsys, tmp_path, out=tmp_path)
    one_line_error(code, err, "is a folder")


@pytest.mark.parametrize("s", ["1.0", "1.5", "-0.1", "nan"])
def test_prune_sparsity_refused(capsys, tmp_path, s):
    code, _, err = run_cli(capsys, "prune", "mlp", "--tile", "8x8", "--sparsity", s, "--out", tmp_path / "p.pt")
    one_line_error(code, err, "--sparsity")


def test_prune_oversized_tile_and_unknown_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prune", "mlp", "--tile", "100000x1", "--sparsity", "0.5", "--out", tmp_path / "p.pt")
    one_line_error(code, err, "larger than every layer")
    code, _, err = run_cli(capsys, "prune", "nosuchmodel", "--tile", "8x8", "--sparsity", "0.5",
                           "--out", tmp_path / "p.pt")
    one_line_error(code, err, "unknown model", "mlp")


# ------------------------------------------------------------ results database


@pytest.mark.parametrize("content", [b"this is not a database\n" * 10, os.urandom(4096),
                                     b"SQLite format 3\x00" + b"\xff" * 4080])
def test_foreign_db_refused_and_left_alone(capsys, tmp_path, content):
    db = tmp_path / "r.sqlite"
    db.write_bytes(content)
    code, _, err = run_cli(capsys, "report", "--db", db, "--out", tmp_path / "rep")
    one_line_error(code, err, "not a permsolve results database")
    code, _, err = run_cli(capsys, "bench", "--instances", "gauss-64x64-t8x8-s50-0", "--solvers", "identity",
                           "--budgets", "1", "--db", db, "--manifest", tmp_path / "m.json", "--no-progress")
    one_line_error(code, err, "not a permsolve results database")
    assert db.read_bytes() == content                      # nothing written into someone else's file


def test_cells_stored_by_a_concurrent_sweep_are_counted(capsys, tmp_path, monkeypatch):
    """Two sweeps on one database: the one that stores second says so, instead of '0 run now, 0 already'."""
    from permsolve.bench.db import ResultsDB

    args = ["bench", "--instances", "gauss-64x64-t8x8-s50-0", "--solvers", "identity", "--budgets", "1",
            "--workers", "1", "--db", tmp_path / "r.sqlite", "--manifest", tmp_path / "m.json", "--no-progress"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "1 run now" in out, err
    # the other sweep: it read the finished cells before the first one stored them
    monkeypatch.setattr(ResultsDB, "finished_cells", lambda self: set())
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "0 run now" in out and "1 run here but stored first by another sweep" in out
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    con.close()


def test_sweep_budgets_must_be_finite_and_sane():
    from permsolve.bench.config import SweepConfig

    for bad in ([float("nan")], [float("inf")], [1e300], [0.0]):
        with pytest.raises(ValueError, match="budgets"):
            SweepConfig(suite="smoke", solvers=["greedy"], budgets=bad)
