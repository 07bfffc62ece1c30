"""BERT's relatives (issue 17): DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA and ALBERT checkpoints of
every head, from configs hypothesis draws, saved by transformers 5 (random weights, tiny sizes, tokenizers built
with the `tokenizers` library and saved by transformers' own tokenizer classes), loaded by bertnp and compared with
transformers on real tokens: float32 and float64, both CPU backends and the GPU forward pass run with NumPy; and
malformed or mixed checkpoints, refused naming the file and the tensor.

BERTNP_FAMILY_EXAMPLES sets the hypothesis examples per family and head (default 4, about a minute in all).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WEIGHTS, require
from parity import assert_claim, computed_positions
from texts import PAIRS, TEXTS

import bertnp
from bertnp import gpu, heads
from bertnp.weights import FAMILIES

EXAMPLES = int(os.environ.get("BERTNP_FAMILY_EXAMPLES", "4"))
TINY = os.path.join(WEIGHTS, "tiny")
CHARSMAP = os.path.join(WEIGHTS, "charsmap", "nmt_nfkc.bin.gz")
MODEL_TYPES = ("distilbert", "roberta", "xlm-roberta", "camembert", "electra", "albert")
STEMS = {"distilbert": "DistilBert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta", "camembert": "Camembert",
         "electra": "Electra", "albert": "Albert"}
HEADS = {  # head -> (class suffix, outputs compared besides the encoder's)
    "base": ("Model", ("pooler_output",)),
    "sequence": ("ForSequenceClassification", ("logits",)),
    "token": ("ForTokenClassification", ("logits",)),
    "qa": ("ForQuestionAnswering", ("start_logits", "end_logits")),
    "mlm": ("ForMaskedLM", ("logits",)),
    "discriminator": ("ForPreTraining", ("logits",)),  # ELECTRA's only
}
COMBINATIONS = [(m, h) for m in MODEL_TYPES for h in HEADS if h != "discriminator" or m == "electra"]
ACTS = ["gelu", "gelu_new", "relu", "silu", "quick_gelu"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
NLI_LABELS = ["contradiction", "neutral", "entailment"]
CORPUS = [t for t in TEXTS if t] + [f"{a} {b}" for a, b in PAIRS] + \
    ["the team won the game on sunday", "stocks fell on monday", "paris is the capital of france"] * 3


# ---- tokenizers: each family's, built with `tokenizers` and saved by transformers' class for it --------------


def charsmap() -> bytes:
    """sentencepiece's nmt_nfkc charsmap (weights/make_charsmap.py)."""
    with gzip.open(CHARSMAP) as f:
        return f.read()


def unigram_pieces(normalizer) -> list:
    """A small sentencepiece-style Unigram vocabulary of (piece, score), trained on CORPUS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=180, special_tokens=[], show_progress=False))
    return [tuple(piece) for piece in json.loads(tokenizer.to_str())["model"]["vocab"]]


def byte_level_bpe() -> tuple[dict, list]:
    """RoBERTa's byte-level BPE vocabulary and merges, trained on CORPUS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    spec = json.loads(tokenizer.to_str())["model"]
    vocab = dict(spec["vocab"])
    vocab["<mask>"] = len(vocab)
    return vocab, [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["merges"]]


def build_tokenizer(model_type: str, folder: str) -> int:
    """Writes the family's tokenizer files into folder; returns its vocabulary size."""
    transformers = require("transformers")
    from tokenizers import normalizers

    if model_type in ("distilbert", "electra"):  # BERT's WordPiece (weights/tiny's), as these checkpoints ship it
        for name in ("vocab.txt", "tokenizer.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(TINY, name), os.path.join(folder, name))
        settings = json.load(open(os.path.join(TINY, "tokenizer_config.json")))
        settings["tokenizer_class"] = "DistilBertTokenizer" if model_type == "distilbert" else "BertTokenizer"
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(settings, f)
        return 224
    raw = charsmap()
    if model_type == "roberta":
        vocab, merges = byte_level_bpe()
        tokenizer = transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    elif model_type == "xlm-roberta":
        pieces = unigram_pieces(normalizers.Precompiled(raw))
        tokenizer = transformers.XLMRobertaTokenizer(
            vocab=[("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + pieces + [("<mask>", 0.0)],
            _spm_precompiled_charsmap=raw)
    elif model_type == "camembert":
        pieces = unigram_pieces(normalizers.Precompiled(raw))
        tokenizer = transformers.CamembertTokenizer(
            vocab=[("<s>NOTUSED", 0.0), ("<pad>", 0.0), ("</s>NOTUSED", 0.0), ("<unk>", 0.0), ("<unk>NOTUSED", -100.0),
                   ("<s>", 0.0), ("</s>", 0.0)] + pieces + [("<mask>", 0.0)], _spm_precompiled_charsmap=raw)
    else:  # ALBERT: NFKD, StripAccents, Lowercase, then the charsmap
        pieces = unigram_pieces(normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(),
                                                      normalizers.Lowercase(), normalizers.Precompiled(raw)]))
        tokenizer = transformers.AlbertTokenizer(
            vocab=[("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("[MASK]", 0.0)] + pieces,
            _spm_precompiled_charsmap=raw)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    return len(tokenizer)


@pytest.fixture(scope="session")
def tokenizer_folders(tmp_path_factory):
    """model_type -> (a folder holding its tokenizer files, vocabulary size), built once per session."""
    root = tmp_path_factory.mktemp("family_tokenizers")
    folders = {}
    for model_type in MODEL_TYPES:
        folder = root / model_type
        folder.mkdir()
        folders[model_type] = (str(folder), build_tokenizer(model_type, str(folder)))
    return folders


# ---- checkpoints -------------------------------------------------------------------------------------------


def pad_id(model_type: str) -> int:
    return 1 if FAMILY[model_type] == "roberta" else 0


FAMILY = {m: {"xlm-roberta": "roberta", "camembert": "roberta"}.get(m, m) for m in MODEL_TYPES}


def make_family_checkpoint(folder, model_type: str, head: str, config: dict, seed: int, tokenizers: dict,
                           head_scale: float = 0.15, labels=None) -> str:
    """A random transformers 5 checkpoint of model_type's class for head, with the family's tokenizer.

    Weights are redrawn larger than the init so a wrong op shows (LayerNorm weights 1 +- 0.1, biases std 0.1,
    the rest std 0.15, the head's own std head_scale); a DistilBERT sinusoidal position table stays as made."""
    torch, transformers = require("torch"), require("transformers")
    tokenizer_folder, vocab = tokenizers[model_type]
    cls = getattr(transformers, STEMS[model_type] + HEADS[head][0])
    full = dict(vocab_size=vocab, max_position_embeddings=64 + pad_id(model_type) + 1, pad_token_id=pad_id(model_type),
                **config)
    if head == "token":
        labels = labels or NER_LABELS
    if labels is not None:
        full.update(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(seed)
    model = cls(cls.config_class(**full))
    generator = torch.Generator().manual_seed(seed)
    prefix = cls.base_model_prefix + "."
    norms = {name + "." for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("position_embeddings.weight") and config.get("sinusoidal_pos_embds"):
                continue
            if any(name.startswith(n) for n in norms) and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif not name.startswith(prefix) and head != "base":
                p.copy_(head_scale * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)
    model.save_pretrained(folder, safe_serialization=True)
    for name in os.listdir(tokenizer_folder):
        shutil.copy(os.path.join(tokenizer_folder, name), os.path.join(folder, name))
    return str(folder)


@st.composite
def family_configs(draw, model_type: str, head: str):
    """A config of model_type (its own field names) for head."""
    heads_ = draw(st.sampled_from([1, 2, 4]))
    H = heads_ * draw(st.integers(max(2, 4 // heads_), 8))  # H >= 4 (see tests/test_heads.py)
    L, I, act = draw(st.integers(1, 2)), draw(st.integers(3, 40)), draw(st.sampled_from(ACTS))
    if model_type == "distilbert":
        config = dict(dim=H, n_layers=L, n_heads=heads_, hidden_dim=I, activation=act,
                      sinusoidal_pos_embds=draw(st.booleans()))
    else:
        config = dict(hidden_size=H, num_hidden_layers=L, num_attention_heads=heads_, intermediate_size=I,
                      hidden_act=act, layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
                      type_vocab_size=draw(st.integers(1, 2)))
    if model_type in ("electra", "albert"):  # factorized embeddings: E below, equal to or above H
        config["embedding_size"] = draw(st.sampled_from([max(2, H // 2), H, H + 3]))
    if model_type == "albert":
        config["num_hidden_layers"] = draw(st.integers(1, 3))
        config["num_hidden_groups"] = draw(st.integers(1, min(2, config["num_hidden_layers"])))
        config["inner_group_num"] = draw(st.integers(1, 2))
    if head == "sequence":
        config["num_labels"] = draw(st.integers(1, 4))
        if config["num_labels"] > 1 and draw(st.booleans()):
            config["problem_type"] = "multi_label_classification"
    return config


# ---- inputs and transformers' outputs ------------------------------------------------------------------------


def family_batch(model: bertnp.Bert, seed: int, type_vocab_size: int) -> dict:
    """Real texts and pairs tokenized by the family's tokenizer, padded right and (some rows) left with its pad
    id. Token types are the tokenizer's own (1 for a pair's second text, where its template says so) when the
    model has a table for them, so that they are exercised even where transformers 5's tokenizer gives none."""
    rng = np.random.default_rng(seed)
    items = [TEXTS[i] for i in rng.choice([0, 1, 3, 4, 5, 6, 9], 2, replace=False)] + [PAIRS[int(rng.integers(0, 2))]]
    tokenizer = model.tokenizer.backend
    tokenizer.enable_truncation(int(rng.integers(8, 25)))
    encodings = tokenizer.encode_batch(items)
    tokenizer.no_truncation()
    T = max(len(e.ids) for e in encodings)
    B = len(encodings)
    ids = np.full((B, T), model.tokenizer.pad_id, np.int64)
    mask, types = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
    for b, e in enumerate(encodings):
        n = len(e.ids)
        at = slice(T - n, T) if b == 1 else slice(0, n)  # row 1 left-padded
        ids[b, at], mask[b, at] = e.ids, 1
        types[b, at] = np.minimum(e.type_ids, max(type_vocab_size - 1, 0))
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def run_transformers(folder: str, model_type: str, head: str, enc: dict) -> dict:
    """Every output of transformers' class for head, float32 then float64 (the same weights, .double())."""
    torch, transformers = require("torch"), require("transformers")
    cls = getattr(transformers, STEMS[model_type] + HEADS[head][0])
    model = cls.from_pretrained(folder, attn_implementation="eager").eval()
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in enc.items()
              if not (k == "token_type_ids" and model_type == "distilbert")}  # DistilBERT takes none
    result = {}
    for dtype in (np.float32, np.float64):
        if dtype == np.float64:
            model = model.double()
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True, output_attentions=True)
        got = {"hidden_states": [h.numpy() for h in out.hidden_states],
               "attentions": [a.numpy() for a in out.attentions]}
        for name in HEADS[head][1]:
            value = getattr(out, name, None)
            got[name] = None if value is None else value.numpy()
        result[dtype] = got
    return result


def compare(label: str, out, want: dict, enc: dict, dtype, backend: str, claim: str = "families") -> dict:
    """bertnp's outputs against want's at claim's tolerance: per-token outputs at the positions the comparison
    covers (float32: real tokens; float64: every position the path computes), the rest whole."""
    mask = enc["attention_mask"]
    keep = mask != 0 if np.dtype(dtype) == np.float32 else \
        computed_positions(mask) if backend == "numba" else np.ones(mask.shape, bool)
    errors = {}

    def check(name, got, reference):
        assert got is not None, f"{label} {name}: bertnp gave None"
        if got.ndim >= 2 and got.shape[:2] == keep.shape:  # per token: [B, T, ...]
            got, reference = got[keep], reference[keep]
        errors[name] = assert_claim(claim, f"{label} {name}", got, reference, dtype)

    assert len(out.hidden_states) == len(want["hidden_states"]), "hidden_states count differs"
    assert len(out.attentions) == len(want["attentions"]), "attentions count differs"
    for i, (got, reference) in enumerate(zip(out.hidden_states, want["hidden_states"])):
        check(f"hidden_states[{i}]", got, reference)
    check("last_hidden_state", out.last_hidden_state, want["hidden_states"][-1])
    rows = np.broadcast_to(keep[:, None, :], out.attentions[0].shape[:3])
    for i, (got, reference) in enumerate(zip(out.attentions, want["attentions"])):
        errors[f"attentions[{i}]"] = assert_claim(claim, f"{label} attentions[{i}]", got[rows], reference[rows], dtype)
    for name, reference in want.items():
        if name in ("hidden_states", "attentions"):
            continue
        if reference is None:
            assert getattr(out, name) is None, f"{label} {name}: transformers gave none, bertnp did"
        else:
            check(name, getattr(out, name), reference)
    return errors


# ---- parity -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type,head", COMBINATIONS)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_family_matches_transformers(tmp_path_factory, tokenizer_folders, model_type, head, data):
    config = data.draw(family_configs(model_type, head), label="config")
    seed = data.draw(st.integers(0, 1000), label="seed")
    folder = make_family_checkpoint(tmp_path_factory.mktemp(model_type), model_type, head, config, seed,
                                    tokenizer_folders)
    probe = bertnp.load(folder, backend="numpy")
    assert probe.weights.model_class == STEMS[model_type] + HEADS[head][0]
    enc = family_batch(probe, seed, probe.config.type_vocab_size)
    want = run_transformers(folder, model_type, head, enc)
    worst = {}
    for dtype in (np.float32, np.float64):
        for backend in ("numpy", "numba"):
            model = bertnp.load(folder, dtype=np.dtype(dtype).name, backend=backend)
            out = model(**enc, output_hidden_states=True, output_attentions=True)
            errors = compare(f"{model.weights.model_class} ({np.dtype(dtype).name}, {backend})", out, want[dtype], enc,
                             dtype, backend)
            worst[f"{np.dtype(dtype).name} {backend}"] = max(errors.values())
        # the GPU forward pass, run with NumPy, against the reference path (claim gpu_numpy)
        reference = bertnp.load(folder, dtype=np.dtype(dtype).name, backend="numpy")
        ref = reference(**enc, output_hidden_states=True, output_attentions=True)
        got = gpu.forward(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                          gpu.prepare(reference.weights, np), reference.config, np, gpu.NumpyOps(np), True, True)
        got = heads.apply(got, reference.weights, reference.config, np) if reference.architecture in heads.TOKEN_HEADS \
            else got
        as_reference = {"hidden_states": ref.hidden_states, "attentions": ref.attentions,
                        **{name: getattr(ref, name) for name in HEADS[head][1]}}
        errors = compare(f"gpu.forward(xp=numpy) {model_type} {head}", got, as_reference, enc, dtype, "numpy",
                         "gpu_numpy")
        worst[f"{np.dtype(dtype).name} gpu.forward(xp=numpy) vs numpy"] = max(errors.values())
    print(model_type, head, {k: f"{v:.1e}" for k, v in worst.items()})


# ---- recognition and refusals ------------------------------------------------------------------------------


SMALL = {"distilbert": dict(dim=8, n_layers=1, n_heads=2, hidden_dim=9),
         **{m: dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=9)
            for m in MODEL_TYPES if m != "distilbert"}}
SMALL["electra"] = {**SMALL["electra"], "embedding_size": 6}
SMALL["albert"] = {**SMALL["albert"], "embedding_size": 6, "num_hidden_layers": 3}


def edit_config(folder, **fields):
    path = os.path.join(folder, "config.json")
    raw = json.load(open(path))
    raw.update(fields)
    with open(path, "w") as f:
        json.dump(raw, f)


def edit_tensors(folder, edit):
    from safetensors.numpy import load_file, save_file

    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})
    return path


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_heads_recognised_from_config_and_tensors(tmp_path, tokenizer_folders, model_type):
    """Every head from config.json's architectures, and from the tensors alone when it names none."""
    for head in [h for h in HEADS if h != "discriminator" or model_type == "electra"]:
        folder = make_family_checkpoint(tmp_path / head, model_type, head, SMALL[model_type], 1, tokenizer_folders,
                                        labels=NLI_LABELS if head == "sequence" else None)
        model = bertnp.load(folder)
        assert model.weights.model_class == STEMS[model_type] + HEADS[head][0]
        kind = model.architecture
        edit_config(folder, architectures=None)
        assert bertnp.load(folder).architecture == kind, f"{model_type} {head} from its tensors"


def test_albert_shares_its_layers(tmp_path, tokenizer_folders):
    """ALBERT's layers are one group's, used in turn: one array each, on every backend."""
    config = {**SMALL["albert"], "num_hidden_layers": 4, "num_hidden_groups": 2, "inner_group_num": 2}
    folder = make_family_checkpoint(tmp_path, "albert", "base", config, 2, tokenizer_folders)
    model = bertnp.load(folder, backend="numba")
    layers = model.weights.layers
    assert len(layers) == 8 and len({id(layer) for layer in layers}) == 4
    assert [id(layer) for layer in layers] == [id(layers[k]) for k in (0, 1, 0, 1, 4, 5, 4, 5)]
    assert len({id(layer) for layer in model.backend.weights.layers}) == 4  # packed once each
    on_device = gpu.prepare(model.weights, np)
    assert len({id(layer) for layer in on_device.reference.layers}) == 4
    assert len({id(layer) for layer in on_device.layers}) == 4


def test_roberta_positions_skip_padding(tmp_path, tokenizer_folders):
    """RoBERTa's positions count from pad_token_id + 1 over the ids that are not padding: a text gives the same
    states padded on the left or the right, and max_length leaves room for the offset."""
    folder = make_family_checkpoint(tmp_path, "roberta", "base", SMALL["roberta"], 3, tokenizer_folders)
    for backend in ("numpy", "numba"):
        model = bertnp.load(folder, dtype="float64", backend=backend)
        right = model.tokenize(["the team won", "stocks fell on monday after the game"])
        n = int(right["attention_mask"][0].sum())
        left = {k: np.roll(v, v.shape[1] - n, axis=1) if k != "token_type_ids" else v for k, v in right.items()}
        a, b = model(**right).last_hidden_state, model(**left).last_hidden_state
        np.testing.assert_allclose(a[0, :n], b[0, -n:], atol=1e-12)
        assert model.max_length == 64 and model.config.max_position_embeddings == 66
        with pytest.raises(bertnp.InputError, match="max_position_embeddings - pad_token_id - 1=64"):
            model.tokenize(["x"], max_length=65)


def test_distilbert_ignores_token_types_and_builds_its_sinusoidal_table(tmp_path, tokenizer_folders):
    torch = require("torch")
    config = {**SMALL["distilbert"], "sinusoidal_pos_embds": True}
    folder = make_family_checkpoint(tmp_path, "distilbert", "base", config, 4, tokenizer_folders)
    model = bertnp.load(folder, backend="numpy")
    enc = model.tokenize([("who won", "the team")])
    assert not enc["token_type_ids"].any()  # DistilBertTokenizer gives the model no token types
    with_types = model(**{**enc, "token_type_ids": np.ones_like(enc["token_type_ids"])}).last_hidden_state
    np.testing.assert_array_equal(with_types, model(**enc).last_hidden_state)
    stored = np.array(model.weights.embeddings.position)
    edit_tensors(folder, lambda t: t.pop("embeddings.position_embeddings.weight"))
    rebuilt = bertnp.load(folder, backend="numpy")
    np.testing.assert_array_equal(rebuilt.weights.embeddings.position, stored)  # bit for bit, as transformers makes it
    transformers = require("transformers")
    hf = transformers.DistilBertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        want = hf(input_ids=torch.from_numpy(enc["input_ids"]), attention_mask=torch.from_numpy(enc["attention_mask"]))
    assert_claim("families", "sinusoidal DistilBERT", rebuilt(**enc).last_hidden_state, want.last_hidden_state.numpy(),
                 np.float32)


def test_mixed_and_malformed_checkpoints_are_named(tmp_path, tokenizer_folders):
    """A RoBERTa config over BERT's tensors, a missing shared ALBERT group, a DistilBERT config over BERT's names,
    a class of another family: each a WeightsError naming the file and the tensor (or the field)."""
    # a BERT classifier's tensors (bert.*) under a RoBERTa config
    folder = str(tmp_path / "mixed")
    shutil.copytree(TINY, folder)
    edit_config(folder, model_type="roberta", pad_token_id=1, max_position_embeddings=66)
    with pytest.raises(bertnp.WeightsError, match=r"mixed/model.safetensors: tensor 'bert\.embeddings\.\S+' is named "
                                                  r"as in a BERT checkpoint, but config.json's model_type is 'roberta'"):
        bertnp.load(folder)
    # the same tensors without their prefix under a DistilBERT config: its own names are missing
    edit_config(folder, model_type="distilbert", pad_token_id=0, max_position_embeddings=64, architectures=None)
    edit_tensors(folder, lambda t: t.update({k[len("bert."):]: t.pop(k) for k in list(t) if k.startswith("bert.")}))
    with pytest.raises(bertnp.WeightsError, match=r"mixed/model.safetensors: missing tensor\(s\) "
                                                  r"transformer.layer.0.attention.q_lin.weight"):
        bertnp.load(folder)
    # ALBERT with two layer groups, the second one gone
    config = {**SMALL["albert"], "num_hidden_layers": 2, "num_hidden_groups": 2}
    albert = make_family_checkpoint(tmp_path / "albert", "albert", "sequence", config, 5, tokenizer_folders)
    path = edit_tensors(albert, lambda t: [t.pop(k) for k in list(t) if "albert_layer_groups.1." in k])
    with pytest.raises(bertnp.WeightsError, match=f"{path}: missing tensor\\(s\\) "
                       r"encoder.albert_layer_groups.1.albert_layers.0.attention.query.weight"):
        bertnp.load(albert)
    # a class of another family in architectures
    electra = make_family_checkpoint(tmp_path / "electra", "electra", "token", SMALL["electra"], 6, tokenizer_folders)
    edit_config(electra, architectures=["BertForTokenClassification"])
    with pytest.raises(bertnp.WeightsError, match="architectures names BertForTokenClassification, a class of another "
                                                  "family than its model_type 'electra'"):
        bertnp.load(electra)
    edit_config(electra, architectures=["ElectraForPreTraining"])
    with pytest.raises(bertnp.WeightsError, match="names ElectraForPreTraining, but the checkpoint has no tensor "
                                                  "discriminator_predictions.dense.weight"):
        bertnp.load(electra)
    edit_config(electra, architectures=["ElectraForTokenClassification"], model_type="deberta-v2")
    with pytest.raises(bertnp.ConfigError, match="field 'model_type' = 'deberta-v2' is not supported"):
        bertnp.load(electra)
    # ELECTRA's projection where embedding_size says E = H, so that there is none
    edit_config(electra, model_type="electra", embedding_size=8)
    with pytest.raises(bertnp.WeightsError, match=r"electra/model.safetensors: unexpected tensor\(s\) "
                                                  r"embeddings_project\.(bias|weight)"):
        bertnp.load(electra)
