"""Analysis of captured attention: per-head metrics, head similarity, rollout and flow,
diagnostics, and evolution across training steps. Works on a store (streamed block by
block, bounded memory), a :class:`~attnscope.Recording`, or plain arrays.

Example:
    >>> from attnscope import analysis
    >>> report = analysis.head_stats(attnscope.open_store("runs/attn"), csv_path="s.csv")
    >>> for finding in report.findings:
    ...     print(finding.line())
    >>> r = analysis.attention_rollout(analysis.stack_layers(rec), head_fusion="mean")

Left out on purpose: gradient-based attributions (they need the model and a loss).
"""

from __future__ import annotations

from attnscope.analysis._blocks import AnalysisError, Block, blocks
from attnscope.analysis.diagnostics import EXPLAIN, Finding, Thresholds, diagnose
from attnscope.analysis.evolution import StepDiff, compare_steps, metric_curves
from attnscope.analysis.flow import attention_flow, flow_error_bound
from attnscope.analysis.metrics import METRICS, allowed_keys, map_metrics
from attnscope.analysis.rollout import (
    attention_rollout,
    layer_matrix,
    stack_layers,
)
from attnscope.analysis.similarity import head_distances, js_distance, redundant_heads
from attnscope.analysis.stats import StatsReport, head_stats
from attnscope.analysis.value import value_weighted

__all__ = [
    "EXPLAIN", "METRICS", "AnalysisError", "Block", "Finding", "StatsReport", "StepDiff",
    "Thresholds", "allowed_keys", "attention_flow", "attention_rollout", "blocks",
    "flow_error_bound",
    "compare_steps", "diagnose", "head_distances", "head_stats", "js_distance",
    "layer_matrix", "map_metrics", "metric_curves", "redundant_heads", "stack_layers",
    "value_weighted",
]
