"""bertnp: BERT inference in plain NumPy that matches transformers."""

from .bert import Bert, load
from .classifier import Classifier
from .config import BertConfig
from .embedder import Embedder
from .errors import BertnpError, ConfigError, InputError, TokenizerError, WeightsError
from .model import BertOutput
from .pipelines import FillMask, QuestionAnswerer, TokenClassifier, ZeroShotClassifier

__all__ = ["Bert", "BertConfig", "BertOutput", "BertnpError", "Classifier", "ConfigError", "Embedder", "FillMask",
           "InputError", "QuestionAnswerer", "TokenClassifier", "TokenizerError", "WeightsError", "ZeroShotClassifier",
           "load"]
__version__ = "0.1.0"
