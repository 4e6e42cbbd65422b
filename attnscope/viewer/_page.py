"""The page itself: inlined JS/CSS, escaped metadata, base64 data, atomic saving.

Static files are read once from the package with ``importlib.resources``. Metadata is
JSON inside ``<script type="application/json">`` with ``<``, ``>``, ``&`` and the JS line
separators escaped, so no label can close the script element; the page sets every label
with ``textContent``, never as markup.
"""

from __future__ import annotations

import functools
import html
import json
import os
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from attnscope._files import write_text

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
            "\u2029": "\\u2029"}

# shown where the page's script cannot run (an untrusted notebook); the script replaces it
NO_SCRIPT = ("This attention view needs JavaScript: in Jupyter, trust the notebook (File \u2192 "
             "Trust Notebook) and run the cell again, or open the saved HTML file.")

# The saved page may not load anything: no network, no frames, no plugins.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; connect-src data: blob:")


@functools.cache
def static(name: str) -> str:
    return resources.files("attnscope.viewer").joinpath("static", name).read_text("utf-8")


# the page's script, split by job; core first, boot (which starts a view) last
SCRIPTS = ("core.js", "colour.js", "layout.js", "overview.js", "matrix.js", "lines.js",
           "text.js", "graph.js", "qk.js", "long.js", "boot.js")


@functools.cache
def script() -> str:
    return "\n".join(static(name) for name in SCRIPTS)


def script_json(obj: Any) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in _ESCAPES.items():
        text = text.replace(ch, esc)
    return text


class HTMLView:
    """A rendered viewer page: shows inline in Jupyter, ``save(path)`` writes a file.

    Example:
        >>> view = attnscope.render_html(rec, tokens=tokens)
        >>> view.save("attention.html")   # opens offline in any browser
        >>> view                          # in a notebook: shown inline
    """

    def __init__(self, meta: dict[str, Any], data: tuple[str, str],
                 title: str = "attnscope") -> None:
        self.id = "attnscope-" + uuid.uuid4().hex[:12]
        self.meta = meta
        self.data = data  # (what the first view needs, the rest)
        self.title = title

    @property
    def nbytes(self) -> int:
        """Size of the embedded data (base64 text)."""
        return len(self.data[0]) + len(self.data[1])

    def fragment(self) -> str:
        """The view as an HTML fragment: style, container, metadata, the first view's
        data, the script (which draws before the rest has loaded), the rest of the data."""
        uid = self.id
        blob = '<script type="application/octet-stream" id="{}-data{}">{}</script>\n'
        return (f'<style>{static("viewer.css")}</style>\n'
                f'<div class="attnscope-view" id="{uid}"><div class="as-nojs">{NO_SCRIPT}</div>'
                '</div>\n'
                f'<script type="application/json" id="{uid}-meta">{script_json(self.meta)}'
                f'</script>\n{blob.format(uid, 0, self.data[0])}'
                f'<script>{script()}\nattnscopeView("{uid}");</script>\n'
                f'{blob.format(uid, 1, self.data[1])}')

    def page(self) -> str:
        """A complete standalone HTML document."""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{html.escape(self.title)}</title></head>\n<body>\n"
                f"{self.fragment()}</body></html>\n")

    def _repr_html_(self) -> str:
        return self.fragment()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (a temporary name, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_text(path, self.page())

    def __repr__(self) -> str:
        n = len(self.meta.get("entries", []))
        return f"HTMLView({n} maps, {self.nbytes / 1e6:.1f} MB of data)"
