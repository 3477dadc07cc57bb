-- Weak supervision: labeling functions, gold labels, and every LABEL run with what it learned.

-- SQL labeling functions (CREATE LABELING FUNCTION); Python ones live in Python (udfs.labeling).
CREATE TABLE IF NOT EXISTS mallard.labeling_functions (
    name        VARCHAR PRIMARY KEY,      -- lower-case unless quoted
    table_name  VARCHAR NOT NULL,         -- the table it was written for (ON ...)
    kind        VARCHAR NOT NULL,         -- 'sql'
    definition  VARCHAR NOT NULL,         -- the expression, as DuckDB SQL; NULL means abstain
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Expert labels (ADD GOLD LABELS): one per row key of a table.
CREATE TABLE IF NOT EXISTS mallard.gold_labels (
    table_name  VARCHAR NOT NULL,
    key_column  VARCHAR NOT NULL,         -- the column of table_name that row_key refers to
    row_key     VARCHAR NOT NULL,         -- the key value, as text
    label       VARCHAR NOT NULL,         -- the class, as text
    added_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (table_name, row_key)
);

-- One row per LABEL statement: how a label table was made.
CREATE TABLE IF NOT EXISTS mallard.label_runs (
    run_id          BIGINT PRIMARY KEY,
    target_table    VARCHAR NOT NULL,     -- the label table written
    source_table    VARCHAR NOT NULL,     -- the table labeled
    key_column      VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,     -- 'label_model' or 'majority'
    classes         VARCHAR[] NOT NULL,   -- class i is classes[i + 1]; probs are in this order
    label_type      VARCHAR NOT NULL,     -- the type of the label column: VARCHAR or BIGINT
    seed            BIGINT NOT NULL,
    options         VARCHAR NOT NULL,     -- every option in force, as JSON
    n_rows          BIGINT NOT NULL,
    n_covered       BIGINT NOT NULL,      -- rows at least one labeling function voted on
    n_patterns      BIGINT NOT NULL,      -- distinct vote patterns (the label model's data)
    n_gold          BIGINT NOT NULL,      -- rows whose label came from a gold label
    iterations      INTEGER NOT NULL,     -- EM iterations (0 for majority)
    converged       BOOLEAN NOT NULL,
    class_balance   DOUBLE[] NOT NULL,    -- the model's class prior, in class order
    label_share     DOUBLE[] NOT NULL,    -- fraction of rows given each label, in class order
    apply_seconds   DOUBLE NOT NULL,      -- labeling functions over the table (one query)
    fit_seconds     DOUBLE NOT NULL,
    write_seconds   DOUBLE NOT NULL,
    total_seconds   DOUBLE NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One row per labeling function of a LABEL run: its definition then, and its analysis.
CREATE TABLE IF NOT EXISTS mallard.label_run_functions (
    run_id       BIGINT NOT NULL,
    position     INTEGER NOT NULL,        -- 0, 1, ... in USING order
    lf           VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,        -- 'sql' or 'python'
    definition   VARCHAR NOT NULL,
    polarity     VARCHAR[] NOT NULL,      -- the classes it voted for
    coverage     DOUBLE NOT NULL,         -- fraction of rows it voted on
    "overlaps"   DOUBLE NOT NULL,         -- fraction of rows it and another function voted on
    conflicts    DOUBLE NOT NULL,         -- fraction of rows where another function voted differently
    correct      BIGINT,                  -- against gold labels (NULL without any)
    incorrect    BIGINT,
    emp_acc      DOUBLE,
    learned_acc  DOUBLE,                  -- the label model's P(vote = truth | it voted)
    failures     BIGINT NOT NULL,         -- rows where it raised (fault-tolerant Python functions)
    PRIMARY KEY (run_id, position)
);
