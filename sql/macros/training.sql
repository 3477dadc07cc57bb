-- Training (issue 11): the metrics per epoch of a model's trained versions, as a table.
-- SELECT * FROM training_history('fashion');   (the statement form training_history(fashion)
-- is the same rows)
CREATE OR REPLACE TEMP MACRO training_history(model_name) AS TABLE
    SELECT version, epoch, train_loss, val_loss, val_accuracy, train_rows, seconds
    FROM mallard.training_history
    WHERE model = lower(model_name)
    ORDER BY version, epoch;
