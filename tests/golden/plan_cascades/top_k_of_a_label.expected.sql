SELECT
  frame_id,
  (
    SELECT
      __c.score
    FROM __mallard_cascade_1 AS __c
    WHERE
      __c.frame_id = traffic.frame_id
  ) AS score
FROM traffic
WHERE
  traffic.frame_id IN (
    SELECT
      frame_id
    FROM __mallard_cascade_1
  )
ORDER BY
  (
    SELECT
      __c.score
    FROM __mallard_cascade_1 AS __c
    WHERE
      __c.frame_id = traffic.frame_id
  ) DESC
LIMIT 10
-- cascade __mallard_cascade_1: mobilenet ON traffic (frame) WHERE label = 'alp' TOP 10 BY score ACCURACY 0.95
-- accuracy 0.95
