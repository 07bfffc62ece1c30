"""bertnp's reference path: backend="numpy" (bertnp/model.py on NumPy and its BLAS).

Threads: OPENBLAS_NUM_THREADS, set by the harness before NumPy loads.
"""

from __future__ import annotations

from engines import fast

TITLE = "bertnp reference"
VARIANTS = ("numpy",)
import_library = fast.import_library


class Engine(fast.Engine):
    def backend_name(self, variant):
        return "numpy"
