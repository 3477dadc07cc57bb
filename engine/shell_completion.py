"""Completion in the ``mallard`` shell: what may come at the cursor, from the statement so far.

The words before the cursor choose what is offered: a table after ``FROM``/``JOIN``/``INTO``/
``LABEL``/``VALIDATE``, a labeling function after ``USING``, a data schema after
``AGAINST`` or ``SCHEMA``, a model after ``MODEL`` or as the first argument of
``features``/``logits``/``occlusion_map``, a setting after ``SET``/``RESET``, a column after
``table.``, an option inside a Mallard statement's ``WITH (``; anywhere else, every keyword,
column of the tables the statement names, function, model and table.

>>> names = CatalogNames(tables={"traffic": ["frame_id", "frame"], "trips": ["fare"]},
...                      keywords=["SELECT", "FROM"], models=["mobilenet"])
>>> [c for c, _ in candidates("SELECT * FROM traf", names)]
['traffic']
>>> [c for c, _ in candidates("SELECT traffic.fr", names)]
['frame_id', 'frame']
>>> [c for c, _ in candidates("sel", names)]
['select']
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from engine.shell_names import CatalogNames, setting_names, statement_options

_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_CURRENT = re.compile(r"([\w$]*)$")
_QUALIFIED = re.compile(r"([\w$]+)\.([\w$]*)$")
_NAMED_TABLES = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|LABEL|VALIDATE|ON|FOR)\s+([\w.]+)(?:\s+(?:AS\s+)?(\w+))?", re.I)
_NOT_ALIASES = {"where", "join", "on", "using", "group", "order", "limit", "left", "right", "inner", "outer", "cross",
                "natural", "full", "as", "with", "into", "against", "window", "qualify", "having", "union", "select",
                "set", "values", "version", "append", "to", "returning"}

#: Dot commands of the shell and the arguments each takes.
DOT_COMMANDS: dict[str, tuple[str, ...]] = {
    ".help": (), ".tables": (), ".models": (), ".schemas": (), ".functions": (),
    ".explain": ("on", "off"), ".timer": ("on", "off"), ".mode": ("table", "csv", "json"), ".output": (),
    ".quit": (), ".exit": (),
}

# (what the text before the word ends with, the kinds offered there), first match wins
_CONTEXTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple((re.compile(p + r"\s*$", re.I | re.S), kinds) for p, kinds in (
    (r"\bWITH\s*\((?:[^()]*,)?", ("option",)),
    (r"\b(?:SET|RESET)(?:\s+(?:SESSION|LOCAL))?\s+", ("setting", "keyword")),
    (r"\b(?:features|logits|occlusion_map)\s*\(", ("model",)),
    (r"\bLABELING\s+FUNCTIONS?\s+(?:IF\s+EXISTS\s+)?(?:[\w$]+\s*,\s*)*", ("labeling function",)),
    (r"\bUSING\s+(?:[\w$]+\s*,\s*)*", ("labeling function",)),
    (r"\b(?:AGAINST|SCHEMA)\s+(?:IF\s+EXISTS\s+)?", ("data schema",)),
    (r"\bSTATISTICS\s+(?:IF\s+EXISTS\s+)?", ("statistics",)),
    (r"\bMODELS?\s+(?:IF\s+EXISTS\s+)?", ("model",)),
    (r"\b(?:previous|training)\s*=", ("statistics", "table")),
    (r"\b(?:SCHEMA|STATISTICS)\s+[\w$]+\s+FROM\s+", ("statistics", "table")),
    (r"\b(?:FROM|JOIN)\s+", ("table", "table function")),
    (r"\b(?:INTO|TABLE|UPDATE|FOR|ON|DESCRIBE|SUMMARIZE|LABEL|VALIDATE|TO)\s+(?:OR\s+REPLACE\s+)?", ("table",)),
))


def _statement_before(text: str) -> str:
    """The text of the statement the cursor is in (after the last ``;``)."""
    return text.rsplit(";", 1)[-1]


def _context(before: str) -> tuple[str, ...] | None:
    for pattern, kinds in _CONTEXTS:
        if pattern.search(before):
            return kinds
    return None


def _named_tables(statement: str, names: CatalogNames) -> dict[str, str]:
    """alias or table name (lower case) -> table, for the tables ``statement`` names."""
    found: dict[str, str] = {}
    for table, alias in _NAMED_TABLES.findall(statement):
        if names.columns(table):
            found[table.lower().split(".")[-1]] = table
            if alias and alias.lower() not in _NOT_ALIASES:
                found[alias.lower()] = table
    return found


def _spelled(name: str) -> str:
    """A name as SQL needs it written: quoted unless it is a plain lower-case identifier."""
    return ".".join(part if _PLAIN_NAME.match(part) else '"' + part.replace('"', '""') + '"'
                    for part in name.split("."))


def _matching(prefix: str, words: Iterable[str], kind: str) -> Iterator[tuple[str, str]]:
    lowered = prefix.lower()
    for word in words:
        if word.lower().startswith(lowered) and word.lower() != lowered:
            yield word, kind


def _keyword_case(prefix: str, word: str) -> str:
    return word.lower() if prefix and prefix == prefix.lower() else word


def candidates(text: str, names: CatalogNames) -> list[tuple[str, str]]:
    """(completion, what it is) for the word at the end of ``text``, best first, no repeats."""
    statement = _statement_before(text)
    qualified = _QUALIFIED.search(statement)
    if qualified:
        owner, prefix = qualified.groups()
        table = _named_tables(statement, names).get(owner.lower(), owner)
        columns = names.columns(table)
        if columns:
            return _unique(_matching(prefix, columns, f"column of {table}"))
        in_schema = [t.split(".", 1)[1] for t in names.tables if t.lower().startswith(owner.lower() + ".")]
        return _unique(_matching(prefix, in_schema, f"table in {owner}"))
    match = _CURRENT.search(statement)
    prefix = match.group(1) if match else ""
    before = statement[: len(statement) - len(prefix)]
    kinds = _context(before)
    if kinds == ("option",):
        return _unique(_matching(prefix, statement_options(statement), "option"))
    offered: list[tuple[str, str]] = []
    for kind in kinds or ("column", "keyword", "model", "function", "table"):
        offered.extend(_offer(kind, prefix, statement, names))
    return _unique(offered)


def _offer(kind: str, prefix: str, statement: str, names: CatalogNames) -> Iterator[tuple[str, str]]:
    if kind == "keyword":
        for word, what in _matching(prefix, names.keywords, "keyword"):
            yield _keyword_case(prefix, word), what
        return
    if kind == "column":
        for table in dict.fromkeys(_named_tables(statement, names).values()):
            yield from _matching(prefix, names.columns(table), f"column of {table}")
        return
    pools = {
        "table": names.tables, "table function": names.table_functions, "model": names.models,
        "labeling function": names.labeling_functions, "data schema": names.data_schemas,
        "statistics": names.statistics, "function": names.functions, "setting": setting_names(),
    }
    yield from ((_spelled(word), what) for word, what in _matching(prefix, pools[kind], kind))


def _unique(found: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for word, kind in found:
        seen.setdefault(word, kind)
    return list(seen.items())


def dot_candidates(line: str) -> list[tuple[str, str]]:
    """Completions of a dot command line (``.mo`` -> ``.mode``, ``.mode c`` -> ``csv``).

    >>> dot_candidates(".mode j"), dot_candidates(".ti")
    ([('json', 'mode')], [('.timer', 'command')])
    """
    command, space, argument = line.lstrip().partition(" ")
    if not space:
        return list(_matching(command, DOT_COMMANDS, "command"))
    return list(_matching(argument.strip(), DOT_COMMANDS.get(command, ()), command.lstrip(".")))


class ShellCompleter(Completer):
    """prompt_toolkit's view of :func:`candidates`; ``names`` is replaced when the catalog changes."""

    def __init__(self, names: CatalogNames) -> None:
        self.names = names

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.lstrip().startswith(".") and "\n" not in text:
            found = dot_candidates(text)
            word = text.lstrip().partition(" ")[2] if " " in text.lstrip() else text.lstrip()
        else:
            found = candidates(text, self.names)
            word = _CURRENT.search(_statement_before(text)).group(1)  # type: ignore[union-attr]
        for completion, kind in found:
            yield Completion(completion, start_position=-len(word), display_meta=kind)
