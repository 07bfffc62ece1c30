"""Extractive question answering with a BertForQuestionAnswering checkpoint, as transformers 4.x's
question-answering pipeline answers (transformers 5 removed it; weights/qa holds 4.57's answers).

The question and the context are tokenized as a pair, truncating only the context ("only_second"); a
context that does not fit in max_seq_len tokens is cut into windows that share doc_stride tokens. In each
window, tokens outside the context get a logit of -10000 (the [CLS] token too, after the softmax), the
start and end logits become probabilities, and a span (s, e) scores p_start(s) * p_end(e) when
s <= e < s + max_answer_len. Spans map back to characters of the context through the tokenizer's offsets,
widened to whole words (align_to_words); answers with the same text, found in several windows, add up
their scores.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..weights import QUESTION_ANSWERING
from .common import Decoder, encode, host, load_for, positive, run_encodings

MASKED = -10000.0  # the pipeline's logit for tokens that cannot be part of an answer


class QuestionAnswerer:
    """qa = QuestionAnswerer(model); qa.answer(question, context) -> {"score", "start", "end", "answer"},
    start and end being character offsets into the context (a list of top_k dicts when top_k > 1).

    max_seq_len: tokens per window, question included (default: the smaller of 384 and the model's
    max_length, as the pipeline).
    """

    def __init__(self, model, max_seq_len: int | None = None, batch_size: int = 32, backend: str | None = None):
        self.model = load_for(model, QUESTION_ANSWERING, "QuestionAnswerer", backend)
        self.max_seq_len = self.model._max_length(max_seq_len if max_seq_len is not None else
                                                   min(384, self.model.max_length), "max_seq_len")
        self.batch_size = positive("batch_size", batch_size)
        self.cls_id = Decoder(self.model).special_id("cls_token", "[CLS]")  # kept answerable: "no answer"

    def answer(self, question, context, top_k: int = 1, max_answer_len: int = 15, doc_stride: int | None = None,
               handle_impossible_answer: bool = False, align_to_words: bool = True):
        """The best answer(s) to a question in a context: a dict, or a list of top_k dicts best first
        (fewer when the context has fewer spans). question and context may be equal-length lists: then
        one result per pair.

        max_answer_len: the longest answer, in tokens (default 15, the pipeline's). doc_stride: tokens
        shared by consecutive windows of a long context (default: the pipeline's, min(max_seq_len // 2,
        128)). handle_impossible_answer: also offer the empty answer, scored by [CLS]'s start and end
        probabilities (the lowest over windows).
        """
        top_k, max_answer_len = positive("top_k", top_k), positive("max_answer_len", max_answer_len)
        stride = min(self.max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 0 <= stride <= self.max_seq_len:
            raise InputError(f"doc_stride={doc_stride!r}: expected an integer from 0 to max_seq_len={self.max_seq_len}")
        pairs, single = _pairs(question, context)
        windows = []  # (pair index, Encoding)
        for i, (q, c) in enumerate(pairs):
            for window in encode(self.model, q, c, self.max_seq_len, "only_second", int(stride), overflow=True):
                windows.append((i, window))
        logits = run_encodings(self.model, [w for _, w in windows],
                               lambda out, row, n, i: (host(out.start_logits[row, :n]), host(out.end_logits[row, :n])),
                               self.batch_size)
        per_pair = [[] for _ in pairs]
        for (i, window), (start, end) in zip(windows, logits):
            per_pair[i].append((window, start, end))
        results = [self.postprocess(pairs[i][1], per_pair[i], top_k, max_answer_len, handle_impossible_answer,
                                    align_to_words) for i in range(len(pairs))]
        results = [r[0] if top_k == 1 and r else r for r in results]
        return results[0] if single else results

    __call__ = answer

    def postprocess(self, context, windows, top_k, max_answer_len, handle_impossible_answer, align_to_words):
        """The pipeline's postprocess: candidate spans of every window, merged by text, best first."""
        min_null_score = 1000000.0  # large and positive
        answers = []
        for window, start, end in windows:
            # p_mask: 1 where a token cannot be in the answer (question, special tokens), [CLS] kept
            p_mask = np.array([s != 1 for s in window.sequence_ids], np.int64)
            p_mask[np.asarray(window.ids) == self.cls_id] = 0
            starts, ends, scores, min_null_score = select_starts_ends(
                start, end, p_mask, min_null_score, top_k * 2 + 10 if align_to_words else top_k,
                handle_impossible_answer, max_answer_len)
            for s, e, score in zip(starts, ends, scores):
                first, last = char_span(window, int(s), int(e), align_to_words)
                text = context[first:last]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score.item()
                else:
                    answers.append({"score": score.item(), "start": first, "end": last, "answer": text})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        return sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]


def select_starts_ends(start, end, p_mask, min_null_score, top_k, handle_impossible_answer, max_answer_len):
    """Start and end logits [n] -> the top_k spans (starts, ends, scores) of one window."""
    allowed = np.abs(p_mask - 1)  # 1 for context tokens and [CLS]
    start = np.where(allowed == 0, MASKED, start)[None]  # [1, n]
    end = np.where(allowed == 0, MASKED, end)[None]
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0  # [CLS] is never a span's start or end
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, allowed)
    return starts, ends, scores, min_null_score


def decode_spans(start, end, top_k, max_answer_len, allowed):
    """Span scores p_start(s) * p_end(e) for s <= e < s + max_answer_len; the top_k, best first, among
    spans that start and end on allowed tokens (DrQA's decoding, as the pipeline)."""
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))  # [1, n, 1] @ [1, 1, n] -> [1, n, n]
    candidates = np.tril(np.triu(outer), max_answer_len - 1)  # e >= s and e - s < max_answer_len
    flat = candidates.flatten()
    if top_k == 1:
        best = [np.argmax(flat)]
    elif len(flat) < top_k:
        best = np.argsort(-flat)
    else:
        idx = np.argpartition(-flat, top_k)[0:top_k]
        best = idx[np.argsort(-flat[idx])]
    starts, ends = np.unravel_index(best, candidates.shape)[1:]
    keep = np.isin(starts, allowed.nonzero()) & np.isin(ends, allowed.nonzero())
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[0, starts, ends]


def char_span(window, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """Tokens s..e -> characters of the context: whole words when aligning (and the tokens have words)."""
    if align_to_words:
        try:
            first = window.word_to_chars(window.token_to_word(s), sequence_index=1)[0]
            last = window.word_to_chars(window.token_to_word(e), sequence_index=1)[1]
            return first, last
        except Exception:  # tokens without a word ([CLS]): their offsets, as the pipeline falls back
            pass
    return window.offsets[s][0], window.offsets[e][1]


def _pairs(question, context) -> tuple[list, bool]:
    if isinstance(question, str) and isinstance(context, str):
        pairs, single = [(question, context)], True
    elif isinstance(question, (list, tuple)) and isinstance(context, str):
        pairs, single = [(q, context) for q in question], False
    elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
        if len(question) != len(context):
            raise InputError(f"{len(question)} questions but {len(context)} contexts: give one context per "
                             "question, or one context for all")
        pairs, single = list(zip(question, context)), False
    else:
        raise InputError("question and context must be strings, or lists of strings")
    for q, c in pairs:
        for name, value in (("question", q), ("context", c)):
            if not isinstance(value, str) or not value:
                raise InputError(f"{name} must be a non-empty string, got {value!r}")
    if not pairs:
        raise InputError("no question given")
    return pairs, single
