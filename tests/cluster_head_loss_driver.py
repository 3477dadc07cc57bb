"""The driver process of tests/test_cluster_head_loss.py: connects to the cluster at argv[2],
runs LABEL over the SMS table of the database at argv[1] with a function that stalls on the
cluster, and prints the error it gets (or that it completed) as one line of JSON; then runs a
query on this machine to show the connection still works."""
from __future__ import annotations

import json
import sys

import engine
from tests import cluster_lfs
from udfs.labeling import labeling_function, register_labeling_function


def main(path: str, address: str) -> int:
    con = engine.connect(path, progress="off", autocommit=True, cluster=address, cluster_partition_rows=1000)
    register_labeling_function(con, labeling_function(name="lf_stalls", on="sms", register=False)(cluster_lfs.stalls))
    for name, function in (("lf_prize_py", cluster_lfs.prize), ("lf_chat_py", cluster_lfs.chat)):
        register_labeling_function(con, labeling_function(name=name, on="sms", register=False)(function))
    outcome: dict[str, object] = {}
    try:
        con.execute("LABEL sms USING lf_prize_py, lf_chat_py, lf_stalls WITH (classes = ['ham', 'spam'], key = id) "
                    "INTO labels_headless")
        outcome["completed"] = True
    except engine.Error as e:
        outcome.update(error=type(e).__name__, message=str(e))
    con.execute("SET cluster = 'none'")
    outcome["rows_after"] = con.execute("SELECT count(*) FROM sms").fetchone()[0]
    con.close()
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
