"""One 16-token text, text -> embedding as an app calls it (tokenization and pooling included): p50, p95."""

from __future__ import annotations

from harness import MINILM, Column, Section, Target, interleave

TEXT = "A small model turns each sentence into a vector that captures its meaning."  # 16 tokens
ENGINES = [("fast", "numba"), ("reference", "numpy"), ("torch", "sdpa"), ("ort", "plain graph"),
           ("ort", "fused graph")]
COLUMNS = [Column("p50", "ms", False), Column("p95", "ms", False)]


def check_text():
    from engines import tokenizer

    tokens = len(tokenizer(MINILM).encode(TEXT).ids)
    assert tokens == 16, f"TEXT is {tokens} tokens, expected 16"


def add_rows(section, result):
    """p50 and p95 over every timed call of every round."""
    for worker, timing in result.timings.items():
        calls = timing.calls()
        section.add(worker, p50=timing.percentile(50) * 1e3, p95=timing.percentile(95) * 1e3,
                    note=f"calls: {len(calls)}, rounds: {len(timing.rounds)}")


def run(bench):
    check_text()
    section = Section("One 16-token text: latency", COLUMNS)
    rounds, calls, reference_rounds = bench.pick(15, 3), bench.pick(40, 20), bench.pick(3, 1)
    with bench.engines(bench.skim(ENGINES), MINILM, section) as workers:
        result = interleave(workers, "embed", ([TEXT],), rounds, calls=calls, warmup=20,
                            caps={"reference": reference_rounds})
    add_rows(section, result)
    section.agreement(result, ("torch", "sdpa"), ("ort", "plain graph"))
    section.measured(result)
    section.rounds = (f"interleaved rounds of {calls} calls per engine (rounds per engine in the notes), after 20 "
                      "warm-up calls each; percentiles over all calls")
    section.about = (f"all-MiniLM-L6-v2 embeds {TEXT!r} (16 tokens with [CLS] and [SEP]): tokenize, forward, "
                     "mean pool, normalize, one call per text. bertnp through `Embedder.embed([text])`; torch and "
                     "ORT through the same tokenizer.json.")
    section.targets += [Target("one text p50 <= ORT's", "p50", 1.0), Target("one text p95 <= ORT's", "p95", 1.0)]
    return section
