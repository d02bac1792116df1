"""The ``anneal`` solver: exact incremental evaluation, determinism, warm starts.

The contract every solver meets is in ``test_contract.py``; here the kernel's
bookkeeping is checked against full recomputation (``TileProblem.evaluate``)
move by move.
"""
import numpy as np
import pytest

from permsolve import Member, TileProblem, solve
from permsolve.problems.planted import planted
from permsolve.solvers.anneal import Anneal, AnnealState

from .conftest import scaled_matrix


def replay(problem, n_moves, seed, kernel="numba"):
    """Probe then force-accept ``n_moves`` random swaps; compare with recomputation.

    Returns the largest error of (a) the probed delta, (b) the incremental
    value after the move, and the state for further checks.
    """
    r = np.random.default_rng(seed)
    st = AnnealState(problem, problem.identity(), kernel=kernel)
    scale = max(1.0, problem.total)
    worst = 0.0
    changed = 0
    for _ in range(n_moves):
        u = r.random((1, 4))
        before = st.current
        delta = st.probe(u)[0]
        u[0, 3] = 0.0                       # acceptance draw 0: always accept
        st.run(u, 1e300, 1.0)
        exact = problem.evaluate(st.perms())
        worst = max(worst, abs(before + delta - exact) / scale, abs(st.current - exact) / scale)
        changed += delta != 0.0
    assert changed > 0, "no move changed anything: the test would be vacuous"
    return worst, st


SHAPES = {
    # name: (matrix, tile, sparsity)
    "non-divisible": (lambda: scaled_matrix(37, 29, seed=1), (4, 5), 0.4),
    # 48 x 40 = 1920 tiles: the global mask keeps only a band around its boundary sorted
    "band": (lambda: scaled_matrix(96, 80, seed=2), (2, 2), 0.3),
    # many equal tile scores: ties at the boundary
    "ties": (lambda: np.round(np.random.default_rng(3).random((64, 48)) * 2), (2, 2), 0.5),
}


@pytest.mark.parametrize("mask", ["global", "row-balanced"])
@pytest.mark.parametrize("axis", ["rows", "cols", "both"])
@pytest.mark.parametrize("shape", SHAPES)
def test_incremental_delta_is_exact(mask, axis, shape):
    make, tile, s = SHAPES[shape]
    p = TileProblem.from_matrix(make(), tile=tile, sparsity=s, mask=mask, axis=axis)
    worst, st = replay(p, 150, seed=len(shape))
    assert worst < 1e-11
    # a rebuild from scratch agrees with the incremental state
    fresh = AnnealState(p, st.perms())
    assert fresh.current == pytest.approx(st.current, rel=1e-12)


def coupled_problem(seed=0):
    """One shared permutation ``p`` (units of 1, 2 and 3 elements; tiles that units straddle)."""
    r = np.random.default_rng(seed)
    a = Member(r.random((12, 9)), (4, 4), 0.5, "global", rows="p", cols="c", name="a")
    b = Member(r.random((9, 12)), (4, 4), 0.3, "row-balanced", rows="c", cols="p", name="b")
    c = Member(r.random((5, 36)), (2, 5), 0.5, "row-balanced", cols="p", col_unit=3, name="c")
    d = Member(r.random((24, 7)), (5, 3), 0.6, "global", rows="p", row_unit=2, name="d")
    return TileProblem([a, b, c, d])


def test_incremental_delta_is_exact_coupled_with_units():
    p = coupled_problem()
    assert p.perm_sizes == {"p": 12, "c": 9}
    worst, _ = replay(p, 400, seed=1)
    assert worst < 1e-12


@pytest.mark.parametrize("entries", [1, 50])
def test_state_built_in_slabs_matches_one_slab(monkeypatch, entries):
    """The state is built from the permuted matrix a slab of tile rows at a time: tiles, row and
    column profiles and the walk are those of a build from one slab (the whole matrix)."""
    import permsolve.problem as problem_module
    p = coupled_problem(seed=3)
    perms = random_perms(p, seed=4)
    whole = AnnealState(p, perms)
    monkeypatch.setattr(problem_module, "GATHER_ENTRIES", entries)
    assert p.members[0]._slab_rows() < p.members[0].shape[0]      # really in several slabs
    sliced = AnnealState(p, perms)
    for f in ("T", "R", "C", "ksum"):
        np.testing.assert_allclose(getattr(sliced.masks, f), getattr(whole.masks, f), rtol=1e-13, atol=0)
    u = np.random.default_rng(6).random((300, 4))
    assert sliced.run(u, 0.05, 0.99) == pytest.approx(whole.run(u, 0.05, 0.99))
    assert sliced.current == pytest.approx(whole.current, rel=1e-12)
    assert sliced.current == pytest.approx(p.evaluate(sliced.perms()), rel=1e-12)


def random_perms(p, seed):
    r = np.random.default_rng(seed)
    return {k: r.permutation(n) for k, n in p.perm_sizes.items()}


def test_python_kernel_matches_numba():
    p = coupled_problem(seed=2)
    u = np.random.default_rng(5).random((300, 4))
    out = []
    for kernel in ("numba", "python"):
        st = AnnealState(p, p.identity(), kernel=kernel)
        st.run(u, 0.05, 0.99)
        out.append((st.current, st.perms()))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    assert all(np.array_equal(out[0][1][k], out[1][1][k]) for k in out[0][1])


def test_same_seed_same_result_different_seed_runs():
    p = TileProblem.from_matrix(scaled_matrix(64, 64, seed=4), tile=(8, 8), sparsity=0.5)
    kw = dict(moves=30_000, start="identity")
    a = solve(p, "anneal", seed=3, **kw)
    b = solve(p, "anneal", seed=3, **kw)
    assert a.retained == b.retained and np.array_equal(a.row_perm, b.row_perm)
    assert a.nit == b.nit > 30_000


def test_warm_start_is_never_worse():
    p = TileProblem.from_matrix(scaled_matrix(64, 48, seed=6), tile=(8, 8), sparsity=0.5, axis="both")
    ws = solve(p, "hungarian").perms
    r = solve(p, "anneal", init=ws, moves=20_000, t0_factor=5.0)   # hot: the walk wanders far from ws
    assert r.retained >= p.evaluate(ws)
    assert r.info["start_value"] == pytest.approx(p.evaluate(ws))


def test_recovers_planted_optimum_from_identity():
    inst = planted(64, 64, tile=(8, 8), seed=0)
    p = TileProblem.from_matrix(inst.S, tile=inst.tile, sparsity=inst.sparsity)
    assert p.evaluate(p.identity()) < 0.9 * inst.optimum
    r = solve(p, "anneal", start="identity", seed=0)
    assert r.retained >= 0.999 * inst.optimum


def test_beats_hungarian_on_scaled_random():
    p = TileProblem.from_matrix(scaled_matrix(128, 128, seed=8), tile=(8, 8), sparsity=0.5, mask="row-balanced")
    h = solve(p, "hungarian")
    r = solve(p, "anneal", seed=0, moves=300_000)   # from greedy, not from the hungarian answer
    assert r.retained > h.retained


def test_no_time_limit_terminates_with_default_budget():
    p = TileProblem.from_matrix(scaled_matrix(16, 16, seed=9), tile=(4, 4), sparsity=0.5)
    r = solve(p, "anneal", start="greedy")
    assert 100_000 <= r.nit <= 110_000        # default budget: max(100 000, 2000 x units) plus calibration


def test_clock_schedule_uses_the_time_limit():
    p = TileProblem.from_matrix(scaled_matrix(512, 256, seed=10), tile=(16, 16), sparsity=0.5)
    r = solve(p, "anneal", time_limit=1.0, start="greedy")
    assert 0.8 <= r.seconds <= 1.2
    assert r.info["moves"] > 10_000


@pytest.mark.parametrize("bad", [{"start": "random"}, {"kernel": "cuda"}, {"restarts": 0}, {"t_end_factor": 2.0},
                                 {"moves": 0}])
def test_bad_option_values_rejected(bad):
    with pytest.raises(ValueError, match="anneal"):
        Anneal(**bad)


@pytest.mark.parametrize("kernel", ["numba", "python"])
def test_topk_fresh_matches_sorting(kernel):
    """The selection behind row-balanced row moves: exact top-k sum and k-th largest
    for any guess, with ties (many equal values) and k at both ends."""
    from permsolve.solvers.anneal import load_kernel

    K = load_kernel(kernel)
    r = np.random.default_rng(7)
    for trial in range(300):
        n = int(r.integers(1, 70))
        v = np.round(r.random(n) * (3 if trial % 3 == 0 else 1000), 1)
        k = int(r.integers(0, n + 1))
        guess = float(r.choice(v)) if trial % 2 else float(r.random() * 1000)
        s, th = K._topk_fresh(v, k, guess, np.zeros(3 * n))
        top = np.sort(v)[::-1][:k]
        assert s == pytest.approx(top.sum(), rel=1e-12, abs=1e-12)
        if 0 < k:
            assert th == top[-1]


def test_python_kernel_is_python_throughout():
    """The plain-Python copy of the split kernel loads the plain-Python copies of its other files."""
    import inspect

    from permsolve.solvers.anneal import load_kernel

    K = load_kernel("python")
    for name in ("run_moves", "_eval_binding", "_apply_binding", "band_rebuild", "_band_apply", "_topk_band",
                 "_topk_fresh"):
        assert inspect.isfunction(getattr(K, name)), name


def test_kernel_cache_stamp_covers_the_files_it_loads():
    """numba judges a cached function fresh by its own file: the kernel's stamp must also cover the
    files whose helpers its compiled code contains (else an edited helper would run stale)."""
    import os

    from permsolve.solvers import _kernel_jit
    from permsolve.solvers.anneal import load_kernel

    K = load_kernel("numba")
    deps = {os.path.basename(f) for f in _kernel_jit._DEPENDS[os.path.abspath(K.__file__)]}
    assert deps == {"_anneal_eval.py", "_anneal_band.py", "_anneal_topk.py"}
    locator = getattr(getattr(getattr(K.run_moves, "_cache", None), "_impl", None), "locator", None)
    if locator is None:
        pytest.skip("numba's cache internals differ: per-file stamps only")
    assert type(locator).__name__ == "KernelGroupLocator"
