"""The cluster settings: ``SET cluster = 'local' | 'host:port' | 'ray://host:port'`` and the
partition size of the work sent to it.

``cluster`` is the one spelling: a session setting, so ``engine.connect(path, cluster='local')``
sets it at connect time too.  Setting it only checks the address's form; the process connects
to Ray when a statement first needs the cluster (``SHOW CLUSTER``, ``LABEL`` with Python
functions, ``COMPUTE STATISTICS``, an inference scan), and without a cluster Ray is never imported.

>>> import engine
>>> con = engine.connect(cluster="127.0.0.1:6379")
>>> con.settings["cluster"]
'127.0.0.1:6379'
>>> con.execute("SET cluster = 'nowhere'")
Traceback (most recent call last):
  ...
engine.errors.DataError: SET cluster: expected 'none', 'local', 'host:port' or 'ray://host:port', found 'nowhere'
"""
from __future__ import annotations

import re
from typing import Any

from engine.options import Validator, whole
from engine.settings import Setting

#: The value meaning "no cluster": everything runs in this process.
NO_CLUSTER = "none"

_ADDRESS = re.compile(r"^(ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_EXPECTED = "'none', 'local', 'host:port' or 'ray://host:port'"


def _cluster_address(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in (NO_CLUSTER, "local"):
            return text.lower()
        match = _ADDRESS.match(text)
        if match and 0 < int(match.group(3)) < 65536:
            return text
    raise ValueError(f"expected {_EXPECTED}, found {value!r}")


cluster_address = Validator(_EXPECTED, _cluster_address)

SETTINGS: tuple[Setting, ...] = (
    Setting("cluster", NO_CLUSTER, cluster_address,
            "The Ray cluster heavy work runs on: 'none' (this process), 'local' (start Ray on this machine), "
            "'host:port' (a cluster this machine is a node of: the head's GCS address) or 'ray://host:port' "
            "(Ray Client, from outside the cluster). Python labeling functions, statistics scans and inference "
            "scans then run in Ray tasks; results are written here."),
    Setting("cluster_partition_rows", 50_000, whole(1, 10**9),
            "Rows per Ray task when Python labeling functions, or the scans of COMPUTE STATISTICS, run on the cluster."),
)
