SELECT logits(mobilenet, frame) AS l, logits(resnet, frame) AS r FROM traffic WHERE frame_id = 3
