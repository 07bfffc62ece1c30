"""The token-level heads (heads.py) against transformers 5's BertForTokenClassification,
BertForQuestionAnswering and BertForMaskedLM, on random checkpoints of several shapes, float32 and float64,
both backends; and how bertnp.load recognises each architecture from config.json and the tensors present."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WEIGHTS, require
from parity import assert_claim, assert_close

import bertnp
from bertnp.heads import QuestionAnsweringOutput

TINY = os.path.join(WEIGHTS, "tiny")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ACTS = ["gelu", "gelu_new", "relu", "silu", "quick_gelu"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
NLI_LABELS = ["contradiction", "neutral", "entailment"]
HEADS = {  # head -> (transformers class, outputs compared)
    "token": ("BertForTokenClassification", ("logits",)),
    "qa": ("BertForQuestionAnswering", ("start_logits", "end_logits")),
    "mlm": ("BertForMaskedLM", ("logits",)),
    "nli": ("BertForSequenceClassification", ("logits",)),
}


def make_head_checkpoint(folder, head: str, config: dict, seed: int, head_scale: float = 0.15) -> str:
    """A random transformers checkpoint of `head` with weights/tiny's tokenizer (vocabulary 224).

    Weights are redrawn larger than BERT's init so a wrong op shows; head_scale sets the std of the head's
    own weights (a larger one makes peaked predictions: entities that are not all "O").
    """
    torch, transformers = require("torch"), require("transformers")
    full = dict(vocab_size=224, max_position_embeddings=64, **config)
    if head == "token":
        full.update(id2label=dict(enumerate(NER_LABELS)), label2id={label: i for i, label in enumerate(NER_LABELS)})
    elif head == "nli":
        labels = full.pop("nli_labels", NLI_LABELS)
        full.update(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(seed)
    model = getattr(transformers, HEADS[head][0])(transformers.BertConfig(**full))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.1 * noise)
            elif name.startswith(("classifier.", "qa_outputs.")):
                p.copy_(head_scale * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(TINY, name), os.path.join(folder, name))
    return str(folder)


def run_transformers(folder: str, head: str, enc: dict) -> dict:
    """The head's outputs from transformers, float32 then float64 (the same weights, .double())."""
    torch, transformers = require("torch"), require("transformers")
    model = getattr(transformers, HEADS[head][0]).from_pretrained(folder, attn_implementation="eager").eval()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in enc.items()}
    result = {}
    for dtype in (np.float32, np.float64):
        if dtype == np.float64:
            model = model.double()
        with torch.no_grad():
            out = model(**tensors)
        result[dtype] = {name: getattr(out, name).numpy() for name in HEADS[head][1]}
    return result


@st.composite
def configs(draw):
    heads = draw(st.sampled_from([1, 2, 4]))
    return dict(
        # H >= 4: over 2 features LayerNorm is +-1 (a sign), so ill-conditioned where the two are close
        hidden_size=heads * draw(st.integers(max(2, 4 // heads), 10)),
        num_hidden_layers=draw(st.integers(1, 2)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(3, 40)),
        hidden_act=draw(st.sampled_from(ACTS)),
        type_vocab_size=draw(st.integers(1, 2)),
        layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
    )


def random_batch(seed: int, type_vocab_size: int) -> dict:
    """Random ids with right padding; the longest row sets T."""
    rng = np.random.default_rng(seed)
    B, T = int(rng.integers(1, 4)), int(rng.integers(2, 17))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(5, 224, (B, T)), 0)
    types = (rng.integers(0, type_vocab_size, (B, T)) * mask).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def compare_head(model, enc, want: dict, dtype, real_tokens_only: bool) -> dict:
    """Every head output of model(**enc) against transformers'; returns {name: max abs error}."""
    out = model(**enc)
    keep = enc["attention_mask"].astype(bool) if real_tokens_only else np.ones(enc["input_ids"].shape, bool)
    errors = {}
    for name, reference in want.items():
        got = getattr(out, name)
        assert got is not None, f"{name}: bertnp returned None"
        label = f"{model.architecture} {name} ({np.dtype(dtype).name}, {model.backend.name})"
        if got.ndim >= 2 and got.shape[:2] == keep.shape:  # per token: [B, T, ...]
            errors[name] = assert_claim("heads", label, got[keep], reference[keep], dtype)
        else:
            errors[name] = assert_claim("heads", label, got, reference, dtype)
    return errors


@pytest.mark.parametrize("head", ["token", "qa", "mlm"])
@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_heads_match_transformers(tmp_path_factory, head, data):
    config = data.draw(configs(), label="config")
    seed = data.draw(st.integers(0, 1000), label="seed")
    enc = random_batch(seed, config["type_vocab_size"])
    folder = make_head_checkpoint(tmp_path_factory.mktemp(head), head, config, seed)
    want = run_transformers(folder, head, enc)
    for dtype in (np.float32, np.float64):
        for backend in ("numpy", "numba"):
            model = bertnp.load(folder, dtype=np.dtype(dtype).name, backend=backend)
            assert model.architecture == HEADS[head][0]
            # float32: real tokens (padded states are arbitrary; the fast path leaves them 0);
            # float64 on the reference path: every position
            errors = compare_head(model, enc, want[dtype], dtype,
                                  real_tokens_only=dtype == np.float32 or backend == "numba")
            print(head, np.dtype(dtype).name, backend, {k: f"{v:.1e}" for k, v in errors.items()})


def test_heads_in_deterministic_mode_and_traces(tmp_path):
    """Deterministic mode runs each text alone and stacks the heads' per-token outputs; traces name them."""
    config = dict(hidden_size=12, num_hidden_layers=1, num_attention_heads=3, intermediate_size=17)
    enc = random_batch(5, 2)
    for head in ("token", "qa", "mlm"):
        folder = make_head_checkpoint(tmp_path / head, head, config, seed=1)
        batched = bertnp.load(folder, backend="numpy")(**enc, output_trace=True)
        alone = bertnp.load(folder, backend="numpy", deterministic=True)(**enc, output_trace=True)
        assert type(alone) is type(batched)
        real = enc["attention_mask"].astype(bool)
        for name in HEADS[head][1]:
            assert getattr(alone, name).shape == getattr(batched, name).shape
            assert_close(f"{head} {name} deterministic", getattr(alone, name)[real], getattr(batched, name)[real], 1e-6)
        trace_names = [n for n in batched.trace if n.startswith("head.")]
        assert trace_names == {"token": ["head.logits"], "qa": ["head.start_logits", "head.end_logits"],
                               "mlm": ["head.transform", "head.logits"]}[head]
        assert set(alone.trace) == set(batched.trace)


def test_encoder_only_calls_skip_the_token_heads(tmp_path):
    """embed and run_batches read the encoder only: a masked-LM decoder is not run for them."""
    folder = make_head_checkpoint(tmp_path, "mlm", dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                         intermediate_size=9), seed=3)
    model = bertnp.load(folder, backend="numba")  # one path (no hand-over between the calls)
    enc = model.tokenize(["the team won", "stocks fell"])
    assert model(**enc).logits.shape == (2, enc["input_ids"].shape[1], 224)
    assert model(**enc, heads=False).logits is None
    np.testing.assert_array_equal(model(**enc, heads=False).last_hidden_state, model(**enc).last_hidden_state)
    assert model.embed(["the team won"]).shape == (1, 8)
    assert model.labels is None


def test_untied_and_legacy_masked_lm_heads(tmp_path):
    """tie_word_embeddings=false reads cls.predictions.decoder.*; older checkpoints that store only
    cls.predictions.decoder.bias (not cls.predictions.bias) still load, as transformers ties the two."""
    from safetensors.numpy import load_file, save_file

    config = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=9)
    untied = make_head_checkpoint(tmp_path / "untied", "mlm", {**config, "tie_word_embeddings": False}, seed=4)
    enc = random_batch(4, 2)
    want = run_transformers(untied, "mlm", enc)
    model = bertnp.load(untied, dtype="float64", backend="numpy")
    assert model.weights.masked_lm.decoder is not model.weights.embeddings.word
    compare_head(model, enc, want[np.float64], np.float64, real_tokens_only=False)

    legacy = make_head_checkpoint(tmp_path / "legacy", "mlm", config, seed=5)
    want = run_transformers(legacy, "mlm", enc)
    tensors = load_file(os.path.join(legacy, "model.safetensors"))
    tensors["cls.predictions.decoder.bias"] = tensors.pop("cls.predictions.bias")
    save_file(tensors, os.path.join(legacy, "model.safetensors"), metadata={"format": "pt"})
    model = bertnp.load(legacy, dtype="float64", backend="numpy")
    assert model.weights.masked_lm.decoder is model.weights.embeddings.word  # tied: one array, not a copy
    compare_head(model, enc, want[np.float64], np.float64, real_tokens_only=False)


def edit_config(folder, **fields):
    path = os.path.join(folder, "config.json")
    raw = json.load(open(path))
    raw.update(fields)
    with open(path, "w") as f:
        json.dump(raw, f)


def test_architecture_from_config_and_tensors(tmp_path):
    config = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=9)
    assert bertnp.load(TINY).architecture == "BertForSequenceClassification"
    folders = {head: make_head_checkpoint(tmp_path / head, head, config, seed=6) for head in ("token", "qa", "mlm")}
    for head, folder in folders.items():
        assert bertnp.load(folder).architecture == HEADS[head][0]
        edit_config(folder, architectures=None)  # no name: the tensors decide
        assert bertnp.load(folder).architecture == HEADS[head][0]
    # BertForPreTraining carries the masked-LM head (next-sentence prediction is ignored)
    edit_config(folders["mlm"], architectures=["BertForPreTraining"])
    assert bertnp.load(folders["mlm"]).architecture == "BertForMaskedLM"
    # a name whose head tensor is absent is an error naming both
    edit_config(folders["qa"], architectures=["BertForTokenClassification"])
    with pytest.raises(bertnp.WeightsError, match="names BertForTokenClassification, but the checkpoint has no "
                                                  "tensor classifier.weight"):
        bertnp.load(folders["qa"])
    edit_config(folders["token"], architectures=["BertForSequenceClassification"])
    with pytest.raises(bertnp.WeightsError, match="BertForSequenceClassification reads the pooler, but the "
                                                  "checkpoint has no pooler.dense.weight"):
        bertnp.load(folders["token"])
    edit_config(folders["token"], architectures=["BertForTokenClassification"], id2label={"0": "O", "1": "B-X"},
                label2id=None)
    with pytest.raises(bertnp.WeightsError, match=r"classifier.weight' has shape \[9, 8\], expected \[2, 8\]"):
        bertnp.load(folders["token"])


def test_missing_head_tensors_are_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = make_head_checkpoint(tmp_path, "mlm", dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                         intermediate_size=9), seed=7)
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    del tensors["cls.predictions.transform.LayerNorm.bias"]
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(bertnp.WeightsError, match=r"missing tensor\(s\) cls.predictions.transform.LayerNorm.bias"):
        bertnp.load(folder)


def test_question_answering_output_is_a_bert_output(tmp_path):
    folder = make_head_checkpoint(tmp_path, "qa", dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                        intermediate_size=9), seed=8)
    model = bertnp.load(folder)
    out = model(**model.tokenize(["who won?"]), output_hidden_states=True)
    assert isinstance(out, QuestionAnsweringOutput) and isinstance(out, bertnp.BertOutput)
    assert out.logits is None and out.start_logits.shape == out.end_logits.shape == (1, 5)
    assert len(out.hidden_states) == 2
