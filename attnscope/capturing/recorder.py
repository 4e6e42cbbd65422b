"""Recording, the session's half that turns what the strategies found into maps:
found calls go through the policy (:mod:`attnscope.capturing.policy`), weights the
model already materialised through :meth:`MapRecorder.record` (selection, masked zeros,
dtype, a copy only where the model could still change the tensor), and every map of
one model call reaches the store sink as one batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import torch

from attnscope.capturing.calls import MhaCall, SdpaCall
from attnscope.kernels import mark_masked_
from attnscope.maps import AttentionMap

if TYPE_CHECKING:
    from attnscope.capturing.frames import Frame


class MapSink(Protocol):
    """Where maps go besides memory (a store writer)."""

    def write(self, m: AttentionMap) -> None: ...
    def commit(self) -> None: ...


class MapRecorder:
    """Mixed into :class:`~attnscope.capturing.session.CaptureSession`, which supplies
    ``selection``, ``recording``, ``keep``, ``sink``, ``claimed``, ``call_batch``,
    ``forward_index``, ``_unsent`` and ``_notes_sent``."""

    _policy: dict[type, Callable[[Any, Any], Any]]

    def record_call(self, call: SdpaCall | MhaCall) -> Any:
        """Record a call a strategy found, as the capture's options say (probabilities,
        query/key inputs, value-weighted); returns what the model's call returns."""
        policy = getattr(self, "_policy", None)
        if policy is None:
            from attnscope.capturing.policy import record_mha, record_sdpa

            policy = self._policy = {SdpaCall: record_sdpa, MhaCall: record_mha}
        return policy[type(call)](self, call)

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
        masked: bool = True,
    ) -> AttentionMap | None:
        """Store one map. ``weights`` is ``(batch, head, query, key)`` or, with
        ``edge_index``, ``(..., edge, head)``; ``selected``: samples and heads were
        already picked by the strategy (``heads``/``samples`` say which); ``owned``: the
        tensors are the strategy's own, not the model's, so they need no defensive copy;
        ``masked=False``: no marking pass (:func:`mark_masked`), because the kernel
        marked the map already or the call masked no key."""
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
        if not graph and masked:
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
        self.emit(m)
        return m

    def emit(self, m: AttentionMap) -> None:
        """Count a finished map, keep it in memory if asked, queue it for the sink."""
        self.recording.num_recorded += 1
        if self.keep and m.weights.device.type != "meta":
            self.recording.maps.append(m)
        if self.sink is not None:
            self._unsent.append(m)  # sent at the end of the model call: see flush()

    def flush(self, commit: bool) -> None:
        """Hand the maps of the finished model call to the sink, as one batch. They wait
        until then because a map can still gain its ``effective`` matrix."""
        if self.sink is None:
            return
        self._send_notes()
        unsent, self._unsent = self._unsent, []
        for m in unsent:
            self.sink.write(m)
        if commit:
            self.sink.commit()

    def _send_notes(self) -> None:
        """New lines of ``rec.notes`` go to a writer that keeps them (the store's
        ``notes(step)``, shown by ``attnscope store info``), also behind a wrapper."""
        sink = self.sink
        while sink is not None and not hasattr(sink, "note"):
            sink = getattr(sink, "inner", None)
        notes = self.recording.notes
        if sink is not None:
            for text in notes[self._notes_sent:]:
                sink.note(text)
        self._notes_sent = len(notes)

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


def mark_masked(weights: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """:func:`attnscope.kernels.mark_masked_` (the one marking rule) for maps a
    strategy took from the model (softmax outputs, MHA weights); the sdpa kernel marks
    its own blocks. Figures hide the signed zeros only (:func:`attnscope.plot.find_mask`).
    Maps without a zero cost one min-reduction; ``in_place`` for tensors the strategy
    owns, else the model's tensor is left alone."""
    if not weights.is_floating_point() or weights.numel() == 0 or bool(weights.amin() > 0):
        return weights
    return mark_masked_(weights if in_place else weights.clone())
