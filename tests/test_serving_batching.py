"""The server's parts in-process, on real models and a real DuckDB: the adaptive batch-size
controller on measured-time sequences, the queue and its worker thread, the prediction cache
and the traffic log's bounded buffer."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import engine
from engine.inference.model_catalog import current_version
from engine.serving.batching import BatchController, Job, ModelQueue, Outcome, Rejected
from engine.serving.cache import PredictionCache
from engine.serving.predictor import Predictor
from engine.serving.traffic_log import TrafficLog
from tests.serving_models import CREATE_FARES, expected_class, sum_sign_weights, synthetic_rows


def cpu_like(size: int) -> float:
    """Seconds of a batch on a CPU where batching gains up to 4, then costs (MobileNetV2-like)."""
    per_image = {1: 0.0093, 2: 0.0075, 3: 0.0065, 4: 0.0058, 5: 0.0062, 6: 0.0066}.get(size, 0.0070 + 0.0001 * size)
    return per_image * size


def settle(controller: BatchController, timing, batches: int = 400) -> int:
    for _ in range(batches):
        size = controller.limit
        controller.observe(size, timing(size), full=True)
    return controller.limit


def test_the_limit_grows_while_batches_fit_the_budget_and_shrinks_when_they_do_not():
    gpu_like = lambda size: 0.002 + 0.0002 * size  # noqa: E731  batching pays all the way
    assert settle(BatchController(slo=0.050, max_batch=512), gpu_like) == pytest.approx(90, abs=12)  # 0.020 s budget
    assert settle(BatchController(slo=0.050, max_batch=32), gpu_like) == 32   # the configured maximum holds
    tight = BatchController(slo=0.050, max_batch=64)
    settle(tight, gpu_like, 300)
    high = tight.limit
    for _ in range(3):
        tight.observe(tight.limit, 0.040, full=True)   # the machine slowed down: above the 20 ms budget
    assert tight.limit <= int(high * 0.9 ** 3) + 1


def test_on_a_cpu_the_limit_settles_at_the_most_efficient_size_not_the_largest():
    controller = BatchController(slo=0.100, max_batch=64)  # a loose objective: latency alone would allow ~8
    final = settle(controller, cpu_like)
    assert final in (3, 4, 5), final


def test_batches_that_do_not_fill_never_grow_the_limit():
    controller = BatchController(slo=0.050, max_batch=64)
    for _ in range(50):
        controller.observe(1, 0.001, full=False)
    assert controller.limit == 1


def test_a_fixed_size_never_moves():
    controller = BatchController(slo=0.050, max_batch=64, fixed=8)
    settle(controller, lambda size: 1.0)
    assert controller.limit == 8


@pytest.fixture
def fares(tmp_path):
    with engine.connect(autocommit=True, progress="off") as con:
        con.execute(CREATE_FARES, [str(sum_sign_weights(tmp_path / "fares.safetensors"))])
        yield Predictor.load(con.session, current_version(con.session, "fares"))


class Collector:
    def __init__(self) -> None:
        self.outcomes: dict[int, Outcome] = {}
        self.done = threading.Condition()

    def __call__(self, results: list[tuple[Job, Outcome]]) -> None:
        with self.done:
            for job, outcome in results:
                self.outcomes[job.token] = outcome
            self.done.notify_all()

    def wait(self, n: int) -> dict[int, Outcome]:
        with self.done:
            assert self.done.wait_for(lambda: len(self.outcomes) >= n, timeout=30)
        return self.outcomes


def test_the_queue_batches_concurrent_inputs_and_answers_each_with_its_own_prediction(fares):
    collected = Collector()
    queue = ModelQueue("fares", BatchController(0.5, 16), max_queue=1000, max_delay=0.02, on_done=collected)
    values = synthetic_rows(200, seed=4)
    try:
        def submit(start: int) -> None:
            for i in range(start, start + 50):
                now = time.monotonic()
                queue.submit([Job(fares, values[i], now, now + 30, token=i)])

        threads = [threading.Thread(target=submit, args=(k * 50,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = collected.wait(200)
    finally:
        queue.close()
    assert [outcomes[i].prediction["class_id"] for i in range(200)] == expected_class(values).tolist()
    assert max(o.batch_size for o in outcomes.values()) > 1
    assert all(o.queue_seconds >= 0 and o.compute_seconds > 0 for o in outcomes.values())


def test_a_full_queue_and_an_unmeetable_deadline_are_refused_and_late_inputs_are_dropped(fares):
    collected = Collector()
    # a fixed batch of 4 and a 0.3 s queue delay: a lone input waits 0.3 s for company
    queue = ModelQueue("fares", BatchController(0.05, 4, fixed=4), max_queue=3, max_delay=0.3, on_done=collected)
    try:
        now = time.monotonic()
        with pytest.raises(Rejected) as full:
            queue.submit([Job(fares, np.zeros(3), now, now + 10, token=i) for i in range(4)])
        assert full.value.status == 429 and full.value.reason == "queue_full"
        queue.submit([Job(fares, np.zeros(3), now, now + 0.1, token=0)])   # idle: admitted
        queue.controller.observe(4, 0.2, full=True)                         # batches take 0.2 s
        with pytest.raises(Rejected) as late:                               # not idle: the estimate holds
            queue.submit([Job(fares, np.zeros(3), time.monotonic(), time.monotonic() + 0.05, token=1)])
        assert late.value.status == 503 and late.value.reason == "deadline" and late.value.retry_after > 0
        dropped = collected.wait(1)[0]  # its 0.1 s deadline passed while the worker waited to fill the batch
        assert dropped.error is not None and dropped.error.status == 503 and dropped.prediction is None
    finally:
        queue.close()


def test_an_input_that_cannot_make_its_deadline_is_refused_at_batch_start_not_answered_late(fares):
    controller = BatchController(0.05, 8, fixed=1)
    assert controller.fastest_seconds() == 0  # nothing measured: nothing is refused by it
    for size, seconds in [(1, 0.030)] * 3 + [(4, 0.080)] * 3:
        controller.observe(size, seconds, full=True)
    assert controller.fastest_seconds() == pytest.approx(0.020)  # the cheapest per input (at 4), a lower bound
    collected = Collector()
    queue = ModelQueue("fares", controller, max_queue=100, max_delay=0.0, on_done=collected)
    try:
        now = time.monotonic()
        # 10 ms left: even the fastest input (20 ms) would answer late, so the worker refuses it;
        # 10 s left: answered
        queue.submit([Job(fares, np.zeros(3), now, now + 0.010, token=0), Job(fares, np.zeros(3), now, now + 10, token=1)])
        outcomes = collected.wait(2)
    finally:
        queue.close()
    assert outcomes[0].prediction is None and outcomes[0].error is not None and outcomes[0].error.reason == "deadline"
    assert outcomes[1].prediction is not None


def test_close_refuses_what_is_still_queued(fares):
    collected = Collector()
    queue = ModelQueue("fares", BatchController(0.05, 1, fixed=1), max_queue=100, max_delay=0.0, on_done=collected)
    now = time.monotonic()
    queue.submit([Job(fares, np.zeros(3), now, now + 60, token=i) for i in range(50)])
    queue.close()
    outcomes = collected.wait(50)
    assert {o.error.status for o in outcomes.values() if o.error is not None} <= {503}
    assert len(outcomes) == 50


def test_the_cache_is_bounded_in_bytes_and_forgets_the_least_recently_used():
    cache = PredictionCache(max_bytes=2000)
    for i in range(100):
        cache.put(("m", 1, f"{i:064d}"), {"label": "x", "class_id": 1, "score": 0.5})
        cache.get(("m", 1, f"{0:064d}"))  # the first one keeps being used
    assert cache.bytes <= 2000 and 0 < len(cache) < 100
    assert cache.get(("m", 1, f"{0:064d}")) is not None and cache.get(("m", 1, f"{1:064d}")) is None
    cache.forget_model("m")
    assert len(cache) == 0 and cache.bytes == 0


def test_the_traffic_log_never_blocks_and_counts_what_it_drops(tmp_path):
    dropped: list[int] = []
    with engine.connect(tmp_path / "log.duckdb", autocommit=True) as con:
        log = TrafficLog(con, "served", capacity=5, flush_rows=1000, flush_seconds=60, on_dropped=dropped.append)
        started = time.perf_counter()
        kept = [log.append("fares", {"request_id": str(i), "input_index": 0, "a": float(i)}) for i in range(12)]
        assert time.perf_counter() - started < 1.0
        assert kept == [True] * 5 + [False] * 7 and sum(dropped) == 7 and log.dropped == 7
        assert log.flush()
        assert con.execute("SELECT count(*), sum(a) FROM served.fares").fetchone() == (5, 10.0)
        log.append("fares", {"request_id": "x", "input_index": 0, "a": 1.0, "d": 2.0})  # a new input column
        log.close()
        assert con.execute("SELECT count(*), count(d) FROM served.fares").fetchone() == (6, 1)
