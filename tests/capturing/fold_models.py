"""Tiny models that reproduce third-party layouts written from how those packages build
their attention (the packages themselves do not install here): braindecode ATCNet's
head-major fold by split/cat, neuralforecast PatchTST's 3-D sdpa over channel-independent
rows, Informer's ProbSparse top-u queries (advanced indexing, as neuralforecast does),
Autoformer's softmax over top-k lags. Each has ``expected`` computed another way."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.capturing.layout_models import QKV, heads_of, reference


class ATCNetAttention(nn.Module):
    """Heads folded head-major: ``torch.cat(x.split(head_dim, -1), 0)`` -> (head*batch, ..)."""

    def __init__(self, d: int = 16, heads: int = 2, sdpa: bool = False) -> None:
        super().__init__()
        self.heads, self.sdpa = heads, sdpa  # (braindecode stores its head count)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def fold(self, x):
        return torch.cat(x.split(x.shape[-1] // self.heads, -1), 0)

    def forward(self, x):
        q, k, v = (self.fold(lin(x)) for lin in (self.q, self.k, self.v))
        if self.sdpa:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / q.shape[-1] ** 0.5
            out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return torch.cat(out.split(x.shape[0], 0), -1)

    def expected(self, x):
        return reference(heads_of(self.q(x), self.heads), heads_of(self.k(x), self.heads))


class PrefoldedAttention(nn.Module):
    """Gets q and k already folded (nothing shows how): the order must be assumed."""

    def forward(self, x, q, k):  # x: (batch, ...); q, k: (batch*head, L, d) made elsewhere
        return torch.bmm((q @ k.transpose(1, 2)).softmax(-1), k) + x.sum()


class _SdpaCore(nn.Module):
    """neuralforecast style: the inner module gets (batch*head, L, d) and declares no heads."""

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


class PatchTSTAttention(nn.Module):
    def __init__(self, d: int = 16, n_heads: int = 2) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.W_Q, self.W_K, self.W_V = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.sdp_attn = _SdpaCore()

    def forward(self, x):  # (rows, L, d)
        rows = x.shape[0]
        q, k, v = (lin(x).view(rows, -1, self.n_heads, x.shape[-1] // self.n_heads)
                   .transpose(1, 2).reshape(rows * self.n_heads, x.shape[1], -1)
                   for lin in (self.W_Q, self.W_K, self.W_V))
        out = self.sdp_attn(q, k, v)
        return out.view(rows, self.n_heads, x.shape[1], -1).transpose(1, 2).flatten(2)


class PatchTST(nn.Module):
    """Channel independence: (batch, n_vars, patches, d) -> (batch*n_vars, patches, d)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = PatchTSTAttention()

    def forward(self, x):
        b, c, n, d = x.shape
        return self.attn(x.reshape(b * c, n, d)).reshape(b, c, n, d)

    def expected(self, x):
        z = x.flatten(0, 1)
        a = self.attn
        return reference(heads_of(a.W_Q(z), a.n_heads), heads_of(a.W_K(z), a.n_heads))


class ProbAttention(QKV):
    """neuralforecast's ProbAttention: the top-u queries by a sparsity measure, picked by
    advanced indexing; the others get the mean of V."""

    def __init__(self, top: int = 3) -> None:
        super().__init__()
        self.top = top

    def select(self, q, k):
        measure = (q @ k.transpose(-1, -2)).amax(-1) - (q @ k.transpose(-1, -2)).mean(-1)
        return measure.topk(self.top, dim=-1, sorted=False).indices  # (b, h, u)

    def forward(self, x):
        q, k, v = self.split(x)
        b, h = q.shape[:2]
        top = self.select(q, k)
        q_reduce = q[torch.arange(b)[:, None, None], torch.arange(h)[None, :, None], top, :]
        attn = torch.softmax(q_reduce @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        context = v.mean(-2, keepdim=True).expand_as(v).clone()
        context[torch.arange(b)[:, None, None], torch.arange(h)[None, :, None], top, :] = \
            attn @ v
        return context.transpose(1, 2).flatten(2)

    def expected(self, x):
        q, k, _ = self.split(x)
        full = reference(q, k)
        keep = torch.zeros(full.shape[:-1], dtype=torch.bool)
        keep.scatter_(-1, self.select(q, k), True)
        return torch.where(keep[..., None], full, torch.nan)


class AutoformerAttention(QKV):
    """Autoformer: a softmax over the top-k lag correlations weights rolled values."""

    def __init__(self, top: int = 3) -> None:
        super().__init__()
        self.top = top

    def forward(self, x):
        q, k, v = (lin(x) for lin in (self.q, self.k, self.v))
        corr = torch.fft.irfft(torch.fft.rfft(q, dim=1) * torch.conj(torch.fft.rfft(k, dim=1)),
                               n=x.shape[1], dim=1)  # (b, lag, d)
        weights, delays = torch.topk(corr.mean(-1), self.top, dim=-1)  # (b, top)
        weights = torch.softmax(weights, dim=-1)
        out = torch.zeros_like(v)
        for i in range(self.top):
            rolled = torch.stack([v[j].roll(-int(delays[j, i]), 0) for j in range(len(v))])
            out = out + rolled * weights[:, i, None, None]
        return out
