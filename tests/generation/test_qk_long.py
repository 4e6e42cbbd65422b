"""A long generation in q/k form: head scores computed blockwise from queries and keys
equal the scores of the materialised maps; no L x L map of every layer is ever built;
figures are block means, the page and store come from q/k."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import attnscope
from attnscope.analysis import METRICS, head_stats
from attnscope.generation import generate, qk_scores
from attnscope.generation.decoding import Sampling, decode
from attnscope.generation.protocol import as_causal_lm
from attnscope.generation.qk_steps import LazyMaps, causal_probabilities, is_qk
from attnscope.kernels import sdpa
from attnscope.maps import Recording
from tests.generation.models import hf_causal_lm, tiny_gpt

pytest.importorskip("transformers")

PROMPT = [5, 1, 7, 2, 5, 1, 7, 2]  # repeats: induction cells exist


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "gemma3", "tiny"])
def test_blockwise_scores_equal_materialised_maps(arch):
    model = tiny_gpt() if arch == "tiny" else as_causal_lm(hf_causal_lm(arch))
    d = decode(model, PROMPT, 12, Sampling(), form="qk")
    tokens = [f"t{i}" for i in d.ids]
    qk_layers = [m for m in d.maps.values() if is_qk(m)]
    assert qk_layers  # gemma3: the global layers; its windowed ones stay probabilities
    for m in qk_layers:
        want = head_stats(_rec(m, causal_probabilities(m.qk)), tokens=tokens,
                          similarity=False).rows
        for h, ref in enumerate(want):
            for budget in (3 * len(d.ids), 10 ** 6):  # one row per block, one block
                got = qk_scores.head_metrics(m.qk, h, tokens, budget=budget)
                for metric in METRICS:
                    a, b = ref[metric], got[metric]
                    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, \
                        (metric, a, b)
        assert not math.isnan(want[0]["induction"])


def _rec(m, weights) -> Recording:
    from dataclasses import replace

    rec = Recording()
    rec.maps = [replace(m, weights=weights)]
    return rec


def test_generate_qk_top_heads_and_csv_equal_probs(tmp_path):
    model = hf_causal_lm("llama")
    kw = dict(max_new_tokens=10, view=False, dpi=20)
    p = generate(model, [PROMPT, [3, 4, 3, 4]], out=tmp_path / "p", **kw)
    q = generate(model, [PROMPT, [3, 4, 3, 4]], out=tmp_path / "q", form="qk", **kw)
    for a, b in zip(p, q):
        for score in ("prev_token", "induction", "first"):
            assert [r[:2] for r in a.top_heads[score]] == [r[:2] for r in b.top_heads[score]]
            assert np.allclose([r[2] for r in a.top_heads[score]],
                               [r[2] for r in b.top_heads[score]], atol=1e-6)
    for i in range(2):
        rows = [(tmp_path / x / f"prompt_{i:03d}/head_stats.csv").read_text().splitlines()
                for x in "pq"]
        assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == 1 + 2 * 4
        for ra, rb in zip(rows[0][1:], rows[1][1:]):
            ca, cb = ra.split(","), rb.split(",")
            assert ca[:5] == cb[:5]
            for x, y in zip(ca[5:], cb[5:]):
                assert (x == y == "") or abs(float(x) - float(y)) <= 1e-5 * max(1, abs(float(x)))


def test_long_qk_generation_never_builds_every_layer(tmp_path, monkeypatch):
    """Above LONG tokens, nothing allocates a (head, L, L) map: every probability
    computed goes through the blocked kernel, which is spied on here."""
    monkeypatch.setattr(qk_scores, "LONG", 64)
    biggest = []
    real = sdpa.check_map
    monkeypatch.setattr(sdpa, "check_map",
                        lambda module, shape, size: (biggest.append(math.prod(shape)),
                                                     real(module, shape, size))[1])
    model = hf_causal_lm("llama", context=512)
    [r] = generate(model, [list(range(1, 41))], max_new_tokens=160, out=tmp_path, form="qk",
                   dpi=30, view=False)
    n = len(r.ids)
    assert n == 200 and isinstance(r.maps, LazyMaps)
    # scores, CSV, figures and store: one head's block of rows at a time
    assert biggest and max(biggest) <= min(n * n, sdpa.BLOCK_ELEMENTS)
    biggest.clear()
    [r] = generate(model, [list(range(1, 41))], max_new_tokens=160, out=tmp_path, form="qk",
                   dpi=30)
    # the page reads its store one layer at a time below its own long threshold (1024)
    assert max(biggest) <= 4 * n * n < 4 * n * n * len(r.maps)
    kept = [r.maps.stored(name) for name in r.maps]
    assert all(m.weights.is_meta for m in kept)  # still q/k after the figures and page
    # one layer on demand equals the stored probabilities
    store = attnscope.open_store(tmp_path / "prompt_000/store")
    name = list(r.maps)[0]
    one = r.maps[name].weights
    assert one.shape == (1, 4, n, n)
    assert np.abs(store.read(name, step="generation") - one.numpy()).max() <= 1e-5


def test_cli_long_qk_end_to_end(tmp_path, capsys, monkeypatch):
    from attnscope.cli import main
    from tests.generation.test_workflow import save_llama

    monkeypatch.setattr(qk_scores, "LONG", 100)
    titles = []
    import attnscope.plot as plot

    for fn in ("plot_heatmap", "plot_heads"):
        real = getattr(plot, fn)
        monkeypatch.setattr(plot, fn, lambda *a, _r=real, **k: (titles.append(k["title"]),
                                                                 _r(*a, **k))[1])
    import attnscope.viewer as viewer

    sources = []
    real_render = viewer.render_html
    monkeypatch.setattr(viewer, "render_html",
                        lambda source, **k: (sources.append(source), real_render(source, **k))[1])
    save_llama(tmp_path / "m", context=1024, eos=None)  # runs to -n
    out = tmp_path / "gen"
    code = main(["generate", "-m", str(tmp_path / "m"), "-i", "the cat sat on the mat",
                 "-n", "600", "--form", "qk", "--dpi", "40", "-o", str(out)])
    assert code == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    folder = out / "prompt_000"
    info = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    n = len(info["tokens"])
    assert n == 606 and info["stopped"] == "max_new_tokens"  # the long path ran
    assert "top prev_token heads" in printed
    assert all(info["top_heads"][s] for s in ("prev_token", "first"))
    f = qk_scores.block_factor(n)
    assert f == 2 and len(titles) == 2  # 606 tokens drawn as 303 x 303 blocks
    assert all("block mean of 2 x 2 tokens" in t for t in titles)
    for name in ("attention_layer2.png", "attention_multihead_layer2.png", "view.html",
                 "head_stats.csv"):
        assert (folder / name).stat().st_size > 1000, name
    assert [type(x).__name__ for x in sources] == ["Store"]  # the page reads q/k, not maps
    csv_rows = (folder / "head_stats.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 3 * 4
    store = attnscope.open_store(folder / "store")
    assert all((store.segments(m, "generation")[0].path / "q").exists() for m in store.modules)
