"""Merging the parts of a step written by two real processes (ranks): dataset order,
each sample once, the form kept (q/k stays q/k), streamed in bounded runs."""

from __future__ import annotations

import multiprocessing as mp
import warnings

import numpy as np
import pytest
import torch

import attnscope
from attnscope.store import open_store
from attnscope.store.merge import first_occurrence_in_order, merge_steps

from . import processes as P


def _run(targets: list[tuple]) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=f, args=a) for f, *a in targets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _reference(tmp_path, form: str) -> attnscope.store.Store:
    """The same samples captured by one process in dataset order."""
    net, x = P.model(), P.inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad(), attnscope.capture(net, store=tmp_path / "ref", step="val",
                                                form=form, dtype="float32"):
            net(x)
    return open_store(tmp_path / "ref")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge") / "s"
    _run([(P.capture_part, str(root), "val", r, "qk") for r in range(P.WORLD)])
    return root


@pytest.mark.parametrize("budget", [64 << 20, 1])
def test_two_ranks_merge_in_dataset_order_keeping_the_form(parts, tmp_path, budget):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(parts, root)
    assert set(open_store(root).steps) == {"val.rank0", "val.rank1"}
    merge_steps(root, "val", ["val.rank0", "val.rank1"], budget=budget)
    store = open_store(root)
    assert store.steps == ["val"]  # the parts are gone
    assert store.labels("val")["sample_ids"] == list(range(P.SAMPLES))
    ref = _reference(tmp_path, "qk")
    for name in ("", "pool_attention"):
        got = store.read(name, step="val")
        assert got.shape[0] == P.SAMPLES  # the repeated sample 0 is kept once
        np.testing.assert_allclose(got, ref.read(name, step="val"), atol=1e-6)
    sdpa_forms = {seg.form.name for seg in store.segments("", "val")}
    assert sdpa_forms == {"qk"} and store.module_info("")["form"] == "qk"
    # the hand-written pooling softmax keeps the form a single process gives it
    want = {seg.form.name for seg in ref.segments("pool_attention", "val")}
    assert {seg.form.name for seg in store.segments("pool_attention", "val")} == want
    edges = store.read("gnn.edges", step="val")
    assert np.floor(edges[:, 0, 0]).tolist() == list(range(P.SAMPLES))
    assert store.edge_index("gnn.edges", step="val", sample=6).tolist() == P.EDGES.tolist()
    runs = len(store.segments("", "val"))
    if budget == 1:  # one sample per run: memory holds one sample at a time
        assert runs == P.SAMPLES
    else:  # runs join segments of one kind: fewer segments than the parts had
        assert runs < 4


def test_order_of_ids():
    assert first_occurrence_in_order([4, 0, 2, 0, None, 1]) == [1, 5, 2, 0, 4]
