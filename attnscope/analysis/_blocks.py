"""The analysis error type, and the block reader it uses.

Blocks (bounded pieces of any source, with the tokens the label resolver puts on each
axis) are read by :mod:`attnscope.sources.blocks`; they are re-exported here because
``attnscope.analysis.blocks`` is where users of the analysis API meet them.
"""

from __future__ import annotations

from attnscope.errors import AttnscopeError
from attnscope.sources import BUDGET, Block, blocks, is_store

__all__ = ["BUDGET", "AnalysisError", "Block", "blocks", "is_store"]


class AnalysisError(AttnscopeError, ValueError):
    """An analysis request the data cannot satisfy; the message is one line."""
