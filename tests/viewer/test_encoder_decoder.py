"""Encoder-decoder labels in the page (issue 22 item 1): encoder rows and columns carry
the source tokens, decoder self-attention the target tokens, cross-attention target
rows and source columns; with equal and unequal source/target lengths.

Which label goes on which axis is decided in Python by the one label resolver
(``attnscope/sources``); the page shows whatever it is handed, per map and per axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.maps import AttentionMap
from attnscope.store import open_writer
from attnscope.viewer import render_html
from tests.viewer.conftest import softmax_maps

ENC, DEC, CROSS = ("model.encoder.layers.0.self_attn", "model.decoder.layers.0.self_attn",
                   "model.decoder.layers.0.encoder_attn")


def _store(path, source: list[str], target: list[str]):
    s, t = len(source), len(target)
    writer = open_writer(path, step="test", durable=False,
                         labels={"source_tokens": source, "target_tokens": target})
    try:
        for name, kind, shape in ((ENC, "self", (s, s)), (DEC, "self", (t, t)),
                                  (CROSS, "cross", (t, s))):
            w = torch.from_numpy(softmax_maps(len(name), (1, 2, *shape)))
            writer.write(AttentionMap(name, kind, w))
    finally:
        writer.close()
    return path


@pytest.mark.parametrize("source,target", [
    (["ein", "Haus", "ist", "gross", "</s>"], ["a", "house", "is", "big", "</s>"]),
    (["das", "ist", "ein", "sehr", "altes", "Haus", "</s>"], ["<s>", "old", "house"]),
], ids=["equal", "unequal"])
def test_encoder_decoder_labels_on_both_axes(open_page, tmp_path, source, target):
    path = _store(tmp_path / "attn", source, target)
    p = open_page(render_html(path).save(tmp_path / "ed.html"))
    modules = p.page.locator(".as-module option").all_text_contents()
    want = {ENC: (source, source), DEC: (target, target), CROSS: (target, source)}
    for i, name in enumerate(modules):
        if i != int(p.page.input_value(".as-module")):
            p.after(lambda i=i: p.page.select_option(".as-module", str(i)))
        rows = p.page.locator(".as-rlab").all_text_contents()
        cols = p.page.locator(".as-clab").all_text_contents()
        assert (rows, cols) == tuple(list(x) for x in want[name]), name
    assert p.errors == []
    np.testing.assert_equal(len(modules), 3)
