SELECT frame_id FROM traffic WHERE mobilenet(frame).label = 'street sign' ORDER BY mobilenet(frame).score DESC
