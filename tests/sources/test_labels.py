"""Every label on the axis it names: encoder self, decoder self and cross-attention of an
encoder-decoder (equal and unequal lengths, batch of 2, non-Latin tokens), read through
the viewer, the figures and the analysis blocks alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnscope
from attnscope import sources
from attnscope.plot import plot_heatmap
from tests.sources.conftest import SRC, TGT_SAME, Plain, Renamed, make_store

ENC, DEC, CROSS = ("t.encoder.layers.0.self_attn", "t.decoder.layers.0.self_attn",
                   "t.decoder.layers.0.multihead_attn")


def expected(module: str, sample: int, tgt: list[list[str]]) -> tuple[list, list]:
    """(rows, columns) a reader should see on ``module`` for ``sample``."""
    src, t = SRC[sample], tgt[sample]
    return {ENC: (src, src), DEC: (t, t), CROSS: (t, src)}[module]


def page_labels(view, module: str, sample: int) -> tuple[list | None, list | None]:
    e = next(x for x in view.meta["entries"] if x["module"] == module and x["sample"] == sample)
    lists = view.meta["labels"]
    return (lists[e["ql"]] if e["ql"] >= 0 else None, lists[e["kl"]] if e["kl"] >= 0 else None)


@pytest.mark.parametrize("sample", [0, 1])
def test_store_labels_land_on_their_axes_everywhere(encdec_store, sample):
    store, tgt = encdec_store
    view = attnscope.render_html(store, samples=[0, 1])
    for module in (ENC, DEC, CROSS):
        want = expected(module, sample, tgt)
        assert page_labels(view, module, sample) == want, module
        d = sources.read_dense(store, module, "test", sample, "all")
        assert (d.axis_labels().query, d.axis_labels().key) == want, module
        fig = plot_heatmap(store, module=module, step="test", sample=sample, head="mean")
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == want[1], module
        assert [t.get_text() for t in ax.get_yticklabels()] == want[0], module


def test_analysis_blocks_carry_each_samples_tokens(encdec_store):
    store, tgt = encdec_store
    seen = {}
    for b in sources.blocks(store, steps=["test"]):
        assert len(b.samples) == 1  # per-sample labels: one sample per block
        seen[(b.module, int(b.samples[0]))] = (b.query_tokens, b.key_tokens)
    for module in (ENC, DEC, CROSS):
        for sample in (0, 1):
            assert seen[(module, sample)] == expected(module, sample, tgt)


def test_render_html_labels_each_kind_from_source_and_target_tokens():
    model = Plain().eval()
    src, tgt = torch.randn(1, 5, 16), torch.randn(1, 5, 16)  # equal lengths
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(src, tgt)
    view = attnscope.render_html(rec, source_tokens=SRC[0], target_tokens=TGT_SAME[0])
    for module in (ENC, DEC, CROSS):
        assert page_labels(view, module, 0) == expected(module, 0, TGT_SAME)
    # the old keywords still work and win over the sides for their axis
    view = attnscope.render_html(rec, query_tokens=list("abcde"), key_tokens=SRC[0])
    assert page_labels(view, CROSS, 0) == (list("abcde"), SRC[0])
    with pytest.raises(attnscope.SelectionError, match="fit no selected map"):
        attnscope.render_html(rec, target_tokens=["x", "y"])


def test_names_that_say_neither_side_use_the_mask_or_sides(tmp_path):
    store = make_store(tmp_path / "s", Renamed(), TGT_SAME)
    first, second = "first.layers.0.self_attn", "second.layers.0.self_attn"
    view = attnscope.render_html(store)
    assert page_labels(view, first, 0) == (SRC[0], SRC[0])  # not causal: the encoder
    assert page_labels(view, second, 0) == (TGT_SAME[0], TGT_SAME[0])  # causal: decoder
    flipped = attnscope.render_html(store, sides={"first.*": "target", "second.*": "source"})
    assert page_labels(flipped, first, 0) == (TGT_SAME[0], TGT_SAME[0])


def test_without_evidence_no_side_is_guessed():
    w = np.full((1, 1, 3, 3), 1 / 3, dtype=np.float32)  # square, not causal, unnamed
    found = sources.resolve({"source_tokens": list("abc"), "target_tokens": list("xyz")},
                            3, 3, module="layers.0", kind="self", weights=None)
    assert (found.query, found.key) == (None, None)
    found = sources.resolve({"source_tokens": list("abc"), "target_tokens": list("xyz")},
                            3, 3, module="layers.0", kind="self", weights=w)
    assert found.query == list("abc") and found.query_from == "store:source_tokens"


@pytest.mark.parametrize("module, side", [
    ("model.decoder.layers.0.self_attn", "target"), ("encoder.block.0.layer.0.SelfAttention",
                                                     "source"),
    ("TransformerDecoderLayer.attn", "target"), ("src_enc.0.attn", "source"),
    ("layers.0.attn", None), ("encoder_decoder.attn", None), ("decision.attn", None)])
def test_side_from_the_module_name(module, side):
    assert sources.name_side(module) == side


def test_graph_one_d_and_per_sample_conventions():
    labels = {"nodes": ["n0", "n1", "n2"], "sample_time_steps": [["t0", "t1"], ["u0", "u1"]],
              "sample_epoch_labels": [["W->W"], ["N1->N2"]], "sample_ids": [7, 9]}
    one = sources.sample_labels(labels, 1, 2)
    assert one["time_steps"] == ["u0", "u1"] and one["classes"] == ["N1->N2"]
    assert one["sample_ids"] == [7, 9]  # a per-sample scalar list is not an axis
    g = sources.resolve(one, 3, 3, kind="graph")
    assert g.query == g.key == ["n0", "n1", "n2"]
    bars = sources.resolve(one, 1, 2, kind="self")  # 1-D: one query row, time-step keys
    assert bars.query is None and bars.key == ["u0", "u1"]


def test_cli_view_takes_source_and_target_token_files(tmp_path, capsys):
    import json
    import re

    from attnscope.cli import main

    model = Plain().eval()
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="test"):
        model(torch.randn(1, 5, 16), torch.randn(1, 5, 16))
    (tmp_path / "src.txt").write_text("\n".join(SRC[0]), encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("\n".join(TGT_SAME[0]), encoding="utf-8")
    out = tmp_path / "v.html"
    assert main(["view", str(tmp_path / "s"), "-o", str(out), "--source-tokens",
                 str(tmp_path / "src.txt"), "--target-tokens", str(tmp_path / "tgt.txt")]) == 0
    page = out.read_text(encoding="utf-8")
    lists = [json.loads(m) for m in re.findall(r'\[(?:"[^"\]]*",?)+\]', page)]
    assert SRC[0] in lists and TGT_SAME[0] in lists
    assert main(["view", str(tmp_path / "s"), "--source-tokens", str(tmp_path / "no")]) == 2
    assert "--source-tokens file" in capsys.readouterr().err


def test_blocks_take_tokens_only_never_time_steps_or_classes(tmp_path):
    """Token metrics (repeats, special tokens) must not read ``true->pred`` labels."""
    model = Plain().eval()
    writer = attnscope.open_writer(tmp_path / "s", step="test", labels={
        "classes": ["W->W", "N2->N2", "N2->N2", "W->W", "N2->N2"]})
    with torch.no_grad(), attnscope.capture(model, store=writer):
        model(torch.randn(1, 5, 16), torch.randn(1, 5, 16))
    store = attnscope.open_store(tmp_path / "s")
    assert all(b.query_tokens is None and b.key_tokens is None
               for b in sources.blocks(store))
    d = sources.read_dense(store, ENC, "test", 0)  # figures and the viewer do show them
    assert d.axis_labels().key == ["W->W", "N2->N2", "N2->N2", "W->W", "N2->N2"]
