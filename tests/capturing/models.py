"""Tiny models of every attention family, written the way their users write them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AdditiveAttention(nn.Module):
    """Bahdanau-style scores over time steps: (batch, time, 1), softmax over time."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.proj(states)))  # (batch, time, 1)
        weights = F.softmax(scores, dim=1)
        return (weights * states).sum(dim=1), weights


class LSTMRegressor(nn.Module):
    def __init__(self, features: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.attention = AdditiveAttention(hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, _ = self.lstm(x)
        context, weights = self.attention(states)
        return self.head(context), weights


class MultiHeadedAttention(nn.Module):
    """Annotated-transformer style: masked_fill then Tensor.softmax, then dropout."""

    def __init__(self, heads: int = 2, d_model: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.h, self.d_k = heads, d_model // heads
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.dropout = nn.Dropout(dropout)

    def split(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return linear(x).view(x.shape[0], -1, self.h, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = (self.split(lin, x) for lin, x in zip(self.linears, (query, key, value)))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        p_attn = self.dropout(scores.softmax(dim=-1))
        x = torch.matmul(p_attn, v).transpose(1, 2).reshape(query.shape[0], -1, self.h * self.d_k)
        return self.linears[-1](x)

    def probabilities(self, query, key, mask=None) -> torch.Tensor:
        """Ground truth: the same scores, softmax computed by hand."""
        q, k = self.split(self.linears[0], query), self.split(self.linears[1], key)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)
        e = (scores - scores.amax(-1, keepdim=True)).exp()
        return e / e.sum(-1, keepdim=True)


class AnnotatedEncoder(nn.Module):
    def __init__(self, d_model: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList([MultiHeadedAttention(d_model=d_model) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, mask):
        for layer in self.layers:
            x = self.norm(x + layer(x, x, x, mask))
        return x


class GQACausalBlock(nn.Module):
    """Llama-style grouped-query causal attention through F.scaled_dot_product_attention."""

    def __init__(self, d_model: int = 32, heads: int = 4, kv_heads: int = 2, dropout=0.1):
        super().__init__()
        self.heads, self.kv_heads, self.dim = heads, kv_heads, d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * kv_heads * self.dim)
        self.o = nn.Linear(d_model, d_model)
        self.p = dropout

    def qk(self, x):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.dim).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.kv_heads, self.dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x):
        q, k, v = self.qk(x)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True,
                                             dropout_p=self.p if self.training else 0.0)
        return self.o(out.transpose(1, 2).reshape(x.shape))


class GQAModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([GQACausalBlock(), GQACausalBlock()])

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


class RelScaleAttention(nn.Module):
    """ConvTranPlus ``Attention_Rel_Scl`` style: a learned relative bias is added to the
    probabilities after the softmax, and that sum multiplies V."""

    def __init__(self, d_model: int = 16, heads: int = 8, seq_len: int = 12) -> None:
        super().__init__()
        self.heads, self.seq_len = heads, seq_len
        self.scale = d_model ** -0.5
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.relative_bias_table = nn.Parameter(torch.randn(2 * seq_len - 1, heads) * 0.1)
        coords = torch.arange(seq_len)
        self.register_buffer("relative_index", (coords[:, None] - coords[None, :] + seq_len - 1)
                             .flatten().unsqueeze(1), persistent=False)
        self.dropout = nn.Dropout(0.1)
        self.to_out = nn.LayerNorm(d_model)

    def qk(self, x):
        b, t, _ = x.shape
        k = self.key(x).reshape(b, t, self.heads, -1).permute(0, 2, 3, 1)
        q = self.query(x).reshape(b, t, self.heads, -1).transpose(1, 2)
        return q, k

    def bias(self) -> torch.Tensor:
        rel = self.relative_bias_table.gather(0, self.relative_index.repeat(1, self.heads))
        return rel.reshape(self.seq_len, self.seq_len, self.heads).permute(2, 0, 1)[None]

    def forward(self, x):
        b, t, _ = x.shape
        q, k = self.qk(x)
        v = self.value(x).reshape(b, t, self.heads, -1).transpose(1, 2)
        attn = torch.matmul(q, k) * self.scale
        attn = F.softmax(attn, dim=-1)
        attn = attn + self.bias()
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, -1)
        return self.to_out(out)


class ConvTranLike(nn.Module):
    def __init__(self, channels: int = 3, d_model: int = 16, seq_len: int = 12) -> None:
        super().__init__()
        self.embed = nn.Conv1d(channels, d_model, kernel_size=3, padding=1)
        self.attention_layer = RelScaleAttention(d_model, 8, seq_len)
        self.head = nn.Linear(d_model, 2)

    def forward(self, x):  # (batch, channel, time)
        h = self.embed(x).transpose(1, 2)
        h = h + self.attention_layer(h)
        return F.softmax(self.head(h.mean(1)), dim=-1)  # a classifier's softmax


class Classifier(nn.Module):
    """No attention anywhere: softmax only at the output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return torch.softmax(self.body(x), dim=-1)


class EpochLoop(nn.Module):
    """A module run once per epoch of a sequence (hierarchical EEG style)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_attention = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):  # (batch, epochs, time, 8)
        outs = [self.epoch_attention(x[:, e], x[:, e], x[:, e])[0] for e in range(x.shape[1])]
        return torch.stack(outs, 1)
