SELECT
  MAX(value) AS peak,
  ARG_MAX(y, value) AS y
FROM __mallard_occlusion_1 AS heat
-- occlusion __mallard_occlusion_1: occlusion_map(mobilenet, (SELECT t.frame, t.height, t.width FROM traffic AS t WHERE t.frame_id = 3), patch => 16, stride => 4, target => 'street sign', method => 'naive')
