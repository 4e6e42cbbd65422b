"""Built-in capture strategies; importing this package registers them."""

from attnscope.capturing.strategies import mha, pyg, returns, sdpa, softmax

__all__ = ["mha", "pyg", "returns", "sdpa", "softmax"]
