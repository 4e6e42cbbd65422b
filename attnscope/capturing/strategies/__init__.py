"""Built-in capture strategies; importing this package registers them."""

from attnscope.capturing.strategies import bigbird, logsumexp, mha, pyg, returns, sdpa, softmax

__all__ = ["bigbird", "logsumexp", "mha", "pyg", "returns", "sdpa", "softmax"]
