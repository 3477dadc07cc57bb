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

from engine.options import Validator, boolean, byte_size, choice, either, number, whole
from engine.settings import Setting

MODES = ("full", "exact", "approximate")

#: IncrementalConfig field -> the setting that sets it.
KNOBS: dict[str, str] = {}


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


def _knob_validator(name: str, default: Any) -> Validator:
    """The validator of IncrementalConfig field ``name``: coerce, then let the config check it."""
    from engine.errors import DataError
    from engine.inference.incremental.config import IncrementalConfig
    from engine.options import number

    if name == "refresh":
        expected = "'auto' or a whole number of frames >= 1"
    elif isinstance(default, bool):
        expected = boolean.expected
    elif isinstance(default, int):
        expected = "a whole number >= 0"
    else:
        expected = "a number >= 0"

    def check(value: Any) -> Any:
        if name == "refresh":
            value = "auto" if str(value).lower() == "auto" else whole(1, 10**9)(value)
        elif isinstance(default, bool):
            value = boolean(value)
        elif isinstance(default, int):
            value = whole(0, 10**9)(value)
        elif isinstance(default, float):
            value = number(0, 1e9)(value)
        try:
            IncrementalConfig(**{name: value})
        except DataError as e:
            raise ValueError(str(e).replace("incremental config: ", "")) from None
        return value

    return Validator(expected, check)


def _knob_settings() -> tuple[Setting, ...]:
    """One setting per IncrementalConfig field, default = the engine's default; the setting's
    name and description come from the field's metadata."""
    from engine.inference.incremental.config import IncrementalConfig

    names, descriptions = IncrementalConfig.setting_names(), IncrementalConfig.descriptions()
    settings = []
    for f in fields(IncrementalConfig):
        name = names[f.name]
        KNOBS[f.name] = name
        if name != "inference_batch_size":  # declared below: the scan's batch is the engine's batch
            settings.append(Setting(name, f.default, _knob_validator(f.name, f.default), descriptions[f.name]))
    return tuple(settings)


_CONTRACT = "NULL or 'none' (exact), or a number in (0, 1]"


def _contract(value: Any) -> float | None:
    """``inference_accuracy``: None (exact) for NULL or 'none', else a number in (0, 1]."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    try:
        result: float = number(0, 1, open_low=True)(value)
    except ValueError:
        raise ValueError(f"expected {_CONTRACT}, found {value!r}") from None
    return result


#: The accuracy contract and the cascade's knobs (engine/cascades).
CASCADE_SETTINGS: tuple[Setting, ...] = (
    Setting("inference_accuracy", None,
            Validator(_CONTRACT, _contract),
            "Accuracy contract for queries over a model's answers: a selection (WHERE m(frame).label = 'bus', "
            "m(frame).score > 0.8) keeps precision and recall against the reference model on every frame, met as a 95% "
            "lower confidence bound, by a cascade (difference detector, specialized model, reference model); "
            "count(*) and avg(m(frame).score) are estimated within a relative error of 1 - a (95% interval, the "
            "specialized model as a control variate); ORDER BY m(frame).score DESC LIMIT k overlaps the exact top k "
            "by at least a. NULL: exact inference."),
    Setting("inference_cascade_sample", 1000, whole(20, 10**9),
            "Frames the reference model labels to train (40%) and calibrate (60%, at most 1200; the rest of a larger "
            "sample trains) a specialized model; a longer query labels inference_cascade_sample_share of its frames "
            "where that is more; at most three quarters of the frames a query covers."),
    Setting("inference_cascade_sample_share", 0.12, number(0, 0.75),
            "Share of a long query's frames the reference model labels for a new specialized model, where that is "
            "more than inference_cascade_sample (labeling costs this share of exact inference; on a long video a "
            "specialized model trained on more frames leaves fewer to the reference model); 0: always "
            "inference_cascade_sample."),
    Setting("inference_cascade_min_frames", 2000, whole(0, 10**9),
            "Fewest frames a query under inference_accuracy must cover for a new specialized model to be trained; "
            "below it the query computes exactly (a stored specialized model is reused at any size)."),
    Setting("inference_cascade_max_undecided", 0.75, number(0, 1),
            "The cascade runs only when its specialized model leaves at most this fraction of the calibration frames "
            "to the reference model (beyond it the cascade would cost about what exact inference does, so the query "
            "computes exactly); 1 always runs it."),
    Setting("inference_cascade_lowres", False, boolean,
            "Decode the frames of the cascade's cheap stages at reduced resolution where the codec allows it "
            "(FFmpeg's lowres: MPEG-1/2/4, MS-MPEG-4, H.263, MJPEG; vtest.avi at 192x144 for 64x64 frames), which "
            "decodes faster but keeps less detail; off by default (on vtest.avi a score selection then missed its "
            "contract on unseen frames). A stored specialized model is reused however its frames were made: set "
            "it before a video's first query under inference_accuracy."),
    Setting("inference_cascade_difference", 2e-5, number(0, 1),
            "The cascade's difference detector: a frame within this mean squared difference (grey 4x4 cells of the "
            "64x64 frame, [0, 1] units) of the last decided frame takes its answer; 0 turns it off."),
)


#: The inference settings (the registry reads this table).
SETTINGS: tuple[Setting, ...] = (
    Setting("inference_mode", "full", choice(*MODES),
            "How model functions over frames compute: 'full' (every frame through the whole CNN), "
            "'exact' (incremental: only changed regions, same results) or 'approximate' "
            "(incremental with change thresholds and frame skipping; bounded fidelity loss)."),
    Setting("inference_cache", True, boolean,
            "Reuse results of model functions stored in the database (EVA-style result cache) and store new ones."),
    Setting("inference_batch_size", 16, whole(1, 4096), "Frames per batch of an inference scan."),
    Setting("inference_cache_limit", "none", either(choice("none"), byte_size,
                                                    expected="'none' or a size such as '64MB' or '2GiB'"),
            "Largest size of the result cache ('64MB', '2GB', or 'none'); scans evict the least recently used "
            "results beyond it."),
    *_knob_settings(),
    *CASCADE_SETTINGS,
)
