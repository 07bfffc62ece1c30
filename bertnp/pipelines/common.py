"""What the pipelines share: loading a checkpoint of the right architecture, tokenizing with offsets and
overflowing windows, running encodings in length-sorted batches, and decoding ids back to text."""

from __future__ import annotations

import os

import numpy as np

from ..bert import Bert, load
from ..errors import InputError, TokenizerError
from ..tokenizer import _read_json, _token, pad, rust_call

# BERT's special tokens and their RoBERTa-style names (RoBERTa, XLM-R, CamemBERT), for folders that name neither
ROBERTA_SPECIALS = {"[MASK]": "<mask>", "[CLS]": "<s>", "[UNK]": "<unk>", "[SEP]": "</s>", "[PAD]": "<pad>"}


def load_for(model, architecture: str, pipeline: str, backend: str | None = None) -> Bert:
    """A Bert (given, or loaded from a folder or hub id) whose head is `architecture`, with a tokenizer."""
    bert = model if isinstance(model, Bert) else load(model, backend=backend)
    if bert.architecture != architecture:
        raise InputError(f"{pipeline} needs a {architecture} checkpoint; {bert.folder or 'this model'} is a "
                         f"{bert.architecture} (config.json's architectures and the tensors present decide)")
    if bert.tokenizer is None:
        raise TokenizerError(bert._tokenizer_error or f"{pipeline} needs the checkpoint's tokenizer")
    return bert


def encode(bert: Bert, text: str, pair: str | None, max_length: int, strategy: str, stride: int = 0,
           overflow: bool = False) -> list:
    """One text (or pair) -> tokenizers Encodings with character offsets: the first window of at most
    max_length tokens, and with overflow=True every further window, consecutive windows sharing `stride`
    tokens (transformers' return_overflowing_tokens). strategy: longest_first, only_first or only_second."""
    tokenizer = bert.tokenizer
    with tokenizer._lock:  # truncation is state on the Rust tokenizer, shared with Tokenizer.encode_each
        tokenizer.backend.enable_truncation(max_length, stride=stride, strategy=strategy)
        tokenizer.backend.no_padding()
        first = rust_call(lambda: tokenizer.backend.encode(text, pair), tokenizer.source, "could not tokenize")
    return [first, *first.overflowing] if overflow else [first]


def run_encodings(bert: Bert, encodings: list, pick, batch_size: int = 32, heads: bool = True) -> list:
    """Every encoding through the model (its head too, unless heads=False), in length-sorted padded
    batches; returns pick's results in input order.

    pick(out, row, n, i) takes what is needed for encodings[i] from row `row` of the batch's output, whose
    first n positions are that encoding's tokens.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: expected a positive integer")
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    results = [None] * len(encodings)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        enc = pad([(np.asarray(encodings[i].ids), bert.tokenizer.type_ids(encodings[i])) for i in rows],
                  bert.tokenizer.pad_id)
        out = bert(**enc, heads=heads)
        for j, i in enumerate(rows):
            results[i] = pick(out, j, len(encodings[i].ids), i)
    return results


def host(array):
    """A NumPy array, from NumPy or from CuPy (a model loaded with keep_on_device=True)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array


def softmax(logits):
    """Softmax over the last axis, as the transformers pipelines compute it in NumPy."""
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted_exp = np.exp(logits - maxes)
    return shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)


def texts_of(texts, name: str = "texts") -> tuple[list, bool]:
    """A string or a list of strings -> (list, whether a single string was given)."""
    if isinstance(texts, str):
        return [texts], True
    try:
        items = list(texts)
    except TypeError:
        raise InputError(f"{name} must be a string or a list of strings, got {type(texts).__name__}") from None
    if not items:
        raise InputError(f"{name} is empty: give at least one text")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InputError(f"{name}[{i}] is {item!r}: expected a string")
    return items, False


def positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}={value!r}: expected a positive integer")
    return int(value)


class Decoder:
    """transformers' convert_tokens_to_string and decode for a tokenizer.json: the Rust decoder, then
    clean_up_tokenization when tokenizer_config.json asks for it (transformers' default: no)."""

    def __init__(self, bert: Bert):
        self.backend = bert.tokenizer.backend
        settings = _read_json(os.path.join(bert.folder, "tokenizer_config.json")) if bert.folder else {}
        self.clean_up = bool(settings.get("clean_up_tokenization_spaces", False))
        self.settings = settings
        self.special_tokens = _read_json(os.path.join(bert.folder, "special_tokens_map.json")) if bert.folder else {}

    def special_id(self, name: str, default: str) -> int | None:
        """The id of a special token (mask_token, unk_token, ...) as tokenizer_config.json or
        special_tokens_map.json name it; else of BERT's default, or RoBERTa's (<mask>, <s>, <unk>)."""
        named = _token(self.settings.get(name), None) or _token(self.special_tokens.get(name), None)
        candidates = [named] if named else [default, ROBERTA_SPECIALS.get(default)]
        return next((self.backend.token_to_id(t) for t in candidates
                     if t is not None and self.backend.token_to_id(t) is not None), None)

    def tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self.backend.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        text = self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self.clean_up else text


def clean_up_tokenization(text: str) -> str:
    """transformers' PreTrainedTokenizerBase.clean_up_tokenization."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text
