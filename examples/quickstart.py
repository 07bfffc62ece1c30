"""Embed a few sentences with all-MiniLM-L6-v2 and rank them against a query, with bertnp alone.

    python examples/quickstart.py [MODEL_FOLDER]      # default: weights/minilm
"""

import os
import sys

import numpy as np

import bertnp

folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "weights", "minilm")
model = bertnp.load(folder)

query = "Microsoft has taken its first step into the metaverse."
sentences = [
    "The tech giant announced a virtual reality platform for offices.",
    "The home team won the championship on Sunday.",
    "Stocks fell sharply as investors weighed inflation data.",
    "Scientists discovered a new species of frog in the rainforest.",
]

enc = model.tokenize([query])
out = model(**enc)
print("input_ids        ", enc["input_ids"].tolist())
print("last_hidden_state", out.last_hidden_state.shape, out.last_hidden_state.dtype)
print("pooler_output    ", out.pooler_output.shape)

vectors = model.embed([query, *sentences], pooling="mean", normalize=True)  # [5, 384], unit length
scores = vectors[1:] @ vectors[0]
print(f"\nquery: {query}")
for i in np.argsort(-scores):
    print(f"  {scores[i]:.3f}  {sentences[i]}")
