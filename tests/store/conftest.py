from __future__ import annotations

import pytest
import torch

from attnscope.maps import AttentionMap


def dense(batch: int = 4, heads: int = 3, q: int = 8, k: int = 8, seed: int = 0,
          **kw) -> AttentionMap:
    g = torch.Generator().manual_seed(seed)
    w = torch.softmax(torch.randn(batch, heads, q, k, generator=g) * 2, -1)
    return AttentionMap(kw.pop("module", "enc.attn"), kw.pop("kind", "self"), w, **kw)


@pytest.fixture
def make_dense():
    return dense
