"""Prediction serving: models of the catalog answering predictions, offline and online.

Offline, ``SELECT * FROM predict(<model>, (<query>))`` runs a model over the rows of any
query, vectorized in Arrow batches at the batch size a search finds fastest
(:mod:`engine.serving.offline`).  Online, ``mallard serve <db file>`` answers HTTP/JSON
requests with Clipper's adaptive batching under a latency objective, a prediction cache,
versions that swap atomically, bounded queues that reject early, and a log of the served
traffic in DuckDB (:mod:`engine.serving.app` and the modules it names).

Modules, one idea each:

- :mod:`~engine.serving.model_inputs`: what a model takes (frames, encoded images, numeric columns);
- :mod:`~engine.serving.images`: PNG/JPEG decoding and the statistics logged for an image;
- :mod:`~engine.serving.predictor`: a model version loaded for prediction (offline and online);
- :mod:`~engine.serving.batch_size`: the search for the fastest batch size (offline);
- :mod:`~engine.serving.offline`: the ``predict(...)`` table function's computation;
- :mod:`~engine.serving.config`: the server's settings (``mallard serve`` options);
- :mod:`~engine.serving.batching`: per-model queues and the adaptive batch-size controller;
- :mod:`~engine.serving.cache`: the prediction cache, bounded in bytes;
- :mod:`~engine.serving.versions`: the versions served, their atomic swap and canary routing;
- :mod:`~engine.serving.traffic_log`: served requests appended to DuckDB tables;
- :mod:`~engine.serving.metrics`: Prometheus metrics;
- :mod:`~engine.serving.sql_endpoint`: statements run on the server's connection;
- :mod:`~engine.serving.app`: the Starlette application and its endpoints;
- :mod:`~engine.serving.server`: ``mallard serve`` (uvicorn);
- :mod:`~engine.serving.client`: a small HTTP client (``mallard --server URL``, tests);
- :mod:`~engine.serving.load`: the load generator of the benchmarks.

Importing this package imports nothing heavy: torch, Starlette and uvicorn load in the
modules that need them.
"""
