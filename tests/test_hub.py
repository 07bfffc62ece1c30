"""Hub ids resolve in the local Hugging Face cache without touching the network."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from conftest import WEIGHTS

import bertnp
from bertnp.hub import resolve

TINY = os.path.join(WEIGHTS, "tiny")


def fake_cache(root, repo_id="acme/tiny-bert", revision="0123abcd"):
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(TINY, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_hub_id_found_in_cache_offline(tmp_path, monkeypatch):
    snapshot = fake_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # any import of it would fail: no network path
    assert resolve("acme/tiny-bert") == str(snapshot)
    model = bertnp.load("acme/tiny-bert")
    assert model.labels == ["World", "Sports", "Business"]


def test_hf_home_layout(tmp_path, monkeypatch):
    fake_cache(tmp_path / "hub")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert resolve("acme/tiny-bert").startswith(str(tmp_path / "hub"))


def test_not_cached_offline_or_without_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(bertnp.BertnpError, match="acme/missing: not a folder, and not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        bertnp.load("acme/missing")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(bertnp.BertnpError, match="pip install huggingface_hub"):
        bertnp.load("acme/missing")


def test_paths_are_not_hub_ids(tmp_path):
    with pytest.raises(bertnp.BertnpError, match="not a folder"):
        bertnp.load(str(tmp_path / "a" / "b" / "c"))
