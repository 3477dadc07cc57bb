"""Training options: every option checked, lists expand into a grid, bad input is a clear error."""
from __future__ import annotations

import pytest

import engine
from engine.training.options import GRID_OPTIONS, OPTIONS, parse_memory, parse_options


def test_defaults_and_one_configuration():
    options = parse_options({"architecture": "mlp"})
    (config,) = options.configurations
    assert (config.epochs, config.lr, config.batch_size, config.optimizer, config.seed) == (5, 0.01, 64, "sgd", 0)
    assert options.label == "label" and options.holdout == 0.2 and options.device == "cpu"
    assert not options.is_grid and options.worker_count(cores=16) == 1


def test_lists_expand_into_every_combination_in_order():
    options = parse_options({"architecture": "mlp", "lr": [0.1, 0.01], "batch_size": [32, 64], "optimizer": ["sgd", "adam"]})
    combos = [(c.lr, c.batch_size, c.optimizer) for c in options.configurations]
    assert combos == [(lr, bs, opt) for lr in (0.1, 0.01) for bs in (32, 64) for opt in ("sgd", "adam")]
    assert [c.index for c in options.configurations] == list(range(8))
    assert options.worker_count(cores=2) == 2 and options.worker_count(cores=64) == 8
    assert parse_options({"architecture": "mlp", "lr": [0.1, 0.2], "workers": 1}).worker_count(cores=8) == 1


def test_option_names_are_case_insensitive_and_kept_as_given():
    options = parse_options({"ARCHITECTURE": "MLP", "Epochs": 2})
    assert options.configurations[0].architecture == "mlp" and options.configurations[0].epochs == 2
    assert options.given == {"architecture": "MLP", "epochs": 2}


@pytest.mark.parametrize("raw, message", [
    ({"architecture": "mlp", "learning_rate": [0.1, 0.2]}, "unknown training option 'learning_rate'"),
    ({"epochs": 3}, "needs WITH \\(architecture"),
])
def test_programming_errors(raw, message):
    with pytest.raises(engine.ProgrammingError, match=message):
        parse_options(raw)


@pytest.mark.parametrize("raw, message", [
    ({"lr": 0}, "option lr: expected a number above 0, found 0"),
    ({"lr": [0.1, "fast"]}, "option lr: expected a number above 0, found 'fast'"),
    ({"lr": []}, "expected a value or a non-empty list"),
    ({"lr": [0.1, 0.1]}, "repeats a value"),
    ({"epochs": 2.5}, "option epochs: expected a positive whole number, found 2.5"),
    ({"batch_size": True}, "option batch_size: expected a positive whole number, found True"),
    ({"optimizer": "rmsprop"}, "expected one of 'sgd', 'adam', found 'rmsprop'"),
    ({"momentum": 1.0}, "option momentum: expected a number at least 0 and below 1"),
    ({"holdout": 1}, "option holdout: expected a number at least 0 and below 1, found 1"),
    ({"label": ["a", "b"]}, "option label: expected a column name"),
    ({"classes": ["a"]}, "at least two distinct classes"),
    ({"classes": ["a", 1]}, "class names \\(strings\\) or class ids"),
    ({"hidden": [64, 0]}, "positive layer widths"),
    ({"device_memory": "lots"}, "expected a size such as '64MB'"),
    ({"device_memory": 99999999999999999999999}, "expected a size of at most 1024TB"),
    ({"device_memory": "2048TB"}, "expected a size of at most 1024TB"),
    ({"device": "tpu"}, "expected 'cpu', 'cuda' or 'cuda:<n>', found 'tpu'"),
    ({"successive_halving": 1}, "reduction factor of at least 2"),
    ({"successive_halving": True}, "successive_halving needs a grid"),
    ({"lr": [0.1, 0.2], "epochs": [1, 2], "successive_halving": True}, "one epochs value"),
    ({"micro_batches": 8, "batch_size": 4}, "micro_batches = 8 is more than batch_size = 4"),
    ({"pipeline_stages": 2, "device_memory": "1MB"}, "cannot be combined"),
    ({"workers": 2, "device_memory": "1MB"}, "workers > 1 cannot be combined"),
    ({"lr": [0.1, 0.2], "holdout": 0}, "holdout must be above 0"),
])
def test_data_errors(raw, message):
    with pytest.raises(engine.DataError, match=message):
        parse_options({"architecture": "mlp", **raw})


def test_memory_sizes():
    assert parse_memory("64MB") == parse_memory("64 MiB") == 64 << 20
    assert parse_memory("512kb") == 512 << 10 and parse_memory("2G") == 2 << 30 and parse_memory(1000) == 1000


def test_every_option_is_documented():
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "training.md"
    text = doc.read_text()
    missing = [name for name in OPTIONS if f"`{name}`" not in text]
    assert not missing, f"options missing from docs/training.md: {missing}"
    assert set(GRID_OPTIONS) <= set(OPTIONS)


def test_importing_the_package_and_parsing_options_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, engine.training; engine.training.parse_options({'architecture': 'mlp'}); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
