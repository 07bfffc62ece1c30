"""Build the tiny deterministic BERT checkpoint and golden outputs in ``weights/tiny/``.

The folder is committed so that bertnp's core tests run where torch is absent.
Regenerate it (needs torch, transformers 5.x, tokenizers, safetensors, numpy):

    /work/venv/bin/python weights/make_tiny.py            # writes weights/tiny/
    /work/venv/bin/python weights/make_tiny.py --out DIR  # somewhere else

What it writes:
    vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json
    config.json, model.safetensors   (BertForSequenceClassification, float32,
                                      HF tensor names with the ``bert.`` prefix)
    golden.npz                       (inputs + float32/float64 reference outputs)
    golden_texts.json                (the texts the inputs were made from)

Weights are re-drawn from a seeded normal (std 0.2; LayerNorm weights 1 +- 0.1;
biases std 0.1) so that small numerical bugs show up in the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

SEED = 0  # torch.manual_seed before building the model (all params are re-drawn anyway)
# Seed of the re-draw; 2 is picked so the golden logits do not all argmax to one label
# (seeds 0/1 give "Sports" for every text, which would hide label-mapping bugs).
REDRAW_SEED = 2
MAX_LENGTH = 16  # truncation length used for the golden batches
MODEL_MAX_LENGTH = 64

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Whole words (lowercase, accents already stripped by the BERT normalizer).
WORDS = """
the a an and or but of to in on at by for with from over under after before
is are was were be been has have had do does did will would can could not no
it its this that these those he she they we you i his her their our my your
who what when where why how which one two three four five ten
quick brown fox jump jumps lazy dog cat cafe naive resume deja vu
team won game games sunday monday today yesterday week year championship
play player match goal score final season coach league cup
market markets stock stocks fell rose rallied dropped price prices oil company
companies reported strong weak earnings profit bank shares percent trade deal
world news government president country city people war peace talks
hello hi ok yes good bad new old big small long short because about
""".split()

# WordPiece continuation pieces.
SUFFIXES = ["##s", "##es", "##ed", "##ing", "##er", "##ers", "##ly", "##est", "##ion",
            "##a", "##e", "##i", "##o", "##n", "##t", "##y"]

PUNCT = list(".,!?;:'\"()-$%&/")
DIGITS = list("0123456789")
# A couple of characters that survive lowercasing + accent stripping
# ("é" does not: it is stripped to "e"; it is kept to show that it is unreachable).
EXTRA_CHARS = ["é", "ø", "中", "文", "日"]

SINGLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello",
    " ? ",
    "Café naïve résumé, déjà vu: 中文 and Ørsted!",
    "The market rallied after the company reported strong earnings, and the team won "
    "the championship game on Sunday because the coach played two new players.",
    "Players kept playing; 3 stocks fell 12%.",
]

PAIR_TEXTS = [
    ["Who won the game?", "The team won on Sunday."],
    ["Why did stocks fall?", "Oil prices rose 5 percent today."],
]


def build_vocab() -> list[str]:
    vocab: list[str] = []
    seen = set()
    for tok in SPECIAL_TOKENS + PUNCT + DIGITS + EXTRA_CHARS + WORDS + SUFFIXES:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    # Single lowercase letters so most unknown words still split into pieces.
    for ch in "abcdefghijklmnopqrstuvwxyz":
        if ch not in seen:
            seen.add(ch)
            vocab.append(ch)
    assert vocab[:5] == SPECIAL_TOKENS and vocab.index("[PAD]") == 0
    return vocab


def write_tokenizer(out: Path, vocab: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")

    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(WordPiece(ids, unk_token="[UNK]", continuing_subword_prefix="##",
                              max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.save(str(out / "tokenizer.json"))

    specials = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    tok_cfg = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": MODEL_MAX_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    with open(out / "tokenizer_config.json", "w", encoding="utf-8") as f:
        json.dump(tok_cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(out / "special_tokens_map.json", "w", encoding="utf-8") as f:
        json.dump(specials, f, indent=2)
        f.write("\n")


def check_tokenizers(out: Path, vocab: list[str]) -> None:
    """Fast (tokenizer.json) and slow (vocab.txt) tokenizers must agree on the goldens."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    try:  # transformers 5.x: the pure-Python tokenizer is BertTokenizerLegacy
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBert
    except ImportError:  # transformers 4.x
        from transformers import BertTokenizer as SlowBert

    fast = AutoTokenizer.from_pretrained(str(out))
    assert fast.is_fast, type(fast)
    slow = SlowBert(vocab_file=str(out / "vocab.txt"), do_lower_case=True,
                    model_max_length=MODEL_MAX_LENGTH)
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert len(fast) == len(vocab) == len(slow), (len(fast), len(vocab), len(slow))
    assert fast.model_max_length == MODEL_MAX_LENGTH

    kw = dict(padding="longest", truncation=True, max_length=MAX_LENGTH,
              return_token_type_ids=True, return_attention_mask=True)
    for name, batch in (("single", SINGLE_TEXTS), ("pair", PAIR_TEXTS)):
        if name == "single":
            f, s = fast(SINGLE_TEXTS, **kw), slow(SINGLE_TEXTS, **kw)
            r = [e.ids for e in raw.encode_batch(SINGLE_TEXTS)]
        else:
            a = [p[0] for p in PAIR_TEXTS]
            b = [p[1] for p in PAIR_TEXTS]
            f, s = fast(a, b, **kw), slow(a, b, **kw)
            r = [e.ids for e in raw.encode_batch(list(zip(a, b)))]
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert f[key] == s[key], (name, key, f[key], s[key])
        # Untruncated, unpadded raw tokenizer.json must agree with the real tokens.
        for row_ids, row_mask, rr in zip(f["input_ids"], f["attention_mask"], r):
            n = sum(row_mask)
            if len(rr) <= MAX_LENGTH:
                assert row_ids[:n] == rr, (row_ids, rr)
            else:
                assert n == MAX_LENGTH
        for i, ids in enumerate(f["input_ids"]):
            print(f"  {name}[{i}] {fast.convert_ids_to_tokens(ids)}")
    # Every single (non-unk) vocab entry round-trips through the fast tokenizer.
    assert fast.convert_tokens_to_ids(vocab) == list(range(len(vocab)))


def redraw_(model, seed: int) -> None:
    """Re-draw every parameter from a seeded normal so bugs are visible in outputs."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("LayerNorm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def run_model(model, enc, dtype):
    import torch

    model = model.to(dtype).eval()
    with torch.no_grad():
        o = model(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=enc["token_type_ids"],
            output_hidden_states=True,
            output_attentions=True,
            return_dict=True,
        )
        base = model.bert(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=enc["token_type_ids"],
            return_dict=True,
        )
    res = {
        "last_hidden_state": o.hidden_states[-1],
        "pooler_output": base.pooler_output,
        "logits": o.logits,
        "hidden_states": torch.stack(o.hidden_states),
        "attentions": torch.stack(o.attentions),
    }
    # The classifier head must be exactly classifier(pooler_output) in eval mode.
    torch.testing.assert_close(base.last_hidden_state, res["last_hidden_state"], rtol=0, atol=0)
    torch.testing.assert_close(model.classifier(base.pooler_output), o.logits, rtol=0, atol=0)
    out = {}
    for k, v in res.items():
        a = v.detach().cpu().numpy()
        assert a.dtype == (np.float32 if dtype == torch.float32 else np.float64), (k, a.dtype)
        assert np.isfinite(a).all(), k
        out[k] = a
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "tiny"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)  # deterministic reductions

    vocab = build_vocab()
    print(f"vocab size {len(vocab)}")
    write_tokenizer(out, vocab)
    check_tokenizers(out, vocab)

    id2label = {0: "World", 1: "Sports", 2: "Business"}
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=MODEL_MAX_LENGTH,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
        classifier_dropout=None,
        num_labels=3,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type="single_label_classification",
        architectures=["BertForSequenceClassification"],
    )
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(config)
    redraw_(model, REDRAW_SEED)
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)

    # Reload from disk so the goldens come from exactly what was saved.
    model = BertForSequenceClassification.from_pretrained(str(out), attn_implementation="eager")
    model.eval()
    from safetensors.numpy import load_file

    saved = load_file(str(out / "model.safetensors"))
    for name, p in model.state_dict().items():
        if name in saved:
            assert saved[name].dtype == np.float32, name
            assert np.array_equal(saved[name], p.numpy()), name
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(saved))
    assert not missing, missing
    print(f"saved tensors: {len(saved)}; names e.g. {sorted(saved)[:3]}")

    tok = AutoTokenizer.from_pretrained(str(out))
    kw = dict(padding="longest", truncation=True, max_length=MAX_LENGTH, return_tensors="pt",
              return_token_type_ids=True, return_attention_mask=True)
    batches = {
        "single": tok(SINGLE_TEXTS, **kw),
        "pair": tok([p[0] for p in PAIR_TEXTS], [p[1] for p in PAIR_TEXTS], **kw),
    }

    arrays: dict[str, np.ndarray] = {}
    for b, enc in batches.items():
        lens = enc["attention_mask"].sum(1).tolist()
        assert len(set(lens)) > 1, f"{b}: want padded rows, got lengths {lens}"
        print(f"{b}: shape {tuple(enc['input_ids'].shape)}, lengths {lens}")
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            arrays[f"{b}_{key}"] = enc[key].numpy().astype(np.int64)
        for dname, dt in (("float32", torch.float32), ("float64", torch.float64)):
            res = run_model(model, enc, dt)
            for k, v in res.items():
                arrays[f"{b}_{dname}_{k}"] = v
        model = model.float()
        d = np.abs(arrays[f"{b}_float32_last_hidden_state"] - arrays[f"{b}_float64_last_hidden_state"]).max()
        pred = arrays[f"{b}_float64_logits"].argmax(-1).tolist()
        print(f"{b}: max |f32-f64| last_hidden_state {d:.2e}; argmax {pred}; "
              f"logits f64 {np.array2string(arrays[f'{b}_float64_logits'], precision=3)}")

    np.savez_compressed(out / "golden.npz", **arrays)
    with open(out / "golden_texts.json", "w", encoding="utf-8") as f:
        json.dump({"single": SINGLE_TEXTS, "pair": PAIR_TEXTS, "max_length": MAX_LENGTH},
                  f, indent=2, ensure_ascii=False)
        f.write("\n")

    for p in sorted(out.iterdir()):
        print(f"  {p.name:28s} {p.stat().st_size:>9d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
