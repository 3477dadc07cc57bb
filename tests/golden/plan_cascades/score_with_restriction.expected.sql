SELECT
  t.frame_id,
  t.height
FROM traffic AS t
WHERE
  t.frame_id < 500
  AND t.frame_id IN (
    SELECT
      frame_id
    FROM __mallard_cascade_1
  )
  AND t.width > 10
-- cascade __mallard_cascade_1: mobilenet ON traffic AS t (frame) WHERE score > 0.4 ACCURACY 0.9 RESTRICT frame_id < 500 AND width > 10
-- accuracy 0.9
