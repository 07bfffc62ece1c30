"""ONNX Runtime on the same weights exported with torch.onnx: the plain graph, and the graph fused by
onnxruntime.transformers' optimizer (as fastembed and most apps run BERT).

Threads: intra_op_num_threads = threads, inter_op_num_threads = 1, sequential execution; graph
optimizations ORT_ENABLE_ALL at load.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from engines import embed_sorted, tokenizer

TITLE = "ONNX Runtime"
VARIANTS = ("plain graph", "fused graph")


def prepare(checkpoint: str, folder: str) -> dict:
    """Export the checkpoint's BertModel to ONNX (last_hidden_state, dynamic batch and length), then fuse a
    copy. Runs in a worker: it imports torch."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    name = Path(checkpoint).name
    plain, fused = Path(folder) / "plain.onnx", Path(folder) / "fused.onnx"
    # A fresh model, and eval() on the wrapper: after export the TorchScript exporter restores the wrapper's
    # training flag on every submodule, which would turn dropout on in a model used afterwards.
    model = transformers.BertModel.from_pretrained(checkpoint, attn_implementation="eager").eval()
    wrapper = LastHiddenState(model).eval()
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded example, so that the traced graph keeps the masking
    axes = {0: "batch", 1: "sequence"}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (ids, mask), str(plain), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes})
    notes = [f"{name}: torch.onnx.export (TorchScript exporter, opset 17, dynamic batch and sequence, traced "
             f"with a padded batch so the masking stays in the graph): {time.perf_counter() - start:.1f} s, "
             f"{plain.stat().st_size / 2**20:.0f} MiB"]
    graphs = {"plain graph": str(plain)}
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    try:
        from onnxruntime.transformers import optimizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimizer.optimize_model(str(plain), model_type="bert", opt_level=0,
                                                 num_heads=config["num_attention_heads"],
                                                 hidden_size=config["hidden_size"])
        optimized.save_model_to_file(str(fused))
        graphs["fused graph"] = str(fused)
        stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        notes.append(f"{name}: onnxruntime.transformers optimizer (model_type=bert, opt_level=0) fused {stats}")
    except Exception as e:  # the fused graph is a bonus: the plain one still runs
        notes.append(f"{name}: onnxruntime.transformers optimizer failed: {type(e).__name__}: {e}")
    return {"graphs": graphs, "notes": notes}


def LastHiddenState(model):
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Wrapper(model)


def import_library():
    import onnxruntime  # noqa: F401
    import tokenizers  # noqa: F401


class Engine:
    def __init__(self, checkpoint, variant, threads, prepared):
        import onnxruntime as ort

        graph = prepared["graphs"].get(variant)
        if graph is None:
            raise RuntimeError(f"no {variant} for {checkpoint.name} (see the preparation notes)")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.options, self.graph = options, graph
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer(checkpoint) if (checkpoint / "tokenizer.json").exists() else None

    def hidden(self, ids, mask):
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def embed(self, texts):
        return embed_sorted(self.tokenizer, texts, self.hidden)

    def threads(self) -> str:
        return (f"intra_op_num_threads {self.options.intra_op_num_threads}, inter_op_num_threads "
                f"{self.options.inter_op_num_threads}, sequential")
