"""engine.serving.linear_chain: numeric networks that are a chain of linear layers run into kept
buffers give the network's own outputs, bit for bit, and anything else runs as it is."""
from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

import engine
from engine.serving.linear_chain import LinearChain
from engine.training.architectures import build_network


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x) + x)


def _same(chain: LinearChain, network: nn.Module, x: torch.Tensor) -> bool:
    with torch.inference_mode():
        return bool(torch.equal(chain(x), network(x)))


def test_trained_mlp_runs_as_a_chain_with_its_own_outputs_at_any_batch_size():
    torch.manual_seed(0)
    network = build_network("mlp", num_classes=3, in_features=6, hidden=(32, 16)).eval()
    chain = LinearChain.of(network)
    assert chain is not None
    for rows in (1, 700, 5000, 3, 5000):  # buffers grow, then are reused for smaller batches
        x = torch.randn(rows, 6)
        assert _same(chain, network, x)


def test_functional_relu_dropout_and_no_bias_are_chain_steps():
    network = nn.Sequential(nn.Linear(5, 8, bias=False), nn.Dropout(0.5), nn.ReLU(), nn.Identity(),
                            nn.Linear(8, 2)).eval()
    chain = LinearChain.of(network)
    assert chain is not None and _same(chain, network, torch.randn(33, 5))


def test_other_networks_are_not_chains():
    assert LinearChain.of(Residual()) is None
    assert LinearChain.of(nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())) is None
    assert LinearChain.of(nn.Sequential(nn.ReLU(), nn.Linear(3, 4))) is None  # would write the caller's input
    assert LinearChain.of(nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))) is None  # training mode
    assert LinearChain.of(nn.Sequential(nn.Identity())) is None  # no linear layer


def test_threads_keep_their_own_buffers():
    torch.manual_seed(1)
    network = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3)).eval()
    chain = LinearChain.of(network)
    assert chain is not None
    failures: list[int] = []

    def work(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(50):
            x = torch.randn(257, 4, generator=generator)
            with torch.inference_mode():
                got = chain(x).clone()
                if not torch.equal(got, network(x)):
                    failures.append(seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_predict_over_numeric_rows_uses_the_chain_and_matches_the_network(tmp_path):
    from safetensors.torch import save_file

    from engine.inference.model_catalog import current_version
    from engine.serving.predictor import Predictor

    torch.manual_seed(2)
    network = build_network("mlp", num_classes=2, in_features=3, hidden=(16,)).eval()
    weights = tmp_path / "mlp.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(weights))
    with engine.connect(progress="off", autocommit=True) as con:
        con.execute("CREATE TABLE pts AS SELECT range AS id, sin(range) AS a, cos(range) AS b, range % 7 AS c "
                    "FROM range(5000)")
        con.execute("CREATE MODEL m FROM ? WITH (architecture = 'mlp', inputs = ['a', 'b', 'c'])", [str(weights)])
        predictor = Predictor.load(con.session, current_version(con.session, "m"))
        assert predictor._chain is not None
        got = con.execute("SELECT id, predicted_class_id FROM predict(m, pts) ORDER BY id").fetchall()
        x = np.array(con.execute("SELECT a, b, c FROM pts ORDER BY id").fetchall(), dtype=np.float64)
    inputs = torch.from_numpy(x.astype(np.float32))
    with torch.inference_mode():
        expected = network(inputs).argmax(dim=1).tolist()
    assert [r[1] for r in got] == expected
