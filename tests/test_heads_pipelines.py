"""The pipelines on the heads against transformers' pipelines on the same checkpoints and texts:
token classification (every aggregation, ignore_labels, stride), fill-mask, zero-shot NLI; question
answering against transformers 4.57's answers committed in weights/qa (transformers 5 has no QA pipeline)."""

from __future__ import annotations

import json
import os
import shutil
import unicodedata

import numpy as np
import pytest

from conftest import WEIGHTS, require
from parity import assert_close
from test_heads import make_head_checkpoint

import bertnp
from bertnp.pipelines import FillMask, QuestionAnswerer, TokenClassifier, ZeroShotClassifier

QA = os.path.join(WEIGHTS, "qa")
BACKENDS = ("numpy", "numba")
CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé, déjà vu: 中文 and Ørsted in Zürich!",
    "Players kept playing; 3 stocks fell 12% 😀 today, the coach said.",
    "hello",
    "The market rallied after the company reported strong earnings 日本 東京 on monday.",
    "  spaces   and\ttabs then xyzzy qwerty unknown words  ",
    "the [MASK] token and emoji 🎉🎉 next to words🙂like this",
]
LONG = ("The team won the game on Sunday because the coach played two new players. "
        "Stocks fell on Monday when the bank said profit was weak; Café Zürich 中文 😀 reported strong earnings. ") * 3


def same_results(ours, theirs, what: str) -> float:
    """Equal dicts except scores, which must be within 1e-5; returns the largest score difference."""
    assert len(ours) == len(theirs), f"{what}: {len(ours)} results, transformers has {len(theirs)}:\n{ours}\n{theirs}"
    worst = 0.0
    for mine, reference in zip(ours, theirs):
        if isinstance(reference, list):
            worst = max(worst, same_results(mine, reference, what))
            continue
        assert set(mine) == set(reference), f"{what}: keys {sorted(mine)} != {sorted(reference)}"
        for key in reference:
            if key in ("score", "scores"):
                want = np.asarray(reference[key], np.float64)
                worst = max(worst, assert_close(f"{what} {key}", mine[key], want, 1e-5))
            else:
                assert mine[key] == reference[key], \
                    f"{what}: {key} {mine[key]!r} != {reference[key]!r}\n{mine}\n{reference}"
    return worst


# ---- token classification ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ner_folder(tmp_path_factory):
    # a classifier drawn with std 1 makes peaked, varied predictions: entities, not all "O"
    return make_head_checkpoint(tmp_path_factory.mktemp("ner"), "token", CONFIG, seed=11, head_scale=1.0)


@pytest.mark.parametrize("aggregation", ["none", "simple", "first", "average", "max"])
def test_entities_equal_the_transformers_pipeline(ner_folder, aggregation):
    transformers = require("transformers")
    pipe = transformers.pipeline("token-classification", model=ner_folder, aggregation_strategy=aggregation,
                                 device="cpu")
    theirs = pipe(TEXTS)
    labels = {e.get("entity", e.get("entity_group")) for result in theirs for e in result}
    assert len(labels) >= 4, f"predictions should vary: {labels}"
    for backend in BACKENDS:
        ner = TokenClassifier(bertnp.load(ner_folder, backend=backend), aggregation=aggregation)
        worst = same_results(ner(TEXTS), theirs, f"ner {aggregation} {backend}")
        same_results(ner(TEXTS[1]), theirs[1], "ner one text")  # one text: its list
        print(f"ner {aggregation} {backend}: {sum(map(len, theirs))} entities, max score error {worst:.1e}")


def test_offsets_index_the_original_text(ner_folder):
    """Every token's [start, end) is its characters in the text given: what the tokenizer read there
    (lower-cased, accents stripped), or the text itself for an unknown word (accents, CJK, emoji)."""

    def normalized(written):
        return "".join(c for c in unicodedata.normalize("NFD", written.lower()) if unicodedata.category(c) != "Mn")

    ner = TokenClassifier(ner_folder, aggregation="none", ignore_labels=[])
    unknown = 0
    for text, entities in zip(TEXTS, ner(TEXTS)):
        for e in entities:
            written = text[e["start"] : e["end"]]
            unknown += e["word"] == written and normalized(written) != written
            assert e["word"] == written or e["word"].removeprefix("##") == normalized(written), (e, written)
    assert unknown >= 3  # unknown words (capitals, accents) show as written, not lower-cased
    emoji = [e for e in ner(TEXTS[6]) if e["word"] == "🎉🎉"]
    assert emoji and TEXTS[6][emoji[0]["start"] : emoji[0]["end"]] == "🎉🎉"


def test_ignore_labels(ner_folder):
    transformers = require("transformers")
    pipe = transformers.pipeline("token-classification", model=ner_folder, aggregation_strategy="simple",
                                 device="cpu")
    for ignore in ([], ["O", "PER", "LOC"]):
        same_results(TokenClassifier(ner_folder, ignore_labels=ignore)(TEXTS), pipe(TEXTS, ignore_labels=ignore),
                     f"ignore_labels={ignore}")
    assert any(e["entity_group"] == "O" for r in TokenClassifier(ner_folder, ignore_labels=[])(TEXTS) for e in r)


@pytest.mark.parametrize("stride", [0, 5])
def test_long_texts_split_with_stride(ner_folder, tmp_path, stride):
    transformers = require("transformers")
    folder = tmp_path / "short"
    shutil.copytree(ner_folder, folder)
    settings = json.load(open(folder / "tokenizer_config.json"))
    settings["model_max_length"] = 16  # windows of 16 tokens: the long text takes many
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    texts = [LONG, TEXTS[2]]
    for aggregation in ("simple", "first", "average", "max"):
        pipe = transformers.pipeline("token-classification", model=str(folder), aggregation_strategy=aggregation,
                                     stride=stride, device="cpu")
        theirs = pipe(texts)
        for backend in BACKENDS:
            ner = TokenClassifier(bertnp.load(folder, backend=backend), aggregation=aggregation, stride=stride)
            same_results(ner(texts), theirs, f"stride {stride} {aggregation} {backend}")
    assert len(theirs[0]) > 10  # entities from all over the long text, not only its first window
    with pytest.raises(bertnp.InputError, match='aggregation other than "none"'):
        TokenClassifier(folder, aggregation="none", stride=2)
    with pytest.raises(bertnp.InputError, match="stride=14"):
        TokenClassifier(folder, stride=14)


# ---- question answering ----------------------------------------------------------------------------------


def goldens():
    with open(os.path.join(QA, "goldens.json"), encoding="utf-8") as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_answers_equal_the_transformers_4_pipeline(backend):
    qa = QuestionAnswerer(bertnp.load(QA, backend=backend))
    worst = 0.0
    for case in goldens():
        got = qa.answer(case["question"], case["context"], **case["kwargs"])
        want = case["answers"]
        if case["kwargs"]["top_k"] == 1:
            assert isinstance(got, dict)
            got = [got]
        worst = max(worst, same_results(got, want, f"qa {case['question']!r} {case['kwargs']}"))
    assert max(case["windows"] for case in goldens()) >= 5  # the long context takes several windows
    print(f"qa {backend}: {len(goldens())} cases, max score error {worst:.1e}")


def test_max_answer_len_defaults_to_the_pipelines_15():
    """Every golden made with max_answer_len=15 comes out the same without it; at least one differs at 30
    (bertnp's old default), so this would catch a default other than the pipeline's."""
    qa = QuestionAnswerer(QA)
    differ_at_30 = 0
    for case in goldens():
        if case["kwargs"]["max_answer_len"] != 15:
            continue
        kwargs = {k: v for k, v in case["kwargs"].items() if k != "max_answer_len"}
        got = qa.answer(case["question"], case["context"], **kwargs)
        same_results(got if isinstance(got, list) else [got], case["answers"], f"qa default {case['question']!r}")
        at_30 = qa.answer(case["question"], case["context"], max_answer_len=30, **kwargs)
        differ_at_30 += [a["answer"] for a in (at_30 if isinstance(at_30, list) else [at_30])] != \
            [a["answer"] for a in case["answers"]]
    assert differ_at_30 >= 1


def test_question_lists_and_checks():
    qa = QuestionAnswerer(QA)
    cases = goldens()[:2]
    kwargs = cases[0]["kwargs"]
    both = qa.answer([c["question"] for c in cases], [c["context"] for c in cases], **kwargs)
    assert [b[0]["answer"] for b in both] == [c["answers"][0]["answer"] for c in cases]
    one_context = qa([c["question"] for c in cases], cases[1]["context"], top_k=1, max_answer_len=15)
    same_results([one_context[1]], [qa.answer(cases[1]["question"], cases[1]["context"], max_answer_len=15)],
                 "one context for all questions")
    with pytest.raises(bertnp.InputError, match="2 questions but 1 contexts"):
        qa.answer(["a?", "b?"], ["c"])
    with pytest.raises(bertnp.InputError, match="doc_stride=65"):
        qa.answer("a?", "b", doc_stride=65)
    with pytest.raises(bertnp.InputError, match="needs a BertForQuestionAnswering checkpoint; .* is a "
                                                "BertForSequenceClassification"):
        QuestionAnswerer(os.path.join(WEIGHTS, "tiny"))


def test_golden_checkpoint_logits_equal_transformers_5():
    torch, transformers = require("torch"), require("transformers")
    model = bertnp.load(QA, backend="numpy")
    case = goldens()[1]
    enc = model.tokenize([(case["question"], case["context"]), (case["question"], "Oil prices rose.")])
    hf = transformers.BertForQuestionAnswering.from_pretrained(QA, attn_implementation="eager").eval()
    with torch.no_grad():
        want = hf(**{k: torch.from_numpy(v) for k, v in enc.items()})
    out = model(**enc)
    real = enc["attention_mask"].astype(bool)
    for name in ("start_logits", "end_logits"):
        assert_close(name, getattr(out, name)[real], getattr(want, name).numpy()[real], 1e-5)


# ---- fill-mask -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory):
    return make_head_checkpoint(tmp_path_factory.mktemp("mlm"), "mlm", {**CONFIG, "hidden_act": "gelu_new"}, seed=12)


MASKED = ["the team [MASK] the game on sunday.", "Café [MASK] 中文 😀!", "[MASK] fell 12%",
          "the [MASK] won the [MASK] on sunday.", "players kept [MASK]ing"]


@pytest.mark.parametrize("clean_up", [False, True])
def test_fill_mask_equals_the_transformers_pipeline(mlm_folder, tmp_path, clean_up):
    transformers = require("transformers")
    folder = tmp_path / "mlm"
    shutil.copytree(mlm_folder, folder)
    settings = json.load(open(folder / "tokenizer_config.json"))
    settings["clean_up_tokenization_spaces"] = clean_up
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    pipe = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    for backend in BACKENDS:
        fill = FillMask(bertnp.load(folder, backend=backend))
        for top_k in (1, 5):
            theirs = [pipe(text, top_k=top_k) for text in MASKED]
            worst = same_results(fill.fill(MASKED, top_k=top_k), theirs, f"fill-mask top_k={top_k} {backend}")
            print(f"fill-mask clean_up={clean_up} top_k={top_k} {backend}: max score error {worst:.1e}")
        targets = ["won", "lost", "game", "won", "xyz"]  # "lost" and "xyz" are not in the vocabulary
        same_results(fill.fill(MASKED, targets=targets), [pipe(text, targets=targets) for text in MASKED],
                     f"fill-mask targets {backend}")
    assert fill.fill(MASKED[0])[0]["sequence"] != MASKED[0]
    with pytest.raises(bertnp.InputError, match=r"no mask token \(\[MASK\]\) in 'no mask here'"):
        fill.fill("no mask here")


# ---- zero-shot classification with an NLI checkpoint --------------------------------------------------------


@pytest.mark.parametrize("nli_labels", [["contradiction", "neutral", "entailment"],
                                        ["ENTAILMENT", "neutral", "contradiction"]])
def test_zero_shot_equals_the_transformers_pipeline(tmp_path, nli_labels):
    transformers = require("transformers")
    folder = make_head_checkpoint(tmp_path, "nli", {**CONFIG, "nli_labels": nli_labels}, seed=13, head_scale=1.0)
    pipe = transformers.pipeline("zero-shot-classification", model=folder, device="cpu")
    sequences = TEXTS[:4]
    candidates = ["game", "market", "world news", "oil"]  # words of the tiny vocabulary: no [UNK] ties
    for backend in BACKENDS:
        zs = ZeroShotClassifier(bertnp.load(folder, backend=backend))
        for kwargs in ({}, {"multi_label": True}, {"hypothesis_template": "The topic is {}!"}):
            theirs = pipe(sequences, candidate_labels=candidates, **kwargs)
            worst = same_results(zs(sequences, candidates, **kwargs), theirs, f"zero-shot {kwargs} {backend}")
            print(f"zero-shot {nli_labels[0]} first {kwargs} {backend}: max score error {worst:.1e}")
        # one label: entailment against contradiction; labels as one comma-separated string
        same_results([zs(sequences[0], ["game"])], [pipe(sequences[0], candidate_labels=["game"])], "one label")
        theirs = pipe(sequences[1], candidate_labels="game, world news")
        same_results([zs(sequences[1], "game, world news")], [theirs], "comma-separated labels")
    single = zs(sequences[0], candidates)
    assert abs(sum(single["scores"]) - 1) < 1e-6 and single["sequence"] == sequences[0]
    with pytest.raises(bertnp.InputError, match="has no {} where the label goes"):
        zs(sequences, candidates, hypothesis_template="no slot")


def test_zero_shot_needs_an_entailment_label():
    with pytest.raises(bertnp.InputError, match="field 'label2id' has no label starting with 'entail'"):
        ZeroShotClassifier(os.path.join(WEIGHTS, "tiny"))
