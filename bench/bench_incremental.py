"""The incremental inference engine against plain PyTorch full inference, side by side.

Baseline: plain PyTorch, the same MobileNetV2 (data/mobilenet_v2.pth), batched full-frame
inference at its best batch size, on the same decoded frames, with the same torch thread
count.  Two plain-torch variants are timed: the model as it is (NCHW, the issue's baseline)
and the strongest plain-torch form we know (batch-norm folded by torch.fx, channels-last
memory), since the engine itself folds batch-norm and works channels-last.

Printed, and written to bench/out/ (ignored by git):

- vtest.avi (fixed camera), all frames at 224x224 and a subset at native 576x768: wall-time
  ratio baseline / engine for exact and approximate mode, the ideal multiply-add reduction
  (the cost model's sum of full over spent), the exact-mode efficiency (wall ratio over ideal
  ratio), the largest logit error of exact mode against full inference on the frames it
  computed on, and fidelity against full inference on the true frames (mean logit cosine,
  top-1 agreement on decisive frames where full inference's top-1 leads by 0.1 in
  probability, raw top-1 agreement);
- a sweep of every approximation knob around the defaults, and the speed/fidelity Pareto plot
  (bench/out/incremental_pareto.png);
- bikes.mp4 (moving camera): what the engine decides and its overhead over the baseline;
- an occlusion map (patch 16, stride 4) of a 224x224 frame: incremental against naive batched
  re-inference, ratio and largest error.

    .venv/bin/python bench/bench_incremental.py                 # everything (about 15-25 minutes)
    .venv/bin/python bench/bench_incremental.py --frames 200 --native-frames 12 --no-sweep --no-occlusion
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import MEAN, STD, Fidelity, fidelity, imagenet_mobilenet  # noqa: E402

from engine.inference.incremental import FrameStats, IncrementalConfig, IncrementalEngine, occlusion_map  # noqa: E402
from engine.video import decode_frames  # noqa: E402
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

OUT = ROOT / "bench" / "out"


def normalize(frames: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255) - MEAN) / STD


class Baseline:
    """Batched full inference in plain PyTorch, at its best batch size."""

    def __init__(self, network: torch.nn.Module, variant: str) -> None:
        self.variant = variant
        if variant == "nchw":
            self.network, self.layout = network, torch.contiguous_format
        else:
            from torch.fx.experimental.optimization import fuse

            self.network = fuse(copy.deepcopy(network)).to(memory_format=torch.channels_last)
            self.layout = torch.channels_last
        self.batch = 16

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([self.network(normalize(frames[i:i + self.batch]).contiguous(memory_format=self.layout))
                              for i in range(0, len(frames), self.batch)])

    def tune(self, frames: np.ndarray, sizes: tuple[int, ...] = (8, 16, 32)) -> None:
        timings = {}
        for size in sizes:
            self.batch = size
            self(frames[:size])
            timings[size] = timed(lambda: self(frames), repeat=1)[0]
        self.batch = min(timings, key=timings.get)  # type: ignore[arg-type]


#: CPU seconds (all threads) of the last ``timed`` call: steadier than wall time on a shared machine.
LAST_CPU = [0.0]


def timed(run: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs, and the last result (its CPU time in LAST_CPU)."""
    best, result = float("inf"), None
    LAST_CPU[0] = float("inf")
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        best = min(best, time.perf_counter() - start)
        LAST_CPU[0] = min(LAST_CPU[0], time.process_time() - cpu)
    return best, result


def run_engine(network: torch.nn.Module, frames: np.ndarray, mode: str,
               config: IncrementalConfig) -> tuple[torch.Tensor, list[FrameStats], np.ndarray]:
    engine = IncrementalEngine(network, IMAGENET_MEAN, IMAGENET_STD, mode, config)
    logits, _, stats = engine.run(frames, list(range(len(frames))))
    return logits, stats, engine.computed_frames  # type: ignore[return-value]


def ideal(stats: list[FrameStats]) -> float:
    return sum(s.macs_full for s in stats) / max(1, sum(s.macs for s in stats))


def kinds(stats: list[FrameStats]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in stats:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts


def clip_report(name: str, network: torch.nn.Module, frames: np.ndarray, repeat: int,
                approximate: IncrementalConfig) -> dict:
    """Baselines, exact and approximate mode on one clip; all timed in this run."""
    baselines = {variant: Baseline(network, variant) for variant in ("nchw", "fused_channels_last")}
    for baseline in baselines.values():
        baseline.tune(frames[:64])
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    truth = None
    for variant, baseline in baselines.items():
        times[variant], logits = timed(lambda b=baseline: b(frames), repeat)
        cpu[variant] = LAST_CPU[0]
        truth = logits if variant == "nchw" else truth
    results: dict[str, dict] = {}
    for mode, config in (("exact", IncrementalConfig()), ("approximate", approximate)):
        run_engine(network, frames[:8], mode, config)                     # warm the kernels
        seconds, (logits, stats, computed) = timed(lambda m=mode, c=config: run_engine(network, frames, m, c), repeat)
        entry = {
            "seconds": seconds, "cpu_seconds": LAST_CPU[0], "ideal": ideal(stats), "kinds": kinds(stats),
            "vs_nchw": times["nchw"] / seconds, "vs_fused": times["fused_channels_last"] / seconds,
            "cpu_vs_nchw": cpu["nchw"] / LAST_CPU[0], "cpu_vs_fused": cpu["fused_channels_last"] / LAST_CPU[0],
            "fidelity": asdict(fidelity(truth, logits)),  # type: ignore[arg-type]
        }
        if mode == "exact":
            entry["max_error_vs_computed_frames"] = float((Baseline(network, "nchw")(computed) - logits).abs().max())
        results[mode] = entry
    report = {"clip": name, "frames": len(frames), "size": list(frames.shape[1:3]),
              "baseline_seconds": times, "baseline_cpu_seconds": cpu, "batch": {k: b.batch for k, b in baselines.items()}, **results}
    print_clip(report)
    return report


def print_clip(report: dict) -> None:
    frames, (h, w) = report["frames"], report["size"]
    base = report["baseline_seconds"]
    print(f"\n== {report['clip']}: {frames} frames at {h}x{w}, torch threads {torch.get_num_threads()}")
    print(f"  baseline plain torch NCHW          {base['nchw']:8.2f} s  ({1000 * base['nchw'] / frames:.1f} ms/frame, "
          f"batch {report['batch']['nchw']})")
    fused = base["fused_channels_last"]
    print(f"  baseline fused BN + channels-last  {fused:8.2f} s  "
          f"({1000 * fused / frames:.1f} ms/frame, batch {report['batch']['fused_channels_last']})")
    for mode in ("exact", "approximate"):
        r = report[mode]
        line = (f"  {mode:<11} {r['seconds']:8.2f} s  x{r['vs_nchw']:.2f} vs NCHW  x{r['vs_fused']:.2f} vs fused-CL  "
                f"ideal MAC x{r['ideal']:.2f}  {r['kinds']}")
        print(line)
        print(f"              CPU time: x{r['cpu_vs_nchw']:.2f} vs NCHW, x{r['cpu_vs_fused']:.2f} vs fused-CL")
        if mode == "exact":
            print(f"              efficiency (wall/ideal) {r['vs_nchw'] / r['ideal']:.2f} vs NCHW, "
                  f"{r['vs_fused'] / r['ideal']:.2f} vs fused-CL; max |logit error| on computed frames "
                  f"{r['max_error_vs_computed_frames']:.2e}")
        print(f"              {Fidelity(**r['fidelity'])}")


SWEEPS: dict[str, tuple] = {
    "activation_threshold": (0.0, 0.05, 0.1, 0.13, 0.15, 0.2, 0.3),
    "refresh": ("auto", 32, 16, 8, 4),
    "batch_frames": (4, 8, 16),
    "skip_threshold": (0.0, 2e-5, 1e-4, 3e-4),
    "tau": (1.0, 0.9, 0.75),
    "pixel_threshold": (4 / 255, 8 / 255, 16 / 255),
}


#: Native size (576x768): the activation threshold and tau pushed further, alone and together.
NATIVE_SWEEP: tuple[dict, ...] = (
    {}, {"activation_threshold": 0.2}, {"activation_threshold": 0.3}, {"activation_threshold": 0.5},
    {"tau": 0.8}, {"activation_threshold": 0.3, "tau": 0.8}, {"activation_threshold": 0.5, "tau": 0.8},
)


def sweep(network: torch.nn.Module, frames: np.ndarray, truth: torch.Tensor, baseline_seconds: float,
          baseline_cpu: float, defaults: IncrementalConfig, grid: tuple[dict, ...] | None = None) -> list[dict]:
    """Each approximation knob varied around the defaults (or the configurations of ``grid``,
    overrides of the defaults): speed against fidelity."""
    rows = []
    points = grid if grid is not None else tuple({knob: value} for knob, values in SWEEPS.items() for value in values)
    for overrides in points:
        knob = ", ".join(overrides) or "defaults"
        value = next(iter(overrides.values())) if len(overrides) == 1 else ", ".join(map(str, overrides.values())) or "-"
        config = replace(defaults, **overrides)
        seconds, (logits, stats, _) = timed(lambda c=config: run_engine(network, frames, "approximate", c))
        f = fidelity(truth, logits)
        row = {"knob": knob, "value": value, "speedup": baseline_seconds / seconds, "ideal": ideal(stats),
               "cpu_speedup": baseline_cpu / LAST_CPU[0],
               **asdict(f), "default": all(v == getattr(defaults, k) for k, v in overrides.items())}
        rows.append(row)
        print(f"  {knob:<32} {value!s:<10} x{row['speedup']:.2f} (CPU x{row['cpu_speedup']:.2f})  "
              f"ideal x{row['ideal']:.2f}  {kinds(stats)}  {f}" + ("  (default)" if row["default"] else ""))
    return rows


def plot_pareto(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for knob in SWEEPS:
        points = [(r["speedup"], r["cosine"], r["value"]) for r in rows if r["knob"] == knob]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=knob)
        for x, y, value in points:
            ax.annotate(str(round(value, 5)) if isinstance(value, float) else str(value), (x, y), fontsize=7)
    ax.axhline(0.995, color="grey", linestyle="--", linewidth=1, label="fidelity bar (cos 0.995)")
    ax.set_xlabel("speedup over plain torch (NCHW), wall time")
    ax.set_ylabel("mean logit cosine vs full inference")
    ax.set_title("vtest.avi 224x224, approximate mode: each knob around the defaults")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def bikes_report(network: torch.nn.Module, frames: np.ndarray, repeat: int, approximate: IncrementalConfig) -> dict:
    baseline = Baseline(network, "nchw")
    baseline.tune(frames[:64])
    base_seconds, truth = timed(lambda: baseline(frames), repeat)
    base_cpu = LAST_CPU[0]
    fused = Baseline(network, "fused_channels_last")
    fused.tune(frames[:64])
    fused_seconds, _ = timed(lambda: fused(frames), repeat)
    report = {"frames": len(frames), "baseline_seconds": base_seconds, "baseline_cpu_seconds": base_cpu,
              "fused_channels_last_seconds": fused_seconds}
    print(f"\n== bikes.mp4 (moving camera): {len(frames)} frames at 224x224; baseline NCHW {base_seconds:.2f} s, "
          f"fused BN + channels-last {fused_seconds:.2f} s")
    for mode, config in (("exact", IncrementalConfig()), ("approximate", approximate)):
        seconds, (logits, stats, _) = timed(lambda m=mode, c=config: run_engine(network, frames, m, c), repeat)
        report[mode] = {"seconds": seconds, "overhead": seconds / base_seconds - 1, "kinds": kinds(stats),
                        "overhead_vs_fused": seconds / fused_seconds - 1,
                        "cpu_overhead": LAST_CPU[0] / base_cpu - 1,
                        "fidelity": asdict(fidelity(truth, logits))}  # type: ignore[arg-type]
        print(f"  {mode:<11} {seconds:.2f} s  overhead {100 * (seconds / base_seconds - 1):+.1f}% "
              f"(CPU {100 * (LAST_CPU[0] / base_cpu - 1):+.1f}%), vs fused-CL {100 * (seconds / fused_seconds - 1):+.1f}%  "
              f"{kinds(stats)}  "
              f"{fidelity(truth, logits)}")  # type: ignore[arg-type]
    return report


def occlusion_report(network: torch.nn.Module, image: np.ndarray) -> dict:
    network(normalize(image[None]))
    inc_seconds, fast = timed(lambda: occlusion_map(network, IMAGENET_MEAN, IMAGENET_STD, image, 16, 4))
    naive_seconds, slow = timed(lambda: occlusion_map(network, IMAGENET_MEAN, IMAGENET_STD, image, 16, 4,
                                                      method="naive"))
    fused = Baseline(network, "fused_channels_last").network
    fused_seconds, _ = timed(lambda: occlusion_map(fused, IMAGENET_MEAN, IMAGENET_STD, image, 16, 4, method="naive"))
    error = float(np.abs(fast - slow).max())  # type: ignore[operator]
    rows, cols = fast.shape  # type: ignore[union-attr]
    print(f"\n== occlusion map, 224x224, patch 16, stride 4 ({rows}x{cols} positions): "
          f"incremental {inc_seconds:.1f} s, naive batched {naive_seconds:.1f} s (x{naive_seconds / inc_seconds:.2f}), "
          f"naive with fused BN + channels-last {fused_seconds:.1f} s (x{fused_seconds / inc_seconds:.2f}), "
          f"max |difference| {error:.1e}")
    return {"incremental_seconds": inc_seconds, "naive_seconds": naive_seconds, "naive_fused_seconds": fused_seconds,
            "ratio": naive_seconds / inc_seconds, "ratio_vs_fused": fused_seconds / inc_seconds, "max_error": error}


def decode(name: str, limit: int | None, size: tuple[int, int] | None) -> np.ndarray:
    width, height = (size[1], size[0]) if size else (None, None)
    return np.stack([f for _, f in decode_frames(str(ROOT / "data" / name), width=width, height=height, limit=limit)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=795, help="vtest frames at 224x224")
    parser.add_argument("--native-frames", type=int, default=48, help="vtest frames at native 576x768")
    parser.add_argument("--bikes-frames", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs for the main figures")
    parser.add_argument("--sweep-frames", type=int, default=300, help="vtest frames for the knob sweep")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-occlusion", action="store_true")
    parser.add_argument("--native-sweep", type=int, default=0, metavar="N",
                        help="also sweep threshold and tau on the first N frames at native size (0: no)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    network = imagenet_mobilenet()
    approximate = IncrementalConfig()
    print(f"approximate-mode defaults: {asdict(approximate)}")
    results: dict = {"threads": args.threads, "approximate_defaults": asdict(approximate)}

    frames = decode("vtest.avi", args.frames, (224, 224))
    results["vtest_224"] = clip_report("vtest.avi", network, frames, args.repeat, approximate)
    if not args.no_sweep:
        part = frames[:args.sweep_frames]
        print(f"\n== knob sweep (approximate mode, first {len(part)} frames of vtest.avi at 224x224; "
              "speedup vs plain torch NCHW)")
        baseline = Baseline(network, "nchw")
        base_seconds, truth = timed(lambda: baseline(part))
        rows = sweep(network, part, truth, base_seconds, LAST_CPU[0], approximate)  # type: ignore[arg-type]
        results["sweep"] = rows
        plot_pareto(rows, OUT / "incremental_pareto.png")
        print(f"  Pareto plot: {OUT / 'incremental_pareto.png'}")
    if args.native_frames:
        native = decode("vtest.avi", args.native_frames, None)
        results["vtest_native"] = clip_report("vtest.avi (native)", network, native, 1, approximate)
    if args.native_sweep:
        native = decode("vtest.avi", args.native_sweep, None)
        print(f"\n== native-size sweep (approximate mode, first {len(native)} frames of vtest.avi at 576x768; "
              "speedup vs plain torch NCHW, batch 4)")
        baseline = Baseline(network, "nchw")
        baseline.batch = 4
        base_seconds, truth = timed(lambda: baseline(native))
        run_engine(network, native[:4], "approximate", approximate)   # warm the kernels
        results["native_sweep"] = sweep(network, native, truth, base_seconds, LAST_CPU[0], approximate,  # type: ignore[arg-type]
                                        NATIVE_SWEEP)
    if args.bikes_frames:
        bikes = decode("bikes.mp4", args.bikes_frames, (224, 224))
        results["bikes_224"] = bikes_report(network, bikes, args.repeat, approximate)
    if not args.no_occlusion:
        results["occlusion"] = occlusion_report(network, frames[min(100, len(frames) - 1)])
    (OUT / "incremental.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nall figures: {OUT / 'incremental.json'}")


if __name__ == "__main__":
    main()
