SELECT
  frame_id
FROM traffic
WHERE
  traffic.frame_id IN (
    SELECT
      frame_id
    FROM __mallard_cascade_1
  )
-- cascade __mallard_cascade_1: mobilenet ON traffic (frame) WHERE label = 'alp' ACCURACY 0.95
-- accuracy 0.95
