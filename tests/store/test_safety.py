from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import namedtuple

import numpy as np
import pytest

from attnscope.store import (
    DiskSpaceError,
    NotAStoreError,
    StoreBusyError,
    StoreError,
    open_store,
    open_writer,
)

from .conftest import dense

Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize("background", [False, True])
def test_disk_space_refusal(tmp_path, monkeypatch, background):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**12, 0, 10_000))
    w = open_writer(tmp_path / "s", step="a", expected_samples=100_000,
                    background=background)
    w.write(dense())
    with pytest.raises(DiskSpaceError) as e:
        w.commit()  # also in background: the first batch is waited for
    msg = str(e.value)
    assert "\n" not in msg and "free" in msg and "heads" in msg
    w.abort()
    store = open_store(tmp_path / "s")
    assert store.steps == []  # the refused batch was dropped, not half-published


@pytest.mark.parametrize("background", [False, True])
def test_disk_space_enough(tmp_path, background):
    w = open_writer(tmp_path / "s", step="a", expected_samples=8, background=background)
    w.write(dense())
    w.close()
    assert open_store(tmp_path / "s").num_samples("enc.attn", "a") == 4


@pytest.mark.parametrize("setup, match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "not an attnscope store"),
    (lambda p: (p.mkdir(), (p / "zarr.json").write_text("{}")), "zarr store without"),
    (lambda p: (p.mkdir(), (p / "attnscope.json").write_text("{not json")), "corrupt"),
    (lambda p: (p.mkdir(), (p / "attnscope.json").write_text('{"a": 1}')), "not attnscope"),
])
def test_foreign_or_corrupt_directory(tmp_path, setup, match):
    path = tmp_path / "x"
    setup(path)
    with pytest.raises(NotAStoreError, match=match) as e:
        open_store(path)
    assert "\n" not in str(e.value)


def test_writer_refuses_foreign_directory(tmp_path):
    (tmp_path / "data.txt").write_text("mine")
    with pytest.raises(StoreError, match="non-empty directory"):
        open_writer(tmp_path, step="a")


def test_missing_segment_is_a_clear_error(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    w.write(dense())
    w.close()
    store = open_store(tmp_path / "s")
    shutil.rmtree(store.segments("enc.attn", "a")[0].path)
    with pytest.raises(StoreError, match="damaged"):
        store.read("enc.attn", "a")


def test_one_writer_per_step(tmp_path):
    w = open_writer(tmp_path / "s", step="a")
    with pytest.raises(StoreBusyError):
        open_writer(tmp_path / "s", step="a")
    other = open_writer(tmp_path / "s", step="b")  # other steps are fine
    other.close()
    w.close()


@pytest.mark.parametrize("background", [False, True])
def test_abort_keeps_committed(tmp_path, background):
    w = open_writer(tmp_path / "s", step="a", background=background)
    w.write(dense())
    w.commit()
    w.write(dense())
    w.abort()
    assert open_store(tmp_path / "s").num_samples("enc.attn", "a") == 4


WRITER = textwrap.dedent("""
    import sys, torch
    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer
    w = open_writer(sys.argv[1], step="epoch_000", background=sys.argv[2] == "1")
    for b in range(10_000):
        g = torch.Generator().manual_seed(b)
        x = torch.softmax(torch.randn(4, 2, 64, 64, generator=g), -1)
        w.write(AttentionMap("enc.attn", "self", x))
        w.write(AttentionMap("dec.attn", "cross", x[:, :1]))
        w.commit()
        print(b, flush=True)
""")


@pytest.mark.parametrize("background", [False, True])
def test_sigkill_mid_capture_keeps_committed_batches(tmp_path, background):
    path = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(int(background))],
                            stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    done = -1
    for line in proc.stdout:  # kill while it is writing batch ~25
        done = int(line)
        if done >= 25:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = open_store(path)
    n = store.num_samples("enc.attn", "epoch_000")
    # every batch reported committed is there; in background, all but the one in flight
    assert n >= 4 * (done + 1 - background)
    assert n % 4 == 0
    assert store.num_samples("dec.attn", "epoch_000") <= n
    import torch

    for b in range(n // 4):
        x = torch.softmax(torch.randn(4, 2, 64, 64, generator=torch.Generator().manual_seed(b)),
                          -1).numpy()
        np.testing.assert_allclose(store.read("enc.attn", "epoch_000", samples=slice(4 * b,
                                   4 * b + 4)), x, rtol=1e-3, atol=1e-4)
    # a new writer can continue the step after the crash
    w = open_writer(path, step="epoch_000")
    w.write(dense(batch=4, heads=2, q=64, k=64))
    w.close()
    assert open_store(path).num_samples("enc.attn", "epoch_000") == n + 4
    assert all(json.loads(line) for line in
               (path / "steps/epoch_000/journal.jsonl").read_text().splitlines())


def _write_one_step(root: str, step: str, barrier, delay: float = 0.0) -> None:
    import time

    import torch

    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer

    barrier.wait()  # every process creates the store at about the same moment,
    time.sleep(delay)  # some while another one is inside the creation
    writer = open_writer(root, step=step, durable=False)
    writer.write(AttentionMap("m", "self", torch.full((1, 1, 2, 2), 0.5)))
    writer.close()


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    """DDP ranks open the same new store together; creating it must not pull the lock
    file out from under the others (it did when the root group was opened with "w")."""
    import multiprocessing

    # spawn, not fork: a forked child would inherit the store's compression thread pool
    # without its threads and hang
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):  # the race window is small: several fresh stores
        barrier = ctx.Barrier(6)
        root = str(tmp_path / f"shared{attempt}")
        procs = [ctx.Process(target=_write_one_step,
                             args=(root, f"part{i}", barrier, 0.002 * i)) for i in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * 6
        assert sorted(open_store(root).steps) == [f"part{i}" for i in range(6)]


@pytest.mark.parametrize("durable", [True, False])
def test_a_writer_flushes_to_disk_only_when_durable(tmp_path, monkeypatch, durable):
    """``durable=False`` (generation's store, the viewer's page stores) keeps the atomic
    renames but makes no fsync or syncfs at all; a durable writer makes both."""
    import torch

    from attnscope.maps import AttentionMap
    from attnscope.store import layout

    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    real_syncfs = layout._syncfs
    monkeypatch.setattr(layout, "_syncfs", lambda root: (calls.append("syncfs"),
                                                          real_syncfs(root))[1])
    weights = torch.softmax(torch.randn(2, 1, 3, 3), -1)
    with open_writer(tmp_path / "s", step="a", durable=durable) as w:
        for _ in range(2):
            w.write(AttentionMap("enc.attn", "self", weights))
            w.commit()
    assert (len(calls) > 0) is durable, calls
    assert open_store(tmp_path / "s").read("enc.attn", "a").shape == (4, 1, 3, 3)
