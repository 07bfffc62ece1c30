"""The GPU forward pass: model.bert's arithmetic with cuBLAS GEMMs and fused CuPy kernels between them.

Written against an array module `xp` and an `ops` object holding the three fused steps, so that the very
same function runs in CI with xp=numpy and NumpyOps (their reference twins, composed from model.py), and
on a GPU with xp=cupy and bertnp.kernels.gpu.CupyOps. Batches stay padded on the GPU (the GEMMs are
large enough that padding costs little once batches are sorted by length, as embed/predict do).
Relative position embeddings, tracing and other numerics run the reference model.bert on the device.
BERT's relatives run here too: their embeddings, and the relatives' classification head, are model.py's
own functions on the device; their encoder layers are BERT's.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import model
from .model import BertOutput


@dataclass(frozen=True)
class Dense:
    weight: object  # [in, out], contiguous, laid out for x @ weight
    bias: object  # [out]


@dataclass(frozen=True)
class GpuLayer:
    qkv: Dense  # [H, 3H]: query, key and value in one GEMM
    attention_output: Dense
    attention_norm: object
    intermediate: Dense
    output: Dense
    output_norm: object


@dataclass(frozen=True)
class GpuWeights:
    reference: object  # the BertWeights tree on the device, for the reference functions
    layers: tuple


class NumpyOps:
    """The fused steps as their model.py twins (what CupyOps must equal)."""

    def __init__(self, xp):
        self.xp = xp

    def bias_activation(self, y, bias, activation):
        return model.ACTIVATIONS[activation](y + bias, self.xp)

    def add_bias_layer_norm(self, y, bias, residual, norm, eps, out):
        return model.layer_norm((y + bias) + residual, norm, eps, self.xp)

    def scale_mask_softmax(self, scores, scale, bias):
        return model.softmax(scores * scale + bias[:, None, None, :], self.xp)


def prepare(weights, xp) -> GpuWeights:
    """Upload once (weights.map(xp.asarray), which keeps ALBERT's shared layers shared) and lay out the GEMM
    operands, once per distinct layer."""
    on_device = weights.map(xp.asarray)

    def dense(*linears):
        return Dense(xp.ascontiguousarray(xp.concatenate([l.weight for l in linears]).T),
                     xp.concatenate([l.bias for l in linears]))

    laid_out = {}
    for l in on_device.layers:
        if id(l) not in laid_out:
            laid_out[id(l)] = GpuLayer(qkv=dense(l.query, l.key, l.value), attention_output=dense(l.attention_output),
                                       attention_norm=l.attention_norm, intermediate=dense(l.intermediate),
                                       output=dense(l.output), output_norm=l.output_norm)
    return GpuWeights(reference=on_device, layers=tuple(laid_out[id(l)] for l in on_device.layers))


def forward(input_ids, attention_mask, token_type_ids, w: GpuWeights, config, xp, ops, output_hidden_states=False,
            output_attentions=False, pooler_output=True) -> BertOutput:
    """model.bert with fused steps; every array stays on the device."""
    if config.position_embedding_type != "absolute":
        return model.bert(input_ids, attention_mask, token_type_ids, w.reference, config, xp,
                          output_hidden_states, output_attentions, pooler_output=pooler_output)
    B, T = input_ids.shape
    H, N, D, eps = config.hidden_size, config.num_attention_heads, config.head_size, config.layer_norm_eps
    dtype = w.reference.embeddings.word.dtype
    embed = model.embeddings if config.family == "bert" else model.relatives_embeddings
    x = embed(input_ids, token_type_ids, w.reference.embeddings, config, xp).reshape(B * T, H)
    bias = xp.where(attention_mask == 0, xp.finfo(dtype).min, 0).astype(dtype)  # [B, T]
    hidden_states, attentions = [x.reshape(B, T, H)], []
    for layer in w.layers:
        qkv = x @ layer.qkv.weight + layer.qkv.bias  # [B*T, H] @ [H, 3H] -> [B*T, 3H]
        q, k, v = (qkv[:, j * H:(j + 1) * H].reshape(B, T, N, D).transpose(0, 2, 1, 3) for j in range(3))
        scores = xp.matmul(q, k.transpose(0, 1, 3, 2))  # [B, N, T, T]
        probs = ops.scale_mask_softmax(scores, D**-0.5, bias)  # [B, N, T, T]
        context = xp.matmul(probs, v).transpose(0, 2, 1, 3).reshape(B * T, H)  # [B*T, H]
        a = context @ layer.attention_output.weight  # [B*T, H]
        x = ops.add_bias_layer_norm(a, layer.attention_output.bias, x, layer.attention_norm, eps, out=xp.empty_like(x))
        h = ops.bias_activation(x @ layer.intermediate.weight, layer.intermediate.bias, config.hidden_act)  # [B*T, I]
        x = ops.add_bias_layer_norm(h @ layer.output.weight, layer.output.bias, x, layer.output_norm, eps,
                                    out=xp.empty_like(x))  # [B*T, H]
        hidden_states.append(x.reshape(B, T, H))
        attentions.append(probs)
    last = x.reshape(B, T, H)
    pooled = model.pooler(last, w.reference.pooler, xp) if model.pooler_runs(w.reference, pooler_output) else None
    features = pooled if w.reference.classification_head is None else model.classification_head(last, w.reference, xp)
    logits = model.linear(features, w.reference.classifier, xp) if w.reference.classifier is not None else None
    return BertOutput(last_hidden_state=last, pooler_output=pooled, logits=logits,
                      hidden_states=tuple(hidden_states) if output_hidden_states else None,
                      attentions=tuple(attentions) if output_attentions else None)
