"""Sparse and selective attention of real packages against what the package itself
reports: Hugging Face Informer (ProbSparse top-u queries) and Autoformer
(auto-correlation over top-k lags), BigBird block-sparse (HF assembles the dense map for
``output_attentions``), Reformer (exp/logsumexp), lucidrains' local-attention with
look-around windows."""

from __future__ import annotations

import pytest
import torch

import attnscope

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
TOL = 1e-5

_TS = dict(prediction_length=4, context_length=16, input_size=1, lags_sequence=[1],
           num_time_features=1, d_model=16, encoder_layers=1, decoder_layers=1,
           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
           decoder_ffn_dim=16)


def _series(batch: int = 2):
    torch.manual_seed(1)
    n = _TS["context_length"] + max(_TS["lags_sequence"])
    return dict(past_values=torch.randn(batch, n), past_time_features=torch.randn(batch, n, 1),
                past_observed_mask=torch.ones(batch, n), future_values=torch.randn(batch, 4),
                future_time_features=torch.randn(batch, 4, 1))


def _matching_rows(got: torch.Tensor, want: torch.Tensor) -> None:
    """Each row HF reports (its u selected queries, order unknown) is one distinct
    computed row of the rebuilt map; every other row is NaN."""
    for b in range(got.shape[0]):
        for h in range(got.shape[1]):
            live = got[b, h][~got[b, h].isnan().all(-1)]
            assert live.shape == want[b, h].shape
            dist = (live[:, None, :] - want[b, h][None, :, :]).abs().amax(-1)  # (ours, HF)
            assert (dist.amin(0) < TOL).all() and dist.argmin(0).unique().numel() == len(live)


def test_informer_probsparse_rows_at_their_positions():
    from transformers import InformerConfig, InformerModel

    torch.manual_seed(0)
    model = InformerModel(InformerConfig(**_TS, attention_type="prob", sampling_factor=1))
    model.eval()
    with torch.no_grad(), attnscope.capture(model) as rec:  # one call: same random sample
        out = model(**_series(), output_attentions=True)
    maps = {m.module: m for m in rec.maps}
    enc, dec = maps["encoder.layers.0.self_attn"], maps["decoder.layers.0.self_attn"]
    assert enc.kind == dec.kind == "self"
    assert enc.weights.shape == (2, 2, 16, 16) and dec.weights.shape == (2, 2, 4, 4)
    (enc_hf,), (dec_hf,) = out.encoder_attentions, out.decoder_attentions  # (b, h, u, key)
    assert enc_hf.shape[2] < 16 and dec_hf.shape[2] < 4  # really a subset
    _matching_rows(enc.weights, enc_hf)
    _matching_rows(dec.weights, dec_hf)
    (cross_hf,) = out.cross_attentions
    assert (maps["decoder.layers.0.encoder_attn"].weights - cross_hf).abs().max() < TOL
    assert any("query rows computed" in n and "NaN" in n for n in rec.notes)


def test_autoformer_lag_softmax_is_not_recorded_as_attention():
    from transformers import AutoformerConfig, AutoformerModel

    torch.manual_seed(0)
    model = AutoformerModel(AutoformerConfig(**_TS)).eval()
    with torch.no_grad(), pytest.raises(attnscope.NoAttentionFoundError,
                                        match="picked by topk") as err:
        with attnscope.capture(model):
            model(**_series())
    assert "encoder.layers.0.self_attn" in str(err.value)


def _bigbird(training: bool = False):
    from transformers import BigBirdConfig, BigBirdModel

    torch.manual_seed(0)
    return BigBirdModel(BigBirdConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=48, attention_type="block_sparse", block_size=2,
        num_random_blocks=1, max_position_embeddings=64, sep_token_id=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).train(training)


def test_bigbird_selection_computes_only_the_kept_heads_and_samples():
    model = _bigbird()
    ids = torch.randint(4, 64, (3, 32))
    with torch.no_grad():
        with attnscope.capture(model) as full:
            model(input_ids=ids)
        with attnscope.capture(model, heads=[1, 3], samples=[2]) as some:
            model(input_ids=ids)
    (a,), (b,) = full.maps, some.maps
    assert b.weights.shape == (1, 2, 32, 32) and (b.heads, b.samples) == ([1, 3], [2])
    assert torch.equal(b.weights, a.weights[[2]][:, [1, 3]])


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_bigbird_block_sparse_rebuilt_dense(training):
    """The map multiplies V into the layer's output; it equals HF's assembled map except
    where HF writes a key block gathered twice over itself (eval: the random blocks are
    block 0 again), where it holds the mass of both slots."""
    model = _bigbird(training)
    ids = torch.randint(4, 64, (2, 32))
    mask = torch.ones_like(ids)
    mask[1, 27:] = 0
    attn = model.encoder.layer[0].attention.self
    seen = {}
    hook = attn.register_forward_hook(lambda mod, args, out: seen.update(x=args[0], out=out))
    try:
        with torch.no_grad(), attnscope.capture(model) as rec:
            ref = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    finally:
        hook.remove()
    (m,) = rec.maps
    assert (m.module, m.kind, m.source) == ("encoder.layer.0.attention.self", "self", "bigbird")
    w = m.weights
    v = attn.value(seen["x"]).view(2, 32, 4, 8).transpose(1, 2)
    out = seen["out"][0].view(2, 32, 4, 8).transpose(1, 2)
    real = mask.bool()[:, None, :, None]
    assert ((w @ v - out) * real).abs().max() < TOL
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 32), atol=1e-5)
    (hf,) = ref.attentions
    differ = (w - hf).abs() > TOL
    never = torch.signbit(w) & (w == 0)  # cells never computed: masked zeros
    assert never.float().mean() > 0.5
    if training:  # random blocks differ from the global ones: nothing written twice
        assert not differ.any() and torch.equal(never, hf == 0)
    else:
        assert differ.any() and (differ.nonzero()[:, 3] < 2).all()  # key block 0 only


def test_reformer_exp_logsumexp_attention_is_named_in_a_note():
    from transformers import ReformerConfig, ReformerModel

    torch.manual_seed(0)
    model = ReformerModel(ReformerConfig(
        vocab_size=64, hidden_size=32, num_attention_heads=2, attention_head_size=16,
        attn_layers=["lsh", "local"], axial_pos_embds=False, max_position_embeddings=64,
        feed_forward_size=32, local_attn_chunk_length=4, lsh_attn_chunk_length=4,
        num_buckets=4, num_hashes=1)).eval()
    with torch.no_grad(), pytest.raises(attnscope.NoAttentionFoundError) as err:
        with attnscope.capture(model):
            model(input_ids=torch.randint(0, 64, (2, 16)))
    text = str(err.value)
    for layer, cls in ((0, "LSHSelfAttention"), (1, "LocalSelfAttention")):
        assert f"encoder.layers.{layer}.attention.self_attention: {cls} normalises" in text
    assert "logsumexp" in text and "\n" not in text
