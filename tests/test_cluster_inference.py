"""Inference scans on a real two-node local Ray cluster: frames cut into segments at keyframes,
each decoded from its packets and run through the model in a Ray task; the same results as on
one node (exact mode within 1e-4 of full inference), written into the result cache, and
EXPLAIN showing the segments and where they ran."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import engine
from tests import cluster_models  # noqa: F401  (declares the architectures the fault tests use)
from tests.cluster_lfs import FAULTS_ENV
from tests.conftest import data_file
from tests.ray_cluster import LocalRayCluster, running_cluster
from udfs.architectures import PlainCNN

FRAMES = 60  # bikes.mp4 has keyframes at 0 and 30: two segments
QUERY = "SELECT frame_id, mobilenet(frame).label AS label, logits(mobilenet, frame) AS logits FROM bikes ORDER BY frame_id"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    os.environ[FAULTS_ENV] = tempfile.mkdtemp(prefix="mallard-faults-")  # the nodes' workers inherit it
    try:
        with running_cluster(nodes=2) as running:
            yield running
    finally:
        shutil.rmtree(os.environ.pop(FAULTS_ENV), ignore_errors=True)


@pytest.fixture(scope="module")
def bikes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster-inference") / "bikes.duckdb"
    with engine.connect(str(path), autocommit=True, progress="off") as con:
        con.execute(f"LOAD VIDEO ? INTO bikes WITH (width = 224, height = 224, limit = {FRAMES})",
                    [str(data_file("bikes.mp4"))])
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                    [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])
        con.execute(f"LOAD VIDEO ? INTO small WITH (width = 32, height = 32, limit = {FRAMES})",
                    [str(data_file("bikes.mp4"))])
        torch.manual_seed(0)
        weights = path.parent / "cnn.safetensors"
        save_file(PlainCNN(num_classes=3).state_dict(), str(weights))
        for name in ("dies_once", "dies_always"):
            con.execute(f"CREATE MODEL {name} FROM ? WITH (architecture = 'tiny_cluster_{name}_cnn', num_classes = 3, "
                        "input_size = [32, 32])", [str(weights)])
    return path


@pytest.fixture(scope="module")
def one_node(bikes: Path) -> dict[str, list[tuple]]:
    """Full and exact results computed in this process (no result cache, so nothing is stored)."""
    out = {}
    with engine.connect(str(bikes), autocommit=True, progress="off", inference_cache=False) as con:
        for mode in ("full", "exact"):
            out[mode] = con.execute(f"SET inference_mode = '{mode}'").execute(QUERY).fetchall()
    return out


@pytest.fixture
def on_cluster(bikes: Path, cluster: LocalRayCluster, tmp_path: Path) -> Iterator[engine.Connection]:
    copy = tmp_path / "bikes.duckdb"
    copy.write_bytes(bikes.read_bytes())
    con = engine.connect(str(copy), autocommit=True, progress="off", cluster=cluster.address)
    con.execute("SHOW CLUSTER").fetchall()
    cluster.wait_for_nodes(2)
    yield con
    con.close()


def _logits(rows: list[tuple]) -> np.ndarray:
    return np.array([r[2] for r in rows], dtype=np.float32)


def test_full_scan_on_the_cluster_equals_one_node_and_fills_the_cache(on_cluster: engine.Connection,
                                                                      one_node: dict[str, list[tuple]]) -> None:
    rows = on_cluster.execute(QUERY).fetchall()
    assert [r[:2] for r in rows] == [r[:2] for r in one_node["full"]]
    np.testing.assert_allclose(_logits(rows), _logits(one_node["full"]), atol=1e-4)
    plan = on_cluster.execute(f"EXPLAIN {QUERY}").fetchall()[0][1]
    assert re.search(r"from cache\s+60", plan) and "cluster segments" not in plan  # written by the driver


def test_exact_scan_on_the_cluster_is_within_1e4_of_full(on_cluster: engine.Connection,
                                                        one_node: dict[str, list[tuple]]) -> None:
    rows = on_cluster.execute("SET inference_mode = 'exact'").execute(QUERY).fetchall()
    assert [r[:2] for r in rows] == [r[:2] for r in one_node["full"]]
    np.testing.assert_allclose(_logits(rows), _logits(one_node["full"]), atol=1e-4)
    np.testing.assert_allclose(_logits(rows), _logits(one_node["exact"]), atol=1e-5)


def test_explain_shows_the_segments_and_where_they_ran(on_cluster: engine.Connection) -> None:
    planned = on_cluster.execute(f"EXPLAIN {QUERY}").fetchall()[0][1]
    assert re.search(r"cluster segments\s+2\s+\(cut at keyframes, to run on the cluster 127\.0\.0\.1:\d+: frames 0-29, "
                     r"30-59\)", planned), planned
    analyzed = on_cluster.execute(f"EXPLAIN ANALYZE {QUERY}").fetchall()[0][1]
    assert re.search(r"cluster segments\s+2\s+\(cut at keyframes; ran on [12] nodes?\)", analyzed), analyzed
    ran = re.findall(r"frames (\d+)-(\d+) \((\d+)\) on node (\d) (\S+) \((\w+)\), worker pid (\d+)", analyzed)
    assert [r[:3] for r in ran] == [("0", "29", "30"), ("30", "59", "30")]


def _small(model: str) -> str:
    return f"SELECT frame_id, logits({model}, frame) AS logits FROM small ORDER BY frame_id"


def test_a_worker_killed_mid_segment_is_retried_with_the_same_result(bikes: Path,
                                                                    on_cluster: engine.Connection) -> None:
    with engine.connect(str(bikes), autocommit=True, progress="off", inference_cache=False) as here:
        expected = here.execute(_small("dies_once")).fetchall()
    rows = on_cluster.execute(_small("dies_once")).fetchall()
    assert (Path(os.environ[FAULTS_ENV]) / "network_died_once").exists()  # a worker was killed in a segment
    assert [r[0] for r in rows] == list(range(FRAMES))
    np.testing.assert_allclose(np.array([r[1] for r in rows]), np.array([r[1] for r in expected]), atol=1e-5)


def test_a_worker_that_always_dies_fails_the_scan_and_writes_nothing(on_cluster: engine.Connection) -> None:
    before = on_cluster.execute("SELECT count(*) FROM mallard.inference_cache").fetchone()
    with pytest.raises(engine.OperationalError, match="a Ray worker died and the task failed again after 3 retries"):
        on_cluster.execute(_small("dies_always")).fetchall()
    assert on_cluster.execute("SELECT count(*) FROM mallard.inference_cache").fetchone() == before


def test_several_videos_in_one_query_are_each_spread_over_the_cluster(bikes: Path,
                                                                     on_cluster: engine.Connection) -> None:
    both = ("SELECT 'bikes' AS video, frame_id, mobilenet(frame).label AS label FROM bikes UNION ALL "
            "SELECT 'small', frame_id, mobilenet(frame).label FROM small ORDER BY video, frame_id")
    with engine.connect(str(bikes), autocommit=True, progress="off", inference_cache=False) as here:
        expected = here.execute(both).fetchall()
    analyzed = "\n".join(row[1] for row in on_cluster.execute(f"EXPLAIN ANALYZE {both}").fetchall())
    assert len(re.findall(r"cluster segments\s+2\s+\(cut at keyframes; ran on [12] nodes?\)", analyzed)) == 2, analyzed
    assert on_cluster.execute(both).fetchall() == expected  # the second run reads what the first cached
    assert len(expected) == 2 * FRAMES


def test_full_mode_cuts_long_segments_into_pieces_with_the_same_results(on_cluster: engine.Connection,
                                                                        one_node: dict[str, list[tuple]],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cluster import segments

    monkeypatch.setattr(segments, "FULL_SEGMENT_FRAMES", 10)  # bikes' 30-frame segments: 3 pieces each
    planned = on_cluster.execute(f"EXPLAIN {QUERY}").fetchall()[0][1]
    assert re.search(r"cluster segments\s+6\s+\(cut at keyframes and into pieces of at most 10 frames, to run on the "
                     r"cluster 127\.0\.0\.1:\d+: frames 0-9, 10-19, 20-29, 30-39, 40-49, 50-59\)", planned), planned
    rows = on_cluster.execute(QUERY).fetchall()
    assert [r[:2] for r in rows] == [r[:2] for r in one_node["full"]]
    np.testing.assert_allclose(_logits(rows), _logits(one_node["full"]), atol=1e-4)
