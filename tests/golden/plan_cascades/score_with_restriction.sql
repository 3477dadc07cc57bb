SELECT t.frame_id, t.height FROM traffic AS t WHERE t.frame_id < 500 AND 0.4 < mobilenet(t.frame)['score'] AND t.width > 10
-- accuracy 0.9
