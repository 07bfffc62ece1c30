"""The server's counters in Prometheus' text format (GET /metrics), with no client library.

Requests by route and status and their latency; the queue's depth; per forward pass the texts, tokens
and requests it held (`bertnp_batch_requests` above 1 means requests were batched together), how long it
ran and how long requests waited for it; texts dropped because their client went away.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TOKENS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Histogram:
    def __init__(self, buckets):
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value):
        index = bisect_left(self.buckets, value)
        if index < len(self.buckets):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def lines(self, name, labels=""):
        out, cumulative = [], 0
        for bound, count in zip(self.buckets, self.counts):
            cumulative += count
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{bound:g}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{suffix} {self.sum:.6g}", f"{name}_count{suffix} {self.count}"]
        return out


class Metrics:
    """Thread-safe: the event loop records requests, the model worker records batches."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = {}  # (route, status) -> count
        self.latency = {}  # route -> Histogram
        self.in_flight = 0
        self.queued = 0
        self.dropped_texts = 0
        self.batch_texts, self.batch_tokens = Histogram(COUNTS), Histogram(TOKENS)
        self.batch_requests, self.batch_seconds = Histogram(COUNTS), Histogram(SECONDS)
        self.queue_seconds = Histogram(SECONDS)

    def started(self):
        with self._lock:
            self.in_flight += 1

    def answered(self, route: str, status: int, seconds: float):
        with self._lock:
            self.in_flight -= 1
            self.requests[route, status] = self.requests.get((route, status), 0) + 1
            self.latency.setdefault(route, Histogram(SECONDS)).observe(seconds)

    def queue(self, texts: int):
        self.queued = texts

    def dropped(self, texts: int):
        with self._lock:
            self.dropped_texts += texts

    def batch(self, texts: int, tokens: int, requests: int, seconds: float, waits):
        with self._lock:
            self.batch_texts.observe(texts)
            self.batch_tokens.observe(tokens)
            self.batch_requests.observe(requests)
            self.batch_seconds.observe(seconds)
            for wait in waits:
                self.queue_seconds.observe(wait)

    def render(self) -> str:
        def head(name, kind, text):
            return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]

        with self._lock:
            lines = head("bertnp_requests_total", "counter", "HTTP requests answered, by route and status.")
            lines += [f'bertnp_requests_total{{route="{route}",status="{status}"}} {count}'
                      for (route, status), count in sorted(self.requests.items())]
            lines += head("bertnp_request_duration_seconds", "histogram", "Time from request to response, by route.")
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("bertnp_request_duration_seconds", f'route="{route}"')
            lines += head("bertnp_requests_in_flight", "gauge", "Requests being answered now.")
            lines.append(f"bertnp_requests_in_flight {self.in_flight}")
            lines += head("bertnp_queue_texts", "gauge", "Texts waiting for a forward pass.")
            lines.append(f"bertnp_queue_texts {self.queued}")
            lines += head("bertnp_dropped_texts_total", "counter",
                          "Queued texts dropped because their client went away.")
            lines.append(f"bertnp_dropped_texts_total {self.dropped_texts}")
            for name, histogram, text in (
                    ("bertnp_batch_texts", self.batch_texts, "Texts in each forward pass."),
                    ("bertnp_batch_tokens", self.batch_tokens, "Tokens in each forward pass."),
                    ("bertnp_batch_requests", self.batch_requests, "Requests whose texts shared each forward pass."),
                    ("bertnp_batch_duration_seconds", self.batch_seconds, "Time of each forward pass."),
                    ("bertnp_queue_duration_seconds", self.queue_seconds,
                     "Time from a request's arrival to its first forward pass.")):
                lines += head(name, "histogram", text) + histogram.lines(name)
        return "\n".join(lines) + "\n"
