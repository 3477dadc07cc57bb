"""The inference settings: ``SET inference_mode``, ``inference_cache``, ``inference_batch_size``
and one setting per knob of the incremental engine's configuration.

>>> import engine
>>> con = engine.connect()
>>> _ = con.execute("SET inference_mode = 'approximate'")
>>> con.settings["inference_mode"]
'approximate'
"""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from engine.settings import boolean, choice, number, register_setting

MODES = ("full", "exact", "approximate")

register_setting(
    "inference_mode", "full", choice(*MODES),
    "How model functions over frames compute: 'full' (every frame through the whole CNN), "
    "'exact' (incremental: only changed regions, same results) or 'approximate' "
    "(incremental with change thresholds and frame skipping; bounded fidelity loss).",
)
register_setting(
    "inference_cache", True, boolean,
    "Reuse results of model functions stored in the database (EVA-style result cache) and store new ones.",
)
#: IncrementalConfig field -> the setting that sets it (filled in by _register_knobs).
KNOBS: dict[str, str] = {}

register_setting(
    "inference_batch_size", 16, number(1, 4096, integer=True),
    "Frames per batch of an inference scan.",
)


def incremental_config(session: Any) -> Any:
    """The :class:`IncrementalConfig` the session's ``inference_*`` knob settings describe."""
    from engine.inference.incremental import IncrementalConfig

    values = {f.name: session.settings[KNOBS[f.name]] for f in fields(IncrementalConfig) if f.name in KNOBS}
    return IncrementalConfig(**values)


def mode_key(mode: str, config: Any) -> str:
    """How the result cache names a mode: 'full', or the mode with its whole configuration.

    >>> mode_key("full", None)
    'full'
    """
    if config is None:
        return mode
    return f"{mode}:{json.dumps(asdict(config), sort_keys=True, default=str)}"
