"""The tokenizers of BERT's relatives pass bertnp's tokenizer.json inspection (bertnp.tokenizer), and the tighter
bound that admits ALBERT's and XLNet's still holds in `tokenizers` itself and still refuses expanding chains.

ALBERT's and XLNet's normalizers run NFKD (and StripAccents, Lowercase) before sentencepiece's charsmap. Bounded
step by step that is 11 * 1.5 * 11 (and 4 for the Metaspace after it): 726, over bertnp's 64. Bounded together,
character by character (what NFKD makes of each character, then what the charsmap can make of those), it is 11:
NFKD already expands U+FDFA 11 times, and the charsmap changes nothing NFKD has produced by more."""

from __future__ import annotations

import base64
import json
import os
import struct

import numpy as np
import pytest

from test_families import build_tokenizer, charsmap
from test_hostile import check_growth

import bertnp
from bertnp.tokenizer import UNICODE_GROWTH, _Charsmap, _Inspection, inspect_tokenizer_json

# characters that grow the most under NFKD and under the charsmap, marks that compose, and plain text
HARD = ["\ufdfa", "\u3316", "\u321d", "\ufdfb", "\u1e9b\u0323", "\u01d6", "u\u0308\u0304", "<\u0338", "\u2474",
        "\u00bd", "\ufb01", "\u1d400", "\u0130", "\u00df", "A\u030a", "\u3300", "  ", "ΣΑΣ", "x"]


def texts_from(pieces, seed: int, count: int = 200) -> list:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(pieces, int(rng.integers(1, 9)))) for _ in range(count)] + ["".join(pieces)]


@pytest.mark.parametrize("model_type", ["albert", "xlm-roberta", "camembert"])
def test_sentencepiece_tokenizers_load_and_their_bounds_hold(tmp_path, model_type):
    """transformers' own tokenizer.json for each (nmt_nfkc charsmap) loads, bounded at 44 = 11 (the text) * 4
    (Metaspace); the bound holds on the characters that grow most, in `tokenizers` itself."""
    build_tokenizer(model_type, str(tmp_path))
    text = (tmp_path / "tokenizer.json").read_text()
    bounds = inspect_tokenizer_json(json.loads(text), "tokenizer.json")
    print(model_type, bounds)
    assert bounds["text"] == (44.0, 0.0)
    tokenizer = bertnp.tokenizer.Tokenizer.from_folder(str(tmp_path), model_type)
    assert tokenizer.encode_each(["\ufdfa and café"], 64)[0][0].size > 3
    check_growth(text, texts_from(HARD, 1), [])


def test_albert_bound_is_joint_not_a_product(tmp_path):
    """The same ALBERT normalizer, bounded step by step, would be refused; so would one whose charsmap expands a
    character NFKD makes (a combining mark) or one it leaves alone ('a')."""
    build_tokenizer("albert", str(tmp_path))
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    steps = [s["type"] for s in spec["normalizer"]["normalizers"]]
    assert steps == ["Replace", "Replace", "NFKD", "StripAccents", "Lowercase", "Precompiled"]
    product = UNICODE_GROWTH["NFKD"] * UNICODE_GROWTH["Lowercase"] * _charsmap_of(spec).growth * 4
    assert product == 726.0  # what the step-by-step bound gave, over 64
    # a Replace between NFKD and the charsmap: bounded step by step again, and refused
    separated = json.loads(json.dumps(spec))
    separated["normalizer"]["normalizers"].insert(5, {"type": "Replace", "pattern": {"String": "q"}, "content": "q"})
    with pytest.raises(bertnp.TokenizerError, match=r"normalizers\[6\]: Precompiled: with the steps before it, a text "
                                                    r"can grow 181.5 times"):
        inspect_tokenizer_json(separated, "tokenizer.json")


def _charsmap_of(spec) -> _Charsmap:
    step = next(s for s in spec["normalizer"]["normalizers"] if s["type"] == "Precompiled")
    return _Charsmap(step["precompiled_charsmap"], _Inspection("tokenizer.json"), "normalizer")


def charsmap_of(key: bytes, replacement: bytes) -> str:
    """A sentencepiece charsmap mapping one key of up to 4 bytes to replacement (a double-array trie, as
    spm_precompiled reads it: each node's children at its offset XOR the byte; at the offset itself a unit no
    byte matches, as darts-clone leaves there)."""
    units = np.zeros(16384, "<u4")
    units[0] = 256 << 10  # the root's children start at 256
    node = 256
    for depth, byte in enumerate(key):
        units[node] = 1 << 31
        child, offset = node ^ byte, 1024 << depth
        last = depth == len(key) - 1
        units[child] = byte | (last << 8) | (offset << 10)
        node = child ^ offset
    units[node] = 1 << 31  # the leaf: the replacement starts at 0 in the pool
    return base64.b64encode(struct.pack("<I", units.nbytes) + units.tobytes() + replacement + b"\0").decode()


def sentencepiece_spec(normalizers: list) -> dict:
    """A tokenizer.json of a small Unigram model with these normalizers and Metaspace, as ALBERT's."""
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": {"type": "Sequence", "normalizers": normalizers},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
            "post_processor": None, "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                                                "split": True},
            "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0], ["\u2581", -2.0]],
                      "byte_fallback": False}}


@pytest.mark.parametrize("key,replacement,worst", [
    ("\u0308", 20, 12.0),  # a mark NFKD makes: U+03B0 (2 bytes) -> upsilon, U+0308, U+0301 -> 2 + 20 + 2 bytes
    ("a", 10, 11.0),  # a character NFKD leaves alone: 10 times, under NFKD's own U+FDFA
    ("\u0308", 200, 102.0),  # over 64 with Metaspace's 4: refused
    ("a", 100, 100.0),
])
def test_expanding_charsmaps_after_nfkd_are_bounded(key, replacement, worst):
    """NFKD then a charsmap that expands a character: the bound is the growth `tokenizers` really shows on the
    character that grows most, times Metaspace's 4, and over 64 a refusal."""
    from tokenizers import normalizers

    encoded = charsmap_of(key.encode(), b"x" * replacement)
    spec = sentencepiece_spec([{"type": "NFKD"}, {"type": "Precompiled", "precompiled_charsmap": encoded}])
    normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Precompiled(base64.b64decode(encoded))])
    samples = ["\u03b0", "\u0390", "\u00fc", "\u01d6", "a", "\u00e4", "\u00aa", "\u33c2", "\ufdfa"]
    measured = max(len(normalizer.normalize_str(c).encode()) / len(c.encode()) for c in samples)
    assert measured == worst
    if 4 * worst > 64:
        with pytest.raises(bertnp.TokenizerError, match="normalizer.normalizers\\[1\\]: NFKD \\+ Precompiled: with the "
                                                        f"steps before it, a text can grow {worst:g} times"):
            inspect_tokenizer_json(spec, "tokenizer.json")
        return
    assert inspect_tokenizer_json(spec, "tokenizer.json")["text"] == (4 * worst, 0.0)
    check_growth(json.dumps(spec), texts_from(samples + [" "], 2), [])


def test_the_real_charsmap_weights_bound_tokenizers_output():
    """_Charsmap.weights bounds what the charsmap makes of any text, character by character, on its own and after
    NFKD, StripAccents and Lowercase (ALBERT's): random texts of the characters it expands most."""
    from tokenizers import normalizers

    raw = charsmap()
    check = _Charsmap(base64.b64encode(raw).decode(), _Inspection("tokenizer.json"), "normalizer")
    cps = np.array([c for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF])
    weights = check.weights(cps)
    sizes = np.array([len(chr(c).encode()) for c in cps])
    assert weights.min() >= 1 and np.all(weights >= sizes)
    top = cps[np.argsort(-(weights / sizes))[:200]]
    pieces = [chr(c) for c in top] + HARD + ["e\u0301", "\u0301", "a"]
    alone = normalizers.Precompiled(raw)
    for text in texts_from(pieces, 3, 500):
        out = len(alone.normalize_str(text).encode())
        bound = int(check.weights(np.array([ord(c) for c in text])).sum())
        assert out <= bound, f"{text!r}: {out} bytes out, weights bound it at {bound}"
    assert check.char_ratio() == check.growth == 11.0  # U+FDFA: 3 bytes to 33
