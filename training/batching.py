"""Requests that arrive together are generated together: a small batching queue in front of stream_batch.

One worker thread owns the model(s). It waits for a request, then keeps collecting for a
few milliseconds (or until the batch is full) so concurrent clients share forward passes:
on a CPU or GPU a batch of 16 rows costs little more per step than one row. Static
batching: a batch runs until its longest row ends, and requests arriving meanwhile form
the next batch (continuous batching, joining rows into a running KV cache, is what vLLM
adds on top of this).
"""
import queue
import threading
import time
from dataclasses import dataclass, field

from training.generation import GenerationRequest, StreamChunk, stream_batch
from training.model_cache import ModelCache


@dataclass
class _Job:
    """What one caller submitted: its rows, and where their chunks go."""

    path: str
    requests: list[GenerationRequest]
    out: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


_END = object()


class Batcher:
    """Runs submitted requests in batches on one worker thread, grouping those for the same model."""

    def __init__(self, cache: ModelCache, *, max_batch: int = 16, window_s: float = 0.005):
        self.cache = cache
        self.max_batch = max_batch
        self.window_s = window_s
        self._pending: queue.Queue[_Job] = queue.Queue()
        self._held: list[_Job] = []  # jobs for another model than the batch being gathered
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches_run = 0
        self.largest_batch = 0

    def submit(self, path: str, requests: list[GenerationRequest]):
        """Yield the StreamChunks of `requests` (indexes relative to this list) as they are drawn.

        Closing the generator (the client went away) drops the rows' output; their batch
        stops early only if every job in it is gone.
        """
        self._ensure_thread()
        job = _Job(path=str(path), requests=list(requests))
        self._pending.put(job)
        try:
            while True:
                item = job.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="generation-batcher", daemon=True)
                self._thread.start()

    def _gather(self) -> list[_Job]:
        """The next batch: the oldest waiting job plus those for its model that arrive within the window."""
        first = self._held.pop(0) if self._held else self._pending.get()
        batch, rows = [first], len(first.requests)
        still_held = []
        for job in self._held:
            if job.path == first.path and rows + len(job.requests) <= self.max_batch:
                batch.append(job)
                rows += len(job.requests)
            else:
                still_held.append(job)
        self._held = still_held
        deadline = time.monotonic() + self.window_s
        while rows < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._pending.get(timeout=remaining)
            except queue.Empty:
                break
            if job.path == first.path and rows + len(job.requests) <= self.max_batch:
                batch.append(job)
                rows += len(job.requests)
            else:
                self._held.append(job)
        return [job for job in batch if not job.cancelled.is_set()]

    def _run(self) -> None:
        while True:
            batch = self._gather()
            if not batch:
                continue
            try:
                self._run_batch(batch)
            except BaseException as exc:  # the callers see it; the worker lives on
                for job in batch:
                    job.out.put(exc)
            finally:
                for job in batch:
                    job.out.put(_END)

    def _run_batch(self, batch: list[_Job]) -> None:
        model, tokenizer = self.cache.get(batch[0].path)
        requests, owners = [], []
        for job in batch:
            for local, request in enumerate(job.requests):
                requests.append(request)
                owners.append((job, local))
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(requests))
        for chunk in stream_batch(model, tokenizer, requests,
                                  should_stop=lambda: all(job.cancelled.is_set() for job in batch)):
            job, local = owners[chunk.index]
            if not job.cancelled.is_set():
                chunk.index = local
                job.out.put(chunk)
