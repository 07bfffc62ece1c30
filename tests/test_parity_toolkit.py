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


# ---- ONNX graphs as users make them ---------------------------------------------------------------------


def export(hf, path, outputs, names, inputs=("input_ids", "attention_mask", "token_type_ids")):
    """torch.onnx.export of `outputs(model output)` with dynamic batch and sequence axes, as users export.
    The output names are arbitrary: bertnp must not rely on them."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, *ids):
            return outputs(self.hf(**dict(zip(inputs, ids))))

    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in inputs)
    torch.onnx.export(Wrapped(), example, path, input_names=list(inputs), output_names=names,
                      dynamic_axes={name: {0: "batch", 1: "sequence"} for name in inputs}, opset_version=17,
                      dynamo=False)
    return path


def optimize(source, destination, approximate_gelu):
    """ONNX Runtime's transformer optimizer, as its docs show; approximate_gelu is its
    --enable_gelu_approximation (Gelu -> FastGelu, the tanh form)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_gelu_approximation = approximate_gelu
    optimize_model(source, model_type="bert", num_heads=4, hidden_size=32,  # the tiny checkpoint's
                   optimization_options=options).save_model_to_file(destination)
    return destination


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """BertModel exports of the tiny checkpoint (outputs h [B, T, H] and p [B, H]): as exported, optimized,
    optimized with FastGelu; one with a wrong LayerNorm bias; one whose output maps onto nothing."""
    torch = require("torch")
    require("onnxruntime")
    import onnx
    import transformers

    folder = tmp_path_factory.mktemp("onnx")
    hf = transformers.AutoModel.from_pretrained(TINY, attn_implementation="eager").eval()
    both = lambda out: (out.last_hidden_state, out.pooler_output)  # noqa: E731
    paths = {"exported": export(hf, str(folder / "bert.onnx"), both, ["h", "p"])}
    paths["optimized"] = optimize(paths["exported"], str(folder / "optimized.onnx"), approximate_gelu=False)
    paths["fastgelu"] = optimize(paths["exported"], str(folder / "fastgelu.onnx"), approximate_gelu=True)
    paths["summed"] = export(hf, str(folder / "summed.onnx"), lambda out: out.last_hidden_state.sum(-1), ["s"])
    with torch.no_grad():
        hf.encoder.layer[-1].output.LayerNorm.bias[0] += 1e-3  # the last hidden state is 1e-3 off in one column
    paths["wrong"] = export(hf, str(folder / "wrong.onnx"), both, ["h", "p"])
    ops = {name: {node.op_type for node in onnx.load(path).graph.node} for name, path in paths.items()}
    assert {"LayerNormalization", "Erf"} <= ops["exported"], ops["exported"]
    assert {"EmbedLayerNormalization", "SkipLayerNormalization", "Attention", "BiasGelu"} <= ops["optimized"]
    assert "FastGelu" in ops["fastgelu"] and not ops["fastgelu"] & {"Gelu", "BiasGelu", "Erf"}, ops["fastgelu"]
    return paths


def parity_json(tmp_path, graph, *options):
    report = tmp_path / "parity.json"
    result = run("parity", TINY, "--against", f"onnx:{graph}", "--json", str(report), *options)
    assert "Traceback" not in result.stderr, result.stderr
    rows = {}
    if report.exists():
        (rows,) = json.loads(report.read_text()).values()
        rows = {row["name"]: row for row in rows}
    return result, rows


def ranking(stdout):
    """--explain's lines, [(setting, error)] in printed order."""
    lines = stdout.split("which arithmetic explains the difference", 1)[1].splitlines()[1:]
    return [(label, float(error)) for error, label in (line.split(None, 1) for line in lines if line.strip())]


LAYERS = ["embeddings.norm", "layer.0.attention_norm", "layer.0.output_norm", "layer.1.attention_norm",
          "layer.1.output_norm", "pooler"]


@pytest.mark.parametrize("graph", ["exported", "optimized"])
def test_onnx_graph_outputs_and_layer_norms_are_compared(graphs, tmp_path, graph):
    """The graph's output h is the last LayerNorm's output; it is still compared, as the last hidden state."""
    result, rows = parity_json(tmp_path, graphs[graph], "--layers", "--explain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "h as layer.1.output_norm, p as pooler" in result.stderr
    assert list(rows) == LAYERS, list(rows)
    assert all(row["max_abs"] < 1e-5 and not row["over"] for row in rows.values()), rows
    assert rows["layer.1.output_norm"]["max_abs"] > 0 and rows["pooler"]["max_abs"] > 0  # two engines, not one
    settings = ranking(result.stdout)
    assert "vs onnxruntime's layer.1.output_norm" in result.stdout
    # exact erf GELU (Erf or BiasGelu): the tanh form is the one switch that moves bertnp far away
    assert settings[-1][0] == "gelu=tanh" and settings[-1][1] > 100 * settings[0][1], settings


def test_onnx_fastgelu_graph_is_explained_by_tanh_gelu(graphs, tmp_path):
    result, rows = parity_json(tmp_path, graphs["fastgelu"], "--layers", "--explain")
    assert result.returncode == 1 and "over tolerance: layer.1.output_norm, pooler" in result.stderr, result.stderr
    assert rows["layer.0.attention_norm"]["max_abs"] < 1e-5 < rows["layer.0.output_norm"]["max_abs"], rows
    settings = ranking(result.stdout)
    assert settings[0][0] == "gelu=tanh" and settings[0][1] < 1e-5 < 1e-4 < settings[1][1], settings


def test_onnx_fastgelu_is_the_tanh_gelu():
    """ONNX Runtime's FastGelu computes transformers' gelu_new (model.gelu_tanh) to a few float32 ULPs;
    it is 4e-4 away from the exact erf GELU."""
    ort = require("onnxruntime")
    from onnx import TensorProto, helper

    from bertnp.model import gelu, gelu_tanh

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    graph = helper.make_graph([helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")], "g", [x], [y])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.linspace(-10, 10, 200001, dtype=np.float32)
    got = session.run(None, {"x": x})[0].astype(np.float64)
    tanh = gelu_tanh(x.astype(np.float64), np)
    ulp = np.spacing(np.maximum(np.abs(tanh), 1).astype(np.float32)).astype(np.float64)
    assert (np.abs(got - tanh) / ulp).max() <= 8, np.abs(got - tanh).max()
    assert np.abs(got - gelu(x.astype(np.float64), np)).max() > 4e-4


def test_onnx_wrong_graph_is_over_tolerance(graphs, tmp_path):
    result, rows = parity_json(tmp_path, graphs["wrong"])
    assert result.returncode == 1 and "over tolerance: layer.1.output_norm, pooler" in result.stderr, result.stderr
    assert list(rows) == ["layer.1.output_norm", "pooler"]
    assert abs(rows["layer.1.output_norm"]["max_abs"] - 1e-3) < 1e-5, rows  # the bias it was given
    assert rows["pooler"]["over"], rows


def test_onnx_graph_that_maps_onto_nothing_is_an_error(graphs, tmp_path):
    result, rows = parity_json(tmp_path, graphs["summed"], "--explain")
    assert result.returncode == 1 and not rows, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "no graph output maps onto a bertnp output" in line and "s [5, 64] float32" in line, line
    assert "layer.1.output_norm [5, 64, 32]" in line and "pooler [5, 32]" in line, line


def test_onnx_outputs_map_by_shape_and_position():
    ours = {"layer.1.output_norm": np.zeros((2, 7, 32)), "pooler": np.zeros((2, 32)), "logits": np.zeros((2, 3))}
    f32 = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    outputs = [("x", f32(2, 3)), ("y", f32(2, 7, 32)), ("z", f32(2, 32)), ("hidden_0", f32(2, 7, 32)),
               ("ids", np.zeros((2, 32), np.int64))]
    assert parity.map_outputs("g.onnx", outputs, ours, 2) == {
        "x": "logits", "y": "layer.1.output_norm", "z": "pooler", "hidden_0": None, "ids": None}
    square = {**ours, "logits": np.zeros((2, 32))}  # num_labels == hidden_size: [B, H] could be either
    with pytest.raises(bertnp.errors.InputError, match="'z' of shape \\[2, 32\\] could be any of pooler, logits"):
        parity.map_outputs("g.onnx", outputs[2:3], square, 2)
    with pytest.raises(bertnp.errors.InputError, match="g.onnx: no graph output maps.*y \\[2, 7\\] float32"):
        parity.map_outputs("g.onnx", [("y", f32(2, 7))], ours, 2)
    with pytest.raises(bertnp.errors.InputError, match="nothing to compare"):
        parity.compare_traces({"layer.0.q": np.zeros(1)}, {"layer.0.q": np.zeros(1)}, np.ones((1, 1)), 2)


def test_cli_parity_against_onnx_classifier_logits(tmp_path):
    """A classifier exported with its logits only, and no token_type_ids input: the logits are compared, and
    --explain, with no hidden state or pooler to go by, measures the logits."""
    require("torch")
    require("onnxruntime")
    import transformers

    hf = transformers.AutoModelForSequenceClassification.from_pretrained(TINY, attn_implementation="eager").eval()
    path = export(hf, str(tmp_path / "classifier.onnx"), lambda out: out.logits, ["y"],
                  inputs=("input_ids", "attention_mask"))
    result, rows = parity_json(tmp_path, path, "--explain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(rows) == ["logits"], list(rows)
    assert 0 < rows["logits"]["max_abs"] < 1e-5 and not rows["logits"]["over"], rows
    assert "vs onnxruntime's logits" in result.stdout and ranking(result.stdout)[0][1] < 1e-5


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
