"""Dynamic batching: requests from every client in one queue, one worker thread that runs the model.

    batcher = Batcher(served_model, max_batch_tokens=16384, max_queue=8192)
    batcher.start()
    job = batcher.submit(["a text", "another"], limit=256)   # Overloaded when the queue is full
    rows = job.future.result()                               # [2, dimension], in input order
    batcher.stop()                                           # finishes what is queued, then ends the worker

A job is one request's texts. The worker takes jobs first come, first served, and fills each forward pass
up to `max_batch_tokens` tokens (summed over texts; a job larger than that is split over several passes,
a small one shares a pass with others) and `max_batch_requests` jobs (None: no limit; 1: no batching
across requests). It tokenizes a job when it first reaches it, sorts each batch by
length (Bert.run_sequences) and answers every job with its own rows as soon as its last row is back.
While a forward pass runs, new requests queue and join the next one; an idle worker waits up to
`max_wait_ms` after the oldest request's arrival for company (0: it starts at once).

Only this thread runs the model, so forward passes never overlap and the event loop never computes. A
job's future is resolved from the worker thread; `asyncio.wrap_future` awaits it from the event loop.
`cancel(job)` drops a job's texts that have not reached a forward pass (a client that went away).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future

import numpy as np


EWMA = 0.2  # weight of the newest batch in the throughput estimate behind Retry-After


class Overloaded(Exception):
    """The queue holds `queued` texts and cannot take `count` more (its limit is `limit`)."""

    def __init__(self, queued: int, count: int, limit: int, texts_per_second: float | None):
        super().__init__(f"the server is busy: {queued} texts are queued and this request adds {count}, "
                         f"beyond the limit of {limit}; retry later")
        self.queued, self.count, self.limit, self.texts_per_second = queued, count, limit, texts_per_second


class Stopped(Exception):
    """The batcher is stopping: it finishes what it has but takes nothing new."""


class Job:
    """One request's items on their way through the queue."""

    __slots__ = ("items", "limit", "truncate", "future", "submitted", "sequences", "tokens", "taken", "finished",
                 "rows", "closed")

    def __init__(self, items: list, limit: int, truncate: bool):
        self.items, self.limit, self.truncate = items, limit, truncate
        self.future: Future = Future()
        self.future.set_running_or_notify_cancel()  # only the batcher settles it (cancel() is ours)
        self.submitted = time.perf_counter()
        self.sequences = None  # tokenized by the worker when it first reaches the job
        self.tokens = 0  # tokens of all its sequences (usage.prompt_tokens)
        self.taken = 0  # items handed to a forward pass so far
        self.finished = 0  # rows back
        self.rows = None
        self.closed = False  # answered, failed or cancelled: no more work for it


class Batcher:
    def __init__(self, model, max_batch_tokens: int = 16384, max_wait_ms: float = 0.0, max_queue: int = 8192,
                 metrics=None, max_batch_requests: int | None = None):
        """model: a ServedModel (encode(items, limit, truncate) and rows(sequences)); metrics: a
        serve.metrics.Metrics, or None."""
        self.model, self.metrics = model, metrics
        self.max_batch_tokens, self.max_wait, self.max_queue = max_batch_tokens, max_wait_ms / 1e3, max_queue
        self.max_batch_requests = max_batch_requests
        self._pending: deque[Job] = deque()
        self._queued = 0  # texts of pending jobs not yet in a forward pass
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="bertnp-serve-model", daemon=True)
        self.texts_per_second: float | None = None  # recent throughput while busy

    # ---- the API ---------------------------------------------------------------------------------------

    def start(self):
        self._thread.start()

    def submit(self, items: list, limit: int, truncate: bool = True) -> Job:
        """Queue a request's texts (or pairs), tokenized later at `limit` tokens. Raises Overloaded when
        the queue would exceed max_queue texts, Stopped once stop() was called."""
        job = Job(items, limit, truncate)
        with self._cond:
            if self._stopping:
                raise Stopped("the server is shutting down")
            if self._queued + len(items) > self.max_queue:
                raise Overloaded(self._queued, len(items), self.max_queue, self.texts_per_second)
            self._pending.append(job)
            self._queued += len(items)
            self._cond.notify()
        self._gauge()
        return job

    def cancel(self, job: Job) -> int:
        """Drop a job's texts that have not reached a forward pass; returns how many were dropped."""
        with self._cond:
            if job.closed:
                return 0
            job.closed = True
            dropped = len(job.items) - job.taken
            self._queued -= dropped
        self._gauge()
        if self.metrics is not None:
            self.metrics.dropped(dropped)
        return dropped

    def stop(self, timeout: float | None = None):
        """Take nothing new, finish every queued job, end the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        """Texts waiting for a forward pass."""
        return self._queued

    # ---- the worker ------------------------------------------------------------------------------------

    def _work(self):
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:  # stopping, and nothing left
                    return
            self._gather()
            pieces = self._take()
            if pieces:
                self._run(pieces)

    def _gather(self):
        """An idle worker's wait for company: until max_wait after the oldest job arrived, or until the
        queue holds a full batch. It tokenizes what arrives meanwhile."""
        if not self.max_wait:
            return
        while True:
            with self._cond:
                jobs = list(self._pending)
            ready = [job for job in jobs if self._prepare(job)]
            with self._cond:
                wait = jobs[0].submitted + self.max_wait - time.perf_counter()
                if sum(job.tokens for job in ready) >= self.max_batch_tokens or wait <= 0 or self._stopping or \
                        len(ready) == self.max_batch_requests:
                    return
                if len(self._pending) == len(jobs):  # only the worker removes jobs: nothing new yet
                    self._cond.wait(wait)

    def _prepare(self, job: Job) -> bool:
        """Tokenize a job when the worker first reaches it. A job whose texts cannot run (too long with
        truncate=False, or the tokenizer refuses them) is answered with that error now; False then."""
        if job.sequences is not None:
            return not job.closed
        try:
            job.sequences = self.model.encode(job.items, job.limit, job.truncate)
        except Exception as e:  # a BertnpError is the request's fault (4xx); anything else a bug (500)
            self._fail([job], e)
            return False
        job.tokens = sum(len(ids) for ids, _ in job.sequences)
        return not job.closed

    def _take(self) -> list:
        """The next batch: (job, start, stop) item ranges, first come first served, up to max_batch_tokens
        tokens (a single text longer than that still runs, alone)."""
        pieces, tokens = [], 0
        while True:
            with self._cond:
                if not self._pending:
                    break
                job = self._pending[0]
                if job.closed:
                    self._pending.popleft()
                    continue
            if not self._prepare(job):
                continue
            lengths = [len(ids) for ids, _ in job.sequences]
            start = stop = job.taken
            while stop < len(lengths) and (tokens == 0 or tokens + lengths[stop] <= self.max_batch_tokens):
                tokens += lengths[stop]
                stop += 1
            with self._cond:
                if job.closed:  # cancelled while we looked
                    continue
                job.taken = stop
                self._queued -= stop - start
                if stop == len(lengths):
                    self._pending.popleft()
            if stop > start:
                pieces.append((job, start, stop))
            if stop < len(lengths) or len(pieces) == self.max_batch_requests:  # the batch is full
                break
        self._gauge()
        return pieces

    def _run(self, pieces: list):
        sequences = [seq for job, start, stop in pieces for seq in job.sequences[start:stop]]
        began = time.perf_counter()
        try:
            rows = self.model.rows(sequences)
        except Exception as e:  # a bug, not a bad input: every job of the batch gets it, the worker lives on
            self._fail([job for job, _, _ in pieces], e)
            return
        seconds = time.perf_counter() - began
        rate = len(sequences) / max(seconds, 1e-9)
        self.texts_per_second = rate if self.texts_per_second is None else \
            (1 - EWMA) * self.texts_per_second + EWMA * rate
        if self.metrics is not None:
            self.metrics.batch(len(sequences), sum(len(ids) for ids, _ in sequences), len(pieces), seconds,
                               [began - job.submitted for job, start, _ in pieces if start == 0])
        offset = 0
        for job, start, stop in pieces:
            part, offset = rows[offset : offset + stop - start], offset + stop - start
            with self._cond:
                if job.closed:
                    continue
                if job.rows is None:
                    job.rows = np.empty((len(job.items), *rows.shape[1:]), rows.dtype)
                job.rows[start:stop] = part
                job.finished += stop - start
                done = job.finished == len(job.items)
                if done:
                    job.closed = True
            if done:
                job.future.set_result(job.rows)

    def _fail(self, jobs: list, error: BaseException):
        for job in jobs:
            with self._cond:
                if job.closed:
                    continue
                job.closed = True
                self._queued -= len(job.items) - job.taken
            job.future.set_exception(error)
        self._gauge()

    def _gauge(self):
        if self.metrics is not None:
            self.metrics.queue(self._queued)

