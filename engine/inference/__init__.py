"""Inference over frames tables: the model catalog, the inference scan with its result
cache, EXPLAIN of inference plans and occlusion maps (engine A); the Krypton-style
incremental engine lives in :mod:`engine.inference.incremental` (engine B).

SQL reaches this package through ``engine/dialect/inference.py`` (statements),
``engine/executors/inference.py`` (their executors) and the planner rules in
``engine/planner/`` (which lift model calls out of queries into inference scans).
"""
