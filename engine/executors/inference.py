"""Executors of the inference statements: CREATE MODEL, DROP MODEL, SHOW MODELS, EXPLAIN."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from engine.dialect.inference import CreateModel, DropModel, ExplainInference, ShowModels, ShowStorage
from engine.errors import ProgrammingError
from engine.inference.create_model import prepare_model
from engine.inference.model_catalog import add_version, drop_model
from engine.options import read_options
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session


def create_model(session: Session, node: CreateModel) -> StatementResult:
    """``CREATE [OR REPLACE] MODEL <name> FROM '<weights>' WITH (architecture = ..., ...)``."""
    session.require_writable("CREATE MODEL")
    options = read_options(node)
    source = node.args["source"]
    if not isinstance(source, exp.Literal) or not source.is_string:
        raise ProgrammingError(f"CREATE MODEL expects the weights file path as a string, found {source.sql()}")
    new = prepare_model(session, node.this.name, source.name, options, replace=bool(node.args.get("replace")))
    with session.atomic():
        version = add_version(session, new.name, new.spec, new.state, source=new.source,
                              created_by="CREATE MODEL", description=new.description, options=options)
    return StatementResult(rowcount=1, message=(
        f"CREATE MODEL: {new.name} version {version} ({new.spec.architecture}, {new.spec.num_classes} classes)"
    ))


def drop_model_statement(session: Session, node: DropModel) -> StatementResult:
    """``DROP MODEL [IF EXISTS] <name>``: the model, its versions, cached results and state."""
    session.require_writable("DROP MODEL")
    name = node.this.name.lower()
    exists = session.scalar("SELECT count(*) FROM mallard.models WHERE name = ?", [name])
    if not exists:
        if node.args.get("exists"):
            return StatementResult(rowcount=0, message=f"DROP MODEL: no model {name}")
        raise ProgrammingError(f"model {name} does not exist (DROP MODEL IF EXISTS ignores a missing model)")
    with session.atomic():
        versions = drop_model(session, name)
    return StatementResult(rowcount=1, message=f"DROP MODEL: {name} ({versions} versions)")


SHOW_MODELS = """
SELECT m.name, m.current_version AS version, v.architecture, v.num_classes,
       CASE WHEN v.input_height IS NULL THEN 'any'
            ELSE CAST(v.input_height AS VARCHAR) || 'x' || CAST(v.input_width AS VARCHAR) END AS input_size,
       CASE WHEN json_type(v.options, '$.inputs') = 'ARRAY' THEN json_extract_string(v.options, '$.inputs[*]') END AS inputs,
       CASE WHEN v.labels IS NULL THEN NULL ELSE len(v.labels) END AS labels,
       v.parameters, round(v.weights_bytes / 1048576.0, 2) AS weights_mb, v.parent_version,
       (SELECT count(*) FROM mallard.model_versions w WHERE w.model = m.name) AS versions,
       v.created_by, v.source, m.description, v.created_at,
       r.query AS trained_on, r.data_rows AS trained_rows, r.data_hash AS trained_data_hash, t.seed,
       r.label_run_id, v.metrics
FROM mallard.models m JOIN mallard.model_versions v ON v.model = m.name AND v.version = m.current_version
LEFT JOIN mallard.model_training t ON t.model = v.model AND t.version = v.version
LEFT JOIN mallard.training_runs r ON r.run_id = t.run_id
ORDER BY m.name
"""


def show_models(session: Session, node: ShowModels) -> StatementResult:
    """``SHOW MODELS``: one row per model, describing its current version."""
    return StatementResult(rows=session.relation(SHOW_MODELS))


SHOW_STORAGE = """
SELECT kind, name, rows, bytes, detail FROM (
    SELECT 1 AS o, 'frames' AS kind, table_name AS name, frame_count AS rows,
           CASE WHEN storage = 'stream' THEN packet_bytes ELSE frame_count * width * height * 3 END AS bytes,
           storage || CASE WHEN storage = 'stream' THEN ' (' || codec || ' packets, ' || packet_count || ')'
                           ELSE ' (RGB pixels)' END AS detail
    FROM mallard.videos
    UNION ALL
    SELECT 2, 'result cache', model || ' version ' || version, count(*),
           sum(64 + 4 * (len(logits) + len(features))),
           count(DISTINCT video_key) || ' videos, ' || count(DISTINCT mode_key) || ' modes'
    FROM mallard.inference_cache GROUP BY model, version
    UNION ALL
    SELECT 3, 'engine state', model || ' version ' || version, count(*), sum(octet_length(state)),
           'base-frame activations of ' || count(*) || ' (video, mode) pairs'
    FROM mallard.inference_state GROUP BY model, version
    UNION ALL
    SELECT 4, 'models', model, count(*), sum(weights_bytes), count(*) || ' versions (safetensors weights)'
    FROM mallard.model_versions GROUP BY model
    UNION ALL
    SELECT 5, 'database file', current_database(), NULL,
           (SELECT total_blocks * block_size FROM pragma_database_size() WHERE database_name = current_database()),
           'all of the file''s blocks, free ones included'
) ORDER BY o, name
"""


def show_storage(session: Session, node: ShowStorage) -> StatementResult:
    """``SHOW STORAGE``: what the database's bytes hold: frames, result cache, engine state, models."""
    return StatementResult(rows=session.relation(SHOW_STORAGE))


def explain(session: Session, node: ExplainInference) -> StatementResult:
    """``EXPLAIN [ANALYZE] <query>``: the inference plan of the query's model calls."""
    from engine.inference.explain import explain_statement

    return explain_statement(session, node)
