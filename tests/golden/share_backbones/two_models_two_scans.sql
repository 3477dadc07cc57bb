SELECT
  (
    SELECT
      __mallard_call_1.logits
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ) AS l,
  (
    SELECT
      __mallard_call_2.logits
    FROM __mallard_call_2
    WHERE
      __mallard_call_2.frame_id = traffic.frame_id
  ) AS r
FROM traffic
WHERE
  frame_id = 3
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS logits WHERE frame_id = 3
-- scan __mallard_call_2: resnet ON traffic (frame) OUTPUTS logits WHERE frame_id = 3
