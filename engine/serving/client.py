"""A small client of the prediction server (the standard library's ``http.client``, one
kept-alive connection), and :class:`RemoteConnection`: what ``mallard --server URL`` runs its
statements through, shaped like a connection so the shell prints results as it always does.

An error the server answers for a statement (``{"error": {"code": "ProgrammingError", ...}}``)
is raised as that :mod:`engine.errors` class; an unreachable server is an
:class:`~engine.errors.OperationalError`.

>>> client = ServingClient("http://127.0.0.1:9", timeout=2)
>>> client.health()
Traceback (most recent call last):
...
engine.errors.OperationalError: cannot reach the Mallard server at http://127.0.0.1:9: Connection refused
"""
from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import engine.errors as errors
from engine.errors import OperationalError


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers (lower-case names) and the JSON body (or text)."""

    status: int
    headers: dict[str, str]
    body: Any


class ServingClient:
    """Requests to one server; ``token`` goes in ``Authorization: Bearer``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise errors.InterfaceError(f"expected a server URL such as http://127.0.0.1:8000, found {url!r}")
        self.url = f"http://{parsed.netloc}"
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.token, self.timeout = token, timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        """One request (JSON body); the answer, whatever its status."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more, anew
            connection = self._connect()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                if attempt == 2 or isinstance(e, ConnectionRefusedError):
                    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                    raise OperationalError(f"cannot reach the Mallard server at {self.url}: {reason}") from e
        found = {k.lower(): v for k, v in response.getheaders()}
        kind = found.get("content-type", "")
        payload: Any = json.loads(raw) if kind.startswith("application/json") and raw else raw.decode("utf-8", "replace")
        return Answer(response.status, found, payload)

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # The endpoints --------------------------------------------------------------------
    def health(self) -> Answer:
        return self.request("GET", "/healthz")

    def ready(self) -> Answer:
        return self.request("GET", "/readyz")

    def models(self) -> Answer:
        return self.request("GET", "/v1/models")

    def metrics(self) -> str:
        return str(self.request("GET", "/metrics").body)

    def predict(self, model: str, inputs: list[Any], **fields: Any) -> Answer:
        """``POST /v1/models/<model>:predict`` with ``inputs`` (and ``version``, ``deadline_ms``)."""
        return self.request("POST", f"/v1/models/{urllib.parse.quote(model)}:predict", {"inputs": inputs, **fields})

    def route(self, model: str, version: int | None, percent: float = 0) -> Answer:
        return self.request("POST", f"/v1/models/{urllib.parse.quote(model)}:route",
                            {"version": version, "percent": percent})

    def sql(self, text: str, parameters: Sequence[Any] | None = None, max_rows: int | None = None) -> Answer:
        body: dict[str, Any] = {"sql": text, "parameters": list(parameters) if parameters is not None else None}
        if max_rows is not None:
            body["max_rows"] = max_rows
        return self.request("POST", "/v1/sql", body)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until ``/readyz`` says every model is loaded; OperationalError after ``timeout``."""
        end = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < end:
            try:
                answer = self.ready()
                if answer.status == 200:
                    return
                last = answer.body
            except OperationalError as e:
                last = e
            time.sleep(0.1)
        raise OperationalError(f"the server at {self.url} was not ready within {timeout:.0f} s: {last}")


def image_input(data: bytes) -> dict[str, str]:
    """A predict input of an encoded PNG or JPEG image."""
    return {"image_base64": base64.b64encode(data).decode("ascii")}


class RemoteCursor:
    """The result of one statement run by the server, read as a cursor's."""

    def __init__(self, result: dict[str, Any]) -> None:
        columns = result.get("columns")
        self.description = None if columns is None else [
            (c["name"], c["type"], None, None, None, None, None) for c in columns]
        blobs = [i for i, c in enumerate(columns or []) if c["type"] == "BLOB"]
        self._rows = [tuple(base64.b64decode(v) if i in blobs and isinstance(v, str) else v
                            for i, v in enumerate(row)) for row in result.get("rows") or []]
        self.rowcount = int(result.get("rowcount", -1))
        self.message = result.get("message")
        self.truncated = bool(result.get("truncated"))
        self.models = result.get("models") or {}

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows[:size], self._rows[size:]
        return taken

    def fetchall(self) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows, []
        return taken

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None


class RemoteConnection:
    """Statements sent to a running server's ``POST /v1/sql`` (``mallard --server URL``)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.client = ServingClient(url, token)
        self.database = self.client.url

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> RemoteCursor:
        answer = self.client.sql(sql, parameters)
        if answer.status == 200 and isinstance(answer.body, dict):
            cursor = RemoteCursor(answer.body)
            for model, change in cursor.models.items():
                cursor.message = f"{cursor.message or ''}\nmodel {model}: {change}".strip()
            return cursor
        raise remote_error(answer)

    def interrupt(self) -> None:
        """Nothing to stop here: the statement runs on the server."""

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remote_error(answer: Answer) -> errors.Error:
    """The engine error an error answer stands for."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if not isinstance(error, dict):
        return OperationalError(f"the server answered {answer.status}: {str(answer.body)[:200]}")
    kind = getattr(errors, str(error.get("code")), None)
    message = str(error.get("message"))
    if isinstance(kind, type) and issubclass(kind, errors.Error):
        return kind(message)
    if answer.status == 401:
        return errors.InterfaceError(f"the server refused the token: {message} (give it with --token)")
    return OperationalError(f"the server answered {answer.status}: {message}")
