"""The spectral bound: valid against brute force, never looser than the problem's own bound, tighter on tall tiles."""
from __future__ import annotations

import numpy as np
import pytest

from permsolve import TileProblem
from permsolve.bounds import row_profile
from permsolve.spectral import _rank_one, _rank_one_centred, _separable, spectral_bound, spectral_rows

from .test_swap import brute_force

PARTS = (_rank_one, _rank_one_centred, _separable)


def _case(rng, m, nb):
    S = np.abs(rng.standard_normal((m, nb)))
    S = S * rng.lognormal(0, rng.choice([0.0, 1.0]), (m, 1)) * rng.lognormal(0, rng.choice([0.0, 1.0]), (1, nb))
    if rng.random() < 0.3:
        S = S * (rng.random(S.shape) < 0.4)          # sparse-ish: many exact zeros
    return S


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("m,h,w,n", [(8, 2, 1, 5), (8, 4, 1, 7), (9, 3, 1, 4), (6, 2, 2, 6), (9, 2, 1, 5)])
def test_every_part_is_never_below_the_optimum(mask, m, h, w, n):
    rng = np.random.default_rng(m * 100 + h * 10 + n)
    for s in (0.25, 0.5, 0.75):
        S = _case(rng, m, n)
        p = TileProblem.from_matrix(S, tile=(h, w), sparsity=s, mask=mask)
        mem = p.members[0]
        mb, nb = mem.grid
        # 9 rows in tiles of 2: the last tile row is padded; brute force needs whole tile rows
        opt = brute_force(p) if m % h == 0 else max(p.evaluate({"row": rng.permutation(m)}) for _ in range(300))
        kw = {"k": mem.n_kept} if mask == "global" else {"kb": mem.mask.per_row(nb, s)}
        R = row_profile(S, w)
        if mb * h > m:
            R = np.vstack([R, np.zeros((mb * h - m, nb))])
        k, kb = kw.get("k"), kw.get("kb")
        for part in PARTS:
            assert part(R, h, mb, k, kb) >= opt * (1 - 1e-12) - 1e-12, (part.__name__, s)
        b = spectral_rows(row_profile(S, w), h, mb, **kw)
        assert b >= opt
        assert opt * (1 - 1e-12) <= spectral_bound(p) <= p.bound


def test_columns_free_uses_the_transposed_matrix_and_stays_valid():
    rng = np.random.default_rng(3)
    S = rng.random((6, 8))
    p = TileProblem.from_matrix(S, tile=(1, 2), sparsity=0.5, axis="cols")
    pt = TileProblem.from_matrix(S.T, tile=(2, 1), sparsity=0.5)
    opt = brute_force(pt)
    assert opt * (1 - 1e-12) <= spectral_bound(p) <= p.bound


def test_other_cases_fall_back_to_the_problem_bound():
    S = np.random.default_rng(0).random((16, 16))
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5, axis="both")
    assert spectral_bound(p) == pytest.approx(p.bound)


def test_much_tighter_than_the_allocation_bound_on_tall_tiles_and_above_a_searched_answer():
    from permsolve import solve

    rng = np.random.default_rng(7)
    S = np.abs(rng.standard_normal((256, 128)))
    p = TileProblem.from_matrix(S, tile=(32, 1), sparsity=0.5)
    found = solve(p, "swap", kicks=20, seed=1).retained
    b = spectral_bound(p)
    assert found <= b
    # iid |N(0,1)|: the allocation bound keeps about 80 % of sum |W|, this one about 70 %
    assert (p.bound - b) / p.total > 0.05
