-- Mallard's catalog, inference (issue 5): models and their versions, the result cache of
-- model functions over frames tables (EVA), and the persisted state of the incremental
-- engine (Krypton's materialized base-frame activations).

-- One row per model name; the version that SQL calls of the model use is current_version.
CREATE TABLE IF NOT EXISTS mallard.models (
    name             VARCHAR PRIMARY KEY,    -- lower case; callable as name(frame) in SQL
    current_version  INTEGER NOT NULL,
    description      VARCHAR,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Every version ever made of a model (CREATE OR REPLACE MODEL adds one; later: TRAIN).
-- The weights are the whole state dict as safetensors bytes: the database alone serves it.
CREATE TABLE IF NOT EXISTS mallard.model_versions (
    model           VARCHAR NOT NULL,
    version         INTEGER NOT NULL,       -- 1, 2, ... per model
    architecture    VARCHAR NOT NULL,       -- a name registered with @architecture (udfs.architectures)
    num_classes     INTEGER NOT NULL,
    input_height    INTEGER,                -- NULL: any frame size (fully convolutional)
    input_width     INTEGER,
    mean            DOUBLE[] NOT NULL,      -- per RGB channel, of pixels scaled to [0, 1]
    std             DOUBLE[] NOT NULL,
    labels          VARCHAR[],              -- class names by class id; NULL: 'class_<id>'
    weights         BLOB NOT NULL,          -- safetensors bytes of the state dict
    weights_sha256  VARCHAR NOT NULL,
    weights_bytes   BIGINT NOT NULL,
    parameters      BIGINT NOT NULL,        -- number of parameters (not buffers)
    source          VARCHAR,                -- the file the weights came from (no longer needed)
    parent_version  INTEGER,                -- lineage: the version this one replaced or was trained from
    created_by      VARCHAR NOT NULL,       -- 'CREATE MODEL'; later issues: 'TRAIN', ...
    options         JSON,                   -- the statement's WITH options as given
    metrics         JSON,                   -- evaluation metrics (training/serving fill it in)
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, version)
);

-- The result cache: one row per (model version, video, mode, frame).  video_key identifies
-- the frames (source SHA-256, frames table, stored size, sampling); mode_key is 'full', or
-- the mode with its IncrementalConfig for 'exact' and 'approximate'.
CREATE TABLE IF NOT EXISTS mallard.inference_cache (
    model       VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    video_key   VARCHAR NOT NULL,
    table_name  VARCHAR NOT NULL,       -- the frames table (catalog_name), to invalidate by table
    mode_key    VARCHAR NOT NULL,
    frame_id    BIGINT  NOT NULL,
    class_id    INTEGER NOT NULL,       -- top-1 class
    score       DOUBLE  NOT NULL,       -- its softmax probability
    logits      FLOAT[] NOT NULL,       -- pre-softmax class scores
    features    FLOAT[] NOT NULL,       -- the penultimate vector (after global pooling)
    kind        VARCHAR NOT NULL,       -- how it was computed: 'full' | 'incremental' | 'skipped'
    macs        BIGINT,                 -- multiply-adds spent on it
    macs_full   BIGINT,                 -- multiply-adds of full inference on it
    computed_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- The incremental engine's state after the last scan of a (model version, video, mode):
-- base frame and materialized activations (safetensors bytes), so a later query continues.
CREATE TABLE IF NOT EXISTS mallard.inference_state (
    model          VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    video_key      VARCHAR NOT NULL,
    table_name     VARCHAR NOT NULL,
    mode_key       VARCHAR NOT NULL,
    config         JSON NOT NULL,
    state          BLOB NOT NULL,
    last_frame_id  BIGINT,
    updated_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, version, video_key, mode_key)
);
