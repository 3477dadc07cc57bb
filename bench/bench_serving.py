"""Online serving under load: ``mallard serve`` with the ImageNet MobileNetV2, JPEG inputs,
adaptive batching against fixed batch sizes at the same latency objective, and overload.

Everything runs side by side in one run, on loopback, with the load generator of
:mod:`engine.serving.load` (real HTTP, kept-alive connections, bounded in time):

1. *The model's own curve*: plain PyTorch, the strong form (batch norm folded, channels-last),
   milliseconds per image at batch 1, 2, 4, 8, 16 on the same threads: what batching can gain.
2. *Throughput at the objective*: a closed loop of ``--connections`` clients for ``--duration``
   seconds against a server with adaptive batching, then against servers with the batch size
   fixed at each size of ``--sweep`` (1 first), all with the same ``--slo-ms`` (requests that
   cannot meet it are refused at once, so throughput counts answers within the objective).
   Printed: answers a second, p50/p99 latency of the answers, refusals, the mean batch.
3. *The server's own cost per request* with JPEG inputs: its handler work (body, JSON, base64,
   hashing, JPEG decoding, cache, answer; the server's ``mallard_overhead_seconds``), and at
   concurrency 1 the end-to-end latency minus the network's time (an upper bound that also
   holds HTTP parsing, loopback and the client), both against the model's time per image at
   the batch size adaptive batching chose.
4. *Overload*: open loop at 2x the rate adaptive batching sustained, for ``--overload-seconds``:
   statuses (no 5xx but 503 refusals), p99 of the answers against 2x the objective, the
   server's RSS before and after.

    .venv/bin/python bench/bench_serving.py                  # about 8 minutes on 2 cores
    .venv/bin/python bench/bench_serving.py --quick          # about 2 minutes: fewer sizes, shorter runs

Targets (issue 12): adaptive batching reaches 0.9 of the best fixed size's throughput with p99
under the objective, without being told that size (printed against the best fixed size by
throughput alone, and against the best that itself holds the objective); the server's own cost per request under
20% of the model's time per image at the chosen batch; at 2x the sustainable rate no 5xx
other than 503 refusals, p99 of accepted requests under 2x the objective, RSS flat.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import imagenet_mobilenet  # noqa: E402

import engine  # noqa: E402
from engine.serving.client import ServingClient, image_input  # noqa: E402
from engine.serving.load import LoadResult, run  # noqa: E402

MALLARD = str(Path(sys.executable).parent / "mallard")
PATH = "/v1/models/mobilenet:predict"


def model_curve(frames: np.ndarray, threads: int, sizes: tuple[int, ...] = (1, 2, 4, 8, 16)) -> dict[int, float]:
    """Plain PyTorch, strong form: milliseconds per image at each batch size (least of a few runs)."""
    from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD
    from engine.inference.networks import forward_frames, inference_network

    torch.set_num_threads(threads)
    network = inference_network(imagenet_mobilenet())
    curve = {}
    for size in sizes:
        batch = frames[:size]
        forward_frames(network, batch, IMAGENET_MEAN, IMAGENET_STD)  # the shape's kernels
        times = []
        for _ in range(max(3, 48 // size)):
            started = time.perf_counter()
            forward_frames(network, batch, IMAGENET_MEAN, IMAGENET_STD)
            times.append((time.perf_counter() - started) / size)
        curve[size] = 1000 * float(np.min(times))
    return curve


def jpeg_bodies(frames: np.ndarray) -> list[bytes]:
    import json

    from PIL import Image

    bodies = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "JPEG", quality=90)
        bodies.append(json.dumps({"inputs": [image_input(buffer.getvalue())]}).encode())
    return bodies


class Server:
    """``mallard serve`` in a subprocess (cache off: every request runs the model)."""

    def __init__(self, db: Path, *options: str) -> None:
        self.log = open(f"{db}.server.log", "a")
        self.process = subprocess.Popen([MALLARD, "serve", str(db), "--port", "0", "--cache-mb", "0", *options],
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
                                        env={**os.environ, "CI": "1"})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("Mallard serving"):
            raise RuntimeError(f"the server did not start: {line}; see {self.log.name}")
        self.url = line.rsplit(" ", 1)[1].strip()
        self.client = ServingClient(self.url, timeout=300)
        self.client.wait_ready(timeout=300)

    def warm(self, bodies: list[bytes], seconds: float = 2.0) -> None:
        run(self.url, PATH, bodies, duration=seconds, connections=4)

    def metrics(self) -> str:
        return self.client.metrics()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)
        self.log.close()


def histogram_mean(text: str, name: str) -> float:
    """sum / count of a histogram of the Prometheus text (model mobilenet)."""
    values = {}
    for part in ("sum", "count"):
        match = re.search(rf'^{name}_{part}{{model="mobilenet"}} (\S+)$', text, re.M)
        values[part] = float(match.group(1)) if match else 0.0
    return values["sum"] / values["count"] if values["count"] else float("nan")


def delta_mean(before: str, after: str, name: str) -> float:
    def parts(text: str) -> tuple[float, float]:
        found = [re.search(rf'^{name}_{p}{{model="mobilenet"}} (\S+)$', text, re.M) for p in ("sum", "count")]
        return tuple(float(m.group(1)) if m else 0.0 for m in found)  # type: ignore[return-value]
    (s0, c0), (s1, c1) = parts(before), parts(after)
    return (s1 - s0) / (c1 - c0) if c1 > c0 else float("nan")


def measure(db: Path, bodies: list[bytes], args: argparse.Namespace, *options: str) -> tuple[LoadResult, float, float]:
    """A closed-loop run against a fresh server: the result, the mean batch, the mean handler work (ms)."""
    server = Server(db, "--slo-ms", str(args.slo_ms), "--threads", str(args.threads), *options)
    try:
        server.warm(bodies)
        before = server.metrics()
        result = run(server.url, PATH, bodies, duration=args.duration, warmup=args.warmup,
                     connections=args.connections, refusal_pause=args.slo_ms / 1000)
        after = server.metrics()
        return result, delta_mean(before, after, "mallard_batch_size"), 1000 * delta_mean(
            before, after, "mallard_overhead_seconds")
    finally:
        server.stop()


def line(name: str, result: LoadResult, batch: float) -> str:
    s = result.summary()
    return (f"  {name:<14} {s['throughput']:>8.1f}/s   p50 {s['p50_ms']:>6.1f} ms   p99 {s['p99_ms']:>6.1f} ms   "
            f"refused {s['refused']:>5}   errors {s['errors']:>3}   mean batch {batch:5.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240, help="distinct JPEG images (vtest.avi frames at 224x224)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--slo-ms", type=float, default=50.0)
    parser.add_argument("--sweep", default="1,2,4,8,16", help="fixed batch sizes to compare with")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="torch threads, server and curve (default: the server's, every core but one)")
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="shorter runs and a smaller sweep")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.duration, args.warmup, args.sweep, args.overload_seconds = 64, 5.0, 1.0, "1,4,16", 8.0
    sweep = [int(s) for s in args.sweep.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "serving.duckdb"
        with engine.connect(db, autocommit=True, progress="off") as con:
            con.execute("LOAD VIDEO ? INTO traffic WITH (width = 224, height = 224, limit = ?)",
                        [str(ROOT / "data" / "vtest.avi"), args.frames])
            con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                        [str(ROOT / "data" / "mobilenet_v2.pth"), str(ROOT / "data" / "imagenet_classes.txt")])
            frames = engine.frames_to_numpy(con, "traffic")
        bodies = jpeg_bodies(frames)
        print(f"{len(bodies)} distinct 224x224 JPEG requests (mean {np.mean([len(b) for b in bodies]) / 1024:.1f} KiB), "
              f"{args.connections} connections, SLO {args.slo_ms:g} ms, torch threads {args.threads}, "
              f"{args.duration:g} s per configuration", flush=True)

        curve = model_curve(frames, args.threads)
        print("\n1. the model alone (plain PyTorch, strong form): ms per image by batch size")
        print("  " + "   ".join(f"{size}: {ms:.2f}" for size, ms in curve.items()), flush=True)

        print("\n2. throughput at the objective (closed loop)")
        adaptive, adaptive_batch, own_ms = measure(db, bodies, args)
        print(line("adaptive", adaptive, adaptive_batch), flush=True)
        fixed = {}
        for size in sweep:
            fixed[size] = measure(db, bodies, args, "--fixed-batch", str(size))
            print(line(f"fixed {size}", fixed[size][0], fixed[size][1]), flush=True)
        best_size = max(fixed, key=lambda s: fixed[s][0].throughput)
        best = fixed[best_size][0]
        ratio = adaptive.throughput / best.throughput if best.throughput else float("nan")
        print(f"  adaptive / best fixed ({best_size}): {ratio:.2f}   (target >= 0.90, p99 {adaptive.percentile(99):.1f} ms "
              f"against the {args.slo_ms:g} ms objective)")
        holding = {s: f for s, f in fixed.items() if f[0].percentile(99) <= args.slo_ms and f[0].throughput}
        if holding:  # the other reading of the target: the best fixed size that itself holds the objective
            held = max(holding, key=lambda s: holding[s][0].throughput)
            print(f"  adaptive / best fixed that holds the objective ({held}, p99 "
                  f"{holding[held][0].percentile(99):.1f} ms): {adaptive.throughput / holding[held][0].throughput:.2f}")
        if 1 in fixed and fixed[1][0].throughput:
            print(f"  adaptive / fixed 1: {adaptive.throughput / fixed[1][0].throughput:.2f}")

        print("\n3. the server's own cost per request (JPEG inputs)")
        chosen = max(1, round(adaptive_batch)) if adaptive_batch == adaptive_batch else 1  # nan: no batch ran
        per_image = curve.get(chosen) or np.interp(chosen, list(curve), list(curve.values()))
        server = Server(db, "--slo-ms", str(args.slo_ms), "--threads", str(args.threads))
        try:
            server.warm(bodies)
            before = server.metrics()
            single = run(server.url, PATH, bodies, duration=max(5.0, args.duration / 2), connections=1)
            after = server.metrics()
        finally:
            server.stop()
        compute_ms = 1000 * delta_mean(before, after, "mallard_compute_seconds")
        handler_ms = 1000 * delta_mean(before, after, "mallard_overhead_seconds")
        end_to_end = single.percentile(50) - compute_ms
        print(f"  model time per image at the chosen batch ({chosen}): {per_image:.2f} ms")
        print(f"  handler work under load: {own_ms:.3f} ms ({100 * own_ms / per_image:.1f}% of it; target < 20%)")
        print(f"  at concurrency 1: handler work {handler_ms:.3f} ms; end-to-end p50 {single.percentile(50):.2f} ms "
              f"minus network {compute_ms:.2f} ms = {end_to_end:.2f} ms ({100 * end_to_end / per_image:.1f}%; "
              "holds HTTP, loopback and the client too)")

        print(f"\n4. overload: open loop at 2x the sustained rate for {args.overload_seconds:g} s")
        rate = max(2 * adaptive.throughput, 1.0)
        server = Server(db, "--slo-ms", str(args.slo_ms), "--threads", str(args.threads))
        try:
            server.warm(bodies)
            rss_before = server.rss_mb()
            overload = run(server.url, PATH, bodies, duration=args.overload_seconds, rate=rate, connections=256)
            rss_after = server.rss_mb()
            alive = server.client.health().status == 200
        finally:
            server.stop()
        fives = {s: n for s, n in overload.statuses.items() if s >= 500 and s != 503}
        print(f"  rate {rate:.1f}/s: statuses {dict(sorted(overload.statuses.items()))}; answered {overload.throughput:.1f}/s")
        print(f"  p50 {overload.percentile(50):.1f} ms, p99 {overload.percentile(99):.1f} ms of the answers (target < "
              f"{2 * args.slo_ms:g} ms); 5xx other than 503: {sum(fives.values())}; server alive: {alive}")
        print(f"  server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after ({rss_after / rss_before:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
