"""Zero-shot classification with an NLI checkpoint (a BertForSequenceClassification trained on MNLI or
XNLI), as transformers' zero-shot-classification pipeline and Spark NLP's BertForZeroShotClassification
do it: each candidate label becomes a hypothesis ("This example is {}."), the text is the premise, and
the label's score comes from the entailment logit of the pair.

- single-label: a softmax over the labels of their entailment logits (the scores sum to 1);
- multi_label=True (or a single label): per label, a softmax over [contradiction, entailment].
The entailment id is the first label2id name starting with "entail"; contradiction is id 0, or the last
id when entailment is 0.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, TokenizerError
from ..weights import SEQUENCE_CLASSIFICATION
from .common import encode, host, load_for, positive, run_encodings, softmax, texts_of

TEMPLATE = "This example is {}."


class ZeroShotClassifier:
    """zs = ZeroShotClassifier(model); zs(text, ["sports", "politics"]) -> {"sequence", "labels",
    "scores"}, labels sorted by score (a list of those for a list of texts)."""

    def __init__(self, model, hypothesis_template: str = TEMPLATE, multi_label: bool = False,
                 max_length: int | None = None, batch_size: int = 32, backend: str | None = None):
        self.model = load_for(model, SEQUENCE_CLASSIFICATION, "ZeroShotClassifier", backend)
        self.entailment_id = next((int(i) for label, i in self.model.config.label2id.items()
                                   if str(label).lower().startswith("entail")), None)
        if self.entailment_id is None:
            raise InputError(f"{self.model.config.source}: field 'label2id' has no label starting with 'entail' "
                             f"({list(self.model.config.label2id)}); zero-shot classification needs an NLI checkpoint")
        self.contradiction_id = -1 if self.entailment_id == 0 else 0
        self.hypothesis_template = hypothesis_template
        self.multi_label = multi_label
        self.max_length = self.model._max_length(max_length)
        self.batch_size = positive("batch_size", batch_size)

    def __call__(self, sequences, candidate_labels, hypothesis_template: str | None = None,
                 multi_label: bool | None = None):
        items, single = texts_of(sequences, "sequences")
        labels = parse_labels(candidate_labels)
        template = self.hypothesis_template if hypothesis_template is None else hypothesis_template
        multi = self.multi_label if multi_label is None else multi_label
        if template.format(labels[0]) == template:
            raise InputError(f"hypothesis_template={template!r} has no {{}} where the label goes")
        pairs = [(text, template.format(label)) for text in items for label in labels]
        logits = run_encodings(self.model, [self.encode_pair(*pair) for pair in pairs],
                               lambda out, row, n, i: host(out.logits[row]), self.batch_size)
        logits = np.stack(logits).reshape(len(items), len(labels), -1)  # [texts, labels, C]
        if multi or len(labels) == 1:
            scores = softmax(logits[..., [self.contradiction_id, self.entailment_id]])[..., 1]  # [texts, labels]
        else:
            scores = softmax(logits[..., self.entailment_id])  # [texts, labels]
        results = []
        for text, row in zip(items, scores):
            order = list(reversed(row.argsort()))  # as the pipeline: best first
            results.append({"sequence": text, "labels": [labels[i] for i in order],
                            "scores": [float(row[i]) for i in order]})
        return results[0] if single else results

    classify = __call__

    def encode_pair(self, premise: str, hypothesis: str):
        """The pair truncated in the premise only; if the hypothesis alone is too long for that, both."""
        try:
            return encode(self.model, premise, hypothesis, self.max_length, "only_first")[0]
        except TokenizerError:
            return encode(self.model, premise, hypothesis, self.max_length, "longest_first")[0]


def parse_labels(labels) -> list[str]:
    """A list of labels, or one string of comma-separated labels."""
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    labels = list(labels) if labels is not None else []
    if not labels:
        raise InputError("candidate_labels is empty: give at least one label")
    return [str(label) for label in labels]
