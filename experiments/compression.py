"""Benchmark: compression of the default run's Pareto winners (issue 4), measured on this host.

    python experiments/default_run.py          # once: the default search (writes runs/default-run-bench)
    python experiments/compression.py          # this benchmark (3.0 min on 2 cores, 2026-12-05)
    python experiments/compression.py --run-dir runs/<study> --out-dir runs/compression-bench

Each winner's checkpoint folder is copied to --out-dir and compressed there with the project's
pipeline (`compress.pipeline.compress_checkpoint`, default `conf/compress/default.yaml` settings
except the pruning target), in two configurations:

A. int8 only (no pruning): int8 test accuracy drop from the exported files (OpenVINO IR and QDQ ONNX
   in onnxruntime) vs fp32 model.onnx; batch-1 host latency of OpenVINO int8 vs OpenVINO fp32
   (INFERENCE_PRECISION_HINT=f32) vs torch eager fp32, timed in the same interleaved rounds, 1 thread;
   file size model.onnx vs model_int8.onnx.
B. prune to 50% of the predicted latency, distillation recovery, then int8: test accuracy drop of the
   pruned fp32 file after recovery. Done for hw=cpu (the calibrated host predictor); for hw=edge_npu
   the reachable floor of channel pruning is reported.

Targets: int8 drop <= 0.3 pt; OpenVINO int8 >= 1.5x faster than OpenVINO fp32 and >= 4x faster than
torch eager; file >= 3.5x smaller; pruning to 50% of predicted latency with <= 1 pt drop after recovery.
Writes experiments/results/compression.json and compression.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402  (puts the project on sys.path)



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "default-run-bench"))
    ap.add_argument("--out-dir", default=str(ROOT / "runs" / "compression-bench"))
    ap.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
    ap.add_argument("--prune-only", action="store_true", help="only part B (pruning + recovery)")
    ap.add_argument("--recover-epochs", type=int, default=None, help="distillation epochs after pruning (default: config's)")
    ap.add_argument("--name", default="compression", help="results file stem")
    args = ap.parse_args(argv)
    if args.render:
        (RESULTS / f"{args.name}.md").write_text(render_md(json.loads((RESULTS / f"{args.name}.json").read_text())))
        return 0
    run_dir, out_dir = Path(args.run_dir), Path(args.out_dir)
    if not (run_dir / "pareto.json").is_file():
        print(f"error: no pareto.json in {run_dir}; run `python experiments/default_run.py` first", file=sys.stderr)
        return 2

    from compress.pipeline import compress_checkpoint
    from compress.prune import MAX_RATIO, plan_pruned_arch
    from nas.checkpoint import read_checkpoint
    from nas.data import load_dataset
    from nas.latency import predict_latency
    from nas.latency.measure import machine_info

    members = json.loads((run_dir / "pareto.json").read_text())["members"]
    npu, cpu = compose_run("hw=edge_npu"), compose_run("hw=cpu")
    if args.recover_epochs is not None:  # only part B prunes, so only its recovery budget matters
        cpu.compress.recover.epochs = args.recover_epochs
    data = load_dataset(npu.data)
    started = time.perf_counter()
    rows_a, rows_b, floors = [], [], []
    for m in members:
        src = run_dir / m["checkpoint"]
        arch = read_checkpoint(src)[0]
        floor = predict_latency(plan_pruned_arch(arch, MAX_RATIO, multiple=npu.hw.channel_multiple), npu.hw).total_ms
        floors.append({"arch_id": m["arch_id"], "edge_npu_ms": predict_latency(arch, npu.hw).total_ms,
                       "edge_npu_floor_ms_at_90pct_channels_pruned": floor})
        for tag, run, prune in (("A", npu, {}), ("B", cpu, {"target_latency_fraction": 0.5})):
            if args.prune_only and tag == "A":
                continue
            folder = out_dir / tag / m["arch_id"]
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in ("model.pt", "model.onnx", "arch.json"):
                shutil.copy2(src / name, folder / name)
            cfg = run.compress
            cfg.prune.ratio = cfg.prune.target_latency_ms = cfg.prune.target_latency_fraction = None
            for k, v in prune.items():
                setattr(cfg.prune, k, v)
            t0 = time.perf_counter()
            metrics = compress_checkpoint(folder, hw=run.hw, data=data, cfg=cfg, augment=run.data)
            print(f"[{tag}] {m['arch_id']}: {json.dumps(metrics['summary'])} ({time.perf_counter() - t0:.0f} s)", flush=True)
            (rows_a if tag == "A" else rows_b).append(metrics)

    def row_a(c: dict) -> dict:
        f, q, h = c["fp32"], c["int8"], c["host_latency"]
        return {
            "arch_id": f["arch_id"], "summary": f["summary"], "params": f["params"],
            "test_fp32_onnx": f["test_acc"], "test_int8_openvino": q.get("test_acc_openvino", q["test_acc"]), "test_int8_onnx_ort": q["test_acc_onnx"],
            "drop_pt": (f["test_acc"] - q.get("test_acc_openvino", q["test_acc"])) * 100, "drop_pt_onnx": (f["test_acc"] - q["test_acc_onnx"]) * 100,
            "qat_epochs": q["qat_epochs"], "torch_fp32_ms": h["torch_fp32"], "openvino_fp32_ms": h["openvino_fp32"],
            "openvino_int8_ms": h["openvino_int8"], "speedup_vs_openvino_fp32": h["openvino_fp32"] / h["openvino_int8"],
            "speedup_vs_torch": h["torch_fp32"] / h["openvino_int8"], "fp32_bytes": f["size_bytes"],
            "openvino_fp32_bound_ms": h["openvino_fp32_bound"], "openvino_int8_bound_ms": h["openvino_int8_bound"],
            "speedup_bound_vs_openvino_fp32_bound": h["openvino_fp32_bound"] / h["openvino_int8_bound"],
            "int8_onnx_bytes": q["size_bytes"], "int8_ir_bytes": q["size_bytes_ir"],
            "size_ratio_onnx": f["size_bytes"] / q["size_bytes"], "size_ratio_ir": f["size_bytes"] / q["size_bytes_ir"],
            "agreement": q["agreement"],
            # How far the accuracies can be trusted: 95% intervals, and the test images whose verdict changed from
            # model.onnx to the int8 IR with McNemar's exact p (nas.stats; absent from results before 2026-12-05)
            "ci95_fp32": f.get("test_acc_ci95"), "ci95_int8": q.get("test_acc_ci95"),
            "int8_vs_fp32": q.get("changed_vs_before"),
        }

    def row_b(c: dict) -> dict:
        f, p, q = c["fp32"], c["pruned"], c["int8"]
        return {
            "arch_id": f["arch_id"], "pruned_arch": p.get("summary"), "ratio": p.get("ratio"),
            "cpu_pred_fp32_ms": f["latency_ms"], "cpu_pred_pruned_ms": p.get("latency_ms"),
            "target_ms": p.get("target_latency_ms"), "target_met": p.get("target_met"),
            "host_openvino_fp32_ms": c["host_latency"]["openvino_fp32"],
            "host_openvino_pruned_ms": c["host_latency"].get("openvino_fp32_pruned"),
            "test_fp32": f["test_acc"], "val_before_recovery": p.get("val_acc_before_recovery"),
            "test_pruned_after_recovery": p.get("test_acc"), "drop_pt": (f["test_acc"] - p.get("test_acc", f["test_acc"])) * 100,
            "test_pruned_int8": q["test_acc"], "recover_seconds": p.get("recover_seconds"),
            "pruned_vs_fp32": p.get("changed_vs_before"),  # images that changed verdict, McNemar's p (nas.stats)
        }

    a, b = [row_a(c) for c in rows_a], [row_b(c) for c in rows_b]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    result = {
        "command": command_line("compression.py", argv),
        "recover_epochs": cpu.compress.recover.epochs, "machine": machine_info(), "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - started, "run_dir": str(run_dir),
        "int8": a, "prune_50pct_cpu": b, "edge_npu_channel_pruning_floor": floors,
        "targets": {
            **({
                "int8_drop_le_0.3pt": all(r["drop_pt"] <= 0.3 for r in a),
                "openvino_int8_ge_1.5x_openvino_fp32": all(r["speedup_vs_openvino_fp32"] >= 1.5 for r in a),
                "openvino_int8_ge_1.5x_openvino_fp32_bound_io": all(r["speedup_bound_vs_openvino_fp32_bound"] >= 1.5 for r in a),
                "openvino_int8_ge_4x_torch": all(r["speedup_vs_torch"] >= 4 for r in a),
                "size_ge_3.5x_smaller_onnx": all(r["size_ratio_onnx"] >= 3.5 for r in a),
            } if a else {}),
            "prune_50pct_drop_le_1pt": all(r["target_met"] and r["drop_pt"] <= 1.0 for r in b),
        },
        "means": {"speedup_vs_openvino_fp32": mean([r["speedup_vs_openvino_fp32"] for r in a]),
                  "speedup_bound_vs_openvino_fp32_bound": mean([r["speedup_bound_vs_openvino_fp32_bound"] for r in a]),
                  "speedup_vs_torch": mean([r["speedup_vs_torch"] for r in a])} if a else {},
    }
    write_results(args.name, result, render_md=render_md)
    return 0


def _escape_pipes(value):
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, dict):
        return {k: _escape_pipes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_pipes(v) for v in value]
    return value


def _changed(c: dict | None) -> str:
    """'12 / 13 (p=1)': test images now wrong / now right vs the file before, McNemar's exact p (or – if unknown)."""
    from nas.stats import format_p

    return f"{c['now_wrong']} / {c['now_right']} ({format_p(c['p_value'])})" if c else "–"


CHANGED_NOTE = ("'now wrong / now right': the test images that the later file gets wrong and the earlier one right, and "
                "the reverse; p is McNemar's exact test of 'both equally accurate' on them (below 0.05: a real change "
                "for this test split; `nas.stats`).")


def _render_a(r: dict, pct, ok) -> list[str]:
    t = r["targets"]
    lines = [
        "## A. int8 (NNCF PTQ, QAT only if the val drop > 0.3 pt), no pruning", "",
        "Accuracy: Fashion-MNIST test split (10k) evaluated **from the exported files**. Latency: batch 1, 1 thread, "
        "median of interleaved blocks; torch eager and every OpenVINO file are timed in the same rounds.", "",
        "| arch | params | fp32 model.onnx | int8 OpenVINO IR | int8 QDQ ONNX (ORT) | drop (pt) | now wrong / now right (p) | QAT epochs | torch fp32 ms | OV fp32 ms | OV int8 ms | int8 vs OV fp32 | int8 vs torch | size fp32 → int8 ONNX (IR) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for x in r["int8"]:
        lines.append(
            f"| `{x['arch_id']}` {x['summary']} | {x['params']:,} | {pct(x['test_fp32_onnx'])} | {pct(x['test_int8_openvino'])} | "
            f"{pct(x['test_int8_onnx_ort'])} | {x['drop_pt']:.2f} | {_changed(x.get('int8_vs_fp32'))} | {x['qat_epochs']} | "
            f"{x['torch_fp32_ms']:.3f} | "
            f"{x['openvino_fp32_ms']:.3f} | {x['openvino_int8_ms']:.3f} | {x['speedup_vs_openvino_fp32']:.2f}x | "
            f"{x['speedup_vs_torch']:.1f}x | {x['fp32_bytes'] / 1024:.0f} → {x['int8_onnx_bytes'] / 1024:.0f} KiB "
            f"({x['int8_ir_bytes'] / 1024:.0f}); {x['size_ratio_onnx']:.2f}x |")
    def spread(key: str, digits: int) -> str:
        # each target holds for every model: the lowest one decides it, the mean alone could read as passing
        values = [x[key] for x in r["int8"]]
        return f"lowest {min(values):.{digits}f}x, mean {sum(values) / len(values):.{digits}f}x"

    lines += [
        "", CHANGED_NOTE, "", "Each target below must hold for every model.", "",
        f"- int8 drop <= 0.3 pt (from the OpenVINO file): {ok(t['int8_drop_le_0.3pt'])}",
        f"- OpenVINO int8 >= 1.5x faster than OpenVINO fp32: {ok(t['openvino_int8_ge_1.5x_openvino_fp32'])} "
        f"({spread('speedup_vs_openvino_fp32', 2)})",
        f"- OpenVINO int8 >= 4x faster than torch eager fp32: {ok(t['openvino_int8_ge_4x_torch'])} ({spread('speedup_vs_torch', 1)})",
        f"- file >= 3.5x smaller (model.onnx → model_int8.onnx): {ok(t['size_ge_3.5x_smaller_onnx'])}", "",
        "### The same OpenVINO files with pre-bound input/output tensors", "",
        "The table above calls OpenVINO from Python with the input on every call (`request.infer({0: x})`), which "
        "wraps the array and copies the output: a per-call cost that does not depend on the precision. Here the same "
        "files are timed in the same rounds with the input copied into the request's own tensor and the output read in "
        "place, as a C++ deployment drives `ov::InferRequest` (`make_runner(..., bound_io=True)`).", "",
        "| arch | OV fp32 ms | OV int8 ms | int8 vs OV fp32 | int8 vs torch eager (table above) | Python call overhead fp32 / int8 ms |",
        "|---|--:|--:|--:|--:|---|",
    ]
    vs_torch = [x["torch_fp32_ms"] / x["openvino_int8_bound_ms"] for x in r["int8"]]  # torch is eager Python either way
    for x, v in zip(r["int8"], vs_torch):
        lines.append(
            f"| `{x['arch_id']}` | {x['openvino_fp32_bound_ms']:.3f} | {x['openvino_int8_bound_ms']:.3f} | "
            f"{x['speedup_bound_vs_openvino_fp32_bound']:.2f}x | {v:.1f}x | {x['openvino_fp32_ms'] - x['openvino_fp32_bound_ms']:.3f} / "
            f"{x['openvino_int8_ms'] - x['openvino_int8_bound_ms']:.3f} |")
    lines += [
        "", f"- OpenVINO int8 >= 1.5x faster than OpenVINO fp32, pre-bound I/O: "
        f"{ok(t['openvino_int8_ge_1.5x_openvino_fp32_bound_io'])} ({spread('speedup_bound_vs_openvino_fp32_bound', 2)})",
        f"- OpenVINO int8 with pre-bound I/O >= 4x faster than torch eager fp32: {ok(all(v >= 4 for v in vs_torch))} "
        f"(lowest {min(vs_torch):.1f}x, mean {sum(vs_torch) / len(vs_torch):.1f}x)", "",
    ]
    return lines


def render_md(r: dict) -> str:
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    r = _escape_pipes(r)  # arch summaries separate stages with '|', which would split table cells

    ok = lambda v: "met" if v else "**NOT met**"  # noqa: E731
    t = r["targets"]
    lines = [
        "# Compression of the default run's winners (issue 4)", "",
        f"Command: `{r['command']}` (winners of `{r['run_dir']}`)  ",
        f"Machine: {r['machine']}; Python {r['python']}; {r['date']}; total {r['seconds'] / 60:.1f} min", "",
        *([f"Run folder: {r['run_dir_note']}.", ""] if r.get("run_dir_note") else []),
    ]
    if r["int8"]:  # part A (absent from a --prune-only run)
        lines += _render_a(r, pct, ok)
    lines += [
        f"## B. Pruning to 50% of the predicted latency (hw=cpu, calibrated), distillation recovery "
        f"({r.get('recover_epochs', 1)} epoch(s))", "",
        "| arch | pruned to | ratio | predicted fp32 → pruned ms (target) | host OV fp32 → pruned ms | test fp32 | val right after pruning | test pruned after recovery | drop (pt) | now wrong / now right (p) | pruned int8 test |",
        "|---|---|--:|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for x in r["prune_50pct_cpu"]:
        lines.append(
            f"| `{x['arch_id']}` | {x['pruned_arch']} | {x['ratio']} | {x['cpu_pred_fp32_ms']:.3f} → {x['cpu_pred_pruned_ms']:.3f} "
            f"({x['target_ms']:.3f}) | {x['host_openvino_fp32_ms']:.3f} → {x['host_openvino_pruned_ms']:.3f} | {pct(x['test_fp32'])} | "
            f"{pct(x['val_before_recovery'])} | {pct(x['test_pruned_after_recovery'])} | {x['drop_pt']:.2f} | "
            f"{_changed(x.get('pruned_vs_fp32'))} | {pct(x['test_pruned_int8'])} |")
    lines += ["", f"- 50% of predicted latency with <= 1 pt drop after recovery: {ok(t['prune_50pct_drop_le_1pt'])}", "",
              "## Channel pruning on edge_npu", "",
              "| arch | predicted edge_npu ms | floor with 90% of channels pruned |", "|---|--:|--:|"]
    for x in r["edge_npu_channel_pruning_floor"]:
        lines.append(f"| `{x['arch_id']}` | {x['edge_npu_ms']:.3f} | {x['edge_npu_floor_ms_at_90pct_channels_pruned']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
