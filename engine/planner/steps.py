"""A finished plan as the steps that run it, in order: the one reading of a plan that both
execution (:mod:`engine.executors.planned`) and ``EXPLAIN`` (:mod:`engine.inference.explain`)
use, so they cannot disagree about what a statement does.

>>> import sqlglot
>>> from engine.planner import CatalogSnapshot, optimize
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> tree = sqlglot.parse_one("SELECT m(frame).label FROM traffic", read="duckdb")
>>> [type(step).__name__ for step in plan_steps(optimize(tree, catalog))]
['ScanStep', 'QueryStep']
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from engine.planner.annotations import (
    CascadeRequest,
    OcclusionRequest,
    Plan,
    PredictionRequest,
    RowFunctionRequest,
    ScanRequest,
)


@dataclass(frozen=True)
class FunctionStep:
    """Register a numeric model's vectorized function for the statement (DuckDB calls it per vector of rows)."""

    request: RowFunctionRequest


@dataclass(frozen=True)
class OcclusionStep:
    """Compute an occlusion map and expose it as its relation."""

    request: OcclusionRequest


@dataclass(frozen=True)
class PredictStep:
    """Run a model over the rows of a query and expose the rows with their predictions as its
    relation (``predict``), or the model's evaluation over them (``evaluate``)."""

    request: PredictionRequest


@dataclass(frozen=True)
class ScanStep:
    """Run (or serve from the cache) one inference scan and expose its results as its relation."""

    request: ScanRequest


@dataclass(frozen=True)
class CascadeStep:
    """Answer a selection under an accuracy contract with a cascade (difference detector,
    specialized model, reference model) and expose the frame_ids where it holds as its relation."""

    request: CascadeRequest


@dataclass(frozen=True)
class QueryStep:
    """DuckDB runs the (rewritten) statement over the relations the steps before it exposed;
    ``rewritten`` is False when the planner changed nothing."""

    tree: exp.Expr
    rewritten: bool


Step = FunctionStep | OcclusionStep | PredictStep | CascadeStep | ScanStep | QueryStep


def plan_steps(plan: Plan) -> tuple[Step, ...]:
    """Numeric models' functions first, then occlusion maps (their frame queries read tables
    only), then predictions (their queries are planned when they run), then cascades, then
    the scans, then the query."""
    steps: list[Step] = [FunctionStep(r) for r in plan.row_functions]
    steps += [OcclusionStep(r) for r in plan.occlusion_maps]
    steps += [PredictStep(r) for r in plan.predictions]
    steps += [CascadeStep(r) for r in plan.cascades]
    steps += [ScanStep(r) for r in plan.scans]
    rewritten = bool(plan.scans or plan.occlusion_maps or plan.predictions or plan.cascades or plan.row_functions)
    steps.append(QueryStep(plan.tree, rewritten=rewritten))
    return tuple(steps)


def scan_steps(steps: tuple[Step, ...]) -> tuple[ScanStep, ...]:
    return tuple(s for s in steps if isinstance(s, ScanStep))


def cascade_steps(steps: tuple[Step, ...]) -> tuple[CascadeStep, ...]:
    return tuple(s for s in steps if isinstance(s, CascadeStep))
