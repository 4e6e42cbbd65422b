"""Temporal attention per epoch and channel: the (query x key) heatmap by default, bars
on request, the input signal on its own axis under either."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.plot import plot_dashboard
from attnscope.plot.hierarchy import plot_temporal

RNG = np.random.default_rng(0)


def _maps(*shape: int) -> np.ndarray:
    w = RNG.random(shape).astype(np.float32)
    return w / w.sum(-1, keepdims=True)


def test_heatmap_is_the_head_mean_matrix_and_the_signal_has_its_own_axis():
    w, signal = _maps(2, 6, 6), RNG.standard_normal(120)
    fig = plot_temporal(w, signal=signal, seconds=30.0)
    heat, below = fig.axes[0], fig.axes[1]
    np.testing.assert_allclose(heat.images[0].get_array(), w.mean(0), atol=1e-6)
    assert "6 x 6 steps (query x key)" in heat.get_title()
    np.testing.assert_allclose(below.lines[0].get_ydata(), signal)
    assert not heat.lines and heat.get_xlim() == below.get_xlim() == (0.0, 30.0)


def test_bars_on_request_show_what_each_step_receives():
    w = _maps(2, 6, 6)
    fig = plot_temporal(w, style="bars", seconds=30.0)
    ax = fig.axes[0]
    heights = ax.patches[0].get_path().vertices[:, 1]
    assert np.isclose(heights.max(), w.mean((0, 1)).max(), atol=1e-6)
    assert not ax.images
    with pytest.raises(ValueError, match="temporal style"):
        plot_temporal(w, style="lines")


def test_dashboard_draws_a_heatmap_per_epoch_and_channel():
    inter, temporal = _maps(2, 4, 4), _maps(4, 3, 2, 5, 5)  # (epoch, channel, head, q, k)
    signal = RNG.standard_normal((4, 3, 50))
    fig = plot_dashboard(inter, temporal_attention=temporal, signal=signal, epochs=[1, 2],
                         channels=[0, 2])
    heat = [ax for ax in fig.axes if ax.images and ax.get_title() in ("channel 0", "channel 2")
            or (ax.images and ax.get_ylabel().startswith("epoch"))]
    shown = [ax.images[0].get_array() for ax in fig.axes
             if ax.images and ax.images[0].get_array().shape == (5, 5)]
    assert len(shown) == 4 and heat
    np.testing.assert_allclose(shown[0], temporal[1, 0].mean(0), atol=1e-6)
    np.testing.assert_allclose(shown[3], temporal[2, 2].mean(0), atol=1e-6)
    signals = [ax for ax in fig.axes if ax.lines and not ax.images]
    assert len(signals) == 4
    np.testing.assert_allclose(signals[1].lines[0].get_ydata(), signal[1, 2])
