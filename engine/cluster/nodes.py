"""The nodes of a Ray cluster as ``SHOW CLUSTER`` lists them."""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class ClusterNode:
    """One node: its id and address, whether it is the head and alive, and its resources."""

    node_id: str
    address: str
    is_head: bool
    alive: bool
    cpus: float
    gpus: float
    memory_bytes: int
    object_store_bytes: int
    object_store_used_bytes: int | None  # None where the node's store cannot be asked (Ray Client)


_ARROW_TYPES = {"node_id": pa.string(), "address": pa.string(), "is_head": pa.bool_(), "alive": pa.bool_(),
                "cpus": pa.float64(), "gpus": pa.float64(), "memory_bytes": pa.int64(),
                "object_store_bytes": pa.int64(), "object_store_used_bytes": pa.int64()}


def cluster_nodes(ray: Any) -> list[ClusterNode]:
    """Every node the cluster knows (dead ones included, marked), the head first."""
    out = []
    for node in ray.nodes():
        resources = node.get("Resources", {})
        out.append(ClusterNode(
            node_id=node["NodeID"], address=f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}",
            is_head="node:__internal_head__" in resources, alive=bool(node["Alive"]),
            cpus=float(resources.get("CPU", 0)), gpus=float(resources.get("GPU", 0)),
            memory_bytes=int(resources.get("memory", 0)), object_store_bytes=int(resources.get("object_store_memory", 0)),
            object_store_used_bytes=_store_used(node) if node["Alive"] else None,
        ))
    return sorted(out, key=lambda n: (not n.is_head, not n.alive, n.address, n.node_id))


def nodes_arrow(nodes: list[ClusterNode]) -> pa.Table:
    """The nodes as the rows of ``SHOW CLUSTER``."""
    names = [f.name for f in fields(ClusterNode)]
    rows = [astuple(n) for n in nodes]
    return pa.table({name: pa.array([r[i] for r in rows], _ARROW_TYPES[name]) for i, name in enumerate(names)})


def _store_used(node: dict[str, Any]) -> int | None:
    """Bytes in the node's object store, asked of its raylet (Ray's own memory-summary call)."""
    try:
        from ray._private.internal_api import node_stats

        stats = node_stats(node["NodeManagerAddress"], node["NodeManagerPort"], include_memory_info=False)
        return int(stats.store_stats.object_store_bytes_used)
    except Exception:  # Ray Client, or a raylet that stopped answering: unknown, not an error
        return None
