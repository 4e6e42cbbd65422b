"""``attnscope.capture``: the context manager every other part builds on.

Three steps: the options are validated once (:class:`~attnscope.capturing.config.
CaptureOptions`), a session and its strategies are built for the model (the store
writer opened for a path), and hooks, patches and the interception mode are attached
for the body of the ``with`` only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnscope.capturing import aliases, provenance
from attnscope.capturing._qk import session_form
from attnscope.capturing.config import CaptureOptions, Patterns, is_writer
from attnscope.capturing.frames import needs_frame
from attnscope.capturing.mode import InterceptMode
from attnscope.capturing.registry import Removable, Strategy, is_builtin, strategy_classes
from attnscope.capturing.session import CaptureSession
from attnscope.errors import NoAttentionFoundError
from attnscope.maps import Recording


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module whose submodules really run: strips DDP/DataParallel and
    ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _attach_module_stack(session: CaptureSession, every: bool) -> list[Removable]:
    """Pre/post forward hooks that keep ``session.stack``, on every submodule that can
    own an attention call (:func:`~attnscope.capturing.frames.needs_frame`) or whose
    weights are declared (``returns=``/``methods=``); the post hook runs even when the
    forward raised."""

    def post(module: nn.Module, args: tuple, output: Any) -> None:
        session.pop(module, output)

    declared = {m for p in (*session.returns, *session.methods)
                for m in session.matching((p,), "returns" if p in session.returns
                                          else "methods")}
    handles: list[Removable] = []
    for module in session.names:
        if not every and module is not session.root and module not in declared and \
                not needs_frame(module):
            continue
        # push's signature is the pre-hook's: no wrapper call per module call
        handles.append(module.register_forward_pre_hook(session.push, with_kwargs=True))
        handles.append(module.register_forward_hook(post, always_call=True))
    return handles


def _no_attention_message(session: CaptureSession, strategies: Sequence[str]) -> str:
    root = type(session.root).__name__
    parts = [
        f"no attention was captured from {root} ({len(session.names)} modules searched for "
        f"{', '.join(strategies)})"
    ]
    if session.include:
        parts.append(f"include={list(session.include)}")
    if session.forward_index < 0:
        parts.append("the model was never called inside the `with` block")
    notes = session.recording.notes
    if notes:
        more = f" (+{len(notes) - 3} more in rec.notes)" if len(notes) > 3 else ""
        parts.append("skipped: " + " | ".join(notes[:3]) + more)
    if session.ignored_softmax:
        names = ", ".join(repr(n or "<root>") for n in list(session.ignored_softmax)[:5])
        example = next(iter(session.ignored_softmax)) or type(session.root).__name__
        parts.append(
            f"softmax was called in modules not named like attention: {names}; "
            f"if that is attention, pass include=[{example!r}]"
        )
    else:
        parts.append(
            "if your attention is computed by hand, pass include=['<module name>'] or "
            "returns={'<module name>': <output index or attribute>}"
        )
    return "; ".join(parts)


@contextlib.contextmanager
def capture(
    model: nn.Module,
    include: Patterns = None,
    exclude: Patterns = None,
    *,
    heads: int | Sequence[int] | None = None,
    samples: int | Sequence[int] | None = None,
    reduce: str | None = None,
    dtype: str | torch.dtype | None = None,
    returns: Mapping[str, int | str] | None = None,
    methods: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    strategies: Sequence[str] | None = None,
    store: Any = None,
    step: str | None = None,
    keep: bool | None = None,
    form: str | None = None,
    stats: bool = False,
    value_weighted: bool = False,
) -> Iterator[Recording]:
    """Record the attention probabilities of every forward run inside the block.

    Example:
        >>> with attnscope.capture(model) as rec:
        ...     model(x)
        >>> rec.maps[0].weights.shape        # (batch, head, query, key)

    Args:
        model: any ``nn.Module`` (compiled, DDP and Lightning models included).
        include: globs over qualified module names or class names; only maps from
            matching modules (or their submodules) are kept, and softmax inside them
            counts as attention even when they are not named like attention.
        exclude: globs whose modules (and submodules) are never captured.
        heads: head indices to keep; ``samples``: batch indices to keep per call.
        reduce: ``"mean"`` averages the kept heads into one.
        dtype: stored dtype, e.g. ``"float16"`` (weights are computed in float32).
        returns: ``{module glob: output index or attribute name}`` for modules that
            hand back or keep their weights (e.g. ``{"*.attn": 1}``, ``{"*": "attn"}``).
        methods: ``{module glob: method name}`` for modules whose weights come out of
            one method (e.g. ``{"*.temporal": "normalize_weights"}``).
        kinds: ``{module glob: "self"|"cross"}`` when the automatic guess is wrong.
        strategies: restrict to these strategy names (see ``list_strategies()``).
        store: a store path (every model call becomes one committed batch there; see
            ``attnscope.open_store``), or a writer from ``attnscope.store.open_writer``
            for labels, disk-space checks and lossy options; the caller closes it.
        step: the store step name, e.g. ``"epoch_003"`` or ``"test"``.
        keep: keep maps in memory too (default: only without a store).
        form: how the store keeps sdpa maps: ``"probs"`` (default), ``"qk"`` (queries,
            keys and mask, probabilities exact on read, far smaller at long sequences)
            or ``"qk16"`` (the same in float16); see ``attnscope.store.open_writer``.
        stats: print min/max/mean/entropy per module and head when the block ends
            (accumulated map by map, also with a store); kept as ``rec.stats``.
        value_weighted: also record ``alpha_ij * ||f(x_j)||`` (Kobayashi et al. 2020)
            as ``map.value_weighted`` for sdpa and MHA calls (in memory only).

    Raises:
        NoAttentionFoundError: the block ended normally and nothing was captured.
    """
    options = CaptureOptions.validate(
        include, exclude, heads=heads, samples=samples, reduce=reduce, dtype=dtype,
        returns=returns, methods=methods, kinds=kinds, strategies=strategies, store=store,
        step=step, keep=keep, form=form, stats=stats, value_weighted=value_weighted)
    build = _build(model, options)
    ok = False
    try:
        with _attached(build.session, build.strategies):
            yield build.session.recording
        ok = True
    finally:
        _close_sink(build, ok)
    _finish(build)


@dataclass
class _Build:
    """A capture ready to attach: its session, strategies and sinks."""

    options: CaptureOptions
    session: CaptureSession
    strategies: list[Strategy]
    sink: Any = None  # the store writer, if any
    own_sink: bool = False  # opened here from a path: closed (or aborted) here
    tee: Any = None  # capture(stats=True): summarises maps on their way to the sink


def _build(model: nn.Module, options: CaptureOptions) -> _Build:
    """The session and strategies for ``model``; opens the store writer for a path.
    Checks that need the model (include patterns) come first, so a bad one leaves no
    store behind."""
    root = unwrap_model(model)
    session = CaptureSession(root, options.selection, options.include, options.exclude,
                             dict(options.kinds), options.keep,
                             returns=dict(options.returns), methods=dict(options.methods),
                             value_weighted=options.value_weighted)
    session.check_patterns(session.include, "include")
    available = strategy_classes()
    build = _Build(options, session, [available[n]() for n in options.strategies])
    store = options.store
    if store is not None and is_writer(store):
        build.sink = store  # an open writer: the caller decides when it closes
    elif store is not None:
        from attnscope.store import open_writer

        build.sink = open_writer(store, step=options.step or "default", model=root,
                                 dtype=options.stored_dtype, form=options.form,
                                 background=True)  # writes overlap the next forward
        build.own_sink = True
    session.sink = build.sink
    if options.stats:  # summarises each map on its way to the store (or to nowhere)
        from attnscope.analysis.summary import StatsTee

        session.sink = build.tee = StatsTee(build.sink, options.step or "")
    session.form = session_form(session)
    return build


@contextlib.contextmanager
def _attached(session: CaptureSession, strategies: list[Strategy]) -> Iterator[None]:
    """Module-stack hooks, the strategies' hooks and patches, and the interception
    mode, for the body of the ``with`` only: all removed on the way out, also when
    attaching or the body raised."""
    handles: list[Removable] = []
    mode = None
    stance = contextlib.ExitStack()
    try:
        handles += _attach_module_stack(session, not all(map(is_builtin, strategies)))
        handlers = provenance.of(session).handlers()  # evidence for the layout check
        for strategy in strategies:
            handles += strategy.attach(session)
            aliases.merge(handlers, strategy.handlers(session))
        # compiled code would skip hooks and the mode: run it eagerly while capturing.
        # Without dynamo loaded nothing is compiled, and importing it would replace
        # torch.manual_seed for the rest of the process.
        if "torch._dynamo" in sys.modules:
            stance.enter_context(torch.compiler.set_stance("force_eager"))
        mode = InterceptMode(handlers)
        mode.__enter__()
        yield
    finally:
        if mode is not None:
            mode.__exit__(None, None, None)
        stance.close()
        for handle in reversed(handles):
            handle.remove()
        session.stack.clear()


def _close_sink(build: _Build, ok: bool) -> None:
    """After a normal exit, hand the last maps over and close what was opened here;
    after an exception, drop the uncommitted batch of a writer opened here."""
    if build.sink is None:
        return
    if ok:
        build.session.flush(commit=not build.own_sink)
        if build.own_sink:
            build.sink.close()
    elif build.own_sink:
        build.sink.abort()


def _finish(build: _Build) -> None:
    """Refuse an empty capture; print and keep the statistics asked for."""
    session = build.session
    if session.recording.num_recorded == 0:
        raise NoAttentionFoundError(_no_attention_message(session,
                                                          list(build.options.strategies)))
    if build.tee is not None:
        from attnscope.analysis.summary import print_summary

        session.flush(commit=False)  # maps recorded outside a call of the model itself
        session.recording.stats = build.tee.report()
        print_summary(session.recording.stats)
