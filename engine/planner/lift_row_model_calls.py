"""Rule: the calls of a numeric model become a vectorized function registered for the statement.

A model over numeric columns (trained by ``CREATE MODEL ... AS`` on numeric columns, or made
with ``inputs``) is called on the values of its inputs, in the order the model reads them:
``m(a, b)``, ``logits(m, a, b)``, ``features(m, a, b)``.  The arguments are any numeric
expressions over any table.  Each (model, output) the query uses becomes one function
``__mallard_fn_<k>`` that DuckDB calls on vectors of rows (Arrow arrays of about two
thousand rows: one network call per vector, see :mod:`engine.serving.row_functions`).  A
NULL argument gives NULL, as SQL functions do.  Unaliased projections keep the name the
call would have had (``label`` for ``m(a, b).label``).  Calls inside ``predict(...)``,
``evaluate(...)`` and ``occlusion_map(...)`` are left to the planning of those queries.

>>> import sqlglot
>>> from engine.planner.annotations import CatalogSnapshot, Plan
>>> from engine.inference.functions import PlannedFunction
>>> catalog = CatalogSnapshot.of({"fares": PlannedFunction("fares", "model", inputs=("km", "hour"))})
>>> plan = lift_row_model_calls(Plan(sqlglot.parse_one("SELECT fares(km, 8).label FROM trips", read="duckdb")), catalog)
>>> plan.tree.sql("duckdb")
'SELECT __MALLARD_FN_1(km, 8).label AS label FROM trips'
>>> [r.describe() for r in plan.row_functions]
['__mallard_fn_1: fares OVER 2 numbers OUTPUTS prediction']
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import MODEL, TABLE_FUNCTIONS, PlannedFunction
from engine.planner.annotations import CatalogSnapshot, Plan, RowFunctionRequest
from engine.planner.model_calls import OUTPUT_OF_KIND, function_name, name_projections, numeric_model


def lift_row_model_calls(plan: Plan, catalog: CatalogSnapshot) -> Plan:
    """Replace each numeric model call by a call of its statement function."""
    if not _calls(plan.tree, catalog.functions):
        return plan
    tree = plan.tree.copy()
    name_projections(tree, lambda projection: bool(_calls(projection, catalog.functions)))
    requests = list(plan.row_functions)
    for node in _calls(tree, catalog.functions):
        model, output, args = _parts(node, catalog.functions)
        request = next((r for r in requests if (r.model, r.output) == (model.name, output)), None)
        if request is None:
            request = RowFunctionRequest(model.name, output, len(args), f"__mallard_fn_{len(requests) + 1}")
            requests.append(request)
        node.replace(exp.Anonymous(this=request.relation, expressions=[a.copy() for a in args]))
    return plan.but(tree=tree, row_functions=tuple(requests))


def _calls(tree: exp.Expr, functions: Mapping[str, PlannedFunction]) -> list[exp.Anonymous]:
    """The numeric model calls of ``tree`` outside table functions, innermost first (so an
    argument that itself calls a model is replaced before the call around it)."""
    found = [n for n in tree.find_all(exp.Anonymous) if numeric_model(n, functions) is not None
             and not _inside_table_function(n, functions)]
    return sorted(found, key=lambda n: -_depth(n))


def _depth(node: exp.Expr) -> int:
    depth, parent = 0, node.parent
    while parent is not None:
        depth, parent = depth + 1, parent.parent
    return depth


def _inside_table_function(node: exp.Expr, functions: Mapping[str, PlannedFunction]) -> bool:
    parent = node.parent
    while parent is not None:
        name = function_name(parent)
        info = functions.get(name) if name else None
        if isinstance(parent, exp.Predict) or (info is not None and info.kind in TABLE_FUNCTIONS):
            return True
        parent = parent.parent
    return False


def _parts(node: exp.Anonymous, functions: Mapping[str, PlannedFunction]) -> tuple[PlannedFunction, str, list[exp.Expr]]:
    """The model, the output the call reads and its numeric arguments; ProgrammingError when
    the number of arguments is not the number of the model's inputs."""
    model = numeric_model(node, functions)
    assert model is not None and model.inputs is not None
    info = functions[function_name(node) or ""]
    args = list(node.expressions) if info.kind == MODEL else list(node.expressions)[1:]
    if len(args) != len(model.inputs):
        call = (f"{model.name}({', '.join(model.inputs)})" if info.kind == MODEL
                else f"{info.name}({model.name}, {', '.join(model.inputs)})")
        raise ProgrammingError(f"model {model.name} takes numeric columns ({', '.join(model.inputs)}), not frames: "
                               f"write {call} (any numeric expressions, in that order); found {len(args)} arguments")
    for arg in args:
        if (isinstance(arg, exp.Literal) and arg.is_string) or isinstance(arg, exp.Boolean):
            raise ProgrammingError(f"{info.name}(...) of the numeric model {model.name} takes numbers "
                                   f"({', '.join(model.inputs)}); found {arg.sql('duckdb')}")
        if isinstance(arg, (exp.Kwarg, exp.PropertyEQ, exp.Star)):
            raise ProgrammingError(f"{info.name}(...) of the numeric model {model.name} takes its inputs' values "
                                   f"in order; found {arg.sql('duckdb')}")
    return model, OUTPUT_OF_KIND[info.kind], args
