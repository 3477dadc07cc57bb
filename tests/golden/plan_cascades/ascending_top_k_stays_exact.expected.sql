SELECT
  frame_id
FROM traffic
ORDER BY
  MOBILENET(frame).score ASC
LIMIT 10
-- accuracy 0.9
-- note inference_accuracy = 0.9 not applied: a cascade answers a WHERE condition <model>(frame).<label|class_id|score> <op> <constant>, and this query calls mobilenet elsewhere; exact inference
