"""The inference rules of the planner, as golden files, plus the errors they raise.

``tests/golden/<rule>/<case>.sql`` holds a query; ``<case>.expected.sql`` the query after
the rules up to and including ``<rule>`` (in RULES order), followed by one ``-- scan``
line per scan request.  Set MALLARD_UPDATE_GOLDEN=1 to rewrite the expected files (then
read the diff).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import engine
from engine.dialect import parse_statements
from engine.inference.functions import FEATURES, LOGITS, MODEL, OCCLUSION_MAP, PlannedFunction
from engine.inference.occlusion import OcclusionMap
from engine.inference.plan import scan_requests
from engine.planner import RULES, PlanContext

GOLDEN = Path(__file__).parent / "golden"
FUNCTIONS = {
    "mobilenet": PlannedFunction("mobilenet", MODEL),
    "resnet": PlannedFunction("resnet", MODEL),
    "features": PlannedFunction("features", FEATURES),
    "logits": PlannedFunction("logits", LOGITS),
    "occlusion_map": PlannedFunction("occlusion_map", OCCLUSION_MAP),
}
RULE_NAMES = [rule.__name__ for rule in RULES]
INFERENCE_RULES = ["lift_occlusion_maps", "lift_model_calls", "push_frame_predicates", "share_backbones"]
CASES = sorted(p for rule in INFERENCE_RULES for p in (GOLDEN / rule).glob("*.sql") if not p.name.endswith(".expected.sql"))


def plan(sql: str, upto: str) -> str:
    """The query after RULES up to ``upto``, and one line per scan request."""
    context = PlanContext(functions=FUNCTIONS)
    tree = parse_statements(sql)[0].copy()
    for rule in RULES[: RULE_NAMES.index(upto) + 1]:
        tree = rule(tree, context)
    scans = [f"-- scan {r.describe()}" for r in scan_requests(context)]
    occlusions = [f"-- step {s.describe()}" for s in context.steps if isinstance(s, OcclusionMap)]
    return "\n".join([tree.sql("duckdb", pretty=True), *scans, *occlusions]) + "\n"


def test_every_rule_is_a_module_of_its_own_with_golden_files():
    for name in INFERENCE_RULES:
        assert name in RULE_NAMES
        assert (Path(engine.__file__).parent / "planner" / f"{name}.py").exists()
        assert any((GOLDEN / name).glob("*.expected.sql")), name


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden(case: Path):
    expected_path = case.with_name(case.stem + ".expected.sql")
    got = plan(case.read_text(), upto=case.parent.name)
    if os.environ.get("MALLARD_UPDATE_GOLDEN"):
        expected_path.write_text(got)
    assert expected_path.exists(), f"{expected_path} is missing (MALLARD_UPDATE_GOLDEN=1 writes it)"
    assert got == expected_path.read_text()


def test_rules_leave_queries_without_model_calls_alone():
    sql = "SELECT frame_id, frame_mean(frame) FROM traffic WHERE frame_id < 3"
    context = PlanContext(functions=FUNCTIONS)
    tree = parse_statements(sql)[0]
    for rule in RULES:
        tree = rule(tree, context)
    assert tree == parse_statements(sql)[0] and not context.steps


@pytest.mark.parametrize("sql, message", [
    ("SELECT mobilenet(1) FROM traffic", "mobilenet(...) expects the frame column of a frames table"),
    ("SELECT mobilenet(frame || 'x') FROM traffic", "expects the frame column"),
    ("SELECT mobilenet(frame, 2) FROM traffic", "takes one argument, the frame column; found 2"),
    ("SELECT features(frame) FROM traffic", "takes two arguments"),
    ("SELECT features(vgg, frame) FROM traffic", "unknown model 'vgg'; models in this database: mobilenet, resnet"),
    ("SELECT logits(1, frame) FROM traffic", "expects a model name first"),
    ("SELECT mobilenet(frame) FROM traffic a JOIN bikes b ON a.frame_id = b.frame_id",
     "qualify the frame column with its table"),
    ("SELECT mobilenet(c.frame) FROM traffic a", "found no table named c there"),
    ("SELECT mobilenet(frame) FROM (SELECT * FROM traffic) s", "which is a subquery, CTE or function"),
    ("WITH s AS (SELECT * FROM traffic) SELECT mobilenet(frame) FROM s", "which is a subquery, CTE or function"),
    ("SELECT occlusion_map(mobilenet, (SELECT frame FROM traffic)) FROM traffic", "occlusion_map(...) is a table function"),
    ("SELECT * FROM occlusion_map(mobilenet)", "takes a model and a frame query, then named options; found 1"),
    ("SELECT * FROM occlusion_map(mobilenet, frame)", "a query of one frame"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame_mean(frame) FROM traffic))", "to select a frame column"),
    ("SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic), size => 3)", "unknown occlusion_map option 'size'"),
    ("SELECT * FROM occlusion_map(vgg, (SELECT frame FROM traffic))", "unknown model 'vgg'"),
])
def test_malformed_calls_are_programming_errors(sql, message):
    context = PlanContext(functions=FUNCTIONS)
    with pytest.raises(engine.ProgrammingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        for rule in RULES:
            rule(parse_statements(sql)[0], context)
