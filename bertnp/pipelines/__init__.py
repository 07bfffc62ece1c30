"""Pipelines on BERT's task heads, each behaving as the transformers pipeline of the same task:

    TokenClassifier     "ner" / token-classification    BertForTokenClassification
    QuestionAnswerer    question-answering (4.x)        BertForQuestionAnswering
    FillMask            fill-mask                       BertForMaskedLM
    ZeroShotClassifier  zero-shot-classification        BertForSequenceClassification trained on NLI

Each takes a loaded bertnp.Bert or a folder / hub id, and runs on whichever backend the model uses.
"""

from .fill_mask import FillMask
from .question_answering import QuestionAnswerer
from .token_classification import TokenClassifier
from .zero_shot import ZeroShotClassifier

__all__ = ["FillMask", "QuestionAnswerer", "TokenClassifier", "ZeroShotClassifier"]
