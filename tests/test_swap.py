"""The ``swap`` solver: its kernel against plain formulas, its contract details, brute force on tiny cases."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from permsolve import TileProblem, get_solver, solve
from permsolve.solvers.swap import SwapState, load_kernel


def _state(m=64, n=48, tile=(8, 8), mask="global", seed=0, kernel="numba"):
    rng = np.random.default_rng(seed)
    S = np.abs(rng.standard_normal((m, n))) * rng.lognormal(0, 0.5, (m, 1)) * rng.lognormal(0, 0.5, (1, n))
    p = TileProblem.from_matrix(S, tile=tile, sparsity=0.5, mask=mask)
    return p, SwapState(p.members[0], {"row": rng.permutation(m)}, "rows", kernel)


def _F(st):
    """The threshold objective, summed plainly."""
    return float(np.maximum(st.T - st.tau[:, None], 0).sum())


@pytest.mark.parametrize("kernel", ["numba", "python"])
@pytest.mark.parametrize("mask", ["global", "row-balanced"])
def test_pair_gains_equal_the_change_of_the_threshold_objective(kernel, mask):
    p, st = _state(m=60, mask=mask, kernel=kernel)     # 60 rows: the last tile row has padding
    K = load_kernel(kernel)
    h = st.h
    G = np.empty((h, h))
    rng = np.random.default_rng(1)
    for _ in range(6):
        a, c = rng.choice(st.mb, 2, replace=False)
        K.pair_gains(st.R, st.grp, st.T, st.tau, a, c, st.m, G)
        base = _F(st)
        for i, j in itertools.product(range(h), range(h)):
            ri, rj = st.grp[a, i], st.grp[c, j]
            if ri >= st.m or rj >= st.m:
                assert G[i, j] == -np.inf
                continue
            T = st.T.copy()
            T[a] += st.R[rj] - st.R[ri]
            T[c] -= st.R[rj] - st.R[ri]
            want = float(np.maximum(T - st.tau[:, None], 0).sum()) - base
            assert G[i, j] == pytest.approx(want, abs=1e-9 * base)


def test_compiled_search_makes_the_swaps_of_the_plain_reference():
    p, st = _state(m=96, n=64)
    K = load_kernel("numba")
    pairs = np.array([[a, c] for a in range(st.mb) for c in range(st.mb) if a != c], dtype=np.int64)
    g1, T1 = st.grp.copy(), st.T.copy()
    g2, T2 = st.grp.copy(), st.T.copy()
    made1 = sum(K.improve_pair(st.R, g1, T1, st.tau, a, c, st.m, 3, st.eps)[0] for a, c in pairs)
    made2 = sum(K.improve_pair_plain(st.R, g2, T2, st.tau, a, c, st.m, 3, st.eps)[0] for a, c in pairs)
    assert made1 == made2 > 0
    assert np.array_equal(g1, g2)
    np.testing.assert_allclose(T1, T2, rtol=1e-12)


def test_state_value_and_permutation_round_trip():
    p, st = _state(m=60)
    perm = st.perm()
    assert sorted(perm.tolist()) == list(range(60))
    assert st.value(fresh=True) == pytest.approx(p.evaluate({"row": perm}), rel=1e-12)


def test_columns_axis_works_on_the_transposed_matrix():
    rng = np.random.default_rng(2)
    S = rng.random((24, 40)) * rng.lognormal(0, 1, (1, 40))
    p = TileProblem.from_matrix(S, tile=(4, 8), sparsity=0.5, axis="cols")
    st = SwapState(p.members[0], {"col": rng.permutation(40)}, "cols")
    assert st.value() == pytest.approx(p.evaluate({"col": st.perm()}), rel=1e-12)
    r = solve(p, "swap")
    assert r.retained >= solve(p, "greedy").retained * (1 - 1e-12)


def test_deterministic_under_a_round_and_kick_budget():
    p, _ = _state(m=128, n=64)
    a = solve(p, "swap", rounds=5, kicks=3, seed=4)
    b = solve(p, "swap", rounds=5, kicks=3, seed=4)
    assert a.retained == b.retained and np.array_equal(a.perms["row"], b.perms["row"])
    assert a.info["rounds"]["rows"] <= 5


def test_beats_hungarian_where_the_mask_must_change():
    """A lognormal 512x512 matrix: hungarian's fixed point is not a swap optimum."""
    from permsolve.problems.generators import scaled

    p = TileProblem.from_matrix(scaled(256, 256, sigma=0.5, seed=0), tile=(16, 16), sparsity=0.5)
    h = solve(p, "hungarian")
    r = solve(p, "swap", init=h, rounds=4)
    assert r.retained > h.retained * (1 + 1e-6)


def _groupings(rows, h):
    """Every split of ``rows`` into groups of ``h`` (group order ignored: it cannot change the value)."""
    if not rows:
        yield []
        return
    first, rest = rows[0], rows[1:]
    for mates in itertools.combinations(rest, h - 1):
        left = [r for r in rest if r not in mates]
        for tail in _groupings(left, h):
            yield [first, *mates, *tail]


def brute_force(p):
    """Best value over all row orders of a single-matrix rows problem (tile-row order is irrelevant)."""
    m, h = p.perm_sizes["row"], p.members[0].tile[0]
    return max(p.evaluate({"row": np.array(q)}) for q in _groupings(list(range(m)), h))


def test_brute_force_agrees_with_full_enumeration():
    rng = np.random.default_rng(9)
    p = TileProblem.from_matrix(rng.random((6, 4)), tile=(2, 2), sparsity=0.5)
    full = max(p.evaluate({"row": np.array(q)}) for q in itertools.permutations(range(6)))
    assert brute_force(p) == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
def test_reaches_the_brute_force_optimum_on_tiny_instances(mask):
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(6):
        S = rng.random((10, 6)) * rng.lognormal(0, 1, (10, 1)) * rng.lognormal(0, 1, (1, 6))
        p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, mask=mask)
        opt = brute_force(p)
        r = solve(p, "swap", kicks=30, seed=0)
        assert r.retained <= opt * (1 + 1e-12)
        hits += r.retained >= opt * (1 - 1e-12)
    assert hits >= 5, f"optimum found on {hits}/6 tiny instances"


def test_supports_says_why_not():
    from permsolve.problem import Member

    rng = np.random.default_rng(0)
    rb_both = TileProblem.from_matrix(rng.random((16, 16)), tile=(4, 4), sparsity=0.5, mask="row-balanced", axis="both")
    assert "row-balanced" in (get_solver("swap")().supports(rb_both) or "")
    unit = TileProblem([Member(rng.random((8, 12)), (4, 4), 0.5, cols="c", col_unit=3)])
    with pytest.raises(ValueError, match="swap"):
        solve(unit, "swap")


@pytest.mark.parametrize("bad", [{"start": "nope"}, {"start_share": 0}, {"rounds": 0}, {"max_swaps": 0}, {"kernel": "c"}])
def test_bad_options_refused(bad):
    with pytest.raises(ValueError, match="swap"):
        solve(TileProblem.from_matrix(np.ones((8, 8)), tile=(2, 2), sparsity=0.5), "swap", **bad)


def test_auto_start_is_never_below_hungarian_on_small_layers():
    p, _ = _state(m=96, n=64, tile=(16, 16))
    r = solve(p, "swap", rounds=3)
    assert r.info["start"] == "hungarian"
    assert r.retained >= solve(p, "hungarian").retained * (1 - 1e-12)
