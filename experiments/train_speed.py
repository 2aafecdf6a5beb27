"""Proxy-training throughput on 2 CPU cores: eager float32 (the baseline) against channels-last memory,
bfloat16 autocast, glibc's allocator keeping freed memory, fused AdamW, torch.compile and two 1-thread workers, per stage-0
mixer and for the default space's median candidate (issue 6, part 4); then the accuracy bf16 costs, on
Fashion-MNIST with the default recipe.

    python experiments/train_speed.py
    python experiments/train_speed.py --rounds 7 --name train_speed_fused --variants "eager,channels_last,\
channels_last+bf16+avgpool,channels_last+bf16,channels_last+bf16+malloc,channels_last+bf16+malloc+fused,\
compile+channels_last+bf16+malloc+fused,2 workers: channels_last+bf16+malloc+fused"
    python experiments/train_speed.py --acc-models 0 --name train_speed_xeon_attn --variants "eager,channels_last,\
channels_last+bf16+bf16attn,channels_last+bf16,channels_last+bf16+malloc,2 workers: channels_last+bf16+malloc"
    python experiments/train_speed.py --variants "eager,channels_last+bf16+malloc" --acc-mixer attn \
        --name train_speed_xeon_attn_acc
    python experiments/train_speed.py --rounds 9 --acc-models 0 --name train_speed_headgrad --variants "eager,\
channels_last+bf16+malloc+fused+nchwheadgrad,channels_last+bf16+malloc+fused"
    python experiments/train_speed.py --rounds 9 --acc-models 0 --act gelu --name train_speed_gelu --variants "eager,\
channels_last+bf16+malloc+fused+nchwheadgrad+clgelu,channels_last+bf16+malloc+fused"
    python experiments/train_speed.py --shared-process --acc-models 0 --name train_speed_shared \
        --variants "eager,channels_last,channels_last+bf16+avgpool,channels_last+bf16,compile+channels_last+bf16,2 workers: channels_last+bf16"

Each variant trains the same model (same seed, batch 128, AdamW) on random 28x28 inputs: a few warm-up
steps (for torch.compile they include the compilation, reported separately), then timed steps,
alternating variants in rounds so that machine noise hits them alike. Each variant runs in a process of its
own with 2 threads, as a search trains its candidates; the processes not stepping wait on a pipe. "2 workers":
two processes with 1 thread each train at the same time (how `python -m nas.search -m
hydra/launcher=joblib search.worker=0,1 train.threads=1` evaluates candidates); their images/s are summed.
`avgpool`: the pool mixer on AvgPool2d's own bf16 kernel instead of `nas.mixers.box_mean` (the code
before that change). `bf16attn`: the attention mixer's scaled-dot-product attention in bf16 too, as before
`nas.mixers.Attention.sdpa_in_fp32`. `malloc`: `nas.train.keep_freed_memory` (what `train.keep_freed_memory: true` does).
`fused`: torch's fused AdamW kernel instead of its default multi-tensor one (what `nas.train.fit` uses since
experiments/results/train_speed_amd_fused.md; train_speed_fused.md measured it on the Xeon before).
`nchwheadgrad`: the head norm's backward gets the NCHW gradient the global mean hands back, as before
`nas.model.MetaFormer.head_grad_channels_last`. `clgelu`: torch's channels-last GELU kernel, as before
`nas.mixers.GELU` (only with `--act gelu`: the timed models use ReLU).
`--shared-process` runs the single-process variants in this one process instead, as runs of this script did
before: there a variant's speed also depends on what the allocator kept from the models and variants timed
before it. Reported: images/s (median of rounds), the speed-up against eager measured in the
same run, the compile time, and the images after which compiling pays off. Then `--acc-models` candidates of the default space
are trained with the default proxy recipe (conf/train/default.yaml) in float32 and in bf16, both
channels-last, and their validation accuracies compared. Writes experiments/results/<name>.{json,md}
(default name train_speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path
from typing import Callable

import optuna
import torch
import torch.nn.functional as F

from _common import command_line, compose_run, one_line_on_failed_write  # (also puts the project on sys.path)
from nas.arch import ACTS, MIXERS, ArchConfig, StageConfig
from nas.config import SpaceConfig
from nas.latency.measure import machine_info
from nas.latency.ops import count_macs
from nas.mixers import GELU, Attention, Pooling
from nas.model import build_model
from nas.space import sample_arch
from nas.train import keep_freed_memory

OUT = Path(__file__).resolve().parent / "results"
optuna.logging.set_verbosity(optuna.logging.WARNING)
BATCH = 128


def candidates_by_macs(space_yaml: Path, *, n: int = 51, seed: int = 0) -> list[ArchConfig]:
    """`n` random samples of the space, sorted by MAC count."""
    from omegaconf import OmegaConf

    space = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SpaceConfig), OmegaConf.load(space_yaml)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    archs = []
    for _ in range(n):
        trial = study.ask()
        archs.append(sample_arch(trial, space, in_chans=1, img_size=28, num_classes=10))
    return sorted(archs, key=count_macs)


DEFAULT_SPACE = Path(__file__).resolve().parent.parent / "conf" / "space" / "metaformer_t.yaml"


def quantile_candidates(n_models: int, space_yaml: Path = DEFAULT_SPACE, *, mixer: str | None = None) -> list[ArchConfig]:
    """`n_models` candidates of the space at evenly spaced MAC-count quantiles (ends excluded); with `mixer`, among
    the samples with a stage of that mixer only."""
    archs = [a for a in candidates_by_macs(space_yaml) if mixer is None or any(st.mixer == mixer for st in a.stages)]
    return [archs[round((i + 1) / (n_models + 1) * (len(archs) - 1))] for i in range(n_models)]


def median_candidate(space_yaml: Path = DEFAULT_SPACE, *, n: int = 51, seed: int = 0) -> ArchConfig:
    """The candidate with the median MAC count among `n` random samples of the space."""
    return candidates_by_macs(space_yaml, n=n, seed=seed)[n // 2]


def models(act: str | None = None) -> dict[str, ArchConfig]:
    """The timed models; `act`: every one with that activation instead of its own."""
    out = {}
    for mixer in MIXERS:  # one model per mixer in stage 0, as in design_probes.py
        out[f"stage-0 {mixer}"] = ArchConfig(stages=(
            StageConfig(mixer=mixer, depth=2, width=32, head_dim=8, mlp_ratio=4),
            StageConfig(mixer="sepconv", depth=2, width=48, mlp_ratio=4),
            StageConfig(mixer="attn", depth=1, width=128, head_dim=32, mlp_ratio=3)))
    out["median candidate"] = median_candidate()
    return {name: arch if act is None else dataclasses.replace(arch, act=act) for name, arch in out.items()}


def make_step(arch: ArchConfig, variant: str) -> tuple[Callable[[], None], float]:
    """A training step of `arch` in `variant` (`+`-joined: channels_last, bf16, compile, avgpool, bf16attn, malloc, fused,
    nchwheadgrad, clgelu; `eager` alone is none of them), and the seconds its warm-up (incl. compilation) took."""
    torch.manual_seed(0)
    model = build_model(arch).train()
    if "nchwheadgrad" in variant:  # the head norm's gradient as the global mean hands it back, as before
        model.head_grad_channels_last = False
    if "malloc" in variant:  # process-wide: only in a process of its own (see measure)
        keep_freed_memory()
    for m in model.modules():
        if "avgpool" in variant and isinstance(m, Pooling):  # AvgPool2d's own bf16 kernel, as before nas.mixers.box_mean
            m.box_in_bf16 = False
        if "bf16attn" in variant and isinstance(m, Attention):  # the attention itself in bf16, as before sdpa_in_fp32
            m.sdpa_in_fp32 = False
        if "clgelu" in variant and isinstance(m, GELU):  # torch's channels-last GELU kernel, as before GELU.nhwc_view
            m.nhwc_view = False
    x, y = torch.rand(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fwd = torch.compile(model) if "compile" in variant else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=True if "fused" in variant else None)

    bf16 = "bf16" in variant

    def step() -> None:
        # As nas.train.fit does: autocast around the forward, the loss in float32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    return step, time.perf_counter() - t0


WORKERS = "2 workers"  # variant prefix: "2 workers: channels_last+bf16" = two 1-thread processes of that variant


def _worker(conn, arch_json: str, variant: str, threads: int) -> None:  # in a spawned process
    torch.set_num_threads(threads)
    step, warm = make_step(ArchConfig.from_json(arch_json), variant)
    conn.send(warm)
    while (steps := conn.recv()) is not None:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        conn.send(time.perf_counter() - t0)


class Workers:
    """`n` processes with `threads` threads each, stepping the same variant at the same time on command."""

    def __init__(self, arch: ArchConfig, variant: str, *, n: int, threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, arch.to_json(), variant, threads), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.warmup_s = max(c.recv() for c in self.conns)

    def run(self, steps: int) -> float:
        """Images/s of all the processes together over `steps` steps each."""
        for c in self.conns:
            c.send(steps)
        return sum(steps * BATCH / c.recv() for c in self.conns)

    def close(self) -> None:
        for c, p in zip(self.conns, self.procs):
            c.send(None)
            p.join()


def _in_this_process(arch: ArchConfig, variant: str) -> tuple[Callable[[int], float], float]:
    step, warm = make_step(arch, variant)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        return n * BATCH / (time.perf_counter() - t0)

    return run, warm


def measure(variants: list[str], *, rounds: int, steps: int, shared: bool = False, act: str | None = None) -> list[dict]:
    """Images/s of every variant on every model, in interleaved rounds. Each variant trains in a process of its own
    (2 threads; `2 workers`: two of 1 thread), or, with `shared`, all single-process variants in this one."""
    if shared and (bad := [v for v in variants if "malloc" in v and not v.startswith(WORKERS)]):
        raise SystemExit(f"--shared-process: {bad} change this process's allocator for every variant after them; "
                         "run them without --shared-process")
    torch.set_num_threads(2)
    rows = []
    for name, arch in models(act).items():
        # A fresh Dynamo state per model: otherwise its recompile limit is reached after a few models and
        # torch.compile silently runs eager (seen in a first run of this script).
        torch._dynamo.reset()
        prepared: dict[str, tuple] = {}
        for v in variants:
            if v.startswith(WORKERS) or not shared:
                workers = (Workers(arch, v.split(":", 1)[1].strip(), n=2, threads=1) if v.startswith(WORKERS)
                           else Workers(arch, v, n=1, threads=2))
                prepared[v] = (workers.run, workers.warmup_s, workers)
            else:
                prepared[v] = (*_in_this_process(arch, v), None)
        per_round: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for v in variants:  # idle processes wait on their pipe, so each variant has the 2 cores to itself
                per_round[v].append(prepared[v][0](steps))
        for _, _, workers in prepared.values():
            if workers is not None:
                workers.close()
        eager = statistics.median(per_round["eager"])
        eager_warm = prepared["eager"][1]
        for v in variants:
            ips = statistics.median(per_round[v])
            extra = prepared[v][1] - eager_warm  # warm-up seconds beyond eager's (compilation)
            saved_per_image = 1 / eager - 1 / ips
            rows.append({
                "model": name, "arch": arch.summary(), "variant": v, "img_per_s": ips, "speedup": ips / eager,
                "warmup_s": prepared[v][1],
                "break_even_images": (extra / saved_per_image) if "compile" in v and saved_per_image > 0 and extra > 0 else None,
            })
            print(f"{name:18s} {v:24s} {ips:8.0f} img/s  x{ips / eager:.2f}  warm-up {prepared[v][1]:.1f} s", flush=True)
    return rows


def accuracy_check(n_models: int, *, mixer: str | None = None) -> list[dict]:
    """Train `n_models` candidates of the default space (MAC-count quantiles; with `mixer`, among those with a stage
    of that mixer) with the default proxy recipe on Fashion-MNIST, in float32 and in bf16 (both channels-last), same
    seed: val acc and seconds."""
    from nas.data import load_dataset
    from nas.train import seed_everything, train_candidate

    run = compose_run()  # what `python -m nas.search` trains each candidate with
    data = load_dataset(run.data)
    rows = []
    for arch in quantile_candidates(n_models, mixer=mixer):
        for precision in ("fp32", "bf16"):
            seed_everything(0)
            model = build_model(arch)
            model.set_normalization(data.mean, data.std)
            cfg = dataclasses.replace(run.train, precision=precision)
            r = train_candidate(model, data, cfg, augment=run.data, seed=0)
            rows.append({"arch": arch.summary(), "macs": count_macs(arch), "precision": r.precision,
                         "val_acc": r.val_acc, "train_s": r.seconds, "img_per_s": r.images_per_s,
                         "recipe": f"{cfg.epochs} epochs x {len(data.train) if cfg.subset is None else cfg.subset} images"})
            print(f"{arch.summary():60s} {precision}: val acc {r.val_acc:.4f}, {r.seconds:.0f} s", flush=True)
    return rows


def render(result: dict) -> str:
    rows = result["rows"]
    # Results written before the protocol was recorded all came from the shared one.
    shared = result.get("protocol", "shared process") == "shared process"
    lines = ["# Proxy-training throughput: eager vs channels-last, bf16, allocator, torch.compile, 2 workers (issue 6, part 4)", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; total {result['minutes']:.1f} min", "",
             f"Batch {BATCH}, AdamW, random 28x28 inputs; images/s = median of {result['rounds']} interleaved "
             f"rounds of {result['steps']} steps; speed-up against eager (float32, default layout, 2 threads) in the same run. "
             + ("All single-process variants of a model ran in one shared process (the former protocol): a variant's speed "
                "there also depends on what the allocator kept from the models and variants timed before it. "
                if shared else
                "Each variant ran in a fresh process of its own (2 threads), as a search trains its candidates. ")
             + "`malloc`: `nas.train.keep_freed_memory` (glibc keeps freed buffers mapped; `train.keep_freed_memory: true`). "
             + ("`fused`: torch's fused AdamW kernel (`AdamW(fused=True)`). " if any("fused" in r["variant"] for r in rows) else "")
             + "`2 workers`: two processes with 1 thread each, training at the same time, images/s summed. "
             "Warm-up = the first 3 steps (for compile: the compilation). Break-even = training images after which "
             "compiling has paid for itself.", "",
             "| model | variant | img/s | vs eager | warm-up s | break-even images |", "|---|---|--:|--:|--:|--:|"]
    for r in rows:
        be = f"{r['break_even_images']:,.0f}" if r["break_even_images"] else "–"
        lines.append(f"| {r['model']} | {r['variant']} | {r['img_per_s']:.0f} | {r['speedup']:.2f}x | {r['warmup_s']:.1f} | {be} |")
    speed = {(r["model"], r["variant"]): r["speedup"] for r in rows}
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    span = lambda v: (f"{min(x for (m, w), x in speed.items() if w == v):.2f}-"  # noqa: E731
                      f"{max(x for (m, w), x in speed.items() if w == v):.2f}x")
    median = {v: speed.get(("median candidate", v)) for v in variants}
    lines += ["", f"Median candidate: `{next(r['arch'] for r in rows if r['model'] == 'median candidate')}`"
              + (f" (all models with act `{result['act']}`, `--act`)" if result.get("act") else ""), "",
              "## Findings", ""]
    lines += [f"- {v}: {span(v)} eager over the {len({m for m, w in speed if w == v})} models; median candidate "
              f"{median[v]:.2f}x." for v in variants if v != "eager"]
    single = {v: x for v, x in median.items() if x is not None and not v.startswith(WORKERS)}
    best = max(single, key=single.get)
    workers = {v: x for v, x in median.items() if x is not None and v.startswith(WORKERS)}
    lines += [
        "- Adopted: channels-last (`train.channels_last: true`, same math) and bf16 autocast where the CPU computes "
        "bf16 natively (`train.precision: auto`; float32 weights, loss in float32). torch.compile is not adopted: "
        "a compilation per candidate, and Inductor's on-disk kernel cache makes the warm-up column understate a cold compile.",
        *pool_finding(speed),
        *attention_finding(speed),
        *malloc_finding(speed),
        *fused_finding(speed),
        *ratio_finding(speed, "channels_last+bf16+malloc+fused", "channels_last+bf16+malloc+fused+nchwheadgrad",
                       "in channels-last training the head norm gets its gradient in channels-last "
                       "(`nas.model.MetaFormer.head_grad_channels_last`; same values), not the NCHW one of the global mean (as before)."),
        *ratio_finding(speed, "channels_last+bf16+malloc+fused", "channels_last+bf16+malloc+fused+nchwheadgrad+clgelu",
                       "the head norm's gradient in channels-last and GELU on the NHWC view of a channels-last input "
                       "(`nas.mixers.GELU`; the contiguous kernel's values), not as before."),
        f"- Target: the median candidate's proxy-training throughput >= 2x eager. Best single process: {best}, "
        f"**{single[best]:.3f}x ({'met' if single[best] >= 2 else 'NOT met'})**."
        + "".join(f" {v} (the machine's 2 cores as two 1-thread workers): **{x:.2f}x ({'met' if x >= 2 else 'NOT met'})**."
                  for v, x in workers.items()),
    ]
    acc = result.get("accuracy") or []
    if acc:
        lines += ["", "## Accuracy of bf16 training (Fashion-MNIST, default proxy recipe)", "",
                  "Candidates of the default space"
                  + (f" with a stage of mixer `{result['acc_mixer']}`" if result.get("acc_mixer") else "")
                  + f" at MAC-count quantiles, trained by `nas.train.train_candidate` with "
                  f"conf/train/default.yaml ({acc[0]['recipe']}, channels-last, 2 threads, seed 0), once in float32 "
                  "and once in bf16; val acc on the 6,000-image validation split. Seconds include the data pipeline "
                  "and augmentation.", "",
                  "| arch | MACs | fp32 val acc | bf16 val acc | bf16 - fp32 | fp32 s | bf16 s | bf16 speed-up |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|"]
        pairs = [(acc[i], acc[i + 1]) for i in range(0, len(acc), 2)]
        bar = "\\|"
        for f, b in pairs:
            lines.append(f"| {f['arch'].replace('|', bar)} | {f['macs']:,} | {f['val_acc']:.2%} | {b['val_acc']:.2%} | "
                         f"{100 * (b['val_acc'] - f['val_acc']):+.2f} pt | {f['train_s']:.0f} | {b['train_s']:.0f} | "
                         f"{f['train_s'] / b['train_s']:.2f}x |")
        deltas = [100 * (b["val_acc"] - f["val_acc"]) for f, b in pairs]
        lines += ["", f"- bf16 minus float32 val acc: {min(deltas):+.2f} to {max(deltas):+.2f} pt "
                  f"(mean {statistics.mean(deltas):+.2f}); end-to-end training {min(f['train_s'] / b['train_s'] for f, b in pairs):.2f}-"
                  f"{max(f['train_s'] / b['train_s'] for f, b in pairs):.2f}x faster."]
    lines.append("")
    return "\n".join(lines)


def ratio_finding(speed: dict[tuple[str, str], float], new: str, old: str, adopted: str, after: str = "",
                  verdict: str = "Adopted") -> list[str]:
    """One finding: variant `new` against `old` on every model timed with both (none if there is none)."""
    ratios = {m: speed[(m, new)] / speed[(m, old)] for m, v in speed if v == old and (m, new) in speed}
    if not ratios:
        return []
    return [f"- {verdict}: {adopted} {new} against {old}: " + ", ".join(f"{m} {r:.2f}x" for m, r in ratios.items()) + f"{after}."]


def pool_finding(speed: dict[tuple[str, str], float]) -> list[str]:
    """The finding on `nas.mixers.box_mean`: channels_last+bf16 against the same with AvgPool2d's bf16 kernel."""
    return ratio_finding(speed, "channels_last+bf16", "channels_last+bf16+avgpool",
                         "in bf16 the pool mixer takes its mean as a depthwise box convolution (`nas.mixers.box_mean`, same "
                         "mean), not with AvgPool2d's own bf16 kernel (as before).",
                         " (only the stage-0 pool model has a pool mixer: the others show the run's noise)")


def attention_finding(speed: dict[tuple[str, str], float]) -> list[str]:
    """The finding on `nas.mixers.Attention.sdpa_in_fp32`: channels_last+bf16 against the same with bf16 attention."""
    return ratio_finding(speed, "channels_last+bf16", "channels_last+bf16+bf16attn",
                         "in bf16 the attention mixer runs its scaled-dot-product attention in float32 "
                         "(`nas.mixers.Attention.sdpa_in_fp32`; torch's CPU scaled-dot-product attention trains slowly in bf16), "
                         "not in bf16 (as before).",
                         " (only the models with an attention stage are affected: the stage-0 attn model has three attention "
                         "blocks, the other stage-0 models one, in their last stage; the median candidate none)")


def malloc_finding(speed: dict[tuple[str, str], float]) -> list[str]:
    """The finding on `nas.train.keep_freed_memory`: channels_last+bf16 with it against without."""
    return ratio_finding(speed, "channels_last+bf16+malloc", "channels_last+bf16",
                         "glibc keeps freed memory mapped while training (`train.keep_freed_memory: true`, "
                         "`nas.train.keep_freed_memory`).")


def fused_finding(speed: dict[tuple[str, str], float]) -> list[str]:
    """The finding on torch's fused AdamW kernel (`--variants` with `+fused`) against its default multi-tensor one."""
    return ratio_finding(speed, "channels_last+bf16+malloc+fused", "channels_last+bf16+malloc",
                         "torch's fused AdamW kernel (the same update, float rounding aside; `nas.train.fit` uses it).")


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))  # the first paragraph: its first line stops mid-sentence
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--variants", default="eager,channels_last,channels_last+bf16+avgpool,channels_last+bf16+bf16attn,"
                                          "channels_last+bf16,channels_last+bf16+malloc,channels_last+bf16+malloc+fused,"
                                          f"compile+channels_last+bf16+malloc+fused,{WORKERS}: channels_last+bf16+malloc+fused")
    ap.add_argument("--shared-process", action="store_true", help="single-process variants in this process (the former protocol)")
    ap.add_argument("--name", default="train_speed", help="results basename under experiments/results/")
    ap.add_argument("--acc-models", type=int, default=3, help="candidates trained on Fashion-MNIST in fp32 and bf16 (0: none)")
    ap.add_argument("--acc-mixer", default=None, choices=MIXERS,
                    help="accuracy check only on candidates with a stage of this mixer")
    ap.add_argument("--act", default=None, choices=ACTS, help="time every model with this activation (default: their own, relu)")
    ap.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = ap.parse_args()
    if args.render:
        (OUT / f"{args.name}.md").write_text(render(json.loads((OUT / f"{args.name}.json").read_text())))
        return
    started = time.perf_counter()
    rows = measure(args.variants.split(","), rounds=args.rounds, steps=args.steps, shared=args.shared_process, act=args.act)
    accuracy = accuracy_check(args.acc_models, mixer=args.acc_mixer) if args.acc_models else []
    result = {"command": command_line("train_speed.py"), "rounds": args.rounds,
              "steps": args.steps, "protocol": "shared process" if args.shared_process else "process per variant", "machine": f"{machine_info()}; torch {torch.__version__}",
              "minutes": (time.perf_counter() - started) / 60, "rows": rows, "accuracy": accuracy,
              "acc_mixer": args.acc_mixer, "act": args.act}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / f"{args.name}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    with one_line_on_failed_write():
        main()
