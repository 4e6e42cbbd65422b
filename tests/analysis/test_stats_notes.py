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
