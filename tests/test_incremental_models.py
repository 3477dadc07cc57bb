"""Models brought in by users: a third-party EfficientNet-Lite0 (TF-"same" padding as
nn.ZeroPad2d, batch-norm outside nn.Sequential pairs) registered with @architecture, created
from a weights file and run through SQL in every inference mode; batch-norm folding wherever
the traced graph shows a convolution feeding a batch-norm; clear errors for networks that lack
what model functions need."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file
from torch import nn

import engine
from engine.errors import DataError, ProgrammingError
from engine.inference.networks import forward_frames, inference_network
from tests.conftest import data_file, imagenet_mobilenet
from tests.efficientnet_lite import EfficientNetLite0, random_weights
from udfs.architectures import IMAGENET_MEAN, IMAGENET_STD, architecture, build


@architecture("efficientnet_lite0_test", replace=True)
class EfficientNetLite0ForMallard(EfficientNetLite0):
    """The third-party model as the docs show it: subclassed, so the state-dict keys stay the
    checkpoint's, with the pooled ``forward_features`` model functions expect (its own
    ``classifier`` is already a registered nn.Linear)."""

    def forward_features(self, x):  # type: ignore[no-untyped-def]
        return self.global_pool(super().forward_features(x)).flatten(1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.forward_features(x))


def frames(limit: int, size: int = 224) -> np.ndarray:
    con = engine.connect(progress="off", autocommit=True)
    try:
        con.execute("LOAD VIDEO ? INTO clip WITH (width = ?, height = ?, limit = ?)",
                    [str(data_file("vtest.avi")), size, size, limit])
        return engine.frames_to_numpy(con, "clip")
    finally:
        con.close()


def folding_error(network: nn.Module, pixels: np.ndarray) -> float:
    """Largest logit difference of the folded network against the network as it is, relative to
    the logits' scale."""
    plain, _ = forward_frames(network, pixels, IMAGENET_MEAN, IMAGENET_STD)
    folded, _ = forward_frames(inference_network(network), pixels, IMAGENET_MEAN, IMAGENET_STD)
    return float((plain - folded).abs().max() / plain.abs().max().clamp(min=1.0))


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0_test"])
def test_batch_norm_is_folded_wherever_a_convolution_feeds_it(name: str) -> None:
    network = imagenet_mobilenet() if name == "mobilenet_v2" else random_weights(build(name))
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in network.modules())
    folded = inference_network(network)
    assert (batch_norms, folded.folded, folded.traced) == ({"mobilenet_v2": 52}.get(name, 49), batch_norms, True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert folding_error(network, frames(4)) < 1e-5


def test_a_third_party_model_runs_in_every_mode_through_sql(tmp_path: Path) -> None:
    network = random_weights(EfficientNetLite0ForMallard(num_classes=10), seed=3)
    weights = tmp_path / "efficientnet_lite0.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    pixels = frames(6)
    expected, _ = forward_frames(network, pixels, IMAGENET_MEAN, IMAGENET_STD)
    with engine.connect(progress="off", autocommit=True) as con:
        con.execute("LOAD VIDEO ? INTO clip WITH (width = 224, height = 224, limit = 6)", [str(data_file("vtest.avi"))])
        con.execute("CREATE MODEL effnet FROM ? WITH (architecture = 'efficientnet_lite0_test', num_classes = 10)",
                    [str(weights)])
        con.execute("SET inference_cache = false")
        for mode in ("full", "exact", "approximate"):
            con.execute(f"SET inference_mode = '{mode}'")
            rows = con.execute("SELECT logits(effnet, frame) FROM clip ORDER BY frame_id").fetchall()
            np.testing.assert_allclose(np.array([r[0] for r in rows]), expected.numpy(), atol=1e-4)
            from engine.inference import scan_statistics

            scan = scan_statistics(con)[-1]
            reasons = {d.reason for d in scan.per_frame}
            assert scan.full == 6 and reasons == ({""} if mode == "full" else {"unsupported model"})


def test_networks_without_what_model_functions_need_are_refused(tmp_path: Path) -> None:
    class Unregistered(EfficientNetLite0ForMallard):
        @property
        def classifier(self):  # type: ignore[no-untyped-def]
            return lambda features: features[:, :10]          # not a submodule: torch.fx cannot trace it

    @architecture("lite0_without_classifier", replace=True)
    def without_classifier(num_classes: int = 1000) -> nn.Module:
        return Unregistered(num_classes)

    @architecture("lite0_unpooled", replace=True)
    def unpooled(num_classes: int = 1000) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())

    with pytest.raises(ProgrammingError, match="needs `classifier`, a submodule .* property returning one"):
        build("lite0_without_classifier")
    with pytest.raises(ProgrammingError, match="no forward_features"):
        build("lite0_unpooled")
    weights = tmp_path / "renamed.safetensors"
    state = {f"backbone.{k}": v.contiguous() for k, v in random_weights(EfficientNetLite0ForMallard(10)).state_dict().items()}
    save_file(state, str(weights))
    with engine.connect(progress="off", autocommit=True) as con:
        with pytest.raises(ProgrammingError, match="needs `classifier`"):
            con.execute("CREATE MODEL broken FROM ? WITH (architecture = 'lite0_without_classifier')", [str(weights)])
        with pytest.raises(DataError, match="key conv_stem.weight .* is missing from the weights file"):
            con.execute("CREATE MODEL renamed FROM ? WITH (architecture = 'efficientnet_lite0_test', num_classes = 10)",
                        [str(weights)])
        assert con.execute("SELECT count(*) FROM mallard.models").fetchone() == (0,)
