"""Mallard's heavy work on one process against a real two-node local Ray cluster (one CPU per
node): Python labeling functions over N rows (LABEL) and an inference scan (MobileNetV2, full
mode) over four clips in one query, each cut into segments at keyframes, side by side in one
run, with the driver's share of the cluster run's time.

    .venv/bin/python bench/bench_cluster.py                 # 1M rows, 4 clips of 120 frames
    .venv/bin/python bench/bench_cluster.py --rows 10000000 # the issue's 10M rows

The four clips: bikes.mp4 (moving camera), carphone.mp4, and two stretches of vtest.avi (its
first ``--frames`` frames and the next ``--frames``), each a frames table of its own.

The cluster's two nodes are processes on this machine, so "2 nodes" means 2 cores; the
one-process side uses one core for Python functions (they hold the GIL) and torch's threads
for the model (set to 1 here, as each Ray task uses, so per-core throughput compares).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from tests.ray_cluster import running_cluster  # noqa: E402
from udfs.labeling import labeling_function, register_labeling_function  # noqa: E402

WORDS = ["free", "win", "prize", "call", "now", "hey", "ok", "love", "home", "txt", "cash", "urgent", "lol", "sorry"]


def lf_free(text: str) -> str | None:
    return "spam" if "free" in text or "prize" in text else None


def lf_urgent(text: str) -> str | None:
    return "spam" if re.search(r"\b(urgent|cash|win)\b", text) else None


def lf_chat(text: str) -> str | None:
    return "ham" if re.search(r"\b(hey|ok|lol|sorry)\b", text) else None


def lf_short(text: str) -> str | None:
    return "ham" if len(text) < 24 else None


LFS = {"lf_free": lf_free, "lf_urgent": lf_urgent, "lf_chat": lf_chat, "lf_short": lf_short}
LABEL = "LABEL msgs USING lf_free, lf_urgent, lf_chat, lf_short WITH (classes = ['ham', 'spam']) INTO OR REPLACE labels"
#: The clips: table, file, and the first frame scanned (vtest.avi gives two stretches).
CLIPS = (("bikes", "bikes.mp4", 0), ("carphone", "carphone.mp4", 0), ("vtest_a", "vtest.avi", 0),
         ("vtest_b", "vtest.avi", 1))


def scan_query(frames: int) -> str:
    """One query over the four clips: the distinct labels MobileNetV2 sees in each."""
    parts = [f"SELECT '{table}' AS clip, mobilenet(frame).label AS label FROM {table} WHERE frame_id >= {start * frames}"
             for table, _, start in CLIPS]
    return f"SELECT clip, count(DISTINCT label) FROM ({' UNION ALL '.join(parts)}) GROUP BY clip ORDER BY clip"


def build(path: Path, rows: int, frames: int) -> None:
    with engine.connect(str(path), autocommit=True, progress="off") as con:
        words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
        con.execute(f"""CREATE TABLE msgs AS SELECT range AS id,
            array_to_string(list_transform(range(1 + (hash(range) % 6)::INTEGER),
                lambda x: {words}[1 + (hash(range * 31 + x) % {len(WORDS)})::INTEGER]), ' ') AS text
            FROM range({rows})""")
        for table, name, start in CLIPS:
            con.execute(f"LOAD VIDEO ? INTO {table} WITH (width = 224, height = 224, limit = {(start + 1) * frames})",
                        [str(ROOT / "data" / name)])
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2')",
                    [str(ROOT / "data" / "mobilenet_v2.pth")])


def connect(path: Path, cluster: str) -> engine.Connection:
    con = engine.connect(str(path), autocommit=True, progress="off", cluster=cluster, inference_cache=False,
                         cluster_partition_rows=100_000)
    for name, fn in LFS.items():
        register_labeling_function(con, labeling_function(name=name, on="msgs", register=False)(fn))
    return con


def timed(con: engine.Connection, sql: str) -> tuple[float, str | None]:
    seconds, message, _ = timed_rows(con, sql)
    return seconds, message


def timed_rows(con: engine.Connection, sql: str) -> tuple[float, str | None, list[tuple]]:
    started = time.perf_counter()
    cursor = con.execute(sql)
    rows = cursor.fetchall() if cursor.description is not None else []
    return time.perf_counter() - started, cursor.message, rows


def explain_segments(con: engine.Connection, scan: str) -> tuple[float, float, int]:
    """(wall, summed task seconds, segments) of one scan, from EXPLAIN ANALYZE (a row per clip)."""
    started = time.perf_counter()
    text = "\n".join(row[1] for row in con.execute(f"EXPLAIN ANALYZE {scan}").fetchall())
    wall = time.perf_counter() - started
    seconds = [float(s) for s in re.findall(r"worker pid \d+, ([\d.]+) s", text)]
    return wall, sum(seconds), len(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=120, help="frames of each clip")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    path = Path(tempfile.mkdtemp()) / "bench.duckdb"
    build(path, args.rows, args.frames)
    local = connect(path, "none")
    scan = scan_query(args.frames)
    lf_local, _ = timed(local, LABEL)
    scan_local, _, labels_local = timed_rows(local, scan)
    with running_cluster(nodes=2) as cluster:
        con = connect(path, cluster.address)
        con.execute("SHOW CLUSTER").fetchall()
        cluster.wait_for_nodes(2)
        timed(con, LABEL.replace("INTO OR REPLACE labels", "INTO OR REPLACE warm"))  # workers start, modules load
        lf_cluster, message = timed(con, LABEL)
        phase = float(re.search(r"cluster nodes? \(([\d.]+) s\)", message or "").group(1))  # type: ignore[union-attr]
        timed(con, scan.replace("count(DISTINCT label)", "count(DISTINCT label) + 0"))  # warm: workers build the network once
        scan_cluster, tasks, segments = explain_segments(con, scan)
        same_scan = con.execute(scan).fetchall() == labels_local
        same = local.execute("SELECT count(*) FROM labels").fetchone() == con.execute("SELECT count(*) FROM labels").fetchone()
        con.close()
    local.close()
    print(f"Python LFs, {args.rows:,} rows x {len(LFS)} functions: one process {lf_local:.2f} s "
          f"({args.rows / lf_local:,.0f} rows/s); 2-node cluster {lf_cluster:.2f} s ({args.rows / lf_cluster:,.0f} rows/s): "
          f"speed-up {lf_local / lf_cluster:.2f}x on 2 cores, scaling efficiency {lf_local / lf_cluster / 2:.0%}; "
          f"cluster phase {phase:.2f} s, driver-only remainder (SQL join, GROUP BY, fit, write) "
          f"{lf_cluster - phase:.2f} s = {(lf_cluster - phase) / lf_cluster:.0%} of the statement; same row count: {same}")
    print(f"Inference scan, MobileNetV2 full over 4 clips x {args.frames} frames at 224x224 ({segments} segments): one process "
          f"{scan_local:.2f} s ({4 * args.frames / scan_local:.1f} frames/s); 2-node cluster {scan_cluster:.2f} s "
          f"({4 * args.frames / scan_cluster:.1f} frames/s): speed-up {scan_local / scan_cluster:.2f}x, efficiency "
          f"{scan_local / scan_cluster / 2:.0%}; task seconds {tasks:.2f} of {2 * scan_cluster:.2f} core-seconds; "
          f"driver share (wall not covered by the busier node's tasks) about "
          f"{max(0.0, scan_cluster - tasks / 2) / scan_cluster:.0%}; same labels per clip: {same_scan}")


if __name__ == "__main__":
    main()
