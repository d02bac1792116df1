"""PyTorch side of permsolve: channel groups, permuting a model, tile pruning.

- :func:`~permsolve.torch.graph.channel_graph`: trace a model (torch.fx) and
  group its coupled channel dimensions (networkx).
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
