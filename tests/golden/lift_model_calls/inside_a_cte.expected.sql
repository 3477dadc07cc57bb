WITH scored AS (
  SELECT
    frame_id,
    (
      SELECT
        __mallard_call_1.prediction
      FROM __mallard_call_1
      WHERE
        __mallard_call_1.frame_id = traffic.frame_id
    ).score AS s
  FROM traffic
)
SELECT
  *
FROM scored
WHERE
  s > 0.5
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
