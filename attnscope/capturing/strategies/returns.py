"""Modules that already hand back their weights, declared by the user.

``returns={"*.attn": 1}`` reads output index 1 of every matching module's forward;
``returns={"*.attn": "attn_weights"}`` reads that attribute after forward (or that key
of a dict-like output). ``methods={"*.temporal": "normalize_weights"}`` wraps the method
on the instance and records what it returns: the way to reach weights computed by
TorchScript or hand-written ``exp()/sum()`` code that no torch function reveals.
Declared modules are claimed: other strategies do not record them a second time.
The key axis is the last one; on a PyG layer, the axis sized like its edge_index is
the edge axis and the map is a graph map.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnscope.capturing.frames import Frame
from attnscope.capturing.registry import Removable, Strategy, register_strategy
from attnscope.capturing.selection import to_graph_layout
from attnscope.capturing.session import CaptureSession


def _edge_axis(module: nn.Module, weights: torch.Tensor, edges: int) -> int | None:
    """The edge axis: the layer's ``node_dim`` if sized right, else ``(..., edge, head)``,
    else ``(..., edge)``, else the first axis of that size."""
    preferred = getattr(module, "node_dim", None)
    candidates = [preferred] if isinstance(preferred, int) else []
    candidates += [-2, -1, *range(weights.ndim)]
    for axis in candidates:
        if -weights.ndim <= axis < weights.ndim and weights.shape[axis] == edges:
            return axis % weights.ndim
    return None


def record_declared(session: CaptureSession, frame: Frame, value: Any, source: str) -> None:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return
    if frame.edge_index is not None:
        axis = _edge_axis(frame.module, value, frame.edge_index.shape[1])
        if axis is not None:
            weights, axes = to_graph_layout(value, axis, session.call_batch)
            m = session.record(frame, weights, kind="graph", source=source,
                               edge_index=frame.edge_index)
            if m is not None:
                m.axes = axes
            return
    dense = session.fit(frame, value, f"declared weights ({source})")
    if dense is not None:
        session.record(frame, dense, kind=session.dense_kind(frame), source=source)


class _MethodPatch:
    """An instance attribute shadowing a method; removing it restores the original."""

    def __init__(self, module: nn.Module, name: str, wrapper: Any) -> None:
        self.module, self.name = module, name
        self.previous = module.__dict__.get(name, _MISSING)
        module.__dict__[name] = wrapper

    def remove(self) -> None:
        if self.previous is _MISSING:
            self.module.__dict__.pop(self.name, None)
        else:
            self.module.__dict__[self.name] = self.previous


_MISSING = object()


@register_strategy
class ReturnsStrategy(Strategy):
    name = "returns"
    description = "declared weights: returns={glob: output index or attribute}, " \
                  "methods={glob: method name}"

    def attach(self, session: CaptureSession) -> list[Removable]:
        handles: list[Removable] = []
        for pattern, where in session.returns.items():
            for module in session.matching((pattern,), "returns"):
                session.claimed.add(session.names[module])
                # prepend: run before the module-stack hook pops this module's frame
                handles.append(module.register_forward_hook(
                    self._output_hook(session, where), prepend=True, always_call=False))
        for pattern, method in session.methods.items():
            for module in session.matching((pattern,), "methods"):
                if not callable(getattr(module, method, None)):
                    from attnscope.errors import SelectionError

                    raise SelectionError(
                        f"module {session.names[module]!r} ({type(module).__name__}) has no "
                        f"method {method!r}"
                    )
                session.claimed.add(session.names[module])
                handles.append(_MethodPatch(module, method,
                                            self._method_wrapper(session, module, method)))
        return handles

    @staticmethod
    def _output_hook(session: CaptureSession, where: int | str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            frame = session.frame_of(module)
            if frame is None or not session.wants(frame, True):
                return
            if isinstance(where, int):
                value = output[where] if isinstance(output, (tuple, list)) else None
            elif hasattr(output, "keys") and where in output:
                value = output[where]
            else:
                value = getattr(module, where, None)
            record_declared(session, frame, value, "returns")

        return hook

    @staticmethod
    def _method_wrapper(session: CaptureSession, module: nn.Module, method: str):
        original = getattr(module, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            frame = session.frame_of(module)
            if frame is not None and session.wants(frame, True):
                record_declared(session, frame, out, "method")
            return out

        return wrapper
