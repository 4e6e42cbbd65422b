"""Each evaluation figure: what its axes, lines and legends say (not just that a file
exists)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.evaluate import (
    AttentionSummary,
    build_predictions,
    classification_metrics,
    plot_attention,
    plot_confusion_matrix,
    plot_error_distribution,
    plot_predicted_vs_actual,
    plot_residuals,
    plot_timeline,
    regression_metrics,
)


@pytest.fixture(scope="module")
def regression():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(50, generator=g)
    pred = build_predictions(target[:, None] + 0.3 * torch.randn(50, 1, generator=g), target)
    return pred, regression_metrics(pred.prediction, pred.target)


def legend_texts(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def test_predicted_vs_actual(regression, tmp_path):
    pred, metrics = regression
    fig = plot_predicted_vs_actual(pred, metrics, tmp_path / "s.png", dpi=50)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("actual (target)", "predicted")
    diagonal = [line for line in ax.get_lines() if line.get_label() == "y = x"][0]
    xs, ys = diagonal.get_data()
    assert list(xs) == list(ys) and ax.get_xlim() == ax.get_ylim()
    assert ax.collections[0].get_offsets().shape == (50, 2)
    texts = legend_texts(fig)
    assert f"MAE = {metrics['mae']:.4g}" in texts and f"RMSE = {metrics['rmse']:.4g}" in texts
    assert any(t.startswith("R\u00b2 = ") for t in texts) and "test samples (n=50)" in texts
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_residuals(regression):
    pred, _ = regression
    fig = plot_residuals(pred)
    hist_ax, scatter_ax = fig.axes
    assert hist_ax.get_title() == "Residual distribution"
    assert sum(p.get_height() for p in hist_ax.patches) == 50
    offsets = scatter_ax.collections[0].get_offsets()
    assert np.allclose(offsets[:, 1], pred.prediction - pred.target)
    assert any(t.startswith("mean = ") for t in legend_texts(fig))


def test_timeline_regression(regression):
    pred, _ = regression
    fig = plot_timeline(pred)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert np.allclose(lines["target"].get_ydata(), pred.target)
    assert np.allclose(lines["prediction"].get_ydata(), pred.prediction)
    assert ax.get_xlabel() == "sample index"


def test_error_distribution(regression):
    pred, metrics = regression
    fig = plot_error_distribution(pred, metrics)
    ax, share = fig.axes
    marks = [line.get_xdata()[0] for line in ax.get_lines()]
    assert marks == pytest.approx([metrics["mae"], metrics["rmse"]])
    assert share.get_lines()[0].get_ydata()[-1] == pytest.approx(1.0)
    assert f"MAE = {metrics['mae']:.4g}" in legend_texts(fig)


def test_confusion_matrix_figure():
    metrics = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3,
                                     ["W", "N1", "REM"])
    fig = plot_confusion_matrix(metrics)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["W", "N1", "REM"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    cells = [t.get_text() for t in ax.texts]
    assert cells[:2] == ["1\n50%", "1\n50%"] and "accuracy 75.0%" in ax.get_title()


def test_class_timeline_marks_wrong_predictions():
    pred = build_predictions(torch.eye(3)[[0, 1, 1, 2]] * 4, torch.tensor([0, 1, 2, 2]))
    fig = plot_timeline(pred, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    wrong = ax.collections[0].get_offsets()
    assert wrong.tolist() == [[2, 1]] and "wrong (1)" in legend_texts(fig)


def test_attention_bars_for_one_weight_per_key():
    row = np.array([[[0.1, 0.2, 0.7]]], dtype=np.float32)  # (head, query, key)
    fig = plot_attention(AttentionSummary("attention", "self", row, (5, 3),
                                          "mean over 5 test samples"))
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.1, 0.2, 0.7])
    assert "mean over 5 test samples" in ax.get_title()
    assert "attention" in fig._suptitle.get_text()


def test_attention_heatmap_of_the_head_mean():
    m = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 4)).astype(np.float32)
    fig = plot_attention(AttentionSummary("enc.self_attn", "self", m, (9, 2, 4, 4),
                                          "test sample 3"))
    ax = fig.axes[0]
    assert np.allclose(ax.images[0].get_array(), m.mean(axis=0), atol=1e-6)
    assert "test sample 3" in ax.get_title()
    assert "mean of 2 heads" in fig._suptitle.get_text()


def test_default_figure_keeps_each_samples_peak_and_titles_the_mean():
    """Samples that each put 0.97 on a different step: every sample panel shows its
    peak, and the flat mean is titled as the mean over the test set."""
    rows = np.full((3, 1, 1, 6), 0.006, dtype=np.float32)
    for i, peak in enumerate((1, 3, 5)):
        rows[i, 0, 0, peak] = 0.97
    mean = rows.mean(axis=0)
    panels = [(f"test sample {i}", rows[i]) for i in range(3)]
    panels.append(("MEAN over all 3 test samples (not a sample)", mean))
    fig = plot_attention(AttentionSummary("net.pool", "self", mean, (3, 6),
                                          "test samples 0-2 and the mean over all 3",
                                          panels))
    bars = [[p.get_height() for p in ax.patches] for ax in fig.axes]
    assert [int(np.argmax(b)) for b in bars[:3]] == [1, 3, 5]
    assert max(bars[3]) < 0.4
    assert fig.axes[3].get_title().startswith("MEAN over all 3")


def test_masked_padding_blanks_its_key_columns_and_query_rows():
    """Two pad tokens at the end: their keys are masked (exact zeros) in every row and
    their query rows are computed from padding; both are blank, the rest is data."""
    w = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 6)).astype(np.float32)
    m = np.concatenate([w, np.zeros((2, 6, 2), np.float32)], axis=-1)  # (head, 6, 6)
    fig = plot_attention(AttentionSummary("enc.self_attn", "self", m, (1, 2, 6, 6),
                                          "test sample 0"))
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask[4:].all() and shown.mask[:, 4:].all() and not shown.mask[:4, :4].any()
    np.testing.assert_allclose(shown[:4, :4], w.mean(0)[:4, :4], atol=1e-6)
    assert "2 padded positions blank" in fig.axes[0].get_title()


def test_padded_positions_are_blank_not_data():
    m = np.full((1, 4, 4), 0.25, dtype=np.float32)
    m[0, 3, :] = np.nan  # a padded query row
    fig = plot_attention(AttentionSummary("dec.attn", "self", m, (1, 1, 4, 4), "test sample 0"))
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask[3].all() and not shown.mask[:3].any()


def test_long_timelines_add_a_zoom_panel():
    t = torch.linspace(0, 1, 1500)
    fig = plot_timeline(build_predictions(t[:, None], t))
    full, zoom = fig.axes
    assert len(full.get_lines()[0].get_xdata()) == 1500 and "all 1500 samples" in full.get_title()
    assert len(zoom.get_lines()[0].get_xdata()) == 300 and zoom.get_title() == "first 300 samples"
    labels = torch.arange(1500) % 3
    fig = plot_timeline(build_predictions(torch.eye(3)[labels], labels))
    assert len(fig.axes) == 2 and "wrong (0)" in legend_texts(fig)
