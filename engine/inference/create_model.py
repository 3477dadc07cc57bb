"""CREATE MODEL: turn the statement's options and weights file into a checked model version.

Everything is validated before anything is written: the name, the options, the
architecture (registered with ``@architecture``), the labels file, and the weights
(strict key and shape check).

>>> parse_labels("cat\\n dog \\n\\nowl\\n", "pets.txt")
('cat', 'dog', 'owl')
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import DataError, ProgrammingError
from engine.inference.model_catalog import ModelSpec
from engine.inference.weights import check_state_dict, read_weights_file
from engine.user_files import read_text_file

if TYPE_CHECKING:
    from engine.session import Session

if TYPE_CHECKING:
    import torch

OPTIONS = ("architecture", "labels", "num_classes", "input_size", "mean", "std", "description", "inputs")

#: Names that mean something else in SQL over frames; a model cannot take them.
RESERVED_NAMES = ("features", "logits", "occlusion_map", "predict", "frame", "model")

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class NewModel:
    """A validated CREATE MODEL: ready to be stored."""

    name: str
    spec: ModelSpec
    state: dict[str, torch.Tensor]
    source: str
    description: str | None
    options: dict[str, Any]


def prepare_model(session: Session, name: str, source: str, options: dict[str, Any], replace: bool) -> NewModel:
    """Validate a CREATE MODEL statement without writing anything."""
    from engine.extensions import architectures

    known = architectures()
    name = check_model_name(session, name, replace)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ProgrammingError(f"unknown CREATE MODEL option {unknown[0]!r}; expected one of {', '.join(OPTIONS)}")
    architecture = options.get("architecture")
    if not isinstance(architecture, str) or not architecture:
        raise ProgrammingError(
            f"CREATE MODEL {name} needs WITH (architecture = '<name>'); registered architectures: "
            f"{', '.join(sorted(known))}"
        )
    arch = known.get(architecture.lower())
    if arch is None:
        raise ProgrammingError(
            f"unknown architecture {architecture!r}; registered architectures: {', '.join(sorted(known))} "
            "(add one with the @architecture decorator of udfs.architectures)"
        )
    labels = _labels(options.get("labels"))
    num_classes = _num_classes(options.get("num_classes"), labels, arch.num_classes)
    inputs = _inputs(options.get("inputs"))
    if inputs is None:
        spec = ModelSpec(
            architecture=arch.name, num_classes=num_classes,
            input_size=_input_size(options["input_size"]) if "input_size" in options else arch.input_size,
            mean=_triple(options.get("mean", arch.mean), "mean"),
            std=_triple(options.get("std", arch.std), "std", positive=True),
            labels=labels,
        )
    else:
        if "input_size" in options:
            raise ProgrammingError("CREATE MODEL: input_size is for image models; a model with inputs = [...] "
                                   "takes one value per input column")
        spec = ModelSpec(
            architecture=arch.name, num_classes=num_classes, input_size=None,
            mean=_per_input(options.get("mean"), inputs, "mean", 0.0),
            std=_per_input(options.get("std"), inputs, "std", 1.0, positive=True),
            labels=labels, inputs=inputs,
        )
    state = load_checked_weights(spec, os.path.abspath(source))
    description = options.get("description")
    if description is not None and not isinstance(description, str):
        raise DataError(f"CREATE MODEL option description: expected a string, found {description!r}")
    return NewModel(name, spec, state, os.path.abspath(source), description, options)


def check_model_name(session: Session, name: str, replace: bool) -> str:
    """The model's catalog name (lower case); ProgrammingError if it is taken or unusable."""
    key = name.lower()
    if not _NAME.match(key):
        raise ProgrammingError(f"expected a model name of letters, digits and _, found {name!r}")
    if key in RESERVED_NAMES:
        raise ProgrammingError(f"{name!r} cannot name a model: it is reserved ({', '.join(RESERVED_NAMES)})")
    exists = session.scalar("SELECT count(*) FROM mallard.models WHERE name = ?", [key])
    if exists and not replace:
        raise ProgrammingError(f"model {key} already exists; use CREATE OR REPLACE MODEL to add a new version")
    if not exists:
        clash = session.scalar(
            "SELECT count(*) FROM duckdb_functions() WHERE lower(function_name) = ?", [key]
        )
        if clash:
            raise ProgrammingError(
                f"{key!r} cannot name a model: SQL already has a function of that name, and calls "
                f"{key}(...) would become ambiguous"
            )
    return key


def load_checked_weights(spec: ModelSpec, path: str) -> dict[str, torch.Tensor]:
    """Read ``path`` and check it against ``spec``'s architecture; the state dict, loadable strictly."""
    from engine.extensions import build_network

    network = build_network(spec.architecture, num_classes=spec.num_classes)
    state = read_weights_file(path)
    check_state_dict(network, state, spec.architecture)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:  # dtype trouble the shape check cannot see
        raise DataError(f"weights in {path} do not load into {spec.architecture}: {e}") from e
    return state


def parse_labels(text: str, path: str) -> tuple[str, ...]:
    """Class names from a labels file: one per line, blank lines ignored."""
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise DataError(f"expected class names (one per line) in labels file {path}, found none")
    return labels


def _labels(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise DataError(f"CREATE MODEL option labels: expected a file path or a list of strings, found {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise DataError(f"CREATE MODEL option labels: expected a file path or a list of strings, found {value!r}")
    path = os.path.abspath(value)
    return parse_labels(read_text_file(path, "labels file"), path)


def _num_classes(value: Any, labels: tuple[str, ...] | None, default: int) -> int:
    if value is None:
        return len(labels) if labels else default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"CREATE MODEL option num_classes: expected a positive whole number, found {value!r}")
    if labels is not None and len(labels) != value:
        raise DataError(f"num_classes = {value} but the labels give {len(labels)} class names")
    return value


def _input_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return int(value[0]), int(value[1])
    raise DataError(f"CREATE MODEL option input_size: expected a size or [height, width], found {value!r}")


def _inputs(value: Any) -> tuple[str, ...] | None:
    """The input columns of a numeric model (``inputs = ['a', 'b']``), checked: distinct names."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"CREATE MODEL option inputs: expected a list of column names, found {value!r}")
    names = tuple(v.lower() for v in value)
    if len(set(names)) != len(names):
        raise DataError(f"CREATE MODEL option inputs: a column is named twice in {value!r}")
    return names


def _per_input(value: Any, inputs: tuple[str, ...], what: str, default: float,
               positive: bool = False) -> tuple[float, ...]:
    """One normalization value per input column (default: no normalization)."""
    if value is None:
        return (default,) * len(inputs)
    values = list(value) if isinstance(value, (list, tuple)) else None
    if (values is None or len(values) != len(inputs)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            or (positive and min(values) <= 0)):
        need = "positive numbers" if positive else "numbers"
        raise DataError(f"CREATE MODEL option {what}: expected {len(inputs)} {need} (one per input column "
                        f"{', '.join(inputs)}), found {value!r}")
    return tuple(float(v) for v in values)


def _triple(value: Any, what: str, positive: bool = False) -> tuple[float, float, float]:
    values = list(value) if isinstance(value, (list, tuple)) else None
    if (values is None or len(values) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            or (positive and min(values) <= 0)):
        need = "three positive numbers" if positive else "three numbers"
        raise DataError(f"CREATE MODEL option {what}: expected {need} (one per RGB channel), found {value!r}")
    return float(values[0]), float(values[1]), float(values[2])
