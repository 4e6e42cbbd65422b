"""Fault classes of the store: nothing committed is lost, damage is never read as
numbers, and every failure is one AttnscopeError line. Each test reproduces a class
(a failed overwrite, an interrupted commit, a flipped bit ...), not one example."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import attnscope
from attnscope._files import atomic_path, safe_filename
from attnscope.errors import AttnscopeError, OutputError, SelectionError
from attnscope.maps import AttentionMap
from attnscope.store import (
    StoreError,
    StoreWriteError,
    codec,
    export,
    layout,
    open_store,
    open_writer,
    schema,
)

from .conftest import chunk_files, dense, fail_shard_writes
from .fault_fixtures import TwoAttentions


def _store(path: Path, seed: int = 0, batches: int = 2, step: str = "a") -> list[np.ndarray]:
    """A step of ``batches`` committed batches of ``enc.attn``; returns what was written."""
    written = []
    with open_writer(path, step=step, dtype="float32", if_exists="overwrite") as w:
        for b in range(batches):
            m = dense(seed=seed * 100 + b)
            w.write(m)
            w.commit()
            written.append(m.weights.numpy())
    return written


def _read(path: Path, step: str = "a", module: str = "enc.attn") -> np.ndarray:
    return open_store(path).read(module, step)


# -- data loss: overwrite is atomic --------------------------------------------------------

@pytest.mark.parametrize("how", ["abort", "exception", "no_close"])
def test_failed_overwrite_keeps_the_old_step(tmp_path, how):
    old = np.concatenate(_store(tmp_path / "s", seed=1))
    w = open_writer(tmp_path / "s", step="a", dtype="float32", if_exists="overwrite")
    w.write(dense(seed=7))
    w.commit()  # committed to the new data, which is not swapped in yet
    np.testing.assert_array_equal(_read(tmp_path / "s"), old)  # readers see the old step
    if how == "abort":
        w.abort()
    elif how == "exception":
        with pytest.raises(RuntimeError), w:
            raise RuntimeError("the model failed")
    else:  # a crash: the writer is never closed (its lock goes with the process)
        w._lock_cm.__exit__(None, None, None)
    np.testing.assert_array_equal(_read(tmp_path / "s"), old)
    new = np.concatenate(_store(tmp_path / "s", seed=2))  # the next overwrite succeeds
    np.testing.assert_array_equal(_read(tmp_path / "s"), new)
    steps = sorted(p.name for p in (tmp_path / "s" / "steps").iterdir() if p.is_dir())
    assert len(steps) == 1  # leftovers of the failed run are gone


def test_overwrite_swaps_in_on_close_and_repeats(tmp_path):
    for seed in range(3):  # the directory alternates; readers always see one whole step
        data = np.concatenate(_store(tmp_path / "s", seed=seed, batches=seed + 1))
        np.testing.assert_array_equal(_read(tmp_path / "s"), data)
    with open_writer(tmp_path / "s", step="a", if_exists="overwrite"):
        pass  # a run that completes with nothing replaces the step by nothing
    assert open_store(tmp_path / "s").steps == []


KILLED_OVERWRITE = textwrap.dedent("""
    import os, sys, torch
    from attnscope.maps import AttentionMap
    from attnscope.store import open_writer
    w = open_writer(sys.argv[1], step="a", if_exists="overwrite")
    w.write(AttentionMap("enc.attn", "self", torch.full((2, 1, 3, 3), 1 / 3)))
    w.commit()
    os._exit(1)  # killed before close: nothing runs after this
""")


def test_process_killed_during_overwrite_keeps_the_old_step(tmp_path):
    old = np.concatenate(_store(tmp_path / "s"))
    proc = subprocess.run([sys.executable, "-c", KILLED_OVERWRITE, str(tmp_path / "s")],
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert proc.returncode == 1
    np.testing.assert_array_equal(_read(tmp_path / "s"), old)


# -- data loss: committed means committed --------------------------------------------------

@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit])
def test_interrupt_after_the_journal_line_keeps_the_batch(tmp_path, monkeypatch, signal):
    first = _store(tmp_path / "s", batches=1)[0]
    w = open_writer(tmp_path / "s", step="a", dtype="float32")
    second = dense(seed=5)
    w.write(second)
    append = layout.append_journal

    def interrupted(*args, **kwargs):
        append(*args, **kwargs)
        raise signal()  # Ctrl-C lands right after the line was written

    monkeypatch.setattr(layout, "append_journal", interrupted)
    with pytest.raises(signal):
        w.commit()
    w.abort()
    np.testing.assert_array_equal(_read(tmp_path / "s"),
                                  np.concatenate([first, second.weights.numpy()]))


def test_forward_that_raises_commits_no_half_batch(tmp_path):
    model = TwoAttentions().eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="a"):
        model(x)
        model.fail_second = True
        with pytest.raises(RuntimeError):
            model(x)  # first_attn has its map, second_attn never ran
        model.fail_second = False
        model(x[:2])
    store = open_store(tmp_path / "s")
    assert store.num_samples("first_attn", "a") == store.num_samples("second_attn", "a") == 5
    assert [b for b, _ in store.samples("first_attn", "a")] == [0, 0, 0, 1, 1]  # 2 commits


def test_capture_that_raises_commits_nothing_of_that_call(tmp_path):
    model = TwoAttentions().eval()
    with pytest.raises(RuntimeError), torch.no_grad(), \
            attnscope.capture(model, store=tmp_path / "s", step="a"):
        model(torch.randn(2, 4, 8))
        model.fail_second = True
        model(torch.randn(2, 4, 8))
    store = open_store(tmp_path / "s")
    assert store.num_samples("first_attn", "a") == store.num_samples("second_attn", "a") == 2


# -- export names ---------------------------------------------------------------------------

@pytest.mark.parametrize("names", [
    ["attn:1", "attn;1", "attn_1"],
    ["注意", "关注", "__"],
    ["x" * 300, "x" * 299 + "y", "x" * 300 + "[1]"],
    [".hidden", "..", "a/b", "a\\b", "a b"],
])
def test_export_names_are_unique_stable_and_short(tmp_path, names):
    with open_writer(tmp_path / "s", step="a") as w:
        for i, name in enumerate(names):
            w.write(dense(module=name, seed=i))
    store = open_store(tmp_path / "s")
    files = export(store, tmp_path / "out", "npy")
    assert len(set(files)) == len(names) == len({f.parent for f in files})
    for f, name in zip(files, names):
        assert len(f.parent.name.encode()) <= 120 and f.parent.parent == tmp_path / "out"
        assert f.parent.name == safe_filename(name)  # stable: the same name every run
        np.testing.assert_allclose(np.load(f), store.read(name, "a"))


# -- silent wrong reads ---------------------------------------------------------------------

def _segment_file(path: Path) -> tuple[Path, Path]:
    seg = open_store(path).segments("enc.attn", "a")[0].path
    return seg, chunk_files(seg)[0]


@pytest.mark.parametrize("where", ["chunk", "chunk_crc", "index", "index_crc"])
def test_any_flipped_bit_is_an_error_not_numbers(tmp_path, where):
    _store(tmp_path / "s", batches=1)
    seg, shard = _segment_file(tmp_path / "s")
    data = bytearray(shard.read_bytes())
    index_at = len(data) - (4 * 3 * 16 + 4)  # (4 samples, 3 heads) in one shard
    first_end = int(np.frombuffer(bytes(data[index_at:index_at + 16]), "<u8")[1])
    at = {"chunk": first_end // 2, "chunk_crc": first_end - 2, "index": index_at + 3,
          "index_crc": len(data) - 1}[where]
    data[at] ^= 0x10
    shard.write_bytes(bytes(data))
    store = open_store(tmp_path / "s")
    with pytest.raises(StoreError, match="damaged|unreadable"):
        store.read("enc.attn", "a", samples=[0], heads=[0])  # fast path
    with pytest.raises(Exception, match="(?i)checksum|crc"):  # zarr checks it too
        np.asarray(store.segments("enc.attn", "a")[0].array()[0, 0])


def test_index_pointing_at_another_head_is_an_error(tmp_path):
    _store(tmp_path / "s", batches=1)
    _, shard = _segment_file(tmp_path / "s")
    data = bytearray(shard.read_bytes())
    at = len(data) - (4 * 3 * 16 + 4)
    data[at:at + 16], data[at + 16:at + 32] = data[at + 16:at + 32], data[at:at + 16]
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="index"):
        open_store(tmp_path / "s").read("enc.attn", "a")


def test_truncated_shard_is_an_error(tmp_path):
    _store(tmp_path / "s", batches=1)
    _, shard = _segment_file(tmp_path / "s")
    shard.write_bytes(shard.read_bytes()[:50])
    with pytest.raises(StoreError):
        _read(tmp_path / "s")


def _journal(path: Path) -> Path:
    return path / "steps" / "a" / "journal.jsonl"


@pytest.mark.parametrize("damage", ["garbage_middle", "duplicate", "swap_lines", "empty_line",
                                    "wrong_type", "rows_mismatch"])
def test_journal_damage_is_an_error_naming_the_step(tmp_path, damage):
    _store(tmp_path / "s", batches=3)
    lines = _journal(tmp_path / "s").read_text().splitlines(keepends=True)
    if damage == "garbage_middle":
        lines.insert(1, '{"batch": 1, "ma\n')
    elif damage == "duplicate":
        lines.insert(1, lines[0])
    elif damage == "swap_lines":
        lines[0], lines[1] = lines[1], lines[0]
    elif damage == "empty_line":
        lines.insert(2, "\n")
    elif damage == "wrong_type":
        entry = json.loads(lines[1])
        entry["maps"][0]["shape"] = "4,3,8,8"
        lines[1] = json.dumps(entry) + "\n"
    else:
        entry = json.loads(lines[1])
        entry["maps"][0]["rows"] = [0]
        lines[1] = json.dumps(entry) + "\n"
    _journal(tmp_path / "s").write_text("".join(lines))
    with pytest.raises(StoreError, match="step 'a'") as e:
        open_store(tmp_path / "s")
    assert "\n" not in str(e.value)


def test_torn_last_line_is_the_only_silent_repair(tmp_path):
    data = _store(tmp_path / "s", batches=2)
    with open(_journal(tmp_path / "s"), "a") as f:
        f.write('{"batch": 2, "time": 1.0, "maps": [{"key"')  # killed mid-append
    np.testing.assert_array_equal(_read(tmp_path / "s"), np.concatenate(data))


def test_swapped_module_keys_are_caught(tmp_path):
    with open_writer(tmp_path / "s", step="a") as w:
        w.write(dense(module="enc.attn", seed=1))
        w.write(dense(module="dec.attn", seed=2))
    meta_path = tmp_path / "s" / schema.META_FILE
    meta = json.loads(meta_path.read_text())
    mods = meta["modules"]
    mods["enc.attn"]["key"], mods["dec.attn"]["key"] = mods["dec.attn"]["key"], \
        mods["enc.attn"]["key"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="belongs to"):
        _read(tmp_path / "s")


@pytest.mark.parametrize("path, value", [
    (("modules",), []), (("modules", "enc.attn"), "x"), (("modules", "enc.attn", "key"), 5),
    (("modules", "enc.attn", "num_heads"), "3"), (("modules", "enc.attn", "graph"), 1),
    (("modules", "enc.attn", "heads"), {"0": 1}), (("steps",), None),
    (("steps", "a", "labels"), [1]), (("steps", "a", "dir"), "../../etc"),
    (("steps", "a", "heads"), 3), (("version",), "1"), (("keepbits",), 99),
    (("modules", "enc.attn", "call_index"), -1), ((), [1, 2]),
])
def test_metadata_of_the_wrong_type_is_one_store_error(tmp_path, path, value):
    _store(tmp_path / "s", batches=1)
    meta_path = tmp_path / "s" / schema.META_FILE
    meta = json.loads(meta_path.read_text())
    if path:
        node = meta
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    else:
        meta = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError) as e:
        open_store(tmp_path / "s")
    assert "\n" not in str(e.value)


def test_garbled_shape_allocates_nothing(tmp_path):
    _store(tmp_path / "s", batches=1)
    lines = _journal(tmp_path / "s").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["maps"][0]["shape"] = [4, 3, 60000, 60000]  # 28 GB as float32 if trusted
    _journal(tmp_path / "s").write_text(json.dumps(entry) + "\n")
    with pytest.raises(StoreError, match="memory|damaged"):
        _read(tmp_path / "s")
    entry["maps"][0]["shape"] = [4, 3, 8, 9]  # small but not what the segment holds
    _journal(tmp_path / "s").write_text(json.dumps(entry) + "\n")
    with pytest.raises(StoreError, match="shape"):
        _read(tmp_path / "s")
    entry["maps"][0]["shape"] = [2**31 - 1, 3, 8, 8]  # 2 billion samples, none on disk
    entry["maps"][0]["rows"] = None
    _journal(tmp_path / "s").write_text(json.dumps(entry) + "\n")
    store = open_store(tmp_path / "s")
    for ask in (store.lengths, store.samples, store.read):
        with pytest.raises(StoreError, match="shape|memory"):
            ask("enc.attn", "a")


def test_reader_of_a_step_overwritten_since_opening_is_told_so(tmp_path):
    _store(tmp_path / "s", batches=1)
    store = open_store(tmp_path / "s")
    _store(tmp_path / "s", batches=2, seed=3)  # another process replaces the step
    with pytest.raises(StoreError, match="overwritten by another process"):
        store.read("enc.attn", "a")
    store.refresh()
    assert store.read("enc.attn", "a").shape[0] == 8


def test_reader_racing_a_writer_that_adds_a_module(tmp_path, monkeypatch):
    _store(tmp_path / "s", batches=1)
    stale = layout.read_meta(tmp_path / "s")  # read before the writer registers dec.attn
    with open_writer(tmp_path / "s", step="a") as w:
        w.write(dense(module="dec.attn"))
    calls = []
    real = layout.read_meta

    def first_stale(root):
        calls.append(root)
        return json.loads(json.dumps(stale)) if len(calls) == 1 else real(root)

    monkeypatch.setattr(layout, "read_meta", first_stale)
    store = open_store(tmp_path / "s")
    assert store.modules == ["enc.attn", "dec.attn"] and len(calls) == 2


# -- clear errors, nothing half-written ------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_segment_names_the_last_complete_batch(tmp_path, monkeypatch):
    data = _store(tmp_path / "s", batches=2)
    w = open_writer(tmp_path / "s", step="a", dtype="float32")
    monkeypatch.setattr(codec, "_write_shard", _enospc)
    with pytest.raises(StoreWriteError, match="last complete batch: 1") as e:
        w.write(dense(seed=9))
    assert "No space left" in str(e.value) and isinstance(e.value, OutputError)
    w.abort()
    np.testing.assert_array_equal(_read(tmp_path / "s"), np.concatenate(data))


def test_disk_full_during_the_journal_leaves_no_garbage_line(tmp_path, monkeypatch):
    data = _store(tmp_path / "s", batches=1)
    w = open_writer(tmp_path / "s", step="a", dtype="float32")
    w.write(dense(seed=9))
    real_write = os.write
    monkeypatch.setattr(layout.os, "write", lambda fd, b: real_write(fd, b[:7]))  # short
    with pytest.raises(StoreWriteError, match="last complete batch: 0"):
        w.commit()
    monkeypatch.undo()
    w.write(dense(seed=10))  # the disk has room again: the writer continues
    w.close()
    got = _read(tmp_path / "s")
    np.testing.assert_array_equal(got, np.concatenate([data[0], dense(seed=10).weights]))


@pytest.mark.parametrize("make", ["file_root", "file_parent", "lock_dir", "step_lock_dir"])
def test_unusable_targets_are_one_error(tmp_path, make):
    root = tmp_path / "s"
    if make == "file_root":
        root.write_text("x")
    elif make == "file_parent":
        (tmp_path / "f").write_text("x")
        root = tmp_path / "f" / "s"
    elif make == "lock_dir":
        root.mkdir()
        (root / ".lock").mkdir()
    else:
        _store(root, batches=1)
        (root / "steps" / ".b.lock").mkdir()
    with pytest.raises(AttnscopeError) as e:
        open_writer(root, step="b")
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_read_only_file_system_is_one_error(tmp_path, monkeypatch):
    _store(tmp_path / "s", batches=1)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(codec, "_write_shard", read_only)
    with pytest.raises(StoreWriteError, match="read-only") as e:
        with open_writer(tmp_path / "s", step="a", if_exists="overwrite") as w:
            w.write(dense(seed=3))
    assert "previous contents" in str(e.value)
    assert _read(tmp_path / "s").shape[0] == 4


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
def test_failed_export_leaves_no_partial_file(tmp_path, monkeypatch, fmt):
    _store(tmp_path / "s", batches=1)
    store = open_store(tmp_path / "s")
    monkeypatch.setattr(np, "save", _enospc)
    monkeypatch.setattr(np, "savez", _enospc)
    monkeypatch.setattr(np.lib.format, "write_array_header_1_0", _enospc)
    import csv

    class FullWriter:
        def __init__(self, *a, **k):
            pass

        def writerow(self, row):
            raise OSError(errno.ENOSPC, "No space left on device")

        writerows = writerow

    monkeypatch.setattr(csv, "writer", FullWriter)
    with pytest.raises(OutputError, match="No space left"):
        export(store, tmp_path / "out", fmt)
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"ne")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["fig.png"]


def test_export_out_is_a_file(tmp_path):
    _store(tmp_path / "s", batches=1)
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        export(open_store(tmp_path / "s"), tmp_path / "out", "npz")


# -- sizes -------------------------------------------------------------------------------------

class LongSdpa(torch.nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, q, q)


@pytest.mark.parametrize("model, x", [
    (LongSdpa(), torch.randn(1, 8, 600, 4)),
    (torch.nn.MultiheadAttention(8, 8, batch_first=True), torch.randn(1, 600, 8)),
])
def test_a_map_that_cannot_fit_is_refused_before_allocating(monkeypatch, model, x):
    import attnscope._memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 8 << 20)  # 8 MB free
    with pytest.raises(SelectionError) as e, attnscope.capture(model, include=["*"]):
        model(x, x, x) if isinstance(model, torch.nn.MultiheadAttention) else model(x)
    msg = str(e.value)
    assert "(1, 8, 600, 600)" in msg and "heads=" in msg and "float16" in msg
    assert "\n" not in msg


def test_a_read_that_cannot_fit_is_refused(tmp_path, monkeypatch):
    import attnscope._memory as memory

    _store(tmp_path / "s", batches=1)
    monkeypatch.setattr(memory, "available_memory", lambda: 100)
    with pytest.raises(StoreError, match="memory"):
        _read(tmp_path / "s")


@pytest.mark.parametrize("shape", [(2, 3, 0, 5), (2, 3, 4, 0), (0, 3, 4, 4), (2, 0, 4, 4),
                                   (1, 1, 0, 0)])
def test_zero_length_maps_round_trip(tmp_path, shape):
    with open_writer(tmp_path / "s", step="a") as w:
        w.write(AttentionMap("enc.attn", "self", torch.rand(shape)))
        w.commit()
        w.write(AttentionMap("enc.attn", "self", torch.softmax(torch.randn(2, 3, 4, 5), -1)))
    store = open_store(tmp_path / "s")
    got = store.read("enc.attn", "a")
    assert got.shape[0] == shape[0] + 2
    assert np.isfinite(got[shape[0]:, :3, :4, :5]).all()


def test_zero_length_sequence_through_capture(tmp_path):
    model = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(2, 0, 8)
    with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="a"):
        model(x, x, x)
    assert open_store(tmp_path / "s").read("", "a").shape == (2, 2, 0, 0)


# -- labels, names, process-wide state -------------------------------------------------------

def test_numpy_and_tensor_labels_are_accepted(tmp_path):
    labels = {"tokens": np.array(["a", "b"]), "ids": torch.arange(3), "n": np.int64(4),
              "nested": {"t": (np.float32(0.5), 1)}}
    with open_writer(tmp_path / "s", step="a", labels=labels) as w:
        w.write(dense())
    assert open_store(tmp_path / "s").labels("a") == {
        "tokens": ["a", "b"], "ids": [0, 1, 2], "n": 4, "nested": {"t": [0.5, 1]}}


def test_unstorable_labels_are_refused_when_the_writer_opens(tmp_path):
    with pytest.raises(StoreError, match="labels"):
        open_writer(tmp_path / "s", step="a", labels={"tokens": object()})
    assert not (tmp_path / "s" / "steps" / "a").exists()


def test_csv_quotes_module_names_with_commas_quotes_and_newlines(tmp_path):
    import csv

    name = 'enc,"odd"\nattn'
    with open_writer(tmp_path / "s", step="a") as w:
        w.write(dense(module=name, batch=1, heads=1, q=2, k=2))
    (path,) = export(open_store(tmp_path / "s"), tmp_path / "out", "csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "sample", "module", "head", "query", "key", "weight"]
    assert len(rows) == 5 and all(r[2] == name for r in rows[1:])


def test_store_writer_is_a_context_manager_that_creates_nothing_early(tmp_path):
    with open_writer(tmp_path / "s", step="a") as w:
        assert not (tmp_path / "s" / "steps" / "a").exists()  # opening only locks
        w.write(dense())
    assert w.closed and open_store(tmp_path / "s").num_samples("enc.attn", "a") == 4


def test_writing_does_not_tune_the_allocator(tmp_path, monkeypatch):
    import ctypes

    calls = []
    real = ctypes.CDLL

    def spy(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    monkeypatch.setattr(codec, "_pool", None)
    _store(tmp_path / "s", batches=1)
    assert calls == []  # opt-in only:
    assert codec.tune_allocator() in (True, False) and calls


def _read_in_child(path: str, queue) -> None:
    queue.put(open_store(path).read("enc.attn", "a").shape)


def test_store_works_in_a_forked_child(tmp_path):
    data = _store(tmp_path / "s", batches=1)
    _read(tmp_path / "s")  # the parent's pool exists and has threads
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(str(tmp_path / "s"), queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0 and queue.get(timeout=5) == data[0].shape


def test_step_name_helpers():
    assert schema.epoch_step(3) == "epoch_003" and schema.epoch_of("epoch_012") == 12
    assert schema.epoch_of("test") is None and schema.TEST_STEP == "test"
    assert schema.check_step(schema.epoch_step(1000)) == "epoch_1000"
    with pytest.raises(StoreError):
        schema.check_step("a~1")  # the overwrite directories can never be a step


def test_leftover_directories_are_not_steps(tmp_path):
    _store(tmp_path / "s", batches=1)
    shutil.copytree(tmp_path / "s" / "steps" / "a", tmp_path / "s" / "steps" / "a~3")
    assert open_store(tmp_path / "s").steps == ["a"]
    _store(tmp_path / "s", batches=1, seed=4)  # the next writer of the step tidies up
    assert not (tmp_path / "s" / "steps" / "a~3").exists()


# -- the background writer (capture(store=path)): the same guarantees, later ---------------

def _bg(path: Path, **kw):
    return open_writer(path, step="a", dtype="float32", background=True, **kw)


def test_background_failure_surfaces_at_the_next_batch_and_keeps_committed(tmp_path,
                                                                            monkeypatch):
    data = _store(tmp_path / "s", batches=2)
    w = _bg(tmp_path / "s")
    monkeypatch.setattr(codec, "_write_shard", _enospc)
    w.write(dense(seed=9))
    w.commit()  # handed over; the worker fails on it
    with pytest.raises(StoreWriteError, match="last complete batch: 1") as e:
        w.write(dense(seed=10))  # the next batch is refused with the worker's error
        w.commit()
        w.wait()
    assert "No space left" in str(e.value) and "\n" not in str(e.value)
    w.abort()
    np.testing.assert_array_equal(_read(tmp_path / "s"), np.concatenate(data))
    segs = sorted(p.name for p in (tmp_path / "s" / "steps" / "a").rglob("b0*"))
    assert all(not s.startswith("b000002") for s in segs)  # the failed batch left nothing


def test_background_failure_is_raised_by_close(tmp_path, monkeypatch):
    data = _store(tmp_path / "s", batches=1)
    monkeypatch.setattr(codec, "_write_shard", _enospc)
    with pytest.raises(StoreWriteError, match="last complete batch: 0"):
        with _bg(tmp_path / "s") as w:
            w.write(dense(seed=9))
    assert w.closed
    np.testing.assert_array_equal(_read(tmp_path / "s"), data[0])
    monkeypatch.undo()
    with _bg(tmp_path / "s") as w:  # the step's lock was released: writing goes on
        w.write(dense(seed=10))
    assert _read(tmp_path / "s").shape[0] == 8


def test_background_journal_failure_leaves_no_line_and_the_writer_continues(tmp_path,
                                                                            monkeypatch):
    data = _store(tmp_path / "s", batches=1)
    w = _bg(tmp_path / "s")
    w.write(dense(seed=9))
    real_write = os.write
    monkeypatch.setattr(layout.os, "write", lambda fd, b: real_write(fd, b[:7]))  # short
    w.commit()
    with pytest.raises(StoreWriteError, match="last complete batch: 0"):
        w.wait()
    monkeypatch.undo()
    w.write(dense(seed=10))
    w.close()
    got = _read(tmp_path / "s")
    np.testing.assert_array_equal(got, np.concatenate([data[0], dense(seed=10).weights]))


def test_background_overwrite_failure_keeps_the_old_step(tmp_path, monkeypatch):
    old = np.concatenate(_store(tmp_path / "s"))
    fail_shard_writes(monkeypatch, 1, OSError(errno.EROFS, "Read-only file system"))
    with pytest.raises(StoreWriteError, match="previous contents"):
        with _bg(tmp_path / "s", if_exists="overwrite") as w:
            for seed in range(3):
                w.write(dense(seed=seed))
                w.commit()
    np.testing.assert_array_equal(_read(tmp_path / "s"), old)
    steps = [p for p in (tmp_path / "s" / "steps").iterdir() if p.is_dir()]
    assert len(steps) == 1  # the staged directory is gone


@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit])
def test_background_interrupt_after_the_journal_line_keeps_the_batch(tmp_path, monkeypatch,
                                                                     signal):
    first = _store(tmp_path / "s", batches=1)[0]
    w = _bg(tmp_path / "s")
    second = dense(seed=5)
    w.write(second)
    append = layout.append_journal

    def interrupted(*args, **kwargs):
        append(*args, **kwargs)
        raise signal()

    monkeypatch.setattr(layout, "append_journal", interrupted)
    w.commit()
    with pytest.raises(signal):  # the worker's interrupt reaches the caller's thread
        w.wait()
    w.abort()
    np.testing.assert_array_equal(_read(tmp_path / "s"),
                                  np.concatenate([first, second.weights.numpy()]))


def test_background_abort_finishes_handed_batches_and_drops_the_open_one(tmp_path):
    w = _bg(tmp_path / "s")
    batches = [dense(seed=s) for s in range(3)]
    for m in batches[:2]:
        w.write(m)
        w.commit()
    w.write(batches[2])  # never committed
    w.abort()
    np.testing.assert_array_equal(_read(tmp_path / "s"),
                                  np.concatenate([m.weights for m in batches[:2]]))


def test_background_holds_at_most_one_batch_in_flight(tmp_path, monkeypatch):
    w = _bg(tmp_path / "s")
    seen = []
    real = codec._write_shard

    def spy(*args, **kwargs):
        seen.append((w._pipe.pending, len(w._batch)))
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "_write_shard", spy)
    maps = [dense(seed=s) for s in range(6)]
    for m in maps:
        w.write(m)
        w.commit()
    w.close()
    assert seen and max(p for p, _ in seen) == 1  # the worker never had a second batch
    np.testing.assert_array_equal(_read(tmp_path / "s"),
                                  np.concatenate([m.weights for m in maps]))


def test_capture_into_a_store_reports_a_write_failure_once_and_keeps_batches(tmp_path,
                                                                             monkeypatch):
    model = TwoAttentions().eval()
    x = torch.randn(3, 5, 8)
    calls = []
    real = codec._write_shard

    def third_batch_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) > 4:  # two maps a batch, one shard each: batch 2 fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "_write_shard", third_batch_fails)
    with pytest.raises(StoreWriteError, match="last complete batch: 1") as e:
        with torch.no_grad(), attnscope.capture(model, store=tmp_path / "s", step="a"):
            for _ in range(5):
                model(x)
    assert "\n" not in str(e.value)
    store = open_store(tmp_path / "s")
    assert store.num_samples("first_attn", "a") == store.num_samples("second_attn", "a") == 6
    assert not [h for h in model._forward_hooks.values()]  # the model is left as found


def _pipeline_in_child(pipe, queue) -> None:
    done = []
    pipe.submit(lambda: done.append("child"))  # the parent's worker is not in this process
    pipe.wait()
    queue.put(done)


def test_background_pipeline_works_in_a_forked_child(tmp_path):
    from attnscope.store.pipeline import BatchPipeline

    pipe, done = BatchPipeline(), []
    pipe.submit(lambda: done.append("parent"))
    pipe.wait()  # the parent's worker thread is running
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_pipeline_in_child, args=(pipe, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0 and queue.get(timeout=5) == ["child"]
    pipe.submit(lambda: done.append("parent again"))
    assert pipe.stop() is None and done == ["parent", "parent again"]
