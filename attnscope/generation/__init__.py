"""Decoder-only language models while they generate: the prefill and every decode step
captured and stitched into one causal (token x token) map per layer and head, exact
against eager attention on the whole sequence. Entry point: :func:`attnscope.generate`;
the model protocol is in :mod:`attnscope.generation.protocol`."""

from __future__ import annotations

from attnscope.generation.protocol import CausalLM, GenerationError, HFCausalLM
from attnscope.generation.run import GenerationResult, generate

__all__ = ["CausalLM", "GenerationError", "GenerationResult", "HFCausalLM", "generate"]
