"""attnscope: capture, store, analyse and show the attention weights of any PyTorch model.

Example:
    >>> import attnscope
    >>> with attnscope.capture(model) as rec:
    ...     model(x)
    >>> rec.maps[0].weights.shape   # (batch, head, query, key)
"""

from __future__ import annotations

from typing import Any

from attnscope.capture import Strategy, capture, list_strategies, register_strategy
from attnscope.errors import AttnscopeError, NoAttentionFoundError, SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.stitch import stitch
from attnscope.text import Seq2SeqModel, TextEncoder, translate

__version__ = "0.1.0"


def open_store(path: Any) -> Any:
    """Open an attention store written by ``capture(..., store=path)``."""
    from attnscope.store import open_store as _open

    return _open(path)


def __getattr__(name: str) -> Any:
    # Lightning is heavy and optional: imported on first use of the callback only
    if name == "AttentionCallback":
        from attnscope.integrations.lightning import AttentionCallback

        return AttentionCallback
    if name == "graph":  # attnscope.graph.temporal_edge_index(...), without an import line
        from importlib import import_module

        return import_module("attnscope.graph")
    raise AttributeError(f"module 'attnscope' has no attribute {name!r}")


__all__ = [
    "AttentionCallback",
    "AttentionMap",
    "AttnscopeError",
    "NoAttentionFoundError",
    "Recording",
    "SelectionError",
    "Seq2SeqModel",
    "Strategy",
    "TextEncoder",
    "capture",
    "list_strategies",
    "open_store",
    "register_strategy",
    "stitch",
    "translate",
    "__version__",
]
