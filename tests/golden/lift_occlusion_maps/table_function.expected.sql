SELECT
  *
FROM __mallard_occlusion_1 AS occlusion_map
-- occlusion __mallard_occlusion_1: occlusion_map(mobilenet, (SELECT frame, height, width FROM traffic WHERE frame_id = 10), patch => 16, stride => 4)
