"""One capture: the module stack that attributes each attention call to a module, the
include/exclude filters and the self/cross guess; recording itself is
:class:`~attnscope.capturing.recorder.MapRecorder`'s half of the session.

The stack is kept by forward pre/post hooks on the submodules that can own or name an
attention call (torch's own leaf layers such as ``nn.Linear`` cannot, and get none), so
a torch function seen by the interception mode knows which module's ``forward`` called
it. Pure wrappers (``nn.Softmax``, ``nn.Dropout``...) never own a map: the module that
called them does. Hooks fired on another thread (the same model run elsewhere, captured
or not) are ignored: the stack is the capturing thread's.
"""

from __future__ import annotations

import fnmatch
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from attnscope.capturing.frames import (
    Frame,
    attention_named,
    module_names,
    named_cross,
    new_frame,
)
from attnscope.capturing.layout import CallShape, declared_heads, fit_dense, folded_note
from attnscope.capturing.recorder import MapRecorder, MapSink, mark_masked
from attnscope.capturing.selection import Selection
from attnscope.errors import SelectionError
from attnscope.kernels.qk import MaskMemo
from attnscope.maps import AttentionMap, Recording

__all__ = ["CaptureSession", "MapSink", "mark_masked", "module_names"]


def _matches(patterns: Sequence[str], name: str, cls: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(cls, p) for p in patterns)


def _patterns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass
class CaptureSession(MapRecorder):
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
    form: str = "probs"  # "qk"/"qk16": sdpa and MHA calls recorded as kernel inputs
    value_weighted: bool = False  # also alpha * ||f(v)|| for sdpa and MHA calls

    def __post_init__(self) -> None:
        self.thread = threading.get_ident()  # the capturing thread: see push()
        self.recording = Recording()
        self.names = module_names(self.root)
        self.stack: list[Frame] = []
        self.forward_index = -1
        self.call_batch: int | None = None  # batch size of the current model call
        self._calls: dict[str, int] = {}
        self._wanted: dict[tuple[str, bool], bool] = {}
        self._heads: dict[nn.Module, int | None] = {}
        self.claimed: set[str] = set()  # modules whose maps come from a declared strategy
        self.ignored_softmax: dict[str, int] = {}  # softmax owners that are not attention
        self.qk_masks = MaskMemo()  # q/k form: a mask every layer receives, compacted once
        self._unsent: list[AttentionMap] = []
        self._notes_sent = 0  # lines of rec.notes already handed to the sink
        # called with a frame whose ``pending`` is set, as it leaves the stack
        self.frame_end: list[Callable[[Frame], None]] = []

    # -- module stack --------------------------------------------------------------
    def push(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if threading.get_ident() != self.thread:
            return
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
        if threading.get_ident() != self.thread:
            return
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
        heads = self._heads.get(owner.module, -1)
        if heads == -1:  # ~10 attribute lookups: once per module and capture
            heads = self._heads[owner.module] = declared_heads(owner.module)
        cached = any(f.cached for f in self.stack)
        return CallShape(self.call_batch, heads, tokens, cached)

    def fit(self, owner: Frame, t: torch.Tensor, what: str, *,
            evidence: dict[str, Any] | None = None,
            say: Callable[[str], None] | None = None) -> torch.Tensor | None:
        """``t`` (key axis last) as ``(batch, head, query, key)``, or ``None`` after a
        note saying why it was not recorded. ``evidence``: ``CallShape`` fields the
        strategy knows from how the operands were built (``fold``, ``rows``); ``say``:
        where the notes go (``rec.notes`` by default)."""
        say = say or self.note
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
            say(f"{owner.name or '<root>'}: {what} of shape {list(t.shape)} not "
                f"recorded: {why}")
        elif why:
            say(f"{owner.name or '<root>'}: {what} of shape {list(t.shape)}: {why}")
        elif dense.ndim == 4:
            folded = folded_note(int(dense.shape[0]), self.call_batch)
            if folded:
                say(f"{owner.name or '<root>'}: {folded}")
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

    def note_ignored_softmax(self, owner: Frame | None) -> None:
        name = owner.name if owner is not None else "<outside the model>"
        self.ignored_softmax[name] = self.ignored_softmax.get(name, 0) + 1
