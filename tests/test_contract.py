"""The contract every registered solver must meet.

Parametrised over the registry itself (nevergrad-style), so a new solver gets
the whole suite without anyone adding a line.  Solver-specific tests live in
their own files.
"""
import time

import numpy as np
import pytest

import permsolve
from permsolve import Member, TileProblem, solve
from permsolve.result import REL_TOL

from .conftest import scaled_matrix

SOLVERS = sorted(permsolve.available_solvers())
# generous limits keep exact solvers quick on the small contract instances
LIMIT = {"ilp": 5.0}
# anytime solvers stop on a move budget where the clock is not what a test checks (fast, deterministic)
BUDGET = {"anneal": {"moves": 20_000}}


def run(problem, name, **kw):
    cls = permsolve.get_solver(name)
    why = cls().supports(problem)
    if why:
        pytest.skip(why)
    if "time_limit" not in kw:
        kw["time_limit"] = LIMIT.get(name)
        for k, v in BUDGET.get(name, {}).items():
            kw.setdefault(k, v)
    return solve(problem, name, **kw)


def reference_value(problem, perms) -> float:
    """The objective recomputed in plain Python, independently of ``TileProblem.evaluate``:
    build each permuted matrix element by element, sum its tiles with loops, and keep the
    best tiles of every group of the member's mask family."""
    total = 0.0
    for mem in problem.members:
        S = mem.importance
        m, n = S.shape
        (h, w), s = mem.tile, mem.sparsity

        def index(perm_name, unit, layout, size):
            if perm_name is None:
                return list(range(size))
            perm = [int(x) for x in perms[perm_name]]
            P = size // unit
            out = [0] * size
            for p, q in enumerate(perm):
                for e in range(unit):
                    src, dst = (q * unit + e, p * unit + e) if layout == "contiguous" else (e * P + q, e * P + p)
                    out[dst] = src
            return out

        ri = index(mem.rows, mem.row_unit, mem.row_layout, m)
        ci = index(mem.cols, mem.col_unit, mem.col_layout, n)
        mb, nb = -(-m // h), -(-n // w)
        T = [[0.0] * nb for _ in range(mb)]
        for i in range(m):
            for j in range(n):
                T[i // h][j // w] += float(S[ri[i], ci[j]])
        gid, keep = mem.mask.groups(mb, nb, s)
        by_group = {}
        for a in range(mb):
            for b in range(nb):
                by_group.setdefault(int(gid[a, b]), []).append(T[a][b])
        for g, vals in by_group.items():
            total += sum(sorted(vals, reverse=True)[: int(keep[g])])
    return total


def check(problem, r):
    for k, n in problem.perm_sizes.items():
        p = r.perms[k]
        assert sorted(p.tolist()) == list(range(n)), f"{k} is not a permutation"
    # the reported value against an independent plain-Python recomputation (the registry's own
    # re-evaluation uses TileProblem.evaluate, so comparing with that could not fail)
    assert r.retained == pytest.approx(reference_value(problem, r.perms), rel=1e-9, abs=1e-12)
    assert r.retained <= problem.bound * (1 + REL_TOL) + 1e-12
    assert r.bound <= problem.bound * (1 + REL_TOL) + 1e-12
    assert r.retained <= r.bound * (1 + REL_TOL) + 1e-12
    assert r.total == pytest.approx(problem.total)
    assert r.trace and r.trace[-1][1] == pytest.approx(r.retained, rel=1e-9)


CASES = {
    # name: (shape, tile, sparsity)
    "square": ((24, 24), (4, 4), 0.5),
    "non-divisible": ((23, 17), (4, 3), 0.4),
    "tile-1x1": ((10, 9), (1, 1), 0.5),
    "tile-as-matrix": ((8, 6), (8, 6), 0.0),
    "column-tile": ((32, 8), (8, 1), 0.75),
    "sparsity-0": ((16, 12), (4, 4), 0.0),
}


def _mask_cases():
    """(case, mask) pairs: every case for masks of any tile and sparsity; for a mask that fixes
    them (N:M) the tile and sparsity of a case do not apply, so two shapes suffice."""
    out = []
    for spec, mask in sorted(permsolve.MASKS.items()):
        cases = CASES if mask.fixed_tile is None else ["square", "non-divisible"]
        out += [(c, spec) for c in cases]
    return out


def mask_problem(case, spec, axis, seed=None):
    shape, tile, s = CASES[case]
    mask = permsolve.get_mask(spec)
    if mask.fixed_tile is not None:          # whole N:M groups of columns; tile and sparsity from the mask
        m, n = shape
        shape, tile, s = (m, -(-n // mask.m) * mask.m), mask.fixed_tile, mask.fixed_sparsity
    S = scaled_matrix(*shape, seed=len(case) if seed is None else seed)
    return TileProblem.from_matrix(S, tile=tile, sparsity=s, mask=mask, axis=axis)


@pytest.mark.parametrize("name", SOLVERS)
class TestSolverContract:
    @pytest.mark.parametrize("case,mask", _mask_cases())
    @pytest.mark.parametrize("axis", ["rows", "cols", "both"])
    def test_valid_and_bounded(self, name, case, axis, mask):
        p = mask_problem(case, mask, axis)
        r = run(p, name)
        check(p, r)
        assert r.solver == name
        assert all(p.members[0].mask.admissible(M, p.members[0].sparsity) for M in p.masks(r.perms))
        if p.members[0].sparsity == 0.0:
            assert r.retained == pytest.approx(p.total)

    def test_all_zero_matrix(self, name):
        p = TileProblem.from_matrix(np.zeros((12, 10)), tile=(4, 4), sparsity=0.5)
        r = run(p, name)
        check(p, r)
        assert r.retained == 0.0 and r.optimal

    @pytest.mark.parametrize("axis", ["rows", "cols"])
    def test_never_worse_than_warm_start(self, name, axis):
        S = scaled_matrix(32, 32, seed=3)
        p = TileProblem.from_matrix(S, tile=(4, 4), sparsity=0.5, axis=axis)
        key = "row" if axis == "rows" else "col"
        # a strong warm start: the hungarian answer from another start
        ws = solve(p, "hungarian", start="identity").perms
        r = run(p, name, init=ws)
        check(p, r)
        assert r.retained >= p.evaluate(ws) * (1 - 1e-12)
        assert key in r.perms

    def test_same_seed_same_answer(self, name):
        p = TileProblem.from_matrix(scaled_matrix(20, 20, seed=5), tile=(4, 4), sparsity=0.5, axis="rows")
        a = run(p, name, seed=7, time_limit=None)
        b = run(p, name, seed=7, time_limit=None)
        assert a.retained == b.retained
        assert all(np.array_equal(a.perms[k], b.perms[k]) for k in a.perms)

    def test_time_limit_honoured(self, name):
        cls = permsolve.get_solver(name)
        if not cls.anytime:
            pytest.skip(f"{name} is not an anytime solver (it finishes in one step)")
        p = TileProblem.from_matrix(scaled_matrix(256, 256, seed=9), tile=(8, 8), sparsity=0.5)
        limit = 1.0
        t0 = time.perf_counter()
        r = run(p, name, time_limit=limit)
        wall = time.perf_counter() - t0
        check(p, r)
        assert r.seconds <= 1.2 * limit, f"{name} took {r.seconds:.2f}s for a {limit}s limit"
        assert wall <= 1.2 * limit + 0.5  # result assembly (bound, re-evaluation) may add a little

    def test_unknown_option_rejected(self, name):
        with pytest.raises(ValueError, match="no option 'bogus'"):
            permsolve.get_solver(name)(bogus=1)

    def test_coupled_problem(self, name):
        """Two matrices share one permutation: rows of a producer, unit-3 columns of a consumer."""
        r0 = np.random.default_rng(1)
        prod = Member(np.abs(r0.standard_normal((12, 10))), (4, 5), 0.5, rows="c", name="producer")
        cons = Member(np.abs(r0.standard_normal((8, 36))), (4, 6), 0.5, cols="c", col_unit=3, name="consumer")
        p = TileProblem([prod, cons])
        r = run(p, name)
        check(p, r)


def _brute_force(problem):
    import itertools
    (name, n), = problem.perm_sizes.items()
    return max(problem.evaluate({name: np.array(p)}) for p in itertools.permutations(range(n)))


EXACT_CASES = [((7, 6), (2, 3), 0.5, "global", "rows"), ((7, 6), (2, 3), 0.5, "row-balanced", "rows"),
               ((6, 7), (3, 2), 0.4, "global", "cols"), ((5, 8), (2, 2), 0.5, "row-balanced", "cols"),
               ((4, 8), None, None, "2:4", "cols"), ((3, 8), None, None, "1:4", "cols")]


@pytest.mark.parametrize("name", [n for n in SOLVERS if permsolve.get_solver(n).exact])
@pytest.mark.parametrize("case", range(len(EXACT_CASES)))
def test_exact_solvers_reach_the_brute_force_optimum(name, case):
    """A solver that declares itself exact finds the optimum (enumerated) and says it is optimal."""
    shape, tile, s, mask, axis = EXACT_CASES[case]
    S = scaled_matrix(*shape, seed=100 + case) ** 2
    p = TileProblem.from_matrix(S, tile=tile, sparsity=s, mask=mask, axis=axis)
    if permsolve.get_solver(name)().supports(p):
        pytest.skip(permsolve.get_solver(name)().supports(p))
    r = solve(p, name, time_limit=None)
    best = _brute_force(p)
    assert r.retained == pytest.approx(best, rel=1e-9)
    assert r.optimal and r.bound == pytest.approx(best, rel=1e-9)


def test_reference_value_is_independent_and_agrees():
    """The plain-Python reference of ``check`` agrees with evaluate on every mask, layout and axis."""
    r0 = np.random.default_rng(4)
    a = Member(r0.random((6, 12)), mask="2:4", cols="c", col_unit=3, col_layout="strided", name="a")
    b = Member(r0.random((4, 6)), (2, 2), 0.5, "row-balanced", rows="c", name="b")
    c = Member(r0.random((5, 12)), (2, 3), 0.4, "global", rows="r", cols="c", col_unit=3, name="c")
    p = TileProblem([a, b, c])
    for seed in range(5):
        perms = {k: np.random.default_rng(seed).permutation(n) for k, n in p.perm_sizes.items()}
        assert reference_value(p, perms) == pytest.approx(p.evaluate(perms), rel=1e-12)


def test_registry_lists_the_four_required_solvers():
    for required in ("identity", "greedy", "hungarian"):
        assert required in SOLVERS
    assert "ilp" in SOLVERS and "anneal" in SOLVERS, "ilp and anneal must be registered"


def test_unknown_solver_lists_known():
    with pytest.raises(ValueError, match="known solvers: .*greedy"):
        solve(TileProblem.from_matrix(np.ones((4, 4)), tile=(2, 2), sparsity=0.5), "nope")


def test_duplicate_registration_refused():
    from permsolve.registry import Solver, register

    class Fake(Solver):
        name = "greedy"
        description = "a second greedy"

    with pytest.raises(ValueError, match="already registered"):
        register(Fake)


def test_solvers_subpackage_does_not_shadow_the_listing():
    import permsolve.solvers  # noqa: F401  (the sub-package of solver modules)

    assert callable(permsolve.available_solvers) and "greedy" in permsolve.available_solvers()


def test_greedy_returns_tiletrans_order_even_when_identity_keeps_more():
    """TileTrans applies its sort unconditionally; so does `greedy` (without a warm start)."""
    S = np.array([[5.0, 0], [6, 0], [0, 5.5], [0, 6.5]])  # identity pairs rows sharing a column
    p = TileProblem.from_matrix(S, tile=(2, 1), sparsity=0.5)
    r = solve(p, "greedy")
    assert p.evaluate() == 23.0 and r.retained == 12.5  # the sort interleaves them
    assert r.row_perm.tolist() == np.argsort(S.sum(axis=1), kind="stable").tolist()
    assert r.retained == pytest.approx(p.evaluate({"row": r.row_perm}))


@pytest.mark.parametrize("name", ["hungarian", "anneal"])
def test_search_keeps_tiletrans_order_when_the_objective_ties(name):
    """At sparsity 0 every order keeps everything: the searching solvers return
    TileTrans's sort (what ``greedy`` returns), not the identity.  In a model
    with the global budget this is what keeps a layer that the unpermuted
    threshold prunes entirely from being left in an order no better than
    plain tile pruning (README, TileTrans experiment)."""
    S = np.random.default_rng(3).random((32, 24)) * np.linspace(2, 0.1, 32)[:, None]
    p = TileProblem.from_matrix(S, tile=(8, 8), sparsity=0.0)
    g = solve(p, "greedy")
    r = solve(p, name, seed=0, **({"moves": 2000} if name == "anneal" else {}))
    assert not np.array_equal(g.row_perm, np.arange(32))
    assert np.array_equal(r.row_perm, g.row_perm)
