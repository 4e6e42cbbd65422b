"""Capture beside other instrumentation: torch functions wrapped by another tool (TorchLens
leaves them wrapped; a ``functools.wraps`` decorator; a plain replacement), another
``TorchFunctionMode`` active outside or inside the capture, and ``torch.compile``d code
inside the model. Ground truth: the softmax written out by hand."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import attnscope
from tests.capturing import layout_models as lm

TOL = 2e-5


class Both(lm.QKV):
    """One sdpa attention and one hand-written softmax attention."""

    def __init__(self) -> None:
        super().__init__()
        self.sdpa_attn, self.attn = nn.Identity(), lm.Attend()

    def forward(self, x):
        q, k, v = self.split(x)
        return F.scaled_dot_product_attention(q, k, v) + self.attn(q, k, v)


def _check(model, x, rec) -> None:
    q, k, _ = model.split(x)
    want = lm.reference(q, k)
    assert [m.source for m in rec.maps] == ["sdpa", "softmax"], rec.notes
    for m in rec.maps:
        assert m.weights.shape == (2, 2, 5, 5)
        assert (m.weights - want).abs().max() < TOL


def _capture(model, x):
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    return rec


@pytest.fixture
def model_and_input():
    torch.manual_seed(0)
    return Both().eval(), torch.randn(2, 5, 16)


@pytest.mark.parametrize("keep_wrapped", [True, False])
def test_torch_functions_wrapped_by_another_tool(model_and_input, keep_wrapped):
    """``keep_wrapped``: the wrappers set ``__wrapped__`` (functools.wraps) or hide it."""
    model, x = model_and_input
    sites = [(F, "scaled_dot_product_attention"), (F, "softmax"), (torch.Tensor, "softmax"),
             (torch, "matmul"), (torch.Tensor, "__matmul__")]
    saved = [getattr(owner, name) for owner, name in sites]
    calls = []

    def wrap(func):
        def wrapper(*args, **kwargs):
            calls.append(func.__name__)
            return func(*args, **kwargs)
        return functools.wraps(func)(wrapper) if keep_wrapped else wrapper

    try:
        for owner, name in sites:
            setattr(owner, name, wrap(getattr(owner, name)))
        rec = _capture(model, x)
    finally:
        for (owner, name), func in zip(sites, saved):
            setattr(owner, name, func)
    _check(model, x, rec)
    assert "scaled_dot_product_attention" in calls  # the other tool still saw its calls


@pytest.mark.parametrize("first", ["attnscope", "torchlens"])
def test_after_torchlens_left_torch_wrapped(first):
    """``first``: which one met torch's functions unwrapped."""
    pytest.importorskip("torchlens", reason="torchlens is not installed")
    # a subprocess: torchlens keeps torch's functions wrapped for the rest of the process
    code = (
        "import torch, torch.nn.functional as F, torchlens\n"
        + ("import attnscope\n" if first == "attnscope" else "")
        + "from tests.capturing.layout_models import QKV\n"
        "sdpa = F.scaled_dot_product_attention\n"
        "torch.manual_seed(0); x = torch.randn(2, 5, 16)\n"
        "class Traced(QKV):\n"
        "    def forward(self, x):\n"
        "        q, k, v = self.split(x)\n"
        "        return F.scaled_dot_product_attention(q, k, v) + (q @ k.mT).softmax(-1) @ v\n"
        "torchlens.trace(Traced(), x)\n"
        "assert F.scaled_dot_product_attention is not sdpa, 'torchlens unwrapped torch'\n"
        "import attnscope\n"
        "from tests.capturing.test_other_tools_wild import Both, _check\n"
        "model = Both().eval()\n"
        "with torch.no_grad(), attnscope.capture(model) as rec: model(x)\n"
        "_check(model, x, rec)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


class Counting(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen += 1
        return func(*args, **(kwargs or {}))


def test_under_another_torch_function_mode(model_and_input):
    model, x = model_and_input
    depth = torch._C._len_torch_function_stack()
    with Counting() as outer:
        rec = _capture(model, x)
    _check(model, x, rec)
    assert outer.seen > 0  # the other mode still saw the model's calls
    assert torch._C._len_torch_function_stack() == depth


def test_with_a_torch_function_mode_entered_inside_the_forward(model_and_input):
    model, x = model_and_input
    inner = Counting()

    class Instrumented(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            with inner:
                return self.model(x)

    wrapper = Instrumented()
    with torch.no_grad(), attnscope.capture(wrapper) as rec:
        wrapper(x)
    q, k, _ = model.split(x)
    assert [m.module for m in rec.maps] == ["model", "model.attn"]
    for m in rec.maps:
        assert (m.weights - lm.reference(q, k)).abs().max() < TOL
    assert inner.seen > 0


def test_torch_compiled_function_inside_the_model():
    torch.manual_seed(0)

    @torch.compile(backend="eager")
    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v)

    class Compiled(lm.QKV):
        def forward(self, x):
            return attend(*self.split(x))

    model, x = Compiled().eval(), torch.randn(2, 5, 16)
    with torch.no_grad(), attnscope.capture(model) as rec:
        out = model(x)
    (m,) = rec.maps
    q, k, v = model.split(x)
    assert (m.weights - lm.reference(q, k)).abs().max() < TOL
    assert (out - F.scaled_dot_product_attention(q, k, v)).abs().max() < TOL
