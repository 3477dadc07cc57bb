SELECT mobilenet(frame)['label'], count(*) AS frames FROM traffic GROUP BY 1 ORDER BY 2 DESC
