"""Benchmark: the searched int8 front against hand-made models at equal predicted latency (issue 6, part 1).

    python experiments/baselines.py                          # 1-epoch recipe (time: see results)
    python experiments/baselines.py --recipe train.epochs=6  # a longer recipe, for every model alike
    python experiments/baselines.py --render                 # only rewrite the .md/.png from the .json
    python experiments/baselines.py --run-dir runs/<study> --name baselines_<study>   # another searched front

Hand-made families, written as ArchConfigs of the metaformer_t layout (stride-2 stem, stages at 14x14,
7x7, 4x4), BatchNorm + ReLU (what an engineer picks for an NPU: both fold or run natively), MLP ratio 4
(MetaFormer's), each at three scales S/M/L of width (16-32-64, 24-48-96, 32-64-128) and depth (1-1-1,
1-2-2, 2-3-2), all choices of the space except the ViT's stage-0 attention:

* poolformer: pool, pool, pool (k3)          * convformer: sepconv x3 (k5, the space's largest)
* caformer: sepconv, attn, attn               * vit: attn x3 (head dim 8 in stage 0, then 16)
* resnet: dense conv x3 (k3), the ResNet/MobileNet-like all-conv net

The searched front is the Pareto members of a search run folder (default: the committed default run,
runs/default-run-bench, hw=edge_npu). Every model, baselines and searched members alike, is trained
from scratch with the same recipe (`--recipe`: Hydra overrides of the search's `train` group) and seed,
then goes through the same compression path (`compress.pipeline.compress_checkpoint`: NNCF int8, QAT
only if the val drop > 0.3 pt; no pruning, so the predicted latency stays the model's own). Accuracy is
the Fashion-MNIST test split evaluated from the exported int8 OpenVINO IR file. Latency: predicted
edge_npu latency. Finished models are kept in --out-dir, so a rerun resumes.

Targets (issue 6): the searched int8 front dominates every family at equal predicted latency, goal
>= +0.5 pt at each baseline's latency (the front's accuracy there = its best member no slower); the
best int8 model with predicted edge_npu latency <= 1 ms reaches >= 94.0% test accuracy.
Writes experiments/results/baselines.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402  (puts the project on sys.path)

from nas.families import FAMILIES, SCALES, family_arch  # noqa: E402  (the hand-made families live in the package)

DEFAULT_RECIPE = ("train.epochs=1",)
SEED = 0


def finished_row(folder: Path, arch, recipe: list[str]) -> dict | None:
    """The row of a model already trained and compressed in `folder` with this recipe, else None."""
    done = folder / "baseline.json"
    if done.is_file():
        row = json.loads(done.read_text())
        if row.get("recipe") == recipe and row.get("arch_id") == arch.arch_id:
            return row
    return None


def train_and_compress(name: str, arch, folder: Path, *, run, data, recipe: list[str]) -> dict:
    """Train `arch` from scratch with the recipe and compress it to int8 (into a fresh `folder`)."""
    from compress.pipeline import compress_checkpoint
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model
    from nas.train import seed_everything, train_candidate

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seed_everything(SEED)
    model = build_model(arch)
    model.set_normalization(data.mean, data.std)
    trained = train_candidate(model, data, run.train, augment=run.data, seed=SEED)
    model.eval()
    save_checkpoint(folder / "model.pt", model, arch, meta={"val_acc": trained.val_acc, "seed": SEED, "dataset": data.name})
    m = compress_checkpoint(folder, hw=run.hw, data=data, cfg=run.compress, augment=run.data)
    row = {
        "name": name, "arch_id": arch.arch_id, "summary": arch.summary(), "recipe": recipe,
        "params": m["fp32"]["params"], "macs": m["fp32"]["macs"], "latency_ms": m["int8"]["latency_ms"],
        "val_acc": trained.val_acc, "train_seconds": trained.seconds, "images_per_s": trained.images_per_s,
        "test_fp32_onnx": m["fp32"]["test_acc"], "test_int8": m["int8"]["test_acc"],
        "test_int8_onnx": m["int8"]["test_acc_onnx"], "qat_epochs": m["int8"]["qat_epochs"],
        "int8_note": m["int8"]["note"], "compress_seconds": m["seconds"],
    }
    (folder / "baseline.json").write_text(json.dumps(row, indent=1))
    return row


def compare(front: list[dict], baselines: list[dict]) -> list[dict]:
    """Per baseline: the searched front's int8 accuracy at no higher predicted latency, and the gap."""
    out = []
    for b in baselines:
        ok = [f for f in front if f["latency_ms"] <= b["latency_ms"]]
        best = max(ok, key=lambda f: f["test_int8"]) if ok else None
        gap = (best["test_int8"] - b["test_int8"]) * 100 if best else None
        out.append({"baseline": b["name"], "latency_ms": b["latency_ms"], "baseline_int8": b["test_int8"],
                    "front_member": best["name"] if best else None, "front_int8": best["test_int8"] if best else None,
                    "gap_pt": gap, "dominated": gap is not None and gap >= 0, "goal_met": gap is not None and gap >= 0.5})
    return out


def render_plot(result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for fam in FAMILIES:
        pts = sorted((b["latency_ms"], 100 * b["test_int8"]) for b in result["baselines"] if b["name"].startswith(fam + "-"))
        if pts:
            ax.plot(*zip(*pts), marker="o", linewidth=1, label=fam)
    front = sorted((f["latency_ms"], 100 * f["test_int8"]) for f in result["front"])
    if front:
        best = [max(a for _, a in front[: i + 1]) for i in range(len(front))]  # the front's accuracy at that latency
        ax.step([ms for ms, _ in front], best, where="post", color="black", linewidth=2)
        ax.plot(*zip(*front), marker="*", markersize=12, color="black", linestyle="none", label="searched front")
    ax.set_xlabel("predicted edge_npu latency (ms)")
    ax.set_ylabel("int8 test accuracy (%), from the exported file")
    ax.set_title(f"Searched int8 front vs hand-made families (recipe: {' '.join(result['recipe'])})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render_md(r: dict) -> str:
    pct = lambda v: "–" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [
        "# Searched front vs hand-made baselines at equal predicted edge_npu latency (issue 6, part 1)", "",
        f"Command: `{r['command']}` (front of `{r['run_dir']}`)  ",
        f"Machine: {r['machine']}; total {r['minutes']:.1f} min"
        + (f" ({r['reused']} of {len(r['front']) + len(r['baselines'])} models reused from {r['out_dir']}, trained by an "
           "earlier run of the same command; their `train s` is from that run)" if r.get("reused") else ""), "",
        f"Every model trained from scratch with the same recipe (`train` group + `{' '.join(r['recipe'])}`, seed {SEED}), "
        "then int8 through the same compression path (NNCF PTQ, QAT only if the val drop > 0.3 pt, no pruning). "
        "Test accuracy from the exported int8 OpenVINO IR file (Fashion-MNIST test split, 10k).", "",
        "| model | arch | params | predicted edge_npu ms | val acc (fp32) | test fp32 (ONNX) | **test int8 (file)** | QAT epochs | train s |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for x in r["front"] + r["baselines"]:
        lines.append(f"| {x['name']} | {esc(x['summary'])} | {x['params']:,} | {x['latency_ms']:.3f} | {pct(x['val_acc'])} | "
                     f"{pct(x['test_fp32_onnx'])} | **{pct(x['test_int8'])}** | {x['qat_epochs']} | {x['train_seconds']:.0f} |")
    lines += ["", "## Gap at each baseline's latency", "",
              "Front accuracy at a baseline's latency = the best searched member predicted no slower.", "",
              "| baseline | ms | baseline int8 | front member | front int8 | gap (pt) | front wrong / right where the baseline is not (p) | dominated | >= +0.5 pt |",
              "|---|--:|--:|---|--:|--:|--:|---|---|"]
    from nas.stats import format_p

    for c in r["comparison"]:
        gap = "–" if c["gap_pt"] is None else f"{c['gap_pt']:+.2f}"
        pair = c.get("paired")
        images = f"{pair['now_wrong']} / {pair['now_right']} ({format_p(pair['p_value'])})" if pair else "–"
        lines.append(f"| {c['baseline']} | {c['latency_ms']:.3f} | {pct(c['baseline_int8'])} | {c['front_member'] or 'none this fast'} | "
                     f"{pct(c['front_int8'])} | {gap} | {images} | {'yes' if c['dominated'] else '**no**'} | "
                     f"{'yes' if c['goal_met'] else 'no'} |")
    fams = r["families"]
    paired = any(v.get("real_losses") is not None for v in fams.values())
    if paired:
        lines += ["", "Image by image: the test images the front member's int8 file gets wrong and the baseline's right, "
                  "then the reverse; p is McNemar's exact test of 'equally accurate' on them (`nas.stats`). A loss with "
                  "p >= 0.05 is within the test split's noise."]
    lines += ["", "| family | dominated at every scale | goal (+0.5 pt) at every scale |"
              + (" front significantly worse (p < 0.05) at | nothing in the front this fast |" if paired else ""),
              "|---|---|---|" + ("---|---|" if paired else "")]
    for fam, v in fams.items():
        extra = "" if not paired else (f" {', '.join(v['real_losses']) or 'none'} | {', '.join(v['none_this_fast']) or '–'} |")
        lines.append(f"| {fam} | {'yes' if v['dominated'] else '**no**'} | {'yes' if v['goal_met'] else 'no'} |{extra}")
    b, a = r["best_le_1ms"], r["best_le_1ms_any"]
    lines += [
        "", f"- Searched int8 front dominates every family: **{'yes' if all(v['dominated'] for v in fams.values()) else 'NO'}**",
        (f"- Best searched int8 model with predicted edge_npu latency <= 1 ms: {b['name']} at **{pct(b['test_int8'])}** "
         f"({b['latency_ms']:.3f} ms; target >= 94.0%: **{'met' if b['test_int8'] >= 0.94 else 'NOT met'}**)") if b
        else "- No searched model with predicted edge_npu latency <= 1 ms",
        (f"- Best of all models here <= 1 ms: {a['name']} at {pct(a['test_int8'])} ({a['latency_ms']:.3f} ms)") if a else "", "",
        f"![front vs baselines]({r.get('name', 'baselines')}.png)", "", r.get("notes", ""),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "default-run-bench"), help="search run folder with pareto.json")
    ap.add_argument("--out-dir", default=str(ROOT / "runs" / "baselines-bench"))
    ap.add_argument("--recipe", nargs="*", default=list(DEFAULT_RECIPE), help="Hydra overrides of the train group")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    ap.add_argument("--name", default="baselines", help="results file stem under experiments/results/")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md/.png from the .json")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads((RESULTS / f"{args.name}.json").read_text())
    else:
        import torch

        from nas.checkpoint import read_checkpoint
        from nas.data import load_dataset
        from nas.latency.measure import machine_info

        run_dir, out_dir = Path(args.run_dir), Path(args.out_dir)
        if not (run_dir / "pareto.json").is_file():
            print(f"error: no pareto.json in {run_dir}; run `python experiments/default_run.py` first", file=sys.stderr)
            return 2
        started = time.perf_counter()
        run = compose_run("hw=edge_npu", *args.recipe)
        p = run.compress.prune
        p.ratio = p.target_latency_ms = p.target_latency_fraction = None  # int8 only: latency stays the model's own
        run.compress.measure_latency = False  # the comparison is at predicted edge_npu latency
        data = load_dataset(run.data)
        shape = dict(in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes)
        jobs = [(f"searched-{m['arch_id']}", read_checkpoint(run_dir / m["checkpoint"])[0])
                for m in json.loads((run_dir / "pareto.json").read_text())["members"]]
        jobs += [(f"{fam}-{sc}", family_arch(f"{fam}-{sc}", **shape)) for fam in args.families for sc in args.scales]
        rows, reused = [], 0
        for name, arch in jobs:
            t0 = time.perf_counter()
            row = finished_row(out_dir / name, arch, list(args.recipe))  # a rerun resumes
            reused += row is not None
            rows.append(row or train_and_compress(name, arch, out_dir / name, run=run, data=data, recipe=list(args.recipe)))
            print(f"{name}: {arch.summary()} int8 test {rows[-1]['test_int8']:.4f} at {rows[-1]['latency_ms']:.3f} ms "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        # Image by image: the test images each baseline's int8 file and its front member's disagree on, with McNemar's
        # p (nas.stats.paired_change), so a gap of a few tenths can be told from the test split's noise.
        from compress.export import openvino_logits
        from nas.stats import paired_change

        truth = data.test.y.numpy()
        predicted = {r["name"]: openvino_logits(out_dir / r["name"] / "model_int8.xml", data.test).argmax(1) for r in rows}
        front_rows = [r for r in rows if r["name"].startswith("searched-")]
        base_rows = [r for r in rows if r not in front_rows]
        paired = {c["baseline"]: paired_change(predicted[c["baseline"]], predicted[c["front_member"]], truth)
                  for c in compare(front_rows, base_rows) if c["front_member"]}
        result = {
            "command": command_line("baselines.py", argv),
            "paired": paired,
            "machine": f"{machine_info()}; torch {torch.__version__}", "run_dir": str(run_dir),
            "minutes": (time.perf_counter() - started) / 60,
            "reused": reused, "out_dir": str(out_dir), "recipe": list(args.recipe),
            "front": front_rows, "baselines": base_rows,
        }
    result["comparison"] = compare(result["front"], result["baselines"])
    for c in result["comparison"]:  # results from before 2026-12-05 have no image-by-image comparison
        c["paired"] = result.get("paired", {}).get(c["baseline"])
        c["real_loss"] = bool(c["gap_pt"] is not None and c["gap_pt"] < 0 and c["paired"] and c["paired"]["p_value"] < 0.05)
    result["families"] = {
        fam: {"dominated": all(c["dominated"] for c in cs), "goal_met": all(c["goal_met"] for c in cs),
              # the scales the front loses to beyond the test split's noise, and those faster than its fastest member
              "real_losses": [c["baseline"] for c in cs if c["real_loss"]] if "paired" in result else None,
              "none_this_fast": [c["baseline"] for c in cs if not c["front_member"]]}
        for fam in FAMILIES if (cs := [c for c in result["comparison"] if c["baseline"].startswith(fam + "-")])
    }
    fast = [x for x in result["front"] if x["latency_ms"] <= 1.0]
    result["best_le_1ms"] = max(fast, key=lambda x: x["test_int8"]) if fast else None
    result["best_le_1ms_any"] = max((x for x in result["front"] + result["baselines"] if x["latency_ms"] <= 1.0),
                                    key=lambda x: x["test_int8"], default=None)
    result["name"] = args.name
    # --render: the fields derived above are recomputed for the Markdown only; the measured .json is not rewritten
    write_results(args.name, result, render_md=render_md, render_plot=render_plot, folder=RESULTS, write_json=not args.render)
    return 0


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
