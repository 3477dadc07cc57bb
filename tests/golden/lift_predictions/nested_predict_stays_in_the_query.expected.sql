CREATE TABLE scored AS
SELECT
  *
FROM __mallard_predict_1 AS predict
-- predict __mallard_predict_1: predict(mobilenet, (SELECT frame_id, frame, height, width, predicted_label AS first_label FROM PREDICT(resnet, (SELECT * FROM traffic))))
