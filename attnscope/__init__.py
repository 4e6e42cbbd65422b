"""attnscope: capture, store, analyse and show the attention weights of any PyTorch model.

Example:
    >>> import attnscope
    >>> with attnscope.capture(model) as rec:
    ...     model(x)
    >>> rec.maps[0].weights.shape   # (batch, head, query, key)

The capture engine lives in :mod:`attnscope.capturing` (``attnscope.capture`` is the
function, so the subpackage has its own name).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from attnscope.capturing import Strategy, capture, list_strategies, register_strategy
from attnscope.capturing.dataset import capture_dataset
from attnscope.errors import (
    AttnscopeError,
    DataError,
    ModelError,
    NoAttentionFoundError,
    OptionError,
    OutputError,
    SelectionError,
)
from attnscope.generation import CausalLM, generate
from attnscope.maps import AttentionMap, Recording
from attnscope.stitching import stitch
from attnscope.text import Seq2SeqModel, TextEncoder, translate

if TYPE_CHECKING:
    from attnscope.integrations.lightning import AttentionCallback  # noqa: F401
    from attnscope.store import Store, open_writer  # noqa: F401

__version__ = "0.1.0"


def open_store(path: str | os.PathLike) -> Store:
    """Open an attention store written by ``capture(..., store=path)`` for reading."""
    from attnscope.store import open_store as _open

    return _open(path)


def render_html(source: Any, **kwargs: Any) -> Any:
    """One self-contained, offline HTML viewer page; see :func:`attnscope.viewer.render_html`."""
    from attnscope.viewer import render_html as _render

    return _render(source, **kwargs)


def __getattr__(name: str) -> Any:
    # zarr (the store writer) and Lightning are imported on first use only
    if name == "open_writer":
        from attnscope.store import open_writer

        return open_writer
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
    "CausalLM",
    "DataError",
    "ModelError",
    "NoAttentionFoundError",
    "OptionError",
    "OutputError",
    "Recording",
    "SelectionError",
    "Seq2SeqModel",
    "Strategy",
    "TextEncoder",
    "capture",
    "capture_dataset",
    "generate",
    "list_strategies",
    "open_store",
    "open_writer",
    "register_strategy",
    "render_html",
    "stitch",
    "translate",
    "__version__",
]
