SELECT
  (
    SELECT
      __mallard_call_1.prediction
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = traffic.frame_id
  ) AS "mobilenet(frame)",
  (
    SELECT
      __mallard_call_2.prediction
    FROM __mallard_call_2
    WHERE
      __mallard_call_2.frame_id = traffic.frame_id
  ).class_id AS class_id
FROM traffic
-- scan __mallard_call_1: mobilenet ON traffic (frame) OUTPUTS prediction
-- scan __mallard_call_2: resnet ON traffic (frame) OUTPUTS prediction
