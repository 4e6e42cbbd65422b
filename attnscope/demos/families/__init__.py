"""One module per demo family, listed here in the order ``attnscope demo --list`` shows."""

NAMES = ("lstm", "translation", "sleep", "convtran", "graph", "text", "induction")
