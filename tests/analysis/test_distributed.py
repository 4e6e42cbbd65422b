"""``head_stats`` on a real dask.distributed LocalCluster of 2 worker processes equals
the single-process pass: summaries, diagnostics and the per-sample CSV."""

from __future__ import annotations

import math

import numpy as np
import pytest

import attnscope
from attnscope.analysis import AnalysisError, head_stats
from attnscope.cli import main


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield client


def same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key, va in ra.items():
            vb = rb[key]
            if isinstance(va, float) and math.isnan(va):
                assert isinstance(vb, float) and math.isnan(vb), key
            elif isinstance(va, float):
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), key
            else:
                assert va == vb, key


def test_cluster_stats_equal_single_process(encoder_store, cluster, tmp_path):
    path, _ = encoder_store
    store = attnscope.open_store(path)
    one = head_stats(store, csv_path=tmp_path / "one.csv")
    seen = []
    many = head_stats(store, csv_path=tmp_path / "many.csv", cluster=cluster,
                      progress=lambda b: seen.append(len(b.samples)))
    same_rows(one.rows, many.rows)
    assert [f.line() for f in one.findings] == [f.line() for f in many.findings]
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "many.csv").read_text()
    assert sum(seen) == sum(store.num_samples(m, s) for m in store.modules for s in store.steps)
    # the work really ran in the worker processes, each reading its own batches
    assert len(cluster.scheduler_info()["workers"]) == 2
    picked = head_stats(store, ["layers.1.self_attn"], steps=["epoch_001"], samples=[1, 4],
                        cluster=cluster, similarity=False)
    alone = head_stats(store, ["layers.1.self_attn"], steps=["epoch_001"], samples=[1, 4],
                       similarity=False)
    same_rows(alone.rows, picked.rows)
    np.testing.assert_allclose(picked.value("layers.1.self_attn", "peak", "epoch_001"),
                               alone.value("layers.1.self_attn", "peak", "epoch_001"))


def test_cluster_needs_a_store_and_a_reachable_scheduler(encoder_store):
    with pytest.raises(AnalysisError, match="needs a store"):
        head_stats(np.full((1, 1, 3, 3), 1 / 3), cluster=2)
    path, _ = encoder_store
    with pytest.raises(AnalysisError, match="cannot reach the dask scheduler"):
        head_stats(attnscope.open_store(path), cluster="tcp://127.0.0.1:9")


def test_stats_command_on_a_scheduler_address(encoder_store, cluster, tmp_path, capsys):
    path, _ = encoder_store
    assert main(["stats", str(path), "--out", str(tmp_path / "a"), "--no-similarity"]) == 0
    capsys.readouterr()
    address = cluster.scheduler.address
    assert main(["stats", str(path), "--out", str(tmp_path / "b"), "--no-similarity",
                 "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert "layers.1.self_attn" in out
    for name in ("stats_per_sample.csv", "stats_per_head.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert main(["stats", str(path), "--workers", "0", "--no-csv"]) == 2
    assert "workers" in capsys.readouterr().err
