"""What ``attnscope generate`` writes per prompt: figures of one layer, a store of every
stitched layer (so ``attnscope stats``/``view``/``plot`` work on it), head scores and the
offline page."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from attnscope._files import atomic_path
from attnscope.generation import qk_scores
from attnscope.generation.qk_scores import block_factor, block_means
from attnscope.generation.qk_steps import is_qk, stored_maps


def _title(r: Any, width: int = 36) -> str:
    short = r.prompt if len(r.prompt) <= width else r.prompt[:width - 3] + "..."
    new = len(r.ids) - r.prompt_length
    return f"prompt {r.index} \u201c{short}\u201d\n+ {new} generated tokens"


def figures(r: Any, folder: Path, dpi: float) -> list[Path]:
    """``attention_layer{N}.png`` (mean of heads) and ``attention_multihead_layer{N}.png``;
    generated tokens' labels are marked with a leading ``→`` on the query axis."""
    from attnscope.plot import plot_heads, plot_heatmap

    name = list(r.maps)[r.layer]
    kept = stored_maps(r.maps)[name]
    if is_qk(kept) and len(r.ids) > qk_scores.LONG:
        return _block_figures(r, name, kept, folder, dpi)
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


def _block_figures(r: Any, name: str, m: Any, folder: Path, dpi: float) -> list[Path]:
    """The long figures: block means of the probabilities computed from the layer's
    queries and keys (never its whole map), the block size in every title."""
    from attnscope.plot import plot_heads, plot_heatmap

    f = block_factor(len(r.ids))
    w = block_means(m.qk, f)[None]  # (1, head, R, R)
    heads = w.shape[1]
    first_new = r.prompt_length // f  # the block holding the first generated token
    axis = f"token block ({f} tokens each; generated from block {first_new})"
    what = f"block mean of {f} x {f} tokens" if f > 1 else "from queries and keys"
    path = folder / f"attention_layer{r.layer}.png"
    plot_heatmap(w, head="mean", query_axis=f"query {axis}", key_axis=f"key {axis}",
                 title=f"{_title(r)}\n{name} (layer {r.layer}), mean of {heads} heads, "
                       f"{what}", dpi=dpi, path=path)
    grid = folder / f"attention_multihead_layer{r.layer}.png"
    plot_heads(w, dpi=dpi, path=grid,
               title=f"{_title(r, 24)}\n{name} (layer {r.layer}), {heads} heads + mean, "
                     f"{what}")
    return [path, grid]


def write_store(r: Any, path: Path, step: str, form: str = "probs") -> Path:
    """Every stitched layer under ``step`` (float32: exact), labelled with the tokens.
    ``form="qk"``: a layer whose maps carry the sequence's queries and keys
    (:mod:`attnscope.generation.qk_steps`) is one causal q/k segment, O(L * dim)."""
    from attnscope.store import open_writer

    labels = {"tokens": r.tokens, "prompt_length": r.prompt_length}
    with open_writer(path, step=step, dtype="float32", labels=labels, form=form,
                     if_exists="overwrite", durable=False) as writer:
        for m in stored_maps(r.maps).values():  # q/k layers as kept: O(L * dim)
            writer.write(m)
    return path


def write_stats(r: Any, path: Path) -> Path:
    """One CSV row per (layer, head): every metric, previous-token/induction/sink included
    (``r.stats``, as ``head_stats`` writes its CSV)."""
    from attnscope.analysis.report import PER_SAMPLE_COLUMNS, csv_cell

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PER_SAMPLE_COLUMNS)
        for row in r.stats:
            writer.writerow([csv_cell(row.get(c, "")) for c in PER_SAMPLE_COLUMNS])
    return path


def write_view(r: Any, path: Path, store: Path | None = None) -> Path:
    """The offline page of every layer, token-labelled. A long generation in q/k form is
    read from its ``store`` (the page computes fine cells from the queries and keys;
    nothing ``L x L`` is built); if every layer does not fit the page's size limit, the
    drawn layer alone, with a note."""
    from attnscope.generation.run import as_recording
    from attnscope.viewer import ViewTooLargeError, render_html

    title = _title(r, 60).replace("\n", " ")
    kept = stored_maps(r.maps)
    if store is None or len(r.ids) <= qk_scores.LONG or not any(is_qk(m) for m in kept.values()):
        return render_html(as_recording(r.maps), tokens=r.tokens, title=title).save(path)
    from attnscope.store import open_store

    source = open_store(store)
    try:
        page = render_html(source, tokens=r.tokens, title=title)
    except ViewTooLargeError as err:
        name = list(kept)[r.layer]
        r.notes.append(f"view.html shows {name} only: every layer {err}")
        page = render_html(source, modules=[name], tokens=r.tokens, title=title)
    return page.save(path)
