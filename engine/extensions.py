"""What users add to Mallard from Python: SQL scalar functions, labeling functions and model
architectures.

This is engine's public extension API; the decorators of :mod:`udfs` (the user-facing
function library) call it.  A declaration is process-wide (every connection opened
afterwards sees it; :func:`register_labeling_function` makes a labeling function known to
one connection only).  Mallard's own built-in functions are not declared here: they are
listed in :mod:`engine.registry`.

>>> import engine
>>> from engine.extensions import ScalarFunction, declare_scalar_function
>>> declare_scalar_function(ScalarFunction("doc_twice", lambda x: 2 * x, ("DOUBLE",), "DOUBLE"), replace=True)
>>> engine.connect().execute("SELECT doc_twice(21)").fetchone()
(42.0,)
"""
from __future__ import annotations

import inspect
import threading
from collections import ChainMap
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from torch import nn

    from engine.connection import Connection
    from engine.session import Session

T = TypeVar("T")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ScalarFunction:
    """A scalar SQL function written in Python.

    ``parameters`` and ``returns`` are DuckDB type names; with ``vectorized`` the function
    receives and returns pyarrow arrays (one call per batch of rows).
    """

    name: str
    fn: Callable[..., Any]
    parameters: tuple[str, ...]
    returns: str
    vectorized: bool = False
    side_effects: bool = False
    #: Made for one database instance (registered once there, never replaced).
    bound_to_instance: bool = False


@dataclass(frozen=True, eq=False)
class PythonLabelingFunction:
    """A labeling function written in Python; calling it calls the function."""

    name: str
    on: str
    fn: Callable[..., Any] = field(repr=False)
    columns: tuple[str, ...]
    vectorized: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def definition(self) -> str:
        """The function's source text (or its qualified name when the source is unavailable)."""
        try:
            return inspect.getsource(self.fn).strip()
        except (OSError, TypeError):
            return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', self.name)}"


@dataclass(frozen=True)
class Architecture:
    """A declared model architecture: how to build it and what input it expects.

    ``factory(num_classes=...)`` returns an ``nn.Module``; ``input_size`` is (height, width),
    or None for fully convolutional networks that take any size; ``mean``/``std`` normalize
    RGB values scaled to [0, 1].  The network's ``forward_features(x)`` returns the pooled
    penultimate features and ``classifier`` maps them to logits (:func:`check_network`).
    """

    name: str
    factory: Callable[..., nn.Module]
    input_size: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int


@dataclass
class Declarations:
    """Everything declared in this process, by lower-case name."""

    scalar_functions: dict[str, ScalarFunction] = field(default_factory=dict)
    labeling_functions: dict[str, PythonLabelingFunction] = field(default_factory=dict)
    architectures: dict[str, Architecture] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


#: The process's declarations (filled by user code through the functions below).
DECLARED = Declarations()

_SESSION_LABELING = "extensions.labeling_functions"


def declare_scalar_function(spec: ScalarFunction, *, replace: bool = False) -> None:
    """Make ``spec`` a SQL function of every connection opened from now on."""
    with DECLARED.lock:
        _add(DECLARED.scalar_functions, spec.name, spec, lambda old: old.fn is spec.fn, replace,
             f"a function named {spec.name!r} is already declared; pass replace=True to replace it")


def declare_architecture(spec: Architecture, *, replace: bool = False) -> None:
    """Make ``spec`` an architecture ``CREATE MODEL ... WITH (architecture = '<name>')`` can build."""
    with DECLARED.lock:
        _add(DECLARED.architectures, spec.name, spec, lambda old: old.factory is spec.factory, replace,
             f"an architecture named {spec.name!r} is already registered; pass replace=True")


def architectures() -> dict[str, Architecture]:
    """Every architecture: the function library's built-ins (loaded on first use, with torch)
    and the user's declared ones."""
    from engine.registry import load_builtin_architectures

    load_builtin_architectures()
    return DECLARED.architectures


def build_network(name: str, num_classes: int | None = None) -> nn.Module:
    """A fresh, untrained network of architecture ``name``, in eval mode (ProgrammingError when
    the architecture is unknown or its network lacks what model functions need).

    >>> build_network("plain_cnn", num_classes=3).classifier.out_features
    3
    """
    from engine.errors import ProgrammingError

    table = architectures()
    spec = table.get(name.lower())
    if spec is None:
        raise ProgrammingError(f"unknown architecture {name!r}; registered: {', '.join(sorted(table))}")
    network = spec.factory(num_classes=num_classes or spec.num_classes)
    check_network(network, spec.name)
    return network.eval()


def check_network(network: object, name: str) -> None:
    """ProgrammingError unless ``network`` offers ``forward_features`` and a registered ``classifier``.

    >>> from torch import nn
    >>> check_network(nn.Linear(2, 2), "linear")
    Traceback (most recent call last):
    ...
    engine.errors.ProgrammingError: architecture linear: the network (Linear) has no forward_features(x) method ...
    """
    from torch import nn

    from engine.errors import ProgrammingError

    kind = type(network).__name__
    if not isinstance(network, nn.Module):
        raise ProgrammingError(f"architecture {name}: the factory must return a torch nn.Module, found {kind}")
    if not callable(getattr(network, "forward_features", None)):
        raise ProgrammingError(
            f"architecture {name}: the network ({kind}) has no forward_features(x) method returning the pooled "
            "penultimate features (n, F); subclass it and add one (see udfs.architectures)")
    classifier = getattr(network, "classifier", None)
    if not isinstance(classifier, nn.Module) or not any(m is classifier for m in network.modules()):
        found = "nothing" if classifier is None else f"a {type(classifier).__name__} that is not one of its submodules"
        raise ProgrammingError(
            f"architecture {name}: the network ({kind}) needs `classifier`, a submodule mapping the features to "
            f"logits (an nn.Module attribute, or a property returning one such as self.fc), found {found}; "
            "exact and approximate modes trace classifier(forward_features(x)) with torch.fx")


def declare_labeling_function(lf: PythonLabelingFunction, *, replace: bool = False) -> None:
    """Make ``lf`` known to every connection."""
    with DECLARED.lock:
        _add_labeling(DECLARED.labeling_functions, lf, replace)


def register_labeling_function(connection: Connection, lf: PythonLabelingFunction, *, replace: bool = False) -> None:
    """Make ``lf`` known on one connection only."""
    if not isinstance(lf, PythonLabelingFunction):
        raise TypeError(f"expected a function made by @labeling_function(...), found {type(lf).__name__}")
    _add_labeling(session_labeling_functions(connection.session).maps[0], lf, replace)


def session_labeling_functions(session: Session) -> ChainMap[str, PythonLabelingFunction]:
    """The Python labeling functions a session sees: its own, then the declared ones."""
    found = session.state.get(_SESSION_LABELING)
    if found is None:
        found = session.state[_SESSION_LABELING] = ChainMap({}, DECLARED.labeling_functions)
    return found


def _add_labeling(registry: MutableMapping[str, PythonLabelingFunction], lf: PythonLabelingFunction,
                  replace: bool) -> None:
    _add(registry, lf.name, lf, lambda old: old.fn is lf.fn, replace,
         f"a labeling function named {lf.name!r} is already registered; pass replace=True to replace it")


def _add(table: MutableMapping[str, T], name: str, spec: T, same: Callable[[T], bool], replace: bool,
         taken: str) -> None:
    """Put ``spec`` in ``table`` under ``name``; ValueError(``taken``) when another one is there
    and ``replace`` is off (the same declaration again, as on a module's re-import, is fine)."""
    existing = table.get(name)
    if existing is not None and not replace and not same(existing):
        raise ValueError(taken)
    table[name] = spec
