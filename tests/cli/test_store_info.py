"""``attnscope store info`` names a graph entry's leading axes (time, node ...) next to
its shape, so the numbers in the shape column can be read."""

from __future__ import annotations

import torch

from attnscope.cli import main
from attnscope.maps import AttentionMap
from attnscope.store import open_writer

EDGES = torch.tensor([[0, 1, 2], [1, 2, 0]])


def test_store_info_shows_graph_axes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    root = tmp_path / "s"
    w = torch.rand(2, 4, 3, EDGES.shape[1], 2)  # (sample, time, node, edge, head)
    with open_writer(root, step="val", dtype="float32") as writer:
        writer.write(AttentionMap("net.space_att", "graph", w, edge_index=EDGES,
                                  axes=("batch", "time", "node")))
        writer.write(AttentionMap("net.plain_att", "graph", w[:, 0, 0], edge_index=EDGES))
    assert main(["store", "info", str(root)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "space_att" in ln)
    assert "4x3x3x2 (time, node, edge, head)" in line
    assert "3x2 (edge, head)" in next(ln for ln in out.splitlines() if "plain_att" in ln)
