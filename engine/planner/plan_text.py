"""A plan as text and back: the statement's SQL, then one comment line per annotation.

Golden files of the planner's rules hold plans in this form (an input plan, and the plan a
rule makes of it), so each rule is tested alone on its own inputs.

>>> import sqlglot
>>> from engine.planner import CatalogSnapshot, optimize
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"m": PlannedFunction("m", "model")})
>>> text = render(optimize(sqlglot.parse_one("SELECT m(frame).label FROM t WHERE frame_id < 3", read="duckdb"), catalog))
>>> print(text.splitlines()[-1])
-- scan __mallard_scan_1: m ON t (frame) OUTPUTS prediction WHERE frame_id < 3
>>> render(parse(text)) == text
True
"""
from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from engine.options import literal_value
from engine.planner.annotations import (
    CascadeRequest,
    FramePredicate,
    OcclusionRequest,
    Plan,
    PredictionRequest,
    RowFunctionRequest,
    ScanRequest,
)

_SCAN = re.compile(
    r"^-- scan (?P<relation>\S+): (?P<model>\S+) ON (?P<table>.+?) \((?P<column>\w+)\) OUTPUTS (?P<outputs>[\w, ]+?)"
    r"(?: WHERE (?P<predicate>.+?))?(?: ORDER BY frame_id (?P<order>ASC|DESC) LIMIT (?P<limit>\d+))?$")
_OCCLUSION = re.compile(r"^-- occlusion (?P<relation>\S+): (?P<call>occlusion_map\(.*\))$")
_PREDICT = re.compile(r"^-- (?P<function>predict|evaluate) (?P<relation>\S+): (?P<call>(?:predict|evaluate)\(.*\))$")
_FUNCTION = re.compile(r"^-- function (?P<relation>\S+): (?P<model>\S+) OVER (?P<arity>\d+) numbers OUTPUTS (?P<output>\w+)$")
_CASCADE = re.compile(
    r"^-- cascade (?P<relation>\S+): (?P<model>\S+) ON (?P<table>.+?) \((?P<column>\w+)\)"
    r"(?: WHERE (?P<field>\w+) (?P<op>=|<>|>=|<=|>|<) (?P<value>.+?))?"
    r"(?: ESTIMATE (?P<estimate>count|avg\(score\))| TOP (?P<limit>\d+) BY score)?"
    r" ACCURACY (?P<accuracy>[\d.e-]+)(?: RESTRICT (?P<restriction>.+))?$")
_ACCURACY = re.compile(r"^-- accuracy (?P<accuracy>[\d.e-]+)$")
_NOTE = re.compile(r"^-- note (?P<note>.+)$")


def render(plan: Plan) -> str:
    """The plan's SQL (pretty) and its annotations, one ``-- scan``/``-- occlusion``/``-- predict`` line each."""
    lines = [plan.tree.sql("duckdb", pretty=True)]
    lines += [f"-- scan {scan.describe()}" for scan in plan.scans]
    lines += [f"-- occlusion {request.describe()}" for request in plan.occlusion_maps]
    lines += [f"-- {request.function} {request.describe()}" for request in plan.predictions]
    lines += [f"-- function {request.describe()}" for request in plan.row_functions]
    lines += [f"-- cascade {request.describe()}" for request in plan.cascades]
    lines += [f"-- accuracy {plan.accuracy:g}"] if plan.accuracy is not None else []
    lines += [f"-- note {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"


def parse(text: str) -> Plan:
    """The plan :func:`render` wrote (or a plain query: a plan without annotations)."""
    sql_lines, scans, occlusions, predictions, cascades, notes, functions = [], [], [], [], [], [], []
    accuracy: float | None = None
    for line in text.splitlines():
        scan, occlusion, predict = _SCAN.match(line), _OCCLUSION.match(line), _PREDICT.match(line)
        cascade, contract, note = _CASCADE.match(line), _ACCURACY.match(line), _NOTE.match(line)
        if cascade:
            cascades.append(_cascade(cascade))
        elif contract:
            accuracy = float(contract["accuracy"])
        elif note:
            notes.append(note["note"])
        elif scan:
            scans.append(_scan(scan))
        elif occlusion:
            occlusions.append(_occlusion(occlusion))
        elif predict:
            predictions.append(_prediction(predict))
        elif function := _FUNCTION.match(line):
            functions.append(RowFunctionRequest(function["model"], function["output"], int(function["arity"]),
                                                function["relation"]))
        else:
            sql_lines.append(line)
    tree = sqlglot.parse_one("\n".join(sql_lines), read=_mallard())
    return Plan(tree, tuple(scans), tuple(occlusions), tuple(predictions), tuple(cascades), tuple(functions), accuracy,
                tuple(notes))


def _mallard() -> type[sqlglot.Dialect]:
    """Mallard's dialect (it reads ``predict(...)`` as Mallard's table function)."""
    from engine.dialect import Mallard

    return Mallard


def _scan(match: re.Match[str]) -> ScanRequest:
    select = sqlglot.parse_one(f"SELECT * FROM {match['table']}", read="duckdb")
    table = select.args["from_"].this
    assert isinstance(table, exp.Table)
    predicate = sqlglot.parse_one(match["predicate"], read="duckdb") if match["predicate"] else None
    return ScanRequest(model=match["model"], table=table, frame_column=match["column"],
                       outputs=frozenset(o.strip() for o in match["outputs"].split(",")), relation=match["relation"],
                       predicate=predicate, limit=int(match["limit"]) if match["limit"] else None,
                       order=(match["order"] or "ASC").lower())


def _occlusion(match: re.Match[str]) -> OcclusionRequest:
    call = sqlglot.parse_one(match["call"], read="duckdb")
    model, query, *named = call.expressions
    frame_query = query.this if isinstance(query, exp.Subquery) else query
    assert isinstance(frame_query, exp.Select)
    options = tuple((arg.this.name, literal_value(arg.expression)) for arg in named
                    if (arg.this.name, literal_value(arg.expression)) not in (("patch", 16), ("stride", 4)))
    return OcclusionRequest(model=model.name, frame_query=frame_query, options=options, relation=match["relation"])


def _prediction(match: re.Match[str]) -> PredictionRequest:
    call = sqlglot.parse_one(match["call"], read=_mallard())
    model, query, *named = call.expressions
    rows = query.this if isinstance(query, exp.Subquery) else query
    assert isinstance(rows, exp.Query)
    options = tuple((arg.this.name, literal_value(arg.expression)) for arg in named)
    return PredictionRequest(model=model.name, query=rows, options=options, relation=match["relation"],
                             function=match["function"])


def _cascade(match: re.Match[str]) -> CascadeRequest:
    select = sqlglot.parse_one(f"SELECT * FROM {match['table']}", read="duckdb")
    table = select.args["from_"].this
    assert isinstance(table, exp.Table)
    question = None
    if match["field"]:
        question = FramePredicate(match["field"], match["op"], literal_value(sqlglot.parse_one(match["value"],
                                                                                              read="duckdb")))
    restriction = sqlglot.parse_one(match["restriction"], read="duckdb") if match["restriction"] else None
    kind = "top_k" if match["limit"] else {"count": "count", "avg(score)": "avg", None: "selection"}[match["estimate"]]
    return CascadeRequest(model=match["model"], table=table, frame_column=match["column"], question=question,
                          accuracy=float(match["accuracy"]), relation=match["relation"], restriction=restriction,
                          kind=kind, limit=int(match["limit"]) if match["limit"] else None)
