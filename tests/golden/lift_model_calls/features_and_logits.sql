SELECT t.frame_id, features(mobilenet, t.frame) AS f, logits('mobilenet', t.frame) FROM traffic AS t
