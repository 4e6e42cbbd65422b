"""Tiny random-weight Hugging Face seq2seq directories (Marian, BART, T5) with a
word-level tokenizer built offline by the ``tokenizers`` library."""

from __future__ import annotations

from pathlib import Path

from tests.text.models import WORDS


def save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                            eos_token="</s>", bos_token="<s>").save_pretrained(folder)


def save_model(kind: str, folder: Path, seed: int = 0):
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    n = len(WORDS)
    common = dict(vocab_size=n, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)
    if kind == "t5":
        config = tf.T5Config(d_model=16, d_kv=8, d_ff=32, num_layers=3, num_decoder_layers=2,
                             num_heads=2, **common)
        model = tf.T5ForConditionalGeneration(config)
    else:
        cls, mcls = {"marian": (tf.MarianConfig, tf.MarianMTModel),
                     "bart": (tf.BartConfig, tf.BartForConditionalGeneration)}[kind]
        config = cls(d_model=16, encoder_layers=3, decoder_layers=2, encoder_attention_heads=2,
                     decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32,
                     max_position_embeddings=64, bos_token_id=1, forced_eos_token_id=None,
                     **common)
        model = mcls(config)
    model.generation_config.forced_bos_token_id = None
    model.eval().save_pretrained(folder)
    save_tokenizer(folder)
    return model
