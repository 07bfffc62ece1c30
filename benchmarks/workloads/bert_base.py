"""BERT-base-shape 32x128 throughput: random weights (hidden 768, 12 layers, 12 heads, intermediate 3072); then
bertnp fast and ORT's fused graph op by op."""

from __future__ import annotations

from harness import Column, Section, Target
from workloads.minilm_batch import ENGINES, throughput

SHAPE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def make_checkpoint(folder):
    """BertModel(BertConfig(SHAPE)) with torch.manual_seed(0), saved with save_pretrained (in a worker)."""
    import torch
    import transformers

    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**SHAPE)).save_pretrained(folder)


def run(bench):
    section = Section("BERT-base shape 32x128 throughput", [Column("throughput", "seq/s", True)])
    checkpoint = bench.workdir / "bert-base-random"
    with bench.worker() as w:
        w.apply(make_checkpoint, str(checkpoint))
    throughput(bench, section, checkpoint, bench.skim(ENGINES), bench.pick(5, 2), 1, bench.pick(2, 0),
               ops=bench.pick(2, 1))
    section.notes.append("BertModel(BertConfig(hidden 768, 12 layers, 12 heads, intermediate 3072)) with "
                         "torch.manual_seed(0), saved with save_pretrained; every engine loads that folder")
    section.targets.append(Target("BERT-base 32x128 >= 1.3x ORT", "throughput", 1.3,
                                  profile=f"the op-by-op table in \"{section.title}\""))
    return section
