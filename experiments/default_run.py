"""Benchmark: the default search (`python -m nas.search`, i.e. what `make run` does), end to end.

Runs the CLI in a fresh study, times it, then checks the run folder *from its files only*: every
Pareto member's `model.onnx` is evaluated on the Fashion-MNIST test split with onnxruntime and
plain NumPy (no project code), next to the accuracy of its `model.pt` checkpoint.

    python experiments/default_run.py                       # fresh study "default-run-bench"
    python experiments/default_run.py --study NAME --runs-dir runs

Writes experiments/results/default_run.json and default_run.md.
Targets (issue 2): wall time <= 20 min on 2 cores; best Pareto member >= 88% test accuracy from its
checkpoint, and the same accuracy from model.onnx in onnxruntime.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def onnx_test_accuracy(onnx_path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of an exported model, following only the deployment contract in metrics.json."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    correct = 0
    for start in range(0, len(images), 1000):
        x = images[start : start + 1000, None].astype(np.float32) / 255.0  # float32 NCHW in [0, 1]
        correct += int((sess.run(None, {name: x})[0].argmax(1) == labels[start : start + 1000]).sum())
    return correct / len(images)


def checkpoint_test_accuracy(folder: Path, images: np.ndarray, labels: np.ndarray) -> float:
    import torch

    import nas

    model = nas.load_checkpoint(folder)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            x = torch.from_numpy(images[start : start + 1000, None].astype(np.float32) / 255.0)
            correct += int((model(x).argmax(1).numpy() == labels[start : start + 1000]).sum())
    return correct / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="default-run-bench")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs"))
    ap.add_argument("--keep", action="store_true", help="resume an existing study instead of starting fresh")
    args = ap.parse_args()
    run_dir = Path(args.runs_dir) / args.study
    if run_dir.exists() and not args.keep:
        shutil.rmtree(run_dir)
    cmd = [sys.executable, "-m", "nas.search", f"search.study_name={args.study}", f"search.runs_dir={args.runs_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"search failed with exit code {proc.returncode}")

    images = _idx(FMNIST / "t10k-images-idx3-ubyte.gz")
    labels = _idx(FMNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    pareto = json.loads((run_dir / "pareto.json").read_text())
    members = []
    for m in pareto["members"]:
        folder = run_dir / m["checkpoint"]
        members.append({
            "arch_id": m["arch_id"], "summary": m["summary"], "latency_ms": m["latency_ms"], "params": m["params"],
            "val_acc": m["val_acc"],
            "test_acc_checkpoint": checkpoint_test_accuracy(folder, images, labels),
            "test_acc_onnx": onnx_test_accuracy(folder / "model.onnx", images, labels),
        })
    best = max(members, key=lambda m: m["test_acc_checkpoint"])
    n_rows = sum(1 for _ in open(run_dir / "trials.csv")) - 1
    result = {
        "command": "python experiments/default_run.py  (runs: " + " ".join(["python", "-m", "nas.search", *cmd[3:]]) + ")",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": round(wall, 1),
        "n_trials_rows": n_rows,
        "n_trials_complete": pareto["n_trials_finished"],
        "pareto_members": members,
        "best_test_acc_checkpoint": best["test_acc_checkpoint"],
        "best_test_acc_onnx": best["test_acc_onnx"],
        "targets": {"wall_s_max": 1200, "best_test_acc_min": 0.88},
        "met": {"wall": wall <= 1200, "accuracy": best["test_acc_checkpoint"] >= 0.88,
                "onnx_equal": abs(best["test_acc_onnx"] - best["test_acc_checkpoint"]) < 1e-9},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "default_run.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Default search run (`make run` / `python -m nas.search`)", "",
        f"Command: `{result['command']}`  ", f"Machine: {os.cpu_count()} CPU cores, {platform.platform()}; date {result['date']}", "",
        f"- wall time: **{wall / 60:.1f} min** (target <= 20 min: {'met' if result['met']['wall'] else 'NOT met'})",
        f"- trials: {result['n_trials_complete']} complete ({n_rows} rows in trials.csv)",
        f"- best Pareto member test accuracy: **{best['test_acc_checkpoint']:.2%}** from model.pt, "
        f"{best['test_acc_onnx']:.2%} from model.onnx in onnxruntime (target >= 88%: {'met' if result['met']['accuracy'] else 'NOT met'})",
        "", "| arch_id | predicted edge_npu latency (ms) | params | val acc | test acc (model.pt) | test acc (model.onnx, ORT) | arch |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in members:
        lines.append(f"| {m['arch_id']} | {m['latency_ms']:.3f} | {m['params']:,} | {m['val_acc']:.2%} | "
                     f"{m['test_acc_checkpoint']:.2%} | {m['test_acc_onnx']:.2%} | {m['summary']} |")
    (RESULTS / "default_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
