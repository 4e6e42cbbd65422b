"""head_stats over stores and recordings, the capture summary, and ``attnscope stats``."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import attnscope
from attnscope.analysis import compare_steps, head_stats, map_metrics, metric_curves
from attnscope.cli import main
from tests.analysis.conftest import make_encoder


def read_csv(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def test_store_stats_equal_metrics_of_the_maps_read_whole(encoder_store, tmp_path):
    path, inputs = encoder_store
    store = attnscope.open_store(path)
    module = store.modules[0]
    report = head_stats(store, [module], steps=["epoch_000"], csv_path=tmp_path / "s.csv")
    # reference: metrics per batch (true lengths), then the mean over the 5 samples
    per = [map_metrics(store.read(module, step="epoch_000", samples=s)[..., :n, :n])
           for s, n in ((slice(0, 3), 7), (slice(3, 5), 9))]
    for metric in ("entropy", "norm_entropy", "distance", "prev_token", "keys90"):
        want = np.concatenate([p[metric] for p in per]).mean(0)
        np.testing.assert_allclose(report.value(module, metric, "epoch_000"), want, rtol=1e-5)
    assert report.value(module, "min", "epoch_000", head=0) == pytest.approx(
        min(p["min"][:, 0].min() for p in per))
    rows = read_csv(tmp_path / "s.csv")
    assert len(rows) == 5 * 4 and {r["sample"] for r in rows} == {"0", "1", "2", "3", "4"}
    assert not (tmp_path / "s.csv.part").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary file left
    assert all(r["nearest_head"] != "" for r in rows)


def test_small_budget_reads_head_by_head_with_the_same_result(encoder_store):
    path, _ = encoder_store
    store = attnscope.open_store(path)
    whole = head_stats(store, similarity=False)
    pieces = head_stats(store, similarity=False, budget=50)  # < one head of one sample
    for a, b in zip(whole.rows, pieces.rows):
        assert a["module"] == b["module"] and a["head"] == b["head"]
        for k in ("entropy", "norm_entropy", "min", "max", "first"):
            assert a[k] == pytest.approx(b[k], rel=1e-6, nan_ok=True)


def test_recording_and_store_give_the_same_stats(encoder_store):
    path, inputs = encoder_store
    model = make_encoder()
    with torch.no_grad(), attnscope.capture(model) as rec:
        for x in inputs:
            model(x)
    a = head_stats(rec, similarity=False)
    b = head_stats(attnscope.open_store(path), steps=["epoch_000"], similarity=False)
    for ra, rb in zip(a.rows, b.rows):
        assert ra["entropy"] == pytest.approx(rb["entropy"], rel=1e-5)


def test_capture_with_stats_prints_and_keeps_a_summary(tmp_path, capsys):
    model = make_encoder()
    x = torch.randn(2, 6, 16)
    with torch.no_grad(), attnscope.capture(model, stats=True) as rec:
        model(x)
    err = capsys.readouterr().err
    assert "layers.0.self_attn" in err and "H/Hmax" in err
    want = map_metrics(rec.maps[0].weights.numpy())["entropy"].mean(0)
    np.testing.assert_allclose(rec.stats.value("layers.0.self_attn", "entropy"), want,
                               rtol=1e-5)
    # with a store and keep=False: the summary is built as maps stream to disk
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="a",
                                            stats=True) as rec2:
        model(x)
    assert rec2.maps == [] and len(rec2.stats.rows) == 2 * 4
    assert attnscope.open_store(tmp_path / "s").steps == ["a"]


def test_metric_curves_and_step_difference(encoder_store):
    path, _ = encoder_store
    store = attnscope.open_store(path)
    steps, curves = metric_curves(store, "layers.1.self_attn", ["norm_entropy"])
    assert steps == ["epoch_000", "epoch_001"] and curves["norm_entropy"].shape == (2, 4)
    # layer 1's projections were scaled by 3: sharper attention at epoch_001
    assert (curves["norm_entropy"][1] < curves["norm_entropy"][0]).all()
    d = compare_steps(store, "layers.1.self_attn", "epoch_000", "epoch_001")
    assert d.samples == 5 and (d.js > 0.05).all() and (d.metrics["norm_entropy"] < 0).all()
    same = compare_steps(store, "layers.0.self_attn", "epoch_000", "epoch_001")
    np.testing.assert_allclose(same.mean_abs, 0, atol=1e-6)  # layer 0 did not change


def test_stats_command_table_csv_and_diagnostics(encoder_store, tmp_path, capsys):
    path, _ = encoder_store
    code = main(["stats", str(path), "--out", str(tmp_path), "--step", "epoch_000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "layers.1.self_attn" in out and "H/Hmax" in out and "diagnostics" in out
    per_head = read_csv(tmp_path / "stats_per_head.csv")
    assert len(per_head) == 2 * 4 and float(per_head[0]["max"]) <= 1.0
    assert len(read_csv(tmp_path / "stats_per_sample.csv")) == 2 * 5 * 4
    assert main(["stats", str(path), "--by", "sample", "--out", str(tmp_path), "--max-rows",
                 "3", "--no-similarity"]) == 0
    assert "first 3 rows" in capsys.readouterr().out
    assert main(["stats", str(path), "--diff", "epoch_000,epoch_001", "-m", "*1*"]) == 0
    assert "JS" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--module", "nope"], "matches no stored module"),
    (["--step", "epoch_9"], "no step"),
    (["--by", "layer"], "--by"),
    (["--metrics", "bogus"], "unknown --metrics"),
    (["--diff", "epoch_000"], "two steps"),
])
def test_stats_command_bad_input_is_one_line_exit_2(encoder_store, args, message, capsys,
                                                    tmp_path):
    path, _ = encoder_store
    assert main(["stats", str(path), "--no-csv", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["stats", str(tmp_path / "missing")]) == 2


def test_blocks_stay_within_the_budget_even_with_mixed_lengths(tmp_path):
    from attnscope.analysis import blocks

    model = make_encoder()
    path = tmp_path / "s"
    with torch.no_grad(), attnscope.capture(model, store=path, step="a", dtype="float32"):
        model(torch.randn(6, 3, 16))  # short batch first
        model(torch.randn(1, 20, 16))  # then a long one: reads pad to 20 x 20
    store = attnscope.open_store(path)
    seen = 0
    for b in blocks(store, ["layers.0.self_attn"], budget=2 * 20 * 20):
        assert b.weights.size <= 2 * 20 * 20 or b.weights.shape[:2] == (1, 1)
        assert b.weights.shape[-1] == (3 if b.samples[0] < 6 else 20)  # true length
        seen += len(b.samples) if b.heads[0] == 0 else 0
    assert seen == 7


def test_effective_maps_are_labelled_and_get_no_probability_metrics(tmp_path, capsys):
    """An ``@effective`` entry (softmax plus a bias after it) is not read as probabilities:
    no entropy of 146 nats, no "diffuse" finding; the table and CSVs say what it is."""
    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer

    g = torch.Generator().manual_seed(0)
    w = torch.softmax(torch.randn(2, 8, 40, 40, generator=g), -1)
    bias = torch.randn(8, 40, 40, generator=g) * 0.5
    writer = open_writer(tmp_path / "s", step="test", dtype="float32", durable=False)
    writer.write(AttentionMap(module="attn", kind="self", weights=w, effective=w + bias))
    writer.commit()
    writer.close()
    store = attnscope.open_store(tmp_path / "s")
    report = head_stats(store, csv_path=tmp_path / "per_sample.csv")
    rows = {(r["module"], r["head"]): r for r in report.rows}
    eff, prob = rows[("attn@effective", 0)], rows[("attn", 0)]
    assert eff["map"] == "effective" and prob["map"] == "probability"
    assert np.isnan(eff["entropy"]) and np.isnan(eff["norm_entropy"])
    assert eff["min"] < 0 and eff["peak"] > 0 and not np.isnan(eff["distance"])
    assert prob["entropy"] <= np.log(40) + 1e-6
    assert not [f for f in report.findings if f.module == "attn@effective"]
    per_sample = read_csv(tmp_path / "per_sample.csv")
    assert {r["map"] for r in per_sample if r["module"] == "attn@effective"} == {"effective"}
    assert all(r["entropy"] == "" for r in per_sample if r["module"] == "attn@effective")
    assert main(["stats", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "effective" in out and "probability" in out
    summary = read_csv(tmp_path / "o" / "stats_per_head.csv")
    assert {r["map"] for r in summary} == {"effective", "probability"}


def test_value_weighted_maps_are_labelled_and_get_general_metrics(tmp_path):
    model = make_encoder()
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), attnscope.capture(model, value_weighted=True) as rec:
        model(x)
    report = head_stats(rec, value_weighted=True, csv_path=tmp_path / "vw.csv")
    assert {r["map"] for r in report.rows} == {"value_weighted"}
    vw = rec.maps[0].value_weighted.float().numpy()
    want = map_metrics(vw, probability=False)
    np.testing.assert_allclose(report.value(rec.maps[0].module, "peak"),
                               want["peak"].mean(0), rtol=1e-5)
    assert all(np.isnan(r["entropy"]) and r["peak"] > 0 for r in report.rows)
    assert not report.findings
    assert {r["map"] for r in read_csv(tmp_path / "vw.csv")} == {"value_weighted"}
    with torch.no_grad(), attnscope.capture(model) as plain:
        model(x)
    with pytest.raises(attnscope.analysis.AnalysisError, match="value_weighted=True"):
        head_stats(plain, value_weighted=True)
