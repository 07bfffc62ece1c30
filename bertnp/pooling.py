"""Token states -> one vector per text, as sentence-transformers' Pooling and Normalize modules do."""

from __future__ import annotations

import numpy as np

from .errors import InputError

POOLINGS = ("mean", "cls", "max", "mean_sqrt_len_tokens", "pooler")


def pool(out, attention_mask, pooling: str, xp=np):
    """BertOutput + mask [B, T] -> [B, H]."""
    h = out.last_hidden_state  # [B, T, H]
    mask = attention_mask[:, :, None].astype(h.dtype)  # [B, T] -> [B, T, 1]
    if pooling in ("mean", "mean_sqrt_len_tokens"):  # sum of real tokens over n (or sqrt n); ST's clamp
        count = xp.maximum(mask.sum(axis=1), 1e-9)  # [B, 1]
        return (h * mask).sum(axis=1) / (count if pooling == "mean" else xp.sqrt(count))  # [B, H]
    if pooling == "cls":
        return h[:, 0]  # [B, H]: the [CLS] token's state
    if pooling == "max":  # padding is set to -inf first, as sentence-transformers does
        return xp.where(mask > 0, h, -xp.inf).max(axis=1)  # [B, H]
    if pooling == "pooler":
        if out.pooler_output is None:
            raise InputError("pooling='pooler' needs a checkpoint with a pooler (pooler.dense); this one has none")
        return out.pooler_output  # [B, H]: tanh(dense([CLS]))
    raise InputError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")


def normalize(x, xp=np):
    """Rows to unit L2 norm, as torch.nn.functional.normalize (norms below 1e-12 are clamped)."""
    return x / xp.maximum(xp.sqrt((x * x).sum(axis=-1, keepdims=True)), 1e-12)
