"""Bad and edge-case inputs to tokenize and the forward pass: a clear bertnp error or a correct result."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from conftest import WEIGHTS

import bertnp

TINY = os.path.join(WEIGHTS, "tiny")


@pytest.fixture(scope="module")
def model():
    return bertnp.load(TINY, backend="numpy")


def test_ids_outside_the_vocabulary(model):
    with pytest.raises(bertnp.InputError, match=r"input_ids holds 224, outside 0..223 \(limit vocab_size\)"):
        model(np.array([[1, 224]]))
    with pytest.raises(bertnp.InputError, match="input_ids holds -1"):
        model(np.array([[1, -1]]))


def test_token_types_and_mask_out_of_range(model):
    with pytest.raises(bertnp.InputError, match="token_type_ids holds 2"):
        model(np.array([[1, 2]]), token_type_ids=np.array([[0, 2]]))
    with pytest.raises(bertnp.InputError, match="attention_mask holds 5"):
        model(np.array([[1, 2]]), attention_mask=np.array([[1, 5]]))


def test_sequence_longer_than_the_position_table(model):
    with pytest.raises(bertnp.InputError, match="65 tokens per sequence, more than max_position_embeddings=64"):
        model(np.ones((1, 65), np.int64))


def test_shapes_and_dtypes(model):
    with pytest.raises(bertnp.InputError, match="must hold integers"):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(bertnp.InputError, match=r"non-empty \[batch, tokens\] array, got shape \[3\]"):
        model(np.array([1, 2, 3]))
    with pytest.raises(bertnp.InputError, match=r"got shape \[1, 0\]"):
        model(np.zeros((1, 0), np.int64))
    with pytest.raises(bertnp.InputError, match=r"attention_mask has shape \[1, 2\], expected \[1, 3\]"):
        model(np.array([[1, 2, 3]]), attention_mask=np.array([[1, 1]]))


def test_lists_are_accepted_and_defaults_match_explicit(model):
    implicit = model([[5, 6, 7]]).last_hidden_state
    explicit = model(np.array([[5, 6, 7]]), attention_mask=np.ones((1, 3), int),
                     token_type_ids=np.zeros((1, 3), int)).last_hidden_state
    np.testing.assert_array_equal(implicit, explicit)


def test_empty_text_list_and_bad_items(model):
    with pytest.raises(bertnp.InputError, match="texts is empty"):
        model.tokenize([])
    with pytest.raises(bertnp.InputError, match=r"texts\[1\] is 3"):
        model.tokenize(["ok", 3])
    assert model.embed([]).shape == (0, model.config.hidden_size)  # as sentence-transformers' encode([])


def test_empty_string_is_cls_sep(model):
    enc = model.tokenize([""])
    cls, sep = model.tokenizer.backend.token_to_id("[CLS]"), model.tokenizer.backend.token_to_id("[SEP]")
    np.testing.assert_array_equal(enc["input_ids"], [[cls, sep]])
    assert np.isfinite(model(**enc).logits).all()


def test_single_string_and_pair(model):
    assert model.tokenize("hello")["input_ids"].shape[0] == 1
    assert model.tokenize(("a question", "an answer"))["token_type_ids"].max() == 1


def test_max_length_validation(model):
    with pytest.raises(bertnp.InputError, match="max_length=100"):
        model.tokenize(["x"], max_length=100)
    assert model.tokenize(["the team won the game"] * 2, max_length=4)["input_ids"].shape == (2, 4)


def test_embed_and_predict_keep_input_order(model):
    texts = ["the team won the game on sunday", "hello", "stocks fell", "the market rallied after the company"]
    one_by_one = np.concatenate([model.predict([t]) for t in texts])
    batched = model.predict(texts, batch_size=3)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    embeddings = model.embed(texts, batch_size=2, normalize=True)
    assert embeddings.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-6)
    for pooling in ("mean", "cls", "max", "pooler"):
        assert model.embed(texts, pooling=pooling).shape == (4, 32)
    with pytest.raises(bertnp.InputError, match="pooling='sum'"):
        model.embed(texts, pooling="sum")
    with pytest.raises(bertnp.InputError, match="batch_size=0"):
        model.embed(texts, batch_size=0)


def test_predict_needs_a_classifier():
    plain = bertnp.load(os.path.join(WEIGHTS, "relative", "relative_key"))
    assert plain.labels is None
    with pytest.raises(bertnp.InputError, match="predict needs a sequence-classification checkpoint"):
        plain.predict(["x"])


@pytest.mark.parametrize("value", [0, 1, 65, 100000, -3, 2.5, True, "16"])
def test_max_length_is_one_rule_everywhere(model, value):
    """Bert, Embedder, Classifier (with a head and zero-shot) and the pipelines check a user's max_length
    the same way: an integer from 2 to max_position_embeddings, else one InputError; never clamped."""
    from bertnp.classifier import Classifier
    from bertnp.embedder import Embedder

    plain = bertnp.load(os.path.join(WEIGHTS, "relative", "relative_key"))  # no head, 20 positions
    for limit, make in ((64, lambda: model.embed(["x"], max_length=value)),
                        (64, lambda: model.tokenize(["x"], max_length=value)),
                        (64, lambda: Embedder(model, max_length=value)),
                        (64, lambda: Classifier(model, max_length=value)),
                        (20, lambda: Classifier(plain, labels=["a", "b"], max_length=value)),
                        (20, lambda: Embedder(plain, max_length=value))):
        if isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= limit:
            continue
        with pytest.raises(bertnp.InputError, match=re.escape(
                f"max_length={value!r}: expected an integer from 2 to max_position_embeddings={limit}")):
            make()
    with pytest.raises(bertnp.InputError, match=r"max_seq_len=1: expected an integer from 2"):
        bertnp.QuestionAnswerer(os.path.join(WEIGHTS, "qa"), max_seq_len=1)


def test_max_length_at_the_limits_is_used_as_given(model):
    from bertnp.embedder import Embedder

    assert Embedder(model, max_length=2).max_length == 2 and Embedder(model, max_length=64).max_length == 64
    assert model.tokenize(["the team won the game"], max_length=2)["input_ids"].shape == (1, 2)


def test_errors_are_the_documented_subclasses(tmp_path, monkeypatch):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(bertnp.ConfigError, match=re.escape(f"{missing}: not a folder")):
        bertnp.load(missing)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(bertnp.ConfigError, match="no-org/no-model: not a folder, and not in the Hugging Face cache"):
        bertnp.load("no-org/no-model")
    for dtype in ("float16", "int8", None, "bogus", 3):
        with pytest.raises(bertnp.InputError, match=re.escape(f"dtype={dtype!r}: bertnp computes in float32 or float64")):
            bertnp.load(TINY, dtype=dtype)
    assert bertnp.load(TINY, dtype=np.float64).dtype == np.float64
    with pytest.raises(bertnp.InputError, match="backend='gpu': expected one of numpy, numba, cupy"):
        bertnp.load(TINY, backend="gpu")
    monkeypatch.setenv("BERTNP_BACKEND", "fast")
    with pytest.raises(bertnp.InputError, match="BERTNP_BACKEND='fast': expected one of numpy, numba, cupy"):
        bertnp.load(TINY)
    assert issubclass(bertnp.ConfigError, bertnp.BertnpError) and issubclass(bertnp.InputError, bertnp.BertnpError)
