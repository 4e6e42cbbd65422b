"""The session's side of capture: one recording policy for every strategy, options
validated once, captures on two threads at once, and the module stack."""

from __future__ import annotations

import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.capturing.config import CaptureOptions


class Mixer(nn.Module):
    """An nn.MultiheadAttention under a name that is not ours."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.mix = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x, pad=None):
        h = self.proj(x)
        return self.mix(h, h, h, key_padding_mask=pad, need_weights=False)[0]


def _reference(model: Mixer, x, pad) -> torch.Tensor:
    with torch.no_grad():
        h = model.proj(x)
        _, w = model.mix(h, h, h, key_padding_mask=pad, average_attn_weights=False)
    return w


def test_mha_query_key_form_on_two_threads_at_once(tmp_path):
    """Each thread's MHA calls are seen by its own capture only (the q/k form watches
    the inner sdpa call with a thread-local mode, no torch attribute is swapped)."""
    original = F.scaled_dot_product_attention
    torch.manual_seed(0)
    models = [Mixer(16, 2).eval(), Mixer(24, 4).eval()]
    batches = [torch.randn(3, 5, 16), torch.randn(2, 7, 24)]
    pads = [torch.zeros(3, 5, dtype=torch.bool), None]
    pads[0][1, -2:] = True
    barrier, errors, recs = threading.Barrier(2), [], [None, None]

    def work(i: int) -> None:
        try:
            barrier.wait()
            with torch.no_grad(), attnscope.capture(
                    models[i], store=tmp_path / f"s{i}", form="qk", keep=True) as rec:
                for _ in range(20):
                    models[i](batches[i], pads[i])
            recs[i] = rec
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    assert F.scaled_dot_product_attention is original
    for model, x, pad, rec in zip(models, batches, pads, recs):
        expected = _reference(model, x, pad)
        assert len(rec.maps) == 20 and {m.module for m in rec.maps} == {"mix"}
        for m in rec.maps:
            assert m.qk is not None and m.weights.shape == expected.shape
            assert (m.weights - expected).abs().max() < 1e-5


def test_the_same_model_run_on_another_thread_is_not_captured():
    torch.manual_seed(1)
    model = Mixer(16, 2).eval()
    x = torch.randn(2, 4, 16)
    inside, outside = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait()
        with torch.no_grad():
            model(torch.randn(5, 3, 16))  # hooks fire on this thread too
        outside.set()

    t = threading.Thread(target=other)
    t.start()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
        inside.set()
        outside.wait()
        model(x)
    t.join()
    assert [m.weights.shape[0] for m in rec.maps] == [2, 2]
    assert [m.forward_index for m in rec.maps] == [0, 1]


def test_options_are_validated_before_the_model_is_touched(tmp_path):
    with pytest.raises(attnscope.SelectionError, match="unknown strategies"):
        CaptureOptions.validate(strategies=["nope"])
    with pytest.raises(attnscope.SelectionError, match="store form; pass store="):
        CaptureOptions.validate(form="qk")
    with pytest.raises(attnscope.SelectionError, match="form='qk8'"):
        CaptureOptions.validate(store=tmp_path / "s", form="qk8")
    options = CaptureOptions.validate("a.*", heads=[1], store=tmp_path / "s")
    assert options.include == ("a.*",) and options.selection.heads == (1,)
    assert options.keep is False and options.stored_dtype is not None
    assert not (tmp_path / "s").exists()


class Inner(nn.Module):
    """Attention computed inside a torch leaf layer's subclass would still be found;
    the stack skips only torch's own leaf layers, whose names no map ever carries."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop(F.scaled_dot_product_attention(self.q(x)[:, None], self.k(x)[:, None],
                                                        x[:, None]))


def test_maps_are_attributed_to_the_module_that_called_attention():
    model = nn.Sequential(nn.Linear(8, 8), Inner(), nn.LayerNorm(8))
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(torch.randn(2, 3, 8))
    assert rec.modules == ["1"]
    assert rec.maps[0].weights.shape == (2, 1, 3, 3)


def test_a_strategy_only_finds_calls_and_the_session_applies_its_policy():
    """A strategy hands over a found call; selection, value-weighting and the output
    the model gets are the session's business."""
    from attnscope.capturing.calls import SdpaCall, bind_sdpa
    from attnscope.capturing.registry import _REGISTRY

    @attnscope.register_strategy
    class Finder(attnscope.Strategy):
        name = "test-finder"

        def handlers(self, session):
            def found(func, args, kwargs):
                owner = session.owner()
                if owner is None:
                    return func(*args, **kwargs)
                call = SdpaCall(owner, bind_sdpa(args, kwargs), lambda: func(*args, **kwargs),
                                source=self.name)
                return session.record_call(call)

            return {F.scaled_dot_product_attention: found}

    try:
        torch.manual_seed(2)
        model = Inner()
        x = torch.randn(3, 4, 8)
        with torch.no_grad():
            plain = model(x)
            with attnscope.capture(model, strategies=["test-finder"], heads=[0],
                                   samples=[2, 0], value_weighted=True) as rec:
                out = model(x)
            q, k = model.q(x)[:, None], model.k(x)[:, None]
        assert torch.allclose(out, plain, atol=1e-6)
        m = rec.maps[0]
        assert m.source == "test-finder" and m.samples == [2, 0] and m.heads == [0]
        expected = (q @ k.transpose(-1, -2) / 8 ** 0.5).softmax(-1)[[2, 0]]
        assert torch.allclose(m.weights, expected, atol=1e-6)
        norms = x[[2, 0]].norm(dim=-1)[:, None, None, :]
        assert torch.allclose(m.value_weighted, expected * norms, atol=1e-5)
    finally:
        _REGISTRY.pop("test-finder", None)
