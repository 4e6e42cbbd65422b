"""PyTorch Geometric attention on edges: ``GATConv``, ``GATv2Conv``, ``TransformerConv``
and custom ``MessagePassing`` layers that normalise scores per destination node, and
node-to-graph attention pooling (``AttentionalAggregation``, ``Set2Set``; other
aggregations with ``include=``), whose edges run from each node to its graph.

Those layers call ``torch_geometric.utils.softmax`` (or a TorchScript function such as
tsl's ``sparse_softmax``) by a module-level name, invisible to the torch function mode.
For the classes in the model, that name is swapped for a recording wrapper for the
duration of the capture only (restored on exit, also through exceptions, and when
attaching fails half way); the wrapper keeps the probabilities before any dropout. The
edge_index is the one the layer really used (self loops added inside ``forward``
included), read from its ``propagate``/``edge_updater`` pre-hooks.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import torch
from torch import nn

from attnscope.capturing.registry import Removable, Strategy, register_strategy
from attnscope.capturing.selection import to_graph_layout
from attnscope.capturing.session import CaptureSession

_DIM_DEFAULT = re.compile(r"int\s+dim\s*=\s*(-?\d+)")
# node-to-graph aggregations that are attention (Set2Set: a query-key product per graph)
_POOL_NAME = re.compile(r"atten|attn|set2set", re.IGNORECASE)


class _GlobalPatch:
    """A module-level name replaced during the capture; ``remove`` puts it back."""

    def __init__(self, namespace: dict, name: str, replacement: Any) -> None:
        self.namespace, self.name = namespace, name
        self.original = namespace[name]
        namespace[name] = replacement

    def remove(self) -> None:
        self.namespace[self.name] = self.original


def _default_dim(func: Any) -> int:
    schema = getattr(func, "schema", None)  # TorchScript functions carry their schema
    if schema is not None:
        found = _DIM_DEFAULT.search(str(schema))
        if found:
            return int(found.group(1))
    return 0  # torch_geometric.utils.softmax


def _edge_softmax_names(namespace: dict, pyg_softmax: Any) -> list[str]:
    names = []
    for name, obj in list(namespace.items()):
        scripted = isinstance(obj, torch.jit.ScriptFunction) and "softmax" in name.lower()
        if obj is pyg_softmax or scripted:
            names.append(name)
    return names


@register_strategy
class PygStrategy(Strategy):
    name = "pyg"
    description = "PyG MessagePassing edge attention (GAT, GATv2, TransformerConv, custom)"

    def attach(self, session: CaptureSession) -> list[Removable]:
        if "torch_geometric" not in sys.modules:
            return []  # a model without PyG layers never imported it
        from torch_geometric.nn.aggr import Aggregation
        from torch_geometric.nn.conv import MessagePassing
        from torch_geometric.utils import softmax as pyg_softmax

        layers = [m for m in session.names if isinstance(m, MessagePassing)]
        pools = [m for m in session.names if isinstance(m, Aggregation)]
        if not layers and not pools:
            return []
        handles: list[Removable] = []
        try:
            for layer in layers:
                hook = self._edge_hook(session)
                handles.append(layer.register_propagate_forward_pre_hook(hook))
                handles.append(layer.register_edge_update_forward_pre_hook(hook))
            for pool in pools:
                handles.append(pool.register_forward_pre_hook(self._pool_hook(session),
                                                              with_kwargs=True))
            # the modules defining the layer classes (and their bases), plus
            # torch_geometric.utils for code that calls ``utils.softmax(...)``
            module_names = {"torch_geometric.utils"}
            for cls in {type(m) for m in (*layers, *pools)}:
                module_names.update(base.__module__ for base in cls.__mro__)
            for module_name in sorted(module_names):
                module = sys.modules.get(module_name)
                if module is None or module_name.startswith(("torch.", "builtins")):
                    continue
                namespace = vars(module)
                for name in _edge_softmax_names(namespace, pyg_softmax):
                    wrapper = self._softmax_wrapper(session, namespace[name],
                                                    (MessagePassing, Aggregation))
                    handles.append(_GlobalPatch(namespace, name, wrapper))
        except BaseException:
            for handle in reversed(handles):  # nothing half-attached survives
                handle.remove()
            raise
        return handles

    @staticmethod
    def _pool_hook(session: CaptureSession):
        """Node-to-graph pooling: edges run from each node to its graph."""

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            frame = session.frame_of(module)
            x = args[0] if args else kwargs.get("x")
            index = args[1] if len(args) > 1 else kwargs.get("index")
            if frame is None or not isinstance(x, torch.Tensor):
                return
            dim = kwargs.get("dim", args[4] if len(args) > 4 else -2)
            nodes = torch.arange(x.shape[dim], device=x.device)
            graph = torch.zeros_like(nodes) if index is None else index
            frame.edge_index = torch.stack([nodes, graph])

        return hook

    @staticmethod
    def _edge_hook(session: CaptureSession):
        def hook(module: nn.Module, inputs: tuple) -> None:
            frame = session.frame_of(module)
            edge_index = inputs[0]
            if frame is None:
                return
            if isinstance(edge_index, torch.Tensor) and edge_index.layout == torch.strided:
                frame.edge_index = edge_index
            elif hasattr(edge_index, "coo"):  # torch_sparse.SparseTensor adj_t: row = dst
                row, col, _ = edge_index.coo()
                frame.edge_index = torch.stack([col, row])
            elif isinstance(edge_index, torch.Tensor) and edge_index.is_sparse:
                coo = edge_index.coalesce().indices()  # adj_t layout as well
                frame.edge_index = coo.flip(0)

        return hook

    @staticmethod
    def _softmax_wrapper(session: CaptureSession, original: Any, base: type):
        default_dim = _default_dim(original)

        def wrapper(src: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            out = original(src, *args, **kwargs)
            owner = session.owner()
            if owner is None or not isinstance(owner.module, base) or owner.edge_index is None:
                return out
            cls = type(owner.module)
            detected = not issubclass(cls, base[1]) or bool(_POOL_NAME.search(cls.__name__))
            if not session.wants(owner, detected):
                return out
            dim = kwargs.get("dim", args[3] if len(args) > 3 else default_dim)
            edges = owner.edge_index.shape[1]
            if out.shape[dim] != edges:
                return out  # not normalising over this layer's edges
            weights, axes = to_graph_layout(out, dim, session.call_batch)
            m = session.record(owner, weights, kind="graph", source="pyg",
                               edge_index=owner.edge_index)
            if m is not None:  # sent to a store only when the model call ends
                m.axes = axes
            return out

        return wrapper
