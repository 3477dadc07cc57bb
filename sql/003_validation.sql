-- Data validation (issue 4): statistics sets made of mergeable per-span partial aggregates,
-- data schemas with every version kept, and the record of validation runs.

-- A named statistics set: the merge of its spans (COMPUTE STATISTICS ... APPEND TO adds one).
CREATE TABLE IF NOT EXISTS mallard.statistics (
    name            VARCHAR PRIMARY KEY,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    sketch_accuracy DOUBLE  NOT NULL,   -- relative accuracy of the numeric sketches (DDSketch's alpha)
    max_values      INTEGER NOT NULL    -- value counts kept per categorical column and span
);

-- One row per span (a table scanned once) of a statistics set.
CREATE TABLE IF NOT EXISTS mallard.statistics_spans (
    statistics     VARCHAR NOT NULL,
    span           INTEGER NOT NULL,    -- 1, 2, ... in the order they were added
    source         VARCHAR NOT NULL,    -- the table or view scanned
    row_count      BIGINT  NOT NULL,
    duplicate_rows BIGINT  NOT NULL,    -- rows equal to an earlier row of the same span
    computed_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    seconds        DOUBLE,
    PRIMARY KEY (statistics, span)
);

-- Partial aggregates of one column in one span; every field merges across spans:
-- counts add, means and M2 combine (Chan et al.), min/max take the extreme, sketch bins add
-- their counts key by key, KMV hash lists keep the smallest hashes of the union.
CREATE TABLE IF NOT EXISTS mallard.statistics_columns (
    statistics      VARCHAR NOT NULL,
    span            INTEGER NOT NULL,
    column_name     VARCHAR NOT NULL,
    position        INTEGER NOT NULL,   -- 0-based position in the scanned table
    sql_type        VARCHAR NOT NULL,   -- DuckDB type, e.g. BIGINT
    kind            VARCHAR NOT NULL,   -- INT, FLOAT, STRING, BOOLEAN, TIMESTAMP or BYTES
    present         BIGINT  NOT NULL,   -- non-NULL values
    -- numbers (INT, FLOAT, BOOLEAN as 0/1, TIMESTAMP as epoch seconds)
    finite          BIGINT,             -- values that are neither NaN nor infinite
    nan_count       BIGINT,
    inf_count       BIGINT,
    zeros           BIGINT,
    mean            DOUBLE,             -- of the finite values
    m2              DOUBLE,             -- sum of squared deviations from mean
    min             DOUBLE,
    max             DOUBLE,
    bins            MAP(INTEGER, BIGINT), -- the finite values' sketch: bin key -> count (see the macros)
    -- categories (STRING, BOOLEAN)
    distinct_count  BIGINT,             -- exact within the span
    length_sum      BIGINT,             -- total characters (STRING)
    unstored_count  BIGINT,             -- values whose count fell beyond max_values
    distinct_hashes UBIGINT[],          -- the smallest 1024 hashes of the distinct values (KMV sketch)
    PRIMARY KEY (statistics, span, column_name)
);

-- Value counts (kind 'value', the most frequent max_values) and value-shape counts (kind
-- 'pattern': digits as 9, capitals as A, small letters as a) of categorical columns per span.
CREATE TABLE IF NOT EXISTS mallard.statistics_values (
    statistics  VARCHAR NOT NULL,
    span        INTEGER NOT NULL,
    column_name VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    value       VARCHAR NOT NULL,
    count       BIGINT  NOT NULL
);

-- Data schemas: one row per version; a schema is never edited in place.
CREATE TABLE IF NOT EXISTS mallard.schemas (
    name       VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    statement  VARCHAR NOT NULL,        -- the statement that made this version
    source     VARCHAR,                 -- the statistics or table it was inferred or updated from
    body       VARCHAR NOT NULL,        -- the schema as JSON (README: "Schema JSON")
    PRIMARY KEY (name, version)
);

-- Every VALIDATE run and the anomalies it found.
CREATE TABLE IF NOT EXISTS mallard.validation_runs (
    run_id         BIGINT PRIMARY KEY,
    schema_name    VARCHAR NOT NULL,
    schema_version INTEGER NOT NULL,
    target         VARCHAR NOT NULL,    -- the table or statistics validated
    environment    VARCHAR,
    previous       VARCHAR,
    training       VARCHAR,
    row_count      BIGINT NOT NULL,
    anomaly_count  BIGINT NOT NULL,
    validated_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    seconds        DOUBLE
);

CREATE TABLE IF NOT EXISTS mallard.anomalies (
    run_id      BIGINT  NOT NULL,
    ordinal     BIGINT  NOT NULL,       -- the order VALIDATE returned it in
    column_name VARCHAR,                -- NULL for dataset-level anomalies
    anomaly     VARCHAR NOT NULL,       -- TFDV's kind (e.g. SCHEMA_MISSING_COLUMN) or MALLARD_*
    severity    VARCHAR NOT NULL,       -- ERROR or WARNING
    description VARCHAR NOT NULL,
    measured    DOUBLE,
    threshold   DOUBLE,
    source      VARCHAR NOT NULL        -- TFDV (a kind TFDV reports) or MALLARD (one TFDV misses)
);
