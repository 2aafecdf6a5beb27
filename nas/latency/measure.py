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
from typing import TYPE_CHECKING, Callable, Collection, Iterator, Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.checkpoint import atomic_write_text
from nas.errors import ConfigError, DataError, counted, module_logger
from nas.sigstack import signal_stack_kept
from nas.telemetry import openvino_telemetry_off

log = module_logger("nas.latency")  # a reading of a file's numbers to check (`_point_reading_warning`)

if TYPE_CHECKING:
    import openvino as ov

    from nas.latency.hardware import HardwareProfile

RUNTIMES = ("openvino", "onnxruntime")
PRECISIONS = ("fp32", "int8")
MEASUREMENT_COLUMNS = (
    "arch_json", "arch_id", "runtime", "precision", "threads", "batch", "median_ms", "p10_ms", "p90_ms",
    "n_calls", "machine",
)
TEMPLATE_PLACEHOLDERS = {"runtime": "<your runtime>", "machine": "<your chip>"}
"""What `profile export_only=true` writes into the template's cells that the user must fill in (see `read_measurements`)."""
_PLACEHOLDER = re.compile(r"<your\b[^>]*>")


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


NOISY_SPREAD = 0.35
"""A session whose archs' median (p90 - p10) / median exceeds this was disturbed. On this host the committed
quiet sessions showed 0.17-0.27, and a later session whose medians moved by 45% (and not alike for all archs)
0.48 (experiments/results/latency/predictor_cpu.md)."""


def session_spread(rows: Sequence[Measurement]) -> float:
    """Median over a session's archs of (p90 - p10) / median: how settled the machine was while timing."""
    return float(np.median([(m.p90_ms - m.p10_ms) / m.median_ms for m in rows]))


def noise_warning(rows: Sequence[Measurement]) -> str | None:
    """One line to show the user when a session's timings were too noisy to fit or check a predictor on, else None."""
    spread = session_spread(rows)
    if spread <= NOISY_SPREAD:
        return None
    return (f"this session was noisy: single calls spread {spread:.0%} around each arch's median (p10-p90; quiet sessions "
            f"stay under {NOISY_SPREAD:.0%}); re-measure when the machine is idle, and fit and validate on one quiet session")


def machine_info(*, cpuinfo: str | None = None) -> str:
    """CPU model and core count, recorded with every measurement; on Linux also the CPU's family, model and stepping
    numbers and its widest vector instructions (`cpu_isa`), which tell apart machines whose (virtualised) model name is
    the same generic string ("AMD EPYC"). `cpuinfo`: a /proc/cpuinfo text to describe instead of this host's."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    name, ids = cpu_identity(cpuinfo)
    isa = vector_isa(cpu_flags(cpuinfo) or [])
    model = name or platform.processor() or platform.machine()
    return (f"{model}; {os.cpu_count()} cpus; {platform.system()} {platform.release()}" + (f"; {ids}" if ids else "")
            + (f"; {isa}" if isa else ""))


def cpu_identity(cpuinfo: str) -> tuple[str, str]:
    """(model name, "family F model M stepping S") of the first processor in a /proc/cpuinfo text; "" for what it
    lacks."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if not key and fields:  # the blank line that ends the first processor's block
            break
        fields.setdefault(key, value)
    ids = [fields.get(k, "") for k in ("cpu family", "model", "stepping")]
    return fields.get("model name", ""), ("family {} model {} stepping {}".format(*ids) if all(ids) else "")


# x86 instructions that multiply 8-bit integers into 32-bit sums: without them onnxruntime's (and older OpenVINO's)
# int8 kernels add pairs of u8 x s8 products in 16 bits (vpmaddubsw), which saturate for large weights and activations.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_saturates(cpuinfo: str | None = None, *, machine: str | None = None) -> bool:
    """Whether this (or the given /proc/cpuinfo text's) CPU is x86 without VNNI, where onnxruntime's fused int8 kernels
    saturate: an int8 ONNX file then gives other logits on this CPU than on the target chip or a VNNI CPU. False for
    other architectures and where the flags cannot be read (nothing known to report)."""
    arch = (machine if machine is not None else platform.machine()).lower()
    if arch not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = cpu_flags(cpuinfo)
    return flags is not None and not any(f in flags for f in VNNI_FLAGS)


def cpu_flags(cpuinfo: str) -> list[str] | None:
    """The first processor's feature flags in a /proc/cpuinfo text (x86's `flags` line); None where it has none."""
    return next((line.partition(":")[2].split() for line in cpuinfo.splitlines()
                 if line.split(":")[0].strip() == "flags"), None)


ISA_LEVELS = ("avx512f", "avx2")
"""x86 vector instruction sets that decide which kernels OpenVINO's and onnxruntime's CPU plugins run (OpenVINO's
per-node profile names them, e.g. `brgconv_avx512_f32`), widest first: where they differ, so do the per-op costs."""


def vector_isa(flags: Sequence[str]) -> str:
    """The widest of `ISA_LEVELS` among a CPU's `flags` (`cpu_flags`); "" for none (older x86, other architectures)."""
    return next((isa for isa in ISA_LEVELS if isa in flags), "")


def cpu_model(machine: str) -> str:
    """The CPU model part of a `machine_info` string (what a calibration depends on; kernels and core counts
    of the same CPU model are not told apart)."""
    return machine.split(";", 1)[0].strip()


_GENERATION = re.compile(r"^family (\d+) model (\d+)(?: stepping \d+)?$")


def cpu_generation(machine: str) -> str:
    """"family F model M" of a `machine_info` string (or a `calibrated_on`), the stepping left out; "" where it has
    none (strings recorded before 2026-12-04, CPUs that do not report the numbers)."""
    parts = (_GENERATION.match(part.strip()) for part in machine.split(";")[1:])
    return next((f"family {m[1]} model {m[2]}" for m in parts if m), "")


def cpu_isa(machine: str) -> str:
    """The vector instructions (one of `ISA_LEVELS`) a `machine_info` string or a `calibrated_on` records; "" for none."""
    return next((part.strip() for part in machine.split(";")[1:] if part.strip() in ISA_LEVELS), "")


def cpu_signature(machine: str) -> str:
    """What a calibration records of a `machine_info` string (`calibrated_on`): the CPU model, then its family and
    model numbers and its vector instructions where the string has them ("AMD EPYC; family 25 model 17; avx512f")."""
    return "; ".join(part for part in (cpu_model(machine), cpu_generation(machine), cpu_isa(machine)) if part)


def cpu_difference(a: str, b: str) -> str:
    """How the CPUs of two `machine_info` / `calibrated_on` strings differ, in words ("" when they may be the same
    CPU): the model name, or else the family/model numbers and vector instructions where both strings record them
    (a string that does not record a part, e.g. one written before it was recorded, is not compared on it)."""
    if cpu_model(a) != cpu_model(b):
        return "another CPU model"
    generation, isa = ((part(a) and part(b) and part(a) != part(b)) for part in (cpu_generation, cpu_isa))
    if generation:
        return "another CPU family/model" + (" and vector instructions" if isa else "")
    return "other vector instructions" if isa else ""


def refit_calibrated_on(*, measured: str, recorded: str) -> str:
    """The `calibrated_on` a refit of a profile from the measurements it was fitted on records: `recorded` (the
    profile's `calibrated_on` now) where it says more of the same CPU than `measured` (`measured_on` of the rows,
    which may predate the recording of family/model numbers or vector instructions), else `measured`.

    More of the same CPU: the same model name, nothing `cpu_difference` tells apart, and every part that `measured`
    records also in `recorded`, which records a part more. Only for rows the profile was fitted on: new rows from a
    host that records less (not Linux) may be another generation of the same model name."""
    if not recorded or cpu_difference(measured, recorded):
        return measured
    more = [bool(part(recorded)) and not part(measured) for part in (cpu_generation, cpu_isa)]
    less = [bool(part(measured)) and not part(recorded) for part in (cpu_generation, cpu_isa)]
    return recorded if any(more) and not any(less) else measured


def measured_on(rows: Sequence[Measurement], *, what: str) -> str:
    """The one CPU (`cpu_signature`) that `rows` were measured on; "" when the rows name none.

    A calibration is valid for one machine: rows from several CPU models, or of one model name but other family/model
    numbers or vector instructions, are refused (`DataError` naming them and `what`). A part that some rows do not
    record (rows taken before it was recorded) is left out, not claimed for them all.
    """
    named = [r.machine for r in rows if r.machine.strip()]
    machines = sorted({cpu_signature(m) for m in named})
    if len(machines) > 1 and any(cpu_difference(a, b) for a in machines for b in machines):
        raise DataError(f"{what}: measurements from {len(machines)} machines ({', '.join(map(repr, machines))}); fit and "
                        "validate one machine's measurements at a time (the 'machine' column)")
    if not named:
        return ""
    # A part all rows agree on ("" where some lack it; where two rows differ in it, the check above refused them).
    agreed = [found.pop() if len(found) == 1 else ""
              for found in ({part(m) for m in named} for part in (cpu_generation, cpu_isa))]
    return "; ".join(part for part in (cpu_model(named[0]), *agreed) if part)


def host_mismatch(hw: HardwareProfile, *, host: str | None = None, others: Sequence[HardwareProfile] = ()) -> str | None:
    """One line for the user when `hw` is this host's CPU (it has a `runtime` here) but was calibrated on another
    CPU than `host` (default: this machine's `machine_info`); None when it matches or nothing says where it was
    calibrated. Another CPU: another model name, or the same name with other family/model numbers or vector
    instructions where both `host` and `hw.calibrated_on` record them (`cpu_difference`). If one of `others`
    (profiles, e.g. `nas.config.hw_profiles()`) times the same way (runtime, precision, threads) and was calibrated on
    this CPU, the line names it, first one that records this CPU's family/model numbers too. A profile whose
    `calibrated_on` records less than that (no family/model: fitted before they were recorded) gets a line only where
    one of `others` records exactly this host's CPU, and the line names that one.

    The shipped `cpu` profiles were fitted on one machine of a pool whose machines differ: on another one their
    predictions can be off by a large factor (experiments/results/latency/predictor_cpu.md)."""
    if not (hw.runtime and hw.calibration and hw.calibrated_on):
        return None
    host = host if host is not None else machine_info()
    differ = cpu_difference(host, hw.calibrated_on)
    fitting = [p for p in others if p.name != hw.name and p.calibration and p.calibrated_on
               and not cpu_difference(host, p.calibrated_on)
               and (p.runtime, p.precision, p.threads) == (hw.runtime, hw.precision, hw.threads)]
    # Profiles that record this host's CPU down to its family/model numbers first: machines of one model name
    # ("Intel(R) Xeon(R) Processor") have run the same files 1.8x apart (experiments/results/latency/predictor_cpu_xeonb.md).
    exact = [p.name for p in fitting if cpu_signature(p.calibrated_on) == cpu_signature(host)]
    if not differ:
        # A calibration that records no family/model (fitted before they were recorded) may be of another generation
        # of the same name: named only where this host reports its family/model and another profile records them.
        if cpu_generation(hw.calibrated_on) or not cpu_generation(host):
            return None
        named = [p.name for p in fitting if p.name in exact and cpu_generation(p.calibrated_on)]
        if not named:
            return None
        return (f"hw={hw.name} was calibrated on {hw.calibrated_on!r}, which does not record which machine of that "
                f"name it was, and hw={named[0]} on exactly this host's CPU, {cpu_signature(host)!r}, with the same "
                f"runtime settings: use hw={named[0]} (machines of one model name can run the same model at another "
                "speed)")
    # A generic name ("AMD EPYC") alike on both sides: the numbers and instructions tell the user what differs.
    here = (repr(cpu_model(host)) if differ == "another CPU model"
            else f"{cpu_signature(host)!r} (the same model name, {differ})")
    fitting = exact + [p.name for p in fitting if p.name not in exact]
    calibrate = _calibrate_a_copy(hw)
    remedy = (f"use hw={fitting[0]}, calibrated on this CPU model with the same runtime settings, or {calibrate}"
              if fitting else calibrate)
    return (f"hw={hw.name} was calibrated on {hw.calibrated_on!r}, but this host is {here}: its predicted latencies "
            f"describe that machine, not this one; {remedy}")


def _calibrate_a_copy(hw: HardwareProfile) -> str:
    """'calibrate a copy for this host: <the commands>': to run as they stand, writing a profile of the user's own (a
    fit of hw=<name> itself rewrites the shipped profile in a checkout)."""
    from nas.latency.hardware import config_dir_option

    mine = f"my_{hw.name}"
    # A profile of the user's own folder: the commands read it from there, and the copy goes beside it
    own = config_dir_option(hw.name)
    folder = own.removeprefix("--config-dir ").strip() or "myconf"
    return (f"calibrate a copy for this host: `python -m nas.latency.profile {own}hw={hw.name} n=50 out={mine}.csv`, then "
            f"`python -m nas.latency.fit {own}hw={hw.name} 'measurements=[{mine}.csv]' out={folder}/hw/{mine}.yaml`, and "
            f"search with `--config-dir {folder} hw={mine}` (README, 'Onboarding a chip')")


def uncalibrated_warning(hw: HardwareProfile) -> str | None:
    """One line for the user when `hw` is timed on this host (it has a `runtime`: the `cpu*` profiles) but has no
    calibration: its predictions are the roofline of its datasheet numbers, guesses for a CPU, which the search ranks
    candidates by. None for a calibrated profile, and for a predicted-only chip (edge_npu): uncalibrated by design, with
    nothing here to calibrate it on (`describe_predictor` says so in the report)."""
    if not hw.runtime or hw.calibration:
        return None
    return (f"hw={hw.name} is timed on this host ({hw.runtime}) but not calibrated: its predicted latencies, which the "
            "search ranks candidates by, are the roofline of its datasheet numbers, not fitted to measurements, and may "
            "be several times off this CPU's times (the report's 'measured on host' shows the members'); "
            f"{_calibrate_a_copy(hw)}")


def hw_choices(profiles: Sequence[HardwareProfile], *, host: str | None = None, default: str = "") -> str:
    """Lines for `--help` that tell a user which `hw=` to choose: each of `profiles` (e.g. `nas.config.hw_profiles()`)
    with its precision, whether it is timed on this host (a `runtime`) and what its predictions rest on (datasheet
    numbers, or measurements of which CPU, and whether that is this host's, `host`: default this machine's
    `machine_info`), then its description. A search warns when a host profile was calibrated on another CPU
    (`host_mismatch`), but only once it runs; the choice is made before, from the list `--help` printed bare."""
    host = host if host is not None else machine_info()
    width = max((len(p.name) for p in profiles), default=0)
    lines = ["Target chip: hw=<name> (conf/hw/<name>.yaml; README 'Latency predictor'). Latencies are predicted for it"
             " at its precision; a profile with a runtime here is also timed on this host."]
    for p in profiles:
        timed = f"{p.precision}, {'also timed here' if p.runtime else 'predicted only'}"
        if not p.calibration:
            basis = "datasheet numbers (uncalibrated)"
        elif not p.calibrated_on:
            basis = "calibrated (CPU not recorded)"
        elif not p.runtime:
            basis = f"calibrated on {p.calibrated_on!r}"
        elif cpu_difference(host, p.calibrated_on):
            basis = f"calibrated on {p.calibrated_on!r}, NOT this host's CPU"
        elif cpu_signature(p.calibrated_on) == cpu_signature(host):
            basis = f"calibrated on {p.calibrated_on!r}, this host's CPU"
        else:  # the same model name, nothing more recorded on one side: a generic name may be another generation
            basis = f"calibrated on {p.calibrated_on!r}, this host's CPU as far as that records"
        mark = " (default)" if p.name == default else ""
        lines.append(f"  {p.name:<{width}}  {timed}; {basis}{mark}: {p.description}")
    lines.append(f"This host: {cpu_signature(host)!r}. A host profile calibrated on another CPU predicts that machine's "
                 "latencies: choose one calibrated on this host's CPU, or calibrate your own (README 'Onboarding a chip').")
    return "\n".join(lines)


def openvino_request(onnx_path: str | os.PathLike, *, threads: int, input_shape: Sequence[int],
                     perf_count: bool = False) -> ov.InferRequest:
    """An OpenVINO CPU infer request for one model, compiled the way every timing here needs it.

    Static input shape (OpenVINO >= 2025.2 leaves size-1 dims dynamic otherwise, see the shared notes),
    f32 unless the file itself is quantized (this CPU's default is bf16), latency hint, `threads`
    threads; `perf_count` turns on the per-node profile (`request.profiling_info`).
    """
    with openvino_telemetry_off():  # its import (the first in a process) sends a message
        import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    model.reshape([int(d) for d in input_shape])
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY"}
    if perf_count:
        config["PERF_COUNT"] = True
    with signal_stack_kept():  # the CPU plugin's own signal stack, unmapped when it is freed, never left in use
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


def time_onnx(path: str | os.PathLike, hw: HardwareProfile, *, input_shape: Sequence[int]) -> tuple[float, float]:
    """(median batch-1 latency in ms, spread) of one exported model in the profile's runtime on this host; the spread is
    (p90 - p10) / median of the single calls, which on a busy machine runs far above `NOISY_SPREAD`.

    `hw` is a `HardwareProfile` with a runtime here; 3 blocks of 20 calls after 10 warm-up calls.
    """
    run = make_runner(path, runtime=hw.runtime, precision=hw.precision, threads=hw.threads, input_shape=input_shape)
    x = np.random.default_rng(0).random(tuple(input_shape), dtype=np.float32)
    timing = time_runners([run], [x], warmup=10, repeats=20, rounds=3)[0]
    return timing[0], timing_spread(timing)


def timing_spread(timing: Sequence[float]) -> float:
    """(p90 - p10) / median of one of `time_runners`' timings (median, p10, p90, n_calls): how far its single calls
    spread, which `busy_timing` reads. Every host timing that records a spread computes it here, so they compare."""
    median, p10, p90 = timing[0], timing[1], timing[2]
    return (p90 - p10) / median


def measure_onnx(path: str | os.PathLike, hw: HardwareProfile, *, input_shape: Sequence[int]) -> float:
    """Median batch-1 latency (ms) of one exported model in the profile's runtime on this host (`time_onnx`'s)."""
    return time_onnx(path, hw, input_shape=input_shape)[0]


def busy_timing(spread: float) -> str | None:
    """What a single timing's `spread` (`time_onnx`) says of the machine, in words, when it was busy; None when quiet."""
    if spread <= NOISY_SPREAD:
        return None
    return (f"single calls spread {spread:.0%} around the median, p10 to p90, where quiet timings stay under "
            f"{NOISY_SPREAD:.0%}: the machine was busy, so this time is the load's as much as the model's")


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


@dataclass(frozen=True)
class NodeTime:
    """One node the runtime executed (after its own fusions), in execution order: name, type, us per call."""

    name: str
    type: str
    us: float


@dataclass(frozen=True)
class NodeProfile:
    """A model's per-node profile: its executed nodes in execution order and its call time without profiling (us)."""

    nodes: tuple[NodeTime, ...]
    call_us: float


def units_of_nodes(nodes: Sequence[NodeTime]) -> dict[str, float]:
    """Node times summed per unit (`unit_of_node`), plus "nodes", the sum over all nodes.

    Nodes the runtime created itself (reorders, the pieces of a decomposed norm) have names that do not
    say their unit; they count for the unit of the named node before them (nodes come in execution order).
    """
    acc: dict[str, float] = collections.defaultdict(float)
    unit = "stem"
    for node in nodes:
        unit = unit_of_node(node.name) or unit
        acc[unit] += node.us
        acc["nodes"] += node.us
    return dict(acc)


def _node_profiler(onnx_path: str | os.PathLike, *, threads: int, input_shape: Sequence[int]) -> Callable[[int], NodeProfile]:
    request = openvino_request(onnx_path, threads=threads, input_shape=input_shape, perf_count=True)
    # The same model without profiling, timed in the same rounds: its call time against the node sum
    # shows the runtime's work outside the nodes.
    plain = make_runner(onnx_path, runtime="openvino", precision="fp32", threads=threads, input_shape=input_shape)
    x = np.random.default_rng(0).random(tuple(input_shape), dtype=np.float32)

    def run(repeats: int) -> NodeProfile:
        calls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            plain(x)
            calls.append((time.perf_counter() - t0) * 1e6)
        acc: dict[tuple[str, str], float] = collections.defaultdict(float)  # insertion order = execution order
        for _ in range(repeats):
            request.infer({0: x})
            for info in request.profiling_info:
                # Nodes that did not run count only when their name says a unit: they move the unit that the
                # unnamed nodes after them count for (`units_of_nodes`).
                if info.status == info.Status.EXECUTED:
                    # The runtime reports whole microseconds per call: the mean over repeats resolves finer.
                    acc[(info.node_name, info.node_type)] += info.real_time.total_seconds() * 1e6 / repeats
                elif unit_of_node(info.node_name):
                    acc[(info.node_name, info.node_type)] += 0.0
        return NodeProfile(tuple(NodeTime(name, kind, us) for (name, kind), us in acc.items()), statistics.median(calls))

    return run


def _profile_rounds(onnx_paths: Sequence[str | os.PathLike], input_shapes: Sequence[Sequence[int]], *, threads: int,
                    warmup: int, repeats: int, rounds: int) -> list[list[NodeProfile]]:
    """Each model's per-node profile in each of `rounds` interleaved rounds (like `time_runners`)."""
    runs = [_node_profiler(p, threads=threads, input_shape=s) for p, s in zip(onnx_paths, input_shapes)]
    for run in runs:
        run(warmup)
    per_round: list[list[NodeProfile]] = [[] for _ in runs]
    for r in range(rounds):
        for i in (range(len(runs)) if r % 2 == 0 else reversed(range(len(runs)))):
            per_round[i].append(runs[i](repeats))
    return per_round


def profile_nodes(onnx_paths: Sequence[str | os.PathLike], input_shapes: Sequence[Sequence[int]], *, threads: int,
                  warmup: int = 20, repeats: int = 30, rounds: int = 5) -> list[NodeProfile]:
    """Per-node time (us) of each model in OpenVINO CPU f32, from its per-node profile (`PERF_COUNT`).

    Models are profiled in interleaved rounds, like `time_runners`; a node's time is the median over rounds
    of its mean over `repeats` calls, and `call_us` the median over rounds of the median call without
    profiling (input passed on every call, as `measure_archs` times).
    """
    out = []
    for rounds_of_model in _profile_rounds(onnx_paths, input_shapes, threads=threads, warmup=warmup, repeats=repeats,
                                           rounds=rounds):
        times: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        for prof in rounds_of_model:
            for node in prof.nodes:
                times[(node.name, node.type)].append(node.us)
        # A node missing from a round (the runtime did not run it then) counts 0 there.
        nodes = tuple(NodeTime(name, kind, float(statistics.median(v + [0.0] * (len(rounds_of_model) - len(v)))))
                      for (name, kind), v in times.items())
        out.append(NodeProfile(nodes, float(statistics.median(p.call_us for p in rounds_of_model))))
    return out


def profile_units(onnx_paths: Sequence[str | os.PathLike], input_shapes: Sequence[Sequence[int]], *, threads: int,
                  warmup: int = 20, repeats: int = 30, rounds: int = 5) -> list[dict[str, float]]:
    """Per-unit time (us) of each model in OpenVINO CPU f32, from its per-node profile (`PERF_COUNT`).

    Node times are summed per unit (`units_of_nodes`). Models are profiled in interleaved rounds, like
    `time_runners`; a unit's time is the median over rounds of its mean over `repeats` calls. The key "nodes"
    holds the sum over all nodes, and "call" the median time of a call without profiling in the same rounds
    (input passed on every call, as `measure_archs` times): the difference is the runtime's own work outside
    the nodes.
    """
    out = []
    for rounds_of_model in _profile_rounds(onnx_paths, input_shapes, threads=threads, warmup=warmup, repeats=repeats,
                                           rounds=rounds):
        per_unit: dict[str, list[float]] = collections.defaultdict(list)
        for prof in rounds_of_model:
            for unit, us in {**units_of_nodes(prof.nodes), "call": prof.call_us}.items():
                per_unit[unit].append(us)
        out.append({unit: float(statistics.median(v)) for unit, v in per_unit.items()})
    return out


UNIT_COLUMNS = ("arch_id", "unit", "us")


def write_unit_times(path: str | os.PathLike, rows: Sequence[tuple[str, str, float]]) -> None:
    """Write per-unit times as CSV (`UNIT_COLUMNS`: arch_id, unit, us); see README 'Onboarding a chip'."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(UNIT_COLUMNS)
    for arch_id, unit, us in rows:
        w.writerow([arch_id, unit, f"{us:.6g}"])
    atomic_write_text(path, buf.getvalue())


_UNIT_NAME = re.compile(r"^(stem|head|nodes|call|stages\.\d+\.down|stages\.\d+\.blocks\.\d+)$")


_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?(?:\s*[a-zµμ]+)?", re.IGNORECASE)
"""A number written with a decimal comma ('0,42', ',5', '1,2E-03'), as decimal-comma locales save it; or such a number
with a unit ('0,42 ms'), still refused by `_number` but with the plain number to write."""
_POINT_GROUPED = re.compile(r"[0-9]{1,3}(?:\.[0-9]{3})+")
"""A whole number with '.' between groups of thousands ('1.000', '1.000.000'), as decimal-comma locales group them."""
_COMMA_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
"""A whole number with ',' between groups of thousands ('1,000', '1,000,000'), as decimal-point locales group them."""
_POINT_OR_GROUPED = re.compile(r"[1-9][0-9]{0,2}\.[0-9]{3}")
"""A number that is a decimal ('1.234') or, as decimal-comma locales write it, a whole number grouped by thousands
(1234): float() reads the first. Not '0.123' nor '1234.5', which no grouping writes."""


class _DecimalComma(str):
    """A ';'-separated file's number cell with its decimal comma read as '.' ('0.42'), which keeps the cell as the file
    has it in `written` ('0,42'): a refusal names that, the text the user can find in their file."""

    written: str


class _CommaGrouped(str):
    """A ','- or tab-separated file's count cell grouped by thousands with ',' ('1,000'), as decimal-point locales
    group them: `_count_cell` refuses it with the whole number to write."""


def _decimal_point(cell: str) -> _DecimalComma:
    read = _DecimalComma(cell.replace(",", "."))
    read.written = cell
    return read


def _csv_rows(path: Path, columns: Sequence[str], what: str, *, optional: Sequence[str] = (),
              numbers: Collection[str] = (), counts: Collection[str] = ()) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row dict) of a CSV that must exist and have `columns`; else a one-line `DataError`. So is a header
    cell that is a near miss of an absent `optional` column ('BATCH', 'precison'): its cells would go unread, and with
    them the checks they are for. In a ';'-separated file, what a spreadsheet of a decimal-comma locale saves, a cell
    of the `numbers` columns written with a decimal comma ('0,42') is given with a point ('0.42', `_DecimalComma`), and
    one of the whole-number `counts` columns grouped with that locale's thousands separator ('1.000', which would read
    as 1) is a one-line `DataError`; so is a number cell such as '1.234' (that locale's 1234, float()'s 1.234) where
    another has a decimal comma (`_point_or_grouped_refusal`), and where none has, it is read as 1.234 with a warning
    (`_point_reading_warning`). In a ','- or tab-separated file the comma stays (and is
    refused by `_number`, or by `_count_cell` with the whole number for a count grouped as '1,000'): tabs are also
    what a copy from a spreadsheet of any locale gives, where '1,234' may be 1234.

    These files are filled in by hand, often in a spreadsheet, so the byte-order mark of "CSV UTF-8" is skipped
    and a header separated by ';' or tabs (the CSV of decimal-comma locales) sets the delimiter, as does a first line
    'sep=;' (Excel's way of naming it). Rows whose cells
    are all empty (blank lines, a spreadsheet's trailing ",,,,") are skipped. The line number is the file's line the
    row starts on, also after blank lines and quoted cells that span lines. A row shorter than the header gets None
    for the cells it lacks (as `csv.DictReader` does); empty cells beyond the header are ignored, and a row with filled
    ones is refused: its cells are shifted (a decimal comma in a comma-separated file, `0,42`), so each would be read
    under another column's name."""
    if path.is_dir():
        # `out=` of the export is a folder, and it is easy to pass that folder where its CSV is meant
        inside = path / "measurements.csv"
        hint = f"; pass the file in it: {inside}" if what == "measurements" and inside.is_file() else ""
        raise DataError(f"{what} file {path} is a folder, not a CSV file{hint}")
    if not path.is_file():
        raise DataError(f"{what} file {path} not found")
    if path.suffix.lower() == ".onnx":  # one of the exported models, next to the CSV: "not UTF-8 text (byte 20)" before
        beside = path.parent / "measurements.csv"
        hint = f": {beside}" if what == "measurements" and beside.is_file() else ""
        raise DataError(f"{what} file {path} is an ONNX model, not a CSV file; pass the {what} CSV{hint}")
    raw = path.read_bytes()
    if raw.startswith(b"PK\x03\x04"):
        raise DataError(f"{path} is a zip file (a spreadsheet workbook such as .xlsx?), not CSV; save it as CSV (UTF-8)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start}); save it as CSV (UTF-8)") from None
    if not text.strip():  # the header check would say "the header has: nothing"; a save that failed, or the wrong file
        raise DataError(f"{what} file {path} is empty; it needs a header with the columns {', '.join(columns)} and a row "
                        "per measured arch (see README)")
    # 'sep=;' as a first line, which Excel reads as the separator (and some tools write for it), names the separator
    declared = re.match(r"sep=([,;\t|])\r?\n", text)
    header = text.split("\n", 2)[1 if declared else 0]
    # skipinitialspace: a header typed as README lists the columns ("arch_json, arch_id, ...") and rows written the same
    # way, whose quoted JSON cell follows a space, read as without the spaces.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=declared[1] if declared else max(",;\t", key=header.count),
                        skipinitialspace=True)
    if declared:
        next(reader)
    fieldnames = [name.strip() for name in next(reader, [])]
    missing = set(columns) - set(fieldnames)
    # A header typed or exported as 'Median_ms', 'MEDIAN_MS', 'median_msec' or 'arch-json': name the column meant, every
    # one at once (an optional one too, so that renaming the required ones is not followed by a second refusal)
    unknown = [name for name in fieldnames if name not in columns and name not in optional]
    close = {col: match for col in [*sorted(missing), *(c for c in optional if c not in fieldnames)]
             if (match := _close_column(col, unknown))}
    # A near miss in another unit ('median_us' for median_ms, 'p10_s'): renamed, its numbers would be read 1000x off
    convert = {col: match for col, match in close.items() if _time_unit(match) not in (None, _time_unit(col))}
    close = {col: match for col, match in close.items() if col not in convert}
    rename = "rename " + ", ".join(f"{match!r} to {col!r}" for col, match in close.items()) + " (the names are exact"
    # A time column of another name ('latency_ms', 'Latency (ms)', 'time_us') where median_ms is missing: said which
    # it may be, in its unit, rather than only listing the header
    if "median_ms" in missing and "median_ms" not in close and "median_ms" not in convert:
        timed = [name for name in unknown if _time_unit(name) and name not in close.values()]
        if len(timed) == 1:
            convert["median_ms"] = timed[0]
    converts = "; ".join(_conversion(match, col) for col, match in convert.items())
    if missing:
        found = ", ".join(repr(name) for name in fieldnames) or "nothing"
        if close or convert:
            hint = (f"; {rename})" if close else "") + (f"; {converts}" if convert else "")
        # A vendor tool's table of model names and times: the name says which file was timed, not what is in it
        elif "arch_json" in missing and "arch_id" in fieldnames:
            beside = path.parent / "measurements.csv"
            export = beside if beside.is_file() and beside.resolve() != path.resolve() else "<export folder>/measurements.csv"
            hint = (f"; an arch_id does not say the arch: add template={export} (the template the export wrote) to fill "
                    "each row's arch_json from it by arch_id, or take the arch_json column from it")
        elif "us" in missing:
            # Per-unit or per-node times as a profiler gives them, in ms ('ms', 'time_ms', 'Time (ms)'): one unit is
            # read, never guessed from a column's name, so the message says which and how to get there.
            timed = next((name for name in fieldnames if name not in columns and _time_unit(name) not in (None, "us")), None)
            hint = "; the times go in a column named 'us', in microseconds per call" + (
                f": write the header's {timed!r} times ({_UNIT_WORDS[_time_unit(timed)]}) {_FACTOR[_time_unit(timed), 'us']} "
                "there" if timed else "")
        else:
            hint = ""
        raise DataError(f"{path}: header lacks column{'s' * (len(missing) > 1)} {sorted(missing)}; required: {', '.join(columns)} "
                        f"(see README); the header has: {found}{hint}")
    if convert:  # only optional columns (p10_ms, p90_ms) here: their cells would be read in the wrong unit
        raise DataError(f"{path}: {converts}" + (f"; and {rename})" if close else ""))
    if close:
        raise DataError(f"{path}: the header's " + ", ".join(f"{match!r}" for match in close.values())
                        + f" {'is not a column' if len(close) == 1 else 'are not columns'} this reads, so "
                        + f"{'its cells go' if len(close) == 1 else 'their cells go'} unread: {rename}; the columns: "
                        + f"{', '.join([*columns, *optional])})")
    semicolon_numbers: list[tuple[int, str, str]] = []  # (line, column, cell): `_point_reading_warning`
    # The first number cell with a decimal comma and the first such as '1.234': `_point_or_grouped_refusal`
    comma: tuple[int, str, str] | None = None
    point: tuple[int, str, str] | None = None
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        # `line_num` counts the lines read so far, i.e. up to the row's last line: a quoted cell with line breaks
        # ends lines further down than the row starts (enumerate counted neither those nor blank lines).
        start = reader.line_num - sum(len(_LINE_BREAK.findall(cell)) for cell in cells)
        if any(cell.strip() for cell in cells[len(fieldnames):]):
            # '0,42' or '1,234' unquoted: a decimal comma, or a thousands separator (1234), split the number in two
            hint = (" (a decimal comma or a thousands separator in a comma-separated file? write numbers without ',': "
                    "decimals with '.')" if reader.dialect.delimiter == ","
                    and any(re.fullmatch(r"[0-9]+", c.strip()) for c in cells[len(fieldnames):]) else
                    " (a cell holding the separator unquoted?)")
            raise DataError(f"{path}, line {start}: {len(cells)} cells, but the header has {len(fieldnames)} columns, so the "
                            f"cells are shifted{hint}")
        row = {name: (cells[i] if i < len(cells) else None) for i, name in enumerate(fieldnames)}
        if reader.dialect.delimiter != ";":  # English-locale grouping ('1,000'): refused by `_count_cell`, with 1000
            row.update({name: _CommaGrouped(cell.strip()) for name in counts
                        if _COMMA_GROUPED.fullmatch((cell := row.get(name) or "").strip())})
        else:
            if grouped := next((name for name in counts if _POINT_GROUPED.fullmatch((row.get(name) or "").strip())), None):
                cell = (row[grouped] or "").strip()
                raise DataError(f"{path}, line {start}: {grouped}={cell!r} has thousands separators; write the whole "
                                f"number without them ({cell.replace('.', '')})")
            here = [(start, name, (row.get(name) or "").strip()) for name in numbers]
            semicolon_numbers += here
            comma = comma or next((c for c in here if "," in c[2]), None)
            point = point or next((c for c in here if _POINT_OR_GROUPED.fullmatch(c[2])), None)
            if comma and point:
                raise DataError(_point_or_grouped_refusal(path, point, comma))
            row.update({name: _decimal_point(cell.strip()) for name in numbers
                        if _DECIMAL_COMMA.fullmatch((cell := row.get(name) or "").strip())})
        yield start, row
    if (warning := _point_reading_warning(path, semicolon_numbers)) is not None:
        log.warning("%s", warning)


def _point_or_grouped_refusal(path: Path, grouped: tuple[int, str, str], comma: tuple[int, str, str]) -> str:
    """The one line refusing a ';'-separated file's number cell such as '1.234' (`grouped`: line, column, cell as
    written), which float() reads as 1.234, where another cell (`comma`) has a decimal comma: the file is in a
    decimal-comma locale, which writes 1234 so, 1000x the reading. A file that also has a '.' no grouping writes
    ('0.5') mixes both ways of writing decimals, so that tells nothing either: refused the same."""
    line, column, cell = grouped
    unit = _time_unit(column) or ""
    whole, decimal = cell.replace(".", ""), cell.replace(".", ",")
    return (f"{path}, line {line}: {column}={cell!r} is {whole} {unit} if '.' separates thousands, as in the "
            f"decimal-comma locale of this ';'-separated file (line {comma[0]}: {comma[1]}={comma[2]!r}), or "
            f"{float(cell):g} {unit} if it is a decimal point (write {whole}, or {decimal} for {float(cell):g} with "
            "the file's decimal comma)")


def _point_reading_warning(path: Path, cells: Sequence[tuple[int, str, str]]) -> str | None:
    """One line when the number `cells` (line, column, cell as written) of a ';'-separated file, the CSV of
    decimal-comma locales, where '.' groups thousands, have one such as '1.234', which float() reads as 1.234 but that
    locale writes for 1234, and none that tells: no decimal comma ('0,42') and no other '.' ('0.42', '1234.5'), which
    only a decimal point writes. None otherwise."""
    dotted = [(line, column, cell) for line, column, cell in cells if "." in cell]
    if any("," in cell for _, _, cell in cells) or not dotted:
        return None
    if not all(_POINT_OR_GROUPED.fullmatch(cell) for _, _, cell in dotted):
        return None
    line, column, cell = dotted[0]
    unit = _time_unit(column) or ""
    more = f" (and {counted(len(dotted) - 1, 'other cell')} like it)" if len(dotted) > 1 else ""
    return (f"{path}, line {line}: {column}={cell!r}{more} is read as {float(cell):g} {unit}; in a ';'-separated file, "
            f"as decimal-comma locales save CSV, '.' may separate thousands ({cell.replace('.', '')} {unit}), and no "
            "number in it has a decimal comma or another '.' to tell which: if so, write the numbers without thousands "
            "separators")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TIME_UNITS = {unit: re.compile(rf"(?<![a-z])({words})(?![a-z])", re.IGNORECASE) for unit, words in (
    ("ms", r"ms|msecs?|millisec(ond)?s?"), ("us", r"us|µs|μs|usecs?|microsec(ond)?s?"), ("ns", r"ns|nsecs?|nanosec(ond)?s?"),
    ("s", r"s|secs?|seconds?"))}
"""The time unit a header cell or a cell's suffix names: 'time_ms', 'Time (ms)', 'median_us', 'latency [s]', '0.42 ms'."""
_UNIT_WORDS = {"ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds", "s": "seconds"}
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_FACTOR = {(a, b): (f"multiplied by {round(x):,}" if x >= 1 else f"divided by {round(1 / x):,}")
           for a in _SECONDS for b in _SECONDS if a != b for x in [_SECONDS[a] / _SECONDS[b]]}
"""How a time in one unit becomes one in another: _FACTOR['us', 'ms'] is 'divided by 1,000'."""


def _time_unit(name: str) -> str | None:
    """'ms', 'us', 'ns' or 's' where `name` (a header cell) names that time unit, else None."""
    return next((unit for unit, pattern in _TIME_UNITS.items() if pattern.search(name)), None)


def _conversion(column: str, wanted: str) -> str:
    """What to do with a header's time `column` where the `wanted` column (median_ms, p10_ms, p90_ms) is missing."""
    unit = _time_unit(column)
    if unit == _time_unit(wanted):  # 'latency_ms', 'Latency (ms)': the unit is right, the name is not
        return f"if {column!r} holds each model's {wanted.removesuffix('_ms').replace('median', 'median time')}, rename it to {wanted!r}"
    return (f"{column!r} is in {_UNIT_WORDS[unit]}, and {wanted} in milliseconds: write its times {_FACTOR[unit, 'ms']} in "
            f"a column named {wanted!r}")


def _close_column(column: str, fieldnames: Sequence[str]) -> str | None:
    """The header cell of `fieldnames` that is `column` but for case, '-' or ' ' for '_', or a typo (difflib ratio
    >= 0.8), for a CSV whose header lacks `column`; None where none is."""
    import difflib

    def key(name: str) -> str:
        return re.sub(r"[-\s]+", "_", name.strip().lower())

    keyed = {key(name): name for name in fieldnames if name}
    if key(column) in keyed:
        return keyed[key(column)]
    match = difflib.get_close_matches(key(column), list(keyed), n=1, cutoff=0.8)
    return keyed[match[0]] if match else None


def _number(row: dict, column: str, path: Path, line: int, *, unit: str, positive: bool) -> float:
    """The row's `column` cell as a finite number (> 0 if `positive`, else >= 0), or a `DataError` naming the
    file, line, column and value, as the file has it (`_DecimalComma`)."""
    read = row.get(column) or ""
    cell = read.strip()
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if np.isfinite(value) and (value > 0 if positive else value >= 0):
        return value
    if not cell:
        raise DataError(f"{path}, line {line}: {column} is empty; fill in a time in {unit} or delete the row")
    written = getattr(read, "written", cell)
    hint = _number_hint(cell, written=written, unit=unit, positive=positive)
    raise DataError(f"{path}, line {line}: {column}={written!r} must be a plain number of {unit} "
                    f"{'> 0' if positive else '>= 0'}{hint}")


_WITH_UNIT = re.compile(r"([0-9.,]*[0-9][0-9.,]*)((?:e[+-]?[0-9]+)?)\s*([a-zµμ]*)", re.IGNORECASE)
"""A time cell as a profiler or a spreadsheet may write it: digits with '.' or ',' between them, an exponent, a unit."""


def _number_hint(cell: str, *, written: str, unit: str, positive: bool) -> str:
    """' (write <the plain number>, ...)' for a time cell (`cell` as read, `written` as the file has it) that is a
    number with separators float() does not read ('1.234,5', or '0,42' outside a ';'-separated file), with a time unit
    ('0.42 ms', '420 us', as a profiler prints a time), or both; the number in `unit`. Where the separators do not tell
    ('1,234': a decimal comma, or a thousands separator), both readings, for the user to choose. '' for other text
    ('1.2.3', '. ms', '-2'): no number to suggest; and where a number to write would be refused in turn by the
    column's own check (finite, > 0 if `positive`: '0 ms', '1e-400 s')."""
    match = _WITH_UNIT.fullmatch(cell)
    if match is None:
        return ""
    number, exponent, suffix = match.groups()
    given = _time_unit(suffix) if suffix else None
    if suffix and (given is None or not _TIME_UNITS[given].fullmatch(suffix)):
        return ""
    plain = re.fullmatch(r"[0-9]+\.?[0-9]*|\.[0-9]+", number) is not None
    readings = [number] if plain else _readings(number)
    if not readings or (plain and not suffix):
        return ""
    wanted = next(u for u, words in _UNIT_WORDS.items() if words == unit)
    # .12g: a time times a power of 1000 ('420 us' is 0.42000000000000004 ms) shown as the decimal it is, to its digits
    values = [f"{float(r + exponent) * _SECONDS[given] / _SECONDS[wanted]:.12g}" if given else r + exponent for r in readings]
    if not all(np.isfinite(v := float(value)) and (v > 0 if positive else v >= 0) for value in values):
        return ""  # '0 ms': "write 0" suggests what the column refuses next
    write = (f"write {values[0]}" if len(values) == 1 else
             f"write {values[0]} if ',' is a decimal comma there, or {values[1]} if it separates thousands")
    if suffix:
        return f" ({write}, without the unit" + ("" if given == wanted else f": {written} in {unit}") + ")"
    if len(values) > 1:
        return f" ({write})"
    return f" ({write}, " + ("without thousands separators)" if len(readings[0]) < len(number) else "with '.' for decimals)")


def _readings(number: str) -> list[str]:
    """The plain numbers that `number`, digits with ',' or '.' between them that float() does not read, may be: one
    where its separators tell ('1.234,5' and '1,234.5' are 1234.5, '1.234.567' and '1,234,567' are 1234567, '0,42' and
    '12,5' have a decimal comma), two where they do not ('1,234': 1.234 with a decimal comma, 1234 with a thousands
    separator), none where it is no number ('1.2.3')."""
    # '.' between groups of thousands, as decimal-comma locales write them (German Excel's '1.234,5'), or ','
    if re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+|[0-9]{1,3}(?:\.[0-9]{3}){2,}", number):
        return [number.replace(".", "").replace(",", ".")]
    if re.fullmatch(r"[0-9]{1,3}(?:,[0-9]{3})+\.[0-9]+|[0-9]{1,3}(?:,[0-9]{3}){2,}", number):
        return [number.replace(",", "")]
    if re.fullmatch(r"[1-9][0-9]{0,2},[0-9]{3}", number):  # one ',' before 3 digits: either
        return [number.replace(",", "."), number.replace(",", "")]
    if re.fullmatch(r"[0-9]*,[0-9]+", number):
        return [("0" if number.startswith(",") else "") + number.replace(",", ".")]
    return []


def _count_cell(row: dict, column: str, path: Path, line: int, *, default: int) -> int:
    """The row's optional `column` cell as a whole number >= 0 (`default` when empty), or a `DataError` naming it."""
    read = row.get(column) or ""
    cell = read.strip()
    if not cell:
        return default
    if isinstance(read, _CommaGrouped):
        raise DataError(f"{path}, line {line}: {column}={cell!r} has thousands separators; write the whole number "
                        f"without them ({cell.replace(',', '')})")
    # '200.0': pandas writes a whole-number column that has an empty cell (NaN) as floats. '1_000' as the time
    # columns' float() reads it: someone typing it means 1000
    whole = re.fullmatch(r"([0-9]+(?:_[0-9]+)*)(\.0*)?", cell)
    if whole is None:
        raise DataError(f"{path}, line {line}: {column}={cell!r} must be a whole number >= 0 (or empty)")
    return int(whole.group(1))


def read_unit_times(path: str | os.PathLike, *, arch_ids: Collection[str] = ()) -> dict[str, dict[str, float]]:
    """Per-unit times {arch_id: {unit: us}}; a malformed row raises `DataError` naming its line. An arch_id cell may
    be the exported file's name (`<arch_id>.onnx`), as in the measurements, or the compiled file's (`<arch_id>.rknn`,
    `.tflite`, ...) where that arch_id is one of `arch_ids`, the archs measured (`_arch_id_of`)."""
    p = Path(path)
    out: dict[str, dict[str, float]] = collections.defaultdict(dict)
    seen: dict[tuple[str, str], int] = {}
    for line, row in _csv_rows(p, UNIT_COLUMNS, "unit times", numbers=("us",)):
        unit = row["unit"] or ""
        if not _UNIT_NAME.match(unit):
            # A profiler's own layer name pasted as it is: say which unit it belongs to
            of = unit_of_node(unit)
            layer = f" is a layer of unit {of!r}: sum the layers' times per unit" if of else ""
            raise DataError(f"{p}, line {line}: unit={unit!r}{layer}; allowed: stem, stages.<i>.down, stages.<i>.blocks.<b>, "
                            "head, nodes, call")
        arch_id = _arch_id_of(row["arch_id"] or "", arch_ids)
        if (arch_id, unit) in seen:
            # Each layer's row named with its unit but not summed: only the last layer's time was kept, without a word
            raise DataError(f"{p}, line {line}: arch {arch_id}'s unit {unit!r} has a time already (line {seen[arch_id, unit]}); "
                            "one row per unit: sum the times of its layers into it")
        seen[arch_id, unit] = line
        out[arch_id][unit] = _number(row, "us", p, line, unit="microseconds", positive=False)
    if not out:
        raise DataError(f"{p} holds no unit times")
    return dict(out)


NODE_COLUMNS = ("arch_id", "node", "type", "us")


def write_node_times(path: str | os.PathLike, profiles: Sequence[tuple[str, NodeProfile]]) -> None:
    """Write per-node profiles as CSV (`NODE_COLUMNS`), nodes in execution order, then a `call` row per model."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(NODE_COLUMNS)
    for arch_id, prof in profiles:
        for node in prof.nodes:
            w.writerow([arch_id, node.name, node.type, f"{node.us:.4g}"])
        w.writerow([arch_id, "call", "call", f"{prof.call_us:.6g}"])
    atomic_write_text(path, buf.getvalue())


def read_node_times(path: str | os.PathLike) -> dict[str, NodeProfile]:
    """Per-node profiles {arch_id: NodeProfile} (rows in execution order); a malformed row raises `DataError` naming its line."""
    p = Path(path)
    nodes: dict[str, list[NodeTime]] = collections.defaultdict(list)
    calls: dict[str, float] = {}
    for line, row in _csv_rows(p, NODE_COLUMNS, "node times", numbers=("us",)):
        if not row["arch_id"] or not row["node"]:
            raise DataError(f"{p}, line {line}: arch_id={row['arch_id']!r}, node={row['node']!r}; both must be non-empty")
        us = _number(row, "us", p, line, unit="microseconds", positive=False)
        if row["node"] == "call":
            calls[row["arch_id"]] = us
        else:
            nodes[row["arch_id"]].append(NodeTime(row["node"], row["type"] or "", us))
    if not nodes:
        raise DataError(f"{p} holds no node times")
    lacking = sorted(set(nodes) - set(calls))
    if lacking:
        raise DataError(f"{p}: arch_id={lacking[0]!r} has no 'call' row (its call time without profiling)")
    return {arch_id: NodeProfile(tuple(v), calls[arch_id]) for arch_id, v in nodes.items()}


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
    atomic_write_text(path, buf.getvalue())


def read_measurements(path: str | os.PathLike) -> list[Measurement]:
    """Read a measurements CSV; a malformed row raises `DataError` naming its line."""
    return [m for _, m in read_measurement_rows(path)]


def template_file(template: str | os.PathLike) -> Path:
    """The measurements template `template` names: the file, or `measurements.csv` in a folder (the `out=` of
    `python -m nas.latency.profile export_only=true`); a one-line `DataError` where there is none."""
    t = Path(template)
    if t.is_dir():
        if not (t / "measurements.csv").is_file():
            raise DataError(f"template={str(template)!r} is a folder without a measurements.csv; pass the export folder "
                            "(the out= of python -m nas.latency.profile export_only=true) or its measurements.csv")
        return t / "measurements.csv"
    if not t.is_file():
        raise DataError(f"template file {t} not found; pass the export folder (the out= of python -m nas.latency.profile "
                        "export_only=true) or its measurements.csv")
    return t


def template_archs(template: Path) -> dict[str, tuple[int, str]]:
    """{arch_id: (line, arch_json)} of a measurements template (`template_file`): the archs an export wrote, by the
    id its files are named by. A row with an empty arch_id cell goes by its arch_json's id."""
    archs: dict[str, tuple[int, str]] = {}
    for line, row in _csv_rows(template, ("arch_json", "arch_id"), "template"):
        spec = (row["arch_json"] or "").strip()
        if not spec:
            continue
        arch_id = _hex_lower((row["arch_id"] or "").strip())
        if not arch_id:
            try:
                arch_id = ArchConfig.from_json(spec).arch_id
            except (ValueError, ConfigError, TypeError) as e:
                raise DataError(f"{template}, line {line}: arch_json: {str(e).splitlines()[0]}") from None
        archs.setdefault(arch_id, (line, spec))
    if not archs:
        raise DataError(f"template {template} holds no arch_json; pass the measurements.csv the export wrote")
    return archs


def _spec_from_template(row: dict, archs: dict[str, tuple[int, str]], template: Path, path: Path, line: int) -> str:
    """The arch_json that the template `archs` (`template_archs`) holds for the row's arch_id (or the exported file's
    name), or a one-line `DataError` naming the id the template lacks."""
    cell = (row.get("arch_id") or "").strip()
    if not cell:
        raise DataError(f"{path}, line {line}: arch_json and arch_id are both empty; write the arch_id of the model timed "
                        "(its exported file's name) or delete the row")
    arch_id = _arch_id_of(cell, archs)
    if arch_id not in archs:
        shown = ", ".join(list(archs)[:3]) + (", ..." if len(archs) > 3 else "")
        raise DataError(f"{path}, line {line}: arch_id={cell!r} is not in the template {template} ({len(archs)} archs: "
                        f"{shown}); pass the template of the export it was measured from, or delete the row"
                        + spreadsheet_hint(cell))
    return archs[arch_id][1]


def read_measurement_rows(path: str | os.PathLike, *,
                          template: str | os.PathLike | None = None) -> list[tuple[int, Measurement]]:
    """(line number, measurement) of each row of a measurements CSV, as `read_measurements` checks them.

    With `template` (an export folder or its measurements.csv, `template_file`), a row without arch_json (a vendor's
    table of `arch_id,median_ms`, or the exported file's name and its time) takes the arch_json the template has for
    its arch_id; an arch_id the template lacks is a one-line `DataError` naming it."""
    p = Path(path)
    rows = []
    unmeasured: list[int] = []  # lines whose median_ms is empty: all named at once (below)
    placeholders: list[tuple[int, str, str]] = []  # (line, column, cell) of rows that kept a template placeholder
    required = ("arch_json", "median_ms") if template is None else ("median_ms",)
    templated = template_file(template) if template is not None else None  # a mistyped one named before any row is read
    archs: dict[str, tuple[int, str]] | None = None  # the template's, read at the first row that needs them
    for line, row in _csv_rows(p, required, "measurements", optional=[c for c in MEASUREMENT_COLUMNS if c not in required],
                               numbers=("median_ms", "p10_ms", "p90_ms"), counts=("threads", "n_calls", "batch")):
        spec = (row.get("arch_json") or "").strip()
        source = f"{p}, line {line}"
        if not spec and templated is not None:
            archs = template_archs(templated) if archs is None else archs
            if "arch_json" not in row and "arch_id" not in row:
                # A vendor's 'Model' or 'network' column: the one whose cell names an exported arch is the arch_id
                named = next((c for c, cell in row.items() if cell and _arch_id_of(cell, archs) in archs), None)
                hint = f"; rename {named!r} to 'arch_id' (its cells name the exported models)" if named else ""
                raise DataError(f"{p}: header lacks both arch_json and arch_id; with template= a row needs its arch_id "
                                f"(the exported file's name); the header has: {', '.join(map(repr, row))}{hint}")
            spec = _spec_from_template(row, archs, templated, p, line)
            source = f"{templated}, line {archs[_arch_id_of(row.get('arch_id') or '', archs)][0]}"
        if not spec:
            raise DataError(f"{p}, line {line}: arch_json is empty; paste the arch's JSON (as the exported template has it), "
                            "add template=<export folder>/measurements.csv to fill it in by the row's arch_id, or delete "
                            "the row")
        try:
            arch = ArchConfig.from_json(spec)
        except (ValueError, ConfigError, TypeError) as e:
            # The cell's value named: an arch_id or a file name pasted where the JSON goes shows at once what went wrong.
            shown = spec if len(spec) <= 60 else spec[:57] + "..."
            raise DataError(f"{source}: arch_json={shown!r}: {str(e).splitlines()[0]}") from None
        if not (row.get("median_ms") or "").strip():
            # The models a vendor's compiler or profiler failed on, or those not measured yet: a file with several such
            # rows was refused one line at a time, a rerun for each.
            unmeasured.append(line)
            continue
        median = _number(row, "median_ms", p, line, unit="milliseconds", positive=True)
        p10, p90 = (_number(row, c, p, line, unit="milliseconds", positive=True) if (row.get(c) or "").strip() else median
                    for c in ("p10_ms", "p90_ms"))
        if not p10 <= median <= p90:
            # p10/p90 are percentiles of the same calls the median summarises: out of order, columns were swapped or
            # shifted, and the noise check (`session_spread`) would read a negative spread.
            raise DataError(f"{p}, line {line}: p10_ms={p10:g}, median_ms={median:g}, p90_ms={p90:g}; they must satisfy "
                            "p10_ms <= median_ms <= p90_ms (columns swapped?)")
        if left := next(((c, cell) for c in ("runtime", "precision", "machine", "arch_id")
                         if _PLACEHOLDER.fullmatch(cell := (row.get(c) or "").strip())), None):
            # Named once the file is read: a template filled in with its placeholders left has them in every row
            placeholders.append((line, *left))
            continue
        counts = {c: _count_cell(row, c, p, line, default=default) for c, default in (("threads", 0), ("n_calls", 0), ("batch", 1))}
        _check_arch_id(row, arch, p, line)
        rows.append((line, Measurement(arch=arch, runtime=row.get("runtime") or "unknown",
                                       precision=row.get("precision") or "unknown", median_ms=median, p10_ms=p10, p90_ms=p90,
                                       machine=row.get("machine") or "", **counts)))
    if placeholders:
        line, column, cell = placeholders[0]
        what = "chip you measured on" if column == "machine" else f"{column} you measured with"
        more = (f"; {len(placeholders)} rows have a placeholder: lines {_line_list([ln for ln, *_ in placeholders])}"
                if len(placeholders) > 1 else "")
        raise DataError(f"{p}, line {line}: {column}={cell!r} is still the template's placeholder; write the {what} "
                        f"(or leave the cell empty){more}")
    if len(unmeasured) == 1:
        raise DataError(f"{p}, line {unmeasured[0]}: median_ms is empty; fill in a time in milliseconds or delete the row")
    if unmeasured and not rows:  # the exported template, not filled in yet
        raise DataError(f"{p}, line {unmeasured[0]} on: median_ms is empty in all {len(unmeasured)} rows; fill in the times "
                        "measured, in milliseconds (README 'Onboarding a chip', step 3)")
    if unmeasured:
        raise DataError(f"{p}, lines {_line_list(unmeasured)}: median_ms is empty ({len(unmeasured)} of "
                        f"{len(unmeasured) + len(rows)} rows); fill in their times in milliseconds or delete those rows")
    if not rows:
        raise DataError(f"{p} holds no measurements")
    return rows


def _line_list(lines: Sequence[int]) -> str:
    """Two or more line numbers as one line names them: '3, 5 and 9', the first nine and the last of more than ten
    ('2, 3, ..., 10, ... (31 more) and 42')."""
    more = f", ... ({len(lines) - 10} more)" if len(lines) > 10 else ""
    return ", ".join(map(str, lines[:-1][:9])) + f"{more} and {lines[-1]}"


def _arch_id_of(cell: str, known: Collection[str] = ()) -> str:
    """The arch_id a CSV cell names: the cell itself, or the name of a file of the arch (with or without its folder)
    that a vendor's profiler reports the model by: the exported `<arch_id>.onnx`, or `<arch_id>.<ext>` as the vendor's
    compiler named what it compiled from it (`.rknn`, `.tflite`, `.engine`, `.blob`, ...) where that `<arch_id>` is one
    of `known`. Other names with a dot stay as they are: an id is 10 hex digits, but only a known one says the cell
    is a file name rather than a mistyped id. An id is a hex digest, read in lower case ('923E8DDFF5' as a tool or a
    spreadsheet may upper-case it is '923e8ddff5'); other cells keep their case."""
    cell = cell.strip()
    name = re.split(r"[/\\]", cell)[-1]
    if name.lower().endswith(".onnx"):
        return _hex_lower(name[:-len(".onnx")])
    stem = name.split(".", 1)[0]
    return _hex_lower(stem) if stem != name and _hex_lower(stem) in known else _hex_lower(cell)


def _hex_lower(text: str) -> str:
    # arch ids are sha1 hex digests (`ArchConfig.arch_id`), written in lower case; only hex-looking text is folded
    return text.lower() if _HEX.fullmatch(text) else text


_HEX = re.compile(r"[0-9a-fA-F]+")


_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?E[+-][0-9]+", re.IGNORECASE)  # never an arch_id: 10 hex digits, no '.' or '+'


def spreadsheet_hint(cell: str) -> str:
    """`' (<why>)'` when an arch_id cell reads as a number in scientific notation ('1.23457E+18'), as a spreadsheet writes
    back an id of digits and one 'e' ('1234567e12') that it took for a number; else ''. The id cannot be recovered
    from it: the digits it rounded away are gone."""
    if not _SCIENTIFIC.fullmatch(cell.strip()):
        return ""
    return (f" ({cell.strip()!r} is a number in scientific notation: a spreadsheet such as Excel read an arch_id like "
            "1234567e12 as a number and saved it rounded; import the CSV with the arch_id column as Text, or empty the "
            "arch_id cells)")


def _check_arch_id(row: dict, arch: ArchConfig, path: Path, line: int) -> None:
    """`DataError` when the row's arch_id cell names another arch than its arch_json.

    The arch_id names the exported file that was timed; a row whose arch_json is another arch (one column sorted or
    pasted apart from the others) would credit that time to the wrong arch. An empty cell says nothing (the column is
    optional), and an id of digits only that a spreadsheet read as a number, dropping its leading zeros, still matches.
    So does the exported file's name (`<arch_id>.onnx`, with or without its folder), which a vendor's profiler reports
    the models by, and the name of the file its compiler made of it (`<arch_id>.rknn`, `.tflite`, ...; `_arch_id_of`)."""
    cell = (row.get("arch_id") or "").strip()
    named = _arch_id_of(cell, known=(arch.arch_id,))
    if not named or named == arch.arch_id or (named.isdigit() and arch.arch_id.isdigit() and int(named) == int(arch.arch_id)):
        return
    raise DataError(f"{path}, line {line}: arch_id={cell!r} is not the arch in arch_json (whose arch_id is {arch.arch_id!r}), so "
                    "the time cannot be told to belong to either; take the row's arch_json and arch_id together from the "
                    "exported measurements.csv (was one column sorted or pasted apart from the others?), or empty arch_id"
                    + spreadsheet_hint(cell))


def _stated(value: str) -> str:
    # What a row says about its runtime or precision, compared case-blind; "" where it says nothing: the cells are
    # optional (README, "Onboarding a chip"), and an empty one is read as "unknown".
    value = value.strip().lower()
    return "" if value == "unknown" else value


def read_measurements_for(hw: HardwareProfile, paths: Sequence[str | os.PathLike], *,
                          template: str | os.PathLike | None = None) -> tuple[list[Measurement], list[str]]:
    """The measurements of `paths` (CSV files) for fitting or validating `hw`, and warnings for the user. Rows without
    arch_json take it from `template` by their arch_id (`read_measurement_rows`).

    A calibration holds for one runtime and precision at batch 1, so a row taken otherwise raises `DataError` naming
    its file and line: its `batch` must be 1 and its precision `hw.precision`, and, where `hw` has a runtime on this
    host, its runtime `hw.runtime`; a profile without one (a chip measured with its vendor's tools) takes rows of one
    runtime, whichever it is. Empty runtime and precision cells say nothing and pass.

    Warnings: a file given more than once, and archs measured more than once in the same runtime, precision and
    threads (two sessions of the same archs, say): each such row counts on its own in a fit and in the scores.
    """
    located: list[tuple[Path, int, Measurement]] = []
    first_runtime: tuple[Path, int, str] | None = None
    for path in paths:
        for line, m in read_measurement_rows(path, template=template):
            runtime, precision = _stated(m.runtime), _stated(m.precision)
            if m.batch != 1 or precision not in ("", hw.precision) or (hw.runtime and runtime not in ("", hw.runtime)):
                taken = f"runtime={m.runtime!r}, precision={m.precision!r}, batch={m.batch}"
                wanted = (f"runtime={hw.runtime!r}, " if hw.runtime else "") + f"precision={hw.precision!r}, batch=1"
                raise DataError(f"{path}, line {line}: measured with {taken}, but hw={hw.name} predicts {wanted}; a "
                                "calibration holds for one runtime and precision at batch 1: measure in those, or fit and "
                                "validate with the hw profile these rows were taken for")
            if runtime and not hw.runtime:
                if first_runtime is None:
                    first_runtime = (Path(path), line, m.runtime)
                elif runtime != _stated(first_runtime[2]):
                    raise DataError(f"{path}, line {line}: runtime={m.runtime!r}, but {first_runtime[0]}, line "
                                    f"{first_runtime[1]} has runtime={first_runtime[2]!r}; hw={hw.name} names no runtime, "
                                    "so one calibration takes one runtime's measurements: fit and validate them apart")
            located.append((Path(path), line, m))
    return [m for _, _, m in located], duplicate_warnings(located)


def duplicate_warnings(located: Sequence[tuple[Path, int, Measurement]]) -> list[str]:
    """Warnings about repeats among (file, line, measurement) rows: a file given more than once, and an arch measured
    more than once in the same runtime, precision and threads, named by its files and lines."""
    rows = [(path, path.resolve(), line, m) for path, line, m in located]  # resolved once per row
    copies = collections.Counter((real, line) for _, real, line, _ in rows)
    twice: dict[Path, tuple[Path, int]] = {}  # resolved file -> (as given, times given)
    for path, real, line, _ in rows:
        if copies[(real, line)] > 1:
            twice.setdefault(real, (path, copies[(real, line)]))
    warnings = [f"{path} is given {k} times in measurements: each of its rows counts {k} times" for path, k in twice.values()]
    # per arch (in one runtime, precision and threads): its rows by (resolved file, line), so a file given again,
    # said above, adds none
    seen: dict[tuple, dict[tuple[Path, int], tuple[Path, int, float]]] = collections.defaultdict(dict)
    for path, real, line, m in rows:
        seen[(m.arch.arch_id, _stated(m.runtime), _stated(m.precision), m.threads)].setdefault((real, line),
                                                                                              (path, line, m.median_ms))
    repeated = [(key[0], list(spots.values())) for key, spots in seen.items() if len(spots) > 1]
    if repeated:
        shown = "; ".join(f"arch {arch_id} at " + " and ".join(f"{p}, line {l}" for p, l, _ in spots)
                          for arch_id, spots in repeated[:3])
        more = f"; and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        warning = (f"{counted(len(repeated), 'arch')} measured more than once in the same runtime, precision and threads "
                   f"({shown}{more}): each row counts as a measurement of its own, so these archs weigh more; keep "
                   "one session's rows unless that is meant")
        # Times of one arch far apart: a busy machine or another setting in one session, not noise a fit averages out
        spreads = sorted(((max(t for *_, t in spots) / min(t for *_, t in spots) - 1, arch_id, spots)
                          for arch_id, spots in repeated if min(t for *_, t in spots) > 0), key=lambda s: -s[0])
        far = [s for s in spreads if s[0] > DUPLICATE_SPREAD]
        if far:
            spread, arch_id, spots = far[0]
            times = " and ".join(f"{t:.4g} ms ({p}, line {l})" for p, l, t in spots)
            warning += (f"; {len(far)} of them {'has times' if len(far) == 1 else 'have times'} more than "
                        f"{DUPLICATE_SPREAD:.0%} apart, up to {spread:.0%} (arch {arch_id}: {times}): each time is used "
                        "as it is, none preferred, so re-measure those archs in one quiet session")
        warnings.append(warning)
    return warnings


DUPLICATE_SPREAD = 0.2
"""Times of one arch measured more than once (the slowest over the fastest, minus 1) further apart than this are named
in the duplicate warning (`duplicate_warnings`). In two quiet back-to-back sessions 99% of re-measured archs agreed
within 10% (experiments/README.md, 'Accuracy on the AMD EPYC host'), so twice that says a busy machine or another
setup in one of them."""
