"""``attnscope.translate``: sentences in, token-labelled attention figures and
diagnostics out, one folder per example.

Example:
    >>> results = attnscope.translate(model, ["ein kleines Haus"], out="attn", layer=-1)
    >>> results[0].files          # example_000/cross_attention_layer5.png, ...
    >>> results[0].findings[0].message
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnscope._files import write_text
from attnscope.errors import AttnscopeError, SelectionError
from attnscope.sources.index import resolve_layer
from attnscope.text import diagnostics, figures
from attnscope.text.decoding import Decoded, decode_example
from attnscope.text.protocol import TextModelError, as_text_model, is_seq2seq

Source = str | Sequence[int]


@dataclass
class TextResult:
    """What one example produced: its tokens, findings and files."""

    index: int
    text: str
    source: list[str]
    output: list[str]
    layers: dict[str, int]
    findings: list[diagnostics.Finding]
    files: list[Path] = field(default_factory=list)
    search: str = "greedy"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "source_tokens": self.source,
                "output_tokens": self.output, "search": self.search, "layers": self.layers,
                "diagnostics": [f.to_dict() for f in self.findings],
                "files": [p.name for p in self.files], "notes": self.notes}


FAMILIES = {"cross": "decoder cross-attention", "decoder_self": "decoder self-attention",
            "encoder_self": "encoder self-attention"}


def pick_layers(layer: int, counts: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """``layer`` in each attention family that has it (an encoder of 2 layers and a
    decoder of 3: ``--layer 2`` is the decoder's third), and a note per family that
    has not; refused only when no family has it."""
    counts = {f: n for f, n in counts.items() if n}
    picked = {f: layer % n for f, n in counts.items() if -n <= layer < n}
    if counts and not picked:
        have = ", ".join(f"{FAMILIES.get(f, f)} {n}" for f, n in counts.items())
        raise SelectionError(f"layer {layer} is out of range for every attention family "
                             f"(layers: {have}); negative layers count from the end")
    notes = [f"{FAMILIES.get(f, f)} has {n} layers: no layer {layer} to draw"
             for f, n in counts.items() if f not in picked]
    return picked, notes


def translate(model: Any, inputs: Sequence[Source], out: str | Path, *, tokenizer: Any = None,
              layer: int = -1, beam: int = 1, max_length: int | None = None,
              include: Any = None, exclude: Any = None, dpi: float = 150,
              show: bool = False, echo: Callable[[str], None] | None = None
              ) -> list[TextResult]:
    """Decode (or encode) each input while capturing its attention; write per example
    ``example_{i}/cross_attention_layer{N}.png``, ``cross_attention_multihead_layer{N}.png``,
    ``self_attention_layer{N}.png`` (decoder, causal triangle hatched),
    ``encoder_self_attention_layer{N}.png`` and ``diagnostics.json``/``.txt``; an
    encoder-only model gets ``self_attention[_multihead]_layer{N}.png``.

    Args:
        model: a model with the :mod:`attnscope.text.protocol` methods, or a Hugging Face
            model (then ``tokenizer`` is required).
        inputs: sentences, or token-id lists (e.g. validation examples).
        layer: layer position per attention family; negative counts from the end.
        beam: beam width (1: greedy, captured step by step and stitched).
        max_length: most generated tokens (default: twice the source plus 10).
        include, exclude: module globs, as in :func:`attnscope.capture`.
        echo: called with each printed line (the CLI passes its console).

    Raises:
        NoAttentionFoundError: the model computed no attention attnscope can capture.
        TextModelError, SelectionError: a model without the protocol, a bad layer.
    """
    text_model = as_text_model(model, tokenizer)
    if not inputs:
        raise TextModelError("no input sentences")
    if beam < 1:
        raise SelectionError(f"beam width {beam} must be at least 1")
    out = Path(out)
    results = []
    for i, item in enumerate(inputs):
        ids = text_model.source_ids(item) if isinstance(item, str) else [int(t) for t in item]
        if not ids:
            raise TextModelError(f"input {i} ({item!r}) has no tokens")
        try:
            ex = decode_example(text_model, ids, max_length=max_length, beam=beam,
                                include=include, exclude=exclude)
        except AttnscopeError:
            raise
        except Exception as err:  # the user's model failed on this input: say where
            text = " ".join(str(err).split())[:200]
            raise TextModelError(f"input {i} ({len(ids)} tokens): the model raised "
                                 f"{type(err).__name__}: {text}") from err
        results.append(_write_example(i, item, ex, text_model, out / f"example_{i:03d}",
                                      layer, dpi))
        if echo is not None:
            _echo(results[-1], echo)
    write_text(out / "summary.json",
               json.dumps([r.to_dict() for r in results], indent=1, ensure_ascii=False))
    if show:
        note = figures.show([f for r in results for f in r.files if f.suffix == ".png"])
        if note and echo is not None:
            echo(note)
    return results


def _write_example(i: int, item: Source, ex: Decoded, model: Any, folder: Path, layer: int,
                   dpi: float) -> TextResult:
    text = item if isinstance(item, str) else " ".join(ex.source)
    short = text if len(text) <= 60 else text[:57] + "..."
    title = f"example {i}: \u201c{short}\u201d"
    folder.mkdir(parents=True, exist_ok=True)
    layers: dict[str, int] = {}
    notes: list[str] = []
    if is_seq2seq(model):
        layers, notes = pick_layers(layer, {"cross": len(ex.cross),
                                            "decoder_self": len(ex.decoder_self),
                                            "encoder_self": len(ex.encoder_self)})
        files = figures.seq2seq_figures(ex, layers, folder, title, dpi)
        dec = ex.decoder_self[layers["decoder_self"]] if "decoder_self" in layers else None
        cross = ex.cross[layers["cross"]] if "cross" in layers else None
        findings = diagnostics.diagnose(
            None if cross is None else cross.nanmean(0).numpy(),
            None if dec is None else dec.nanmean(0).numpy(), None, ex.source,
            ex.decoder_inputs, ex.target, layers.get("cross", layers.get("decoder_self")))
    else:
        layers["encoder_self"] = resolve_layer(layer, len(ex.encoder_self), "self-attention")
        files = figures.encoder_figures(ex, layers["encoder_self"], folder, title, dpi=dpi)
        findings = diagnostics.diagnose(None, None,
                                        ex.encoder_self[layers["encoder_self"]].mean(0).numpy(),
                                        ex.source, layer=layers["encoder_self"])
    result = TextResult(i, text, ex.source, ex.target, layers, findings, files, ex.search,
                        notes)
    write_text(folder / "diagnostics.json",
               json.dumps(result.to_dict(), indent=1, ensure_ascii=False))
    lines = [f"input:  {text}", f"source tokens: {' '.join(ex.source)}"]
    if ex.target:
        lines.append(f"output ({ex.search}): {' '.join(ex.target)}")
    lines += [("WARNING " if f.flagged else "ok      ") + f.message for f in findings]
    lines += [f"note    {n}" for n in notes]
    write_text(folder / "diagnostics.txt", "\n".join(lines) + "\n")
    result.files = [*files, folder / "diagnostics.json", folder / "diagnostics.txt"]
    return result


def _echo(r: TextResult, echo: Callable[[str], None]) -> None:
    echo(f"example {r.index}: {r.text}")
    if r.output:
        echo(f"  output ({r.search}): {' '.join(r.output)}")
    for f in r.findings:
        echo(("  WARNING " if f.flagged else "  ok ") + f.message)
    for n in r.notes:
        echo(f"  note: {n}")
    echo(f"  -> {r.files[0].parent}")
