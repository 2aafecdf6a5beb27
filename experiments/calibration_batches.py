"""Benchmark: NNCF int8 calibration (`compress.quantize.quantize_ptq`) fed one image at a time (before) against batches
of up to `compress.quantize.CALIBRATION_BATCH_SIZE` with NNCF's batchwise statistics (adopted): seconds, and whether
the int8 model stays the same.

    python experiments/calibration_batches.py           # 3 candidates, 300 images each: 1 min on 2 cores (2026-12-07)

Candidates of the default space at MAC-count quantiles (as in experiments/train_speed.py) are trained with the default
proxy recipe on a fixed subset of the training images (the int8 comparison needs a trained model, not a good one), on
train.threads torch threads as a search trains. The same model is then calibrated once per variant from the same
calibration images (the default compress settings' `calibration_size`), on `CALIBRATION_THREADS`, after one
untimed calibration that pays NNCF's first-use cost; the variants alternate which goes first from model to model. "One at a time" is `quantize_ptq` with a batch size of 1, which feeds
NNCF each image as its own item, as it did before batches. Reported per model and variant: wall and CPU seconds of
`quantize_ptq`; between the two int8 models what experiments/calibration_threads.py reports (`compared`).
Writes experiments/results/<name>.{json,md} (name: calibration_batches unless --name).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, compose_run, one_line_on_failed_write  # noqa: E402
from calibration_threads import cli, compared, comparison_table, speed_and_accuracy_findings  # noqa: E402
from train_speed import quantile_candidates  # noqa: E402

import compress.quantize as quantize_mod  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from nas.latency.measure import machine_info  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.train import seed_everything, train_candidate  # noqa: E402

BEFORE, AFTER = "one at a time (before)", "batches (adopted)"


def main(n_models: int, train_subset: int) -> dict:
    started = time.perf_counter()
    run = compose_run()
    data = load_dataset(run.data)
    size = run.compress.quantize.calibration_size
    adopted = quantize_mod.CALIBRATION_BATCH_SIZE
    batch = {BEFORE: 1, AFTER: adopted}
    archs = quantile_candidates(n_models)
    # NNCF's first calibration in a process loads its extension and traces its hooks (seconds, once): done untimed
    # here, so that neither variant's first model pays it
    quantize_mod.quantize_ptq(build_model(archs[0]).eval(), data.train, size=8, seed=0)
    rows = []
    for k, arch in enumerate(archs):
        seed_everything(0)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        trained = train_candidate(model, data, dataclasses.replace(run.train, subset=train_subset), augment=run.data,
                                  seed=0)
        model.eval()
        order = list(batch) if k % 2 == 0 else list(reversed(batch))
        out = {}
        for name in order:
            quantize_mod.CALIBRATION_BATCH_SIZE = batch[name]
            t, c = time.perf_counter(), time.process_time()
            q, _ = quantize_mod.quantize_ptq(model, data.train, size=size, seed=run.compress.seed)
            out[name] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "model": q}
            quantize_mod.CALIBRATION_BATCH_SIZE = adopted
            print(f"{arch.summary():60s} {name}: {out[name]['wall_s']:.1f} s", flush=True)
        rows.append({
            "arch": arch.summary(), "trained_val_acc": trained.val_acc, "first": order[0],
            **{f"{key}_{tag}": out[name][key] for name, tag in ((BEFORE, "before"), (AFTER, "after"))
               for key in ("wall_s", "cpu_s")},
            **compared(out[BEFORE]["model"], out[AFTER]["model"], data, batch_size=run.train.eval_batch_size),
        })
    return {
        "command": command_line("calibration_batches.py"), "machine": machine_info(), "torch": torch.__version__,
        "python": platform.python_version(), "date": str(date.today()), "calibration_size": size,
        "batch_size": adopted, "calibration_threads": quantize_mod.CALIBRATION_THREADS,
        "train_threads": run.train.threads, "train_subset": train_subset, "test_images": len(data.test), "rows": rows,
        "wall_s": time.perf_counter() - started,
    }


def render(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "# NNCF int8 calibration fed one image at a time against batches (compress.quantize)", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; torch {result['torch']}; {result['date']}; total {result['wall_s'] / 60:.1f} min", "",
        f"Default-space candidates at MAC-count quantiles, trained (default proxy recipe, {result['train_subset']} training "
        f"images, {result['train_threads']} threads), then calibrated from the same {result['calibration_size']} images "
        f"(the default compress settings) on {result['calibration_threads']} thread(s), after one untimed calibration "
        f"(NNCF's first use in a process): one image per NNCF item (before) "
        f"and batches of up to {result['batch_size']} with NNCF's batchwise statistics (adopted). Seconds: `quantize_ptq` "
        f"(NNCF statistics, fast bias correction, graph work). Accuracies: each int8 model in torch on "
        f"{result['test_images']} test images.", "",
        *comparison_table(rows, before=BEFORE),
    ]
    lines += [
        *speed_and_accuracy_findings(rows),
        f"- Tensors differing between the two int8 models: {', '.join(str(r['tensors_differing']) for r in rows)}, at most "
        f"{max(r['max_abs_diff'] for r in rows):.2g} apart (batched convolutions sum in another order).", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    with one_line_on_failed_write():
        cli(doc=__doc__, name="calibration_batches", run=main, render_md=render)
