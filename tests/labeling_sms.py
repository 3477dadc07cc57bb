"""The SMS spam collection and a dozen keyword, regex and length labeling functions over it,
as SQL (for Mallard) and as Python (for Snorkel's PandasLFApplier, and to check that SQL
and Python functions agree).  Shared by the labeling tests and bench/bench_labeling.py."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlglot import exp

#: (name, vote, kind, argument): kind 'regex' votes when the pattern matches the text,
#: 'shorter' when the text has fewer characters than the argument.
SMS_LFS: tuple[tuple[str, str, str, Any], ...] = (
    ("lf_free", "spam", "regex", r"(?i)\bfree\b"),
    ("lf_prize", "spam", "regex", r"(?i)\b(prize|won|winner|claim|reward)\b"),
    ("lf_long_number", "spam", "regex", r"\d{5,}"),
    ("lf_txt", "spam", "regex", r"(?i)\b(txt|sms|mobile)\b"),
    ("lf_call_now", "spam", "regex", r"(?i)\bcall (now|free|\d)"),
    ("lf_money", "spam", "regex", r"(?i)[£$€]|\bcash\b"),
    ("lf_urgent", "spam", "regex", r"(?i)\b(urgent|guaranteed|congratulations|selected)\b"),
    ("lf_url", "spam", "regex", r"(?i)(www\.|http|\.com\b)"),
    ("lf_stop", "spam", "regex", r"(?i)\b(stop|unsubscribe|opt ?out)\b"),
    ("lf_short", "ham", "shorter", 25),
    ("lf_chat", "ham", "regex", r"(?i)\b(lol|haha|hey|ok|okay|gonna|wanna)\b"),
    ("lf_feelings", "ham", "regex", r"(?i)\b(love|miss|sorry|sleep|home)\b"),
)


def sms_lf_sql(name: str, vote: str, kind: str, argument: Any) -> str:
    """``CREATE LABELING FUNCTION`` text for one spec."""
    if kind == "regex":
        condition = exp.func("regexp_matches", exp.column("text"), exp.Literal.string(argument))
    else:
        condition = exp.LT(this=exp.func("length", exp.column("text")), expression=exp.Literal.number(argument))
    case = exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.string(vote))])
    return f"CREATE OR REPLACE LABELING FUNCTION {name} ON sms AS {case.sql('duckdb')}"


def sms_lf_python(vote: str, kind: str, argument: Any) -> Callable[[str], str | None]:
    """The same function in Python: the vote, or None to abstain."""
    if kind == "regex":
        pattern = re.compile(argument)
        return lambda text: vote if pattern.search(text) else None
    return lambda text: vote if len(text) < argument else None


def load_sms(con: Any, path: Path, table: str = "sms") -> None:
    """``table(id, truth, text)`` from the TSV (label, text)."""
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT row_number() OVER () AS id, column0 AS truth, column1 AS text "
        "FROM read_csv(?, delim = '\t', header = false, quote = '', columns = {'column0': 'VARCHAR', 'column1': 'VARCHAR'})",
        [str(path)],
    )


def create_sms_lfs(con: Any) -> list[str]:
    """Create the SQL functions; returns their names."""
    for spec in SMS_LFS:
        con.execute(sms_lf_sql(*spec))
    return [spec[0] for spec in SMS_LFS]
