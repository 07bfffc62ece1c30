"""The README's "Reading bertnp" section, generated from the code: one sentence walked through
bertnp/model.py in file order, each step with the function that computes it and the shape it produces.

    python -m bertnp.reading weights/minilm      # prints the section; tests/test_reading.py keeps README in step
"""

from __future__ import annotations

import inspect
import sys

from . import model
from .bert import load

SENTENCE = "The cat sat on the mat."
# tap name -> the model.py function that produces it (first layer shown; the others repeat it)
STEPS = [
    ("embeddings.sum", model.embeddings, "word + token type + position embeddings"),
    ("embeddings.norm", model.layer_norm, "LayerNorm of the sum"),
    ("layer.0.q", model.split_heads, "queries, split into heads"),
    ("layer.0.k", model.split_heads, "keys"),
    ("layer.0.v", model.split_heads, "values"),
    ("layer.0.scores", model.self_attention, "Q K^T / sqrt(D) + mask bias"),
    ("layer.0.probs", model.softmax, "softmax over keys"),
    ("layer.0.context", model.merge_heads, "probs @ V, heads merged back"),
    ("layer.0.attention_output", model.linear, "output projection"),
    ("layer.0.attention_norm", model.layer_norm, "residual + LayerNorm"),
    ("layer.0.activation_input", model.linear, "intermediate projection"),
    ("layer.0.activation_output", model.gelu, "GELU"),
    ("layer.0.ffn_output", model.linear, "output projection"),
    ("layer.0.output_norm", model.layer_norm, "residual + LayerNorm: the layer's output"),
    ("pooler", model.pooler, "tanh(dense([CLS]))"),
]


# each fast-path kernel (bertnp.fast, bertnp/kernels/): the model.py functions it replaces, and what it fuses
KERNELS = [
    ("bertnp/kernels/cpu.py", "pack", ("mask_bias",), "which tokens are real: the fast path computes those rows only"),
    ("bertnp/kernels/cpu.py", "embed_layer_norm", ("embeddings", "layer_norm"),
     "gather the three tables, add, normalize"),
    ("bertnp/kernels/packed.py", "matmul", ("linear",), "the GEMM (not the bias), on weights packed at load"),
    ("bertnp/kernels/gemm.py", "matmul", ("linear",),
     "a packed GEMM and the row kernel after it, block by block, the blocks shared with team.py's threads"),
    ("bertnp/kernels/cpu.py", "attention", ("self_attention", "split_heads", "softmax", "merge_heads"),
     "everything after the Q/K/V GEMM, per (sequence, head), at the sequence's own length"),
    ("bertnp/kernels/cpu.py", "bias_residual_layer_norm", ("linear", "layer_norm"),
     "the bias, the residual add and LayerNorm (BertSelfOutput, BertOutput)"),
    ("bertnp/kernels/cpu.py", "bias_activation", ("linear", "gelu"), "the bias and the activation (BertIntermediate)"),
]


def section(model_path: str) -> str:
    bert = load(model_path, backend="numpy")
    enc = bert.tokenize([SENTENCE])
    tokens = [bert.tokenizer.backend.id_to_token(int(i)) for i in enc["input_ids"][0]]
    trace = bert(**enc, output_trace=True).trace
    cfg = bert.config
    lines = [
        f'One sentence, "{SENTENCE}", through all-MiniLM-L6-v2 (L={cfg.num_hidden_layers}, H={cfg.hidden_size}, '
        f"N={cfg.num_attention_heads}, D={cfg.head_size}, I={cfg.intermediate_size}) on the reference path.",
        f"`tokenize` gives {len(tokens)} ids, B=1 and T={len(tokens)}: `{' '.join(tokens)}`. Then, in",
        "[`bertnp/model.py`](bertnp/model.py) order:",
        "",
        "| step | intermediate | shape | computed by |",
        "| --- | --- | --- | --- |",
    ]
    for name, function, what in STEPS:
        shape = "[" + ", ".join(str(n) for n in trace[name].shape) + "]"
        summary = inspect.getdoc(function).splitlines()[0]
        lines.append(f"| {what} | `{name}` | {shape} | `{function.__name__}`: {summary} |")
    lines.append("")
    lines.append(f"Layers 1 to {cfg.num_hidden_layers - 1} repeat layer 0 on its output. `last_hidden_state` is "
                 f"layer {cfg.num_hidden_layers - 1}'s `output_norm`, and the pooler reads its first token.")
    lines += ["", "The default backend runs `bertnp/fast.py` instead: the same arithmetic, with each group of "
              "`model.py` functions fused into one kernel:", "",
              "| kernel | replaces in `model.py` | what it fuses |", "| --- | --- | --- |"]
    for path, kernel, replaced, what in KERNELS:
        lines.append(f"| `{path}` `{kernel}` | {', '.join(f'`{name}`' for name in replaced)} | {what} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(sys.argv[1] if len(sys.argv) > 1 else "weights/minilm"))
