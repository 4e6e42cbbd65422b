"""Built-in capture strategies; importing this package registers them."""

from attnscope.capture.strategies import mha, pyg, returns, sdpa, softmax

__all__ = ["mha", "pyg", "returns", "sdpa", "softmax"]
