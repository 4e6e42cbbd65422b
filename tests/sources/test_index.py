"""The one index normaliser: every reader chooses modules, steps, samples and heads the
same way, and says in one line what exists when a choice does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope import AttentionMap, Recording, SelectionError, sources


def test_positions_keep_order_wrap_negatives_and_refuse_out_of_range():
    assert sources.positions(None, 3).tolist() == [0, 1, 2]
    assert sources.positions([2, -1, 0], 3).tolist() == [2, 2, 0]
    assert sources.positions(slice(1, None), 4).tolist() == [1, 2, 3]
    with pytest.raises(SelectionError, match="sample 5 out of range: 'enc' has 3 samples"):
        sources.positions([0, 5], 3, "sample", "'enc'")
    with pytest.raises(SelectionError, match="not integers"):
        sources.positions(["a"], 3)


def test_names_by_glob_list_position_and_errors_that_list_what_exists():
    names = ["enc.0.attn", "enc.1.attn", "dec.0.attn"]
    assert sources.pick_names(names, "enc.*") == names[:2]
    assert sources.pick_names(names, [-1, "enc.0.attn"]) == ["dec.0.attn", "enc.0.attn"]
    assert sources.pick_name(names, "-1") == "dec.0.attn"
    with pytest.raises(SelectionError, match="no module matches 'x\\*'; available: enc.0.attn"):
        sources.pick_names(names, "x*")
    with pytest.raises(SelectionError, match="several modules are available"):
        sources.pick_name(names, None)
    assert sources.pick_steps(["epoch_000", "test"], "last") == ["test"]
    with pytest.raises(SelectionError, match="no step 'e9'; steps: epoch_000, test"):
        sources.pick_steps(["epoch_000", "test"], ["e9"])
    assert sources.head_positions("mean", 4) == [0, 1, 2, 3]
    assert sources.head_positions(-1, 4) == [3]
    with pytest.raises(SelectionError, match="no head 4: this map has 4 heads"):
        sources.head_positions([4], 4)


def test_one_sample_reads_the_same_from_every_kind_of_source():
    w = torch.softmax(torch.randn(3, 2, 4, 4), -1)  # (batch, head, query, key)
    rec = Recording()
    rec.maps += [AttentionMap("enc", "self", w[:2]), AttentionMap("enc", "self", w[2:])]
    want = w[2, 1].numpy()
    for source in (rec, w, w.numpy(), {"enc": w}):
        d = sources.read_dense(source, None if not isinstance(source, Recording) else "enc",
                               sample=2, heads=[1])
        np.testing.assert_allclose(d.weights[0], want, rtol=1e-6)
    assert not sources.is_store(rec) and not sources.is_store(w.numpy())
    assert sources.names(rec) == ["enc"] and sources.names({"a": w}) == ["a"]
