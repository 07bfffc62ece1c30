"""The README's example outputs are what the code prints: every output it shows in a Python example is
either computed here from the weights committed (or fetched) and compared, or marked illustrative."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import ROOT, WEIGHTS

import bertnp

README = os.path.join(ROOT, "README.md")


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def shown_output(call: str) -> str:
    """The output comment the README shows for `call`: on its line, or alone on the next line."""
    for block in python_blocks(open(README, encoding="utf-8").read()):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(call):
                comment = line[len(call):].strip()
                if not comment.startswith("#") and i + 1 < len(lines):
                    comment = lines[i + 1].strip()
                assert comment.startswith("#"), f"README shows no output for {call}"
                return comment[1:].strip()
    raise AssertionError(f"README has no line starting with {call}")


def parse(comment: str):
    """A shown output as Python values: the trailing '(note)' and ', ...' elisions dropped."""
    literal = re.sub(r"\s+\([^)]*\)$", "", comment).replace(", ...", "")
    return json.loads(literal)


def assert_shown(shown, actual, where):
    """Equal, numbers rounded to the digits the README shows."""
    if isinstance(shown, dict):
        for key, value in shown.items():
            assert key in actual, f"{where}: the code gives no {key!r}"
            assert_shown(value, actual[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert len(shown) <= len(actual), f"{where}: README shows {len(shown)} items, the code gives {len(actual)}"
        for i, (value, got) in enumerate(zip(shown, actual)):
            assert_shown(value, got, f"{where}[{i}]")
    elif isinstance(shown, float):
        digits = len(repr(shown).split(".")[1])
        assert abs(actual - shown) <= 0.5 * 10**-digits, f"{where}: README shows {shown}, the code gives {actual}"
    else:
        assert shown == actual, f"{where}: README shows {shown!r}, the code gives {actual!r}"


def test_classifier_example():
    clf = bertnp.Classifier(os.path.join(WEIGHTS, "tiny"))
    call = 'clf.classify(["The team won the game."], top_k=None)'
    assert_shown(parse(shown_output(call)), clf.classify(["The team won the game."], top_k=None), call)


def test_zero_shot_example(minilm_path):
    zs = bertnp.Classifier(minilm_path, labels=["World", "Sports", "Business", "Sci/Tech"])
    call = 'zs.classify(["Microsoft has taken its first step into the metaverse."])'
    assert_shown(parse(shown_output(call)), zs.classify(["Microsoft has taken its first step into the metaverse."]), call)


def test_question_answering_example():
    qa = bertnp.QuestionAnswerer(os.path.join(WEIGHTS, "qa"))
    question, context = "who won the game?", "The team won the game on Sunday because the coach played two new players."
    call = f'qa.answer("{question}", "{context}")'
    assert_shown(parse(shown_output(call)), qa.answer(question, context), call)


CHECKED = ('clf.classify(["The team won', 'zs.classify(["Microsoft', 'qa.answer("who won')


def test_every_shown_output_is_checked_or_marked_illustrative():
    """An output comment (a JSON value after #) must belong to a checked call or say it is illustrative."""
    for block in python_blocks(open(README, encoding="utf-8").read()):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            if not comment.startswith(("[{", "[[", "{")):
                continue
            call = line if not line.lstrip().startswith("#") else lines[i - 1]
            if "illustrative" in comment:
                continue
            assert call.startswith(CHECKED), f"README output for {call.strip()!r} is neither checked nor illustrative"


@pytest.mark.parametrize("call", CHECKED)
def test_checked_calls_are_in_the_readme(call):
    assert any(line.startswith(call) for block in python_blocks(open(README, encoding="utf-8").read())
               for line in block.splitlines())
