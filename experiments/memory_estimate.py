"""How close `nas.memory.activation_bytes` comes to the memory a forward pass / training step really takes.

    python experiments/memory_estimate.py

Each row runs one model in a fresh process (1 thread) and records the growth of its peak resident memory
(ru_maxrss) over one step on random images: an evaluation forward pass (no_grad, eval mode), a float32 training
step (forward + backward) and one under bf16 autocast (what `train.precision: auto` runs on CPUs with native bf16).
Each process first applies the allocator settings a search applies by default: with `train.keep_freed_memory: true`
(the default), glibc's malloc keeps freed memory (`nas.train.keep_freed_memory`: a 32 MiB mmap threshold, no
trimming), so tensors up to 32 MiB come from its heap, where freed ones leave holes. `--glibc-malloc-defaults`
measures under glibc's defaults instead, as the committed memory_estimate and memory_estimate_fused results were.
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
from _common import ROOT, command_line, one_line_on_failed_write, write_results  # noqa: E402

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

# argv: arch JSON, batch, mode, keep ("1": apply nas.train.keep_freed_memory first, as a search's training does);
# prints the peak's growth in bytes and whether the allocator setting took effect (1/0; 0 too where it was not asked)
CHILD = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from nas.arch import ArchConfig
from nas.model import build_model
from nas.train import keep_freed_memory
applied = keep_freed_memory() if sys.argv[4] == "1" else False
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
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, int(applied))
"""


def measure(arch: ArchConfig, batch: int, mode: str, *, keep_freed_memory: bool) -> tuple[int, bool]:
    """Growth of the peak resident memory (bytes) of a fresh process over one step, and whether glibc's malloc kept
    freed memory in it (`keep_freed_memory` asks for it; False where the C library is not glibc)."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), arch.to_json(), str(batch), mode,
                          "1" if keep_freed_memory else "0"], capture_output=True, text=True, check=True)
    grown, applied = out.stdout.strip().splitlines()[-1].split()
    return int(grown), applied == "1"


def search_keeps_freed_memory() -> bool:
    """Whether a search with the default config has glibc keep freed memory (`train.keep_freed_memory`)."""
    from _common import compose_run

    return bool(compose_run().train.keep_freed_memory)


def allocator_line(result: dict) -> str:
    """The Markdown's sentence on the allocator settings `result` was measured under (a result without the key was
    measured before the script applied the search's: with glibc's defaults)."""
    if result.get("keep_freed_memory"):
        return ("Allocator: glibc's malloc told to keep freed memory (`nas.train.keep_freed_memory`), as a search does "
                "by default (`train.keep_freed_memory: true`).")
    return ("Allocator: glibc's default malloc settings, not the search's default (`train.keep_freed_memory: true`, "
            "`nas.train.keep_freed_memory`)" + ("." if "keep_freed_memory" in result else
                                                 ": measured before the script applied the search's; "
                                                 "`--glibc-malloc-defaults` measures as it was."))


def render_md(result: dict) -> str:
    lines = ["# Working-memory estimate vs measured peak", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; torch {result['torch']}; {result['date']}  ", allocator_line(result), "",
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
    parser.add_argument("--glibc-malloc-defaults", action="store_true",
                        help="measure with glibc's default malloc settings, not the search's default allocator settings")
    args = parser.parse_args(argv)
    from nas.memory import activation_bytes

    keep = not args.glibc_malloc_defaults and search_keeps_freed_memory()
    rows, kept = [], []
    for name, arch, batch in MODELS:
        for mode in MODES:
            measured, applied = measure(arch, batch, mode, keep_freed_memory=keep)
            kept.append(applied)
            estimated = activation_bytes(arch, batch_size=batch, training=mode != "eval")
            rows.append({"model": name, "arch": arch.to_json(), "batch": batch, "mode": mode, "measured": measured,
                         "estimated": estimated})
            print(f"{name} {mode}: {measured / 2**20:.0f} MiB measured, {estimated / 2**20:.0f} MiB estimated", flush=True)
    import datetime

    import torch

    from nas.latency.measure import machine_info

    result = {"command": command_line("memory_estimate.py", argv), "machine": machine_info(), "torch": torch.__version__,
              "date": str(datetime.date.today()), "keep_freed_memory": all(kept), "rows": rows}
    write_results(args.name, result, render_md=render_md)
    return 0


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
