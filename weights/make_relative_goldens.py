"""Golden outputs for BERT's relative position embeddings -> ``weights/relative/``.

transformers 5.x silently ignores ``position_embedding_type="relative_key"`` /
``"relative_key_query"`` (it builds the absolute model and drops the
``distance_embedding`` weights), so these goldens must come from transformers
4.x. Run this script in its own venv with transformers 4.57:

    python3 -m venv /work/venv457
    /work/venv457/bin/pip install torch==2.13.0 'transformers==4.57.*' safetensors numpy
    /work/venv457/bin/python weights/make_relative_goldens.py            # writes weights/relative/
    /work/venv457/bin/python weights/make_relative_goldens.py --out DIR  # somewhere else

tests/test_golden.py checks bertnp against these files (both backends, float32 and float64).

(Pin ``torch==2.13.0``: it resolves to the local CPU wheel; an unpinned torch
pulls several GB of CUDA wheels.)

Two fixed checkpoints: for each of ``relative_key`` and ``relative_key_query`` it writes
``weights/relative/{type}/``:
    config.json, model.safetensors   BertModel (with pooler), float32, tensor names
                                     without prefix (``embeddings.*``, ``encoder.*``, ``pooler.*``)
    golden.npz                       input_ids, attention_mask, token_type_ids (int64) and,
                                     for d in float32/float64: {d}_last_hidden_state,
                                     {d}_pooler_output, {d}_hidden_states [L+1,B,T,H],
                                     {d}_attentions [L,B,N,T,T],
                                     made_with: "transformers X, torch Y" (a 0-d string array)

Random checkpoints: ``weights/relative/random-{i}/`` for each entry of RANDOM, with the same files.
Their configs are drawn from a seeded generator (RANDOM_SEED): a tiny hidden size (4 to 8; this seed
draws 4), 1 or 2 layers, an activation of ACTS, layer_norm_eps 1e-12 or 1e-5. Their batches cover what the fixed ones don't:
left padding, masks with holes (zeros between ones), a row without real tokens, and sequences of 64,
200 and 512 tokens. To keep the committed files small, those of LONG tokens or more store only
{d}_last_hidden_state and {d}_pooler_output (no hidden states or attentions).

Everything is seeded and torch runs on one thread, so a rerun reproduces the files byte for byte
(checked with transformers 4.57.6 and torch 2.13.0+cpu).

Semantics worth knowing (transformers 4.57 eager BertSelfAttention):
    scores = (Q K^T + rel) / sqrt(head_dim) + mask
    D[l, r] = distance_embedding[l - r + max_position_embeddings - 1]      # [T, T, head_dim]
    relative_key:       rel[b,h,l,r] = Q[b,h,l] . D[l,r]
    relative_key_query: rel[b,h,l,r] = Q[b,h,l] . D[l,r] + K[b,h,r] . D[l,r]
    mask = (1 - attention_mask) * finfo(dtype).min
and the embeddings do NOT add absolute position embeddings for these types
(``embeddings.position_embeddings.weight`` is still in the checkpoint, unused).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TYPES = {"relative_key": 1, "relative_key_query": 2}  # type -> re-draw seed
INPUT_SEED = 1234
BATCH, LENGTH, LENGTHS = 3, 12, (12, 7, 3)

RANDOM_SEED = 2024
ACTS = ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "quick_gelu"]
LONG = 64  # from this length on, a golden keeps only last_hidden_state and pooler_output (file size)
RANDOM = [  # position type, T, one mask kind per row (see mask_row)
    ("relative_key", 512, ["left"]),
    ("relative_key_query", 512, ["holes"]),
    ("relative_key", 200, ["left", "holes"]),
    ("relative_key_query", 64, ["right", "left", "holes"]),
    ("relative_key", 16, ["left", "holes", "empty"]),
    ("relative_key_query", 9, ["full", "holes", "left", "right"]),
]


def require_transformers_4() -> None:
    try:
        import transformers
    except ImportError:
        sys.exit("make_relative_goldens.py: transformers is not installed; see the top of this file.")
    major = int(transformers.__version__.split(".")[0])
    if major != 4:
        sys.exit(
            f"make_relative_goldens.py needs transformers 4.x (tested with 4.57), found "
            f"{transformers.__version__} at {transformers.__file__}.\n"
            "transformers 5.x silently ignores position_embedding_type='relative_key*', so the goldens\n"
            "would be wrong. Create the 4.57 venv and run with it:\n"
            "    python3 -m venv /work/venv457\n"
            "    /work/venv457/bin/pip install torch==2.13.0 'transformers==4.57.*' safetensors numpy\n"
            "    /work/venv457/bin/python weights/make_relative_goldens.py"
        )


def make_config(position_embedding_type: str, **extra):
    from transformers import BertConfig

    fields = dict(
        vocab_size=100,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=29,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=20,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type=position_embedding_type,
        architectures=["BertModel"],
    )
    return BertConfig(**{**fields, **extra})


def random_config(rng, position_embedding_type: str, T: int):
    """A tiny config drawn from rng; max_position_embeddings >= T (exactly 512 at 512 tokens)."""
    heads = int(rng.integers(1, 3))
    head_size = 4 // heads if T >= LONG else int(rng.integers(4 // heads, 5))  # H >= 4: LayerNorm over 2 is +-1
    return make_config(
        position_embedding_type,
        vocab_size=int(rng.integers(30, 101)),
        hidden_size=heads * head_size,
        num_hidden_layers=int(rng.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=int(rng.integers(3, 17)),
        hidden_act=str(rng.choice(ACTS)),
        max_position_embeddings=T if T == 512 else T + int(rng.integers(0, 9)),
        type_vocab_size=int(rng.integers(1, 3)),
        layer_norm_eps=float(rng.choice([1e-12, 1e-5])),
    )


def mask_row(rng, kind: str, T: int) -> np.ndarray:
    """right or left padding, holes (a span whose ends are real tokens, zeros inside), full, or empty."""
    row = np.zeros(T, dtype=np.int64)
    n = int(rng.integers(max(1, T // 2), T))  # real tokens, fewer than T
    if kind == "full":
        row[:] = 1
    elif kind == "right":
        row[:n] = 1
    elif kind == "left":
        row[T - n:] = 1
    elif kind == "holes":
        start = int(rng.integers(0, T - n + 1))
        row[start:start + n] = rng.random(n) < 0.6
        row[start] = row[start + n - 1] = 1
    else:
        assert kind == "empty", kind
    return row


def random_inputs(rng, config, T: int, kinds) -> dict:
    mask = np.stack([mask_row(rng, kind, T) for kind in kinds])
    ids = rng.integers(1, config.vocab_size, size=mask.shape).astype(np.int64) * mask
    types = rng.integers(0, config.type_vocab_size, size=mask.shape).astype(np.int64) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def redraw_(model, seed: int) -> None:
    """Same scheme as make_tiny.py: std 0.2; LayerNorm weights 1 +- 0.1; biases std 0.1."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("LayerNorm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def make_inputs():
    rng = np.random.RandomState(INPUT_SEED)
    mask = np.zeros((BATCH, LENGTH), dtype=np.int64)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    ids = rng.randint(1, 100, size=(BATCH, LENGTH)).astype(np.int64) * mask
    tt = rng.randint(0, 2, size=(BATCH, LENGTH)).astype(np.int64) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


def run(model, inputs: dict, dtype) -> dict:
    import torch

    model = model.to(dtype).eval()
    with torch.no_grad():
        o = model(
            **{k: torch.from_numpy(v) for k, v in inputs.items()},
            output_hidden_states=True,
            output_attentions=True,
            return_dict=True,
        )
    res = {
        "last_hidden_state": o.last_hidden_state,
        "pooler_output": o.pooler_output,
        "hidden_states": torch.stack(o.hidden_states),
        "attentions": torch.stack(o.attentions),
    }
    out = {}
    want = np.float32 if dtype == torch.float32 else np.float64
    for k, v in res.items():
        a = v.detach().cpu().numpy()
        assert a.dtype == want, (k, a.dtype)
        assert np.isfinite(a).all(), k
        out[k] = a
    assert np.array_equal(out["last_hidden_state"], out["hidden_states"][-1])
    return out


def write_golden(out: Path, config, seed: int, inputs: dict, full: bool = True) -> None:
    """Save a BertModel of `config` redrawn with `seed`, reload it, run `inputs` in float32 and float64,
    write golden.npz (hidden states and attentions only when `full`) and check what 4.57 computed."""
    import torch
    import transformers
    from safetensors.numpy import load_file
    from transformers import BertModel

    pe_type = config.position_embedding_type
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=True)
    assert model.embeddings.position_embedding_type == pe_type
    redraw_(model, seed)
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)

    # Reload from disk (eager attention) so goldens come from exactly what was saved.
    model = BertModel.from_pretrained(str(out), attn_implementation="eager").eval()
    assert model.config.position_embedding_type == pe_type
    attn = model.encoder.layer[0].attention.self
    assert type(attn).__name__ == "BertSelfAttention", type(attn)  # eager
    assert attn.position_embedding_type == pe_type
    saved = load_file(str(out / "model.safetensors"))
    assert "encoder.layer.0.attention.self.distance_embedding.weight" in saved, sorted(saved)
    head_size = config.hidden_size // config.num_attention_heads
    assert saved["encoder.layer.0.attention.self.distance_embedding.weight"].shape == (
        2 * config.max_position_embeddings - 1, head_size)
    for name, p in model.state_dict().items():
        if name in saved:
            assert saved[name].dtype == np.float32 and np.array_equal(saved[name], p.numpy()), name
    assert not set(dict(model.named_parameters())) - set(saved)

    arrays = {k: v for k, v in inputs.items()}
    arrays["made_with"] = np.array(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for dname, dt in (("float32", torch.float32), ("float64", torch.float64)):
        for k, v in run(model, inputs, dt).items():
            if full or k in ("last_hidden_state", "pooler_output"):
                arrays[f"{dname}_{k}"] = v
    model = model.float()
    d32 = np.abs(arrays["float32_last_hidden_state"] - arrays["float64_last_hidden_state"]).max()

    # The relative type must actually change the outputs: same weights, absolute type.
    absolute = BertModel(type(config)(**{**config.to_dict(), "position_embedding_type": "absolute",
                                         "attn_implementation": "eager"}), add_pooling_layer=True)
    assert type(absolute.encoder.layer[0].attention.self).__name__ == "BertSelfAttention"
    missing, unexpected = absolute.load_state_dict(model.state_dict(), strict=False)
    assert not missing, missing
    assert sorted(unexpected) == [f"encoder.layer.{i}.attention.self.distance_embedding.weight"
                                  for i in range(config.num_hidden_layers)], unexpected
    ref = run(absolute, inputs, torch.float64)
    diff = np.abs(ref["last_hidden_state"] - arrays["float64_last_hidden_state"]).max()
    assert diff > 1e-3, f"{out.name}: outputs equal to the absolute variant (max diff {diff})"

    np.savez_compressed(out / "golden.npz", **arrays)
    print(f"{out.name} ({pe_type}, B,T={inputs['input_ids'].shape}, lengths "
          f"{inputs['attention_mask'].sum(1).tolist()}): |f32-f64| {d32:.2e}; |{pe_type} - absolute| {diff:.3f}")
    for p in sorted(out.iterdir()):
        print(f"  {out.name}/{p.name:20s} {p.stat().st_size:>8d} bytes")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "relative"))
    args = ap.parse_args(argv)
    require_transformers_4()

    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)
    inputs = make_inputs()
    for pe_type, seed in TYPES.items():
        write_golden(Path(args.out) / pe_type, make_config(pe_type), seed, inputs)

    rng = np.random.default_rng(RANDOM_SEED)
    for i, (pe_type, T, kinds) in enumerate(RANDOM):
        config = random_config(rng, pe_type, T)
        write_golden(Path(args.out) / f"random-{i}", config, seed=100 + i, inputs=random_inputs(rng, config, T, kinds),
                     full=T < LONG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
