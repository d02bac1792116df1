"""Tests of the exact ``ilp`` solver against brute-force enumeration of row partitions."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from permsolve import TileProblem, solve
from permsolve.registry import get_solver


def _ilp_module():
    # imported inside the tests, not at collection: importing the subpackage permsolve.solvers
    # rebinds the name permsolve.solvers (also a function) for modules collected after this one
    import importlib

    return importlib.import_module("permsolve.solvers.ilp")


# --------------------------------------------------------------- brute force
def block_partitions(n: int, side: int):
    """Every way to split ``range(n)`` into blocks of ``side`` items (the last one
    ``n - side*(blocks-1)`` items when ``side`` does not divide ``n``), yielded as a
    permutation listing block 0's items, then block 1's...  Blocks of equal size are
    unordered (the value of a mask does not depend on the order of tile rows), so
    each set partition is yielded once."""
    blocks = -(-n // side)
    short = n - side * (blocks - 1)

    def full(rest):
        if not rest:
            yield []
            return
        first, others = rest[0], rest[1:]
        for mates in itertools.combinations(others, side - 1):
            left = [i for i in others if i not in mates]
            for tail in full(left):
                yield [first, *mates] + tail

    if short == side:
        yield from (np.array(p) for p in full(list(range(n))))
        return
    for last in itertools.combinations(range(n), short):
        rest = [i for i in range(n) if i not in last]
        for p in full(rest):
            yield np.array(p + list(last))


def n_partitions(n: int, side: int) -> int:
    blocks = -(-n // side)
    short = n - side * (blocks - 1)
    full = blocks - (short != side)
    count = math.factorial(side * full) // (math.factorial(side) ** full * math.factorial(full))
    return count * (math.comb(n, short) if short != side else 1)


def brute_force(problem: TileProblem) -> float:
    name = "row" if problem.axis == "rows" else "col"
    mem = problem.members[0]
    n = mem.shape[0] if name == "row" else mem.shape[1]
    side = mem.tile[0] if name == "row" else mem.tile[1]
    return max(problem.evaluate({name: p}) for p in block_partitions(n, side))


def test_enumerator_counts_and_matches_all_permutations():
    # the enumerator yields every set partition once ...
    for n, side in [(6, 2), (7, 3), (8, 4), (5, 2), (9, 4)]:
        parts = list(block_partitions(n, side))
        assert len(parts) == n_partitions(n, side)
        assert all(np.array_equal(np.sort(p), np.arange(n)) for p in parts)
    # ... and its maximum is the maximum over all n! permutations
    rng = np.random.default_rng(3)
    for mask in ("global", "row-balanced"):
        S = rng.random((7, 5))
        p = TileProblem.from_matrix(S, tile=(3, 2), sparsity=0.5, mask=mask)
        every = max(p.evaluate({"row": np.array(q)}) for q in itertools.permutations(range(7)))
        assert brute_force(p) == pytest.approx(every, rel=1e-12)


# cases: (shape, tile, sparsity); the last two do not divide the matrix
CASES = [((8, 6), (2, 2), 0.5), ((8, 8), (4, 2), 0.5), ((9, 6), (2, 3), 0.4), ((10, 7), (4, 2), 0.6)]


@pytest.mark.parametrize("model, backend", [("patterns", "scip"), ("patterns", "cp-sat"), ("compact", "cp-sat")])
@pytest.mark.parametrize("axis", ["rows", "cols"])
@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("case", CASES)
def test_equals_brute_force_and_proves_it(case, mask, axis, model, backend):
    shape, tile, s = case
    rng = np.random.default_rng(hash((shape, tile)) % 2**32)
    S = rng.lognormal(0.0, 1.0, size=shape) * rng.random(shape[1])   # uneven columns
    if axis == "cols":
        S = S.T
        tile = tile[::-1]
    p = TileProblem.from_matrix(S, tile=tile, sparsity=s, mask=mask, axis=axis)
    # start from nothing, so the model (not a shortcut) has to find the optimum
    r = solve(p, "ilp", time_limit=30, model=model, backend=backend, start="none")
    best = brute_force(p)
    assert r.retained == pytest.approx(best, rel=1e-9)
    assert r.optimal
    assert r.bound == pytest.approx(best, rel=1e-8)
    assert r.info["status"] == "OPTIMAL"


def test_better_than_heuristics_when_they_miss():
    S = np.random.default_rng(0).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    h = solve(p, "hungarian")
    r = solve(p, "ilp", time_limit=30)
    assert r.optimal and r.retained > h.retained * (1 + 1e-6)
    assert r.trace[-1][1] == pytest.approx(r.retained)
    assert all(b >= a for (_, a), (_, b) in zip(r.trace, r.trace[1:]))


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("S, tile, s", [
    (np.random.default_rng(1).random((6, 6)), (1, 1), 0.5),      # 1x1 tiles
    (np.random.default_rng(2).random((6, 6)), (6, 6), 0.0),      # one tile, nothing pruned
    (np.random.default_rng(3).random((6, 6)), (8, 8), 0.5),      # tile larger than the matrix
    (np.zeros((8, 8)), (2, 2), 0.5),                               # all zero
    (np.random.default_rng(4).random((8, 8)), (2, 2), 0.0),      # sparsity 0
    (np.random.default_rng(5).random((8, 4)), (2, 4), 0.5),      # one tile per row: 1 column block
])
def test_trivial_and_edge_cases(S, tile, s, mask):
    p = TileProblem.from_matrix(S, tile=tile, sparsity=s, mask=mask)
    r = solve(p, "ilp", time_limit=10)
    assert r.optimal
    assert r.retained == pytest.approx(brute_force(p), rel=1e-12, abs=1e-12)


def test_stopped_early_reports_a_valid_bound():
    S = np.random.default_rng(1).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    exact = solve(p, "ilp", time_limit=60)
    assert exact.optimal
    for model in ("compact", "patterns"):
        r = solve(p, "ilp", time_limit=0.3, model=model, start="greedy")
        assert r.seconds <= 0.3 * 1.2 + 0.05
        assert "best_bound" in r.info and "gap" in r.info and "status" in r.info
        assert r.bound >= exact.retained * (1 - 1e-9)       # never below the optimum
        assert r.bound <= p.bound * (1 + 1e-12)
        assert r.retained <= exact.retained * (1 + 1e-12)


def test_bound_is_tighter_than_the_problem_bound_when_stopped():
    # the pattern LP bound (column generation) is far below the allocation bound
    S = np.random.default_rng(0).random((32, 32))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    r = solve(p, "ilp", time_limit=3)
    assert r.bound < p.bound * 0.99
    assert r.retained <= r.bound


def test_warm_start_is_used_and_never_lost():
    S = np.random.default_rng(2).random((12, 8))
    p = TileProblem.from_matrix(S, tile=(3, 4), sparsity=0.5)
    init = {"row": np.random.default_rng(0).permutation(12)}
    r = solve(p, "ilp", time_limit=20, init=init, start="none")
    assert r.optimal and r.retained >= p.evaluate(init) - 1e-12
    # a warm start that is already optimal is kept and proven
    r2 = solve(p, "ilp", time_limit=20, init=r.perms, start="none")
    assert r2.optimal and r2.retained == pytest.approx(r.retained, rel=1e-12)


@pytest.mark.parametrize("model, backend", [("patterns", "scip"), ("patterns", "cp-sat"), ("compact", "cp-sat")])
def test_deterministic_for_a_seed(model, backend):
    S = np.random.default_rng(7).random((12, 12))
    p = TileProblem.from_matrix(S, tile=(3, 3), sparsity=0.5)
    a = solve(p, "ilp", time_limit=30, seed=3, model=model, backend=backend, start="none")
    b = solve(p, "ilp", time_limit=30, seed=3, model=model, backend=backend, start="none")
    assert a.optimal and b.optimal
    assert np.array_equal(a.row_perm, b.row_perm)
    assert a.retained == b.retained


@pytest.mark.slow
def test_time_limit_is_honoured_on_a_large_matrix():
    S = np.random.default_rng(0).random((64, 64))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    for model in ("patterns", "compact"):
        r = solve(p, "ilp", time_limit=4, model=model)
        assert r.seconds <= 4 * 1.2
        assert r.retained <= r.bound <= p.bound * (1 + 1e-12)


def test_model_build_is_fast():
    S = np.random.default_rng(0).random((64, 64))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    r = solve(p, "ilp", time_limit=2, model="compact")
    assert r.info["build_seconds"] < 1.0          # about 0.15 s on an idle machine
    ilp_mod = _ilp_module()
    bm = ilp_mod.block_model(p)
    cols = ilp_mod._Columns(bm)       # all 635376 blocks of 4 rows with their tile sums
    assert len(cols.subs) == math.comb(64, 4)
    q = cols.lookup(np.array([3, 10, 40, 63]))
    assert cols.subs[q].tolist() == [3, 10, 40, 63]
    assert cols.T[q] == pytest.approx(bm.R[[3, 10, 40, 63]].sum(axis=0))


def test_refuses_what_it_cannot_do():
    S = np.random.default_rng(0).random((8, 8))
    with pytest.raises(ValueError, match="axis"):
        solve(TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, axis="both"), "ilp")
    p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
    for bad in ({"backend": "gurobi"}, {"model": "magic"}, {"start": "ilp"}, {"start": "tabu"}, {"num_workers": 0}):
        with pytest.raises(ValueError):
            solve(p, "ilp", **bad)
    cls = get_solver("ilp")
    assert cls.exact and cls.anytime and {"rows", "cols"} <= cls.axes


@pytest.mark.parametrize("backend", ["scip", "cp-sat"])
def test_backends_agree_beyond_brute_force(backend):
    S = np.random.default_rng(1).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5)
    a = solve(p, "ilp", time_limit=60, backend=backend)
    b = solve(p, "ilp", time_limit=60, model="compact")
    assert a.optimal and b.optimal
    assert a.retained == pytest.approx(b.retained, rel=1e-9)


def test_auto_start_uses_anneal_for_row_balanced_columns():
    S = np.random.default_rng(3).random((12, 12))
    p = TileProblem.from_matrix(S, tile=(3, 3), sparsity=0.5, mask="row-balanced", axis="cols")
    r = solve(p, "ilp", time_limit=30)
    assert r.info["start"]["solver"] == "anneal"
    assert r.optimal and r.retained == pytest.approx(brute_force(p), rel=1e-9)
    q = TileProblem.from_matrix(S, tile=(3, 3), sparsity=0.5, mask="row-balanced", axis="rows")
    assert solve(q, "ilp", time_limit=30).info["start"]["solver"] == "hungarian"


def test_deterministic_with_the_anneal_start():
    S = np.random.default_rng(8).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5, mask="row-balanced", axis="cols")
    a = solve(p, "ilp", time_limit=30, seed=5)
    b = solve(p, "ilp", time_limit=30, seed=5)
    assert a.info["start"]["solver"] == "anneal"
    assert a.info["start"]["value"] == b.info["start"]["value"]
    assert a.optimal and np.array_equal(a.col_perm, b.col_perm)
