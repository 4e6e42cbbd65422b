"""Text workflows: decode a sentence with an encoder-decoder (or encode it with an
encoder-only model) while capturing attention, then draw token-labelled figures and
flag warning signs. Entry point: :func:`attnscope.translate`; the model protocol is in
:mod:`attnscope.text.protocol`."""

from __future__ import annotations

from attnscope.text.protocol import Seq2SeqModel, TextEncoder, TextModelError
from attnscope.text.run import TextResult, translate

__all__ = ["Seq2SeqModel", "TextEncoder", "TextModelError", "TextResult", "translate"]
