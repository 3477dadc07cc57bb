WITH scored AS (SELECT frame_id, mobilenet(frame).score AS s FROM traffic) SELECT * FROM scored WHERE s > 0.5
