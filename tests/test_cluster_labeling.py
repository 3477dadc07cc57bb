"""Python labeling functions on a real two-node local Ray cluster: the same labels as one
node, errors raised there surface here as themselves, a killed worker is retried or fails
cleanly, and a cluster that cannot import a function's module says which."""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import engine
from engine.extensions import PythonLabelingFunction
from engine.labeling.synthetic import synthetic_votes
from tests import cluster_lfs
from tests.conftest import data_file
from tests.labeling_sms import load_sms
from tests.ray_cluster import LocalRayCluster, running_cluster
from udfs.labeling import labeling_function, register_labeling_function

PYTHON_LFS = {
    "lf_prize_py": (cluster_lfs.prize, False),
    "lf_chat_py": (cluster_lfs.chat, False),
    "lf_number_py": (cluster_lfs.long_number_vectorized, True),
    "lf_short_py": (cluster_lfs.short_by_id, False),
    "lf_picky_py": (cluster_lfs.picky, False),
    "lf_dies_once": (cluster_lfs.dies_once, False),
    "lf_dies_always": (cluster_lfs.dies_always, False),
}
USING = "lf_prize_py, lf_chat_py, lf_number_py, lf_free_sql"
ALL_PYTHON = "lf_prize_py, lf_chat_py, lf_number_py, lf_short_py"
SYNTHETIC_LFS = 6
SYNTHETIC = ", ".join(f"lf_synth{j}" for j in range(SYNTHETIC_LFS))
OPTIONS = "WITH (classes = ['ham', 'spam'], key = id)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    faults = tempfile.mkdtemp(prefix="mallard-faults-")
    os.environ[cluster_lfs.FAULTS_ENV] = faults  # the nodes' workers inherit it
    try:
        with running_cluster(nodes=2) as running:
            yield running
    finally:
        shutil.rmtree(os.environ.pop(cluster_lfs.FAULTS_ENV), ignore_errors=True)


def _connect(path: Path, cluster: str = "none") -> engine.Connection:
    con = engine.connect(str(path), progress="off", autocommit=True, cluster=cluster, cluster_partition_rows=1000)
    for name, (fn, vectorized) in PYTHON_LFS.items():
        register_labeling_function(con, labeling_function(name=name, on="sms", vectorized=vectorized, register=False)(fn))
    for j in range(SYNTHETIC_LFS):  # function j votes column lf{j} of the synthetic table
        register_labeling_function(con, PythonLabelingFunction(f"lf_synth{j}", "synth", cluster_lfs.column_vote,
                                                               (f"lf{j}",), vectorized=True))
    return con


@pytest.fixture(scope="module")
def sms_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "sms.duckdb"
    con = _connect(path)
    load_sms(con, data_file("spam_collection.tsv"))
    con.execute("CREATE LABELING FUNCTION lf_free_sql ON sms AS CASE WHEN text ILIKE '%free%' THEN 'spam' END")
    con.execute("ADD GOLD LABELS TO sms FROM (SELECT id, truth AS label FROM sms WHERE id % 97 = 0)")
    synthetic = synthetic_votes(n=6000, m=SYNTHETIC_LFS, k=3, seed=14)
    table = synthetic.to_arrow().append_column("truth", [synthetic.truth.astype("int64")])
    pq.write_table(table, path.parent / "synth.parquet")
    con.execute("CREATE TABLE synth AS SELECT * FROM read_parquet(?)", [str(path.parent / "synth.parquet")])
    con.close()
    return path


@pytest.fixture
def local(sms_path: Path) -> Iterator[engine.Connection]:
    con = _connect(sms_path)
    yield con
    con.close()


@pytest.fixture
def on_cluster(sms_path: Path, cluster: LocalRayCluster) -> Iterator[engine.Connection]:
    con = _connect(sms_path, cluster.address)
    con.execute("SHOW CLUSTER").fetchall()  # connects
    cluster.wait_for_nodes(2)
    yield con
    con.close()


def _rows(con: engine.Connection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _exists(con: engine.Connection, table: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone()[0] == 1


def test_show_cluster_lists_both_nodes(on_cluster: engine.Connection) -> None:
    cursor = on_cluster.execute("SHOW CLUSTER")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    assert names == ["node_id", "address", "is_head", "alive", "cpus", "gpus", "memory_bytes", "object_store_bytes",
                     "object_store_used_bytes"]
    assert len(rows) == 2 and [r["is_head"] for r in rows] == [True, False]
    assert all(r["alive"] and r["cpus"] == 1 and r["gpus"] == 0 for r in rows)
    assert all(r["object_store_bytes"] > 0 and 0 <= r["object_store_used_bytes"] <= r["object_store_bytes"] for r in rows)
    assert len({r["node_id"] for r in rows}) == 2


def test_label_on_the_cluster_equals_one_node(local: engine.Connection, on_cluster: engine.Connection) -> None:
    local.execute(f"LABEL sms USING {USING} {OPTIONS} INTO OR REPLACE labels_local")
    cursor = on_cluster.execute(f"LABEL sms USING {USING} {OPTIONS} INTO OR REPLACE labels_cluster")
    assert re.search(r"Python functions in 5 tasks on 2 cluster nodes \(\d+\.\d\d s\)$", cursor.message), cursor.message
    local_rows, cluster_rows = _rows(local, "labels_local"), _rows(on_cluster, "labels_cluster")
    assert len(cluster_rows) == 4862 and cluster_rows == local_rows
    assert {r[4] for r in cluster_rows} == {"weak", "gold"}  # gold labels joined in as on one node


def _fitted(con: engine.Connection, target: str) -> tuple[tuple, list[tuple]]:
    """The label model a run fitted: its record (patterns, iterations, class balance, label shares)
    and per function its coverage, overlaps, conflicts, gold counts and learned accuracy."""
    run = con.execute("SELECT run_id, n_rows, n_covered, n_patterns, n_gold, iterations, converged, class_balance,"
                      " label_share FROM mallard.label_runs WHERE target_table LIKE ? ORDER BY run_id DESC LIMIT 1",
                      [f"%{target}"]).fetchone()
    functions = con.execute("SELECT lf, coverage, \"overlaps\", conflicts, correct, incorrect, emp_acc, learned_acc,"
                            " failures FROM mallard.label_run_functions WHERE run_id = ? ORDER BY position",
                            [run[0]]).fetchall()
    return run[1:], functions


def test_all_python_functions_fit_on_merged_pattern_counts(local: engine.Connection,
                                                           on_cluster: engine.Connection) -> None:
    local.execute(f"LABEL sms USING {ALL_PYTHON} {OPTIONS} INTO OR REPLACE python_local")
    cursor = on_cluster.execute(f"LABEL sms USING {ALL_PYTHON} {OPTIONS} INTO OR REPLACE python_cluster")
    # Ray's SPREAD placement is best effort: tasks this short (0.08 s in all) have all run on one node
    # in CI; test_label_on_the_cluster_equals_one_node asserts the spread over both nodes
    assert re.search(r"Python functions in 5 tasks on (1 cluster node|2 cluster nodes) \(\d+\.\d\d s\); label model "
                     r"fitted on the vote-pattern counts of 5 partitions, merged$", cursor.message), cursor.message
    assert _rows(on_cluster, "python_cluster") == _rows(local, "python_local")
    here, there = _fitted(local, "python_local"), _fitted(on_cluster, "python_cluster")
    assert there == here
    assert here[0][2] > 4 and here[0][3] > 0 and here[0][4] > 1  # patterns, gold rows, EM iterations


def test_synthetic_truth_fit_on_merged_pattern_counts(local: engine.Connection, on_cluster: engine.Connection) -> None:
    options = "WITH (classes = [0, 1, 2], key = id, seed = 3)"
    on_cluster.execute("SET cluster_partition_rows = 1700")
    local.execute(f"LABEL synth USING {SYNTHETIC} {options} INTO OR REPLACE synth_local")
    cursor = on_cluster.execute(f"LABEL synth USING {SYNTHETIC} {options} INTO OR REPLACE synth_cluster")
    assert "vote-pattern counts of 4 partitions, merged" in cursor.message
    assert _rows(on_cluster, "synth_cluster") == _rows(local, "synth_local")
    here, there = _fitted(local, "synth_local"), _fitted(on_cluster, "synth_cluster")
    assert there == here
    # the fit recovers the generating truth: learned accuracies near the sample's, labels mostly right
    truth = synthetic_votes(n=6000, m=SYNTHETIC_LFS, k=3, seed=14)
    learned = [f[7] for f in there[1]]
    assert max(abs(a - b) for a, b in zip(learned, truth.empirical_accuracies())) < 0.05
    right = on_cluster.execute("SELECT avg((l.label = s.truth)::INT) FROM synth_cluster l JOIN synth s USING (id)"
                               " WHERE l.label IS NOT NULL").fetchone()[0]
    assert right > 0.8


def test_analyze_on_the_cluster_equals_one_node(local: engine.Connection, on_cluster: engine.Connection) -> None:
    sql = f"ANALYZE LABELING FUNCTIONS {USING}, lf_picky_py ON sms WITH (classes = ['ham', 'spam'], fault_tolerant = true)"
    here, there = local.execute(sql).fetchall(), on_cluster.execute(sql).fetchall()
    assert there == here
    assert there[-1][-1] == 4  # lf_picky_py raised on rows 1000, 2000, 3000, 4000: counted on the nodes


def test_an_error_in_a_function_on_the_cluster_is_raised_as_itself(local: engine.Connection,
                                                                    on_cluster: engine.Connection) -> None:
    sql = f"LABEL sms USING lf_picky_py, lf_chat_py, lf_prize_py {OPTIONS} INTO labels_picky"
    with pytest.raises(engine.DataError) as here:
        local.execute(sql)
    with pytest.raises(engine.DataError) as there:
        on_cluster.execute(sql)
    # the same error, naming the row: the first failing partition to finish (tasks run in parallel)
    assert re.sub(r"\d000", "N", str(there.value)) == re.sub(r"\d000", "N", str(here.value))
    assert re.search(r"labeling function lf_picky_py raised ValueError: cannot read row (?P<d>\d)000 on the row with key (?P=d)000",
                     str(there.value))
    assert not _exists(on_cluster, "labels_picky")


def test_a_killed_worker_is_retried_with_the_same_result(local: engine.Connection,
                                                         on_cluster: engine.Connection) -> None:
    local.execute(f"LABEL sms USING {USING}, lf_short_py {OPTIONS} INTO OR REPLACE labels_short")
    cursor = on_cluster.execute(f"LABEL sms USING {USING}, lf_dies_once {OPTIONS} INTO OR REPLACE labels_died_once")
    assert (Path(os.environ[cluster_lfs.FAULTS_ENV]) / "died_once").exists()  # a worker was killed mid-task
    assert cursor.rowcount == 4862
    assert _rows(on_cluster, "labels_died_once") == _rows(local, "labels_short")


def test_a_worker_that_always_dies_fails_cleanly(on_cluster: engine.Connection) -> None:
    with pytest.raises(engine.OperationalError, match="a Ray worker died and the task failed again after 3 retries"):
        on_cluster.execute(f"LABEL sms USING {USING}, lf_dies_always {OPTIONS} INTO labels_died")
    assert not _exists(on_cluster, "labels_died")
    assert on_cluster.execute("SELECT count(*) FROM mallard.label_runs WHERE target_table LIKE '%labels_died'").fetchone() == (0,)


def test_a_module_the_cluster_cannot_import_is_named(on_cluster: engine.Connection, tmp_path: Path) -> None:
    (tmp_path / "driver_only_lfs.py").write_text("def vote(text):\n    return 'spam' if 'win' in text else None\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import driver_only_lfs

        register_labeling_function(on_cluster, labeling_function(name="lf_driver_only", on="sms", register=False)(
            driver_only_lfs.vote))
        with pytest.raises(engine.OperationalError) as error:
            on_cluster.execute(f"LABEL sms USING {USING}, lf_driver_only {OPTIONS} INTO labels_driver_only")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("driver_only_lfs", None)
    assert "cannot import driver_only_lfs (needed by labeling function lf_driver_only)" in str(error.value)
    assert "Install them on every node" in str(error.value)
    assert not _exists(on_cluster, "labels_driver_only")


def test_an_unreachable_cluster_is_an_operational_error_and_writes_nothing(sms_path: Path) -> None:
    con = _connect(sms_path, "127.0.0.1:1")
    try:
        with pytest.raises(engine.OperationalError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
            con.execute(f"LABEL sms USING {USING} {OPTIONS} INTO labels_unreachable")
        with pytest.raises(engine.OperationalError, match=r"cannot reach the Ray cluster at ray://127\.0\.0\.1:1"):
            con.execute("SET cluster = 'ray://127.0.0.1:1'").execute("SHOW CLUSTER")
        assert not _exists(con, "labels_unreachable")
    finally:
        con.close()


def test_cluster_setting_checks_its_form(con: engine.Connection) -> None:
    with pytest.raises(engine.DataError, match="expected 'none', 'local', 'host:port' or 'ray://host:port'"):
        con.execute("SET cluster = 'http://x:1'")
    with pytest.raises(engine.ProgrammingError, match="SHOW CLUSTER needs a cluster"):
        con.execute("SHOW CLUSTER")
