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
    """How the result cache names a mode: 'full', or the mode with the knobs that can change its
    answers (exact mode has none: its answers equal full inference's within 1e-4).

    >>> mode_key("full", None)
    'full'
    """
    if config is None:
        return mode
    answer = set(config.answer_fields(mode))
    values = {k: v for k, v in asdict(config).items() if k in answer}
    return f"{mode}:{json.dumps(values, sort_keys=True, default=str)}"


#: Knobs exact mode ignores (IncrementalConfig.answer_fields says which knobs change answers).
APPROXIMATE_ONLY = ("pixel_threshold", "activation_threshold", "tau", "halo", "skip_threshold", "refresh", "fidelity_bar",
                    "audit_every")


def _knob_parser(name: str, default: Any) -> Any:
    """A setting parser for IncrementalConfig field ``name``: coerce, then let the config validate."""
    from engine.errors import DataError
    from engine.inference.incremental.config import IncrementalConfig

    def parse(value: Any) -> Any:
        if name == "refresh":
            value = value if str(value).lower() == "auto" else number(1, 1e9, integer=True)(value)
            value = "auto" if value == "auto" or str(value).lower() == "auto" else value
        elif isinstance(default, bool):
            value = boolean(value)
        elif isinstance(default, int):
            value = number(0, 1e9, integer=True)(value)
        elif isinstance(default, float):
            value = number(0, 1e9)(value)
        try:
            IncrementalConfig(**{name: value})
        except DataError as e:
            raise ValueError(str(e).replace("incremental config: ", "")) from None
        return value

    return parse


def _register_knobs() -> None:
    """One setting per IncrementalConfig field, default = the engine's default; the setting's
    name and description come from the field's metadata."""
    try:
        from engine.inference.incremental.config import IncrementalConfig
    except Exception:  # the incremental engine is missing or broken: 'full' mode still works
        return
    names, descriptions = IncrementalConfig.setting_names(), IncrementalConfig.descriptions()
    for f in fields(IncrementalConfig):
        setting = names[f.name]
        KNOBS[f.name] = setting
        if setting == "inference_batch_size":
            continue  # registered above: the scan's batch is the engine's batch
        register_setting(setting, f.default, _knob_parser(f.name, f.default), descriptions[f.name])


_register_knobs()
