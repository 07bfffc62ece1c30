"""The README's parity numbers are the tests' tolerances: its "What the tests assert" table, its opening
sentence and its heads' parity line all come from tests/claims.py."""

import os
import re

from claims import CLAIMS, number, table
from conftest import ROOT

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def test_readme_claims_table_is_the_tests_table():
    found = re.search(r"<!-- claims:start -->\n(.*)\n<!-- claims:end -->", README, re.S)
    assert found, "README.md lacks the claims table markers"
    assert found.group(1) == table(), "update it: python tests/claims.py"


def test_readme_opening_sentence_states_the_minilm_claim():
    minilm = CLAIMS["minilm"]
    sentence = (f"Its outputs are within {number(minilm.float32)} of transformers' in float32 and "
                f"{number(minilm.float64)} in float64")
    assert sentence in " ".join(README.split()), f"README's opening sentence should say: {sentence}"


def test_readme_heads_parity_line_states_the_heads_claim():
    heads = CLAIMS["heads"]
    line = (f"every head's logits are within {number(heads.float32)} of transformers 5's in float32 and "
            f"{number(heads.float64)} in float64")
    assert line in " ".join(README.split()), f"README's heads Parity line should say: {line}"


def test_every_claim_names_a_test_that_exists():
    for name, claim in CLAIMS.items():
        assert claim.float32 is not None or claim.float64 is not None, f"{name} claims nothing"
        assert os.path.exists(os.path.join(ROOT, claim.test)), f"{name}: {claim.test} does not exist"
