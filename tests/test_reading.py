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
