"""bertnp.fast.forward (pad-free, Numba kernels) against bertnp.model.bert (the reference), every output.

Compared where the fast path computes: real tokens, position 0 of every row, and whole rows that have
no real token (bertnp/fast.py says why). Everywhere else the fast path must hold exact zeros.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import assert_claim, compare_outputs, computed_positions, summary

import bertnp
from bertnp import fast, kernels, model
from bertnp.kernels import gemm, packed
from bertnp.config import BertConfig
from bertnp.weights import build_tree, expected_shapes

ACTS = ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "quick_gelu"]
TEXTS = [
    "Microsoft has taken its first step into the metaverse.",
    "Hello",
    "Café naïve résumé, déjà vu — Zürich's Ørsted façade.",
    "Stocks fell sharply on Monday as investors weighed new inflation data and central bank comments, "
    "while bond yields climbed to their highest level in more than a decade.",
    "ALL CAPS AND MiXeD cAsE with numbers 3.14159 and 1,000,000.",
    "",
]


def run_on(patch, threads: int, split_rows: int = gemm.SPLIT_ROWS):
    """fast.forward on `threads` threads: with 2, every GEMM, however small, in blocks that the team's helper
    and the caller share (blocks of rows from split_rows rows, else of panels), attention too."""
    patch.setattr(kernels, "threads", lambda: threads)
    patch.setattr(gemm, "TEAM_MIN_WORK", 0)
    patch.setattr(gemm, "SPLIT_ROWS", split_rows)


def random_weights(config: BertConfig, dtype, seed: int, pooler: bool, classifier: bool):
    """A BertWeights tree of random values at BERT's scales, but larger, so a wrong op shows."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(config, pooler, classifier).items():
        if "LayerNorm.weight" in name:
            tensors[name] = 1 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            tensors[name] = 0.1 * rng.standard_normal(shape)
        else:
            tensors[name] = 0.15 * rng.standard_normal(shape)
    return build_tree(tensors, config, dtype, source=f"random(seed={seed})")


def compare(out, ref, mask, dtype, name=""):
    """compare_outputs at the computed positions, exact zeros elsewhere; returns {output: max abs error}."""
    keep = computed_positions(mask)
    reference = {"last_hidden_state": ref.last_hidden_state, "pooler_output": ref.pooler_output,
                 "logits": ref.logits}
    if ref.hidden_states is not None:
        reference["hidden_states"], reference["attentions"] = ref.hidden_states, ref.attentions
    errors = compare_outputs(out, reference, keep, dtype, claim="fast")
    for state in (out.last_hidden_state, *(out.hidden_states or ())):
        assert state.shape == ref.last_hidden_state.shape and state.dtype == dtype
        assert not state[~keep].any(), f"{name}: a state at an uncomputed position is not 0"
    for got, want in zip(out.attentions or (), ref.attentions or ()):
        assert got.shape == want.shape
        assert not got[np.broadcast_to(~keep[:, None, :], got.shape[:3])].any(), f"{name}: attention row not 0"
    return errors


@st.composite
def checkpoints(draw):
    heads = draw(st.sampled_from([1, 2, 3, 4]))
    raw = dict(
        vocab_size=draw(st.integers(20, 120)),
        # H >= 4: over 2 features LayerNorm is +-1 (a sign), so ill-conditioned where the two are close
        hidden_size=heads * draw(st.integers(max(2, 4 // heads), 12)),
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(3, 67)),
        hidden_act=draw(st.sampled_from(ACTS)),
        max_position_embeddings=draw(st.integers(16, 80)),
        type_vocab_size=draw(st.integers(1, 3)),
        layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
        position_embedding_type=draw(st.sampled_from(["absolute", "absolute", "relative_key", "relative_key_query"])),
    )
    classifier = draw(st.booleans())
    if classifier:
        raw["num_labels"] = draw(st.integers(1, 9))
    pooler = classifier or draw(st.booleans())
    return BertConfig.from_dict(raw), pooler, classifier


@st.composite
def batches(draw, config):
    B = draw(st.integers(1, 5))
    T = draw(st.integers(1, min(70, config.max_position_embeddings)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    kind = draw(st.sampled_from(["right", "right", "any", "empty_row"]))
    if kind == "any":
        mask = rng.integers(0, 2, (B, T))
    elif kind == "empty_row":
        mask[rng.integers(0, B)] = 0
    ids = np.where(mask == 1, rng.integers(0, config.vocab_size, (B, T)), 0)
    types = rng.integers(0, config.type_vocab_size, (B, T))
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_checkpoints_match_reference(data):
    config, pooler, classifier = data.draw(checkpoints(), label="config")
    enc = data.draw(batches(config), label="batch")
    seed = data.draw(st.integers(0, 1000), label="seed")
    threads = data.draw(st.sampled_from([1, 2]), label="threads")  # with the team, or on the calling thread
    split_rows = data.draw(st.sampled_from([1, 4, gemm.SPLIT_ROWS]), label="split_rows")
    for dtype in (np.float32, np.float64):
        weights = random_weights(config, dtype, seed, pooler, classifier)
        with pytest.MonkeyPatch.context() as patch:
            run_on(patch, threads, split_rows)
            out = fast.forward(**enc, fast_weights=fast.prepare(weights, config), config=config,
                               output_hidden_states=True, output_attentions=True)
        ref = model.bert(**enc, weights=weights, config=config, xp=np, output_hidden_states=True,
                         output_attentions=True)
        compare(out, ref, enc["attention_mask"], dtype, f"{config.position_embedding_type} {config.hidden_act}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_without_real_tokens_matches_reference_whole(dtype):
    config = BertConfig.from_dict(dict(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=11))
    weights = random_weights(config, dtype, seed=2, pooler=True, classifier=False)
    enc = {"input_ids": np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
           "attention_mask": np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1]]),
           "token_type_ids": np.zeros((3, 3), np.int64)}
    out = fast.forward(**enc, fast_weights=fast.prepare(weights, config), config=config, output_attentions=True)
    ref = model.bert(**enc, weights=weights, config=config, xp=np, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    assert_claim("fast", "row without real tokens", out.last_hidden_state[1], ref.last_hidden_state[1], dtype)
    assert_claim("fast", "its attentions", out.attentions[0][1], ref.attentions[0][1], dtype)
    assert_claim("fast", "left-padded position 0", out.last_hidden_state[2, 0], ref.last_hidden_state[2, 0], dtype)
    compare(out, ref, enc["attention_mask"], dtype)


def test_prepare_lays_out_gemm_weights():
    config = BertConfig.from_dict(dict(vocab_size=30, hidden_size=12, num_hidden_layers=1, num_attention_heads=3,
                                       intermediate_size=7, num_labels=2))
    weights = random_weights(config, np.float32, seed=0, pooler=True, classifier=True)
    fw = fast.prepare(weights, config)
    layer, source = fw.layers[0], weights.layers[0]
    qkv = packed.unpack(layer.qkv.weight, 36)  # [H, 3H] from its panels
    width = packed.NR[np.dtype(np.float32)]  # 32 columns with AVX-512, 16 with AVX2
    panels = -(-36 // width)
    assert layer.qkv.weight.shape == (panels, 12, width) and layer.qkv.weight.flags.c_contiguous
    np.testing.assert_array_equal(qkv[:, 12:24], source.key.weight.T)
    assert not layer.qkv.weight[-1, :, 36 - (panels - 1) * width:].any()  # the padding columns
    np.testing.assert_array_equal(layer.qkv.bias[24:], source.value.bias)
    np.testing.assert_array_equal(packed.unpack(layer.intermediate.weight, 7), source.intermediate.weight.T)
    np.testing.assert_array_equal(packed.unpack(layer.output.weight, 12), source.output.weight.T)
    np.testing.assert_array_equal(packed.unpack(fw.classifier.weight, 2), weights.classifier.weight.T)
    assert not fw.embeddings.word.flags.writeable and not layer.qkv.bias.flags.writeable
    assert not layer.qkv.weight.flags.writeable


# ---- all-MiniLM-L6-v2 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm(minilm_path):
    loaded = {name: bertnp.load(minilm_path, dtype=name) for name in ("float32", "float64")}
    return {name: (m, fast.prepare(m.weights, m.config)) for name, m in loaded.items()}


@pytest.fixture(params=["one thread", "threads"])
def regime(request, monkeypatch):
    """Both ways fast.forward runs: on the calling thread, or in blocks shared with the team."""
    run_on(monkeypatch, 1 if request.param == "one thread" else 2)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minilm_mixed_lengths_match_reference(minilm, dtype, regime):
    m, fw = minilm[np.dtype(dtype).name]
    enc = m.tokenize(TEXTS)
    assert len(set(enc["attention_mask"].sum(axis=1))) == len(TEXTS)  # every length differs
    out = fast.forward(**enc, fast_weights=fw, config=m.config, output_hidden_states=True, output_attentions=True)
    ref = model.bert(**enc, weights=m.weights, config=m.config, xp=np, output_hidden_states=True,
                     output_attentions=True)
    errors = compare(out, ref, enc["attention_mask"], dtype, "MiniLM")
    print(f"MiniLM {np.dtype(dtype).name} ({regime}) fast vs reference, max abs error: {summary(errors)}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minilm_text_alone_equals_text_in_batch(minilm, monkeypatch, dtype):
    """Alone, a text runs on the calling thread; in the batch, in blocks shared with the team. Bit for bit
    the same: the kernels work per row or per (sequence, head), and kernels.packed sums each row of a GEMM in
    one fixed order."""
    m, fw = minilm[np.dtype(dtype).name]
    batch = m.tokenize(TEXTS)
    run_on(monkeypatch, 2, split_rows=1)
    together = fast.forward(**batch, fast_weights=fw, config=m.config)
    run_on(monkeypatch, 1)
    for i, text in enumerate(TEXTS):
        alone = fast.forward(**m.tokenize([text]), fast_weights=fw, config=m.config)
        n = int(batch["attention_mask"][i].sum())
        for name, a, b in (("last_hidden_state", alone.last_hidden_state[0, :n], together.last_hidden_state[i, :n]),
                           ("pooler_output", alone.pooler_output[0], together.pooler_output[i])):
            assert np.array_equal(a, b), f"text {i} {name}: alone vs in a batch differ by {np.abs(a - b).max():.2e}"


def test_minilm_forward_from_many_python_threads(minilm, monkeypatch):
    """Concurrent callers must not mix up their results: one team serves one caller at a time (fast.forward
    takes kernels.LAUNCH_LOCK)."""
    m, fw = minilm["float32"]
    run_on(monkeypatch, 2)  # every call runs with the team
    encodings = [m.tokenize(TEXTS[i:] + TEXTS[:i]) for i in range(4)]
    expected = [fast.forward(**enc, fast_weights=fw, config=m.config).last_hidden_state for enc in encodings]
    results, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = fast.forward(**encodings[i], fast_weights=fw, config=m.config).last_hidden_state
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
