"""Mallard's session settings: ``SET <name> = <value>``, ``RESET <name>``.

Each capability declares its settings in a table (a tuple of :class:`Setting`), and
:mod:`engine.registry` gathers the tables in one place; the dialect routes ``SET``
statements naming them to Mallard instead of DuckDB.  Settings live per connection, like
DuckDB's ``SET``; ``engine.connect(..., name=value)`` sets them at connect time.  Values
are checked by the validators of :mod:`engine.options`, the same ones statement options use.

>>> import engine
>>> con = engine.connect(progress="off")
>>> rows = con.execute("SET progress = 'on'").execute("SHOW MALLARD SETTINGS").fetchall()
>>> [row[:2] for row in rows if row[0] == "progress"]
[('progress', 'on')]
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import DataError, ProgrammingError
from engine.options import Validator, choice


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default, the validator of its values, and what it does."""

    name: str
    default: Any
    validator: Validator
    description: str


#: The settings of the session itself (the capabilities declare theirs in their own tables).
SESSION_SETTINGS: tuple[Setting, ...] = (
    Setting("progress", "auto", choice("auto", "on", "off"),
            "Progress bars on long work: 'auto' shows them on a terminal outside CI."),
)


class SessionSettings:
    """The setting values of one connection, over the declared settings."""

    def __init__(self, declared: Mapping[str, Setting]) -> None:
        self._declared = declared
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        setting = self.lookup(name)
        return self._values.get(setting.name, setting.default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._declared

    def set(self, name: str, value: Any) -> Any:
        """Check ``value`` and set it; return the value in force."""
        setting = self.lookup(name)
        try:
            self._values[setting.name] = setting.validator(value)
        except ValueError as e:
            raise DataError(f"SET {setting.name}: {e}") from None
        return self._values[setting.name]

    def reset(self, name: str) -> None:
        self._values.pop(self.lookup(name).name, None)

    def __iter__(self) -> Iterator[tuple[Setting, Any]]:
        for name in sorted(self._declared):
            yield self._declared[name], self[name]

    def lookup(self, name: str) -> Setting:
        """The declared setting called ``name``; ProgrammingError naming the known ones if none."""
        try:
            return self._declared[name.lower()]
        except KeyError:
            known = ", ".join(sorted(self._declared))
            raise ProgrammingError(f"unknown Mallard setting {name!r}; known settings: {known}") from None
