"""Executors of the data validation statements; the work lives in :mod:`engine.validation`.

Each validates its input before writing anything, and writes inside ``session.atomic()``.
"""
from __future__ import annotations

import time
from contextlib import ExitStack, nullcontext
from typing import Any, Sequence


from engine.catalog import catalog_name
from engine.dialect.base import literal_value
from engine.dialect.validation import (
    AlterSchema,
    ComputeStatistics,
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
from engine.executors import executes
from engine.result import Result
from engine.settings import boolean, number
from engine.validation import statistics_store as store
from engine.validation import schema_edits
from engine.validation.inference import InferenceOptions, infer_schema
from engine.validation.json_io import read_document, schema_document, store_document, write_document
from engine.validation.options import literal_option, object_name, read_options, table_option, text_option
from engine.validation.properties import environments, fraction
from engine.validation.schema import Schema
from engine.validation.schema_store import load_schema, save_schema, schema_versions
from engine.validation.schema_table import schema_query
from engine.validation.sources import StatisticsRef, check_source, statistics_of, table_statistics
from engine.validation.span_statistics import SKETCH_ACCURACY, scan_span
from engine.validation.schema_update import CHANGE_COLUMNS, update_schema
from engine.validation.row_lists import column_lists, rows_query
from engine.validation.validation_run import ANOMALY_COLUMNS, References, SchemaVersion, find_anomalies

_COMPUTE_OPTIONS = {"max_values": literal_option(number(100, 1_000_000, integer=True))}


@executes(ComputeStatistics)
def compute_statistics(session: Any, node: ComputeStatistics, params: Sequence[Any] | None) -> Result:
    """``COMPUTE STATISTICS FOR <table> [AS <name> | APPEND TO <name>] [WITH (max_values = N)]``."""
    session.require_writable("COMPUTE STATISTICS")
    table = node.this
    name = object_name(node.args.get("name")) or catalog_name(table)
    options = read_options(node, _COMPUTE_OPTIONS, "COMPUTE STATISTICS")
    append = bool(node.args.get("append"))
    if append:
        if options:
            raise ProgrammingError("COMPUTE STATISTICS ... APPEND TO takes no options: a span uses its set's sizes")
        store.require_statistics(session, name)
        max_values = session.sql("SELECT max_values FROM mallard.statistics WHERE name = ?", [name]).fetchone()[0]
    else:
        max_values = options.get("max_values", session.settings["validation_max_values"])
    started = time.perf_counter()
    with store.staged(session) as key:
        columns = scan_span(session, table, key, max_values)
        if append:
            _check_same_columns(session, name, {c.name: c.kind for c in columns}, table.sql("duckdb"))
        with session.atomic():
            if not append:
                store.delete_statistics(session, name)
                store.create_statistics(session, name, SKETCH_ACCURACY, max_values)
            span = store.next_span(session, name)
            store.save_span(session, key, name, span)
        rows = session.sql("SELECT row_count FROM mallard.statistics_spans WHERE statistics = ? AND span = ?",
                           [name, span]).fetchone()[0]
    seconds = time.perf_counter() - started
    return Result(rowcount=rows, message=(
        f"COMPUTE STATISTICS: {rows} rows x {len(columns)} columns of {table.sql('duckdb')} as span {span} "
        f"of statistics {name} in {seconds:.2f} s"))


def _check_same_columns(session: Any, name: str, found: dict[str, str], table: str) -> None:
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


@executes(ShowStatistics)
def show_statistics(session: Any, node: ShowStatistics, params: Sequence[Any] | None) -> Result:
    """``SHOW STATISTICS [<name>]``: a set's merged statistics, or the list of sets."""
    if node.this is None:
        return Result(query=(
            "SELECT s.name, count(p.span) AS spans, sum(p.row_count)::BIGINT AS row_count, "
            "list(p.source ORDER BY p.span) AS sources, s.created_at, s.updated_at "
            "FROM mallard.statistics s LEFT JOIN mallard.statistics_spans p ON p.statistics = s.name "
            "GROUP BY ALL ORDER BY s.name"))
    name = object_name(node.this)
    store.require_statistics(session, name)
    return Result(query=f"SELECT {_SHOWN_COLUMNS} FROM validation_statistics(?)", params=[name])


@executes(DropStatistics)
def drop_statistics(session: Any, node: DropStatistics, params: Sequence[Any] | None) -> Result:
    """``DROP STATISTICS [IF EXISTS] <name>``."""
    session.require_writable("DROP STATISTICS")
    name = object_name(node.this)
    if not store.statistics_exists(session, name):
        if node.args.get("exists"):
            return Result(message=f"DROP STATISTICS: no statistics named {name}")
        store.require_statistics(session, name)
    with session.atomic():
        store.delete_statistics(session, name)
    return Result(message=f"DROP STATISTICS {name}")


_INFER_OPTIONS = {
    "max_domain_size": literal_option(number(0, 1_000_000, integer=True)),
    "infer_ranges": literal_option(boolean),
    "range_margin": literal_option(number(0, 1000)),
    "infer_patterns": literal_option(boolean),
    "environments": literal_option(environments),
    "min_domain_mass": literal_option(fraction),
}


@executes(InferSchema)
def infer_schema_statement(session: Any, node: InferSchema, params: Sequence[Any] | None) -> Result:
    """``INFER [OR REPLACE] SCHEMA <name> FROM <table or statistics> [WITH (...)]``: returns the schema."""
    session.require_writable("INFER SCHEMA")
    name = object_name(node.this)
    options = InferenceOptions(**read_options(node, _INFER_OPTIONS, "INFER SCHEMA"))
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
    return Result(query=schema_query(), params=[name, version], message=(
        f"INFER SCHEMA: {name} version {version}, {len(schema.columns)} columns from "
        f"{'statistics' if ref.stored else 'table'} {ref.label}"))


@executes(ShowSchema)
def show_schema(session: Any, node: ShowSchema, params: Sequence[Any] | None) -> Result:
    """``SHOW SCHEMA <name> [VERSION <n>]``: one row per column."""
    requested = int(node.args["version"].this) if node.args.get("version") else None
    name = object_name(node.this)
    version, _ = load_schema(session, name, requested)
    return Result(query=schema_query(), params=[name, version], message=f"SHOW SCHEMA {name} version {version}")


_VALIDATE_OPTIONS = {"environment": text_option, "previous": table_option, "training": table_option}


@executes(Validate)
def validate(session: Any, node: Validate, params: Sequence[Any] | None) -> Result:
    """``VALIDATE [STATISTICS] <target> AGAINST <schema> [VERSION <n>] [WITH (environment, previous, training)]``."""
    schema_name = object_name(node.args["schema"])
    requested = int(node.args["version"].this) if node.args.get("version") else None
    version, schema = load_schema(session, schema_name, requested)
    options = read_options(node, _VALIDATE_OPTIONS, "VALIDATE")
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
        rows = session.sql("SELECT sum(row_count) FROM validation_spans(?)", [current.key]).fetchone()[0]
    seconds = time.perf_counter() - started
    if not session.read_only:
        _record_run(session, anomalies, schema_name, version, current.label, environment,
                    {r: refs[r].label for r in refs}, rows, seconds)
    return Result(query=rows_query(ANOMALY_COLUMNS), params=column_lists(anomalies, ANOMALY_COLUMNS), message=(
        f"VALIDATE: {len(anomalies)} anomalies in {current.label} ({rows} rows) against schema "
        f"{schema_name} version {version} in {seconds:.2f} s"))


def _current_statistics(session: Any, node: Validate) -> Any:
    """Stored statistics (VALIDATE STATISTICS) as they are, or the table's, computed now."""
    if node.args.get("statistics"):
        name = object_name(node.this)
        store.require_statistics(session, name)
        return nullcontext(StatisticsRef(name, name, True))
    return table_statistics(session, node.this)


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


def _record_run(session: Any, anomalies: list[dict[str, Any]], schema_name: str, version: int, target: str,
                environment: str | None, refs: dict[str, str], rows: int, seconds: float) -> None:
    """Keep the run and its anomalies in the catalog."""
    with session.atomic():
        run_id = session.sql("SELECT coalesce(max(run_id), 0) + 1 FROM mallard.validation_runs").fetchone()[0]
        session.sql(
            "INSERT INTO mallard.validation_runs (run_id, schema_name, schema_version, target, environment, previous,"
            " training, row_count, anomaly_count, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, schema_name, version, target, environment, refs.get("previous"), refs.get("training"),
             rows or 0, len(anomalies), seconds])
        if anomalies:
            numbered = [{"ordinal": i, **a} for i, a in enumerate(anomalies, start=1)]
            columns = (("ordinal", "BIGINT"), *ANOMALY_COLUMNS)
            session.sql(f"INSERT INTO mallard.anomalies SELECT ?::BIGINT, * FROM ({rows_query(columns)})",
                        [run_id, *column_lists(numbered, columns)])


@executes(AlterSchema)
def alter_schema(session: Any, node: AlterSchema, params: Sequence[Any] | None) -> Result:
    """``ALTER SCHEMA <name> ...``: the edited schema becomes a new version."""
    session.require_writable("ALTER SCHEMA")
    name = object_name(node.this)
    version, schema = load_schema(session, name)
    edit: SchemaEdit = node.args["edit"]
    cleared = _apply_edit(schema, edit)
    with session.atomic():
        new_version = save_schema(session, name, schema, statement=node.sql("mallard"), source=f"version {version}")
    note = f"; the type change cleared {', '.join(cleared)}" if cleared else ""
    return Result(message=f"ALTER SCHEMA: {name} version {new_version}{note}")


def _apply_edit(schema: Schema, edit: SchemaEdit) -> list[str]:
    action, column = edit.args["action"], edit.args.get("column")
    column_name = column.name if column is not None else None
    if action == "ADD":
        schema_edits.add_column(schema, column_name, edit.args["kind"])
    elif action == "DROP":
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


_UPDATE_OPTIONS = {"environment": text_option, "accept_type_changes": literal_option(boolean)}


@executes(UpdateSchema)
def update_schema_statement(session: Any, node: UpdateSchema, params: Sequence[Any] | None) -> Result:
    """``UPDATE SCHEMA <name> FROM <table or statistics> [WITH (environment, accept_type_changes)]``."""
    session.require_writable("UPDATE SCHEMA")
    name = object_name(node.this)
    version, schema = load_schema(session, name)
    options = read_options(node, _UPDATE_OPTIONS, "UPDATE SCHEMA")
    environment = _environment(schema, name, options.get("environment"))
    with statistics_of(session, node.args["source"], role="UPDATE SCHEMA ... FROM") as ref:
        updated, changes = update_schema(session, SchemaVersion(name, version, schema), ref.key, environment,
                                         options.get("accept_type_changes", False))
    applied = [c for c in changes if "NOT applied" not in c.change]
    if applied:
        with session.atomic():
            version = save_schema(session, name, updated, statement=node.sql("mallard"), source=ref.label)
    return Result(query=rows_query(CHANGE_COLUMNS), params=column_lists([c.__dict__ for c in changes], CHANGE_COLUMNS),
                  message=(
        f"UPDATE SCHEMA: {name} version {version} ({len(applied)} changes"
        f"{', ' + str(len(changes) - len(applied)) + ' not applied' if len(applied) < len(changes) else ''})"))


@executes(ExportSchema)
def export_schema(session: Any, node: ExportSchema, params: Sequence[Any] | None) -> Result:
    """``EXPORT SCHEMA <name> [VERSION <n>] TO '<file>'``."""
    name = object_name(node.this)
    requested = int(node.args["version"].this) if node.args.get("version") else None
    text = schema_document(session, name, requested)
    write_document(node.args["path"].this, text)
    return Result(message=f"EXPORT SCHEMA: {name} to {node.args['path'].this}")


@executes(ImportSchema)
def import_schema(session: Any, node: ImportSchema, params: Sequence[Any] | None) -> Result:
    """``IMPORT SCHEMA <name> FROM '<file>'``: a new version of ``<name>``."""
    session.require_writable("IMPORT SCHEMA")
    name = object_name(node.this)
    path = node.args["path"].this
    version = store_document(session, name, read_document(path), origin=path, statement=node.sql("mallard"))
    return Result(message=f"IMPORT SCHEMA: {name} version {version} from {path}")
