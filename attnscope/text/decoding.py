"""Decode one sentence while capturing its attention, and sort the maps into encoder
self, decoder (causal) self and cross attention per layer.

Greedy decoding calls ``model.decode`` once per generated token on the whole prefix, so
every decoder attention module runs once per step; each step keeps its newest query row
and :func:`attnscope.stitch` turns the steps into one ``(target, key)`` map per module.
Beam search runs uncaptured and the chosen hypothesis is then decoded once, captured:
for a causal decoder each row depends only on its own prefix, so those are the maps the
search computed for it (the tests check the greedy stitch against that same pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attnscope.errors import AttnscopeError, NoAttentionFoundError
from attnscope.maps import AttentionMap
from attnscope.stitching import stitch
from attnscope.text.protocol import TextModelError, is_seq2seq


@dataclass
class Decoded:
    """One example: tokens and per-layer head maps (NumPy-ready tensors, one sample).

    ``cross[i]`` is ``(head, target, source)``, ``decoder_self[i]`` ``(head, target,
    target)`` with NaN where a step had no such key (the causal future),
    ``encoder_self[i]`` ``(head, source, source)``. Row ``t`` of the decoder maps is the
    step that generated ``target[t]`` from the inputs ``decoder_inputs[: t + 1]``.
    """

    source_ids: list[int]
    source: list[str]
    target_ids: list[int] = field(default_factory=list)  # generated, <bos> excluded
    target: list[str] = field(default_factory=list)
    decoder_inputs: list[str] = field(default_factory=list)
    encoder_self: list[torch.Tensor] = field(default_factory=list)
    decoder_self: list[torch.Tensor] = field(default_factory=list)
    cross: list[torch.Tensor] = field(default_factory=list)
    modules: dict[str, list[str]] = field(default_factory=dict)
    search: str = "greedy"


@torch.no_grad()
def decode_example(model: Any, source_ids: Sequence[int], *, max_length: int | None = None,
                   beam: int = 1, include: Any = None, exclude: Any = None) -> Decoded:
    """Encode ``source_ids``, decode (seq2seq models) and collect the attention."""
    from attnscope import capture  # the public function, wherever its engine lives
    ids = [int(i) for i in source_ids]
    if not ids:
        raise TextModelError("the sentence has no tokens")
    src = torch.tensor([ids], dtype=torch.long)
    out = Decoded(ids, list(model.source_tokens(ids)))
    seq2seq = is_seq2seq(model)
    limit = max_length or 2 * len(ids) + 10
    tgt = None
    if seq2seq and beam > 1:
        tgt = beam_search(model, model.encode(src), beam, limit)
        out.search = f"beam {beam}"
    try:
        with capture(model, include=include, exclude=exclude) as rec:
            memory = model.encode(src)
            split = len(rec.maps)
            if seq2seq:
                if tgt is None:
                    tgt = greedy(model, memory, limit, on_step=_keep_last_rows(rec.maps))
                else:
                    model.decode(tgt[:, :-1], memory)  # the chosen hypothesis, once
    except NoAttentionFoundError as err:
        # the engine's message speaks of forward calls; here encode/decode did run
        raise NoAttentionFoundError(_nothing_found(model, seq2seq)) from err
    encoder, decoder = rec.maps[:split], rec.maps[split:]
    out.encoder_self, out.modules["encoder_self"] = _encoder_maps(encoder, len(ids))
    if seq2seq:
        assert tgt is not None
        gen = tgt[0, 1:].tolist()
        out.target_ids = gen
        out.target = list(model.target_tokens(gen))
        out.decoder_inputs = list(model.target_tokens(tgt[0, :-1].tolist()))
        _sort_decoder(out, decoder, len(ids), len(gen))
    return out


def _nothing_found(model: Any, seq2seq: bool) -> str:
    ran = "encode and decode ran" if seq2seq else "encode ran"
    kinds = list(dict.fromkeys(type(m).__name__ for _, m in getattr(
        model, "named_modules", lambda: iter(()))() if m is not model))
    inside = f" (its modules: {', '.join(kinds[:6])}{' ...' if len(kinds) > 6 else ''})" \
        if kinds else ""
    return (f"{type(model).__name__}.{ran}, but computed no attention attnscope "
            f"recognises{inside}: scaled_dot_product_attention, nn.MultiheadAttention, or "
            "a softmax over a query-key product in a module named like attention; "
            "attention written by hand in another module: pass include=['<module name>'] "
            "(--include on the command line)")


def greedy(model: Any, memory: Any, limit: int,
           on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """``(1, 1 + generated)`` ids: ``bos_id`` then one argmax token per ``decode`` call,
    up to and including ``eos_id``; ``on_step`` runs after every call."""
    tgt = torch.tensor([[int(model.bos_id)]], dtype=torch.long)
    for _ in range(limit):
        logits = _check_logits(model.decode(tgt, memory), tgt)
        if on_step is not None:
            on_step()
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        tgt = torch.cat([tgt, nxt], dim=1)
        if int(nxt) == int(model.eos_id):
            break
    return tgt


def beam_search(model: Any, memory: Any, width: int, limit: int) -> torch.Tensor:
    """The best hypothesis by length-normalised log-probability; one ``decode`` call per
    live hypothesis and step (memory is used as ``encode`` gave it, batch 1)."""
    eos = int(model.eos_id)
    live: list[tuple[list[int], float]] = [([int(model.bos_id)], 0.0)]
    done: list[tuple[list[int], float]] = []
    for _ in range(limit):
        cands = []
        for seq, score in live:
            t = torch.tensor([seq], dtype=torch.long)
            logp = _check_logits(model.decode(t, memory), t)[0, -1].float().log_softmax(-1)
            top = logp.topk(min(width, logp.numel()))
            cands += [(seq + [int(i)], score + float(v)) for v, i in zip(top.values, top.indices)]
        cands.sort(key=lambda c: c[1], reverse=True)
        live = []
        for seq, score in cands[:width]:
            (done if seq[-1] == eos else live).append((seq, score))
        if not live or len(done) >= width:
            break
    best = max(done or live, key=lambda c: c[1] / (len(c[0]) - 1))
    return torch.tensor([best[0]], dtype=torch.long)


def _keep_last_rows(maps: list[AttentionMap]) -> Callable[[], None]:
    """After each step, keep only the newest query row of the maps that step recorded:
    the earlier rows repeat earlier steps (the prefix is recomputed), and keeping them
    would cost memory cubic in the output length. Stitching then appends the rows."""
    done = len(maps)

    def trim() -> None:
        nonlocal done
        for m in maps[done:]:
            if not m.is_graph and m.weights.shape[2] > 1:
                m.weights = m.weights[:, :, -1:].clone()
        done = len(maps)

    return trim


def _check_logits(logits: Any, tgt: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or \
            logits.shape[:2] != tgt.shape:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TextModelError(f"decode must return logits (batch, target, vocab) = "
                             f"({tgt.shape[0]}, {tgt.shape[1]}, vocab); got {shape}")
    return logits


def _first_calls(maps: list[AttentionMap]) -> dict[str, AttentionMap]:
    found: dict[str, AttentionMap] = {}
    for m in maps:
        if not m.is_graph:
            found.setdefault(m.module, m)
    return found


def _encoder_maps(maps: list[AttentionMap], n: int) -> tuple[list[torch.Tensor], list[str]]:
    firsts = [(k, m) for k, m in _first_calls(maps).items()
              if tuple(m.weights.shape[2:]) == (n, n)]
    return [m.weights[0].float() for _, m in firsts], [k for k, _ in firsts]


def _sort_decoder(out: Decoded, maps: list[AttentionMap], n_src: int, n_tgt: int) -> None:
    """Cross vs causal self per decoder module: by the kind capture gave, else by
    structure (over several steps, cross-attention keys stay the source while
    self-attention keys grow with the target)."""
    dense = [m for m in maps if not m.is_graph]
    if not dense:
        raise AttnscopeError("attention was captured in the encoder only; the decoder's "
                             "attention modules were not seen (pass include=...)")
    cross, selfs = [], []
    for name, stitched in stitch(dense).items():
        w = stitched.weights
        if w.shape[0] != 1 or w.shape[2] != n_tgt:
            continue  # not one row per generated token: not decoder token attention
        calls = [m.weights.shape[3] for m in dense if m.module == name]  # keys per step
        if stitched.kind == "cross":
            is_cross = True
        elif len(calls) > 1:
            is_cross = set(calls) == {n_src}  # self-attention keys grow step by step
        else:
            is_cross = w.shape[3] == n_src != n_tgt
        if is_cross and w.shape[3] == n_src:
            cross.append((name, w[0].float()))
        elif not is_cross and w.shape[3] == n_tgt:
            selfs.append((name, w[0].float()))
    if not cross:
        raise AttnscopeError("no decoder-to-encoder cross-attention was captured (decoder "
                             f"modules seen: {', '.join(sorted({m.module for m in dense})[:6])});"
                             " pass include=... or kinds={'<module glob>': 'cross'}")
    out.cross, out.modules["cross"] = [w for _, w in cross], [k for k, _ in cross]
    out.decoder_self, out.modules["decoder_self"] = [w for _, w in selfs], [k for k, _ in selfs]
