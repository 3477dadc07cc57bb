"""The training settings (``SET name = value``; the registry reads :data:`SETTINGS`).

>>> DEVICE("CUDA:1"), DEVICE("cpu")
('cuda:1', 'cpu')
>>> DEVICE("gpu")
Traceback (most recent call last):
...
ValueError: expected 'cpu', 'cuda' or 'cuda:<n>', found 'gpu'
"""
from __future__ import annotations

import re
from typing import Any

from engine.options import Validator, whole
from engine.settings import Setting

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _device(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value.strip().lower()):
        raise ValueError(f"expected 'cpu', 'cuda' or 'cuda:<n>', found {value!r}")
    return value.strip().lower()


#: A compute device torch names.
DEVICE = Validator("'cpu', 'cuda' or 'cuda:<n>'", _device)

#: The training settings (the registry reads this table).
SETTINGS: tuple[Setting, ...] = (
    Setting("training_device", "cpu", DEVICE,
            "Where CREATE MODEL ... AS trains when its device option is not given: 'cpu', 'cuda' or 'cuda:<n>' "
            "(an absent GPU is an OperationalError saying so)."),
    Setting("model_versions_kept", 0, whole(0, 1_000_000),
            "After CREATE MODEL ... AS, keep only the newest this many versions of the model (the current one "
            "always stays; a grid of eight adds eight); 0 keeps every version."),
)
