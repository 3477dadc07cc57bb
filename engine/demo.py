"""``mallard demo``: load a real surveillance clip into a local DuckDB file and query it.

Every step prints the SQL it runs and what came back, so the demo doubles as a tour.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import engine
from sqlglot import exp
from engine.shell import format_table

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
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mallard demo", description=__doc__)
    parser.add_argument("--db", default="mallard_demo.duckdb", help="database file (default: %(default)s)")
    parser.add_argument("--video", default=os.path.join("data", "vtest.avi"),
                        help="the clip to load (default: %(default)s, fetched by `make data`)")
    opts = parser.parse_args(list(argv or []))
    if not Path(opts.video).exists():
        print(f"Error: {opts.video} not found; run `make data` first (it fetches the clip from Debian's opencv-doc)",
              file=sys.stderr)
        return 1
    print(f"Mallard demo: database {opts.db}, clip {opts.video}\n")
    started = time.perf_counter()
    with engine.connect(opts.db, autocommit=True) as con:
        for title, template in STEPS:
            sql = template.format(video=exp.Literal.string(opts.video).sql("duckdb"))  # quoted by sqlglot
            print(f"-- {title}\n{sql};")
            cursor = con.execute(sql)
            if cursor.description is not None:
                print(format_table([d[0] for d in cursor.description], cursor.fetchall()))
            else:
                print(cursor.message or f"{cursor.rowcount} rows")
            print()
    size = os.path.getsize(opts.db) / 1e6
    print(f"Done in {time.perf_counter() - started:.1f} s. {opts.db} ({size:.0f} MB) holds the frames and the "
          f"catalog; reopen it with `mallard {opts.db}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
