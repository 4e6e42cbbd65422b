"""Small real captures shared by the plot tests (module scope: each is built once)."""

from __future__ import annotations

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope

matplotlib.use("Agg")

SOURCE = ["Das", "Haus", "ist", "sehr", "klein", "."]
TARGET = ["The", "house", "is", "small"]


class Translator(nn.Module):
    """Encoder self, decoder causal self and decoder->encoder cross attention."""

    def __init__(self, d: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, d)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, heads, 32, dropout=0.0, batch_first=True), 2)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d, heads, 32, dropout=0.0, batch_first=True), 2)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        memory = self.encoder(self.embed(src))
        return self.decoder(self.embed(tgt), memory, tgt_mask=causal, tgt_is_causal=True)


class AdditiveAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.score(torch.tanh(self.proj(states))), dim=1)  # (batch, time, 1)
        return (weights * states).sum(dim=1)


class LSTMAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, 8, batch_first=True)
        self.attention = AdditiveAttention(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.lstm(x)[0])


@pytest.fixture(scope="module")
def translation():
    torch.manual_seed(0)
    model = Translator().eval()
    src = torch.randint(0, 20, (2, len(SOURCE)))
    tgt = torch.randint(0, 20, (2, len(TARGET)))
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(src, tgt)
    return rec


@pytest.fixture(scope="module")
def lstm_attention():
    torch.manual_seed(0)
    x = torch.randn(3, 20, 2).cumsum(1)
    model = LSTMAttention().eval()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
    return rec, x


@pytest.fixture(scope="module")
def gat():
    pyg = pytest.importorskip("torch_geometric.nn")
    torch.manual_seed(0)
    conv = pyg.GATConv(4, 3, heads=2).eval()
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 0, 2], [1, 2, 3, 4, 0, 3, 0]])
    with torch.no_grad(), attnscope.capture(conv) as rec:
        conv(torch.randn(5, 4), edge_index)
    return rec


@pytest.fixture(scope="module")
def epoch_store(tmp_path_factory):
    """A store with steps epoch_000..epoch_002 of the translator, trained in between."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("plot") / "attn"
    model = Translator()
    src = torch.randint(0, 20, (2, len(SOURCE)))
    tgt = torch.randint(0, 20, (2, len(TARGET)))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for epoch in range(3):
        model.eval()
        with torch.no_grad(), attnscope.capture(model, store=path, step=f"epoch_{epoch:03d}"):
            model(src, tgt)
        model.train()
        loss = model(src, tgt).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return attnscope.open_store(path)
