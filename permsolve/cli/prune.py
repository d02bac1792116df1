"""``permsolve prune``: permute and tile-prune a PyTorch model, save the pruned state dict.

``permsolve prune MODEL [--checkpoint PATH] --tile HxW --sparsity S [--mask global|row-balanced|N:M]
[--solver NAME] [--budget global|layer|sensitivity] [--scope layer|group|joint] [--metric l1|l2]
[--time-limit SECONDS] [--seed N] [--input-shape 1,3,32,32] --out PATH [--keep-masks] [--json]``

With ``--mask N:M`` (``2:4``, ``4:8``, ...) neither ``--tile`` nor ``--sparsity``
is given: every layer keeps N of every M consecutive input weights (a conv's
along its input channels at each spatial position), the input channels are
permuted for it, and layers whose input count is not a multiple of M stay
dense (listed as not pruned).

MODEL is a zoo name (``permsolve zoo``; its shipped checkpoint is used and its
validation accuracy is printed before and after), ``module:factory``, a
callable returning an ``nn.Module`` (then ``--input-shape`` gives the example
input used to trace the model and check the permutation), or a directory
holding a Hugging Face ``config.json`` (loaded offline with ``transformers``:
with its weights when the directory has them, else a seeded random
initialisation from the config; ``--input-shape`` is the ``batch,tokens`` of
random ``input_ids``, default ``2,16``, or the shape of ``pixel_values`` for a
vision model).
"""
from __future__ import annotations

import importlib
import json
import os
import sys

from . import UsageError, seconds


def add_parser(sub):
    """Add the ``prune`` sub-command to the ``permsolve`` parser (its ``func`` is :func:`run`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-commands of the ``permsolve`` parser (``parser.add_subparsers()``).

    Examples
    --------
    >>> import argparse
    >>> sub = argparse.ArgumentParser(prog="permsolve").add_subparsers()
    >>> add_parser(sub)
    >>> sub.choices["prune"].parse_args(['mlp', '--tile', '8x1', '--sparsity', '0.5', '--out', 'p.pt']).tile
    '8x1'
    """
    p = sub.add_parser("prune", help="permute and tile-prune a PyTorch model",
                       description="Permute channels (any solver), tile-prune every Linear/Conv weight, "
                                   "save the pruned state dict.")
    p.add_argument("model", metavar="MODEL", help="zoo name, module:factory, or a Hugging Face model directory")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="state dict to load (zoo: the shipped one)")
    p.add_argument("--tile", default=None, metavar="HxW", help="tile shape (not with an N:M mask)")
    p.add_argument("--sparsity", default=None, type=float, metavar="S",
                   help="fraction of tiles pruned (not with an N:M mask)")
    p.add_argument("--mask", default="global", metavar="MASK",
                   help="global (default), row-balanced, or N:M such as 2:4")
    p.add_argument("--solver", default="greedy", metavar="NAME", help="identity = plain tile pruning")
    p.add_argument("--budget", default=None, choices=["global", "layer", "sensitivity"],
                   help="default: global (an N:M mask is per layer)")
    p.add_argument("--scope", default="layer", choices=["layer", "group", "joint"])
    p.add_argument("--metric", default="l1", choices=["l1", "l2"])
    p.add_argument("--time-limit", type=seconds, default=None, metavar="SECONDS", help="per channel group")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--input-shape", default=None, metavar="N,C,...", help="example input shape (module:factory)")
    p.add_argument("--out", required=True, metavar="PATH", help="where to save the pruned state dict (.pt)")
    p.add_argument("--keep-masks", action="store_true",
                   help="save weight_orig/weight_mask (masks stay live) instead of the zeroed weights")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def _factory(spec: str):
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise UsageError(f"MODEL must be a zoo name or module:factory, got {spec!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise UsageError(f"cannot import {mod_name!r}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UsageError(f"module {mod_name!r} has no {attr!r}") from None


def _check_model_name(spec: str, zoo_names) -> None:
    """A MODEL that is neither a zoo name, nor module:factory, nor an existing path is refused by name."""
    from pathlib import Path

    if spec in zoo_names or ":" in spec or Path(spec).exists():
        return
    raise UsageError(f"unknown model {spec!r}: give a zoo name ({', '.join(zoo_names)}) or module:factory")


def _check_out(out: str) -> None:
    """``--out`` must be a file in an existing, writable folder: checked before any work is done."""
    import os
    from pathlib import Path

    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {path / 'pruned.pt'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out {out}: folder {parent} is not writable")


def _check_sparsity(s: float) -> None:
    import math

    if not (math.isfinite(s) and 0.0 <= s < 1.0):
        raise UsageError(f"--sparsity must be in [0, 1), got {s}")


def _check_tile(tile, model) -> None:
    """A tile taller or wider than every prunable weight matrix prunes nothing meaningful: refused."""
    if tile is None:          # an N:M mask fixes its own (1x1) tiles
        return
    from permsolve.metrics import matrix_view
    from permsolve.torch.prune import prunable_layers

    shapes = [matrix_view(mod.weight.detach().numpy()).shape for mod in prunable_layers(model).values()]
    if not shapes:
        raise UsageError("the model has no Linear or Conv layer to prune")
    rows, cols = max(m for m, _ in shapes), max(n for _, n in shapes)
    if tile[0] > rows or tile[1] > cols:
        raise UsageError(f"tile {tile[0]}x{tile[1]} is larger than every layer "
                         f"(the largest weight matrices have {rows} rows and {cols} columns)")


def _load_checkpoint(path: str, model) -> None:
    """Load ``path`` into ``model``; anything but a state dict of this model is a one-line error."""
    from pathlib import Path

    import torch

    p = Path(path)
    if not p.exists():
        raise UsageError(f"--checkpoint {path}: no such file")
    if not p.is_file():
        raise UsageError(f"--checkpoint {path} is not a regular file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:   # not torch, truncated, a pickled module (refused by weights_only), unreadable
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UsageError(f"--checkpoint {path} is not a PyTorch state dict ({type(e).__name__}: {first[:200]})") \
            from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"--checkpoint {path} holds a {type(state).__name__}, not a state dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise UsageError(f"--checkpoint {path} is not a state dict of this model: {len(missing)} keys missing "
                         f"({', '.join(missing[:3])}), {len(extra)} unexpected ({', '.join(extra[:3])})")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise UsageError(f"--checkpoint {path} does not fit this model: {'; '.join(wrong[:3])}")
    model.load_state_dict(state)


def _is_hf_dir(spec: str) -> bool:
    return os.path.isfile(os.path.join(spec, "config.json"))


def _hf_model(path: str, input_shape: str | None, seed: int):
    """A Hugging Face model from a local directory (offline) and an example input for it."""
    import inspect

    import torch
    try:
        import transformers
    except ImportError:
        raise UsageError("a Hugging Face model directory needs the transformers package") from None
    try:
        cfg = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a bad config is the user's input
        raise UsageError(f"cannot read {os.path.join(path, 'config.json')}: {e}") from None
    arch = (getattr(cfg, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    cls = cls or transformers.AutoModel
    has_weights = any(os.path.exists(os.path.join(path, f)) for f in
                      ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"))
    torch.manual_seed(seed)
    try:
        model = (cls.from_pretrained(path, local_files_only=True) if has_weights
                 else (cls.from_config(cfg) if cls is transformers.AutoModel else cls(cfg)))
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot build {arch or 'a model'} from {path}: {e}") from None
    gen = torch.Generator().manual_seed(seed)
    try:
        shape = tuple(int(s) for s in (input_shape or "").split(",")) if input_shape else None
    except ValueError:
        raise UsageError(f"--input-shape must be comma-separated ints, got {input_shape!r}") from None
    if model.main_input_name == "pixel_values":
        size = getattr(cfg, "image_size", 224)
        shape = shape or (2, getattr(cfg, "num_channels", 3), size, size)
        example = {"pixel_values": torch.randn(shape, generator=gen)}
    else:
        shape = shape or (2, 16)
        example = {model.main_input_name: torch.randint(0, int(getattr(cfg, "vocab_size", 2)), shape, generator=gen)}
    if "use_cache" in inspect.signature(model.forward).parameters:
        example["use_cache"] = False
    return model, example


def run(args):
    """Permute and tile-prune a model, print the report and save the pruned state dict.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status, 0; bad input raises :class:`~permsolve.cli.UsageError`.

    Examples
    --------
    >>> from permsolve.cli import main
    >>> main(["prune", "mlp", "--tile", "8x1", "--sparsity", "1.5", "--out", "pruned.pt"])   # refused: status 2
    2
    """
    import torch
    from torch.nn.utils import prune as tprune

    from permsolve import zoo
    from permsolve.problem import parse_tile
    from permsolve.registry import get_solver
    from permsolve.torch.prune import prunable_layers, prune_model

    from permsolve.masks import get_mask

    get_solver(args.solver)
    mask = get_mask(args.mask)
    if mask.fixed_tile is not None:               # N:M: the mask fixes tile, sparsity and the budget
        for flag, value in (("--tile", args.tile), ("--sparsity", args.sparsity), ("--budget", args.budget)):
            if value is not None:
                raise UsageError(f"{flag} does not apply to the {mask} mask (it fixes tile, sparsity and budget)")
        tile = sparsity = None
    else:
        for flag, value in (("--tile", args.tile), ("--sparsity", args.sparsity)):
            if value is None:
                raise UsageError(f"{flag} is required with the {mask} mask")
        tile, sparsity = parse_tile(args.tile), args.sparsity
        _check_sparsity(sparsity)
    _check_out(args.out)
    _check_model_name(args.model, zoo.names())
    is_zoo = args.model in zoo.names()
    if is_zoo:
        model = zoo.load(args.model) if args.checkpoint is None else zoo.build(args.model)
        X = zoo.digits("val")[0]
        example = X[:256]
    elif _is_hf_dir(args.model):
        model, example = _hf_model(args.model, args.input_shape, args.seed)
    elif os.path.isdir(args.model):
        raise UsageError(f"{args.model} is a directory without a config.json (not a Hugging Face model)")
    else:
        if args.input_shape is None:
            raise UsageError("--input-shape is needed for a module:factory model")
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        except ValueError:
            raise UsageError(f"--input-shape must be comma-separated ints, got {args.input_shape!r}") from None
        model = _factory(args.model)()
        example = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
    if args.checkpoint is not None:
        _load_checkpoint(args.checkpoint, model)
    _check_tile(tile, model)
    model.eval()
    acc_before = zoo.evaluate(model) if is_zoo else None
    alloc = None
    if args.budget == "sensitivity":   # SR-init sensitivities, measured on the digits validation split
        if not is_zoo:
            raise UsageError("--budget sensitivity measures accuracy on the digits validation split, "
                             "so it needs a zoo model")
        from permsolve.compress.srinit import sensitivity_allocation

        alloc = sensitivity_allocation(model, float(sparsity), layers=prunable_layers(model))
    report = prune_model(model, example, tile=tile, sparsity=sparsity, mask=mask, solver=args.solver,
                         metric=args.metric, scope=args.scope, budget=args.budget,
                         time_limit=args.time_limit, seed=args.seed, layer_sparsity=alloc)
    acc_after = zoo.evaluate(model) if is_zoo else None
    if not args.keep_masks:
        for mod in prunable_layers(model).values():
            if tprune.is_pruned(mod) and hasattr(mod, "weight_mask"):
                tprune.remove(mod, "weight")
    torch.save(model.state_dict(), args.out)
    if args.json:
        d = report.to_dict()
        d.update(model=args.model, out=args.out, val_acc_before=acc_before, val_acc_after=acc_after)
        json.dump(d, sys.stdout, default=str)
        print()
        return 0
    if report.permute is not None:
        print(report.permute.table())
        print()
    print(report.table())
    if is_zoo:
        print(f"\nvalidation accuracy {acc_before:.4f} -> {acc_after:.4f} (before fine-tuning)")
    print(f"saved {args.out}")
    return 0
