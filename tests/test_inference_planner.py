"""The planner's rules, each alone, as golden files, plus the errors they raise.

``tests/golden/<rule>/<case>.sql`` holds a plan as text (a query, and one ``-- scan`` /
``-- occlusion`` line per annotation earlier rules would have attached: see
:mod:`engine.planner.plan_text`); ``<case>.expected.sql`` holds the plan that rule alone
makes of it.  Expected files are written by hand: no test writes them.  Every rule of
RULES must have golden cases.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine.dialect import parse_statements
from engine.inference.functions import EVALUATE, FEATURES, LOGITS, MODEL, OCCLUSION_MAP, PREDICT, PlannedFunction
from engine.planner import RULES, CatalogSnapshot, optimize
from engine.planner.plan_text import parse, render

GOLDEN = Path(__file__).parent / "golden"
CATALOG = CatalogSnapshot.of({
    "mobilenet": PlannedFunction("mobilenet", MODEL),
    "resnet": PlannedFunction("resnet", MODEL),
    "features": PlannedFunction("features", FEATURES),
    "logits": PlannedFunction("logits", LOGITS),
    "occlusion_map": PlannedFunction("occlusion_map", OCCLUSION_MAP),
    "predict": PlannedFunction("predict", PREDICT),
    "evaluate": PlannedFunction("evaluate", EVALUATE),
    "fares": PlannedFunction("fares", MODEL, inputs=("km", "hour")),
})
RULE_BY_NAME = {rule.__name__: rule for rule in RULES}
CASES = sorted(p for p in GOLDEN.glob("*/*.sql") if not p.name.endswith(".expected.sql"))


def test_every_rule_has_its_module_and_golden_cases_and_every_golden_folder_a_rule():
    folders = {p.name for p in GOLDEN.iterdir() if p.is_dir()}
    assert folders == set(RULE_BY_NAME), f"rules without golden cases: {set(RULE_BY_NAME) - folders}; " \
                                         f"golden folders without a rule: {folders - set(RULE_BY_NAME)}"
    for name in RULE_BY_NAME:
        assert (Path(engine.__file__).parent / "planner" / f"{name}.py").exists()
        assert len(list((GOLDEN / name).glob("*.expected.sql"))) >= 2, name


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden(case: Path):
    expected_path = case.with_name(case.stem + ".expected.sql")
    assert expected_path.exists(), f"{expected_path} is missing: write the plan the rule should make"
    given = parse(case.read_text())
    snapshot = render(given)
    got = RULE_BY_NAME[case.parent.name](given, CATALOG)
    assert render(got) == expected_path.read_text()
    assert render(given) == snapshot, "a rule changed its input plan"


def test_rules_leave_queries_without_model_calls_alone():
    tree = parse_statements("SELECT frame_id, frame_mean(frame) FROM traffic WHERE frame_id < 3")[0]
    before = tree.sql("duckdb")
    plan = optimize(tree, CATALOG)
    assert plan.tree.sql("duckdb") == before and not plan.scans and not plan.occlusion_maps
    assert tree.sql("duckdb") == before


def test_a_plan_is_immutable():
    plan = optimize(parse_statements("SELECT mobilenet(frame).label FROM traffic")[0], CATALOG)
    with pytest.raises(AttributeError):
        plan.scans = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.scans[0].model = "resnet"  # type: ignore[misc]


@pytest.mark.parametrize("sql, message", [
    ("SELECT mobilenet(1) FROM traffic", "mobilenet(...) expects the frame column of a frames table"),
    ("SELECT mobilenet(frame || 'x') FROM traffic", "expects the frame column"),
    ("SELECT mobilenet(frame, 2) FROM traffic", "takes one argument, the frame column; found 2"),
    ("SELECT features(frame) FROM traffic", "takes two arguments"),
    ("SELECT features(vgg, frame) FROM traffic", "unknown model 'vgg'; models in this database: fares, mobilenet, resnet"),
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
    ("SELECT fares(km).label FROM trips", "model fares takes numeric columns (km, hour), not frames: write fares(km, hour)"),
    ("SELECT logits(fares, km, hour, 3) FROM trips", "write logits(fares, km, hour) (any numeric expressions"),
    ("SELECT fares(km, 'eight') FROM trips", "takes numbers (km, hour); found 'eight'"),
    ("SELECT fares(km, hour => 8) FROM trips", "takes its inputs' values in order"),
    ("SELECT evaluate(fares, (SELECT * FROM trips)) FROM trips", "evaluate(...) is a table function"),
    ("SELECT * FROM evaluate(fares)", "evaluate takes a model and a query"),
    ("SELECT * FROM evaluate(fares, trips, batch_size => 4)", "unknown evaluate option 'batch_size'"),
    ("SELECT * FROM evaluate(vgg, trips)", "unknown model 'vgg'"),
])
def test_malformed_calls_are_programming_errors(sql, message):
    with pytest.raises(engine.ProgrammingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        optimize(parse_statements(sql)[0], CATALOG)
