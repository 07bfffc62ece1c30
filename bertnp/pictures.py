"""Pictures for readers: attention maps, and parity errors per intermediate. Needs matplotlib (the
`plot` extra)."""

from __future__ import annotations

import numpy as np

from .errors import BertnpError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise BertnpError("pictures need matplotlib: pip install 'bertnp[plot]'") from None
    return plt


def plot_attention(model, text: str, path: str, layer: int | None = None, head: int | None = None) -> tuple:
    """Attention probabilities of every layer and head (or the one asked for), tokens on both axes.
    Returns (rows, columns) of the grid drawn."""
    plt = _pyplot()
    cfg = model.config
    for name, value, limit in (("layer", layer, cfg.num_hidden_layers), ("head", head, cfg.num_attention_heads)):
        if value is not None and not 0 <= value < limit:
            raise BertnpError(f"--{name} {value}: this model has {limit} ({name}s 0..{limit - 1})")
    enc = model.tokenize([text])
    tokens = [model.tokenizer.backend.id_to_token(int(i)) for i in enc["input_ids"][0]]
    attentions = model(**enc, output_attentions=True).attentions  # L x [1, N, T, T]
    layers = [layer] if layer is not None else range(cfg.num_hidden_layers)
    heads = [head] if head is not None else range(cfg.num_attention_heads)
    cell = 0.25 * len(tokens) + 1.0
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(cell * len(heads), cell * len(layers)), squeeze=False)
    for r, li in enumerate(layers):
        for c, hi in enumerate(heads):
            ax = axes[r][c]
            ax.imshow(np.asarray(attentions[li][0, hi], dtype=np.float64), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {li} head {hi}", fontsize=8)
            detailed = len(layers) * len(heads) <= 16
            ax.set_xticks(range(len(tokens)), tokens if detailed else [""] * len(tokens), rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), tokens if detailed or c == 0 else [""] * len(tokens), fontsize=6)
    fig.suptitle(f"attention: {text[:80]}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(layers), len(heads)


def plot_errors(columns: dict, path: str) -> None:
    """Max abs error per intermediate in forward order, log scale, one line per comparison."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for title, rows in columns.items():
        ax.semilogy([r.max_abs if r.max_abs > 0 else np.nan for r in rows], marker=".", label=title)
    names = [r.name for r in next(iter(columns.values()))]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("max abs error (real tokens)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
