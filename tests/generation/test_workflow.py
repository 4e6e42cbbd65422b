"""``attnscope generate`` end to end: a Hugging Face causal-LM directory with its own
tokenizer, and a hand-written model through the protocol."""

from __future__ import annotations

import json

import pytest

from attnscope.cli import main

pytest.importorskip("transformers")

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "고양이", "가",
         "앉았다", "a", "dog"]


def save_llama(folder, context: int = 32, eos: int | None = 2) -> None:
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=context, eos_token_id=eos, bos_token_id=1)
    tf.LlamaForCausalLM(cfg).eval().save_pretrained(folder)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                               eos_token="</s>", bos_token="<s>").save_pretrained(folder)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    save_llama(folder)
    return folder


def test_cli_writes_maps_figures_page_and_store(llama_dir, tmp_path, capsys):
    out = tmp_path / "gen"
    code = main(["generate", "-m", str(llama_dir), "-i", "the cat sat on", "-i",
                 "고양이 가 앉았다", "-n", "4", "--layer", "-2", "--dpi", "50", "-o", str(out)])
    assert code == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "top induction heads" in printed and "prompt 1: 고양이 가 앉았다" in printed
    folder = out / "prompt_001"
    info = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    assert info["tokens"][:3] == ["고양이", "가", "앉았다"]  # UTF-8, not \\u escapes
    assert "고양이" in (folder / "generation.json").read_text(encoding="utf-8")
    assert info["layer"] == 1 and len(info["modules"]) == 3
    for name in ("attention_layer1.png", "attention_multihead_layer1.png", "view.html",
                 "head_stats.csv"):
        assert (folder / name).stat().st_size > 1000, name
    import attnscope

    store = attnscope.open_store(folder / "store")
    w = store.read(store.modules[0], step="generation")
    n = len(info["tokens"])
    assert w.shape == (1, 4, n, n)
    assert abs(w[0, :, -1].sum(-1) - 1).max() < 1e-5  # the last token's row is there
    monkey_cwd = tmp_path / "cwd"
    monkey_cwd.mkdir()
    import os

    here = os.getcwd()
    os.chdir(monkey_cwd)  # stats writes its CSVs into the working directory
    try:
        assert main(["stats", str(folder / "store")]) == 0
    finally:
        os.chdir(here)
    assert "model.layers.2.self_attn" in capsys.readouterr().out
    header = (folder / "head_stats.csv").read_text().splitlines()[0].split(",")
    assert {"prev_token", "induction", "first"} <= set(header)


def test_protocol_model_from_a_factory(tmp_path, capsys):
    code = main(["generate", "-m", "tests.generation.models:tiny_gpt", "-i", "ㄱㄴㄷㄹ",
                 "-n", "3", "--sample", "--seed", "5", "--dpi", "50", "-o", str(tmp_path)])
    assert code == 0, capsys.readouterr()
    info = json.loads((tmp_path / "prompt_000" / "generation.json").read_text("utf-8"))
    assert info["modules"] == ["blocks.0", "blocks.1"] and len(info["tokens"]) == 7


@pytest.mark.parametrize("argv, message", [
    (["-i", "the cat"], "--layer"),
    (["-i", "the cat", "-n", "40"], "context is 32"),
    ([], "give prompts"),
])
def test_bad_input_is_one_line(llama_dir, tmp_path, capsys, argv, message):
    extra = ["--layer", "7"] if message == "--layer" else []
    code = main(["generate", "-m", str(llama_dir), *argv, *extra, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert (message if message != "--layer" else "layer 7 is out of range") in err
    assert len(err.strip().splitlines()) == 1


def test_encoder_decoder_directory_is_refused(tmp_path, capsys):
    from tests.text.hf_models import save_model

    save_model("bart", tmp_path / "bart")
    code = main(["generate", "-m", str(tmp_path / "bart"), "-i", "der hund", "-o",
                 str(tmp_path / "o")])
    assert code == 2 and "attnscope translate" in capsys.readouterr().err
