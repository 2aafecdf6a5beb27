"""OpenMP thread settings and denormal flushing for proxy training on 2 CPU cores (issue 6, part 4: "thread settings").

    python experiments/thread_settings.py
    python experiments/thread_settings.py --models "median candidate" --settings active,pinned,flush_denormal \
        --rounds 11 --name thread_settings_median

torch's CPU build runs its intra-op threads on GNU OpenMP (libgomp), which reads its settings from the environment
when torch is imported. Each setting below trains the same model as `experiments/train_speed.py` does (same seed,
batch 128, AdamW, random 28x28 inputs) with what training uses (channels-last, bf16 autocast, glibc keeping freed
memory; 2 threads), against eager float32 under default settings in the same run. Unlike train_speed.py, every
measurement is a fresh process started alone, one after another (rounds alternate the settings): with
`OMP_WAIT_POLICY=ACTIVE` an idle process's OpenMP threads spin for ever, so processes left waiting beside the one
being timed, as train_speed.py keeps them, would steal its cores. Reported: images/s (median over rounds of one
process's `--steps` steps after 3 warm-up steps) and the speed-up against eager. Writes
experiments/results/<name>.{json,md} (default name thread_settings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command_line, one_line_on_failed_write, write_results  # noqa: E402

TRAINING = "channels_last+bf16+malloc"  # train_speed.py's name for what nas.train.fit does by default
BIND = {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}
# key -> (what the row is called, train_speed variant, environment added to the child's)
SETTINGS: dict[str, tuple[str, str, dict[str, str]]] = {
    "eager": ("eager (baseline)", "eager", {}),
    "default": ("training, default settings", TRAINING, {}),
    "active": ("training, OMP_WAIT_POLICY=ACTIVE", TRAINING, {"OMP_WAIT_POLICY": "ACTIVE"}),
    "passive": ("training, OMP_WAIT_POLICY=PASSIVE", TRAINING, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "pinned": ("training, threads pinned (OMP_PROC_BIND=close, OMP_PLACES=cores)", TRAINING, BIND),
    "active+pinned": ("training, ACTIVE + pinned", TRAINING, {"OMP_WAIT_POLICY": "ACTIVE", **BIND}),
    "flush_denormal": ("training, torch.set_flush_denormal(True)", TRAINING, {"_FLUSH_DENORMAL": "1"}),
}
BASELINE, DEFAULT = SETTINGS["eager"][0], SETTINGS["default"][0]

# One measurement: its own interpreter, so libgomp reads the environment afresh.
CHILD = """
import os, sys, time
sys.path.insert(0, {experiments!r})
import torch
from train_speed import BATCH, make_step, models
torch.set_num_threads(2)
if os.environ.get("_FLUSH_DENORMAL"):
    torch.set_flush_denormal(True)
step, _ = make_step(models()[sys.argv[1]], sys.argv[2])
steps = int(sys.argv[3])
t0 = time.perf_counter()
for _ in range(steps):
    step()
print(steps * BATCH / (time.perf_counter() - t0))
"""


def images_per_s(model: str, variant: str, env: dict[str, str], *, steps: int) -> float:
    """Images/s of `steps` training steps of `model` in `variant`, in a fresh process with `env` added."""
    # Settings of the caller's own environment would leak into every row: only the row's settings count.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    code = CHILD.format(experiments=str(ROOT / "experiments"))
    out = subprocess.run([sys.executable, "-c", code, model, variant, str(steps)], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(models: list[str], settings: list[str], *, rounds: int, steps: int) -> list[dict]:
    rows = []
    for model in models:
        per_round: dict[str, list[float]] = {SETTINGS[k][0]: [] for k in settings}
        for _ in range(rounds):
            for name, variant, env in (SETTINGS[k] for k in settings):
                per_round[name].append(images_per_s(model, variant, env, steps=steps))
        eager = statistics.median(per_round[BASELINE])
        for name, values in per_round.items():
            ips = statistics.median(values)
            rows.append({"model": model, "setting": name, "img_per_s": ips, "speedup": ips / eager,
                         "rounds": [round(v, 1) for v in values]})
            print(f"{model:18s} {name:66s} {ips:7.0f} img/s  x{ips / eager:.2f}", flush=True)
    return rows


def render(result: dict) -> str:
    rows = result["rows"]
    lines = ["# Thread settings for proxy training: OpenMP wait policy, pinning, denormals (issue 6, part 4)", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']}; total {result['minutes']:.1f} min", "",
             "Each row: the model of `experiments/train_speed.py` trained in a fresh process started alone (2 threads, "
             f"batch 128, AdamW, random inputs), images/s over {result['steps']} steps after 3 warm-up steps, median of "
             f"{result['rounds']} rounds that alternate the settings. 'training' = what `nas.train.fit` does by default "
             "(channels-last, bf16 autocast, glibc keeping freed memory); the baseline is eager float32 under default "
             "settings. libgomp's default wait policy already spins a while before sleeping.", "",
             "| model | setting | img/s | vs eager | per round |", "|---|---|--:|--:|---|"]
    lines += [f"| {r['model']} | {r['setting']} | {r['img_per_s']:.0f} | {r['speedup']:.2f}x | "
              f"{', '.join(f'{v:.0f}' for v in r['rounds'])} |" for r in rows]
    default = {r["model"]: r["img_per_s"] for r in rows if r["setting"] == DEFAULT}
    others = [name for name in dict.fromkeys(r["setting"] for r in rows) if name not in (BASELINE, DEFAULT)]
    lines += ["", "## Findings", ""]
    for name in others:
        ratios = {r["model"]: r["img_per_s"] / default[r["model"]] for r in rows if r["setting"] == name}
        lines.append(f"- {name[len('training, '):]} against default settings: "
                     + ", ".join(f"{m} {x:.2f}x" for m, x in ratios.items()) + ".")
    best = {}
    for r in rows:
        if r["setting"] != BASELINE and r["speedup"] > best.get(r["model"], (None, 0.0))[1]:
            best[r["model"]] = (r["setting"], r["speedup"])
    lines.append("- Fastest per model: " + "; ".join(f"{m}: {s} ({x:.2f}x eager)" for m, (s, x) in best.items()) + ".")
    # A setting worth shipping must beat the defaults in every round, not only in the median, on every model.
    rounds = {(r["model"], r["setting"]): r["rounds"] for r in rows}
    winners = [name for name in others if all(min(rounds[(m, name)]) > max(rounds[(m, DEFAULT)]) for m in default)]
    lines += [f"- Faster than the default settings in every round on every model: {', '.join(winners) or 'none'}"
              + ("." if winners else "; training keeps torch's defaults."), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default="median candidate,stage-0 conv,stage-0 attn",
                    help="comma-separated names of experiments/train_speed.py's models()")
    ap.add_argument("--settings", default=",".join(SETTINGS),
                    help=f"comma-separated keys of the settings to time (eager and default always): {', '.join(SETTINGS)}")
    ap.add_argument("--name", default="thread_settings", help="results basename under experiments/results/")
    args = ap.parse_args()
    from nas.latency.measure import machine_info

    import torch

    settings = list(dict.fromkeys(["eager", "default", *args.settings.split(",")]))
    if bad := [k for k in settings if k not in SETTINGS]:
        ap.error(f"--settings: {bad} unknown; allowed: {', '.join(SETTINGS)}")
    started = time.perf_counter()
    rows = measure(args.models.split(","), settings, rounds=args.rounds, steps=args.steps)
    result = {"command": command_line("thread_settings.py"),
              "machine": f"{machine_info()}; torch {torch.__version__}", "rounds": args.rounds, "steps": args.steps,
              "minutes": (time.perf_counter() - started) / 60, "rows": rows}
    write_results(args.name, result, render_md=render)


if __name__ == "__main__":
    with one_line_on_failed_write():
        main()
