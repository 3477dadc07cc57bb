"""Running a cascade: the step a selection under an accuracy contract becomes
(:class:`engine.planner.steps.CascadeStep`).

1. The frames the query covers are selected as an inference scan would select them.
2. A specialized model for this reference model version, video and question is reused from
   the catalog, or made: the reference model labels a seeded sample (through the inference
   scan, so the result cache serves what it holds and keeps what is computed), 40% of it
   trains the specialized model and 60% calibrates its thresholds
   (:mod:`engine.cascades.calibration`).  Too few positives in the sample, or too few frames
   for training to pay (``inference_cascade_min_frames``): exact inference, with the reason.
3. Every other frame, in frame_id order, is decoded, shrunk, and compared with the last frame
   decided (the difference detector): a nearly identical frame takes that frame's decision
   where the specialized model made it; the frames it keeps go through the specialized model;
   those in its uncertain band (and frames close to one of those) go to the reference model.
   Sampled frames keep the reference model's answers.

The answer never depends on what the result cache holds (cached results only make the
reference model's part cheaper), so a query answers the same on a cold and a warm cache.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine.cascades.bounds import needed_successes
from engine.cascades.calibration import Thresholds, calibrate
from engine.cascades.difference import DifferenceDetector
from engine.cascades.small_frames import HeldSmall, decoding, fits, read_small, small_frames
from engine.cascades.specialized import RESOLUTION, train_specialized
from engine.cascades.store import StoredSpecialized, find_specialized, record_cascade, save_specialized
from engine.inference.frame_results import FrameResults
from engine.inference.frames import Selection
from engine.inference.scan import PreparedScan, execute_scan
from engine.planner.annotations import CascadeRequest, FramePredicate, ScanRequest

if TYPE_CHECKING:
    from engine.session import Session

#: Where a session keeps the reports of its recent cascades (newest last).
REPORTS = "cascades.reports"
#: Fraction of the labeled sample that trains the specialized model (the rest calibrates) ...
TRAINING_SHARE = 0.4
#: ... calibrating on at most this many frames (enough positives to certify 0.95 with a few
#: misses at a 10% predicate; a larger sample, ``inference_cascade_sample_share`` of a long
#: query's frames, trains on the rest).
MAX_CALIBRATION = 1200
#: Fewest positives among the training frames worth training on.
MIN_TRAINING_POSITIVES = 5
#: The sample's seed (the lineage records it).
SEED = 0
#: Frames per batch of the cheap pass.
CHEAP_BATCH = 256


@dataclass
class CascadeReport:
    """What one cascade did (EXPLAIN ANALYZE and ``mallard.cascades`` show it)."""

    request: CascadeRequest
    model_version: int
    frames_table: str
    frames: int
    plan: str = "cascade"                # 'cascade' or 'exact'
    reason: str = ""
    specialized_id: int | None = None
    reused: bool = False
    sampled: int = 0
    by_difference: int = 0
    by_specialized: int = 0
    by_reference: int = 0
    selected: int = 0
    thresholds: Thresholds | None = None
    seconds: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    estimate: float | None = None        # count/avg: the answer ...
    interval: tuple[float, float] | None = None     # ... its 95% interval
    estimate_sample: int = 0             # reference answers the estimate (or the top k) rests on
    variance_ratio: float | None = None  # Var with the control variate / Var of plain sampling
    rounds: int = 0
    overlap_bound: float | None = None   # top_k: certified overlap with the exact top k
    held: HeldSmall | None = field(default=None, repr=False)  # small frames held while the cascade runs

    def add(self, stage: str, seconds: float) -> None:
        self.breakdown[stage] = self.breakdown.get(stage, 0.0) + seconds

    def render(self) -> str:
        """EXPLAIN ANALYZE's text of this cascade."""
        r = self.request
        if r.kind != "selection":
            from engine.cascades.blazeit import render_blazeit

            return render_blazeit(self)
        assert r.question is not None
        lines = [f"CASCADE {r.model} (version {self.model_version}) OVER {self.frames_table} ANALYZED",
                 f"  question            {r.question.describe()}   (inference_accuracy = {r.accuracy:g}: precision "
                 "and recall, 95% lower confidence bounds)",
                 f"  plan                {self.plan}{': ' + self.reason if self.reason else ''}",
                 f"  frames              {self.frames:>7}"]
        if self.plan == "cascade":
            lines += [f"  sampled             {self.sampled:>7}   (labeled by the reference model"
                      f"{', earlier' if self.reused else ''}: training and calibration)",
                      f"  difference detector {self.by_difference:>7}   (took the specialized model's decision on a nearly identical frame)",
                      f"  specialized model   {self.by_specialized:>7}"
                      f"   (#{self.specialized_id}{', reused' if self.reused else ', trained now'})",
                      f"  reference model     {self.by_reference:>7}   (undecided by the cheaper stages)"]
            if self.thresholds is not None:
                lines.append(f"  thresholds          {self.thresholds.describe()}")
        else:
            lines.append(f"  reference model     {self.by_reference:>7}")
        lines.append(f"  selected            {self.selected:>7}")
        return "\n".join(lines + self.cost_lines())

    def cost_lines(self) -> list[str]:
        """The measured cost against exact inference, and the seconds of each stage."""
        stages = ", ".join(f"{k} {v:.3f}" for k, v in self.breakdown.items())
        share = self.by_reference / self.frames if self.frames else 0.0
        return [f"  cost                reference model on {self.by_reference} of {self.frames} frames ({share:.1%}; "
                f"exact inference: all {self.frames}), training {self.breakdown.get('training', 0.0):.3f} s",
                f"  seconds             {self.seconds:.3f} ({stages})"]


def answers(question: FramePredicate, results: FrameResults, label: Any) -> np.ndarray:
    """Whether ``question`` holds for each frame's prediction (bool per frame of ``results``)."""
    if question.field == "label":
        values: np.ndarray = np.array([label(int(c)) for c in results.class_ids], dtype=object)
    elif question.field == "class_id":
        values = results.class_ids.astype(np.int64)
    else:
        values = results.scores
    value = question.value
    compare = {"=": np.equal, "<>": np.not_equal, ">": np.greater, ">=": np.greater_equal,
               "<": np.less, "<=": np.less_equal}[question.operator]
    return np.asarray(compare(values, value), dtype=bool)


def cascade_relation(session: Session, request: CascadeRequest) -> pa.Table:
    """Run the cascade; its answer as the relation the rewritten query reads (a selection's
    frame_id; an aggregate's one ``estimate``; a top k's frame_id and score)."""
    relation, report = run_cascade(session, request)
    history = session.state.setdefault(REPORTS, [])
    history.append(report)
    del history[:-100]
    return relation


def prepare_scan(session: Session, request: CascadeRequest) -> PreparedScan:
    """The exact inference scan of the frames the cascade covers (validated, nothing run)."""
    scan_request = ScanRequest(model=request.model, table=request.table, frame_column=request.frame_column,
                               outputs=frozenset({"prediction"}), relation=request.relation,
                               predicate=request.restriction)
    return PreparedScan.prepare(session, scan_request)


def run_cascade(session: Session, request: CascadeRequest) -> tuple[pa.Table, CascadeReport]:
    """The cascade's relation (see :func:`cascade_relation`), and what the cascade did."""
    started = time.perf_counter()
    scan = prepare_scan(session, request)
    ids = scan.selection.frame_ids
    report = CascadeReport(request, scan.version.version, scan.frames.name, len(ids))
    try:
        if request.kind == "selection":
            selected = _answer(session, scan, request, report)
            report.selected = len(selected)
            relation = pa.table({"frame_id": pa.array(selected, pa.int64())})
        else:
            from engine.cascades.blazeit import answer_blazeit

            relation = answer_blazeit(session, scan, request, report)
    finally:
        report.held = None  # the report outlives the cascade (the session keeps recent ones)
    report.seconds = time.perf_counter() - started
    if not session.read_only:
        with session.atomic():
            record_cascade(session, _row(report))
    return relation, report


def _answer(session: Session, scan: PreparedScan, request: CascadeRequest, report: CascadeReport) -> np.ndarray:
    ids = scan.selection.frame_ids
    assert request.question is not None
    question = request.question.describe()
    settings = session.settings
    stored = find_specialized(session, scan.version.model, scan.version.version, scan.frames.video_key, question) \
        if scan.frames.video_key is not None else None
    if len(ids) == 0:
        return np.empty(0, np.int64)
    if len(scan.selection.sizes()) != 1:
        return _exact(session, scan, request, report, "the frames have several sizes; the specialized model reads one")
    minimum = int(settings["inference_cascade_min_frames"])
    if stored is None and len(ids) < minimum:
        return _exact(session, scan, request, report,
                      f"the query covers {len(ids)} frames, fewer than inference_cascade_min_frames = {minimum}: "
                      "training a specialized model would not pay")
    known: dict[int, bool] = {}
    labeled: FrameResults | None = None
    if stored is None:
        made = _make_specialized(session, scan, request, report)
        if isinstance(made, np.ndarray):
            return made
        stored, known, labeled = made
    else:
        report.reused = True
        wanted = set(ids.tolist())
        known = {i: a for i, a in stored.sample_answers().items() if i in wanted}
        report.reason = f"reused specialized model #{stored.specialized_id}"
    report.specialized_id = stored.specialized_id
    thresholds = calibrate(stored.calibration_scores, stored.calibration_answers, request.accuracy)
    report.thresholds = thresholds
    if not thresholds.certified:
        return _exact(session, scan, request, report,
                      f"too few positives: specialized model #{stored.specialized_id} was calibrated on "
                      f"{thresholds.frames} frames with {thresholds.positives} positives; certifying precision and "
                      f"recall {request.accuracy:g} at 95% confidence needs at least {thresholds.needed_positives}",
                      done=labeled, known=known)
    ceiling = float(settings["inference_cascade_max_undecided"])
    if thresholds.undecided > ceiling:
        return _exact(session, scan, request, report,
                      f"specialized model #{stored.specialized_id} leaves {thresholds.undecided:.1%} of its calibration "
                      f"frames to the reference model, more than inference_cascade_max_undecided = {ceiling:g}: "
                      "the cascade would not pay", done=labeled, known=known)
    report.sampled = len(known)
    rest = np.setdiff1d(ids, np.fromiter(known, np.int64, len(known)), assume_unique=True)
    found = _cheap_pass(session, scan, request, stored, thresholds, rest, report)
    yes = [i for i, a in known.items() if a] + found
    return np.sort(np.asarray(yes, np.int64))


def _make_specialized(session: Session, scan: PreparedScan, request: CascadeRequest,
                      report: CascadeReport) -> tuple[StoredSpecialized, dict[int, bool], FrameResults] | np.ndarray:
    """Label a sample, train and calibrate; the exact answer instead when that cannot work."""
    assert request.question is not None
    training, calibration = sample_frames(session, scan.selection.frame_ids)
    size = len(training) + len(calibration)
    labeled = label_sample(session, scan, np.sort(np.concatenate([training, calibration])), report)
    truth = dict(zip(labeled.frame_ids.tolist(), answers(request.question, labeled, scan.version.spec.label).tolist()))
    y_train = np.array([truth[i] for i in training.tolist()], bool)
    y_cal = np.array([truth[i] for i in calibration.tolist()], bool)
    needed = needed_successes(request.accuracy)
    if int(y_cal.sum()) < needed or int(y_train.sum()) < MIN_TRAINING_POSITIVES:
        reason = (f"too few positives: the reference model said yes on {int(y_train.sum() + y_cal.sum())} of "
                  f"{size} sampled frames ({int(y_cal.sum())} of {len(calibration)} calibration frames, "
                  f"{int(y_train.sum())} of {len(training)} training frames); certifying precision and recall "
                  f"{request.accuracy:g} at 95% confidence needs at least {needed} positives in the calibration "
                  f"sample and {MIN_TRAINING_POSITIVES} in the training sample")
        return _exact(session, scan, request, report, reason, done=labeled)
    stored = train_and_store(session, scan, request.question, training, y_train, calibration, y_cal, report)
    return stored, truth, labeled


def sample_sizes(session: Session, frames: int) -> tuple[int, int]:
    """How many sampled frames train and how many calibrate, for a query over ``frames`` frames:
    ``inference_cascade_sample`` frames, or ``inference_cascade_sample_share`` of a longer
    query's (at most three quarters of them), :data:`TRAINING_SHARE` of it training,
    calibration capped at :data:`MAX_CALIBRATION` frames (the rest trains).

    >>> import engine
    >>> con = engine.connect(progress="off")
    >>> sample_sizes(con.session, 795), sample_sizes(con.session, 35775)
    ((238, 358), (3093, 1200))
    """
    settings = session.settings
    share = float(settings["inference_cascade_sample_share"])
    size = min(max(int(settings["inference_cascade_sample"]), round(share * frames)), frames * 3 // 4)
    calibration = min(size - round(size * TRAINING_SHARE), MAX_CALIBRATION)
    return size - calibration, calibration


def sample_frames(session: Session, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seeded sample the reference model labels: (training frames, calibration frames), sorted."""
    training, calibration = sample_sizes(session, len(ids))
    sample = np.random.default_rng(SEED).permutation(ids)[:training + calibration]
    return np.sort(sample[:training]), np.sort(sample[training:])


def label_sample(session: Session, scan: PreparedScan, frames: np.ndarray, report: CascadeReport) -> FrameResults:
    """The reference model's results on the sampled ``frames`` (ascending), timed as labeling."""
    started = time.perf_counter()
    labeled = _reference(session, scan, frames)
    report.add("labeling", time.perf_counter() - started)
    return labeled


def train_and_store(session: Session, scan: PreparedScan, question: FramePredicate, training: np.ndarray,
                    y_train: np.ndarray, calibration: np.ndarray, y_cal: np.ndarray,
                    report: CascadeReport) -> StoredSpecialized:
    """Train the specialized model for ``question`` on the training frames, score the
    calibration frames, and store it with its lineage (when the video has a key)."""
    sample = np.sort(np.concatenate([training, calibration]))
    everything = scan.selection.frame_ids
    if fits(len(everything), RESOLUTION):  # one decoding pass for the sample and the cheap pass
        report.held = HeldSmall(everything, read_small(session, scan, everything, RESOLUTION, report.add))
        small = dict(zip(sample.tolist(), report.held.take(sample)))
    else:
        small = dict(zip(sample.tolist(), read_small(session, scan, sample, RESOLUTION, report.add)))
    started = time.perf_counter()
    specialized = train_specialized(session.duck, training, np.stack([small[i] for i in training.tolist()]), y_train,
                                    seed=SEED)
    report.add("training", time.perf_counter() - started)
    started = time.perf_counter()
    scores = specialized.probabilities(np.stack([small[i] for i in calibration.tolist()]))
    report.add("calibration", time.perf_counter() - started)
    stored = StoredSpecialized(0, specialized, training, y_train, calibration, y_cal, scores)
    if scan.frames.video_key is not None and not session.read_only:
        with session.atomic():
            stored.specialized_id = save_specialized(
                session, model=scan.version.model, version=scan.version.version, video_key=scan.frames.video_key,
                frames_table=scan.frames.name, question=question.describe(), stored=stored, seed=SEED)
    report.reason = f"trained specialized model #{stored.specialized_id} on {len(training)} frames, " \
                    f"calibrated on {len(calibration)}"
    return stored


def _cheap_pass(session: Session, scan: PreparedScan, request: CascadeRequest, stored: StoredSpecialized,
                thresholds: Thresholds, rest: np.ndarray, report: CascadeReport) -> list[int]:
    """Decide the frames outside the sample; the frame_ids where the answer is yes."""
    if len(rest) == 0:
        return []
    detector = DifferenceDetector(float(session.settings["inference_cascade_difference"]))
    anchors = np.empty(len(rest), np.int64)
    decided: dict[int, int] = {}
    position = 0
    for batch_ids, small in small_batches(session, scan, rest, stored.model.resolution, report):
        started = time.perf_counter()
        batch_anchors = detector.anchors(batch_ids, small)
        report.add("difference", time.perf_counter() - started)
        kept = batch_anchors == batch_ids
        started = time.perf_counter()
        p = stored.model.probabilities(small[kept])
        report.add("specialized", time.perf_counter() - started)
        decided.update(zip(batch_ids[kept].tolist(), thresholds.decide(p).tolist()))
        anchors[position:position + len(batch_ids)] = batch_anchors
        position += len(batch_ids)
    # A frame the detector skipped takes its anchor's decision only where the specialized model
    # made it (the frame's own score would be about the anchor's): where the anchor was left to
    # the reference model, the frame goes there too, since the reference model's answers
    # flicker between nearly identical frames and copying them is outside the calibration.
    skipped = anchors != rest
    follows = np.array([decided[a] != -1 for a in anchors.tolist()], bool) if len(rest) else np.empty(0, bool)
    for frame_id in rest[skipped & ~follows].tolist():
        decided[frame_id] = -1
    own = {int(i): int(a) for i, a in zip(rest[skipped & follows].tolist(), anchors[skipped & follows].tolist())}
    undecided = np.array(sorted(i for i, d in decided.items() if d == -1), np.int64)
    started = time.perf_counter()
    if len(undecided):
        assert request.question is not None
        results = _reference(session, scan, undecided)
        decided.update(zip(results.frame_ids.tolist(),
                           answers(request.question, results, scan.version.spec.label).astype(int).tolist()))
    report.add("reference", time.perf_counter() - started)
    report.by_reference += len(undecided)
    report.by_difference += len(own)
    report.by_specialized += len(rest) - len(undecided) - len(own)
    return [int(i) for i in rest.tolist() if decided[own.get(int(i), int(i))] == 1]


def small_batches(session: Session, scan: PreparedScan, frames: np.ndarray, side: int,
                  report: CascadeReport) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The frames ``frames`` (ascending) in batches, decoded and shrunk to ``side`` for the
    cheap stages (:mod:`engine.cascades.small_frames`; from memory where the cascade holds
    them, made when its sample was read), as (frame_ids, small frames);
    decoding and shrinking are timed into the report, and a progress bar follows the frames."""
    held = report.held if report.held is not None and report.held.frames.shape[1] == side \
        and report.held.covers(frames) else None
    batches = ((frames[i:i + CHEAP_BATCH], held.take(frames[i:i + CHEAP_BATCH]))
               for i in range(0, len(frames), CHEAP_BATCH)) if held is not None \
        else small_frames(session, scan, frames, side, CHEAP_BATCH, report.add)
    with session.progress(len(frames), f"cascade over {scan.frames.name}", unit="frame") as bar:
        for batch_ids, small in batches:
            yield batch_ids, small
            bar.update(len(batch_ids))


def _reference(session: Session, scan: PreparedScan, frame_ids: np.ndarray) -> FrameResults:
    """The reference model's results on ``frame_ids`` (ascending): the exact scan restricted to them."""
    selection = scan.selection
    position = np.searchsorted(selection.frame_ids, frame_ids)
    sub = replace(scan, selection=Selection(frame_ids, selection.heights[position], selection.widths[position]))
    results, _ = execute_scan(session, sub)
    return results


def _exact(session: Session, scan: PreparedScan, request: CascadeRequest, report: CascadeReport, reason: str,
           done: FrameResults | None = None, known: dict[int, bool] | None = None) -> np.ndarray:
    """Exact inference over the frames: those in ``done`` already computed, those in ``known``
    answered by the reference model earlier (a stored specialized model's samples)."""
    report.plan, report.reason = "exact", reason
    ids = scan.selection.frame_ids
    known = {} if known is None or done is not None else known
    started = time.perf_counter()
    skip = np.concatenate([done.frame_ids if done is not None else np.empty(0, np.int64),
                           np.fromiter(known, np.int64, len(known))])
    results = FrameResults.concat([r for r in (done, _reference(session, scan, np.setdiff1d(ids, skip)))
                                   if r is not None])
    report.add("reference", time.perf_counter() - started)
    report.sampled = len(skip)
    report.by_reference = len(ids) - len(known)
    assert request.question is not None
    yes = results.frame_ids[answers(request.question, results, scan.version.spec.label)].tolist()
    return np.sort(np.asarray(yes + [i for i, a in known.items() if a], np.int64))


def _row(report: CascadeReport) -> dict[str, Any]:
    t = report.thresholds
    r = report.request
    def finite(v):
        return (v if v is not None and np.isfinite(v) else None)
    return {
        "model": r.model, "model_version": report.model_version, "frames_table": report.frames_table,
        "question": r.question.describe() if r.question is not None else "", "accuracy": r.accuracy, "plan": report.plan, "reason": report.reason,
        "specialized_id": report.specialized_id, "reused": report.reused, "frames": report.frames,
        "sampled": report.sampled, "by_difference": report.by_difference, "by_specialized": report.by_specialized,
        "by_reference": report.by_reference, "selected": report.selected,
        "low": finite(t.low) if t else None, "high": finite(t.high) if t else None,
        "calibration_precision": t.precision if t else None, "calibration_recall": t.recall if t else None,
        "precision_bound": t.precision_bound if t else None, "recall_bound": t.recall_bound if t else None,
        "seconds": report.seconds, "breakdown": {k: round(v, 4) for k, v in report.breakdown.items()},
        "kind": r.kind, "estimate": report.estimate,
        "interval_low": report.interval[0] if report.interval else None,
        "interval_high": report.interval[1] if report.interval else None,
        "estimate_sample": report.estimate_sample if r.kind != "selection" else None,
        "variance_ratio": report.variance_ratio, "overlap_bound": report.overlap_bound,
    }


def explain_cascade(session: Session, request: CascadeRequest) -> str:
    """EXPLAIN's text of a cascade, computing nothing: the frames it covers, and whether it
    reuses a specialized model (with the thresholds the contract gives it), trains one, or
    computes exactly (and why)."""
    if request.kind != "selection":
        from engine.cascades.blazeit import explain_blazeit

        return explain_blazeit(session, request)
    assert request.question is not None
    scan = prepare_scan(session, request)
    ids = scan.selection.frame_ids
    question = request.question.describe()
    stored = find_specialized(session, scan.version.model, scan.version.version, scan.frames.video_key, question) \
        if scan.frames.video_key is not None else None
    lines = [f"CASCADE {request.model} (version {scan.version.version}) OVER {scan.frames.name}",
             f"  question            {question}   (inference_accuracy = {request.accuracy:g}: precision and recall, "
             "95% lower confidence bounds)",
             f"  frames              {len(ids):>7}"
             + (f"   ({request.restriction.sql('duckdb')})" if request.restriction is not None else "")]
    minimum = int(session.settings["inference_cascade_min_frames"])
    difference = float(session.settings["inference_cascade_difference"])
    stages = (f"  stages              difference detector (threshold {difference:g}), specialized model "
              f"(tiny_cnn at {RESOLUTION}x{RESOLUTION}, frames {decoding(session, scan, RESOLUTION)}), "
              f"reference model {request.model} on the undecided frames")
    if stored is not None:
        thresholds = calibrate(stored.calibration_scores, stored.calibration_answers, request.accuracy)
        ceiling = float(session.settings["inference_cascade_max_undecided"])
        if not thresholds.certified:
            lines.append(f"  plan                exact: too few positives: specialized model #{stored.specialized_id} was "
                         f"calibrated on {thresholds.frames} frames with {thresholds.positives} positives; certifying "
                         f"{request.accuracy:g} needs at least {thresholds.needed_positives}")
        elif thresholds.undecided > ceiling:
            lines.append(f"  plan                exact: specialized model #{stored.specialized_id} leaves "
                         f"{thresholds.undecided:.1%} of its calibration frames to the reference model, more than "
                         f"inference_cascade_max_undecided = {ceiling:g}: the cascade would not pay")
        else:
            sampled = int(np.isin(np.concatenate([stored.training_frames, stored.calibration_frames]), ids).sum())
            expected = sampled + round(thresholds.undecided * (len(ids) - sampled))
            lines += [f"  plan                cascade, reusing specialized model #{stored.specialized_id} "
                      f"(trained on {len(stored.training_frames)} frames)", stages,
                      f"  expected cost       reference model on about {expected} of {len(ids)} frames ({sampled} "
                      f"sampled earlier, {thresholds.undecided:.1%} of the others left undecided on the calibration "
                      f"sample, fewer where the difference detector copies a decision; exact inference: all "
                      f"{len(ids)}), no training"]
        lines.append(f"  thresholds          {thresholds.describe()}")
    elif len(ids) < minimum:
        lines += [f"  plan                exact: the query covers {len(ids)} frames, fewer than "
                  f"inference_cascade_min_frames = {minimum}: training a specialized model would not pay",
                  f"  expected cost       reference model on all {len(ids)} frames"]
    else:
        cut, calibrating = sample_sizes(session, len(ids))
        size = cut + calibrating
        lines += [f"  plan                cascade: the reference model labels {size} sampled frames; a specialized "
                  f"model trains on {cut} and its thresholds are calibrated on {size - cut} (exact instead if fewer "
                  f"than {needed_successes(request.accuracy)} of those are positive, or if the specialized model "
                  f"leaves more than inference_cascade_max_undecided of them undecided)", stages,
                  f"  expected cost       reference model on at least {size} of {len(ids)} frames (the sample, then "
                  f"the frames the specialized model leaves undecided; at most inference_cascade_max_undecided = "
                  f"{float(session.settings['inference_cascade_max_undecided']):g} of the others; exact inference: "
                  f"all {len(ids)}), {expected_training(session, cut)}"]
    return "\n".join(lines)


def expected_training(session: Session, frames: int) -> str:
    """The expected cost of training a specialized model on ``frames`` frames, at the rate the
    newest stored one trained (seconds per training frame), or unmeasured."""
    row = session.sql("SELECT training_seconds / greatest(len(training_frames), 1) FROM mallard.specialized_models "
                      "ORDER BY specialized_id DESC LIMIT 1").fetchone()
    if row is None:
        return f"training on {frames} frames (no specialized model trained yet to estimate its seconds from)"
    return f"training on {frames} frames (about {row[0] * frames:.1f} s at the rate the last specialized model trained)"
