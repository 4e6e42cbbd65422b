"""A light tap on ``torch.nn.functional.scaled_dot_product_attention`` for decode steps.

The capture's interception mode costs a Python call per torch op (about 20% of a decode
step even when entered only inside the attention modules), too much to pay for every
generated token. While a :func:`tap` is open, the name ``F.scaled_dot_product_attention``
points at a thin wrapper that hands each call's arguments to the recorder registered
*on this thread* and then calls the original: other threads, and this thread outside
the ``with``, go straight through. The wrapper is installed once for all open taps
(reference-counted) and removed when the last one closes, also on exceptions.

Left out on purpose: code that bound the function under another name before the tap
opened (``from torch.nn.functional import scaled_dot_product_attention``) or calls
``torch._C._nn`` directly is not seen; the generation notices the missing calls (its
prefill is also captured the usual way) and decodes with the per-call capture instead.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch.nn.functional as F
from torch import nn

Recorder = Callable[[tuple, dict[str, Any]], None]

_local = threading.local()
_lock = threading.Lock()
_state: dict[str, Any] = {"users": 0, "original": None, "wrapper": None}


def _install() -> None:
    with _lock:
        if _state["users"] == 0:
            original = F.scaled_dot_product_attention

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                record = getattr(_local, "recorder", None)
                if record is not None:
                    record(args, kwargs)
                return original(*args, **kwargs)

            _state.update(original=original, wrapper=wrapper)
            F.scaled_dot_product_attention = wrapper
        _state["users"] += 1


def _uninstall() -> None:
    with _lock:
        _state["users"] -= 1
        if _state["users"] == 0:
            if F.scaled_dot_product_attention is _state["wrapper"]:
                F.scaled_dot_product_attention = _state["original"]
            # else another tool wrapped it since: ours stays beneath, inert (no recorder)
            _state.update(original=None, wrapper=None)


def tapping() -> bool:
    """Whether a tap is open on this thread (a second one cannot be)."""
    return getattr(_local, "recorder", None) is not None


@contextlib.contextmanager
def tap(record: Recorder) -> Iterator[None]:
    """``record(args, kwargs)`` is called before every sdpa call this thread makes
    through ``F.scaled_dot_product_attention`` inside the ``with``."""
    if tapping():
        raise RuntimeError("an sdpa tap is already open on this thread")
    _install()
    _local.recorder = record
    try:
        yield
    finally:
        _local.recorder = None
        _uninstall()


@contextlib.contextmanager
def module_stack(modules: dict[str, nn.Module], stack: list[str], *,
                 exits: bool = True) -> Iterator[None]:
    """While open, ``stack`` holds the names of the ``modules`` whose forward is running
    (innermost last): what a recorded call is attributed to. ``exits=False`` hooks only
    the entries (one hook per module call, for every decode step): ``stack`` then holds
    the module entered last, and a caller that must tell "after it" from "inside it"
    clears it. Hooks removed on exit."""
    handles = []

    def enter(name: str) -> Callable[..., None]:
        if not exits:
            def last(module: nn.Module, args: Any) -> None:
                stack[-1:] = [name]
            return last

        def pre(module: nn.Module, args: Any) -> None:
            stack.append(name)
        return pre

    def leave(module: nn.Module, args: Any, out: Any) -> None:
        if stack:
            stack.pop()

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(enter(name)))
            if exits:
                handles.append(module.register_forward_hook(leave, always_call=True))
        yield
    finally:
        for h in handles:
            h.remove()
        stack.clear()
