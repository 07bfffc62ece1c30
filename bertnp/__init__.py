"""bertnp: BERT inference in plain NumPy that matches transformers."""

from .bert import Bert, load
from .config import BertConfig
from .errors import BertnpError, ConfigError, InputError, TokenizerError, WeightsError
from .model import BertOutput

__all__ = ["Bert", "BertConfig", "BertOutput", "BertnpError", "ConfigError", "InputError", "TokenizerError",
           "WeightsError", "load"]
__version__ = "0.1.0"
