"""Workloads: one module each, named as `run.py --only` names it. A module defines

    run(bench) -> harness.Section    measures, and says how (Section.about, .rounds, .notes, .targets)
    OPT_IN = True                    optional: left out of a plain run, run by --only (Spark: Java, minutes)

and is listed in ORDER, the report's order.
"""

ORDER = ("minilm_batch", "bert_base", "corpus", "minilm_latency", "busy", "cold_start", "warm_start",
         "deterministic", "streaming", "profile", "corpus_profile", "spark", "serve")
