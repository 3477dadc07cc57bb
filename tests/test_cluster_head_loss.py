"""Losing the Ray head mid-statement: the head of a real two-node local cluster is killed
(SIGKILL to its process group) while LABEL runs on the cluster.  The driver, a process of its
own (Ray's driver would end the test process if it gave up reconnecting), gets a clear
OperationalError within seconds instead of hanging, keeps working on this machine, and the
database is unchanged and opens."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import engine
from tests import cluster_lfs
from tests.conftest import data_file
from tests.labeling_sms import load_sms
from tests.ray_cluster import running_cluster

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(marker: Path, driver: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert driver.poll() is None, f"the driver exited before the statement reached the cluster: {driver.communicate()}"
        assert time.monotonic() < deadline, "the stalling function never ran on the cluster"
        time.sleep(0.2)


def test_losing_the_head_mid_label_is_an_operational_error_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "headless.duckdb"
    with engine.connect(str(path), progress="off", autocommit=True) as con:
        load_sms(con, data_file("spam_collection.tsv"))
        before = con.execute("SELECT count(*) FROM mallard.label_runs").fetchone()
    faults = Path(tempfile.mkdtemp(prefix="mallard-faults-"))
    os.environ[cluster_lfs.FAULTS_ENV] = str(faults)  # the nodes' workers inherit it
    try:
        with running_cluster(nodes=2) as cluster:
            driver = subprocess.Popen([sys.executable, "-m", "tests.cluster_head_loss_driver", str(path), cluster.address],
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                _wait_for(faults / "stalled", driver, timeout=120)
                os.killpg(cluster.processes[0].pid, signal.SIGKILL)  # the head: its GCS, raylet and workers
                killed = time.monotonic()
                out, err = driver.communicate(timeout=cluster_lfs.STALL_SECONDS)
                waited = time.monotonic() - killed
            finally:
                if driver.poll() is None:
                    driver.kill()
    finally:
        shutil.rmtree(os.environ.pop(cluster_lfs.FAULTS_ENV), ignore_errors=True)
    assert driver.returncode == 0, err[-2000:]
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome.get("error") == "OperationalError", outcome
    assert "lost the Ray cluster's head at 127.0.0.1:" in outcome["message"]
    assert "nothing was written" in outcome["message"]
    assert outcome["rows_after"] == 4862  # the same connection goes on working without the cluster
    assert waited < cluster_lfs.STALL_SECONDS  # failed on noticing the head, not when the stalled task ended
    with engine.connect(str(path), progress="off") as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels_headless'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM mallard.label_runs").fetchone() == before
