"""The process's connection to a Ray cluster, made when a statement first needs it.

Ray holds one cluster connection per process: sessions naming the same address share it,
and a session naming another address moves the process to that one (work in flight on the
old one fails with an OperationalError).  Every failure to connect is an OperationalError
that names the address and what to do; nothing is written before the cluster is reached.

>>> parse_address("ray://head.example:10001")
ClusterAddress(text='ray://head.example:10001', kind='client', host='head.example', port=10001)
>>> parse_address("local").kind
'local'
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.cluster.settings import NO_CLUSTER, cluster_address
from engine.errors import OperationalError, ProgrammingError

if TYPE_CHECKING:
    from engine.session import Session

#: Seconds to wait for the cluster's port to answer before calling it unreachable.
REACH_TIMEOUT_S = 5.0

#: Seconds a connection attempt to the head may take when checking it is still there.
HEAD_PROBE_TIMEOUT_S = 1.0

#: Seconds after a slow failed connection attempt (one that took SLOW_ATTEMPT_S or more: an
#: address that never answers costs Ray 20-30 s an attempt) during which statements naming the
#: same address fail at once with its error.  A quick failure (refused, unknown host) is tried
#: again by the next statement: the head may have been started since.
RETRY_AFTER_S = 30.0
SLOW_ATTEMPT_S = 3.0

_lock = threading.Lock()
_connected: list[ClusterAddress] = []  # the address this process is connected to (at most one)
_failures: dict[str, tuple[float, str]] = {}  # address -> (when the last attempt failed, its error)


@dataclass(frozen=True)
class ClusterAddress:
    """A checked cluster address: 'local', a GCS address ('gcs') or a Ray Client one ('client')."""

    text: str
    kind: str
    host: str = ""
    port: int = 0

    @property
    def ray_address(self) -> str | None:
        """What ``ray.init(address=...)`` takes (None starts Ray on this machine)."""
        return None if self.kind == "local" else self.text


def parse_address(text: str) -> ClusterAddress:
    """The address a ``cluster`` setting names (checked as the setting checks it)."""
    text = cluster_address(text)
    if text == "local":
        return ClusterAddress(text, "local")
    kind = "client" if text.startswith("ray://") else "gcs"
    host, _, port = text.removeprefix("ray://").rpartition(":")
    return ClusterAddress(text, kind, host.strip("[]"), int(port))


def session_cluster(session: Session) -> ClusterAddress | None:
    """The cluster the session's ``cluster`` setting names, or None for this process only."""
    value = session.settings["cluster"]
    return None if value == NO_CLUSTER else parse_address(value)


def require_cluster(session: Session, what: str) -> Any:
    """The ray module, connected to the session's cluster; ProgrammingError without one."""
    address = session_cluster(session)
    if address is None:
        raise ProgrammingError(f"{what} needs a cluster; set one with SET cluster = 'local' (or 'host:port')")
    return connect(address)


def import_ray() -> Any:
    """The ray module, or an OperationalError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise OperationalError(
            f"SET cluster needs Ray, which is not installed here ({e}); install it with pip install 'mallard[ray]'"
        ) from e
    return ray


def connect(address: ClusterAddress) -> Any:
    """Connect this process to the cluster at ``address`` (once; again after a change)."""
    with _lock:
        ray = import_ray()
        if _connected and _connected[0].text == address.text and ray.is_initialized():
            return ray
        failed = _failures.get(address.text)
        if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_S:
            raise OperationalError(f"{failed[1]} (that was {time.monotonic() - failed[0]:.0f} s ago; Mallard tries "
                                   f"the address again {RETRY_AFTER_S:.0f} s after a failed attempt)")
        started = time.monotonic()
        try:
            if address.kind != "local":
                check_reachable(address)
            if ray.is_initialized():
                ray.shutdown()
            _connected.clear()
            _init(ray, address)
        except OperationalError as e:
            if time.monotonic() - started >= SLOW_ATTEMPT_S:
                _failures[address.text] = (time.monotonic(), str(e))
            raise
        _failures.pop(address.text, None)
        _connected.append(address)
        return ray


def disconnect() -> None:
    """Leave the cluster (a 'local' one stops); the next statement that needs it connects again."""
    with _lock:
        if _connected:
            import ray

            ray.shutdown()
            _connected.clear()


def head_answers() -> bool:
    """Whether the connected cluster's head still accepts connections on its port (True for a
    'local' cluster, whose head this process started, and when not connected)."""
    address = _connected[0] if _connected else None
    if address is None or address.kind == "local":
        return True
    try:
        with socket.create_connection((address.host, address.port), timeout=HEAD_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def connected_address() -> str | None:
    """The address this process is connected to, if any."""
    return _connected[0].text if _connected else None


def local_token() -> None:
    """Token authentication for a 'local' cluster, with a token of this process's own.

    Ray secures a new local cluster with a token, which it would otherwise write to
    ``~/.ray/auth_token`` where every later ``ray start`` on the machine finds it; a random
    token in the environment (inherited by the cluster's processes) keeps it to this process.
    An ``RAY_AUTH_MODE`` the user set is left as it is.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    import importlib

    raylet = importlib.import_module("ray._raylet")
    if "RAY_AUTH_TOKEN" not in os.environ:
        # a token this process already holds (Ray keeps the first one it loads) or a new one
        loader = raylet.AuthenticationTokenLoader.instance()
        held = loader.has_token(ignore_auth_mode=True)
        os.environ["RAY_AUTH_TOKEN"] = loader.get_raw_token(ignore_auth_mode=True) if held else secrets.token_hex(32)
    os.environ["RAY_AUTH_MODE"] = "token"
    raylet.Config.initialize("")  # Ray read its configuration on import: read it again, as Ray does here


def check_reachable(address: ClusterAddress) -> None:
    """OperationalError unless something answers at the address's host and port."""
    try:
        with socket.create_connection((address.host, address.port), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as e:
        start = "ray start --head" if address.kind == "gcs" else "ray start --head (its Ray Client server port)"
        raise OperationalError(
            f"cannot reach the Ray cluster at {address.text}: {e.strerror or e}; expected a Ray head there "
            f"(started with {start}); nothing was run or written"
        ) from None


def _init(ray: Any, address: ClusterAddress) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls of Ray's own
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address.kind == "local":
        options["include_dashboard"] = False
        local_token()
    elif "RAY_AUTH_MODE" in os.environ or "RAY_AUTH_TOKEN" in os.environ:
        # Ray reads its token settings when it is imported: read them again, so that a token set
        # in the environment after Ray was first imported in this process is the one sent
        import importlib

        importlib.import_module("ray._raylet").Config.initialize("")
    try:
        ray.init(address=address.ray_address, **options)
    except Exception as e:
        raise OperationalError(f"could not connect to the Ray cluster at {address.text}: {type(e).__name__}: {e}") from e
