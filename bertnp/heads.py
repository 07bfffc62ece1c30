"""The task heads that sit on BERT's last hidden state, one token at a time, as small functions over `xp`.

model.py ends with BertModel (and the sequence classifier on the pooler); these heads read every token of
`last_hidden_state` instead, so they run the same way whichever backend computed it:
    token_classification  BertForTokenClassification: a label distribution per token (NER, POS)
    question_answering    BertForQuestionAnswering: a start and an end logit per token
    masked_lm             BertForMaskedLM's BertOnlyMLMHead: a vocabulary distribution per token
The token classifier's dropout is off at inference; the other two have none.

Shape letters as in model.py: B batch, T tokens, H hidden, C labels, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import model
from .model import ACTIVATIONS, TRANSFORMERS, BertOutput, layer_norm, linear, no_tap
from .weights import MASKED_LM, QUESTION_ANSWERING, TOKEN_CLASSIFICATION

TOKEN_HEADS = (TOKEN_CLASSIFICATION, QUESTION_ANSWERING, MASKED_LM)


@dataclass
class QuestionAnsweringOutput(BertOutput):
    """BertOutput plus QuestionAnsweringModelOutput's two logits (logits stays None)."""

    start_logits: object = None  # [B, T]
    end_logits: object = None  # [B, T]


def token_classification(x, w, xp):
    """BertForTokenClassification: classifier(sequence_output), a linear layer on every token."""
    return linear(x, w, xp)  # [B, T, H] -> [B, T, C]


def question_answering(x, w, xp):
    """BertForQuestionAnswering: qa_outputs(sequence_output) split into start and end logits."""
    logits = linear(x, w, xp)  # [B, T, H] -> [B, T, 2]
    return logits[..., 0], logits[..., 1]  # [B, T], [B, T]


def prediction_transform(x, w, config, xp, numerics=TRANSFORMERS):
    """BertPredictionHeadTransform: dense, the encoder's activation (config.hidden_act, not always GELU),
    LayerNorm with the config's eps."""
    tanh = config.hidden_act == "gelu" and numerics.gelu == "tanh"  # as model.encoder_layer
    activation = model.gelu_tanh if tanh else ACTIVATIONS[config.hidden_act]
    h = activation(linear(x, w.transform, xp), xp)  # [B, T, H] -> [B, T, H]
    return layer_norm(h, w.norm, config.layer_norm_eps, xp, numerics)  # [B, T, H]


def masked_lm(x, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """BertOnlyMLMHead -> BertLMPredictionHead: the transform, then a decoder whose weight is the word
    embedding table (tied, so stored [V, H] like any linear weight) and whose bias is cls.predictions.bias."""
    h = prediction_transform(x, w, config, xp, numerics)  # [B, T, H]
    tap("head.transform", h)
    rows = h.reshape(-1, h.shape[-1])  # [B, T, H] -> [R, H]
    logits = rows @ w.decoder.T + w.bias  # [R, H] @ [H, V] -> [R, V]
    return logits.reshape(*h.shape[:-1], w.decoder.shape[0])  # [B, T, V]


def apply(out: BertOutput, weights, config, xp, numerics=TRANSFORMERS, tap=no_tap) -> BertOutput:
    """The checkpoint's token-level head on out.last_hidden_state: logits [B, T, C] or [B, T, V], or a
    QuestionAnsweringOutput with start_logits and end_logits [B, T]. Other architectures pass through.

    Padded positions get logits too, from whatever state the backend left there (the fast path leaves 0).
    """
    x = out.last_hidden_state  # [B, T, H]
    if weights.architecture == TOKEN_CLASSIFICATION:
        out.logits = token_classification(x, weights.token_classifier, xp)  # [B, T, C]
        tap("head.logits", out.logits)
    elif weights.architecture == MASKED_LM:
        out.logits = masked_lm(x, weights.masked_lm, config, xp, numerics, tap)  # [B, T, V]
        tap("head.logits", out.logits)
    elif weights.architecture == QUESTION_ANSWERING:
        start, end = question_answering(x, weights.qa_outputs, xp)  # [B, T] each
        tap("head.start_logits", start)
        tap("head.end_logits", end)
        fields = {name: getattr(out, name) for name in model.BertOutput.__dataclass_fields__}
        out = QuestionAnsweringOutput(**fields, start_logits=start, end_logits=end)
    return out
