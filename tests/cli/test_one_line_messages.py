"""What a CLI user reads is one line: qk fallbacks are notes without a source path,
``view`` refusals speak in options (``--heads 0``) and print nothing before refusing,
and the colour options of ``plot`` for long near-uniform heads are checked up front."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from attnscope.cli import main
from attnscope.store import open_store


class FlatHeads(nn.Module):
    """Two heads over 400 steps with tiny scores: every weight is close to 1/400."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.proj(x).unflatten(-1, (2, 2, 2)).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q * 0.05, k, k)


class HandAttn(nn.Module):
    """Masked softmax attention written by hand: a qk store keeps its probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
        scores = (self.q(x) @ self.k(x).transpose(1, 2)).masked_fill(causal, float("-inf"))
        return torch.softmax(scores, dim=-1) @ x


@pytest.fixture(scope="module")
def flat_store(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(FlatHeads())
    path = tmp_path_factory.mktemp("flat") / "store"
    with torch.no_grad(), attnscope.capture(model, store=path, step="test"):
        model(torch.randn(2, 400, 4))
    return path


def test_qk_fallback_is_a_one_line_note(tmp_path):
    model = nn.Sequential(HandAttn())
    x = torch.randn(1, 5, 4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", form="qk"):
            model(x)
    notes = [w for w in seen if issubclass(w.category, attnscope.AttnscopeWarning)]
    assert notes, [str(w.message) for w in seen]
    text = warnings.formatwarning(notes[0].message, notes[0].category, notes[0].filename,
                                  notes[0].lineno, notes[0].line)
    assert text.startswith("attnscope: ") and text.count("\n") == 1
    assert "stored as probabilities" in text and ".py" not in text
    # as a user sees it, in a fresh interpreter
    code = ("import warnings; from attnscope.notes import note; note('x falls back')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    assert err == "attnscope: x falls back\n"


def test_view_refusal_names_cli_options_and_prints_nothing_else(flat_store, tmp_path,
                                                                capsys):
    assert main(["view", str(flat_store), "-o", str(tmp_path / "v.html"),
                 "--samples", "0,1", "--max-mb", "1.5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert "--samples 0" in captured.err and "--heads 0" in captured.err
    assert "heads=[" not in captured.err and "max_mb" not in captured.err
    assert not (tmp_path / "v.html").exists()
    assert main(["view", str(flat_store), "-o", str(tmp_path / "v.html"), "--samples", "0",
                 "--heads", "0", "--max-mb", "1.5"]) == 0
    assert "embedding 1 maps" in capsys.readouterr().err


def test_plot_colour_options_for_near_uniform_heads(flat_store, tmp_path, capsys):
    store = open_store(flat_store)
    w = store.read("0", "test", samples=[0])[0].mean(0)
    assert w.max() - w.min() < 0.2 * w.max()  # near-uniform: one flat colour from 0
    from attnscope.cli.plot_command import _figures, colour_scale

    scale = colour_scale("heatmap", "mean", "sqrt", "data", None, "max")
    ((_, fig),) = _figures(store, "heatmap", "0", "test", 0, "mean", "viridis", 40,
                           scale=scale)
    im = fig.axes[0].images[0]
    assert im.norm.vmin == pytest.approx(float(np.nanmin(im.get_array())))
    assert type(im.norm).__name__ == "PowerNorm" and "max over" in fig.axes[0].get_title()
    assert main(["plot", str(flat_store), "-o", str(tmp_path), "--dpi", "40", "--vmin",
                 "0.002", "--vmax", "0.003", "--norm", "log"]) == 0
    capsys.readouterr()
    for args, text in ((["--vmin", "low"], "--vmin must be a number or 'data'"),
                       (["--vmin", "0.5", "--vmax", "0.1"], "must be below --vmax"),
                       (["--norm", "cube"], "--norm must be one of"),
                       (["--reduce", "median"], "--reduce must be mean or max"),
                       (["--kind", "bars", "--vmax", "1"], "--vmax does not apply"),
                       (["--head", "all", "--vmin", "data"], "it takes --norm, --reduce")):
        assert main(["plot", str(flat_store), "-o", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err
