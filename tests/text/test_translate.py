"""``attnscope translate`` end to end on models that are not the zoo's: the protocol
model of tests/text/models.py and tiny Hugging Face Marian/BART/T5/BERT directories.
Captured maps are checked against a teacher-forced pass computed another way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import attnscope
from attnscope.cli import main
from attnscope.text.decoding import decode_example
from tests.text.models import TinyTranslator

SENTENCE = "der hund sieht die katze"
PER_EXAMPLE = {"cross_attention_layer1.png", "cross_attention_multihead_layer1.png",
               "self_attention_layer1.png", "encoder_self_attention_layer2.png",
               "diagnostics.json", "diagnostics.txt"}


def png_ok(path) -> None:
    from matplotlib.image import imread

    img = imread(path)
    assert img.shape[0] > 150 and img.shape[1] > 150 and img[..., :3].std() > 0.05


@torch.no_grad()
def teacher_forced(model, src_ids, target_ids):
    tgt = torch.tensor([[model.bos_id, *target_ids]])
    memory = model.encode(torch.tensor([src_ids]))
    with attnscope.capture(model) as rec:
        model.decode(tgt[:, :-1], memory)
    return {m.module: m.weights[0] for m in rec.maps}


@pytest.mark.parametrize("beam", [1, 3])
def test_decoded_maps_match_one_teacher_forced_pass(beam):
    model = TinyTranslator(seed=1).eval()
    ids = model.source_ids(SENTENCE)
    ex = decode_example(model, ids, max_length=7, beam=beam)
    truth = teacher_forced(model, ids, ex.target_ids)
    assert ex.modules["cross"] == ["decoder_stack.0.src_attn", "decoder_stack.1.src_attn"]
    assert ex.modules["decoder_self"] == ["decoder_stack.0.masked_attention",
                                          "decoder_stack.1.masked_attention"]
    assert len(ex.encoder_self) == 3 and ex.encoder_self[0].shape == (3, 5, 5)
    n = len(ex.target_ids)
    for name, got in zip(ex.modules["cross"], ex.cross):
        assert got.shape == (3, n, 5)
        torch.testing.assert_close(got, truth[name], atol=1e-5, rtol=1e-4)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), 1).expand(3, n, n)
    for name, got in zip(ex.modules["decoder_self"], ex.decoder_self):
        if beam == 1:  # stitched steps: the future is absent (NaN), not a rounded zero
            assert torch.equal(torch.isnan(got), future)
        torch.testing.assert_close(got[~future], truth[name][~future], atol=1e-5, rtol=1e-4)
    assert ex.search == ("greedy" if beam == 1 else "beam 3")


def test_api_writes_figures_and_diagnostics_per_example(tmp_path):
    lines = []
    results = attnscope.translate(TinyTranslator().eval(), [SENTENCE, "das haus"], tmp_path,
                                  max_length=6, echo=lines.append, dpi=60)
    for i, r in enumerate(results):
        folder = tmp_path / f"example_{i:03d}"
        assert {p.name for p in folder.iterdir()} == PER_EXAMPLE
        for png in folder.glob("*.png"):
            png_ok(png)
        saved = json.loads((folder / "diagnostics.json").read_text())
        assert saved["source_tokens"] == r.source and saved["output_tokens"] == r.output
        assert {d["check"] for d in saved["diagnostics"]} == {"diffuse", "positional",
                                                              "repetition"}
        assert saved["layers"] == {"cross": 1, "decoder_self": 1, "encoder_self": 2}
    assert results[1].source == ["das", "haus"]
    assert any("cross-attention (layer 1)" in line for line in lines)
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 2


def test_cli_file_layer_and_data(tmp_path, capsys):
    sentences = tmp_path / "in.txt"
    sentences.write_text(f"{SENTENCE}\n\n das haus \n")
    code = main(["translate", "--model", "tests.text.models:make_model", "--file",
                 str(sentences), "--layer", "0", "--max-length", "5", "--dpi", "50", "--out",
                 str(tmp_path / "a")])
    assert code == 0
    files = {p.name for p in (tmp_path / "a" / "example_001").iterdir()}
    assert "cross_attention_layer0.png" in files and "self_attention_layer0.png" in files
    assert "encoder_self_attention_layer0.png" in files
    code = main(["translate", "-m", "tests.text.models:make_model", "--data",
                 "tests.text.models:make_data", "--num-examples", "2", "-o",
                 str(tmp_path / "b"), "--max-length", "4", "--dpi", "50", "--show"])
    assert code == 0
    assert "--show: no display" in " ".join(capsys.readouterr().out.split())  # Agg in tests
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert [s["source_tokens"] for s in summary] == [
        ["der", "hund", "sieht", "die", "katze", "</s>"], ["das", "haus", "</s>"]]


@pytest.mark.parametrize("argv, message", [
    (["-m", "tests.text.models:make_model", "-i", SENTENCE, "--layer", "3"],
     "layer 3 is out of range for every attention family (layers: decoder cross-attention "
     "2, decoder self-attention 2, encoder self-attention 3)"),
    (["-m", "tests.text.models:make_no_attention", "-i", SENTENCE],
     "NoAttention.encode and decode ran, but computed no attention attnscope recognises "
     "(its modules: Embedding, GRU, Linear)"),
    (["-m", "tests.text.models:make_model", "--data", "tests.text.test_translate:no_data"],
     "the data set is empty"),
    (["-m", "tests.text.models:make_model"], "give sentences with --input"),
    (["-m", "tests.text.models:make_model", "--file", "missing.txt"], "does not exist"),
    (["-m", "torch.nn:Identity", "-i", "x"], "Identity lacks bos_id, eos_id, encode, decode"),
    (["-m", "tests.text.models:make_model", "-i", " ".join(["der"] * 40)],
     "input 0 (40 tokens): the model raised IndexError: index out of range"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert main(["translate", *argv, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()


def no_data() -> list:
    return []


def test_layer_is_per_attention_family(tmp_path, capsys):
    """Encoder 3 layers, decoder 2: ``--layer 2`` is the encoder's third, and the decoder
    families say they have no layer 2 instead of refusing the whole run."""
    code = main(["translate", "-m", "tests.text.models:make_model", "-i", "der hund 한국어",
                 "--layer", "2", "--max-length", "3", "--dpi", "40", "-o", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    files = {p.name for p in (tmp_path / "example_000").iterdir()}
    assert "encoder_self_attention_layer2.png" in files
    assert not [f for f in files if f.startswith(("cross_", "self_"))]
    assert "note: decoder cross-attention has 2 layers: no layer 2 to draw" in out
    raw = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert "der hund 한국어" in raw  # UTF-8, not \ud55c escapes
    assert json.loads(raw)[0]["layers"] == {"encoder_self": 2}


def test_more_examples_than_the_data_has_is_said(tmp_path, capsys):
    code = main(["translate", "-m", "tests.text.models:make_model", "--data",
                 "tests.text.models:make_data", "--num-examples", "5", "--max-length", "3",
                 "--dpi", "40", "-o", str(tmp_path)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "--num-examples 5, but the data set has 3: translating 3" in err
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 3


@pytest.mark.parametrize("kind", ["marian", "bart", "t5"])
def test_hugging_face_seq2seq_directory(tmp_path, kind):
    pytest.importorskip("transformers")
    from tests.text.hf_models import save_model

    folder = tmp_path / kind
    save_model(kind, folder)
    code = main(["translate", "-m", str(folder), "-i", SENTENCE, "--max-length", "5", "--dpi", "60",
                 "-o", str(tmp_path / "out")])
    assert code == 0
    ex_dir = tmp_path / "out" / "example_000"
    assert {p.name for p in ex_dir.iterdir()} == PER_EXAMPLE
    for png in ex_dir.glob("*.png"):
        png_ok(png)
    saved = json.loads((ex_dir / "diagnostics.json").read_text())
    assert saved["source_tokens"] == SENTENCE.split() + ["</s>"]  # from the tokenizer

    # ground truth another way: the eager implementation's own attention outputs
    import transformers as tf

    from attnscope.cli.loading import load_tokenizer

    eager = tf.AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager").eval()
    wrapped = attnscope.text.hf.wrap_hf(eager, load_tokenizer(folder))
    ids = wrapped.source_ids(SENTENCE)
    ex = decode_example(wrapped, ids, max_length=5)
    with torch.no_grad():
        ref = eager(input_ids=torch.tensor([ids]), output_attentions=True,
                    decoder_input_ids=torch.tensor([[wrapped.bos_id, *ex.target_ids[:-1]]]))
    for got, want in zip(ex.cross, ref.cross_attentions):
        torch.testing.assert_close(got, want[0], atol=1e-5, rtol=1e-4)
    n = len(ex.target_ids)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), 1).expand(ex.decoder_self[0].shape)
    for got, want in zip(ex.decoder_self, ref.decoder_attentions):
        torch.testing.assert_close(got[~future], want[0][~future], atol=1e-5, rtol=1e-4)
    for got, want in zip(ex.encoder_self, ref.encoder_attentions):
        torch.testing.assert_close(got, want[0], atol=1e-5, rtol=1e-4)


def test_encoder_only_hugging_face_model(tmp_path):
    tf = pytest.importorskip("transformers")
    from tests.text.hf_models import save_tokenizer
    from tests.text.models import WORDS

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=32)
    tf.BertModel(config).save_pretrained(tmp_path / "bert")
    save_tokenizer(tmp_path / "bert")
    code = main(["text", "-m", str(tmp_path / "bert"), "-i", SENTENCE, "--layer", "-2",
                 "--dpi", "60", "-o", str(tmp_path / "out")])
    assert code == 0
    names = {p.name for p in (tmp_path / "out" / "example_000").iterdir()}
    assert names == {"self_attention_layer0.png", "self_attention_multihead_layer0.png",
                     "diagnostics.json", "diagnostics.txt"}
    saved = json.loads((tmp_path / "out" / "example_000" / "diagnostics.json").read_text())
    assert saved["output_tokens"] == [] and {d["check"] for d in saved["diagnostics"]} == {
        "diffuse", "positional"}


def test_zoo_translator_speaks_the_same_protocol(tmp_path):
    from attnscope.demos.families.translation import Translator

    model = Translator().eval()
    assert isinstance(model, attnscope.Seq2SeqModel)
    r = attnscope.translate(model, ["neko ga ringo wo taberu"], tmp_path, max_length=4, dpi=50)
    assert r[0].source == ["neko", "ga", "ringo", "wo", "taberu"]
    assert (tmp_path / "example_000" / "cross_attention_multihead_layer1.png").is_file()
    with pytest.raises(attnscope.AttnscopeError, match="outside the demo vocabulary"):
        attnscope.translate(model, ["hello"], tmp_path)


def test_protocol_violations_are_named():
    with pytest.raises(attnscope.AttnscopeError, match="lacks .*decode"):
        attnscope.translate(torch.nn.Linear(2, 2), ["x"], "unused")

    class BadLogits(TinyTranslator):
        def decode(self, tgt, memory):
            return super().decode(tgt, memory)[:, -1]

    with pytest.raises(attnscope.AttnscopeError, match="logits .batch, target, vocab"):
        decode_example(BadLogits().eval(), [4, 5])
    assert np.isfinite(0.0)


def test_half_protocol_is_named_not_read_as_an_encoder():
    class NoBos(TinyTranslator):
        bos_id = property(lambda self: (_ for _ in ()).throw(AttributeError("bos_id")))

    with pytest.raises(attnscope.AttnscopeError, match="NoBos lacks bos_id"):
        attnscope.translate(NoBos().eval(), ["der hund"], "unused")
