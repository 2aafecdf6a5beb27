"""Diagnostic: where the hw=cpu predictor goes wrong, seen through OpenVINO's per-node profile (issue 3).

    python experiments/latency_nodes.py            # the 6 worst over- and 6 worst under-predicted held-out archs
    python experiments/latency_nodes.py --k 10

Fits the predictor on the committed fit CSV (as `latency_predictor.py --reuse` does), takes the held-out
architectures it mispredicts most, exports each (random weights) and runs it in the profile's runtime
(OpenVINO CPU fp32, 1 thread, batch 1) with `PERF_COUNT` on. Per architecture it reports the measured
median of the committed CSV, the prediction, the sum of the executed nodes' times, the time per OpenVINO
node type, and the predicted time per op kind of the model. Not a benchmark with a target: it shows which
kernels the per-op-kind linear form misprices. Writes experiments/results/latency/nodes_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import command_line, compose_latency, one_line_on_failed_write, write_results  # (also puts the project on sys.path)

OUT = Path(__file__).resolve().parent / "results" / "latency"


def node_profile(onnx_path: Path, shape: list[int], *, threads: int, warmup: int = 50, repeats: int = 200) -> dict:
    """Mean per-node-type time (us) of the executed nodes over `repeats` calls, and their sum (ms)."""
    import numpy as np

    from nas.latency.measure import openvino_request

    request = openvino_request(onnx_path, threads=threads, input_shape=shape, perf_count=True)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(warmup):
        request.infer({0: x})
    by_type: dict[str, float] = collections.defaultdict(float)
    for _ in range(repeats):
        request.infer({0: x})
        for info in request.profiling_info:
            if info.status == info.Status.EXECUTED:
                by_type[f"{info.node_type} ({info.exec_type})"] += info.real_time.total_seconds() * 1e6 / repeats
    # The same file timed now without profiling (median of single calls), to tell session drift from the
    # runtime's work outside the nodes.
    plain = openvino_request(onnx_path, threads=threads, input_shape=shape)
    for _ in range(warmup):
        plain.infer({0: x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plain.infer({0: x})
        times.append(time.perf_counter() - t0)
    return {"by_type_us": dict(sorted(by_type.items(), key=lambda kv: -kv[1])), "node_sum_ms": sum(by_type.values()) / 1e3,
            "now_ms": float(np.median(times)) * 1e3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=6, help="worst over- and under-predicted archs to profile")
    ap.add_argument("--render", action="store_true", help="only rewrite nodes_cpu.md from nodes_cpu.json")
    args = ap.parse_args(argv)
    if args.render:
        (OUT / "nodes_cpu.md").write_text(render_md(json.loads((OUT / "nodes_cpu.json").read_text())))
        return 0
    from omegaconf import OmegaConf

    from nas.latency import predict_latency, predict_latency_batch
    from nas.latency.fit import fit_profile
    from nas.latency.measure import machine_info, read_measurements
    from nas.latency.profile import export_archs

    hw = OmegaConf.to_object(compose_latency("hw=cpu").hw).without_calibration()
    fit_rows, val_rows = read_measurements(OUT / "cpu_fit.csv"), read_measurements(OUT / "cpu_val.csv")
    profile = fit_profile([r.arch for r in fit_rows], [r.median_ms for r in fit_rows], hw).profile
    predicted = predict_latency_batch([r.arch for r in val_rows], profile)
    errors = [(p - r.median_ms) / r.median_ms for p, r in zip(predicted, val_rows)]
    order = sorted(range(len(val_rows)), key=lambda i: errors[i])
    picked = order[: args.k] + order[-args.k:]
    started, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for i in picked:
            arch = val_rows[i].arch
            path = export_archs([arch], Path(tmp))[0]
            prof = node_profile(path, [1, arch.in_chans, arch.img_size, arch.img_size], threads=profile.threads)
            kinds: dict[str, float] = collections.defaultdict(float)
            for layer in predict_latency(arch, profile).layers:
                kinds[layer.kind] += layer.ms * 1e3
            rows.append({"arch_id": arch.arch_id, "summary": arch.summary(), "measured_ms": val_rows[i].median_ms,
                         "predicted_ms": float(predicted[i]), "error": errors[i], **prof,
                         "predicted_by_kind_us": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))})
            print(json.dumps(rows[-1])[:300], flush=True)
    result = {"command": command_line("latency_nodes.py", argv),
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - started,
              "runtime": f"{profile.runtime} {profile.precision}, {profile.threads} thread(s)", "rows": rows}
    write_results("nodes_cpu", result, render_md=render_md, folder=OUT)
    return 0


def render_md(r: dict) -> str:
    lines = [
        "# Per-node OpenVINO profile of the worst-predicted held-out archs (hw=cpu, issue 3)", "",
        f"Command: `{r['command'].strip()}`  ",
        f"Machine: {r['machine']}; {r['date']}; {r['runtime']}; total {r['seconds'] / 60:.1f} min", "",
        "Predictor fitted on `cpu_fit.csv` (50 archs); measured = the median in `cpu_val.csv` (the session that "
        "measured it, without profiling); node sum = the executed nodes' mean times in this run, with `PERF_COUNT` on "
        "(200 calls; what a call takes beyond them is the runtime's own work between and around the nodes); timed "
        "now = the same file in this run without profiling, median of 200 single calls (input passed on each call, "
        "as in the CSVs). "
        "Node types are OpenVINO's after its fusions: an op it fused into a convolution has no node of its own. "
        "Earlier runs of this command on the same day (their output not kept) gave quite different node sums for "
        "the same arch (the host's fast and slow modes, see nas/latency/measure.py): read the node columns as shares "
        "of a call, not as exact times.", "",
        "| arch | measured ms | predicted ms | error | timed now ms | node sum ms | top node types (us) | predicted per op kind (us) |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for x in r["rows"]:
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(x["by_type_us"].items())[:5])
        kinds = ", ".join(f"{k} {v:.0f}" for k, v in list(x["predicted_by_kind_us"].items())[:6])
        lines.append(f"| `{x['arch_id']}` {x['summary'].replace('|', '/')} | {x['measured_ms']:.3f} | {x['predicted_ms']:.3f} | "
                     f"{100 * x['error']:+.1f}% | {x['now_ms']:.3f} | {x['node_sum_ms']:.3f} | {top} | {kinds} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
