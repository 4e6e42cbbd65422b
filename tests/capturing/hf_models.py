"""Tiny random-config Hugging Face models of many architectures, and their reference
attention from the same weights on eager attention (``output_attentions=True``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

SMALL = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=48, max_position_embeddings=64)
GQA = dict(SMALL, num_key_value_heads=2)


@dataclass
class Arch:
    name: str  # transformers class name
    config: dict[str, Any]
    inputs: str = "ids"  # "ids", "seq2seq", "pixels", "audio"
    extra: dict[str, Any] = field(default_factory=dict)


DECODERS = [
    Arch("LlamaForCausalLM", GQA),
    Arch("MistralForCausalLM", GQA),
    Arch("Qwen2ForCausalLM", GQA),
    Arch("GemmaForCausalLM", dict(GQA, head_dim=8)),
]

# architectures no capture test was written for: compared to eager as they come
HELD_OUT = [
    Arch("MixtralForCausalLM", dict(GQA, num_local_experts=2, num_experts_per_tok=1)),
    Arch("PhiForCausalLM", dict(SMALL)),
    Arch("FalconForCausalLM", dict(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4)),
    Arch("GPTNeoXForCausalLM", dict(SMALL)),
    Arch("Qwen3ForCausalLM", dict(GQA, head_dim=8)),
    Arch("Phi3ForCausalLM", dict(GQA, pad_token_id=0)),
    Arch("StableLmForCausalLM", dict(GQA)),
    Arch("OPTForCausalLM", dict(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, ffn_dim=48, word_embed_proj_dim=32,
                                max_position_embeddings=64)),
    Arch("GPTJForCausalLM", dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4,
                                 rotary_dim=4, n_positions=64)),
    Arch("BloomForCausalLM", dict(vocab_size=64, hidden_size=32, n_layer=2, n_head=4)),
    Arch("RobertaModel", dict(SMALL, pad_token_id=1)),
    Arch("DebertaV2Model", dict(SMALL)),
    Arch("ElectraModel", dict(SMALL, embedding_size=32)),
    Arch("DistilBertModel", dict(vocab_size=64, dim=32, n_layers=2, n_heads=4,
                                 hidden_dim=48, max_position_embeddings=64)),
    Arch("ViTModel", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=48, image_size=16, patch_size=4), "pixels"),
    Arch("PegasusModel", dict(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2,
                              encoder_attention_heads=4, decoder_attention_heads=4,
                              encoder_ffn_dim=48, decoder_ffn_dim=48,
                              max_position_embeddings=64), "seq2seq"),
    Arch("MarianModel", dict(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2,
                             encoder_attention_heads=4, decoder_attention_heads=4,
                             encoder_ffn_dim=48, decoder_ffn_dim=48, pad_token_id=0,
                             decoder_start_token_id=0, max_position_embeddings=64),
         "seq2seq"),
    Arch("T5Model", dict(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                         num_heads=4), "seq2seq"),
    Arch("BigBirdModel", dict(SMALL, attention_type="original_full")),
    Arch("GPTBigCodeForCausalLM", dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4,
                                       n_positions=64, multi_query=True)),
    Arch("MptForCausalLM", dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4,
                                max_seq_len=64)),
    Arch("Gemma2ForCausalLM", dict(GQA, head_dim=8, sliding_window=4)),
    Arch("GPTNeoForCausalLM", dict(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4,
                                   attention_types=[[["global", "local"], 1]], window_size=4,
                                   max_position_embeddings=64)),
    Arch("MPNetModel", dict(SMALL)),
    Arch("DebertaModel", dict(SMALL)),
    Arch("XLNetModel", dict(vocab_size=64, d_model=32, n_layer=2, n_head=4, d_inner=48)),
    Arch("BeitModel", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=48, image_size=16, patch_size=4,
                           use_relative_position_bias=True), "pixels"),
    Arch("UMT5Model", dict(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                           num_heads=4), "seq2seq"),
    Arch("WhisperModel", dict(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2,
                              encoder_attention_heads=4, decoder_attention_heads=4,
                              encoder_ffn_dim=48, decoder_ffn_dim=48, num_mel_bins=8,
                              max_source_positions=8, max_target_positions=16,
                              pad_token_id=0, decoder_start_token_id=1), "audio"),
]


def make(arch: Arch, implementation: str):
    import transformers

    cls = getattr(transformers, arch.name)
    config = cls.config_class(**arch.config)
    config._attn_implementation = implementation
    torch.manual_seed(0)
    return cls(config).eval()


def inputs(arch: Arch) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    if arch.inputs == "pixels":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=gen)}
    if arch.inputs == "audio":
        return {"input_features": torch.randn(2, 8, 16, generator=gen),
                "decoder_input_ids": torch.randint(2, 64, (2, 5), generator=gen)}
    ids = torch.randint(2, 64, (2, 7), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # right padding on the second sample
    found = {"input_ids": ids, "attention_mask": mask}
    if arch.inputs == "seq2seq":
        found["decoder_input_ids"] = ids[:, :5]
    return found


def reference(model, arch: Arch, given: dict) -> list[tuple[str, torch.Tensor]]:
    """(kind, attention) in call order: encoder, then per decoder layer self and cross."""
    out = model(**given, output_attentions=True)
    if hasattr(out, "cross_attentions") and out.cross_attentions is not None and \
            getattr(out, "encoder_attentions", None) is not None:
        found = [("self", a) for a in out.encoder_attentions]
        for s, c in zip(out.decoder_attentions, out.cross_attentions):
            found += [("self", s), ("cross", c)]
        return found
    return [("self", a) for a in out.attentions]
