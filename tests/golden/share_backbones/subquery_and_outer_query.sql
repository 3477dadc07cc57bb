SELECT
  frame_id,
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).label AS label
FROM traffic
WHERE
  frame_id < 20
  AND (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ).score > (
    SELECT
      AVG(
        (
          SELECT
            __mallard_call_2.prediction
          FROM __mallard_call_2
          WHERE
            __mallard_call_2.frame_id = traffic.frame_id
        ).score
      ) AS "avg(mobilenet(frame).score)"
    FROM traffic
    WHERE
      frame_id BETWEEN 10 AND 30
  )
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction WHERE frame_id < 20
-- scan __mallard_call_2: mobilenet ON traffic (frame) OUTPUTS prediction WHERE frame_id BETWEEN 10 AND 30
