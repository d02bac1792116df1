"""PyTorch side of permsolve: channel groups, permuting a model, tile pruning.

- :func:`~permsolve.torch.graph.channel_graph`: trace a model (torch.fx where it
  traces the whole model, else non-strict ``torch.export``:
  :mod:`permsolve.torch.aten`, for Hugging Face transformers, attention heads,
  GQA, RoPE, Conv1D, grouped convs) and group its coupled channel dimensions.
- :func:`permute_model`: solve one :class:`~permsolve.TileProblem` per group
  with any registered solver and write the permutation into the model; the
  eval-mode outputs are checked to be unchanged.
- :func:`prune_model`: permute, then tile-prune every Linear/Conv weight with
  a ``torch.nn.utils.prune`` method (masks survive fine-tuning).
"""
from .graph import ChannelGraph, Group, channel_graph
from .aten import TraceError
from .permute import PermutationError, PermuteReport, permute_model
from .prune import PruneReport, TilePruning, prune_model, tile_masks

__all__ = ["channel_graph", "ChannelGraph", "Group", "permute_model", "PermuteReport", "PermutationError", "TraceError",
           "prune_model", "PruneReport", "TilePruning", "tile_masks"]
