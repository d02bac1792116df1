"""The asv benchmarks stay runnable: import them and call setup + methods directly, and run asv's
quick mode on the smoke instances from a clean clone (so CI notices a broken benchmark)."""
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import permsolve

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "asv" / "bench_solvers.py"


def _module():
    spec = importlib.util.spec_from_file_location("permsolve_asv_bench_solvers", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_asv_config_points_at_the_asv_folder_only():
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    assert conf["benchmark_dir"] == "benchmarks/asv"
    assert conf["repo"] == "."
    # the plain scripts in benchmarks/ are not asv benchmarks and must not be collected
    assert not any(p.name.startswith("bench_") for p in (ROOT / "benchmarks").glob("*.py"))


@pytest.mark.slow
def test_benchmarks_run_when_called_directly():
    mod = _module()
    assert "auto" not in mod.SOLVERS and {"identity", "greedy", "hungarian"} <= set(mod.SOLVERS)
    inst = mod.SMOKE[0]
    ran = []
    for solver in mod.SOLVERS:
        b = mod.Smoke()
        try:
            b.setup(solver, inst)
        except NotImplementedError:   # asv's "n/a": the solver does not handle this instance's mask
            assert permsolve.get_solver(solver)().supports(b.problem)
            continue
        ran.append(solver)
        b.time_solve(solver, inst)
        gap = b.track_gap(solver, inst)
        frac = b.track_retained(solver, inst)
        assert math.isfinite(gap) and 0 <= gap < 100
        assert 0 < frac <= 1
    assert {"identity", "greedy", "hungarian", "anneal"} <= set(ran)
    assert mod.Smoke.track_gap.unit == "%"
    for tile in mod.TILES:
        s = mod.Scaling()
        s.setup("greedy", 256, tile)
        s.time_solve("greedy", 256, tile)
        assert 0 <= s.track_gap_bound("greedy", 256, tile) < 100
    if not mod.FULL:      # the slow sizes are guarded, not silently run
        with pytest.raises(NotImplementedError):
            mod.Scaling().setup("hungarian", 4096, "32x32")
        with pytest.raises(NotImplementedError):
            mod.PeakMem().setup("hungarian")


@pytest.mark.slow
def test_asv_quick_run_from_a_clean_clone(tmp_path):
    asv = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if asv is None or shutil.which("git") is None:
        pytest.skip("asv or git not installed")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    # test this working tree's benchmarks, not only the last commit's
    shutil.copy(ROOT / "asv.conf.json", repo / "asv.conf.json")
    shutil.rmtree(repo / "benchmarks" / "asv", ignore_errors=True)
    shutil.copytree(BENCH.parent, repo / "benchmarks" / "asv", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PERMSOLVE_ASV_SOLVERS": "greedy,hungarian", "PERMSOLVE_ASV_INSTANCES": "planted-64x64-t8x8-s50-0"}
    (tmp_path / "home").mkdir()
    subprocess.run([asv, "machine", "--yes", "--machine", "ci"], cwd=repo, env=env, check=True,
                   capture_output=True, timeout=60)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    # --set-commit-hash makes asv keep the results of a --python=same run (the offline way to compare commits)
    out = subprocess.run([asv, "run", "--python=same", "--quick", "--show-stderr", "--machine", "ci",
                          "--set-commit-hash", head, "--bench", "Smoke.track_gap"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=180)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "failed" not in log.lower(), log[-3000:]
    results = list((repo / ".asv" / "results" / "ci").glob("*.json"))
    results = [r for r in results if r.name != "machine.json"]
    assert results, log[-2000:]
    data = json.loads(results[0].read_text())
    gap = data["results"]["bench_solvers.Smoke.track_gap"][0]
    # hungarian reaches the planted optimum; greedy does not
    assert gap[1] == pytest.approx(0.0, abs=1e-9) and gap[0] > 1.0
