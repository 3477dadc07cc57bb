-- Mallard's catalog, cascades (issue 13): specialized models trained for one question about
-- one video (NoScope), with their lineage, and every query answered under an accuracy
-- contract (SET inference_accuracy) with how its cascade fared.

-- One row per specialized model: a tiny CNN answering "<reference model>(frame).<question>"
-- for the frames of one video, trained on frames the reference model labeled.
CREATE TABLE IF NOT EXISTS mallard.specialized_models (
    specialized_id       BIGINT PRIMARY KEY,
    model                VARCHAR NOT NULL,       -- the reference model
    model_version        INTEGER NOT NULL,       -- its version that labeled the sample
    video_key            VARCHAR NOT NULL,       -- the frames (as the result cache names them)
    frames_table         VARCHAR NOT NULL,
    question             VARCHAR NOT NULL,       -- e.g. label = 'street sign'
    architecture         VARCHAR NOT NULL,       -- tiny_cnn
    resolution           INTEGER NOT NULL,       -- pixels a side of the frames it reads
    mean                 DOUBLE[] NOT NULL,
    std                  DOUBLE[] NOT NULL,
    weights              BLOB NOT NULL,          -- safetensors bytes of the state dict
    training_frames      BIGINT[] NOT NULL,      -- the sample it was trained on (frame_ids) ...
    training_answers     BOOLEAN[] NOT NULL,     -- ... and the reference model's answers there
    calibration_frames   BIGINT[] NOT NULL,      -- the held-out sample its thresholds are set on ...
    calibration_answers  BOOLEAN[] NOT NULL,
    calibration_scores   DOUBLE[] NOT NULL,      -- ... and its P(yes) there
    seed                 INTEGER NOT NULL,       -- of the sample and of training
    training_seconds     DOUBLE NOT NULL,
    created_at           TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One row per query answered under a contract: the plan chosen and what each stage did.
CREATE TABLE IF NOT EXISTS mallard.cascades (
    cascade_id           BIGINT PRIMARY KEY,
    model                VARCHAR NOT NULL,
    model_version        INTEGER NOT NULL,
    frames_table         VARCHAR NOT NULL,
    question             VARCHAR NOT NULL,
    accuracy             DOUBLE NOT NULL,        -- the contract
    plan                 VARCHAR NOT NULL,       -- 'cascade' or 'exact'
    reason               VARCHAR,                -- why exact, or what the cascade reused
    specialized_id       BIGINT,
    reused               BOOLEAN NOT NULL,       -- the specialized model existed before this query
    frames               BIGINT NOT NULL,        -- frames the query covered
    sampled              BIGINT NOT NULL,        -- of which labeled by the reference model for training/calibration
    by_difference        BIGINT NOT NULL,        -- decided by the difference detector
    by_specialized       BIGINT NOT NULL,        -- decided by the specialized model
    by_reference         BIGINT NOT NULL,        -- sent to the reference model (the exact plan: all)
    selected             BIGINT NOT NULL,        -- frames in the answer
    low                  DOUBLE,                 -- thresholds on the specialized model's P(yes)
    high                 DOUBLE,
    calibration_precision DOUBLE,                -- achieved on the calibration sample ...
    calibration_recall   DOUBLE,
    precision_bound      DOUBLE,                 -- ... and their 95% lower confidence bounds
    recall_bound         DOUBLE,
    seconds              DOUBLE NOT NULL,
    breakdown            JSON,                   -- seconds per stage
    ran_at               TIMESTAMP NOT NULL DEFAULT current_timestamp
);
