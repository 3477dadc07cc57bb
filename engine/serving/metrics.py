"""The server's Prometheus metrics (``GET /metrics``), in a registry of the server's own.

Requests by endpoint and status code; per model: request latency, the server's own work per
request (HTTP body, JSON, decoding, hashing: everything but waiting and the network),
queue time against compute time, batch sizes, the adaptive batch limit, queue depth,
cache hits and misses, rejections by reason; the traffic log's written and dropped rows.

>>> metrics = ServerMetrics()
>>> metrics.requests.labels(endpoint="predict", model="m", code="200").inc()
>>> metrics.batch_size.labels(model="m").observe(4)
>>> text = metrics.render().decode()
>>> 'mallard_requests_total{code="200",endpoint="predict",model="m"} 1.0' in text
True
>>> 'mallard_batch_size_bucket{le="4.0",model="m"} 1.0' in text
True
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Latency buckets (seconds): fine around a 50 ms objective.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
#: The server's own work per request is far below the model's.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """Every metric the server exports, registered in its own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mallard_requests", "HTTP requests by endpoint, model and status code",
                                ["endpoint", "model", "code"], registry=r)
        self.latency = Histogram("mallard_request_seconds", "Time from a predict request's arrival to its answer",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("mallard_overhead_seconds", "The server's own work per predict request (body, "
                                  "JSON, base64, image decoding, hashing, cache, answer): all but queue and compute",
                                  ["model"], buckets=OVERHEAD_BUCKETS, registry=r)
        self.queue = Histogram("mallard_queue_seconds", "Time an input waited in its model's queue",
                               ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram("mallard_compute_seconds", "Time of one batch in the network",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("mallard_batch_size", "Inputs per network call", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_limit = Gauge("mallard_batch_limit", "The adaptive batch size limit now", ["model"], registry=r)
        self.queue_depth = Gauge("mallard_queue_depth", "Inputs waiting in a model's queue", ["model"], registry=r)
        self.served_version = Gauge("mallard_model_version", "The version a model's requests get by default",
                                    ["model"], registry=r)
        self.cache_hits = Counter("mallard_cache_hits", "Inputs answered from the prediction cache", ["model"],
                                  registry=r)
        self.cache_misses = Counter("mallard_cache_misses", "Inputs not in the prediction cache", ["model"], registry=r)
        self.cache_bytes = Gauge("mallard_cache_bytes", "Bytes the prediction cache holds", registry=r)
        self.rejected = Counter("mallard_rejected", "Predict requests refused at once, by reason", ["model", "reason"],
                                registry=r)
        self.log_rows = Counter("mallard_log_rows", "Rows written to the traffic log", registry=r)
        self.log_dropped = Counter("mallard_log_dropped_rows", "Rows the traffic log dropped (its buffer was full)",
                                   registry=r)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
