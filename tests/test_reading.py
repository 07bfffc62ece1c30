"""The README's "Reading bertnp" section is generated from the code; this keeps it true."""

import os
import re

from conftest import ROOT

from bertnp.reading import section


def test_readme_reading_section_matches_the_code(minilm_path):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    found = re.search(r"<!-- reading:start -->\n(.*)\n<!-- reading:end -->", readme, re.S)
    assert found, "README.md lacks the reading section markers"
    assert found.group(1) == section(minilm_path), "regenerate it: python -m bertnp.reading weights/minilm"


def test_kernel_table_names_real_functions():
    """Every kernel the reading section names exists, and so does every model.py function it replaces."""
    from bertnp import model
    from bertnp.kernels import cpu, gemm, packed
    from bertnp.reading import KERNELS

    modules = {"bertnp/kernels/cpu.py": cpu, "bertnp/kernels/packed.py": packed, "bertnp/kernels/gemm.py": gemm}
    for path, kernel, replaced, _ in KERNELS:
        assert callable(getattr(modules[path], kernel)), f"{path} has no {kernel}"
        for name in replaced:
            assert callable(getattr(model, name, None)), f"model.py has no {name} (named for {kernel})"
