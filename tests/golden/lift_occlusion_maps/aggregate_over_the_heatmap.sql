SELECT max(value) AS peak, arg_max(y, value) AS y FROM occlusion_map('mobilenet', (SELECT t.frame AS f FROM traffic AS t WHERE t.frame_id = 3), target => 'street sign', method => 'naive') AS heat
