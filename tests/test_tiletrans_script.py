"""``benchmarks/tiletrans_experiment.py``: one command runs the grid, resumes from its partial file,
and a finished grid (a clean checkout's committed ``results.csv``) does not stop a rerun."""
import csv
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    # importable by name, so that the spawned worker processes can unpickle its functions
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("tiletrans_experiment")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


ARGS = ["--models", "mlp", "--tiles", "16x16", "--budgets", "global", "--solvers", "identity", "greedy",
        "--sparsities", "0.5", "0.7", "--finetune-epochs", "0", "--jobs", "1"]


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_grid_runs_resumes_and_reruns(script, tmp_path, capsys):
    out = tmp_path / "tt"
    out.mkdir()
    # a stale finished grid, as in a clean checkout: must not be taken as done
    (out / "results.csv").write_text(",".join(script.FIELDS) + "\n")
    # an interrupted run: one of the four configurations already in the partial file
    first = {"model": "mlp", "tile": "16x16", "budget": "global", "scope": "layer", "solver": "identity",
             "sparsity": "0.50"}
    script._worker_init(1)
    done = script.run_one(first, {"time_limit": 0.2, "seed": 0, "finetune_epochs": 0, "lr": 1e-3})
    with (out / "results.partial.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, script.FIELDS)
        w.writeheader()
        w.writerow(done)
    assert script.main(ARGS + ["--out", str(out)]) == 0
    assert "4 configurations, 1 already in results.partial.csv, 3 to run" in capsys.readouterr().out
    got = rows(out / "results.csv")
    assert [(r["solver"], r["sparsity"]) for r in got] == [("identity", "0.50"), ("identity", "0.70"),
                                                          ("greedy", "0.50"), ("greedy", "0.70")]
    assert got[0]["acc_oneshot"] == done["acc_oneshot"]          # the resumed row is kept as it was
    assert not (out / "results.partial.csv").exists()
    assert "configurations: 4 (3 run now)" in (out / "run.txt").read_text()
    for name in ("results.md", "summary.md", "mlp.png"):
        assert (out / name).stat().st_size > 0
    # greedy permutes: it retains more importance than plain tile pruning here
    ret = {(r["solver"], r["sparsity"]): float(r["retained_fraction"]) for r in got}
    assert ret[("greedy", "0.50")] > ret[("identity", "0.50")]
