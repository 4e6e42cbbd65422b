"""Smoke commands for `.ci/extras`: one per extra, run inside a venv that has torch and
attnscope with only that extra (or none). Exits non-zero on the first failure.

    python .ci/extras_smoke.py none|store|plot|hf|pyg|lightning
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import attnscope


def cli(*args: str, code: int = 0, says: str = "") -> str:
    proc = subprocess.run([sys.executable, "-m", "attnscope.cli", *args],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != code or says not in out or "Traceback" in out:
        sys.exit(f"attnscope {' '.join(args)}: exit {proc.returncode} (want {code})\n{out}")
    return out


def mha() -> nn.Module:
    return nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()


def main(extra: str) -> None:
    model = mha()
    with attnscope.capture(model) as rec:  # the core needs no extra
        model(torch.randn(2, 5, 8))
    assert rec.maps[0].weights.shape == (2, 2, 5, 5)
    cli("strategies", says="sdpa")
    work = Path(tempfile.mkdtemp())
    if extra == "none":
        cli("demo", "--list", code=2, says="pip install 'attnscope[store,plot,lightning]'")
        cli("stats", str(work), code=2, says="pip install 'attnscope[store]'")
    elif extra == "store":
        model = mha()
        with attnscope.capture(model, store=work / "s", step="test"):
            model(torch.randn(2, 5, 8))
        assert attnscope.open_store(work / "s").read(
            "self_attn", step="test").shape == (2, 2, 5, 5)
        cli("store", "info", str(work / "s"), says="self_attn")
        cli("stats", str(work / "s"), says="self_attn")
        attnscope.render_html(work / "s").save(work / "v.html")
        cli("plot", str(work / "s"), code=2, says="pip install 'attnscope[plot]'")
    elif extra == "plot":
        from attnscope import plot

        for name in plot.__all__:  # every plotting module imports without the store
            getattr(plot, name)
        plot.plot_heatmap(torch.softmax(torch.randn(4, 4), -1), path=work / "h.png")
        plot.plot_heads(rec, module=0, path=work / "heads.png")  # an in-memory recording
        assert (work / "h.png").stat().st_size > 0 and (work / "heads.png").stat().st_size > 0
        cli("view", str(work), code=2, says="pip install 'attnscope[store]'")
    elif extra == "hf":
        from transformers import BertConfig, BertModel  # a random config: no download

        model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64)).eval()
        with attnscope.capture(model) as rec:
            model(torch.tensor([[1, 2, 3, 4]]))
        assert len(rec.maps) == 2
    elif extra == "pyg":
        from torch_geometric.nn import GATConv

        layer = GATConv(4, 4, heads=2).eval()
        with attnscope.capture(layer) as rec:
            layer(torch.randn(3, 4), torch.tensor([[0, 1, 2], [1, 2, 0]]))
        assert rec.maps[0].kind == "graph"
    elif extra == "lightning":
        from attnscope.integrations.config import load_attention_config

        (work / "c.yaml").write_text("attention:\n  every_n_epochs: 2\n")
        assert load_attention_config(work / "c.yaml").every_n_epochs == 2
        cli("demo", "--list", code=2, says="pip install 'attnscope[store,plot]'")
    else:
        sys.exit(f"unknown extra {extra!r}")
    print(f"extras smoke [{extra}]: ok")


if __name__ == "__main__":
    main(sys.argv[1])
