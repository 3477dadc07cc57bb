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

from engine.planner.annotations import OcclusionRequest, Plan, PredictionRequest, ScanRequest


@dataclass(frozen=True)
class OcclusionStep:
    """Compute an occlusion map and expose it as its relation."""

    request: OcclusionRequest


@dataclass(frozen=True)
class PredictStep:
    """Run a model over the rows of a query and expose the rows with their predictions as its relation."""

    request: PredictionRequest


@dataclass(frozen=True)
class ScanStep:
    """Run (or serve from the cache) one inference scan and expose its results as its relation."""

    request: ScanRequest


@dataclass(frozen=True)
class QueryStep:
    """DuckDB runs the (rewritten) statement over the relations the steps before it exposed;
    ``rewritten`` is False when the planner changed nothing."""

    tree: exp.Expr
    rewritten: bool


Step = OcclusionStep | PredictStep | ScanStep | QueryStep


def plan_steps(plan: Plan) -> tuple[Step, ...]:
    """Occlusion maps first (their frame queries read tables only), then predictions (their
    queries are planned when they run), then the scans, then the query."""
    steps: list[Step] = [OcclusionStep(r) for r in plan.occlusion_maps]
    steps += [PredictStep(r) for r in plan.predictions]
    steps += [ScanStep(r) for r in plan.scans]
    steps.append(QueryStep(plan.tree, rewritten=bool(plan.scans or plan.occlusion_maps or plan.predictions)))
    return tuple(steps)


def scan_steps(steps: tuple[Step, ...]) -> tuple[ScanStep, ...]:
    return tuple(s for s in steps if isinstance(s, ScanStep))
