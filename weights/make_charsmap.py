"""sentencepiece's nmt_nfkc charsmap (the Precompiled normalizer of XLM-R, CamemBERT, ALBERT, XLNet, T5...),
for the tests' tokenizers: weights/charsmap/nmt_nfkc.bin.gz.

It is compiled into the sentencepiece library and written into every model it trains with
normalization_rule_name="nmt_nfkc" (the default), so this trains a tiny model and keeps its charsmap.
Needs sentencepiece (pip install sentencepiece); the tests need only the file it writes.

    python weights/make_charsmap.py            # or: --out FILE
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "charsmap", "nmt_nfkc.bin.gz"))
    args = parser.parse_args()
    text = ["The quick brown fox jumps over the lazy dog.", "Café naïve résumé 東京 ﷺ ½ ﬁ"] * 50
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "m")
        spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=prefix, vocab_size=52,
                                       hard_vocab_limit=False, normalization_rule_name="nmt_nfkc",
                                       model_type="unigram", minloglevel=2)
        proto = sentencepiece_model_pb2.ModelProto()
        with open(prefix + ".model", "rb") as f:
            proto.ParseFromString(f.read())
    charsmap = proto.normalizer_spec.precompiled_charsmap
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with gzip.GzipFile(args.out, "wb", mtime=0) as f:  # mtime 0: the same bytes on every run
        f.write(charsmap)
    print(f"wrote {args.out}: {len(charsmap)} bytes, sha256 {hashlib.sha256(charsmap).hexdigest()}, "
          f"sentencepiece {spm.__version__}")


if __name__ == "__main__":
    main()
