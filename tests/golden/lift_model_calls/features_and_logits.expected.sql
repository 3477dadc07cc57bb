SELECT
  t.frame_id,
  (
    SELECT
      __mallard_call_1.features
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = t.frame_id
  ) AS f,
  (
    SELECT
      __mallard_call_1.logits
    FROM __mallard_call_1
    WHERE
      __mallard_call_1.frame_id = t.frame_id
  ) AS "logits('mobilenet', t.frame)"
FROM traffic AS t
-- scan __mallard_call_1: mobilenet ON traffic AS t (frame) OUTPUTS features, logits
