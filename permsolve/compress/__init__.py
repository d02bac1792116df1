"""Compression methods compared with tile pruning on the digits model zoo.

- :mod:`permsolve.compress.flops`: parameter and MAC counting (forward hooks).
- :mod:`permsolve.compress.srinit`: SR-init layer pruning (block sensitivity by
  random re-initialisation, block removal) and the sensitivity-driven per-layer
  sparsity allocation for tile pruning.
- :mod:`permsolve.compress.trp`: TRP, trained rank pruning (periodic SVD
  projection, nuclear-norm term, decomposition into two layers) and the
  truncated-SVD baseline.
- :mod:`permsolve.compress.pipelines`: the three pipelines (SR-init, TRP, tile
  pruning, each with the same fine-tune) behind ``permsolve compress``.
- :mod:`permsolve.compress.compare`: all of them at matched budgets, behind
  ``permsolve compare`` (it re-exports the pipelines);
  :mod:`permsolve.compress.report` writes its table and plot.
"""
from .flops import Counts, count, count_flops, count_params

__all__ = ["Counts", "count", "count_flops", "count_params"]
