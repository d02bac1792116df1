"""Property-based tests (hypothesis) of the objective, the masks and the bound."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from permsolve import TileProblem
from permsolve.masks import MASKS, get_mask, n_pruned
from permsolve.problem import tile_scores

dims = st.integers(1, 9)


@st.composite
def problems(draw, axes=("rows", "cols", "both")):
    mask = MASKS[draw(st.sampled_from(sorted(MASKS)))]
    m, n = draw(dims), draw(dims)
    if mask.fixed_tile is not None:          # N:M: columns come in whole groups
        n = mask.m * draw(st.integers(1, 2))
    S = draw(arrays(np.float64, (m, n), elements=st.floats(0, 100, allow_nan=False, allow_infinity=False)))
    h, w = draw(st.integers(1, m)), draw(st.integers(1, n))
    s = draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9]))
    if mask.fixed_tile is not None:
        (h, w), s = mask.fixed_tile, mask.fixed_sparsity
    axis = draw(st.sampled_from(axes))
    return TileProblem.from_matrix(S, tile=(h, w), sparsity=s, mask=mask, axis=axis)


def random_perms(p, seed):
    r = np.random.default_rng(seed)
    return {k: r.permutation(n) for k, n in p.perm_sizes.items()}


@settings(max_examples=200, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_value_at_most_bound_and_total(p, seed):
    v = p.evaluate(random_perms(p, seed))
    assert 0 <= v <= p.bound * (1 + 1e-9) + 1e-9
    assert p.bound <= p.total * (1 + 1e-9) + 1e-9


@settings(max_examples=200, deadline=None)
@given(problems(), st.integers(0, 2**31))
def test_mask_keeps_the_right_number_of_tiles(p, seed):
    (mem,) = p.members
    perms = random_perms(p, seed)
    M = mem.best_mask(perms)
    mb, nb = mem.grid
    assert M.shape == (mb, nb)
    assert M.sum() == mem.n_kept
    assert mem.mask.admissible(M, mem.sparsity)
    if mem.mask.name == "row-balanced":
        assert (M.sum(axis=1) == nb - n_pruned(mem.sparsity, nb)).all()
    if mem.mask.name == "N:M":
        assert (M.reshape(mb, -1, mem.mask.m).sum(axis=2) == mem.mask.n).all()
    # the mask's value is what evaluate reports, and it is the best of its family:
    T = mem.tile_scores(perms)
    assert T[M].sum() == pytest.approx(p.evaluate(perms), rel=1e-12, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)), elements=st.floats(0, 10)),
       st.sampled_from([0.0, 0.25, 0.5, 0.75]))
def test_mask_is_best_of_its_family_by_enumeration(T, s):
    """select() beats every other admissible mask (enumerated on tiny grids)."""
    mb, nb = T.shape
    for mask in MASKS.values():
        if mask.fixed_sparsity is not None:
            continue  # N:M: below, on grids of whole groups
        _check_best_by_enumeration(mask, T, s)


def _check_best_by_enumeration(mask, T, s):
    mb, nb = T.shape
    best = T[mask.select(T, s)].sum()
    assert mask.admissible(mask.select(T, s), s)
    assert best == pytest.approx(mask.retained(T, s), rel=1e-12, abs=1e-12)
    seen = 0
    for bits in itertools.product([0, 1], repeat=mb * nb):
        B = np.array(bits, dtype=bool).reshape(mb, nb)
        if not mask.admissible(B, s):
            continue
        seen += 1
        assert T[B].sum() <= best + 1e-9
    assert seen >= 1


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([s for s, m in MASKS.items() if m.fixed_sparsity is not None]), st.integers(0, 2**31))
def test_nm_mask_is_best_of_its_family_by_enumeration(spec, seed):
    mask = MASKS[spec]
    r = np.random.default_rng(seed)
    mb = 2 if mask.m <= 4 else 1
    T = r.integers(0, 4, size=(mb, mask.m * (2 if mask.m <= 4 else 1))).astype(float)  # ties on purpose
    _check_best_by_enumeration(mask, T, mask.fixed_sparsity)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.floats(0, 10)),
       st.integers(1, 5), st.integers(1, 5))
def test_tile_scores_sum_to_total(S, h, w):
    T = tile_scores(S, h, w)
    assert T.shape == (-(-S.shape[0] // h), -(-S.shape[1] // w))
    assert T.sum() == pytest.approx(S.sum())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["global", "row-balanced"]), st.sampled_from(["rows", "cols", "both"]))
def test_bound_holds_against_exhaustive_search(seed, mask, axis):
    """The bound is >= the true optimum, found by enumerating every permutation (tiny)."""
    r = np.random.default_rng(seed)
    m, n = (4, 5) if axis != "both" else (4, 4)
    S = r.random((m, n)) ** 3
    p = TileProblem.from_matrix(S, tile=(2, 2), sparsity=0.5, mask=mask, axis=axis)
    best = 0.0
    rows = itertools.permutations(range(m)) if axis in ("rows", "both") else [None]
    for rp in rows:
        cols = itertools.permutations(range(n)) if axis in ("cols", "both") else [None]
        for cp in cols:
            perms = {k: np.array(v) for k, v in (("row", rp), ("col", cp)) if v is not None}
            best = max(best, p.evaluate(perms))
    assert best <= p.bound * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["2:4", "1:4", "1:2", "2:3"]), st.sampled_from(["cols", "both"]))
def test_nm_bound_holds_against_exhaustive_search(seed, spec, axis):
    """N:M: the optimum over all column partitions into groups (enumerated) is <= the bound,
    and permuting rows never changes the value."""
    mask = get_mask(spec)
    r = np.random.default_rng(seed)
    n = 2 * mask.m
    S = r.random((3, n)) ** 3
    p = TileProblem.from_matrix(S, mask=mask, axis=axis)
    best = max(p.evaluate({"col": np.array(cp)}) for cp in itertools.permutations(range(n)))
    assert best <= p.bound * (1 + 1e-9)
    if axis == "both":
        cp = r.permutation(n)
        assert p.evaluate({"row": r.permutation(3), "col": cp}) == pytest.approx(p.evaluate({"col": cp}), rel=1e-12)


def test_n_pruned_rounds_half_up():
    assert n_pruned(0.5, 3) == 2 and n_pruned(0.5, 5) == 3 and n_pruned(0.0, 7) == 0
    assert n_pruned(0.1, 10) == 1  # 0.1*10 is 1.0000000000000002 or 0.9999.. in floats
    # the decimal value of s, exactly: no float noise either way, no fudge
    assert n_pruned(0.15, 10) == 2 and n_pruned(0.35, 10) == 4 and n_pruned(0.4999999999995, 1) == 0
    assert n_pruned(0.5, 1) == 1 and n_pruned(0.25, 2) == 1


def test_mask_specs_parse_and_refuse():
    from permsolve.masks import NMMask
    assert get_mask("2:4") == NMMask(2, 4) and get_mask(" 4:8 ").spec == "4:8"
    assert get_mask(NMMask(1, 4)) is not None and str(get_mask("row-balanced")) == "row-balanced"
    for bad in ("4:2", "0:4", "2:17", "2:2"):
        with pytest.raises(ValueError, match="N:M needs"):
            get_mask(bad)
    with pytest.raises(ValueError, match="multiple of 4"):
        TileProblem.from_matrix(np.ones((2, 6)), mask="2:4")
    with pytest.raises(ValueError, match="1x1 tiles"):
        TileProblem.from_matrix(np.ones((2, 8)), tile=(2, 2), mask="2:4")
    with pytest.raises(ValueError, match="implies sparsity 0.5"):
        TileProblem.from_matrix(np.ones((2, 8)), sparsity=0.25, mask="2:4")
    with pytest.raises(ValueError, match="needs a tile"):
        TileProblem.from_matrix(np.ones((2, 8)), sparsity=0.25)


@settings(max_examples=100, deadline=None)
@given(p=problems(), seed=st.integers(0, 2**16), entries=st.sampled_from([1, 5, 40]))
def test_slabs_evaluate_as_the_whole_permuted_matrix(p, seed, entries):
    """A permuted matrix is scored a slab of tile rows at a time: the same tiles as scoring it whole."""
    import permsolve.problem as problem_module
    perms = random_perms(p, seed)
    (m,) = p.members
    whole = tile_scores(m.permuted(perms), *m.tile)
    old = problem_module.GATHER_ENTRIES
    try:
        problem_module.GATHER_ENTRIES = entries
        sliced = m.tile_scores(perms)
        rows = np.concatenate([r for _, r, _ in m.slabs(perms)])
    finally:
        problem_module.GATHER_ENTRIES = old
    np.testing.assert_allclose(sliced, whole, rtol=1e-13, atol=1e-12)
    ri, _ = m._gather_indices(perms)
    assert np.array_equal(rows, ri if ri is not None else np.arange(m.shape[0]))


def test_gather_seconds_only_for_bound_axes():
    """The reserve a timed run adds for the gather its identity evaluation skipped."""
    from permsolve import Member
    from permsolve.result import Run
    S = np.random.default_rng(0).random((64, 64))
    assert Member(S, (4, 4), 0.5).gather_seconds() == 0.0
    p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5, axis="both")
    assert p.gather_seconds() > 0.0
    p.gather_seconds = lambda: 5.0              # a stand-in, so the test does not time anything
    assert Run(p, 10.0, None).eval_seconds >= 5.0
    assert Run(p, None, None).eval_seconds < 5.0                 # no limit: no reserve needed
    assert Run(p, 10.0, random_perms(p, 1)).eval_seconds < 5.0   # timed with its gather already


def test_strided_layout_moves_whole_channels():
    """A conv weight viewed as (C_out, kh*kw*C_in): channel q's kh*kw columns are C_in apart."""
    from permsolve import Member
    W = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)        # (C_out, kh*kw=3, C_in=4)
    S = W.reshape(2, 12)
    m = Member(S, mask="2:4", cols="c", col_unit=3, col_layout="strided")
    perm = np.array([2, 0, 3, 1])
    assert np.array_equal(m.permuted({"c": perm}), W[:, :, perm].reshape(2, 12))


def test_get_mask_unknown_lists_known():
    with pytest.raises(ValueError, match="global"):
        get_mask("diagonal")


def test_bad_problem_inputs():
    with pytest.raises(ValueError, match="NaN"):
        TileProblem.from_matrix(np.array([[np.nan]]), tile=(1, 1), sparsity=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        TileProblem.from_matrix(-np.ones((2, 2)), tile=(1, 1), sparsity=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TileProblem.from_matrix(np.ones((2, 2)), tile=(1, 1), sparsity=1.0)
    with pytest.raises(ValueError, match="axis"):
        TileProblem.from_matrix(np.ones((2, 2)), tile=(1, 1), sparsity=0.5, axis="diag")
    p = TileProblem.from_matrix(np.ones((3, 3)), tile=(1, 1), sparsity=0.5)
    with pytest.raises(ValueError, match="not a permutation"):
        p.evaluate({"row": np.array([0, 0, 1])})
