SELECT p.predicted_label, count(*) AS n FROM predict('resnet', traffic, version => 2) AS p GROUP BY 1
