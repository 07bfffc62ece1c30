"""The `bertnp` command, run as a user runs it: the installed entry point in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import WEIGHTS

import bertnp
from bertnp.classifier import Classifier
from bertnp.embedder import Embedder

TINY = os.path.join(WEIGHTS, "tiny")
BERTNP = shutil.which("bertnp", path=os.path.dirname(sys.executable)) or shutil.which("bertnp")


def run(*args, stdin=None):
    """The command's CompletedProcess, stdout and stderr as text. stdin: text, or bytes (sent as they are)."""
    assert BERTNP, "the bertnp entry point is not installed (pip install -e .)"
    raw = isinstance(stdin, bytes)
    result = subprocess.run([BERTNP, *args], input=stdin, capture_output=True, text=not raw, timeout=120)
    if raw:
        result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


def same_records(got, want, atol=1e-6, where="records"):
    """Equal JSON-like records, except floats, which must be within atol: the command and the API may
    run a text in batches of different heights, and BLAS sums depend on the height (OpenBLAS Haswell).
    1e-6 is the float32 parity the README claims for the heads and the embeddings."""
    if isinstance(want, float):
        assert isinstance(got, float) and abs(got - want) <= atol, f"{where}: {got!r} != {want!r} within {atol}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            same_records(got[key], want[key], atol, f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            same_records(g, w, atol, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


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
        result = run("classify", TINY, "--input", str(tmp_path / source), option, "body", "--top-k", "all")
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
    expected = bertnp.load(TINY, backend="numpy")(**enc).logits
    np.testing.assert_array_equal(bertnp.load(tmp_path, backend="numpy")(**enc).logits, expected)  # no torch
    (tmp_path / "converted").mkdir()
    result = run("convert", str(tmp_path / "pytorch_model.bin"), str(tmp_path / "converted" / "model.safetensors"))
    assert result.returncode == 0, result.stderr
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / name, tmp_path / "converted" / name)
    np.testing.assert_array_equal(bertnp.load(tmp_path / "converted", backend="numpy")(**enc).logits, expected)


def test_texts_may_follow_options():
    result = run("classify", TINY, "--top-k", "2", "the team won the game")
    assert result.returncode == 0, result.stderr
    assert jsonl(result.stdout)[0]["text"] == "the team won the game"
    assert run("classify", TINY, "x", "--no-such-flag").returncode == 2


# ---- reading: undecodable input, closed pipes, Ctrl-C ----------------------------------------------------


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "stdin"])
def test_undecodable_line_is_one_error_line_and_earlier_rows_stay(tmp_path, kind):
    good = [f"text {i}" for i in range(3)]
    lines = {"txt": [t.encode() for t in good] + [b"ok \xff"],
             "stdin": [t.encode() for t in good] + [b"ok \xff"],
             "jsonl": [json.dumps({"text": t}).encode() for t in good] + [b'{"text": "ok \xff"}'],
             "csv": [b"text"] + [t.encode() for t in good] + [b"ok \xff"]}[kind]
    data = b"\n".join(lines) + b"\n"
    output = str(tmp_path / "out.jsonl")
    if kind == "stdin":
        result, name = run("embed", TINY, "--output", output, stdin=data), "<stdin>"
    else:
        (tmp_path / f"in.{kind}").write_bytes(data)
        result, name = run("embed", TINY, "--input", str(tmp_path / f"in.{kind}"), "--output", output), f"in.{kind}"
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{name}:{len(lines)}: not valid UTF-8 (byte 0xff" in result.stderr, result.stderr
    assert [r["text"] for r in jsonl(open(output).read())] == good


def many_texts(tmp_path, n=3000):
    (tmp_path / "many.txt").write_text("".join(f"text number {i} about the team and the game\n" for i in range(n)))
    return str(tmp_path / "many.txt")


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`bertnp embed ... | head -c 50`: the first chunk's write (far more than a pipe holds) meets a closed
    pipe. Nothing on stderr: no BrokenPipeError, no "generator ignored GeneratorExit"."""
    process = subprocess.Popen([BERTNP, "embed", TINY, "--input", many_texts(tmp_path)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(50).startswith(b'{"text": "text number 0')
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and stderr == "", stderr


def test_ctrl_c_prints_one_line(tmp_path):
    """SIGINT while the command is blocked writing a chunk to a full pipe: one line, exit 130."""
    process = subprocess.Popen([BERTNP, "embed", TINY, "--input", many_texts(tmp_path)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(50)  # writing has begun; the chunk is far larger than the pipe's buffer
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.decode() == "bertnp embed: interrupted\n", stderr.decode()


# ---- options: output formats, max_length, top_k ------------------------------------------------------------


@pytest.mark.parametrize("command,output", [("embed", "x.parquet"), ("embed", "x.npz"), ("embed", "x.json"),
                                            ("classify", "x.npy"), ("rank", "x.txt")])
def test_an_unknown_output_format_is_a_usage_error_before_loading(tmp_path, command, output):
    missing_model = str(tmp_path / "no-model")  # never loaded: the usage error comes first
    result = run(command, missing_model, "x", "--query", "q", "--output", str(tmp_path / output)) if command == "rank" \
        else run(command, missing_model, "x", "--output", str(tmp_path / output))
    assert result.returncode == 2, result.stderr
    assert f"argument --output: '{tmp_path / output}': expected a file ending in .jsonl, .csv" in result.stderr
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize("value", ["0", "100000"])
def test_max_length_rule_is_the_apis_in_every_command(value):
    """Once, embed took 0 as "the default" and clamped 100000 while classify refused them."""
    message = f"max_length={value}: expected an integer from 2 to max_position_embeddings=64"
    with pytest.raises(bertnp.InputError, match=message):
        Embedder(TINY, max_length=int(value))
    for command in ("embed", "classify", "rank"):
        result = run(command, TINY, "x", "--max-length", value, *(["--query", "q"] if command == "rank" else []))
        assert result.returncode == 1 and result.stderr == f"bertnp {command}: error: {message}\n", result.stderr
    result = run("embed", TINY, "x y z w", "--max-length", "2")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("source", ["stdin", "empty file"])
def test_no_texts_give_an_npy_of_the_embedding_width(tmp_path, source):
    (tmp_path / "empty.txt").write_text("")
    options = ["--input", str(tmp_path / "empty.txt")] if source == "empty file" else []
    result = run("embed", TINY, *options, "--output", str(tmp_path / "out.npy"), stdin="")
    assert result.returncode == 0, result.stderr
    vectors = np.load(tmp_path / "out.npy")
    assert vectors.shape == (0, 32) and vectors.dtype == np.float32
    assert Embedder(TINY).embed([]).shape == vectors.shape


def test_top_k_all_and_invalid_values_as_in_python():
    texts = ["the team won the game", "stocks fell"]
    result = run("classify", TINY, *texts, "--top-k", "all")
    assert result.returncode == 0, result.stderr
    same_records([r["labels"] for r in jsonl(result.stdout)], Classifier(TINY).classify(texts, top_k=None))
    assert all(len(r["labels"]) == 3 for r in jsonl(result.stdout))
    for value in ("0", "-1"):
        with pytest.raises(bertnp.InputError, match=f"top_k={value}: expected a positive integer, or None"):
            Classifier(TINY).classify(texts, top_k=int(value))
        result = run("classify", TINY, *texts, "--top-k", value)
        assert result.returncode == 1 and f"top_k={value}: expected a positive integer" in result.stderr
    assert run("classify", TINY, "x", "--top-k", "some").returncode == 2


# ---- options Python has: case, long texts, coalescing, pairs, rank -------------------------------------------


def cased_tiny(tmp_path):
    for name in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, name), tmp_path / name)
    tokenizer = json.load(open(tmp_path / "tokenizer.json"))
    tokenizer["normalizer"]["lowercase"] = False  # a cased tokenizer
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return str(tmp_path)


def classify_rows(*args, stdin=None):
    result = run("classify", *args, "--top-k", "all", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return jsonl(result.stdout)


def test_case_sensitivity(tmp_path):
    folder, texts = cased_tiny(tmp_path), ["THE TEAM WON the game", "Stocks Fell"]
    lowered = classify_rows(folder, *texts, "--no-case-sensitive")
    same_records([r["labels"] for r in lowered], Classifier(folder, case_sensitive=False).classify(texts, top_k=None))
    cased = classify_rows(folder, *texts, "--case-sensitive")
    same_records([r["labels"] for r in cased], Classifier(folder, case_sensitive=True).classify(texts, top_k=None))
    assert abs(lowered[0]["labels"][0]["score"] - cased[0]["labels"][0]["score"]) > 1e-3  # the flag changes the tokens


def test_long_text_chunks_and_coalescing():
    text = "the team won the game and the market rallied after the company reported strong earnings on sunday"
    chunked = classify_rows(TINY, text, "--long-text", "chunk", "--max-length", "8", "--stride", "2")
    expected = Classifier(TINY, long_text="chunk", max_length=8, stride=2).classify([text], top_k=None)
    same_records([r["labels"] for r in chunked], expected)
    truncated = Classifier(TINY, max_length=8).classify([text], top_k=None)
    assert abs(truncated[0][0]["score"] - expected[0][0]["score"]) > 1e-3  # chunking is not truncation
    document = "The team won the game. Stocks fell 12%! Hello?"
    coalesced = classify_rows(TINY, document, "--coalesce")
    same_records([r["labels"] for r in coalesced], Classifier(TINY, coalesce=True).classify([document], top_k=None))


def test_text_pairs_from_every_input(tmp_path):
    pairs = [("who won the game", "the team won the game"), ("who won the game", "stocks fell")]
    expected = json.loads(json.dumps(Classifier(TINY).classify(pairs, top_k=None)))
    (tmp_path / "in.txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"q": a, "d": b}) + "\n" for a, b in pairs))
    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["q", "d"], *pairs])
    for options in (["--pairs"], ["--pairs", "--input", str(tmp_path / "in.txt")],
                    ["--input", str(tmp_path / "in.jsonl"), "--field", "q", "--pair-field", "d"],
                    ["--input", str(tmp_path / "in.csv"), "--column", "q", "--pair-column", "d"]):
        rows = classify_rows(TINY, *options, stdin=(tmp_path / "in.txt").read_text())
        assert [(r["text"], r["text_pair"]) for r in rows] == pairs
        same_records([r["labels"] for r in rows], expected, where=" ".join(options))
    result = run("embed", TINY, *[f"{a}\t{b}" for a, b in pairs], "--pairs", "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [(r["text"], r["text_pair"]) for r in rows] == pairs
    np.testing.assert_allclose([json.loads(r["embedding"]) for r in rows], Embedder(TINY).embed(pairs), atol=1e-6)
    assert not np.allclose(Embedder(TINY).embed(pairs), Embedder(TINY).embed([a for a, _ in pairs]), atol=1e-3)
    result = run("classify", TINY, "--pairs", stdin="who won\tthe team\nno tab here\n")
    assert result.returncode == 1 and "<stdin>:2: no TAB: with --pairs each line is TEXT<TAB>TEXT" in result.stderr
    for options in (["--pairs", "--input", str(tmp_path / "in.jsonl")], ["--pair-field", "d", "x"],
                    ["--pair-column", "d", "--input", str(tmp_path / "in.jsonl")]):
        assert run("classify", TINY, *options).returncode == 2


def test_rank_equals_classifier_rank():
    docs = ["the team won the game", "stocks fell", "hello", "the market rallied"]
    result = run("rank", TINY, "--query", "who won the game", *docs)
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    same_records(rows, Classifier(TINY).rank("who won the game", docs))
    assert [r["text"] for r in rows] == [docs[r["index"]] for r in rows] and len(rows) == 4
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    result = run("rank", TINY, "--query", "who won the game", "--top-k", "2", stdin="".join(d + "\n" for d in docs))
    assert [r["index"] for r in jsonl(result.stdout)] == [r["index"] for r in rows[:2]]


def test_rank_needs_a_cross_encoder(minilm_path):
    result = run("rank", minilm_path, "--query", "q", "a text")
    assert result.returncode == 1 and "rank needs a cross-encoder" in result.stderr and "BertModel" in result.stderr
