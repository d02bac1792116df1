"""The ``auto`` solver's table and choice: package data, no checkout paths, mask/tile/axis used."""
import json
from pathlib import Path

import numpy as np
import pytest

from permsolve import TileProblem, solve
from permsolve.solvers import auto

ROOT = Path(__file__).resolve().parents[1]


def entry(budget=1.0, rows=64, cols=64, tile="8x8", mask="global", axis="rows", ranking=()):
    return {"rows": rows, "cols": cols, "tile": tile, "mask": mask, "axis": axis, "budget": budget,
            "ranking": [list(r) for r in ranking]}


def problem(n=64, tile=(8, 8), mask="global", axis="rows"):
    return TileProblem.from_matrix(np.random.default_rng(0).random((n, n)), tile=tile, sparsity=0.5,
                                   mask=mask, axis=axis)


def test_default_table_is_the_shipped_copy_not_the_checkout(monkeypatch):
    monkeypatch.delenv(auto.ENV_VAR, raising=False)
    path = auto.table_path()
    assert path is not None and Path(str(path)).parent.name == "data"
    assert "results" not in Path(str(path)).parts
    assert auto.load_table()["entries"], "the shipped table is empty"


def test_shipped_table_is_the_committed_standard_suite_table():
    shipped = json.loads((ROOT / "permsolve" / "data" / "auto.json").read_text())
    committed = json.loads((ROOT / "results" / "bench" / "auto.json").read_text())
    assert shipped["entries"] == committed["entries"], \
        "copy results/bench/auto.json (written by `permsolve report`) to permsolve/data/auto.json"


def test_environment_variable_and_option_override_the_shipped_table(tmp_path, monkeypatch):
    t = {"entries": [entry(ranking=[("identity", 0.0, 0.1), ("greedy", 0.1, 0.1)])]}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(t))
    monkeypatch.setenv(auto.ENV_VAR, str(f))
    assert auto.choose(problem(), 2.0)[0] == "identity"
    monkeypatch.delenv(auto.ENV_VAR)
    assert auto.choose(problem(), 2.0, table=str(f))[0] == "identity"
    r = solve(problem(), "auto", time_limit=2.0, table=t)
    assert r.info["auto"]["solver"] == "identity"


def test_mask_and_axis_select_the_entries():
    t = {"entries": [
        entry(mask="global", ranking=[("greedy", 0.0, 0.1), ("hungarian", 0.1, 0.1)]),
        entry(mask="row-balanced", ranking=[("hungarian", 0.0, 0.1), ("greedy", 0.1, 0.1)]),
        entry(axis="cols", ranking=[("identity", 0.0, 0.1), ("greedy", 0.1, 0.1)]),
    ]}
    assert auto.choose(problem(), 2.0, table=t)[0] == "greedy"
    name, _, why = auto.choose(problem(mask="row-balanced"), 2.0, table=t)
    assert name == "hungarian" and "mask row-balanced" in why
    assert auto.choose(problem(axis="cols"), 2.0, table=t)[0] == "identity"
    # no benchmarked instance of this axis: the nearest of the others, and the reason says so
    name, _, why = auto.choose(problem(axis="both"), 2.0, table=t)
    assert name in ("greedy", "hungarian") and "no benchmarked instance with axis both" in why


def test_tile_shape_counts_in_the_distance():
    t = {"entries": [
        entry(rows=512, cols=512, tile="32x32", ranking=[("greedy", 0.0, 0.1), ("hungarian", 0.1, 0.1)]),
        entry(rows=512, cols=512, tile="128x1", ranking=[("hungarian", 0.0, 0.1), ("greedy", 0.1, 0.1)]),
    ]}
    assert auto.choose(problem(512, tile=(32, 32)), 2.0, table=t)[0] == "greedy"
    assert auto.choose(problem(512, tile=(128, 1)), 2.0, table=t)[0] == "hungarian"
    assert auto.choose(problem(512, tile=(64, 1)), 2.0, table=t)[0] == "hungarian"


def test_older_table_without_mask_and_axis_still_works():
    t = {"entries": [{"rows": 64, "cols": 64, "budget": 1.0, "ranking": [["greedy", 0.0, 0.1]]}]}
    assert auto.choose(problem(mask="row-balanced"), 2.0, table=t)[0] == "greedy"


def test_report_writes_mask_axis_and_sparsity_into_the_table():
    from permsolve.bench.report import auto_table

    t = auto_table([{"instance": "i", "family": "f", "rows": 4, "cols": 4, "tile": "2x2", "sparsity": 0.5,
                     "mask": "row-balanced", "axis": "cols", "budget": 1.0, "solver": "x", "gap_best": 0.0,
                     "seconds": 0.1}])
    e = t["entries"][0]
    assert (e["mask"], e["axis"], e["sparsity"]) == ("row-balanced", "cols", 0.5)


def test_auto_sends_a_mask_family_without_results_to_its_specialist():
    """The shipped table has no N:M entries; hungarian would keep the identity's value there,
    so auto picks the anytime solver declared for the family (``masks = (NMMask,)``)."""
    import numpy as np

    import permsolve
    from permsolve.solvers.auto import choose

    S = np.random.RandomState(1).rand(32, 16)
    p = permsolve.TileProblem.from_matrix(S, mask="2:4")
    name, _, why = choose(p, 1.0)
    assert name == "nm-anneal" and "N:M" in why
    r = permsolve.solve(p, "auto", seed=0)
    assert r.retained > p.evaluate()
