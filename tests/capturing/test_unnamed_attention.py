"""A softmax over a query-key product in a module whose name does not say attention is
not recorded by default (the public contract), but never dropped without a word: it is
one line of ``rec.notes`` (kept by a store, printed by the CLI) naming the module and
the ``include=`` that records it. A classifier's softmax is not mentioned at all."""

from __future__ import annotations

import pytest
import torch

import attnscope
from attnscope.cli import main
from tests.capturing.unnamed_models import ChannelMixer, Head, make_net


def _notes_about(rec, name: str) -> list[str]:
    return [n for n in rec.notes if n.startswith(f"{name} (")]


def test_unnamed_attention_is_noted_with_the_include_that_records_it():
    model = make_net().eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    assert rec.modules == ["encoder"]  # the default covers attention-named modules only
    mixer, pool = _notes_about(rec, "mixer"), _notes_about(rec, "pool")
    assert len(mixer) == 1 and "ChannelMixer" in mixer[0] and "query-key product" in mixer[0]
    assert "include=['mixer']" in mixer[0]
    assert len(pool) == 1 and "Pooler" in pool[0] and "multiplies values" in pool[0]
    assert not _notes_about(rec, "head")  # a classifier's softmax is not attention
    assert all("\n" not in n for n in rec.notes)


def test_the_include_from_the_note_records_it_exactly():
    model = make_net().eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad(), attnscope.capture(model, include=["encoder", "mixer", "pool"]) as rec:
        model(x)
        h = model.encoder(x, x, x)[0]
        mixed = model.mixer(h)
        scores = model.mixer.q(h) @ model.mixer.k(h).transpose(-1, -2) / 8 ** 0.5
        pooled = torch.softmax(model.pool.score(mixed).squeeze(-1), dim=1)
    got = {m.module: m.weights for m in rec.maps if m.forward_index == 0}
    assert set(got) == {"encoder", "mixer", "pool"}
    assert torch.allclose(got["mixer"], scores.softmax(-1)[:, None], atol=1e-6)
    assert torch.allclose(got["pool"], pooled[:, None, None], atol=1e-6)
    assert not _notes_about(rec, "mixer")


@pytest.mark.parametrize("module", [Head(), torch.nn.Sequential(torch.nn.Linear(8, 8), Head())])
def test_a_classifier_alone_is_no_attention_and_gets_no_evidence_note(module):
    with pytest.raises(attnscope.NoAttentionFoundError) as err, attnscope.capture(module):
        module(torch.randn(4, 8))
    assert "include=" in str(err.value) and "query-key" not in str(err.value)


def test_unnamed_attention_alone_is_named_in_the_error():
    model = ChannelMixer()
    with pytest.raises(attnscope.NoAttentionFoundError) as err, attnscope.capture(model):
        model(torch.randn(2, 4, 8))
    assert "include=" in str(err.value) and "ChannelMixer" in str(err.value)


def test_excluded_or_not_included_modules_are_not_noted():
    model = make_net().eval()
    with torch.no_grad(), attnscope.capture(model, include=["encoder"]) as rec:
        model(torch.randn(2, 5, 8))
    assert not _notes_about(rec, "mixer")
    with torch.no_grad(), attnscope.capture(model, exclude=["mixer", "pool"]) as rec:
        model(torch.randn(2, 5, 8))
    assert not _notes_about(rec, "mixer") and not _notes_about(rec, "pool")


def test_the_store_keeps_the_notes_and_the_cli_prints_them(tmp_path, capsys):
    code = main(["capture", "--model", "tests.capturing.unnamed_models:make_net",
                 "--data", "tests.capturing.unnamed_models:make_data",
                 "--store", str(tmp_path / "s"), "--step", "val", "--batch-size", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert any("mixer (ChannelMixer)" in line and "include=['mixer']" in line
               for line in printed)
    store = attnscope.open_store(tmp_path / "s")
    assert store.modules == ["encoder"]
    assert any("include=['mixer']" in n for n in store.notes("val"))
    assert not any(n.startswith("head (") for n in store.notes("val"))
    assert main(["store", "info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "note (val): mixer (ChannelMixer)" in out and "include=['mixer']" in out
