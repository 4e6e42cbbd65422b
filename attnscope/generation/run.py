"""``attnscope.generate``: prompts in, a language model's attention while it generates out:
one causal (token x token) map per layer and head, figures, a page and head scores.

Example:
    >>> results = attnscope.generate(model, ["The cat sat on the"], tokenizer=tok,
    ...                              max_new_tokens=20, out="gen")
    >>> results[0].text                         # the generated continuation
    >>> results[0].maps["model.layers.0.self_attn"].weights.shape   # (1, head, L, L)
    >>> results[0].top_heads["induction"][:3]   # [(module, head, score), ...]
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnscope._files import write_text
from attnscope.generation import qk_scores
from attnscope.generation.decoding import Decoded, Sampling, decode
from attnscope.generation.protocol import (
    GenerationError,
    as_causal_lm,
    labels_of,
    prompt_ids,
)
from attnscope.generation.qk_scores import stat_rows
from attnscope.generation.qk_steps import LazyMaps, is_qk, materialize
from attnscope.maps import AttentionMap, Recording
from attnscope.options import check_form
from attnscope.sources.index import resolve_layer

STEP = "generation"  # the store step of a prompt's stitched maps
SCORES = ("prev_token", "induction", "first")  # head scores a generation reports


@dataclass
class GenerationResult:
    """One prompt: its tokens, the generated text, stitched maps, head scores, files.

    ``maps``: a dict; above 1024 tokens in q/k form a
    :class:`~attnscope.generation.qk_steps.LazyMaps` (``maps[name]`` computes that one
    layer's probabilities on access; ``maps.stored(name)`` keeps its queries and keys).
    ``stats``: one row per (layer, head) with every metric (``head_stats.csv``)."""

    index: int
    prompt: str
    ids: list[int]
    tokens: list[str]
    prompt_length: int
    text: str
    stopped: str
    layer: int
    maps: Mapping[str, AttentionMap] = field(repr=False)
    top_heads: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "prompt": self.prompt, "generated": self.text,
                "stopped": self.stopped, "prompt_length": self.prompt_length,
                "tokens": self.tokens, "ids": self.ids, "layer": self.layer,
                "modules": list(self.maps),
                "top_heads": {k: [{"module": m, "head": h, "score": round(s, 4)}
                                  for m, h, s in v] for k, v in self.top_heads.items()},
                "notes": self.notes, "files": [p.name for p in self.files]}


def generate(model: Any, prompts: Sequence[str | Sequence[int]], *, tokenizer: Any = None,
             max_new_tokens: int = 20, sample: bool = False, seed: int = 0,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             layer: int = -1, out: str | Path | None = None, include: Any = None,
             exclude: Any = None, store: bool = True, view: bool = True, dpi: float = 150,
             form: str = "probs", echo: Callable[[str], None] | None = None
             ) -> list[GenerationResult]:
    """Generate from each prompt while capturing attention; with ``out``, write per prompt
    ``prompt_{i}/attention_layer{N}.png`` (head mean), ``attention_multihead_layer{N}.png``,
    ``view.html`` (every layer), ``store/`` (step ``generation``: ``attnscope stats`` and
    ``attnscope view`` read it), ``head_stats.csv`` and ``generation.json``.

    Args:
        model: a Hugging Face causal LM (with ``tokenizer`` for text prompts) or a module
            with the :mod:`attnscope.generation.protocol` ``step`` method.
        prompts: texts, or token-id lists.
        max_new_tokens: most tokens to generate (stops earlier at the model's EOS).
        sample, seed, temperature, top_k, top_p: sampling (default greedy); the same seed
            gives the same tokens.
        layer: the layer drawn; negative counts from the end.
        include, exclude: module globs, as in :func:`attnscope.capture`.
        form: the store's form: ``"probs"`` (float32 probabilities), ``"qk"`` (per layer
            one causal segment of the sequence's queries and keys: O(L * dim), exact on
            read; a layer whose cache drops keys stays probabilities, with a note) or
            ``"qk16"`` (the same, float16). With q/k, head scores are computed from the
            queries and keys in blocks of rows; above 1024 tokens no layer's map is
            held unless asked for, figures are block means and the page reads the store.
        echo: called with each printed line (the CLI passes its console).

    Raises:
        GenerationError: a model that is not a causal LM, a prompt longer than its
            context, a text prompt without a tokenizer, a bad option.
        NoAttentionFoundError: the model computed no attention attnscope can capture.
    """
    form = check_form(form)
    lm = as_causal_lm(model, tokenizer)
    if not prompts:
        raise GenerationError("no prompts given")
    if max_new_tokens < 0:
        raise GenerationError(f"max_new_tokens {max_new_tokens} must be >= 0")
    sampling = Sampling(sample, temperature, top_k, top_p, seed)
    context = getattr(lm, "context_length", None)
    results = []
    for i, prompt in enumerate(prompts):
        ids = prompt_ids(lm, prompt, i)
        decoded = decode(lm, ids, max_new_tokens, sampling, include=include,
                         exclude=exclude, context=context, form=form)
        result = _result(i, prompt, decoded, lm, layer)
        if out is not None:
            result.files = _write(result, Path(out) / f"prompt_{i:03d}", dpi, store, view,
                                  form)
        results.append(result)
        if echo is not None:
            _echo(result, echo)
    if out is not None:
        write_text(Path(out) / "summary.json",
                   json.dumps([r.to_dict() for r in results], indent=1, ensure_ascii=False))
    return results


def _result(i: int, prompt: Any, d: Decoded, lm: Any, layer: int) -> GenerationResult:
    layer = resolve_layer(layer, len(d.maps), "attention")
    tokens = labels_of(lm, d.ids)
    decode_text = getattr(lm, "decode", None)
    new = d.ids[d.prompt_length:]
    text = decode_text(new) if decode_text is not None else "".join(tokens[d.prompt_length:])
    shown = prompt if isinstance(prompt, str) else " ".join(tokens[:d.prompt_length])
    stats = stat_rows(d.maps, tokens)  # q/k layers blockwise, never as L x L maps
    maps: Mapping[str, AttentionMap] = d.maps
    if len(d.ids) > qk_scores.LONG and any(map(is_qk, d.maps.values())):
        # probabilities of one layer at a time, on access
        maps = LazyMaps(d.maps)
    else:  # q/k layers: probabilities for the figures and the page
        materialize(d.maps)
    result = GenerationResult(i, shown, d.ids, tokens, d.prompt_length, text, d.stopped,
                              layer, maps, notes=d.notes, stats=stats)
    result.top_heads = _top_heads(stats)
    return result


def _top_heads(stats: list[dict[str, Any]], k: int = 3
               ) -> dict[str, list[tuple[str, int, float]]]:
    """The ``k`` best heads per score (previous-token, induction, first-token sink)."""
    out: dict[str, list[tuple[str, int, float]]] = {}
    for score in SCORES:
        rows = [(r["module"], int(r["head"]), float(r[score])) for r in stats
                if r.get(score) is not None and r[score] == r[score]]
        out[score] = sorted(rows, key=lambda r: -r[2])[:k]
    return out


def _write(r: GenerationResult, folder: Path, dpi: float, store: bool, view: bool,
           form: str = "probs") -> list[Path]:
    from attnscope.generation import outputs

    folder.mkdir(parents=True, exist_ok=True)
    files = outputs.figures(r, folder, dpi)
    if store:
        files.append(outputs.write_store(r, folder / "store", STEP, form))
        files.append(outputs.write_stats(r, folder / "head_stats.csv"))
    if view and not store and len(r.ids) > qk_scores.LONG and form != "probs":
        with tempfile.TemporaryDirectory() as tmp:  # the long page reads q/k from a store
            kept = outputs.write_store(r, Path(tmp) / "store", STEP, form)
            files.append(outputs.write_view(r, folder / "view.html", kept))
    elif view:
        files.append(outputs.write_view(r, folder / "view.html",
                                        folder / "store" if store else None))
    path = folder / "generation.json"
    r.files = [*files, path]
    write_text(path, json.dumps(r.to_dict(), indent=1, ensure_ascii=False))
    return r.files


def _echo(r: GenerationResult, echo: Callable[[str], None]) -> None:
    echo(f"prompt {r.index}: {r.prompt}")
    echo(f"  generated ({len(r.ids) - r.prompt_length} tokens, stopped at {r.stopped}): "
         f"{r.text}")
    for score, rows in r.top_heads.items():
        if rows:
            best = ", ".join(f"{m} head {h} ({s:.2f})" for m, h, s in rows)
            echo(f"  top {score} heads: {best}")
    for note in r.notes:
        echo(f"  note: {note}")
    if r.files:
        echo(f"  -> {r.files[0].parent}")


def as_recording(maps: Mapping[str, AttentionMap]) -> Recording:
    """The stitched maps as a Recording: what analysis, plots and the viewer read."""
    rec = Recording()
    rec.maps = list(maps.values())
    return rec


def full_map(r: GenerationResult, layer: int | None = None) -> torch.Tensor:
    """``(head, L, L)`` of one layer (default: the result's layer), float32."""
    name = list(r.maps)[r.layer if layer is None else layer]
    return r.maps[name].weights[0]
