"""Executors of the cluster statements: ``SHOW CLUSTER``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.dialect.cluster import ShowCluster
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session


def show_cluster(session: Session, node: ShowCluster) -> StatementResult:
    """``SHOW CLUSTER``: one row per node of the session's cluster (connecting to it if needed)."""
    from engine.cluster.connection import require_cluster
    from engine.cluster.nodes import cluster_nodes, nodes_arrow

    ray = require_cluster(session, "SHOW CLUSTER")
    return StatementResult(rows=nodes_arrow(cluster_nodes(ray)))
