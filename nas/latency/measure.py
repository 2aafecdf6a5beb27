"""Measure batch-1 latency of exported models in a deployment runtime (OpenVINO CPU, onnxruntime).

Noise handling, because the machines are shared and OpenVINO flips between a fast and a slow mode
from block to block: every model is compiled first, then timed in `rounds` interleaved passes (one
block of `repeats` calls per model per round), so a slow phase of the machine hits all models alike.
A model's latency is the median of its block medians; p10/p90 are over all its single calls.
Each call is timed the way a deployment calls the runtime: the input is passed on every call.
"""

from __future__ import annotations

import collections
import csv
import io
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.errors import ConfigError, DataError

RUNTIMES = ("openvino", "onnxruntime")
PRECISIONS = ("fp32", "int8")
MEASUREMENT_COLUMNS = (
    "arch_json", "arch_id", "runtime", "precision", "threads", "batch", "median_ms", "p10_ms", "p90_ms",
    "n_calls", "machine",
)


@dataclass(frozen=True)
class Measurement:
    """Measured batch-1 latency of one architecture in one runtime/precision."""

    arch: ArchConfig
    runtime: str
    precision: str
    threads: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    n_calls: int
    machine: str
    batch: int = 1


def machine_info() -> str:
    """CPU model and core count, recorded with every measurement."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} cpus; {platform.system()} {platform.release()}"


def openvino_request(onnx_path: str | os.PathLike, *, threads: int, input_shape: Sequence[int], perf_count: bool = False):
    """An OpenVINO CPU infer request for one model, compiled the way every timing here needs it.

    Static input shape (OpenVINO >= 2025.2 leaves size-1 dims dynamic otherwise, see the shared notes),
    f32 unless the file itself is quantized (this CPU's default is bf16), latency hint, `threads`
    threads; `perf_count` turns on the per-node profile (`request.profiling_info`).
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    model.reshape([int(d) for d in input_shape])
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY"}
    if perf_count:
        config["PERF_COUNT"] = True
    return core.compile_model(model, "CPU", config).create_infer_request()


def make_runner(onnx_path: str | os.PathLike, *, runtime: str, precision: str, threads: int,
                input_shape: Sequence[int], bound_io: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A function running one batch through the model in `runtime` (compiled once, here).

    `onnx_path` may also be an OpenVINO IR (`.xml`) for `runtime="openvino"`. `precision="int8"`
    expects a quantized file (QDQ ONNX or its IR): the file decides what runs in int8; the rest
    runs in f32 (never OpenVINO's bf16 default), so fp32 and int8 timings compare like for like.

    `bound_io` (OpenVINO only): the input is copied into the request's own input tensor and the output
    is read in place (a view, valid until the next call), the way a C++ deployment drives
    `ov::InferRequest`. The default passes the input as a Python dict on every call, which adds the
    Python API's tensor wrapping and output copy (tens of microseconds, a large share of a sub-ms model).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
    if bound_io and runtime != "openvino":
        raise ConfigError(f"bound_io=True is implemented for runtime='openvino' only, not {runtime!r}")
    if runtime == "openvino":
        request = openvino_request(onnx_path, threads=threads, input_shape=input_shape)
        if bound_io:
            inp, out = request.get_input_tensor(0).data, request.get_output_tensor(0)

            def run_bound(x: np.ndarray) -> np.ndarray:
                np.copyto(inp, x)
                request.infer()
                return out.data

            return run_bound
        return lambda x: request.infer({0: x})[0]  # OVDict: the first output by index
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    raise ConfigError(f"runtime={runtime!r} is unknown; allowed: {list(RUNTIMES)}")


def time_runners(
    runners: Sequence[Callable[[np.ndarray], np.ndarray]],
    inputs: Sequence[np.ndarray],
    *,
    warmup: int = 20,
    repeats: int = 30,
    rounds: int = 7,
) -> list[tuple[float, float, float, int]]:
    """(median, p10, p90, n_calls) in ms for each runner, timed in interleaved rounds."""
    for run, x in zip(runners, inputs):
        for _ in range(warmup):
            run(x)
    samples: list[list[float]] = [[] for _ in runners]
    block_medians: list[list[float]] = [[] for _ in runners]
    for r in range(rounds):
        # Alternate the order so no model always runs right after the same neighbour.
        order = range(len(runners)) if r % 2 == 0 else reversed(range(len(runners)))
        for i in order:
            run, x = runners[i], inputs[i]
            block = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run(x)
                block.append((time.perf_counter() - t0) * 1e3)
            samples[i].extend(block)
            block_medians[i].append(statistics.median(block))
    out = []
    for s, b in zip(samples, block_medians):
        q = np.percentile(s, [10, 90])
        out.append((statistics.median(b), float(q[0]), float(q[1]), len(s)))
    return out


def measure_onnx(path: str | os.PathLike, hw, *, input_shape: Sequence[int]) -> float:
    """Median batch-1 latency (ms) of one exported model in the profile's runtime on this host.

    `hw` is a `HardwareProfile` with a runtime here; 3 blocks of 20 calls after 10 warm-up calls.
    """
    run = make_runner(path, runtime=hw.runtime, precision=hw.precision, threads=hw.threads, input_shape=input_shape)
    x = np.random.default_rng(0).random(tuple(input_shape), dtype=np.float32)
    return time_runners([run], [x], warmup=10, repeats=20, rounds=3)[0][0]


# Exported node names carry the module path: /stem/..., /stages/stages.1/blocks/blocks.0/..., /stages/stages.1/
# downsample/..., /head_norm/..., and the classifier is named after the model output (logits).
_NODE_UNIT = re.compile(r"^/(?:(stem)/|stages/stages\.(\d+)/(?:blocks/blocks\.(\d+)|(downsample))/|(head)|(logits))")


def unit_of_node(node_name: str) -> str | None:
    """The unit (see `nas.latency.ops.unit_of`) an exported node belongs to, or None if its name does not say."""
    m = _NODE_UNIT.match(node_name if node_name.startswith("/") else "/" + node_name)
    if not m:
        return None
    stem, stage, block, down, head, logits = m.groups()
    if stem:
        return "stem"
    if stage is not None:
        return f"stages.{stage}.blocks.{block}" if block is not None else f"stages.{stage}.down"
    return "head"


def _unit_profiler(onnx_path: str | os.PathLike, *, threads: int, input_shape: Sequence[int]) -> Callable[[int], dict[str, float]]:
    request = openvino_request(onnx_path, threads=threads, input_shape=input_shape, perf_count=True)
    # The same model without profiling, timed in the same rounds: its call time against the node sum
    # shows the runtime's work outside the nodes.
    plain = make_runner(onnx_path, runtime="openvino", precision="fp32", threads=threads, input_shape=input_shape)
    x = np.random.default_rng(0).random(tuple(input_shape), dtype=np.float32)

    def run(repeats: int) -> dict[str, float]:
        acc: dict[str, float] = collections.defaultdict(float)
        calls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            plain(x)
            calls.append((time.perf_counter() - t0) * 1e6)
        acc["call"] = statistics.median(calls)
        for _ in range(repeats):
            request.infer({0: x})
            unit = "stem"
            for info in request.profiling_info:
                unit = unit_of_node(info.node_name) or unit
                if info.status == info.Status.EXECUTED:
                    us = info.real_time.total_seconds() * 1e6 / repeats
                    acc[unit] += us
                    acc["nodes"] += us
        return acc

    return run


def profile_units(onnx_paths: Sequence[str | os.PathLike], input_shapes: Sequence[Sequence[int]], *, threads: int,
                  warmup: int = 20, repeats: int = 30, rounds: int = 5) -> list[dict[str, float]]:
    """Per-unit time (us) of each model in OpenVINO CPU f32, from its per-node profile (`PERF_COUNT`).

    Nodes the runtime created itself (reorders, the pieces of a decomposed norm) have names that do not
    say their unit; they count for the unit of the named node before them (the profile lists nodes in
    execution order). Models are profiled in interleaved rounds, like `time_runners`; a unit's time is the
    median over rounds of its mean over `repeats` calls. The key "nodes" holds the sum over all nodes, and
    "call" the median time of a call without profiling in the same rounds (input passed on every call, as
    `measure_archs` times): the difference is the runtime's own work outside the nodes.
    """
    runs = [_unit_profiler(p, threads=threads, input_shape=s) for p, s in zip(onnx_paths, input_shapes)]
    for run in runs:
        run(warmup)
    per_round: list[dict[str, list[float]]] = [collections.defaultdict(list) for _ in runs]
    for r in range(rounds):
        for i in (range(len(runs)) if r % 2 == 0 else reversed(range(len(runs)))):
            for unit, us in runs[i](repeats).items():
                per_round[i][unit].append(us)
    return [{unit: float(statistics.median(v)) for unit, v in units.items()} for units in per_round]


UNIT_COLUMNS = ("arch_id", "unit", "us")


def write_unit_times(path: str | os.PathLike, rows: Sequence[tuple[str, str, float]]) -> None:
    """Write per-unit times as CSV (`UNIT_COLUMNS`: arch_id, unit, us); see README 'Onboarding a chip'."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(UNIT_COLUMNS)
    for arch_id, unit, us in rows:
        w.writerow([arch_id, unit, f"{us:.6g}"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(buf.getvalue())


_UNIT_NAME = re.compile(r"^(stem|head|nodes|call|stages\.\d+\.down|stages\.\d+\.blocks\.\d+)$")


def read_unit_times(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Per-unit times {arch_id: {unit: us}}; a malformed row raises `DataError` naming its line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"unit times file {p} not found")
    out: dict[str, dict[str, float]] = collections.defaultdict(dict)
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(UNIT_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{p}: header lacks column(s) {sorted(missing)}; required: {list(UNIT_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            unit = row["unit"] or ""
            if not _UNIT_NAME.match(unit):
                raise DataError(f"{p}, line {line}: unit={unit!r}; allowed: stem, stages.<i>.down, stages.<i>.blocks.<b>, "
                                "head, nodes, call")
            try:
                us = float(row["us"])
            except (TypeError, ValueError):
                us = float("nan")
            if not (us >= 0 and np.isfinite(us)):
                raise DataError(f"{p}, line {line}: us={row['us']!r} must be a number >= 0")
            out[row["arch_id"]][unit] = us
    if not out:
        raise DataError(f"{p} holds no unit times")
    return dict(out)


def write_measurements(path: str | os.PathLike, rows: Sequence[Measurement]) -> None:
    """Write measurements as CSV (`MEASUREMENT_COLUMNS`); see README 'Onboarding a chip'."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MEASUREMENT_COLUMNS)
    def ms(value: float) -> str:
        return f"{value:.6g}" if np.isfinite(value) else ""  # not measured yet: an empty cell to fill in

    for m in rows:
        w.writerow([m.arch.to_json(), m.arch.arch_id, m.runtime, m.precision, m.threads, m.batch,
                    ms(m.median_ms), ms(m.p10_ms), ms(m.p90_ms), m.n_calls, m.machine])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(buf.getvalue())


def read_measurements(path: str | os.PathLike) -> list[Measurement]:
    """Read a measurements CSV; a malformed row raises `DataError` naming its line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"measurements file {p} not found")
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        required = {"arch_json", "median_ms"}
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{p}: header lacks column(s) {sorted(missing)}; required: arch_json, median_ms (see README)")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                arch = ArchConfig.from_json(row["arch_json"] or "")
                median = float(row["median_ms"])
                if not (median > 0 and np.isfinite(median)):
                    raise ValueError(f"median_ms={row['median_ms']!r} must be a positive number")
                p10 = float(row.get("p10_ms") or median)
                p90 = float(row.get("p90_ms") or median)
                rows.append(Measurement(
                    arch=arch, runtime=row.get("runtime") or "unknown", precision=row.get("precision") or "unknown",
                    threads=int(row.get("threads") or 0), median_ms=median, p10_ms=p10, p90_ms=p90,
                    n_calls=int(row.get("n_calls") or 0), machine=row.get("machine") or "", batch=int(row.get("batch") or 1),
                ))
            except (ValueError, ConfigError, TypeError) as e:
                raise DataError(f"{p}, line {line}: {str(e).splitlines()[0]}") from None
    if not rows:
        raise DataError(f"{p} holds no measurements")
    return rows
