"""Compression methods compared with tile pruning on the digits model zoo.

- :mod:`permsolve.compress.flops`: parameter and MAC counting (forward hooks).
- :mod:`permsolve.compress.srinit`: SR-init layer pruning (block sensitivity by
  random re-initialisation, block removal) and the sensitivity-driven per-layer
  sparsity allocation for tile pruning.
- :mod:`permsolve.compress.trp`: TRP, trained rank pruning (periodic SVD
  projection, nuclear-norm term, decomposition into two layers) and the
  truncated-SVD baseline.
- :mod:`permsolve.compress.compare`: the pipelines behind ``permsolve compress``
  and ``permsolve compare``.
"""
from .flops import Counts, count, count_flops, count_params

__all__ = ["Counts", "count", "count_flops", "count_params"]
