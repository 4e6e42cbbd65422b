"""Views that read a store: evolution across epochs, head statistics, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from attnscope.cli.plot_command import plot
from attnscope.plot import plot_evolution, plot_head_stats, plot_heatmap

MODULE = "decoder.layers.0.self_attn"


def test_heatmap_from_store_matches_the_stored_map(epoch_store):
    fig = plot_heatmap(epoch_store, module=MODULE, step="epoch_001", sample=1, head=2)
    stored = epoch_store.read(MODULE, step="epoch_001", samples=[1], heads=[2])[0, 0]
    data = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(data.filled(0), stored, atol=1e-3)
    assert np.ma.getmaskarray(data)[0, 3]


def test_evolution_one_panel_per_epoch_one_scale(epoch_store):
    fig = plot_evolution(epoch_store, MODULE, head="mean")
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["epoch_000", "epoch_001", "epoch_002"]
    assert len({ax.images[0].get_clim() for ax in panels}) == 1


def test_head_stats_lines_per_head(epoch_store, tmp_path):
    """The figure draws the numbers ``attnscope stats`` reports (one vocabulary)."""
    import attnscope.plot
    from attnscope.analysis import head_stats, metric_curves

    assert not hasattr(attnscope.plot, "head_stats")  # one head_stats: analysis's
    steps, values = metric_curves(epoch_store, MODULE, ("entropy", "peak"))
    assert steps == ["epoch_000", "epoch_001", "epoch_002"]
    assert values["entropy"].shape == (3, 4)
    w = epoch_store.read(MODULE, step="epoch_000")  # (sample, head, query, key)
    rows = np.where(w > 0, -w * np.log(np.clip(w, 1e-12, None)), 0).sum(-1)
    np.testing.assert_allclose(values["entropy"][0], rows.mean(axis=(0, 2)), rtol=1e-4)
    report = head_stats(epoch_store, [MODULE], steps=["epoch_001"], similarity=False)
    np.testing.assert_allclose(values["peak"][1], report.value(MODULE, "peak", "epoch_001"))
    fig = plot_head_stats(epoch_store, MODULE, path=tmp_path / "stats.png")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 + 1  # heads + mean
    np.testing.assert_allclose(lines[2].get_ydata(), values["entropy"][:, 2])
    assert fig.axes[1].get_title() == "largest weight per query"
    by_step = {s: epoch_store.read(MODULE, step=s) for s in steps}  # {step: array} too
    _, same = metric_curves(by_step, None, ("peak",))
    np.testing.assert_allclose(same["peak"], values["peak"], rtol=1e-6)


@pytest.fixture
def cli():
    app = typer.Typer()
    app.command()(plot)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("kind", ["heatmap", "grid", "overview", "evolution"])
def test_cli_writes_figures(cli, epoch_store, tmp_path, kind):
    res = cli(epoch_store.root, "--kind", kind, "--module", MODULE, "--step", "epoch_002",
              "--head", "1", "--out", tmp_path, "--dpi", "60", "--cmap", "magma")
    assert res.exit_code == 0, res.output
    files = [tmp_path / line for line in res.output.split()]
    assert files and all(f.exists() and f.stat().st_size > 1000 for f in files)


@pytest.mark.parametrize("args, says", [
    (["--module", "nope", "--step", "epoch_000"], "available: encoder.layers.0.self_attn"),
    (["--module", MODULE, "--step", "epoch_000", "--head", "9"], "4 heads"),
    (["--module", MODULE, "--step", "epoch_009"], "epoch_000"),
    (["--module", MODULE, "--kind", "pie"], "heatmap"),
])
def test_cli_bad_selection_is_one_line_exit_2(cli, epoch_store, args, says):
    res = cli(epoch_store.root, *args)
    assert res.exit_code == 2
    assert says in res.output and res.output.count("\n") == 1
    assert "Traceback" not in res.output
