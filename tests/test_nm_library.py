"""N:M in the instance library, the sweep configuration, the report and the auto table."""
import csv
import json

import numpy as np
import pytest

from permsolve.bench.auto import choose
from permsolve.bench.config import SweepConfig
from permsolve.bench.db import ResultsDB
from permsolve.bench.report import write_report
from permsolve.bench.runner import run_cell
from permsolve.cli import main
from permsolve.masks import NMMask
from permsolve.problem import TileProblem
from permsolve.problems.library import Instance, SourceUnavailable, get_instance, load_suite
from permsolve.registry import solvers


# ----------------------------------------------------------------- library
def test_nm_instance_recipe_name_and_defaults():
    inst = Instance("uniform", {"m": 128, "n": 64, "seed": 1}, mask="2:4")
    assert (inst.name, inst.tile, inst.sparsity, inst.axis, inst.mask) == \
        ("uniform-128x64-2:4-1", (1, 1), 0.5, "cols", "2:4")
    assert Instance.from_dict(json.loads(json.dumps(inst.to_dict()))) == inst
    assert Instance("uniform", {"m": 8, "n": 8}, mask=NMMask(4, 8)).mask == "4:8"      # a Mask object: its spec
    assert Instance("uniform", {"m": 8, "n": 8}, mask="2:4", axis="both").name == "uniform-8x8-2:4-both-0"
    with pytest.raises(ValueError, match="1x1 tiles"):
        Instance("uniform", {"m": 8, "n": 8}, (16, 16), mask="2:4")
    with pytest.raises(ValueError, match="implies sparsity 0.5"):
        Instance("uniform", {"m": 8, "n": 8}, sparsity=0.75, mask="2:4")
    with pytest.raises(ValueError, match="unknown mask"):
        Instance("uniform", {"m": 8, "n": 8}, mask="2:x")
    # tile instances are named and defaulted as before
    old = Instance("gauss", {"m": 32, "n": 16, "seed": 3}, (8, 8), 0.5)
    assert old.name == "gauss-32x16-t8x8-s50-3" and old.axis == "rows" and old.mask == "global"


def test_apex_instance_is_apexs_matrix_and_value():
    p = get_instance("uniform-128x64-2:4-1").problem()
    np.random.seed(1)
    assert np.array_equal(p.members[0].importance, np.random.rand(128, 64))
    assert p.axis == "cols" and p.perm_sizes == {"col": 64}
    assert p.evaluate() == pytest.approx(2852.377, abs=5e-4)     # apex's "no permutation" figure


def test_zoo_conv_under_nm_is_channel_last_with_strided_units():
    try:
        inst = get_instance("zoo-alexnet-features.5-2:4")
    except ValueError:
        pytest.skip("digits model zoo not available")
    from permsolve.problems.real import zoo_weight

    p = inst.problem()
    (mem,) = p.members
    assert (mem.shape, mem.col_unit, mem.col_layout) == ((96, 576), 9, "strided")
    W = np.abs(zoo_weight("alexnet", "features.5")).reshape(96, 64, 9)       # (C_out, C_in, kh*kw)
    perm = np.random.default_rng(0).permutation(64)

    def nm_value(W3):   # 2:4 along input channels at every spatial position
        return NMMask(2, 4).retained(W3.transpose(0, 2, 1).reshape(96, -1), 0.5)

    assert p.evaluate() == pytest.approx(nm_value(W))
    assert p.evaluate({"col": perm}) == pytest.approx(nm_value(W[:, perm]))   # input channels moved whole
    assert "kh*kw*C_in" in inst.provenance


def test_suites_hold_nm_instances():
    nm = load_suite("nm").instances
    masks = {i.mask for i in nm}
    assert {"2:4", "4:8"} <= masks and all(i.tile == (1, 1) and i.axis == "cols" for i in nm)
    assert "uniform-128x64-2:4-1" in {i.name for i in nm}
    std = [i for i in load_suite("standard").instances if i.mask not in ("global", "row-balanced")]
    assert 2 <= len(std) <= 4                         # kept small: the standard suite stays minutes
    for inst in nm:                                   # every N:M zoo layer's input count fits its M
        if inst.family == "zoo":
            m = NMMask(*map(int, inst.mask.split(":")))
            assert inst.problem().perm_sizes["col"] % m.m == 0


def test_nm_zoo_layers_with_unfit_inputs_are_left_out(monkeypatch):
    from permsolve.problems import library

    real = [i for i in load_suite("real").instances if i.mask == "2:4"]
    try:
        from permsolve.problems.real import zoo_layers
        zoo_layers()
    except SourceUnavailable:
        pytest.skip("digits model zoo not available")
    assert real and all(i.family == "zoo" for i in real)
    assert "zoo-alexnet-features.0-2:4" not in {i.name for i in real}    # 1 input channel: no 2:4
    # and a source that is missing is skipped with its reason
    monkeypatch.setattr(library, "zoo_layers", lambda *a: (_ for _ in ()).throw(SourceUnavailable("no zoo")))
    s = load_suite("nm")
    assert "no zoo" in s.skipped and all(i.family != "zoo" for i in s.instances)


# ------------------------------------------------------------ sweep config
def test_plan_leaves_out_solvers_that_refuse_a_mask_with_their_reason():
    names = ["uniform-32x16-2:4-0", "gauss-64x64-t8x8-s50-0"]
    cfg = SweepConfig(instances=names, budgets=[0.5], seeds=[0])
    cells, left_out = cfg.plan()
    reg = solvers()
    for solver in cfg.resolved_solvers():
        for name in names:
            probe = get_instance(name).problem()
            why = reg[solver].unprepared().supports(probe)
            ran = any(c.solver == solver and c.instance.name == name for c in cells)
            assert ran == (why is None), (solver, name)
            if why:
                assert (solver, name, why) in left_out
    assert {"identity", "greedy", "hungarian"} <= {c.solver for c in cells if c.instance.name == names[0]}
    for solver, name, why in left_out:
        if name == names[0]:
            assert why                                   # a reason, in words


def test_bench_cli_says_which_solvers_skip_and_why(capsys):
    assert main(["bench", "--instances", "uniform-32x16-2:4-0", "--dry-run"]) == 0
    out = capsys.readouterr()
    lines = out.out.split()
    assert any(line.startswith("uniform-32x16-2:4-0|hungarian|") for line in lines)
    for solver in ("anneal", "ilp"):
        if solver in solvers() and not any(f"|{solver}|" in line for line in lines):
            assert f"note: {solver} skips 1 instance (uniform-32x16-2:4-0):" in out.err
    assert main(["bench", "--suite", "nm", "--list"]) == 0
    assert "mask 2:4 axis cols" in capsys.readouterr().out


# ------------------------------------------------------------- the report
def test_report_groups_by_mask(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    cfg = SweepConfig(instances=["uniform-32x16-2:4-0", "uniform-32x16-2:4-1", "gauss-64x64-t8x8-s50-0"],
                      solvers=["identity", "greedy", "hungarian"], budgets=[1])
    for c in cfg.cells():
        row = run_cell(c.payload())
        assert row["status"] == "ok", row.get("error")
        db.insert(row)
    db.close()
    out = tmp_path / "out"
    write_report(tmp_path / "r.sqlite", out, manifest=tmp_path / "m.json")
    md = (out / "report.md").read_text()
    assert "**mask 2:4, budget 1 s**" in md and "**mask global, budget 1 s**" in md
    assert "**mask 2:4**" in md and "mask 2:4, tile 1x1" in md
    with open(out / "ranking.csv") as f:
        rank = list(csv.DictReader(f))
    # each mask ranked on its own instances
    assert {(r["mask"], r["instances"]) for r in rank} == {("2:4", "2"), ("global", "1")}
    auto = json.loads((out / "auto.json").read_text())
    assert {e["mask"] for e in auto["entries"]} == {"2:4", "global"}


def test_auto_choice_uses_the_entries_of_the_problems_mask():
    table = {"entries": [
        {"mask": "2:4", "rows": 64, "cols": 64, "budget": 1.0, "ranking": [["greedy", 0.0, 0.1], ["identity", 0.2, 0.1]]},
        {"mask": "global", "rows": 64, "cols": 64, "budget": 1.0, "ranking": [["identity", 0.0, 0.1]]},
    ]}
    S = np.random.default_rng(0).random((64, 64))
    assert choose(TileProblem.from_matrix(S, mask="2:4"), 2.0, table=table)[0] == "greedy"
    assert choose(TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.5), 2.0, table=table)[0] == "identity"
    name, _, why = choose(TileProblem.from_matrix(S, mask="4:8"), 2.0, table=table)
    assert "no benchmarked instance with mask 4:8" in why
