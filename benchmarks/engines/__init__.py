"""Engines: one module each. A module defines

    TITLE                  the engine's name in the report
    VARIANTS               its variants (the first is the default)
    prepare(checkpoint, folder) -> dict     optional: built once per checkpoint in a worker (ORT's graphs)
    import_library()       imports what the engine needs (the startup workloads time it as "import")
    Engine(checkpoint, variant, threads, prepared)   loads the model; sets the engine's own thread counts
        .hidden(ids, mask)  int64 [B, T] -> last_hidden_state [B, T, H]
        .embed(texts)       texts -> [N, H] float32: tokenized, truncated at MAX_LENGTH, batches of 32
                            sorted by length, mean pooled over real tokens, L2-normalized (all-MiniLM-L6-v2's
                            sentence-transformers modules); what an app calls
        .threads()          the thread counts in force, as the library reports them

Server engines (serve, infinity) are HTTP servers instead: they define TITLE, VARIANTS, ROUTE,
command() and environment(), and workloads/serve.py starts each as a process of its own.

The harness runs each Engine in its own process whose environment already sets BERTNP_NUM_THREADS,
OPENBLAS_NUM_THREADS and RAYON_NUM_THREADS (the tokenizer) to the run's thread count. Module top levels
import NumPy only, so that the parent can read TITLE cheaply.

The helpers below are the peers' text path: the checkpoint's own tokenizer.json through `tokenizers`
(which bertnp uses too), then the same pooling as sentence-transformers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length; bertnp reads it from the folder
BATCH_SIZE = 32


def tokenizer(folder: Path):
    """tokenizer.json, truncating at MAX_LENGTH, not padding (each batch is padded to its longest text)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    tok.no_padding()
    return tok


def sorted_batches(tok, texts):
    """(rows, ids, mask) for each batch that embed_sorted (and bertnp's run_sequences) runs: texts tokenized,
    stably sorted by length, in batches of BATCH_SIZE padded to their longest; rows: the texts' indices."""
    encodings = tok.encode_batch(list(texts))
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    for start in range(0, len(order), BATCH_SIZE):
        rows = order[start : start + BATCH_SIZE]
        yield (rows, *padded([encodings[i] for i in rows]))


def embed_sorted(tok, texts, hidden) -> np.ndarray:
    """texts -> [N, H] in input order: sorted_batches through hidden(ids, mask), mean pooled, L2-normalized."""
    result = None
    for rows, ids, mask in sorted_batches(tok, texts):
        h = hidden(ids, mask)
        m = mask[:, :, None].astype(h.dtype)
        pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)  # [b, T, H] -> [b, H]
        if result is None:
            result = np.empty((len(texts), pooled.shape[1]), np.float32)
        result[rows] = pooled
    return result / np.maximum(np.linalg.norm(result, axis=1, keepdims=True), 1e-12)


def padded(encodings):
    """tokenizers Encodings -> int64 input_ids and attention_mask [b, longest]."""
    width = max(len(e.ids) for e in encodings)
    ids, mask = np.zeros((len(encodings), width), np.int64), np.zeros((len(encodings), width), np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
    return ids, mask


def blas_threads() -> str:
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    return ", ".join(f"{p['internal_api']} {p.get('architecture')} {p['num_threads']} threads "
                     f"({p['filepath'].rsplit('/', 1)[-1]})" for p in pools) or "none"
