"""The ``mallard`` shell on a terminal: prompt_toolkit's line editor with Mallard's SQL.

Enter runs the text once it ends a statement (a ``;`` outside strings and comments) or is a
dot command, and otherwise starts a new line (Alt-Enter always runs it); Tab completes
(:mod:`engine.shell_completion`); SQL and Mallard's own keywords are highlighted; history
is kept in ``~/.mallard_history``, searched by prefix with Up and by any part with Ctrl-R.
Ctrl-C at the prompt clears the text, and while a statement runs, stops it.

>>> [str(token) for _, token, value in MallardLexer().get_tokens_unprocessed("LABEL t") if value.strip()]
['Token.Keyword', 'Token.Name']
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from pygments.lexers.sql import SqlLexer
from pygments.token import Keyword, Name

import engine
from engine.shell_completion import ShellCompleter
from engine.shell_names import mallard_keywords, read_names

if TYPE_CHECKING:
    from engine.shell import Shell

HISTORY = os.path.join("~", ".mallard_history")
PROMPT = "mallard> "
CONTINUATION = "   ...> "


class MallardLexer(SqlLexer):
    """Pygments' SQL lexer, with Mallard's statement words (LABEL, VIDEO, AGAINST, ...) as keywords."""

    name = "Mallard SQL"
    aliases = ["mallard"]

    def get_tokens_unprocessed(self, text: str, *args: Any) -> Iterator[tuple[int, Any, str]]:
        words = mallard_keywords()
        for index, token, value in super().get_tokens_unprocessed(text, *args):
            if token in Name and value.upper() in words:
                token = Keyword
            yield index, token, value


def _ready(text: str) -> bool:
    from engine.shell import statement_complete

    stripped = text.strip()
    return not stripped or stripped.startswith(".") or statement_complete(text)


def key_bindings() -> KeyBindings:
    """Enter runs a finished statement or a dot command, and starts a new line otherwise."""
    bindings = KeyBindings()

    @bindings.add("enter", filter=~_completing())
    def _(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.document.is_cursor_at_the_end and _ready(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    return bindings


def _completing() -> Any:
    from prompt_toolkit.filters import completion_is_selected, has_completions

    return has_completions & completion_is_selected


def prompt_session(shell: Shell, history: str = HISTORY) -> PromptSession[str]:
    """A prompt_toolkit session completing from ``shell``'s database, which reads the names
    again after each statement that may change them."""
    completer = ShellCompleter(read_names(shell.con))

    def refresh() -> None:
        completer.names = read_names(shell.con)

    shell.on_catalog_change = refresh
    return PromptSession(
        PROMPT, multiline=True, prompt_continuation=lambda width, line_number, wrap_count: CONTINUATION.rjust(width),
        lexer=PygmentsLexer(MallardLexer), completer=completer, complete_while_typing=False,
        history=FileHistory(os.path.expanduser(history)), enable_history_search=True,
        auto_suggest=AutoSuggestFromHistory(), key_bindings=key_bindings(), include_default_pygments_style=True,
    )


def prompt_loop(shell: Shell, history: str = HISTORY) -> None:
    """Read, run and print until ``.quit`` or Ctrl-D."""
    session = prompt_session(shell, history)
    print(f"Mallard {engine.__version__} on {getattr(shell.con, 'database', 'a server')}. End statements with ;  "
          "(Tab completes, .help lists commands, .quit leaves)", file=shell.stdout)
    while True:
        try:
            text = session.prompt()
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt: drop the text
        except EOFError:
            break
        if text.strip().startswith("."):
            if not shell.dot_command(text):
                break
        elif text.strip():
            shell.run_sql(text)
