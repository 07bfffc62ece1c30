"""Entities from a BertForTokenClassification checkpoint, as transformers' token-classification ("ner")
pipeline finds them (pipelines/token_classification.py), including its aggregation strategies:

- "none": one dict per token, {"entity", "score", "index", "word", "start", "end"};
- "simple": adjacent tokens with the same tag merge into one {"entity_group", "score", ...}, the score
  being their mean; a B- tag starts a new group;
- "first" / "average" / "max": first the word-pieces of a word agree on one label (the first piece's,
  the average of the pieces' distributions, or the piece with the highest score), then as "simple".

start and end are character offsets into the text given (the tokenizer's offsets), so
text[start:end] is the entity as written, accents, CJK and emoji included; "word" is the decoded tokens.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..weights import TOKEN_CLASSIFICATION
from .common import Decoder, encode, host, load_for, positive, run_encodings, softmax, texts_of

AGGREGATIONS = ("none", "simple", "first", "average", "max")


class TokenClassifier:
    """ner = TokenClassifier(model); ner(text) -> [{"entity_group", "score", "word", "start", "end"}, ...]
    (a list per text for a list of texts).

    aggregation: "simple" by default (transformers' pipeline defaults to "none": pass it for per-token
    results).
    ignore_labels: labels left out of the results (default ["O"]).
    stride: a text longer than max_length tokens is split into windows of max_length tokens sharing
    `stride` tokens, and entities found twice in the overlaps are merged as transformers does (needs an
    aggregation other than "none"). Without stride, a long text is truncated to max_length tokens.
    max_length: the window (default: the model's max_length, the tokenizer's model_max_length).
    """

    def __init__(self, model, aggregation: str = "simple", ignore_labels=("O",), stride: int | None = None,
                 max_length: int | None = None, batch_size: int = 32, backend: str | None = None):
        self.model = load_for(model, TOKEN_CLASSIFICATION, "TokenClassifier", backend)
        if aggregation not in AGGREGATIONS:
            raise InputError(f"aggregation={aggregation!r}: expected one of {', '.join(AGGREGATIONS)}")
        self.aggregation = aggregation
        self.ignore_labels = list(ignore_labels) if ignore_labels is not None else ["O"]
        self.max_length = self.model._max_length(max_length)
        if stride is not None:
            specials = self.model.tokenizer.backend.num_special_tokens_to_add(False)
            if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or \
                    not 0 <= stride < self.max_length - specials:
                raise InputError(f"stride={stride!r}: expected an integer from 0 to max_length - {specials} special "
                                 f"tokens - 1 = {self.max_length - specials - 1}")
            if aggregation == "none":
                raise InputError('stride splits long texts into windows, whose entities are merged: choose an '
                                 'aggregation other than "none" (as transformers requires)')
        self.stride = stride
        self.batch_size = positive("batch_size", batch_size)
        self.labels = self.model.labels
        self.decoder = Decoder(self.model)
        self.unk_id = self.decoder.special_id("unk_token", "[UNK]")
        # WordPiece marks word continuations ("##"): a piece is a subword when it is not written as it reads
        self.word_aware = bool(getattr(self.model.tokenizer.backend.model, "continuing_subword_prefix", None))

    def __call__(self, texts):
        items, single = texts_of(texts)
        windows = []  # (text index, Encoding)
        for i, text in enumerate(items):
            for window in encode(self.model, text, None, self.max_length, "longest_first", self.stride or 0,
                                 overflow=self.stride is not None):
                windows.append((i, window))
        logits = run_encodings(self.model, [w for _, w in windows],
                               lambda out, row, n, i: host(out.logits[row, :n]), self.batch_size)  # [n, C] each
        found = [[] for _ in items]
        chunks = [0] * len(items)
        for (i, window), window_logits in zip(windows, logits):
            found[i] += self.entities(items[i], window, softmax(window_logits))
            chunks[i] += 1
        results = [merge_overlapping(entities) if n > 1 else entities for entities, n in zip(found, chunks)]
        return results[0] if single else results

    def entities(self, text: str, window, scores) -> list[dict]:
        """One window's entities after aggregation and ignore_labels (the pipeline's postprocess)."""
        grouped = self.aggregate(self.pre_entities(text, window, scores))
        return [e for e in grouped if e.get("entity") not in self.ignore_labels
                and e.get("entity_group") not in self.ignore_labels]

    def pre_entities(self, text: str, window, scores) -> list[dict]:
        """Every non-special token with its label distribution, offsets and whether it continues a word."""
        pre = []
        for idx, token_scores in enumerate(scores):  # [n, C] -> [C] per token
            if window.special_tokens_mask[idx]:
                continue
            token_id = window.ids[idx]
            word = self.model.tokenizer.backend.id_to_token(token_id)
            start, end = window.offsets[idx]
            written = text[start:end]
            if self.word_aware:
                is_subword = len(word) != len(written)
            else:  # transformers' fallback: no space before the piece
                is_subword = start > 0 and " " not in text[start - 1 : start + 1]
            if token_id == self.unk_id:
                word, is_subword = written, False
            pre.append({"word": word, "scores": token_scores, "start": start, "end": end, "index": idx,
                        "is_subword": is_subword})
        return pre

    def aggregate(self, pre: list[dict]) -> list[dict]:
        if self.aggregation in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append({"entity": self.labels[best], "score": float(p["scores"][best]), "index": p["index"],
                                 "word": p["word"], "start": p["start"], "end": p["end"]})
        else:
            entities = self.aggregate_words(pre)
        return entities if self.aggregation == "none" else self.group_entities(entities)

    def aggregate_words(self, pre: list[dict]) -> list[dict]:
        """first / average / max: the pieces of one word (a piece and the subwords after it) get one label."""
        words, group = [], None
        for p in pre:
            if group is None:
                group = [p]
            elif p["is_subword"]:
                group.append(p)
            else:
                words.append(self.aggregate_word(group))
                group = [p]
        if group is not None:
            words.append(self.aggregate_word(group))
        return words

    def aggregate_word(self, pieces: list[dict]) -> dict:
        if self.aggregation == "first":
            scores = pieces[0]["scores"]
        elif self.aggregation == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.labels[best], "score": float(scores[best]),
                "word": self.decoder.tokens_to_string([p["word"] for p in pieces]),
                "start": pieces[0]["start"], "end": pieces[-1]["end"]}

    def group_entities(self, entities: list[dict]) -> list[dict]:
        """Adjacent entities with the same tag become one group, unless the next one is tagged B-."""
        groups, current = [], []
        for entity in entities:
            if current:
                bi, tag = split_tag(entity["entity"])
                _, last_tag = split_tag(current[-1]["entity"])
                if not (tag == last_tag and bi != "B"):
                    groups.append(self.group(current))
                    current = []
            current.append(entity)
        if current:
            groups.append(self.group(current))
        return groups

    def group(self, entities: list[dict]) -> dict:
        return {"entity_group": entities[0]["entity"].split("-", 1)[-1],
                "score": float(np.mean(np.nanmean(np.array([e["score"] for e in entities], np.float32)))),
                "word": self.decoder.tokens_to_string([e["word"] for e in entities]),
                "start": entities[0]["start"], "end": entities[-1]["end"]}


def split_tag(label: str) -> tuple[str, str]:
    """"B-PER" -> ("B", "PER"); "I-PER" -> ("I", "PER"); a label without B-/I- continues: ("I", label)."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def merge_overlapping(entities: list[dict]) -> list[dict]:
    """Entities of overlapping windows: of those that overlap, the longest (then the higher score) stays."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    merged, previous = [], entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged
