"""What a request body holds, checked: every mistake is an :class:`ApiError` with a 4xx status
and a message saying what was expected and what was found (the server answers it as JSON).

A predict body is ``{"inputs": [...], "version": 3, "deadline_ms": 100}`` (only ``inputs``
required).  An input is ``{"image_base64": "<PNG or JPEG>"}`` for an image model, or an object
of column values (``{"a": 1.5, "b": 2}``) for a numeric model; other keys are ignored.

>>> from engine.serving.model_inputs import ModelInput
>>> body = parse_json(b'{"inputs": [{"a": 1, "b": 2.5}]}')
>>> request = predict_request(body, max_inputs=8)
>>> decoded = decode_input(request.inputs[0], 0, ModelInput("numeric", columns=("a", "b")))
>>> decoded.array.tolist(), decoded.logged
([1.0, 2.5], {'a': 1.0, 'b': 2.5})
>>> decode_input({"a": 1}, 0, ModelInput("numeric", columns=("a", "b")))
Traceback (most recent call last):
...
engine.serving.payloads.ApiError: inputs[0]: expected a number for column b, found none
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import DataError
from engine.serving.model_inputs import ModelInput
from engine.serving.traffic_log import COLUMNS, IMAGE_COLUMNS, PREDICTION_COLUMNS


class ApiError(Exception):
    """A request the server answers with ``status`` and ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": str(self)}}


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object from a request body; ApiError 400 otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "malformed_json", f"expected a JSON object in the request body: {e}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", f"expected a JSON object in the request body, found a "
                                              f"{type(value).__name__}")
    return value


@dataclass(frozen=True)
class PredictRequest:
    """A checked predict body."""

    inputs: list[Any]
    version: int | None
    deadline_ms: float | None


def predict_request(body: dict[str, Any], max_inputs: int) -> PredictRequest:
    """The predict body's fields, checked."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(400, "malformed_request", "expected \"inputs\": a non-empty list of inputs, found "
                                                 f"{_shown(inputs)}")
    if len(inputs) > max_inputs:
        raise ApiError(413, "too_many_inputs", f"expected at most {max_inputs} inputs per request, found {len(inputs)}")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ApiError(400, "malformed_request", f"expected \"version\": a version number >= 1, found {_shown(version)}")
    deadline = body.get("deadline_ms")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not 0 < deadline < 3_600_000):
        raise ApiError(400, "malformed_request", f"expected \"deadline_ms\": a positive number of milliseconds, "
                                                 f"found {_shown(deadline)}")
    return PredictRequest(inputs, version, None if deadline is None else float(deadline))


def _shown(value: Any) -> str:
    text = json.dumps(value) if value is not None else "none"
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class DecodedInput:
    """One input ready for the queue: its array (None until decoded, for a cached image), its
    content hash (the cache key) and what the traffic log keeps of it."""

    array: np.ndarray | None
    digest: str
    logged: dict[str, Any]
    encoded: bytes | None = None        # an image not decoded yet (decoded only on a cache miss)


def decode_input(value: Any, index: int, model: ModelInput) -> DecodedInput:
    """Check one input against what the model takes; an image is hashed but not yet decoded."""
    if not isinstance(value, dict):
        raise ApiError(422, "wrong_input", f"inputs[{index}]: expected an object, found {_shown(value)}")
    if model.is_numeric:
        return _numeric(value, index, model)
    data = value.get("image_base64")
    if not isinstance(data, str):
        raise ApiError(422, "wrong_input", f"inputs[{index}]: model takes images: expected "
                                           "{\"image_base64\": \"<PNG or JPEG, base64>\"}, found keys "
                                           f"{sorted(value)}")
    try:
        encoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "wrong_input", f"inputs[{index}]: image_base64 is not valid base64") from None
    return DecodedInput(None, hashlib.sha256(encoded).hexdigest(), {}, encoded)


def _numeric(value: dict[str, Any], index: int, model: ModelInput) -> DecodedInput:
    lowered = {str(k).lower(): v for k, v in value.items()}
    numbers = []
    for column in model.columns:
        found = lowered.get(column.lower())
        if isinstance(found, bool) or not isinstance(found, (int, float)) or not math.isfinite(found):
            raise ApiError(422, "wrong_input", f"inputs[{index}]: expected a number for column {column}, found "
                                               f"{_shown(found) if column.lower() in lowered else 'none'}")
        numbers.append(float(found))
    array = np.array(numbers, dtype=np.float64)
    logged = {logged_name(c): v for c, v in zip(model.columns, numbers)}
    return DecodedInput(array, hashlib.sha256(array.tobytes()).hexdigest(), logged)


def decode_image(item: DecodedInput, index: int, model: ModelInput, *, max_pixels: int) -> DecodedInput:
    """The pixels of an image input (checked against the size the model takes) and its log fields."""
    from engine.serving.images import decode_image as decode

    assert item.encoded is not None
    try:
        image = decode(item.encoded, max_pixels=max_pixels, digest=item.digest)
    except DataError as e:
        raise ApiError(422, "wrong_input", f"inputs[{index}]: {e}") from None
    if model.size is not None and (image.height, image.width) != model.size:
        raise ApiError(422, "wrong_shape", f"inputs[{index}]: the model takes {model.size[0]}x{model.size[1]} "
                                           f"images (height x width); found {image.height}x{image.width}")
    return DecodedInput(image.pixels, item.digest, image_fields(image.format, image.height, image.width,
                                                                len(item.encoded), image.brightness, item.digest))


def image_fields(fmt: str, height: int, width: int, size: int, brightness: float, digest: str) -> dict[str, Any]:
    """The traffic log's columns of an image input."""
    return dict(zip(IMAGE_COLUMNS, (fmt, height, width, size, brightness, digest)))


def logged_name(column: str) -> str:
    """The log column of a numeric input (prefixed when it would take a column the log has)."""
    taken = column in COLUMNS or column in PREDICTION_COLUMNS or column in IMAGE_COLUMNS
    return f"input_{column}" if taken else column
