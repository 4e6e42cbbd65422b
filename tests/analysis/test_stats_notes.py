"""What ``attnscope stats`` tells the user about what it left out: head similarity of
maps too large to hold a sample's heads together is named in one note line."""

from __future__ import annotations

import csv

from attnscope.cli import main


def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_similarity_skipped_for_large_maps_is_said_in_one_note(encoder_store, tmp_path,
                                                               capsys):
    path, _ = encoder_store  # 4 heads of up to 9 x 9: 324 values per sample
    args = ["stats", str(path), "--step", "epoch_000", "--out", str(tmp_path)]
    assert main([*args, "--budget", "200"]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if "head similarity" in ln]
    assert len(notes) == 1
    note = notes[0]
    assert note.startswith("note: head similarity (nearest_js) skipped for ")
    assert "layers.0.self_attn" in note and "layers.1.self_attn" in note
    assert "9 x 9" in note and "200 values" in note and "--budget" in note
    assert all(r["nearest_js"] == "" for r in _csv(tmp_path / "stats_per_sample.csv"))

    assert main([*args, "--budget", "10000"]) == 0
    assert "head similarity" not in capsys.readouterr().out
    assert all(r["nearest_js"] != "" for r in _csv(tmp_path / "stats_per_sample.csv"))


def test_bad_budget_is_one_line(encoder_store, capsys):
    path, _ = encoder_store
    assert main(["stats", str(path), "--no-csv", "--budget", "0"]) == 2
    err = capsys.readouterr().err
    assert "--budget" in err and len(err.strip().splitlines()) == 1


def test_folded_rows_are_called_rows(tmp_path, capsys, monkeypatch):
    import torch

    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer

    monkeypatch.setenv("COLUMNS", "250")
    root = tmp_path / "s"
    with open_writer(root, step="val", dtype="float32") as w:  # 4 samples, 2 epochs each
        w.write(AttentionMap("net.épocas.attn", "self", torch.rand(8, 2, 3, 3).softmax(-1)))
        w.write(AttentionMap("net.across", "self", torch.rand(4, 2, 2, 2).softmax(-1)))
    assert main(["stats", str(root), "--out", str(tmp_path), "--by", "sample",
                 "--max-rows", "40", "--no-similarity"]) == 0
    out = capsys.readouterr().out
    assert "note: net.épocas.attn hold 2 folded rows per sample" in out
    assert "row i is sample i // 2, item i % 2" in out
    assert "row 5 (sample 2, item 1)" in out and "sample/row" in out
    assert "net.across" not in next(ln for ln in out.splitlines() if "folded rows" in ln)
    assert {r["module"] for r in _csv(tmp_path / "stats_per_head.csv")} == {
        "net.épocas.attn", "net.across"}
