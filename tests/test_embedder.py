"""Embedder against sentence-transformers' encode on all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import require
from parity import assert_claim
from texts import TEXTS

import bertnp
from bertnp.embedder import Embedder, sentence_transformers_settings


@pytest.fixture(scope="module")
def st_model(minilm_path):
    st = require("sentence_transformers")
    return st.SentenceTransformer(minilm_path, device="cpu")


def test_settings_read_from_the_folder(minilm_path):
    settings = sentence_transformers_settings(minilm_path)
    assert settings == {"normalize": True, "pooling": ("mean",), "max_length": 256, "lowercase": False}
    embedder = Embedder(minilm_path)
    assert (embedder.pooling, embedder.normalize, embedder.max_length, embedder.dimension) == (("mean",), True, 256, 384)


def test_embeddings_equal_sentence_transformers(minilm_path, st_model):
    texts = TEXTS + [" ".join(["longer than the 256-token limit of this model"] * 40)]
    ours = Embedder(minilm_path).embed(texts, batch_size=4)
    theirs = st_model.encode(texts, batch_size=4)
    error = assert_claim("embedder", "Embedder vs sentence-transformers", ours, theirs, np.float32)
    print(f"Embedder vs sentence-transformers max abs error: {error:.2e}")


@pytest.mark.parametrize("pooling", ["cls", "max", "mean_sqrt_len_tokens", ("cls", "mean")])
def test_other_poolings_equal_sentence_transformers(minilm_path, tmp_path, pooling):
    st = require("sentence_transformers")
    modes = (pooling,) if isinstance(pooling, str) else pooling
    transformer = st.models.Transformer(minilm_path, max_seq_length=128)
    pool = st.models.Pooling(384, pooling_mode=modes[0] if len(modes) == 1 else modes)
    reference = st.SentenceTransformer(modules=[transformer, pool], device="cpu")
    reference.save(str(tmp_path))
    ours = Embedder(str(tmp_path))
    assert ours.pooling == modes and not ours.normalize and ours.max_length == 128
    assert_claim("embedder", f"pooling {pooling}", ours.embed(TEXTS), reference.encode(TEXTS), np.float32)


def test_explicit_arguments_override_the_folder(minilm_path):
    embedder = Embedder(minilm_path, pooling="cls", normalize=False, max_length=16)
    vectors = embedder.embed(["a sentence that is long enough to be cut at sixteen tokens by the limit"])
    model = bertnp.load(minilm_path)
    enc = model.tokenize(["a sentence that is long enough to be cut at sixteen tokens by the limit"], max_length=16)
    np.testing.assert_allclose(vectors, model(**enc).last_hidden_state[:, 0], atol=1e-6)


def test_unsupported_module_is_refused(minilm_path, tmp_path):
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.models.Dense"}]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(bertnp.ConfigError, match="Dense"):
        sentence_transformers_settings(str(tmp_path))


def test_no_texts_give_zero_rows_of_the_dimension(minilm_path):
    vectors = Embedder(minilm_path).embed([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32
    assert Embedder(minilm_path, pooling=("cls", "mean")).embed(iter([])).shape == (0, 768)


def test_a_pair_is_one_item_as_in_bert(minilm_path):
    embedder = Embedder(minilm_path, backend="numba")  # one path for both calls (no hand-over between them)
    pair = ("who won the game?", "the team won the game")
    one = embedder.embed(pair)
    assert one.shape == (1, 384)
    np.testing.assert_array_equal(one, embedder.embed([pair]))


def folder_with_max_seq_length(minilm_path, tmp_path, value):
    for name in os.listdir(minilm_path):
        if os.path.isfile(os.path.join(minilm_path, name)):
            os.symlink(os.path.join(minilm_path, name), tmp_path / name)
    pooling = os.path.join(minilm_path, "1_Pooling")
    os.symlink(pooling, tmp_path / "1_Pooling")
    os.remove(tmp_path / "sentence_bert_config.json")
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": value, "do_lower_case": False}))
    return str(tmp_path)


def test_the_folders_max_seq_length_is_capped_but_a_users_is_checked(minilm_path, tmp_path):
    """sentence-transformers min()s a folder's max_seq_length with the model's limit; a value the user
    passes is checked (InputError), not clamped."""
    folder = folder_with_max_seq_length(minilm_path, tmp_path, 1000)
    assert Embedder(folder).max_length == 512
    with pytest.raises(bertnp.InputError, match="max_length=1000: expected an integer from 2 to "
                                                "max_position_embeddings=512"):
        Embedder(folder, max_length=1000)
    with pytest.raises(bertnp.InputError, match="max_length=0: expected an integer"):  # once: silently 256
        Embedder(minilm_path, max_length=0)


def test_a_bad_folder_max_seq_length_is_a_config_error(minilm_path, tmp_path):
    folder = folder_with_max_seq_length(minilm_path, tmp_path, 0)
    with pytest.raises(bertnp.ConfigError, match="sentence_bert_config.json: max_seq_length=0"):
        Embedder(folder)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pooler_output_false_skips_the_pooler_and_changes_nothing_else(minilm_path, backend):
    model = bertnp.load(minilm_path, backend=backend)
    enc = model.tokenize(TEXTS)
    full, lean = model(**enc), model(**enc, pooler_output=False)
    assert full.pooler_output is not None and lean.pooler_output is None
    np.testing.assert_array_equal(lean.last_hidden_state, full.last_hidden_state)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_classifier_on_the_pooler_runs_it_even_without_pooler_output(backend):
    from test_gpu import TINY

    model = bertnp.load(TINY, backend=backend)
    enc = {"input_ids": np.array([[2, 5, 7, 9], [3, 4, 0, 0]]), "attention_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]])}
    full, lean = model(**enc), model(**enc, pooler_output=False)
    np.testing.assert_array_equal(lean.logits, full.logits)
    np.testing.assert_array_equal(lean.pooler_output, full.pooler_output)


def test_embedder_runs_the_pooler_only_when_a_pooling_mode_reads_it(minilm_path, monkeypatch):
    ran = []
    real = bertnp.model.pooler_runs
    monkeypatch.setattr(bertnp.model, "pooler_runs", lambda weights, pooler=True: ran.append(real(weights, pooler)) or ran[-1])
    embedder = Embedder(minilm_path, backend="numba")  # preparing it runs a warm-up pass
    pooling_both = Embedder(embedder.model, pooling=("mean", "pooler"), normalize=False)
    ran.clear()
    mean = embedder.embed(TEXTS, batch_size=4)
    assert ran and not any(ran)
    ran.clear()
    both = pooling_both.embed(TEXTS, batch_size=4)
    assert ran and all(ran)
    model = bertnp.load(minilm_path, backend="numba")
    enc = model.tokenize(TEXTS, max_length=embedder.max_length)
    np.testing.assert_allclose(both[:, 384:], model(**enc).pooler_output, atol=1e-6)
    np.testing.assert_allclose(mean, both[:, :384] / np.linalg.norm(both[:, :384], axis=1, keepdims=True), atol=1e-6)
