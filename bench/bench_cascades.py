"""Cascades (issue 13): queries under ``SET inference_accuracy`` against exact inference over
every frame, side by side in one run, decoding counted on both sides and the cost of labeling
the sample, training and calibration included in the first query.

    .venv/bin/python bench/bench_cascades.py [--video vtest] [--copies 45] [--contract 0.95] [--size 224]

For the clip (``--video vtest``: data/vtest.avi, a static camera; ``bikes``: data/bikes.mp4, a
moving one) at 224x224 and, with ``--copies N``, the clip remuxed N times end to end (vtest.avi
45 times is the hour of the storage issue, 35,775 frames; its copies repeat frames, so
accuracy is measured there on all frames against exact inference, while the contract's test on
truly unseen frames is the plain clip's, tests/test_cascades.py), with MobileNetV2 as the
reference model, result cache off:

1. exact inference: every frame through MobileNetV2 (label and score in one scan: what an
   exact selection, count or top k costs); the predicate is the commonest label holding on
   5-20% of the frames in that output;
2. ``SELECT frame_id ... WHERE mobilenet(frame).label = '<label>'`` under the contract: the
   first query (labels a sample, trains and calibrates a specialized model) and a repeat (reuses
   it), each with its time against exact, its breakdown (labeling, decode, convert, training,
   calibration, difference detector, specialized model, reference model), the frames each
   stage decided, and precision and recall against exact on all frames (and on the frames its
   samples never saw);
3. ``count(*)`` with the same condition (BlazeIt: the specialized model as a control variate),
   its estimate, interval and error against the exact count;
4. the top 10 of that label by score (ranked by the specialized model, confirmed by the
   reference model), its overlap with the exact top 10.

``--plain`` also runs the plain clip before the remuxed one (always, without ``--copies``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from engine.cascades.run import REPORTS, CascadeReport  # noqa: E402
from engine.inference.scan import STATS  # noqa: E402

VIDEOS = {"vtest": "vtest.avi", "bikes": "bikes.mp4"}
#: The breakdown's stages, in the order printed.
STAGES = ("labeling", "decode", "convert", "training", "calibration", "difference", "specialized", "reference")


def line(name: str, value: str) -> None:
    print(f"  {name:<66} {value}", flush=True)


def accuracy(got: set[int], truth: set[int], frames: set[int]) -> str:
    tp, fp, fn = len(got & truth & frames), len((got - truth) & frames), len((truth - got) & frames)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return f"precision {precision:.3f}, recall {recall:.3f} ({tp + fn} positives in {len(frames)} frames)"


def breakdown(report: CascadeReport) -> str:
    parts = {**{k: report.breakdown[k] for k in STAGES if k in report.breakdown}, **report.breakdown}
    return ", ".join(f"{k} {v:.1f}" for k, v in parts.items())


def timed(con: engine.Connection, query: str, parameters: list[object]) -> tuple[list[tuple], float, CascadeReport]:
    started = time.perf_counter()
    rows = con.execute(query, parameters).fetchall()
    return rows, time.perf_counter() - started, con.session.state[REPORTS][-1]


def header(title: str, report: CascadeReport, seconds: float, exact_seconds: float) -> None:
    print(f"  -- {title}: {report.plan}{' (' + report.reason + ')' if report.reason else ''}", flush=True)
    line("seconds; speed-up over exact inference", f"{seconds:.1f}; {exact_seconds / seconds:.2f}x")
    line("breakdown (s)", breakdown(report))


def run_clip(path: str, name: str, args: argparse.Namespace, folder: str) -> None:
    con = engine.connect(str(Path(folder) / f"{name}.db"), progress="off")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (width = {args.size}, height = {args.size})")
    con.execute("CREATE MODEL mobilenet FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', "
                "labels = 'data/imagenet_classes.txt')")
    con.execute("SET inference_cache = false")  # both sides compute: nothing served from the result cache
    frames = con.execute("SELECT count(*) FROM clip").fetchone()[0]
    load = os.getloadavg()
    print(f"\n== {name}: {frames} frames at {args.size}x{args.size}, MobileNetV2 as the reference model "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})", flush=True)
    started = time.perf_counter()
    rows = con.execute("SELECT frame_id, mobilenet(frame).label, mobilenet(frame).score FROM clip").fetchall()
    exact_seconds = time.perf_counter() - started
    scan = con.session.state[STATS][-1]
    shares = Counter(r[1] for r in rows)
    label = max((k for k, v in shares.items() if 0.05 <= v / frames <= 0.20), key=lambda k: shares[k])
    truth = {r[0] for r in rows if r[1] == label}
    every = {r[0] for r in rows}
    line(f"predicate: mobilenet(frame).label = '{label}'", f"holds on {len(truth)} frames ({len(truth) / frames:.1%})")
    line("exact: every frame through MobileNetV2 (s; ms a frame)", f"{exact_seconds:.1f}; "
         f"{1000 * exact_seconds / frames:.2f}")
    line("exact: breakdown (s)", f"reference model {scan.network_seconds:.1f} (decoding its batches included), "
                                 f"the rest {scan.seconds - scan.network_seconds:.1f}")
    con.execute(f"SET inference_cascade_min_frames = {args.min_frames}")
    con.execute(f"SET inference_cascade_sample = {args.sample}")
    con.execute(f"SET inference_accuracy = {args.contract}")
    selection(con, label, truth, every, exact_seconds)
    if "count" in args.queries:
        count(con, label, len(truth), exact_seconds)
    if "top" in args.queries:
        top_k(con, label, rows, exact_seconds)
    con.close()


def selection(con: engine.Connection, label: str, truth: set[int], every: set[int], exact_seconds: float) -> None:
    query = "SELECT frame_id FROM clip WHERE mobilenet(frame).label = ?"
    for attempt in ("selection, first query", "selection, repeat query"):
        rows, seconds, report = timed(con, query, [label])
        got = {r[0] for r in rows}
        header(attempt, report, seconds, exact_seconds)
        line("frames: sampled / difference detector / specialized model / reference model",
             f"{report.sampled} / {report.by_difference} / {report.by_specialized} / {report.by_reference}")
        if report.thresholds is not None:
            line("thresholds", report.thresholds.describe())
        line("accuracy on all frames against exact", accuracy(got, truth, every))
        if report.specialized_id is not None:
            sample = con.execute("SELECT training_frames || calibration_frames FROM mallard.specialized_models "
                                 "WHERE specialized_id = ?", [report.specialized_id]).fetchone()[0]
            line("accuracy on the frames its samples never saw", accuracy(got, truth, every - set(sample)))
        else:
            return  # exact without a specialized model (too few positives): nothing to repeat


def count(con: engine.Connection, label: str, exact: int, exact_seconds: float) -> None:
    rows, seconds, report = timed(con, "SELECT count(*) FROM clip WHERE mobilenet(frame).label = ?", [label])
    header("count(*) with the same condition", report, seconds, exact_seconds)
    got = rows[0][0]
    low, high = report.interval if report.interval is not None else (float("nan"), float("nan"))
    line("estimate (95% interval); exact; relative error",
         f"{got} ({low:.1f} .. {high:.1f}); {exact}; {abs(got - exact) / max(exact, 1):.2%}")
    line("frames the reference model answered (of which the sample)",
         f"{report.by_reference} ({report.sampled}); control variate left "
         f"{report.variance_ratio if report.variance_ratio is not None else float('nan'):.1%} of the variance")


def top_k(con: engine.Connection, label: str, rows: list[tuple], exact_seconds: float, k: int = 10) -> None:
    query = "SELECT frame_id FROM clip WHERE mobilenet(frame).label = ? ORDER BY mobilenet(frame).score DESC LIMIT ?"
    got, seconds, report = timed(con, query, [label, k])
    header(f"top {k} of that label by score", report, seconds, exact_seconds)
    exact = [r[0] for r in sorted((r for r in rows if r[1] == label), key=lambda r: (-r[2], r[0]))[:k]]
    overlap = len({r[0] for r in got} & set(exact)) / k
    line("overlap with the exact top k (certified bound)",
         f"{overlap:.2f} ({report.overlap_bound if report.overlap_bound is not None else float('nan'):.3f})")
    line("frames the reference model answered (of which the sample)", f"{report.by_reference} ({report.sampled})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", choices=sorted(VIDEOS), default="vtest")
    parser.add_argument("--copies", type=int, default=0, help="the clip remuxed this many times (0: the plain clip)")
    parser.add_argument("--plain", action="store_true", help="also the plain clip, before the remuxed one")
    parser.add_argument("--contract", type=float, default=0.95, help="SET inference_accuracy")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sample", type=int, default=1000, help="SET inference_cascade_sample")
    parser.add_argument("--min-frames", type=int, default=500, help="SET inference_cascade_min_frames")
    parser.add_argument("--queries", nargs="+", choices=("count", "top"), default=["count", "top"],
                        help="which queries run after the selection (the top 10 can cost as much as exact)")
    args = parser.parse_args()
    source = str(ROOT / "data" / VIDEOS[args.video])
    with tempfile.TemporaryDirectory() as folder:
        if args.plain or not args.copies:
            run_clip(source, VIDEOS[args.video], args, folder)
        if args.copies:
            from engine.video_stream.synthetic import concatenate

            suffix = Path(source).suffix
            long = str(Path(folder) / f"{args.video}_x{args.copies}{suffix}")
            concatenate(source, long, args.copies)
            run_clip(long, f"{VIDEOS[args.video]} x{args.copies}", args, folder)


if __name__ == "__main__":
    main()
