"""EXPLAIN of queries that call models: each inference scan's plan, frame by frame.

For every scan: the frames the query needs, those served from the result cache or shared
with an earlier statement of the script, and for the rest what the mode will do: full
inference, incremental recomputation of changed patches (with their sizes), or a skip,
with the multiply-adds estimated against full inference.  The incremental engine decides
without running the network (change detection and its cost model), continuing from the
persisted base frame.  ``EXPLAIN ANALYZE`` runs the scans and reports what they did.

>>> import engine, numpy as np
>>> con = engine.connect(progress="off")
>>> _ = con.execute("CREATE MODEL tiny FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2')")
>>> _ = engine.frames_from_numpy(con, "clip", np.zeros((4, 32, 32, 3), np.uint8))
>>> plan = explain_plans(con.session, "SELECT tiny(frame).label FROM clip WHERE frame_id < 3")[0]
>>> plan.counts()["full"], plan.macs == plan.macs_full
(3, True)
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.cluster.segments import planned_segment_lines, segment_lines
from engine.dialect import parse_statements
from engine.inference.runners import FrameDecision, FullRunner, IncrementalRunner
from engine.inference.scan import PreparedScan, execute_scan, serve_plan
from engine.inference.state import load_state
from engine.planner import CatalogSnapshot, optimize
from engine.planner.steps import (
    CascadeStep,
    FunctionStep,
    OcclusionStep,
    PredictStep,
    QueryStep,
    Step,
    plan_steps,
    scan_steps,
)
from engine.serving.row_functions import explain_row_function
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session

#: Decision kinds in the order EXPLAIN lists them.
KINDS = ("cached", "shared", "skipped", "incremental", "full")


@dataclass
class ScanPlan:
    """What one inference scan does (or did, with ANALYZE) with each frame."""

    scan: PreparedScan
    decisions: list[FrameDecision]
    analyzed: bool = False
    cluster: list[str] = field(default_factory=list)  # lines on the cluster's segments (engine.cluster.segments)

    def counts(self) -> Counter[str]:
        return Counter(d.kind for d in self.decisions)

    @property
    def macs(self) -> int:
        """Multiply-adds the plan spends (cached, shared and skipped frames cost none)."""
        return sum(d.macs for d in self.decisions)

    @property
    def macs_full(self) -> int:
        """Multiply-adds full inference of every frame the query needs would spend."""
        return sum(d.macs_full for d in self.decisions)

    def render(self) -> str:
        scan = self.scan
        request = scan.request
        counts = self.counts()
        where = f"   ({request.predicate.sql('duckdb')})" if request.predicate is not None else ""
        if request.limit is not None:
            where += f"   (first {request.limit} by frame_id {request.order})"
        lines = [
            f"INFERENCE SCAN {scan.version.model} (version {scan.version.version}) OVER {scan.frames.name}"
            f"{' ANALYZED' if self.analyzed else ''}",
            f"  mode {scan.mode}{_config_text(scan)}; result cache {'on' if scan.use_cache else 'off'}"
            f"{'' if scan.key is not None else ' (the table is not in mallard.videos)'}; outputs "
            f"{', '.join(sorted(request.outputs))}",
            f"  frames needed       {len(self.decisions):>7}{where}",
            f"  from cache          {counts['cached']:>7}",
            f"  shared              {counts['shared']:>7}   (computed by an earlier statement of this script)",
            f"  skipped             {counts['skipped']:>7}   (unchanged since the last computed frame)",
            f"  incremental         {counts['incremental']:>7}{_patch_text(self.decisions)}",
            f"  full                {counts['full']:>7}",
            f"  multiply-adds       {_giga(self.macs)} {'spent' if self.analyzed else 'estimated'} against "
            f"{_giga(self.macs_full)} for full inference of all {len(self.decisions)} frames{_ratio(self.macs_full, self.macs)}",
        ]
        lines += _guard_lines(scan, self.decisions)
        if scan.mode == "approximate" and not self.analyzed:
            lines.append("  (approximate mode: an optimistic estimate; where the activation thresholds stop changes is"
                         " known only when running: EXPLAIN ANALYZE reports the multiply-adds spent)")
        computed = [d for d in self.decisions if d.kind not in ("cached", "shared")]
        if computed and len(computed) != len(self.decisions):
            spent, full = sum(d.macs for d in computed), sum(d.macs_full for d in computed)
            lines.append(f"  of the {len(computed)} frames to compute: {_giga(spent)} against {_giga(full)}{_ratio(full, spent)}")
        return "\n".join(lines + self.cluster)


def _config_text(scan: PreparedScan) -> str:
    if scan.config is None:
        return ""
    from dataclasses import asdict

    from engine.inference.settings import APPROXIMATE_ONLY

    values = {k: v for k, v in asdict(scan.config).items() if scan.mode != "exact" or k not in APPROXIMATE_ONLY}
    return " (" + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()) + ")"


def _guard_lines(scan: PreparedScan, decisions: Sequence[FrameDecision]) -> list[str]:
    """What the guard decided (incremental modes): the frames it sent to full inference and why."""
    if scan.config is None or scan.mode == "full":
        return []
    if not scan.config.guard:
        return ["  guard               off   (inference_guard = false: frames run incrementally whatever they cost)"]
    guarded = [d for d in decisions if d.reason == "guard"]
    if not guarded:
        return ["  guard               on    (each segment judged on its first frames: incremental paid or no "
                "segment was judged)"]
    from engine.inference.incremental.guard import describe

    ratios = sorted({round(d.guard_ratio, 2) for d in guarded})
    ratio = ratios[0] if len(ratios) == 1 else sum(d.guard_ratio for d in guarded) / len(guarded)
    segments = f" (segments from {ratios[0]:.2f}x to {ratios[-1]:.2f}x)" if len(ratios) > 1 else ""
    return [f"  guard            {len(guarded):>7}   {describe(ratio)}{segments}: frames run in full "
            f"(judged on the first frames of each segment; inference_guard = false turns it off)"]


def _patch_text(decisions: Sequence[FrameDecision]) -> str:
    incremental = [d for d in decisions if d.kind == "incremental"]
    if not incremental:
        return ""
    counts = [len(d.patches) for d in incremental]
    areas = [sum(h * w for _, _, h, w in d.patches) for d in incremental]
    sizes = [f"{h}x{w}" for d in incremental for _, _, h, w in d.patches]
    common = Counter(sizes).most_common(1)[0][0] if sizes else "-"
    return (f"   patches per frame: mean {np.mean(counts):.1f}, max {max(counts)}; changed pixels per frame: "
            f"mean {np.mean(areas):.0f}, max {max(areas)}; most common patch {common} px")


def _giga(macs: int) -> str:
    return f"{macs / 1e9:.2f} G"


def _ratio(full: int, spent: int) -> str:
    if full == 0:
        return ""
    return f" ({full / spent:.2f}x fewer)" if spent else " (none spent)"


def explain_plans(session: Session, sql: str | exp.Expr, analyze: bool = False) -> list[ScanPlan]:
    """The plans of the inference scans of one query (text or parsed, parameters bound), one
    decision per frame; ``analyze=True`` runs the scans and reports what they did."""
    node = parse_statements(sql)[0] if isinstance(sql, str) else sql
    catalog = CatalogSnapshot.of(session.functions)
    return scan_plans(session, plan_steps(optimize(node, catalog, session.settings["inference_accuracy"])), analyze)


def scan_plans(session: Session, steps: tuple[Step, ...], analyze: bool) -> list[ScanPlan]:
    """Each scan step's plan (validating every scan before running any)."""
    prepared = [PreparedScan.prepare(session, step.request) for step in scan_steps(steps)]
    plans = []
    for scan in prepared:
        if analyze:
            _, stats = execute_scan(session, scan)
            plans.append(ScanPlan(scan, stats.per_frame, analyzed=True, cluster=segment_lines(stats.segments)))
        else:
            decisions = plan_scan(session, scan)
            plans.append(ScanPlan(scan, decisions, cluster=planned_segment_lines(session, scan, decisions)))
    return plans


def plan_scan(session: Session, scan: PreparedScan) -> list[FrameDecision]:
    """Per-frame decisions of a scan, computing nothing (the same serve plan execution uses)."""
    served = serve_plan(session, scan)
    decisions = [FrameDecision(int(i), "shared", 0, int(f))
                 for i, f in zip(served.shared.frame_ids, served.shared.macs_full)]
    if len(served.cached):
        from engine.inference.cache import ResultCache

        assert scan.key is not None
        cached = ResultCache(session, scan.key).read(served.cached, set())
        decisions += [FrameDecision(int(i), "cached", 0, int(f)) for i, f in zip(cached.frame_ids, cached.macs_full)]
    decisions += _plan_computation(session, scan, served.missing)
    return sorted(decisions, key=lambda d: d.frame_id)


def _plan_computation(session: Session, scan: PreparedScan, frame_ids: np.ndarray) -> list[FrameDecision]:
    from engine.inference.model_catalog import load_network

    if len(frame_ids) == 0:
        return []
    position = np.searchsorted(scan.selection.frame_ids, frame_ids)
    heights, widths = scan.selection.heights[position], scan.selection.widths[position]
    network = load_network(session, scan.version)
    spec = scan.version.spec
    decisions: list[FrameDecision] = []
    for height, width in sorted(set(zip(heights.tolist(), widths.tolist()))):
        ids = frame_ids[(heights == height) & (widths == width)]
        if scan.mode == "full":
            decisions += FullRunner(network, spec.mean, spec.std).plan(ids, height, width)
            continue
        state = load_state(session, scan.key) if scan.key is not None else None
        runner = IncrementalRunner(network, spec.mean, spec.std, scan.mode, scan.config, state)
        # one call (plan leaves the engine as it is, so it cannot carry a batch's last frame
        # to the next); the same keyframe segments as the scan
        decisions += runner.plan(ids, scan.frames.read(session, ids, height, width),
                                 segment_start=scan.frames.keyframes(session, ids))
    return decisions


def explain_statement(session: Session, node: Any) -> StatementResult:
    """The executor of ``EXPLAIN [ANALYZE] <query>``: the inference plan of a query that calls
    models (its steps, as execution reads them); DuckDB's own EXPLAIN for any other query."""
    inner = node.this
    analyze = bool(node.args.get("analyze"))
    plan = optimize(inner, CatalogSnapshot.of(session.functions), session.settings["inference_accuracy"])
    steps = plan_steps(plan)
    query = steps[-1]
    assert isinstance(query, QueryStep)
    if not query.rewritten:
        return StatementResult(rows=session.relation(f"EXPLAIN {'ANALYZE ' if analyze else ''}{inner.sql('duckdb')}"))
    rows = [("cascade", _cascade_text(session, step, analyze)) for step in steps if isinstance(step, CascadeStep)]
    rows += [("note", note) for note in plan.notes]
    rows += [("inference_scan", plan.render()) for plan in scan_plans(session, steps, analyze)]
    rows += [("occlusion_map", step.request.describe()) for step in steps if isinstance(step, OcclusionStep)]
    rows += [("function", explain_row_function(session, step.request)) for step in steps if isinstance(step, FunctionStep)]
    rows += [(step.request.function, _prediction_text(session, step, analyze)) for step in steps
             if isinstance(step, PredictStep)]
    rows.append(("rewritten_query", query.tree.sql("duckdb", pretty=True)))
    return StatementResult(rows=pa.table({"explain_key": [r[0] for r in rows], "explain_value": [r[1] for r in rows]}))


def _cascade_text(session: Session, step: CascadeStep, analyze: bool) -> str:
    """EXPLAIN of a cascade step: what it will do; with ANALYZE, it runs and reports each stage."""
    from engine.cascades.run import explain_cascade, run_cascade

    if not analyze:
        return explain_cascade(session, step.request)
    return run_cascade(session, step.request)[1].render()


def _prediction_text(session: Session, step: PredictStep, analyze: bool) -> str:
    """EXPLAIN of a predict(...) or evaluate(...) step; with ANALYZE, it runs and reports what it did."""
    from engine.serving.offline import explain_prediction, prediction_statistics

    if step.request.function == "evaluate":
        return _evaluation_text(session, step, analyze)
    text = explain_prediction(session, step.request)
    if not analyze:
        return text
    from engine.executors.planned import STEP_RUNNERS

    STEP_RUNNERS[PredictStep](session, step, {})
    done = prediction_statistics(session)[-1]
    return (f"{text}\n  ANALYZED: {done.predicted} of {done.rows} rows predicted in {done.batches} network calls, "
            f"batch size {done.batch_size}{' (searched)' if done.searched else ''}, {done.threads} torch "
            f"thread{'s' if done.threads != 1 else ''}, {done.seconds:.3f} s ({done.network_seconds:.3f} s in the network)")


def _evaluation_text(session: Session, step: PredictStep, analyze: bool) -> str:
    """EXPLAIN of an evaluate(...) step: the version and the query; with ANALYZE, it runs and
    reports the accuracy."""
    from engine.inference.model_catalog import require_version

    request = step.request
    options = dict(request.options)
    version = require_version(session, request.model, options.get("version"))
    label = options.get("label") or "the column the model was trained on, else label"
    text = "\n".join([
        f"EVALUATE {version.model} (version {version.version}, {version.spec.architecture}) OVER",
        f"  ({request.query.sql('duckdb')})",
        f"  true class   {label}",
        "  output       one row per class: support, precision, recall, predicted_as; accuracy, loss, rows",
    ])
    if not analyze:
        return text
    from engine.executors.planned import STEP_RUNNERS

    STEP_RUNNERS[PredictStep](session, step, {})
    summary = exp.select("max(accuracy)", "max(rows)").from_(exp.to_table(request.relation))
    found = session.relation(summary.sql("duckdb")).fetchall()[0]
    return f"{text}\n  ANALYZED: accuracy {found[0]:.4f} over {found[1]} rows"
