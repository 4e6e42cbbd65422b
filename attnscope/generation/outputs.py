"""What ``attnscope generate`` writes per prompt: figures of one layer, a store of every
stitched layer (so ``attnscope stats``/``view``/``plot`` work on it), head scores and the
offline page."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _title(r: Any, width: int = 36) -> str:
    short = r.prompt if len(r.prompt) <= width else r.prompt[:width - 3] + "..."
    new = len(r.ids) - r.prompt_length
    return f"prompt {r.index} \u201c{short}\u201d\n+ {new} generated tokens"


def figures(r: Any, folder: Path, dpi: float) -> list[Path]:
    """``attention_layer{N}.png`` (mean of heads) and ``attention_multihead_layer{N}.png``;
    generated tokens' labels are marked with a leading ``→`` on the query axis."""
    from attnscope.plot import plot_heads, plot_heatmap

    name = list(r.maps)[r.layer]
    m = r.maps[name]
    heads = m.weights.shape[1]
    rows = [("→" if i >= r.prompt_length else "") + t for i, t in enumerate(r.tokens)]
    path = folder / f"attention_layer{r.layer}.png"
    plot_heatmap(m, head="mean", query_labels=rows, key_labels=r.tokens,
                 query_axis="token (query; → generated)", key_axis="token (key)",
                 title=f"{_title(r)}\n{name} (layer {r.layer}), mean of {heads} heads",
                 dpi=dpi, path=path)
    grid = folder / f"attention_multihead_layer{r.layer}.png"
    plot_heads(m, query_labels=rows, key_labels=r.tokens, dpi=dpi, path=grid,
               title=f"{_title(r, 24)}\n{name} (layer {r.layer}), {heads} heads + mean")
    return [path, grid]


def write_store(r: Any, path: Path, step: str, form: str = "probs") -> Path:
    """Every stitched layer under ``step`` (float32: exact), labelled with the tokens.
    ``form="qk"``: a layer whose maps carry the sequence's queries and keys
    (:mod:`attnscope.generation.qk_steps`) is one causal q/k segment, O(L * dim)."""
    from attnscope.store import open_writer

    labels = {"tokens": r.tokens, "prompt_length": r.prompt_length}
    with open_writer(path, step=step, dtype="float32", labels=labels, form=form,
                     if_exists="overwrite", durable=False) as writer:
        for m in r.maps.values():
            writer.write(m)
    return path


def write_stats(r: Any, path: Path) -> Path:
    """One CSV row per (layer, head): every metric, previous-token/induction/sink included."""
    from attnscope.analysis import head_stats
    from attnscope.generation.run import as_recording

    head_stats(as_recording(r.maps), tokens=r.tokens, similarity=False, csv_path=path)
    return path


def write_view(r: Any, path: Path) -> Path:
    """The offline page of every layer, token-labelled."""
    from attnscope.generation.run import as_recording
    from attnscope.viewer import render_html

    page = render_html(as_recording(r.maps), tokens=r.tokens,
                       title=_title(r, 60).replace("\n", " "))
    return page.save(path)
