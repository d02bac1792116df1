"""The N:M solvers: ``nm-anneal`` and ``nm-exact`` (problem reduction, warm start,
determinism, time limit, proven optimum)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from permsolve import TileProblem, get_solver, solve
from permsolve.problem import Member

from .test_nm_kernel import brute_force, ref_value

FAST = {"rounds": 2, "moves_per_col": 300}


def nm_problem(S, spec="2:4"):
    return TileProblem.from_matrix(S, mask=spec)


def test_supports_only_nm():
    S = np.random.default_rng(0).random((8, 16))
    tile = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5)
    for name in ("nm-anneal", "nm-exact"):
        assert "N:M" in get_solver(name)().supports(tile)
        assert get_solver(name)().supports(nm_problem(S)) is None
    # two patterns in one problem are refused
    mixed = TileProblem([Member(S, mask="2:4", cols="c"), Member(S, mask="4:8", cols="c")])
    assert "one N:M pattern" in get_solver("nm-anneal")().supports(mixed)


def test_exact_option_limit_is_the_kernels():
    from permsolve.solvers import _nm_kernel, nm_exact

    assert nm_exact.MAX_COLS == _nm_kernel.EXACT_MAX_COLS


def test_exact_refuses_wide_problems_with_a_reason():
    S = np.random.default_rng(0).random((4, 28))
    why = get_solver("nm-exact")().supports(nm_problem(S))
    assert why and "max_cols" in why
    why = get_solver("nm-exact")().supports(nm_problem(np.random.default_rng(0).random((4, 24)), "4:8"))
    assert why and "transitions" in why
    with pytest.raises(ValueError, match="more than it can do"):
        solve(nm_problem(S), "nm-exact")


@pytest.mark.parametrize("spec,cols", [("2:4", 12), ("1:3", 9), ("2:3", 12), ("4:8", 16), ("1:2", 10)])
def test_exact_is_optimal_and_proven(spec, cols):
    n, m = (int(x) for x in spec.split(":"))
    S = np.random.default_rng(cols).random((6, cols)) ** 2
    r = solve(nm_problem(S, spec), "nm-exact")
    want, _ = brute_force(S, n, m)
    assert r.retained == pytest.approx(want, abs=1e-9)
    assert r.optimal and r.bound == pytest.approx(r.retained)
    assert r.retained == pytest.approx(ref_value(S, r.col_perm, n, m), abs=1e-9)


def test_anneal_reaches_the_optimum_on_small_problems():
    for seed in range(3):
        S = np.random.default_rng(seed).random((16, 16))
        p = nm_problem(S)
        opt = solve(p, "nm-exact").retained
        r = solve(p, "nm-anneal", seed=seed, rounds=2, moves_per_col=3000)
        assert r.retained == pytest.approx(opt, abs=1e-9)
        assert r.retained <= r.bound * (1 + 1e-12)


def test_anneal_trace_and_improvement():
    S = np.random.default_rng(3).random((32, 64))
    p = nm_problem(S)
    r = solve(p, "nm-anneal", seed=0, **FAST)
    assert r.retained > p.evaluate(None)
    vals = [v for _, v in r.trace]
    assert vals == sorted(vals) and vals[-1] == pytest.approx(r.retained)
    assert r.info["moves"] > 0 and r.nit == r.info["moves"]


def test_anneal_same_seed_same_answer():
    S = np.random.default_rng(5).random((24, 32))
    a = solve(nm_problem(S), "nm-anneal", seed=7, **FAST)
    b = solve(nm_problem(S), "nm-anneal", seed=7, **FAST)
    assert a.retained == b.retained and np.array_equal(a.col_perm, b.col_perm)


def test_anneal_never_worse_than_warm_start():
    S = np.random.default_rng(6).random((24, 32))
    p = nm_problem(S)
    good = solve(p, "nm-anneal", seed=1, **FAST)
    r = solve(p, "nm-anneal", seed=2, init=good, rounds=1, moves_per_col=1)
    assert r.retained >= good.retained * (1 - 1e-12)


def test_anneal_python_kernel_matches_numba():
    S = np.random.default_rng(8).random((6, 16))
    a = solve(nm_problem(S), "nm-anneal", seed=3, rounds=1, moves_per_col=40, windows=0)
    b = solve(nm_problem(S), "nm-anneal", seed=3, rounds=1, moves_per_col=40, windows=0, kernel="python")
    assert a.retained == pytest.approx(b.retained, abs=1e-9)
    assert np.array_equal(a.col_perm, b.col_perm)


def test_anneal_time_limit_honoured():
    np.random.seed(1)
    p = nm_problem(np.random.rand(128, 64))
    for limit in (0.3, 1.0):
        t0 = time.perf_counter()
        r = solve(p, "nm-anneal", time_limit=limit, seed=0)
        wall = time.perf_counter() - t0
        assert r.seconds <= 1.1 * limit + 0.02, r.seconds
        assert wall <= 1.1 * limit + 0.3
        assert r.retained > 2852.377          # better than no permutation


def test_stacked_members_share_one_permutation():
    rng = np.random.default_rng(9)
    A, B = rng.random((5, 12)), rng.random((7, 12))
    p = TileProblem([Member(A, mask="2:4", cols="c", name="a"), Member(B, mask="2:4", cols="c", name="b")])
    r = solve(p, "nm-exact")
    want, _ = brute_force(np.vstack([A, B]), 2, 4)
    assert r.retained == pytest.approx(want, abs=1e-9) and r.optimal
    r2 = solve(p, "nm-anneal", seed=0, rounds=2, moves_per_col=2000)
    assert r2.retained == pytest.approx(want, abs=1e-9)


def test_strided_conv_binding_is_its_reshaped_view():
    """A conv weight (C_out, C_in, kh, kw) viewed as (C_out, kh*kw*C_in), strided units of kh*kw, is the
    N:M problem of the (C_out*kh*kw, C_in) matrix."""
    rng = np.random.default_rng(10)
    co, ci, kh, kw = 3, 12, 2, 2
    W = rng.random((co, ci, kh, kw))
    M = W.transpose(0, 2, 3, 1).reshape(co, kh * kw * ci)
    p = TileProblem([Member(M, mask="2:4", cols="c", col_unit=kh * kw, col_layout="strided")])
    flat = M.reshape(co * kh * kw, ci)
    for perm in (np.arange(ci), rng.permutation(ci)):
        assert p.evaluate({"c": perm}) == pytest.approx(ref_value(flat, perm, 2, 4), abs=1e-9)
    r = solve(p, "nm-exact")
    want, _ = brute_force(flat, 2, 4)
    assert r.retained == pytest.approx(want, abs=1e-9)
    # contiguous units that split N:M groups (2 columns each, m = 4) are refused, with the reason
    q = TileProblem([Member(M[:, :12], mask="2:4", cols="c", col_unit=2)])
    assert "strided" in get_solver("nm-anneal")().supports(q)


def test_contiguous_units_of_whole_nm_groups_are_a_constant():
    """A Linear after a flatten: channel units of 4 contiguous columns hold whole 2:4 groups, so every
    permutation of the units keeps the same value; the solvers accept the member and keep its value."""
    rng = np.random.default_rng(12)
    M = rng.random((5, 8 * 4))
    p = TileProblem([Member(M, mask="2:4", cols="c", col_unit=4)])
    const = p.evaluate({"c": np.arange(8)})
    for perm in (rng.permutation(8), rng.permutation(8)):
        assert p.evaluate({"c": perm}) == pytest.approx(const, abs=1e-9)
    for name, kw in (("nm-anneal", FAST), ("nm-exact", {})):
        assert get_solver(name)().supports(p) is None
        assert solve(p, name, **kw).retained == pytest.approx(const, abs=1e-9)
    # beside a member that the permutation does move, only that member's columns are searched
    other = Member(rng.random((4, 8)), mask="2:4", cols="c")
    pc = TileProblem([Member(M, mask="2:4", cols="c", col_unit=4), other])
    want, _ = brute_force(other.importance, 2, 4)
    for name, kw in (("nm-anneal", {}), ("nm-exact", {})):
        assert solve(pc, name, seed=0, **kw).retained == pytest.approx(want + const, abs=1e-9)


def test_row_permutations_are_returned_unchanged():
    rng = np.random.default_rng(11)
    S = rng.random((8, 16))
    p = TileProblem.from_matrix(S, mask="2:4", axis="both")
    start = {"row": rng.permutation(8), "col": np.arange(16)}
    for name, kw in (("nm-anneal", FAST), ("nm-exact", {})):
        r = solve(p, name, init=start, **kw)
        assert np.array_equal(r.perms["row"], start["row"])
        assert r.retained == pytest.approx(p.evaluate(r.perms))
    # a producer whose rows share the permutation with the consumer's columns: only the consumer counts
    prod = Member(rng.random((16, 8)), mask="2:4", rows="c", name="producer")
    cons = Member(S, mask="2:4", cols="c", name="consumer")
    pc = TileProblem([prod, cons])
    r = solve(pc, "nm-exact")
    assert r.optimal
    assert r.retained == pytest.approx(brute_force(S, 2, 4)[0] + p.members[0].mask.retained(prod.importance, 0.5))


def test_bad_options_rejected():
    for kw in ({"windows": 4}, {"rounds": 0}, {"t_end_factor": 0.0}, {"kernel": "cuda"}):
        with pytest.raises(ValueError):
            get_solver("nm-anneal")(**kw)
    with pytest.raises(ValueError):
        get_solver("nm-exact")(max_cols=30)
