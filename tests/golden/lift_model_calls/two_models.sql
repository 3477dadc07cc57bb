SELECT mobilenet(frame), resnet(frame).class_id FROM traffic
