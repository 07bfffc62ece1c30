"""What the server answers with, by what the checkpoint is.

- embedding: a checkpoint without a classifier head (BertModel). Rows are the folder's sentence-transformers
  pooling, as `Embedder` computes them, not yet normalized (each route normalizes as its clients expect).
  With labels, /predict also classifies zero-shot as `Classifier(folder, labels=...)` does.
- classifier: BertForSequenceClassification with two or more labels. Rows are logits.
- reranker: BertForSequenceClassification with one output (a cross-encoder). Rows are logits.

`rows(sequences)` is the only code that runs the model; the batcher's worker thread calls it, one batch
at a time. Everything else here is cheap arithmetic on rows, run by the routes.
"""

from __future__ import annotations

import os

import numpy as np

from ..bert import Bert, load
from ..classifier import Classifier, sigmoid, softmax
from ..embedder import Embedder
from ..errors import InputError
from ..pooling import normalize as unit_length


class ServedModel:
    def __init__(self, model, labels=None, backend: str | None = None, name: str | None = None):
        self.model = model if isinstance(model, Bert) else load(model, backend=backend)
        if self.model.architecture not in ("BertModel", "BertForSequenceClassification"):
            raise InputError(f"{self.model.folder}: bertnp serve answers embeddings and sequence classification; "
                             f"this checkpoint is a {self.model.architecture}")
        if self.model.tokenizer is None:
            raise InputError(f"{self.model.folder}: bertnp serve needs the checkpoint's tokenizer "
                             f"({self.model._tokenizer_error})")
        labels = list(labels) if labels else None
        if self.model.weights.classifier is None:
            self.kind = "embedding"
            self.embedder = Embedder(self.model)
            self.classifier = Classifier(self.model, labels=labels) if labels else None  # zero-shot
        else:
            self.kind = "reranker" if self.model.config.num_labels == 1 else "classifier"
            self.embedder = None
            self.classifier = Classifier(self.model, labels=labels)
        if hasattr(self.model.backend, "wait"):  # a server lives long: prepare the fast path now, in the background
            self.model.backend.wait(0)
        folder = self.model.folder or "model"
        self.name = name or os.path.basename(os.path.normpath(folder))

    # ---- the model (the batcher's worker thread only) ----------------------------------------------------

    def encode(self, items: list, limit: int, truncate: bool = True) -> list:
        """Texts or (text, text) pairs -> (ids, token types) per item, cut at `limit` tokens. With
        truncate=False an item longer than `limit` is an InputError naming it (TEI's truncate=false)."""
        tokenizer = self.model.tokenizer
        if truncate:
            return tokenizer.encode_each(items, limit)
        sequences = tokenizer.encode_each(items, limit + 1)  # one token more shows what would be cut
        for i, (ids, _) in enumerate(sequences):
            if len(ids) > limit:
                raise InputError(f"inputs[{i}] is longer than the model's {limit} tokens: send truncate=true "
                                 "to cut it")
        return sequences

    def rows(self, sequences: list) -> np.ndarray:
        """One forward pass over every sequence: [n, dimension] pooled vectors or [n, labels] logits."""
        reduce, reads_pooler = (_logits, False) if self.embedder is None else \
            (self.embedder._pool, self.embedder.reads_pooler)
        return self.model.run_sequences(sequences, reduce, batch_size=len(sequences), pooler_output=reads_pooler)

    # ---- what the routes need to know and compute --------------------------------------------------------

    @property
    def embed_limit(self) -> int:
        """Tokens per text for the embedding routes: the folder's max_seq_length, as Embedder."""
        return self.embedder.max_length

    @property
    def predict_limit(self) -> int:
        """Tokens per text or pair for /predict and /rerank, as Classifier."""
        return self.classifier.max_length

    @property
    def lowercase(self) -> bool:
        """sentence-transformers' do_lower_case, applied to embedding inputs as Embedder does."""
        return self.embedder is not None and self.embedder.lowercase

    @property
    def dimension(self) -> int | None:
        return self.embedder.dimension if self.embedder is not None else None

    @property
    def labels(self) -> list | None:
        return self.classifier.labels if self.classifier is not None else None

    @property
    def description(self) -> str:
        if self.kind == "embedding":
            return "an embedding model" + (" with zero-shot labels" if self.classifier is not None else "")
        count = len(self.labels)
        return f"a {self.kind} with {count} label{'s' if count > 1 else ''}"

    @property
    def can_rerank(self) -> bool:
        """A cross-encoder: one output, or two whose second is "relevant" (as Classifier.rank reads them)."""
        return self.kind != "embedding" and self.model.config.num_labels <= 2

    def embeddings(self, rows: np.ndarray, normalize: bool | None, dimensions: int | None) -> np.ndarray:
        """Pooled rows -> what an embedding route returns. normalize None follows the folder (Embedder);
        dimensions keeps the first values and re-normalizes them to unit length (Matryoshka, as TEI)."""
        if dimensions is not None:
            return unit_length(rows[:, :dimensions])
        if normalize if normalize is not None else self.embedder.normalize:
            return unit_length(rows)
        return rows

    def scores(self, rows: np.ndarray, raw: bool) -> np.ndarray:
        """Rows -> [n, labels] scores as Classifier.predict_proba gives them; raw=True: the logits."""
        if self.kind == "embedding":  # zero-shot: cosine similarity to each label's embedding
            return unit_length(rows) @ self.classifier.label_vectors.T
        if raw:
            return rows
        return {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[self.classifier.activation](rows)

    def relevance(self, rows: np.ndarray, raw: bool) -> np.ndarray:
        """Cross-encoder rows -> [n] relevance scores, the column Classifier.rank reads."""
        column = 1 if rows.shape[1] == 2 else 0
        return self.scores(rows, raw)[:, column]

    def info(self) -> dict:
        """TEI's model_type: {"embedding": {"pooling"}} or {"classifier"/"reranker": {"id2label", "label2id"}}."""
        if self.kind == "embedding":
            about = {"pooling": ",".join(self.embedder.pooling)}
            if self.classifier is not None:
                about["zero_shot_labels"] = self.labels
            return {"embedding": about}
        labels = self.labels
        return {self.kind: {"id2label": {str(i): label for i, label in enumerate(labels)},
                            "label2id": {label: i for i, label in enumerate(labels)}}}


def _logits(out, mask):
    return out.logits
