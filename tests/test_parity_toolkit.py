"""The parity toolkit: traces, numerics switches, `bertnp parity`, `bertnp explain` and its pictures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import WEIGHTS, require

import bertnp
from bertnp import parity
from bertnp.model import TRANSFORMERS

TINY = os.path.join(WEIGHTS, "tiny")
BERTNP = shutil.which("bertnp", path=os.path.dirname(sys.executable)) or shutil.which("bertnp")
TEXTS = ["the team won the game on sunday", "hello", ("who won", "the team won")]


def run(*args):
    return subprocess.run([BERTNP, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_trace_names_shapes_and_consistency(backend):
    model = bertnp.load(TINY, backend=backend)
    enc = model.tokenize(TEXTS)
    out = model(**enc, output_trace=True, output_hidden_states=True, output_attentions=True)
    assert list(out.trace) == parity.forward_order(2)
    B, T = enc["input_ids"].shape
    assert out.trace["layer.0.q"].shape == (B, 4, T, 8)
    assert out.trace["layer.1.scores"].shape == (B, 4, T, T)
    assert out.trace["layer.0.activation_input"].shape == (B, T, 37)
    real = enc["attention_mask"].astype(bool)
    np.testing.assert_array_equal(out.trace["layer.1.output_norm"][real], out.last_hidden_state[real])
    np.testing.assert_array_equal(out.trace["layer.0.probs"], out.attentions[0])
    np.testing.assert_array_equal(out.trace["logits"], out.logits)
    assert model(**enc).trace is None  # off unless asked for


def test_float64_tracing_and_truth():
    enc = bertnp.load(TINY).tokenize(TEXTS)
    ours = parity.trace_bertnp(bertnp.load(TINY), enc)
    truth = parity.trace_bertnp(bertnp.load(TINY, dtype="float64"), enc)
    assert truth["layer.1.output_norm"].dtype == np.float64
    rows = parity.compare_traces(ours, truth, enc["attention_mask"], 2)
    assert [r.name for r in rows] == parity.forward_order(2)
    assert all(r.max_abs < 1e-5 and not r.over for r in rows), [(r.name, r.max_abs) for r in rows if r.over]


def fully_masked_batch(model):
    enc = model.tokenize(["the team won the game", "hello"])
    enc["attention_mask"][1] = 0
    return enc


def test_mask_switch_moves_only_fully_masked_rows():
    model = bertnp.load(TINY, backend="numpy")
    enc = fully_masked_batch(model)
    default = model(**enc).last_hidden_state
    tf_style = model(**enc, numerics=replace(TRANSFORMERS, mask="-10000")).last_hidden_state
    infinite = model(**enc, numerics=replace(TRANSFORMERS, mask="-inf")).last_hidden_state
    np.testing.assert_array_equal(tf_style[0], default[0])  # exp(-10000) is 0: partly masked rows agree
    np.testing.assert_array_equal(infinite[0], default[0])
    assert not np.allclose(tf_style[1], default[1])  # -10000 on every key: attends as if unmasked
    assert np.isnan(infinite[1]).all() and np.isfinite(default[1]).all()  # -inf: 0/0


def test_gelu_switch_is_the_tanh_approximation():
    model = bertnp.load(TINY, dtype="float64", backend="numpy")
    enc = model.tokenize(TEXTS)
    tanh = model(**enc, output_trace=True, numerics=replace(TRANSFORMERS, gelu="tanh")).trace
    x = tanh["layer.0.activation_input"]
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(tanh["layer.0.activation_output"], expected, rtol=0, atol=1e-15)
    erf = model(**enc).last_hidden_state
    assert 1e-6 < np.abs(model(**enc, numerics=replace(TRANSFORMERS, gelu="tanh")).last_hidden_state - erf).max()


def test_one_pass_variance_loses_accuracy_on_large_means_and_float64_accumulation_gains():
    from bertnp.model import layer_norm
    from bertnp.weights import LayerNorm

    rng = np.random.default_rng(0)
    x = (1000 + rng.normal(size=(64, 384))).astype(np.float32)  # a large mean: one pass cancels
    w = LayerNorm(np.ones(384, np.float32), np.zeros(384, np.float32))
    truth = layer_norm(x.astype(np.float64), LayerNorm(w.weight.astype(np.float64), w.bias.astype(np.float64)), 1e-12, np)

    def error(**numerics):
        return np.abs(layer_norm(x, w, 1e-12, np, replace(TRANSFORMERS, **numerics)) - truth).max()

    assert error(variance="one_pass") > 10 * error()
    assert error(accumulate="float64") < error()


def test_explain_finds_a_tanh_engine():
    """An 'engine' that swapped exact GELU for tanh (as ONNX optimizers may) is explained by gelu=tanh."""
    model = bertnp.load(TINY, backend="numpy")
    enc = model.tokenize(TEXTS)
    other = parity.trace_bertnp(bertnp.load(TINY, dtype="float64", backend="numpy"), enc,
                                replace(TRANSFORMERS, gelu="tanh"))
    ranking = parity.explain(TINY, enc, other, 2)
    assert ranking[0][0] == "gelu=tanh", ranking
    assert ranking[0][1] < 1e-5 < ranking[-1][1]


def test_cli_parity_against_transformers(tmp_path):
    require("transformers")
    report = tmp_path / "parity.json"
    result = run("parity", TINY, "--json", str(report), "--truth", "float64")
    assert result.returncode == 0, result.stderr
    assert "layer.1.ffn_output" in result.stdout and "transformers float32 vs float64 truth" in result.stdout
    columns = json.loads(report.read_text())
    assert set(columns) == {"bertnp float32 vs float64 truth", "transformers float32 vs float64 truth"}
    assert all(row["max_abs"] < 1e-5 for rows in columns.values() for row in rows)
    # an impossible tolerance: the final outputs are over it, so the exit status is 1
    strict = run("parity", TINY, "--atol", "0", "--rtol", "0")
    assert strict.returncode == 1 and "over tolerance" in strict.stderr and "!" in strict.stdout


def test_cli_parity_against_onnx_with_layers(tmp_path):
    torch = require("torch")
    require("onnxruntime")
    import transformers

    class Wrapped(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    hf = transformers.AutoModelForSequenceClassification.from_pretrained(TINY, attn_implementation="eager").eval()
    path = str(tmp_path / "tiny.onnx")
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    torch.onnx.export(Wrapped(hf), example, path, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}},
                      opset_version=17, dynamo=False)
    result = run("parity", TINY, "--against", f"onnx:{path}", "--layers")
    assert result.returncode == 0, result.stderr
    for name in ("embeddings.norm", "layer.0.attention_norm", "layer.1.output_norm", "logits"):
        assert name in result.stdout


def test_pictures_decode_to_the_expected_size(tmp_path):
    plt = require("matplotlib.pyplot")
    result = run("explain", TINY, "the team won", "--out", str(tmp_path / "attention.png"))
    assert result.returncode == 0, result.stderr
    image = plt.imread(tmp_path / "attention.png")
    cell = 0.25 * 5 + 1.0  # 5 tokens: [CLS] the team won [SEP]
    assert image.shape[:2] == (round(100 * cell * 2), round(100 * cell * 4))  # 2 layers x 4 heads at 100 dpi
    zoomed = run("explain", TINY, "the team won", "--out", str(tmp_path / "one.png"), "--layer", "1", "--head", "2")
    assert zoomed.returncode == 0 and plt.imread(tmp_path / "one.png").shape[:2] == (round(100 * cell),) * 2
    assert run("explain", TINY, "x", "--layer", "5", "--out", str(tmp_path / "x.png")).returncode == 1
    result = run("parity", TINY, "--plot", str(tmp_path / "errors.png"))
    assert result.returncode == 0, result.stderr
    assert plt.imread(tmp_path / "errors.png").shape[:2] == (450, 1200)
