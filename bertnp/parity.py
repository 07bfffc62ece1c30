"""Where and why do two BERT engines differ? Intermediates of bertnp, transformers or ONNX Runtime on the
same inputs, compared one by one in forward order.

Every engine's intermediates are put in bertnp's layout and names (model.bert's tap):
    embeddings.sum, embeddings.norm, embeddings.project (ELECTRA, ALBERT),
    layer.{i}.q / k / v [B, N, T, D], scores / probs [B, N, T, T], context, attention_output,
    attention_norm, activation_input, activation_output, ffn_output, output_norm [B, T, *],
    pooler [B, H], logits [B, C]
and compared on real tokens only: query rows and key columns the mask pads out hold arbitrary values.
BERT's relatives (DistilBERT, RoBERTa, ELECTRA, ALBERT) are traced at the modules of their own that
compute the same intermediates (TRACE_POINTS); num_layers counts layers run (ALBERT's shared ones each time).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .errors import BertnpError, InputError
from .model import NUMERICS_CHOICES, TRANSFORMERS, Numerics

LAYER_NAMES = ("q", "k", "v", "scores", "probs", "context", "attention_output", "attention_norm",
               "activation_input", "activation_output", "ffn_output", "output_norm")
HEAD_NAMES = {"q", "k", "v", "scores", "probs"}  # [B, N, T, *]

TEXTS = [
    "Microsoft has taken its first step into the metaverse.",
    "Hi",
    "Café naïve résumé — 東京 and emoji 😀 in one sentence, with numbers 3.14159.",
    ("Who won the game on Sunday?", "The home team won by three points after a late goal."),
    " ".join(["A long paragraph that repeats itself to fill the batch with many tokens."] * 6),
]


def forward_order(num_layers: int, projected: bool = False) -> list[str]:
    """The intermediates in forward order; projected: with ELECTRA's and ALBERT's embeddings.project."""
    names = ["embeddings.sum", "embeddings.norm"] + ["embeddings.project"] * projected
    for i in range(num_layers):
        names += [f"layer.{i}.{name}" for name in LAYER_NAMES]
    return names + ["pooler", "logits"]


def final_outputs(num_layers: int) -> tuple[str, ...]:
    """The model's outputs in bertnp's names: last hidden state, pooler, logits. They decide the exit status."""
    return f"layer.{num_layers - 1}.output_norm", "pooler", "logits"


def real_entries(name: str, array, mask):
    """The entries of an intermediate that belong to real tokens, flattened."""
    array, real = np.asarray(array), np.asarray(mask).astype(bool)
    short = name.rsplit(".", 1)[-1]
    if name in ("pooler", "logits"):
        return array.reshape(-1)
    if short in ("scores", "probs"):  # [B, N, T, T]: real queries x real keys
        keep = real[:, None, :, None] & real[:, None, None, :]
        return array[np.broadcast_to(keep, array.shape)]
    if short in HEAD_NAMES:  # [B, N, T, D] -> [B, T, N, D]
        return array.transpose(0, 2, 1, 3)[real].reshape(-1)
    return array[real].reshape(-1)  # [B, T, *]


@dataclass
class Row:
    name: str
    max_abs: float
    max_rel: float
    mean_abs: float
    ulp_median: float
    ulp_max: float
    over: bool


def compare(name, got, want, mask, atol, rtol) -> Row:
    a = real_entries(name, got, mask).astype(np.float64)
    b = real_entries(name, want, mask).astype(np.float64)
    diff = np.abs(a - b)
    scale = np.abs(b)
    significant = scale > 1e-3 * (scale.max() if scale.size else 0)  # relative error where it means something
    rel = diff[significant] / scale[significant]
    # in float32 ULPs of the reference value, floored at 1e-3 of the tensor's largest magnitude so that
    # entries near zero (where one ULP is tiny) do not swamp the count
    floor = 1e-3 * (scale.max() if scale.size else 0)
    ulps = diff / np.spacing(np.maximum(scale, floor).astype(np.float32)).astype(np.float64)
    return Row(name=name, max_abs=float(diff.max(initial=0)), max_rel=float(rel.max(initial=0)),
               mean_abs=float(diff.mean()) if diff.size else 0.0, ulp_median=float(np.median(ulps)) if ulps.size else 0.0,
               ulp_max=float(ulps.max(initial=0)), over=bool((diff > atol + rtol * scale).any()))


def compare_traces(ours: dict, theirs: dict, mask, num_layers, atol=1e-5, rtol=1e-5) -> list[Row]:
    """One row per intermediate both traces hold. An error when they share no final output: a comparison
    that cannot fail must not pass."""
    if not any(name in ours and name in theirs for name in final_outputs(num_layers)):
        raise InputError(f"nothing to compare: the two engines share no final output "
                         f"({', '.join(final_outputs(num_layers))}); one gave {sorted(ours) or 'nothing'}, "
                         f"the other {sorted(theirs) or 'nothing'}")
    return [compare(name, ours[name], theirs[name], mask, atol, rtol)
            for name in forward_order(num_layers, projected=True) if name in ours and name in theirs]


# ---- capturing each engine -------------------------------------------------------------------------------


def trace_bertnp(model, enc, numerics: Numerics | None = None) -> dict:
    return model(**enc, output_trace=True, numerics=numerics).trace


# Where each family's transformers modules hold bertnp's intermediates: within a layer, name -> (module path,
# "out" for its output or "in" for its first input). Shapes are bertnp's after the split into heads.
BERT_POINTS = {"q": ("attention.self.query", "out"), "k": ("attention.self.key", "out"),
               "v": ("attention.self.value", "out"), "context": ("attention.self", "out"),
               "attention_output": ("attention.output.dense", "out"), "attention_norm": ("attention.output", "out"),
               "activation_input": ("intermediate.dense", "out"), "activation_output": ("intermediate", "out"),
               "ffn_output": ("output.dense", "out"), "output_norm": ("output", "out")}
TRACE_POINTS = {
    "bert": BERT_POINTS,
    "roberta": BERT_POINTS,
    "electra": BERT_POINTS,
    "distilbert": {"q": ("attention.q_lin", "out"), "k": ("attention.k_lin", "out"), "v": ("attention.v_lin", "out"),
                   "context": ("attention.out_lin", "in"), "attention_output": ("attention.out_lin", "out"),
                   "attention_norm": ("sa_layer_norm", "out"), "activation_input": ("ffn.lin1", "out"),
                   "activation_output": ("ffn.lin2", "in"), "ffn_output": ("ffn.lin2", "out"),
                   "output_norm": ("output_layer_norm", "out")},
    "albert": {"q": ("attention.query", "out"), "k": ("attention.key", "out"), "v": ("attention.value", "out"),
               "context": ("attention.dense", "in"), "attention_output": ("attention.dense", "out"),
               "attention_norm": ("attention.LayerNorm", "out"), "activation_input": ("ffn", "out"),
               "activation_output": ("ffn_output", "in"), "ffn_output": ("ffn_output", "out"),
               "output_norm": ("full_layer_layer_norm", "out")},
}


def transformers_layers(base, family: str) -> list:
    """The base model's layer modules in the order the forward pass runs them (ALBERT runs shared ones in turn)."""
    if family == "distilbert":
        return list(base.transformer.layer)
    if family == "albert":
        config, groups = base.config, base.encoder.albert_layer_groups
        L, G = config.num_hidden_layers, config.num_hidden_groups
        return [layer for i in range(L) for layer in groups[int(i / (L / G))].albert_layers]
    return list(base.encoder.layer)


def trace_transformers(folder: str, enc: dict, dtype, classifier: bool) -> dict:
    """transformers' eager forward with hooks on every module, in bertnp's names and layout."""
    import torch
    import transformers

    from .config import FAMILIES

    if classifier:
        hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    else:
        hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager")
    family = FAMILIES.get(hf.config.model_type)
    if family is None:
        raise BertnpError(f"{folder}: transformers did not load a BERT-family model ({type(hf).__name__})")
    base = hf.base_model
    hf = hf.eval().to(torch.float64 if dtype == np.float64 else torch.float32)
    captured, hooks = {}, []  # (id(module), "in"/"out") -> values in call order
    heads = hf.config.num_attention_heads

    def keep(key, split=False, inputs=False):
        def hook(module, args, output):
            value = args[0] if inputs else output[0] if isinstance(output, tuple) else output
            value = value.detach().numpy().copy()
            if split:  # [B, T, H] -> [B, N, T, D]
                B, T, H = value.shape
                value = value.reshape(B, T, heads, H // heads).transpose(0, 2, 1, 3)
            captured.setdefault(key, []).append(value)
        return hook

    def watch(module, name, side="out", split=False):
        key = (id(module), side)
        if key not in watched:
            watched[key] = name
            hooks.append(module.register_forward_hook(keep(key, split, inputs=side == "in")))
        return key

    watched, order = {}, []  # order: (bertnp name, key), in call order
    order.append(("embeddings.sum", watch(base.embeddings.LayerNorm, "embeddings.sum", "in")))
    order.append(("embeddings.norm", watch(base.embeddings, "embeddings.norm")))
    project = getattr(base, "embeddings_project", None) or getattr(getattr(base, "encoder", None),
                                                                   "embedding_hidden_mapping_in", None)
    if project is not None:
        order.append(("embeddings.project", watch(project, "embeddings.project")))
    points = TRACE_POINTS[family]
    for i, layer in enumerate(transformers_layers(base, family)):
        for name, (path, side) in points.items():
            order.append((f"layer.{i}.{name}", watch(layer.get_submodule(path), name, side, split=name in ("q", "k", "v"))))
    pooler = getattr(base, "pooler_activation", None) or getattr(base, "pooler", None)
    if pooler is not None:
        order.append(("pooler", watch(pooler, "pooler")))
    try:
        with torch.no_grad():
            inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in enc.items()}
            if family == "distilbert":  # it takes no token types
                inputs.pop("token_type_ids", None)
            out = hf(**inputs, output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    trace, used = {}, {}
    for name, key in order:  # the k-th call of a module is its k-th use (ALBERT's shared layers)
        calls = captured.get(key, [])
        if used.get(key, 0) < len(calls):
            trace[name] = calls[used.get(key, 0)]
            used[key] = used.get(key, 0) + 1
    scale = trace["layer.0.q"].shape[-1] ** -0.5
    bias = np.where(np.asarray(enc["attention_mask"])[:, None, None, :] == 0, np.finfo(dtype).min, 0).astype(dtype)
    for i, probs in enumerate(out.attentions):
        p = f"layer.{i}."
        q, k = torch.from_numpy(trace[p + "q"]), torch.from_numpy(trace[p + "k"])
        trace[p + "scores"] = (torch.matmul(q, k.transpose(2, 3)) * scale).numpy() + bias  # as eager attention
        trace[p + "probs"] = probs.numpy()
    if hasattr(out, "logits"):
        trace["logits"] = out.logits.numpy()
    return trace


def load_onnx(path: str, load_external_data: bool = True):
    import onnx

    try:
        return onnx.load(path, load_external_data=load_external_data)
    except OSError:
        raise
    except Exception as e:  # protobuf's DecodeError and onnx's own: the file is not a model
        raise InputError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from e


def onnx_input_names(path: str) -> set:
    graph = load_onnx(path, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return {i.name for i in graph.input if i.name not in initializers}


# LayerNorms whose first output is the normalized value; ONNX Runtime's transformer optimizer fuses the
# embeddings' into EmbedLayerNormalization and every residual + LayerNorm into SkipLayerNormalization
NORM_OPS = ("LayerNormalization", "EmbedLayerNormalization", "SkipLayerNormalization")


def map_outputs(path: str, outputs: list[tuple[str, np.ndarray]], ours: dict, num_layers: int) -> dict:
    """Which graph output is which bertnp output, {graph output: bertnp name, or None}, by shape and position: a
    [B, T, H] output is the last hidden state, [B, H] the pooler, [B, C] the logits, each compared with
    bertnp's own output of that shape; of several outputs of one shape the first is it (transformers puts
    last_hidden_state before hidden_states). Names are not read: an export may call its outputs anything."""
    shapes = {name: np.shape(ours[name]) for name in final_outputs(num_layers) if name in ours}
    mapping = dict.fromkeys(name for name, _ in outputs)
    for output, value in outputs:
        if not np.issubdtype(value.dtype, np.floating):
            continue
        matches = [name for name, shape in shapes.items() if value.shape == shape]
        if len(matches) > 1:
            raise InputError(f"{path}: graph output {output!r} of shape {list(value.shape)} could be any of "
                             f"{', '.join(matches)} (their shapes are equal); cannot tell which")
        if matches and matches[0] not in mapping.values():
            mapping[output] = matches[0]
    if not any(mapping.values()):
        graph = ", ".join(f"{output} {list(value.shape)} {value.dtype}" for output, value in outputs)
        wanted = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
        raise InputError(f"{path}: no graph output maps onto a bertnp output by shape; the graph gives {graph}; "
                         f"bertnp compares {wanted}")
    return mapping


def trace_onnx(path: str, enc: dict, ours: dict, num_layers: int, layers: bool = False) -> tuple[dict, dict]:
    """Final outputs of an ONNX model with ONNX Runtime, mapped onto bertnp's by shape (map_outputs against
    bertnp's trace `ours` on the same inputs); with layers=True also every LayerNorm's output, exposed as
    extra graph outputs (they map in order onto embeddings.norm, then each layer's attention_norm and
    output_norm). Returns the trace and map_outputs' {graph output: bertnp name, or None}."""
    import onnx
    import onnxruntime as ort

    model = load_onnx(path, load_external_data=layers)
    finals = [o.name for o in model.graph.output]
    norms = [n.output[0] for n in model.graph.node if n.op_type in NORM_OPS]
    if layers:
        if len(norms) != 1 + 2 * num_layers:
            raise InputError(f"{path}: found {len(norms)} LayerNorm nodes ({', '.join(NORM_OPS)}), expected "
                             f"{1 + 2 * num_layers} (1 + 2 per layer); cannot map them to layers")
        model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in norms if n not in finals)
    try:
        source = model.SerializeToString() if layers else path
        session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's errors derive from Exception alone
        raise InputError(f"{path}: ONNX Runtime cannot load it: {e}") from e
    inputs = session.get_inputs()
    missing = [i.name for i in inputs if i.name not in enc]
    if missing:
        raise InputError(f"{path}: graph inputs {missing} are not among {sorted(enc)}; bertnp feeds inputs by name")
    int_types = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
    feeds = {i.name: np.ascontiguousarray(enc[i.name]).astype(int_types.get(i.type, np.int64)) for i in inputs}
    names = [o.name for o in session.get_outputs()]
    try:
        values = dict(zip(names, session.run(names, feeds)))
    except Exception as e:
        raise InputError(f"{path}: ONNX Runtime failed on the inputs: {e}") from e
    trace = {}
    if layers:
        order = ["embeddings.norm"] + [f"layer.{i}.{n}" for i in range(num_layers) for n in ("attention_norm", "output_norm")]
        trace.update({name: values[n] for name, n in zip(order, norms)})
    mapping = map_outputs(path, [(n, values[n]) for n in finals], ours, num_layers)
    trace.update({name: values[output] for output, name in mapping.items() if name})  # the graph's outputs win
    return trace, mapping


# ---- the report ------------------------------------------------------------------------------------------


def format_table(columns: dict[str, list[Row]], atol, rtol) -> str:
    """One row per intermediate; one block of columns per comparison. The first row over tolerance is marked."""
    titles = list(columns)
    names = [r.name for r in columns[titles[0]]]
    header = f"{'intermediate':<28}" + "".join(
        f" | {t[:41]:^41}" for t in titles)
    sub = f"{'':<28}" + " | max abs   max rel   mean abs  ulp med ulp max" * len(titles)
    lines = [header, sub, "-" * len(sub)]
    first_over = {t: next((r.name for r in rows if r.over), None) for t, rows in columns.items()}
    for name in names:
        cells = []
        mark = " "
        for t in titles:
            r = next((r for r in columns[t] if r.name == name), None)
            if r is None:
                cells.append(f" | {'-':^41}")
                continue
            if first_over[t] == name:
                mark = "!"
            cells.append(f" | {r.max_abs:9.2e} {r.max_rel:9.2e} {r.mean_abs:9.2e} {r.ulp_median:7.1f} {r.ulp_max:7.0f}")
        lines.append(f"{mark}{name:<27}" + "".join(cells))
    lines.append(f"tolerance |a - b| <= {atol:g} + {rtol:g} |b| on real tokens; '!' marks the first intermediate over it")
    return "\n".join(lines)


def outputs_over(rows: list[Row], num_layers: int) -> list[str]:
    return [r.name for r in rows if r.name in final_outputs(num_layers) and r.over]


def to_json(columns: dict[str, list[Row]]) -> str:
    return json.dumps({t: [asdict(r) for r in rows] for t, rows in columns.items()}, indent=2)


def explained_output(theirs: dict, num_layers: int) -> str:
    """What --explain measures against: the last hidden state, else the pooler, else the logits."""
    for name in final_outputs(num_layers):
        if name in theirs:
            return name
    raise InputError(f"nothing to explain: the other engine gave none of {', '.join(final_outputs(num_layers))}")


def explain(model_path: str, enc: dict, theirs: dict, num_layers: int) -> list[tuple[str, float]]:
    """bertnp float32 under each numerics switch (one at a time) against the other engine's final output
    (explained_output): [(setting, max abs error)], best first."""
    from .bert import load

    model = load(model_path, dtype="float32", backend="numpy")
    target = explained_output(theirs, num_layers)
    results = []
    settings = [("transformers defaults", TRANSFORMERS)] + [
        (f"{field}={value}", Numerics(**{**asdict(TRANSFORMERS), field: value}))
        for field, values in NUMERICS_CHOICES.items() for value in values if value != getattr(TRANSFORMERS, field)]
    for label, numerics in settings:
        trace = trace_bertnp(model, enc, numerics)
        row = compare(target, trace[target], theirs[target], enc["attention_mask"], 0, 0)
        results.append((label, row.max_abs))
    return sorted(results, key=lambda item: item[1])
