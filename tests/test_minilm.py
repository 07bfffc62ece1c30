"""all-MiniLM-L6-v2 (real weights): bertnp against transformers on varied texts, float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require
from parity import compare_outputs, summary
from texts import PAIRS, TEXTS

import bertnp


@pytest.fixture(scope="module")
def hf(minilm_path):
    transformers = require("transformers")
    return {
        "tokenizer": transformers.AutoTokenizer.from_pretrained(minilm_path),
        "model": transformers.AutoModel.from_pretrained(minilm_path, attn_implementation="eager").eval(),
    }


@pytest.mark.parametrize("inputs", [TEXTS, PAIRS], ids=["texts", "pairs"])
def test_token_ids_equal_autotokenizer(minilm_path, hf, inputs):
    model = bertnp.load(minilm_path)
    ours = model.tokenize(inputs)
    if isinstance(inputs[0], tuple):
        theirs = hf["tokenizer"]([a for a, _ in inputs], [b for _, b in inputs], padding=True, truncation=True,
                                 return_tensors="np")
    else:
        theirs = hf["tokenizer"](inputs, padding=True, truncation=True, return_tensors="np")
    assert ours["input_ids"].shape[1] == 512  # the long text truncates at min(512 positions, model_max_length 512)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_vocab_txt_fallback_tokenizes_like_tokenizer_json(minilm_path, tmp_path):
    """Old checkpoints without tokenizer.json: vocab.txt + tokenizer_config.json give the same ids."""
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).symlink_to(f"{minilm_path}/{name}")
    legacy = bertnp.load(tmp_path)
    assert legacy.tokenizer.source.endswith("vocab.txt")
    for inputs in (TEXTS, PAIRS):
        ours, theirs = legacy.tokenize(inputs), bertnp.load(minilm_path).tokenize(inputs)
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inputs", [TEXTS, PAIRS], ids=["texts", "pairs"])
def test_minilm_matches_transformers(minilm_path, hf, inputs, dtype, backend):
    torch = require("torch")
    model = bertnp.load(minilm_path, dtype=dtype.__name__, backend=backend)
    enc = model.tokenize(inputs, max_length=128)
    out = model(**enc, output_hidden_states=True, output_attentions=True)
    reference = hf["model"].double() if dtype == np.float64 else hf["model"].float()
    with torch.no_grad():
        theirs = reference(**{k: torch.from_numpy(v) for k, v in enc.items()}, output_hidden_states=True,
                           output_attentions=True)
    ref = {
        "last_hidden_state": theirs.last_hidden_state.numpy(),
        "pooler_output": theirs.pooler_output.numpy(),
        "hidden_states": [h.numpy() for h in theirs.hidden_states],
        "attentions": [a.numpy() for a in theirs.attentions],
    }
    errors = compare_outputs(out, ref, enc["attention_mask"], dtype, claim="minilm")  # real tokens
    print(f"MiniLM {backend} {dtype.__name__} max abs error at real tokens: {summary(errors)}")
    if backend == "numpy" and dtype == np.float64:  # the reference path computes padded positions too
        errors = compare_outputs(out, ref, enc["attention_mask"], dtype, real_tokens_only=False, claim="minilm_padded")
        print(f"MiniLM {backend} {dtype.__name__} max abs error at every position: {summary(errors)}")
