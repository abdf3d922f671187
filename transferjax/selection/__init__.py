"""Beyond one source: choose several sources together, and how many layers to
transfer, by the same conditional mutual information as the ranking."""
from transferjax.selection.multi_source import GreedyResult
from transferjax.selection.multi_source import greedy_select
from transferjax.selection.multi_source import scale_block
from transferjax.selection.multi_source import top_k

__all__ = ["GreedyResult", "greedy_select", "scale_block", "top_k"]
