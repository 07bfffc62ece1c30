"""bertnp's parity claims: the one table that the tests assert and the README prints.

Each claim bounds the max abs error of one comparison, in float32 and in float64 (None: not claimed).
Every bound was chosen by measurement: the largest error seen over many runs (hypothesis examples,
seeds), with OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell) and its AVX-512 ones, at 1 and 2
threads (BERTNP_NUM_THREADS), then rounded up with margin. The measured maxima are in the comments.

    python tests/claims.py      # prints the README's "What the tests assert" table

tests/test_claims.py keeps the README's table, its opening sentence and its heads' parity line in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Claim:
    compared: str  # what is compared, where
    against: str  # with what
    float32: float | None  # max abs error bound, or None where nothing is claimed
    float64: float | None
    test: str  # the tests that assert it


CLAIMS = {
    # measured max: float32 9.3e-6 (hidden states; last_hidden_state 3.2e-6), float64 1.8e-14. torch float32 is
    # itself 6.2e-6 from the float64 truth there; bertnp float32 3.5e-6 (numpy) and 3.3e-6 (numba).
    "minilm": Claim(
        "all-MiniLM-L6-v2, real weights, both backends: every hidden state, attention row and the pooler, at real "
        "tokens (texts and pairs, up to 128 tokens)",
        "transformers 5, same dtype", 1e-5, 5e-14, "tests/test_minilm.py"),
    # measured max 6.2e-13. Ill-conditioned: weights changed by 1e-16 (relative) move padded states by 3e-13,
    # real ones by 6e-15.
    "minilm_padded": Claim(
        "the same, reference path (`numpy`) in float64, at every position, padded ones included",
        "transformers 5, float64", None, 2e-12, "tests/test_minilm.py"),
    # measured max over ~1600 hypothesis examples and ~250 more of 300 or 512 tokens: float32 2.5e-6, float64 5.6e-15
    "random": Claim(
        "random checkpoints (every activation, classifier heads, right and left padding, masks with holes, rows "
        "without real tokens, up to 512 tokens), both backends, every output: float32 at real tokens, float64 "
        "wherever the path computes",
        "transformers 5, same dtype", 5e-6, 2e-14, "tests/test_parity_random.py"),
    # measured max: float32 1.3e-6, float64 1.8e-15
    "relative": Claim(
        "`relative_key` and `relative_key_query` checkpoints (2 fixed; 6 random with left padding, holes, a row "
        "without real tokens, up to 512 tokens), both backends, every output stored, positions as for `random`",
        "transformers 4.57 goldens in `weights/relative`", 3e-6, 5e-15, "tests/test_golden.py"),
    # measured max: float32 1.5e-6, float64 2.8e-15
    "tiny": Claim(
        "`weights/tiny` (a 2-layer classifier with its tokenizer), both backends, every output, positions as for "
        "`random`",
        "transformers 5 goldens in `weights/tiny`", 3e-6, 1e-14, "tests/test_golden.py"),
    # measured max over ~250 examples per head: float32 2.1e-6, float64 1.1e-14 (masked LM logits)
    "heads": Claim(
        "token classification, question answering and masked LM logits of random checkpoints, both backends: "
        "float32 at real tokens, float64 at every position (reference path) or real tokens (fast path)",
        "transformers 5, same dtype", 5e-6, 3e-14, "tests/test_heads.py"),
    # measured max over 465 random examples (15 per family and head): float32 6.6e-6, float64 7.9e-15
    "families": Claim(
        "DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA and ALBERT checkpoints of random configs, every head "
        "(base model with its pooler, sequence and token classification, question answering, masked LM, ELECTRA's "
        "discriminator), real tokens of each family's tokenizer, pairs, right and left padding, both backends: every "
        "hidden state, attention row and output, float32 at real tokens, float64 wherever the path computes",
        "transformers 5, same dtype", 1e-5, 3e-14, "tests/test_families.py"),
    # measured max over ~1900 random examples and MiniLM: float32 2.9e-6 (MiniLM), float64 6.7e-15
    "fast": Claim(
        "the fast path (`numba`) on random checkpoints and MiniLM, every output where it computes",
        "the reference path (`numpy`), same dtype", 5e-6, 2e-14, "tests/test_fast_parity.py"),
    # measured max: float32 4.1e-6, float64 0
    "gpu_numpy": Claim(
        "the GPU forward pass (`bertnp/gpu.py`) run with NumPy, on tiny and MiniLM: float32 at "
        "real tokens, float64 at every position",
        "the reference path, same dtype", 1e-5, 1e-14, "tests/test_gpu.py"),
    # measured max 3.6e-6
    "embedder": Claim(
        "`Embedder` on MiniLM, every pooling: the embeddings",
        "sentence-transformers `encode`", 1e-5, None, "tests/test_embedder.py"),
}


def tolerance(claim: str, dtype) -> float:
    """The bound that `claim` asserts for `dtype`."""
    bound = getattr(CLAIMS[claim], np.dtype(dtype).name)
    assert bound is not None, f"claim {claim!r} asserts nothing in {np.dtype(dtype).name}"
    return bound


def number(bound: float | None) -> str:
    return "not claimed" if bound is None else f"{bound:.0e}".replace("e-0", "e-")


def table() -> str:
    """The README's claims table, one row per claim."""
    lines = ["| claim | compared | against | float32 | float64 | test |", "| --- | --- | --- | --- | --- | --- |"]
    for name, c in CLAIMS.items():
        lines.append(f"| `{name}` | {c.compared} | {c.against} | {number(c.float32)} | {number(c.float64)} | "
                     f"`{c.test}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
