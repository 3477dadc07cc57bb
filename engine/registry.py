"""The one place where Mallard's extension points are declared and read.

- :data:`STATEMENTS`: every extended statement class (the dialect dispatches on their
  ``PREFIX``; the router derives its check from them);
- :data:`EXECUTORS`: statement class -> executor ``fn(session, node) -> StatementResult``;
- :data:`SETTINGS`: every ``SET``-table setting, gathered from each capability's table;
- :data:`PLANNED_FUNCTION_SOURCES`: what lists the functions the planner rewrites (models);
- :data:`BUILTIN_FUNCTIONS`: the SQL functions of :mod:`udfs` (the one place ``engine``
  reads ``udfs``), registered with the user's own (:mod:`engine.extensions`) on every
  database by :func:`register_functions`.

Adding a statement is one parser class (``engine/dialect/<capability>.py``), one executor
(``engine/executors/<capability>.py``) and one line in each of the first two tables.

>>> len(STATEMENTS) == len(EXECUTORS) and all(cls in EXECUTORS for cls in STATEMENTS)
True
>>> "progress" in SETTINGS and "inference_mode" in SETTINGS
True
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import duckdb
from duckdb import PythonExceptionHandling
from duckdb.func import PythonUDFType

from engine.cluster import settings as cluster_settings
from engine.dialect.base import Statement
from engine.dialect.cluster import ShowCluster
from engine.dialect.inference import CreateModel, DropModel, ExplainInference, ShowModels, ShowStorage
from engine.dialect.labeling import (
    AddGoldLabels,
    AnalyzeLabelingFunctions,
    CreateLabelingFunction,
    DropLabelingFunction,
    Label,
    ShowClassBalance,
    ShowLabelAnalysis,
    ShowLabelingFunctions,
)
from engine.dialect.session_settings import ResetSetting, SetSetting, ShowSettings
from engine.dialect.training import EvaluateModel, ExportModel, TrainModel
from engine.dialect.validation import (
    AlterSchema,
    ComputeStatistics,
    DropDataSchema,
    DropStatistics,
    ExportSchema,
    ImportSchema,
    InferSchema,
    ShowSchema,
    ShowStatistics,
    UpdateSchema,
    Validate,
)
from engine.dialect.video import LoadVideo
from engine.executors import cluster, inference, labeling, session_settings, training, validation, video
from engine.extensions import DECLARED, ScalarFunction
from engine.inference import settings as inference_settings
from engine.inference.functions import planned_functions
from engine.instances import Instance
from engine.settings import SESSION_SETTINGS, Setting
from engine.statement_result import StatementResult
from engine.training import settings as training_settings
from engine.validation import thresholds as validation_settings

if TYPE_CHECKING:
    from engine.session import Session

Executor = Callable[["Session", Any], StatementResult]

#: Statement class -> its executor, capability by capability.
EXECUTORS: Mapping[type[Statement], Executor] = MappingProxyType({
    # session
    SetSetting: session_settings.set_setting,
    ResetSetting: session_settings.reset_setting,
    ShowSettings: session_settings.show_settings,
    # video
    LoadVideo: video.load_video,
    # training (TrainModel before CreateModel: both start CREATE [OR REPLACE] MODEL, and the parser
    # tries them in this order; TrainModel takes only WITH/AS after the name, CreateModel says what
    # it expected otherwise)
    TrainModel: training.train_model,
    ExportModel: training.export_model_statement,
    EvaluateModel: training.evaluate_model,
    # inference
    CreateModel: inference.create_model,
    DropModel: inference.drop_model_statement,
    ShowModels: inference.show_models,
    ShowStorage: inference.show_storage,
    ExplainInference: inference.explain,
    # weak supervision
    CreateLabelingFunction: labeling.create_labeling_function,
    DropLabelingFunction: labeling.drop_labeling_function,
    ShowLabelingFunctions: labeling.show_labeling_functions,
    Label: labeling.label_table,
    AddGoldLabels: labeling.add_gold_labels,
    AnalyzeLabelingFunctions: labeling.analyze_labeling_functions,
    ShowLabelAnalysis: labeling.show_label_analysis,
    ShowClassBalance: labeling.show_class_balance,
    # data validation
    ComputeStatistics: validation.compute_statistics,
    ShowStatistics: validation.show_statistics,
    DropStatistics: validation.drop_statistics,
    InferSchema: validation.infer_schema_statement,
    Validate: validation.validate,
    AlterSchema: validation.alter_schema,
    UpdateSchema: validation.update_schema_statement,
    ShowSchema: validation.show_schema,
    DropDataSchema: validation.drop_data_schema,
    ExportSchema: validation.export_schema,
    ImportSchema: validation.import_schema,
    # cluster
    ShowCluster: cluster.show_cluster,
})

#: Every extended statement, in the order of the table above.
STATEMENTS: tuple[type[Statement], ...] = tuple(EXECUTORS)

#: Every Mallard setting, by name.
SETTINGS: Mapping[str, Setting] = MappingProxyType({s.name: s for s in (
    *SESSION_SETTINGS,
    *inference_settings.SETTINGS,
    *validation_settings.SETTINGS,
    *training_settings.SETTINGS,
    *cluster_settings.SETTINGS,
)})

#: Functions returning the names the planner rewrites for a session (name -> PlannedFunction).
PLANNED_FUNCTION_SOURCES: tuple[Callable[[Session], Mapping[str, Any]], ...] = (planned_functions,)


def builtin_functions() -> tuple[ScalarFunction, ...]:
    """The built-in SQL functions of the function library."""
    from udfs import BUILTIN_FUNCTIONS

    return BUILTIN_FUNCTIONS


def load_builtin_architectures() -> None:
    """Declare the function library's built-in architectures (imports torch; once)."""
    import udfs.architectures  # noqa: F401  (its @architecture decorators declare them)


def instance_functions(instance: Instance) -> tuple[ScalarFunction, ...]:
    """Built-in functions bound to one database instance (they read its shared state)."""
    from engine.video_stream.reading import video_frame_function

    return (video_frame_function(instance),)


def register_functions(instance: Instance) -> None:
    """Register the built-in and the declared SQL functions on a database instance (those not
    registered yet, or declared anew since); the one path every function takes into DuckDB."""
    root, registered = instance.root, instance.functions
    for spec in (*builtin_functions(), *instance_functions(instance), *DECLARED.scalar_functions.values()):
        if spec.name in registered and spec.bound_to_instance:
            continue
        if registered.get(spec.name) is spec.fn:
            continue
        if spec.name in registered:
            root.remove_function(spec.name)
        root.create_function(
            spec.name, spec.fn, [duckdb.sqltype(p) for p in spec.parameters], duckdb.sqltype(spec.returns),
            type=PythonUDFType.ARROW if spec.vectorized else PythonUDFType.NATIVE, side_effects=spec.side_effects,
            exception_handling=PythonExceptionHandling.DEFAULT,
        )
        registered[spec.name] = spec.fn
