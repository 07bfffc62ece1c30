"""A real-text corpus for the embedding benchmark: paragraphs of the Python standard library's docstrings.

Deterministic for a given Python version: a fixed, sorted list of stdlib modules; in each, the module's
docstring, then (by sorted name) the functions and classes it defines and the methods of those classes.
Docstrings are split on blank lines, whitespace is collapsed, paragraphs with fewer than three words are
dropped, duplicates are dropped (first occurrence kept), and the first `limit` paragraphs are returned.
They run from a few tokens ("Return the absolute value.") to hundreds (long explanations, doctests).

    python benchmarks/corpus.py          # prints how many paragraphs and their length in characters
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import warnings

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


if __name__ == "__main__":
    texts = load()
    sizes = sorted(len(t) for t in texts)
    print(f"{len(texts)} paragraphs (Python {sys.version.split()[0]}), characters: min {sizes[0]}, "
          f"median {sizes[len(sizes) // 2]}, max {sizes[-1]}")
    for text in texts[:5]:
        print("  ", text[:100])
