"""bertnp's fast path: backend="numba" (bertnp/fast.py, the kernels of bertnp.kernels).

Threads: BERTNP_NUM_THREADS (Numba's kernels and BLAS), set by the harness before bertnp loads.
Variants: "numba" asks for the backend by name; "default" is what `bertnp.Embedder(folder)` picks (numba
when installed, however bertnp then brings it up: the start-up workloads time it as apps meet it);
"deterministic" is backend="numba" with deterministic=True.
"""

from __future__ import annotations

import sys

import numpy as np

from engines import blas_threads

TITLE = "bertnp fast"
VARIANTS = ("numba", "default", "deterministic")


def import_library():
    import bertnp  # noqa: F401


class Engine:
    def __init__(self, checkpoint, variant, threads, prepared):
        import bertnp

        self.embedder = bertnp.Embedder(str(checkpoint), backend=self.backend_name(variant),
                                        deterministic=variant == "deterministic")
        self.model = self.embedder.model

    def backend_name(self, variant):
        return None if variant == "default" else "numba"

    def hidden(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                          pooler_output=False).last_hidden_state  # as the ONNX graphs, whose one output it is

    def embed(self, texts):
        return self.embedder.embed(texts, batch_size=32)

    def threads(self) -> str:
        found = []
        if "numba" in sys.modules:
            import numba

            try:
                layer = numba.threading_layer()
            except ValueError:
                layer = "no parallel kernel ran"
            found.append(f"Numba {numba.get_num_threads()} threads ({layer})")
        return ", ".join(found + [f"BLAS {blas_threads()}"])
