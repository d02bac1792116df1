"""Trace and permute a 12-layer BERT-base-sized random model (hidden 768) with ``permute_model``.

``python benchmarks/bert_base_permute.py [--solver greedy] [--repeats 3] [--threads 2] [--tokens 32]``

The model is ``BertModel(BertConfig())`` (12 layers, hidden 768, 12 heads,
FFN 3072; random init, seed 0, built offline) on a batch of 2 x ``--tokens``
random token ids.  Each repeat builds a fresh model and times one
``permute_model`` call end to end: torch.export trace, channel groups (per-head
Q/K and V/O groups, whole heads, FFN), one solve per group, writing the
permutations, and the eval-mode output check.  Prints the median and min of
the repeats and the phases of the last one, and writes
``results/models/bert_base.md``.  Target (issue 9): under 60 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solver", default="greedy")
    ap.add_argument("--tile", default="16x16")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "results" / "models" / "bert_base.md"))
    args = ap.parse_args(argv)
    import torch
    import transformers

    from permsolve.torch.graph import channel_graph
    from permsolve.torch.permute import permute_model

    torch.set_num_threads(args.threads)
    cfg = transformers.BertConfig(num_hidden_layers=args.layers)
    ids = torch.randint(0, cfg.vocab_size, (2, args.tokens), generator=torch.Generator().manual_seed(0))
    inp = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    times, cpu, phases = [], [], {}
    for _ in range(args.repeats):
        torch.manual_seed(0)
        model = transformers.BertModel(cfg).eval()
        t0, c0 = time.perf_counter(), time.process_time()
        rep = permute_model(model, inp, tile=args.tile, sparsity=args.sparsity, solver=args.solver)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # the phases, once more: tracing alone
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    t0 = time.perf_counter()
    g = channel_graph(model, inp)
    phases["trace + groups"] = time.perf_counter() - t0
    phases["solves (sum over groups)"] = sum(gr.seconds for gr in rep.groups)
    load = os.getloadavg()
    med = statistics.median(times)
    lines = [
        f"# permute_model on a BERT-base-sized random model ({args.layers} layers, hidden {cfg.hidden_size}, "
        f"{cfg.num_attention_heads} heads, FFN {cfg.intermediate_size})",
        "",
        f"Command: `python benchmarks/bert_base_permute.py --solver {args.solver} --repeats {args.repeats} "
        f"--threads {args.threads} --tokens {args.tokens}`; torch {torch.__version__}, transformers "
        f"{transformers.__version__}; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
        "",
        "| solver | tile | s | repeats | median s | min s | median CPU s | groups | free | permuted groups | "
        "coverage | max rel diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {args.solver} | {args.tile} | {args.sparsity} | {args.repeats} | {med:.2f} | {min(times):.2f} | "
        f"{statistics.median(cpu):.2f} | "
        f"{len(g.groups)} | {len(g.free_groups())} | {sum(x.permuted for x in rep.groups)} | "
        f"{len(rep.permuted)}/{len(rep.prunable)} | {rep.max_abs_diff / max(rep.max_abs_output, 1e-30):.2g} |",
        "",
        "Phases of one call: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        + "; the rest is writing the permutations, the output check (two forward passes) and the state copy "
          "kept to restore the model if the check failed.",
        "",
        "Blocked groups: " + ("; ".join(f"{n}: {', '.join(w)}" for n, w in rep.blocked) or "none"),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print(f"median {med:.2f} s over {args.repeats} runs (target < 60 s on 2 cores)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
