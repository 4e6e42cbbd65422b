"""``attnscope.stitch`` against ground truth computed another way: the maps of a
token-by-token decode, stitched, equal the maps of one teacher-forced pass over the same
tokens; cells a step never had are NaN (structure), never zeros."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import attnscope
from tests.text.models import BOS, TinyTranslator

SRC = torch.tensor([[4, 7, 10, 5, 8, 2]])  # one sentence of 6 source tokens
T = 5


def cached_decode(model: TinyTranslator, memory: torch.Tensor) -> torch.Tensor:
    token, cache, out = torch.tensor([[BOS]]), None, [BOS]
    for t in range(T):
        logits, cache = model.step(token, memory, cache, t)
        token = logits.argmax(-1, keepdim=True)
        out.append(int(token))
    return torch.tensor([out])


def teacher_forced(model: TinyTranslator, memory: torch.Tensor, tgt: torch.Tensor):
    with attnscope.capture(model) as rec:
        model.decode(tgt[:, :-1], memory)
    return {m.module: m.weights for m in rec.maps}


@pytest.fixture(scope="module")
def model() -> TinyTranslator:
    return TinyTranslator().eval()


@torch.no_grad()
def test_cached_steps_stitch_to_the_teacher_forced_maps(model):
    memory = model.encode(SRC)
    with attnscope.capture(model) as rec:
        tgt = cached_decode(model, memory)
    assert len(rec["decoder_stack.1.src_attn"]) == T  # one map per generated token
    truth = teacher_forced(model, memory, tgt)
    stitched = attnscope.stitch(rec)
    for name in ("decoder_stack.0.src_attn", "decoder_stack.1.masked_attention"):
        got = stitched[name].weights
        assert got.shape == truth[name].shape
        seen = ~torch.isnan(got)
        torch.testing.assert_close(got[seen], truth[name][seen], atol=1e-5, rtol=1e-4)
    self_map = stitched["decoder_stack.0.masked_attention"].weights[0, 0]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    assert torch.isnan(self_map[future]).all() and not torch.isnan(self_map[~future]).any()
    assert not torch.isnan(stitched["decoder_stack.0.src_attn"].weights).any()
    assert stitched["decoder_stack.0.src_attn"].kind == "cross"


@torch.no_grad()
def test_recomputed_prefixes_keep_each_token_row_once(model):
    memory = model.encode(SRC)
    tgt = torch.tensor([[BOS]])
    with attnscope.capture(model) as rec:
        for _ in range(T):
            nxt = model.decode(tgt, memory)[:, -1].argmax(-1, keepdim=True)
            tgt = torch.cat([tgt, nxt], 1)
    truth = teacher_forced(model, memory, tgt)
    for rows in ("auto", "recompute"):
        got = attnscope.stitch(rec, "decoder_stack.1.masked_attention", rows=rows).weights
        want = truth["decoder_stack.1.masked_attention"]
        # row t comes from step t, whose keys end at t: the future is absent (NaN), where
        # the teacher-forced pass has its causal mask's zeros
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1).expand_as(got)
        assert torch.equal(torch.isnan(got), future)
        assert (want[future] == 0).all()
        torch.testing.assert_close(got[~future], want[~future], atol=1e-5, rtol=1e-4)
    with pytest.raises(attnscope.SelectionError, match="grows"):
        same = [attnscope.AttentionMap("m", "self", torch.ones(1, 1, 2, 2) / 2, call_index=i)
                for i in range(2)]
        attnscope.stitch(same, rows="recompute")


class OneStep(nn.Module):
    """A model whose forward is one decode step (as Hugging Face ``generate`` calls it)."""

    def __init__(self, inner: TinyTranslator) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, token, memory, cache, position):
        return self.inner.step(token, memory, cache, position)


@torch.no_grad()
def test_one_model_call_per_step(model):
    memory = model.encode(SRC)
    wrapper = OneStep(model)
    token, cache, out = torch.tensor([[BOS]]), None, [BOS]
    with attnscope.capture(wrapper) as rec:
        for t in range(T):
            logits, cache = wrapper(token, memory, cache, t)
            token = logits.argmax(-1, keepdim=True)
            out.append(int(token))
    assert {m.forward_index for m in rec.maps} == set(range(T))
    truth = teacher_forced(model, memory, torch.tensor([out]))
    got = attnscope.stitch(rec, "inner.decoder_stack.1.src_attn")
    torch.testing.assert_close(got.weights, truth["decoder_stack.1.src_attn"], atol=1e-5,
                               rtol=1e-4)
    # steps="call" reads the same maps as T batches of one single-row step each
    per_batch = attnscope.stitch(rec, "inner.decoder_stack.1.src_attn", steps="call")
    assert per_batch.weights.shape == (T, 3, 1, SRC.shape[1])


class Pool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(4, 1)

    def forward(self, h):  # (batch, time, 4) -> (batch, time) weights
        return torch.softmax(self.score(h).squeeze(-1), dim=-1)


class Looped(nn.Module):
    """Temporal attention called per (epoch, channel), as hierarchical EEG models do."""

    def __init__(self) -> None:
        super().__init__()
        self.temporal_attn = Pool()

    def forward(self, x):  # (batch, epoch, channel, time, 4)
        out = [self.temporal_attn(x[:, e, c]) for e in range(x.shape[1])
               for c in range(x.shape[2])]
        return torch.stack(out, 1)


def test_calls_grouped_into_a_grid():
    net = Looped()
    x = torch.randn(2, 3, 2, 7, 4)
    with attnscope.capture(net) as rec:
        net(x)
        net(x[:1])  # a second batch: concatenated on the batch axis
    grid = attnscope.stitch(rec, "temporal_attn", along="call", grid=(3, 2))
    assert grid.shape == (3, 3, 2, 1, 1, 7)  # (batch, epoch, channel, head, query, key)
    truth = net.temporal_attn(x.flatten(0, 2)).reshape(2, 3, 2, 7)  # (batch, epoch, channel, time)
    torch.testing.assert_close(grid[:2, :, :, 0, 0], truth.detach())
    torch.testing.assert_close(grid[2:, :, :, 0, 0], truth[:1].detach())
    with pytest.raises(attnscope.SelectionError, match="grid"):
        attnscope.stitch(rec, "temporal_attn", along="call", grid=(4, 2))


@torch.no_grad()
def test_store_entries_stitch_like_the_recording(model, tmp_path):
    pytest.importorskip("zarr")
    memory = model.encode(SRC)
    with attnscope.capture(model, store=tmp_path / "s", step="test", dtype="float32",
                           keep=True) as rec:
        cached_decode(model, memory)
    store = attnscope.open_store(tmp_path / "s")
    assert "decoder_stack.0.src_attn[4]" in store.modules
    from_store = attnscope.stitch(store, "decoder_stack.0.masked_attention", step="test")
    from_rec = attnscope.stitch(rec, "decoder_stack.0.masked_attention")
    np.testing.assert_array_equal(from_store.weights.numpy(), from_rec.weights.numpy())
    assert from_store.kind == "self"


def test_bad_requests_are_one_line_errors(model):
    with attnscope.capture(model) as rec:
        model(SRC, torch.tensor([[BOS, 4]]))
    with pytest.raises(attnscope.SelectionError, match="no maps of module"):
        attnscope.stitch(rec, "nope")
    with pytest.raises(attnscope.SelectionError, match="along"):
        attnscope.stitch(rec, along="key")
    single = attnscope.stitch(rec, "encoder_stack.0.attention")  # one call: the map itself
    torch.testing.assert_close(single.weights, rec["encoder_stack.0.attention"][0].weights)
