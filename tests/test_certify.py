"""certify: the tightest valid bound for an answer, its source, and `permsolve solve --certify`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from permsolve import TileProblem, solve
from permsolve.certify import certify
from permsolve.cli import main

from .test_swap import brute_force


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
def test_never_below_the_brute_force_optimum(mask):
    rng = np.random.default_rng(7)
    for _ in range(4):
        S = rng.random((8, 6)) * rng.lognormal(0, 1, (8, 1))
        p = TileProblem.from_matrix(S, tile=(2, 1), sparsity=0.5, mask=mask)
        c = certify(p, solve(p, "greedy"), time_limit=2.0)
        assert c.bound >= brute_force(p) * (1 - 1e-9)
        assert c.bound <= p.bound * (1 + 1e-12)
        assert c.info["bound_source"] in ("lagrange", "spectral", "problem")


def test_proves_a_real_layer_optimal():
    """resnet.layer2.0.conv1, 16x16: the exact-pricing Lagrangian meets swap's answer (the allocation
    bound leaves 3.5 points of sum |W|), so the answer is reported optimal with a zero gap."""
    from permsolve import importance
    from permsolve.problems.real import zoo_weight

    p = TileProblem.from_matrix(importance(zoo_weight("resnet", "layer2.0.conv1"), "l1"), tile=(16, 16),
                                sparsity=0.5)
    r = solve(p, "swap", rounds=20, kicks=20, seed=0)
    assert not r.optimal and r.gap > 0.05
    c = certify(p, r, time_limit=30.0)
    assert c.info["bound_source"] == "lagrange"
    assert c.optimal and c.gap < 1e-9 and c.retained == r.retained and c.perms is r.perms


def test_a_solver_proof_that_is_tighter_is_kept():
    rng = np.random.default_rng(3)
    p = TileProblem.from_matrix(rng.random((6, 12)) * rng.lognormal(0, 1, (1, 12)), mask="2:4")
    r = solve(p, "nm-exact")
    assert r.optimal and r.bound < p.bound * (1 - 1e-6)      # the proof is tighter than the problem's bound
    c = certify(p, r, time_limit=1.0)
    assert c.optimal and c.bound == r.bound and c.info["bound_source"] == "nm-exact"


def test_a_bound_below_the_answer_is_an_error(monkeypatch):
    import permsolve.spectral as spectral

    p = TileProblem.from_matrix(np.random.default_rng(0).random((16, 16)), tile=(4, 4), sparsity=0.5)
    r = solve(p, "greedy")
    monkeypatch.setattr(spectral, "spectral_bound", lambda problem: r.retained * 0.5)
    with pytest.raises(RuntimeError, match="below the answer"):
        certify(p, r, time_limit=0.5)
    for bad in (0, -1.0, float("nan"), float("inf"), "5"):
        with pytest.raises(ValueError, match="positive number"):
            certify(p, r, time_limit=bad)


def test_cli_certify(tmp_path, capsys):
    from permsolve.problems.real import zoo_weight

    f = tmp_path / "w.npy"
    np.save(f, zoo_weight("resnet", "layer2.0.conv1"))
    args = ["solve", str(f), "--tile", "16x16", "--sparsity", "0.5", "--solver", "hungarian"]
    assert main(args + ["--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(args + ["--json", "--certify", "5"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["retained"] == pytest.approx(plain["retained"])
    assert d["retained"] <= d["bound"] < plain["bound"] - 0.03 * d["total"]
    assert d["bound_source"] == "lagrange" and d["certify_seconds"] > 0
    assert main(args + ["--certify", "1"]) == 0
    assert "[lagrange bound]" in capsys.readouterr().out


def test_certify_manifest_script_dry_run_leaves_the_manifest(tmp_path, capsys):
    import importlib
    import sys
    from pathlib import Path

    from permsolve.problems.manifest import DEFAULT_MANIFEST

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        script = importlib.import_module("certify_manifest")
    finally:
        sys.path.remove(str(root / "benchmarks"))
    before = Path(DEFAULT_MANIFEST).read_bytes()
    assert script.main(["--dry-run", "--seconds", "1", "--only", "planted-64x64", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "planted-64x64-t8x8-s50-0: gap" in out and "Median gap" in out
    assert Path(DEFAULT_MANIFEST).read_bytes() == before and not (tmp_path / "certified.md").exists()
    assert script.main(["--seconds", "0"]) == 2
    assert script.main(["--only", "no-such-instance"]) == 2
