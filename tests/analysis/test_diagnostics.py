"""Each diagnostic fires on a map built to show it, and stays quiet on a clean one."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.analysis import EXPLAIN, diagnose
from attnscope.analysis.report import summarize


def peaked(rng, n, heads=2, batch=3):
    x = np.exp(4 * rng.normal(size=(batch, heads, n, n)))
    return x / x.sum(-1, keepdims=True)


def codes(source, **kw):
    return {f.code for f in diagnose(source, **kw)}


def test_a_clean_peaked_map_has_no_findings():
    assert codes(peaked(np.random.default_rng(0), 8)) == set()


@pytest.mark.parametrize("code", ["nan_rows", "zero_map", "zero_rows", "diffuse", "dead"])
def test_each_structural_pattern_is_found(code):
    w = peaked(np.random.default_rng(1), 8)
    if code == "nan_rows":
        w[1, 0, 3] = np.nan
    elif code == "zero_map":
        w[0, 1] = 0.0
    elif code == "zero_rows":
        w[0, 0, :2] = 0.0
    elif code == "diffuse":
        w[:, 1] = 1 / 8
    elif code == "dead":
        w[:, 0] = 0.02 / 7
        w[:, 0, :, 0] = 0.98
    found = diagnose(w)
    assert code in {f.code for f in found}
    f = next(f for f in found if f.code == code)
    assert f.message == EXPLAIN[code] and code in f.line()
    if code in ("diffuse", "dead"):
        assert f.head == (1 if code == "diffuse" else 0) and f.samples == 3


def test_token_patterns_repetition_padding_positional():
    toks = ["the", "cat", "the", "cat", "the", "[PAD]", "[PAD]"]
    n = len(toks)
    rep = np.full((n, n), 0.01)
    for i in range(n):
        earlier = [j for j in range(i) if toks[j] == toks[i]]
        rep[i, earlier[-1] if earlier else i] = 1.0
    rep /= rep.sum(-1, keepdims=True)
    found = codes(rep[None, None], tokens=toks)
    assert {"repetition", "padding"} <= found  # padding keys get 1% each: not masked
    masked = rep.copy()
    masked[:, 5:] = 0
    masked /= masked.sum(-1, keepdims=True)
    assert "padding" not in codes(masked[None, None], tokens=toks)
    edges = np.full((6, 6), 0.01)
    edges[:, 0] = edges[:, -1] = 0.48
    edges[::2, 0], edges[::2, -1] = 0.78, 0.18  # not one key everywhere: not "dead"
    edges /= edges.sum(-1, keepdims=True)
    assert codes(edges[None, None]) == {"positional"}
    # the same pattern on [CLS] ... [SEP] is the usual sink, reported as such
    toks = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    found = diagnose(edges[None, None], tokens=toks)
    assert {f.code for f in found} == {"sink"}
    lines = summarize(found)
    assert lines[0].startswith("sink (1): ") and lines[1].strip().startswith("map: head 0")


def test_first_token_sinks_of_language_models_are_notes_not_positional():
    """A causal head parking its mass on the first key (the attention sink of trained
    LMs), or a head parking it on a leading <s> only, is a sink note; the same mass on
    an ordinary first word of a bidirectional map is a positional warning."""
    n = 8
    causal = np.tril(np.full((n, n), 0.02))
    causal[:, 0] = 0.9
    causal /= causal.sum(-1, keepdims=True)
    causal[1:, 0] -= np.linspace(0, 0.2, n - 1)  # not one key everywhere: not "dead"
    causal /= causal.sum(-1, keepdims=True)
    found = diagnose(causal[None, None])
    assert {f.code for f in found} == {"sink"} and found[0].severity == "note"
    full = np.full((n, n), 0.02)
    full[:, 0] = 0.9
    full[1:, 0] -= np.linspace(0, 0.2, n - 1)
    full /= full.sum(-1, keepdims=True)
    assert codes(full[None, None]) == {"positional"}
    toks = ["<s>", *["the", "cat", "sat", "on", "the", "red", "mat"]]
    assert codes(full[None, None], tokens=toks) == {"sink"}
