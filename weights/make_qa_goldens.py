"""Golden answers of transformers 4.x's question-answering pipeline -> ``weights/qa/``.

transformers 5 removed the question-answering pipeline, so bertnp's QuestionAnswerer is checked against
answers that transformers 4.57's pipeline gave once, on a tiny random BertForQuestionAnswering. Run this
script in the 4.57 venv (see make_relative_goldens.py for how it is made):

    /work/venv457/bin/python weights/make_qa_goldens.py            # writes weights/qa/
    /work/venv457/bin/python weights/make_qa_goldens.py --out DIR  # somewhere else

What it writes:
    config.json, model.safetensors   BertForQuestionAnswering, float32 (hidden 32, 2 layers, 4 heads,
                                     intermediate 37, gelu, 64 positions, vocabulary 224), tensor names
                                     with the ``bert.`` prefix and ``qa_outputs.*``
    vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                     weights/tiny's tokenizer (model_max_length 64)
    goldens.json                     {"cases": [{"question", "context", "kwargs", "windows", "answers"}]}:
                                     the pipeline's answers for each case, called with `kwargs`
                                     (top_k=3 unless said otherwise; `windows` is how many overlapping
                                     windows the context was cut into)

Weights are re-drawn from a seeded normal (std 0.2; LayerNorm weights 1 +- 0.1; biases std 0.1;
qa_outputs std 1, so that start and end probabilities are peaked). So that float32 rounding cannot change
an answer, the script checks (by watching the pipeline's decode_spans and its final sort) that in every
window the last candidate span kept and the first one dropped differ by more than MARGIN (relative), and
that every ranked answer, the last one kept included, leads the next by more than MARGIN; and that the
long context really takes several windows. Re-running it reproduces the files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REDRAW_SEED = 3
MARGIN = 1e-4  # smallest score gap between ranked answers that the goldens allow
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

SPORTS = ("the team won the game on sunday because the coach played two new players . "
          "the league final was a long match and the old player scored the goal after a short week . ")
MARKET = ("the market rallied after the company reported strong earnings , and oil prices rose five percent . "
          "stocks fell on monday when the bank said profit was weak . ")
SUBWORDS = "Players kept playing; the coaches rallied and the teams jumped after the longest games ended."
LONG_CONTEXT = (SPORTS + MARKET) * 3 + "the president of the country went to the city for peace talks with the people ."

CASES = [
    ("who won the game?", "The team won the game on Sunday because the coach played two new players.", {}),
    ("what fell on monday?", LONG_CONTEXT, {}),
    ("what fell on monday?", LONG_CONTEXT, {"doc_stride": 16, "max_answer_len": 5}),
    ("where did the president go?", LONG_CONTEXT, {"doc_stride": 40, "max_answer_len": 30}),
    ("what rose?", MARKET, {"handle_impossible_answer": True, "top_k": 10}),
    ("what rose?", "Oil prices rose.", {"handle_impossible_answer": True, "top_k": 5}),
    ("who kept playing?", SUBWORDS, {"top_k": 10}),
    ("who kept playing?", SUBWORDS, {"top_k": 10, "align_to_words": False}),
    ("who played?", "Café naïve résumé: the team 中文 played 😀 in Zürich, déjà vu for the Ørsted coach.", {}),
    ("why did stocks fall?", "Stocks fell 12% today; the bank reported weak earnings and oil prices dropped.",
     {"top_k": 1}),
]


def require_transformers_4() -> None:
    try:
        import transformers
    except ImportError:
        sys.exit("make_qa_goldens.py: transformers is not installed; see the top of this file.")
    if int(transformers.__version__.split(".")[0]) != 4:
        sys.exit(f"make_qa_goldens.py needs transformers 4.x (tested with 4.57), found {transformers.__version__}: "
                 "transformers 5 has no question-answering pipeline. Run it with /work/venv457/bin/python.")


def redraw_(model, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if name.endswith("LayerNorm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.startswith("qa_outputs."):
                p.copy_(noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


class Watch:
    """Records, during one pipeline call, the relative gap at each window's candidate cut-off and the
    full ranked answer list before the pipeline keeps its top_k."""

    def __init__(self, module):
        import numpy as np

        self.module, self.np, self.decode_spans = module, np, module.decode_spans
        self.cut_gaps, self.ranked = [], None
        module.decode_spans, module.sorted = self.watch_decode_spans, self.watch_sorted

    def watch_decode_spans(self, start, end, topk, max_answer_len, undesired_tokens):
        np = self.np
        outer = np.matmul(np.expand_dims(start[None] if start.ndim == 1 else start, -1),
                          np.expand_dims(end[None] if end.ndim == 1 else end, 1))
        flat = -np.sort(-np.tril(np.triu(outer), max_answer_len - 1).flatten())
        if len(flat) > topk and flat[topk - 1] > 0:
            self.cut_gaps.append(float((flat[topk - 1] - flat[topk]) / flat[topk - 1]))
        return self.decode_spans(start, end, topk, max_answer_len, undesired_tokens)

    def watch_sorted(self, items, **kwargs):
        self.ranked = sorted(items, **kwargs)
        return self.ranked


def as_list(result) -> list:
    return result if isinstance(result, list) else [result]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "qa"))
    args = ap.parse_args(argv)
    require_transformers_4()

    import torch
    import transformers
    from transformers import BertConfig, BertForQuestionAnswering
    from transformers.pipelines import question_answering

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiny = Path(__file__).resolve().parent / "tiny"
    for name in TOKENIZER_FILES:
        shutil.copy(tiny / name, out / name)

    config = BertConfig(vocab_size=224, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, hidden_act="gelu", max_position_embeddings=64, type_vocab_size=2,
                        layer_norm_eps=1e-12, pad_token_id=0, architectures=["BertForQuestionAnswering"])
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config)
    redraw_(model, REDRAW_SEED)
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)

    qa = transformers.pipeline("question-answering", model=str(out), tokenizer=str(out), device="cpu")
    tokenizer = qa.tokenizer
    cases = []
    for question, context, extra in CASES:
        kwargs = {"top_k": 3, "max_answer_len": 15, **extra}
        watch = Watch(question_answering)
        answers = as_list(qa(question=question, context=context, **kwargs))
        scores = [a["score"] for a in watch.ranked[: kwargs["top_k"] + 1]]
        gaps = [(a - b) / a for a, b in zip(scores, scores[1:])]
        assert all(gap > MARGIN for gap in gaps), f"{question!r}: answers too close to rank reliably: {scores}"
        assert all(gap > MARGIN for gap in watch.cut_gaps), f"{question!r}: candidates cut too close: {watch.cut_gaps}"
        max_seq_len = min(tokenizer.model_max_length, 384)
        stride = kwargs.get("doc_stride", min(max_seq_len // 2, 128))
        windows = len(tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=stride,
                                return_overflowing_tokens=True)["input_ids"])
        print(f"{question!r} {kwargs}: {windows} window(s)")
        for a in answers:
            print(f"    {a['score']:.6f} [{a['start']}:{a['end']}] {a['answer']!r}")
        cases.append({"question": question, "context": context, "kwargs": kwargs, "windows": windows,
                      "answers": answers})
    assert max(c["windows"] for c in cases) >= 3, "the long context should need several windows"

    with open(out / "goldens.json", "w", encoding="utf-8") as f:
        json.dump({"made_by": f"transformers {transformers.__version__} question-answering pipeline",
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for p in sorted(out.iterdir()):
        print(f"  {p.name:28s} {p.stat().st_size:>9d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
