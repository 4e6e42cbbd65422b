"""One case per attention family: a model, its inputs, and ground truth computed another
way (the layer's own ``need_weights``/``output_attentions``/``return_attention_weights``,
or a softmax written out by hand). The conformance suite runs every case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tests.capturing import models


@dataclass
class Expected:
    weights: torch.Tensor  # dense (batch, head, query, key) or graph (..., edge, head)
    kind: str
    edge_index: torch.Tensor | None = None
    effective: torch.Tensor | None = None


@dataclass
class Case:
    name: str
    build: Callable[[], tuple[nn.Module, tuple]]
    expected: Callable[[nn.Module, tuple], list[Expected]]
    options: dict[str, Any] = field(default_factory=dict)
    # compare outputs only where this says (nested-tensor fast paths zero padding)
    output_view: Callable[[Any, tuple], torch.Tensor] = lambda out, inputs: _first(out)
    has_dropout: bool = True


def _first(out: Any) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out if isinstance(out, torch.Tensor) else out[0]


def _lstm():
    torch.manual_seed(0)
    return models.LSTMRegressor().eval(), (torch.randn(3, 10, 3),)


def _lstm_expected(model, inputs):
    _, weights = model(*inputs)  # (batch, time, 1), returned by the module itself
    return [Expected(weights.squeeze(-1)[:, None, None, :], "self")]


def _annotated():
    torch.manual_seed(0)
    mask = torch.ones(2, 1, 6, dtype=torch.bool)
    mask[1, :, 4:] = False
    return models.AnnotatedEncoder().eval(), (torch.randn(2, 6, 16), mask)


def _annotated_expected(model, inputs):
    x, mask = inputs
    found = []
    for layer in model.layers:
        found.append(Expected(layer.probabilities(x, x, mask), "self"))
        x = model.norm(x + layer(x, x, x, mask))
    return found


def _encoder():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.2, batch_first=True)
    model = nn.TransformerEncoder(layer, 2).eval()
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True
    pad[2, 3:] = True
    return model, (torch.randn(3, 7, 16), None, pad)


def _encoder_expected(model, inputs):
    x, _, pad = inputs
    found = []
    for layer in model.layers:
        _, w = layer.self_attn(x, x, x, key_padding_mask=pad, need_weights=True,
                               average_attn_weights=False)
        found.append(Expected(w, "self"))
        x = layer(x, src_key_padding_mask=pad)
    return found


def _valid_rows(out, inputs):
    return out[~inputs[2]]  # padded positions are not part of the output's meaning


def _decoder():
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.2, batch_first=True)
    model = nn.TransformerDecoder(layer, 2).eval()
    tgt, memory = torch.randn(2, 5, 16), torch.randn(2, 8, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    return model, (tgt, memory, causal)


def _decoder_expected(model, inputs):
    x, memory, causal = inputs
    found = []
    for layer in model.layers:
        _, w = layer.self_attn(x, x, x, attn_mask=causal, need_weights=True,
                               average_attn_weights=False)
        found.append(Expected(w, "self"))
        h = layer.norm1(x + layer.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0])
        _, c = layer.multihead_attn(h, memory, memory, need_weights=True,
                                    average_attn_weights=False)
        found.append(Expected(c, "cross"))
        x = layer(x, memory, tgt_mask=causal)
    return found


def _gqa():
    torch.manual_seed(0)
    return models.GQAModel().eval(), (torch.randn(2, 9, 32),)


def _gqa_expected(model, inputs):
    (x,) = inputs
    found = []
    for block in model.blocks:
        q, k, _ = block.qk(x)
        k = k.repeat_interleave(block.heads // block.kv_heads, dim=1)
        scores = q @ k.transpose(-1, -2) / block.dim ** 0.5
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
        found.append(Expected(scores.masked_fill(~causal, float("-inf")).softmax(-1), "self"))
        x = x + block(x)
    return found


def _convtran():
    torch.manual_seed(0)
    return models.ConvTranLike().eval(), (torch.randn(2, 3, 12),)


def _convtran_expected(model, inputs):
    layer = model.attention_layer
    h = model.embed(inputs[0]).transpose(1, 2)
    q, k = layer.qk(h)
    probs = ((q @ k) * layer.scale).softmax(-1)
    return [Expected(probs, "self", effective=probs + layer.bias())]


def _bert_config(implementation: str):
    from transformers import BertConfig

    return BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=48, max_position_embeddings=32,
                      attn_implementation=implementation)


def _bert():
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(_bert_config("sdpa")).eval()
    ids = torch.randint(0, 60, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return model, (ids, mask)


def _bert_expected(model, inputs):
    from transformers import BertModel

    eager = BertModel(_bert_config("eager")).eval()
    eager.load_state_dict(model.state_dict())
    out = eager(input_ids=inputs[0], attention_mask=inputs[1], output_attentions=True)
    return [Expected(a, "self") for a in out.attentions]


def _bart_config(implementation: str):
    from transformers import BartConfig

    return BartConfig(vocab_size=60, d_model=32, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                      decoder_ffn_dim=48, max_position_embeddings=32,
                      attn_implementation=implementation)


def _bart():
    from transformers import BartModel

    torch.manual_seed(0)
    model = BartModel(_bart_config("sdpa")).eval()
    ids = torch.randint(3, 60, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, 7:] = 0
    return model, (ids, mask, ids[:, :6])


def _bart_expected(model, inputs):
    from transformers import BartModel

    eager = BartModel(_bart_config("eager")).eval()
    eager.load_state_dict(model.state_dict())
    out = eager(input_ids=inputs[0], attention_mask=inputs[1], decoder_input_ids=inputs[2],
                output_attentions=True)
    found = [Expected(a, "self") for a in out.encoder_attentions]
    for self_attn, cross in zip(out.decoder_attentions, out.cross_attentions):
        found += [Expected(self_attn, "self"), Expected(cross, "cross")]
    return found


def _graph(conv: str):
    def build():
        from tests.capturing.graph_models import GraphModel

        torch.manual_seed(0)
        edge_index = torch.tensor([[0, 1, 2, 3, 4, 0, 2], [1, 2, 3, 4, 0, 3, 0]])
        return GraphModel(conv).eval(), (torch.randn(5, 6), edge_index)

    return build


def _graph_expected(model, inputs):
    _, (edge_index, alpha) = model.conv(*inputs, return_attention_weights=True)
    return [Expected(alpha, "graph", edge_index=edge_index)]


def _spin():
    from tests.capturing.graph_models import SpinLike, causal_time_graph

    torch.manual_seed(0)
    return SpinLike().eval(), (torch.randn(2, 6, 2), causal_time_graph(6))


def _spin_expected(model, inputs):
    x, edge_index = inputs
    h = model.encoder(x)  # (batch, time, channel)
    layer = model.temporal
    src, dst = edge_index
    scores = layer.scores(h[:, dst], h[:, src]).squeeze(-1)  # (batch, edge)
    alpha = torch.empty_like(scores)
    for node in range(h.shape[1]):  # softmax over the edges arriving at each time step
        into = dst == node
        alpha[:, into] = scores[:, into].softmax(-1)
    return [Expected(alpha.unsqueeze(-1), "graph", edge_index=edge_index)]


def _hf_case(family: str):
    """Decoder-only (GPT-2, Llama with grouped-query heads) and T5 (relative position
    bias in the scores): sdpa capture against the same weights on eager attention."""
    import transformers

    classes = {"gpt2": ("GPT2LMHeadModel", dict(n_embd=32, n_layer=2, n_head=4,
                                                n_positions=32)),
               "llama": ("LlamaForCausalLM", dict(hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=4, num_key_value_heads=2,
                                                  intermediate_size=48,
                                                  max_position_embeddings=32)),
               "t5": ("T5Model", dict(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4))}
    name, config = classes[family]
    cls = getattr(transformers, name)

    def make(implementation: str):
        return cls(cls.config_class(vocab_size=60, attn_implementation=implementation,
                                    **config)).eval()

    def build():
        torch.manual_seed(0)
        ids = torch.randint(0, 60, (2, 8))
        inputs = (ids,) if family != "t5" else (ids, None, ids[:, :5])
        return make("sdpa"), inputs

    def expected(model, inputs):
        eager = make("eager")
        eager.load_state_dict(model.state_dict())
        if family == "t5":
            out = eager(input_ids=inputs[0], decoder_input_ids=inputs[2],
                        output_attentions=True)
            found = [Expected(a, "self") for a in out.encoder_attentions]
            for self_attn, cross in zip(out.decoder_attentions, out.cross_attentions):
                found += [Expected(self_attn, "self"), Expected(cross, "cross")]
            return found
        out = eager(input_ids=inputs[0], output_attentions=True)
        return [Expected(a, "self") for a in out.attentions]

    return build, expected


CASES = [
    Case("lstm_additive", _lstm, _lstm_expected, has_dropout=False),
    Case("annotated_transformer", _annotated, _annotated_expected),
    Case("transformer_encoder_padding", _encoder, _encoder_expected, output_view=_valid_rows),
    Case("transformer_decoder_causal", _decoder, _decoder_expected),
    Case("sdpa_causal_gqa", _gqa, _gqa_expected),
    Case("convtran_relative_bias", _convtran, _convtran_expected),
    Case("hf_bert_sdpa", _bert, _bert_expected),
    Case("hf_bart_sdpa", _bart, _bart_expected),
    Case("hf_gpt2_causal", *_hf_case("gpt2"), output_view=lambda out, inputs: out.logits),
    Case("hf_llama_gqa", *_hf_case("llama"), output_view=lambda out, inputs: out.logits),
    Case("hf_t5_relative_bias", *_hf_case("t5")),
    Case("pyg_gat", _graph("gat"), _graph_expected),
    Case("pyg_gatv2", _graph("gatv2"), _graph_expected),
    Case("pyg_transformer_conv", _graph("transformer"), _graph_expected),
    Case("spin_temporal_additive", _spin, _spin_expected),
]
