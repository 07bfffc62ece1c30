"""The task heads that sit on BERT's last hidden state, one token at a time, as small functions over `xp`.

model.py ends with BertModel (and the sequence classifier on the pooler); these heads read every token of
`last_hidden_state` instead, so they run the same way whichever backend computed it:
    token_classification  BertForTokenClassification: a label distribution per token (NER, POS)
    question_answering    BertForQuestionAnswering: a start and an end logit per token
    masked_lm             BertForMaskedLM's BertOnlyMLMHead: a vocabulary distribution per token
    discriminator         ElectraForPreTraining: one logit per token, "was this token replaced?"
The token classifier's dropout is off at inference; the others have none. BERT's relatives run the same
heads under other tensor names (bertnp.weights.FAMILIES); their masked-LM transforms differ only in the
activation (MaskedLMHead.activation) and, for ELECTRA and ALBERT, in mapping H to E before the decoder.

Shape letters as in model.py: B batch, T tokens, H hidden, C labels, V vocabulary, E embedding width.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import model
from .model import ACTIVATIONS, TRANSFORMERS, BertOutput, layer_norm, linear, no_tap
from .weights import DISCRIMINATOR, MASKED_LM, QUESTION_ANSWERING, TOKEN_CLASSIFICATION

TOKEN_HEADS = (TOKEN_CLASSIFICATION, QUESTION_ANSWERING, MASKED_LM, DISCRIMINATOR)


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
    """BertPredictionHeadTransform: dense, the encoder's activation (config.hidden_act, not always GELU;
    RoBERTa's and ELECTRA's heads always use GELU: w.activation), LayerNorm with the config's eps."""
    tanh = w.activation == "gelu" and numerics.gelu == "tanh"  # as model.encoder_layer
    activation = model.gelu_tanh if tanh else ACTIVATIONS[w.activation]
    h = activation(linear(x, w.transform, xp), xp)  # [B, T, H] -> [B, T, E]
    return layer_norm(h, w.norm, config.layer_norm_eps, xp, numerics)  # [B, T, E]


def masked_lm(x, w, config, xp, numerics=TRANSFORMERS, tap=no_tap):
    """BertOnlyMLMHead -> BertLMPredictionHead: the transform, then a decoder whose weight is the word
    embedding table (tied, so stored [V, H] like any linear weight) and whose bias is cls.predictions.bias."""
    h = prediction_transform(x, w, config, xp, numerics)  # [B, T, E]
    tap("head.transform", h)
    rows = h.reshape(-1, h.shape[-1])  # [B, T, E] -> [R, E]
    logits = rows @ w.decoder.T + w.bias  # [R, E] @ [E, V] -> [R, V]
    return logits.reshape(*h.shape[:-1], w.decoder.shape[0])  # [B, T, V]


def discriminator(x, w, config, xp, numerics=TRANSFORMERS):
    """ElectraDiscriminatorPredictions: dense, the encoder's activation, then one logit per token."""
    tanh = config.hidden_act == "gelu" and numerics.gelu == "tanh"  # as model.encoder_layer
    activation = model.gelu_tanh if tanh else ACTIVATIONS[config.hidden_act]
    h = activation(linear(x, w.dense, xp), xp)  # [B, T, H]
    return linear(h, w.prediction, xp)[..., 0]  # [B, T, H] -> [B, T, 1] -> [B, T]


def apply(out: BertOutput, weights, config, xp, numerics=TRANSFORMERS, tap=no_tap) -> BertOutput:
    """The checkpoint's token-level head on out.last_hidden_state: logits [B, T, C], [B, T, V] or (ELECTRA's
    discriminator) [B, T], or a QuestionAnsweringOutput with start_logits and end_logits [B, T]. Other
    architectures pass through.

    Padded positions get logits too, from whatever state the backend left there (the fast path leaves 0).
    """
    x = out.last_hidden_state  # [B, T, H]
    if weights.architecture == TOKEN_CLASSIFICATION:
        out.logits = token_classification(x, weights.token_classifier, xp)  # [B, T, C]
        tap("head.logits", out.logits)
    elif weights.architecture == MASKED_LM:
        out.logits = masked_lm(x, weights.masked_lm, config, xp, numerics, tap)  # [B, T, V]
        tap("head.logits", out.logits)
    elif weights.architecture == DISCRIMINATOR:
        out.logits = discriminator(x, weights.discriminator, config, xp, numerics)  # [B, T]
        tap("head.logits", out.logits)
    elif weights.architecture == QUESTION_ANSWERING:
        start, end = question_answering(x, weights.qa_outputs, xp)  # [B, T] each
        tap("head.start_logits", start)
        tap("head.end_logits", end)
        fields = {name: getattr(out, name) for name in model.BertOutput.__dataclass_fields__}
        out = QuestionAnsweringOutput(**fields, start_logits=start, end_logits=end)
    return out
