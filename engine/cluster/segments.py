"""Inference scans across the cluster: the frames to compute, cut into segments at keyframes,
each decoded and run through the model in a Ray task.

The driver cuts the frame ids a scan must compute (per frame size) at keyframes, so each
segment starts where decoding can start; for a stream-stored table it sends the segment's
compressed packets (a pixels table: its pixels), and the model as its architecture name and
safetensors weights (never a pickled module).  A task (:func:`run_segment`) decodes the
segment and runs it through the same runner a local scan uses (full, exact or approximate),
the segment's first frame flagged as a segment start, so the incremental runner computes it
in full as a base frame: a segment's answers never depend on another segment, which is what
lets segments run anywhere, in any order, and be retried.  Results come back as Arrow; the
driver writes them through the scan's own path (the result cache, in one transaction).

In full mode every frame stands alone, so a segment longer than :data:`FULL_SEGMENT_FRAMES`
is cut further into pieces (each decodes from its keyframe, about 1 ms a frame against 30 ms
of inference): a clip whose keyframes are far apart (vtest.avi: every 250 frames) would
otherwise keep one node busy and the others idle.  Exact and approximate modes keep whole
segments (their answers depend on where a segment starts).

>>> import numpy as np
>>> [s.tolist() for s in cut_segments(np.array([3, 4, 5, 9, 10]), np.array([False, False, True, False, True]))]
[[3, 4], [5, 9], [10]]
>>> [len(s) for s in scan_segments(np.arange(120), np.arange(120) % 250 == 0, "full")]
[30, 30, 30, 30]
>>> [len(s) for s in scan_segments(np.arange(120), np.arange(120) % 250 == 0, "exact")]
[120]
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.cluster.connection import connect, session_cluster
from engine.cluster.tasks import BASE_MODULES, RETRIES, TaskPlace, ordered_results, require_modules, task_place
from engine.inference.frame_results import FrameResults, float_lists, matrix

if TYPE_CHECKING:
    from engine.inference.runners import FrameDecision
    from engine.inference.scan import PreparedScan
    from engine.session import Session

#: Full-mode segments longer than this many frames are cut into pieces (see the module docstring).
FULL_SEGMENT_FRAMES = 32

#: Modules a segment task imports beyond Mallard's own.
INFERENCE_MODULES = {"torch": "torch (the models)", "av": "av (PyAV: decoding the video)"}


@dataclass(frozen=True)
class ModelPayload:
    """A model as it travels to a task: architecture, classes, normalization, safetensors weights."""

    architecture: str
    num_classes: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: bytes
    weights_sha256: str
    module: str  # where the architecture is defined (imported on the node first)


@dataclass(frozen=True)
class Segment:
    """One segment: its frame ids (the first one starts it) and what to decode them from."""

    index: int
    frame_ids: np.ndarray
    packets: pa.Table | None       # a stream's packets first..last (decoding order), or None
    pixels: np.ndarray | None      # a pixels table's frames (n, H, W, 3), or None


@dataclass(frozen=True)
class SegmentRun:
    """Where a segment ran and what it was: what EXPLAIN ANALYZE shows of a cluster scan."""

    index: int
    first_frame: int
    last_frame: int
    frames: int
    node_address: str
    node_id: str
    pid: int
    seconds: float


@dataclass
class SegmentResult:
    """What a task returns: the segment's results as Arrow, the runner's decisions, where it ran."""

    index: int
    results: pa.Table
    decisions: list[FrameDecision]
    place: TaskPlace
    seconds: float


def cut_segments(frame_ids: np.ndarray, keyframes: np.ndarray) -> list[np.ndarray]:
    """Ascending ``frame_ids`` split before each keyframe (the first id always starts one)."""
    starts = np.flatnonzero(np.asarray(keyframes, dtype=bool))
    starts = starts[starts > 0]
    return [part for part in np.split(np.asarray(frame_ids, dtype=np.int64), starts) if len(part)]


def scan_segments(frame_ids: np.ndarray, keyframes: np.ndarray, mode: str) -> list[np.ndarray]:
    """The segments a scan in ``mode`` sends: cut at keyframes, and in full mode into pieces of
    at most :data:`FULL_SEGMENT_FRAMES` frames (as even as they come)."""
    parts = cut_segments(frame_ids, keyframes)
    if mode != "full":
        return parts
    return [piece for part in parts for piece in np.array_split(part, -(-len(part) // FULL_SEGMENT_FRAMES))]


def results_arrow(results: FrameResults) -> pa.Table:
    """Frame results as an Arrow table (logits and features as float lists)."""
    return pa.table({
        "frame_id": pa.array(results.frame_ids), "logits": float_lists(results.logits),
        "features": float_lists(results.features), "kind": pa.array(results.kinds.tolist(), pa.string()),
        "macs": pa.array(results.macs), "macs_full": pa.array(results.macs_full),
    })


def arrow_results(table: pa.Table) -> FrameResults:
    """The frame results of :func:`results_arrow`'s table."""
    logits = table.column("logits").combine_chunks()
    features = table.column("features").combine_chunks()
    n = table.num_rows
    return FrameResults.from_arrays(
        table.column("frame_id").to_numpy(), matrix(logits, len(logits.values) // max(n, 1)),
        matrix(features, len(features.values) // max(n, 1)), table.column("kind").to_pylist(),
        table.column("macs").to_numpy(), table.column("macs_full").to_numpy())


_NETWORKS: dict[str, Any] = {}


def _network(model: ModelPayload) -> Any:
    """The model's network in this worker process (built once per weights)."""
    import importlib

    from engine.extensions import build_network
    from engine.inference.weights import from_safetensors

    key = f"{model.architecture}:{model.num_classes}:{model.weights_sha256}"
    if key not in _NETWORKS:
        importlib.import_module(model.module)
        network = build_network(model.architecture, num_classes=model.num_classes)
        network.load_state_dict(from_safetensors(model.weights), strict=True)
        _NETWORKS.clear()
        _NETWORKS[key] = network.eval()
    return _NETWORKS[key]


def run_segment(model: ModelPayload, record: Any, mode: str, config: Any, size: tuple[int, int], batch_size: int,
                segment: Segment) -> SegmentResult:
    """The task: decode one segment and run it through the mode's runner (see the module docstring)."""
    import torch

    from engine.inference.runners import FullRunner, IncrementalRunner

    started = time.perf_counter()
    torch.set_num_threads(1)  # one CPU per task, as the task asked of Ray
    network = _network(model)
    runner: Any = FullRunner(network, model.mean, model.std) if mode == "full" else \
        IncrementalRunner(network, model.mean, model.std, mode, config, None)
    frames = _frames(record, segment, size)
    parts, decisions = [], []
    for start in range(0, len(segment.frame_ids), batch_size):
        ids = segment.frame_ids[start:start + batch_size]
        flags = np.zeros(len(ids), dtype=bool)
        flags[0] = start == 0
        results, made = runner.run(ids, frames[start:start + batch_size], segment_start=flags)
        parts.append(results)
        decisions += made
    combined = FrameResults.concat(parts)
    return SegmentResult(segment.index, results_arrow(combined), decisions, task_place(), time.perf_counter() - started)


def _frames(record: Any, segment: Segment, size: tuple[int, int]) -> np.ndarray:
    """The segment's frames (n, H, W, 3) uint8: its pixels, or decoded from its packets."""
    if segment.pixels is not None:
        return segment.pixels
    from engine.video_stream.counters import DecodeCounters
    from engine.video_stream.decoder import FrameDecoder, to_rgb

    assert segment.packets is not None
    packets = segment.packets
    first = int(packets.column("packet")[0].as_py())
    held_last = first + packets.num_rows - 1

    def read(a: int, b: int) -> pa.Table:
        return packets.slice(a - first, min(b, held_last) - a + 1)

    height, width = size
    out = np.empty((len(segment.frame_ids), height, width, 3), dtype=np.uint8)
    decoder = FrameDecoder(record, int(record.entry_packet[segment.frame_ids[0]]), DecodeCounters())
    for position, (_, picture) in enumerate(decoder.frames(segment.frame_ids, read)):
        to_rgb(picture, width, height, out[position])
    return out


def model_payload(session: Session, scan: PreparedScan) -> ModelPayload:
    """The scan's model as it travels to the tasks."""
    from engine.extensions import architectures

    version = scan.version
    weights = session.scalar("SELECT weights FROM mallard.model_versions WHERE model = ? AND version = ?",
                             [version.model, version.version])
    factory = architectures()[version.spec.architecture.lower()].factory
    return ModelPayload(version.spec.architecture, version.spec.num_classes, tuple(version.spec.mean),
                        tuple(version.spec.std), bytes(weights), version.weights_sha256,
                        getattr(factory, "__module__", "udfs.architectures"))


def _segments(session: Session, scan: PreparedScan, ids: np.ndarray, size: tuple[int, int]) -> tuple[Any, list[Any]]:
    """(the stream's record or None, a lazy list of Segment makers) for the frames ``ids``."""
    from engine.video_stream.decoder import LOST_AFTER, WINDOW_PAST
    from engine.video_stream.reading import stream_reader
    from engine.video_stream.sources import session_query
    from engine.video_stream.store import read_packets

    frames = scan.frames
    parts = scan_segments(ids, frames.keyframes(session, ids), scan.mode)
    if frames.stream_id is None:
        return None, [lambda i=i, part=part: Segment(i, part, None, frames.read(session, part, *size))
                      for i, part in enumerate(parts)]
    stream_id = frames.stream_id
    record = stream_reader(session).record(session, stream_id)

    def packets(i: int, part: np.ndarray) -> Segment:
        first = int(record.entry_packet[part[0]])
        last = min(record.packet_count - 1, int(record.packet[part].max()) + LOST_AFTER + WINDOW_PAST)
        table = read_packets(lambda q, p: session_query(session, q, p), stream_id, first, last)
        return Segment(i, part, table, None)

    return record, [lambda i=i, part=part: packets(i, part) for i, part in enumerate(parts)]


def cluster_segments(session: Session, scan: PreparedScan, ids: np.ndarray, height: int,
                     width: int) -> Iterator[tuple[np.ndarray, FrameResults, list[FrameDecision], SegmentRun]] | None:
    """The scan's frames ``ids`` (all height x width) computed on the session's cluster, a segment
    at a time in frame order, with where each ran; None without a cluster."""
    address = session_cluster(session)
    if address is None or len(ids) == 0:
        return None
    ray = connect(address)
    model = model_payload(session, scan)
    what = f"the inference scan of {scan.version.model} over {scan.frames.name}"
    require_modules(ray, {**BASE_MODULES, **INFERENCE_MODULES, model.module: f"architecture {model.architecture}"},
                    what)
    record, makers = _segments(session, scan, ids, (height, width))
    task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(run_segment)
    shared = [ray.put(model), ray.put(record)]
    in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def submit(make: Any) -> Any:
        return task.options(scheduling_strategy="SPREAD").remote(*shared, scan.mode, scan.config, (height, width),
                                                                scan.batch_size, make())

    def results() -> Iterator[tuple[np.ndarray, FrameResults, list[FrameDecision], SegmentRun]]:
        for done in ordered_results(ray, submit, makers, what, in_flight):
            computed = arrow_results(done.results)
            place = done.place
            run = SegmentRun(done.index, int(computed.frame_ids[0]), int(computed.frame_ids[-1]), len(computed),
                             place.node_address, place.node_id, place.pid, done.seconds)
            yield computed.frame_ids, computed, done.decisions, run

    return results()


def segment_lines(runs: list[SegmentRun]) -> list[str]:
    """What EXPLAIN ANALYZE shows of the segments a cluster ran: each one and where."""
    if not runs:
        return []
    nodes = sorted({r.node_id for r in runs})
    lines = [f"  cluster segments    {len(runs):>7}   (cut at keyframes; ran on {len(nodes)} "
             f"node{'s' * (len(nodes) != 1)})"]
    for run in sorted(runs, key=lambda r: r.first_frame):
        lines.append(f"    frames {run.first_frame}-{run.last_frame} ({run.frames}) on node {nodes.index(run.node_id) + 1} "
                     f"{run.node_address} ({run.node_id[:8]}), worker pid {run.pid}, {run.seconds:.2f} s")
    return lines


def planned_segment_lines(session: Session, scan: PreparedScan, decisions: list[FrameDecision]) -> list[str]:
    """What EXPLAIN shows of the segments a scan would send to the session's cluster."""
    address = session_cluster(session)
    computed = np.array([d.frame_id for d in decisions if d.kind not in ("cached", "shared")], dtype=np.int64)
    if address is None or len(computed) == 0:
        return []
    keyframes = scan.frames.keyframes(session, computed)
    parts = scan_segments(computed, keyframes, scan.mode)
    pieces = len(parts) > len(cut_segments(computed, keyframes))
    shown = ", ".join(f"{int(p[0])}-{int(p[-1])}" for p in parts[:8]) + (", ..." if len(parts) > 8 else "")
    how = f"cut at keyframes{f' and into pieces of at most {FULL_SEGMENT_FRAMES} frames' if pieces else ''}"
    return [f"  cluster segments    {len(parts):>7}   ({how}, to run on the cluster {address.text}: frames {shown})"]
