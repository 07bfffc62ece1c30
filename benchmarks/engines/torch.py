"""transformers' BertModel on torch (CPU), inference mode, the default attention (sdpa).

Threads: torch.set_num_threads(threads) intra-op, one inter-op thread.
"""

from __future__ import annotations

from engines import embed_sorted, tokenizer

TITLE = "transformers (torch)"
VARIANTS = ("sdpa", "eager")


def import_library():
    import torch  # noqa: F401
    import transformers  # noqa: F401


class Engine:
    def __init__(self, checkpoint, variant, threads, prepared):
        import torch
        import transformers

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        transformers.logging.set_verbosity_error()
        self.torch = torch
        self.model = transformers.BertModel.from_pretrained(str(checkpoint), attn_implementation=variant).eval()
        self.tokenizer = tokenizer(checkpoint) if (checkpoint / "tokenizer.json").exists() else None

    def hidden(self, ids, mask):
        with self.torch.inference_mode():
            return self.model(input_ids=self.torch.from_numpy(ids),
                              attention_mask=self.torch.from_numpy(mask)).last_hidden_state.numpy()

    def embed(self, texts):
        return embed_sorted(self.tokenizer, texts, self.hidden)

    def threads(self) -> str:
        backend = [line for line in self.torch.__config__.parallel_info().splitlines() if "parallel backend" in line]
        return (f"torch {self.torch.get_num_threads()} intra-op threads, {self.torch.get_num_interop_threads()} "
                f"inter-op ({backend[0].strip() if backend else 'backend unknown'})")
