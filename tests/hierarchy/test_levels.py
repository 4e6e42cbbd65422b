"""Level detection and grouping on hand-built recordings: a loop over (epoch, channel),
a fully folded batch, and a loop over epochs with channels folded all give the same
(sample, epoch, channel) structure."""

from __future__ import annotations

import pytest
import torch

from attnscope.errors import SelectionError
from attnscope.hierarchy.levels import find_levels
from attnscope.maps import AttentionMap, Recording

B, E, C, T = 2, 3, 2, 4
TRUTH = torch.arange(B * E * C, dtype=torch.float32).reshape(B, E, C)  # one id per cell


def recording(layout: str) -> Recording:
    rec = Recording()
    cells = TRUTH[..., None, None, None].expand(B, E, C, 1, 1, T)
    if layout == "loop":  # for e: for c: temporal(x[:, e, c])
        for k in range(E * C):
            rec.maps.append(AttentionMap("temporal", "self", cells[:, k // C, k % C].clone(),
                                         call_index=k))
    elif layout == "folded":  # temporal(x.reshape(b * e * c, ...))
        rec.maps.append(AttentionMap("temporal", "self", cells.reshape(-1, 1, 1, T).clone()))
    else:  # for e: temporal(x[:, e].reshape(b * c, ...))
        for e in range(E):
            rec.maps.append(AttentionMap("temporal", "self",
                                         cells[:, e].reshape(-1, 1, 1, T).clone(), call_index=e))
    for e in range(E):
        rec.maps.append(AttentionMap("channels", "self", torch.full((B, 1, 1, C), float(e)),
                                     call_index=e))
    rec.maps.append(AttentionMap("epochs", "self", torch.rand(B, 2, E, E)))
    return rec


@pytest.mark.parametrize("layout", ["loop", "folded", "mixed"])
def test_every_layout_groups_into_epoch_by_channel(layout):
    levels = find_levels(recording(layout), B, {}, E, C)
    assert {k: v.module for k, v in levels.items()} == {
        "epoch": "epochs", "channel": "channels", "temporal": "temporal"}
    temporal = torch.from_numpy(levels["temporal"].weights)  # (sample, epoch, channel, ...)
    assert temporal.shape == (B, E, C, 1, 1, T)
    assert torch.equal(temporal[..., 0, 0, 0], TRUTH)
    assert levels["channel"].weights[1, :, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]


def test_a_glob_that_names_the_wrong_level_says_so():
    with pytest.raises(SelectionError, match="expected 3"):
        find_levels(recording("loop"), B, {"channel": "temporal"}, E, C)
