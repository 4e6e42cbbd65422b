"""The sdpa reconstruction on a GPU: flash, memory-efficient, cuDNN and math kernels,
float16/bfloat16/float32 inputs, grouped-query heads, boolean and float masks, causal
masks, a long sequence computed block by block, and a Hugging Face decoder against its
eager twin. Ground truth: the softmax of q k^T written out in float64 on the CPU.

Runs where a CUDA GPU is present and is skipped, with the reason, where not. It can be
run alone (``pytest tests/capturing/test_cuda.py``); ``ATTNSCOPE_TEST_DEVICE=cpu`` runs
the same checks on the CPU (kernels the CPU lacks are skipped), to check the checks.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope

DEVICE = os.environ.get("ATTNSCOPE_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (none present); the sdpa kernels are "
                              "checked on CPU by tests/capturing/test_sdpa.py"),
]
TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


class Sdpa(nn.Module):
    """Calls sdpa on the q, k, v it is given, with the options it was built with."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.options = options

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.options)


def reference(q, k, mask=None, causal=False) -> torch.Tensor:
    """``(batch, head, query, key)`` in float64 on the CPU; grouped keys repeated."""
    q, k = q.double().cpu(), k.double().cpu()
    k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:]).triu(1).bool(), -torch.inf)
    if mask is not None:
        mask = mask.cpu()
        scores = scores.masked_fill(~mask, -torch.inf) if mask.dtype == torch.bool \
            else scores + mask.double()
    return scores.softmax(-1)


def _qkv(dtype, batch=2, heads=4, kv_heads=None, length=64, dim=32):
    gen = torch.Generator().manual_seed(0)
    kv_heads = kv_heads or heads
    q = torch.randn(batch, heads, length, dim, generator=gen)
    k, v = (torch.randn(batch, kv_heads, length, dim, generator=gen) for _ in range(2))
    return (t.to(DEVICE, dtype) for t in (q, k, v))


def _run(module, *inputs, backend=None):
    """Captured maps and the output with and without capture, under one sdpa kernel."""
    from torch.nn.attention import sdpa_kernel

    context = sdpa_kernel(backend) if backend is not None else torch.enable_grad()
    with torch.no_grad(), context:
        try:
            plain = module(*inputs)
        except RuntimeError as err:  # this kernel does not take these inputs here
            pytest.skip(f"{backend} does not run these inputs on {DEVICE}: {err}")
        with attnscope.capture(module) as rec:
            captured = module(*inputs)
    return rec, plain, captured


def _same_output(plain, captured, dtype) -> None:
    """On a GPU the model's output is the kernel's own, bit for bit; on the CPU capture
    returns ``probs @ v`` from the probabilities it computes anyway (float rounding)."""
    if DEVICE == "cpu":
        assert (plain.float() - captured.float()).abs().max() < TOL[dtype]
    else:
        assert torch.equal(plain, captured)


def _backends():
    from torch.nn.attention import SDPBackend

    return [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.CUDNN_ATTENTION]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32],
                         ids=str)
@pytest.mark.parametrize("backend", _backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_sdpa_kernels_and_dtypes(backend, dtype, causal):
    q, k, v = _qkv(dtype)
    rec, plain, captured = _run(Sdpa(is_causal=causal), q, k, v, backend=backend)
    (m,) = rec.maps
    assert m.weights.device.type == "cpu" and m.weights.shape == (2, 4, 64, 64)
    assert (m.weights.double() - reference(q, k, causal=causal)).abs().max() < TOL[dtype]
    _same_output(plain, captured, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_grouped_query_heads(dtype):
    q, k, v = _qkv(dtype, heads=8, kv_heads=2)
    rec, plain, captured = _run(Sdpa(enable_gqa=True), q, k, v)
    (m,) = rec.maps
    assert m.weights.shape == (2, 8, 64, 64)
    assert (m.weights.double() - reference(q, k)).abs().max() < TOL[dtype]
    _same_output(plain, captured, dtype)


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_masks(kind, dtype):
    q, k, v = _qkv(dtype)
    keep = torch.ones(2, 1, 1, 64, dtype=torch.bool, device=DEVICE)
    keep[1, ..., 40:] = False  # padding on the second sample
    mask = keep if kind == "bool" else torch.zeros(keep.shape, dtype=dtype, device=DEVICE) \
        .masked_fill(~keep, torch.finfo(dtype).min)
    rec, plain, captured = _run(Sdpa(), q, k, v, mask)
    (m,) = rec.maps
    want = reference(q, k, mask)
    assert (m.weights.double() - want).abs().max() < TOL[dtype]
    assert torch.all(m.weights[1, ..., 40:] == 0)  # masked keys are exact zeros
    _same_output(plain, captured, dtype)


def test_long_sequence_in_blocks_float16():
    q, k, v = _qkv(torch.float16, batch=1, heads=2, length=2048, dim=64)
    rec, _, _ = _run(Sdpa(is_causal=True), q, k, v)
    (m,) = rec.maps
    assert m.weights.shape == (1, 2, 2048, 2048)
    err = (m.weights.double() - reference(q, k, causal=True)).abs().max()
    assert err < TOL[torch.float16]


def test_float16_store_from_gpu(tmp_path):
    q, k, v = _qkv(torch.float16)
    module = Sdpa()
    with torch.no_grad(), attnscope.capture(module, store=tmp_path / "s", step="gpu"):
        module(q, k, v)
    store = attnscope.open_store(tmp_path / "s")
    got = torch.from_numpy(store.read(store.modules[0], step="gpu")).double()
    assert (got - reference(q, k)).abs().max() < 2e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_hugging_face_decoder_against_eager(dtype):
    pytest.importorskip("transformers", reason="transformers is not installed")
    from tests.capturing.hf_models import DECODERS, make
    from tests.capturing.hf_models import reference as hf_reference

    arch = DECODERS[0]  # Llama with grouped-query heads
    fast, eager = make(arch, "sdpa"), make(arch, "eager")
    eager.load_state_dict(fast.state_dict())
    fast, eager = fast.to(DEVICE, dtype), eager.to(DEVICE, dtype)
    ids = torch.randint(2, 64, (2, 9), device=DEVICE)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    given = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        want = hf_reference(eager, arch, given)
        with attnscope.capture(fast) as rec:
            fast(**given)
    assert len(rec.maps) == len(want)
    for m, (_, w) in zip(rec.maps, want):
        w = w.float().cpu()
        live = (m.weights.sum(-1) > 0.5) & (w.sum(-1) > 0.5)
        assert (m.weights - w).abs().amax(-1)[live].max() < 2 * TOL[dtype]
