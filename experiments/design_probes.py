"""Measurements behind the default settings (the numbers quoted in conf/ comments and the README).

    python experiments/design_probes.py        # ~6 min on 2 cores

1. Proxy recipe (conf/train/default.yaml, conf/data/fashion_mnist.yaml): one mid-size arch trained
   2 epochs on 30k images with shift+flip vs flip only, and on the full 54k with flip only.
2. Training throughput per stage-0 mixer (conf/space/metaformer_t.yaml): images/s of a training step
   of a 3-stage model whose first stage (14x14 = 196 tokens) uses each mixer.
3. Timing repeatability by thread count (conf/hw/cpu.yaml): 25 models timed in OpenVINO fp32 twice,
   at 2 threads and at 1 thread; share of models whose two medians agree within +-10%.
Writes experiments/results/design_probes.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _common import one_line_on_failed_write  # (also puts the project on sys.path)
from nas.arch import MIXERS, ArchConfig, StageConfig
from nas.config import DataConfig, TrainConfig
from nas.data import load_dataset
from nas.latency.measure import machine_info, make_runner, read_measurements, time_runners
from nas.latency.profile import export_archs
from nas.model import build_model
from nas.train import evaluate, seed_everything, train_candidate

OUT = Path(__file__).resolve().parent / "results"


def recipe() -> list[dict]:
    data = load_dataset(DataConfig(name="fashion_mnist", root="/usr/share/datasets/fashion-mnist", stratify=False))
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=24, mlp_ratio=3),
                              StageConfig(mixer="conv", depth=2, width=48, mlp_ratio=3),
                              StageConfig(mixer="attn", depth=1, width=96, head_dim=16, mlp_ratio=3)))
    base = TrainConfig(epochs=2, subset=30000)
    flip = DataConfig(name="fm", hflip=True, max_shift=0)
    rows = []
    for name, tc, aug in [("30k x 2, shift 2 + flip", base, dataclasses.replace(flip, max_shift=2)),
                          ("30k x 2, flip only", base, flip),
                          ("54k x 2, flip only (default)", dataclasses.replace(base, subset=None), flip)]:
        seed_everything(0)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        r = train_candidate(model, data, tc, augment=aug, seed=0)
        rows.append({"recipe": name, "val_acc": r.val_acc, "test_acc": evaluate(model, data.test), "train_s": r.seconds})
        print(rows[-1], flush=True)
    return rows


def mixer_throughput() -> list[dict]:
    torch.set_num_threads(2)
    rows = []
    for mixer in MIXERS:
        arch = ArchConfig(stages=(StageConfig(mixer=mixer, depth=2, width=32, head_dim=8, mlp_ratio=4),
                                  StageConfig(mixer="sepconv", depth=2, width=48, mlp_ratio=4),
                                  StageConfig(mixer="attn", depth=1, width=128, head_dim=32, mlp_ratio=3)))
        model = build_model(arch)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
        for step in range(6):
            if step == 1:
                t0 = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rows.append({"stage0_mixer": mixer, "train_img_per_s": 5 * 128 / (time.perf_counter() - t0)})
        print(rows[-1], flush=True)
    return rows


def thread_repeatability() -> list[dict]:
    archs = [r.arch for r in read_measurements(OUT / "latency" / "cpu_val.csv")][::4]
    rng = np.random.default_rng(0)
    xs = [rng.random((1, a.in_chans, a.img_size, a.img_size), dtype=np.float32) for a in archs]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_archs(archs, Path(tmp))
        for threads in (2, 1):
            runners = [make_runner(p, runtime="openvino", precision="fp32", threads=threads,
                                   input_shape=(1, a.in_chans, a.img_size, a.img_size)) for p, a in zip(paths, archs)]
            first = np.array([t[0] for t in time_runners(runners, xs, rounds=5)])
            second = np.array([t[0] for t in time_runners(runners, xs, rounds=5)])
            ratio = second / first
            rows.append({"threads": threads, "n_models": len(archs), "share_within_10pct": float(np.mean(abs(ratio - 1) <= 0.10)),
                         "share_within_5pct": float(np.mean(abs(ratio - 1) <= 0.05)), "median_ratio": float(np.median(ratio))})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help says what it does
    result = {"command": "python experiments/design_probes.py", "machine": machine_info(),
              "threads": thread_repeatability(), "mixer_throughput": mixer_throughput(), "recipe": recipe()}
    (OUT / "design_probes.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# Measurements behind the defaults", "", f"Command: `{result['command']}`; machine: {result['machine']}.", "",
          "## Proxy recipe (one arch: sepconv | conv x2 | attn, Fashion-MNIST)", "",
          "| recipe | val acc | test acc | train s |", "|---|---|---|---|"]
    md += [f"| {r['recipe']} | {r['val_acc']:.2%} | {r['test_acc']:.2%} | {r['train_s']:.0f} |" for r in result["recipe"]]
    md += ["", "## Training throughput by stage-0 mixer (14x14 = 196 tokens, batch 128, 2 threads)", "",
           "| stage-0 mixer | train img/s |", "|---|---|"]
    md += [f"| {r['stage0_mixer']} | {r['train_img_per_s']:.0f} |" for r in result["mixer_throughput"]]
    md += ["", "## OpenVINO fp32 timing repeatability (25 models, two sessions)", "",
           "| threads | within +-10% | within +-5% | median ratio |", "|---|---|---|---|"]
    md += [f"| {r['threads']} | {r['share_within_10pct']:.0%} | {r['share_within_5pct']:.0%} | {r['median_ratio']:.3f} |"
           for r in result["threads"]]
    (OUT / "design_probes.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    with one_line_on_failed_write():
        main()
