"""``attnscope.capture``: the context manager every other part builds on."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from attnscope.capturing import aliases, provenance
from attnscope.capturing.mode import InterceptMode
from attnscope.capturing.registry import Removable, strategy_classes
from attnscope.capturing.selection import Selection
from attnscope.capturing.session import CaptureSession, _patterns
from attnscope.errors import NoAttentionFoundError, SelectionError
from attnscope.maps import Recording
from attnscope.options import check_kind, store_dtype

Patterns = str | Sequence[str] | None


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


def _attach_module_stack(session: CaptureSession) -> list[Removable]:
    """Pre/post forward hooks on every submodule that keep ``session.stack``; the post
    hook runs even when the forward raised."""

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        session.push(module, args, kwargs)

    def post(module: nn.Module, args: tuple, output: Any) -> None:
        session.pop(module, output)

    handles: list[Removable] = []
    for module in session.names:
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
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
    root = unwrap_model(model)
    keep = store is None if keep is None else keep
    selection = Selection.build(heads, samples, reduce, dtype)
    if store is not None:  # a store holds fewer dtypes than a recording: say so now
        stored = store_dtype(dtype if dtype is not None else getattr(store, "dtype", None))
    for kind in (kinds or {}).values():
        check_kind(kind, dense=True)
    session = CaptureSession(
        root, selection, _patterns(include), _patterns(exclude), dict(kinds or {}), keep
    )
    session.check_patterns(session.include, "include")
    available = strategy_classes()
    names = list(available) if strategies is None else list(strategies)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SelectionError(f"unknown strategies {unknown}; available: {sorted(available)}")
    session.returns = dict(returns or {})
    session.methods = dict(methods or {})
    instances = [available[n]() for n in names]

    sink, own_sink = None, False
    if form is not None:  # hook: query/key store form (capturing/_qk.py)
        from attnscope.capturing._qk import check_form

        check_form(form)
        if store is None:
            raise SelectionError(f"form={form!r} is a store form; pass store= as well")
    if store is not None and hasattr(store, "write") and hasattr(store, "commit"):
        sink = store  # an open writer: the caller decides when it closes
        if form is not None and getattr(sink, "form", "probs") != form:
            raise SelectionError(f"form={form!r} but the writer was opened with form="
                                 f"{getattr(sink, 'form', 'probs')!r}; pass form to open_writer")
    elif store is not None:
        from attnscope.store import open_writer

        sink, own_sink = open_writer(store, step=step or "default", model=root,
                                     dtype=stored, form=form), True
    session.sink = sink
    session.value_weighted = value_weighted
    tee = None
    if stats:  # summarises each map on its way to the store (or to nowhere)
        from attnscope.analysis.summary import StatsTee

        session.sink = tee = StatsTee(sink, step or "")

    handles: list[Removable] = []
    handlers = {}
    mode = None
    stance = contextlib.ExitStack()
    ok = False
    try:
        handles += _attach_module_stack(session)
        handlers = provenance.of(session).handlers()  # evidence for the layout check
        for strategy in instances:
            handles += strategy.attach(session)
            aliases.merge(handlers, strategy.handlers(session))
        # compiled code would skip hooks and the mode: run it eagerly while capturing.
        # Without dynamo loaded nothing is compiled, and importing it would replace
        # torch.manual_seed for the rest of the process.
        if "torch._dynamo" in sys.modules:
            stance.enter_context(torch.compiler.set_stance("force_eager"))
        mode = InterceptMode(handlers)
        mode.__enter__()
        yield session.recording
        ok = True
    finally:
        if mode is not None:
            mode.__exit__(None, None, None)
        stance.close()
        for handle in reversed(handles):
            handle.remove()
        session.stack.clear()
        if sink is not None:
            if ok:
                session.flush(commit=not own_sink)
                if own_sink:
                    sink.close()
            elif own_sink:
                sink.abort()
    if session.recording.num_recorded == 0:
        raise NoAttentionFoundError(_no_attention_message(session, names))
    if tee is not None:
        from attnscope.analysis.summary import print_summary

        session.flush(commit=False)  # maps recorded outside a call of the model itself
        session.recording.stats = tee.report()
        print_summary(session.recording.stats)
