"""Text -> token ids, through Hugging Face's `tokenizers` (the same Rust code transformers' fast tokenizers run).

A checkpoint's tokenizer.json is used as is. Older checkpoints carry only vocab.txt and
tokenizer_config.json; from those we build the same BERT WordPiece pipeline transformers' BertTokenizer
runs (clean text, split CJK characters, lower-case and strip accents when `do_lower_case`).
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from .errors import InputError, TokenizerError

UNBOUNDED = 10**9  # transformers writes int(1e30) as "no limit" into model_max_length


class Tokenizer:
    def __init__(self, backend, model_max_length: int | None, pad_token: str, source: str):
        self.backend = backend  # a tokenizers.Tokenizer
        self.model_max_length = model_max_length
        self.pad_token = pad_token
        self.pad_id = backend.token_to_id(pad_token)
        if self.pad_id is None:
            raise TokenizerError(f"{source}: pad token {pad_token!r} is not in the vocabulary")
        self.source = source
        # truncation and padding are state on the Rust tokenizer: set them and encode under one lock
        self._lock = threading.Lock()

    @classmethod
    def from_folder(cls, folder: str) -> "Tokenizer":
        from tokenizers import Tokenizer as RustTokenizer

        settings = _read_json(os.path.join(folder, "tokenizer_config.json"))
        model_max_length = settings.get("model_max_length")
        if not isinstance(model_max_length, int) or model_max_length >= UNBOUNDED:
            model_max_length = None
        pad_token = _token(settings.get("pad_token"), "[PAD]")
        tokenizer_json = os.path.join(folder, "tokenizer.json")
        vocab_txt = os.path.join(folder, "vocab.txt")
        if os.path.exists(tokenizer_json):
            backend = rust_call(lambda: RustTokenizer.from_file(tokenizer_json), tokenizer_json,
                                "not a valid tokenizers file")
            return cls(backend, model_max_length, pad_token, tokenizer_json)
        if os.path.exists(vocab_txt):
            return cls(_wordpiece_from_vocab(vocab_txt, settings), model_max_length, pad_token, vocab_txt)
        raise TokenizerError(f"{folder}: no tokenizer.json or vocab.txt; pass token ids to the model directly")

    def encode(self, texts, max_length: int) -> dict[str, np.ndarray]:
        """Texts or (text, text) pairs -> int64 [B, T] input_ids, attention_mask, token_type_ids.

        Truncates each to max_length tokens (pairs: longest first, as transformers) and pads to the
        longest in the batch.
        """
        return pad(self.encode_each(texts, max_length), self.pad_id)

    def encode_each(self, texts, max_length: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Texts or pairs -> one (ids, token types) pair of int32 arrays per text, truncated, not padded."""
        items = as_batch(texts)
        with self._lock:
            self.backend.enable_truncation(max_length, strategy="longest_first")
            self.backend.no_padding()
            encodings = rust_call(lambda: self.backend.encode_batch(items), self.source, "could not tokenize")
        return [(np.array(e.ids, np.int32), np.array(e.type_ids, np.int32)) for e in encodings]

    def encode_windows(self, text: str, max_length: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """One long text -> windows of at most max_length tokens, consecutive windows sharing `stride` tokens."""
        specials = self.backend.num_special_tokens_to_add(False)
        if not 0 <= stride < max_length - specials:
            raise InputError(f"stride={stride}: expected 0 <= stride < max_length - {specials} special tokens "
                             f"= {max_length - specials}")
        with self._lock:
            self.backend.enable_truncation(max_length, stride=stride, strategy="longest_first")
            self.backend.no_padding()
            first = rust_call(lambda: self.backend.encode(text), self.source, "could not tokenize")
        return [(np.array(e.ids, np.int32), np.array(e.type_ids, np.int32)) for e in [first, *first.overflowing]]


def pad(sequences: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> dict[str, np.ndarray]:
    """(ids, token types) per text -> int64 [B, T] arrays, right-padded to the longest."""
    T = max(len(ids) for ids, _ in sequences)
    input_ids = np.full((len(sequences), T), pad_id, np.int64)
    token_type_ids = np.zeros((len(sequences), T), np.int64)
    attention_mask = np.zeros((len(sequences), T), np.int64)
    for row, (ids, types) in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        token_type_ids[row, : len(ids)] = types
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def rust_call(fn, source: str, what: str):
    """Run a `tokenizers` call; its errors (a bare Exception, or a Rust panic, which is a BaseException)
    become a TokenizerError naming the file."""
    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise TokenizerError(f"{source}: {what} ({type(e).__name__}: {e})") from None


def as_batch(texts, allow_empty: bool = False) -> list:
    """A text, a list of texts, or a list of (text, text) pairs -> what encode_batch takes. An empty list
    is an InputError unless allow_empty (embed and predict answer it with zero rows)."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, tuple) and len(texts) == 2 and all(isinstance(t, str) for t in texts):
        return [texts]
    try:
        items = list(texts)
    except TypeError:
        raise InputError(f"texts must be a string, a list of strings or of (text, text) pairs, got {type(texts).__name__}") from None
    if not items and not allow_empty:
        raise InputError("texts is empty: give at least one text")
    for i, item in enumerate(items):
        if isinstance(item, str):
            continue
        if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
            items[i] = tuple(item)
            continue
        raise InputError(f"texts[{i}] is {item!r}: expected a string or a (text, text) pair of strings")
    return items


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise TokenizerError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    return data


def _token(value, default: str) -> str:
    """Special tokens appear as strings or as AddedToken dicts {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else default


def _wordpiece_from_vocab(vocab_txt: str, settings: dict):
    """BertTokenizer's pipeline from vocab.txt and tokenizer_config.json, as a tokenizers.Tokenizer."""
    from tokenizers.implementations import BertWordPieceTokenizer

    try:
        with open(vocab_txt, encoding="utf-8") as f:
            vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{vocab_txt}: unreadable vocabulary ({e})") from None
    specials = {name: _token(settings.get(name), default) for name, default in
                (("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("cls_token", "[CLS]"),
                 ("pad_token", "[PAD]"), ("mask_token", "[MASK]"))}
    missing = [token for token in specials.values() if token not in vocab]
    if missing:
        raise TokenizerError(f"{vocab_txt}: special token(s) {', '.join(missing)} are not in the vocabulary")
    wordpiece = BertWordPieceTokenizer(
        vocab,
        **specials,
        clean_text=True,
        handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        strip_accents=settings.get("strip_accents"),
        lowercase=bool(settings.get("do_lower_case", True)),
    )
    return wordpiece._tokenizer
