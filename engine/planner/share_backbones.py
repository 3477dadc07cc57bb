"""Rule: one inference scan per model and frames table (multi-query optimization).

Scan requests of the same model over the same frames table (the label, score, features
and logits of one model, in any SELECT of the statement) merge into one scan that runs the
backbone once and yields every output any of them needs; it covers the union of their
frame restrictions.

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.planner.lift_model_calls import lift_model_calls
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model"), "features": PlannedFunction("features", "features")})
>>> query = sqlglot.parse_one("SELECT m(frame).label, (SELECT features(m, frame) FROM traffic LIMIT 1) FROM traffic", read="duckdb")
>>> [scan.describe() for scan in share_backbones(lift_model_calls(Plan(query), catalog), catalog).scans]
['__mallard_scan_1: m ON traffic (frame) OUTPUTS features, prediction']
"""
from __future__ import annotations

from sqlglot import exp

from engine.planner.annotations import CatalogSnapshot, Plan, ScanRequest


def share_backbones(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Merge scan requests by (model, frames table, frame column); rename the lookups to match."""
    if not plan.scans:
        return plan
    groups: dict[tuple[object, ...], list[ScanRequest]] = {}
    for request in plan.scans:
        groups.setdefault((request.model, request.table_key, request.frame_column), []).append(request)
    merged: list[ScanRequest] = []
    renames: dict[str, str] = {}
    for index, group in enumerate(groups.values(), start=1):
        scan = _merge(group, f"__mallard_scan_{index}")
        renames.update({r.relation: scan.relation for r in group})
        merged.append(scan)
    tree = plan.tree.copy()
    _rename_relations(tree, renames)
    return plan.but(tree=tree, scans=tuple(merged))


def _merge(group: list[ScanRequest], relation: str) -> ScanRequest:
    first = group[0]
    table = exp.Table(this=first.table.this.copy(), db=first.table.args.get("db"),
                      catalog=first.table.args.get("catalog"))
    outputs = frozenset().union(*(r.outputs for r in group))
    if len(group) == 1:
        return ScanRequest(first.model, table, first.frame_column, outputs, relation,
                           first.predicate, first.limit, first.order)
    if any(r.predicate is None or r.limit is not None for r in group):
        return ScanRequest(first.model, table, first.frame_column, outputs, relation)  # every frame
    unique = list({r.predicate.sql("duckdb"): r.predicate for r in group if r.predicate is not None}.values())
    predicate = unique[0] if len(unique) == 1 else exp.or_(*[exp.paren(p.copy()) for p in unique])
    return ScanRequest(first.model, table, first.frame_column, outputs, relation, predicate)


def _rename_relations(expression: exp.Expr, renames: dict[str, str]) -> None:
    for table in expression.find_all(exp.Table):
        if table.name in renames:
            table.set("this", exp.to_identifier(renames[table.name]))
    for column in expression.find_all(exp.Column):
        if column.table in renames:
            column.set("table", exp.to_identifier(renames[column.table]))
