"""The interception point: a TorchFunctionMode that routes a handful of torch functions
to the strategies and passes every other call straight through.

Every torch call made while the mode is active costs one Python call here, so the
pass-through path is a single dict lookup. Inside a handler the mode is switched off
by torch itself, so a handler's own torch calls are never intercepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from attnscope.capturing.registry import Handler


class InterceptMode(TorchFunctionMode):
    def __init__(self, handlers: dict[Callable[..., Any], Handler]) -> None:
        super().__init__()
        self._handlers = handlers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        handler = self._handlers.get(func)
        if handler is None:
            return func(*args, **(kwargs or {}))
        return handler(func, args, kwargs or {})


class KernelWatch(TorchDispatchMode):
    """The fused attention kernels (``aten::_scaled_dot_product_*``) called while it is
    active, with their inputs by sdpa's argument names (``query``, ``key``, ``value``,
    ``attn_mask``, ``is_causal``, ``scale``...), in ``seen``.

    For calls that the interception mode cannot see: torch pops a function mode while
    its handler runs, so an sdpa call made *inside* a handled function (the one in
    ``F.multi_head_attention_forward``) reaches only the dispatcher. Entered on one
    thread around one call; like every torch mode it is thread-local, so other threads,
    captured or not, are untouched, and nothing of torch is replaced.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        schema = func._schema
        if schema.name.startswith(_KERNEL_PREFIX) and not schema.name.endswith("backward"):
            bound = dict(zip((a.name for a in schema.arguments), args))
            bound.update(kwargs)
            if "query" in bound and "key" in bound:
                if "attn_mask" not in bound:
                    bound["attn_mask"] = bound.get("attn_bias")
                self.seen.append(bound)
        return func(*args, **kwargs)


_KERNEL_PREFIX = "aten::_scaled_dot_product_"
