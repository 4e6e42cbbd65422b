"""Small reference models used by the demo and the tests."""

from attnscope.zoo.tiny import TinyTranslator, build_tiny_translator

__all__ = ["TinyTranslator", "build_tiny_translator"]
