"""What planning reads and produces: an immutable catalog snapshot, and a plan (the tree
plus immutable annotations the rules attach to it).

>>> from sqlglot import exp
>>> request = ScanRequest(model="m", table=exp.to_table("traffic"), frame_column="frame",
...                       outputs=frozenset({"prediction"}), relation="__mallard_call_1")
>>> request.describe()
'__mallard_call_1: m ON traffic (frame) OUTPUTS prediction'
>>> request.with_outputs({"features"}).outputs == frozenset({"features", "prediction"})
True
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from sqlglot import exp

from engine.inference.functions import PlannedFunction


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog as the planner sees it: every function Mallard plans, by lower-case name."""

    functions: Mapping[str, PlannedFunction] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, functions: Mapping[str, PlannedFunction]) -> CatalogSnapshot:
        return cls(MappingProxyType(dict(functions)))


@dataclass(frozen=True)
class ScanRequest:
    """One inference scan the rewritten query needs: a model over a frames table.

    ``predicate`` (over the frames table's own columns, unqualified) and ``limit`` restrict
    the frames scanned; ``order`` is 'asc' or 'desc' with a limit.  Trees inside are never
    modified (rules copy them).
    """

    model: str
    table: exp.Table
    frame_column: str
    outputs: frozenset[str]
    relation: str
    predicate: exp.Expr | None = None
    limit: int | None = None
    order: str = "asc"

    @property
    def table_key(self) -> tuple[str, ...]:
        """The frames table's identity within one statement (lower-cased parts)."""
        parts = (self.table.catalog, self.table.db, self.table.name)
        return tuple(p.lower() for p in parts)

    @property
    def alias(self) -> str:
        """The name the query uses for the frames table."""
        return self.table.alias_or_name.lower()

    def with_outputs(self, outputs: Iterable[str]) -> ScanRequest:
        return replace(self, outputs=self.outputs | frozenset(outputs))

    def restricted(self, predicate: exp.Expr | None, limit: int | None = None,
                   order: str = "asc") -> ScanRequest:
        return replace(self, predicate=predicate, limit=limit, order=order)

    def describe(self) -> str:
        """One line for golden files and EXPLAIN: model, table, outputs, restriction."""
        text = f"{self.relation}: {self.model} ON {self.table.sql('duckdb')} ({self.frame_column})"
        text += f" OUTPUTS {', '.join(sorted(self.outputs))}"
        if self.predicate is not None:
            text += f" WHERE {self.predicate.sql('duckdb')}"
        if self.limit is not None:
            text += f" ORDER BY frame_id {self.order.upper()} LIMIT {self.limit}"
        return text


@dataclass(frozen=True)
class OcclusionRequest:
    """One ``occlusion_map(model, (frame query), options...)`` the query reads as a relation."""

    model: str
    frame_query: exp.Select
    options: tuple[tuple[str, Any], ...]
    relation: str

    def describe(self) -> str:
        shown = {"patch": 16, "stride": 4, **dict(self.options)}
        options = ", ".join(f"{k} => {v!r}" if isinstance(v, str) else f"{k} => {v}" for k, v in shown.items())
        return f"{self.relation}: occlusion_map({self.model}, ({self.frame_query.sql('duckdb')}), {options})"


@dataclass(frozen=True)
class PredictionRequest:
    """One ``predict(model, (query), options...)`` the query reads as a relation: the model's
    predictions over every row of ``query``, with the query's columns; or, when ``function``
    is ``evaluate``, the model's accuracy, loss and confusion matrix over those rows."""

    model: str
    query: exp.Query
    options: tuple[tuple[str, Any], ...]
    relation: str
    function: str = "predict"     # 'predict' | 'evaluate'

    def describe(self) -> str:
        options = "".join(f", {k} => {v!r}" if isinstance(v, str) else f", {k} => {v}" for k, v in self.options)
        return f"{self.relation}: {self.function}({self.model}, ({self.query.sql('duckdb')}){options})"


@dataclass(frozen=True)
class RowFunctionRequest:
    """A numeric model's calls in the query (``m(a, b)``, ``logits(m, a, b)``,
    ``features(m, a, b)``) as one vectorized function ``relation`` over ``arity`` numbers,
    registered for the statement; ``output`` is prediction, logits or features."""

    model: str
    output: str
    arity: int
    relation: str

    def describe(self) -> str:
        return f"{self.relation}: {self.model} OVER {self.arity} numbers OUTPUTS {self.output}"


#: Comparison operators a cascade's frame predicate may use, by sqlglot class name.
PREDICATE_OPERATORS = {"EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


@dataclass(frozen=True)
class FramePredicate:
    """A yes/no question about one model output of a frame: ``<model>(frame).<field> <op> <value>``
    with ``field`` one of label, class_id, score."""

    field: str
    operator: str                 # one of PREDICATE_OPERATORS' values
    value: str | int | float

    def describe(self) -> str:
        value = f"'{self.value}'" if isinstance(self.value, str) else repr(self.value)
        return f"{self.field} {self.operator} {value}"


#: What a cascade answers: the frame_ids where ``question`` holds (``selection``), an
#: estimate of ``count(*)`` of them or of ``avg(score)`` (BlazeIt's control variates), or the
#: ``limit`` frames of highest score (``top_k``, confirmed by the reference model).
CASCADE_KINDS = ("selection", "count", "avg", "top_k")


@dataclass(frozen=True)
class CascadeRequest:
    """A query under an accuracy contract answered by a cascade as relation ``relation``:
    for a ``selection`` the frames of ``table`` where ``question`` holds for ``model``'s
    prediction (difference detector, specialized model, then the reference model; its
    frame_ids); for ``count``/``avg`` one row ``estimate`` (``question`` optional for avg);
    for ``top_k`` the ``limit`` frames of highest score (where ``question`` holds, if given)
    with their ``score``.  ``restriction`` (over the frames table's own columns) limits the
    frames considered."""

    model: str
    table: exp.Table
    frame_column: str
    question: FramePredicate | None
    accuracy: float
    relation: str
    restriction: exp.Expr | None = None
    kind: str = "selection"            # one of CASCADE_KINDS
    limit: int | None = None           # top_k: how many frames

    def describe(self) -> str:
        text = f"{self.relation}: {self.model} ON {self.table.sql('duckdb')} ({self.frame_column})"
        text += f" WHERE {self.question.describe()}" if self.question is not None else ""
        text += {"selection": "", "count": " ESTIMATE count", "avg": " ESTIMATE avg(score)",
                 "top_k": f" TOP {self.limit} BY score"}[self.kind]
        text += f" ACCURACY {self.accuracy:g}"
        if self.restriction is not None:
            text += f" RESTRICT {self.restriction.sql('duckdb')}"
        return text


@dataclass(frozen=True)
class Plan:
    """A statement being planned: its tree and the annotations rules have attached so far."""

    tree: exp.Expr
    scans: tuple[ScanRequest, ...] = ()
    occlusion_maps: tuple[OcclusionRequest, ...] = ()
    predictions: tuple[PredictionRequest, ...] = ()
    cascades: tuple[CascadeRequest, ...] = ()
    row_functions: tuple[RowFunctionRequest, ...] = ()
    accuracy: float | None = None       # the session's inference_accuracy contract (None: exact)
    notes: tuple[str, ...] = ()         # why a rule left something as it was (EXPLAIN shows them)

    def but(self, **changes: Any) -> Plan:
        """A new plan with some fields replaced (the plan itself never changes)."""
        return replace(self, **changes)


Rule = Callable[[Plan, CatalogSnapshot], Plan]
