"""Weak supervision inside the database (Snorkel's ideas, computed where the data lives).

- :mod:`~engine.labeling.functions`: labeling functions (SQL in the catalog, Python by decorator);
- :mod:`~engine.labeling.vote_plan` and :mod:`~engine.labeling.matrix`: the label matrix, built by one
  DuckDB query and read as distinct vote patterns with counts;
- :mod:`~engine.labeling.dawid_skene` and :mod:`~engine.labeling.majority`: label models;
- :mod:`~engine.labeling.analysis`: LF analysis; :mod:`~engine.labeling.gold`: expert labels;
- :mod:`~engine.labeling.label`: the LABEL statement; :mod:`~engine.labeling.runs`: its record;
- :mod:`~engine.labeling.synthetic`: label matrices with known truth.
"""
