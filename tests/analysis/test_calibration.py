"""Diagnostics calibrated both ways on small models built to show one pattern each
(captured for real, token labels from the inputs), and on the same model attending by
content, which must stay quiet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnscope
from attnscope.analysis import diagnose


class TokenAttention(nn.Module):
    """Self-attention over token ids whose scores are built to show one pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = pattern

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        pos = torch.arange(n)
        if self.pattern == "diffuse":  # an untrained, too-hot head: almost no preference
            scores = 0.01 * torch.randn(b, 2, n, n, generator=torch.Generator().manual_seed(0))
        elif self.pattern == "repetition":  # looks at earlier copies of its own token
            same = (ids[:, :, None] == ids[:, None, :]) & (pos[None, :] < pos[:, None])
            scores = (8.0 * same).float()[:, None].expand(b, 2, n, n)
        elif self.pattern == "positional":  # the first and last key whatever the query
            ends = ((pos == 0) | (pos == n - 1)).float() * 6.0
            scores = ends.expand(b, 2, n, n) + 0.3 * (pos[:, None] == pos[None, :]).float()
        else:  # healthy: each query reads the key two positions back, by content
            scores = 8.0 * (pos[None, :] == (pos[:, None] - 2).clamp(min=0)).float()
            scores = scores.expand(b, 2, n, n)
        attn = torch.softmax(scores, dim=-1)
        return attn @ ids.float()[:, None, :, None]


def run(pattern: str):
    words = ["the", "cat", "saw", "the", "dog", "and", "the", "cat", "ran", "off", "to",
             "the", "park", "with", "the", "dog"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = torch.tensor([[vocab[w] for w in words]] * 3)
    model = TokenAttention(pattern).eval()
    with attnscope.capture(model, include=["*"]) as rec:
        model(ids)
    found = diagnose(rec, tokens=words)
    return {f.code for f in found if f.severity == "warning"}


@pytest.mark.parametrize("pattern", ["diffuse", "repetition", "positional"])
def test_each_diagnostic_fires_on_the_model_built_to_show_it(pattern):
    assert run(pattern) == {pattern}


def test_the_same_model_attending_by_content_is_quiet():
    assert run("healthy") == set()
