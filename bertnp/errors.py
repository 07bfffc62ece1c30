"""One exception family: every bertnp error is a ValueError that names what was wrong and where."""


class BertnpError(ValueError):
    """Base of every error bertnp raises on bad files or bad input."""


class ConfigError(BertnpError):
    """The model folder (or hub id) is missing, or config.json is unreadable, lacks a field, or asks for
    something bertnp does not run."""


class WeightsError(BertnpError):
    """A weights file is corrupt, or a tensor is missing, unexpected or mis-shaped."""


class TokenizerError(BertnpError):
    """Tokenizer files are missing or broken, or texts cannot be tokenized."""


class InputError(BertnpError):
    """What a caller passed is wrong: texts, arrays of the wrong shape, dtype or values, or an option
    (dtype, backend, max_length, top_k, ...) outside what it accepts."""
