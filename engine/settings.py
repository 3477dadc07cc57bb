"""Mallard's session settings: ``SET <name> = <value>``, ``RESET <name>``.

A capability declares its settings with :func:`register_setting`; the router then sends
``SET`` statements naming them to Mallard instead of DuckDB.  Settings live per connection,
like DuckDB's ``SET``; ``engine.connect(..., name=value)`` sets them at connect time.

>>> import engine
>>> con = engine.connect(progress="off")
>>> rows = con.execute("SET progress = 'on'").execute("SHOW MALLARD SETTINGS").fetchall()
>>> [row[:2] for row in rows if row[0] == "progress"]
[('progress', 'on')]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from engine.errors import DataError, ProgrammingError


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default, a parser that validates a value, and what it does."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    description: str


SETTINGS: dict[str, Setting] = {}


def register_setting(name: str, default: Any, parse: Callable[[Any], Any], description: str) -> Setting:
    """Declare a setting; ``parse`` returns the validated value or raises ValueError."""
    setting = Setting(name.lower(), default, parse, description)
    SETTINGS[setting.name] = setting
    return setting


def choice(*allowed: str) -> Callable[[Any], str]:
    """A parser accepting one of ``allowed`` (case-insensitive)."""

    def parse(value: Any) -> str:
        text = str(value).lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(repr(a) for a in allowed)}, found {value!r}")
        return text

    return parse


def boolean(value: Any) -> bool:
    """A parser accepting true/false, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "on", "1", "yes"):
        return True
    if text in ("false", "off", "0", "no"):
        return False
    raise ValueError(f"expected true or false, found {value!r}")


def number(lo: float, hi: float, integer: bool = False) -> Callable[[Any], float]:
    """A parser accepting a number in [lo, hi]."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"expected a number in [{lo}, {hi}], found {value!r}") from None
        if integer and float(value) != int(value):
            raise ValueError(f"expected a whole number in [{lo}, {hi}], found {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"expected a number in [{lo}, {hi}], found {value!r}")
        return int(value) if integer else float(value)

    return parse


register_setting(
    "progress", "auto", choice("auto", "on", "off"),
    "Progress bars on long work: 'auto' shows them on a terminal outside CI.",
)


class SessionSettings:
    """The setting values of one connection."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        setting = self._lookup(name)
        return self._values.get(setting.name, setting.default)

    def set(self, name: str, value: Any) -> None:
        setting = self._lookup(name)
        try:
            self._values[setting.name] = setting.parse(value)
        except ValueError as e:
            raise DataError(f"SET {setting.name}: {e}") from None

    def reset(self, name: str) -> None:
        self._values.pop(self._lookup(name).name, None)

    def __iter__(self) -> Iterator[tuple[Setting, Any]]:
        for name in sorted(SETTINGS):
            yield SETTINGS[name], self[name]

    @staticmethod
    def _lookup(name: str) -> Setting:
        try:
            return SETTINGS[name.lower()]
        except KeyError:
            known = ", ".join(sorted(SETTINGS))
            raise ProgrammingError(f"unknown Mallard setting {name!r}; known settings: {known}") from None
