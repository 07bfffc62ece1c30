"""Labels for texts, with the options of transformers' text-classification pipeline and Spark NLP's
BertForSequenceClassification annotator.

- activation: "softmax" (one label per text), "sigmoid" (multi-label: every label whose score reaches
  `threshold`, as Spark NLP does), or "none" (raw logits). The default follows the checkpoint's
  problem_type, as the transformers pipeline does: regression -> none, multi-label or a single output ->
  sigmoid, otherwise softmax.
- case_sensitive=False lower-cases texts before WordPiece (Spark NLP's caseSensitive); None leaves them
  to the tokenizer's own settings.
- long_text="truncate" keeps the first max_length tokens. "chunk" splits a long text into windows of
  max_length tokens, consecutive windows overlapping by `stride` tokens, and averages the windows'
  probabilities.
- coalesce=True splits each document into sentences, classifies each sentence and averages their
  probabilities into one result per document (Spark NLP's coalesceSentences).
- A checkpoint without a classifier head, given `labels=[...]`, classifies zero-shot: the score of a label
  is the cosine similarity between the text's embedding and the label's embedding (mean pooling). Each
  result then says so with "method": "zero-shot-cosine".
"""

from __future__ import annotations

import re

import numpy as np

from . import model
from .bert import Bert, load
from .embedder import Embedder
from .errors import InputError
from .pooling import normalize as unit_length
from .tokenizer import as_batch

ACTIVATIONS = ("softmax", "sigmoid", "none")
LONG_TEXT = ("truncate", "chunk")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def softmax(logits):
    return model.softmax(logits, np)


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))


def default_activation(config) -> str:
    """transformers' text-classification pipeline rule."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def check_top_k(top_k):
    """None (every label) or a positive integer: the rule of classify, rank and the CLI's --top-k."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise InputError(f"top_k={top_k!r}: expected a positive integer, or None for all")
    return None if top_k is None else int(top_k)


def split_sentences(document: str) -> list[str]:
    """Sentences of a document: split after . ! ? (and their CJK forms) followed by whitespace."""
    sentences = [s.strip() for s in SENTENCE_END.split(document) if s.strip()]
    return sentences or [document]


class Classifier:
    def __init__(self, model, labels=None, activation: str | None = None, threshold: float = 0.5,
                 max_length: int | None = None, case_sensitive: bool | None = None, long_text: str = "truncate",
                 stride: int | None = None, coalesce: bool = False, backend: str | None = None,
                 deterministic: bool = False):
        self.model = model if isinstance(model, Bert) else load(model, backend=backend, deterministic=deterministic)
        self.zero_shot = self.model.weights.classifier is None
        if self.model.architecture not in ("BertModel", "BertForSequenceClassification"):
            raise InputError(f"{self.model.folder}: a {self.model.architecture} checkpoint classifies tokens or spans, "
                             "not texts: use bertnp.TokenClassifier, QuestionAnswerer or FillMask")
        if self.zero_shot:
            if not labels:
                raise InputError("this checkpoint has no classifier head: pass labels=[...] to classify "
                                 "zero-shot by embedding similarity")
            self.embedder = Embedder(self.model, max_length=max_length)
            self.labels = [str(label) for label in labels]
            self.label_vectors = self.embedder.embed(self.labels)  # [L, H]
            self.label_vectors = unit_length(self.label_vectors)
        else:
            self.labels = list(labels) if labels is not None else self.model.labels
            if len(self.labels) != self.model.config.num_labels:
                raise InputError(f"labels has {len(self.labels)} names but the classifier has "
                                 f"{self.model.config.num_labels} outputs")
        self.activation = activation or ("none" if self.zero_shot else default_activation(self.model.config))
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        if long_text not in LONG_TEXT:
            raise InputError(f"long_text={long_text!r}: expected one of {', '.join(LONG_TEXT)}")
        self.threshold = float(threshold)
        self.max_length = self.model._max_length(max_length)
        self.case_sensitive = case_sensitive
        self.long_text = long_text
        self.stride = stride if stride is not None else self.max_length // 4
        self.coalesce = coalesce

    def predict_proba(self, texts_or_pairs, batch_size: int = 32, progress=None) -> np.ndarray:
        """[N, L] scores after the activation (cosine similarities when zero-shot), in input order; no
        texts give [0, L], as Embedder.embed([]) gives [0, dimension]."""
        items = as_batch(texts_or_pairs, allow_empty=True)
        if not items:
            return np.zeros((0, len(self.labels)), self.model.dtype)
        if self.case_sensitive is False:
            items = [tuple(t.lower() for t in item) if isinstance(item, tuple) else item.lower() for item in items]
        owners, pieces = [], []  # each piece (sentence or text) and the index of the item it came from
        for i, item in enumerate(items):
            parts = split_sentences(item) if self.coalesce and isinstance(item, str) else [item]
            pieces += parts
            owners += [i] * len(parts)
        sequences, sequence_owner = self._tokenize(pieces, owners)
        scores = self.model.run_sequences(sequences, self._scores, batch_size, progress,  # [S, L]
                                          pooler_output=self.zero_shot and self.embedder.reads_pooler)
        sums = np.zeros((len(items), scores.shape[1]), scores.dtype)
        np.add.at(sums, sequence_owner, scores)
        return sums / np.bincount(sequence_owner, minlength=len(items))[:, None]  # mean over windows/sentences

    def classify(self, texts_or_pairs, top_k: int | None = 1, batch_size: int = 32, progress=None) -> list:
        """One list per text of {"label", "score"} dicts, best first.

        top_k=None gives every label with its score (as transformers' pipeline); otherwise it must be a
        positive integer. With activation="sigmoid", every label whose score reaches `threshold` is
        returned (multi-label); top_k then only caps how many.
        """
        top_k = check_top_k(top_k)
        scores = self.predict_proba(texts_or_pairs, batch_size, progress)
        results = []
        for row in scores:
            order = np.argsort(-row, kind="stable")
            if top_k is not None and self.activation == "sigmoid":
                order = [j for j in order if row[j] >= self.threshold]
                order = order[: top_k] if top_k > 1 else order
            elif top_k is not None:
                order = order[:top_k]
            extra = {"method": "zero-shot-cosine"} if self.zero_shot else {}
            results.append([{"label": self.labels[j], "score": float(row[j]), **extra} for j in order])
        return results

    def rank(self, query: str, documents, top_k: int | None = None, batch_size: int = 32) -> list:
        """Rerank documents for a query with a cross-encoder: [{"index", "score", "text"}], best first.
        top_k: how many to return, None for all."""
        top_k = check_top_k(top_k)
        if not isinstance(query, str):
            raise InputError(f"query must be a string, got {type(query).__name__}")
        documents = list(documents)
        scores = self.predict_proba([(query, d) for d in documents], batch_size)
        column = 1 if scores.shape[1] == 2 else 0  # two-label cross-encoders: the "relevant" column
        order = np.argsort(-scores[:, column], kind="stable")[:top_k]
        return [{"index": int(i), "score": float(scores[i, column]), "text": documents[i]} for i in order]

    def _tokenize(self, pieces, owners):
        if self.long_text == "truncate" or self.zero_shot:
            return self.model.encode_each(pieces, self.max_length), np.asarray(owners)
        sequences, sequence_owner = [], []
        for piece, owner in zip(pieces, owners):
            if isinstance(piece, tuple):
                raise InputError("long_text='chunk' splits single texts; text pairs are truncated instead")
            windows = self.model.tokenizer.encode_windows(piece, self.max_length, self.stride)
            sequences += windows
            sequence_owner += [owner] * len(windows)
        return sequences, np.asarray(sequence_owner)

    def _scores(self, out, mask):
        if self.zero_shot:
            vectors = self.embedder._pool(out, mask)
            vectors = unit_length(vectors)
            return vectors @ self.label_vectors.T  # cosine similarity [b, L]
        logits = out.logits
        return {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[self.activation](logits)
