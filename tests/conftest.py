"""Shared fixtures. Optional dependencies skip a test locally, but CI sets BERTNP_REQUIRE_ALL=1 so that
a parity test that would skip fails instead: a skipped test is not a passing one."""

from __future__ import annotations

import importlib
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights")


def require(module: str):
    """Import an optional test dependency, or skip (fail under BERTNP_REQUIRE_ALL=1)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("BERTNP_REQUIRE_ALL") == "1":
            pytest.fail(f"{module} is required in CI (BERTNP_REQUIRE_ALL=1) but is not installed")
        pytest.skip(f"{module} not installed")


@pytest.fixture(scope="session")
def minilm_path():
    path = os.environ.get("BERTNP_MINILM", os.path.join(WEIGHTS, "minilm"))
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        message = f"all-MiniLM-L6-v2 not found at {path}: run `python weights/fetch_minilm.py`"
        if os.environ.get("BERTNP_REQUIRE_ALL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


# Modules whose results depend on the BLAS kernels and thread counts (batch heights, thread splits, parity
# bounds): .ci/run runs them again with the other OpenBLAS kernels, at 1 and 2 threads (`-m blas`). A test
# there that touches no BLAS (our own kernels against themselves or libm) says so with @pytest.mark.blas_free
# and runs once: on 2 slow cores, test_results_do_not_depend_on_the_vector_width alone took 40 s a pass.
BLAS_SENSITIVE = {
    "test_deterministic.py", "test_fast_parity.py", "test_kernels.py", "test_gpu.py", "test_minilm.py",
    "test_parity_random.py", "test_golden.py", "test_heads.py", "test_embedder.py", "test_classifier.py",
    "test_cli.py", "test_heads_cli.py", "test_heads_pipelines.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in BLAS_SENSITIVE and item.get_closest_marker("blas_free") is None:
            item.add_marker(pytest.mark.blas)
