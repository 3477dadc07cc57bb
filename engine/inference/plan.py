"""What the planner's inference rules read and write: model calls found in a query and the
scan requests they become.

A *model call* is ``<model>(frame)``, ``features(<model>, frame)`` or ``logits(<model>,
frame)``.  Each becomes a reference to an output column (``prediction``, ``features``,
``logits``) of a *scan relation*: the results of one inference scan of a frames table,
joined back to the query by ``frame_id``.

>>> import sqlglot
>>> from engine.inference.functions import PlannedFunction
>>> functions = {"m": PlannedFunction("m", "model"), "features": PlannedFunction("features", "features")}
>>> call = model_call(sqlglot.parse_one("features(m, t.frame)"), functions)
>>> call.model, call.output, call.frame.sql()
('m', 'features', 't.frame')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from engine.errors import ProgrammingError
from engine.inference.functions import FEATURES, LOGITS, MODEL, OCCLUSION_MAP

#: The output column of a scan relation that each kind of call reads.
OUTPUT_OF_KIND = {MODEL: "prediction", FEATURES: "features", LOGITS: "logits"}

#: Where the planner keeps its inference scan requests in ``PlanContext.info``.
SCANS = "inference_scans"


@dataclass(frozen=True)
class ModelCall:
    """One call of a model function in a query."""

    node: exp.Expression
    model: str
    output: str             # 'prediction' | 'features' | 'logits'
    frame: exp.Column


@dataclass
class ScanRequest:
    """One inference scan the rewritten query needs: a model over a frames table.

    ``predicate`` (over the frames table's own columns, unqualified) and ``limit`` restrict
    the frames scanned; ``order`` is 'asc' or 'desc' with a limit.  ``scope`` is the SELECT
    whose FROM holds the frames table (rules only; not part of the scan).
    """

    model: str
    table: exp.Table
    frame_column: str
    outputs: set[str]
    relation: str
    predicate: exp.Expression | None = None
    limit: int | None = None
    order: str = "asc"
    scope: Any = field(default=None, repr=False, compare=False)

    @property
    def table_key(self) -> tuple[str, ...]:
        """The frames table's identity within one statement (lower-cased parts)."""
        parts = (self.table.catalog, self.table.db, self.table.name)
        return tuple(p.lower() for p in parts)

    def describe(self) -> str:
        """One line for golden files and EXPLAIN: model, table, outputs, restriction."""
        text = f"{self.relation}: {self.model} ON {self.table.sql('duckdb')} ({self.frame_column})"
        text += f" OUTPUTS {', '.join(sorted(self.outputs))}"
        if self.predicate is not None:
            text += f" WHERE {self.predicate.sql('duckdb')}"
        if self.limit is not None:
            text += f" ORDER BY frame_id {self.order.upper()} LIMIT {self.limit}"
        return text


def function_name(node: exp.Expression) -> str | None:
    """The lower-case name of a function call node that sqlglot does not know (Anonymous)."""
    if isinstance(node, exp.Anonymous) and isinstance(node.this, str):
        return node.this.lower()
    return None


def model_call(node: exp.Expression, functions: dict[str, Any]) -> ModelCall | None:
    """The model call ``node`` is, None if it is not one; ProgrammingError if it is malformed."""
    name = function_name(node)
    info = functions.get(name) if name else None
    if info is None or info.kind == OCCLUSION_MAP:
        return None
    args = list(node.expressions)
    if info.kind == MODEL:
        if len(args) != 1:
            raise ProgrammingError(f"model function {name}(frame) takes one argument, the frame column; found {len(args)}")
        return ModelCall(node, name, OUTPUT_OF_KIND[MODEL], frame_argument(name, args[0]))
    if len(args) != 2:
        raise ProgrammingError(f"{name}(<model>, frame) takes two arguments, a model and the frame column; found {len(args)}")
    model = model_argument(name, args[0], functions)
    return ModelCall(node, model, OUTPUT_OF_KIND[info.kind], frame_argument(name, args[1]))


def model_argument(function: str, arg: exp.Expression, functions: dict[str, Any]) -> str:
    """The model named by a function's first argument (a bare name or a string)."""
    if isinstance(arg, exp.Column) and not arg.table:
        name = arg.name.lower()
    elif isinstance(arg, exp.Literal) and arg.is_string:
        name = arg.this.lower()
    else:
        raise ProgrammingError(f"{function}(<model>, frame) expects a model name first, found {arg.sql('duckdb')}")
    info = functions.get(name)
    if info is None or info.kind != MODEL:
        known = ", ".join(sorted(n for n, f in functions.items() if f.kind == MODEL)) or "none (CREATE MODEL registers one)"
        raise ProgrammingError(f"{function}({name}, ...): unknown model {name!r}; models in this database: {known}")
    return name


def frame_argument(function: str, arg: exp.Expression) -> exp.Column:
    """The frame column a model function is applied to; ProgrammingError for anything else."""
    if isinstance(arg, exp.Column) and isinstance(arg.this, exp.Identifier):
        return arg
    raise ProgrammingError(
        f"{function}(...) expects the frame column of a frames table (frame BLOB of RGB pixels with "
        f"frame_id, height and width), found {arg.sql('duckdb')}"
    )


def scan_requests(context: Any) -> list[ScanRequest]:
    """The scan requests recorded so far in a plan context."""
    return context.info.setdefault(SCANS, [])


def relation_reference(relation: str, output: str, alias: str) -> exp.Subquery:
    """``(SELECT <relation>.<output> FROM <relation> WHERE <relation>.frame_id = <alias>.frame_id)``."""
    query = (
        exp.select(exp.column(output, table=relation))
        .from_(exp.to_table(relation))
        .where(exp.column("frame_id", table=relation).eq(exp.column("frame_id", table=alias)))
    )
    return exp.Subquery(this=query)


def scope_sources(select: exp.Select) -> dict[str, exp.Expression]:
    """The sources of a SELECT's FROM and JOINs by the name the query uses for them."""
    found: dict[str, exp.Expression] = {}
    sources = []
    if select.args.get("from_") is not None:
        sources.append(select.args["from_"].this)
    sources += [join.this for join in select.args.get("joins") or []]
    for source in sources:
        name = source.alias_or_name
        if name:
            found[name.lower()] = source
    return found
