"""Embedder against sentence-transformers' encode on all-MiniLM-L6-v2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require
from parity import assert_close
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
    error = assert_close("Embedder vs sentence-transformers", ours, theirs, 1e-5)
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
    assert_close(f"pooling {pooling}", ours.embed(TEXTS), reference.encode(TEXTS), 1e-5)


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
