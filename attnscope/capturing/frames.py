"""A module call on the capture's stack, and what its name, class and arguments say:
attention or not, self or cross, how many query tokens, whether a cache is in use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

_SOFTMAX_WRAPPERS = (nn.Softmax, nn.Softmin, nn.Softmax2d, nn.LogSoftmax)
_WRAPPERS = (nn.Softmax, nn.Softmin, nn.Softmax2d, nn.LogSoftmax, nn.Identity,
             nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_ATTENTION_NAME = re.compile(r"attn|atten|attend|mha|mhsa|multi_?head", re.IGNORECASE)
# "cross_channel" / "CrossEpoch" attention is self-attention across channels or epochs:
# a level of a hierarchical model, not attention from one sequence to another
_CROSS_NAME = re.compile(
    r"cross(?![-_ ]?(channel|chan|epoch|time|temporal|variate|series|patch|lead|sensor|node"
    r"|frame|window|scale|stage|layer|head))"
    r"|encoder_attn|enc_dec|encdec|src_attn|multihead_attn|context_attn|inter_attn",
    re.IGNORECASE,
)
_SELF_NAME = re.compile(r"self", re.IGNORECASE)
# forward kwargs that carry another sequence's states into an attention module
_CROSS_KWARGS = ("encoder_hidden_states", "key_value_states", "memory", "encoder_outputs",
                 "cross_attention_states", "enc_output", "context")
# forward kwargs that mean keys come from a cache (decoding): more keys than queries
_CACHE_KWARGS = ("past_key_value", "past_key_values", "layer_past", "cache", "cache_position",
                 "past_key_values_length", "kv_cache")


@dataclass(eq=False)
class Frame:
    """One active module call. What its arguments say (tokens, dims, cache, cross
    keywords) is read only when an attention call asks: most frames never are."""

    name: str
    module: nn.Module
    call_index: int
    wrapper: bool
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    batch: int | None = None  # samples of the model call
    edge_index: torch.Tensor | None = None  # graph connectivity the layer is using now
    pending: Any = None  # softmax outputs waiting for evidence (softmax.py)
    products: list | tuple = ()  # query-key products made in this call (softmax.py)

    @cached_property
    def cross_hint(self) -> bool:
        """Called with another sequence's states (``encoder_hidden_states``, ``memory``)."""
        return any(isinstance(self.kwargs.get(k), torch.Tensor) for k in _CROSS_KWARGS)

    @cached_property
    def cached(self) -> bool:
        """Called with a key/value cache (decoding)."""
        return any(self.kwargs.get(k) is not None for k in _CACHE_KWARGS)

    @cached_property
    def tokens(self) -> int | None:
        """Sequence length of its first ``(batch, seq, feature)`` input."""
        return _tokens(self.args, self.kwargs, self.batch)

    @cached_property
    def dims(self) -> tuple[int, int] | None:
        """The first two axes of its first 3-D floating-point input."""
        first = next((t for t in (*self.args, *self.kwargs.values())
                      if isinstance(t, torch.Tensor)), None)
        if first is None or first.ndim != 3 or not first.is_floating_point():
            return None
        return int(first.shape[0]), int(first.shape[1])


def _tokens(args: tuple, kwargs: dict, batch: int | None) -> int | None:
    """Sequence length of a module call's first ``(batch, seq, feature)`` input
    (``(seq, batch, feature)`` when only the second axis is the batch), or of its
    ``(batch, head, seq, dim)`` query when it gets q, k and v."""
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    first = tensors[0] if tensors else None
    if first is None or not first.is_floating_point() or batch is None:
        return None
    if first.ndim == 4 and len(tensors) >= 3 and first.shape[0] == batch and \
            tensors[1].shape[:2] == tensors[2].shape[:2] == first.shape[:2]:
        return int(first.shape[-2])  # q, k, v already split: (batch, head, seq, dim)
    if first.ndim != 3:
        return None
    if first.shape[0] % batch == 0:
        return int(first.shape[1])
    if first.shape[1] == batch:
        return int(first.shape[0])
    return None


def new_frame(name: str, module: nn.Module, index: int, args: tuple, kwargs: dict,
              batch: int | None) -> Frame:
    """The frame of one module call; its arguments are read later, if ever."""
    return Frame(name, module, index, isinstance(module, _WRAPPERS), args, kwargs, batch)


def needs_frame(module: nn.Module) -> bool:
    """Whether calls of ``module`` go on the capture's stack. torch's own leaf layers
    (``nn.Linear``, ``nn.LayerNorm``, ``nn.Dropout``, activations...) never call attention
    nor own it, and the stack skips them (fewer hooks, a faster forward); torch's softmax
    wrappers stay, since their names tell attention apart."""
    if not type(module).__module__.startswith("torch.nn.modules."):
        return True
    if isinstance(module, _SOFTMAX_WRAPPERS):
        return True
    return any(child is not None for child in module._modules.values())


def attention_named(stack: list[Frame], root: nn.Module) -> bool:
    """Whether the innermost module (or the wrapper it called, or its parent, not the
    model itself) is named like attention."""
    levels = 0
    for frame in reversed(stack):
        last = frame.name.rsplit(".", 1)[-1]
        if _ATTENTION_NAME.search(last) or _ATTENTION_NAME.search(type(frame.module).__name__):
            return frame.module is not root or levels == 0
        if not frame.wrapper:
            levels += 1
            if levels > 1:
                return False
    return False


def named_cross(frames: list[Frame]) -> bool:
    """A cross name on the module or an enclosing block (innermost first); a name that
    says self stops the walk."""
    for frame in frames:
        last = frame.name.rsplit(".", 1)[-1]
        cls = type(frame.module).__name__
        if _CROSS_NAME.search(last) or _CROSS_NAME.search(cls):
            return True
        if _SELF_NAME.search(last) or _SELF_NAME.search(cls):
            return False
    return False


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Qualified names with compile/DDP wrapper prefixes removed, in ``named_modules``
    order (a module reached twice keeps its first name). Walked with a plain stack:
    ``named_modules``' nested generators cost milliseconds per capture on a model of a
    hundred modules."""
    names: dict[nn.Module, str] = {}
    stack: list[tuple[str, nn.Module]] = [("", model)]
    while stack:
        name, module = stack.pop()
        if module in names:
            continue
        names[module] = name
        children = [(f"{name}.{key}" if name else key, child)
                    for key, child in module._modules.items() if child is not None]
        stack.extend(reversed(children))
    if any("_orig_mod" in n for n in names.values()):
        names = {m: ".".join(p for p in n.split(".") if p != "_orig_mod")
                 for m, n in names.items()}
    return names
