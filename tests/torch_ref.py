"""transformers as the reference: random checkpoints written by it, and its outputs on given ids."""

from __future__ import annotations

import numpy as np
import torch
import transformers


def make_checkpoint(folder: str, config: dict, seed: int, with_pooler: bool = True) -> None:
    """A random BertModel (num_labels absent) or BertForSequenceClassification saved as safetensors.

    Weights are redrawn larger than BERT's init (std 0.02) so that a wrong op shows up as a large error.
    """
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**config)
    if "num_labels" in config or "id2label" in config:
        model = transformers.BertForSequenceClassification(hf_config)
    else:
        model = transformers.BertModel(hf_config, add_pooling_layer=with_pooler)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(folder, safe_serialization=True)


def run_torch(folder: str, enc: dict, dtype) -> dict:
    """transformers' eager forward in eval mode, every hidden state and attention, as NumPy arrays."""
    names = _names(folder)
    if "classifier" in names:
        m = transformers.AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    else:
        m = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager",
                                                   add_pooling_layer="pooler" in names)
    m = m.eval()
    if dtype == np.float64:
        m = m.double()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in enc.items()}
    with torch.no_grad():
        out = m(**tensors, output_hidden_states=True, output_attentions=True)
    result = {
        "hidden_states": [h.numpy() for h in out.hidden_states],
        "attentions": [a.numpy() for a in out.attentions],
    }
    result["last_hidden_state"] = result["hidden_states"][-1]
    if hasattr(out, "logits"):
        result["logits"] = out.logits.numpy()
        # the classifier reads the pooler; recompute it through the base model for the comparison
        with torch.no_grad():
            result["pooler_output"] = m.bert(**tensors).pooler_output.numpy()
    else:
        result["pooler_output"] = None if out.pooler_output is None else out.pooler_output.numpy()
    return result


def _names(folder: str) -> set:
    from safetensors import safe_open

    with safe_open(f"{folder}/model.safetensors", framework="numpy") as f:
        return {k.split(".")[0] for k in f.keys()}
