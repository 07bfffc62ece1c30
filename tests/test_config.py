"""config.json -> BertConfig, and refusals that name the field."""

import json

import pytest

from bertnp import BertConfig, ConfigError

BASE = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def test_defaults_follow_transformers():
    c = BertConfig.from_dict(BASE)
    assert (c.hidden_act, c.layer_norm_eps, c.max_position_embeddings, c.type_vocab_size) == ("gelu", 1e-12, 512, 2)
    assert c.position_embedding_type == "absolute" and c.head_size == 8
    assert c.id2label == {0: "LABEL_0", 1: "LABEL_1"} and c.num_labels == 2


def test_labels_in_index_order():
    c = BertConfig.from_dict({**BASE, "id2label": {"1": "Sports", "0": "World", "2": "Business"}})
    assert list(c.id2label.values()) == ["World", "Sports", "Business"]
    assert BertConfig.from_dict({**BASE, "num_labels": 4}).num_labels == 4


@pytest.mark.parametrize("field,value,message", [
    ("is_decoder", True, "is_decoder"),
    ("add_cross_attention", True, "add_cross_attention"),
    ("hidden_act", "mish", "hidden_act"),
    ("num_attention_heads", 5, "does not divide hidden_size"),
    ("position_embedding_type", "rotary", "position_embedding_type"),
    ("problem_type", "ranking", "problem_type"),
    ("hidden_size", "32", "hidden_size"),
    ("layer_norm_eps", -1, "layer_norm_eps"),
    ("id2label", {"0": "a", "2": "b"}, "id2label"),
    ("num_labels", 0, "num_labels"),
    ("num_labels", 10**9, "num_labels' must be an integer from 1 to 65536"),
    ("hidden_size", 2**40, "hidden_size' must be an integer from 1 to 2147483647"),
    ("hidden_size", 32.0, "hidden_size"),
    ("layer_norm_eps", float("inf"), "layer_norm_eps' must be a positive finite number"),
    ("layer_norm_eps", float("nan"), "layer_norm_eps"),
    ("layer_norm_eps", 10**400, "layer_norm_eps"),
    ("architectures", [["BertModel"]], "architectures' must be a list of class names"),
    ("architectures", "BertModel", "architectures"),
    ("hidden_act", ["gelu"], "hidden_act"),
    ("tie_word_embeddings", "no", "tie_word_embeddings' must be true or false"),
    ("id2label", {"0": ["a"]}, "label 0 must be a string"),
    ("id2label", {"1" * 5000: "a"}, "id2label' ids must be 0..n-1"),
    ("label2id", {"a": [0]}, "label2id' maps 'a' to \\[0\\]"),
])
def test_refuses_by_field_name(field, value, message):
    with pytest.raises(ConfigError, match=message):
        BertConfig.from_dict({**BASE, field: value})


@pytest.mark.parametrize("field", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size"])
def test_missing_required_field(field):
    raw = dict(BASE)
    del raw[field]
    with pytest.raises(ConfigError, match=f"'{field}' is missing"):
        BertConfig.from_dict(raw)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        BertConfig.from_file(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="expected a JSON object"):
        BertConfig.from_file(bad)
    with pytest.raises(ConfigError, match="no config.json"):
        BertConfig.from_file(tmp_path / "missing" / "config.json")


def test_label2id_ids_are_integers_and_tie_word_embeddings_is_read():
    c = BertConfig.from_dict({**BASE, "label2id": {"a": "0", "b": 1}, "tie_word_embeddings": False})
    assert c.label2id == {"a": 0, "b": 1} and c.tie_word_embeddings is False
    assert BertConfig.from_dict(BASE).tie_word_embeddings is True


def test_numbers_past_the_limits_are_refused_while_parsing(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(BASE)[:-1] + ', "layer_norm_eps": 1' + "0" * 400 + "}")
    with pytest.raises(ConfigError, match="config.json: not valid JSON \\(an integer of 401 digits"):
        BertConfig.from_file(bad)


def test_messages_quote_an_excerpt(tmp_path):
    with pytest.raises(ConfigError) as e:
        BertConfig.from_dict({**BASE, "hidden_act": "x" * 1_000_000})
    assert len(str(e.value)) < 300
