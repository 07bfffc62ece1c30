"""Model names -> local folders: a path, or a Hugging Face hub id found in the local cache.

The cache layout is huggingface_hub's: $HF_HUB_CACHE (default $HF_HOME/hub, default
~/.cache/huggingface/hub) / models--ORG--NAME / snapshots / REVISION, with refs/main naming the revision.
Nothing here touches the network when the files are local. Only when a hub id is not cached, and the
optional huggingface_hub package is installed and HF_HUB_OFFLINE is not set, is the model downloaded:
safetensors weights first, pytorch_model.bin only when the repository has no safetensors.
"""

from __future__ import annotations

import os

from . import files
from .errors import ConfigError

# the files bertnp reads from a model repository (weights are chosen separately)
METADATA_PATTERNS = ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                     "modules.json", "sentence_bert_config.json", "*/config.json"]


def hub_cache() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def cached_snapshot(repo_id: str, revision: str = "main") -> str | None:
    """The cached snapshot folder of a hub model, or None when it is not cached."""
    repo = os.path.join(hub_cache(), "models--" + repo_id.replace("/", "--"))
    ref = os.path.join(repo, "refs", revision)
    if os.path.exists(ref):
        try:
            revision = files.read_text(ref, "hub reference", ConfigError).strip()
        except FileNotFoundError:
            return None
        if not revision or revision in (".", "..") or not revision.isprintable() or "/" in revision or os.sep in revision:
            raise ConfigError(f"{ref}: expected a revision (a commit hash), got {files.excerpt(revision)}")
    snapshot = os.path.join(repo, "snapshots", revision)
    return snapshot if os.path.exists(os.path.join(snapshot, "config.json")) else None


def looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not name.startswith((".", "~")) and os.sep not in name.replace("/", "")


def resolve(name_or_path) -> str:
    """A local folder for a path or a hub id (cached, else downloaded when huggingface_hub allows).
    ConfigError, naming the path or id, when there is no such folder or model."""
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if not looks_like_hub_id(path):
        raise ConfigError(f"{path}: not a folder (expected config.json, model.safetensors, tokenizer files)")
    snapshot = cached_snapshot(path)
    if snapshot:
        return snapshot
    return download(path)


def download(repo_id: str) -> str:
    where = f"{repo_id}: not a folder, and not in the Hugging Face cache at {hub_cache()}"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ConfigError(f"{where} (HF_HUB_OFFLINE is set, so bertnp will not download it)")
    try:
        import huggingface_hub
    except ImportError:
        raise ConfigError(f"{where}; pip install huggingface_hub to download hub models") from None
    try:
        files = huggingface_hub.list_repo_files(repo_id)
        weights = ["*.safetensors", "model.safetensors.index.json"] if any(f.endswith(".safetensors") for f in files) \
            else ["pytorch_model.bin"]
        return huggingface_hub.snapshot_download(repo_id, allow_patterns=METADATA_PATTERNS + weights)
    except Exception as e:  # network, authentication, missing repository: one message naming the model
        raise ConfigError(f"{repo_id}: could not download from the Hugging Face hub ({type(e).__name__}: {e})") from None
