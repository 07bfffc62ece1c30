"""Classifier: pipeline-compatible scores, Spark NLP's options, pairs and reranking, zero-shot."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

from conftest import WEIGHTS, require
from parity import assert_close

import bertnp
from bertnp.classifier import Classifier, split_sentences

TINY = os.path.join(WEIGHTS, "tiny")
TEXTS = ["the team won the game on sunday", "stocks fell 12%", "hello", "the market rallied after the company"]


def tiny_with(tmp_path, **fields):
    for name in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, name), tmp_path / name)
    raw = json.load(open(tmp_path / "config.json"))
    raw.update(fields)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    return str(tmp_path)


@pytest.mark.parametrize("problem_type,function", [("single_label_classification", "softmax"),
                                                    ("multi_label_classification", "sigmoid"),
                                                    ("regression", "none")])
def test_scores_equal_the_transformers_pipeline(tmp_path, problem_type, function):
    transformers = require("transformers")
    folder = tiny_with(tmp_path, problem_type=problem_type)
    classifier = Classifier(folder)
    assert classifier.activation == function
    pipe = transformers.pipeline("text-classification", model=folder, top_k=None, device="cpu")
    theirs = pipe(TEXTS)
    ours = classifier.classify(TEXTS, top_k=None)
    for mine, reference in zip(ours, theirs):
        assert [r["label"] for r in mine] == [r["label"] for r in reference]
        assert_close("pipeline scores", [r["score"] for r in mine], [r["score"] for r in reference], 1e-5)


def test_top_k_and_labels():
    classifier = Classifier(TINY)
    top = classifier.classify(TEXTS, top_k=1)
    assert all(len(r) == 1 for r in top)
    proba = classifier.predict_proba(TEXTS)
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    assert [r[0]["label"] for r in top] == [classifier.labels[i] for i in proba.argmax(1)]
    renamed = Classifier(TINY, labels=["a", "b", "c"]).classify(TEXTS[:1], top_k=None)
    assert {r["label"] for r in renamed[0]} == {"a", "b", "c"}
    with pytest.raises(bertnp.InputError, match="labels has 2 names but the classifier has 3 outputs"):
        Classifier(TINY, labels=["a", "b"])


def test_sigmoid_returns_every_label_over_the_threshold():
    classifier = Classifier(TINY, activation="sigmoid", threshold=0.3)
    proba = classifier.predict_proba(TEXTS)
    for row, result in zip(proba, classifier.classify(TEXTS)):
        expected = sorted((j for j in range(3) if row[j] >= 0.3), key=lambda j: -row[j])
        assert [r["label"] for r in result] == [classifier.labels[j] for j in expected]
    assert any(len(r) > 1 for r in classifier.classify(TEXTS))  # multi-label really happens here


def test_case_insensitive_lowercases_before_wordpiece(tmp_path):
    folder = tiny_with(tmp_path)
    tokenizer = json.load(open(os.path.join(folder, "tokenizer.json")))
    tokenizer["normalizer"]["lowercase"] = False  # a cased tokenizer
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    cased = Classifier(folder, backend="numpy")  # one path (no hand-over between calls): bit-equal results
    lowered = Classifier(folder, case_sensitive=False, backend="numpy")
    np.testing.assert_array_equal(lowered.predict_proba(["THE TEAM WON"]), cased.predict_proba(["the team won"]))
    assert not np.array_equal(cased.predict_proba(["THE TEAM WON"]), cased.predict_proba(["the team won"]))


def test_chunking_averages_window_probabilities():
    text = "the team won the game and the market rallied after the company reported strong earnings on sunday"
    classifier = Classifier(TINY, long_text="chunk", max_length=8, stride=2)
    windows = classifier.model.tokenizer.encode_windows(text, 8, 2)
    assert len(windows) > 2 and all(len(ids) <= 8 for ids, _ in windows)
    # consecutive windows share `stride` tokens (between [CLS] and [SEP])
    assert list(windows[0][0][-3:-1]) == list(windows[1][0][1:3])
    per_window = [Classifier(TINY).model(np.array([ids])).logits for ids, _ in windows]
    expected = np.mean([np.exp(l) / np.exp(l).sum() for l in per_window], axis=0)
    assert_close("chunked probabilities", classifier.predict_proba([text]), expected, 1e-6)


def test_coalesce_averages_sentences():
    document = "The team won the game. Stocks fell 12%! Hello?"
    assert split_sentences(document) == ["The team won the game.", "Stocks fell 12%!", "Hello?"]
    per_sentence = Classifier(TINY).predict_proba(split_sentences(document))
    coalesced = Classifier(TINY, coalesce=True).predict_proba([document, "stocks fell"])
    assert_close("coalesced", coalesced[0], per_sentence.mean(0), 1e-6)
    assert coalesced.shape == (2, 3)


def test_pairs_and_rank_with_a_cross_encoder(tmp_path):
    require("torch")
    from torch_ref import make_checkpoint

    folder = str(tmp_path)
    make_checkpoint(folder, dict(vocab_size=224, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=20, num_labels=1), seed=3)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(os.path.join(TINY, name), tmp_path / name)
    reranker = Classifier(folder)
    assert reranker.activation == "sigmoid"
    docs = ["the team won the game", "stocks fell", "hello", "the market rallied"]
    ranked = reranker.rank("who won the game", docs)
    scores = reranker.predict_proba([("who won the game", d) for d in docs])[:, 0]
    assert [r["index"] for r in ranked] == list(np.argsort(-scores, kind="stable"))
    assert ranked[0]["text"] == docs[ranked[0]["index"]]
    assert len(reranker.rank("who won", docs, top_k=2)) == 2


def test_zero_shot_on_real_weights(minilm_path):
    """The seed's example: a BertModel without a head, classified by embedding similarity."""
    classifier = Classifier(minilm_path, labels=["World", "Sports", "Business", "Sci/Tech"])
    result = classifier.classify(["Microsoft has taken its first step into the metaverse.",
                                  "The Lakers beat the Celtics 110-102 on Sunday night."])
    assert result[0][0]["label"] == "Sci/Tech" and result[0][0]["method"] == "zero-shot-cosine"
    assert result[1][0]["label"] == "Sports"
    with pytest.raises(bertnp.InputError, match="no classifier head"):
        Classifier(minilm_path)


def test_bad_options():
    with pytest.raises(bertnp.InputError, match="activation='tanh'"):
        Classifier(TINY, activation="tanh")
    with pytest.raises(bertnp.InputError, match="long_text='split'"):
        Classifier(TINY, long_text="split")
    with pytest.raises(bertnp.InputError, match="stride=7"):
        Classifier(TINY, long_text="chunk", max_length=8, stride=7).classify(["a b c d e f g h i j"])
    with pytest.raises(bertnp.InputError, match="text pairs"):
        Classifier(TINY, long_text="chunk").classify([("a", "b")])


def test_token_level_checkpoints_point_to_their_pipelines():
    with pytest.raises(bertnp.InputError, match="BertForQuestionAnswering checkpoint classifies tokens or spans"):
        Classifier(os.path.join(WEIGHTS, "qa"))


def test_top_k_none_is_every_label_and_must_otherwise_be_positive():
    """As transformers' pipeline: top_k=None gives every label. 0 once gave no label (and, under sigmoid,
    every label over the threshold), while the CLI's --top-k 0 gave all: now it is an InputError."""
    for activation in ("softmax", "sigmoid"):
        classifier = Classifier(TINY, activation=activation)
        assert all(len(r) == 3 for r in classifier.classify(TEXTS, top_k=None))
        if activation == "softmax":  # under sigmoid, top_k caps the labels over the threshold
            assert all(len(r) == 2 for r in classifier.classify(TEXTS, top_k=2))
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(bertnp.InputError, match=re.escape(f"top_k={bad!r}: expected a positive integer, or None")):
                classifier.classify(TEXTS, top_k=bad)
            with pytest.raises(bertnp.InputError, match=re.escape(f"top_k={bad!r}")):
                classifier.rank("who won", TEXTS, top_k=bad)
    assert len(Classifier(TINY).classify(TEXTS, top_k=np.int64(2))[0]) == 2


def test_no_texts_give_no_rows():
    classifier = Classifier(TINY)
    assert classifier.predict_proba([]).shape == (0, 3) and classifier.predict_proba([]).dtype == np.float32
    assert classifier.classify([]) == [] and classifier.rank("who won", []) == []
