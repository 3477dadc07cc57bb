"""The models a server serves and their versions: atomic swaps, pinned versions, canaries.

The catalog says which version of each model is current (``mallard.models``).  After every
statement of ``POST /v1/sql`` the server calls :meth:`ModelRegistry.refresh`: a model whose
current version changed (``CREATE OR REPLACE MODEL``, a training run) gets the new version
loaded and warmed up *beside* the old one, then swapped in with one reference assignment, so
every request sees one version or the other, never a mix, and none is lost.  A version that
fails to load leaves the old one serving (``GET /v1/models`` shows the error).  A request may
name a version (loaded on demand and kept while it is used), and a canary route sends a
percentage of a model's default traffic to another version.

>>> route = Canary(version=2, percent=25.0)
>>> [route.takes(n) for n in range(8)]
[False, False, False, True, False, False, False, True]
"""
from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import Error, ProgrammingError

if TYPE_CHECKING:
    import engine
    from engine.serving.batching import ModelQueue
    from engine.serving.predictor import Predictor

#: Versions other than the current one kept loaded per model (requests naming a version).
MAX_PINNED = 3


@dataclass(frozen=True)
class Canary:
    """Send ``percent`` of a model's default traffic to ``version`` (evenly spread, deterministic)."""

    version: int
    percent: float

    def takes(self, n: int) -> bool:
        """Whether the ``n``-th request (0, 1, ...) goes to the canary."""
        share = self.percent / 100
        return math.floor((n + 1) * share + 1e-9) > math.floor(n * share + 1e-9)


@dataclass
class ServedModel:
    """One model as served: its current predictor, its queue, pinned versions and routing."""

    name: str
    current: Predictor
    queue: ModelQueue
    pinned: OrderedDict[int, Predictor] = field(default_factory=OrderedDict)
    canary: Canary | None = None
    load_error: str | None = None
    _requests: itertools.count[int] = field(default_factory=itertools.count)

    def route(self, version: int | None) -> Predictor | int:
        """The predictor of a request (naming ``version`` or not), or the version to load first."""
        if version is None and self.canary is not None and self.canary.takes(next(self._requests)):
            version = self.canary.version
        if version is None or version == self.current.version.version:
            return self.current
        found = self.pinned.get(version)
        return found if found is not None else version

    def describe(self) -> dict[str, Any]:
        """The model as ``GET /v1/models`` lists it."""
        spec = self.current.version.spec
        return {
            "name": self.name, "version": self.current.version.version, "architecture": spec.architecture,
            "input": self.current.input.describe(), "num_classes": spec.num_classes,
            "labels": list(spec.labels[:20]) if spec.labels else None, "loaded_versions": sorted({self.current.version.version, *self.pinned}),
            "canary": None if self.canary is None else {"version": self.canary.version, "percent": self.canary.percent},
            "batch_limit": self.queue.controller.limit, "queued": len(self.queue), "load_error": self.load_error,
        }


class ModelRegistry:
    """Every served model, kept in step with the catalog (see the module docstring).

    ``connection`` is the server's own connection, used under ``lock`` (the SQL endpoint holds
    the same lock while a statement runs); ``make_queue`` builds a model's queue.
    """

    def __init__(self, connection: engine.Connection, lock: threading.RLock, make_queue: Callable[[str], ModelQueue],
                 *, device: str = "cpu", on_swap: Callable[[str, int], None] | None = None,
                 on_drop: Callable[[str], None] | None = None) -> None:
        self.connection, self.lock, self.make_queue, self.device = connection, lock, make_queue, device
        self.on_swap, self.on_drop = on_swap, on_drop
        self.models: dict[str, ServedModel] = {}   # replaced whole on change: readers need no lock
        self.ready = False

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name.lower())

    def refresh(self) -> dict[str, str]:
        """Load what the catalog's current versions say; what changed, by model."""
        with self.lock:
            session = self.connection.session
            current = dict(session.sql("SELECT name, current_version FROM mallard.models").fetchall())
            models = dict(self.models)
            changes: dict[str, str] = {}
            for name in sorted(set(models) - set(current)):
                gone = models.pop(name)
                gone.queue.close(f"model {name} was dropped")
                if self.on_drop is not None:
                    self.on_drop(name)
                changes[name] = "dropped: no longer served"
            for name, version in sorted(current.items()):
                served = models.get(name)
                if served is not None and served.current.version.version == version:
                    continue
                changes[name] = self._load_current(models, name, int(version))
            self.models = models
            self.ready = True
            return changes

    def _load_current(self, models: dict[str, ServedModel], name: str, version: int) -> str:
        from engine.inference.model_catalog import require_version

        served = models.get(name)
        try:
            predictor = self._load(require_version(self.connection.session, name, version))
        except (Error, ImportError, RuntimeError, ValueError) as e:
            message = f"version {version} failed to load: {e}"
            if served is None:
                return message + " (the model is not served)"
            served.load_error = message
            return f"{message}; version {served.current.version.version} keeps serving"
        if served is None:
            models[name] = ServedModel(name, predictor, self.make_queue(name))
            models[name].queue.warm(predictor)
        else:
            served.queue.warm(predictor)  # on the worker's thread, before the swap
            served.pinned.pop(version, None)
            served.pinned[served.current.version.version] = served.current
            while len(served.pinned) > MAX_PINNED:
                served.pinned.popitem(last=False)
            served.current, served.load_error = predictor, None  # the swap: one assignment
            if served.canary is not None and served.canary.version == version:
                served.canary = None
        if self.on_swap is not None:
            self.on_swap(name, version)
        return f"version {version} serves"

    def _load(self, version: Any) -> Predictor:
        from engine.serving.predictor import Predictor

        return Predictor.load(self.connection.session, version, device=self.device)

    def pinned(self, name: str, version: int) -> Predictor:
        """Version ``version`` of a served model, loaded now if need be (ProgrammingError if it
        does not exist)."""
        from engine.inference.model_catalog import require_version

        with self.lock:
            served = self.models[name]
            found = served.route(version)
            if not isinstance(found, int):
                return found
            predictor = self._load(require_version(self.connection.session, name, version))
            served.pinned[version] = predictor
            while len(served.pinned) > MAX_PINNED:
                served.pinned.popitem(last=False)
            return predictor

    def set_canary(self, name: str, version: int | None, percent: float) -> Canary | None:
        """Route ``percent`` of ``name``'s default traffic to ``version`` (None: no canary)."""
        served = self.models.get(name)
        if served is None:
            raise ProgrammingError(f"unknown model {name!r}")
        if version is None:
            served.canary = None
            return None
        if not 0 <= percent <= 100:
            raise ProgrammingError(f"expected a canary percent in [0, 100], found {percent}")
        self.pinned(name, version)  # loaded (and checked) before any request goes there
        served.canary = Canary(version, float(percent))
        return served.canary

    def close(self) -> None:
        for served in self.models.values():
            served.queue.close()
