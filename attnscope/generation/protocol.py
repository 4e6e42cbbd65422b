"""What ``attnscope generate`` asks of a decoder-only language model.

Example (a nanoGPT-style model that keeps its own cache):
    >>> class TinyGPT(nn.Module):
    ...     context_length = 256                 # most positions the model can take
    ...     eos_id = None                        # stop token, or None
    ...     def step(self, ids, cache):          # (batch, new) ids, None or the cache
    ...         ...                              # -> (logits (batch, new, vocab), cache)
    ...     def encode(self, text): ...          # optional: "abc" -> [1, 2, 3]
    ...     def token_labels(self, ids): ...     # optional: [1, 2, 3] -> ["a", "b", "c"]
    >>> attnscope.generate(TinyGPT(), ["abc"], max_new_tokens=20, out="gen")

``step`` runs the new tokens with the cache of the earlier ones and returns the logits of
every new position and the grown cache; attnscope calls it once on the prompt (the
prefill) and once per generated token. Hugging Face causal LMs are adapted by
:class:`HFCausalLM`. Left out on purpose: batched prompts with padding (each prompt is
decoded on its own, so no pad token ever enters a map) and beam search.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from attnscope.errors import AttnscopeError


class GenerationError(AttnscopeError):
    """A model, prompt or option the generate workflow cannot use; one line says why."""


@runtime_checkable
class CausalLM(Protocol):
    """A decoder-only LM driven one step at a time (see the module docstring)."""

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """``(batch, new)`` ids and the cache (None at first) -> ``(batch, new, vocab)``
        logits and the cache that includes the new tokens."""


class HFCausalLM(nn.Module):
    """A Hugging Face ``*ForCausalLM`` and its tokenizer in the :class:`CausalLM` shape.

    The model keeps its default attention (sdpa): attnscope recomputes the probabilities
    from the same queries, keys and masks, so nothing needs ``attn_implementation="eager"``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None) -> None:
        super().__init__()
        config = getattr(model, "config", None)
        if config is None or getattr(config, "is_encoder_decoder", False):
            raise GenerationError(f"{type(model).__name__} is not a decoder-only language "
                                  "model; use `attnscope translate` for encoder-decoders")
        if not callable(getattr(model, "get_output_embeddings", None)) \
                or model.get_output_embeddings() is None:
            raise GenerationError(f"{type(model).__name__} has no language-model head; load "
                                  "it as a causal LM (AutoModelForCausalLM)")
        self.model = model
        self.tokenizer = tokenizer
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = eos if eos is not None else getattr(config, "eos_token_id", None)
        self.eos_id = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        self.context_length = _context_length(config)

    @property
    def module(self) -> nn.Module:
        """What attnscope captures on: module names read as in the user's own model."""
        return self.model

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        out = self.model(input_ids=ids, use_cache=True, **{self._cache_arg: cache})
        return out.logits, getattr(out, self._cache_arg, None)

    @property
    def _cache_arg(self) -> str:
        """``cache`` in recent transformers, ``past_key_values`` before it."""
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise GenerationError("a text prompt needs the model's tokenizer (the model "
                                  "directory has none); pass token ids or --tokenizer")
        return [int(i) for i in self.tokenizer(text)["input_ids"]]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        if self.tokenizer is None:
            return [str(int(i)) for i in ids]
        return [_readable(self.tokenizer, int(i)) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        if self.tokenizer is None:
            return " ".join(str(int(i)) for i in ids)
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))


def _context_length(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _readable(tokenizer: Any, i: int) -> str:
    """The token as text (``Ġcat`` -> `` cat``); special tokens keep their name."""
    piece = tokenizer.convert_ids_to_tokens(i)
    if piece in getattr(tokenizer, "all_special_tokens", ()):
        return str(piece)
    text = tokenizer.convert_tokens_to_string([piece])
    return text if text.strip() else str(piece)


def as_causal_lm(model: Any, tokenizer: Any = None) -> Any:
    """The model in the :class:`CausalLM` shape, or a one-line error saying what is missing."""
    if isinstance(model, HFCausalLM) or (isinstance(model, CausalLM)
                                         and isinstance(model, nn.Module)):
        return model
    if isinstance(model, nn.Module) and getattr(model, "config", None) is not None:
        return HFCausalLM(model, tokenizer)
    raise GenerationError(f"{type(model).__name__} is neither a Hugging Face causal LM nor a "
                          "module with step(ids, cache) -> (logits, cache); see "
                          "attnscope.generation.protocol")


def capture_target(lm: Any) -> nn.Module:
    """The module whose attention is captured (the HF model inside the adapter)."""
    return getattr(lm, "module", lm) if isinstance(lm, HFCausalLM) else lm


def prompt_ids(lm: Any, prompt: str | Sequence[int], index: int) -> list[int]:
    """Token ids of one prompt (text through the model's tokenizer, or ids as given)."""
    if isinstance(prompt, str):
        encode = getattr(lm, "encode", None)
        if encode is None:
            raise GenerationError(f"prompt {index} is text but {type(lm).__name__} has no "
                                  "encode(text); pass token ids or a tokenizer")
        ids = [int(i) for i in encode(prompt)]
    else:
        ids = [int(i) for i in prompt]
    if not ids:
        raise GenerationError(f"prompt {index} ({prompt!r}) has no tokens")
    return ids


def labels_of(lm: Any, ids: Sequence[int]) -> list[str]:
    """A label per token (the model's ``token_labels`` or the ids themselves)."""
    label = getattr(lm, "token_labels", None)
    return [str(t) for t in label(list(ids))] if label is not None else [str(i) for i in ids]
