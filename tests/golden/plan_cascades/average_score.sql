SELECT avg(mobilenet(frame).score) AS mean_score FROM traffic
-- accuracy 0.9
