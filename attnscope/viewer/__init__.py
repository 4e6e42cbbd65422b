"""Interactive viewer: one self-contained, offline HTML page per selection of maps.

Example:
    >>> view = attnscope.render_html(rec, tokens=tokens)
    >>> view.save("attention.html")     # or show ``view`` in a notebook

The page inlines its JS and CSS (``static/``), embeds the weights as zlib-compressed
float16 blobs decoded in the browser, and never makes a network request. Left out on
purpose: a server, live updates from a running capture, and editing of the data.
"""

from __future__ import annotations

from attnscope.viewer._page import HTMLView
from attnscope.viewer._select import ViewTooLargeError, estimate_page
from attnscope.viewer.render import render_html

__all__ = ["HTMLView", "ViewTooLargeError", "estimate_page", "render_html"]
