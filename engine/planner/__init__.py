"""The planner: rewrites a parsed statement that calls functions Mallard plans.

Each rule is a pure function ``rule(plan, catalog) -> plan`` (as sqlglot's optimizer
rules are): it reads the plan so far (the statement's tree and the immutable annotations
earlier rules attached, :class:`~engine.planner.annotations.Plan`) and an immutable
:class:`~engine.planner.annotations.CatalogSnapshot`, never changes them, and returns a new
plan.  The rules are listed once, in order, in :data:`RULES`, one module each.
:mod:`engine.planner.steps` turns a finished plan into the steps that execution and
``EXPLAIN`` both read.

>>> import sqlglot
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> plan = optimize(sqlglot.parse_one("SELECT m(frame).label FROM traffic WHERE frame_id < 5", read="duckdb"), catalog)
>>> [scan.describe() for scan in plan.scans]
['__mallard_scan_1: m ON traffic (frame) OUTPUTS prediction WHERE frame_id < 5']
"""
from __future__ import annotations

from sqlglot import exp

from engine.planner.annotations import CatalogSnapshot, Plan, Rule
from engine.planner.lift_model_calls import lift_model_calls
from engine.planner.lift_occlusion_maps import lift_occlusion_maps
from engine.planner.lift_predictions import lift_predictions
from engine.planner.lift_row_model_calls import lift_row_model_calls
from engine.planner.plan_cascades import plan_cascades
from engine.planner.push_frame_predicates import push_frame_predicates
from engine.planner.share_backbones import share_backbones

#: The ordered rewrite rules, each in its own module of this package.
RULES: tuple[Rule, ...] = (
    lift_occlusion_maps,     # inference: occlusion_map(...) in FROM -> a relation computed first
    lift_predictions,        # serving: predict/evaluate(model, (query)) in FROM -> a relation computed first
    lift_row_model_calls,    # numeric models: m(a, b) -> a vectorized function registered for the statement
    plan_cascades,           # cascades: a selection under inference_accuracy -> a cascade relation (NoScope)
    lift_model_calls,        # inference: model calls -> scan requests + lookups by frame_id
    push_frame_predicates,   # inference: WHERE/LIMIT on the frames table restrict the scans
    share_backbones,         # inference: one scan per (model, frames table): the backbone runs once
)


def optimize(tree: exp.Expr, catalog: CatalogSnapshot, accuracy: float | None = None) -> Plan:
    """Apply every rule in order; ``tree`` itself is left as it is.  ``accuracy``: the
    session's ``inference_accuracy`` contract (None: exact inference)."""
    plan = Plan(tree, accuracy=accuracy)
    for rule in RULES:
        plan = rule(plan, catalog)
    return plan


__all__ = ["RULES", "CatalogSnapshot", "Plan", "Rule", "optimize"]
