"""A real pseudo-terminal running the ``mallard`` shell, and the screen a person would see.

pexpect runs the command in a pty; pyte (a VT100 emulator) renders what it writes, so tests
read the screen as text instead of matching control codes.
"""
from __future__ import annotations

import time
from pathlib import Path

import pexpect
import pyte

ROWS, COLUMNS = 40, 120


class Terminal:
    """``mallard`` in a pseudo-terminal of ROWS x COLUMNS; close it with :meth:`close`."""

    def __init__(self, command: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        self.child = pexpect.spawn(command, args, cwd=str(cwd), env={**env, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
                                   dimensions=(ROWS, COLUMNS), timeout=5)

    def _pump(self) -> None:
        while True:
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.05)
            except (pexpect.TIMEOUT, pexpect.EOF):
                return
            self.raw += chunk
            self.stream.feed(chunk)

    def text(self) -> str:
        """The screen as lines of text (trailing blanks removed)."""
        self._pump()
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip()

    def wait_for(self, needle: str, timeout: float = 60.0, count: int = 1) -> str:
        """Wait until ``needle`` shows ``count`` times on the screen; the screen's text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if screen.count(needle) >= count:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} did not show on the screen within {timeout} s:\n{self.text()}")

    def type(self, keys: str) -> None:
        self.child.send(keys)

    def interrupt(self) -> None:
        self.child.sendintr()

    def wait_exit(self, timeout: float = 30.0) -> int:
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.child.close()
        return int(self.child.exitstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
