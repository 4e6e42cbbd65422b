from __future__ import annotations

import numpy as np
import pytest

from attnscope.errors import SelectionError
from attnscope.plot import plot_cross, plot_heatmap
from tests.plot.conftest import SOURCE, TARGET


def _image(fig):
    return fig.axes[0].images[0]


def _ticklabels(ax, axis):
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]


def test_causal_self_attention_masks_upper_triangle(translation, tmp_path):
    fig = plot_heatmap(translation, module="decoder.layers.0.self_attn", head="mean",
                       labels=TARGET, path=tmp_path / "causal.png")
    ax = fig.axes[0]
    data = _image(fig).get_array()
    upper = np.triu(np.ones((4, 4), dtype=bool), 1)
    assert np.ma.getmaskarray(data)[upper].all()
    assert not np.ma.getmaskarray(data)[~upper].any()
    assert _ticklabels(ax, "x") == TARGET and _ticklabels(ax, "y") == TARGET
    assert "mean of 4 heads" in ax.get_title()
    assert len(fig.axes) == 2  # heatmap + colour bar
    assert (tmp_path / "causal.png").stat().st_size > 5000


def test_colour_scale_starts_at_zero_and_reaches_the_max(translation):
    fig = plot_heatmap(translation, module=0, head=2)
    w = translation.maps[0].weights[0, 2].numpy()
    lo, hi = _image(fig).get_clim()
    assert lo == 0 and hi == pytest.approx(w.max(), rel=1e-5)


def test_cross_attention_uses_both_token_lists(translation, tmp_path):
    fig = plot_cross(translation, module=-1, head=1, source_labels=SOURCE,
                     target_labels=TARGET, path=tmp_path / "cross.svg")
    ax = fig.axes[0]
    assert _ticklabels(ax, "x") == SOURCE and _ticklabels(ax, "y") == TARGET
    assert "source" in ax.get_xlabel() and "target" in ax.get_ylabel()
    assert not np.ma.getmaskarray(_image(fig).get_array()).any()
    assert (tmp_path / "cross.svg").read_text().startswith("<?xml")


def test_long_sequence_is_block_reduced_and_says_so():
    rng = np.random.default_rng(0)
    w = np.tril(rng.random((3000, 3000), dtype=np.float32))
    w /= w.sum(-1, keepdims=True)
    fig = plot_heatmap(w, dpi=100)
    shown = _image(fig).get_array()
    assert max(shown.shape) <= 600
    assert "blocks" in fig.axes[0].get_title() and "3000x3000" in fig.axes[0].get_title()
    assert np.ma.getmaskarray(shown)[0, -1]  # the causal triangle stays masked


def test_hundreds_of_tokens_are_thinned_not_dropped():
    tokens = [f"t{i}" for i in range(400)]
    fig = plot_heatmap(np.full((400, 400), 1 / 400, dtype=np.float32), labels=tokens, dpi=50)
    shown = _ticklabels(fig.axes[0], "x")
    assert 50 < len(shown) < 400 and shown[0] == "t0"
    assert "every" in fig.axes[0].get_xlabel()


def test_bad_selections_name_what_exists(translation):
    with pytest.raises(SelectionError, match="available: .*encoder"):
        plot_heatmap(translation, module="nope")
    with pytest.raises(SelectionError, match="4 heads"):
        plot_heatmap(translation, module=0, head=7)
    with pytest.raises(ValueError, match="labels"):
        plot_heatmap(translation, module=0, labels=["a"])


def test_saves_pdf_with_chosen_dpi(translation, tmp_path):
    plot_heatmap(translation, module=0, dpi=72, path=tmp_path / "m.pdf")
    assert (tmp_path / "m.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="png"):
        plot_heatmap(translation, module=0, path=tmp_path / "m.jpg")
