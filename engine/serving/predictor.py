"""A model version loaded for prediction: the one computation behind ``predict(...)`` in SQL
and every answer of the server, so online and offline predictions agree exactly.

Image models run as ``<model>(frame)`` does (:func:`engine.inference.networks.forward_frames` on the
network with batch norm folded and channels-last weights); numeric models normalize each
input column by the version's ``mean``/``std`` and run the network on the float vectors.
A prediction is the top-1 class, its label and its softmax probability.

>>> import engine, numpy as np, torch
>>> from udfs.architectures import build
>>> from engine.inference.model_catalog import ModelSpec, add_version, current_version
>>> con = engine.connect()
>>> torch.manual_seed(0) and None
>>> spec = ModelSpec("plain_cnn", 3, (16, 16), (0.5,) * 3, (0.25,) * 3, ("cat", "dog", "owl"))
>>> add_version(con.session, "pets", spec, build("plain_cnn", num_classes=3).state_dict(), source=None,
...             created_by="doctest")
1
>>> predictor = Predictor.load(con.session, current_version(con.session, "pets"))
>>> result = predictor.predict(np.zeros((2, 16, 16, 3), np.uint8))
>>> len(result), result.labels[0] in ("cat", "dog", "owl"), bool(0 < result.scores[0] <= 1)
(2, True, True)
>>> predictor.predict(np.zeros((1, 8, 8, 3), np.uint8))
Traceback (most recent call last):
...
engine.errors.DataError: model pets version 1 takes 16x16 images (height x width); found 8x8
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import DataError, ProgrammingError
from engine.inference.model_catalog import ModelVersion
from engine.serving.model_inputs import ModelInput, model_input

if TYPE_CHECKING:
    from torch import nn

    from engine.session import Session

#: The size an image model that takes any size is warmed up at.
WARM_UP_SIZE = (224, 224)

#: Predictors kept built per process (see :meth:`Predictor.load`).
MAX_LOADED = 4
_LOADED: OrderedDict[tuple[ModelVersion, str], tuple[object, Predictor]] = OrderedDict()
_LOADED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Predictions:
    """Top-1 predictions of a batch: class ids and softmax probabilities, with the model's
    label of every class (``label_names[class_id]``)."""

    class_ids: np.ndarray     # int32
    scores: np.ndarray        # float64
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def labels(self) -> list[str]:
        """The label of each prediction."""
        return [self.label_names[c] for c in self.class_ids.tolist()]

    def row(self, i: int) -> dict[str, Any]:
        """Prediction ``i`` as JSON-ready values."""
        class_id = int(self.class_ids[i])
        return {"label": self.label_names[class_id], "class_id": class_id, "score": float(self.scores[i])}


class Predictor:
    """A model version's network ready to predict batches (see the module docstring)."""

    def __init__(self, version: ModelVersion, network: nn.Module, device: str = "cpu") -> None:

        from engine.inference.networks import inference_network

        self.version = version
        self.input: ModelInput = model_input(version)
        self.device = device
        prepared = network.eval() if self.input.is_numeric else inference_network(network)
        self.network: Any = prepared.to(device)
        self.label_names = tuple(version.spec.label(i) for i in range(version.spec.num_classes))
        self._mean = np.asarray(version.spec.mean, dtype=np.float64)
        self._std = np.asarray(version.spec.std, dtype=np.float64)
        self._normalizes = bool(np.any(self._mean != 0) or np.any(self._std != 1))
        self._chain = None  # numeric networks that are a chain of linear layers run into kept buffers
        if self.input.is_numeric and device == "cpu":
            from engine.serving.linear_chain import LinearChain

            self._chain = LinearChain.of(self.network)

    @classmethod
    def load(cls, session: Session, version: ModelVersion, *, device: str = "cpu", warm: bool = True) -> Predictor:
        """Build ``version``'s network from the catalog (and run it once, so that a version that
        cannot predict fails here rather than on a request).

        Predictors are kept per process (the last :data:`MAX_LOADED`), keyed by the version with
        its weights' SHA-256 and the architecture's registered builder: a script that opens a
        connection per query pays for reading the weights, building the network and warming it up
        once.  A predictor is read-only once built, so connections and threads share it.
        """
        from engine.extensions import architectures
        from engine.inference.model_catalog import load_network

        builder = architectures().get(version.spec.architecture.lower())
        key = (version, device)
        with _LOADED_LOCK:
            found = _LOADED.get(key)
            if found is not None and found[0] is builder:
                _LOADED.move_to_end(key)
                return found[1]
        predictor = cls(version, load_network(session, version), device)
        if not warm:
            return predictor
        predictor.warm_up()
        with _LOADED_LOCK:
            _LOADED[key] = (builder, predictor)
            while len(_LOADED) > MAX_LOADED:
                _LOADED.popitem(last=False)
        return predictor

    @property
    def name(self) -> str:
        return self.version.model

    @property
    def numeric_dtype(self) -> type[np.floating]:
        """The type numeric inputs are best handed over in: float32, the network's, unless the
        version normalizes them (done in float64, as training did, then converted)."""
        return np.float64 if self._normalizes else np.float32

    def warm_up(self) -> None:
        """Predict one input of zeros; ProgrammingError naming the version when it cannot."""
        if self.input.is_numeric:
            sample: np.ndarray = np.zeros((1, len(self.input.columns)), np.float64)
        else:
            height, width = self.input.size or WARM_UP_SIZE
            sample = np.zeros((1, height, width, 3), np.uint8)
        try:
            self.predict(sample)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise ProgrammingError(f"model {self.name} version {self.version.version} cannot predict an input of "
                                   f"shape {tuple(sample.shape)}: {str(e).splitlines()[0]}") from e

    def predict(self, batch: np.ndarray) -> Predictions:
        """Top-1 predictions of a batch: ``(n, H, W, 3)`` uint8 pixels for an image model,
        ``(n, columns)`` numbers for a numeric model."""
        from engine.inference.networks import top1

        logits = self._numeric_logits(batch) if self.input.is_numeric else self._image_logits(batch)
        if logits.shape[-1] != len(self.label_names):
            raise DataError(f"model {self.name} version {self.version.version} computes {logits.shape[-1]} class "
                            f"scores but the catalog lists {len(self.label_names)} classes for it")
        class_ids, scores = top1(logits.to("cpu"))
        return Predictions(class_ids, scores, self.label_names)

    def numeric_outputs(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A numeric model's logits and penultimate features (float32 matrices) of ``(n, columns)`` numbers."""
        import torch

        from engine.inference.networks import penultimate

        x = self._numeric_tensor(values)
        with torch.inference_mode():
            features = penultimate(self.network, x)
            classifier = getattr(self.network, "classifier", None)
            logits = classifier(features) if classifier is not None else self.network(x)
        return logits.to("cpu").float().numpy(), features.to("cpu").float().numpy()

    def _image_logits(self, frames: np.ndarray) -> Any:
        import torch

        from engine.inference.networks import forward_frames, normalize_frames, penultimate

        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise DataError(f"model {self.name} takes RGB images; found an array of shape {frames.shape}")
        expected = self.input.size
        if expected is not None and tuple(frames.shape[1:3]) != expected:
            raise DataError(f"model {self.name} version {self.version.version} takes {expected[0]}x{expected[1]} "
                            f"images (height x width); found {frames.shape[1]}x{frames.shape[2]}")
        spec = self.version.spec
        if self.device == "cpu":
            return forward_frames(self.network, frames, spec.mean, spec.std)[0]
        with torch.inference_mode():
            x = normalize_frames(frames, spec.mean, spec.std).to(self.device, non_blocking=True)
            return self.network.classifier(penultimate(self.network, x))

    def _numeric_logits(self, values: np.ndarray) -> Any:
        import torch

        x = self._numeric_tensor(values)
        with torch.inference_mode():
            return self._chain(x) if self._chain is not None else self.network(x)

    def _numeric_tensor(self, values: np.ndarray) -> Any:
        """The network's input: the rows normalized by the version's mean and std, as float32."""
        import torch

        columns = len(self.input.columns)
        if values.ndim != 2 or values.shape[1] != columns:
            raise DataError(f"model {self.name} takes {columns} numbers per row ({', '.join(self.input.columns)}); "
                            f"found an array of shape {values.shape}")
        if self._normalizes:  # in NumPy: one pass, and no torch thread hand-off for two small element-wise ops
            values = (values - self._mean) / self._std
        values = np.asarray(values, dtype=np.float32)
        if not (values.flags.c_contiguous or values.flags.f_contiguous):  # torch reads rows or columns in place
            values = np.ascontiguousarray(values)
        return torch.from_numpy(values).to(self.device)
