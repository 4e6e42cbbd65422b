"""A map too large to read with all its heads at once gets no head distances, and the
report says so in a note instead of leaving the columns empty without a word."""

from __future__ import annotations

import numpy as np
import torch

import attnscope
from attnscope.analysis import head_stats
from attnscope.maps import AttentionMap


def test_similarity_skipped_for_head_by_head_blocks_is_a_note(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.random((2, 4, 64, 64)).astype(np.float32)
    w /= w.sum(-1, keepdims=True)
    with attnscope.open_writer(tmp_path / "s", step="test", dtype="float32") as writer:
        writer.write(AttentionMap("big.attn", "self", torch.from_numpy(w)))
    store = attnscope.open_store(tmp_path / "s")
    whole = head_stats(store, similarity=True)
    assert not [f for f in whole.findings if f.code == "no_similarity"]
    split = head_stats(store, similarity=True, budget=64 * 64)  # one head per block
    notes = [f for f in split.findings if f.code == "no_similarity"]
    assert len(notes) == 1 and notes[0].module == "big.attn" and notes[0].severity == "note"
    assert "not computed" in notes[0].line()
