"""Sources and labels: read one sample or one block of whatever holds attention maps,
and put each label on the axis it names.

A *source* is a :class:`~attnscope.Recording`, an :class:`~attnscope.AttentionMap`, a
store (or its path), a ``{name: array}`` mapping, or one NumPy array / torch tensor.
plot, viewer, analysis, graph, evaluate and the command line all read through here, so
a selection or a label means the same everywhere.

Example:
    >>> from attnscope import sources
    >>> d = sources.read_dense("runs/attn", module=-1, step="test", sample=2, heads="all")
    >>> d.weights.shape                      # (head, query, key)
    >>> d.axis_labels().query                # e.g. the target tokens of sample 2
    >>> for b in sources.blocks(store, steps=["test"]):   # bounded memory
    ...     b.weights                        # (sample, head, query, key)

Left out on purpose: writing (see :mod:`attnscope.store`) and drawing.
"""

from __future__ import annotations

from attnscope.sources.base import (
    as_source,
    is_store,
    map_rows,
    names,
    recording_maps,
    row_name,
    rows_per_sample,
    step_samples,
    store_step,
    to_numpy,
)
from attnscope.sources.blockwise import BUDGET, Block, array_block, blocks
from attnscope.sources.edges import Graph, Select, graph_sample, pick_positions, read_graph
from attnscope.sources.index import (
    HeadSpec,
    as_list,
    head_positions,
    pick_name,
    pick_names,
    pick_steps,
    positions,
    resolve_layer,
)
from attnscope.sources.labels import (
    AxisLabels,
    has_sample_labels,
    is_causal,
    name_side,
    resolve,
    sample_labels,
)
from attnscope.sources.sample import Dense, read_dense

__all__ = [
    "BUDGET", "AxisLabels", "Block", "Dense", "Graph", "HeadSpec", "Select", "array_block",
    "as_list", "as_source", "blocks", "graph_sample", "has_sample_labels", "head_positions",
    "is_causal", "is_store", "map_rows", "name_side", "names", "pick_name", "pick_names",
    "pick_positions", "pick_steps", "positions", "read_dense", "read_graph", "recording_maps",
    "resolve", "resolve_layer", "row_name", "rows_per_sample", "sample_labels",
    "step_samples", "store_step", "to_numpy",
]
