"""``benchmarks/tiletrans_experiment.py``: one command runs the grid on the benchmark runner, resumes
from the runner's store (``results.sqlite``), and a finished grid (a clean checkout's committed
``results.csv``, without the store) does not stop a rerun."""
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
    # an interrupted run: one of the four configurations already in the store
    first = [a for a in ARGS if a not in ("greedy", "0.7")]
    assert script.main(first + ["--out", str(out)]) == 0
    assert "1 configurations, 0 already in results.sqlite, 1 to run" in capsys.readouterr().out
    done = rows(out / "results.csv")[0]
    assert script.main(ARGS + ["--out", str(out)]) == 0
    assert "4 configurations, 1 already in results.sqlite, 3 to run" in capsys.readouterr().out
    got = rows(out / "results.csv")
    assert [(r["solver"], r["sparsity"]) for r in got] == [("identity", "0.50"), ("identity", "0.70"),
                                                          ("greedy", "0.50"), ("greedy", "0.70")]
    assert got[0] == done                                        # the resumed row is kept as it was
    assert "configurations: 4 (3 run now)" in (out / "run.txt").read_text()
    for name in ("results.md", "summary.md", "mlp.png"):
        assert (out / name).stat().st_size > 0
    # greedy permutes: it retains more importance than plain tile pruning here
    ret = {(r["solver"], r["sparsity"]): float(r["retained_fraction"]) for r in got}
    assert ret[("greedy", "0.50")] > ret[("identity", "0.50")]
    # a failing configuration is stored as an error: no results.csv, and a rerun retries it
    (out / "results.csv").unlink()
    bad = ARGS[:ARGS.index("--solvers") + 1] + ["nosuch"] + ARGS[ARGS.index("--sparsities"):]
    assert script.main(bad + ["--out", str(out)]) == 1
    err = capsys.readouterr()
    assert "failed" in err.out and "not written" in err.err and not (out / "results.csv").exists()
