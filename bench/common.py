"""What the inference benchmarks share: the ImageNet MobileNetV2 in plain torch, and the
fidelity measures of the issue (mean logit cosine, top-1 agreement on decisive frames, raw
top-1 agreement) of a run's logits against full inference's on the true frames."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD, build  # noqa: E402

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def imagenet_mobilenet() -> torch.nn.Module:
    """torchvision's ImageNet MobileNetV2 (data/mobilenet_v2.pth) in a plain-torch model, eval mode."""
    network = build("mobilenet_v2")
    network.load_state_dict(torch.load(ROOT / "data" / "mobilenet_v2.pth", weights_only=True))
    return network.eval()


@dataclass
class Fidelity:
    cosine: float
    decisive_top1: float   # nan when no frame is decisive
    top1: float
    decisive_frames: int
    min_cosine: float = float("nan")

    def __str__(self) -> str:
        decisive = (f"decisive top-1 {100 * self.decisive_top1:.1f}% ({self.decisive_frames} frames)"
                    if self.decisive_frames else "no decisive frame")
        return f"cos {self.cosine:.4f} (min {self.min_cosine:.4f})  {decisive}  raw top-1 {100 * self.top1:.1f}%"


def fidelity(full: np.ndarray | torch.Tensor, other: np.ndarray | torch.Tensor) -> Fidelity:
    """Logits (frames x classes) against full inference's; a frame is decisive when full
    inference's top-1 probability leads the second by 0.1 or more."""
    full, other = np.asarray(full, dtype=np.float64), np.asarray(other, dtype=np.float64)
    cosine = (full * other).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(other, axis=1)
    top2 = np.sort(torch.softmax(torch.from_numpy(full), 1).numpy(), axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    agree = full.argmax(1) == other.argmax(1)
    return Fidelity(float(cosine.mean()), float(agree[decisive].mean()) if decisive.any() else float("nan"),
                    float(agree.mean()), int(decisive.sum()), float(cosine.min()))
