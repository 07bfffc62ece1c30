"""bertnp against its peers on the same inputs; writes benchmarks/RESULTS.md, every line of it.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick] [--only w1,w2]
        [--threads N] [--output PATH]

Engines (benchmarks/engines/, one module each): bertnp fast (backend="numba"), bertnp reference
(backend="numpy"), transformers on torch, ONNX Runtime (the same weights exported with torch.onnx: the
plain graph and the onnxruntime.transformers fused one), and bertnp on Spark. Workloads
(benchmarks/workloads/, one module each, named for --only): minilm_batch, bert_base, corpus,
minilm_latency, busy, cold_start, warm_start, deterministic, streaming, profile, corpus_profile; spark and
serve (HTTP servers: bertnp serve and infinity-emb) run only when named. harness.py says how engines run
and are timed. --quick runs every workload small (a few minutes); the full run takes about 25 minutes on 2
cores, 32 with spark and serve.
"""

from __future__ import annotations

import os
import sys

BLAS_ENV_SET = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}

import argparse  # noqa: E402
import importlib  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import harness  # noqa: E402
from workloads import ORDER  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every workload small: a smoke run of a few minutes")
    parser.add_argument("--only", action="append", metavar="W1,W2",
                        help=f"run only these workloads: {', '.join(ORDER)}")
    parser.add_argument("--threads", type=int, default=harness.CORES,
                        help=f"threads for every engine (default: all {harness.CORES} cores)")
    parser.add_argument("--output", type=Path, default=harness.HERE / "RESULTS.md", help="where to write the report")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}: choose from {', '.join(ORDER)}")
    if not 1 <= args.threads <= (os.cpu_count() or 1):
        parser.error(f"--threads {args.threads}: expected 1 to {os.cpu_count()}")
    args.defaults = [n for n in ORDER if not getattr(importlib.import_module(f"workloads.{n}"), "OPT_IN", False)]
    args.names = names or args.defaults
    return args


def main(argv=None):
    args = parse(argv)
    if BLAS_ENV_SET:
        banner = "!" * 100
        print(f"{banner}\nWARNING: {', '.join(f'{k}={v}' for k, v in BLAS_ENV_SET.items())} is set: OpenBLAS will "
              "not use this CPU's own kernels, and every NumPy figure will be off.\nRe-run as: env -u "
              f"OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py\n{banner}", file=sys.stderr, flush=True)
    if not harness.MINILM.exists():
        sys.exit(f"{harness.MINILM} is missing: run `python weights/fetch_minilm.py` first")
    git = harness.git_state(args.output)
    date, clock, load_before = harness.now(), time.perf_counter(), harness.load_average()
    run_meter = harness.LoadMeter()
    bench = harness.Bench(args.quick, args.threads)
    try:
        print(f"installing this tree's bertnp into {bench.site} and warming its Numba cache", flush=True)
        install = bench.install()
        for name in args.names:
            print(f"== {name}", flush=True)
            start, meter = time.perf_counter(), harness.LoadMeter()
            try:
                section = importlib.import_module(f"workloads.{name}").run(bench)
            except Exception as e:  # one broken workload does not lose the others' figures
                traceback.print_exc()
                section = harness.Section(name, [], error=f"{type(e).__name__}: {e}")
            section.seconds = time.perf_counter() - start
            if not section.loads:
                section.loads.append(meter.cores())
            bench.sections.append(section)
            print(f"  ({section.seconds:.0f} s)", flush=True)
    finally:
        bench.cleanup()
    elapsed = time.perf_counter() - clock
    missing = [n for n in args.defaults if n not in args.names]  # --only naming every default is a full run
    partial = [flag for flag in ("--quick" if args.quick else "", "--only " + ",".join(args.names) if missing
                                 else "", f"--threads {args.threads}" if args.threads != harness.CORES else "") if flag]
    extra = [n for n in args.names if n not in args.defaults]
    meta = {"command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "date": date, "elapsed": elapsed, "git": git, "install": install, "load_before": load_before,
            "background": run_meter.cores(), "blas": harness.blas_line(),
            "mode": (f"full run, with the opt-in {', '.join(extra)}" if extra else "full run") if not partial
            else f"**PARTIAL run ({', '.join(partial)})**",
            "blas_env": ", ".join(f"{k}={v}" for k, v in BLAS_ENV_SET.items())}
    harness.write_report(args.output, bench, meta)
    print(f"wrote {args.output} ({elapsed:.0f} s; other processes kept {meta['background']:.2f} cores busy on average)")
    if git[1]:
        print(f"WARNING: uncommitted changes in {len(git[1])} files under bertnp/, benchmarks/: the report "
              "says so", file=sys.stderr)
    if BLAS_ENV_SET:
        print("WARNING: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were set: NumPy figures are off (see above)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
