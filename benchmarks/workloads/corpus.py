"""The docstring corpus: ~2000 real paragraphs of mixed lengths, embedded by every engine as an app would
(tokenize, length-sorted batches of 32, mean pooling, L2 normalization). texts/s.

The corpus: paragraphs of the Python standard library's docstrings. Deterministic for a given Python
version: a fixed, sorted list of stdlib modules; in each, the module's docstring, then (by sorted name)
the functions and classes it defines and the methods of those classes. Docstrings are split on blank
lines, whitespace is collapsed, paragraphs with fewer than three words and duplicates are dropped. They
run from a few tokens ("Return the absolute value.") to hundreds (long explanations, doctests).
"""

from __future__ import annotations

import importlib
import inspect
import platform
import re
import warnings

import numpy as np

from harness import MINILM, Column, Section, Target, interleave

ENGINES = [("fast", "numba"), ("reference", "numpy"), ("torch", "sdpa"), ("ort", "plain graph"),
           ("ort", "fused graph")]

MODULES = sorted([
    "abc", "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "concurrent.futures", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "email", "enum", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob",
    "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "http.server", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "lzma", "mailbox", "math", "mimetypes",
    "multiprocessing", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pkgutil",
    "platform", "plistlib", "poplib", "pprint", "profile", "pydoc", "queue", "quopri", "random", "re",
    "reprlib", "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib", "socket",
    "socketserver", "sqlite3", "ssl", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "timeit", "tokenize", "trace", "traceback", "types", "typing", "unittest",
    "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile",
])
MIN_WORDS = 3
WORD = re.compile(r"[A-Za-z]{2,}")


def docstrings(module):
    """The module's docstring, then its own functions and classes (sorted by name) and their methods."""
    yield module.__doc__
    for name, obj in sorted(vars(module).items()):
        if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # re-exported from elsewhere: counted where it is defined, if at all
        yield obj.__doc__
        if inspect.isclass(obj):
            for _, member in sorted(vars(obj).items()):
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or inspect.isroutine(member) or isinstance(member, property):
                    yield member.__doc__


def paragraphs(doc):
    if not isinstance(doc, str):
        return
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        text = " ".join(block.split())
        if len(WORD.findall(text)) >= MIN_WORDS:
            yield text


def load(limit: int = 2000) -> list[str]:
    """The first `limit` distinct docstring paragraphs of MODULES, in a fixed order."""
    seen, texts = set(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some modules warn on import (deprecations)
        for name in MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue  # a Python built without this module (e.g. no _ssl, no _lzma)
            for doc in docstrings(module):
                for text in paragraphs(doc):
                    if text not in seen:
                        seen.add(text)
                        texts.append(text)
                        if len(texts) == limit:
                            return texts
    return texts


def warmup_sample(texts, n=64):
    """n texts spread over the whole range of lengths, for a warm-up that meets long batches too."""
    by_length = sorted(texts, key=len)
    return [by_length[i * len(texts) // n] for i in range(min(n, len(texts)))]


def describe(texts) -> str:
    from engines import MAX_LENGTH, tokenizer

    tok = tokenizer(MINILM)
    tok.no_truncation()
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    return (f"{len(texts)} paragraphs (Python {platform.python_version()}), {min(lengths)} to {max(lengths)} "
            f"tokens (median {int(np.median(lengths))}; {sum(n > MAX_LENGTH for n in lengths)} truncated at "
            f"{MAX_LENGTH})")


def run(bench):
    texts = load(bench.pick(2000, 200))
    rounds, reference_rounds = bench.pick(5, 2), 1  # medians of 3 swung too much from run to run
    section = Section(f"Docstring corpus ({len(texts)} texts) throughput",
                      [Column("throughput", "texts/s", True)])
    with bench.engines(bench.skim(ENGINES), MINILM, section) as workers:
        result = interleave(workers, "embed", (texts,), rounds, warmup=1, warmup_args=(warmup_sample(texts),),
                            caps={"reference": reference_rounds})
    for worker, timing in result.timings.items():
        section.add(worker, throughput=timing.median_rate(len(texts)), note=f"rounds: {len(timing.rounds)}")
    section.agreement(result, ("torch", "sdpa"), ("ort", "plain graph"))
    section.measured(result)
    section.rounds = ("the median of interleaved rounds of the whole corpus (rounds per engine in the notes), "
                      "after one warm-up call per engine on 64 texts of every length")
    section.about = (f"all-MiniLM-L6-v2, {describe(texts)}. Tokenization, length-sorted batches of 32, mean "
                     "pooling and L2 normalization are timed; bertnp through `Embedder.embed`, torch and ORT "
                     "through the same tokenizer.json with the `tokenizers` library.")
    section.targets.append(Target("docstring corpus >= 1.3x ORT", "throughput", 1.3,
                                  profile="\"Where the docstring corpus's time goes\": by padded length, then op by op"))
    return section
