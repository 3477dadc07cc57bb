"""The specialized model: a tiny CNN at low resolution that answers one yes/no question
about one video (NoScope), trained with :mod:`engine.training` on frames the reference
model labeled.

Frames are shrunk to :data:`RESOLUTION` pixels a side by area averaging; the network is
``tiny_cnn`` (three stride-2 convolutions), trained with Adam and positives weighted up so
that a rare answer is not ignored.  Its weights travel as safetensors bytes.

>>> import numpy as np
>>> shrink(np.zeros((2, 224, 224, 3), np.uint8)).shape
(2, 64, 64, 3)
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

#: Side of the frames the specialized model reads, in pixels.
RESOLUTION = 64
#: Its architecture (engine.training.architectures).
ARCHITECTURE = "tiny_cnn"
#: Its classes, in class-id order.
CLASSES = ("no", "yes")
#: Passes over the training frames.  The weights of the last pass are kept, and with fewer
#: passes they vary from seed to seed: on the hour's 3,093-frame sample (vtest.avi remuxed 45
#: times, predicate 'alp'), 20 passes left 0.13% to 7.5% of the other frames to the reference
#: model over four seeds, 30 passes 0.13% with every seed (50% more training, 6 s there;
#: frames decoded at lowres 2 in that experiment; at full size 20 passes left 0.4% to 15.5%
#: over four seeds, and 30 passes 0.13-0.2%).
EPOCHS = 30


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore: a network this small trains and runs
    several times faster on one thread than on two on a busy 2-core machine (measured: 200
    frames, 20 epochs, 7-15 s on one thread against 75 s on two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def shrink(frames: np.ndarray, side: int = RESOLUTION) -> np.ndarray:
    """(n, H, W, 3) uint8 frames -> (n, side, side, 3) uint8, by area averaging."""
    import torch

    if len(frames) == 0:
        return np.empty((0, side, side, 3), np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@dataclass
class SpecializedModel:
    """A trained specialized model: weights, normalization, and how it was made."""

    weights: bytes = field(repr=False)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resolution: int = RESOLUTION
    architecture: str = ARCHITECTURE
    training_seconds: float = 0.0
    _network: Any = field(default=None, repr=False)

    def network(self) -> Any:
        """The torch network (built once)."""
        if self._network is None:
            from safetensors.torch import load

            from engine.training.architectures import build_network

            network = build_network(self.architecture, num_classes=len(CLASSES))
            network.load_state_dict(load(self.weights))
            network.eval()
            self._network = network
        return self._network

    def probabilities(self, small: np.ndarray, batch: int = 256) -> np.ndarray:
        """P(yes) for each shrunk frame (n, side, side, 3) uint8."""
        import torch

        if len(small) == 0:
            return np.empty(0, np.float64)
        network = self.network()
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1) * 255
        out = []
        with torch.inference_mode(), one_thread():
            for start in range(0, len(small), batch):
                x = torch.from_numpy(small[start:start + batch]).permute(0, 3, 1, 2).float()
                logits = network((x - mean) / std)
                out.append(torch.softmax(logits, dim=1)[:, 1].double().numpy())
        return np.concatenate(out)


def train_specialized(duck: duckdb.DuckDBPyConnection, frame_ids: np.ndarray, small: np.ndarray,
                      answers: np.ndarray, *, epochs: int = EPOCHS, seed: int = 0) -> SpecializedModel:
    """Train the specialized model on shrunk frames and the reference model's yes/no answers."""
    import pyarrow as pa
    from safetensors.torch import save

    from engine.training import parse_options, train

    answers = np.asarray(answers, dtype=bool)
    positives = max(int(answers.sum()), 1)
    weight = np.where(answers, (len(answers) - positives) / positives, 1.0)
    side = small.shape[1]
    rows = pa.table({
        "frame_id": pa.array(np.asarray(frame_ids, np.int64)),
        "frame": pa.array([bytes(f) for f in np.ascontiguousarray(small)], pa.binary()),
        "height": pa.array(np.full(len(small), side, np.int64)),
        "width": pa.array(np.full(len(small), side, np.int64)),
        "label": pa.array([CLASSES[int(a)] for a in answers], pa.string()),
        "weight": pa.array(np.maximum(weight, 1.0), pa.float64()),
    })
    # No held-out rows (the calibration sample holds frames out, and the last pass's weights are
    # kept whatever a held-out split says) and one partition (every batch drawn from the whole
    # sample, not a quarter of it at a time as Cerebro's partitions would).
    options = parse_options({"architecture": ARCHITECTURE, "epochs": epochs, "optimizer": "adam", "lr": 0.003,
                             "batch_size": 32, "holdout": 0.0, "partitions": 1, "key": "frame_id",
                             "classes": list(CLASSES), "weight": "weight", "seed": seed, "workers": 1})
    started = time.perf_counter()
    with one_thread():
        outcome = train(duck, "SELECT frame_id, frame, height, width, label, weight FROM specialized_sample",
                        options, rows=rows)
    state = {k: v.contiguous() for k, v in outcome.best_result.state.items()}
    return SpecializedModel(save(state), tuple(outcome.data.mean), tuple(outcome.data.std), side, ARCHITECTURE,
                            time.perf_counter() - started)
