"""Interception of attention weights: the ``capture`` context and its strategies."""

from attnscope.capturing.api import capture, unwrap_model
from attnscope.capturing.registry import Strategy, list_strategies, register_strategy
from attnscope.kernels import sdpa_probabilities

__all__ = ["Strategy", "capture", "list_strategies", "register_strategy",
           "sdpa_probabilities", "unwrap_model"]
