"""Training statements: models trained from a query, exported, evaluated.

``CREATE [OR REPLACE] MODEL <name> [WITH (architecture = '...', label = '...', ...)] AS <query>``
``EXPORT MODEL <name> TO '<file>.safetensors' [WITH (version = N)]``
``EVALUATE MODEL <name> ON <table> | (<query>) [WITH (version = N, label = '<column>')]``

``CREATE MODEL ... AS`` shares its leading words with ``CREATE MODEL ... FROM '<weights>'``
(:class:`engine.dialect.inference.CreateModel`): after the model's name, ``WITH`` or ``AS``
makes it this statement, anything else leaves it to that one.
"""
from __future__ import annotations

from sqlglot import exp
from sqlglot.generator import Generator
from sqlglot.tokenizer_core import TokenType

from engine.dialect.base import MallardParserBase, Statement
from engine.options import Option, Validator, boolean, byte_size, choice, column, either, list_of, number, text, whole
from engine.training.settings import DEVICE


def _grid(item: Validator) -> Validator:
    """One value, or a list of them: every value is one configuration of a grid."""
    return either(item, list_of(item), expected=f"{item.expected}, or a list of them (a grid)")


_SEED = whole(0, 2**63 - 1)


class TrainModel(Statement):
    """Train a model on a query's rows and store it as a model version (with OR REPLACE, new
    versions of an existing model); a list of values for a hyperparameter trains a grid, whose
    best configuration by held-out accuracy becomes current.

    >>> from engine.dialect import parse_statements
    >>> sql = "CREATE OR REPLACE MODEL fares WITH (architecture = 'mlp', lr = [0.1, 0.01], epochs = 3) AS SELECT x, label FROM t"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    PREFIX = "CREATE [OR REPLACE] MODEL"
    SLUG = "create-model-as"
    OPTIONS = {
        "architecture": Option(_grid(text), None, "'mlp' (numeric columns), 'small_cnn' or 'tiny_cnn' (images), "
                                                  "or a registered one; required unless from_model"),
        "label": Option(column, "label", "the column of class names (VARCHAR) or class ids (integer)"),
        "probs": Option(column, None, "a column of class probabilities (a LABEL run's probs): noise-aware loss"),
        "weight": Option(column, None, "a column of per-row loss weights (a LABEL run's weight)"),
        "key": Option(column, None, "the column whose seeded hash picks the held-out rows (default: id, "
                                    "frame_id, else the row's values)"),
        "inputs": Option(list_of(column), None, "the input columns: one image BLOB (with height and width) or "
                                                "numeric columns and numeric lists (default: every other column)"),
        "classes": Option(list_of(either(text, whole(0, 2**31 - 1)), min_length=2), None,
                          "the classes in class-id order (default: the LABEL run's, else the distinct labels)"),
        "holdout": Option(number(0, 0.9), 0.2, "fraction of rows held out for validation (by the key's hash)"),
        "epochs": Option(_grid(whole(1, 100_000)), 5, "passes over the training rows"),
        "lr": Option(_grid(number(0, 1e3, open_low=True)), 0.01, "learning rate"),
        "batch_size": Option(_grid(whole(1, 1_000_000)), 64, "rows per gradient step"),
        "optimizer": Option(_grid(choice("sgd", "adam")), "sgd", "'sgd' or 'adam'"),
        "momentum": Option(_grid(number(0, 1)), 0.9, "SGD momentum"),
        "weight_decay": Option(_grid(number(0, 1e3)), 0, "L2 penalty"),
        "seed": Option(_grid(_SEED), 0, "initialization, data order and (the first seed) the held-out split"),
        "hidden": Option(list_of(whole(1, 1_000_000)), [128, 64], "mlp's hidden layer widths"),
        "partitions": Option(whole(1, 4096), 4, "partitions of the training rows (Cerebro's unit of data)"),
        "from_model": Option(text, None, "fine-tune from this catalog model's current version"),
        "freeze": Option(either(text, list_of(text)), None, "submodules ('features' or a list) kept fixed "
                                                            "while fine-tuning"),
        "successive_halving": Option(either(boolean, whole(2, 1000)), False,
                                     "stop the worse half of a grid at epochs 1, 2, 4, ... (true, or the "
                                     "reduction factor)"),
        "pipeline_stages": Option(whole(1, 1024), 1, "GPipe: stages the network is cut into"),
        "micro_batches": Option(whole(1, 1_000_000), 1, "GPipe: micro-batches per batch"),
        "device_memory": Option(byte_size, None, "Hydra: bytes of parameters, gradients and optimizer state "
                                                 "resident at once ('64MB')"),
        "workers": Option(whole(1, 1024), None, "processes: data-parallel for one configuration, model hopping "
                                                "for a grid (default: 1; a grid: one per core)"),
        "device": Option(DEVICE, None, "where to train (default: SET training_device); an absent GPU is an "
                                       "OperationalError"),
        "description": Option(text, None, "free text shown by SHOW MODELS"),
    }
    arg_types = {"this": True, "query": True, "replace": False, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> TrainModel | None:
        after = "CREATE OR REPLACE MODEL" if flags["replace"] else "CREATE MODEL"
        curr = p.current()
        if curr is None or curr.token_type in (TokenType.STRING, TokenType.L_PAREN, TokenType.SEMICOLON):
            return None  # CreateModel says what it expected
        following = p.following()
        if following is None or following.text.upper() not in ("WITH", "AS"):
            return None  # CREATE MODEL <name> FROM ...: CreateModel's
        name = p.expect_name("a model name", after=after)
        options = p.parse_options(after=after)
        p.expect_words("AS", after=f"{after} {name.name}{' WITH (...)' if options else ''}")
        query = p.parse_query(after=f"{after} {name.name} ... AS")
        return cls(this=name, query=query, replace=flags["replace"], options=options)

    def to_sql(self, g: Generator) -> str:
        return (f"CREATE{self._replace_sql()} MODEL {g.sql(self, 'this')}{self._options_sql(g)}"
                f" AS {g.sql(self, 'query')}")


class ExportModel(Statement):
    """Write a model version's weights (safetensors) and a JSON sidecar beside them
    (architecture, labels, input columns, normalization, metrics, lineage); ``CREATE MODEL ...
    FROM`` the file reads the sidecar back.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("export model fares to 'fares.safetensors' with (version = 2)")[0].sql("mallard")
    "EXPORT MODEL fares TO 'fares.safetensors' WITH (version = 2)"
    """

    PREFIX = "EXPORT MODEL"
    OPTIONS = {
        "version": Option(whole(1, 2**31 - 1), None, "the version to export (default: the current one)"),
    }
    arg_types = {"this": True, "path": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ExportModel:
        name = p.expect_name("a model name", after="EXPORT MODEL")
        p.expect_words("TO", after=f"EXPORT MODEL {name.name}")
        path = p.expect_string_or_parameter("a file path ending in .safetensors", after=f"EXPORT MODEL {name.name} TO")
        options = p.parse_options(after="EXPORT MODEL")
        return cls(this=name, path=path, options=options)

    def to_sql(self, g: Generator) -> str:
        return f"EXPORT MODEL {g.sql(self, 'this')} TO {g.sql(self, 'path')}{self._options_sql(g)}"


class EvaluateModel(Statement):
    """A model's accuracy, loss, per-class precision and recall and confusion matrix over a
    query's rows (its input columns and the true class): one row per true class.

    >>> from engine.dialect import parse_statements
    >>> sql = "EVALUATE MODEL fares ON (SELECT x, label FROM t WHERE id % 5 = 0) WITH (label = label)"
    >>> parse_statements(sql)[0].sql("mallard") == sql
    True
    """

    PREFIX = "EVALUATE MODEL"
    OPTIONS = {
        "version": Option(whole(1, 2**31 - 1), None, "the version to evaluate (default: the current one)"),
        "label": Option(column, None, "the column of true classes (default: the one the model was trained on, "
                                      "else label)"),
    }
    arg_types = {"this": True, "source": True, "options": False}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> EvaluateModel:
        name = p.expect_name("a model name", after="EVALUATE MODEL")
        p.expect_words("ON", after=f"EVALUATE MODEL {name.name}")
        source = p.parse_subquery_or_table("a table or (<query>)", after=f"EVALUATE MODEL {name.name} ON")
        options = p.parse_options(after="EVALUATE MODEL")
        return cls(this=name, source=source, options=options)

    def to_sql(self, g: Generator) -> str:
        return f"EVALUATE MODEL {g.sql(self, 'this')} ON {g.sql(self, 'source')}{self._options_sql(g)}"


def source_query(source: exp.Expr) -> exp.Query:
    """The query an ``ON <table> | (<query>)`` reads: the subquery's query, or the whole table."""
    if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Query):
        return source.this
    return exp.select("*").from_(source.copy())
