"""What the light decode path (:mod:`attnscope.generation.sdpa_tap`) keeps per attention
layer, one sdpa call at a time, and the causal map it gives at the end.

Per call a layer keeps only the new query rows and the new key rows (copied into one
growing buffer per layer); it checks that the call is plain causal attention over every
earlier key (key count, mask). The first call that is not (a sliding window's mask, a
cache that drops keys, a bias) ends the layer's q/k segment there: from that step on the
layer keeps each step's probabilities, computed from that call's own inputs, and its
map is stitched (rows before the step from the recorded queries and keys). At the end
the recorded keys must equal the keys the last call saw, so a cache that changed a key
it held is caught; that, a call the prefill did not make, or a layer that missed a
step raises :class:`Fallback`: the generation is then decoded with the per-call capture.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from attnscope.capturing.calls import bind_sdpa
from attnscope.capturing.layout import unpack_gqa
from attnscope.entries import entry_name
from attnscope.generation.qk_steps import Rows, causal_only, causal_probabilities
from attnscope.kernels import QkInputs, from_sdpa, sdpa_probabilities
from attnscope.maps import AttentionMap

Key = tuple[str, int]  # (module, call index inside one model step)


class Fallback(Exception):
    """The light path cannot record this generation exactly (the reason is the text)."""


class _Layer:
    """One attention call site across the prefill and the decode steps."""

    def __init__(self, heads: int) -> None:
        self.heads = heads
        self.rows = 0  # query rows recorded so far (= the next query's position)
        self.queries = Rows()  # (1, head, rows, dim)
        self.keys = Rows()  # (1, key_head, rows, dim)
        self.last_key: torch.Tensor | None = None  # what the latest call saw (a reference)
        self.scale: float | None = None
        self.failed_at: int | None = None  # the position the q/k segment stops at
        self.why = ""
        self.probs: list[torch.Tensor] = []  # (1, head, new, key) from failed_at on

    def add(self, bound: dict[str, Any], tokens: int) -> None:
        q, k = bound["query"], bound["key"]
        qs, ks = q.shape, k.shape  # read once: this runs for every layer and token
        if len(qs) != 4 or len(ks) != 4 or qs[0] != 1:
            raise Fallback("an sdpa call that is not (1, head, query, dim)")
        if tokens == 1 and qs[2] > 1 and qs[1] * qs[2] == self.heads and ks[1] == qs[1]:
            bound = unpack_gqa(bound, qs[2])  # grouped-query heads packed as queries
            q = bound["query"]
            qs = q.shape
        if qs[1] != self.heads or qs[2] != tokens:
            raise Fallback(f"an sdpa call with {tuple(qs)} queries for {tokens} tokens")
        mask, causal = bound.get("attn_mask"), bool(bound.get("is_causal", False))
        scale = bound.get("scale")
        scale = 1.0 / math.sqrt(qs[3]) if scale is None else float(scale)
        pos, k_len = self.rows, ks[2]
        if self.failed_at is None:
            if k_len != pos + tokens:
                why = (f"the cache holds {k_len} keys at position {pos + tokens} (a "
                       "sliding-window or dropping cache)")
            elif self.scale is not None and scale != self.scale:
                why = "the steps differ in scale"
            else:
                why = causal_only(tokens, k_len, mask, causal, pos)
            if why is None:
                self.queries.append(q)
                self.keys.append(k.narrow(2, pos, tokens))
                self.last_key, self.scale = k, scale
                self.rows += tokens
                return
            self._check_held(k, tokens)
            self.failed_at, self.why = pos, why
        probs, _ = sdpa_probabilities(q, k, mask, causal, scale, out_dtype=torch.float32,
                                      mark=True)
        self.probs.append(probs.cpu())
        self.rows += tokens

    def _check_held(self, k: torch.Tensor, tokens: int) -> None:
        """The keys this call holds from earlier steps are the ones recorded."""
        held = k.shape[2] - tokens
        if held > self.rows:
            raise Fallback(f"the cache holds {k.shape[2]} keys for {self.rows + tokens} tokens")
        if held and not torch.equal(self.keys.all()[:, :, self.rows - held:],
                                    k[:, :, :held]):
            raise Fallback("the cache changed a key it held")

    def weights(self, length: int) -> torch.Tensor:
        """The stitched ``(1, head, length, length)`` float32 map of a failed layer."""
        out = torch.full((1, self.heads, length, length), -0.0, dtype=torch.float32)
        pos = self.failed_at or 0
        if pos:
            out[:, :, :pos, :pos] = causal_probabilities(self.segment(half=False))
        for p in self.probs:
            end = pos + p.shape[-2]
            out[:, :, pos:end, end - p.shape[-1]:end] = p
            pos = end
        return out

    def segment(self, half: bool) -> QkInputs:
        return from_sdpa(self.queries.all(), self.keys.all(), None, True, self.scale,
                         half=half)


class StepRecorder:
    """The recorder :func:`~attnscope.generation.sdpa_tap.tap` calls: every sdpa call of
    the prefill (with the names of the modules running, ``stack``), then, once
    :meth:`attach` has matched them to the captured maps, each decode step's calls by
    the captured module entered last (entry hooks only). A call made after that module
    returned counts as one more call of it, which its prefill did not make: the
    generation falls back, it is never filed under the wrong layer."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.prefill: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self.layers: dict[Key, _Layer] | None = None
        self.names: set[str] = set()  # the captured modules
        self.hooked: list[str] = []  # the modules whose entry decode steps hook
        self.first: dict[Key, AttentionMap] = {}
        self.counts: dict[str, int] = {}
        self.broken: str | None = None

    def __call__(self, args: tuple, kwargs: dict[str, Any]) -> None:
        if self.broken is not None:
            return
        try:  # never raise into the model: a broken record falls back after the step
            bound = bind_sdpa(args, kwargs)
            if self.layers is None:
                kept = {k: v.clone() if isinstance(v, torch.Tensor) and k != "value" else v
                        for k, v in bound.items()}
                self.prefill.append((tuple(self.stack), kept))
                return
            owner = self.stack[-1] if self.stack else None
            if owner not in self.names:
                return  # outside the captured modules (as at the prefill)
            call = self.counts.get(owner, 0)
            self.counts[owner] = call + 1
            layer = self.layers.get((owner, call))
            if layer is None:
                raise Fallback(f"{owner} made an sdpa call its prefill did not")
            layer.add(bound, 1)
        except Exception as err:  # noqa: BLE001  (any failure means: use the capture)
            self.broken = str(err) if isinstance(err, Fallback) else \
                f"{type(err).__name__}: {err}"

    def attach(self, maps: list[AttentionMap], tokens: int) -> None:
        """Match the prefill's sdpa calls to the maps the capture made of it."""
        dense = [m for m in maps if not m.is_graph]
        if any(m.source != "sdpa" or m.kind != "self" or m.weights.ndim != 4 or
               m.weights.shape[0] != 1 for m in dense):
            raise Fallback("attention other than one sample's sdpa self-attention")
        self.names = names = {m.module for m in dense}
        found: list[tuple[Key, dict[str, Any]]] = []
        calls, self.prefill = self.prefill, []
        for stack, bound in calls:
            owner = next((n for n in reversed(stack) if n in names), None)
            if owner is not None:
                call = sum(1 for (o, _), _b in found if o == owner)
                found.append(((owner, call), bound))
        if [key for key, _ in found] != [(m.module, m.call_index) for m in dense]:
            raise Fallback("the sdpa calls seen are not the captured ones")
        # the modules whose entry the decode steps hook: the captured ones, and those
        # running sdpa calls outside every captured module (excluded layers), whose
        # calls are then told apart and left out, as at the prefill
        self.hooked = list(dict.fromkeys([*(m.module for m in dense), *(
            stack[-1] for stack, _ in calls if stack and not names.intersection(stack))]))
        self.first = {(m.module, m.call_index): m for m in dense}
        self.layers = {key: _Layer(int(m.weights.shape[1])) for key, m in self.first.items()}
        for key, bound in found:
            self.layers[key].add(bound, tokens)
        if self.broken is not None:
            raise Fallback(self.broken)

    def prefill_maps(self) -> list[AttentionMap]:
        """The prefill's probabilities of the layers whose prefill was not plain causal
        attention (the others are causal by that check), for the causal check."""
        return [AttentionMap(module=module, kind="self", weights=layer.probs[0])
                for (module, _), layer in (self.layers or {}).items()
                if layer.failed_at == 0]

    def end_step(self, length: int) -> None:
        """After each model step: every layer ran once and took ``length`` rows."""
        self.counts.clear()
        self.stack.clear()  # a call before the first module of the next step is outside
        if self.broken is None and self.layers is not None:
            late = [k for k, layer in self.layers.items() if layer.rows != length]
            if late:
                self.broken = f"{late[0][0]} did not run once in a step"
        if self.broken is not None:
            raise Fallback(self.broken)

    def maps(self, length: int, form: str) -> dict[str, AttentionMap]:
        """One map per layer: a q/k segment (``weights`` a data-less meta tensor, the
        queries and keys in ``m.qk``) or stitched probabilities with ``m.qk_note``."""
        out: dict[str, AttentionMap] = {}
        for (module, call), layer in (self.layers or {}).items():
            first = self.first[(module, call)]
            shape = (1, layer.heads, length, length)
            if layer.failed_at is None:
                if not torch.equal(layer.keys.all(), layer.last_key):
                    raise Fallback("the cache changed a key it held")
                weights = torch.empty(shape, dtype=torch.float32, device="meta")
            else:
                weights = layer.weights(length)
            m = AttentionMap(module=module, kind="self", weights=weights, call_index=call,
                             source=first.source, heads=first.heads, samples=first.samples,
                             reduced=first.reduced)
            if layer.failed_at is None:
                m.qk = layer.segment(half=form == "qk16")
            else:
                m.qk_note = f"not one causal q/k segment: {layer.why}"
            out[entry_name(module, call)] = m
        return out
