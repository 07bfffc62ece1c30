"""A loaded checkpoint: config + weights + tokenizer, called like a transformers model."""

from __future__ import annotations

import os

import numpy as np

from . import backends, blas, heads, model
from .config import BertConfig
from .errors import InputError, TokenizerError
from .hub import resolve
from .pooling import POOLINGS, pool
from .pooling import normalize as pooling_normalize
from .tokenizer import Tokenizer, as_batch, pad
from .weights import load_weights

TOKENIZE_CHUNK = 4096  # texts tokenized per call: ids are kept, the tokenizers' Encoding objects are not
DTYPES = {"float32": np.float32, "float64": np.float64}


class Bert:
    """BertModel or one of its heads (weights.ARCHITECTURES: sequence or token classification, question
    answering, masked LM), as loaded by `bertnp.load`."""

    def __init__(self, config: BertConfig, weights, tokenizer: Tokenizer | None, tokenizer_error: str | None = None,
                 backend: str | None = None, folder: str | None = None, numerics: model.Numerics | None = None,
                 deterministic: bool = False, backend_options: dict | None = None):
        self.config = config
        self.deterministic = deterministic
        self.numerics = numerics or model.TRANSFORMERS
        self.folder = folder
        self.weights = weights
        self.tokenizer = tokenizer
        self._tokenizer_error = tokenizer_error
        self.dtype = weights.embeddings.word.dtype
        self.backend = backends.create(backend, weights, config, deterministic, **(backend_options or {}))

    @property
    def architecture(self) -> str:
        """What load recognised: BertModel, BertForSequenceClassification, BertForTokenClassification,
        BertForQuestionAnswering or BertForMaskedLM (see weights.architecture)."""
        return self.weights.architecture

    @property
    def labels(self) -> list[str] | None:
        """id2label in index order for a sequence- or token-classification checkpoint, else None."""
        if self.weights.labels_head is None:
            return None
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    @property
    def max_length(self) -> int:
        """Default truncation: the smaller of the position table and the tokenizer's model_max_length."""
        limits = [self.config.max_tokens]
        if self.tokenizer is not None and self.tokenizer.model_max_length:
            limits.append(self.tokenizer.model_max_length)
        return min(limits)

    def tokenize(self, texts_or_pairs, max_length: int | None = None) -> dict[str, np.ndarray]:
        """Texts or (text, text) pairs -> int64 input_ids, attention_mask, token_type_ids, padded to the longest."""
        if self.tokenizer is None:
            raise TokenizerError(self._tokenizer_error or "this model was loaded without a tokenizer")
        return self.tokenizer.encode(texts_or_pairs, self._max_length(max_length))

    def _max_length(self, max_length, name: str = "max_length") -> int:
        """The one rule for a truncation length a user gives (Bert, Embedder, Classifier, the pipelines,
        the CLI): None is the model's max_length; anything else must be an integer from 2 ([CLS] and
        [SEP]) to max_position_embeddings (RoBERTa: less pad_token_id + 1), or InputError. Nothing is
        clamped silently."""
        if max_length is None:
            return self.max_length
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or \
                not 2 <= max_length <= self.config.max_tokens:
            raise InputError(f"{name}={max_length!r}: expected an integer from 2 to "
                             f"{self.config.max_tokens_name}={self.config.max_tokens}")
        return int(max_length)

    def embed(self, texts, pooling: str = "mean", normalize: bool = False, batch_size: int = 32,
              max_length: int | None = None) -> np.ndarray:
        """Texts (or pairs) -> [N, H] embeddings, in input order (no texts: [0, H]). pooling: mean, cls, max
        or pooler."""
        if pooling not in POOLINGS:
            raise InputError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        texts = as_batch(texts, allow_empty=True)
        if not texts:
            return np.zeros((0, self.config.hidden_size), self.dtype)
        vectors = self.run_batches(texts, lambda out, mask: pool(out, mask, pooling), batch_size, max_length,
                                   pooler_output=pooling == "pooler")
        return pooling_normalize(vectors) if normalize else vectors

    def predict(self, texts_or_pairs, batch_size: int = 32, max_length: int | None = None) -> np.ndarray:
        """Texts or pairs -> classifier logits [N, C], in input order (no texts: [0, C])."""
        if self.weights.classifier is None:
            raise InputError("predict needs a sequence-classification checkpoint (classifier.weight); "
                             f"this one is a {self.architecture}: use embed, or bertnp.pipelines for its head")
        texts_or_pairs = as_batch(texts_or_pairs, allow_empty=True)
        if not texts_or_pairs:
            return np.zeros((0, self.config.num_labels), self.dtype)
        return self.run_batches(texts_or_pairs, lambda out, mask: out.logits, batch_size, max_length,
                                pooler_output=False)

    def run_batches(self, texts, reduce, batch_size: int = 32, max_length: int | None = None, progress=None,
                    pooler_output: bool = True):
        """Tokenize once, run length-sorted batches (little padding), return rows in input order.

        reduce(BertOutput, attention_mask [b, T]) -> [b, ...] turns each batch's output into rows.
        progress: a callable given the number of texts finished after each batch (a tqdm's update).
        pooler_output=False: reduce never reads it, so the pooler does not run (`__call__`).
        """
        return self.run_sequences(self.encode_each(texts, max_length), reduce, batch_size, progress, pooler_output)

    def encode_each(self, texts, max_length: int | None = None) -> list:
        """Texts or pairs -> one (ids, token types) pair per text, truncated, unpadded."""
        if self.tokenizer is None:
            raise TokenizerError(self._tokenizer_error or "this model was loaded without a tokenizer")
        items, limit = as_batch(texts), self._max_length(max_length)
        sequences = []
        for start in range(0, len(items), TOKENIZE_CHUNK):
            sequences += self.tokenizer.encode_each(items[start : start + TOKENIZE_CHUNK], limit)
        return sequences

    def run_sequences(self, sequences: list, reduce, batch_size: int = 32, progress=None, pooler_output: bool = True):
        """run_batches on already tokenized (ids, token types) pairs. reduce sees the encoder's outputs and
        a sequence classifier's logits; the token-level heads (heads.py) do not run."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r}: expected a positive integer")
        order = np.argsort([len(ids) for ids, _ in sequences], kind="stable")
        result = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = pad([sequences[i] for i in rows], self.tokenizer.pad_id)
            out = self(**enc, heads=False, pooler_output=pooler_output)
            if getattr(self.backend, "keep_on_device", False):  # embed/predict always answer in NumPy
                out = backends.to_host(out, self.backend.cupy)
            values = reduce(out, enc["attention_mask"])  # [b, ...]
            if result is None:
                result = np.empty((len(sequences), *values.shape[1:]), values.dtype)
            result[rows] = values
            if progress is not None:
                progress(len(rows))
        return result

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False,
                 output_attentions=False, output_trace=False, numerics: model.Numerics | None = None,
                 heads: bool = True, pooler_output: bool = True) -> model.BertOutput:
        """The forward pass, as transformers' BertModel(**enc) or the checkpoint's BertFor...(**enc).
        output_trace=True adds out.trace, every named intermediate (see model.bert); numerics switches
        arithmetic to another engine's (model.Numerics). heads=False skips a token-level head (token
        classification, question answering, masked LM: see heads.py); a masked-LM decoder can cost as much
        as a small encoder. pooler_output=False leaves out.pooler_output None and skips the pooler's GEMM,
        unless a sequence classifier reads it (model.pooler_runs): embeddings pooled from the last hidden
        state never read it (one [H, H] matrix streamed from memory per call: ~60 us of one MiniLM text)."""
        input_ids, attention_mask, token_type_ids = self.check_inputs(input_ids, attention_mask, token_type_ids)
        run = self._forward_each if self.deterministic else self._forward
        return run(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions, output_trace,
                   numerics or self.numerics, heads, pooler_output)

    def _forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions,
                 output_trace, numerics, run_heads=True, pooler_output=True):
        trace = {} if output_trace else None
        tap = trace.__setitem__ if output_trace else model.no_tap
        out = self.backend.forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                   output_attentions, numerics, tap, pooler_output)
        out.trace = trace
        if run_heads and self.architecture in heads.TOKEN_HEADS:  # on last_hidden_state, wherever it lives
            on_device = getattr(self.backend, "keep_on_device", False)
            weights, xp = (self.backend.weights.reference, self.backend.cupy) if on_device else (self.weights, np)
            out = heads.apply(out, weights, self.config, xp, numerics, tap)
        return out

    def _forward_each(self, input_ids, attention_mask, token_type_ids, *options):
        """Deterministic mode: each sequence alone, cut to its own length (its last real token), so that
        every GEMM and reduction it goes through has the same shape whatever else is in the batch and
        however it is padded; and every BLAS call on one thread (bertnp.blas), because with some BLAS
        kernels a GEMM's sums depend on how its threads split it. Positions past a sequence's length are
        zeros. A row whose mask is all zero has no length of its own and runs at the batch's length."""
        B, T = input_ids.shape
        outputs = []
        with blas.single_threaded():
            for b in range(B):
                real = np.flatnonzero(attention_mask[b])
                n = int(real[-1]) + 1 if real.size else T
                outputs.append(self._forward(input_ids[b : b + 1, :n], attention_mask[b : b + 1, :n],
                                             token_type_ids[b : b + 1, :n], *options))
        return _stack_rows(outputs, T, per_token_logits=self.architecture in heads.TOKEN_HEADS)

    def check_inputs(self, input_ids, attention_mask, token_type_ids):
        """Validate ids, mask and token types as [B, T] integer arrays within the model's tables."""
        cfg = self.config
        input_ids = _ids("input_ids", input_ids, None)
        B, T = input_ids.shape
        attention_mask = np.ones((B, T), np.int64) if attention_mask is None else _ids("attention_mask", attention_mask, (B, T))
        token_type_ids = np.zeros((B, T), np.int64) if token_type_ids is None else _ids("token_type_ids", token_type_ids, (B, T))
        if T > cfg.max_tokens:
            raise InputError(f"input_ids has {T} tokens per sequence, more than {cfg.max_tokens_name}="
                             f"{cfg.max_tokens}; tokenize with max_length to truncate")
        _within("input_ids", input_ids, cfg.vocab_size, "vocab_size")
        if cfg.type_vocab_size == 0:  # DistilBERT has no token types: it ignores them, as its tokenizer gives none
            token_type_ids = np.zeros((B, T), np.int64)
        _within("token_type_ids", token_type_ids, max(cfg.type_vocab_size, 1), "type_vocab_size")
        _within("attention_mask", attention_mask, 2, "2 (a mask holds 0 and 1)")
        return input_ids, attention_mask, token_type_ids


def _stack_rows(outputs: list, T: int, per_token_logits: bool = False) -> model.BertOutput:
    """One-row BertOutputs (or heads.QuestionAnsweringOutput) of different lengths -> one, padded to T
    tokens with zeros. per_token_logits: logits come from a token-level head ([1, n, ...])."""

    def stack(arrays, token_axes):
        shape = list(arrays[0].shape)
        shape[0] = len(arrays)
        for axis in token_axes:
            shape[axis] = T
        full = np.zeros(shape, arrays[0].dtype)
        for b, array in enumerate(arrays):
            full[(b, *(slice(0, array.shape[axis]) if axis in token_axes else slice(None)
                       for axis in range(1, array.ndim)))] = array[0]
        return full

    def axes(name):  # the token axes of each kind of output (see model.bert's tap names)
        short = name.rsplit(".", 1)[-1]
        return () if name in ("pooler", "logits") else (2, 3) if short in ("scores", "probs") else \
            (2,) if short in ("q", "k", "v") else (1,)

    first = outputs[0]
    per_token = {name: stack([getattr(o, name) for o in outputs], (1,))  # question answering's [1, n] logits
                 for name in ("start_logits", "end_logits") if getattr(first, name, None) is not None}
    return type(first)(
        **per_token,
        last_hidden_state=stack([o.last_hidden_state for o in outputs], (1,)),
        pooler_output=None if first.pooler_output is None else stack([o.pooler_output for o in outputs], ()),
        logits=None if first.logits is None else  # [1, C], or [1, n, C] / [1, n, V] / [1, n] from a token-level head
        stack([o.logits for o in outputs], (1,) if per_token_logits else ()),
        hidden_states=None if first.hidden_states is None else tuple(
            stack([o.hidden_states[i] for o in outputs], (1,)) for i in range(len(first.hidden_states))),
        attentions=None if first.attentions is None else tuple(
            stack([o.attentions[i] for o in outputs], (2, 3)) for i in range(len(first.attentions))),
        trace=None if first.trace is None else {
            name: stack([o.trace[name] for o in outputs], axes(name)) for name in first.trace},
    )


def _ids(name, value, shape):
    array = np.asarray(value)
    if array.dtype.kind not in "iub":
        raise InputError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(f"{name} must be a non-empty [batch, tokens] array, got shape {list(array.shape)}")
    if shape is not None and array.shape != shape:
        raise InputError(f"{name} has shape {list(array.shape)}, expected {list(shape)} like input_ids")
    return array.astype(np.int64, copy=False)


def _within(name, array, limit, limit_name):
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        raise InputError(f"{name} holds {bad}, outside 0..{limit - 1} (limit {limit_name})")


def load(path, dtype="float32", backend: str | None = None, numerics: model.Numerics | None = None,
         deterministic: bool = False, **backend_options) -> Bert:
    """Load a Hugging Face BERT checkpoint: config.json, model.safetensors (or shards), tokenizer files.

    path: a folder, or a hub id ("org/name") found in the local Hugging Face cache (downloaded only when
    it is not cached and huggingface_hub is installed).

    dtype: "float32" or "float64", the dtype every computation runs in. float32 weights stored as float32
    are memory-mapped, not copied. A folder without tokenizer files still loads: tokenize() then raises.
    backend: "numpy" (the reference path), "numba" (pad-free kernels), or None for the fastest installed.
    numerics: model.Numerics, arithmetic that reproduces another engine (the reference path runs it).
    deterministic: a text's outputs are bit-identical whatever else is in its batch, its position, the
    padding and the thread count (each sequence runs on its own; see Bert._forward_each).
    backend_options: for backend="cupy", allow_tf32=False and keep_on_device=False (results as CuPy arrays).
    """
    folder = resolve(path)
    try:
        name = np.dtype(dtype).name if dtype is not None else None  # np.dtype(None) would be float64
    except (TypeError, ValueError):
        name = None
    if name not in DTYPES:
        raise InputError(f"dtype={dtype!r}: bertnp computes in float32 or float64")
    config = BertConfig.from_file(os.path.join(folder, "config.json"))
    weights = load_weights(folder, config, DTYPES[name])  # recognises the architecture (weights.architecture)
    try:
        tokenizer, error = Tokenizer.from_folder(folder, config.model_type), None
    except TokenizerError as e:
        tokenizer, error = None, str(e)
    return Bert(config, weights, tokenizer, error, backend=backend, folder=folder, numerics=numerics,
                deterministic=deterministic, backend_options=backend_options)
