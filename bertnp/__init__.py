"""bertnp: BERT inference in plain NumPy that matches transformers."""

from .bert import Bert, load
from .classifier import Classifier
from .config import BertConfig
from .embedder import Embedder
from .errors import BertnpError, ConfigError, InputError, TokenizerError, WeightsError
from .model import BertOutput

__all__ = ["Bert", "BertConfig", "BertOutput", "BertnpError", "Classifier", "ConfigError", "Embedder", "InputError",
           "TokenizerError", "WeightsError", "load"]
__version__ = "0.1.0"
