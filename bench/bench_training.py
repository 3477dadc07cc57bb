"""Training in the database (issue 11), each part side by side with its baseline in one run.

    .venv/bin/python bench/bench_training.py                              # every part, default sizes
    .venv/bin/python bench/bench_training.py --parts fashion --rows 60000 --epochs 2
    .venv/bin/python bench/bench_training.py --quick                      # small sizes, to check it runs

Parts (``--parts``, comma-separated):

- ``fashion``: Fashion-MNIST (``--rows`` training images in a DuckDB table) and a small CNN:
  Mallard's ``train`` from ``SELECT ... FROM fashion`` (materializing the query included)
  against the same model and loop in plain PyTorch on in-memory tensors of the same rows,
  batches in the same order; wall-time ratio (target: within 10%) and test accuracy on
  ``--test-rows`` t10k images (target: equal within 0.5 point).
- ``grid``: eight configurations (four learning rates x SGD/Adam) trained one after another
  (one process, all cores) against the model hopper (one worker per core), and the hopper with
  successive halving; per-configuration times, winners, weight differences, and the bytes each
  worker reads and receives with model hopping against shipping the data to every configuration.
- ``spilling``: an ``mlp`` whose parameters plus Adam state are 4x ``device_memory``: spilled
  against unspilled training, time ratio, peak resident bytes against the budget, same weights.
- ``pipeline``: small CNN cut into 4 stages, 1 to 32 micro-batches: measured bubble against
  (K-1)/(M+K-1), gradient difference against plain training, time against plain training.
- ``weak``: SMS spam (LABEL with the label model, and with majority vote) and a bag-of-words
  ``mlp``: accuracy and spam F1 on held-out truth of noise-aware training on the label
  model's probabilities, of training on majority-vote labels, and of the label model's own labels.
- ``distill``: vtest.avi at 224x224; ``tiny_cnn`` and ``small_cnn`` students trained on
  MobileNetV2's outputs (``mobilenet(frame).label``, or the softmax of ``logits(mobilenet,
  frame)`` over the labels seen, as ``probs``) over the even frames, compared with it on the
  odd ones (agreement, also on the frames where its top-1 leads by 0.1), and the speed of the
  networks on the same frames.

``--threads`` sets torch's intra-op threads for the statement's process (default: torch's,
one per core).  On a busy machine tiny models run several times slower on two spinning
threads than on one: compare ratios, not absolute times, and rerun on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine  # noqa: E402
from engine.training.api import train  # noqa: E402
from engine.training.architectures import build_network  # noqa: E402
from engine.training.batches import PartitionReader, batch_slices, partition_order, row_order  # noqa: E402
from engine.training.evaluation import evaluate  # noqa: E402
from engine.training.lineage import record  # noqa: E402
from engine.training.materialize import materialize  # noqa: E402
from engine.training.options import parse_options  # noqa: E402
from engine.training.source import resolve_data, settle, source_relation  # noqa: E402
from tests.training_data import create_table, fashion_arrays, fashion_table  # noqa: E402
from engine.inference.networks import normalize_frames  # noqa: E402

FASHION = ROOT / "data" / "fashion-mnist"


def line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}", flush=True)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_accuracy(state: dict[str, torch.Tensor], architecture: str, classes: tuple[str, ...], mean: Any, std: Any,
                  images: np.ndarray, labels: list[str]) -> float:
    """Accuracy of a small CNN's weights on test images (HWC uint8), plain torch."""
    network = build_network(architecture, num_classes=len(classes))
    network.load_state_dict(state)
    network.eval()
    truth = torch.tensor([classes.index(name) for name in labels])
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            x = normalize_frames(images[start:start + 1000], mean, std).contiguous()
            correct += int((network(x).argmax(1) == truth[start:start + 1000]).sum())
    return correct / len(images)


def fashion_test_set(rows: int) -> tuple[np.ndarray, list[str]]:
    from tests.training_data import FASHION_CLASSES

    images, labels = fashion_arrays(FASHION, "t10k", limit=rows)
    return np.repeat(images[..., None], 3, axis=-1), [FASHION_CLASSES[i] for i in labels]


# Fashion-MNIST: Mallard's trainer against plain PyTorch ----------------------------------

def plain_tensors(duck: Any, options: Any) -> tuple[Any, list[tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]:
    """The rows Mallard trains on, as a user of plain PyTorch would hold them: normalized
    float tensors in memory, per partition (so the same batches come in the same order)."""
    import tempfile

    relation = source_relation(duck, "SELECT id, frame, height, width, label FROM fashion")
    settle(duck)
    data = materialize(relation, resolve_data(relation, options), options, tempfile.mkdtemp(prefix="bench_plain_"))

    def tensors(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        with PartitionReader(data, name) as reader:
            raw = reader.take(np.arange(reader.rows))
        return normalize_frames(raw.x, data.mean, data.std).contiguous(), torch.from_numpy(raw.labels)

    return data, [tensors(p) for p in data.partitions], tensors(data.holdout)


def plain_loop(data: Any, partitions: list[tuple[torch.Tensor, torch.Tensor]], holdout: tuple[torch.Tensor, torch.Tensor],
               configuration: Any) -> dict[str, torch.Tensor]:
    """The same model and loop in plain PyTorch: seeded init, Adam, cross-entropy, the
    partitions and rows in the same seeded order, a validation pass per epoch."""
    torch.manual_seed(configuration.seed)
    network = build_network("small_cnn", num_classes=len(data.classes))
    optimizer = torch.optim.Adam(network.parameters(), lr=configuration.lr)
    for epoch in range(configuration.epochs):
        started = time.perf_counter()
        network.train()
        for p in partition_order(configuration.seed, epoch, len(partitions)):
            x_all, y_all = partitions[p]
            order = torch.from_numpy(row_order(configuration.seed, epoch, p, len(y_all)))
            for index in batch_slices(order, configuration.batch_size):
                optimizer.zero_grad()
                F.cross_entropy(network(x_all[index]), y_all[index]).backward()
                optimizer.step()
        network.eval()
        with torch.no_grad():
            x, y = holdout
            correct = sum(int((network(x[i:i + 1024]).argmax(1) == y[i:i + 1024]).sum()) for i in range(0, len(y), 1024))
        print(f"    plain epoch {epoch + 1}: held-out accuracy {correct / len(y):.4f} ({time.perf_counter() - started:.1f} s)",
              flush=True)
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def part_fashion(args: argparse.Namespace) -> None:
    print(f"\n== Fashion-MNIST, small CNN: {args.rows} training rows, {args.epochs} epochs, {torch.get_num_threads()} "
          "thread(s)", flush=True)
    con = engine.connect()
    duck = con.duckdb_connection
    create_table(duck, "fashion", fashion_table(FASHION, "train", limit=args.rows))
    options = parse_options({"architecture": "small_cnn", "epochs": args.epochs, "optimizer": "adam", "lr": 0.003,
                             "batch_size": 64, "seed": 0, "holdout": 0.1})
    data, partitions, holdout = plain_tensors(duck, options)
    images, labels = fashion_test_set(args.test_rows)
    times: dict[str, list[float]] = {"plain": [], "mallard": []}
    warm = build_network("small_cnn", num_classes=10)  # first-call costs (kernels, imports), paid by neither side
    F.cross_entropy(warm(partitions[0][0][:64]), partitions[0][1][:64]).backward()
    torch.optim.Adam(warm.parameters()).step()
    for _ in range(args.repeat):
        started = time.perf_counter()
        plain_state = plain_loop(data, partitions, holdout, options.configurations[0])
        times["plain"].append(time.perf_counter() - started)
        started = time.perf_counter()
        outcome = train(duck, "SELECT id, frame, height, width, label FROM fashion", options)
        times["mallard"].append(time.perf_counter() - started)
        for m in outcome.best_result.history:
            print(f"    mallard epoch {m.epoch}: held-out accuracy {m.val_accuracy:.4f} ({m.seconds:.1f} s)", flush=True)
        print(f"    mallard: {outcome.materialize_seconds:.1f} s reading the query into partitions, "
              f"{times['mallard'][-1]:.1f} s in all; plain: {times['plain'][-1]:.1f} s", flush=True)
    plain_s, mallard_s = min(times["plain"]), min(times["mallard"])
    mine = test_accuracy(outcome.best_result.state, "small_cnn", data.classes, data.mean, data.std, images, labels)
    theirs = test_accuracy(plain_state, "small_cnn", data.classes, data.mean, data.std, images, labels)
    line("plain PyTorch on in-memory tensors (s)", f"{plain_s:.2f}")
    line("Mallard train() from the DuckDB table (s)", f"{mallard_s:.2f}")
    line("ratio Mallard / plain (target <= 1.10)", f"{mallard_s / plain_s:.3f}")
    line(f"test accuracy on {len(labels)} t10k images: Mallard / plain", f"{mine:.4f} / {theirs:.4f}")
    line("accuracy difference, points (target <= 0.5)", f"{100 * abs(mine - theirs):.2f}")
    line("largest weight difference", f"{max_difference(outcome.best_result.state, plain_state):.2e}")


# Model selection: sequential, model hopping, successive halving ---------------------------

def part_grid(args: argparse.Namespace) -> None:
    from engine.training.processes import threads_per_worker

    workers = os.cpu_count() or 1
    print(f"\n== Model selection: 8 configurations, {args.grid_rows} rows, {args.grid_epochs} epochs, "
          f"{workers} workers", flush=True)
    duck = engine.connect().duckdb_connection
    create_table(duck, "fashion", fashion_table(FASHION, "train", limit=args.grid_rows))
    grid = {"architecture": "small_cnn", "epochs": args.grid_epochs, "lr": [0.01, 0.003, 0.001, 0.0003],
            "optimizer": ["adam", "sgd"], "batch_size": 64, "holdout": 0.1}
    query = "SELECT id, frame, height, width, label FROM fashion"
    runs = {}
    for name, extra in (("sequential", {"workers": 1}), ("hopper", {"workers": workers}),
                        ("hopper + halving", {"workers": workers, "successive_halving": True}),
                        ("sequential + halving", {"workers": 1, "successive_halving": True})):
        started = time.perf_counter()
        runs[name] = train(duck, query, parse_options({**grid, **extra}))
        runs[name].schedule["wall"] = time.perf_counter() - started
        best = runs[name].best_result
        line(f"{name}: wall (s), winner", f"{runs[name].schedule['wall']:.1f}  lr={best.configuration.lr} "
             f"{best.configuration.optimizer} acc {best.final.val_accuracy:.4f}")
    seq, hop = runs["sequential"], runs["hopper"]
    print("  per configuration (s): sequential / hopper (time inside the worker) / max weight difference", flush=True)
    for a, b in zip(seq.results, hop.results):
        c = a.configuration
        print(f"    lr={c.lr:<7} {c.optimizer:<5} {a.seconds:7.1f} / {b.seconds:7.1f}   {max_difference(a.state, b.state):.1e}"
              f"   acc {a.final.val_accuracy:.4f} / {b.final.val_accuracy:.4f}", flush=True)
    line("hopper / sequential wall time (target <= 1.0)", f"{hop.schedule['wall'] / seq.schedule['wall']:.3f}")
    line("same winner (hopper, sequential)", str(seq.best == hop.best))
    halving = runs["hopper + halving"]
    line("hopper full grid / hopper with successive halving (target >= 2)",
         f"{hop.schedule['wall'] / halving.schedule['wall']:.2f}")
    line("same winner (halving, full grid)", str(halving.best == hop.best))
    line("sequential full / sequential with halving",
         f"{seq.schedule['wall'] / runs['sequential + halving'].schedule['wall']:.2f}")
    s = hop.schedule
    line("threads per worker", str(threads_per_worker(workers)))
    line("visits per worker / model hops per worker", f"{s['visits']} / {s['hops']}")
    line("model hopping: data bytes each worker reads (its partitions)", str(s["data_bytes_read"]))
    line("model hopping: model-state bytes each worker receives", str(s["model_bytes_received"]))
    configs, epochs = len(hop.results), args.grid_epochs
    line("shipping data instead: bytes each worker receives, the dataset once", f"{s['dataset_bytes']}")
    line("shipping data instead, streamed: per worker, its configurations x epochs",
         f"{s['dataset_bytes'] * configs // s['workers'] * epochs}")
    per_hop = sum(s["model_bytes_received"]) / max(sum(s["hops"]), 1)
    line("model state per hop (bytes); hops per model and epoch", f"{per_hop:.0f}; "
         f"{sum(s['hops']) / (configs * epochs):.1f}")


# Spilling ---------------------------------------------------------------------------------

def part_spilling(args: argparse.Namespace) -> None:
    hidden = [512] * 6
    duck = engine.connect().duckdb_connection
    _pixels_table(duck, args.spill_rows)
    params = 196 * 512 + 512 + 5 * (512 * 512 + 512) + 512 * 10 + 10
    state = params * 4 * 3  # parameters plus Adam's two moments
    budget = state // 4
    print(f"\n== Spilling: mlp {hidden} on 14x14 Fashion-MNIST ({args.spill_rows} rows, 1 epoch), Adam; "
          f"parameters + optimizer state {state / 2**20:.1f} MiB, device_memory {budget / 2**20:.2f} MiB", flush=True)
    base = {"architecture": "mlp", "hidden": hidden, "epochs": 1, "optimizer": "adam", "lr": 0.001, "batch_size": 64}
    times: dict[str, float] = {}
    for name, extra in (("unspilled", {}), ("spilled", {"device_memory": budget})):
        started = time.perf_counter()
        outcome = train(duck, "SELECT id, pixels, label FROM pixels", parse_options({**base, **extra}))
        times[name] = time.perf_counter() - started
        if name == "unspilled":
            plain = outcome
    line("unspilled / spilled (s)", f"{times['unspilled']:.2f} / {times['spilled']:.2f}")
    line("overhead ratio spilled / unspilled", f"{times['spilled'] / times['unspilled']:.2f}")
    line("shards", str(outcome.schedule["shards"]))
    line("peak resident bytes (measured) / budget", f"{outcome.schedule['peak_resident_bytes']} / {budget} "
         f"({outcome.schedule['peak_resident_bytes'] / budget:.3f})")
    line("bytes moved between host and device", f"{outcome.schedule['bytes_moved'] / 2**20:.0f} MiB")
    line("same weights as unspilled (largest difference)", f"{max_difference(plain.best_result.state, outcome.best_result.state):.1e}")


# Pipelining -------------------------------------------------------------------------------

def part_pipeline(args: argparse.Namespace) -> None:
    stages = 4
    duck = engine.connect().duckdb_connection
    create_table(duck, "fashion", fashion_table(FASHION, "train", limit=args.pipe_rows))
    images = "SELECT id, frame, height, width, label FROM fashion"
    for title, query, base, shape in (
            ("small CNN", images, {"architecture": "small_cnn"}, (3, 28, 28)),
            ("mlp of 8 equal layers (balanced stages)", "SELECT id, pixels, label FROM pixels",
             {"architecture": "mlp", "hidden": [256] * 8}, (196,))):
        if "pixels" in query:
            _pixels_table(duck, args.pipe_rows)
        print(f"\n== GPipe: {title} in {stages} stages, batch 64, {args.pipe_rows} rows, 1 epoch", flush=True)
        _pipeline_rows(duck, query, {**base, "epochs": 1, "batch_size": 64, "lr": 0.01}, stages, shape)


def _pixels_table(duck: Any, rows: int) -> None:
    import pyarrow as pa

    from tests.training_data import FASHION_CLASSES

    images, labels = fashion_arrays(FASHION, "train", limit=rows)
    small = images.reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(len(images), -1).astype(np.float32) / 255.0
    create_table(duck, "pixels", pa.table({"id": np.arange(len(small)), "pixels": pa.array(list(small), pa.list_(pa.float32())),
                                           "label": np.array(FASHION_CLASSES)[labels]}))


def _pipeline_rows(duck: Any, query: str, base: dict[str, Any], stages: int, shape: tuple[int, ...]) -> None:
    from engine.training.objective import row_losses
    from engine.training.pipeline import Pipeline, expected_bubble

    train(duck, query, parse_options({**base, "pipeline_stages": 2, "micro_batches": 2}))  # first-call costs
    started = time.perf_counter()
    train(duck, query, parse_options(base))
    plain_s = time.perf_counter() - started
    torch.manual_seed(0)
    network = build_network(base["architecture"], num_classes=10, in_features=shape[0] if len(shape) == 1 else None,
                            hidden=tuple(base.get("hidden", (128, 64))))
    x, y = torch.randn(64, *shape), torch.randint(0, 10, (64,))
    (row_losses(network(x), y, None).sum() / 64).backward()
    expected = {n: p.grad.clone() for n, p in network.named_parameters()}
    print(f"  {'micro-batches':>13} {'measured bubble':>16} {'(K-1)/(M+K-1)':>14} {'stage balance b':>16} "
          f"{'1-(1-formula)b':>15} {'time / plain':>13} {'grad diff':>10}")
    for micro in (1, 2, 4, 8, 16, 32):
        started = time.perf_counter()
        piped = train(duck, query, parse_options({**base, "pipeline_stages": stages, "micro_batches": micro}))
        seconds = time.perf_counter() - started
        network.zero_grad(set_to_none=True)
        Pipeline(network, stages, micro, shape).step(x, y, None, 64)
        grad = max(float((p.grad - expected[n]).abs().max()) for n, p in network.named_parameters())
        s = piped.schedule
        formula = expected_bubble(stages, micro)
        print(f"  {micro:>13} {s['bubble']:>16.3f} {formula:>14.3f} {s['stage_balance']:>16.2f} "
              f"{1 - (1 - formula) * s['stage_balance']:>15.3f} {seconds / plain_s:>13.2f} {grad:>10.1e}", flush=True)
    print(f"  stages: {' | '.join(s['stages'])}")


# Weak supervision: noise-aware training on LABEL's output ---------------------------------

BAG = 512


def sms_features(con: Any) -> None:
    """``sms_features(id, features FLOAT[512], truth)``: hashed bag of words, computed in SQL."""
    con.execute(f"""
        CREATE OR REPLACE TABLE sms_features AS
        WITH tokens AS (SELECT id, truth, list_filter(regexp_split_to_array(lower(text), '[^a-z0-9£$]+'),
                                                    lambda t: t <> '') AS words FROM sms)
        SELECT id, truth, [CAST(len(list_filter(words, lambda w: hash(w) % {BAG} = i)) AS FLOAT)
                           FOR i IN range({BAG})] AS features
        FROM tokens
    """)


def f1(predicted: list[str], truth: list[str], positive: str = "spam") -> float:
    tp = sum(p == positive and t == positive for p, t in zip(predicted, truth))
    fp = sum(p == positive and t != positive for p, t in zip(predicted, truth))
    fn = sum(p != positive and t == positive for p, t in zip(predicted, truth))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def part_weak(args: argparse.Namespace) -> None:
    from tests.labeling_sms import create_sms_lfs, load_sms

    print("\n== Weak supervision: SMS spam, LABEL, and a bag-of-words mlp; held-out truth (id % 5 = 0)", flush=True)
    con = engine.connect(progress="off")
    load_sms(con, ROOT / "data" / "spam_collection.tsv")
    lfs = ", ".join(create_sms_lfs(con))
    con.execute(f"LABEL sms USING {lfs} WITH (classes = ['ham', 'spam'], model = 'label_model') INTO sms_labels")
    con.execute(f"LABEL sms USING {lfs} WITH (classes = ['ham', 'spam'], model = 'majority') INTO sms_majority")
    sms_features(con)
    duck = con.duckdb_connection
    truth = [r[0] for r in duck.execute("SELECT truth FROM sms WHERE id % 5 = 0 ORDER BY id").fetchall()]
    base = {"architecture": "mlp", "hidden": [64], "epochs": args.weak_epochs, "lr": 0.05, "batch_size": 64,
            "inputs": ["features"]}
    runs = {
        "noise-aware (label model probs, weights)": (
            "SELECT f.id, f.features, l.probs, l.weight FROM sms_features f JOIN sms_labels l USING (id) WHERE f.id % 5 <> 0",
            {"probs": "probs", "weight": "weight"}),
        "hard labels of the label model": (
            "SELECT f.id, f.features, l.label FROM sms_features f JOIN sms_labels l USING (id) WHERE f.id % 5 <> 0", {}),
        "majority-vote labels (ties dropped)": (
            "SELECT f.id, f.features, m.label FROM sms_features f JOIN sms_majority m USING (id) WHERE f.id % 5 <> 0", {}),
        "truth (upper bound, not weak)": (
            "SELECT id, features, truth AS label FROM sms_features WHERE id % 5 <> 0", {}),
    }
    for name, (query, extra) in runs.items():
        outcome = train(duck, query, parse_options({**base, **extra}))
        model = "m_" + str(abs(hash(name)) % 10**6)
        record(duck, model, outcome)
        result = evaluate(duck, model, "SELECT features, truth AS label FROM sms_features WHERE id % 5 = 0")
        spam = result.classes.index("spam")
        line(f"{name}: accuracy, spam F1", f"{result.accuracy:.4f}  {_f1(result, spam):.4f}")
    for name, table in (("label model's own labels", "sms_labels"), ("majority vote's own labels (tie: ham)", "sms_majority")):
        predicted = [r[0] or "ham" for r in duck.execute(
            f"SELECT l.label FROM {table} l JOIN sms s USING (id) WHERE s.id % 5 = 0 ORDER BY s.id").fetchall()]
        accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
        line(f"{name}: accuracy, spam F1", f"{accuracy:.4f}  {f1(predicted, truth):.4f}")


def _f1(result: Any, spam: int) -> float:
    p, r = result.precision[spam] or 0.0, result.recall[spam] or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


# Distillation: a specialized CNN from mobilenet(frame) -----------------------------------

def part_distill(args: argparse.Namespace) -> None:
    import pyarrow as pa

    from bench.common import imagenet_mobilenet

    print(f"\n== Distillation on vtest.avi at 224x224 ({args.distill_frames} frames): students trained on "
          "MobileNetV2's outputs over the even frames, compared with it on the odd ones", flush=True)
    con = engine.connect(progress="off")
    con.execute(f"LOAD VIDEO 'data/vtest.avi' INTO traffic WITH (width = 224, height = 224, limit = {args.distill_frames})")
    con.execute("CREATE MODEL mobilenet FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2', "
                "labels = 'data/imagenet_classes.txt')")
    started = time.perf_counter()
    teacher = con.execute("SELECT frame_id, frame, height, width, mobilenet(frame).label AS label, "
                          "logits(mobilenet, frame) AS logits FROM traffic ORDER BY frame_id").fetch_arrow_table()
    line("MobileNetV2 over every frame through SQL (s)", f"{time.perf_counter() - started:.1f}")
    labels = np.array(teacher.column("label").to_pylist())
    logits = np.array(teacher.column("logits").to_pylist(), dtype=np.float64)
    even, odd = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    classes = sorted(set(labels[even]))
    imagenet = [c.strip() for c in (ROOT / "data" / "imagenet_classes.txt").read_text().splitlines() if c.strip()]
    columns = [imagenet.index(c) for c in classes]
    restricted = logits[:, columns] - logits[:, columns].max(1, keepdims=True)
    soft = np.exp(restricted) / np.exp(restricted).sum(1, keepdims=True)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    top2 = np.sort(probabilities / probabilities.sum(1, keepdims=True), axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    duck = con.duckdb_connection
    create_table(duck, "teacher", pa.table({
        "frame_id": teacher.column("frame_id"), "frame": teacher.column("frame"), "height": teacher.column("height"),
        "width": teacher.column("width"), "label": teacher.column("label"),
        "probs": pa.array(list(soft), pa.list_(pa.float64()))}))
    majority = max(classes, key=lambda c: int((labels[even] == c).sum()))
    duck.execute("ALTER TABLE teacher ADD COLUMN question VARCHAR")  # NoScope's kind: one yes/no question
    duck.execute("UPDATE teacher SET question = CASE WHEN label = ? THEN 'yes' ELSE 'no' END", [majority])
    line(f"classes among the even frames' labels; decisive odd frames", f"{len(classes)}; {int(decisive[odd].sum())} of {int(odd.sum())}")
    line("baseline: always the even frames' most frequent label", f"agreement {float((labels[odd] == majority).mean()):.4f}")
    frames = np.stack([np.frombuffer(f, dtype=np.uint8).reshape(224, 224, 3) for f in teacher.column("frame").to_pylist()])
    speeds = {"MobileNetV2": _ms_per_frame(imagenet_mobilenet(), frames[odd], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
    share = float((labels[odd] == majority).mean())
    line(f"yes/no question 'is it {majority}?': baseline (the commoner answer)", f"agreement {max(share, 1 - share):.4f}")
    for architecture in ("tiny_cnn", "small_cnn"):
        for target, extra in (("labels", {}), ("soft outputs", {"probs": "probs", "classes": classes}),
                              ("yes/no answers", {"label": "question"})):
            column = "probs" if "probs" in extra else ("question" if "label" in extra else "label")
            query = f"SELECT frame_id, frame, height, width, {column} FROM teacher WHERE frame_id % 2 = 0"
            started = time.perf_counter()
            outcome = train(duck, query, parse_options({"architecture": architecture, "epochs": args.distill_epochs,
                                                        "optimizer": "adam", "lr": 0.003, "batch_size": 16,
                                                        "holdout": 0.1, **extra}))
            seconds = time.perf_counter() - started
            student = build_network(architecture, num_classes=len(outcome.data.classes))
            student.load_state_dict(outcome.best_result.state)
            student.eval()
            with torch.no_grad():
                predicted = torch.cat([student(normalize_frames(frames[odd][i:i + 32], outcome.data.mean, outcome.data.std)
                                               .contiguous()).argmax(1) for i in range(0, int(odd.sum()), 32)])
            names = np.array(outcome.data.labels)[predicted.numpy()]
            truth = labels[odd] if "label" not in extra else np.where(labels[odd] == majority, "yes", "no")
            agree = names == truth
            line(f"{architecture} on the teacher's {target} ({seconds:.0f} s): agreement, on decisive frames",
                 f"{agree.mean():.4f}, {agree[decisive[odd]].mean():.4f}")
        speeds[architecture] = _ms_per_frame(student, frames[odd], outcome.data.mean, outcome.data.std)
    for name, ms in speeds.items():
        line(f"{name}: ms per frame (batches of 16, plain torch); MobileNetV2 / it",
             f"{ms:.2f}; {speeds['MobileNetV2'] / ms:.1f}x")


def _ms_per_frame(network: torch.nn.Module, frames: np.ndarray, mean: Any, std: Any) -> float:
    network.eval()
    x = normalize_frames(frames, mean, std).contiguous()
    with torch.no_grad():
        network(x[:16])
        started = time.perf_counter()
        for start in range(0, len(x), 16):
            network(x[start:start + 16])
    return 1000 * (time.perf_counter() - started) / len(x)


PARTS = {"fashion": part_fashion, "grid": part_grid, "spilling": part_spilling, "pipeline": part_pipeline,
         "weak": part_weak, "distill": part_distill}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that every part runs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rows", type=int, default=20000, help="fashion: training rows")
    parser.add_argument("--epochs", type=int, default=2, help="fashion: epochs")
    parser.add_argument("--test-rows", type=int, default=10000, help="fashion: t10k rows for test accuracy")
    parser.add_argument("--repeat", type=int, default=1, help="fashion: runs of each side (the best counts)")
    parser.add_argument("--grid-rows", type=int, default=3000)
    parser.add_argument("--grid-epochs", type=int, default=8)
    parser.add_argument("--spill-rows", type=int, default=10000)
    parser.add_argument("--pipe-rows", type=int, default=2000)
    parser.add_argument("--weak-epochs", type=int, default=10)
    parser.add_argument("--distill-frames", type=int, default=400)
    parser.add_argument("--distill-epochs", type=int, default=8)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.test_rows, args.grid_rows, args.grid_epochs = 2000, 1, 1000, 1000, 2
        args.spill_rows, args.pipe_rows, args.weak_epochs, args.distill_frames, args.distill_epochs = 1000, 500, 2, 60, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.parts.split(","):
        if name not in PARTS:
            parser.error(f"unknown part {name!r}; expected one of {', '.join(PARTS)}")
        PARTS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
