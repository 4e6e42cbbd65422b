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


def test_thresholds_are_relative_to_uniform_attention():
    """A well-aligned 4-word translation puts 64% on the first/last words (uniform: 50%):
    not a positional problem; 70% over 16 source words (uniform: 12.5%) is."""
    aligned = np.full((4, 4), 0.04) + np.eye(4) * 0.84
    aligned[1, 0] = aligned[2, 3] = 0.24
    aligned[1, 1] = aligned[2, 2] = 0.64
    aligned /= aligned.sum(-1, keepdims=True)
    found = dg.positional(aligned, ["a", "b", "c", "d"], "cross-attention")
    assert found.value > 0.6 and found.uniform == 0.5 and not found.flagged
    wide = np.full((6, 16), 0.30 / 14)
    wide[:, 0], wide[:, -1] = 0.36, 0.34
    found = dg.positional(wide, [f"w{i}" for i in range(16)], "cross-attention")
    assert found.flagged and found.uniform == 0.125
    # special tokens at both ends: the usual sink, said but not flagged
    sink = dg.positional(wide, ["<s>", *[f"w{i}" for i in range(14)], "</s>"], "x")
    assert not sink.flagged and "sink" in sink.message


def test_one_vocabulary_with_analysis_on_causal_masked_maps():
    """The case that gave 0.573 here and 1.000 in ``attnscope stats``: a causal head
    uniform over its allowed keys, future marked -0.0 (capture's mask mark)."""
    from attnscope.analysis import map_metrics

    n = 6
    tri = np.tril(np.ones((n, n)))
    tri /= tri.sum(-1, keepdims=True)
    marked = np.where(np.triu(np.ones((n, n), bool), 1), -0.0, tri)
    want = float(map_metrics(marked[None, None])["norm_entropy"][0, 0])
    assert dg.normalised_entropy(marked) == want == np.float32(1.0)
    assert dg.diffuse(marked, "decoder self-attention").flagged
    # two or three source words: too few keys to call anything diffuse
    assert not dg.diffuse(np.full((3, 3), 1 / 3), "cross-attention").flagged
