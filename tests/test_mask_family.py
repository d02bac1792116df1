"""A fourth mask family, defined here and nowhere else, runs through the whole stack.

``ColumnBalancedMask``: every column of tiles keeps the same number of tiles,
``mb - round(s * mb)`` (the transpose of row-balanced).  The class below is
all it takes: its groups, its parse rule and its three bounds.  It is
registered for the tests of this file only and unregistered afterwards, so the
rest of the suite never sees it.  The bounds are checked against brute force
over every permutation on tiny matrices.
"""
import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import permsolve
from permsolve import Member, TileProblem, solve
from permsolve.masks import FAMILIES, MASKS, Mask, get_mask, n_pruned, register_mask, topk_sum
from permsolve.result import REL_TOL

from .conftest import scaled_matrix


@dataclass(frozen=True)
class ColumnBalancedMask(Mask):
    """Every column of tiles keeps ``mb - round(s * mb)`` tiles."""

    name: ClassVar[str] = "col-balanced"
    description: ClassVar[str] = "every column of tiles keeps mb - round(s*mb) tiles"

    @classmethod
    def parse(cls, text):
        return cls() if text.strip().lower() == cls.name else None

    def per_col(self, mb: int, s: float) -> int:
        return mb - n_pruned(s, mb)

    def groups(self, mb, nb, s):
        gid = np.tile(np.arange(nb, dtype=np.int64), (mb, 1))          # group = tile column
        return gid, np.full(nb, self.per_col(mb, s), dtype=np.int64)

    def bound_free_rows(self, R, h, mb, s):
        # column block b keeps kc tiles of h rows: at most the kc*h largest row sums inside it
        kc = self.per_col(mb, s)
        return float(sum(topk_sum(R[:, b], kc * h) for b in range(R.shape[1])))

    def bound_free_cols(self, C, w, nb, s):
        # column j lies in one tile column, which keeps kc of the mb row blocks
        kc = self.per_col(C.shape[1], s)
        return float(sum(topk_sum(C[j], kc) for j in range(C.shape[0])))

    def bound_free_both(self, S, h, w, s):
        m, n = S.shape
        mb, nb = -(-m // h), -(-n // w)
        kc = self.per_col(mb, s)
        per_col = float(sum(topk_sum(S[:, j], kc * h) for j in range(n)))   # a column keeps kc tiles of h rows
        return min(per_col, topk_sum(S, nb * kc * h * w))


@pytest.fixture
def col_balanced():
    """Register the family for one test; restore the registries afterwards."""
    families, masks = dict(FAMILIES), dict(MASKS)
    register_mask(ColumnBalancedMask)
    try:
        yield ColumnBalancedMask()
    finally:
        FAMILIES.clear()
        FAMILIES.update(families)
        MASKS.clear()
        MASKS.update(masks)


def _supported(problem):
    out = []
    for name, cls in sorted(permsolve.available_solvers().items()):
        if cls().supports(problem) is None:
            out.append(name)
    return out


def _check(problem, r):
    """The contract of tests/test_contract.py: a permutation, value = evaluate, value <= bound, admissible masks."""
    for k, n in problem.perm_sizes.items():
        assert sorted(r.perms[k].tolist()) == list(range(n))
    assert r.retained == pytest.approx(problem.evaluate(r.perms), rel=1e-12, abs=1e-12)
    assert r.retained <= problem.bound * (1 + REL_TOL) + 1e-12
    assert r.retained <= r.bound * (1 + REL_TOL) + 1e-12
    for mem, M in zip(problem.members, problem.masks(r.perms)):
        assert mem.mask.admissible(M, mem.sparsity)


def test_registered_family_is_named_parsed_and_listed(col_balanced):
    assert get_mask("col-balanced") == col_balanced and str(col_balanced) == "col-balanced"
    assert "col-balanced" in FAMILIES and "col-balanced" in MASKS
    T = np.array([[4.0, 1.0], [3.0, 2.0], [0.0, 9.0]])
    keep = col_balanced.select(T, 0.5)              # 3 tile rows: each column keeps 3 - round(1.5) = 1
    assert keep.astype(int).tolist() == [[1, 0], [0, 0], [0, 1]]
    assert col_balanced.retained(T, 0.5) == 13.0 and col_balanced.admissible(keep, 0.5)
    assert not col_balanced.admissible(np.array([[1, 0], [1, 0], [0, 1]], bool), 0.5)   # column 0 keeps 2


def test_unregistered_after_the_test():
    assert "col-balanced" not in FAMILIES and "col-balanced" not in MASKS
    with pytest.raises(ValueError, match="unknown mask"):
        get_mask("col-balanced")


CASES = [((24, 24), (4, 4), 0.5), ((23, 17), (4, 3), 0.4), ((10, 9), (1, 1), 0.5), ((32, 8), (8, 1), 0.75)]


@pytest.mark.parametrize("axis", ["rows", "cols", "both"])
@pytest.mark.parametrize("shape,tile,s", CASES)
def test_every_supporting_solver_meets_the_contract(col_balanced, shape, tile, s, axis):
    p = TileProblem.from_matrix(scaled_matrix(*shape, seed=sum(shape)), tile=tile, sparsity=s,
                                mask="col-balanced", axis=axis)
    names = _supported(p)
    assert {"identity", "greedy", "hungarian"} <= set(names)       # generic solvers take any family
    for name in names:
        r = solve(p, name, time_limit=1.0 if permsolve.get_solver(name).anytime else None, seed=0)
        _check(p, r)
        if name == "identity":
            assert r.retained == pytest.approx(p.evaluate())
        else:
            assert r.retained >= p.evaluate() * (1 - 1e-12) or name == "greedy"


def test_coupled_problem_with_the_new_family(col_balanced):
    rng = np.random.default_rng(1)
    prod = Member(np.abs(rng.standard_normal((12, 10))), (4, 5), 0.5, mask="col-balanced", rows="c")
    cons = Member(np.abs(rng.standard_normal((8, 36))), (4, 6), 0.5, mask="col-balanced", cols="c", col_unit=3)
    p = TileProblem([prod, cons])
    for name in _supported(p):
        _check(p, solve(p, name, time_limit=1.0 if permsolve.get_solver(name).anytime else None))


def _brute_force(p):
    names = p.perm_names
    best = -np.inf
    for combo in itertools.product(*(itertools.permutations(range(p.perm_sizes[k])) for k in names)):
        best = max(best, p.evaluate({k: np.array(c) for k, c in zip(names, combo)}))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("axis,shape,tile,s", [
    ("rows", (6, 4), (2, 2), 0.5), ("rows", (7, 3), (2, 1), 0.4),
    ("cols", (4, 6), (2, 2), 0.5), ("cols", (5, 6), (1, 2), 0.6),
    ("both", (4, 4), (2, 1), 0.5), ("both", (4, 5), (1, 2), 0.5),
])
def test_bounds_hold_against_brute_force(col_balanced, axis, shape, tile, s, seed):
    # heavy-tailed entries so that the best order matters
    S = np.random.default_rng(seed).lognormal(0.0, 1.5, shape)
    p = TileProblem.from_matrix(S, tile=tile, sparsity=s, mask="col-balanced", axis=axis)
    opt = _brute_force(p)
    assert opt <= p.bound * (1 + REL_TOL) + 1e-12
    assert p.evaluate() <= opt + 1e-12 and p.bound <= p.total + 1e-9


def test_torch_side_takes_the_new_family(col_balanced):
    torch = pytest.importorskip("torch")
    from permsolve import zoo
    from permsolve.torch.prune import prune_model

    torch.set_num_threads(1)
    model = zoo.load("mlp")
    rep = prune_model(model, zoo.digits("val")[0][:32], tile=(16, 16), sparsity=0.5, mask="col-balanced",
                      budget="layer", solver="hungarian", scope="group")
    assert rep.permute is not None and all(g.skipped is None for g in rep.permute.groups)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            M = mod.weight_mask.numpy()
            m, n = M.shape
            mb, nb = -(-m // 16), -(-n // 16)
            tiles = np.zeros((mb * 16, nb * 16))
            tiles[:m, :n] = M
            kept = tiles.reshape(mb, 16, nb, 16).max(axis=(1, 3))       # a tile is kept if any entry is
            assert (kept.sum(axis=0) == mb - n_pruned(0.5, mb)).all(), name
