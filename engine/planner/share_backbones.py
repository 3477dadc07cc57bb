"""Rule: one inference scan per model and frames table (multi-query optimization).

Scan requests of the same model over the same frames table (the label, score, features
and logits of one model, in any SELECT of the statement) merge into one scan that runs the
backbone once and yields every output any of them needs; it covers the union of their
frame restrictions.  The merged scans become the plan's steps.

>>> import sqlglot
>>> from engine.planner import PlanContext
>>> from engine.planner.lift_model_calls import lift_model_calls
>>> from engine.inference.functions import PlannedFunction
>>> functions = {"m": PlannedFunction("m", "model"), "features": PlannedFunction("features", "features")}
>>> context = PlanContext(functions=functions)
>>> query = sqlglot.parse_one("SELECT m(frame).label, (SELECT features(m, frame) FROM traffic LIMIT 1) FROM traffic", read="duckdb")
>>> _ = share_backbones(lift_model_calls(query, context), context)
>>> [step.request.describe() for step in context.steps]
['__mallard_scan_1: m ON traffic (frame) OUTPUTS features, prediction']
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from engine.inference.plan import SCANS, ScanRequest, scan_requests
from engine.inference.scan import InferenceScan


def share_backbones(expression: exp.Expression, context: Any) -> exp.Expression:
    """Merge scan requests by (model, frames table, frame column); add one step per merged scan."""
    requests = scan_requests(context)
    if not requests:
        return expression
    groups: dict[tuple[Any, ...], list[ScanRequest]] = {}
    for request in requests:
        groups.setdefault((request.model, request.table_key, request.frame_column), []).append(request)
    merged: list[ScanRequest] = []
    renames: dict[str, str] = {}
    for index, group in enumerate(groups.values(), start=1):
        scan = _merge(group, f"__mallard_scan_{index}")
        renames.update({r.relation: scan.relation for r in group})
        merged.append(scan)
    _rename_relations(expression, renames)
    context.info[SCANS] = merged
    steps = [InferenceScan(scan) for scan in merged]
    for step in steps:
        step.siblings = steps
    context.steps.extend(steps)
    return expression


def _merge(group: list[ScanRequest], relation: str) -> ScanRequest:
    first = group[0]
    table = exp.Table(this=first.table.this.copy(), db=first.table.args.get("db"),
                      catalog=first.table.args.get("catalog"))
    outputs = set().union(*(r.outputs for r in group))
    if len(group) == 1:
        return ScanRequest(first.model, table, first.frame_column, outputs, relation,
                           first.predicate, first.limit, first.order)
    if any(r.predicate is None or r.limit is not None for r in group):
        return ScanRequest(first.model, table, first.frame_column, outputs, relation)  # every frame
    unique = list({r.predicate.sql("duckdb"): r.predicate for r in group if r.predicate is not None}.values())
    predicate = unique[0] if len(unique) == 1 else exp.or_(*[exp.paren(p.copy()) for p in unique])
    return ScanRequest(first.model, table, first.frame_column, outputs, relation, predicate)


def _rename_relations(expression: exp.Expression, renames: dict[str, str]) -> None:
    for table in expression.find_all(exp.Table):
        if table.name in renames:
            table.set("this", exp.to_identifier(renames[table.name]))
    for column in expression.find_all(exp.Column):
        if column.table in renames:
            column.set("table", exp.to_identifier(renames[column.table]))
