"""The search for the batch size at which a model predicts fastest per row.

Batching pays off differently per model and machine: MobileNetV2 on two CPU threads is
fastest per image at about 4-8 images a batch and slower beyond, a small numeric network
keeps gaining up to thousands of rows, a GPU up to hundreds of images.  So the offline
``predict(...)`` does not guess: it runs the real batches of the query at sizes ``start``,
``start * growth``, ``start * growth**2``, ... (each measured over at least
:data:`MEASURE_SECONDS` of work), growing until two sizes in a row are no faster per row than the best before them (one noisy
size does not end the search), and keeps the fastest size for the rest (no work is wasted:
every measured batch is a batch of the query).  Numeric rows start at 1,024 and grow 4x (a call
costs about 100 microseconds whatever the model: smaller batches never pay).  The first batch at each size is not measured: a new shape costs
the kernels' set-up once (oneDNN creates its primitives per shape), which says nothing of
the size's speed.

>>> search = BatchSizeSearch(limit=64)
>>> costs = {1: 10.0, 2: 6.0, 4: 4.0, 8: 4.4, 16: 4.2}          # seconds per row at each size
>>> while not search.done:
...     size = search.next_size()
...     search.record(size, costs[size] * size * (100 if size not in search.warmed else 1))
>>> search.best
4
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Work measured at each size before judging it (seconds), over at least MIN_SAMPLES batches.
MEASURE_SECONDS = 0.02
#: Batches measured at each size at least, and at most.
MIN_SAMPLES, MAX_SAMPLES = 3, 16
#: A larger size must be this much faster per row to count as better (measurement noise).
TOLERANCE = 0.03


@dataclass
class BatchSizeSearch:
    """Search over growing batch sizes up to ``limit`` by measured time per row.

    A size's time per row is the least over its measured batches: on a shared machine a
    batch is only ever slowed down by others, never sped up.
    """

    limit: int
    start: int = 1
    growth: int = 2
    samples: dict[int, list[float]] = field(default_factory=dict)   # seconds per row of each measured batch
    warmed: set[int] = field(default_factory=set)
    current: int = 0
    done: bool = False
    misses: int = 0          # sizes in a row no faster than the best before them

    def __post_init__(self) -> None:
        self.limit = max(1, int(self.limit))
        self.current = max(1, min(int(self.start), self.limit))
        if self.current == self.limit:
            self.done = True

    def next_size(self) -> int:
        """The size of the next batch to run."""
        return self.best if self.done else self.current

    def record(self, size: int, seconds: float) -> None:
        """Account a batch of ``size`` rows that took ``seconds``; move on when the size is measured."""
        if self.done or size != self.current:
            return
        if size not in self.warmed:  # the shape's first call sets up its kernels
            self.warmed.add(size)
            return
        samples = self.samples.setdefault(size, [])
        samples.append(seconds / size)
        measured = sum(samples) * size
        if len(samples) < MIN_SAMPLES or (measured < MEASURE_SECONDS and len(samples) < MAX_SAMPLES):
            return
        before = [self.per_row(s) for s in self.samples if s != size]
        self.misses = self.misses + 1 if before and self.per_row(size) > min(before) * (1 - TOLERANCE) else 0
        if self.misses >= 2 or size == self.limit:
            self.done = True  # no longer clearly faster per row: the fastest size measured wins
        else:
            self.current = min(size * self.growth, self.limit)

    def per_row(self, size: int) -> float:
        """Seconds per row at ``size`` (its fastest measured batch)."""
        return min(self.samples[size])

    @property
    def best(self) -> int:
        """The fastest size measured, the largest of those within :data:`TOLERANCE` of it (a tie
        goes to fewer calls: each call also costs time the measurement does not see, in reading
        and assembling its rows); the size being measured while none is."""
        if not self.samples:
            return self.current
        fastest = min(self.per_row(s) for s in self.samples)
        return max(s for s in self.samples if self.per_row(s) <= fastest * (1 + TOLERANCE))


#: Rounds of a block of a :class:`ThreadTrial`: the first warms its count, the rest are measured.
THREAD_ROUNDS = 5
#: The trial's blocks: all threads (0), one, one, all (drift over the trial hits both alike).
THREAD_ORDER = (0, 1, 1, 0)


@dataclass
class ThreadTrial:
    """Whether a numeric network predicts its rows faster on one torch thread or on ``threads``.

    A small network's matrix products take under a millisecond a batch; split over the cores,
    each call waits for threads that DuckDB's scan keeps busy producing the next rows (an
    8-64-2 MLP over 1M rows on two cores: about 190 ms a statement on two torch threads, 150
    ms on one, with the scan going on beside it).  A large network gains from every core.  So
    the counts are measured on the statement's own rounds (read, decode, predict), in blocks of
    :data:`THREAD_ROUNDS` rounds (one round at a time would not do: a round after a slow one
    finds the scan's next rows ready) ordered all, one, one, all, as seconds per row over the
    blocks, each block's first round not counted; a tie (within :data:`TOLERANCE`) goes to more
    threads.  The trial's rounds are the query's own: no work is wasted.

    >>> trial = ThreadTrial(threads=2)
    >>> while not trial.done:
    ...     n = trial.next_threads()
    ...     trial.record(n, 1000, {1: 1.3e-3, 2: 1.7e-3}[n])
    >>> trial.best
    1
    """

    threads: int
    rows: dict[int, int] = field(default_factory=dict)          # measured rows at each count
    seconds: dict[int, float] = field(default_factory=dict)     # and their seconds
    rounds: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.done = self.threads <= 1

    def next_threads(self) -> int:
        """The thread count of the next round."""
        if self.done:
            return self.best
        return THREAD_ORDER[self.rounds // THREAD_ROUNDS] or self.threads

    def record(self, threads: int, rows: int, seconds: float) -> None:
        """Account a round of ``rows`` rows run on ``threads`` threads that took ``seconds``."""
        if self.done or rows <= 0 or threads != self.next_threads():
            return
        if self.rounds % THREAD_ROUNDS:  # each block's first round warms its count (a thread pool may start)
            self.rows[threads] = self.rows.get(threads, 0) + rows
            self.seconds[threads] = self.seconds.get(threads, 0.0) + seconds
        self.rounds += 1
        self.done = self.rounds >= len(THREAD_ORDER) * THREAD_ROUNDS

    def per_row(self, threads: int) -> float:
        """Seconds per row measured at ``threads`` threads."""
        return self.seconds[threads] / self.rows[threads]

    @property
    def best(self) -> int:
        """The faster count (all threads until both are measured)."""
        if not self.rows.get(1) or not self.rows.get(self.threads):
            return self.threads
        return 1 if self.per_row(1) < self.per_row(self.threads) * (1 - TOLERANCE) else self.threads
