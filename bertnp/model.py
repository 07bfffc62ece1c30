"""BERT's forward pass (the reference path), as small pure functions over an array module `xp` (numpy, or
cupy on a GPU). Read top to bottom: embeddings -> L encoder layers -> pooler. Each function names the class
of transformers' models/bert/modeling_bert.py it reproduces.

Shape letters, used in every comment:
    B batch   T tokens   H hidden size   N heads   D head size (H = N * D)   I intermediate size
    V vocabulary   P max positions   S token types   C labels   L layers

The weights (bertnp.weights.BertWeights, plain containers of arrays; linear weights stored [out, in] as
torch stores them, so a linear layer is x @ W.T + b):
    embeddings.word [V, H], .position [P, H], .token_type [S, H], .norm.weight / .norm.bias [H]
    layers[i].query, .key, .value, .attention_output: weight [H, H], bias [H]
    layers[i].attention_norm, .output_norm: weight [H], bias [H]
    layers[i].intermediate: weight [I, H], bias [I];  layers[i].output: weight [H, I], bias [H]
    pooler: weight [H, H], bias [H];  classifier: weight [C, H], bias [C]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .erf import erf
from .numerics import NUMERICS_CHOICES, TRANSFORMERS, Numerics, no_tap  # noqa: F401  (parity machinery)


def embeddings(input_ids, token_type_ids, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """BertEmbeddings: word + token type + position, then LayerNorm (dropout is off at inference).
    Token types say which sentence of a pair a token belongs to: A (0) or B (1)."""
    T = input_ids.shape[1]
    x = w.word[input_ids] + w.token_type[token_type_ids]  # [B, T] -> [B, T, H]
    if config.position_embedding_type == "absolute":  # relative models add positions inside attention
        x = x + w.position[:T]  # [B, T, H] + [T, H]
    tap("embeddings.sum", x)
    x = layer_norm(x, w.norm, config.layer_norm_eps, xp, numerics)  # [B, T, H]
    tap("embeddings.norm", x)
    return x


def layer_norm(x, w, eps, xp, numerics=TRANSFORMERS):
    """nn.LayerNorm over the last axis. eps comes from config.json (BERT uses 1e-12, not torch's 1e-5)."""
    dtype, x = x.dtype, x.astype(xp.float64) if numerics.accumulate == "float64" else x
    mean = x.mean(axis=-1, keepdims=True)  # [..., H] -> [..., 1]
    if numerics.variance == "two_pass":
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # [..., 1], biased as torch's
    else:
        var = (x * x).mean(axis=-1, keepdims=True) - mean * mean  # [..., 1], one pass: cancels when mean is large
    return ((x - mean) / xp.sqrt(var + eps)).astype(dtype, copy=False) * w.weight + w.bias  # [..., H]


def mask_bias(attention_mask, dtype, xp, numerics=TRANSFORMERS):
    """BertModel's extended attention mask: 0 where a key may be attended, the dtype's minimum where not.

    Attention is bidirectional: every token sees every other, before and after it; only padding is
    masked, as keys. transformers adds finfo(dtype).min (Google's TF BERT added -10000), so a row whose
    mask is all zero holds min + score = min everywhere: its softmax is uniform, never NaN.
    """
    blocked = attention_mask[:, None, None, :] == 0  # [B, T] -> [B, 1, 1, T]
    value = {"min": xp.finfo(dtype).min, "-10000": -10000.0, "-inf": -xp.inf}[numerics.mask]
    return xp.where(blocked, value, 0).astype(dtype)  # [B, 1, 1, T], broadcast over N and queries


def linear(x, w, xp):
    """nn.Linear as one 2-D BLAS GEMM: [..., in] -> [..., out]."""
    rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [R, in]
    out = rows @ w.weight.T + w.bias  # [R, in] @ [in, out] -> [R, out]
    return out.reshape(*x.shape[:-1], w.weight.shape[0])  # [R, out] -> [..., out]


def split_heads(x, n_heads):
    """[B, T, H] -> [B, N, T, D]"""
    B, T, H = x.shape
    return x.reshape(B, T, n_heads, H // n_heads).transpose(0, 2, 1, 3)  # [B, T, N, D] -> [B, N, T, D]


def merge_heads(x):
    """[B, N, T, D] -> [B, T, H]"""
    B, N, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, N * D)  # [B, T, N, D] -> [B, T, H]


def softmax(x, xp, numerics=TRANSFORMERS):
    """Softmax over the last axis, shifted by the row max so exp never overflows."""
    dtype, x = x.dtype, x.astype(xp.float64) if numerics.accumulate == "float64" else x
    e = xp.exp(x - x.max(axis=-1, keepdims=True))  # [..., T]
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype, copy=False)  # [..., T]


def self_attention(x, bias, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """BertSelfAttention with eager attention: softmax(Q K^T / sqrt(D) + mask) V, per head.
    Padded query rows are computed like any other and ignored by whoever reads the output."""
    q = split_heads(linear(x, w.query, xp), config.num_attention_heads)  # [B, T, H] -> [B, N, T, D]
    k = split_heads(linear(x, w.key, xp), config.num_attention_heads)  # [B, N, T, D]
    v = split_heads(linear(x, w.value, xp), config.num_attention_heads)  # [B, N, T, D]
    scores = q @ k.transpose(0, 1, 3, 2)  # [B, N, T, D] @ [B, N, D, T] -> [B, N, T, T]
    if w.distance is not None:  # relative position models only (below the divider)
        scores = scores + relative_scores(q, k, w.distance, config.position_embedding_type, xp)  # [B, N, T, T]
    scores = scores * config.head_size**-0.5 + bias  # [B, N, T, T] + [B, 1, 1, T]
    probs = softmax(scores, xp, numerics)  # [B, N, T, T], each row sums to 1
    context = merge_heads(probs @ v)  # [B, N, T, T] @ [B, N, T, D] -> [B, N, T, D] -> [B, T, H]
    for name, array in (("q", q), ("k", k), ("v", v), ("scores", scores), ("probs", probs), ("context", context)):
        tap(name, array)
    return context, probs


def gelu(x, xp):
    """Exact GELU, x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, as torch's
    nn.functional.gelu. NumPy has no erf: ours (bertnp/erf.py) is exact in float64, so we compute there."""
    x64 = x.astype(xp.float64)  # [..., I]
    return (x64 * 0.5 * (1.0 + erf(x64 * math.sqrt(0.5), xp))).astype(x.dtype)  # [..., I]


def encoder_layer(x, bias, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """BertLayer: attention and feed-forward, each followed by residual + LayerNorm. BERT is post-LN: the
    LayerNorm comes after the residual add (GPT-2 and most later models are pre-LN: norm, then sublayer)."""
    eps = config.layer_norm_eps
    activation = gelu_tanh if config.hidden_act == "gelu" and numerics.gelu == "tanh" else ACTIVATIONS[config.hidden_act]
    context, probs = self_attention(x, bias, w, config, xp, numerics, tap)  # [B, T, H], [B, N, T, T]
    a = linear(context, w.attention_output, xp)  # BertSelfOutput: [B, T, H]
    x = layer_norm(a + x, w.attention_norm, eps, xp, numerics)  # residual, then LayerNorm: [B, T, H]
    pre = linear(x, w.intermediate, xp)  # BertIntermediate: [B, T, H] -> [B, T, I]
    h = activation(pre, xp)  # [B, T, I]
    f = linear(h, w.output, xp)  # BertOutput: [B, T, I] -> [B, T, H]
    out = layer_norm(f + x, w.output_norm, eps, xp, numerics)  # residual, then LayerNorm: [B, T, H]
    for name, array in (("attention_output", a), ("attention_norm", x), ("activation_input", pre),
                        ("activation_output", h), ("ffn_output", f), ("output_norm", out)):
        tap(name, array)
    return out, probs


def pooler(x, w, xp):
    """BertPooler: tanh(dense(first token)), the [CLS] summary the classifier reads. The tanh comes from
    pre-training, where this vector predicted whether sentence B follows sentence A."""
    return xp.tanh(linear(x[:, 0], w, xp))  # [B, T, H] -> [B, H] -> [B, H]


@dataclass
class BertOutput:
    last_hidden_state: object  # [B, T, H]
    pooler_output: object = None  # [B, H], None when the checkpoint has no pooler
    logits: object = None  # [B, C], BertForSequenceClassification checkpoints only
    hidden_states: tuple | None = None  # L + 1 arrays [B, T, H]: the embeddings, then each layer's output
    attentions: tuple | None = None  # L arrays [B, N, T, T]: each layer's attention probabilities
    trace: dict | None = None  # name -> intermediate, in forward order, when tracing was asked for


def pooler_runs(weights, pooler: bool = True) -> bool:
    """Whether a forward pass computes the pooler: the checkpoint has one, and the caller wants
    pooler_output (pooler=True) or a sequence classifier reads it (BERT's, not the relatives' head)."""
    return weights.pooler is not None and (pooler or (weights.classifier is not None
                                                      and weights.classification_head is None))


def bert(input_ids, attention_mask, token_type_ids, weights, config, xp, output_hidden_states=False,
         output_attentions=False, numerics=TRANSFORMERS, tap=no_tap, pooler_output=True):
    """BertModel (and BertForSequenceClassification's head when the checkpoint has one).

    pooler_output=False skips the pooler unless the classifier reads it (pooler_runs): an embedding that
    pools the last hidden state never reads it.

    tap(name, array), when given, receives every intermediate: "embeddings.sum", "embeddings.norm",
    "layer.{i}.q" ... "layer.{i}.output_norm" (see encoder_layer), "pooler", "logits" (and for ELECTRA
    and ALBERT "embeddings.project", after "embeddings.norm").
    """
    dtype = weights.embeddings.word.dtype
    embed = embeddings if config.family == "bert" else relatives_embeddings  # BERT's relatives: below the divider
    x = embed(input_ids, token_type_ids, weights.embeddings, config, xp, numerics, tap)  # [B, T] -> [B, T, H]
    bias = mask_bias(attention_mask, dtype, xp, numerics)  # [B, T] -> [B, 1, 1, T]
    hidden_states, attentions = [x], []
    for i, layer in enumerate(weights.layers):
        layer_tap = no_tap if tap is no_tap else (lambda name, array, i=i: tap(f"layer.{i}.{name}", array))
        x, probs = encoder_layer(x, bias, layer, config, xp, numerics, layer_tap)  # [B, T, H] -> [B, T, H]
        hidden_states.append(x)  # L + 1 of [B, T, H]
        attentions.append(probs)  # L of [B, N, T, T]
    pooled = pooler(x, weights.pooler, xp) if pooler_runs(weights, pooler_output) else None  # [B, H]
    features = pooled if weights.classification_head is None else classification_head(x, weights, xp)  # relatives
    logits = linear(features, weights.classifier, xp) if weights.classifier is not None else None  # [B, C]
    for name, array in (("pooler", pooled), ("logits", logits)):
        if array is not None:
            tap(name, array)
    return BertOutput(
        last_hidden_state=x,
        pooler_output=pooled,
        logits=logits,
        hidden_states=tuple(hidden_states) if output_hidden_states else None,
        attentions=tuple(attentions) if output_attentions else None,
    )


# ==== below: variants. BERT-base needs none of it =========================================================
# Other activations a config.json may name, relative position embeddings, and what BERT's relatives do
# differently (their tensor names are in bertnp/weights.py's FAMILIES). The arithmetic switches (numerics)
# and tracing (tap) live in bertnp/numerics.py.


def gelu_tanh(x, xp):
    """gelu_new / gelu_pytorch_tanh: the tanh approximation of GELU."""
    return 0.5 * x * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))  # [..., I]


def gelu_fast(x, xp):
    """FastGELUActivation: the tanh approximation with its constant written to 10 digits."""
    return 0.5 * x * (1.0 + xp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))  # [..., I]


def quick_gelu(x, xp):
    """QuickGELUActivation: x * sigmoid(1.702 x)."""
    return x * (1.0 / (1.0 + xp.exp(-1.702 * x)))  # [..., I]


def silu(x, xp):
    """SiLU / swish: x * sigmoid(x)."""
    return x * (1.0 / (1.0 + xp.exp(-x)))  # [..., I]


def relu(x, xp):
    """ReLU: max(x, 0)."""
    return xp.maximum(x, 0)  # [..., I]


ACTIVATIONS = {  # config.hidden_act -> function (transformers/activations.py ACT2FN)
    "gelu": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_fast,
    "quick_gelu": quick_gelu,
    "silu": silu,
    "swish": silu,
    "relu": relu,
}


def relative_scores(q, k, distance, kind, xp):
    """BertSelfAttention's relative_key(_query) terms (Shaw et al.; Huang et al.), from transformers 4.x:
    query . table[i - j] (and, for relative_key_query, key . table[i - j]) for query i and key j.
    distance: [2P-1, D], row P-1 for distance 0."""
    T = q.shape[2]
    positions = xp.arange(T)  # [T]
    P = (distance.shape[0] + 1) // 2
    table = distance[positions[:, None] - positions[None, :] + P - 1]  # [T, T] offsets -> [T, T, D]
    scores = xp.einsum("bnid,ijd->bnij", q, table)  # query . position: [B, N, T, T]
    if kind == "relative_key_query":
        scores = scores + xp.einsum("bnjd,ijd->bnij", k, table)  # key . position: [B, N, T, T]
    return scores


# ---- BERT's relatives: DistilBERT, RoBERTa (XLM-RoBERTa, CamemBERT), ELECTRA, ALBERT ----------------------
# Their encoder layers compute what encoder_layer does (ALBERT's share their weights: bertnp.weights lists a
# shared layer once per use). What differs: where positions start, a projection after the embeddings, and
# the sequence classifier's head. The token-level heads' differences are in bertnp/heads.py.
# E: the embedding width, H but for ELECTRA's and ALBERT's factorized embeddings.


def relatives_embeddings(input_ids, token_type_ids, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """The relatives' embeddings: BertEmbeddings (DistilBERT's token type table is one row of zeros: it has
    none), RoBERTa's with its own positions, then ELECTRA's and ALBERT's projection from E to H."""
    embed = roberta_embeddings if config.family == "roberta" else embeddings
    x = embed(input_ids, token_type_ids, w, config, xp, numerics, tap)  # [B, T, E]
    if w.project is not None:
        x = embeddings_project(x, w.project, xp)  # [B, T, E] -> [B, T, H]
        tap("embeddings.project", x)
    return x


def create_position_ids_from_input_ids(input_ids, padding_idx, xp):
    """RobertaEmbeddings.create_position_ids_from_input_ids (fairseq's make_positions): a token's position
    counts the tokens that are not padding up to it, from padding_idx + 1; padding sits at padding_idx.
    Padding means input_ids == pad_token_id, whatever the attention mask says."""
    real = (input_ids != padding_idx).astype(xp.int64)  # [B, T]
    return xp.cumsum(real, axis=1) * real + padding_idx  # [B, T]


def roberta_embeddings(input_ids, token_type_ids, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """RobertaEmbeddings (also XLM-RoBERTa's and CamemBERT's): BertEmbeddings with positions from
    create_position_ids_from_input_ids instead of 0..T-1."""
    positions = create_position_ids_from_input_ids(input_ids, config.pad_token_id, xp)  # [B, T]
    x = w.word[input_ids] + w.token_type[token_type_ids]  # [B, T] -> [B, T, H]
    x = x + w.position[positions]  # [B, T, H] + [B, T, H]
    tap("embeddings.sum", x)
    x = layer_norm(x, w.norm, config.layer_norm_eps, xp, numerics)  # [B, T, H]
    tap("embeddings.norm", x)
    return x


def embeddings_project(x, w, xp):
    """ElectraModel.embeddings_project / AlbertTransformer.embedding_hidden_mapping_in: factorized embeddings
    (E wide, fewer parameters in the [V, E] table) projected to the encoder's H."""
    return linear(x, w, xp)  # [B, T, E] -> [B, T, H]


def create_sinusoidal_embeddings(n_pos, dim):
    """DistilBERT's create_sinusoidal_embeddings, for sinusoidal_pos_embds checkpoints that do not store the
    table: sin at even columns, cos at odd ones, of pos / 10000^(2 (j // 2) / dim). Computed in float64
    and rounded to float32, as torch.FloatTensor does there. [P, E]"""
    import numpy as np

    # one pow per column, as the reference computes it element by element (a vectorized pow may round
    # differently in the last bit)
    scale = np.array([math.pow(10000, 2 * (j // 2) / dim) for j in range(dim)])  # [E]
    angles = np.arange(n_pos)[:, None] / scale  # [P, E]
    table = np.empty((n_pos, dim), np.float32)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table


def classification_head(x, weights, xp):
    """RobertaClassificationHead (tanh), ElectraClassificationHead (GELU) and DistilBERT's pre_classifier
    (ReLU): a dense layer and an activation on the first token's state, where BERT reads its pooler. The
    output layer (weights.classifier) follows, as on BERT's pooler."""
    w = weights.classification_head
    return CLASSIFIER_ACTIVATIONS[w.activation](linear(x[:, 0], w.dense, xp), xp)  # [B, T, H] -> [B, H]


CLASSIFIER_ACTIVATIONS = {"tanh": lambda x, xp: xp.tanh(x), "gelu": gelu, "relu": relu}
