"""Cluster statements: ``SHOW CLUSTER``.

The cluster itself is a setting (``SET cluster = 'local' | 'host:port' | 'ray://host:port'``).
"""
from __future__ import annotations

from sqlglot.generator import Generator

from engine.dialect.base import MallardParserBase, Statement


class ShowCluster(Statement):
    """``SHOW CLUSTER``: the nodes of the session's Ray cluster, their CPUs, GPUs, memory and
    object store use, one row per node.

    >>> from engine.dialect import parse_statements
    >>> parse_statements("show cluster")[0].sql("mallard")
    'SHOW CLUSTER'
    """

    PREFIX = "SHOW CLUSTER"
    arg_types = {}

    @classmethod
    def parse_body(cls, p: MallardParserBase, flags: dict[str, bool]) -> ShowCluster:
        return cls()

    def to_sql(self, g: Generator) -> str:
        return "SHOW CLUSTER"
