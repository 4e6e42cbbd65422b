"""``attnscope dashboard`` end to end on a stager that is not the zoo's: levels found
(one by glob, two by structure), grouped into (epoch, channel) and checked against
attention recomputed from the model's own layers; files named per sample and epoch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from attnscope.cli import main
from attnscope.hierarchy import collect
from tests.hierarchy.models import CHANNELS, EPOCHS, make_nights, make_stager

pytest.importorskip("matplotlib")
MODEL = ["--model", "tests.hierarchy.models:make_stager",
         "--data", "tests.hierarchy.models:make_nights"]


def reference(model, x):
    """Temporal ``(sample, epoch, channel, head, patch, patch)``, channel ``(sample, epoch,
    channel)``, epoch ``(sample, head, epoch, epoch)`` computed from the layers directly."""
    with torch.no_grad():
        temporal, channel, pooled = [], [], []
        for e in range(EPOCHS):
            h = model.patches(x[:, e]).flatten(0, 1)
            out, w = model.encoder.patch_mixer(h, h, h, need_weights=True,
                                               average_attn_weights=False)
            temporal.append(w.unflatten(0, (len(x), CHANNELS)))
            h = out.mean(1).unflatten(0, (len(x), CHANNELS))
            channel.append(F.softmax(model.encoder.lead_weighting.gate(h).squeeze(-1), -1))
            pooled.append(model.encoder.lead_weighting(h))
        z = torch.stack(pooled, 1)
        mixer = model.context.mixer
        q, k, _ = mixer.qkv(z).reshape(len(x), EPOCHS, 3, 2, -1).permute(2, 0, 3, 1, 4)
        epoch = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        pred = model(x).argmax(-1)
    return (torch.stack(temporal, 1).numpy(), torch.stack(channel, 1).numpy(),
            epoch.numpy(), pred.numpy())


def test_levels_match_attention_recomputed_from_the_layers():
    model = make_stager()
    x, y = make_nights()
    # batches of 2: samples 0-1 and 2 come from two model calls, grouped back in order
    res = collect(model, (x, y), num_samples=3, channel_module="*lead_weighting",
                  channel_names=["Fz", "Cz"], batch_size=2)
    temporal, channel, epoch, pred = reference(model, x[:3])
    np.testing.assert_array_equal(res.pred, pred)
    np.testing.assert_array_equal(res.true, y[:3].numpy())
    np.testing.assert_array_equal(res.signal, x[:3].numpy())
    lv = res.levels
    assert {k: v.module for k, v in lv.items()} == {
        "epoch": "context.mixer", "channel": "encoder.lead_weighting",
        "temporal": "encoder.patch_mixer"}
    np.testing.assert_allclose(lv["temporal"].weights, temporal, atol=1e-5)
    np.testing.assert_allclose(lv["channel"].weights[:, :, 0, 0], channel, atol=1e-5)
    np.testing.assert_allclose(lv["epoch"].weights, epoch, atol=1e-5)
    assert (lv["temporal"].calls, lv["temporal"].folded) == (EPOCHS, CHANNELS)
    assert "--channel-module *lead_weighting" in lv["channel"].describe()
    assert model.training and not model._forward_hooks  # left as found (train mode)


def test_cli_files_labels_and_default_epochs(tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["dashboard", *MODEL, "--num-samples", "2", "--channel-names", "Fz", "Cz",
                 "--class-names", "W", "N2", "REM", "--channel-module", "*lead_weighting",
                 "--out", str(out), "--dpi", "50"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "temporal level: 'encoder.patch_mixer'" in printed
    assert "epoch level: 'context.mixer'" in printed
    model = make_stager()
    x, y = make_nights()
    _, _, epoch, pred = reference(model, x[:2])
    doc = json.loads((out / "dashboard.json").read_text())
    names = ["W", "N2", "REM"]
    want = set()
    for i, s in enumerate(doc["samples"]):
        assert s["labels"] == [f"{names[a]}->{names[b]}" for a, b in zip(y[i], pred[i])]
        wrong = [e for e in range(EPOCHS) if y[i, e] != pred[i, e]]
        attended = int(np.argmax(epoch[i].mean(axis=(0, 1))))
        assert s["epochs"] == sorted(set(wrong[:3]) | {attended})
        want |= {f"attention_dashboard_sample_{i}.png", f"epoch_attention_sample_{i}.png"}
        want |= {f"channel_attention_sample_{i}_epoch_{e}.png" for e in s["epochs"]}
        want |= {f"temporal_attention_sample_{i}_epoch_{e}_ch_{c}.png"
                 for e in s["epochs"] for c in range(CHANNELS)}
    assert {p.name for p in out.iterdir()} == want | {"dashboard.json"}
    assert all((out / f).stat().st_size > 3000 for f in want)


def test_cli_chosen_epochs_and_structure_only(tmp_path, capsys):
    # no glob: the channel weighting is not named attention; it is found all the same,
    # by a second look at every softmax, and the line says so
    code = main(["dashboard", *MODEL, "--num-samples", "1", "--epochs", "1,3",
                 "--out", str(tmp_path), "--dpi", "40"])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "not found" not in printed
    assert ("channel level: 'encoder.lead_weighting' (5 maps per sample, one per epoch; "
            "found by looking at every softmax") in printed
    names = {p.name for p in tmp_path.iterdir()}
    assert {n for n in names if n.startswith("temporal")} == {
        f"temporal_attention_sample_0_epoch_{e}_ch_{c}.png" for e in (1, 3) for c in (0, 1)}
    assert {n for n in names if n.startswith("channel")} == {
        f"channel_attention_sample_0_epoch_{e}.png" for e in (1, 3)}
    model = make_stager()
    x, _ = make_nights()
    _, channel, _, _ = reference(model, x[:1])
    found = collect(model, make_nights(), num_samples=1)
    np.testing.assert_allclose(found.levels["channel"].weights[:, :, 0, 0], channel, atol=1e-5)


def empty_nights():
    return torch.zeros(0, EPOCHS, CHANNELS, 40), torch.zeros(0, EPOCHS, dtype=torch.long)


def test_more_samples_than_the_data_has_is_said(tmp_path, capsys):
    code = main(["dashboard", *MODEL, "--num-samples", "9", "--out", str(tmp_path),
                 "--dpi", "30", "--epochs", "0"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "--num-samples 9, but the data has 5 samples: 5 dashboards" in err
    assert len(json.loads((tmp_path / "dashboard.json").read_text())["samples"]) == 5


@pytest.mark.parametrize("args, says", [
    (["--temporal-module", "nope*"], "matches none of the captured modules"),
    (["--channel-names", "A", "B", "C"], "3 names but the model has 2 channels"),
    (["--epochs", "9"], "out of range"),
    (["--epochs", "x"], "comma-separated"),
    (["--class-names", "W", "N2"],
     "--class-names gives 2 names (W, N2) but the model predicts 3 classes"),
    (["--data", "tests.hierarchy.test_dashboard:empty_nights"],
     "the data set is empty: no sample to draw a dashboard of"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, says):
    out = tmp_path / "out"
    assert main(["dashboard", *MODEL, "--num-samples", "1", "--out", str(out),
                 *args]) == 2
    err = capsys.readouterr().err
    assert says in " ".join(err.split()) and err.strip().count("\n") == 0
    assert "Traceback" not in err and not out.exists()  # nothing half-written
