"""`bertnp ner`, `bertnp qa`, `bertnp fill-mask` and `bertnp info` on the heads, run as a user runs them."""

from __future__ import annotations

import json
import os

import pytest

from conftest import WEIGHTS
from test_cli import jsonl, run, same_records
from test_heads import make_head_checkpoint

from bertnp.cli import inspect_model
from bertnp.pipelines import FillMask, QuestionAnswerer, TokenClassifier

QA = os.path.join(WEIGHTS, "qa")
CONFIG = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=19)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {head: make_head_checkpoint(tmp_path_factory.mktemp(head), head, CONFIG, seed=21, head_scale=1.0)
            for head in ("token", "mlm")}


def test_ner_command_equals_the_api(folders):
    texts = ["The team won the game in Zürich 中文 😀.", "stocks fell 12%"]
    result = run("ner", folders["token"], *texts, "--backend", "numpy", "--aggregation", "first")
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert [r["text"] for r in rows] == texts
    expected = TokenClassifier(folders["token"], aggregation="first", backend="numpy")(texts)
    same_records([r["entities"] for r in rows], json.loads(json.dumps(expected)))  # words, spans exact; scores 1e-6
    assert any(rows[0]["entities"])


def test_qa_command_with_context_file(tmp_path):
    (tmp_path / "context.txt").write_text("The team won the game on Sunday because the coach played two new players.")
    (tmp_path / "questions.txt").write_text("who won the game?\nwhy?\n")
    result = run("qa", QA, "--input", str(tmp_path / "questions.txt"), "--context-file", str(tmp_path / "context.txt"),
                 "--top-k", "2", "--max-answer-len", "15", "--backend", "numpy", "--output", str(tmp_path / "a.csv"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "a.csv").read_text()
    assert text.splitlines()[0] == "question,answer,score,start,end,answers"
    context = (tmp_path / "context.txt").read_text()
    result = run("qa", QA, "who won the game?", "--context", context, "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    (row,) = jsonl(result.stdout)
    best = QuestionAnswerer(QA, backend="numpy").answer(row["question"], context)
    assert (row["answer"], row["start"], row["end"]) == (best["answer"], best["start"], best["end"])
    result = run("qa", QA, "who?")
    assert result.returncode == 1 and "--context TEXT or --context-file FILE" in result.stderr


def test_qa_command_answers_as_the_pipeline_without_options():
    """max_answer_len defaults to 15 in the command and the API, as in transformers' pipeline: a golden
    case made with 15 comes out the same with no option (it would not with 30)."""
    from test_heads_pipelines import goldens, same_results

    case = next(c for c in goldens() if c["kwargs"] == {"top_k": 10, "max_answer_len": 15})
    result = run("qa", QA, case["question"], "--context", case["context"], "--top-k", "10", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    (row,) = jsonl(result.stdout)
    same_results(row["answers"], case["answers"], "bertnp qa without --max-answer-len")
    longer = QuestionAnswerer(QA, backend="numpy").answer(case["question"], case["context"], top_k=10, max_answer_len=30)
    assert [a["answer"] for a in longer] != [a["answer"] for a in case["answers"]]


def test_fill_mask_command(folders):
    result = run("fill-mask", folders["mlm"], "the team [MASK] the game.", "[MASK] won the [MASK].", "--top-k", "3",
                 "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    fill = FillMask(folders["mlm"], backend="numpy")
    # the API alone on the first text runs a batch of another height than the command's: tokens and
    # sequences equal, scores within the heads' float32 parity (OpenBLAS Haswell sums depend on the height)
    same_records(rows[0]["predictions"], json.loads(json.dumps(fill("the team [MASK] the game.", top_k=3))))
    assert len(rows[1]["predictions"]) == 2  # one list per mask
    assert rows[0]["token_str"] == rows[0]["predictions"][0]["token_str"]
    result = run("fill-mask", folders["mlm"], "no mask", "--backend", "numpy")
    assert result.returncode == 1 and "no mask token ([MASK])" in result.stderr
    result = run("ner", folders["mlm"], "text", "--backend", "numpy")
    assert result.returncode == 1 and "needs a BertForTokenClassification checkpoint" in result.stderr


def test_info_names_the_architecture(folders):
    assert inspect_model(QA)["architecture"] == "BertForQuestionAnswering"
    assert inspect_model(folders["mlm"])["architecture"] == "BertForMaskedLM"
    report = inspect_model(folders["token"])
    assert report["architecture"] == "BertForTokenClassification" and report["labels"][:2] == ["O", "B-PER"]
    result = run("info", QA)
    assert "architecture: BertForQuestionAnswering" in result.stdout
