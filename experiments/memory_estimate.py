"""How close `nas.memory.activation_bytes` comes to the memory a forward pass / training step really takes.

    python experiments/memory_estimate.py

Each row runs one model in a fresh process (1 thread) and records the growth of its peak resident memory
(ru_maxrss) over one step on random images: an evaluation forward pass (no_grad, eval mode), a float32 training
step (forward + backward) and one under bf16 autocast (what `train.precision: auto` runs on CPUs with native bf16).
The models are small-batch stand-ins for the large cases the estimate guards (attention in an early stage of a 64-96 px
input, a convolution-only model, 28 px attention): a few hundred MiB each, so the run fits any machine. Reported:
measured and estimated MiB and estimate / measured (>= 1: the estimate is on the safe side). Writes
experiments/results/<name>.{json,md} (default name memory_estimate).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command_line, write_results  # noqa: E402

from nas.arch import ArchConfig, StageConfig  # noqa: E402

S = StageConfig
# (name, arch, batch): batches for a few hundred MiB per step (the attention-first models ran at 8 and 4 while attention
# kept batch x heads x N x N maps; without the maps, a first step's fixed costs outweigh the activations at those)
MODELS: list[tuple[str, ArchConfig, int]] = [
    ("attn in stage 0, 64 px (1024 tokens)",
     ArchConfig(stages=(S("attn", 2, 64, head_dim=16), S("conv", 1, 96), S("attn", 2, 128, head_dim=32),
                        S("sepconv", 1, 192)), in_chans=3, img_size=64), 32),
    ("attn in stage 0, 96 px (2304 tokens)",
     ArchConfig(stages=(S("attn", 1, 32, head_dim=16), S("pool", 1, 64), S("attn", 2, 128, head_dim=32)),
                in_chans=3, img_size=96), 32),
    ("attn in stages 2-3, 96 px",
     ArchConfig(stages=(S("sepconv", 2, 64), S("conv", 2, 128), S("attn", 4, 160, head_dim=32), S("attn", 2, 256, head_dim=32)),
                in_chans=3, img_size=96), 32),
    ("convolutions only, 96 px",
     ArchConfig(stages=(S("conv", 2, 64), S("pool", 3, 96), S("sepconv", 2, 192)), in_chans=3, img_size=96), 32),
    ("attn in stages 0-1, 28 px",
     ArchConfig(stages=(S("attn", 2, 32, head_dim=8), S("attn", 2, 64, head_dim=16), S("conv", 1, 128))), 64),
]
MODES = ("eval", "train fp32", "train bf16")

CHILD = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from nas.arch import ArchConfig
from nas.model import build_model
torch.set_num_threads(1)
arch, batch, mode = ArchConfig.from_json(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = build_model(arch).train(mode != "eval")
x = torch.rand(batch, arch.in_chans, arch.img_size, arch.img_size)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "eval":
    with torch.no_grad():
        model(x)
else:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "train bf16"):
        y = model(x)
    y.float().sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def measure(arch: ArchConfig, batch: int, mode: str) -> int:
    """Growth of the peak resident memory (bytes) of a fresh process over one step."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), arch.to_json(), str(batch), mode],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def render_md(result: dict) -> str:
    lines = ["# Activation-memory estimate vs measured peak", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; torch {result['torch']}; {result['date']}", "",
             "Growth of a fresh process's peak resident memory over one step (1 thread) against "
             "`nas.memory.activation_bytes` (ratio >= 1: the estimate is on the safe side).", "",
             "| model | batch | step | measured MiB | estimated MiB | estimate / measured |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['mode']} | {r['measured'] / 2**20:.0f} | "
                     f"{r['estimated'] / 2**20:.0f} | {r['estimated'] / r['measured']:.2f} |")
    ratios = [r["estimated"] / r["measured"] for r in result["rows"]]
    lines += ["", f"estimate / measured: {min(ratios):.2f} to {max(ratios):.2f} over {len(ratios)} rows.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="memory_estimate", help="results file stem")
    args = parser.parse_args(argv)
    from nas.memory import activation_bytes

    rows = []
    for name, arch, batch in MODELS:
        for mode in MODES:
            measured = measure(arch, batch, mode)
            estimated = activation_bytes(arch, batch_size=batch, training=mode != "eval")
            rows.append({"model": name, "arch": arch.to_json(), "batch": batch, "mode": mode, "measured": measured,
                         "estimated": estimated})
            print(f"{name} {mode}: {measured / 2**20:.0f} MiB measured, {estimated / 2**20:.0f} MiB estimated", flush=True)
    import datetime

    import torch

    from nas.latency.measure import machine_info

    result = {"command": command_line("memory_estimate.py", argv), "machine": machine_info(), "torch": torch.__version__,
              "date": str(datetime.date.today()), "rows": rows}
    write_results(args.name, result, render_md=render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
