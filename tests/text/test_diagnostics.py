"""Each diagnostic fires on the pattern it names and stays quiet on its opposite."""

from __future__ import annotations

import numpy as np

from attnscope.text import diagnostics as dg


def test_diffuse_cross_attention():
    uniform = np.full((4, 6), 1 / 6)
    aligned = np.eye(4, 6) * 0.97 + 0.005
    assert dg.diffuse(uniform, "cross-attention").flagged
    assert "may hallucinate" in dg.diffuse(uniform, "cross-attention").message
    assert not dg.diffuse(aligned, "cross-attention").flagged
    # NaN cells (keys a step never had) are not counted as keys
    tri = np.where(np.triu(np.ones((4, 4), bool), 1), np.nan, np.tril(np.ones((4, 4))))
    tri = tri / np.nansum(tri, axis=1, keepdims=True)
    assert dg.normalised_entropy(tri) > 0.99


def test_positional_problem():
    ends = np.zeros((5, 8))
    ends[:, 0], ends[:, -1] = 0.5, 0.4
    ends[:, 3] = 0.1
    found = dg.positional(ends, [f"w{i}" for i in range(8)], "cross-attention")
    assert found.flagged and "positional problem" in found.message and "'w7'" in found.message
    assert not dg.positional(np.full((5, 8), 1 / 8), [], "cross-attention").flagged
    assert not dg.positional(np.full((2, 3), 1 / 3), [], "x").flagged  # too short to tell


def test_copying_repetition():
    inputs = ["<s>", "the", "cat", "the", "cat", "the"]
    generated = ["the", "cat", "the", "cat", "the", "cat"]
    n = len(inputs)
    copy = np.zeros((n, n))
    copy[0, 0] = 1
    for t in range(1, n):
        copy[t, 1: t + 1] = 1 / t  # everything on the repeated words
    found = dg.repetition(copy, inputs, generated)
    assert found.flagged and found.message.startswith("copying: repetition")
    bos = np.zeros((n, n))
    bos[:, 0] = 1  # all on <s>: repeats, but not by copying
    assert not dg.repetition(bos, inputs, generated).flagged
    assert not dg.repetition(copy, inputs, ["a", "b", "c"]).flagged
