"""Decode one prompt token by token while capturing attention, then stitch every
attention module's steps into one causal map.

Every token the sequence ends with is fed to the model once (the last one too, in one
extra step whose logits are unused), so the map has a row for every token: ``prompt +
generated`` queries over the same keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attnscope.capturing import capture
from attnscope.entries import entry_name
from attnscope.errors import AttnscopeError
from attnscope.generation.causal_map import StitchError, check_causal, group_steps, stitch_causal
from attnscope.generation.protocol import GenerationError, capture_target
from attnscope.generation.qk_steps import merge_steps, trim_step
from attnscope.generation.sdpa_tap import module_stack, tap, tapping
from attnscope.generation.step_recorder import Fallback, StepRecorder
from attnscope.maps import AttentionMap
from attnscope.options import check_form


@dataclass(frozen=True)
class Sampling:
    """Greedy (``sample=False``) or sampling with a seed, temperature, top-k and top-p."""

    sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise GenerationError(f"temperature {self.temperature} must be > 0")
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError(f"top_k {self.top_k} must be at least 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p {self.top_p} must be in (0, 1]")

    def pick(self, logits: torch.Tensor, gen: torch.Generator) -> int:
        """The next token from ``(vocab,)`` logits."""
        logits = logits.float()
        if not self.sample:
            return int(torch.argmax(logits))
        logits = logits / self.temperature
        if self.top_k is not None and self.top_k < logits.numel():
            cut = torch.topk(logits, self.top_k).values[-1]
            logits = logits.masked_fill(logits < cut, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p is not None and self.top_p < 1:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < self.top_p  # always keeps the top
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))


@dataclass
class Decoded:
    """One prompt's tokens and its stitched ``(1, head, token, token)`` maps."""

    ids: list[int]
    prompt_length: int
    maps: dict[str, AttentionMap]
    notes: list[str] = field(default_factory=list)
    stopped: str = "max_new_tokens"


def decode(lm: Any, ids: Sequence[int], max_new_tokens: int, sampling: Sampling, *,
           include: Any = None, exclude: Any = None, context: int | None = None,
           form: str = "probs") -> Decoded:
    """Prefill ``ids``, generate up to ``max_new_tokens`` and capture every step.

    ``form="qk"``/``"qk16"``: a layer's map carries the whole sequence's queries and keys
    (``m.qk``) and its ``weights`` is a data-less ``meta`` tensor until
    :func:`~attnscope.generation.qk_steps.materialize` computes them; a layer that is not
    one causal q/k segment is stitched probabilities with a ``qk_note`` saying why. The
    decode steps are then recorded by a light tap on sdpa
    (:mod:`attnscope.generation.sdpa_tap`), not the per-call capture, which stays the
    fallback when the tap cannot see or check every call."""
    form = check_form(form)
    seq = [int(i) for i in ids]
    prompt = len(seq)
    if context is not None and prompt + max_new_tokens > context:
        raise GenerationError(f"the prompt has {prompt} tokens and {max_new_tokens} new ones "
                              f"were asked for, but the model's context is {context}; shorten "
                              "the prompt or lower --max-new-tokens")
    if form != "probs" and not tapping():  # (a generation inside a model's step: nested)
        light = _decode_tapped(lm, seq, max_new_tokens, sampling, include, exclude, form)
        if light is not None:
            return light
    return _decode_captured(lm, seq, max_new_tokens, sampling, include, exclude, form)


def _decode_tapped(lm: Any, ids: list[int], max_new_tokens: int, sampling: Sampling,
                   include: Any, exclude: Any, form: str) -> Decoded | None:
    """The prefill captured as usual, the decode steps through the sdpa tap; ``None``
    when the tap cannot record this model's generation exactly."""
    seq = list(ids)
    target = capture_target(lm)
    modules = dict(target.named_modules())
    recorder = StepRecorder()
    prefill = _Inputs("qk")  # the prefill's maps carry their inputs, not probabilities
    try:
        with _model_errors(seq), torch.inference_mode(), tap(recorder):
            with capture(target, include, exclude, store=prefill, form="qk", keep=False) \
                    as rec, module_stack(modules, recorder.stack):
                logits, cache = lm.step(torch.tensor([seq]), None)
            recorder.attach(prefill.maps, len(seq))
            check_causal(recorder.prefill_maps())
            with module_stack({n: modules[n] for n in recorder.hooked}, recorder.stack,
                              exits=False):
                stopped = _steps(lm, seq, logits, cache, max_new_tokens, sampling,
                                 recorder.end_step)
        maps = recorder.maps(len(seq), form)
    except Fallback:
        return None
    return Decoded(seq, len(ids), maps, list(rec.notes), stopped)


def _steps(lm: Any, seq: list[int], logits: torch.Tensor, cache: Any, max_new_tokens: int,
           sampling: Sampling, after: Callable[[int], None]) -> str:
    """Pick and feed up to ``max_new_tokens`` tokens after the prefill (``seq`` grows);
    ``after(len(seq))`` runs after each model step. Why it stopped."""
    gen = torch.Generator().manual_seed(int(sampling.seed))
    eos = getattr(lm, "eos_id", None)
    for _ in range(max_new_tokens):
        token = sampling.pick(logits[0, -1], gen)
        seq.append(token)
        logits, cache = lm.step(torch.tensor([[token]]), cache)  # its row, too
        after(len(seq))
        if eos is not None and token == int(eos):
            return "eos"
    return "max_new_tokens"


@contextlib.contextmanager
def _model_errors(seq: list[int]) -> Iterator[None]:
    """The user's model failed: one line saying at which token, the cause kept."""
    try:
        yield
    except (AttnscopeError, Fallback):
        raise
    except Exception as err:
        text = " ".join(str(err).split())[:200]
        raise GenerationError(f"the model raised {type(err).__name__} at token "
                              f"{len(seq)}: {text}") from err


def _decode_captured(lm: Any, seq: list[int], max_new_tokens: int, sampling: Sampling,
                     include: Any, exclude: Any, form: str) -> Decoded:
    """Every step through the capture (each call's probabilities, or q/k inputs)."""
    prompt = len(seq)
    bounds = [0]  # rec.maps[bounds[s]:bounds[s + 1]] came from step s
    qk = {} if form == "probs" else {"store": _Inputs(form), "form": form, "keep": True}

    def after(length: int) -> None:
        bounds.append(len(rec.maps))
        _trim(rec.maps, bounds, length - 1, qk)

    with _model_errors(seq), torch.inference_mode(), \
            capture(capture_target(lm), include, exclude, **qk) as rec:
        logits, cache = lm.step(torch.tensor([seq]), None)
        bounds.append(len(rec.maps))
        check_causal(rec.maps)
        _trim(rec.maps, bounds, 0, qk)
        stopped = _steps(lm, seq, logits, cache, max_new_tokens, sampling, after)
    notes = list(rec.notes)
    maps: dict[str, AttentionMap] = {}
    per_step = [rec.maps[a:b] for a, b in zip(bounds, bounds[1:])]
    groups = group_steps(per_step)
    for (module, call), steps in groups.items():
        name = entry_name(module, call)
        try:
            maps[name] = stitch_causal(steps, len(seq))
        except StitchError as err:
            notes.append(f"{name}: not stitched: {err}")
            continue
        if form != "probs":
            try:
                maps[name].qk = merge_steps(steps, len(seq))
            except StitchError as err:
                maps[name].qk_note = f"not one causal q/k segment: {err}"
    stitched = {module for module, _ in groups}
    for module in sorted({m.module for m in rec.maps if not m.is_graph} - stitched):
        notes.append(f"{module}: did not run once per token, so it is not a causal "
                     "self-attention of the sequence; left out")
    if not maps:
        raise GenerationError("no attention module ran once per token; nothing forms a "
                              "causal map (is this a decoder-only language model?)")
    return Decoded(seq, prompt, maps, notes, stopped)


class _Inputs:
    """The capture's store stand-in in q/k form: the session then attaches each sdpa
    call's inputs to its map; nothing is written, the maps handed over are listed."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.maps: list[AttentionMap] = []

    def write(self, m: AttentionMap) -> None:
        self.maps.append(m)

    def commit(self) -> None:
        pass


def _trim(maps: list[AttentionMap], bounds: list[int], pos: int, qk: dict[str, Any]) -> None:
    """The last step's maps keep only their new queries and keys (q/k form)."""
    if qk:
        for m in maps[bounds[-2]:bounds[-1]]:
            trim_step(m, pos)
