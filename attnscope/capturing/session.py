"""One capture: the module stack that attributes each attention call to a module, the
include/exclude filters, and recording of maps (selection, kind, call indices).

The stack is kept by forward pre/post hooks on every submodule, so a torch function
seen by the interception mode knows which module's ``forward`` called it. Pure wrappers
(``nn.Softmax``, ``nn.Dropout``...) never own a map: the module that called them does.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import nn

from attnscope.capturing.frames import Frame, attention_named, named_cross, new_frame
from attnscope.capturing.layout import CallShape, declared_heads, fit_dense, folded_note
from attnscope.capturing.selection import Selection
from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording


class MapSink(Protocol):
    """Where maps go besides memory (a store writer)."""

    def write(self, m: AttentionMap) -> None: ...
    def commit(self) -> None: ...


def _matches(patterns: Sequence[str], name: str, cls: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(cls, p) for p in patterns)


def _patterns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Qualified names with compile/DDP wrapper prefixes removed."""
    names: dict[nn.Module, str] = {}
    for name, module in model.named_modules(remove_duplicate=True):
        clean = ".".join(p for p in name.split(".") if p != "_orig_mod")
        names.setdefault(module, clean)
    return names


@dataclass
class CaptureSession:
    """State shared by the strategies during one ``capture`` context."""

    root: nn.Module
    selection: Selection = field(default_factory=Selection)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)
    keep: bool = True
    sink: MapSink | None = None
    returns: dict[str, int | str] = field(default_factory=dict)  # declared by the user
    methods: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recording = Recording()
        self.names = module_names(self.root)
        self.stack: list[Frame] = []
        self.forward_index = -1
        self.call_batch: int | None = None  # batch size of the current model call
        self._calls: dict[str, int] = {}
        self._wanted: dict[tuple[str, bool], bool] = {}
        self.claimed: set[str] = set()  # modules whose maps come from a declared strategy
        self.ignored_softmax: dict[str, int] = {}  # softmax owners that are not attention
        self._unsent: list[AttentionMap] = []
        # called with a frame whose ``pending`` is set, as it leaves the stack
        self.frame_end: list[Callable[[Frame], None]] = []

    # -- module stack --------------------------------------------------------------
    def push(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        name = self.names.get(module, type(module).__name__)
        if module is self.root and not any(f.module is module for f in self.stack):
            self.forward_index += 1
            self._calls.clear()
            self._unsent.clear()  # maps of an earlier call that raised (or was interrupted)
            first = next((t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)
                          and t.ndim > 0), None)
            self.call_batch = None if first is None else int(first.shape[0])
        index = self._calls.get(name, 0)
        self._calls[name] = index + 1
        self.stack.append(new_frame(name, module, index, args, kwargs, self.call_batch))

    def pop(self, module: nn.Module, output: Any = None) -> None:
        # pop down to this module's frame: a forward that raised may have left children
        while self.stack:
            frame = self.stack.pop()
            if frame.pending is not None:
                for end in self.frame_end:
                    end(frame)
                frame.pending = None
            if frame.module is module:
                break
        if module is self.root and not self.stack:
            # torch runs this hook with output None from inside its ``except`` when the
            # forward raised: that call's maps are a half batch and are never committed
            if output is None and sys.exc_info()[0] is not None:
                self._unsent.clear()
            else:
                self.flush(commit=True)

    def owner(self) -> Frame | None:
        """The innermost module call that is not a pure wrapper."""
        for frame in reversed(self.stack):
            if not frame.wrapper:
                return frame
        return None

    def parents(self, frame: Frame, levels: int = 2) -> list[Frame]:
        """``frame`` and up to ``levels`` enclosing non-wrapper module calls."""
        found: list[Frame] = []
        for f in reversed(self.stack[: self.stack.index(frame) + 1]):
            if not f.wrapper:
                found.append(f)
            if len(found) > levels:
                break
        return found

    def call_shape(self, owner: Frame) -> CallShape:
        """Batch, declared heads, query tokens and cache use of ``owner``'s call."""
        frames = self.parents(owner, 2)
        tokens = next((f.tokens for f in frames if f.tokens is not None), None)
        heads = declared_heads(owner.module)
        cached = any(f.cached for f in self.stack)
        return CallShape(self.call_batch, heads, tokens, cached)

    def fit(self, owner: Frame, t: torch.Tensor, what: str, *,
            evidence: dict[str, Any] | None = None) -> torch.Tensor | None:
        """``t`` (key axis last) as ``(batch, head, query, key)``, or ``None`` after a
        note saying why it was not recorded. ``evidence``: ``CallShape`` fields the
        strategy knows from how the operands were built (``fold``, ``rows``)."""
        call = replace(self.call_shape(owner), **(evidence or {}))
        # (a one-token decode step reads batch-first: its queries may be packed heads)
        if t.ndim >= 3 and call.tokens not in (t.shape[-2], 1) and call.rows is None:
            # a sequence-first model, (seq, batch, feature): its first axis is no batch
            dims = next((f.dims for f in self.parents(owner, 2) if f.dims is not None), None)
            if dims is not None and dims[0] == t.shape[-2] and dims[1] != dims[0] and \
                    t.shape[0] % dims[1] == 0:
                call = replace(call, batch=dims[1], tokens=dims[0])
        dense, why = fit_dense(t, call)
        if dense is None:
            self.note(f"{owner.name or '<root>'}: {what} of shape {list(t.shape)} not "
                      f"recorded: {why}")
        elif why:
            self.note(f"{owner.name or '<root>'}: {what} of shape {list(t.shape)}: {why}")
        elif dense.ndim == 4:
            folded = folded_note(int(dense.shape[0]), self.call_batch)
            if folded:
                self.note(f"{owner.name or '<root>'}: {folded}")
        return dense

    def note(self, text: str) -> None:
        self.recording.note(text)

    def frame_of(self, module: nn.Module) -> Frame | None:
        for frame in reversed(self.stack):
            if frame.module is module:
                return frame
        return None

    # -- filters -------------------------------------------------------------------
    def attention_named(self) -> bool:
        """Whether the innermost module (or the wrapper it called, or its parent) is named
        like attention: ``attn``, ``attention``, ``Attend``, ``mha``, ``multi_head``..."""
        return attention_named(self.stack, self.root)

    def matching(self, patterns: Sequence[str], what: str) -> list[nn.Module]:
        """Modules matching any pattern; a pattern that matches nothing is an error."""
        found: list[nn.Module] = []
        for p in patterns:
            hits = [m for m, n in self.names.items() if _matches((p,), n, type(m).__name__)]
            if not hits:
                sample = ", ".join(repr(n) for n in list(self.names.values())[1:9])
                raise SelectionError(
                    f"{what} pattern {p!r} matches no module of {type(self.root).__name__}; "
                    f"module names look like {sample} (globs such as 'encoder.*.attn' and "
                    "class names work)"
                )
            found += [m for m in hits if m not in found]
        return found

    def check_patterns(self, patterns: Sequence[str], what: str) -> None:
        self.matching(patterns, what)

    def wants(self, owner: Frame, detected: bool) -> bool:
        """Keep a map of ``owner``? ``detected``: the strategy recognises it as attention
        by default (sdpa, MHA, graph layers, softmax in attention-named modules)."""
        key = (owner.name, detected)
        cached = self._wanted.get(key)
        if cached is None:
            chain = self.stack[: self.stack.index(owner) + 1]
            pairs = [(f.name, type(f.module).__name__) for f in chain]
            if self.exclude and any(_matches(self.exclude, n, c) for n, c in pairs):
                cached = False
            elif self.include:
                cached = any(_matches(self.include, n, c) for n, c in pairs)
            else:
                cached = detected
            self._wanted[key] = cached
        return cached

    def dense_kind(self, owner: Frame, hint: str | None = None,
                   lengths: tuple[int, int] | None = None) -> str:
        """``"cross"`` or ``"self"``: the user's ``kinds``, then names of the module and of
        up to two enclosing blocks (``cross_attention``, ``EncDecAttention``...), then its
        cross-sequence keyword arguments, then the strategy's hint, then ``lengths``
        (queries, keys): different lengths outside cached decoding mean another sequence.
        """
        for pattern, kind in self.kinds.items():
            if _matches((pattern,), owner.name, type(owner.module).__name__):
                return kind
        if named_cross(self.parents(owner, 2)):
            return "cross"
        if owner.cross_hint:
            return "cross"
        if hint is not None:
            return hint
        if lengths is not None and lengths[0] != lengths[1] and lengths[0] > 1 and \
                not any(f.cached for f in self.stack):
            return "cross"
        return "self"

    # -- recording -----------------------------------------------------------------
    def record(
        self,
        owner: Frame,
        weights: torch.Tensor,
        *,
        kind: str,
        source: str,
        edge_index: torch.Tensor | None = None,
        selected: bool = False,
        heads: list[int] | None = None,
        samples: list[int] | None = None,
        effective: torch.Tensor | None = None,
        owned: bool = False,
    ) -> AttentionMap | None:
        """Store one map. ``weights`` is ``(batch, head, query, key)`` or, with
        ``edge_index``, ``(..., edge, head)``; ``selected``: samples and heads were
        already picked by the strategy (``heads``/``samples`` say which); ``owned``: the
        tensors are the strategy's own, not the model's, so they need no defensive copy."""
        if owner.name in self.claimed and source not in ("returns", "method", "bigbird"):
            return None
        sel = self.selection
        graph = edge_index is not None
        head_axis = -1 if graph else 1
        if not selected:
            weights, heads, samples = self.select(weights, owner.name, graph)
            if weights is None:
                return None
            if effective is not None:
                effective, _, _ = self.select(effective, owner.name, graph)
        model_tensors = () if owned else (weights, effective)
        if not graph:
            weights = mark_masked(weights, in_place=owned)
        weights = self.detach_copy(sel.finish(weights, head_axis), model_tensors)
        if effective is not None:
            effective = self.detach_copy(sel.finish(effective, head_axis), model_tensors)
        m = AttentionMap(
            module=owner.name, kind=kind, weights=weights,
            edge_index=None if edge_index is None else self.detach_copy(edge_index.long(),
                                                                   (edge_index,)),
            forward_index=max(self.forward_index, 0), call_index=owner.call_index,
            source=source, heads=heads, samples=samples, reduced=sel.reduce,
            effective=effective,
        )
        self.recording.num_recorded += 1
        if self.keep:
            self.recording.maps.append(m)
        if self.sink is not None:
            self._unsent.append(m)  # sent at the end of the model call: see flush()
        return m

    def flush(self, commit: bool) -> None:
        """Hand the maps of the finished model call to the sink, as one batch. They wait
        until then because a map can still gain its ``effective`` matrix."""
        if self.sink is None:
            return
        unsent, self._unsent = self._unsent, []
        for m in unsent:
            self.sink.write(m)
        if commit:
            self.sink.commit()

    def select(self, weights: torch.Tensor, module: str, graph: bool):
        """Apply the sample and head selection to a full map (a view where possible)."""
        sel = self.selection
        samples = heads = None
        if graph:
            if weights.ndim > 2:
                samples = self.sample_rows(weights.shape[0])
            heads = sel.head_index(weights.shape[-1], module)
        else:
            samples = self.sample_rows(weights.shape[0])
            heads = sel.head_index(weights.shape[1], module)
        if samples is not None:
            if not samples:
                return None, None, None
            weights = weights[samples]
        if heads is not None:
            weights = weights[..., heads] if graph else weights[:, heads]
        return weights, heads, samples

    def sample_rows(self, batch: int) -> list[int] | None:
        """Rows to keep of a map with ``batch`` rows. A map whose batch axis is not the
        model call's (a model that folds epochs or channels into it) is kept whole:
        its rows are not the samples the selection names."""
        if self.call_batch is not None and batch != self.call_batch:
            return None
        return self.selection.sample_index(batch)

    @staticmethod
    def detach_copy(t: torch.Tensor, model_tensors: tuple) -> torch.Tensor:
        """A CPU tensor the model can no longer change (by in-place ops on its own
        tensors) and that outlives ``inference_mode``."""
        t = t.detach()
        if t.is_inference():
            with torch.inference_mode(False):
                return t.to("cpu").clone()
        if t.device.type != "cpu":
            return t.to("cpu")
        ptr = t.untyped_storage().data_ptr()
        if any(m is not None and m.untyped_storage().data_ptr() == ptr for m in model_tensors):
            return t.clone()
        return t

    def note_ignored_softmax(self, owner: Frame | None) -> None:
        name = owner.name if owner is not None else "<outside the model>"
        self.ignored_softmax[name] = self.ignored_softmax.get(name, 0) + 1


def mark_masked(weights: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """Exact zeros of a softmax output (keys the model masked with -inf or a huge negative
    score) become -0.0, before any cast: they equal 0 for every computation, yet survive
    float16 storage, unlike a small weight that merely rounds to +0.0 there. Figures hide
    the signed zeros only (:func:`attnscope.plot.find_mask`). Maps without a zero cost one
    min-reduction; ``in_place`` for tensors the strategy owns."""
    if not weights.is_floating_point() or weights.numel() == 0 or bool(weights.amin() > 0):
        return weights
    if in_place:
        return weights.masked_fill_(weights == 0, -0.0)
    return torch.where(weights == 0, torch.tensor(-0.0, dtype=weights.dtype), weights)
