"""A generation stored in query/key form: one causal q/k segment per layer, read back
equal to the float32 probability store, O(L * dim) on disk; layers whose cache drops
keys stay probabilities with a note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import attnscope
from attnscope.generation import generate
from tests.generation.models import hf_causal_lm, tiny_gpt

pytest.importorskip("transformers")

PROMPT = [5, 1, 7, 2, 9, 3, 11, 4]


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _both(model, tmp_path: Path, new: int):
    kw = dict(max_new_tokens=new, view=False, dpi=20)
    [p] = generate(model, [PROMPT], out=tmp_path / "p", **kw)
    [q] = generate(model, [PROMPT], out=tmp_path / "q", form="qk", **kw)
    assert p.ids == q.ids
    return (attnscope.open_store(tmp_path / "p/prompt_000/store"),
            attnscope.open_store(tmp_path / "q/prompt_000/store"), len(q.ids))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "tiny"])
def test_qk_generation_store_equals_probability_store(tmp_path, arch):
    model = tiny_gpt() if arch == "tiny" else hf_causal_lm(arch)
    p, q, length = _both(model, tmp_path, 40)
    assert q.modules == p.modules and len(q.modules) == 2
    qk_bytes = probs_bytes = 0
    for name in q.modules:
        [seg] = q.segments(name, "generation")  # one segment for the whole sequence
        assert (seg.path / "q").exists() and seg.shape == (1, 4, length, length)
        assert "note" not in q.module_info(name)
        a, b = p.read(name), q.read(name)
        assert a.shape == b.shape == (1, 4, length, length)
        assert np.abs(a - b).max() <= 1e-5
        assert np.allclose(b.sum(-1), 1.0, atol=1e-5)
        qk_bytes += _bytes(seg.path)
        probs_bytes += _bytes(p.segments(name, "generation")[0].path)
    # queries (L rows) and keys (L rows) per layer, not L x L probabilities
    assert qk_bytes < 0.6 * probs_bytes
    labels = q.labels("generation")
    assert labels["prompt_length"] == len(PROMPT) and len(labels["tokens"]) == length


def test_store_grows_linearly_with_the_sequence(tmp_path):
    model = hf_causal_lm("llama")
    sizes = {}
    for new in (8, 48):
        [r] = generate(model, [PROMPT], out=tmp_path / str(new), max_new_tokens=new,
                       form="qk", view=False, dpi=20)
        q = attnscope.open_store(tmp_path / str(new) / "prompt_000/store")
        seg = q.segments(q.modules[0], "generation")[0].path
        sizes[len(r.ids)] = _bytes(seg / "q") + _bytes(seg / "k")
    (short, a), (long, b) = sorted(sizes.items())
    assert b / a < 1.5 * long / short  # O(L), far from (long / short) ** 2


def test_cache_dropping_keys_stays_probabilities_with_a_note(tmp_path):
    model = hf_causal_lm("gemma3")  # local layers (window 4) and global layers
    with pytest.warns(UserWarning, match="sliding window"):
        p, q, length = _both(model, tmp_path, 6)
    for i, name in enumerate(q.modules):
        [seg] = q.segments(name, "generation")
        info = q.module_info(name)
        if i % 2 == 0:  # local: keys the window hid
            assert not (seg.path / "q").exists()
            assert info["note"].startswith("not one causal q/k segment: a mask that hides")
        else:
            assert (seg.path / "q").exists() and "note" not in info
        assert np.abs(p.read(name) - q.read(name)).max() <= 1e-5


def test_bad_form_is_one_line(tmp_path):
    with pytest.raises(attnscope.AttnscopeError, match="form='dense'; use 'probs'"):
        generate(tiny_gpt(), [[1, 2]], max_new_tokens=1, form="dense")


def test_cli_form_qk(tmp_path, capsys):
    from attnscope.cli import main

    argv = ["generate", "-m", "tests.generation.models:tiny_gpt", "-i", "ㄱㄴㄷㄹ", "-n", "3",
            "--dpi", "30"]
    assert main([*argv, "--form", "qk", "-o", str(tmp_path / "o")]) == 0, capsys.readouterr()
    store = attnscope.open_store(tmp_path / "o/prompt_000/store")
    assert all((store.segments(n, "generation")[0].path / "q").exists() for n in store.modules)
    capsys.readouterr()
    assert main([*argv, "--form", "dense", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "form='dense'" in err
    assert not (tmp_path / "bad").exists()
