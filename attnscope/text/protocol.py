"""What ``attnscope translate`` asks of a model: a small protocol any PyTorch
encoder-decoder (or encoder-only text model) can offer in a few lines.

Example:
    >>> class MyTranslator(nn.Module):
    ...     bos_id, eos_id = 1, 2                       # first decoder input; stop token
    ...     def encode(self, src): ...                  # (batch, source) ids -> memory
    ...     def decode(self, tgt, memory): ...          # (batch, target) ids -> logits
    ...     def source_ids(self, text): ...             # "ein Haus" -> [17, 42]
    ...     def source_tokens(self, ids): ...           # [17, 42] -> ["ein", "Haus"]
    ...     def target_tokens(self, ids): ...           # labels of target ids
    >>> attnscope.translate(MyTranslator(), ["ein Haus"], out="figures")

``decode`` gets the whole target prefix and returns logits for every position
``(batch, target, vocab)``; attnscope decodes greedily by calling it once per token, so
each attention module runs once per step and :func:`attnscope.stitch` puts the steps
back together. ``memory`` is whatever ``encode`` returned (a tensor, a tuple ...).
An encoder-only model offers ``encode``, ``source_ids`` and ``source_tokens``.
Hugging Face models are adapted by :mod:`attnscope.text.hf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from attnscope.errors import AttnscopeError

SEQ2SEQ = ("bos_id", "eos_id", "encode", "decode", "source_ids", "source_tokens",
           "target_tokens")
ENCODER = ("encode", "source_ids", "source_tokens")


class TextModelError(AttnscopeError):
    """A model that offers neither protocol, or text it cannot encode."""


@runtime_checkable
class TextEncoder(Protocol):
    """An encoder-only text model."""

    def encode(self, src: torch.Tensor) -> Any:
        """``(batch, source)`` token ids -> anything (its attention is what counts)."""

    def source_ids(self, text: str) -> list[int]:
        """Token ids of one sentence, special tokens included."""

    def source_tokens(self, ids: Sequence[int]) -> list[str]:
        """A label per id, for the figures."""


@runtime_checkable
class Seq2SeqModel(TextEncoder, Protocol):
    """An encoder-decoder: a :class:`TextEncoder` that also decodes."""

    bos_id: int  # first decoder input (decoder start token)
    eos_id: int  # generation stops after this token

    def decode(self, tgt: torch.Tensor, memory: Any) -> torch.Tensor:
        """``(batch, target)`` ids and ``encode``'s memory -> ``(batch, target, vocab)``
        logits; position ``t`` predicts token ``t + 1`` (a causal decoder)."""

    def target_tokens(self, ids: Sequence[int]) -> list[str]:
        """A label per target id."""


def as_text_model(model: Any, tokenizer: Any = None) -> TextEncoder:
    """The model itself when it speaks the protocol; Hugging Face models (with their
    tokenizer) wrapped by :func:`attnscope.text.hf.wrap_hf`."""
    if _is_hf(model):
        from attnscope.text.hf import wrap_hf

        if tokenizer is None:
            raise TextModelError(f"{type(model).__name__} is a Hugging Face model: pass its "
                                 "tokenizer (a model directory with tokenizer files)")
        return wrap_hf(model, tokenizer)
    seq2seq = all(hasattr(model, a) for a in SEQ2SEQ)
    # a model with decode but without the rest is a half-done seq2seq, not an encoder
    encoder = not hasattr(model, "decode") and all(hasattr(model, a) for a in ENCODER)
    if seq2seq or encoder:
        return model
    missing = [a for a in SEQ2SEQ if not hasattr(model, a)]
    raise TextModelError(f"{type(model).__name__} lacks {', '.join(missing)}: translate needs "
                         "a Hugging Face model directory or a model with encode/decode, "
                         "bos_id/eos_id and source_ids/source_tokens/target_tokens (see "
                         "attnscope.text.protocol)")


def is_seq2seq(model: Any) -> bool:
    return all(hasattr(model, a) for a in SEQ2SEQ)


def _is_hf(model: Any) -> bool:
    return any(c.__name__ == "PreTrainedModel" for c in type(model).__mro__)
