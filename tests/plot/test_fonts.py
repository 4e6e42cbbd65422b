"""Labels in any script draw as glyphs, not boxes: checked on the pixels."""

from __future__ import annotations

import logging
import warnings

import matplotlib
import numpy as np
import pytest

from attnscope.plot import _fonts, new_figure

NO_FONT_HAS_IT = "\U000f0041"  # supplementary private use: always drawn as the box


def ink(text: str) -> np.ndarray:
    """The label drawn alone, as a boolean ink mask."""
    fig = new_figure((1.2, 0.8), dpi=60, layout=None)
    fig.text(0.5, 0.5, text, size=28, ha="center", va="center")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    return pixels.min(axis=-1) < 128


@pytest.mark.parametrize("first, second", [
    ("한", "국"), ("中", "文"), ("Ж", "Ы"), ("ع", "ب"), ("न", "म"), ("😀", "🐍"),
    ("あ", "カ"), ("ש", "ל"),
])
def test_scripts_draw_real_glyphs(first: str, second: str) -> None:
    tofu = ink(NO_FONT_HAS_IT)
    a, b = ink(first), ink(second)
    assert a.sum() > 20 and b.sum() > 20                 # something is drawn
    assert not np.array_equal(a, tofu) and not np.array_equal(b, tofu)  # not the box
    assert not np.array_equal(a, b)                      # two letters, two shapes


def test_missing_glyphs_give_one_line_naming_the_package(monkeypatch, tmp_path, caplog):
    from attnscope.plot import save_figure

    monkeypatch.setattr(_fonts, "_told", set())
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        fig = new_figure((3, 1), dpi=50)
        ax = fig.add_subplot()
        ax.set_xticks(range(4), ["한국어", "번역", "문장", "토큰"])
        with warnings.catch_warnings(record=True) as raw, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            save_figure(fig, tmp_path / "a.png")
            save_figure(fig, tmp_path / "b.png")          # told once per process
    lines = [r.getMessage() for r in caplog.records if r.name == "attnscope.plot"]
    assert len(lines) == 1 and "fonts-noto-cjk" in lines[0] and "Hangul" in lines[0]
    assert not [w for w in raw if "missing from font" in str(w.message)]
    assert (tmp_path / "a.png").stat().st_size > 0


def test_user_font_choice_is_left_alone() -> None:
    with matplotlib.rc_context({"font.family": ["serif"]}):
        new_figure((1, 1))
        assert list(matplotlib.rcParams["font.family"]) == ["serif"]


def test_package_per_script() -> None:
    assert _fonts.font_package("한") == "fonts-noto-cjk"
    assert _fonts.font_package("😀") == "fonts-symbola"
    assert _fonts.font_package("न") == "fonts-noto-core"
