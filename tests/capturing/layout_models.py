"""Tiny models that lay attention out the ways real code does: linear attention, heads
folded into the batch (both orders), local windows, ProbSparse-like query subsets,
``Attend``-named modules and cross attention inside a cross block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def heads_of(x: torch.Tensor, heads: int) -> torch.Tensor:  # (b, t, h*d) -> (b, h, t, d)
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def reference(q, k, mask=None) -> torch.Tensor:
    """Softmax written out by hand: ``(batch, head, query, key)``."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = (scores - scores.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


class QKV(nn.Module):
    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def split(self, x):
        return tuple(heads_of(lin(x), self.heads) for lin in (self.q, self.k, self.v))


class LinearAttention(QKV):
    """Efficient attention: softmax over q's features and over k's tokens separately."""

    def forward(self, x):
        q, k, v = self.split(x)
        q, k = q.softmax(dim=-1), k.softmax(dim=-2)
        context = torch.einsum("bhnd,bhne->bhde", k, v)
        return torch.einsum("bhnd,bhde->bhne", q, context).transpose(1, 2).flatten(2)


class FoldedAttention(QKV):
    """(batch*head, query, key) with bmm; ``order`` says how heads were folded."""

    def __init__(self, order: str = "batch", declare: bool = True) -> None:
        super().__init__()
        self.order = order
        if not declare:
            del self.heads
            self.n = 2

    def fold(self, t):  # (b, h, t, d) -> (b*h, t, d) or (h*b, t, d)
        if self.order == "head":
            t = t.transpose(0, 1)
        return t.reshape(-1, *t.shape[2:])

    def forward(self, x, pad=None):  # pad: (batch, key) True = padding
        h = getattr(self, "heads", None) or self.n
        q, k, v = (self.fold(heads_of(lin(x), h)) for lin in (self.q, self.k, self.v))
        scores = torch.bmm(q, k.transpose(1, 2)) / q.shape[-1] ** 0.5
        if pad is not None:
            rows = pad.repeat_interleave(h, 0) if self.order == "batch" else pad.repeat(h, 1)
            scores = scores.masked_fill(rows[:, None, :], float("-inf"))
        return torch.bmm(scores.softmax(-1), v).sum(0)

    def expected(self, x, pad=None):
        h = getattr(self, "heads", None) or self.n
        q, k, _ = (heads_of(lin(x), h) for lin in (self.q, self.k, self.v))
        return reference(q, k, None if pad is None else ~pad[:, None, None, :])


class FoldedSdpaAttention(FoldedAttention):
    """The same, through 3-D ``F.scaled_dot_product_attention``."""

    def forward(self, x, pad=None):
        q, k, v = (self.fold(heads_of(lin(x), self.heads)) for lin in (self.q, self.k, self.v))
        mask = None
        if pad is not None:
            rows = pad.repeat_interleave(self.heads, 0) if self.order == "batch" \
                else pad.repeat(self.heads, 1)
            mask = ~rows[:, None, :].expand(-1, q.shape[1], -1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum(0)


class LocalWindowAttention(QKV):
    """Chunks of ``window`` queries; ``look_back`` adds the previous chunk's keys."""

    def __init__(self, window: int = 4, look_back: bool = False) -> None:
        super().__init__()
        self.window, self.look_back = window, look_back

    def chunks(self, t):  # (b, h, t, d) -> (b, h, n, w, d)
        return t.reshape(*t.shape[:2], -1, self.window, t.shape[-1])

    def forward(self, x):
        q, k, v = (self.chunks(t) for t in self.split(x))
        if self.look_back:
            k = torch.cat([F.pad(k, (0, 0, 0, 0, 1, 0))[:, :, :-1], k], dim=-2)
            v = torch.cat([F.pad(v, (0, 0, 0, 0, 1, 0))[:, :, :-1], v], dim=-2)
        scores = torch.einsum("bhnid,bhnjd->bhnij", q, k) / q.shape[-1] ** 0.5
        out = torch.einsum("bhnij,bhnjd->bhnid", scores.softmax(-1), v)
        return out.flatten(2, 3).transpose(1, 2).flatten(2)

    def expected(self, x):
        q, k, _ = self.split(x)
        t = x.shape[1]
        block = torch.arange(t) // self.window
        return reference(q, k, (block[:, None] == block[None, :])[None, None])


class ProbSparseAttention(QKV):
    """Informer-style: only the ``top`` most peaked queries attend; the rest get mean V."""

    def __init__(self, top: int = 3) -> None:
        super().__init__()
        self.top = top

    def forward(self, x):
        q, k, v = self.split(x)
        measure = (q @ k.transpose(-1, -2)).amax(-1)  # (b, h, t)
        index = measure.topk(self.top, dim=-1).indices  # (b, h, u)
        q_top = q.gather(2, index[..., None].expand(-1, -1, -1, q.shape[-1]))
        attn = torch.softmax(q_top @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        context = v.mean(2, keepdim=True).expand_as(v).clone()
        context.scatter_(2, index[..., None].expand(-1, -1, -1, v.shape[-1]), attn @ v)
        return context.transpose(1, 2).flatten(2)


class Attend(nn.Module):
    """lucidrains style: gets (batch, head, seq, dim) q, k, v."""

    def forward(self, q, k, v):
        probs = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(-1)
        return probs @ v


class Core(nn.Module):
    def forward(self, q, k, v):
        return Attend.forward(self, q, k, v)


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.core = Core()

    def forward(self, q, k, v):
        return self.core(q, k, v)


class NamedBlocks(QKV):
    """Attention in modules named ``attend``, ``token_attend``, ``mha`` and one level
    below ``attn``: all found by default."""

    def __init__(self) -> None:
        super().__init__()
        self.attend, self.token_attend, self.mha = Attend(), Attend(), Core()
        self.attn = Wrapper()

    def forward(self, x):
        q, k, v = self.split(x)
        out = self.attend(q, k, v) + self.token_attend(q, k, v) + self.mha(q, k, v)
        return out + self.attn(q, k, v)


class Attention(QKV):
    """One class used for self and cross attention (diffusion-model style)."""

    def forward(self, x, context=None):
        ctx = x if context is None else context
        q = heads_of(self.q(x), self.heads)
        k, v = heads_of(self.k(ctx), self.heads), heads_of(self.v(ctx), self.heads)
        probs = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)
        return (probs @ v).transpose(1, 2).flatten(2)


class CrossAttentionBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.norm = nn.LayerNorm(16)

    def forward(self, x, memory):
        return self.attention(self.norm(x), memory)  # context passed positionally


class CrossModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_block = Attention()
        self.cross_block = CrossAttentionBlock()
        self.plain = Attention()

    def forward(self, x, memory, other):
        x = x + self.self_block(x)
        x = x + self.cross_block(x, memory)
        return x + self.plain(x, other)  # no name says cross: the key length does


class SeqFirstAttention(QKV):
    """fairseq style: (seq, batch, feature) in, heads folded batch-major for bmm."""

    def forward(self, x):  # (seq, batch, 16)
        s, b, _ = x.shape
        q, k, v = (lin(x).reshape(s, b * self.heads, -1).transpose(0, 1)
                   for lin in (self.q, self.k, self.v))
        probs = torch.bmm(q, k.transpose(1, 2) / q.shape[-1] ** 0.5).softmax(-1)
        return torch.bmm(probs, v).transpose(0, 1).reshape(s, b, -1)

    def expected(self, x):
        return FoldedAttention.expected(self, x.transpose(0, 1))


class SeqFirstModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = SeqFirstAttention()

    def forward(self, x):
        return self.self_attn(x)
