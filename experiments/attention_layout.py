"""The attention mixer's q/k/v memory layout on CPU: strided head dim (as before) against a contiguous one.

    python experiments/attention_layout.py

`nas.mixers.Attention` splits its 1x1-conv qkv output into heads with a view. On NCHW input (evaluation, ONNX
export, training with `train.channels_last: false`) that view leaves the head dim strided by the token count, and
torch's CPU scaled-dot-product attention then takes its math path, which materialises batch x heads x N x N maps;
with a contiguous head dim it runs its fused (flash) CPU kernel, which keeps none. Channels-last input (the
search's training default) already gives a contiguous head dim. `strided` is the forward before the change (kept
here, as `strided_forward`), `contiguous` the package's `Attention.forward`.

For the most attention-heavy BatchNorm candidate among 200 random ones of metaformer_t (28x28 grey) and of
metaformer_s (64x64 colour), by the bytes of their attention maps: training images/s (batch 32, AdamW, NCHW, fp32 and
bf16 autocast as `train.precision: auto` runs it, `Attention.sdpa_in_fp32` on) and evaluation images/s (no_grad,
batch 128; a quarter of the default batches, for the 2 shared cores), each
variant in a spawned process of its own with 2 threads, timed in interleaved rounds (median reported; the machine
is shared); channels-last bf16 training as the search runs it for reference. Then the peak-memory growth of one
step (fresh process per row, repeated, median), the SDPA kernel torch ran, the largest |difference| between the
layouts' logits and gradients, and ONNX export + onnxruntime against torch for the package's module. LayerNorm
candidates get the kernel, agreement and ONNX checks only: LayerNorm2d's permutes hand attention a channels-last view,
so they ran the fused kernel before too.
Writes experiments/results/<name>.{json,md} (default name attention_layout).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import optuna
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command_line, one_line_on_failed_write, write_results  # noqa: E402

from nas.arch import ArchConfig  # noqa: E402
from nas.mixers import Attention  # noqa: E402
from nas.model import build_model  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACES = {"metaformer_t": (1, 28), "metaformer_s": (3, 64)}  # space -> (in_chans, img_size)
TRAIN_BATCH, EVAL_BATCH = 32, 128  # a quarter of conf/train/default.yaml's 128 and 512: the 2 shared cores
LAYOUTS = ("strided", "contiguous")
# (layout, mode): the modes as a search runs them; channels-last training has a contiguous head dim either way
SPEED_VARIANTS = [(lay, mode) for mode in ("train fp32", "train bf16", "eval fp32") for lay in LAYOUTS] + [
    ("strided", "train bf16 channels-last")]
MEMORY_MODES = ("eval fp32", "train fp32", "train bf16")


def strided_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """`Attention.forward` before the change: q/k/v straight from the view, head dim strided on NCHW input."""
    b, _, h, w = x.shape
    qkv = self.qkv(x).reshape(b, 3, self.num_heads, -1, h * w).permute(1, 0, 2, 4, 3)
    if self.sdpa_in_fp32 and qkv.dtype == torch.bfloat16:
        with torch.autocast(x.device.type, enabled=False):
            out = F.scaled_dot_product_attention(*qkv.float().unbind(0))
    else:
        out = F.scaled_dot_product_attention(*qkv.unbind(0))
    out = out.transpose(-1, -2).reshape(b, -1, h, w)
    return self.proj(out)


def attention_map_bytes(arch: ArchConfig, *, batch_size: int) -> list[int]:
    """Bytes of the batch x heads x N x N float32 maps the math path materialises, per attention block of `arch`."""
    return [batch_size * st.heads * (r * r) ** 2 * 4 for st, r in zip(arch.stages, arch.stage_resolutions())
            if st.mixer == "attn" for _ in range(st.depth)]


def with_layout(model: torch.nn.Module, layout: str) -> torch.nn.Module:
    """`model` with its attention mixers in `layout` (`contiguous`: the package's forward, as built)."""
    if layout == "strided":
        for m in model.modules():
            if isinstance(m, Attention):
                m.forward = types.MethodType(strided_forward, m)
    return model


def candidates(space: str, *, n: int, norm: str, samples: int = 200, seed: int = 0) -> list[ArchConfig]:
    """The `n` candidates of `space` with norm `norm` and the most attention-map bytes per image among `samples`
    random ones."""
    from omegaconf import OmegaConf

    from nas.config import SpaceConfig
    from nas.space import sample_arch

    in_chans, img_size = SPACES[space]
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SpaceConfig),
                                              OmegaConf.load(ROOT / "conf" / "space" / f"{space}.yaml")))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    archs = {}
    for _ in range(samples):
        arch = sample_arch(study.ask(), cfg, in_chans=in_chans, img_size=img_size, num_classes=10)
        archs[arch.to_json()] = arch
    ranked = sorted((a for a in archs.values() if a.norm == norm), key=lambda a: sum(attention_map_bytes(a, batch_size=1)), reverse=True)
    return ranked[:n]


def make_step(arch: ArchConfig, layout: str, mode: str):
    """One step of `mode` ('train fp32', 'train bf16', 'train bf16 channels-last', 'eval fp32') and its batch size."""
    torch.manual_seed(0)
    model = with_layout(build_model(arch), layout)
    train = mode.startswith("train")
    batch = TRAIN_BATCH if train else EVAL_BATCH
    x = torch.rand(batch, arch.in_chans, arch.img_size, arch.img_size)
    y = torch.randint(0, 10, (batch,))
    if "channels-last" in mode:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if not train:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(x)
        return step, batch
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=True)  # as nas.train.fit
    bf16 = "bf16" in mode

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, batch


def _worker(conn, arch_json: str, layout: str, mode: str) -> None:  # in a spawned process
    torch.set_num_threads(2)
    step, batch = make_step(ArchConfig.from_json(arch_json), layout, mode)
    for _ in range(2):
        step()
    conn.send(None)
    while (steps := conn.recv()) is not None:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        conn.send(steps * batch / (time.perf_counter() - t0))


def measure_speed(arch: ArchConfig, *, rounds: int, steps: int) -> dict[str, float]:
    """Images/s (median over interleaved rounds) of every speed variant, each in a process of its own."""
    ctx = mp.get_context("spawn")
    procs = {}
    for lay, mode in SPEED_VARIANTS:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, arch.to_json(), lay, mode), daemon=True)
        p.start()
        parent.recv()  # warmed up
        procs[(lay, mode)] = (parent, p)
    per_round: dict[tuple[str, str], list[float]] = {v: [] for v in SPEED_VARIANTS}
    for r in range(rounds):
        order = SPEED_VARIANTS if r % 2 == 0 else SPEED_VARIANTS[::-1]  # alternate the order too
        for v in order:  # idle processes wait on their pipe: each variant has the 2 cores to itself
            procs[v][0].send(steps)
            per_round[v].append(procs[v][0].recv())
    for conn, p in procs.values():
        conn.send(None)
        p.join()
    return {f"{lay} {mode}": statistics.median(v) for (lay, mode), v in per_round.items()}


CHILD = """
import resource, sys, types, torch
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
from attention_layout import make_step
from nas.arch import ArchConfig
torch.set_num_threads(2)
arch, layout, mode = ArchConfig.from_json(sys.argv[1]), sys.argv[2], sys.argv[3]
step, _ = make_step(arch, layout, mode)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def measure_memory(arch: ArchConfig, layout: str, mode: str) -> int:
    """Growth of a fresh process's peak resident memory (bytes) over one step (the model, optimizer and inputs are
    made before the baseline is read)."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), here=str(Path(__file__).parent)),
                          arch.to_json(), layout, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def sdpa_kernels(arch: ArchConfig) -> dict[str, str]:
    """The SDPA kernel torch runs for each layout, on NCHW and on channels-last input (one training step)."""
    out = {}
    for layout in LAYOUTS:
        for fmt in (torch.contiguous_format, torch.channels_last):
            model = with_layout(build_model(arch), layout).to(memory_format=fmt).train()
            x = torch.rand(2, arch.in_chans, arch.img_size, arch.img_size).contiguous(memory_format=fmt)
            with torch.profiler.profile() as prof:
                model(x).sum().backward()
            names = sorted({e.key.removeprefix("aten::") for e in prof.key_averages()
                            if e.key.startswith("aten::_scaled_dot_product") and "backward" not in e.key})
            out[f"{layout} {'channels-last' if fmt == torch.channels_last else 'NCHW'}"] = ", ".join(names)
    return out


def agreement(arch: ArchConfig) -> dict[str, float]:
    """Largest |strided - contiguous| of the logits (eval, fp32 and bf16 autocast) and of the fp32 gradients."""
    torch.manual_seed(1)
    x = torch.rand(16, arch.in_chans, arch.img_size, arch.img_size)
    torch.manual_seed(0)
    models = {lay: with_layout(build_model(arch), lay) for lay in LAYOUTS}
    models["strided"].load_state_dict(models["contiguous"].state_dict())
    out: dict[str, float] = {}
    for bf16 in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            a, b = (models[lay].eval()(x).float() for lay in LAYOUTS)
        out[f"logits {'bf16' if bf16 else 'fp32'}"] = float((a - b).abs().max())
    grads = []
    for lay in LAYOUTS:
        m = models[lay].train()
        m.zero_grad()
        m(x).logsumexp(1).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    out["grads fp32"] = float((grads[0] - grads[1]).abs().max())
    return out


def onnx_check(arch: ArchConfig) -> float:
    """Largest |onnxruntime - torch| logit of the package's model exported by `nas.checkpoint.export_onnx`."""
    from nas.checkpoint import INPUT_NAME, export_onnx, onnx_session

    torch.manual_seed(0)
    model = build_model(arch).eval()
    x = torch.rand(8, arch.in_chans, arch.img_size, arch.img_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", in_chans=arch.in_chans, img_size=arch.img_size)
        got = onnx_session(path).run(None, {INPUT_NAME: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    return float(np.abs(got - want).max())


def describe(space: str, img_size: int, arch: ArchConfig) -> dict:
    """A candidate's attention tokens and map bytes, the SDPA kernel per layout, the layouts' agreement and ONNX's."""
    tokens = [r * r for st, r in zip(arch.stages, arch.stage_resolutions()) if st.mixer == "attn" for _ in range(st.depth)]
    return {"space": space, "img_size": img_size, "arch": arch.summary(), "arch_json": arch.to_json(), "tokens": tokens,
            "map_bytes_per_image": sum(attention_map_bytes(arch, batch_size=1)), "kernels": sdpa_kernels(arch),
            "agreement": agreement(arch), "onnx_max_abs_diff": onnx_check(arch)}


def render_md(result: dict) -> str:
    lines = ["# Attention q/k/v layout on CPU: strided head dim (before) vs contiguous", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; torch {result['torch']}; {result['date']}; total {result['minutes']:.1f} min", "",
             f"Per space, the {result['per_space']} BatchNorm candidate(s) with the most attention-map bytes among 200 "
             f"random samples (seed 0). Speed: images/s, median of {result['rounds']} interleaved rounds of "
             f"{result['steps']} step(s), each variant in a process of its own with 2 threads (the machine is shared with other jobs); "
             f"training batch {TRAIN_BATCH} (AdamW), evaluation batch {EVAL_BATCH} (no_grad), NCHW input unless "
             "channels-last; bf16 = autocast with `Attention.sdpa_in_fp32` (the attention itself in float32). "
             f"Memory: growth of a fresh process's peak RSS over one step, median of {result['mem_repeats']} runs. "
             f"1-minute load average at the start and end: {result['load_avg_1min'][0]:.1f}, "
             f"{result['load_avg_1min'][1]:.1f} (on 2 cores: other jobs ran throughout).", ""]
    for r in result["rows"]:
        s, m = r["speed"], r["memory"]
        lines += [f"## {r['space']} at {r['img_size']} px: `{r['arch']}`", "",
                  f"Attention tokens per block: {r['tokens']}; attention maps per image: "
                  f"{r['map_bytes_per_image'] / 2**10:.0f} KiB. SDPA kernel: "
                  + "; ".join(f"{k}: `{v}`" for k, v in r["kernels"].items()) + ".", "",
                  "| mode | strided img/s | contiguous img/s | contiguous / strided | strided peak MiB | contiguous peak MiB |",
                  "|---|--:|--:|--:|--:|--:|"]
        for mode in ("train fp32", "train bf16", "eval fp32"):
            a, b = s[f"strided {mode}"], s[f"contiguous {mode}"]
            lines.append(f"| {mode} | {a:.3g} | {b:.3g} | {b / a:.2f}x | {m[f'strided {mode}'] / 2**20:.0f} | "
                         f"{m[f'contiguous {mode}'] / 2**20:.0f} |")
        lines += [f"| train bf16 channels-last (search default; same kernel either layout) | "
                  f"{s['strided train bf16 channels-last']:.3g} | | | | |", "",
                  "Largest |strided - contiguous|: " + ", ".join(f"{k} {v:.2g}" for k, v in r["agreement"].items())
                  + f". ONNX (onnxruntime vs torch, contiguous): {r['onnx_max_abs_diff']:.2g}.", ""]
    for r in result.get("ln_rows", []):
        lines += [f"## {r['space']} at {r['img_size']} px, LayerNorm (untimed): `{r['arch']}`", "",
                  f"Attention tokens per block: {r['tokens']}. SDPA kernel: "
                  + "; ".join(f"{k}: `{v}`" for k, v in r["kernels"].items())
                  + ". Largest |strided - contiguous|: " + ", ".join(f"{k} {v:.2g}" for k, v in r["agreement"].items())
                  + f". ONNX (onnxruntime vs torch, contiguous): {r['onnx_max_abs_diff']:.2g}.", ""]
    ratios = {mode: [r["speed"][f"contiguous {mode}"] / r["speed"][f"strided {mode}"] for r in result["rows"]]
              for mode in ("train fp32", "train bf16", "eval fp32")}
    mem = {mode: [r["memory"][f"contiguous {mode}"] / r["memory"][f"strided {mode}"] for r in result["rows"]]
           for mode in MEMORY_MODES}
    lines += ["## Summary", ""]
    lines += [f"- {mode}: contiguous / strided images/s {min(v):.2f}-{max(v):.2f}x over {len(v)} candidates." for mode, v in ratios.items()]
    lines += [f"- {mode}: contiguous / strided peak memory {min(v):.2f}-{max(v):.2f}x." for mode, v in mem.items()]
    worst = max(max(v) for v in mem.values())
    diffs = [r["agreement"]["logits fp32"] for r in result["rows"] + result.get("ln_rows", [])]
    lines += [f"- Verdict: contiguous adopted (`nas.mixers.Attention`). Its fused kernel stores no N x N maps (peak memory "
              f"here at most {worst:.2f}x the strided layout's; at 1024-2304 tokens see memory_estimate_fused.md), its "
              f"float32 logits agree to {max(diffs):.1g}, and ONNX export still matches torch. Speed on this shared "
              "machine was mixed (the ranges above): not a reason either way.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="attention_layout", help="results file stem")
    parser.add_argument("--per-space", type=int, default=1, help="timed (BatchNorm) candidates per space")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--mem-repeats", type=int, default=2)
    parser.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = parser.parse_args(argv)
    if args.render:
        import json

        from _common import RESULTS
        write_results(args.name, json.loads((RESULTS / f"{args.name}.json").read_text()), render_md=render_md,
                      write_json=False)
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()
    torch.set_num_threads(2)
    rows, ln_rows = [], []
    for space, (in_chans, img_size) in SPACES.items():
        for arch in candidates(space, n=args.per_space, norm="bn"):
            print(f"{space}: {arch.summary()}", flush=True)
            speed = measure_speed(arch, rounds=args.rounds, steps=args.steps)
            memory = {}
            for mode in MEMORY_MODES:
                runs = {lay: [] for lay in LAYOUTS}
                for _ in range(args.mem_repeats):
                    for lay in LAYOUTS:  # interleaved
                        runs[lay].append(measure_memory(arch, lay, mode))
                memory.update({f"{lay} {mode}": statistics.median(v) for lay, v in runs.items()})
            row = {**describe(space, img_size, arch), "speed": speed, "memory": memory}
            print({k: row[k] for k in ("speed", "memory", "kernels", "agreement", "onnx_max_abs_diff")}, flush=True)
            rows.append(row)
        # LayerNorm2d hands attention a channels-last-strided tensor (its permutes): the kernel either way, untimed
        for arch in candidates(space, n=1, norm="ln"):
            ln_rows.append(describe(space, img_size, arch))
            print(ln_rows[-1], flush=True)
    from nas.latency.measure import machine_info

    result = {"command": command_line("attention_layout.py", argv), "machine": machine_info(), "torch": torch.__version__,
              "date": str(datetime.date.today()), "minutes": (time.perf_counter() - started) / 60,
              "load_avg_1min": [load_before[0], os.getloadavg()[0]], "per_space": args.per_space, "rounds": args.rounds,
              "steps": args.steps, "mem_repeats": args.mem_repeats, "rows": rows, "ln_rows": ln_rows}
    write_results(args.name, result, render_md=render_md)
    return 0


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
