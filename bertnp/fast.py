"""The fast forward pass: model.bert's arithmetic on packed tokens, Numba kernels between packed GEMMs.

`prepare` lays the weights out once, at load time: Q, K and V fused into one [H, 3H] matrix, and every
linear weight, as [in, out], packed into the panels that kernels.packed's GEMM streams (it beats BLAS on
BERT's shapes: that module says why and by how much).

`forward` is pad-free. The real tokens of a padded [B, T] batch are packed into M rows (kernels.cpu.pack);
every GEMM and row kernel runs on those M rows only, attention runs per (sequence, head) over the
sequence's own keys, and the results are scattered back to the padded [B, T, ...] shapes at the end.
What that means at positions the mask pads out:
  - last_hidden_state and hidden_states hold 0 there (the reference computes a state for them that no
    real token depends on), and attentions hold 0 in their query rows;
  - except position 0 of each row, always computed as the reference computes it (a masked position 0
    becomes a query that attends to the row's real tokens), because the pooler reads position 0;
  - except rows with no real token at all, computed whole as the reference does: its mask bias is then
    the same for every key, so attention is uniform over all T positions. Nothing becomes NaN.
On real tokens, pooler_output and logits the outputs equal the reference's within rounding
(tests/test_fast_parity.py). A text's outputs do not depend on the other texts of its batch, not even by
rounding: every kernel works per row or per (sequence, head), and every GEMM sums each row in one fixed
order (kernels.packed).

BERT's relatives run here as well: RoBERTa's positions (model.create_position_ids_from_input_ids) go to the
embedding kernel, ELECTRA's and ALBERT's projection from E to H is one more packed GEMM, ALBERT's shared
layers are packed once and run in turn, and the relatives' classification head (model.classification_head)
reads position 0 as the pooler does.

Threads: no BLAS runs here, and neither do Numba's threads. With kernels.threads() > 1 the forward pass
shares its work with a team of helper threads that spin while it runs, linger a few ms, then sleep
(kernels.team says why): each GEMM in blocks of rows (or, for a few rows, of weight panels), each block
followed by its row kernel (bias + activation, bias + residual + LayerNorm) while it is in cache, and
attention in blocks of (sequence, head) pairs. The caller takes blocks too and never waits for a helper
that has not begun one, so a busy core slows a call down instead of stalling it. kernels.threads()
threads, in whichever Python thread calls (kernels.set_threads sets it). No result depends on the thread
count or on who computed a block.

Shape letters as in model.py, plus M packed tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kernels, model
from .config import BertConfig
from .kernels import LAUNCH_LOCK, cpu, gemm, packed, team
from .model import BertOutput
from .weights import BertWeights, Embeddings, LayerNorm, release_pages

PLANS = 32  # kernels.team.Plans kept per model, one for each shape of batch (M, B, T) met last: 16-64 KiB each
REPLAY = True  # False: the layers' jobs launched one by one from Python (benchmarks' profile times each)


@dataclass(frozen=True)
class Dense:
    weight: np.ndarray  # [in, out] packed by kernels.packed.pack: [P, in, NR] panels of NR output columns
    bias: np.ndarray  # [out]


@dataclass(frozen=True)
class FastLayer:
    qkv: Dense  # [H, 3H]: x @ qkv.weight = [q | k | v]
    distance: np.ndarray  # [2P-1, D] relative position table; a [1, D] zero table for absolute models
    attention_output: Dense  # [H, H]
    attention_norm: LayerNorm
    intermediate: Dense  # [H, I]
    output: Dense  # [I, H]
    output_norm: LayerNorm


@dataclass(frozen=True)
class FastWeights:
    embeddings: Embeddings  # the reference's tables, as read-only contiguous arrays (E wide)
    layers: tuple  # of FastLayer, one per layer run (ALBERT's shared layers: one FastLayer, used in turn)
    pooler: Dense | None  # [H, H]
    classifier: Dense | None  # [H, C]
    activation: int  # kernels.cpu.ACTIVATION_CODES[config.hidden_act]
    relative: int  # kernels.cpu.RELATIVE_CODES[config.position_embedding_type]
    project: Dense | None = None  # [E, H]: ELECTRA's embeddings_project, ALBERT's embedding_hidden_mapping_in
    classification_head: Dense | None = None  # [H, H]: RoBERTa's, ELECTRA's, DistilBERT's dense before classifier
    head_activation: str | None = None  # its activation (model.CLASSIFIER_ACTIVATIONS)
    plans: dict = field(default_factory=dict, repr=False, compare=False)  # (M, B, T, threads, helpers) -> Plan


def prepare(weights: BertWeights, config: BertConfig) -> FastWeights:
    """Lay BertWeights out for `forward`: fused QKV, GEMM weights packed in panels, read-only arguments.

    Every array a kernel reads is a read-only view (memory-mapped tables already are), so that Numba
    compiles one specialization whatever the weights came from.
    """
    dtype = weights.embeddings.word.dtype

    def dense(*linears):  # Linear [out, in] (several: stacked along out) -> Dense of [in, out] packed
        weight = np.concatenate([w.weight for w in linears], axis=0)  # [sum(out), in]
        bias = np.concatenate([w.bias for w in linears])
        return Dense(packed.pack(weight.T), _read_only(bias))

    def norm(n):
        return LayerNorm(_read_only(n.weight), _read_only(n.bias))

    no_distance = np.zeros((1, config.head_size), dtype)
    prepared = {}  # id(Layer) -> FastLayer: ALBERT's shared layers are laid out once

    def fast_layer(layer):
        if id(layer) not in prepared:
            prepared[id(layer)] = FastLayer(
                qkv=dense(layer.query, layer.key, layer.value),
                distance=_read_only(layer.distance if layer.distance is not None else no_distance),
                attention_output=dense(layer.attention_output),
                attention_norm=norm(layer.attention_norm),
                intermediate=dense(layer.intermediate),
                output=dense(layer.output),
                output_norm=norm(layer.output_norm),
            )
        return prepared[id(layer)]

    e, head = weights.embeddings, weights.classification_head
    return FastWeights(
        embeddings=Embeddings(_read_only(e.word), _read_only(e.position), _read_only(e.token_type), norm(e.norm)),
        layers=tuple(fast_layer(layer) for layer in weights.layers),
        pooler=dense(weights.pooler) if weights.pooler is not None else None,
        classifier=dense(weights.classifier) if weights.classifier is not None else None,
        activation=cpu.ACTIVATION_CODES[config.hidden_act],
        relative=cpu.RELATIVE_CODES[config.position_embedding_type],
        project=dense(e.project) if e.project is not None else None,
        classification_head=dense(head.dense) if head is not None else None,
        head_activation=head.activation if head is not None else None,
    )


def warm_up(fast_weights: FastWeights, config: BertConfig) -> None:
    """Compile every kernel `forward` calls for the weights' dtype (or load them from Numba's cache): one
    two-token forward pass, and what a team of helper threads runs (kernels.team.warm_up). The kernels
    take the relative-position kind and the activation as arguments, so this one specialization serves
    every batch."""
    ids = np.zeros((1, 2), np.int64)
    forward(ids, np.ones_like(ids), ids, fast_weights, config)
    team.warm_up(fast_weights.embeddings.word.dtype)


def release_originals(weights: BertWeights) -> None:
    """Drop the memory-mapped GEMM weights that `prepare` copied from this process's resident memory (the
    reference path, which reads them for traces and other numerics, faults them back in if it runs)."""
    for layer in {id(layer): layer for layer in weights.layers}.values():
        for linear in (layer.query, layer.key, layer.value, layer.attention_output, layer.intermediate, layer.output):
            release_pages(linear.weight)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = np.ascontiguousarray(array).view(np.ndarray)
    view.flags.writeable = False
    return view


def forward(input_ids, attention_mask, token_type_ids, fast_weights: FastWeights, config: BertConfig,
            output_hidden_states=False, output_attentions=False, pooler_output=True) -> BertOutput:
    """model.bert on packed tokens: the same BertOutput, padded shapes, zeros where the mask pads out.

    Thread-safe: concurrent calls run one at a time (kernels.LAUNCH_LOCK), each on every core.
    """
    input_ids = np.array(input_ids, dtype=np.int64)  # fresh C-contiguous copies: one Numba signature
    B, T = input_ids.shape
    mask = np.ones((B, T), np.int64) if attention_mask is None else np.array(attention_mask, dtype=np.int64)
    types = np.zeros((B, T), np.int64) if token_type_ids is None else np.array(token_type_ids, dtype=np.int64)
    # RoBERTa's positions count from pad_token_id + 1 over the tokens that are not padding
    positions = model.create_position_ids_from_input_ids(input_ids, config.pad_token_id, np) \
        if config.family == "roberta" else None
    with LAUNCH_LOCK:
        tokens = cpu.pack(mask)  # [B, T] -> token_index [M], seq_start [B+1], key_start [B], uniform [B]
        threads = kernels.threads()
        helpers = team.team(threads - 1) if threads > 1 else None  # they spin in this pass, linger, sleep
        if helpers is not None:
            helpers.unpark()
        try:
            return _forward(input_ids, types, positions, tokens, fast_weights, config, output_hidden_states,
                            output_attentions, threads, helpers, pooler_output)
        finally:
            if helpers is not None:
                helpers.release()


def _forward(input_ids, types, positions, tokens, w, config, output_hidden_states, output_attentions, threads,
             helpers, pooler_output):
    token_index, seq_start, key_start, uniform = tokens
    B, T = input_ids.shape
    M = token_index.shape[0]
    dtype = w.embeddings.word.dtype
    H, I = config.hidden_size, config.intermediate_size
    eps = config.layer_norm_eps

    def linear(a, dense, out):  # model.linear without its bias
        return gemm.matmul(a, dense.weight, out, helpers)

    e = w.embeddings
    x = np.empty((M, H), dtype)
    embedded = x if w.project is None else np.empty((M, e.word.shape[1]), dtype)  # [M, E]
    cpu.embed_layer_norm(input_ids, types, token_index, e.word, e.position, e.token_type, e.norm.weight,
                         e.norm.bias, eps, w.relative == 0, embedded, False, positions)  # [B, T] -> [M, E]
    if w.project is not None:  # model.embeddings_project: [M, E] @ [E, H] -> [M, H]
        linear(embedded, w.project, x)
        x += w.project.bias

    qkv = np.empty((M, 3 * H), dtype)
    context = np.empty((M, H), dtype)
    projected = np.empty((M, H), dtype)
    intermediate = np.empty((M, I), dtype)
    no_probs = np.zeros((1, 1, 1, 1), dtype)
    buffers = (x, qkv, context, projected, intermediate, no_probs, token_index, seq_start, key_start, uniform)
    if REPLAY and helpers is not None and not (output_hidden_states or output_attentions):
        # the layers' jobs run in one compiled call (kernels.team.Plan), recorded once for these shapes
        key = (M, B, T, threads, helpers.helpers)
        plan = w.plans.get(key)
        if plan is None:
            plan = team.Plan(helpers.helpers, buffers)
            _layers(buffers, w, config, T, threads, plan, False, False)
            if len(w.plans) >= PLANS:
                del w.plans[next(iter(w.plans))]  # the oldest
            w.plans[key] = plan
        helpers.execute(plan, buffers)
        hidden_states = attentions = None
    else:
        hidden_states, attentions = _layers(buffers, w, config, T, threads, helpers, output_hidden_states,
                                            output_attentions)

    pooled = logits = None
    if model.pooler_runs(w, pooler_output):  # BertPooler on position 0 of every row: [B, H]
        pooled = np.tanh(linear(x[seq_start[:-1]], w.pooler, np.empty((B, H), dtype)) + w.pooler.bias)
    features = pooled
    if w.classification_head is not None:  # model.classification_head: the relatives' dense on position 0
        dense = linear(x[seq_start[:-1]], w.classification_head, np.empty((B, H), dtype))
        features = model.CLASSIFIER_ACTIVATIONS[w.head_activation](dense + w.classification_head.bias, np)
    if w.classifier is not None:  # [B, H] -> [B, C]
        logits = linear(features, w.classifier, np.empty((B, config.num_labels), dtype)) + w.classifier.bias
    return BertOutput(
        last_hidden_state=hidden_states[-1] if output_hidden_states else _scatter(x, token_index, B, T),
        pooler_output=pooled,
        logits=logits,
        hidden_states=tuple(hidden_states) if output_hidden_states else None,
        attentions=tuple(attentions) if output_attentions else None,
    )


def _layers(buffers, w, config, T, threads, helpers, output_hidden_states, output_attentions):
    """The encoder's layers on packed tokens, x updated in place: [M, H] -> [M, H]. With helpers (a team,
    or a plan that records its jobs), GEMMs and attention shared with it. (hidden_states, attentions) as
    asked for, or None."""
    x, qkv, context, projected, intermediate, no_probs, token_index, seq_start, key_start, uniform = buffers
    B, N = seq_start.shape[0] - 1, config.num_attention_heads
    dtype = x.dtype

    def linear(a, dense, out, **then):  # model.linear without its bias, or with the row kernel that follows
        return gemm.matmul(a, dense.weight, out, helpers, **then)

    def norm(n):  # a LayerNorm's arguments to kernels.gemm.matmul's epilogue
        return {"gamma": n.weight, "beta": n.bias, "eps": config.layer_norm_eps}

    hidden_states = [_scatter(x, token_index, B, T)] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for layer in w.layers:
        linear(x, layer.qkv, qkv)  # [M, H] @ [H, 3H] -> [M, 3H]
        probs = np.zeros((B, N, T, T), dtype) if output_attentions else no_probs
        if helpers is not None:  # kernels.cpu.attention, its (sequence, head) pairs shared with the team
            helpers.attention(min(B * N, 8 * threads), qkv, layer.qkv.bias, seq_start, key_start, uniform,
                              token_index, T, N, layer.distance, w.relative, context, probs, output_attentions)
        else:
            cpu.attention(qkv, layer.qkv.bias, seq_start, key_start, uniform, token_index, T, N, layer.distance,
                          w.relative, context, probs, output_attentions, False)  # -> [M, H], [B, N, T, T]
        # BertSelfOutput: [M, H] @ [H, H], then x = cpu.bias_residual_layer_norm(projected, bias, x): [M, H]
        linear(context, layer.attention_output, projected, bias=layer.attention_output.bias, residual=x,
               **norm(layer.attention_norm))
        # BertIntermediate: [M, H] @ [H, I], then cpu.bias_activation: [M, I]
        linear(x, layer.intermediate, intermediate, bias=layer.intermediate.bias, activation=w.activation)
        # BertOutput: [M, I] @ [I, H], then x = cpu.bias_residual_layer_norm(projected, bias, x): [M, H]
        linear(intermediate, layer.output, projected, bias=layer.output.bias, residual=x, **norm(layer.output_norm))
        if output_hidden_states:
            hidden_states.append(_scatter(x, token_index, B, T))
        if output_attentions:
            attentions.append(probs)
    return hidden_states, attentions


def _scatter(x, token_index, B, T):
    """Packed [M, H] -> padded [B, T, H], zeros at the positions not computed."""
    out = np.zeros((B * T, x.shape[1]), x.dtype)
    out[token_index] = x
    return out.reshape(B, T, x.shape[1])
