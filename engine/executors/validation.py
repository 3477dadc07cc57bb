"""Executors of the data validation statements; the work lives in :mod:`engine.validation`.

Each validates its input before writing anything, and writes inside ``session.atomic()``.
"""
from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from engine.dialect.validation import (
    AlterSchema,
    ComputeStatistics,
    DropDataSchema,
    DropStatistics,
    ExportSchema,
    ImportSchema,
    InferSchema,
    SchemaEdit,
    ShowSchema,
    ShowStatistics,
    UpdateSchema,
    Validate,
)
from engine.errors import DataError, ProgrammingError
from engine.options import literal_value, read_options
from engine.statement_result import StatementResult
from engine.system_catalog import catalog_name
from engine.validation import schema_edits
from engine.validation import statistics_store as store
from engine.validation.inference import InferenceOptions, infer_schema
from engine.validation.json_io import read_document, write_document
from engine.validation.names import object_name
from engine.validation.schema import Schema
from engine.validation.schema_formats import file_format, parse_schema, schema_text
from engine.validation.schema_store import load_schema, save_schema, schema_versions
from engine.validation.schema_table import schema_query
from engine.validation.schema_update import CHANGE_COLUMNS, update_schema
from engine.validation.sources import StatisticsRef, check_source, statistics_of, table_statistics
from engine.validation.span_statistics import SKETCH_ACCURACY, stage_span
from engine.validation.tfdv_schema import UNMAPPED_COLUMNS, Unmapped
from engine.validation.validation_run import ANOMALY_COLUMNS, References, SchemaVersion, find_anomalies

if TYPE_CHECKING:
    from engine.session import Session

_views = itertools.count(1)


def compute_statistics(session: Session, node: ComputeStatistics) -> StatementResult:
    """``COMPUTE STATISTICS FOR <table> [AS <name> | APPEND TO <name>] [WITH (max_values = N)]``."""
    session.require_writable("COMPUTE STATISTICS")
    table = node.this
    name = object_name(node.args["name"]) if node.args.get("name") else catalog_name(table)
    options = read_options(node)
    append = bool(node.args.get("append"))
    if append:
        if options:
            raise ProgrammingError("COMPUTE STATISTICS ... APPEND TO takes no options: a span uses its set's sizes")
        store.require_statistics(session, name)
        max_values = session.scalar("SELECT max_values FROM mallard.statistics WHERE name = ?", [name])
    else:
        max_values = options.get("max_values", session.settings["validation_max_values"])
    started = time.perf_counter()
    with store.staged(session) as key:
        staged = stage_span(session, table, key, max_values)
        columns = staged.columns
        if append:
            _check_same_columns(session, name, {c.name: c.kind for c in columns}, table.sql("duckdb"))
        with session.atomic():
            if not append:
                store.delete_statistics(session, name)
                store.create_statistics(session, name, SKETCH_ACCURACY, max_values)
            span = store.next_span(session, name)
            store.save_span(session, key, name, span)
        rows = session.scalar("SELECT row_count FROM mallard.statistics_spans WHERE statistics = ? AND span = ?",
                           [name, span])
    seconds = time.perf_counter() - started
    return StatementResult(rowcount=rows, message=(
        f"COMPUTE STATISTICS: {rows} rows x {len(columns)} columns of {table.sql('duckdb')} as span {span} "
        f"of statistics {name} in {seconds:.2f} s{staged.cluster}"))


def _check_same_columns(session: Session, name: str, found: dict[str, str], table: str) -> None:
    expected = store.stored_columns(session, name)
    if expected == found:
        return
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    changed = [f"{c} ({expected[c]} -> {found[c]})" for c in expected if c in found and expected[c] != found[c]]
    details = "; ".join(part for part in (
        f"missing {', '.join(missing)}" if missing else "",
        f"new {', '.join(extra)}" if extra else "",
        f"changed type {', '.join(changed)}" if changed else "") if part)
    raise ProgrammingError(
        f"cannot append {table} to statistics {name}: expected the same columns and types as its spans, "
        f"found {details}; compute a new set with COMPUTE STATISTICS FOR {table} AS <name>")


_SHOWN_COLUMNS = (
    "column_name, type, sql_type, count, present, missing, missing_fraction, zeros AS num_zeros, nan_count, "
    "inf_count, mean, std_dev, min, median, max, histogram, quantile_histogram, distinct_count, avg_length, "
    "top_values, spans"
)


def show_statistics(session: Session, node: ShowStatistics) -> StatementResult:
    """``SHOW STATISTICS [<name>]``: a set's merged statistics, or the list of sets."""
    if node.this is None:
        return StatementResult(rows=session.relation(
            "SELECT s.name, count(p.span) AS spans, sum(p.row_count)::BIGINT AS row_count, "
            "list(p.source ORDER BY p.span) AS sources, s.created_at, s.updated_at "
            "FROM mallard.statistics s LEFT JOIN mallard.statistics_spans p ON p.statistics = s.name "
            "GROUP BY ALL ORDER BY s.name"))
    name = object_name(node.this)
    store.require_statistics(session, name)
    return StatementResult(rows=session.relation(f"SELECT {_SHOWN_COLUMNS} FROM validation_statistics(?)", [name]))


def drop_statistics(session: Session, node: DropStatistics) -> StatementResult:
    """``DROP STATISTICS [IF EXISTS] <name>``."""
    session.require_writable("DROP STATISTICS")
    name = object_name(node.this)
    if not store.statistics_exists(session, name):
        if node.args.get("exists"):
            return StatementResult(message=f"DROP STATISTICS: no statistics named {name}")
        store.require_statistics(session, name)
    with session.atomic():
        store.delete_statistics(session, name)
    return StatementResult(message=f"DROP STATISTICS {name}")


def infer_schema_statement(session: Session, node: InferSchema) -> StatementResult:
    """``INFER [OR REPLACE] SCHEMA <name> FROM <table or statistics> [WITH (...)]``: returns the schema."""
    session.require_writable("INFER SCHEMA")
    name = object_name(node.this)
    options = InferenceOptions(**read_options(node))
    versions = schema_versions(session, name)
    if versions and not node.args.get("replace"):
        raise ProgrammingError(
            f"data schema {name!r} exists (version {versions[-1]}); UPDATE SCHEMA {name} FROM <table> evolves it, "
            f"INFER OR REPLACE SCHEMA {name} ... infers a new version from scratch")
    source = node.args["source"]
    with statistics_of(session, source, role="INFER SCHEMA ... FROM") as ref:
        schema = infer_schema(session, ref.key, options)
    with session.atomic():
        version = save_schema(session, name, schema, statement=node.sql("mallard"), source=ref.label)
    return StatementResult(rows=session.relation(schema_query(), [name, version]), message=(
        f"INFER SCHEMA: {name} version {version}, {len(schema.columns)} columns from "
        f"{'statistics' if ref.stored else 'table'} {ref.label}"))


def show_schema(session: Session, node: ShowSchema) -> StatementResult:
    """``SHOW SCHEMA <name> [VERSION <n>]``: one row per column."""
    requested = int(node.args["version"].this) if node.args.get("version") else None
    name = object_name(node.this)
    version, _ = load_schema(session, name, requested)
    return StatementResult(rows=session.relation(schema_query(), [name, version]),
                           message=f"SHOW SCHEMA {name} version {version}")


def validate(session: Session, node: Validate) -> StatementResult:
    """``VALIDATE [STATISTICS] <target> AGAINST <schema> [VERSION <n>] [WITH (environment, previous, training)]``."""
    schema_name = object_name(node.args["schema"])
    requested = int(node.args["version"].this) if node.args.get("version") else None
    version, schema = load_schema(session, schema_name, requested)
    options = read_options(node)
    environment = _environment(schema, schema_name, options.get("environment"))
    for role in ("previous", "training"):
        if role in options:
            check_source(session, options[role], role=f"VALIDATE ... WITH ({role} = ...)")
    started = time.perf_counter()
    with ExitStack() as stack:
        current = stack.enter_context(_current_statistics(session, node))
        refs = {role: stack.enter_context(statistics_of(session, options[role], role=role))
                for role in ("previous", "training") if role in options}
        keys = References(current=current.key, previous=refs["previous"].key if "previous" in refs else None,
                          training=refs["training"].key if "training" in refs else None)
        anomalies = find_anomalies(session, SchemaVersion(schema_name, version, schema), keys, environment)
        rows = session.scalar("SELECT sum(row_count) FROM validation_spans(?)", [current.key])
    seconds = time.perf_counter() - started
    if not session.read_only:
        _record_run(session, anomalies, schema_name, version, current.label, environment,
                    {r: refs[r].label for r in refs}, rows, seconds)
    return StatementResult(rows=anomalies, message=(
        f"VALIDATE: {anomalies.num_rows} anomalies in {current.label} ({rows} rows) against schema "
        f"{schema_name} version {version} in {seconds:.2f} s"))


def _current_statistics(session: Session, node: Validate) -> Any:
    """Stored statistics (VALIDATE STATISTICS) as they are, or those of the rows, computed now."""
    if node.args.get("statistics"):
        name = object_name(node.this)
        store.require_statistics(session, name)
        return nullcontext(StatisticsRef(name, name, True))
    source = node.this
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        return table_statistics(session, source)
    return _query_statistics(session, source)


@contextmanager
def _query_statistics(session: Session, source: exp.Expr) -> Iterator[StatisticsRef]:
    """Statistics of a query or table function's rows, through a temporary view that lives
    only while the statement computes them."""
    query = source.this if isinstance(source, exp.Subquery) else exp.select("*").from_(source.copy())
    name = f"mallard_validate_rows_{next(_views)}"
    session.sql(exp.Create(this=exp.to_table(name), kind="VIEW", expression=query, replace=True,
                           properties=exp.Properties(expressions=[exp.TemporaryProperty()])))
    view = exp.to_table(f"temp.main.{name}")
    try:
        with table_statistics(session, view) as ref:
            yield StatisticsRef(ref.key, source.sql("duckdb"), False)
    finally:
        session.sql(exp.Drop(tables=[view], kind="VIEW", exists=True))


def _environment(schema: Schema, name: str, value: str | None) -> str | None:
    if value is None:
        return None
    environment = value.upper()
    if environment not in schema.environments:
        declared = ", ".join(schema.environments) if schema.environments else "none"
        raise ProgrammingError(
            f"unknown environment {value!r}: schema {name} declares {declared}; declare it with "
            f"ALTER SCHEMA {name} SET (environments = [...])")
    return environment


def _record_run(session: Session, anomalies: pa.Table, schema_name: str, version: int, target: str,
                environment: str | None, refs: dict[str, str], rows: int, seconds: float) -> None:
    """Keep the run and its anomalies in the catalog."""
    with session.atomic():
        run_id = session.scalar("SELECT coalesce(max(run_id), 0) + 1 FROM mallard.validation_runs")
        session.sql(
            "INSERT INTO mallard.validation_runs (run_id, schema_name, schema_version, target, environment, previous,"
            " training, row_count, anomaly_count, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, schema_name, version, target, environment, refs.get("previous"), refs.get("training"),
             rows or 0, anomalies.num_rows, seconds])
        if anomalies.num_rows:
            name = f"mallard_anomalies_{next(_views)}"
            session.register(name, anomalies)
            try:
                columns = ", ".join(column for column, _ in ANOMALY_COLUMNS)
                session.sql(f"INSERT INTO mallard.anomalies SELECT ?::BIGINT, row_number() OVER (), {columns} "
                            f"FROM {name}", [run_id])
            finally:
                session.unregister(name)


def alter_schema(session: Session, node: AlterSchema) -> StatementResult:
    """``ALTER SCHEMA <name> ...``: the edited schema becomes a new version."""
    session.require_writable("ALTER SCHEMA")
    name = object_name(node.this)
    version, schema = load_schema(session, name)
    declared = list(schema.environments)
    edit: SchemaEdit = node.args["edit"]
    cleared = _apply_edit(schema, edit)
    with session.atomic():
        new_version = save_schema(session, name, schema, statement=node.sql("mallard"), source=f"version {version}")
    note = f"; the type change cleared {', '.join(cleared)}" if cleared else ""
    for warning in _lonely_environments(schema, declared, name):
        warnings.warn(warning, UserWarning, stacklevel=2)
        note += f"; warning: {warning}"
    return StatementResult(message=f"ALTER SCHEMA: {name} version {new_version}{note}")


def _lonely_environments(schema: Schema, declared: list[str], name: str) -> list[str]:
    """Environments an edit declared by naming them in one column's not_in_environment, used
    by no other column: most likely a typo (it silently declares a new environment).  A schema
    that declared none yet is starting its environments, not mistyping one."""
    found: list[str] = []
    if not declared:
        return found
    for environment in schema.environments:
        if environment in declared:
            continue
        users = [c.name for c in schema.columns if environment in c.in_environment + c.not_in_environment]
        if len(users) == 1 and any(environment in c.not_in_environment for c in schema.columns):
            known = ", ".join(declared)
            found.append(f"environment {environment!r} is named only by column {users[0]}'s not_in_environment "
                         f"and was not declared before (declared: {known}); a typo? ALTER SCHEMA {name} SET "
                         f"(environments = [...]) declares an environment on purpose")
    return found


def _apply_edit(schema: Schema, edit: SchemaEdit) -> list[str]:
    action, column = edit.args["action"], edit.args.get("column")
    column_name = column.name if column is not None else None
    if action in ("ADD", "DROP"):
        assert column_name is not None  # the parser requires a column for ADD and DROP
        if action == "ADD":
            schema_edits.add_column(schema, column_name, edit.args["kind"])
        else:
            schema_edits.drop_column(schema, column_name)
    elif action == "SET":
        values = {p.name: _property_value(p) for p in edit.expressions}
        if column_name is None:
            schema_edits.set_schema_properties(schema, values)
        else:
            return schema_edits.set_column_properties(schema, column_name, values)
    elif column_name is None:
        schema_edits.reset_schema_properties(schema, [e.name for e in edit.expressions])
    else:
        schema_edits.reset_column_properties(schema, column_name, [e.name for e in edit.expressions])
    return []


def _property_value(prop: Any) -> Any:
    try:
        return literal_value(prop.args["value"])
    except ValueError as e:
        raise DataError(f"property {prop.name}: {e}") from None


def update_schema_statement(session: Session, node: UpdateSchema) -> StatementResult:
    """``UPDATE SCHEMA <name> FROM <table or statistics> [WITH (environment, accept_type_changes)]``."""
    session.require_writable("UPDATE SCHEMA")
    name = object_name(node.this)
    version, schema = load_schema(session, name)
    options = read_options(node)
    environment = _environment(schema, name, options.get("environment"))
    with statistics_of(session, node.args["source"], role="UPDATE SCHEMA ... FROM") as ref:
        updated, changes = update_schema(session, SchemaVersion(name, version, schema), ref.key, environment,
                                         options.get("accept_type_changes", False))
    applied = [c for c in changes if "NOT applied" not in c.change]
    if applied:
        with session.atomic():
            version = save_schema(session, name, updated, statement=node.sql("mallard"), source=ref.label)
    return StatementResult(rows=_changes_table(changes), message=(
        f"UPDATE SCHEMA: {name} version {version} ({len(applied)} changes"
        f"{', ' + str(len(changes) - len(applied)) + ' not applied' if len(applied) < len(changes) else ''})"))


def export_schema(session: Session, node: ExportSchema) -> StatementResult:
    """``EXPORT SCHEMA <name> [VERSION <n>] TO '<file>' [WITH (format = 'json' | 'tfdv')]``; in
    the TFDV format, one row per property TFDV's schema cannot hold."""
    name = object_name(node.this)
    requested = int(node.args["version"].this) if node.args.get("version") else None
    path = _path(node, "EXPORT SCHEMA")
    fmt = file_format(path, read_options(node).get("format"))
    version, schema = load_schema(session, name, requested)
    text, unmapped = schema_text(schema, fmt)
    write_document(path, text)
    message = f"EXPORT SCHEMA: {name} version {version} to {path}"
    if fmt == "json":
        return StatementResult(message=message)
    return StatementResult(rows=_unmapped_table(unmapped), message=f"{message} (TFDV; {len(unmapped)} not mapped)")


def import_schema(session: Session, node: ImportSchema) -> StatementResult:
    """``IMPORT SCHEMA <name> FROM '<file>' [WITH (format = 'json' | 'tfdv')]``: a new version of
    ``<name>``; in the TFDV format, one row per property Mallard could not take."""
    session.require_writable("IMPORT SCHEMA")
    name = object_name(node.this)
    path = _path(node, "IMPORT SCHEMA")
    fmt = file_format(path, read_options(node).get("format"))
    schema, unmapped = parse_schema(read_document(path), fmt, origin=path)
    with session.atomic():
        version = save_schema(session, name, schema, statement=node.sql("mallard"), source=path)
    message = f"IMPORT SCHEMA: {name} version {version} from {path}"
    if fmt == "json":
        return StatementResult(message=message)
    return StatementResult(rows=_unmapped_table(unmapped), message=f"{message} (TFDV; {len(unmapped)} not mapped)")


def _unmapped_table(unmapped: list[Unmapped]) -> pa.Table:
    return pa.table({column: pa.array([getattr(u, column) for u in unmapped],
                                      pa.string()) for column in UNMAPPED_COLUMNS})


def drop_data_schema(session: Session, node: DropDataSchema) -> StatementResult:
    """``DROP DATA SCHEMA [IF EXISTS] <name>``: every version of a data schema."""
    session.require_writable("DROP DATA SCHEMA")
    name = object_name(node.this)
    versions = schema_versions(session, name)
    if not versions:
        if node.args.get("exists"):
            return StatementResult(rowcount=0, message=f"DROP DATA SCHEMA: no data schema named {name}")
        raise ProgrammingError(f"data schema {name!r} does not exist (DROP DATA SCHEMA IF EXISTS ignores a missing one)")
    with session.atomic():
        session.sql("DELETE FROM mallard.schemas WHERE name = ?", [name])
    return StatementResult(rowcount=len(versions), message=f"DROP DATA SCHEMA: {name} ({len(versions)} versions)")


def _path(node: exp.Expr, statement: str) -> str:
    path = node.args["path"]
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise ProgrammingError(f"{statement} expects the file path as a string, found {path.sql()}")
    return str(path.this)


def _changes_table(changes: list[Any]) -> pa.Table:
    """UPDATE SCHEMA's changes as rows (CHANGE_COLUMNS)."""
    return pa.table({name: pa.array([getattr(c, name) for c in changes], _ARROW_TYPES[sql_type])
                     for name, sql_type in CHANGE_COLUMNS})


_ARROW_TYPES = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64()}
