"""The `bertnp` command, run as a user runs it: the installed entry point in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import WEIGHTS

import bertnp
from bertnp.classifier import Classifier
from bertnp.embedder import Embedder

TINY = os.path.join(WEIGHTS, "tiny")
BERTNP = shutil.which("bertnp", path=os.path.dirname(sys.executable)) or shutil.which("bertnp")


def run(*args, stdin=None):
    assert BERTNP, "the bertnp entry point is not installed (pip install -e .)"
    return subprocess.run([BERTNP, *args], input=stdin, capture_output=True, text=True, timeout=120)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


def test_embed_arguments_and_stdin_equal_the_api():
    texts = ["the team won the game", "stocks fell"]
    expected = Embedder(TINY).embed(texts)
    for result in (run("embed", TINY, *texts), run("embed", TINY, stdin="\n".join(texts) + "\n")):
        assert result.returncode == 0, result.stderr
        rows = jsonl(result.stdout)
        assert [r["text"] for r in rows] == texts
        np.testing.assert_allclose([r["embedding"] for r in rows], expected, atol=1e-6)


def test_embed_to_npy_and_csv(tmp_path):
    (tmp_path / "in.txt").write_text("hello\nthe team won\nstocks fell\n")
    result = run("embed", TINY, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.npy"))
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"),
                               Embedder(TINY).embed(["hello", "the team won", "stocks fell"]), atol=1e-6)
    result = run("embed", TINY, "hello", "--output", str(tmp_path / "out.csv"), "--pooling", "cls", "--normalize")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert len(json.loads(rows[0]["embedding"])) == 32


def test_classify_jsonl_and_csv_inputs(tmp_path):
    texts = ["the team won the game", "stocks fell 12%", "hello"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in texts))
    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "body"], *[[i, t] for i, t in enumerate(texts)]])
    expected = Classifier(TINY).classify(texts, top_k=None)
    for source, option in (("in.jsonl", "--field"), ("in.csv", "--column")):
        result = run("classify", TINY, "--input", str(tmp_path / source), option, "body", "--top-k", "0")
        assert result.returncode == 0, result.stderr
        rows = jsonl(result.stdout)
        assert [r["label"] for r in rows] == [e[0]["label"] for e in expected]
        assert [len(r["labels"]) for r in rows] == [3, 3, 3]


def test_zero_shot_labels_from_the_command_line(minilm_path):
    result = run("classify", minilm_path, "Microsoft has taken its first step into the metaverse.",
                 "--labels", "World,Sports,Business,Sci/Tech")
    assert result.returncode == 0, result.stderr
    assert jsonl(result.stdout)[0]["label"] == "Sci/Tech"


def test_bad_line_names_its_number_and_keeps_earlier_rows(tmp_path, monkeypatch):
    lines = [json.dumps({"text": f"text {i}"}) for i in range(5)] + ["{oops"]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = run("embed", TINY, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 1
    assert "in.jsonl:6: not valid JSON" in result.stderr and "Traceback" not in result.stderr
    assert len(jsonl((tmp_path / "out.jsonl").read_text())) == 5


def test_errors_are_one_line_with_exit_codes(tmp_path):
    result = run("embed", str(tmp_path / "missing"), "x")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "not a folder" in result.stderr
    assert run("embed").returncode == 2
    assert run("frobnicate").returncode == 2
    result = run("embed", str(tmp_path / "missing"), "x", "--debug")
    assert "Traceback" in result.stderr


def test_info_reports_and_checks_agreement(tmp_path):
    result = run("info", TINY, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["architecture"] == "BertForSequenceClassification"
    assert report["labels"] == ["World", "Sports", "Business"] and report["problems"] == []
    for name in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, name), tmp_path / name)
    settings = json.load(open(tmp_path / "tokenizer_config.json"))
    settings["model_max_length"] = 512  # longer than the 64-position table: a disagreement to report
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    result = run("info", str(tmp_path))
    assert result.returncode == 1 and "model_max_length 512 exceeds max_position_embeddings 64" in result.stdout


def test_convert_and_load_pytorch_model_bin(tmp_path):
    """`bertnp convert` and bertnp.load on a folder holding only torch's pytorch_model.bin."""
    from conftest import require

    torch = require("torch")
    from safetensors.torch import load_file

    for name in os.listdir(TINY):
        if name != "model.safetensors":
            shutil.copy(os.path.join(TINY, name), tmp_path / name)
    torch.save(load_file(os.path.join(TINY, "model.safetensors")), tmp_path / "pytorch_model.bin")
    enc = bertnp.load(TINY).tokenize(["the team won the game"])
    expected = bertnp.load(TINY)(**enc).logits
    np.testing.assert_array_equal(bertnp.load(tmp_path)(**enc).logits, expected)  # read directly, no torch
    (tmp_path / "converted").mkdir()
    result = run("convert", str(tmp_path / "pytorch_model.bin"), str(tmp_path / "converted" / "model.safetensors"))
    assert result.returncode == 0, result.stderr
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / name, tmp_path / "converted" / name)
    np.testing.assert_array_equal(bertnp.load(tmp_path / "converted")(**enc).logits, expected)


def test_texts_may_follow_options():
    result = run("classify", TINY, "--top-k", "2", "the team won the game")
    assert result.returncode == 0, result.stderr
    assert jsonl(result.stdout)[0]["text"] == "the team won the game"
    assert run("classify", TINY, "x", "--no-such-flag").returncode == 2
