"""Calibrate the guard's constants (engine/inference/incremental/guard.py) on this machine.

The guard prices incremental work in dense multiply-add equivalents; this measures, over
vtest.avi with MobileNetV2 (data/mobilenet_v2.pth), at 224x224 and native 576x768, with the
guard off so every frame is decided as before:

- seconds per multiply-add of full inference (the dense path full frames take);
- seconds per multiply-add spent by incremental frames (approximate mode: the defaults at
  224x224, docs/incremental.md's settings at native size), over the dense figure:
  ``SPARSE_COST_PER_MAC``;
- seconds of deciding per frame, in dense multiply-add equivalents, fitted over the two sizes
  as a part per layer-graph node plus a part per pixel: ``DECIDE_MACS_PER_NODE``,
  ``DECIDE_MACS_PER_PIXEL``.

    nice -n 10 .venv/bin/python bench/calibrate_guard.py            # about 3 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_incremental import NATIVE_APPROXIMATE, Clip, decoded  # noqa: E402
from common import imagenet_mobilenet  # noqa: E402

from engine.inference.incremental import IncrementalConfig  # noqa: E402
from engine.inference.runners import FullRunner, IncrementalRunner  # noqa: E402
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402


def measure(network: torch.nn.Module, size: tuple[int, int] | None, frames: int,
            config: IncrementalConfig, repeat: int) -> dict[str, float]:
    """Seconds per dense multiply-add, sparse/dense cost per multiply-add, deciding per frame
    (each the fastest of ``repeat`` passes: the machine is shared)."""
    batches = list(decoded(Clip("vtest.avi", ROOT / "data" / "vtest.avi", size, frames), config.batch_frames))
    full = FullRunner(network, IMAGENET_MEAN, IMAGENET_STD)
    full.run(batches[0][0][:2], batches[0][1][:2])       # warm: tracing, first calls
    IncrementalRunner(network, IMAGENET_MEAN, IMAGENET_STD, "approximate", config).run(
        batches[0][0][:2], batches[0][1][:2])
    dense, incremental, decide = float("inf"), float("inf"), float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for ids, pixels, keys in batches:
            results, _ = full.run(ids, pixels, keys)
        dense = min(dense, (time.perf_counter() - started) / (frames * int(results.macs_full[0])))
        runner = IncrementalRunner(network, IMAGENET_MEAN, IMAGENET_STD, "approximate", config)
        spent = 0
        for ids, pixels, keys in batches:
            _, decisions = runner.run(ids, pixels, keys)
            spent += sum(d.macs for d in decisions if d.kind == "incremental")
        incremental = min(incremental, runner.engine.seconds["incremental"] / max(spent, 1))
        decide = min(decide, runner.engine.seconds["decide"] / frames)
    graph = runner.engine.graph(*batches[0][1].shape[1:3])
    return {"dense_seconds_per_mac": dense, "sparse_cost_per_mac": incremental / dense,
            "decide_macs_per_frame": decide / dense, "nodes": len(graph.nodes), "pixels": graph.height * graph.width}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=256, help="vtest.avi frames at 224x224")
    parser.add_argument("--native-frames", type=int, default=96, help="vtest.avi frames at native size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="passes of each measure (fastest kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = imagenet_mobilenet()
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}")
    small = measure(network, (224, 224), args.frames, IncrementalConfig(guard=False), args.repeat)
    engine_alone = {**NATIVE_APPROXIMATE, "skip_threshold": 0.0}     # the sparse engine, no frames skipped
    native = measure(network, None, args.native_frames, replace(IncrementalConfig(guard=False), **engine_alone),
                     args.repeat)
    for name, figures in (("224x224", small), ("native", native)):
        print(f"  {name}: dense {1e12 * figures['dense_seconds_per_mac']:.1f} ps per multiply-add; sparse/dense "
              f"per multiply-add {figures['sparse_cost_per_mac']:.2f}; deciding a frame "
              f"{figures['decide_macs_per_frame'] / 1e6:.1f} M dense multiply-adds")
    per_pixel = (native["decide_macs_per_frame"] - small["decide_macs_per_frame"]) / (native["pixels"] - small["pixels"])
    per_node = (small["decide_macs_per_frame"] - per_pixel * small["pixels"]) / small["nodes"]
    print(f"SPARSE_COST_PER_MAC ~ {np.mean([small['sparse_cost_per_mac'], native['sparse_cost_per_mac']]):.1f}")
    print(f"DECIDE_MACS_PER_NODE ~ {per_node:,.0f}; DECIDE_MACS_PER_PIXEL ~ {per_pixel:,.0f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
