SELECT * FROM occlusion_map(mobilenet, (SELECT frame FROM traffic WHERE frame_id = 10), patch => 16, stride => 4)
