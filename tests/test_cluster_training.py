"""Data-parallel training on a real two-node local Ray cluster (``CREATE MODEL ... WITH
(workers = 2)`` under ``SET cluster``): the ranks run as Ray actors spread over both nodes,
the partitions reach them through the object store, and the model's weights equal one local
worker's within the data-parallel tolerance; a cluster too small for the workers asked is a
clear error that writes nothing."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import engine
from tests.ray_cluster import LocalRayCluster, running_cluster
from tests.training_data import create_table, points_table

DDP_TOLERANCE = 1e-5
MLP = "architecture = 'mlp', hidden = [32, 16], epochs = 2, batch_size = 15, lr = 0.1"  # odd batches split unevenly


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    with running_cluster(nodes=2) as running:
        yield running


@pytest.fixture
def db(tmp_path: Path) -> Iterator[engine.Connection]:
    con = engine.connect(str(tmp_path / "train.duckdb"), autocommit=True, progress="off")
    create_table(con.duckdb_connection, "points", points_table(500))
    yield con
    con.close()


def test_workers_on_the_cluster_give_one_local_workers_weights(db, cluster):
    db.execute(f"CREATE MODEL local_one WITH ({MLP}, workers = 1) AS SELECT * FROM points")
    db.execute(f"SET cluster = '{cluster.address}'")
    db.execute("SHOW CLUSTER").fetchall()  # connects
    cluster.wait_for_nodes(2)
    db.execute(f"CREATE MODEL spread WITH ({MLP}, workers = 2) AS SELECT * FROM points")
    strategy, schedule = db.execute("SELECT strategy, schedule FROM mallard.training_runs WHERE model = 'spread'"
                                    ).fetchone()
    assert strategy == "data parallel on the cluster" and '"cluster_nodes": 2' in schedule  # one rank per node
    one, two = engine.load_model(db, "local_one").state_dict(), engine.load_model(db, "spread").state_dict()
    for key, value in one.items():
        assert torch.allclose(value, two[key], rtol=0, atol=DDP_TOLERANCE), key
    history = db.execute("SELECT model, epoch, train_rows, val_accuracy FROM mallard.training_history "
                         "ORDER BY epoch, model").fetchall()
    assert [(h[1], h[2], h[3]) for h in history if h[0] == "spread"] == \
           [(h[1], h[2], h[3]) for h in history if h[0] == "local_one"]


def test_more_workers_than_the_cluster_has_cpus_is_a_clear_error_and_writes_nothing(db, cluster, monkeypatch):
    import engine.cluster.training as on_cluster

    monkeypatch.setattr(on_cluster, "PLACEMENT_TIMEOUT_S", 3.0)
    db.execute(f"SET cluster = '{cluster.address}'")
    db.execute("SHOW CLUSTER").fetchall()  # connects
    cluster.wait_for_nodes(2)
    with pytest.raises(engine.OperationalError, match="did not offer 5 CPUs for workers = 5"):
        db.execute(f"CREATE MODEL greedy WITH ({MLP}, workers = 5) AS SELECT * FROM points")
    assert db.execute("SELECT count(*) FROM mallard.models").fetchone() == (0,)
