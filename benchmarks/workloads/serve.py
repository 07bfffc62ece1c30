"""HTTP serving: `bertnp serve` with batching on and off, and infinity-emb, on all-MiniLM-L6-v2 under load.
Requests/s and p50/p99 with one short text per request at 1, 8, 32 and 64 concurrent clients, and texts/s
with 32 texts per request. Opt-in (`--only serve`): it starts servers, and infinity-emb needs an
environment of its own (engines/infinity.py says how to make it; without it its row says why).

Each server runs in its own process (engines/serve.py, engines/infinity.py), on a free port of 127.0.0.1,
and is measured once /health answers. The clients run in one more process, a bare harness worker: each
client is one keep-alive connection that POSTs OpenAI's embeddings request to /embeddings, the next as
soon as the last is answered. They share the machine's cores with the server, as a load generator on the
same host does.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import statistics
import subprocess
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from harness import MINILM, PAUSE, Column, LoadMeter, Section, WorkerError
from workloads.corpus import load as corpus
from workloads.minilm_latency import TEXT

OPT_IN = True
ENGINES = [("serve", "batching on"), ("serve", "batching off"), ("serve", "1 model thread"), ("infinity", "torch")]
NAME = "minilm"  # --served-model-name of every server: the `model` the requests name
COLUMNS = [Column("requests/s", "req/s", True), Column("texts/s", "texts/s", True), Column("p50", "ms", False),
           Column("p99", "ms", False)]
STARTUP = 600  # seconds a server may take to answer /health (infinity-emb imports torch, then warms up)


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    texts: int  # per request
    requests: int  # per client and round
    quick: int  # the same, with --quick


SCENARIOS = [Scenario("1 text, 1 client", 1, 1, 200, 40), Scenario("1 text, 8 clients", 8, 1, 50, 10),
             Scenario("1 text, 32 clients", 32, 1, 20, 5), Scenario("1 text, 64 clients", 64, 1, 12, 3),
             Scenario("32 texts, 8 clients", 8, 32, 8, 2)]
TARGET = SCENARIOS[2]  # the targets are at 32 clients


# ---- the servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server engine (engines/<key>.py: TITLE, ROUTE, command(), environment()) in its own process."""

    def __init__(self, bench, key, variant):
        module = importlib.import_module(f"engines.{key}")
        self.key, self.variant, self.title, self.route = key, variant, module.TITLE, module.ROUTE
        self.port = free_port()
        self.log = bench.workdir / f"server-{key}-{variant.replace(' ', '-')}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(module.command(bench, MINILM, variant, self.port, NAME),
                                            env=module.environment(bench, variant), cwd=bench.workdir, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.perf_counter() + STARTUP
        while not self.healthy():
            if self.process.poll() is not None or time.perf_counter() > deadline:
                self.close()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise WorkerError(f"{self.title} did not start: {' / '.join(tail) or 'no output'}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def get(self, path) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as answer:
            return answer.read().decode()

    def embed(self, texts) -> np.ndarray:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.route}", body(texts),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            data = json.loads(answer.read())["data"]
        return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], np.float32)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def body(texts) -> bytes:
    return json.dumps({"model": NAME, "input": list(texts)}).encode()


# ---- the clients (in a bare worker process) ------------------------------------------------------------


def load(port: int, route: str, payload: bytes, clients: int, requests: int) -> dict:
    """`clients` connections, each sending `requests` requests in turn after one untimed warm-up request:
    {"wall": seconds of the timed part, "latencies": seconds of each request, "failed": count, "error"}."""
    try:
        import uvloop  # the serve extra brings it; the clients then cost the shared cores less
    except ImportError:
        uvloop = None
    head = (f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    message = head + payload
    latencies, failures = [], []

    async def send(reader, writer):
        writer.write(message)
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        fields = dict(line.split(b":", 1) for line in header.split(b"\r\n")[1:] if b":" in line)
        length = {k.strip().lower(): v for k, v in fields.items()}.get(b"content-length")
        if length is None:
            raise RuntimeError("the answer has no Content-Length")
        answer = await reader.readexactly(int(length))
        if status != 200:
            failures.append(f"{status}: {answer[:200].decode(errors='replace')}")

    async def client(ready, go):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await send(reader, writer)  # warm-up: the connection is open and the server has seen it
        ready.release()
        await go.wait()
        for _ in range(requests):
            start = time.perf_counter()
            await send(reader, writer)
            latencies.append(time.perf_counter() - start)
        writer.close()

    async def everyone():
        ready, go = asyncio.Semaphore(0), asyncio.Event()
        tasks = [asyncio.ensure_future(client(ready, go)) for _ in range(clients)]
        for _ in range(clients):
            await ready.acquire()
        start = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - start

    wall = uvloop.run(everyone()) if uvloop else asyncio.run(everyone())
    return {"wall": wall, "latencies": latencies, "failed": len(failures), "error": failures[0] if failures else ""}


# ---- the workload --------------------------------------------------------------------------------------


def forward_passes(server) -> tuple | None:
    """bertnp serve's (texts, forward passes) so far, from /metrics; None for other servers."""
    if server.key != "serve":
        return None
    names = ("bertnp_batch_texts_sum", "bertnp_batch_texts_count")
    values = dict(line.rsplit(" ", 1) for line in server.get("/metrics").splitlines() if line.startswith(names))
    return tuple(float(values[name]) for name in names)


def run(bench):
    section = Section("Serving over HTTP: bertnp serve and infinity-emb", COLUMNS)
    rounds = bench.pick(3, 1)
    texts = [" ".join(t.split()[:24]) for t in corpus(32)]  # 32 corpus paragraphs, cut to 24 words
    payloads = {s: body([TEXT] if s.texts == 1 else texts[: s.texts]) for s in SCENARIOS}
    servers, samples = [], {}
    try:
        for key, variant in ENGINES:
            try:
                servers.append(Server(bench, key, variant))
            except WorkerError as e:
                section.failed(key, variant, e)
        with bench.worker() as clients:
            meter = LoadMeter()
            for r in range(rounds):
                for scenario in SCENARIOS:
                    for server in servers[r % len(servers):] + servers[: r % len(servers)]:
                        time.sleep(PAUSE)
                        before = forward_passes(server)
                        result = clients.apply(load, server.port, server.route, payloads[scenario], scenario.clients,
                                               bench.pick(scenario.requests, scenario.quick))
                        after = forward_passes(server)
                        if before is not None:
                            result["passes"] = (after[0] - before[0], after[1] - before[1])
                        samples.setdefault((server, scenario), []).append(result)
            section.loads.append(meter.cores())
        reference = [TEXT, *texts[:3]]
        vectors = {server: server.embed(reference) for server in servers}
    finally:
        for server in servers:
            server.close()
    add_rows(section, servers, samples, vectors)
    section.rounds = (f"rounds: {rounds}; in each, every scenario on every server in turn (the first server rotating), "
                      f"after one untimed request per client; requests/s: the median over rounds, p50/p99 over every "
                      f"request of every round")
    section.about = (
        f"Every server serves weights/minilm as {NAME!r} on 127.0.0.1 and answers OpenAI's embeddings request "
        f"(POST /embeddings with model and input). One text: {TEXT!r} (16 tokens); 32 texts: corpus paragraphs cut "
        "to 24 words. bertnp serve \"batching off\" is --max-batch-requests 1 (each request alone in its forward "
        "passes). The clients' process shares the cores with the server. Note: texts per forward pass, from bertnp "
        "serve's /metrics.")
    section.markdown += targets(section)
    bench.engine_threads.update({(s.title, s.variant): threads(bench, s) for s in servers})
    return section


def threads(bench, server) -> str:
    env = importlib.import_module(f"engines.{server.key}").environment(bench, server.variant)
    names = ("BERTNP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if server.key == "serve" else \
        ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return ", ".join(f"{name}={env[name]}" for name in names)


def add_rows(section, servers, samples, vectors):
    reference = next((s for s in servers if (s.key, s.variant) == ENGINES[0]), None)
    if reference is not None:
        section.truth = f"{reference.title} {reference.variant}"
    for server in servers:
        for scenario in SCENARIOS:
            results = samples[server, scenario]
            latencies = np.array([t for r in results for t in r["latencies"]]) * 1e3
            rate = statistics.median(len(r["latencies"]) / r["wall"] for r in results)
            failed = sum(r["failed"] for r in results)
            note = f"{len(latencies)} requests"
            if "passes" in results[0]:
                texts, passes = (sum(r["passes"][i] for r in results) for i in (0, 1))
                note += f", {texts / max(passes, 1):.1f} texts per forward pass"
            if failed:
                note += f", **{failed} failed**: {next(r['error'] for r in results if r['error'])[:120]}"
            row = section.add(server.key, f"{server.variant}, {scenario.name}", note=note,
                              **{"requests/s": rate, "texts/s": rate * scenario.texts,
                                 "p50": float(np.percentile(latencies, 50)),
                                 "p99": float(np.percentile(latencies, 99))})
            if reference is not None:
                row.diff = float(np.abs(vectors[server] - vectors[reference]).max())


def targets(section) -> list:
    """The issue's targets, each with its verdict, and what batching buys in every scenario."""
    def value(key, variant, scenario, column):
        row = next((r for r in section.rows if r.key == key and r.variant == f"{variant}, {scenario.name}"), None)
        return None if row is None else row.values.get(column)

    def verdict(ok):
        return "**pass**" if ok else "**MISS**"

    lines = ["", "Targets (issue 15), bertnp serve with batching on:", ""]
    one, many = value("serve", "batching on", SCENARIOS[0], "requests/s"), value("serve", "batching on", TARGET,
                                                                                 "requests/s")
    peer = value("infinity", "torch", TARGET, "requests/s")
    p99 = value("serve", "batching on", TARGET, "p99")
    if one and many:
        lines.append(f"- {TARGET.name}: {many:.0f} req/s, {many / one:.2f}x the {one:.0f} req/s of one client "
                     f"(needed: >= 3x): {verdict(many >= 3 * one)}")
    if many and peer:
        lines.append(f"- {TARGET.name}: {many / peer:.2f}x infinity-emb's {peer:.0f} req/s (needed: >= 1x): "
                     f"{verdict(many >= peer)}")
    else:
        lines.append(f"- {TARGET.name} against infinity-emb: not measured (its row says why)")
    if p99 is not None:
        lines.append(f"- {TARGET.name}: p99 {p99:.0f} ms (needed: < 100 ms): {verdict(p99 < 100)}")
    lines += ["", f"Each bertnp serve variant, {TARGET.name} against 1 client:", ""]
    for variant in [v for key, v in ENGINES if key == "serve"]:
        one, many = (value("serve", variant, s, "requests/s") for s in (SCENARIOS[0], TARGET))
        if one and many:
            lines.append(f"- {variant}: {many:.0f} vs {one:.0f} req/s, {many / one:.2f}x")
    lines += ["", "Batching on vs off (bertnp serve, requests/s):", ""]
    for scenario in SCENARIOS:
        on, off = (value("serve", v, scenario, "requests/s") for v in ("batching on", "batching off"))
        if on and off:
            lines.append(f"- {scenario.name}: {on:.0f} vs {off:.0f}, {on / off:.2f}x")
    return lines
