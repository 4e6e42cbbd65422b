"""Every attention family against ground truth computed another way, and the promises
capture makes for all of them: outputs unchanged, nothing left behind (also through an
exception), no_grad / inference_mode, pre-dropout probabilities in train mode."""

from __future__ import annotations

import pytest
import torch

import attnscope
from tests.capturing.cases import CASES, Case

TOL = 2e-5


def _run(case: Case, model, inputs, **options):
    with attnscope.capture(model, **{**case.options, **options}) as rec:
        out = model(*inputs)
    return rec, out


def _assert_matches(maps, expected) -> None:
    assert len(maps) == len(expected), [m.module for m in maps]
    for m, exp in zip(maps, expected):
        assert m.kind == exp.kind, m
        assert m.weights.shape == exp.weights.shape, m
        assert (m.weights - exp.weights).abs().max() <= TOL, m
        if exp.edge_index is not None:
            assert torch.equal(m.edge_index, exp.edge_index), m
        else:
            assert m.edge_index is None
        if exp.effective is not None:
            assert m.effective is not None
            assert (m.effective - exp.effective).abs().max() <= TOL


def _rows_sum_to_one(m) -> None:
    w = m.weights.double()
    if m.edge_index is None:
        sums = w.sum(-1)
        live = sums > 0  # fully masked queries are all zeros
        assert torch.allclose(sums[live], torch.ones_like(sums[live]), atol=1e-5)
    else:
        dst = m.edge_index[1]
        sums = torch.zeros(*w.shape[:-2], int(dst.max()) + 1, w.shape[-1], dtype=w.dtype)
        sums.index_add_(w.ndim - 2, dst, w)
        hit = torch.zeros(sums.shape[-2], dtype=torch.bool)
        hit[dst] = True
        assert torch.allclose(sums[..., hit, :], torch.ones_like(sums[..., hit, :]), atol=1e-5)


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


def test_matches_ground_truth(case: Case, assert_untouched) -> None:
    model, inputs = case.build()
    assert_untouched(model)
    with torch.no_grad():
        expected = case.expected(model, inputs)
        rec, _ = _run(case, model, inputs)
    _assert_matches(rec.maps, expected)
    for m in rec.maps:
        _rows_sum_to_one(m)
    assert_untouched(model)


def test_outputs_unchanged(case: Case) -> None:
    model, inputs = case.build()
    with torch.no_grad():
        plain = case.output_view(model(*inputs), inputs)
        _, out = _run(case, model, inputs)
    assert torch.allclose(case.output_view(out, inputs), plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode, torch.enable_grad])
def test_grad_modes(case: Case, context) -> None:
    model, inputs = case.build()
    with torch.no_grad():
        expected = case.expected(model, inputs)
    with context():
        rec, _ = _run(case, model, inputs)
    _assert_matches(rec.maps, expected)
    # the maps stay usable after inference_mode ended
    assert all(not m.weights.requires_grad and not m.weights.is_inference() for m in rec.maps)
    assert torch.cat([m.weights.flatten() for m in rec.maps]).isfinite().all()


def test_exception_leaves_nothing_behind(case: Case, assert_untouched) -> None:
    model, inputs = case.build()
    assert_untouched(model)
    with pytest.raises(RuntimeError, match="boom"), attnscope.capture(model) as rec:
        model(*inputs)
        raise RuntimeError("boom")
    assert rec.maps
    assert_untouched(model)
    # a forward that itself raises half way
    called = []
    probe = torch.nn.modules.module.register_module_forward_hook(
        lambda m, a, o: called.append(m))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        probe.remove()
    target = called[len(called) // 2]  # somewhere in the middle of the forward

    def explode(*args):
        raise RuntimeError("boom inside forward")

    handle = target.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom inside"), attnscope.capture(model):
            model(*inputs)
    finally:
        handle.remove()
    assert_untouched(model)


def test_train_mode_keeps_pre_dropout_probabilities(case: Case) -> None:
    model, inputs = case.build()
    model.train()
    torch.manual_seed(1)
    rec, _ = _run(case, model, inputs)
    assert model.training
    for m in rec.maps:  # dropout would zero entries and scale the others by 1/(1-p)
        _rows_sum_to_one(m)
    # without dropout, or with one attention layer, the inputs of that layer are the same
    if not case.has_dropout or case.name.startswith(("pyg_", "convtran", "spin")):
        with torch.no_grad():
            expected = case.expected(model.eval(), inputs)
        _assert_matches(rec.maps, expected)
