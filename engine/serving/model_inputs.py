"""What a model takes as input, read from its catalog version.

An *image* model (every model made by ``CREATE MODEL ... FROM`` without ``inputs``) takes RGB
pixels: frames of a frames table (``height*width*3`` bytes with ``height`` and ``width``
columns), or encoded PNG/JPEG images.  A *numeric* model takes the columns its version
records as ``inputs``, in that order, one float vector per row.

>>> from engine.inference.model_catalog import ModelSpec, ModelVersion
>>> spec = ModelSpec("fare_net", 2, None, (0.0, 0.0), (1.0, 1.0), ("low", "high"), inputs=("distance", "hour"))
>>> model_input(ModelVersion("fares", 1, spec, "0" * 64, None)).describe()
{'kind': 'numeric', 'columns': ['distance', 'hour']}
>>> spec = ModelSpec("mobilenet_v2", 1000, (224, 224), (0.5,) * 3, (0.5,) * 3, None)
>>> model_input(ModelVersion("m", 1, spec, "0" * 64, None)).describe()
{'kind': 'image', 'height': 224, 'width': 224}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.inference.model_catalog import ModelVersion

IMAGE, NUMERIC = "image", "numeric"


@dataclass(frozen=True)
class ModelInput:
    """The input of a model version: ``kind`` is IMAGE or NUMERIC."""

    kind: str
    columns: tuple[str, ...] = ()          # numeric: the input columns, in order
    size: tuple[int, int] | None = None    # image: (height, width) the model takes; None: any

    @property
    def is_numeric(self) -> bool:
        return self.kind == NUMERIC

    def describe(self) -> dict[str, Any]:
        """The input as JSON-ready values (``GET /v1/models`` shows it)."""
        if self.is_numeric:
            return {"kind": NUMERIC, "columns": list(self.columns)}
        if self.size is None:
            return {"kind": IMAGE, "height": None, "width": None}
        return {"kind": IMAGE, "height": self.size[0], "width": self.size[1]}


def model_input(version: ModelVersion) -> ModelInput:
    """What ``version`` takes: numeric columns when it records ``inputs``, else images."""
    if version.spec.inputs is not None:
        return ModelInput(NUMERIC, columns=tuple(version.spec.inputs))
    return ModelInput(IMAGE, size=version.spec.input_size)
