"""Run a producer (decoding, say) in a background thread while the caller consumes."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``items``, produced ``depth`` ahead in a background thread.

    An exception in the producer is re-raised in the consumer; closing the generator
    early stops the producer.

    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    channel: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        channel.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            channel.put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            channel.put((_DONE, e))

    worker = threading.Thread(target=produce, name="mallard-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = channel.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                channel.get_nowait()
            except queue.Empty:
                worker.join(0.05)
