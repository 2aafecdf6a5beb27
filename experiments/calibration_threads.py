"""Benchmark: NNCF int8 calibration (`compress.quantize.quantize_ptq`) on the search's 2 torch threads (before) against
one thread (`compress.quantize.CALIBRATION_THREADS`, adopted): seconds, and whether the int8 model stays the same.

    python experiments/calibration_threads.py           # 3 candidates, 6.3 min on 2 cores (2026-12-06)

Candidates of the default space at MAC-count quantiles (as in experiments/train_speed.py) are trained with the default
proxy recipe on a fixed subset of the training images (the int8 comparison needs a trained model, not a good one), on
train.threads torch threads as a search trains. The same model is then calibrated once per variant from the same
`compress=smoke` calibration images (32: fed one at a time when the committed results were taken, in one batch since the change that
experiments/calibration_batches.py measures); the variants alternate which goes first from model to model.
Reported per model and variant: wall and CPU seconds of `quantize_ptq`; between the two int8 models: how many of the
state-dict tensors (weights, quantizer scales, bias-corrected biases) differ and by how much at most, test accuracy of
each (torch, all 10k test images), the share of test images with the same top-1 class, and the largest logit difference.
Writes experiments/results/<name>.{json,md} (name: calibration_threads unless --name).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402
from train_speed import quantile_candidates  # noqa: E402

import compress.quantize as quantize_mod  # noqa: E402
from compress.export import agreement, torch_logits  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from nas.latency.measure import machine_info  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.train import accuracy, seed_everything, train_candidate  # noqa: E402

BEFORE, AFTER = "train.threads (before)", "1 thread (adopted)"


def compared(before: torch.nn.Module, after: torch.nn.Module, data, *, batch_size: int) -> dict:
    """Two int8 models of one float model, side by side: how many state-dict tensors (weights, quantizer scales,
    bias-corrected biases) differ and by how much at most, each one's test accuracy (torch, every test image), the
    share of test images with the same top-1 class, and the largest logit difference."""
    a, b = before.state_dict(), after.state_dict()
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    la = torch_logits(before, data.test, batch_size=batch_size)
    lb = torch_logits(after, data.test, batch_size=batch_size)
    agree = agreement(la, lb)
    return {
        "tensors": len(a), "tensors_differing": len(differ),
        "max_abs_diff": max((float((a[key].float() - b[key].float()).abs().max()) for key in differ), default=0.0),
        "test_acc_before": accuracy(la, data.test), "test_acc_after": accuracy(lb, data.test),
        "top1_agreement": agree["top1_agreement"], "max_logit_abs_diff": agree["max_abs_diff"],
    }


def main(n_models: int, train_subset: int) -> dict:
    started = time.perf_counter()
    run = compose_run("compress=smoke")
    data = load_dataset(run.data)
    size = run.compress.quantize.calibration_size
    threads = {BEFORE: run.train.threads, AFTER: quantize_mod.CALIBRATION_THREADS}
    adopted = quantize_mod.CALIBRATION_THREADS
    rows = []
    for k, arch in enumerate(quantile_candidates(n_models)):
        seed_everything(0)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        trained = train_candidate(model, data, dataclasses.replace(run.train, subset=train_subset), augment=run.data,
                                  seed=0)  # sets train.threads, as a search does before it compresses
        model.eval()
        order = list(threads) if k % 2 == 0 else list(reversed(threads))
        out = {}
        for name in order:
            quantize_mod.CALIBRATION_THREADS = threads[name]  # before: what the caller ran on
            t, c = time.perf_counter(), time.process_time()
            q, _ = quantize_mod.quantize_ptq(model, data.train, size=size, seed=run.compress.seed)
            out[name] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "model": q}
            quantize_mod.CALIBRATION_THREADS = adopted
            print(f"{arch.summary():60s} {name}: {out[name]['wall_s']:.1f} s", flush=True)
        rows.append({
            "arch": arch.summary(), "trained_val_acc": trained.val_acc, "first": order[0],
            **{f"{key}_{tag}": out[name][key] for name, tag in ((BEFORE, "before"), (AFTER, "after")) for key in ("wall_s", "cpu_s")},
            **compared(out[BEFORE]["model"], out[AFTER]["model"], data, batch_size=run.train.eval_batch_size),
        })
    return {
        "command": command_line("calibration_threads.py"), "machine": machine_info(), "torch": torch.__version__,
        "python": platform.python_version(), "date": str(date.today()), "calibration_size": size,
        "train_threads": run.train.threads, "train_subset": train_subset, "test_images": len(data.test), "rows": rows,
        "wall_s": time.perf_counter() - started,
    }


def comparison_table(rows: list[dict], *, before: str) -> list[str]:
    """The Markdown table of `rows` (`main`'s: seconds per variant and `compared`'s numbers), `before` the name of the
    variant reported as "before" in their `first` column."""
    lines = [
        "| arch | first | s before | s after | CPU s before | CPU s after | tensors differing | max abs diff | "
        "test acc before | test acc after | top-1 agreement | max logit diff |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch'].replace('|', chr(92) + '|')} | {'before' if r['first'] == before else 'after'} | "
            f"{r['wall_s_before']:.1f} | {r['wall_s_after']:.1f} | {r['cpu_s_before']:.1f} | {r['cpu_s_after']:.1f} | "
            f"{r['tensors_differing']} of {r['tensors']} | {r['max_abs_diff']:.2g} | {r['test_acc_before']:.2%} | "
            f"{r['test_acc_after']:.2%} | {r['top1_agreement']:.2%} | {r['max_logit_abs_diff']:.2g} |")
    return lines


def speed_and_accuracy_findings(rows: list[dict]) -> list[str]:
    """The Findings heading and its first two lines: wall-time ratio and test-accuracy change over `rows`."""
    speed = [r["wall_s_before"] / r["wall_s_after"] for r in rows]
    acc = [(r["test_acc_after"] - r["test_acc_before"]) * 100 for r in rows]
    return [
        "", "## Findings", "",
        f"- Calibration wall time, before over adopted: {min(speed):.1f}-{max(speed):.1f}x over the {len(rows)} models "
        "(this machine is shared: read the ratio, not the seconds).",
        f"- Test accuracy, adopted minus before: {min(acc):+.2f} to {max(acc):+.2f} pt; top-1 agreement "
        f"{min(r['top1_agreement'] for r in rows):.2%} at least.",
    ]


def render(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# NNCF int8 calibration on the search's threads against one thread (compress.quantize)", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; torch {result['torch']}; {result['date']}; total {result['wall_s'] / 60:.1f} min", "",
        f"Default-space candidates at MAC-count quantiles, trained (default proxy recipe, {result['train_subset']} training "
        f"images, {result['train_threads']} threads), then calibrated from the same {result['calibration_size']} images "
        f"(compress=smoke) on {result['train_threads']} threads (before) and on 1 (adopted). Seconds: `quantize_ptq` "
        f"(NNCF statistics, fast bias correction, graph work). Accuracies: each int8 model in torch on "
        f"{result['test_images']} test images.", "",
        *comparison_table(rows, before=BEFORE),
    ]
    same = sum(r["tensors_differing"] == 0 for r in rows)
    lines += [
        *speed_and_accuracy_findings(rows),
        f"- The two int8 models are the same bit for bit on {same} of the {len(rows)} models; elsewhere they differ in the "
        "last bits of quantizer scales and bias-corrected biases (a convolution's float summation order depends on the "
        "thread count).", "",
    ]
    return "\n".join(lines)


def cli(*, doc: str, name: str, run: Callable[[int, int], dict], render_md: Callable[[dict], str]) -> None:
    """The command line of this script and of calibration_batches.py: --models, --train-subset, --name (default
    `name`); runs `run(models, train_subset)` and writes its results, rendered by `render_md`."""
    ap = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    ap.add_argument("--models", type=int, default=3, help="candidates of the default space (MAC-count quantiles)")
    ap.add_argument("--train-subset", type=int, default=5000, help="training images per candidate")
    ap.add_argument("--name", default=name, help="results file stem under experiments/results/")
    args = ap.parse_args()
    write_results(args.name, run(args.models, args.train_subset), render_md=render_md)


if __name__ == "__main__":
    with one_line_on_failed_write():
        cli(doc=__doc__, name="calibration_threads", run=main, render_md=render)
