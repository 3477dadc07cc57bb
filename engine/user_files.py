"""Reading and writing files a statement names (a labels file, a schema document).

A statement's file is the user's input like any other: it must be a regular file of a
bounded size in UTF-8, and anything else is a DataError saying what was found (never a
UnicodeDecodeError, a directory listing, or a read of ``/dev/zero`` without end).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "labels.txt")
>>> _ = open(path, "wb").write(b"cat\\n\\xff\\n")
>>> read_text_file(path, "labels file")
Traceback (most recent call last):
...
engine.errors.DataError: expected a UTF-8 text labels file, found bytes that are not UTF-8 at byte 4 of ...labels.txt
"""
from __future__ import annotations

import os
import stat

from engine.errors import DataError

#: The largest text file a statement reads (labels, schemas): far above any real one.
MAX_TEXT_BYTES = 64 << 20


def regular_file_size(path: str, what: str) -> int:
    """The size of the regular file at ``path``; DataError naming what is there instead (nothing,
    a directory, a device, pipe or socket).

    >>> regular_file_size("/dev/null", "video file")
    Traceback (most recent call last):
    ...
    engine.errors.DataError: expected a video file (a regular file), found a character device: /dev/null
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except OSError as e:
        raise DataError(f"could not read the {what} {path}: {e.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"expected a {what}, found a directory: {path}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"expected a {what} (a regular file), found {_file_kind(info.st_mode)}: {path}")
    return info.st_size


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_text_file(path: str, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of ``path``, a regular UTF-8 file of at most ``max_bytes``; DataError otherwise."""
    path = os.path.abspath(path)
    size = regular_file_size(path, what)
    if size > max_bytes:
        raise DataError(f"expected a {what} of at most {max_bytes >> 20} MB, found {size / 2**20:.0f} MB: {path}")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise DataError(f"could not read the {what} {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"expected a UTF-8 text {what}, found bytes that are not UTF-8 at byte {e.start} of "
                        f"{path}") from None
