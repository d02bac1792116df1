"""The benchmark suite: sweep config, results database, Dask sweeps (kill and resume, external
scheduler), reports and the auto solver."""
import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from permsolve import TileProblem, solve
from permsolve.bench.config import SweepConfig, load_config
from permsolve.bench.db import ResultsDB
from permsolve.bench.runner import run_cell
from permsolve.cli import main
from permsolve.registry import solvers

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def _count(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*), COUNT(DISTINCT cell) FROM runs").fetchone()
    finally:
        con.close()


# ------------------------------------------------------------------ config
def test_cells_product_and_seed_collapse():
    cfg = SweepConfig(suite="smoke", solvers=["greedy", "hungarian"], budgets=[0.5, 1], seeds=[0, 1, 2])
    cells = cfg.cells()
    # neither solver uses its seed: one seed each
    assert len(cells) == 3 * 2 * 2
    assert len({c.key for c in cells}) == len(cells)
    if "anneal" in solvers() and solvers()["anneal"].randomized:
        cfg = SweepConfig(suite="smoke", solvers=["anneal"], budgets=[0.5], seeds=[0, 1, 2])
        assert len(cfg.cells()) == 3 * 3


def test_default_solvers_are_the_registry_but_auto():
    names = SweepConfig(suite="smoke").resolved_solvers()
    assert set(names) == set(solvers()) - {"auto"}


def test_config_errors():
    with pytest.raises(ValueError, match="unknown solver 'nope'"):
        SweepConfig(suite="smoke", solvers=["nope"]).cells()
    with pytest.raises(ValueError, match="unknown suite"):
        SweepConfig(suite="huge")
    with pytest.raises(ValueError, match="positive"):
        SweepConfig(suite="smoke", budgets=[0])
    with pytest.raises(ValueError, match="has no option"):
        SweepConfig(suite="smoke", solvers=["greedy"], options={"greedy": {"bogus": 1}}).cells()


def test_config_files(tmp_path):
    t = tmp_path / "s.toml"
    t.write_text('suite = "smoke"\nsolvers = ["greedy", "hungarian"]\nbudgets = [0.25]\n'
                 '[options.hungarian]\nmax_rounds = 3\n')
    cfg = load_config(t, db=str(tmp_path / "x.sqlite"))
    assert cfg.budgets == [0.25] and cfg.db.endswith("x.sqlite")
    keys = [c.key for c in cfg.cells() if c.solver == "hungarian"]
    assert keys and all('"max_rounds": 3' in k for k in keys)
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"instances": ["gauss-64x64-t8x8-s50-0"], "solvers": ["greedy"], "seeds": [0]}))
    assert len(load_config(j).cells()) == 1
    bad = tmp_path / "b.toml"
    bad.write_text('suit = "smoke"\n')
    with pytest.raises(ValueError, match="unknown key 'suit'"):
        load_config(bad)


# ---------------------------------------------------------------- database
def test_db_wal_unique_and_json(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = {"cell": "k", "instance": "i", "solver": "s", "status": "ok", "value": 1.0, "trace": [[0.0, 1.0]],
           "env": {"cpu": "x"}}
    assert db.insert(row) is True
    assert db.insert({**row, "value": 2.0}) is False        # UNIQUE cell: the first row stays
    assert db.count() == 1 and db.rows()[0]["value"] == 1.0 and db.rows()[0]["env"] == {"cpu": "x"}
    with pytest.raises(ValueError, match="unknown result column"):
        db.insert({**row, "cell": "k2", "nonsense": 1})
    db.insert({"cell": "e", "instance": "i", "solver": "s", "status": "error", "error": "boom"})
    assert db.delete_errors(["e", "k"]) == 1 and db.finished_cells() == {"k"}


def test_run_cell_records_failures_instead_of_raising():
    cell = SweepConfig(instances=["gauss-64x64-t8x8-s50-0"], solvers=["greedy"], budgets=[1]).cells()[0]
    payload = {**cell.payload(), "options": {"bogus": 1}}
    row = run_cell(payload)
    assert row["status"] == "error" and "bogus" in row["error"]
    ok = run_cell(cell.payload())
    assert ok["status"] == "ok" and ok["value"] <= ok["bound"] and ok["env"]["versions"]["numpy"]
    assert ok["trace"][-1][1] == pytest.approx(ok["value"])


# ----------------------------------------------------------- sweep + report
@pytest.mark.slow
def test_sweep_resume_and_report(tmp_path, capsys):
    db, man, out = tmp_path / "r.sqlite", tmp_path / "m.json", tmp_path / "report"
    args = ["bench", "--suite", "smoke", "--solvers", "identity,greedy,hungarian", "--budgets", "0.3,1",
            "--db", str(db), "--manifest", str(man), "--workers", "2", "--no-progress"]
    assert main(args) == 0
    n_cells = 3 * 3 * 2
    assert _count(db) == (n_cells, n_cells)
    first = capsys.readouterr().out
    assert f"{n_cells} run now" in first
    assert main(args) == 0                                   # resumed: nothing left to run
    assert "0 run now" in capsys.readouterr().out and _count(db) == (n_cells, n_cells)

    manifest = json.loads(man.read_text())["instances"]
    rows = ResultsDB(db).rows()
    for name, e in manifest.items():
        assert e["best_value"] == pytest.approx(max(r["value"] for r in rows if r["instance"] == name))
        assert e["best_value"] <= e["best_bound"] * (1 + 1e-9)

    assert main(["report", "--db", str(db), "--out", str(out), "--manifest", str(man)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.csv", "ranking.csv", "anytime.png", "anytime.svg", "pareto.png", "pareto.svg",
            "auto.json"} <= names
    md = (out / "report.md").read_text()
    for inst in ("gauss-64x64-t8x8-s50-0", "planted-64x64-t8x8-s50-0", "scaled-96x64-t16x8-s50-1"):
        assert inst in md
    with open(out / "results.csv") as f:
        res = list(csv.DictReader(f))
    assert len(res) == n_cells
    planted = [r for r in res if r["instance"].startswith("planted") and r["solver"] == "hungarian"]
    # hungarian reaches the planted optimum: no gap to the bound, none to the best known
    assert planted and all(float(r["gap_bound"]) < 1e-9 and float(r["gap_best"]) < 1e-9 for r in planted)
    ident = [r for r in res if r["solver"] == "identity"]
    assert all(float(r["gap_best"]) > 0 for r in ident)
    with open(out / "ranking.csv") as f:
        rank = list(csv.DictReader(f))
    assert {r["solver"] for r in rank if r["place"] == "3"} == {"identity"}
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "anytime.png")
    assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0.01
    table = json.loads((out / "auto.json").read_text())
    assert len(table["entries"]) == 3 * 2


def test_bound_violation_stops_the_sweep(tmp_path, capsys):
    """A manifest whose bound lies below what a solver finds must stop the sweep as a bug."""
    from permsolve.problems.library import get_instance
    from permsolve.problems.manifest import Manifest

    man = Manifest(tmp_path / "m.json")
    inst = get_instance("gauss-64x64-t8x8-s50-0")
    man.ensure(inst)["best_bound"] = 1.0          # a wrong, far too low bound
    man.save()
    code = main(["bench", "--instances", inst.name, "--solvers", "greedy", "--budgets", "1", "--workers", "1",
                 "--db", str(tmp_path / "r.sqlite"), "--manifest", str(tmp_path / "m.json"), "--no-progress"])
    assert code == 3
    assert "BUG" in capsys.readouterr().err


def _sweep_cmd(db, man, extra=()):
    return [PY, "-m", "permsolve", "bench", "--suite", "smoke", "--solvers", "anneal,greedy", "--budgets", "0.4",
            "--seeds", "0,1,2,3,4,5,6,7", "--db", str(db), "--manifest", str(man), "--workers", "2",
            "--no-progress", *extra]


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tmp_path):
    """Kill a real sweep (client and workers, SIGKILL) mid-run; rerun; exactly one row per cell."""
    if "anneal" not in solvers():
        pytest.skip("needs the anneal solver (randomized, anytime) for a sweep that takes a few seconds")
    db, man = tmp_path / "r.sqlite", tmp_path / "m.json"
    n_cells = len(SweepConfig(suite="smoke", solvers=["anneal", "greedy"], budgets=[0.4],
                              seeds=list(range(8))).cells())
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(_sweep_cmd(db, man), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                err.seek(0)
                pytest.fail(f"the sweep ended (status {proc.returncode}) before it could be killed: {err.read()[-2000:]}")
            if db.exists():
                try:
                    if _count(db)[0] >= 4:
                        break
                except sqlite3.OperationalError:   # table not created yet
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("the sweep stored nothing within 90 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)          # the client and its worker processes
        proc.wait(timeout=30)
    before = {r["cell"]: (r["id"], r["value"]) for r in ResultsDB(db).rows()}
    assert 4 <= len(before) < n_cells, "the sweep must be killed mid-run"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM runs WHERE status='ok' AND (value IS NULL OR trace IS NULL)").fetchone()[0] == 0
    con.close()

    done = subprocess.run(_sweep_cmd(db, man), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{n_cells - len(before)} run now" in done.stdout
    assert _count(db) == (n_cells, n_cells)
    after = {r["cell"]: (r["id"], r["value"]) for r in ResultsDB(db).rows()}
    assert all(after[c] == v for c, v in before.items())     # finished cells were kept as they were


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_on_a_separately_started_dask_cluster(tmp_path):
    """`dask scheduler` + `dask worker` started apart; the same sweep runs through --scheduler."""
    dask = str(Path(PY).with_name("dask"))
    if not Path(dask).exists():
        pytest.skip("the dask command is not installed next to this python")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = []
    try:
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], cwd=tmp_path, env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([dask, "worker", addr, "--nworkers", "2", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"], cwd=ROOT, env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=90)
        db = tmp_path / "r.sqlite"
        out = subprocess.run([PY, "-m", "permsolve", "bench", "--suite", "smoke", "--solvers", "greedy,hungarian",
                              "--budgets", "0.5", "--db", str(db), "--manifest", str(tmp_path / "m.json"),
                              "--scheduler", addr, "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert _count(db) == (6, 6)
        rows = ResultsDB(db).rows()
        assert all(r["status"] == "ok" and r["config"]["scheduler"] == addr for r in rows)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_bench_cli_list_and_dry_run(capsys):
    assert main(["bench", "--suite", "smoke", "--list"]) == 0
    assert "planted-64x64-t8x8-s50-0" in capsys.readouterr().out
    assert main(["bench", "--suite", "smoke", "--solvers", "greedy", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("|greedy|") == 3
    assert main(["bench", "--solvers", "nope", "--dry-run"]) == 2
    assert main(["report", "--db", "/nonexistent/r.sqlite"]) == 2


# ----------------------------------------------------------------- auto
def _problem(n=64):
    S = np.random.default_rng(0).random((n, n))
    return TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.5)


def test_auto_choice_follows_the_table():
    from permsolve.bench.auto import choose

    table = {"entries": [
        {"rows": 64, "cols": 64, "budget": 1.0, "ranking": [["greedy", 0.0, 0.1], ["hungarian", 0.01, 0.1]]},
        {"rows": 64, "cols": 64, "budget": 10.0, "ranking": [["hungarian", 0.0, 2.0], ["greedy", 0.02, 0.1]]},
        {"rows": 4096, "cols": 4096, "budget": 1.0, "ranking": [["identity", 0.0, 0.1], ["greedy", 0.5, 0.1]]},
    ]}
    p = _problem(64)
    assert choose(p, 2.0, table=table)[0] == "greedy"          # largest budget that fits: 1 s
    assert choose(p, 30.0, table=table)[0] == "hungarian"      # 10 s fits
    assert choose(p, 0.1, table=table)[0] == "greedy"          # nothing fits: the smallest budget
    table["entries"][1]["ranking"] = [["greedy", 0.0, 0.1], ["hungarian", 0.02, 2.0]]   # greedy best at 10 s too
    assert choose(p, 30.0, table=table)[0] == "greedy"
    name, limit, why = choose(p, None, table=table)
    assert name == "hungarian" and limit is None               # no limit: the default, which stops on its own
    assert choose(p, 1.0, table={"entries": []})[0] == "hungarian"


def test_auto_solver_delegates(tmp_path, monkeypatch):
    p = _problem(64)
    monkeypatch.setenv("PERMSOLVE_AUTO_TABLE", str(tmp_path / "none.json"))
    r = solve(p, "auto", time_limit=5)
    assert r.solver == "auto" and r.info["auto"]["solver"] == "hungarian"
    assert r.retained == pytest.approx(solve(p, "hungarian").retained)
    table = tmp_path / "auto.json"
    table.write_text(json.dumps({"entries": [{"rows": 64, "cols": 64, "budget": 1.0,
                                              "ranking": [["greedy", 0.0, 0.1]]}]}))
    monkeypatch.setenv("PERMSOLVE_AUTO_TABLE", str(table))
    r = solve(p, "auto", time_limit=5)
    assert r.info["auto"]["solver"] == "greedy"
    assert r.retained == pytest.approx(solve(p, "greedy").retained)
    assert r.trace[-1][1] == pytest.approx(r.retained) and r.retained <= r.bound
