"""The page without a browser: what is embedded, how, and what is refused."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest
import torch

import attnscope
from attnscope.cli import main
from attnscope.errors import SelectionError
from attnscope.maps import AttentionMap, Recording
from attnscope.plot import block_reduce
from attnscope.viewer import ViewTooLargeError, render_html
from tests.viewer.conftest import XSS, softmax_maps, write_steps


def blob(view, i: int) -> bytes:
    part, o, n = view.meta["blobs"][3 * i: 3 * i + 3]
    data = base64.b64decode(view.data[part][o:o + n])
    return data if part == 0 else zlib.decompress(data)  # part 0: the first view, plain


def f16(view, i: int, shape) -> np.ndarray:
    raw = np.frombuffer(blob(view, i), dtype=np.uint8)
    n = raw.size // 2
    return (raw[:n].astype(np.uint16) | raw[n:].astype(np.uint16) << 8).view("<f2").reshape(shape)


def embedded_meta(page: str, uid: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{uid}-meta">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("render") / "attn"
    steps = {f"epoch_{i:03d}": softmax_maps(i, (2, 3, 6, 6)) for i in range(3)}
    return write_steps(path, steps, labels={"tokens": list("abcdef")}, modules=2), steps


def test_labels_cannot_break_out_of_the_script_element():
    evil = ["</script><script>alert(1)</script>", XSS, "a&b", "x\u2028y", "<!--"]
    view = render_html(softmax_maps(0, (1, 1, 5, 5)), tokens=evil)
    page = view.page()
    body = page.split(f'id="{view.id}-meta">', 1)[1].split("</script>", 1)[0]
    for bad in ("<", ">", "&", "\u2028"):
        assert bad not in body
    assert embedded_meta(page, view.id)["labels"] == [evil]
    # nothing outside the data could load anything
    assert not re.search(r"https?://|\bsrc=|\bhref=|@import|url\(", page.replace(body, ""))


def test_weights_round_trip_as_float16_with_the_head_mean(store):
    path, steps = store
    view = render_html(path, modules=["enc.layers.1.attn"], steps=["epoch_001"],
                       samples=[1], heads=[0, 2])
    (e,) = view.meta["entries"]
    assert (e["module"], e["step"], e["sample"], e["heads"]) == (
        "enc.layers.1.attn", "epoch_001", 1, ["0", "2", "mean"])
    stored = attnscope.open_store(path).read("enc.layers.1.attn", "epoch_001", [1])[0]
    for pos, h in enumerate([0, 2]):
        got = f16(view, e["maps"][pos]["levels"][0]["mean"][0], (6, 6))
        np.testing.assert_array_equal(got, stored[h].astype(np.float16))
    mean = f16(view, e["maps"][2]["levels"][0]["mean"][0], (6, 6)).astype(np.float32)
    np.testing.assert_allclose(mean, stored[[0, 2]].mean(0), atol=1e-3)
    assert view.meta["labels"][e["ql"]] == list("abcdef")


def test_long_maps_get_block_mean_and_max_levels_in_tiles():
    w = np.tril(softmax_maps(3, (1, 1, 1300, 1300)))
    view = render_html(w, mask=None)
    levels = view.meta["entries"][0]["maps"][0]["levels"]
    full, coarse = levels
    assert (full["rows"], full["tx"], len(full["mean"])) == (1300, 3, 9)
    assert (coarse["fy"], coarse["rows"], coarse["tx"]) == (4, 325, 1)
    want_mean, _ = block_reduce(w[0, 0], 325, 325, "mean")
    want_max, _ = block_reduce(w[0, 0], 325, 325, "max")
    np.testing.assert_array_equal(f16(view, coarse["mean"][0], (325, 325)),
                                  want_mean.astype(np.float16))
    np.testing.assert_array_equal(f16(view, coarse["max"][0], (325, 325)),
                                  want_max.astype(np.float16))
    corner = f16(view, full["mean"][8], (1300 - 1024, 1300 - 1024))  # last tile
    np.testing.assert_array_equal(corner, w[0, 0, 1024:, 1024:].astype(np.float16))


def test_causal_triangle_is_masked_not_zero():
    w = np.tril(np.ones((1, 1, 4, 4), np.float32))
    view = render_html(w / w.sum(-1, keepdims=True))
    got = f16(view, view.meta["entries"][0]["maps"][0]["levels"][0]["mean"][0], (4, 4))
    assert np.isnan(got[np.triu_indices(4, 1)]).all() and not np.isnan(np.tril(got)).any()


def test_recording_with_cross_attention_and_graph_maps():
    rec = Recording()
    rec.maps.append(AttentionMap("dec.cross", "cross", torch.softmax(torch.randn(1, 2, 3, 5), -1)))
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    rec.maps.append(AttentionMap("gat", "graph", torch.rand(3, 2), edge_index=ei))
    view = render_html(rec, query_tokens=["x", "y", "z"], key_tokens=list("abcde"))
    cross, graph = view.meta["entries"]
    assert view.meta["labels"][cross["ql"]] == ["x", "y", "z"]
    assert view.meta["labels"][cross["kl"]] == list("abcde")
    assert graph["graph"] and graph["edges"] == 3 and graph["heads"] == ["0", "1", "mean"]
    got = np.frombuffer(blob(view, graph["ei"]), dtype="<i4").reshape(2, 3)
    np.testing.assert_array_equal(got, ei.numpy())


def test_oversized_selection_is_refused_with_options_that_fit(store):
    path, _ = store
    with pytest.raises(ViewTooLargeError) as info:
        render_html(path, samples=[0, 1], max_mb=0.0012)
    msg = str(info.value)
    assert "over the" in msg and "these fit" in msg and "\n" not in msg
    assert "heads=[0]" not in msg.split("these fit")[1]  # 7 maps x 6 x 6 x 1 still too big
    render_html(path, steps=["epoch_002"], samples=[0], max_mb=0.0012)  # named option fits


@pytest.mark.parametrize("kwargs, says", [
    ({"modules": "nothing*"}, "no module matches"), ({"steps": ["epoch_9"]}, "no step"),
    ({"samples": [5]}, "out of range"), ({"heads": [7]}, "no head 7"),
    ({"tokens": ["a", "b"]}, "labels fit no selected map")])
def test_bad_selections_are_one_line_errors(store, kwargs, says):
    with pytest.raises(SelectionError, match=says):
        render_html(store[0], **kwargs)


def test_save_is_atomic_and_ids_are_unique(tmp_path, monkeypatch):
    a, b = render_html(np.eye(3)), render_html(np.eye(3))
    assert a.id != b.id and a.id in a._repr_html_() and "<html" not in a._repr_html_()
    target = tmp_path / "view.html"
    a.save(target)
    old = target.read_text()

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(b), "page", broken)
    with pytest.raises(RuntimeError):
        b.save(target)
    assert target.read_text() == old and [p.name for p in tmp_path.iterdir()] == ["view.html"]


def test_cli_writes_the_page_and_refuses_bad_input(store, tmp_path, capsys):
    path, _ = store
    out = tmp_path / "v.html"
    assert main(["view", str(path), "-o", str(out), "--step", "epoch_000", "--heads", "0,1"]) == 0
    captured = capsys.readouterr()
    assert "embedding 2 maps" in captured.err and out.exists()
    assert main(["view", str(path), "-m", "nope", "-o", str(out)]) == 2
    assert main(["view", str(path), "--max-mb", "0.0012", "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: no module")  # a refusal is its one line, nothing else
    assert err[1].startswith("error:") and "these fit" in err[1] and len(err) == 2
    assert "--heads 0" in err[1] and "heads=[" not in err[1]  # options, not Python
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "x.html").exists()


def test_demo_view_narrows_to_the_last_step_when_too_large(store, tmp_path):
    from attnscope.demos.report import write_view

    path, _ = store
    (tmp_path / "store").symlink_to(path)
    page = write_view(tmp_path, max_mb=0.002)  # all 6 maps (~2.5 kB) do not fit
    meta = embedded_meta(page.read_text(), re.search(r'id="(attnscope-\w+)"',
                                                     page.read_text()).group(1))
    assert page.name == "view.html" and meta["steps"] == ["epoch_002"]
    assert write_view(tmp_path / "nothing") is None
