"""The Lagrangian bound: valid against brute force, never looser than the problem's own bound."""
from __future__ import annotations

import time

import numpy as np
import pytest

from permsolve import TileProblem
from permsolve.bounds import row_profile
from permsolve.lagrange import lagrangian_rows, member_tight_bound, tight_bound

from .test_swap import brute_force


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("m", [8, 9])          # 9 rows: the last tile row is padded
def test_lagrangian_is_never_below_the_optimum(mask, m):
    rng = np.random.default_rng(m)
    for _ in range(4):
        S = rng.random((m, 6)) * rng.lognormal(0, 1, (m, 1)) * rng.lognormal(0, 1, (1, 6))
        p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, mask=mask)
        mem = p.members[0]
        mb, nb = mem.grid
        opt = brute_force(p) if m % 2 == 0 else max(
            p.evaluate({"row": rng.permutation(m)}) for _ in range(200))   # a lower bound is enough
        R = row_profile(S, 2)
        kw = {"k": mem.n_kept} if mask == "global" else {"kb": mem.mask.per_row(nb, 0.5)}
        for iters in (1, 5, 60):
            lag = lagrangian_rows(R, 2, mb, iters=iters, time_limit=5, target=opt, exact=False, **kw)
            assert lag >= opt * (1 - 1e-9), (iters, lag, opt)
        tb = tight_bound(p, time_limit=1.0)
        assert opt * (1 - 1e-9) <= tb <= p.bound * (1 + 1e-12)


def test_columns_free_uses_the_transposed_matrix_and_stays_valid():
    rng = np.random.default_rng(3)
    S = rng.random((6, 8))
    p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, axis="cols")
    pt = TileProblem.from_matrix(S.T, tile=(2, 2), sparsity=0.5)
    opt = brute_force(pt)
    # the global mask does not see a transposition: the transposed optimum is this problem's
    assert all(p.evaluate({"col": rng.permutation(8)}) <= opt * (1 + 1e-12) for _ in range(50))
    assert opt * (1 - 1e-9) <= member_tight_bound(p.members[0], time_limit=1.0) <= p.bound * (1 + 1e-12)


def test_other_cases_fall_back_to_the_problem_bound():
    S = np.random.default_rng(0).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5, axis="both")
    assert tight_bound(p, time_limit=0.2) == pytest.approx(p.bound)


def test_time_limit_is_kept():
    S = np.random.default_rng(0).random((512, 512))
    p = TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.5)
    t = time.perf_counter()
    tight_bound(p, time_limit=0.3)
    assert time.perf_counter() - t < 3.0


def test_never_below_a_searched_answer_on_few_tile_rows():
    """Where the Lagrangian is tight (few tile rows), it must still sit above every answer found."""
    from permsolve import solve

    rng = np.random.default_rng(11)
    tighter = 0
    for _ in range(4):
        S = np.abs(rng.standard_normal((48, 96))) * rng.lognormal(0, 0.7, (48, 1)) * rng.lognormal(0, 0.7, (1, 96))
        p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5)
        found = solve(p, "swap", kicks=50, seed=1).retained
        tb = tight_bound(p, time_limit=2.0)
        assert tb >= found * (1 - 1e-9)
        tighter += tb < p.bound * (1 - 1e-6)
    assert tighter >= 1, "the Lagrangian tightened none of the four (it did on one when written)"


# --- exact pricing (permsolve._pricing) and the decomposed Lagrangian ------------------------------

def _brute_pricing(R, lam, h):
    import itertools
    m, nb = R.shape
    g = np.full(nb + 1, -np.inf)
    for H in itertools.combinations(range(m), h):
        for code in range(1 << nb):
            B = [b for b in range(nb) if code >> b & 1]
            v = R[np.ix_(H, B)].sum() - lam[list(H)].sum()
            g[len(B)] = max(g[len(B)], v)
    return g


@pytest.mark.parametrize("seed", range(4))
def test_exact_pricing_is_the_brute_force_maximum(seed):
    from permsolve._pricing import price_subsets, subset_rows

    rng = np.random.default_rng(seed)
    R = rng.random((7, 5)) * rng.lognormal(0, 1, (7, 1))
    lam = rng.normal(0, 1, 7)
    g, codes = price_subsets(R, lam, 3)
    assert np.allclose(g, _brute_pricing(R, lam, 3))
    for j in range(6):          # the recorded set and its rows reach the value
        B = [b for b in range(5) if int(codes[j]) >> b & 1]
        H = subset_rows(R, lam, 3, int(codes[j]))
        assert len(B) == j and R[np.ix_(H, B)].sum() - lam[H].sum() == pytest.approx(g[j])


def test_allocation_and_maxplus_are_exact():
    import itertools

    from permsolve.lagrange import _allocate, _maxplus

    rng = np.random.default_rng(5)
    g = np.concatenate([[0.0], np.cumsum(rng.normal(0.3, 1.0, 4))])
    for mb, k in ((3, 5), (4, 7), (2, 8)):
        val, js = _allocate(g, mb, k)
        want = max(sum(g[j] for j in c) for c in itertools.product(range(5), repeat=mb) if sum(c) == k)
        assert val == pytest.approx(want) and sum(js) == k and sum(g[j] for j in js) == pytest.approx(val)
    gs = [rng.normal(0, 1, 3), rng.normal(0, 1, 4), rng.normal(0, 1, 2)]
    G, picks = _maxplus(gs)
    for J in range(len(G)):
        want = max(sum(g[c] for g, c in zip(gs, cs)) for cs in itertools.product(*(range(len(g)) for g in gs))
                   if sum(cs) == J)
        assert G[J] == pytest.approx(want)
        assert sum(int(p[J]) for p in picks) == J and sum(g[int(p[J])] for g, p in zip(gs, picks)) == pytest.approx(G[J])


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("m", [8, 9])          # 9 rows: the last tile row is padded
def test_exact_and_decomposed_lagrangian_are_never_below_the_optimum(mask, m):
    rng = np.random.default_rng(20 + m)
    for _ in range(3):
        S = rng.random((m, 6)) * rng.lognormal(0, 1, (m, 1)) * rng.lognormal(0, 1, (1, 6))
        p = TileProblem.from_matrix(S, tile=(2, 1), sparsity=0.5, mask=mask)
        mem = p.members[0]
        mb, nb = mem.grid
        opt = brute_force(p) if m % 2 == 0 else max(
            p.evaluate({"row": rng.permutation(m)}) for _ in range(300))   # a lower bound is enough
        kw = {"k": mem.n_kept} if mask == "global" else {"kb": mem.mask.per_row(nb, 0.5)}
        for parts in (1, 2, 3, 6):
            for iters in (1, 5, 60):
                lag = lagrangian_rows(S, 2, mb, iters=iters, time_limit=5, target=opt, parts=parts, **kw)
                assert lag >= opt * (1 - 1e-9), (parts, iters, lag, opt)


def test_exact_pricing_certifies_a_real_layer():
    """resnet.layer2.0.conv1, 16x16 tiles (2 tile rows, 9 column blocks): the exact-pricing Lagrangian
    proves swap's answer within 0.01 % of sum |W| of the optimum; the allocation bound leaves 3.5 points."""
    from permsolve import importance, solve
    from permsolve.problems.real import zoo_weight

    S = importance(zoo_weight("resnet", "layer2.0.conv1"), "l1")
    p = TileProblem.from_matrix(S, tile=(16, 16), sparsity=0.5)
    found = solve(p, "swap", rounds=20, kicks=20, seed=0).retained
    tb = tight_bound(p, time_limit=60.0, target=found)
    assert found * (1 - 1e-9) <= tb <= found + 1e-4 * p.total
    assert p.bound - found > 0.03 * p.total
