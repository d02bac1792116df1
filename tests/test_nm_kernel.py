"""The N:M kernels, move by move against their plain-Python copy, and the exact DP
against full enumeration."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from permsolve.solvers._nm_common import load_kernel

K = load_kernel("numba")
KP = load_kernel("python")


def ref_value(S, perm, n, m):
    """Plain numpy: sort every group of every row."""
    Sp = S[:, perm]
    rows, cols = Sp.shape
    g = np.sort(Sp.reshape(rows, cols // m, m), axis=2)
    return float(g[:, :, m - n:].sum())


def partitions(cols, m):
    """Every partition of ``cols`` into groups of ``m`` (the group holding the lowest first)."""
    if not cols:
        yield []
        return
    first, rest = cols[0], cols[1:]
    for others in itertools.combinations(rest, m - 1):
        left = [c for c in rest if c not in others]
        for tail in partitions(left, m):
            yield [(first,) + others] + tail


def brute_force(S, n, m):
    best, arg = -1.0, None
    for part in partitions(list(range(S.shape[1])), m):
        perm = np.array([c for g in part for c in g])
        v = ref_value(S, perm, n, m)
        if v > best:
            best, arg = v, perm
    return best, arg


NM = [(2, 4), (1, 4), (3, 4), (1, 2), (2, 3), (4, 8), (5, 8)]


@pytest.mark.parametrize("n,m", NM)
def test_topn_and_value(n, m):
    rng = np.random.default_rng(n * 31 + m)
    for _ in range(50):
        buf = rng.random(m)
        buf[rng.random(m) < 0.3] = 0.25        # ties
        want = float(np.sort(buf)[m - n:].sum())
        assert K.topn_buf(buf, m, n) == pytest.approx(want, abs=1e-12)
        assert KP.topn_buf(buf, m, n) == pytest.approx(want, abs=1e-12)
    S = rng.random((7, 4 * m))
    perm = rng.permutation(4 * m)
    ST = np.ascontiguousarray(S.T)
    assert K.value(ST, perm, n, m) == pytest.approx(ref_value(S, perm, n, m), abs=1e-9)


def _state(kern, S, perm, n, m):
    ST = np.ascontiguousarray(S.T)
    C, R = ST.shape
    P = np.empty((C, R))
    gv, TN, TN1 = np.empty((C // m, R)), np.empty((C // m, R)), np.empty((C // m, R))
    p = perm.copy()
    v = kern.init_state(ST, p, n, m, P, gv, TN, TN1)
    return ST, P, gv, p, v, TN, TN1


@pytest.mark.parametrize("n,m", [(2, 4), (1, 3), (4, 8)])
def test_anneal_moves_match_python_move_by_move(n, m):
    rng = np.random.default_rng(7)
    S = rng.random((9, 5 * m))
    S[S < 0.2] = 0.0
    perm0 = rng.permutation(5 * m)
    st = [_state(kern, S, perm0, n, m) for kern in (K, KP)]
    assert st[0][4] == pytest.approx(ref_value(S, perm0, n, m), abs=1e-9)
    vals = [np.array([st[0][4], st[0][4]]), np.array([st[1][4], st[1][4]])]
    best = [st[0][3].copy(), st[1][3].copy()]
    stats = [np.zeros(K.N_STATS, dtype=np.int64), np.zeros(K.N_STATS, dtype=np.int64)]
    temp = [0.3, 0.3]
    for step in range(200):              # one move per call: compare after every move
        r = rng.random((1, 3))
        for i, kern in enumerate((K, KP)):
            ST, P, gv, perm, _, TN, TN1 = st[i]
            temp[i] = kern.anneal_moves(P, gv, TN, TN1, perm, best[i], n, m, r, temp[i], 0.99, vals[i], stats[i])
        assert np.array_equal(st[0][3], st[1][3]), step
        np.testing.assert_allclose(st[0][2], st[1][2], atol=1e-12)
        np.testing.assert_allclose(vals[0], vals[1], atol=1e-9)
        assert vals[0][0] == pytest.approx(ref_value(S, st[0][3], n, m), abs=1e-9)
        assert np.array_equal(stats[0], stats[1])
        fresh = _state(K, S, st[0][3], n, m)
        for x, y in zip(st[0][1:3] + st[0][5:7], fresh[1:3] + fresh[5:7]):
            np.testing.assert_allclose(x, y, atol=1e-12)
    # the best permutation kept is worth the best value
    assert vals[0][1] == pytest.approx(ref_value(S, best[0], n, m), abs=1e-9)
    assert stats[0][K.ST_ACCEPTED] > 0 and stats[0][K.ST_ACCEPTED] < stats[0][K.ST_MOVES]


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 4), (1, 2), (4, 8), (7, 8), (2, 3)])
def test_swap_delta_is_exact_with_ties(n, m):
    rng = np.random.default_rng(11)
    S = rng.integers(0, 4, size=(8, 4 * m)).astype(float)    # many ties
    perm0 = rng.permutation(4 * m)
    rand = rng.random((60, 3))
    for kern in (K, KP):
        ST, P, gv, perm, v0, TN, TN1 = _state(kern, S, perm0, n, m)
        out = np.zeros(len(rand))
        kern.probe(P, gv, TN, TN1, m, rand, out)
        for (r0, r1, _), d in zip(rand, out):
            p, q = kern._draw(r0, r1, 4 * m, m)
            assert p // m != q // m
            sw = perm0.copy()
            sw[[p, q]] = sw[[q, p]]
            assert d == pytest.approx(ref_value(S, sw, n, m) - v0, abs=1e-9)


@pytest.mark.parametrize("n,m,k", [(2, 4, 2), (2, 4, 3), (1, 3, 3), (3, 5, 2), (1, 2, 3)])
def test_window_apply_is_the_best_repartition(n, m, k):
    rng = np.random.default_rng(3)
    G = 5
    S = rng.random((6, G * m)) ** 3
    for trial in range(6):
        perm0 = rng.permutation(G * m)
        groups = np.sort(rng.choice(G, size=k, replace=False)).astype(np.int64)
        res = []
        for kern in (K, KP):
            ST, P, gv, perm, v0, TN, TN1 = _state(kern, S, perm0, n, m)
            tab = np.zeros(1 << (k * m))
            gain = kern.window_apply(ST, P, gv, TN, TN1, perm, n, m, groups, tab, 1e-12)
            res.append((gain, perm.copy(), gv.copy()))
            # the incremental state matches a rebuild
            _, P2, gv2, _, v2, TN2, TN12 = _state(kern, S, perm, n, m)
            assert v2 == pytest.approx(v0 + gain, abs=1e-9)
            for x, y in ((P, P2), (gv, gv2), (TN, TN2), (TN1, TN12)):
                np.testing.assert_allclose(x, y, atol=1e-12)
        assert res[0][0] == pytest.approx(res[1][0], abs=1e-12)
        assert np.array_equal(res[0][1], res[1][1])
        # brute force over the window's columns, the other groups fixed
        cols = [int(perm0[g * m + j]) for g in groups for j in range(m)]
        others = [int(perm0[g * m + j]) for g in range(G) if g not in groups for j in range(m)]
        best = max(ref_value(S, np.array([c for grp in part for c in grp] + others), n, m)
                   for part in partitions(cols, m))
        v0 = ref_value(S, perm0, n, m)
        assert v0 + res[0][0] == pytest.approx(max(best, v0), abs=1e-9)
        # untouched groups stay where they were
        mask = np.ones(G * m, dtype=bool)
        for g in groups:
            mask[g * m:(g + 1) * m] = False
        assert np.array_equal(res[0][1][mask], perm0[mask])


@pytest.mark.parametrize("n,m,cols", [(2, 4, 8), (2, 4, 12), (1, 4, 12), (3, 4, 12), (1, 3, 9), (2, 3, 12),
                                      (1, 2, 10), (4, 8, 16), (2, 4, 16)])
def test_exact_dp_matches_enumeration(n, m, cols):
    rng = np.random.default_rng(cols * 10 + n)
    rows = 5 if cols < 16 else 3
    S = rng.random((rows, cols))
    if cols == 16 and m == 4:
        S = S[:, :16]
    ST = np.ascontiguousarray(S.T)
    v, perm, trans = K.exact_dp(ST, n, m)
    assert sorted(perm.tolist()) == list(range(cols))
    assert v == pytest.approx(ref_value(S, perm, n, m), abs=1e-9)
    if cols <= 12 or m == 8:
        want, _ = brute_force(S, n, m)
        assert v == pytest.approx(want, abs=1e-9)
    if cols <= 9:
        vp, permp, transp = KP.exact_dp(ST, n, m)
        assert vp == pytest.approx(v, abs=1e-9) and transp == trans
