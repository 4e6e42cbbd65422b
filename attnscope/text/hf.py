"""Hugging Face text models in the :mod:`attnscope.text.protocol` shape: seq2seq models
(Marian, BART, T5 ...) get ``encode``/``decode``, encoder-only ones ``encode``.

The model keeps its default (sdpa) attention: attnscope recomputes the probabilities
from the same inputs, so nothing needs ``attn_implementation="eager"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from attnscope.text.protocol import TextModelError


class HFEncoder(nn.Module):
    """An encoder-only Hugging Face model (BERT, MiniLM ...) and its tokenizer."""

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    def encode(self, src: torch.Tensor) -> Any:
        return self.model(input_ids=src, attention_mask=torch.ones_like(src))

    def source_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text)["input_ids"]
        return list(ids[0] if ids and isinstance(ids[0], list) else ids)

    def source_tokens(self, ids: Sequence[int]) -> list[str]:
        return [str(t) for t in self.tokenizer.convert_ids_to_tokens(list(ids))]


class HFSeq2Seq(HFEncoder):
    """A Hugging Face sequence-to-sequence LM: the decoder start token is ``bos_id``."""

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        if not hasattr(model, "get_encoder") or model.get_output_embeddings() is None:
            raise TextModelError(f"{type(model).__name__} has no language-model head, so it "
                                 "cannot generate text; load it as a sequence-to-sequence LM")
        config, gen = model.config, getattr(model, "generation_config", None)
        start = _first(getattr(gen, "decoder_start_token_id", None),
                       getattr(config, "decoder_start_token_id", None),
                       getattr(config, "pad_token_id", None))
        eos = _first(getattr(gen, "eos_token_id", None), getattr(config, "eos_token_id", None),
                     getattr(tokenizer, "eos_token_id", None))
        if start is None or eos is None:
            raise TextModelError(f"{type(model).__name__}'s config names no decoder start or "
                                 "end-of-sequence token")
        self.bos_id, self.eos_id = int(start), int(eos)

    def encode(self, src: torch.Tensor) -> Any:
        return self.model.get_encoder()(input_ids=src, attention_mask=torch.ones_like(src))

    def decode(self, tgt: torch.Tensor, memory: Any) -> torch.Tensor:
        return self.model(encoder_outputs=memory, decoder_input_ids=tgt, use_cache=False).logits

    target_tokens = HFEncoder.source_tokens


def wrap_hf(model: nn.Module, tokenizer: Any) -> HFEncoder:
    """The adapter that fits ``model``: seq2seq when its config says encoder-decoder."""
    if getattr(model.config, "is_encoder_decoder", False):
        return HFSeq2Seq(model, tokenizer)
    return HFEncoder(model, tokenizer)


def _first(*values: Any) -> Any:
    for v in values:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return v
    return None
