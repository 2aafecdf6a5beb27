"""Benchmark: pruning recovery (`compress.recover`, distillation from the unpruned model) trained as before, in
float32 and the default memory layout, against the adopted defaults: channels-last and bf16 autocast where the CPU
computes bf16 natively (`compress.recover.channels_last: true`, `precision: auto`; the teacher then runs in bf16 too).

    python experiments/recover_speed.py                 # 3 candidates, ~10 min on 2 cores

Candidates of the default space at MAC-count quantiles (picked as in experiments/train_speed.py) are trained with the
default proxy recipe (conf/train/default.yaml), pruned as the default compression does (25% of the channels of every
group), and the same pruned copy is then recovered once per variant with the default recover recipe (1 epoch over
the 54,000 training images, same seed). The two variants alternate which goes first from model to model, so that a
slow phase of this shared machine does not hit one of them only. Reported per model and variant: seconds of the
recovery loop, images/s, validation accuracy before and after recovery, and test accuracy (torch, 10k images).
Writes experiments/results/<name>.{json,md} (name: recover_speed unless --name).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402
from train_speed import quantile_candidates  # noqa: E402

from compress.prune import prune  # noqa: E402
from compress.recover import distill  # noqa: E402
from nas.config import Precision  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from nas.latency.measure import machine_info  # noqa: E402
from nas.latency.ops import count_macs  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.train import evaluate, seed_everything, train_candidate  # noqa: E402

BEFORE = "fp32, default layout (before)"
AFTER = "channels_last + precision auto (adopted)"


def main(n_models: int) -> dict:
    started = time.perf_counter()
    run = compose_run()  # what `python -m nas.search` trains and compresses with
    data = load_dataset(run.data)
    variants = {BEFORE: dataclasses.replace(run.compress.recover, channels_last=False, precision=Precision.fp32),
                AFTER: run.compress.recover}
    rows = []
    for k, arch in enumerate(quantile_candidates(n_models)):
        seed_everything(0)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        trained = train_candidate(model, data, run.train, augment=run.data, seed=0)  # sets threads, allocator as a search
        pruned = prune(copy.deepcopy(model), arch, hw=run.hw, ratio=run.compress.prune.ratio, step=run.compress.prune.step)
        val_before = evaluate(pruned.model, data.val, batch_size=run.train.eval_batch_size)
        order = list(variants) if k % 2 == 0 else list(reversed(variants))
        for name in order:
            student, teacher = copy.deepcopy(pruned.model), copy.deepcopy(model)
            rec = distill(student, teacher, data, variants[name], augment=run.data, seed=run.compress.seed,
                          eval_batch_size=run.train.eval_batch_size)
            rows.append({
                "arch": arch.summary(), "macs": count_macs(arch), "pruned_macs": count_macs(pruned.arch),
                "trained_val_acc": trained.val_acc, "variant": name, "precision": rec.precision,
                "channels_last": variants[name].channels_last, "seconds": rec.seconds,
                "img_per_s": rec.images_seen / rec.seconds, "val_acc_before_recovery": val_before, "val_acc": rec.val_acc,
                "test_acc": evaluate(student, data.test, batch_size=run.train.eval_batch_size),
                "order": order.index(name),
            })
            print(f"{arch.summary():60s} {name}: {rec.seconds:.1f} s, val {val_before:.4f} -> {rec.val_acc:.4f}", flush=True)
    return {
        "command": command_line("recover_speed.py"),  # as run, --name included
        "machine": machine_info(), "torch": torch.__version__, "python": platform.python_version(), "date": str(date.today()),
        "threads": run.train.threads, "recipe": {k: str(v) for k, v in dataclasses.asdict(run.compress.recover).items()},
        "prune_ratio": run.compress.prune.ratio, "rows": rows, "wall_s": time.perf_counter() - started,
    }


def render(result: dict) -> str:
    rows = result["rows"]
    by_arch: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_arch.setdefault(r["arch"], {})[r["variant"]] = r
    speedups = [v[AFTER]["img_per_s"] / v[BEFORE]["img_per_s"] for v in by_arch.values()]
    val_diff = [(v[AFTER]["val_acc"] - v[BEFORE]["val_acc"]) * 100 for v in by_arch.values()]
    test_diff = [(v[AFTER]["test_acc"] - v[BEFORE]["test_acc"]) * 100 for v in by_arch.values()]
    precision = {r["precision"] for r in rows if r["variant"] == AFTER}
    lines = [
        "# Pruning recovery: float32 against channels-last + bf16 (compress.recover)", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; torch {result['torch']}; {result['threads']} threads; {result['date']}; "
        f"total {result['wall_s'] / 60:.1f} min", "",
        "Default-space candidates at MAC-count quantiles, trained with the default proxy recipe, pruned by "
        f"{result['prune_ratio']:.0%} of the channels of every group, then the same pruned copy recovered by distillation "
        "from the trained model with the default recover recipe (1 epoch, all training images, same seed), once per "
        f"variant. On this machine `precision: auto` resolved to {', '.join(sorted(precision))}. Seconds: the recovery "
        "loop (`DistillResult.seconds`); accuracies of the recovered model in torch.", "",
        "| arch | MACs (pruned) | variant | first | s | img/s | val acc pruned | val acc recovered | test acc |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(f"| {r['arch'].replace('|', chr(92) + '|')} | {r['pruned_macs']:,} | {r['variant']} | {'yes' if r['order'] == 0 else 'no'} | "
                     f"{r['seconds']:.1f} | {r['img_per_s']:.0f} | {r['val_acc_before_recovery']:.2%} | {r['val_acc']:.2%} | "
                     f"{r['test_acc']:.2%} |")
    lines += [
        "", "## Findings", "",
        f"- Recovery speed, adopted over before: {min(speedups):.2f}-{max(speedups):.2f}x "
        f"(median {statistics.median(speedups):.2f}x) over the {len(speedups)} models.",
        f"- Validation accuracy after recovery, adopted minus before: {min(val_diff):+.2f} to {max(val_diff):+.2f} pt "
        f"(mean {statistics.mean(val_diff):+.2f}); test accuracy {min(test_diff):+.2f} to {max(test_diff):+.2f} pt "
        f"(mean {statistics.mean(test_diff):+.2f}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    with one_line_on_failed_write():
        ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))  # the first paragraph: its first line stops mid-sentence
        ap.add_argument("--models", type=int, default=3, help="candidates of the default space (MAC-count quantiles)")
        ap.add_argument("--name", default="recover_speed", help="results file stem under experiments/results/")
        args = ap.parse_args()
        write_results(args.name, main(args.models), render_md=render)
