"""Aggregates and top-k under an accuracy contract (BlazeIt): the cascade kinds ``count``,
``avg`` and ``top_k`` of :class:`~engine.planner.annotations.CascadeRequest`.

Both use the specialized model of :mod:`engine.cascades.run` (reused from the catalog, or
trained on the seeded sample the reference model labels) as a cheap per-frame signal:

* ``count(*) WHERE <question>`` and ``avg(score)``: its output on every frame outside its
  training sample is the control variate of :mod:`engine.cascades.estimate`, with a uniform
  random sample (seeded: the calibration frames first, then the others in a seeded order)
  of reference answers, grown in rounds until the 95% interval of the estimate is within
  ``1 - accuracy`` of it relatively; the training frames' answers are known exactly.
* ``ORDER BY score DESC LIMIT k``: frames ranked by its output are confirmed by the
  reference model in that order until :mod:`engine.cascades.top_k`'s bound certifies the
  overlap with the exact top k.

For ``avg(score)`` and a top k with no question, the specialized model answers
``score > q`` with ``q`` the upper quartile of the sample's reference scores (any stored
specialized model of a ``score > ...`` question for this video is reused).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from engine.cascades.estimate import estimate_in_rounds
from engine.cascades.run import (
    MIN_TRAINING_POSITIVES,
    SEED,
    CascadeReport,
    _reference,
    answers,
    label_sample,
    sample_frames,
    small_batches,
    train_and_store,
)
from engine.cascades.store import StoredSpecialized, find_specialized
from engine.cascades.top_k import confirm_top_k
from engine.inference.frame_results import FrameResults
from engine.inference.scan import PreparedScan
from engine.planner.annotations import CascadeRequest, FramePredicate

if TYPE_CHECKING:
    from engine.session import Session

#: The question a score model answers is ``score > <this quantile of the sample's scores>``.
SCORE_QUANTILE = 0.75
SCORE_QUESTION = "score > "
#: The first round of an estimate asks the reference model for at least this many frames.
FIRST_SAMPLE = 100


class _Reference:
    """The reference model's value (what the query aggregates or ranks) per frame, each frame
    asked once, through the exact scan (the result cache serves what it holds)."""

    def __init__(self, session: Session, scan: PreparedScan, request: CascadeRequest, report: CascadeReport) -> None:
        self.session, self.scan, self.request, self.report = session, scan, request, report
        self.known: dict[int, float] = {}

    def remember(self, results: FrameResults) -> None:
        self.known.update(zip(results.frame_ids.tolist(), self.values(results).tolist()))

    def values(self, results: FrameResults) -> np.ndarray:
        """count: 1 where the question holds; avg: the score; top_k: the score where the
        question holds (or everywhere), else 0."""
        if self.request.kind == "avg":
            return np.asarray(results.scores, np.float64)
        question = self.request.question
        holds = answers(question, results, self.scan.version.spec.label) if question is not None \
            else np.ones(len(results), bool)
        if self.request.kind == "count":
            return holds.astype(np.float64)
        return np.where(holds, np.asarray(results.scores, np.float64), 0.0)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, np.int64)
        missing = np.unique(np.array([f for f in frames.tolist() if f not in self.known], np.int64))
        if len(missing):
            started = time.perf_counter()
            self.remember(_reference(self.session, self.scan, missing))
            self.report.add("reference", time.perf_counter() - started)
        return np.array([self.known[f] for f in frames.tolist()], np.float64)


def answer_blazeit(session: Session, scan: PreparedScan, request: CascadeRequest, report: CascadeReport) -> pa.Table:
    """Run an aggregate or top-k cascade; its relation (``estimate``, or ``frame_id, score``)."""
    ids = scan.selection.frame_ids
    reference = _Reference(session, scan, request, report)
    if len(ids) == 0 or len(scan.selection.sizes()) != 1:
        return _exact(request, report, reference, ids, "" if len(ids) == 0 else
                      "the frames have several sizes; the specialized model reads one")
    found = _specialized(session, scan, request, report, reference)
    if isinstance(found, str):
        return _exact(request, report, reference, ids, found)
    report.specialized_id = found.specialized_id
    if request.kind == "count" and report.reused and request.question is not None:
        # its samples' answers to this very question are the reference model's: a count needs no more of them
        wanted = set(ids.tolist())
        reference.known.update((i, float(a)) for i, a in found.sample_answers().items() if i in wanted)
    training = found.training_frames[np.isin(found.training_frames, ids)]
    in_ids = np.isin(found.calibration_frames, ids)
    calibration, calibration_scores = found.calibration_frames[in_ids], found.calibration_scores[in_ids]
    rest = np.setdiff1d(ids, np.concatenate([training, calibration]))
    rest_scores = _proxy(session, scan, found, rest, report)
    report.sampled, report.by_specialized = len(training) + len(calibration), len(rest)
    if request.kind == "top_k":
        table = _top_k(request, report, reference, training, calibration, calibration_scores, rest, rest_scores)
    else:
        table = _estimate(request, report, reference, ids, training, calibration, calibration_scores, rest,
                          rest_scores)
    report.by_reference = len(reference.known)
    return table


def _specialized(session: Session, scan: PreparedScan, request: CascadeRequest, report: CascadeReport,
                 reference: _Reference) -> StoredSpecialized | str:
    """The specialized model whose output ranks or controls: reused, or trained now; or why not."""
    ids = scan.selection.frame_ids
    question = request.question
    key = question.describe() if question is not None else SCORE_QUESTION
    stored = find_specialized(session, scan.version.model, scan.version.version, scan.frames.video_key, key,
                              prefix=question is None) if scan.frames.video_key is not None else None
    if stored is not None:
        report.reused = True
        report.reason = f"reused specialized model #{stored.specialized_id}"
        return stored
    minimum = int(session.settings["inference_cascade_min_frames"])
    if len(ids) < minimum:
        return (f"the query covers {len(ids)} frames, fewer than inference_cascade_min_frames = {minimum}: "
                "training a specialized model would not pay")
    training, calibration = sample_frames(session, ids)
    if len(training) == 0 or len(calibration) == 0:
        return (f"the query covers {len(ids)} frames, too few to sample both training and calibration frames "
                "for a specialized model")
    labeled = label_sample(session, scan, np.sort(np.concatenate([training, calibration])), report)
    reference.remember(labeled)
    if question is None:
        question = FramePredicate("score", ">", round(float(np.quantile(labeled.scores, SCORE_QUANTILE)), 4))
    truth = dict(zip(labeled.frame_ids.tolist(), answers(question, labeled, scan.version.spec.label).tolist()))
    y_train = np.array([truth[i] for i in training.tolist()], bool)
    y_cal = np.array([truth[i] for i in calibration.tolist()], bool)
    yes, no = int(y_train.sum()), int((~y_train).sum())
    if min(yes, no) < MIN_TRAINING_POSITIVES:
        return (f"too few {'positives' if yes < no else 'negatives'} to train a specialized model: the reference "
                f"model said yes on {yes} of {len(training)} training frames ({question.describe()}); training "
                f"needs at least {MIN_TRAINING_POSITIVES} of each answer")
    return train_and_store(session, scan, question, training, y_train, calibration, y_cal, report)


def _proxy(session: Session, scan: PreparedScan, stored: StoredSpecialized, frames: np.ndarray,
           report: CascadeReport) -> np.ndarray:
    """The specialized model's P(yes) on ``frames`` (ascending), in that order."""
    if len(frames) == 0:
        return np.empty(0, np.float64)
    out = []
    for _, small in small_batches(session, scan, frames, stored.model.resolution, report):
        started = time.perf_counter()
        out.append(stored.model.probabilities(small))
        report.add("specialized", time.perf_counter() - started)
    return np.concatenate(out)


def _estimate(request: CascadeRequest, report: CascadeReport, reference: _Reference, ids: np.ndarray,
              training: np.ndarray, calibration: np.ndarray, calibration_scores: np.ndarray, rest: np.ndarray,
              rest_scores: np.ndarray) -> pa.Table:
    """count/avg by the control-variate estimator over the frames outside the training sample."""
    rng = np.random.default_rng(SEED + 1)
    first, second = rng.permutation(len(calibration)), rng.permutation(len(rest))
    order = np.concatenate([calibration[first], rest[second]])
    proxy = np.concatenate([calibration_scores[first], rest_scores[second]])
    known = float(reference(training).sum()) if len(training) else 0.0
    rounds = estimate_in_rounds(order, proxy, lambda positions: reference(order[positions]),
                                tolerance=1.0 - request.accuracy, binary=request.kind == "count",
                                first=min(len(order), max(len(calibration), FIRST_SAMPLE)), known_total=known)
    scale = len(ids) if request.kind == "avg" else 1
    value, half = rounds.total / scale, rounds.half_width / scale
    report.estimate, report.interval = value, (value - half, value + half)
    report.estimate_sample = len(training) + rounds.estimate.n
    report.variance_ratio, report.rounds = rounds.estimate.variance_ratio, rounds.rounds
    if rounds.estimate.exact and len(order):
        report.reason += "; the interval met the contract only with every frame answered: the answer is exact"
    return _estimate_table(request, value)


def _top_k(request: CascadeRequest, report: CascadeReport, reference: _Reference, training: np.ndarray,
           calibration: np.ndarray, calibration_scores: np.ndarray, rest: np.ndarray,
           rest_scores: np.ndarray) -> pa.Table:
    """The top k, ranked by the specialized model and confirmed by the reference model."""
    sampled = np.concatenate([training, calibration])
    known = dict(zip(sampled.tolist(), reference(sampled).tolist()))
    assert request.limit is not None
    found = confirm_top_k(rest, rest_scores, reference, calibration_scores, reference(calibration), known,
                          k=request.limit, accuracy=request.accuracy)
    report.estimate_sample = len(sampled) + found.visited
    report.overlap_bound, report.selected = found.overlap_bound, len(found.frames)
    report.rounds = found.visited
    return pa.table({"frame_id": pa.array(found.frames, pa.int64()), "score": pa.array(found.values, pa.float64())})


def _exact(request: CascadeRequest, report: CascadeReport, reference: _Reference, ids: np.ndarray,
           reason: str) -> pa.Table:
    """The exact answer: the reference model on every frame."""
    report.plan, report.reason = "exact", reason
    values = reference(ids)
    report.by_reference = report.estimate_sample = len(ids)
    if request.kind == "top_k":
        assert request.limit is not None
        order = [i for i in np.lexsort((ids, -values)).tolist() if values[i] > 0][:request.limit]
        report.selected, report.overlap_bound = len(order), 1.0
        return pa.table({"frame_id": pa.array(ids[order], pa.int64()), "score": pa.array(values[order], pa.float64())})
    total = float(values.sum())
    value = total if request.kind == "count" else (total / len(ids) if len(ids) else None)
    report.estimate = value
    report.interval = (value, value) if value is not None else None
    return _estimate_table(request, value)


def _estimate_table(request: CascadeRequest, value: float | None) -> pa.Table:
    if request.kind == "count":
        return pa.table({"estimate": pa.array([round(value or 0.0)], pa.int64())})
    return pa.table({"estimate": pa.array([value], pa.float64())})


def render_blazeit(report: CascadeReport) -> str:
    """EXPLAIN ANALYZE's text of an aggregate or top-k cascade."""
    r = report
    lines = [f"CASCADE {r.request.model} (version {r.model_version}) OVER {r.frames_table} ANALYZED",
             f"  question            {describe_question(r.request)}",
             f"  plan                {r.plan}{': ' + r.reason if r.reason else ''}",
             f"  frames              {r.frames:>7}"]
    if r.plan == "cascade":
        lines += [f"  sampled             {r.sampled:>7}   (labeled by the reference model"
                  f"{', earlier' if r.reused else ''}: training and calibration of the specialized model)",
                  f"  specialized model   {r.by_specialized:>7}   (#{r.specialized_id}"
                  f"{', reused' if r.reused else ', trained now'}: its output on every other frame "
                  f"{'ranks them' if r.request.kind == 'top_k' else 'is the control variate'})"]
    lines.append(f"  reference model     {r.by_reference:>7}   (frames whose reference answer the answer rests on)")
    if r.request.kind == "top_k":
        lines.append(f"  top k               {r.selected:>7}   (overlap with the exact top {r.request.limit} at least "
                     f"{r.overlap_bound if r.overlap_bound is not None else 0:.3f} at 95%; "
                     f"{r.rounds} ranked frames confirmed by the reference model)")
    elif r.estimate is not None and r.interval is not None:
        low, high = r.interval
        relative = (high - r.estimate) / abs(r.estimate) if r.estimate else 0.0
        variance = f"; the control variate left {r.variance_ratio:.1%} of plain sampling's variance" \
            if r.variance_ratio is not None else ""
        lines.append(f"  estimate            {r.estimate:.6g}   (95% interval {low:.6g} .. {high:.6g}, "
                     f"+-{relative:.2%}; from {r.estimate_sample} reference answers"
                     f"{f' in {r.rounds} round(s)' if r.rounds else ''}{variance})")
    return "\n".join(lines + r.cost_lines())


def describe_question(request: CascadeRequest) -> str:
    """What the query asks and what the contract means for it."""
    where = f" WHERE {request.question.describe()}" if request.question is not None else ""
    if request.kind == "top_k":
        return (f"top {request.limit} by score{where}   (inference_accuracy = {request.accuracy:g}: overlap with "
                "the exact top k, 95% bound)")
    aggregate = "count(*)" if request.kind == "count" else "avg(score)"
    return (f"{aggregate}{where}   (inference_accuracy = {request.accuracy:g}: relative half-width of the 95% "
            "confidence interval at most " f"{1 - request.accuracy:.3g})")


def explain_blazeit(session: Session, request: CascadeRequest) -> str:
    """EXPLAIN's text of an aggregate or top-k cascade, computing nothing: the plan and its
    expected cost against exact inference."""
    from engine.cascades.run import expected_training, prepare_scan

    scan = prepare_scan(session, request)
    ids = scan.selection.frame_ids
    question = request.question
    key = question.describe() if question is not None else SCORE_QUESTION
    stored = find_specialized(session, scan.version.model, scan.version.version, scan.frames.video_key, key,
                              prefix=question is None) if scan.frames.video_key is not None else None
    lines = [f"CASCADE {request.model} (version {scan.version.version}) OVER {scan.frames.name}",
             f"  question            {describe_question(request)}",
             f"  frames              {len(ids):>7}"
             + (f"   ({request.restriction.sql('duckdb')})" if request.restriction is not None else "")]
    minimum = int(session.settings["inference_cascade_min_frames"])
    rounds = ("then more in rounds (x1.5) until the 95% interval is within "
              f"{1 - request.accuracy:.3g} of the estimate" if request.kind != "top_k"
              else "then frames in order of the specialized model's output until the top k is certain")
    if stored is not None:
        sample = int(np.isin(np.concatenate([stored.training_frames, stored.calibration_frames]), ids).sum())
        lines += [f"  plan                cascade, reusing specialized model #{stored.specialized_id} "
                  f"({'control variate' if request.kind != 'top_k' else 'ranking'})",
                  f"  expected cost       reference model on at least {min(len(ids), max(sample, FIRST_SAMPLE))} of "
                  f"{len(ids)} frames (its samples, {rounds}; exact inference: all {len(ids)}), specialized model "
                  f"on {max(len(ids) - sample, 0)}, no training"]
    elif len(ids) < minimum:
        lines += [f"  plan                exact: the query covers {len(ids)} frames, fewer than "
                  f"inference_cascade_min_frames = {minimum}: training a specialized model would not pay",
                  f"  expected cost       reference model on all {len(ids)} frames"]
    else:
        training, calibration = sample_frames(session, ids)
        size = len(training) + len(calibration)
        lines += [f"  plan                cascade: the reference model labels {size} sampled frames; a specialized "
                  f"model trains on {len(training)} (exact instead if fewer than {MIN_TRAINING_POSITIVES} of them "
                  "are positive or negative)",
                  f"  expected cost       reference model on at least {size} of {len(ids)} frames (the sample, "
                  f"{rounds}; exact inference: all {len(ids)}), specialized model on {len(ids) - size}, "
                  f"{expected_training(session, len(training))}"]
    return "\n".join(lines)
