"""Golden outputs for BERT's relative position embeddings -> ``weights/relative/``.

transformers 5.x silently ignores ``position_embedding_type="relative_key"`` /
``"relative_key_query"`` (it builds the absolute model and drops the
``distance_embedding`` weights), so these goldens must come from transformers
4.x. Run this script in its own venv with transformers 4.57:

    python3 -m venv /work/venv457
    /work/venv457/bin/pip install torch==2.13.0 'transformers==4.57.*' safetensors numpy
    /work/venv457/bin/python weights/make_relative_goldens.py            # writes weights/relative/
    /work/venv457/bin/python weights/make_relative_goldens.py --out DIR  # somewhere else

(Pin ``torch==2.13.0``: it resolves to the local CPU wheel; an unpinned torch
pulls several GB of CUDA wheels.)

For each of ``relative_key`` and ``relative_key_query`` it writes
``weights/relative/{type}/``:
    config.json, model.safetensors   BertModel (with pooler), float32, tensor names
                                     without prefix (``embeddings.*``, ``encoder.*``, ``pooler.*``)
    golden.npz                       input_ids, attention_mask, token_type_ids (int64) and,
                                     for d in float32/float64: {d}_last_hidden_state,
                                     {d}_pooler_output, {d}_hidden_states [L+1,B,T,H],
                                     {d}_attentions [L,B,N,T,T]

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

    return BertConfig(
        **extra,
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "relative"))
    args = ap.parse_args(argv)
    require_transformers_4()

    import torch
    import transformers
    from safetensors.numpy import load_file
    from transformers import BertModel

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)
    inputs = make_inputs()
    print("lengths", inputs["attention_mask"].sum(1).tolist())

    for pe_type, seed in TYPES.items():
        out = Path(args.out) / pe_type
        out.mkdir(parents=True, exist_ok=True)

        torch.manual_seed(0)
        model = BertModel(make_config(pe_type), add_pooling_layer=True)
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
        assert saved["encoder.layer.0.attention.self.distance_embedding.weight"].shape == (2 * 20 - 1, 8)
        for name, p in model.state_dict().items():
            if name in saved:
                assert saved[name].dtype == np.float32 and np.array_equal(saved[name], p.numpy()), name
        assert not set(dict(model.named_parameters())) - set(saved)

        arrays = {k: v for k, v in inputs.items()}
        for dname, dt in (("float32", torch.float32), ("float64", torch.float64)):
            for k, v in run(model, inputs, dt).items():
                arrays[f"{dname}_{k}"] = v
        model = model.float()
        d32 = np.abs(arrays["float32_last_hidden_state"] - arrays["float64_last_hidden_state"]).max()

        # The relative type must actually change the outputs: same weights, absolute type.
        absolute = BertModel(make_config("absolute", attn_implementation="eager"), add_pooling_layer=True)
        assert type(absolute.encoder.layer[0].attention.self).__name__ == "BertSelfAttention"
        missing, unexpected = absolute.load_state_dict(model.state_dict(), strict=False)
        assert not missing, missing
        assert sorted(unexpected) == [f"encoder.layer.{i}.attention.self.distance_embedding.weight"
                                      for i in range(2)], unexpected
        ref = run(absolute, inputs, torch.float64)
        diff = np.abs(ref["last_hidden_state"] - arrays["float64_last_hidden_state"]).max()
        assert diff > 1e-3, f"{pe_type}: outputs equal to the absolute variant (max diff {diff})"

        np.savez_compressed(out / "golden.npz", **arrays)
        print(f"{pe_type}: |f32-f64| {d32:.2e}; |{pe_type} - absolute| {diff:.3f}")
        for p in sorted(out.iterdir()):
            print(f"  {pe_type}/{p.name:20s} {p.stat().st_size:>8d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
