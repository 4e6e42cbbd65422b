"""The per-example figures of ``attnscope translate``, drawn by :mod:`attnscope.plot`.

Masked cells come from structure, never from values: a decoder self-attention cell is
hatched when its key lies after its query (the causal future the step never had); cross
and encoder maps hide nothing (the sentence is not padded), so a weight that rounds to
0 stays a visible 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnscope.text.decoding import Decoded


def causal_mask(n: int) -> np.ndarray:
    """``(query, key)``: True where the key comes after the query."""
    return np.triu(np.ones((n, n), dtype=bool), 1)


def _np(w: torch.Tensor) -> np.ndarray:
    return w.detach().float().numpy()


def seq2seq_figures(ex: Decoded, layers: dict[str, int], out: Path, title: str,
                    dpi: float = 150) -> list[Path]:
    """``cross_attention_layer{N}.png``, ``cross_attention_multihead_layer{N}.png``,
    ``self_attention_layer{N}.png`` (decoder, causal) and, when the encoder was captured,
    ``encoder_self_attention_layer{N}.png``; ``layers`` gives each family's layer
    index (``cross``, ``decoder_self``, ``encoder_self``), which names the files."""
    from attnscope.plot import plot_heatmap

    files = []
    if "cross" in layers:
        files += _cross_figures(ex, layers["cross"], out, title, dpi)
    if ex.decoder_self and "decoder_self" in layers:
        n = layers["decoder_self"]
        w = _np(ex.decoder_self[n])  # (head, target, target), NaN in the causal future
        future = causal_mask(w.shape[1])
        path = out / f"self_attention_layer{n}.png"
        mean = np.where(future, np.nan, w).mean(axis=0)
        plot_heatmap(mean, head=0, query_labels=ex.target, key_labels=ex.decoder_inputs,
                     query_axis="generated token (query)", key_axis="decoder input (key)",
                     mask=future, dpi=dpi, path=path,
                     title=f"{title}\ndecoder layer {n} causal self attention, "
                     f"mean of {w.shape[0]} heads")
        files.append(path)
    if ex.encoder_self and "encoder_self" in layers:
        files += encoder_figures(ex, layers["encoder_self"], out, title, prefix="encoder_",
                                 dpi=dpi, multihead=False)
    return files


def _cross_figures(ex: Decoded, layer: int, out: Path, title: str, dpi: float) -> list[Path]:
    from attnscope.plot import plot_cross, plot_heads

    cross = _np(ex.cross[layer])  # (head, target, source)
    heads = cross.shape[0]
    path = out / f"cross_attention_layer{layer}.png"
    plot_cross(cross, head="mean", source_labels=ex.source, target_labels=ex.target,
               query_axis="generated token (query)", key_axis="source token (key)",
               mask=None, dpi=dpi, path=path,
               title=f"{title}\ndecoder layer {layer} cross attention, mean of {heads} heads")
    multi = out / f"cross_attention_multihead_layer{layer}.png"
    plot_heads(cross, query_labels=ex.target, key_labels=ex.source, mask=None, dpi=dpi,
               path=multi, title=f"{title}\ndecoder layer {layer} cross attention, "
               f"{heads} heads and their mean")
    return [path, multi]


def encoder_figures(ex: Decoded, layer: int, out: Path, title: str, prefix: str = "",
                    dpi: float = 150, multihead: bool = True) -> list[Path]:
    """``{prefix}self_attention_layer{N}.png`` (head mean) and, with ``multihead``,
    ``{prefix}self_attention_multihead_layer{N}.png``."""
    from attnscope.plot import plot_heads, plot_heatmap

    n = layer
    w = _np(ex.encoder_self[n])  # (head, source, source)
    files = [out / f"{prefix}self_attention_layer{n}.png"]
    plot_heatmap(w, head="mean", labels=ex.source, query_axis="token (query)",
                 key_axis="token (key)", mask=None, dpi=dpi, path=files[0],
                 title=f"{title}\nencoder layer {n} self attention, mean of {w.shape[0]} heads")
    if multihead:
        files.append(out / f"{prefix}self_attention_multihead_layer{n}.png")
        plot_heads(w, labels=ex.source, mask=None, dpi=dpi, path=files[-1],
                   title=f"{title}\nencoder layer {n} self attention, {w.shape[0]} heads and "
                   "their mean")
    return files


def show(files: list[Path]) -> str | None:
    """Open the PNGs in windows when matplotlib has a display; else say why not."""
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if backend in ("agg", "pdf", "svg", "ps", "cairo", "template") or "inline" in backend:
        return f"--show: no display (matplotlib backend {backend!r}); figures saved only"
    import matplotlib.pyplot as plt

    for f in files:
        fig = plt.figure(f.name)
        ax: Any = fig.add_subplot()
        ax.imshow(plt.imread(f))
        ax.set_axis_off()
    plt.show()
    return None
