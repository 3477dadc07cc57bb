"""The model catalog: CREATE [OR REPLACE] MODEL, DROP MODEL, SHOW MODELS, and the weights'
checks (strict keys and shapes, no unpickling), on the real ImageNet MobileNetV2 weights."""
from __future__ import annotations

import hashlib
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

import engine
from engine.dialect import parse_statements
from tests.conftest import data_file
from udfs.architectures import architecture, build

MOBILENET = "CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)"


def create_mobilenet(con, name: str = "mobilenet", replace: bool = False):
    sql = MOBILENET.replace("MODEL mobilenet", f"{'OR REPLACE ' if replace else ''}MODEL {name}")
    return con.execute(sql, [str(data_file("mobilenet_v2.pth")), str(data_file("imagenet_classes.txt"))])


def catalog_rows(con) -> tuple[int, int]:
    models = con.execute("SELECT count(*) FROM mallard.models").fetchone()[0]
    versions = con.execute("SELECT count(*) FROM mallard.model_versions").fetchone()[0]
    return models, versions


def reference_logits(weights: dict, frames: np.ndarray) -> np.ndarray:
    net = build("mobilenet_v2")
    net.load_state_dict(weights)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net(x).numpy()


@pytest.mark.parametrize("sql", [
    "CREATE MODEL mobilenet FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', labels = 'data/imagenet_classes.txt')",
    "CREATE OR REPLACE MODEL m FROM 'w.safetensors' WITH (architecture = 'plain_cnn', num_classes = 3, input_size = [32, 32])",
    "CREATE MODEL m FROM 'w.pth'",
    "DROP MODEL m",
    "DROP MODEL IF EXISTS m",
    "SHOW MODELS",
    "EXPLAIN SELECT MOBILENET(frame).label FROM traffic WHERE frame_id < 10",
    "EXPLAIN ANALYZE SELECT FEATURES(mobilenet, frame) FROM traffic",
])
def test_statements_round_trip(sql):
    assert parse_statements(sql)[0].sql("mallard") == sql


def test_create_model_stores_the_weights_as_safetensors(con):
    cursor = create_mobilenet(con)
    assert cursor.message == "CREATE MODEL: mobilenet version 1 (mobilenet_v2, 1000 classes)"
    row = con.execute(
        "SELECT architecture, num_classes, input_height, mean, std, len(labels), labels[1], weights, weights_sha256,"
        " parent_version, created_by FROM mallard.model_versions WHERE model = 'mobilenet'"
    ).fetchone()
    arch, classes, height, mean, std, n_labels, first, weights, sha, parent, created_by = row
    assert (arch, classes, height, n_labels, first) == ("mobilenet_v2", 1000, None, 1000, "tench, Tinca tinca")
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])
    assert sha == hashlib.sha256(weights).hexdigest() and parent is None and created_by == "CREATE MODEL"
    original = torch.load(data_file("mobilenet_v2.pth"), weights_only=True)
    stored = load_safetensors(weights)
    assert stored.keys() == original.keys()
    assert all(torch.equal(stored[k], original[k]) for k in original)
    shown = con.execute("SHOW MODELS").fetch_df()
    assert shown.loc[0, "name"] == "mobilenet" and shown.loc[0, "version"] == 1
    assert shown.loc[0, "input_size"] == "any" and shown.loc[0, "parameters"] == 3_504_872


def test_model_works_after_the_file_is_deleted_and_the_database_reopened(tmp_path, db_path):
    weights = tmp_path / "weights.pth"
    shutil.copy(data_file("mobilenet_v2.pth"), weights)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    with engine.connect(db_path, autocommit=True, progress="off") as con:
        con.execute("CREATE MODEL mobilenet FROM ? WITH (architecture = 'mobilenet_v2', labels = ?)",
                    [str(weights), str(data_file("imagenet_classes.txt"))])
        engine.frames_from_numpy(con, "noise", frames)
    weights.unlink()
    with engine.connect(db_path, autocommit=True, progress="off") as con:
        rows = con.execute("SELECT logits(mobilenet, frame) FROM noise ORDER BY frame_id").fetchall()
    expected = reference_logits(torch.load(data_file("mobilenet_v2.pth"), weights_only=True), frames)
    np.testing.assert_allclose(np.array([r[0] for r in rows]), expected, atol=1e-4)


def test_create_or_replace_adds_a_version_and_keeps_the_old_ones(con):
    create_mobilenet(con)
    with pytest.raises(engine.ProgrammingError, match="model mobilenet already exists; use CREATE OR REPLACE"):
        create_mobilenet(con)
    assert catalog_rows(con) == (1, 1)
    assert create_mobilenet(con, replace=True).message.startswith("CREATE MODEL: mobilenet version 2")
    rows = con.execute("SELECT version, parent_version FROM mallard.model_versions ORDER BY version").fetchall()
    assert rows == [(1, None), (2, 1)]
    assert con.execute("SELECT current_version FROM mallard.models").fetchone() == (2,)
    assert con.execute("SHOW MODELS").fetch_df().loc[0, "versions"] == 2


def test_unknown_architecture_lists_the_registered_ones(con):
    with pytest.raises(engine.ProgrammingError) as error:
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'vgg16')", [str(data_file("mobilenet_v2.pth"))])
    assert "unknown architecture 'vgg16'" in str(error.value)
    assert "mobilenet_v2" in str(error.value) and "resnet_small" in str(error.value)
    assert catalog_rows(con) == (0, 0)


def test_weights_of_another_architecture_name_the_first_mismatching_key(con):
    with pytest.raises(engine.DataError, match=r"key conv1\.weight \(shape \(32, 3, 7, 7\)\) is missing"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'resnet_small')", [str(data_file("mobilenet_v2.pth"))])
    assert catalog_rows(con) == (0, 0)


def test_weights_of_another_shape_report_both_shapes(con):
    with pytest.raises(engine.DataError) as error:
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'mobilenet_v2', num_classes = 10)",
                    [str(data_file("mobilenet_v2.pth"))])
    assert str(error.value) == ("weights do not match architecture mobilenet_v2: key classifier.1.weight has shape "
                                "(1000, 1280) in the weights file, expected (10, 1280)")
    assert catalog_rows(con) == (0, 0)


def test_extra_keys_in_the_weights_are_refused(con, tmp_path):
    state = build("plain_cnn", num_classes=3).state_dict()
    state["extra.weight"] = torch.zeros(2, 2)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(engine.DataError, match=r"has key extra\.weight \(shape \(2, 2\)\), which the architecture"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'plain_cnn', num_classes = 3)",
                    [str(tmp_path / "w.safetensors")])


class Payload:
    """Unpickling this would run code; weights files must never be unpickled."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_files_that_need_unpickling_are_refused(con, tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"weight": Payload()}, path)
    with pytest.raises(engine.DataError, match="expected a PyTorch state dict"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'plain_cnn')", [str(path)])
    assert "unpickled!" not in capsys.readouterr().out
    with pytest.raises(engine.DataError, match="expected a PyTorch state dict"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'plain_cnn')", [str(data_file("imagenet_classes.txt"))])
    with pytest.raises(engine.DataError, match="weights file not found"):
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'plain_cnn')", [str(tmp_path / "missing.pth")])
    assert catalog_rows(con) == (0, 0)


def test_safetensors_weights_with_labels_list_and_fixed_input(con, tmp_path):
    torch.manual_seed(1)
    net = build("plain_cnn", num_classes=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "pets.safetensors"))
    con.execute("CREATE MODEL pets FROM ? WITH (architecture = 'plain_cnn', labels = ['cat', 'dog', 'owl'],"
                " input_size = [16, 24], mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25], description = 'toy')",
                [str(tmp_path / "pets.safetensors")])
    shown = con.execute("SHOW MODELS").fetch_df().loc[0]
    assert (shown["input_size"], shown["labels"], shown["description"]) == ("16x24", 3, "toy")


@pytest.mark.parametrize("options, message", [
    ("architecture = 'mobilenet_v2', num_classes = 10", "num_classes = 10 but the labels give 1000 class names"),
    ("architecture = 'mobilenet_v2', colour = 'red'", "unknown CREATE MODEL option 'colour'"),
    ("architecture = 'mobilenet_v2', mean = [0.5, 0.5]", "option mean: expected three numbers"),
    ("architecture = 'mobilenet_v2', std = [1, 0, 1]", "option std: expected three positive numbers"),
    ("architecture = 'mobilenet_v2', input_size = [0, 3]", "option input_size: expected a size or"),
    ("labels = 'x.txt'", "needs WITH (architecture = '<name>')"),
])
def test_bad_options_are_refused_and_nothing_is_written(con, options, message):
    labels = "" if "labels" in options else f", labels = '{data_file('imagenet_classes.txt')}'"
    with pytest.raises((engine.DataError, engine.ProgrammingError), match=re.escape(message)):
        con.execute(f"CREATE MODEL m FROM '{data_file('mobilenet_v2.pth')}' WITH ({options}{labels})")
    assert catalog_rows(con) == (0, 0)


@pytest.mark.parametrize("name, message", [
    ("lower", "SQL already has a function of that name"),
    ("features", "reserved"),
    ("frame_mean", "SQL already has a function of that name"),
])
def test_model_names_that_would_shadow_functions_are_refused(con, name, message):
    with pytest.raises(engine.ProgrammingError, match=message):
        con.execute(f"CREATE MODEL {name} FROM ? WITH (architecture = 'mobilenet_v2')", [str(data_file("mobilenet_v2.pth"))])


def test_drop_model_deletes_every_version(con):
    create_mobilenet(con)
    create_mobilenet(con, replace=True)
    assert con.execute("DROP MODEL mobilenet").message == "DROP MODEL: mobilenet (2 versions)"
    assert catalog_rows(con) == (0, 0)
    with pytest.raises(engine.ProgrammingError, match="model mobilenet does not exist"):
        con.execute("DROP MODEL mobilenet")
    assert con.execute("DROP MODEL IF EXISTS mobilenet").message == "DROP MODEL: no model mobilenet"
    with pytest.raises(engine.ProgrammingError, match="unknown model 'mobilenet'"):
        con.execute("SELECT features(mobilenet, frame) FROM t")


def test_a_user_architecture_registered_with_the_decorator(con, tmp_path):
    @architecture("tiny_grey", input_size=(8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=2, replace=True)
    class TinyGrey(nn.Module):
        """Mean brightness -> two logits (dark, bright)."""

        def __init__(self, num_classes: int = 2) -> None:
            super().__init__()
            self.classifier = nn.Linear(1, num_classes)

        def forward_features(self, x):
            return x.mean(dim=(1, 2, 3)).unsqueeze(1)

        def forward(self, x):
            return self.classifier(self.forward_features(x))

    weights = {"classifier.weight": torch.tensor([[-10.0], [10.0]]), "classifier.bias": torch.tensor([5.0, -5.0])}
    save_file(weights, str(tmp_path / "grey.safetensors"))
    con.execute("CREATE MODEL grey FROM ? WITH (architecture = 'tiny_grey', labels = ['dark', 'bright'])",
                [str(tmp_path / "grey.safetensors")])
    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 40, 200, 255)])
    engine.frames_from_numpy(con, "greys", frames)
    labels = con.execute("SELECT grey(frame).label FROM greys ORDER BY frame_id").fetchall()
    assert [r[0] for r in labels] == ["dark", "dark", "bright", "bright"]
    assert con.execute("SHOW MODELS").fetch_df().loc[0, "input_size"] == "8x8"
