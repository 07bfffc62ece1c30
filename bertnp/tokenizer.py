"""Text -> token ids, through Hugging Face's `tokenizers` (the same Rust code transformers' fast tokenizers run).

A checkpoint's tokenizer.json is used as is, once `inspect_tokenizer_json` has checked it: `tokenizers`
allocates in Rust, and an allocation that fails there aborts the interpreter, which no `except` catches.
Older checkpoints carry only vocab.txt and tokenizer_config.json; from those we build the same BERT
WordPiece pipeline transformers' BertTokenizer runs (clean text, split CJK characters, lower-case and
strip accents when `do_lower_case`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import os
import re
import threading
import unicodedata

import numpy as np

from . import files
from .errors import InputError, TokenizerError

UNBOUNDED = 10**9  # transformers writes int(1e30) as "no limit" into model_max_length
# transformers 5's tokenizer classes whose model_input_names leave token_type_ids out: the model then sees
# token type 0 everywhere, pairs included. Which class a folder has: tokenizer_config.json's tokenizer_class,
# else config.json's model_type (DEFAULT_CLASSES, transformers' TOKENIZER_MAPPING_NAMES).
NO_TOKEN_TYPES = ("AlbertTokenizer", "CamembertTokenizer", "DistilBertTokenizer", "RobertaTokenizer",
                  "XLMRobertaTokenizer")
DEFAULT_CLASSES = {"albert": "AlbertTokenizer", "camembert": "CamembertTokenizer", "roberta": "RobertaTokenizer",
                   "xlm-roberta": "XLMRobertaTokenizer"}


class Tokenizer:
    def __init__(self, backend, model_max_length: int | None, pad_token: str, source: str, token_types: bool = True):
        self.backend = backend  # a tokenizers.Tokenizer
        self.model_max_length = model_max_length
        self.token_types = token_types  # False: token_type_ids are all 0, as transformers' tokenizer gives none
        self.pad_token = pad_token
        self.pad_id = backend.token_to_id(pad_token)
        if self.pad_id is None:
            raise TokenizerError(f"{source}: pad token {files.excerpt(pad_token)} is not in the vocabulary")
        self.source = source
        # truncation and padding are state on the Rust tokenizer: set them and encode under one lock
        self._lock = threading.Lock()

    @classmethod
    def from_folder(cls, folder: str, model_type: str = "bert") -> "Tokenizer":
        """The folder's tokenizer; model_type (config.json's) stands for the tokenizer class when
        tokenizer_config.json names none, as in transformers' AutoTokenizer."""
        from tokenizers import Tokenizer as RustTokenizer

        config_path = os.path.join(folder, "tokenizer_config.json")
        settings = _read_json(config_path)
        model_max_length = _model_max_length(settings.get("model_max_length"), config_path)
        # the pad token as tokenizer_config.json or special_tokens_map.json name it; RoBERTa's folders often
        # name none: then BERT's [PAD], else RoBERTa's <pad>, whichever the vocabulary has
        pad_token = _token(settings.get("pad_token"), None) or \
            _token(_read_json(os.path.join(folder, "special_tokens_map.json")).get("pad_token"), None)
        token_types = _token_types(settings, model_type)
        tokenizer_json = os.path.join(folder, "tokenizer.json")
        vocab_txt = os.path.join(folder, "vocab.txt")
        if os.path.exists(tokenizer_json):
            text = files.read_text(tokenizer_json, "tokenizer.json", TokenizerError)
            spec = files.parse_json(text, tokenizer_json, TokenizerError, what="not a valid tokenizers file, not JSON")
            inspect_tokenizer_json(spec, tokenizer_json)
            backend = rust_call(lambda: RustTokenizer.from_str(text), tokenizer_json, "not a valid tokenizers file")
            # As transformers does for each call: the file's padding and truncation are not bertnp's.
            backend.no_padding()
            backend.no_truncation()
            if pad_token is None:
                pad_token = "<pad>" if backend.token_to_id("[PAD]") is None and backend.token_to_id("<pad>") is not None \
                    else "[PAD]"
            return cls(backend, model_max_length, pad_token, tokenizer_json, token_types)
        if os.path.exists(vocab_txt):
            return cls(_wordpiece_from_vocab(vocab_txt, settings), model_max_length, pad_token or "[PAD]", vocab_txt,
                       token_types)
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
        return [(np.array(e.ids, np.int32), self.type_ids(e)) for e in encodings]

    def type_ids(self, encoding) -> np.ndarray:
        """An encoding's token types as int32, or zeros when the tokenizer class gives the model none."""
        return np.array(encoding.type_ids, np.int32) if self.token_types else np.zeros(len(encoding.ids), np.int32)

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
        return [(np.array(e.ids, np.int32), self.type_ids(e)) for e in [first, *first.overflowing]]


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
        raise TokenizerError(f"{source}: {what} ({type(e).__name__}: {str(e)[:300]})") from None


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
    """tokenizer_config.json (or {} when there is none), read under the loading contract (bertnp.files)."""
    if not os.path.exists(path):
        return {}
    try:
        return files.read_json(path, "tokenizer_config.json", TokenizerError)
    except FileNotFoundError:
        return {}


def _model_max_length(value, path: str) -> int | None:
    """tokenizer_config.json's model_max_length: None when absent or "no limit" (transformers writes int(1e30),
    sometimes as a float), else an integer of at least 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:  # NaN fails >= too
        raise TokenizerError(f"{path}: field 'model_max_length' must be a positive number, got {files.excerpt(value)}")
    if value >= UNBOUNDED:
        return None
    return int(value)


def _token_types(settings: dict, model_type: str) -> bool:
    """Whether the model gets the tokenizer's token types: tokenizer_config.json's model_input_names when it
    lists them, else what the tokenizer class's do (NO_TOKEN_TYPES)."""
    names = settings.get("model_input_names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return "token_type_ids" in names
    name = settings.get("tokenizer_class")
    name = name if isinstance(name, str) else DEFAULT_CLASSES.get(model_type, "BertTokenizer")
    return name.removesuffix("Fast") not in NO_TOKEN_TYPES


def _token(value, default: str) -> str:
    """Special tokens appear as strings or as AddedToken dicts {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else default


def _wordpiece_from_vocab(vocab_txt: str, settings: dict):
    """BertTokenizer's pipeline from vocab.txt and tokenizer_config.json, as a tokenizers.Tokenizer."""
    from tokenizers.implementations import BertWordPieceTokenizer

    text = files.read_text(vocab_txt, "vocab.txt", TokenizerError)
    vocab = {line.rstrip("\n"): i for i, line in enumerate(io.StringIO(text, newline=None))}  # as open() reads it
    for name in ("tokenize_chinese_chars", "do_lower_case", "strip_accents"):
        if not (settings.get(name) is None or isinstance(settings.get(name), bool)):
            raise TokenizerError(f"{vocab_txt}: tokenizer_config.json's field '{name}' must be true, false or null, "
                                 f"got {files.excerpt(settings.get(name))}")
    specials = {name: _token(settings.get(name), default) for name, default in
                (("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("cls_token", "[CLS]"),
                 ("pad_token", "[PAD]"), ("mask_token", "[MASK]"))}
    missing = [token for token in specials.values() if token not in vocab]
    if missing:
        raise TokenizerError(f"{vocab_txt}: special token(s) {', '.join(files.excerpt(t) for t in missing)} are not in "
                             f"the vocabulary")
    wordpiece = BertWordPieceTokenizer(
        vocab,
        **specials,
        clean_text=True,
        handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        strip_accents=settings.get("strip_accents"),
        lowercase=bool(settings.get("do_lower_case", True)),
    )
    return wordpiece._tokenizer


# ---- tokenizer.json, inspected before `tokenizers` runs it ------------------------------------------------
#
# `tokenizers` (Rust) allocates as its pipeline says, and a failed allocation aborts the process. So each
# step is read here first, from what its Rust source does (tokenizers 0.23), and a file is refused, naming
# the step, when:
# - its normalizer, pre-tokenizer and decoder can lengthen a text more than MAX_GROWTH times, or add more
#   than MAX_ADDED_BYTES to it. Each step's bound is in bytes out per byte in (`_Inspection.normalizer`,
#   `.pre_tokenizer`, `.decoder`), and a chain multiplies them: Replace("a", "aa") forty times is 2**40.
#   Working memory is about 50 bytes per byte of normalized text, so a text costs at most MAX_GROWTH times
#   what it costs with BERT's own pipeline (whose bound is 7.5); XLM-R's and T5's pipelines bound at 44;
# - tokens added with normalized=true would be normalized, at load, into more than MAX_LOAD_NORMALIZED bytes;
# - a post-processor repeats a sequence (TemplateProcessing "$A $A": truncation does not count the copy),
#   or adds more than MAX_SPECIAL_IDS ids;
# - WordPiece's max_input_chars_per_word exceeds MAX_WORD_CHARS: a word costs the cube of it;
# - a number is out of range: ids must fit the int32 arrays bertnp makes (a u32 id of 2**31 would raise
#   OverflowError there), FixedLength must be at least 1 (0 panics in Rust), a charsmap must parse;
# - a step is one bertnp does not know: it cannot be checked, so it is not run.
# Regular expressions run in Oniguruma, whose retry limit ends catastrophic backtracking with an error.

MAX_GROWTH = 64
MAX_ADDED_BYTES = 1024
MAX_LOAD_NORMALIZED = 16 << 20
MAX_SPECIAL_IDS = 256
MAX_WORD_CHARS = 1000
MAX_STEPS = 64  # steps of all pipelines together, nested sequences included
MAX_CHARSMAP = 1 << 20  # bytes of a Precompiled normalizer's charsmap (sentencepiece's nmt_nfkc: 237 KB)
# Bytes out per byte in of the Unicode tables, measured over every code point (Python's unicodedata, Unicode
# 14): NFKC/NFKD turn U+FDFA (3 bytes) into 33 bytes, NFD/NFC U+0390 (2) into 6; lower-casing U+0130 (2)
# gives 3; BERT's CJK spacing turns a 3-byte character into 5.
UNICODE_GROWTH = {"NFC": 3.0, "NFD": 3.0, "NFKC": 11.0, "NFKD": 11.0, "Lowercase": 1.5}
PER_CHARACTER = ("NFD", "NFKD", "StripAccents", "Lowercase")  # steps that map each character on its own
CJK_SPACING = 5 / 3


def inspect_tokenizer_json(spec: dict, path: str) -> dict:
    """Refuse, with a TokenizerError naming the step, a tokenizer.json that `tokenizers` could run into an
    explosion or an abort (see above). `spec` is the parsed file. Returns the bounds it checked, as (a, b):
    "text" for the normalizer then the pre-tokenizer (bytes out <= a * bytes in + b, summed over the
    pieces), "decoder" for each token the decoder turns into text."""
    check = _Inspection(path)
    check.spec_numbers(spec)
    text = (1.0, 0.0)
    if spec.get("normalizer") is not None:
        text = check.normalizer(spec["normalizer"], "normalizer", text)
    check.added_tokens(spec.get("added_tokens"), text)
    if spec.get("pre_tokenizer") is not None:
        text = check.pre_tokenizer(spec["pre_tokenizer"], "pre_tokenizer", text)
    decoder = (1.0, 0.0)
    if spec.get("decoder") is not None:
        decoder = check.decoder(spec["decoder"], "decoder", decoder)
    if spec.get("post_processor") is not None:
        check.post_processor(spec["post_processor"], "post_processor")
    check.model(spec.get("model"))
    return {"text": text, "decoder": decoder}


class _Inspection:
    def __init__(self, path: str):
        self.path, self.steps = path, 0

    def fail(self, where: str, why: str):
        where = where if len(where) <= 120 else f"{where[:50]}...{where[-60:]}"  # deeply nested sequences
        raise TokenizerError(f"{self.path}: {where}: {why}")

    def kind(self, step, where: str, known) -> str:
        """The step's type, counted against MAX_STEPS; refuses a step that is not an object of a known type."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.fail(where, f"more than {MAX_STEPS} steps in all; bertnp refuses longer pipelines")
        if not isinstance(step, dict):
            self.fail(where, f"expected an object, got {files.json_type(step)}")
        kind = step.get("type")
        if not (isinstance(kind, str) and kind in known):
            self.fail(where, f"type {files.excerpt(kind)} is not one bertnp can check; expected one of "
                             f"{', '.join(sorted(known))}")
        return kind

    def index(self, value, where: str, field: str, low: int = 0, high: int = files.MAX_INDEX) -> int:
        if files.integer(value, low, high) is None:
            self.fail(where, f"'{field}' must be an integer from {low} to {high}, got {files.excerpt(value)}")
        return value

    def string(self, value, where: str, field: str) -> str:
        if not isinstance(value, str):
            self.fail(where, f"'{field}' must be a string, got {files.json_type(value)}")
        return value

    def grow(self, growth, step, where: str, what: str):
        """Compose the bound so far (a, b: out <= a * in + b bytes) with one step's, refusing past the limits."""
        a, b = growth[0] * step[0], growth[1] * step[0] + step[1]
        if a > MAX_GROWTH or b > MAX_ADDED_BYTES:
            self.fail(where, f"{what}: with the steps before it, a text can grow {a:.4g} times plus {b:.0f} bytes; "
                             f"bertnp allows {MAX_GROWTH} times plus {MAX_ADDED_BYTES} bytes (an expanding chain)")
        return a, b

    def normalizer_sequence(self, step, where: str, growth):
        """A Sequence of normalizers. Per-character steps (NFKD, Lowercase...) right before a Precompiled
        charsmap are bounded together with it, character by character (_run_then_charsmap): ALBERT's and
        XLNet's NFKD, StripAccents, Lowercase, Precompiled grow a text 11 times, not 11 * 1.5 * 11."""
        items = step.get("normalizers")
        if not isinstance(items, list):
            self.fail(where, f"'normalizers' must be an array, got {files.json_type(items)}")
        run = []  # (where, kind) of the per-character steps since the last other step
        for i, item in enumerate(items):
            at = f"{where}.normalizers[{i}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind in PER_CHARACTER:
                self.kind(item, at, NORMALIZERS)
                run.append((at, kind))
                continue
            if kind == "Precompiled" and run:
                self.kind(item, at, NORMALIZERS)
                product = 1.0
                for _, earlier in run:
                    product *= UNICODE_GROWTH.get(earlier, 1.0)
                charsmap = _Charsmap(item.get("precompiled_charsmap"), self, at)
                bound = _run_then_charsmap(tuple(k for _, k in run), charsmap, product)
                growth = self.grow(growth, (bound, 0.0), at, f"{' + '.join(k for _, k in run)} + Precompiled")
                run = []
                continue
            growth = self.flush(run, growth)
            run = []
            growth = self.normalizer(item, at, growth)
        return self.flush(run, growth)

    def flush(self, run, growth):
        """Per-character steps not followed by a charsmap: each bounded on its own, as any step."""
        for at, kind in run:
            growth = self.grow(growth, (UNICODE_GROWTH.get(kind, 1.0), 0.0), at, kind)
        return growth

    def sequence(self, step, where: str, field: str, walk, growth):
        items = step.get(field)
        if not isinstance(items, list):
            self.fail(where, f"'{field}' must be an array, got {files.json_type(items)}")
        for i, item in enumerate(items):
            growth = walk(item, f"{where}.{field}[{i}]", growth)
        return growth

    def replace(self, step, where: str, growth):
        """Replace (normalizer or decoder): each match of the pattern becomes `content`."""
        pattern, content = step.get("pattern"), self.string(step.get("content"), where, "content")
        if not (isinstance(pattern, dict) and len(pattern) == 1 and set(pattern) <= {"String", "Regex"}):
            self.fail(where, f"'pattern' must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {files.excerpt(pattern)}")
        (form, text), = pattern.items()
        self.string(text, where, "pattern")
        c = len(content.encode())
        if form == "String" and text:  # matches of len(text) bytes, none overlapping
            bound = (max(1.0, c / len(text.encode())), 0.0)
        elif form == "Regex" and _never_empty(text):
            bound = (max(1.0, c), 0.0)
        else:  # an empty match at every character boundary inserts content there
            bound = (max(1.0, c) + c, float(c))
        return self.grow(growth, bound, where, f"Replace {files.excerpt(text, 40)} -> {files.excerpt(content, 40)}")

    def normalizer(self, step, where: str, growth):
        kind = self.kind(step, where, NORMALIZERS)
        if kind == "Sequence":
            return self.normalizer_sequence(step, where, growth)
        if kind == "Replace":
            return self.replace(step, where, growth)
        if kind == "Prepend":
            prepend = self.string(step.get("prepend"), where, "prepend")
            return self.grow(growth, (1.0, len(prepend.encode())), where, "Prepend")
        if kind == "Precompiled":
            return self.grow(growth, (_charsmap_growth(step.get("precompiled_charsmap"), self, where), 0.0), where,
                             "Precompiled")
        if kind in ("BertNormalizer", "Bert"):
            a = CJK_SPACING if step.get("handle_chinese_chars", True) is not False else 1.0
            lowercase = step.get("lowercase", True) is not False
            if step.get("strip_accents") or (step.get("strip_accents") is None and lowercase):
                a *= UNICODE_GROWTH["NFD"]
            a *= UNICODE_GROWTH["Lowercase"] if lowercase else 1.0
            return self.grow(growth, (a, 0.0), where, "BertNormalizer")
        if kind == "ByteLevel":  # each byte becomes a character of at most 2 bytes
            return self.grow(growth, (2.0, 0.0), where, kind)
        return self.grow(growth, (UNICODE_GROWTH.get(kind, 1.0), 0.0), where, kind)  # Strip* and Nmt only remove

    def pre_tokenizer(self, step, where: str, growth):
        kind = self.kind(step, where, PRE_TOKENIZERS)
        if kind == "Sequence":
            return self.sequence(step, where, "pretokenizers", self.pre_tokenizer, growth)
        if kind == "Split":
            pattern = step.get("pattern")
            if not (isinstance(pattern, dict) and len(pattern) == 1 and set(pattern) <= {"String", "Regex"}):
                self.fail(where, f"'pattern' must be {{\"String\": ...}} or {{\"Regex\": ...}}, got "
                                 f"{files.excerpt(pattern)}")
            self.string(next(iter(pattern.values())), where, "pattern")
        if kind == "FixedLength":
            self.index(step.get("length", 5), where, "length", low=1)
        if kind == "ByteLevel":  # bytes -> characters of at most 2 bytes, after a space before each piece
            return self.grow(growth, (4.0 if step.get("add_prefix_space", True) is not False else 2.0, 0.0), where, kind)
        if kind == "Metaspace":  # ' ' -> the replacement character, which may also begin each piece
            replacement = self.string(step.get("replacement", "\u2581"), where, "replacement")
            if len(replacement) != 1:
                self.fail(where, f"'replacement' must be one character, got {files.excerpt(replacement)}")
            r = len(replacement.encode())
            prepends = step.get("prepend_scheme", "always") != "never" and step.get("add_prefix_space") is not False
            return self.grow(growth, (r + 1.0 if prepends else float(r), 0.0), where, kind)
        return self.grow(growth, (1.0, 0.0), where, kind)  # the rest only split

    def decoder(self, step, where: str, growth):
        kind = self.kind(step, where, DECODERS)
        if kind == "Sequence":
            return self.sequence(step, where, "decoders", self.decoder, growth)
        if kind == "Replace":
            return self.replace(step, where, growth)
        if kind == "BPEDecoder" and step.get("suffix", "</w>") == "":  # "".replace inserts between characters
            return self.grow(growth, (2.0, 1.0), where, "BPEDecoder with an empty suffix")
        if kind == "CTC" and step.get("cleanup", True) is not False and step.get("word_delimiter_token", "|") == "":
            return self.grow(growth, (2.0, 1.0), where, "CTC with an empty word_delimiter_token")
        if kind == "Strip":
            for field in ("start", "stop"):
                self.index(step.get(field, 0), where, field)
        if kind == "ByteLevel":  # invalid UTF-8 becomes U+FFFD (3 bytes) per character of 1 or more
            return self.grow(growth, (3.0, 0.0), where, kind)
        if kind == "WordPiece":  # a space before each token
            return self.grow(growth, (1.0, 1.0), where, kind)
        return self.grow(growth, (1.0, 0.0), where, kind)

    def post_processor(self, step, where: str, copies: int = 1) -> tuple[int, int]:
        """(copies of each sequence, special ids added) of a post-processor; refuses repeated sequences."""
        kind = self.kind(step, where, POST_PROCESSORS)
        if kind == "Sequence":
            items = step.get("processors")
            if not isinstance(items, list):
                self.fail(where, f"'processors' must be an array, got {files.json_type(items)}")
            total_copies, total_ids = 1, 0
            for i, item in enumerate(items):
                n, ids = self.post_processor(item, f"{where}.processors[{i}]")
                total_copies, total_ids = total_copies * n, total_ids * n + ids
                if total_copies > 1:
                    self.fail(f"{where}.processors[{i}]", "repeats a sequence: the copies are not truncated")
            return total_copies, total_ids
        if kind in ("BertProcessing", "RobertaProcessing"):
            for field in ("sep", "cls"):
                token = step.get(field)
                if not (isinstance(token, list) and len(token) == 2 and isinstance(token[0], str)):
                    self.fail(where, f"'{field}' must be [token, id], got {files.excerpt(token)}")
                self.index(token[1], where, f"{field} id")
            return 1, 4
        if kind == "ByteLevel":
            return 1, 0
        specials = step.get("special_tokens") or {}
        if not isinstance(specials, dict):
            self.fail(where, f"'special_tokens' must be an object, got {files.json_type(specials)}")
        sizes = {}
        for name, token in specials.items():
            ids = token.get("ids") if isinstance(token, dict) else None
            if not isinstance(ids, list):
                self.fail(where, f"special token {files.excerpt(name)} must have a list of 'ids'")
            for i in ids:
                self.index(i, where, f"ids of {files.shown(name, 40)}")
            sizes[name] = len(ids)
        added = 0
        for field in ("single", "pair"):
            pieces = step.get(field, [])
            if not isinstance(pieces, list):
                self.fail(where, f"'{field}' must be an array of pieces, got {files.json_type(pieces)}")
            seen, ids = [], 0
            for piece in pieces:
                body = next(iter(piece.values()), None) if isinstance(piece, dict) and len(piece) == 1 else None
                if not isinstance(body, dict):
                    self.fail(where, f"'{field}' holds {files.excerpt(piece)}: expected {{\"Sequence\": ...}} or "
                                     f"{{\"SpecialToken\": ...}}")
                self.index(body.get("type_id", 0), where, f"type_id in '{field}'")
                name = body.get("id")
                if "Sequence" in piece:
                    seen.append(name)
                elif isinstance(name, str):
                    ids += sizes.get(name, 0)
            repeated = next((s for s in set(map(str, seen)) if list(map(str, seen)).count(s) > 1), None)
            if repeated is not None:
                self.fail(where, f"'{field}' repeats sequence ${files.shown(repeated, 8)}: the copies are not truncated, "
                                 f"so each text would grow with them")
            if ids > MAX_SPECIAL_IDS:
                self.fail(where, f"'{field}' adds {ids} special ids; bertnp allows {MAX_SPECIAL_IDS}")
            added = max(added, ids)
        return 1, added

    def added_tokens(self, tokens, normalizer_growth):
        if tokens is None:
            return
        if not isinstance(tokens, list):
            self.fail("added_tokens", f"expected an array, got {files.json_type(tokens)}")
        normalized = 0
        for i, token in enumerate(tokens):
            if not isinstance(token, dict):
                self.fail(f"added_tokens[{i}]", f"expected an object, got {files.json_type(token)}")
            self.index(token.get("id"), f"added_tokens[{i}]", "id")
            content = self.string(token.get("content"), f"added_tokens[{i}]", "content")
            if token.get("normalized", not token.get("special", False)):
                normalized += len(content.encode())
        a, b = normalizer_growth
        if normalized and a * normalized + b * len(tokens) > MAX_LOAD_NORMALIZED:
            self.fail("added_tokens", f"{normalized} bytes of tokens with normalized=true, which the normalizer "
                                      f"(up to {a:.4g} times) would turn into more than {MAX_LOAD_NORMALIZED >> 20} "
                                      f"MiB while loading")

    def model(self, model):
        if not isinstance(model, dict):
            self.fail("model", f"expected an object, got {files.json_type(model)}")
        kind = model.get("type")
        if kind is not None and not (isinstance(kind, str) and kind in MODELS):
            self.fail("model", f"type {files.excerpt(kind)} is not one bertnp can check; expected one of "
                               f"{', '.join(sorted(MODELS))}")
        vocab = model.get("vocab")
        if isinstance(vocab, dict):  # WordPiece, BPE, WordLevel: token -> id
            bad = next((t for t, i in vocab.items() if files.integer(i) is None), None)
            if bad is not None:
                self.fail("model.vocab", f"token {files.excerpt(bad)} has id {files.excerpt(vocab[bad])}; ids must be "
                                         f"integers from 0 to {files.MAX_INDEX}")
        elif isinstance(vocab, list):  # Unigram: [piece, score], the id is the position
            if len(vocab) > files.MAX_INDEX:
                self.fail("model.vocab", f"{len(vocab)} pieces; ids must fit int32")
            if model.get("unk_id") is not None:
                self.index(model["unk_id"], "model", "unk_id", high=max(len(vocab) - 1, 0))
        elif vocab is not None:
            self.fail("model.vocab", f"expected an object or an array, got {files.json_type(vocab)}")
        if "max_input_chars_per_word" in model:
            self.index(model["max_input_chars_per_word"], "model", "max_input_chars_per_word", low=1, high=MAX_WORD_CHARS)
        dropout = model.get("dropout")
        if dropout is not None and files.number(dropout, 0.0, 1.0) is None:
            self.fail("model", f"'dropout' must be a number from 0 to 1, got {files.excerpt(dropout)}")

    def spec_numbers(self, spec: dict):
        """truncation and padding: bertnp replaces both after loading, but their numbers are read by Rust first."""
        for field, numbers in (("truncation", ("max_length", "stride")),
                               ("padding", ("pad_to_multiple_of", "pad_id", "pad_type_id"))):
            settings = spec.get(field)
            if settings is None:
                continue
            if not isinstance(settings, dict):
                self.fail(field, f"expected an object or null, got {files.json_type(settings)}")
            for number in numbers:
                if settings.get(number) is not None:
                    self.index(settings[number], field, number)
            strategy = settings.get("strategy")
            if field == "padding" and isinstance(strategy, dict) and "Fixed" in strategy:
                self.index(strategy["Fixed"], field, "strategy.Fixed")


NORMALIZERS = {"BertNormalizer", "Bert", "Strip", "StripAccents", "NFC", "NFD", "NFKC", "NFKD", "Sequence", "Lowercase",
               "Nmt", "Precompiled", "Replace", "Prepend", "ByteLevel"}
PRE_TOKENIZERS = {"BertPreTokenizer", "ByteLevel", "CharDelimiterSplit", "Metaspace", "Whitespace", "Sequence", "Split",
                  "Punctuation", "WhitespaceSplit", "Digits", "UnicodeScripts", "FixedLength"}
DECODERS = {"BPEDecoder", "ByteLevel", "WordPiece", "Metaspace", "CTC", "Sequence", "Replace", "Fuse", "Strip",
            "ByteFallback"}
POST_PROCESSORS = {"BertProcessing", "RobertaProcessing", "ByteLevel", "TemplateProcessing", "Sequence"}
MODELS = {"WordPiece", "BPE", "WordLevel", "Unigram"}


def _never_empty(pattern: str) -> bool:
    """Whether an Oniguruma pattern surely never matches the empty string, judged with Python's parser for the
    syntax both share (bracket classes like [[:alpha:]] and (?...) groups differ, so they count as may-match)."""
    if len(pattern) > 1000 or "[[" in pattern or "&&" in pattern or "(?" in pattern:
        return False
    try:
        from re import _parser
    except ImportError:  # Python < 3.11
        import sre_parse as _parser
    try:
        return _parser.parse(pattern).getwidth()[0] >= 1
    except (re.error, RecursionError, OverflowError, ValueError, TypeError):
        return False


class _Charsmap:
    """A Precompiled normalizer's charsmap (sentencepiece's, as spm_precompiled reads it: a u32 trie size, a
    double-array trie of u32 units, then NUL-separated replacements), and how much it can lengthen a text.

    tokenizers runs it per grapheme cluster of fewer than 6 bytes, else per character: the first key of the
    trie that is a prefix of that chunk (the shortest) replaces the whole chunk. So a chunk never grows more
    than a key's replacement over the key (`growth`, the bound of a Precompiled step on its own); and a
    chunk's output can be charged to its characters: each its own bytes, its first character also what a
    replacement adds over the key (`weights`: w(x) = max(|x|, longest replacement of a key that is a prefix
    of x, max over keys k extending x of |r(k)| - (|k| - |x|))). Summed over a text, the weights bound the
    output; bertnp uses them when per-character steps before it (NFKD...) hand it their characters."""

    def __init__(self, encoded, check: _Inspection, where: str):
        if not isinstance(encoded, str) or len(encoded) > MAX_CHARSMAP * 4 // 3 + 4:
            check.fail(where, f"'precompiled_charsmap' must be base64 of at most {MAX_CHARSMAP >> 20} MiB")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            check.fail(where, "'precompiled_charsmap' is not base64")
        units = int.from_bytes(blob[:4], "little") // 4 if len(blob) >= 4 else 0
        if units == 0 or 4 + 4 * units > len(blob):
            check.fail(where, "'precompiled_charsmap' is malformed: its trie is empty or longer than the charsmap")
        self.trie = trie = np.frombuffer(blob, "<u4", units, 4).astype(np.int64)
        pool = np.frombuffer(blob, np.uint8, offset=4 + 4 * units)
        try:
            pool.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            check.fail(where, "'precompiled_charsmap' is malformed: its replacements are not UTF-8")
        ends = np.flatnonzero(pool == 0)  # a replacement runs to the next NUL, or to the end
        next_end = np.searchsorted(ends, np.arange(pool.size))
        self.length = np.append(ends, pool.size)[next_end] - np.arange(pool.size)
        self.root = self.offset(trie[0])
        # Breadth first to depth 5 (a chunk has at most 5 bytes), vectorized; keeping every edge found, even
        # to a node met before (a hostile trie may share nodes), so that nothing below a node is missed.
        labels = np.arange(256)
        frontier, seen = np.array([self.root]), np.zeros(units, bool)
        parents, children, replaced = [], [], np.full(units, -1, np.int64)
        self.growth = 1.0
        for depth in range(1, 6):
            found = []
            for start in range(0, frontier.size, 4096):
                parent = frontier[start : start + 4096, None]
                nodes, leaf, _ = self.step(np.broadcast_to(parent, (parent.size, 256)), labels)
                rows, _ = np.nonzero(nodes >= 0)
                nodes, leaf = nodes[nodes >= 0], leaf[nodes >= 0]
                values = self.replacement(nodes, leaf)
                if (values >= 0).any():
                    self.growth = max(self.growth, float(values.max()) / depth)
                np.maximum.at(replaced, nodes, values)
                parents.append(parent[rows, 0])
                children.append(nodes)
                found.append(nodes)
            frontier = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
            frontier = frontier[~seen[frontier]]  # a node met again: its edges are already listed
            seen[frontier] = True
            if not frontier.size:
                break
        self.replaced = replaced  # a node's key's replacement length, -1 when it is no key
        # below[n]: the most a key at or under node n adds over the bytes from n down (|r(k)| - depth under n)
        parents = np.concatenate(parents) if parents else np.zeros(0, np.int64)
        children = np.concatenate(children) if children else np.zeros(0, np.int64)
        self.below = replaced.copy()
        for _ in range(5):
            np.maximum.at(self.below, parents, self.below[children] - 1)

    @staticmethod
    def offset(unit):
        return (unit >> 10) << ((unit & (1 << 9)) >> 6)

    def step(self, nodes, labels):
        """One byte down the trie from nodes (-1: none): (child or -1, whether it ends a key, its unit)."""
        units = self.trie.size
        child = np.where(nodes >= 0, nodes ^ labels, units)
        inside = child < units
        unit = self.trie[np.where(inside, child, 0)]
        valid = inside & ((unit & ((1 << 31) | 0xFF)) == labels)
        reached = np.where(valid, child ^ self.offset(unit), -1)
        reached = np.where(reached < units, reached, -1)
        return reached, (reached >= 0) & ((unit >> 8) & 1 == 1), unit

    def replacement(self, nodes, leaf):
        """The length of the replacement of the key ending at each node (where leaf), else -1."""
        values = np.where(leaf, self.trie[np.maximum(nodes, 0)] & ((1 << 31) - 1), -1)
        ok = (values >= 0) & (values < self.length.size)
        return np.where(ok, self.length[np.where(ok, values, 0)], -1)

    def weights(self, codepoints: np.ndarray) -> np.ndarray:
        """w(x) for each code point (see the class), walking the trie with their UTF-8 bytes."""
        cps = np.asarray(codepoints, np.int64)
        size = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, np.where(cps < 0x10000, 3, 4)))
        lead = np.select([size == 1, size == 2, size == 3], [cps, 0xC0 | cps >> 6, 0xE0 | cps >> 12], 0xF0 | cps >> 18)
        bytes_ = [lead] + [0x80 | (cps >> np.maximum(6 * (size - 1 - j), 0)) & 63 for j in range(1, 4)]
        node, weight = np.full(cps.size, self.root), size.copy()
        for j in range(4):
            node = np.where(size > j, node, -1)
            node, leaf, _ = self.step(node, bytes_[j])
            shorter = self.replacement(node, leaf)  # a key that is a prefix of x replaces its chunk
            weight = np.maximum(weight, np.where(size > j + 1, shorter, -1))
            weight = np.maximum(weight, np.where((size == j + 1) & (node >= 0), self.below[np.maximum(node, 0)], -1))
        return weight

    def char_ratio(self) -> float:
        """The most any one character's weight is over its own bytes: the charsmap's growth on text whose
        characters no step before it changed. Only characters whose first byte starts a key are walked."""
        first = np.arange(256)
        starts, _, _ = self.step(np.full(256, self.root), first)
        worst = 1.0
        for byte in np.flatnonzero(starts >= 0):
            if byte < 0x80:
                cps = np.array([byte])
            elif 0xC2 <= byte <= 0xF4:
                size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                low = (byte & (0x3F >> (size - 1))) << 6 * (size - 1)
                cps = np.arange(low, min(low + (1 << 6 * (size - 1)), 0x110000))
                cps = cps[((cps < 0xD800) | (cps > 0xDFFF)) & (cps >= (0x80, 0x800, 0x10000)[size - 2])]
            else:
                continue  # no character's UTF-8 starts with it
            if cps.size:
                size = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, np.where(cps < 0x10000, 3, 4)))
                worst = max(worst, float((self.weights(cps) / size).max()))
        return worst


def _charsmap_growth(encoded, check: _Inspection, where: str) -> float:
    """Bytes out per byte in of a Precompiled normalizer on its own (_Charsmap.growth)."""
    return _Charsmap(encoded, check, where).growth


@functools.lru_cache(maxsize=8)
def _per_character_outputs(kinds: tuple) -> tuple[dict, float]:
    """What a run of per-character steps (PER_CHARACTER kinds, in order) makes of each character it changes,
    {code point: output}, and its largest growth in bytes over those (1 for the others). NFD and NFKD
    decompose each character on its own (canonical reordering only moves marks), StripAccents removes marks
    (here only Mn, which removes no more than tokenizers does), Lowercase maps each character (Python's
    full case mapping, as Rust's char::to_lowercase). Characters from U+30000 up have no decomposition or
    lower case. A character no step changes on its own is unchanged by the run."""
    chars = [chr(c) for c in range(1, 0x30000) if not 0xD800 <= c <= 0xDFFF]

    def step(kind, text):
        if kind in ("NFD", "NFKD"):
            return unicodedata.normalize(kind, text)
        if kind == "Lowercase":
            return text.lower()
        return "".join(c for c in text if unicodedata.category(c) != "Mn")  # StripAccents

    changed = set()
    for kind in set(kinds) - {"StripAccents"}:  # each step over every character at once, NUL between them
        outputs = step(kind, "\0".join(chars)).split("\0")
        changed.update(c for c, out in zip(chars, outputs) if out != c)
    result, worst = {}, 1.0
    for c in changed:
        out = c
        for kind in kinds:
            out = step(kind, out)
        result[ord(c)] = out
        worst = max(worst, len(out.encode()) / len(c.encode()))
    return result, worst


def _run_then_charsmap(kinds: tuple, charsmap: _Charsmap, product: float) -> float:
    """The growth of per-character steps followed by a Precompiled charsmap, bounded per character: each
    character c becomes the run's output U(c), whose characters the charsmap's weights bound; the charsmap
    may lengthen what the run leaves unchanged up to char_ratio. Never more than the product of the two
    bounds (the run's `product` times the charsmap's growth), which also holds."""
    outputs, _ = _per_character_outputs(kinds)
    worst = charsmap.char_ratio()
    if outputs:
        codes = sorted(outputs)
        pieces = [outputs[c] for c in codes]
        flat = np.array([ord(ch) for piece in pieces for ch in piece], np.int64)
        sums = np.zeros(len(pieces))
        if flat.size:
            owner = np.repeat(np.arange(len(pieces)), [len(piece) for piece in pieces])
            np.add.at(sums, owner, charsmap.weights(flat))
        sizes = np.array([len(chr(c).encode()) for c in codes])
        worst = max(worst, float((sums / sizes).max()))
    return min(worst, product * charsmap.growth)
