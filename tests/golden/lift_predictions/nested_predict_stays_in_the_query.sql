CREATE TABLE scored AS SELECT * FROM predict(mobilenet, (SELECT frame_id, frame, height, width, predicted_label AS first_label FROM predict(resnet, (SELECT * FROM traffic))))
