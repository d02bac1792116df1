"""The N:M benchmark's own pieces: the apex-style baseline reproduces apex, the enumeration agrees."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from permsolve import TileProblem, solve

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "nm_apex.py"
_spec = importlib.util.spec_from_file_location("nm_apex_bench", _path)
nm_apex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nm_apex)


def test_channel_swap_reproduces_apex_on_its_instance():
    np.random.seed(1)
    S = np.random.rand(128, 64)
    perm, seconds, finished = nm_apex.channel_swap(S, 2, 4, time_limit=60)
    assert finished
    # apex's published channel-swap value on this instance (Pool & Yu; apex README)
    assert nm_apex.nm_value(S, perm, 2, 4) == pytest.approx(2913.351, abs=5e-4)


def test_enumeration_agrees_with_exact_dp():
    S = np.random.default_rng(4).random((6, 12))
    for n, m in ((2, 4), (1, 4), (3, 4)):
        e = nm_apex.enumerate_optimum(S, n, m)
        r = solve(TileProblem.from_matrix(S, mask=f"{n}:{m}"), "nm-exact")
        assert e == pytest.approx(r.retained, abs=1e-9)


def test_row_bound_matches_the_mask_bound():
    S = np.random.default_rng(5).random((9, 16))
    p = TileProblem.from_matrix(S, mask="2:4")
    assert nm_apex.row_bound(S, 2, 4) == pytest.approx(p.bound)
