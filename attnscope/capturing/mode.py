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
