"""``render_html``: the selection read from its source and packed into one page.

Sources are read through :mod:`attnscope.sources` (Recording, AttentionMap, store or
its path, ``{name: array}``, array), which also says which label goes on which axis;
the selection and size check come first (:mod:`attnscope.viewer._select`), then one
entry at a time is read and packed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.plot import MaskSpec, find_mask
from attnscope.plot.overview import short_names
from attnscope.sources import (
    Dense,
    HeadSpec,
    as_source,
    head_positions,
    is_store,
    read_dense,
    row_name,
    rows_per_sample,
    sample_labels,
    step_samples,
    to_numpy,
)
from attnscope.viewer import _graph, _long, _pack, _qk, _select
from attnscope.viewer._page import HTMLView


class _Labels:
    """Label lists, each stored once however many maps use it."""

    def __init__(self) -> None:
        self.lists: list[list[str]] = []
        self._index: dict[tuple[str, ...], int] = {}

    def ref(self, labels: Sequence[str] | None) -> int:
        if labels is None:
            return -1
        key = tuple(str(x) for x in labels)
        if key not in self._index:
            self._index[key] = len(self.lists)
            self.lists.append(list(key))
        return self._index[key]


def render_html(source: Any, *, modules: str | Sequence[str | int] | None = None,
                steps: str | Sequence[str] | None = None, samples: int | Sequence[int] = 0,
                heads: HeadSpec = None, tokens: Sequence[Any] | None = None,
                query_tokens: Sequence[Any] | None = None,
                key_tokens: Sequence[Any] | None = None,
                source_tokens: Sequence[Any] | None = None,
                target_tokens: Sequence[Any] | None = None,
                sides: Mapping[str, str] | None = None, signal: Any = None,
                title: str | None = None, mask: MaskSpec = "auto",
                max_mb: float = _select.DEFAULT_LIMIT_MB, compresslevel: int = 1) -> HTMLView:
    """One self-contained, offline HTML page to explore attention maps.

    Example:
        >>> view = attnscope.render_html(rec, tokens=tokens)
        >>> view.save("attention.html")
        >>> attnscope.render_html(attnscope.open_store("runs/attn"), modules="*self_attn",
        ...                       steps=["epoch_000", "epoch_009"], heads=[0, 1, 2])

    Args:
        source: a Recording, an AttentionMap, a store (or its path), a ``{name: array}``
            mapping or an array ``(key,)`` ... ``(batch, head, query, key)``.
        modules: a glob over module names, a list of names/positions, or None for all.
        steps: store steps to embed (a list, ``"last"`` or None for all); with several,
            the page has a step slider and a difference mode.
        samples: sample position(s) within each step.
        heads: head positions to embed (None: all); the head mean is always added.
        tokens: labels of both axes (self-attention); ``query_tokens``/``key_tokens``
            set them one by one. For an encoder-decoder, ``source_tokens`` label
            encoder self-attention and cross-attention columns, ``target_tokens`` decoder
            self-attention and cross-attention rows. Each is used where its length fits;
            store labels (same names, see :mod:`attnscope.store.schema`) otherwise.
        sides: ``{glob: "source" | "target"}`` for self-attention modules whose name
            does not say encoder or decoder (see :mod:`attnscope.sources.labels`).
        mask: cells drawn as masked (grey, "masked" on hover): ``"auto"`` the causal
            triangle, padded keys and NaN (see :func:`attnscope.plot.find_mask`), None
            only NaN.
        signal: a 1-D series drawn under the bars of 1-D attention of the same length.
        compresslevel: zlib level; 1 is ~3x faster than 6 and only ~2% larger on
            attention maps.
        max_mb: refuse (:class:`ViewTooLargeError`, listing selections that fit) when the
            estimated embedded size is larger.
    """
    source = as_source(source)
    entries = _select.select(source, modules, steps, samples)
    estimate = _select.check_size(entries, heads, max_mb)
    packer = _pack.Packer(level=compresslevel)
    labels = _Labels()
    given = {"tokens": tokens, "query_tokens": query_tokens, "key_tokens": key_tokens,
             "source_tokens": source_tokens, "target_tokens": target_tokens}
    given = {key: [str(x) for x in v] for key, v in given.items() if v is not None}
    used: set[str] = set()
    out = []
    first = _first_view(entries)
    for e in entries:
        step = e.step
        if e.graph:  # every leading axis kept: the page has a selector for each
            out.append(_graph.graph_item(packer, source, e, heads))
            continue
        if e.qk_dim:  # long, in query/key form: the page computes its fine cells
            item = _long_item(packer, source, e, heads, e is first)
            found = item.pop("dense").axis_labels(given, sides)
            used.update(key for key, v in given.items() if len(v) in e.shape)
            item.update(ql=labels.ref(found.query), kl=labels.ref(found.key))
            out.append(item)
            continue
        d = read_dense(source, e.module, step, e.sample, heads)
        mats = list(d.weights)  # (head, query, key) -> per-head (query, key)
        names = [str(h) for h in d.heads]
        if len(mats) > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mats.append(np.nanmean(d.weights, axis=0))
            names.append("mean")
        if mask is not None:  # causal triangle, padding ... drawn as masked, not as zeros
            mats = [np.where(find_mask(m, mask), np.nan, m).astype(np.float32) for m in mats]
        q, k = mats[0].shape
        found = d.axis_labels(given, sides)  # encoder / decoder / cross, per sample
        used.update(key for key, v in given.items() if len(v) in (q, k))
        ql, kl = found.query, found.key
        item = {"module": e.module, "step": step, "sample": e.sample, "graph": False,
                "kind": d.kind or ("self" if q == k else "cross"), "heads": names,
                "num_heads": int(d.num_heads or len(d.heads)),
                "rows": q, "cols": k, "ql": labels.ref(ql), "kl": labels.ref(kl),
                "maps": [_pack.pack_matrix(packer, m, e is first and i == len(mats) - 1)
                         for i, m in enumerate(mats)],
                "thumb": _pack.pack_thumbs(packer, mats)}
        qk = _qk.qk_arrays(source, e.module, step, e.sample, d.heads, (q, k))
        if qk is not None:  # the query/key view: products q_i * k_j behind each score
            item["qk"] = {"dim": int(qk["q"][0].shape[-1]), "scale": qk["scale"],
                          **{s: [packer.add(_pack.f16_planes(x)) for x in qk[s]] for s in "qk"}}
        out.append(item)
    for key in given.keys() - used:
        raise SelectionError(f"{len(given[key])} labels fit no selected map ({key}=; "
                             "lengths: " + ", ".join(sorted({str(x.shape) for x in entries}))
                             + ")")
    if signal is not None:
        sig = to_numpy(signal).reshape(-1)
        signal = {"blob": packer.add(_pack.f16_planes(sig), hot=True), "n": int(sig.size),
                  "min": float(np.nanmin(sig)), "max": float(np.nanmax(sig))}
    names = list(dict.fromkeys(e["module"] for e in out))
    short = dict(zip(names, short_names(names)))
    per_step = step_samples(source) if is_store(source) else {}
    for item in out:
        item["short"] = short[item["module"]]
        folded = rows_per_sample(source, item["module"], item["step"], per_step) \
            if per_step else 1  # epochs or channels in the batch axis: rows, not samples
        item["row"] = row_name(item["sample"], folded)
    meta: dict[str, Any] = {"version": 2, "entries": out, "labels": labels.lists,
                            "blobs": packer.offsets, "title": title or _title(source),
                            "steps": list(dict.fromkeys(e.step for e in entries)),
                            "estimate": estimate, "signal": signal}
    return HTMLView(meta, packer.texts(), title=meta["title"])


def _long_item(packer: _pack.Packer, store: Any, e: _select.Entry, heads: HeadSpec,
               first: bool) -> dict[str, Any]:
    """An entry shown from its stored queries and keys (:mod:`attnscope.viewer._long`):
    one computed map per selected head, no head mean (it would need every head's cells)."""
    info = store.module_info(e.module, e.step)
    pos = head_positions(heads, e.num_heads)
    inp = _long.load_heads(store, e.module, e.step, e.sample, pos)
    maps, means = [], []
    for i in range(len(pos)):
        q, k = inp.query[0, i].float(), inp.key[0, inp.kv_index[i]].float()
        causal = inp.causal or inp.mask is not None  # a mask here is the causal one
        hm, mean = _long.pack_head(packer, q, k, inp.scale, causal, first and i == 0)
        maps.append(hm)
        means.append(mean)
    ids = [info["heads"][p] for p in pos] if info.get("heads") else pos
    total = store.num_samples(e.module, e.step)
    rows, cols = e.shape
    dense = Dense(np.empty((0, rows, cols), np.float32), ids, e.module, info.get("kind"),
                  e.step, e.sample, sample_labels(store.labels(e.step), e.sample, total),
                  e.num_heads, recorded=True)
    return {"module": e.module, "step": e.step, "sample": e.sample, "graph": False,
            "kind": info.get("kind") or ("self" if rows == cols else "cross"),
            "heads": [str(h) for h in ids], "num_heads": e.num_heads, "rows": rows,
            "cols": cols, "maps": maps, "thumb": _pack.pack_thumbs(packer, means),
            "computed": True, "dense": dense}


def _first_view(entries: list[_select.Entry]) -> _select.Entry | None:
    """The entry the page opens on (last step, first module, first sample), as the
    page's script picks it."""
    steps = list(dict.fromkeys(e.step for e in entries))
    module, sample = entries[0].module, entries[0].sample
    return next((e for e in entries if (e.step, e.module, e.sample) ==
                 (steps[-1], module, sample)), None)


def _title(source: Any) -> str:
    """The store's folder name, never the machine's absolute path."""
    root = getattr(source, "root", None)
    return f"attnscope \u00b7 {os.path.basename(os.fspath(root).rstrip(os.sep))}" \
        if root is not None else "attnscope"
