SELECT * FROM predict(mobilenet, (SELECT frame_id, frame, height, width FROM traffic WHERE frame_id < 10), batch_size => 8)
