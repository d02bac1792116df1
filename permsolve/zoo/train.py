"""Train the zoo's models and write the checkpoints shipped with the package.

``python -m permsolve.zoo.train [--models mlp resnet ...] [--out DIR]``

Seeded and single-process; a few minutes on 2 CPU cores.  Writes
``<name>.pt`` (state dict) and updates ``info.json`` with the validation and
test accuracy, the parameter count and the training settings.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: per-model training settings (Adam, cosine schedule, batch 64)
SETTINGS = {
    "mlp": {"epochs": 60, "lr": 3e-3, "weight_decay": 1e-4},
    "alexnet": {"epochs": 40, "lr": 2e-3, "weight_decay": 1e-4},
    "resnet": {"epochs": 30, "lr": 3e-3, "weight_decay": 1e-4},
    "concatnet": {"epochs": 40, "lr": 2e-3, "weight_decay": 1e-4},
}


def train(name: str, seed: int = 0) -> tuple[object, dict]:
    """Train zoo model ``name`` from scratch; returns ``(model, info)``.

    Parameters
    ----------
    name : str
        A zoo model with an entry in :data:`SETTINGS` (epochs, learning rate, weight decay).
    seed : int
        Seeds the initialisation and the batch order.

    Returns
    -------
    model : torch.nn.Module
        The trained model, in eval mode.
    info : dict
        The settings, parameter count, accuracies per split, training time and torch version.

    Examples
    --------
    >>> saved = dict(SETTINGS["mlp"])
    >>> SETTINGS["mlp"]["epochs"] = 1              # a quick run; the shipped one trains 60 epochs
    >>> model, rec = train("mlp")
    >>> SETTINGS["mlp"].update(saved)
    >>> rec["epochs"], rec["params"] == sum(p.numel() for p in model.parameters()), 0 <= rec["val_acc"] <= 1
    (1, True, True)
    """
    import torch

    from . import build, evaluate, finetune

    torch.manual_seed(seed)
    model = build(name)
    cfg = SETTINGS[name]
    t0 = time.perf_counter()
    finetune(model, epochs=cfg["epochs"], lr=cfg["lr"], seed=seed, weight_decay=cfg["weight_decay"])
    seconds = time.perf_counter() - t0
    rec = {**cfg, "seed": seed, "params": sum(p.numel() for p in model.parameters()),
           "val_acc": evaluate(model, "val"), "test_acc": evaluate(model, "test"),
           "train_acc": evaluate(model, "train"), "train_seconds": round(seconds, 1),
           "torch": torch.__version__}
    return model, rec


def main(argv=None) -> int:
    """``python -m permsolve.zoo.train``: train the zoo models and write their checkpoints and ``info.json``.

    Parameters
    ----------
    argv : list of str, optional
        ``[--models NAME ...] [--out DIR] [--seed N]`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status, 0.

    Examples
    --------
    >>> import tempfile, os
    >>> saved = dict(SETTINGS["mlp"])
    >>> SETTINGS["mlp"]["epochs"] = 1
    >>> d = tempfile.mkdtemp()
    >>> main(["--models", "mlp", "--out", d])  # doctest: +ELLIPSIS
    mlp        val ...
    0
    >>> SETTINGS["mlp"].update(saved)
    >>> sorted(os.listdir(d))
    ['info.json', 'mlp.pt']
    """
    import torch

    from . import CHECKPOINTS, names

    ap = argparse.ArgumentParser(prog="python -m permsolve.zoo.train", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=names(), choices=names())
    ap.add_argument("--out", type=Path, default=CHECKPOINTS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    info_path = args.out / "info.json"
    data = json.loads(info_path.read_text()) if info_path.exists() else {}
    for name in args.models:
        model, rec = train(name, args.seed)
        torch.save(model.state_dict(), args.out / f"{name}.pt")
        data[name] = rec
        print(f"{name:<10} val {rec['val_acc']:.4f}  test {rec['test_acc']:.4f}  "
              f"params {rec['params']:>7}  {rec['train_seconds']:.1f}s", flush=True)
        info_path.write_text(json.dumps({k: data[k] for k in names() if k in data}, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
