"""Grid, overview, 1-D bars, graph views and the dashboard, from real captures."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.plot import (
    dense_from_edges,
    epoch_labels,
    plot_bars,
    plot_dashboard,
    plot_edge_matrix,
    plot_graph,
    plot_heads,
    plot_overview,
    plot_top_edges,
)
from tests.plot.conftest import TARGET


def _heat_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def test_head_grid_has_every_head_and_the_mean(translation, tmp_path):
    fig = plot_heads(translation, module="decoder.layers.1.self_attn", labels=TARGET,
                     path=tmp_path / "grid.png")
    panels = _heat_axes(fig)
    assert [ax.get_title() for ax in panels] == ["head 0", "head 1", "head 2", "head 3",
                                                 "mean of 4"]
    clims = {tuple(np.round(ax.images[0].get_clim(), 6)) for ax in panels}
    assert len(clims) == 1  # one shared colour scale
    assert all(np.ma.getmaskarray(ax.images[0].get_array())[0, 1] for ax in panels)
    assert [t.get_text() for t in panels[0].get_yticklabels()] == TARGET


def test_head_grid_separate_scales(translation):
    fig = plot_heads(translation, module=0, shared_scale=False, mean=False)
    clims = {ax.images[0].get_clim() for ax in _heat_axes(fig)}
    assert len(clims) == 4


def test_overview_is_layers_by_heads(translation):
    fig = plot_overview(translation, scale="layer")
    panels = _heat_axes(fig)
    assert len(panels) == 6 * 4
    row_labels = [ax.get_ylabel() for ax in panels if ax.get_ylabel()]
    assert row_labels[0] == "encoder.0.self_attn" and len(row_labels) == 6
    fig = plot_overview(translation, modules="*multihead_attn")
    assert len(_heat_axes(fig)) == 2 * 4


def test_bars_over_time_with_signal(lstm_attention, tmp_path):
    rec, x = lstm_attention
    fig = plot_bars(rec, sample=1, signal=x[1], signal_labels=["temp", "load"], top_k=2,
                    path=tmp_path / "bars.png")
    ax, twin = fig.axes[0], fig.axes[1]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, rec.maps[0].weights[1, 0, 0].numpy(), rtol=1e-6)
    assert [line.get_label() for line in twin.get_lines()] == ["temp", "load"]
    assert ax.get_xlabel() == "time step"


def test_graph_top_edges_ranked_with_names(gat):
    names = ["A", "B", "C", "D", "E"]
    fig = plot_top_edges(gat, k=5, node_names=names, head=0)
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths, reverse=True) and len(widths) == 5
    m = gat.maps[0]
    top = int(np.argmax(m.weights[:, 0].numpy()))
    src, dst = m.edge_index[:, top].tolist()
    assert ax.get_yticklabels()[0].get_text() == f"{names[src]}->{names[dst]}"


def test_edge_matrix_masks_absent_edges(gat):
    fig = plot_edge_matrix(gat, head="mean")
    data = fig.axes[0].images[0].get_array()
    m = gat.maps[0]
    dense, present = dense_from_edges(m.edge_index.numpy(), m.weights.mean(-1).numpy())
    assert np.array_equal(~np.ma.getmaskarray(data), present)
    np.testing.assert_allclose(data.filled(0), np.nan_to_num(dense), rtol=1e-6)
    np.testing.assert_allclose(np.nan_to_num(dense), m.to_dense().mean(0).numpy(), rtol=1e-6)


def test_graph_drawing_colours_edges_by_weight(gat, tmp_path):
    fig = plot_graph(gat, head=1, node_names=list("ABCDE"), path=tmp_path / "g.png")
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    m = gat.maps[0]
    src, dst = m.edge_index
    assert len(arrows) == int((src != dst).sum())
    widths = sorted(a.get_linewidth() for a in arrows)
    assert widths[-1] > widths[0]
    assert "head 1" in ax.get_title()


def test_dashboard_layout_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    epochs, channels, steps = 8, 3, 30
    true = rng.integers(0, 5, epochs)
    pred = true.copy()
    pred[2] = (pred[2] + 1) % 5
    fig = plot_dashboard(rng.dirichlet(np.ones(epochs), (2, epochs)),
                         channel_attention=rng.dirichlet(np.ones(channels), epochs),
                         temporal_attention=rng.dirichlet(np.ones(steps), (epochs, channels)),
                         true=true, pred=pred, class_names=["W", "N1", "N2", "N3", "REM"],
                         channel_names=["Fpz-Cz", "Pz-Oz", "EOG"],
                         signal=rng.standard_normal((epochs, channels, 300)),
                         path=tmp_path / "dash.pdf")
    labels, colors = epoch_labels(true, pred, ["W", "N1", "N2", "N3", "REM"])
    inter = fig.axes[0]
    ticks = inter.get_yticklabels()
    assert [t.get_text() for t in ticks] == labels
    assert ticks[2].get_color() == "tab:red" and colors.count("tab:red") == 1
    chan = [ax for ax in fig.axes if ax.get_title().startswith("attention across channels")][0]
    assert [t.get_text() for t in chan.get_xticklabels()] == ["Fpz-Cz", "Pz-Oz", "EOG"]
    titles = {ax.get_title() for ax in fig.axes}
    assert {"Fpz-Cz", "Pz-Oz", "EOG"} <= titles  # temporal rows, one column per channel


def test_epoch_labels_checks_lengths():
    with pytest.raises(ValueError, match="predictions"):
        epoch_labels([0, 1], [0])
    assert epoch_labels(["W"], ["N1"]) == (["W->N1"], ["tab:red"])
