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
            lag = lagrangian_rows(R, 2, mb, iters=iters, time_limit=5, target=opt, **kw)
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
