"""The prediction cache (Clipper's): answers keyed by (model, version, input hash), least
recently used first out, bounded in bytes.

The input hash is the SHA-256 of the encoded image or of the numeric values, so a repeated
input costs no decoding and no network call; a new version never sees the old one's answers
(its number is part of the key).

>>> cache = PredictionCache(max_bytes=600)
>>> cache.put(("m", 1, "aa"), {"label": "cat"})
>>> cache.get(("m", 1, "aa")), cache.get(("m", 2, "aa"))
({'label': 'cat'}, None)
>>> for i in range(10):
...     cache.put(("m", 1, f"k{i}"), {"label": "dog"})
>>> len(cache) < 10 and cache.bytes <= 600
True
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

#: Bytes an entry costs beyond its values (key tuple, dict, ordered-dict links).
ENTRY_OVERHEAD = 200


def entry_bytes(key: tuple[Any, ...], value: Any) -> int:
    """An estimate of the memory one entry holds."""
    size = ENTRY_OVERHEAD + sum(sys.getsizeof(part) for part in key)
    if isinstance(value, dict):
        size += sum(sys.getsizeof(v) for v in value.values())
    return size


class PredictionCache:
    """A thread-safe LRU map bounded by :func:`entry_bytes` (``max_bytes`` 0 disables it)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> Any:
        """The value stored for ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        """Store ``value``; the least recently used entries leave until it fits."""
        size = entry_bytes(key, value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, freed) = self._entries.popitem(last=False)
                self.bytes -= freed

    def forget_model(self, model: str) -> None:
        """Drop every entry of ``model`` (a dropped model)."""
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == model]:
                self.bytes -= self._entries.pop(key)[1]
