"""Sentence embeddings configured as sentence-transformers configures them.

A sentence-transformers folder holds `modules.json` (Transformer -> Pooling -> optional Normalize),
`1_Pooling/config.json` (which poolings, concatenated in a fixed order) and `sentence_bert_config.json`
(max_seq_length, do_lower_case). Embedder reads them so that `Embedder(folder).embed(texts)` equals
`SentenceTransformer(folder).encode(texts)`; explicit arguments override the folder.
"""

from __future__ import annotations

import os

import numpy as np

from . import files
from .bert import Bert, load
from .errors import ConfigError, InputError
from .pooling import POOLINGS, normalize as unit_length, pool
from .tokenizer import as_batch

# sentence-transformers' legacy Pooling flags, in the order it concatenates the modes
POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
}


def sentence_transformers_settings(folder: str) -> dict:
    """{pooling: tuple of modes, normalize: bool, max_length: int|None, lowercase: bool} from an ST folder.

    A folder without modules.json gives {} (a plain transformers checkpoint).
    """
    modules_path = os.path.join(folder, "modules.json")
    if not os.path.exists(modules_path):
        return {}
    modules = _json(modules_path, list)
    settings = {"normalize": False, "pooling": ("mean",)}
    for i, module in enumerate(modules):
        if not (isinstance(module, dict) and isinstance(module.get("type", ""), str)
                and isinstance(module.get("path", ""), str)):
            raise ConfigError(f"{modules_path}: module {i} must be an object with string 'type' and 'path', got "
                              f"{files.excerpt(module)}")
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Normalize":
            settings["normalize"] = True
        elif kind == "Pooling":
            where = module.get("path", "")
            if os.path.isabs(where) or ".." in where.replace("\\", "/").split("/"):
                raise ConfigError(f"{modules_path}: module {i}'s path {files.excerpt(where)} must name a folder inside "
                                  f"the model folder")
            pooling_path = os.path.join(folder, where, "config.json")
            settings["pooling"] = _pooling_modes(_json(pooling_path, dict), pooling_path)
        elif kind not in ("Transformer", ""):
            raise ConfigError(f"{modules_path}: module type {files.excerpt(module.get('type'))} is not supported by "
                              "bertnp (it runs Transformer -> Pooling -> Normalize)")
    bert_config = os.path.join(folder, "sentence_bert_config.json")
    if os.path.exists(bert_config):
        raw = _json(bert_config, dict)
        length = raw.get("max_seq_length")
        if length is not None and files.integer(length, 2) is None:
            raise ConfigError(f"{bert_config}: max_seq_length={files.excerpt(length)}: expected an integer from 2 to "
                              f"{files.MAX_INDEX}")
        if not isinstance(raw.get("do_lower_case", False), bool):
            raise ConfigError(f"{bert_config}: do_lower_case={files.excerpt(raw.get('do_lower_case'))}: expected "
                              f"true or false")
        settings["max_length"] = length
        settings["lowercase"] = raw.get("do_lower_case", False)
    return settings


def _pooling_modes(raw: dict, path: str) -> tuple:
    if "pooling_mode" in raw:  # sentence-transformers >= 5 writes one key
        modes = raw["pooling_mode"]
        if not (isinstance(modes, str) or (isinstance(modes, list) and all(isinstance(m, str) for m in modes))):
            raise ConfigError(f"{path}: pooling_mode must be a string or a list of strings, got {files.excerpt(modes)}")
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:
        modes = tuple(mode for flag, mode in POOLING_FLAGS.items() if raw.get(flag))
        unsupported = [k for k, v in raw.items() if k.startswith("pooling_mode_") and v and k not in POOLING_FLAGS]
        if unsupported:
            raise ConfigError(f"{path}: {', '.join(files.shown(k) for k in unsupported[:3])} is not supported by bertnp")
    for mode in modes:
        if mode not in POOLINGS:
            raise ConfigError(f"{path}: pooling mode {files.excerpt(mode)} is not supported by bertnp")
    return modes or ("mean",)


def _json(path, kind):
    """A sentence-transformers settings file, read under the loading contract (bertnp.files)."""
    try:
        return files.read_json(path, "sentence-transformers settings", ConfigError, expect=kind)
    except FileNotFoundError:
        raise ConfigError(f"{path}: unreadable (no such file)") from None


class Embedder:
    """Texts -> float32 [N, H] sentence embeddings, as sentence-transformers' encode."""

    def __init__(self, model, max_length: int | None = None, pooling=None, normalize: bool | None = None,
                 backend: str | None = None, deterministic: bool = False):
        if isinstance(model, Bert):
            self.model, folder = model, getattr(model, "folder", None)
        else:
            self.model = load(model, backend=backend, deterministic=deterministic)
            folder = self.model.folder
        settings = sentence_transformers_settings(folder) if folder else {}
        modes = pooling if pooling is not None else settings.get("pooling", ("mean",))
        self.pooling = (modes,) if isinstance(modes, str) else tuple(modes)
        for mode in self.pooling:
            if mode not in POOLINGS:
                raise InputError(f"pooling={mode!r}: expected one of {', '.join(POOLINGS)}")
        self.normalize = settings.get("normalize", False) if normalize is None else bool(normalize)
        if max_length is not None:  # the user's value: checked by the one rule, never clamped
            self.max_length = self.model._max_length(max_length)
        else:  # the folder's max_seq_length may exceed the model's limit: sentence-transformers min()s it too
            self.max_length = min(settings.get("max_length") or self.model.max_length, self.model.max_length)
        self.lowercase = settings.get("lowercase", False)

    @property
    def dimension(self) -> int:
        return self.model.config.hidden_size * len(self.pooling)

    def embed(self, texts, batch_size: int = 32, progress=None) -> np.ndarray:
        """Texts (or (text, text) pairs) -> [N, dimension] in input order; no texts give [0, dimension].
        progress: True for a tqdm bar, or a callable."""
        texts = as_batch(texts, allow_empty=True)  # one text or one pair, as Bert
        if not texts:
            return np.zeros((0, self.dimension), self.model.dtype)
        if self.lowercase:  # sentence-transformers' do_lower_case, for each text of a pair too
            texts = [tuple(x.lower() for x in t) if isinstance(t, (tuple, list)) else t.lower() for t in texts]
        with _progress(progress, len(texts)) as update:
            vectors = self.model.run_batches(texts, self._pool, batch_size, self.max_length, progress=update,
                                             pooler_output=self.reads_pooler)
        return unit_length(vectors) if self.normalize else vectors

    def embed_stream(self, texts, batch_size: int = 32, chunk_size: int = 1024):
        """Any iterable of texts (a file, a generator) -> an iterator of [dimension] vectors, in input order.

        Reads chunk_size texts at a time, so memory stays flat however long the stream is."""
        chunk = []
        for text in texts:
            chunk.append(text)
            if len(chunk) == chunk_size:
                yield from self.embed(chunk, batch_size)
                chunk = []
        if chunk:
            yield from self.embed(chunk, batch_size)

    @property
    def reads_pooler(self) -> bool:
        """Whether a pooling mode reads pooler_output (else the pooler does not run)."""
        return "pooler" in self.pooling

    def _pool(self, out, mask):
        """Each pooling mode of the folder, concatenated in sentence-transformers' order: [b, dimension]."""
        return np.concatenate([pool(out, mask, mode) for mode in self.pooling], axis=1)


class _progress:
    """progress=None/False: no bar; True: a tqdm bar on stderr (if tqdm is installed); a callable: called."""

    def __init__(self, progress, total):
        self.progress, self.total, self.bar = progress, total, None

    def __enter__(self):
        if callable(self.progress):
            return self.progress
        if self.progress:
            try:
                from tqdm import tqdm
            except ImportError:
                return None
            self.bar = tqdm(total=self.total, unit="text")
            return self.bar.update
        return None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
