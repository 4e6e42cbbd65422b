"""Fonts for labels in any script: a glyph-coverage fallback list for matplotlib, and one
line naming the font package to install when a glyph is still missing.

matplotlib (>= 3.6) draws each glyph with the first family of ``font.family`` that has
it. Its default list stops at DejaVu Sans (Latin, Greek, Cyrillic, Arabic, Hebrew), so a
Korean token is an empty box. attnscope appends the Noto families (and Symbola for
emoji) that the machine has: ``make`` installs Debian's ``fonts-noto-core``,
``fonts-noto-cjk`` and ``fonts-symbola`` (``fonts-noto-color-emoji`` is for the viewer's
browser: matplotlib cannot draw colour bitmap fonts). Font files installed after
matplotlib built its font cache are added by path, so no cache has to be deleted.

Left out on purpose: text shaping. matplotlib lays glyphs out one by one, so Arabic is
drawn unjoined and Devanagari without conjuncts; the letters are there, not boxes.
The list is set only while ``font.family`` is matplotlib's default: a user's own choice
of font wins.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

log = logging.getLogger("attnscope.plot")

# (font file, Debian package that ships it), tried in this order for each glyph
FALLBACK_FILES = (
    ("NotoSans-Regular.ttf", "fonts-noto-core"),
    ("NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    ("NotoSansArabic-Regular.ttf", "fonts-noto-core"),
    ("NotoSansHebrew-Regular.ttf", "fonts-noto-core"),
    ("NotoSansDevanagari-Regular.ttf", "fonts-noto-core"),
    ("NotoSansBengali-Regular.ttf", "fonts-noto-core"),
    ("NotoSansTamil-Regular.ttf", "fonts-noto-core"),
    ("NotoSansThai-Regular.ttf", "fonts-noto-core"),
    ("NotoSansGeorgian-Regular.ttf", "fonts-noto-core"),
    ("NotoSansArmenian-Regular.ttf", "fonts-noto-core"),
    ("NotoSansEthiopic-Regular.ttf", "fonts-noto-core"),
    ("NotoSansSymbols-Regular.ttf", "fonts-noto-core"),
    ("NotoSansSymbols2-Regular.ttf", "fonts-noto-core"),
    ("Symbola_hint.ttf", "fonts-symbola"),
    ("Symbola.ttf", "fonts-symbola"),
)
_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")
_told: set[str] = set()


@cache
def fallback_families() -> tuple[str, ...]:
    """Families of the fallback fonts found on this machine, registered with matplotlib
    (by path, when its font cache predates them)."""
    from matplotlib import font_manager

    wanted = {name: i for i, (name, _) in enumerate(FALLBACK_FILES)}
    found: dict[int, str] = {}
    for path in font_manager.findSystemFonts():
        i = wanted.get(Path(path).name)
        if i is not None and i not in found:
            found[i] = path
    manager = font_manager.fontManager
    known = {Path(f.fname).resolve(): f.name for f in manager.ttflist}
    families: list[str] = []
    for i in sorted(found):
        path = Path(found[i]).resolve()
        if path not in known:
            try:
                manager.addfont(str(path))
            except (OSError, RuntimeError, ValueError):  # unreadable font file: skip it
                continue
            known = {Path(f.fname).resolve(): f.name for f in manager.ttflist}
        name = known.get(path)
        if name and name not in families:
            families.append(name)
    return tuple(families)


def use_fallback_fonts() -> None:
    """Append the fallback families to matplotlib's default ``font.family`` (once; a
    family the user chose is left alone)."""
    import matplotlib

    family = matplotlib.rcParams["font.family"]
    if list(family) != ["sans-serif"]:
        return
    extra = [f for f in fallback_families() if f not in family]
    if extra:
        first = matplotlib.rcParams["font.sans-serif"][0]
        matplotlib.rcParams["font.family"] = [first, *extra]
        logging.getLogger("matplotlib.font_manager").addFilter(_no_weight_chatter)


def _no_weight_chatter(record: logging.LogRecord) -> bool:
    """Drop "Failed to find font weight bold for <fallback>": a bold title asks every
    family of the list, and a fallback drawn in its regular weight is fine."""
    text = record.getMessage()
    return not (text.startswith("findfont: Failed to find font weight")
                and any(f" for {name}," in text for name in fallback_families()))


@contextmanager
def glyph_check() -> Iterator[None]:
    """Collect matplotlib's per-glyph "missing from font" warnings while drawing and log
    one line per missing font package instead (once per process)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    missing: dict[str, list[str]] = {}
    for w in caught:
        match = _GLYPH.search(str(w.message))
        if match is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        char = chr(int(match.group(1)))
        missing.setdefault(font_package(char), []).append(char)
    for package, chars in missing.items():
        if package in _told:
            continue
        _told.add(package)
        sample = "".join(dict.fromkeys(chars))[:8]
        log.warning("labels use characters no installed font has (%s, e.g. %r): install "
                    "Debian's %s (`make fonts`), or a font that covers them", _script(chars[0]),
                    sample, package)


def font_package(char: str) -> str:
    """The Debian package with a font for ``char``."""
    name = unicodedata.name(char, "")
    if name.startswith(("HANGUL", "CJK", "HIRAGANA", "KATAKANA", "BOPOMOFO", "IDEOGRAPHIC",
                        "HALFWIDTH", "FULLWIDTH")):
        return "fonts-noto-cjk"
    if ord(char) >= 0x1F000 or unicodedata.category(char) == "So":
        return "fonts-symbola"
    return "fonts-noto-core"


def _script(char: str) -> str:
    name = unicodedata.name(char, "unnamed character")
    return name.split()[0].title()
