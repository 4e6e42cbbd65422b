"""attnscope: capture, store, analyse and show the attention weights of any PyTorch model.

Example:
    >>> import attnscope
    >>> with attnscope.capture(model) as rec:
    ...     model(x)
    >>> rec.maps[0].weights.shape   # (batch, head, query, key)

The capture engine lives in :mod:`attnscope.capturing` (``attnscope.capture`` is the
function, so the subpackage has its own name). Every subpackage is an attribute, imported
on first use (``attnscope.store.create_store``, ``attnscope.plot.plot_heatmap``), so
``import attnscope`` loads neither zarr, matplotlib nor the applications.
"""

from __future__ import annotations

import os
from importlib import import_module
from importlib.util import find_spec
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
from attnscope.maps import AttentionMap, Recording
from attnscope.notes import AttnscopeWarning
from attnscope.stitching import stitch

if TYPE_CHECKING:
    from attnscope.generation import CausalLM, generate  # noqa: F401
    from attnscope.integrations.lightning import AttentionCallback  # noqa: F401
    from attnscope.store import Store, open_writer  # noqa: F401
    from attnscope.text import Seq2SeqModel, TextEncoder, translate  # noqa: F401

__version__ = "0.1.0"


def open_store(path: str | os.PathLike) -> Store:
    """Open an attention store written by ``capture(..., store=path)`` for reading."""
    from attnscope.store import open_store as _open

    return _open(path)


def render_html(source: Any, **kwargs: Any) -> Any:
    """One self-contained, offline HTML viewer page; see :func:`attnscope.viewer.render_html`."""
    from attnscope.viewer import render_html as _render

    return _render(source, **kwargs)


# names of the public API that live in modules imported on first use: zarr (the store
# writer), Lightning, and the text and generation applications are not loaded by
# ``import attnscope``
_LAZY = {"open_writer": "attnscope.store",
         "AttentionCallback": "attnscope.integrations.lightning",
         "Seq2SeqModel": "attnscope.text", "TextEncoder": "attnscope.text",
         "translate": "attnscope.text",
         "CausalLM": "attnscope.generation", "generate": "attnscope.generation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    # subpackages and modules as attributes: attnscope.store.create_store(...) works after
    # a plain ``import attnscope``
    if name.isidentifier() and not name.startswith("_") \
            and find_spec(f"attnscope.{name}") is not None:
        return import_module(f"attnscope.{name}")
    raise AttributeError(f"module 'attnscope' has no attribute {name!r}")


__all__ = [
    "AttentionCallback",
    "AttentionMap",
    "AttnscopeError",
    "AttnscopeWarning",
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
