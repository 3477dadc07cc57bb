"""Executors of the session statements: SET/RESET of Mallard settings, SHOW MALLARD SETTINGS."""
from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from engine.dialect.base import literal_value
from engine.dialect.core import ResetSetting, SetSetting, ShowSettings
from engine.errors import DataError
from engine.executors import executes
from engine.result import Result


@executes(SetSetting)
def set_setting(session: Any, node: SetSetting, params: Sequence[Any] | None) -> Result:
    try:
        value = literal_value(node.args["value"])
    except ValueError as e:
        raise DataError(f"SET {node.this}: {e}") from None
    session.settings.set(node.this, value)
    return Result(message=f"SET {node.this} = {session.settings[node.this]!r}")


@executes(ResetSetting)
def reset_setting(session: Any, node: ResetSetting, params: Sequence[Any] | None) -> Result:
    session.settings.reset(node.this)
    return Result(message=f"RESET {node.this}")


@executes(ShowSettings)
def show_settings(session: Any, node: ShowSettings, params: Sequence[Any] | None) -> Result:
    rows = [(s.name, _text(v), _text(s.default), s.description) for s, v in session.settings]
    names = ["name", "value", "default", "description"]
    return Result(arrow=pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)},
                                 schema=pa.schema([(n, pa.string()) for n in names])))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
