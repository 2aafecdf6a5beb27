"""Slow end-to-end check on the real Fashion-MNIST (minutes): `make test-slow` / `pytest -m slow`."""

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from nas.config import DataConfig
from nas.data import FASHION_MNIST_CLASSES, load_dataset
from nas.search import run_search

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed (make data)"),
]


def test_real_search_front_is_accurate_and_its_onnx_files_agree(tmp_path, compose_cfg):
    cfg = compose_cfg("train.subset=15000", "train.epochs=2", "search.n_trials=2", "search.progress=false",
                      f"search.runs_dir={tmp_path}", "search.study_name=slow",
                      # the best member goes through the default compression, with a shorter recovery
                      "compress.members=top_k", "compress.top_k=1", "compress.recover.subset=15000",
                      # final training of the members: 3 epochs where the proxy had 2, same images
                      "final_train.subset=15000", "final_train.epochs=3")
    result = run_search(cfg)
    assert result.n_complete == 2 and result.pareto
    # 30k training images (a quarter of the default budget) measured 79.7% here; chance is 10%, and a
    # broken label, normalisation or split pipeline lands far below 75%.
    assert max(m["test_acc"] for m in result.pareto) > 0.75
    test = load_dataset(DataConfig(name="fashion_mnist", root=str(FMNIST))).test
    x = test.x.float().numpy() / 255.0
    for member in result.pareto:
        folder = result.run_dir / member["checkpoint"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["output"]["class_names"] == list(FASHION_MNIST_CLASSES)
        assert metrics["test_acc"] > 0.5
        # Evaluate the exported file independently, following only the deployment contract.
        logits = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"pixels": x})[0]
        onnx_acc = float((logits.argmax(1) == test.y.numpy()).mean())
        assert onnx_acc == pytest.approx(metrics["test_acc"], abs=0.002)
        assert metrics["test_acc_onnx"] == pytest.approx(onnx_acc, abs=1e-9)
        # the shipped weights are the final training's: 1.5x the proxy's training, so better on val
        assert metrics["final_train"]["epochs"] == 3 and metrics["val_acc"] > metrics["val_acc_proxy"]

    # Compression: the best member's int8 files, evaluated independently, keep its accuracy.
    best = max(result.pareto, key=lambda m: m["val_acc"])
    folder = result.run_dir / best["checkpoint"]
    compressed = json.loads((folder / "compressed_metrics.json").read_text())
    source_acc = compressed["pruned"]["test_acc"] if compressed["pruned"]["pruned"] else compressed["fp32"]["test_acc"]
    logits = ort.InferenceSession(str(folder / "model_int8.onnx")).run(None, {"pixels": x})[0]
    int8_acc = float((logits.argmax(1) == test.y.numpy()).mean())
    assert int8_acc == pytest.approx(compressed["int8"]["test_acc_onnx"], abs=1e-9)
    # int8 of the default winners measured 0.00-0.15 pt drops (experiments/results/compression_proxy2ep.md); 1 pt is the
    # margin for a shorter-trained model, far below what a broken quantizer or export would lose.
    assert int8_acc >= source_acc - 0.01
    assert compressed["int8"]["test_acc"] >= source_acc - 0.01  # OpenVINO IR
    assert compressed["summary"]["speedup_openvino_int8_vs_torch_fp32"] > 1.0
