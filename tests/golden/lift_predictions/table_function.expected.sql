SELECT
  *
FROM __mallard_predict_1 AS predict
-- predict __mallard_predict_1: predict(mobilenet, (SELECT frame_id, frame, height, width FROM traffic WHERE frame_id < 10), batch_size => 8)
