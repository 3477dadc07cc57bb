-- Mallard's catalog, training (issue 11): how every trained model version was made, so a
-- version can be traced to the query and data it read, its options and seed, the LABEL run
-- whose labels it learned from, and its metrics per epoch.

-- One row per training statement (CREATE MODEL ... AS <query>): the data and the run.
CREATE TABLE IF NOT EXISTS mallard.training_runs (
    run_id          BIGINT PRIMARY KEY,
    model           VARCHAR NOT NULL,
    query           VARCHAR NOT NULL,       -- the training query as written
    data_rows       BIGINT NOT NULL,        -- rows read that had a label (training + held out)
    data_hash       VARCHAR NOT NULL,       -- order-independent hash of the columns read (16 hex digits)
    train_rows      BIGINT NOT NULL,
    holdout_rows    BIGINT NOT NULL,
    dropped_rows    BIGINT NOT NULL,        -- rows without a label (or probabilities), not used
    input_kind      VARCHAR NOT NULL,       -- 'image' or 'numeric'
    inputs          VARCHAR[] NOT NULL,     -- the input columns
    input_shape     INTEGER[] NOT NULL,     -- [height, width, 3] or [features]
    label_column    VARCHAR,
    options         JSON NOT NULL,          -- the WITH options as written
    label_run_id    BIGINT,                 -- the LABEL run (mallard.label_runs) whose table the query read
    parent_model    VARCHAR,                -- from_model: the model fine-tuned from
    parent_version  INTEGER,
    configurations  INTEGER NOT NULL,       -- size of the grid
    best_version    INTEGER NOT NULL,       -- the version made current
    strategy        VARCHAR NOT NULL,       -- 'plain', 'model hopping', 'data parallel', 'pipeline', 'spilling'
    schedule        JSON,                   -- what the strategy measured (hops, bytes moved, bubble, peak resident bytes)
    wall_seconds    DOUBLE NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One row per trained model version: its configuration of the grid and what it cost.
CREATE TABLE IF NOT EXISTS mallard.model_training (
    model                 VARCHAR NOT NULL,
    version               INTEGER NOT NULL,
    run_id                BIGINT NOT NULL,
    configuration         JSON NOT NULL,          -- this version's hyperparameters
    architecture_options  JSON NOT NULL,          -- what rebuilds the network (mlp: in_features, hidden)
    seed                  BIGINT NOT NULL,
    epochs_run            INTEGER NOT NULL,
    stopped_early         BOOLEAN NOT NULL,       -- successive halving stopped it
    best                  BOOLEAN NOT NULL,       -- the grid's best (made current)
    train_seconds         DOUBLE NOT NULL,
    PRIMARY KEY (model, version)
);

-- Metrics per epoch of every trained version.
CREATE TABLE IF NOT EXISTS mallard.training_history (
    model         VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    epoch         INTEGER NOT NULL,       -- 1, 2, ...
    train_loss    DOUBLE NOT NULL,
    val_loss      DOUBLE,                 -- NULL without held-out rows
    val_accuracy  DOUBLE,
    train_rows    BIGINT NOT NULL,
    seconds       DOUBLE NOT NULL,
    PRIMARY KEY (model, version, epoch)
);

-- Every model version with where it came from (trained versions carry their training).
CREATE OR REPLACE VIEW mallard.model_lineage AS
SELECT v.model, v.version, v.version = m.current_version AS is_current, v.created_by, v.architecture,
       v.parent_version, r.parent_model, r.query, r.data_rows, r.data_hash, r.options, t.configuration, t.seed,
       r.label_run_id, v.metrics, t.epochs_run, t.stopped_early, t.train_seconds, r.wall_seconds, r.strategy,
       r.run_id, v.source, v.created_at
FROM mallard.model_versions v
JOIN mallard.models m ON m.name = v.model
LEFT JOIN mallard.model_training t ON t.model = v.model AND t.version = v.version
LEFT JOIN mallard.training_runs r ON r.run_id = t.run_id;
