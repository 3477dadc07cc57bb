"""Executors of the session statements: SET/RESET of Mallard settings, SHOW MALLARD SETTINGS."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.dialect.session_settings import ResetSetting, SetSetting, ShowSettings
from engine.errors import DataError
from engine.options import literal_value
from engine.statement_result import StatementResult

if TYPE_CHECKING:
    from engine.session import Session


def set_setting(session: Session, node: SetSetting) -> StatementResult:
    """``SET <setting> = <value>``."""
    try:
        value = literal_value(node.args["value"])
    except ValueError as e:
        raise DataError(f"SET {node.this}: {e}") from None
    value = session.settings.set(node.this, value)
    return StatementResult(message=f"SET {node.this} = {value!r}")


def reset_setting(session: Session, node: ResetSetting) -> StatementResult:
    """``RESET <setting>``."""
    session.settings.reset(node.this)
    return StatementResult(message=f"RESET {node.this}")


def show_settings(session: Session, node: ShowSettings) -> StatementResult:
    """``SHOW MALLARD SETTINGS``: name, value, default and description, one row per setting."""
    rows = [(s.name, _text(v), _text(s.default), s.description) for s, v in session.settings]
    names = ["name", "value", "default", "description"]
    return StatementResult(rows=pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)},
                                         schema=pa.schema([(n, pa.string()) for n in names])))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
