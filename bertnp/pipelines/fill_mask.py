"""The masked word of a text, from a BertForMaskedLM checkpoint, as transformers' fill-mask pipeline
proposes it: the softmax of the masked position's vocabulary logits, its top_k tokens, and the text with
each one filled in (decoded without special tokens when the text has one mask)."""

from __future__ import annotations

import logging

import numpy as np

from .. import heads
from ..errors import InputError
from ..weights import MASKED_LM
from .common import Decoder, encode, host, load_for, positive, run_encodings, softmax, texts_of

log = logging.getLogger(__name__)


class FillMask:
    """fm = FillMask(model); fm.fill("Paris is the [MASK] of France.", top_k=5) -> [{"score", "token",
    "token_str", "sequence"}, ...] best first. A text with several masks gives one such list per mask;
    a list of texts gives one result per text."""

    def __init__(self, model, max_length: int | None = None, batch_size: int = 32, backend: str | None = None):
        self.model = load_for(model, MASKED_LM, "FillMask", backend)
        self.max_length = self.model._max_length(max_length)
        self.batch_size = positive("batch_size", batch_size)
        self.decoder = Decoder(self.model)
        self.mask_id = self.decoder.special_id("mask_token", "[MASK]")
        if self.mask_id is None:
            raise InputError(f"{self.model.tokenizer.source}: the vocabulary has no mask token")
        self.pad_id = self.model.tokenizer.pad_id

    @property
    def mask_token(self) -> str:
        return self.model.tokenizer.backend.id_to_token(self.mask_id)

    def fill(self, texts, top_k: int = 5, targets=None):
        items, single = texts_of(texts)
        top_k = positive("top_k", top_k)
        target_ids = self.target_ids(targets) if targets is not None else None
        windows = [encode(self.model, text, None, self.max_length, "longest_first")[0] for text in items]
        for text, window in zip(items, windows):
            if self.mask_id not in window.ids:
                raise InputError(f"no mask token ({self.mask_token}) in {text!r} (within its first "
                                 f"{self.max_length} tokens)")

        masked = [np.flatnonzero(np.asarray(w.ids) == self.mask_id) for w in windows]  # [M] per text

        def masked_logits(out, row, n, i):  # the decoder on the masked tokens only, not on all B x T
            x = host(out.last_hidden_state[row, masked[i]])  # [M, H]
            return heads.masked_lm(x, self.model.weights.masked_lm, self.model.config, np, self.model.numerics)

        logits = run_encodings(self.model, windows, masked_logits, self.batch_size, heads=False)  # [M, V] each
        results = [self.propose(np.asarray(w.ids), m, l, top_k, target_ids) for w, m, l in zip(windows, masked, logits)]
        return results[0] if single else results

    __call__ = fill

    def propose(self, ids, masked, logits, top_k, target_ids):
        """The pipeline's postprocess for one text: ids [n], masked positions [M], their logits [M, V]."""
        probs = softmax(logits)  # [M, V]
        if target_ids is not None:
            probs = probs[..., target_ids]
            top_k = min(top_k, len(target_ids))
        single_mask = len(masked) == 1
        result = []
        for i, row in enumerate(probs):
            best = np.argsort(-row, kind="stable")[:top_k]
            proposals = []
            for j in best:
                token = int(target_ids[j]) if target_ids is not None else int(j)
                filled = ids.copy()
                filled[masked[i]] = token
                filled = filled[filled != self.pad_id]
                proposals.append({"score": float(row[j]), "token": token,
                                  "token_str": self.decoder.decode([token]),
                                  # one mask: a readable text; several: keep the other [MASK]s (and so [CLS]...)
                                  "sequence": self.decoder.decode(filled, skip_special_tokens=single_mask)})
            result.append(proposals)
        return result[0] if single_mask else result

    def target_ids(self, targets) -> np.ndarray:
        """Tokens to score instead of the whole vocabulary; a target not in it stands for its first token."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.model.tokenizer.backend.get_vocab()
        ids = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.model.tokenizer.backend.encode(target, add_special_tokens=False).ids
                if not pieces:
                    log.warning("target %r is not in the vocabulary and tokenizes to nothing: ignored", target)
                    continue
                token_id = pieces[0]
                log.warning("target %r is not in the vocabulary: using %r", target,
                            self.model.tokenizer.backend.id_to_token(token_id))
            ids.append(token_id)
        ids = list(set(ids))  # as the pipeline: duplicates removed, in set order
        if not ids:
            raise InputError(f"targets={targets!r}: none of them can be scored")
        return np.array(ids)
