"""The pipelines, Classifier, Embedder and the CLI on BERT's relatives, unchanged: each gives what transformers'
pipeline of the same task (or sentence-transformers, or transformers' model) gives on the same folder, for
DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA and ALBERT checkpoints, on both CPU backends. transformers 5
has no question-answering pipeline: answers are checked through the model's logits, as in test_heads_pipelines."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import require
from parity import assert_claim
from test_families import (MODEL_TYPES, NER_LABELS, NLI_LABELS, make_family_checkpoint,  # noqa: F401
                           tokenizer_folders)
from test_heads_pipelines import LONG, same_results

import bertnp
from bertnp import cli
from bertnp.pipelines import FillMask, QuestionAnswerer, TokenClassifier, ZeroShotClassifier
from bertnp.pipelines.common import encode
from bertnp.tokenizer import pad

BACKENDS = ("numpy", "numba")
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé, déjà vu: 中文 and Ørsted in Zürich!",
    "Players kept playing; 3 stocks fell 12% 😀 today, the coach said.",
    "hello",
    "The market rallied after the company reported strong earnings on monday.",
]


def config_of(model_type: str) -> dict:
    if model_type == "distilbert":
        return dict(dim=32, n_layers=2, n_heads=4, hidden_dim=37)
    config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    if model_type in ("electra", "albert"):
        config["embedding_size"] = 16
    return config


@pytest.fixture(scope="module", params=MODEL_TYPES)
def family(request, tmp_path_factory, tokenizer_folders):
    """model_type and its checkpoints: token classification, masked LM, NLI, question answering, base model."""
    model_type, root = request.param, tmp_path_factory.mktemp(request.param)
    config = config_of(model_type)
    folders = {
        # a classifier drawn with std 1 makes peaked, varied predictions: entities, not all "O"
        "token": make_family_checkpoint(root / "token", model_type, "token", config, 11, tokenizer_folders, 1.0),
        "mlm": make_family_checkpoint(root / "mlm", model_type, "mlm", config, 12, tokenizer_folders, 1.0),
        "nli": make_family_checkpoint(root / "nli", model_type, "sequence", config, 13, tokenizer_folders, 0.3,
                                      labels=NLI_LABELS),
        "qa": make_family_checkpoint(root / "qa", model_type, "qa", config, 14, tokenizer_folders, 1.0),
        "base": make_family_checkpoint(root / "base", model_type, "base", config, 15, tokenizer_folders),
    }
    return model_type, folders


def test_token_classification(family):
    transformers = require("transformers")
    model_type, folders = family
    for aggregation in ("none", "simple", "first"):
        pipe = transformers.pipeline("token-classification", model=folders["token"], aggregation_strategy=aggregation,
                                     device="cpu")
        theirs = pipe(TEXTS)
        if aggregation == "simple":
            labels = {e["entity_group"] for result in theirs for e in result}
            assert len(labels) >= 3, f"{model_type}: predictions should vary: {labels}"
        for backend in BACKENDS:
            ner = TokenClassifier(bertnp.load(folders["token"], backend=backend), aggregation=aggregation)
            worst = same_results(ner(TEXTS), theirs, f"{model_type} ner {aggregation} {backend}")
            print(f"{model_type} ner {aggregation} {backend}: {sum(map(len, theirs))} entities, score error {worst:.1e}")


def test_fill_mask_finds_the_family_mask_token(family, tmp_path):
    transformers = require("transformers")
    model_type, folders = family
    pipe = transformers.pipeline("fill-mask", model=folders["mlm"], device="cpu")
    mask = pipe.tokenizer.mask_token  # [MASK], or <mask> for RoBERTa's tokenizers
    texts = [t.format(mask=mask) for t in ("the team {mask} the game on sunday.", "{mask} fell 12%",
                                           "Café {mask} 中文 😀!", "the {mask} won the {mask} on sunday.")]
    for backend in BACKENDS:
        fill = FillMask(bertnp.load(folders["mlm"], backend=backend))
        assert fill.mask_token == mask
        worst = same_results(fill.fill(texts, top_k=3), [pipe(text, top_k=3) for text in texts],
                             f"{model_type} fill-mask {backend}")
        print(f"{model_type} fill-mask {backend}: score error {worst:.1e}")
    with pytest.raises(bertnp.InputError, match=f"no mask token \\({mask.replace('[', '.').replace(']', '.')}\\)"):
        fill.fill("no mask here")
    # a folder that names no mask or pad token (roberta-base's and xlm-roberta-base's do not) finds BERT's or
    # RoBERTa's by its usual name
    bare = tmp_path / "bare"
    shutil.copytree(folders["mlm"], bare)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (bare / name).exists():
            settings = json.loads((bare / name).read_text())
            settings = {k: v for k, v in settings.items() if k not in ("mask_token", "pad_token")}
            (bare / name).write_text(json.dumps(settings))
    bare_fill = FillMask(str(bare))
    assert bare_fill.mask_token == mask and bare_fill.pad_id == fill.pad_id


def test_zero_shot(family):
    transformers = require("transformers")
    model_type, folders = family
    pipe = transformers.pipeline("zero-shot-classification", model=folders["nli"], device="cpu")
    candidates = ["game", "market", "world news"]
    for backend in BACKENDS:
        zs = ZeroShotClassifier(bertnp.load(folders["nli"], backend=backend))
        for kwargs in ({}, {"multi_label": True}):
            theirs = pipe(TEXTS[:3], candidate_labels=candidates, **kwargs)
            worst = same_results(zs(TEXTS[:3], candidates, **kwargs), theirs, f"{model_type} zero-shot {kwargs}")
            print(f"{model_type} zero-shot {kwargs} {backend}: score error {worst:.1e}")


def test_sequence_classification_equals_the_text_classification_pipeline(family):
    transformers = require("transformers")
    model_type, folders = family
    theirs = transformers.pipeline("text-classification", model=folders["nli"], top_k=None, device="cpu")(TEXTS)
    for backend in BACKENDS:
        ours = bertnp.Classifier(bertnp.load(folders["nli"], backend=backend)).classify(TEXTS, top_k=None)
        for mine, reference in zip(ours, theirs):
            assert [r["label"] for r in mine] == [r["label"] for r in reference], (model_type, mine, reference)
            assert_claim("families", f"{model_type} text classification scores ({backend})",
                         [r["score"] for r in mine], [r["score"] for r in reference], np.float32)


def test_question_answering_through_the_model(family):
    """The pipeline's windows (question and context pairs, a long context in several) through bertnp and through
    transformers' model: the logits agree, and the answers bertnp gives are those transformers' logits give."""
    torch, transformers = require("torch"), require("transformers")
    model_type, folders = family
    hf = getattr(transformers, "AutoModelForQuestionAnswering").from_pretrained(folders["qa"],
                                                                                attn_implementation="eager").eval()
    question, contexts = "who won the game?", [TEXTS[2], LONG]
    for backend in BACKENDS:
        qa = QuestionAnswerer(bertnp.load(folders["qa"], backend=backend))
        for context in contexts:
            windows = encode(qa.model, question, context, qa.max_seq_len, "only_second", 32, overflow=True)
            enc = pad([(np.asarray(w.ids), qa.model.tokenizer.type_ids(w)) for w in windows], qa.model.tokenizer.pad_id)
            inputs = {k: torch.from_numpy(v) for k, v in enc.items() if k != "token_type_ids" or model_type != "distilbert"}
            with torch.no_grad():
                want = hf(**inputs)
            out = qa.model(**enc)
            real = enc["attention_mask"].astype(bool)
            for name in ("start_logits", "end_logits"):
                assert_claim("families", f"{model_type} qa {name} ({backend})", getattr(out, name)[real],
                             getattr(want, name).numpy()[real], np.float32)
            lengths = [len(w.ids) for w in windows]
            through_transformers = qa.postprocess(context, [(w, want.start_logits[i, :n].numpy(),
                                                             want.end_logits[i, :n].numpy())
                                                            for i, (w, n) in enumerate(zip(windows, lengths))],
                                                  3, 15, False, True)
            ours = qa.answer(question, context, top_k=3, doc_stride=32)
            same_results(ours, through_transformers, f"{model_type} qa {backend}")
        assert len(windows) > 1  # the long context took several windows


def test_embedder_equals_sentence_transformers(family):
    sentence_transformers = require("sentence_transformers")
    modules = require("sentence_transformers.sentence_transformer.modules")
    model_type, folders = family
    module = modules.Transformer(folders["base"])
    pooling = modules.Pooling(32, pooling_mode="mean")
    st = sentence_transformers.SentenceTransformer(modules=[module, pooling], device="cpu")
    want = st.encode(TEXTS, convert_to_numpy=True)
    for backend in BACKENDS:
        got = bertnp.Embedder(folders["base"], backend=backend).embed(TEXTS)
        assert_claim("families", f"{model_type} Embedder ({backend})", got, want, np.float32)


def test_cli_info_and_parity(family, capsys):
    model_type, folders = family
    assert cli.main(["info", folders["nli"], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model class"].endswith("ForSequenceClassification") and report["problems"] == []
    assert report["family"].endswith(f"(model_type {model_type})")
    for folder in (folders["base"], folders["nli"]):  # traced at every module, sequence classifier's logits too
        status = cli.main(["parity", folder, "--against", "transformers", "--backend", "numpy"])
        table = capsys.readouterr().out
        assert status == 0, table
        assert "layer.1.output_norm" in table and ("embeddings.project" in table) == (model_type in ("electra", "albert"))
        assert ("logits" in table) == (folder == folders["nli"])
