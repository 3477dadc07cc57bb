"""Cascades (issue 13): a selection under ``SET inference_accuracy`` against exact inference
over every frame, side by side in one run, decoding counted on both sides and the cost of
labeling the sample, training and calibration included in the first query.

    .venv/bin/python bench/bench_cascades.py [--contracts 0.95 0.9] [--copies 4] [--size 224]

For vtest.avi at 224x224 (and, with ``--copies N``, vtest.avi remuxed N times end to end:
its copies repeat frames, so its accuracy is measured but the contract is tested on the
plain clip) with MobileNetV2: the predicate is the commonest label holding on 5-20% of the
frames in the reference model's own output; exact inference runs with the result cache
off, then each contract's first query (which trains a specialized model, unless the sample
has too few positives), a repeat query (which reuses it), both as the planner chooses
(``inference_cascade_max_undecided`` at its default: exact when the specialized model would
leave too many frames undecided), and the repeat query with the cascade forced; each with its breakdown
(decode, convert, difference detector, specialized model, reference model, labeling,
training, calibration), its stage counts, and precision and recall against exact inference
on all frames and on the frames its samples never saw.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from engine.cascades.run import REPORTS  # noqa: E402
from engine.inference.scan import STATS  # noqa: E402


def line(name: str, value: str) -> None:
    print(f"  {name:<68} {value}", flush=True)


def accuracy(got: set[int], truth: set[int], frames: set[int]) -> str:
    tp, fp, fn = len(got & truth & frames), len((got - truth) & frames), len((truth - got) & frames)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return f"precision {precision:.3f}, recall {recall:.3f} ({tp + fn} positives in {len(frames)} frames)"


def run_clip(path: str, name: str, args: argparse.Namespace, folder: str) -> None:
    con = engine.connect(str(Path(folder) / f"{name}.db"), progress="off")
    con.execute(f"LOAD VIDEO '{path}' INTO clip WITH (width = {args.size}, height = {args.size})")
    con.execute("CREATE MODEL mobilenet FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', "
                "labels = 'data/imagenet_classes.txt')")
    con.execute("SET inference_cache = false")  # both sides compute: nothing served from the result cache
    frames = con.execute("SELECT count(*) FROM clip").fetchone()[0]
    print(f"\n== {name}: {frames} frames at {args.size}x{args.size}, MobileNetV2 as the reference model", flush=True)
    started = time.perf_counter()
    rows = con.execute("SELECT frame_id, mobilenet(frame).label FROM clip").fetchall()
    exact_seconds = time.perf_counter() - started
    scan = con.session.state[STATS][-1]
    shares = Counter(r[1] for r in rows)
    label = max((k for k, v in shares.items() if 0.05 <= v / frames <= 0.20), key=lambda k: shares[k])
    truth = {r[0] for r in rows if r[1] == label}
    every = {r[0] for r in rows}
    query = "SELECT frame_id FROM clip WHERE mobilenet(frame).label = ?"
    line(f"predicate: mobilenet(frame).label = '{label}'", f"holds on {len(truth)} frames ({len(truth) / frames:.1%})")
    line("exact: every frame through MobileNetV2 (s; ms a frame)", f"{exact_seconds:.1f}; {1000 * exact_seconds / frames:.1f}")
    line("exact: breakdown (s)", f"reference model {scan.network_seconds:.1f}, decode and the rest "
                                 f"{scan.seconds - scan.network_seconds:.1f}")
    con.execute(f"SET inference_cascade_min_frames = {args.min_frames}")
    con.execute(f"SET inference_cascade_sample = {args.sample}")
    for contract in args.contracts:
        con.execute(f"SET inference_accuracy = {contract}")
        for attempt, ceiling in (("first query", 0.75), ("repeat query", 0.75), ("repeat query, cascade forced", 1.0)):
            con.execute(f"SET inference_cascade_max_undecided = {ceiling}")
            started = time.perf_counter()
            got = {r[0] for r in con.execute(query, [label]).fetchall()}
            seconds = time.perf_counter() - started
            report = con.session.state[REPORTS][-1]
            print(f"  -- inference_accuracy = {contract}, {attempt} (inference_cascade_max_undecided = {ceiling:g}): "
                  f"{report.plan}{' (' + report.reason + ')' if report.reason else ''}", flush=True)
            line("seconds; speed-up over exact inference", f"{seconds:.1f}; {exact_seconds / seconds:.2f}x")
            line("breakdown (s)", ", ".join(f"{k} {v:.2f}" for k, v in report.breakdown.items()))
            line("frames: sampled / difference detector / specialized model / reference model",
                 f"{report.sampled} / {report.by_difference} / {report.by_specialized} / {report.by_reference}")
            if report.thresholds is not None:
                line("thresholds", report.thresholds.describe())
            line("accuracy on all frames", accuracy(got, truth, every))
            if report.specialized_id is not None:
                sample = con.execute("SELECT training_frames || calibration_frames FROM mallard.specialized_models "
                                     "WHERE specialized_id = ?", [report.specialized_id]).fetchone()[0]
                line("accuracy on the frames its samples never saw", accuracy(got, truth, every - set(sample)))
            if report.specialized_id is None:
                break  # exact without a specialized model (too few positives): nothing to repeat
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contracts", type=float, nargs="+", default=[0.95, 0.9])
    parser.add_argument("--copies", type=int, default=0, help="also vtest.avi remuxed this many times (0: not)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sample", type=int, default=1000, help="SET inference_cascade_sample")
    parser.add_argument("--min-frames", type=int, default=500, help="SET inference_cascade_min_frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run_clip(str(ROOT / "data" / "vtest.avi"), "vtest.avi", args, folder)
        if args.copies:
            from engine.video_stream.synthetic import concatenate

            long = str(Path(folder) / f"vtest_x{args.copies}.avi")
            concatenate(str(ROOT / "data" / "vtest.avi"), long, args.copies)
            run_clip(long, f"vtest.avi x{args.copies}", args, folder)


if __name__ == "__main__":
    main()
