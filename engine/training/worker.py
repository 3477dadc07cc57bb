"""The program a training worker process runs: ``python -m engine.training.worker <fd>``.

The statement's process (:class:`engine.training.processes.WorkerPool`) starts it with one
end of a socket pair as file descriptor ``fd`` and sends the role and its arguments first.
Ctrl-C is the statement's to handle (the worker ignores it and is ended by the pool).

>>> sorted(ROLES)
['data_parallel', 'hopper']
"""
from __future__ import annotations

import multiprocessing.connection
import signal
import sys
from importlib import import_module

from engine.training.processes import decode, report_failure

#: Role -> "module:function" taking (connection, **arguments).
ROLES = {
    "hopper": "engine.training.hopper:serve_visits",
    "data_parallel": "engine.training.distributed:serve_data_parallel",
}


def main(argv: list[str]) -> int:
    """Run the role the statement's process asks for; 0 when it ended normally."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = multiprocessing.connection.Connection(int(argv[1]))
    try:
        first = decode(connection.recv_bytes())
        arguments = dict(first["arguments"])
        import torch

        torch.set_num_threads(int(arguments.pop("threads", 1)))
        module, function = ROLES[first["role"]].split(":")
        getattr(import_module(module), function)(connection, **arguments)
        return 0
    except BaseException as e:
        report_failure(connection, e)
        return 1
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
