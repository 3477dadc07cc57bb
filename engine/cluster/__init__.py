"""Mallard's heavy work on a Ray cluster, DuckDB staying the one place results land.

``SET cluster = ...`` (:mod:`engine.cluster.settings`) names the cluster; the process
connects when a statement first needs it (:mod:`engine.cluster.connection`).  What runs
there: Python labeling functions over row partitions, returning their votes and mergeable
vote-pattern counts (:mod:`engine.cluster.labeling`), the statistics of row partitions merged
into a span (:mod:`engine.cluster.statistics`), and inference over video segments cut at
keyframes (:mod:`engine.cluster.segments`).  Tasks
return Arrow; the driver writes, in the statement's one transaction, so a failure anywhere
leaves the database unchanged.  Ray is imported only here, and only when a cluster is set.
"""
