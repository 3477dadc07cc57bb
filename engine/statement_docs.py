"""What the statement table tells people about each statement: its syntax line, summary,
description and options, read from the class (``PREFIX``, ``NAME``, ``OPTIONS``, docstring),
its executor's docstring and its module's.

The shell derives its keywords from here, and ``scripts/docs_reference.py`` writes the SQL
reference of the documentation (one page per statement) from it.

>>> from engine.dialect.validation import DropDataSchema
>>> syntax(DropDataSchema)
'DROP DATA SCHEMA [IF EXISTS] <name>'
>>> slug(DropDataSchema), summary(DropDataSchema)
('drop-data-schema', 'Delete a data schema with all its versions (validation runs keep their anomalies).')
"""
from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from engine.dialect.base import Statement
from engine.options import describe

_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":(?:mod|func|class|data|meth):`~?([^`]+)`")


def _docs(cls: type[Statement]) -> list[str]:
    from engine.registry import EXECUTORS

    executor = EXECUTORS.get(cls)
    return [cls.__doc__ or "", getattr(executor, "__doc__", None) or "", sys.modules[cls.__module__].__doc__ or ""]


def _required_words(text: str) -> str:
    return " ".join(re.sub(r"\[[^\]]*\]", " ", text).upper().split())


def syntax(cls: type[Statement]) -> str | None:
    """The statement's syntax line: the longest ````...```` in its docstring, its executor's or
    its module's that starts with the statement's words (optional groups aside)."""
    found = [text for doc in _docs(cls) for text in _LITERAL.findall(doc)
             if _required_words(text).startswith(cls.NAME) and (len(_required_words(text)) == len(cls.NAME)
                                                                or not _required_words(text)[len(cls.NAME)].isalpha())]
    return max(found, key=len) if found else None


def slug(cls: type[Statement]) -> str:
    """The statement's page name: its words, lower case, joined by hyphens (or its ``SLUG``, where
    two statements share their words: ``CREATE MODEL ... FROM`` and ``CREATE MODEL ... AS``)."""
    return getattr(cls, "SLUG", "") or cls.NAME.lower().replace(" ", "-")


def description(cls: type[Statement]) -> str:
    """The class docstring as Markdown: doctest examples and the syntax line left out."""
    lines: list[str] = []
    in_example = False
    for line in (cls.__doc__ or "").strip().splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
        elif not stripped:
            in_example = False
        if in_example or (stripped.startswith("``") and stripped.endswith("``") and stripped == f"``{syntax(cls)}``"):
            continue
        lines.append(stripped)
    text = "\n".join(lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return markdown(text)


def markdown(text: str) -> str:
    """reStructuredText's inline markup of our docstrings as Markdown (````x```` and roles to ```x```)."""
    return _ROLE.sub(r"`\1`", _LITERAL.sub(r"`\1`", text))


def summary(cls: type[Statement]) -> str:
    """The first sentence of the statement's description (after its syntax, when it starts with it)."""
    first = description(cls).split("\n\n")[0].replace("\n", " ")
    after_syntax = re.sub(r"^`[^`]+`\s*:?\s*", "", first)
    if after_syntax and after_syntax != first:
        first = after_syntax[0].upper() + after_syntax[1:]
    match = re.match(r"(.+?[.:;])(\s|$)", first)
    sentence = match.group(1) if match else first
    return sentence[:-1] + "." if sentence.endswith((":", ";")) else sentence


def option_rows(cls: type[Statement]) -> Sequence[tuple[str, str, str, str]]:
    """(option, accepted values, default, meaning) for each of the statement's ``WITH`` options."""
    return describe(cls.OPTIONS)
