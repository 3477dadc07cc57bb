"""The inference scan: one model over one frames table, a step of a planned query
(:class:`engine.planner.steps.ScanStep`).

:meth:`PreparedScan.prepare` validates everything first (model, frames table, frame sizes)
without writing.  :func:`serve_plan` decides, for each frame the scan needs, whether it is
served from the statement script's shared results, from the result cache, or computed:
execution (:func:`execute_scan`) and ``EXPLAIN`` both call it.  Computed frames run in
frame_id order, batched, in the session's ``inference_mode``; new results and the
incremental engine's state are stored in one transaction.  :func:`scan_relation` gives the
results as the Arrow relation the rewritten query reads.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.cluster.segments import cluster_segments
from engine.errors import DataError, OperationalError
from engine.inference.cache import CacheKey, ResultCache, evict_to_limit, forget_replaced_video
from engine.inference.frame_results import FrameResults, relation
from engine.inference.frames import FramesTable, Selection
from engine.inference.model_catalog import ModelVersion, load_network, require_image_model, require_model
from engine.inference.runners import FrameDecision, FullRunner, IncrementalRunner
from engine.inference.settings import incremental_config, mode_key
from engine.inference.state import load_state, save_state
from engine.planner.annotations import ScanRequest

if TYPE_CHECKING:
    from engine.session import Session

#: Where a session keeps the statistics of its recent scans (newest last).
STATS = "inference.scans"
#: Where a session counts frames run through a network (all scans).
BACKBONE_FRAMES = "inference.backbone_frames"
#: Per execute() script: results computed by earlier statements of the script.
SCRIPT_RESULTS = "inference.script_results"


@dataclass
class ScanStats:
    """What one scan did."""

    model: str
    version: int
    table: str
    mode: str
    frames: int = 0          # frames the query needed
    shared: int = 0          # computed by an earlier statement of the same script
    cached: int = 0          # read from the result cache
    computed: int = 0        # run through the network now
    full: int = 0
    incremental: int = 0
    skipped: int = 0
    macs: int = 0
    macs_full: int = 0       # what full inference of the computed frames would cost
    batches: int = 0         # network calls
    seconds: float = 0.0
    network_seconds: float = 0.0  # of which in the network (full) or the incremental engine
    per_frame: list[FrameDecision] = field(default_factory=list, repr=False)
    segments: list[Any] = field(default_factory=list, repr=False)  # SegmentRun of each segment a cluster ran

    def count(self, computed: FrameResults) -> None:
        """Add up what the computed frames were and cost."""
        self.computed = len(computed)
        self.full = int(np.sum(computed.kinds == "full"))
        self.incremental = int(np.sum(computed.kinds == "incremental"))
        self.skipped = int(np.sum(computed.kinds == "skipped"))
        self.macs, self.macs_full = int(computed.macs.sum()), int(computed.macs_full.sum())


@dataclass(frozen=True)
class PreparedScan:
    """A validated scan: everything it needs, nothing written yet."""

    request: ScanRequest
    version: ModelVersion
    frames: FramesTable
    selection: Selection
    mode: str
    config: Any                  # IncrementalConfig for 'exact'/'approximate', else None
    key: CacheKey | None         # None: the frames table has no identity, nothing is cached
    use_cache: bool
    batch_size: int

    @classmethod
    def prepare(cls, session: Session, request: ScanRequest) -> PreparedScan:
        version = require_image_model(require_model(session, request.model), f"{request.model}(frame)")
        frames = FramesTable.resolve(session, request.table, request.frame_column, request.model)
        selection = frames.select(session, request.predicate, request.limit, request.order)
        _check_sizes(version, frames, selection)
        mode = session.settings["inference_mode"]
        config = incremental_config(session) if mode != "full" else None
        key = None
        if frames.video_key is not None:
            key = CacheKey(version.model, version.version, frames.video_key, frames.name, mode_key(mode, config))
        return cls(request, version, frames, selection, mode, config, key,
                   bool(session.settings["inference_cache"]) and key is not None,
                   int(session.settings["inference_batch_size"]))


def _check_sizes(version: ModelVersion, frames: FramesTable, selection: Selection) -> None:
    expected = version.spec.input_size
    if expected is None or len(selection) == 0:
        return
    wrong = np.flatnonzero((selection.heights != expected[0]) | (selection.widths != expected[1]))
    if len(wrong):
        i = wrong[0]
        raise DataError(
            f"model {version.model} takes {expected[0]}x{expected[1]} frames (height x width); frame "
            f"{selection.frame_ids[i]} of {frames.name} is {selection.heights[i]}x{selection.widths[i]} "
            f"({len(wrong)} of {len(selection)} frames differ); LOAD VIDEO ... WITH (width = {expected[1]}, "
            f"height = {expected[0]}) stores frames at the model's size"
        )


@dataclass(frozen=True)
class ServePlan:
    """Where each frame a scan needs comes from (frame ids ascending in each part)."""

    shared: FrameResults        # computed by an earlier statement of the same script
    cached: np.ndarray          # frame ids stored in the result cache
    missing: np.ndarray         # frame ids to compute now


def serve_plan(session: Session, scan: PreparedScan) -> ServePlan:
    """Which frames are shared, cached or to compute (reads no cached values)."""
    wanted = scan.selection.frame_ids
    script = _script_results(session, scan)
    shared = script.select(wanted) if script is not None else FrameResults.empty()
    remaining = np.setdiff1d(wanted, shared.frame_ids, assume_unique=True)
    cached = ResultCache(session, scan.key).cached_ids(remaining) if scan.use_cache and scan.key is not None \
        else np.empty(0, np.int64)
    return ServePlan(shared, cached, np.setdiff1d(remaining, cached, assume_unique=True))


def scan_relation(session: Session, scan: PreparedScan) -> pa.Table:
    """Run the scan and give its results as the relation the rewritten query joins by frame_id."""
    results, stats = execute_scan(session, scan)
    history = session.state.setdefault(STATS, [])
    history.append(stats)
    del history[:-100]
    return relation(results, scan.request.outputs, scan.version.spec.label)


def execute_scan(session: Session, scan: PreparedScan) -> tuple[FrameResults, ScanStats]:
    """Serve or compute every selected frame; store what was computed."""
    started = time.perf_counter()
    stats = ScanStats(scan.version.model, scan.version.version, scan.frames.name, scan.mode,
                      frames=len(scan.selection))
    served = serve_plan(session, scan)
    shared, missing = served.shared, served.missing
    script = _script_results(session, scan)
    cache = ResultCache(session, scan.key) if scan.use_cache and scan.key is not None else None
    cached = cache.read(served.cached, scan.request.outputs) if cache is not None else FrameResults.empty()
    stats.shared, stats.cached = len(shared), len(cached)
    computed = _compute(session, scan, missing, cache, stats) if len(missing) else FrameResults.empty()
    if script is not None and len(computed):
        session.script_state.setdefault(SCRIPT_RESULTS, {})[_script_key(scan)] = FrameResults.concat([script, computed])
    stats.seconds = time.perf_counter() - started
    stats.per_frame += [FrameDecision(int(i), "shared", 0, int(m)) for i, m in zip(shared.frame_ids, shared.macs_full)]
    stats.per_frame += [FrameDecision(int(i), "cached", 0, int(m)) for i, m in zip(cached.frame_ids, cached.macs_full)]
    stats.per_frame.sort(key=lambda d: d.frame_id)
    return FrameResults.concat([shared, cached, computed]), stats


def _compute(session: Session, scan: PreparedScan, missing: np.ndarray, cache: ResultCache | None,
             stats: ScanStats) -> FrameResults:
    writes = not session.read_only and scan.key is not None
    parts: list[FrameResults] = []
    position = np.searchsorted(scan.selection.frame_ids, missing)
    heights, widths = scan.selection.heights[position], scan.selection.widths[position]
    desc = f"{scan.version.model} over {scan.frames.name} ({scan.mode})"
    interrupted = False
    with session.atomic() if writes else nullcontext(), session.progress(len(missing), desc, unit="frame") as bar:
        if writes:
            forget_replaced_video(session, scan.frames.name, scan.key.video_key)  # type: ignore[union-attr]
        for height, width in sorted(set(zip(heights.tolist(), widths.tolist()))):
            ids = missing[(heights == height) & (widths == width)]
            on_cluster = cluster_segments(session, scan, ids, height, width)  # None: computed here
            runner = _runner(session, scan, height, width) if on_cluster is None else None
            batches = _local_batches(session, scan, runner, ids, height, width) if on_cluster is None else on_cluster
            while True:
                if session.cancel.is_set():
                    interrupted = True  # stop; what was computed is complete per frame and is kept
                    break
                started = time.perf_counter()
                step = next(batches, None)
                if step is None:
                    break
                batch_ids, results, decisions, segment = step
                stats.network_seconds += time.perf_counter() - started
                if segment is not None:
                    stats.segments.append(segment)
                stats.per_frame += decisions
                stats.batches += 1
                if cache is not None and writes:
                    cache.store(results)
                parts.append(results)
                bar.update(len(batch_ids))
            if interrupted:
                break
            if isinstance(runner, IncrementalRunner) and runner.persists and writes:  # (none on a cluster)
                save_state(session, _state_key(scan), json.dumps(_config_dict(scan.config)), runner.state_dict(),
                           last_frame_id=int(ids[-1]))
        if writes and cache is not None:
            evict_to_limit(session, _cache_limit(session))
    computed = FrameResults.concat(parts)
    if interrupted:
        session.cancel.clear()
        raise OperationalError(
            f"the inference scan of {scan.version.model} over {scan.frames.name} was interrupted after "
            f"{len(computed)} of {len(missing)} frames; the results computed are kept in the result cache")
    stats.count(computed)
    session.state[BACKBONE_FRAMES] = session.state.get(BACKBONE_FRAMES, 0) + stats.computed - stats.skipped
    return computed


def _local_batches(session: Session, scan: PreparedScan, runner: Any, ids: np.ndarray, height: int,
                   width: int) -> Iterator[tuple[np.ndarray, FrameResults, list[FrameDecision], None]]:
    """The frames ``ids`` computed here, a batch at a time (the cluster's counterpart:
    :func:`engine.cluster.segments.cluster_segments`)."""
    for batch in scan.frames.frame_batches(session, ids, height, width, scan.batch_size):
        # a keyframe starts a segment: the incremental runner computes it in full, so a
        # segment's answers never depend on what ran before it (nor on the batching)
        results, decisions = runner.run(batch.frame_ids, batch.frames, segment_start=batch.keyframes)
        yield batch.frame_ids, results, decisions, None


def _cache_limit(session: Session) -> int | None:
    limit = session.settings["inference_cache_limit"]
    return None if limit == "none" else int(limit)


def _runner(session: Session, scan: PreparedScan, height: int, width: int) -> FullRunner | IncrementalRunner:
    network = load_network(session, scan.version)
    spec = scan.version.spec
    if scan.mode == "full":
        return FullRunner(network, spec.mean, spec.std)
    state = load_state(session, _state_key(scan)) if scan.key is not None else None
    return IncrementalRunner(network, spec.mean, spec.std, scan.mode, scan.config, state)


def _state_key(scan: PreparedScan) -> CacheKey:
    assert scan.key is not None
    return scan.key


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config) if config is not None else {}


def _script_key(scan: PreparedScan) -> tuple[Any, ...]:
    key = scan.key
    return (key.model, key.version, key.video_key, key.mode_key) if key is not None else ()


def _script_results(session: Session, scan: PreparedScan) -> FrameResults | None:
    """Results earlier statements of this execute() computed for the scan's key (None: no key)."""
    if scan.key is None:
        return None
    shared = session.script_state.setdefault(SCRIPT_RESULTS, {})
    return shared.get(_script_key(scan), FrameResults.empty())
