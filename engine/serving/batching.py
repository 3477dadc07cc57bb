"""Adaptive batching (Clipper, NSDI 2017): per model, a bounded queue feeding one inference
worker thread, whose batch size adapts to a latency objective.

**The controller** (:class:`BatchController`) keeps a batch size limit.  A request may wait
for the batch in flight and then run in its own, and the server spends time of its own (HTTP,
JSON, decoding: about 10% of the objective), so a batch may take 40% of the objective:
while the p99 of recent batch times stays under ``0.4 * slo`` and batches fill up (there is
demand), the limit grows by one (additive increase); when it does not, it shrinks to 90%
(multiplicative decrease).  Clipper stops there; on a CPU a larger batch can be *slower per
input* (MobileNetV2 on two threads: 5.8 ms an image at 4, 8.4 ms at 16), so the controller also
measures the time per input at each size (three full batches, median) before growing past it,
and steps back to the most efficient size when growing stops paying, trying larger sizes again
later.  ``fixed`` pins the size instead
(the benchmarks' baselines).

**The queue** (:class:`ModelQueue`) never holds more than ``max_queue`` inputs (more are
refused with 429), and admits a request only when its estimated completion (the batch in
flight, the batches ahead of it and its own, at the measured batch time) meets its deadline
(else 503): both at once, with a retry hint, so nothing waits forever.  An idle model admits
whatever comes (the estimate may be stale: the machine may have become faster).  The worker takes up to
the limit from the head of the queue, waiting at most ``max_delay`` after the oldest input's
arrival for a batch to fill (Triton's max queue delay), drops inputs whose deadline would pass
before even the fastest measured input could be answered (503: an answer after its deadline is
worth nothing to the caller and delays every input behind it), and runs inputs of one model
version and shape per network call.

>>> controller = BatchController(slo=0.050, max_batch=16)
>>> for _ in range(36):                      # fast, full batches: the limit grows by one every 3
...     controller.observe(controller.limit, 0.001 * controller.limit, full=True)
>>> controller.limit
13
>>> for _ in range(3):                       # too slow for the objective: back off to 90%
...     controller.observe(controller.limit, 0.040, full=True)
>>> controller.limit < 13
True
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.serving.metrics import ServerMetrics
    from engine.serving.predictor import Predictor

#: The share of the objective a batch may take (see :attr:`BatchController.budget`).
BUDGET_FRACTION = 0.4
#: Multiplicative decrease (Clipper backs off by about 10%).
DECREASE = 0.9
#: Batches kept to measure the p99 of batch times.
WINDOW = 20
#: A size must be this much slower per input than a smaller one to count as worse.
WORSE = 0.10
#: Batches the controller waits after a back-off before growing again.
HOLD_AFTER_DECREASE, HOLD_AFTER_STEP_BACK = 10, 200


class Rejected(Exception):
    """A request the server refuses at once: ``status`` 429 (queue full) or 503 (deadline, shutdown)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.status, self.reason, self.retry_after = status, reason, retry_after


@dataclass
class BatchController:
    """The adaptive batch size (see the module docstring)."""

    slo: float
    max_batch: int
    fixed: int | None = None
    _limit: float = 1.0
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))   # since the last change
    _times: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))    # for estimates: never cleared
    _per_input: dict[int, deque[float]] = field(default_factory=dict)
    _batches: int = 0
    _hold_until: int = 0

    def __post_init__(self) -> None:
        if self.fixed is not None:
            self._limit = float(self.fixed)

    @property
    def limit(self) -> int:
        """The most inputs the next batch may take."""
        return self.fixed if self.fixed is not None else max(1, min(self.max_batch, int(self._limit)))

    @property
    def budget(self) -> float:
        """The batch time the limit keeps under: 40% of the objective (an input may wait for
        the batch in flight, then run in its own, and the server's own time comes on top)."""
        return self.slo * BUDGET_FRACTION

    def fastest_seconds(self) -> float:
        """The least time an input can take: the cheapest median per-input time measured at any
        size (0 before any is measured).  A lower bound, so that refusing by it never refuses
        what could have made it (and a stale estimate cannot refuse everything forever)."""
        costs = [c for s in self._per_input if (c := self._cost(s)) is not None]
        return min(costs, default=0.0)

    def batch_seconds(self) -> float:
        """The time a batch at the limit takes: the slowest of the recent batches (0 before
        any), so that admission holds the objective at the p99 of answers, not the p90."""
        return max(self._times, default=0.0)

    def observe(self, size: int, seconds: float, *, full: bool) -> None:
        """Account a batch of ``size`` inputs that took ``seconds``; ``full``: it took the whole limit."""
        self._batches += 1
        self._recent.append(seconds)
        self._times.append(seconds)
        self._per_input.setdefault(size, deque(maxlen=5)).append(seconds / size)
        if self.fixed is not None:
            return
        if self._p99() > self.budget:
            self._limit = max(1.0, min(self._limit * DECREASE, self._limit - 1))
            self._recent.clear()
            self._hold_until = self._batches + HOLD_AFTER_DECREASE
        elif full and self._batches >= self._hold_until and self._cost(size) is not None:
            better = self._more_efficient_size(size)  # each size is measured (3 batches) before growing past it
            if better is not None:
                self._limit = float(better)
                self._hold_until = self._batches + HOLD_AFTER_STEP_BACK
            else:
                self._limit = min(float(self.max_batch), self._limit + 1)

    def _p99(self) -> float:
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0

    def _cost(self, size: int) -> float | None:
        samples = self._per_input.get(size)
        return statistics.median(samples) if samples and len(samples) >= 3 else None

    def _more_efficient_size(self, size: int) -> int | None:
        """A smaller size clearly cheaper per input than ``size`` (the cheapest), else None."""
        cost = self._cost(size)
        if cost is None:
            return None
        smaller = {s: c for s in self._per_input if s < size and (c := self._cost(s)) is not None}
        if not smaller:
            return None
        best = min(smaller, key=lambda s: smaller[s])
        return best if cost > smaller[best] * (1 + WORSE) else None


@dataclass
class Outcome:
    """What the worker made of one input: its prediction (or refusal) and where its time went."""

    prediction: dict[str, Any] | None
    version: int
    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    batch_size: int = 0
    error: Rejected | None = None
    failure: str | None = None      # the network failed: an internal error, reported as such


@dataclass(eq=False)
class Job:
    """One input waiting for the network; ``token`` is the caller's, handed back with the outcome."""

    predictor: Predictor
    array: np.ndarray
    arrival: float
    deadline: float
    token: Any = None


class ModelQueue:
    """A bounded queue of one model's inputs and the worker thread that batches them."""

    def __init__(self, model: str, controller: BatchController, *, max_queue: int, max_delay: float,
                 on_done: Callable[[list[tuple[Job, Outcome]]], None], metrics: ServerMetrics | None = None) -> None:
        self.model, self.controller = model, controller
        self.max_queue, self.max_delay = max_queue, max_delay
        self.on_done, self.metrics = on_done, metrics
        self._jobs: deque[Job] = deque()
        self._warm_ups: deque[tuple[Predictor, threading.Event]] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._in_flight_since: float | None = None
        self._thread = threading.Thread(target=self._work, name=f"mallard-batcher-{model}", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._jobs)

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue a request's inputs, all or none; Rejected when the queue is full or the
        deadline cannot be met."""
        with self._cond:
            self._admit(len(jobs), min(job.deadline for job in jobs))
            self._jobs.extend(jobs)
            self._cond.notify()
        self._gauge()

    def check(self, inputs: int, deadline: float) -> None:
        """Rejected if ``inputs`` inputs with ``deadline`` would be refused now (nothing is queued):
        the server asks before it decodes a request, so a refusal costs no decoding."""
        with self._cond:
            self._admit(inputs, deadline)

    def _admit(self, inputs: int, deadline: float) -> None:
        now = time.monotonic()
        if self._stopped:
            raise Rejected(503, "stopping", "the server is shutting down", 1.0)
        if len(self._jobs) + inputs > self.max_queue:
            raise Rejected(429, "queue_full", f"model {self.model} has {len(self._jobs)} inputs queued (at most "
                           f"{self.max_queue}); retry later", self._wait(now, len(self._jobs)))
        wait = self._wait(now, len(self._jobs) + inputs - 1)
        idle = not self._jobs and self._in_flight_since is None  # a probe: the estimate may be stale
        if now + wait > deadline and not idle:
            raise Rejected(503, "deadline", f"model {self.model} cannot answer within the deadline "
                           f"({(deadline - now) * 1000:.0f} ms left, about {wait * 1000:.0f} ms needed); retry "
                           "later", wait - (deadline - now))

    def _wait(self, now: float, position: int) -> float:
        """Estimated time until the input at ``position`` (0: next) has its answer."""
        batch = self.controller.batch_seconds()
        in_flight = max(0.0, batch - (now - self._in_flight_since)) if self._in_flight_since is not None else 0.0
        return in_flight + (position // self.controller.limit + 1) * batch

    def warm(self, predictor: Predictor, timeout: float = 60.0) -> None:
        """Run ``predictor`` once on the worker's own thread (torch sets up its threads and
        kernels per calling thread), before any request reaches it; returns when done."""
        done = threading.Event()
        with self._cond:
            self._warm_ups.append((predictor, done))
            self._cond.notify()
        done.wait(timeout)

    def close(self, reason: str = "the server is shutting down") -> None:
        """Stop the worker; inputs still queued are refused (503) with ``reason``."""
        with self._cond:
            self._stopped = True
            left = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        self._thread.join(timeout=30)
        refused = Rejected(503, "stopping", reason, 1.0)
        if left:
            self.on_done([(job, Outcome(None, job.predictor.version.version, error=refused)) for job in left])

    # The worker -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self.on_done(self._run(batch))
            with self._cond:
                self._in_flight_since = None

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while (not self._jobs or self._warm_ups) and not self._stopped:
                if self._warm_ups:  # a new version first: a swap waits for it
                    self._warm_up(*self._warm_ups.popleft())
                    continue
                self._cond.wait()
            if self._stopped:
                return None
            limit = self.controller.limit
            fill_by = self._jobs[0].arrival + self.max_delay
            while len(self._jobs) < limit and not self._stopped and (left := fill_by - time.monotonic()) > 0:
                self._cond.wait(left)
            taken = [self._jobs.popleft() for _ in range(min(limit, len(self._jobs)))]
            self._in_flight_since = time.monotonic()
        self._gauge()
        return taken

    def _warm_up(self, predictor: Predictor, done: threading.Event) -> None:
        self._cond.release()  # requests may queue meanwhile
        try:
            predictor.warm_up()
        except Exception:  # the loader reports a version that cannot predict; nothing to add here
            pass
        finally:
            self._cond.acquire()
            done.set()

    def _run(self, jobs: list[Job]) -> list[tuple[Job, Outcome]]:
        started = time.monotonic()
        limit = self.controller.limit
        done: list[tuple[Job, Outcome]] = []
        live: dict[tuple[int, tuple[int, ...]], list[Job]] = {}
        finish = started + self.controller.fastest_seconds()
        for job in jobs:
            if job.deadline < finish:  # it would be answered late: refuse it now rather than spend the network on it
                late = Rejected(503, "deadline", f"the deadline passes before the input, queued in model {self.model}'s "
                                "queue, could be answered; retry later", self.controller.batch_seconds())
                done.append((job, Outcome(None, job.predictor.version.version, error=late)))
                self._count_rejection("deadline")
            else:
                live.setdefault((id(job.predictor), job.array.shape), []).append(job)
        for group in live.values():
            done += self._predict(group, limit)
        return done

    def _predict(self, group: list[Job], limit: int) -> list[tuple[Job, Outcome]]:
        predictor = group[0].predictor
        version = predictor.version.version
        began = time.monotonic()
        try:
            predictions = predictor.predict(np.stack([job.array for job in group]))
        except Exception as e:  # the network failed: answer every input, keep the worker alive
            message = f"model {self.model} version {version} failed on a batch of {len(group)}: {e}"
            return [(job, Outcome(None, version, failure=message)) for job in group]
        seconds = time.monotonic() - began
        self.controller.observe(len(group), seconds, full=len(group) >= limit)
        if self.metrics is not None:
            self.metrics.compute.labels(model=self.model).observe(seconds)
            self.metrics.batch_size.labels(model=self.model).observe(len(group))
            self.metrics.batch_limit.labels(model=self.model).set(self.controller.limit)
        return [(job, Outcome(predictions.row(i), version, queue_seconds=began - job.arrival,
                              compute_seconds=seconds, batch_size=len(group)))
                for i, job in enumerate(group)]

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(model=self.model).set(len(self._jobs))

    def _count_rejection(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(model=self.model, reason=reason).inc()
