"""Measure sampled architectures on this host: `python -m nas.latency.profile hw=cpu n=50`.

Also home of the latency tools' shared config (`conf/latency.yaml`) and CLI wrapper (`latency_cli`).

Samples `n` distinct architectures of `space`, exports each to ONNX in the profile's precision (fp32,
or int8 as the compression ships it: NNCF PTQ + QDQ ONNX) and times batch-1 inference in the
profile's runtime (`hw.runtime`, `hw.precision`, `hw.threads`), e.g. `hw=cpu_int8` for OpenVINO int8.
With `select=cover` the `n` are those of `2n` random samples that spread most over the space (`choose_covering`).
With `export_only=true` it only writes the ONNX files plus a measurements template whose
`median_ms` column a user fills from their chip vendor's profiler (README, "Onboarding a chip").
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from nas.arch import MIN_IMG_SIZE, MIXERS, ArchConfig
from nas.checkpoint import (
    ONNX_OPSET, atomic_write_text, export_onnx, remove_dead_writers_temps, scratch_folder, take_over_scratch,
)
from nas.config import (CONF_DIR, IMG_SIZE_MAX, SpaceConfig, check_count, check_seed, hw_help, ignored_efficiency_warning,
                        name_warning, structured)
from nas.errors import (DISK_EXIT, WRITE_ERRNOS, ConfigError, NasError, closed_stdout_ends_quietly, counted, disk_failure,
                        disk_failure_text, exit_with_error, help_on_stdout, interrupting_signal, interrupts_honoured,
                        make_folder, module_logger, writable_file)
from nas.latency.hardware import FITTED_FIELDS, HardwareProfile, element_size_warning
from nas.latency.fit import RESIDUAL_TREES_MAX
from nas.latency.measure import (
    PRECISIONS, TEMPLATE_PLACEHOLDERS, Measurement, machine_info, make_runner, noise_warning, time_runners, write_measurements,
)
from nas.overrides import mappings_replaced, precheck_overrides, split_config_dir
from nas.space import sample_arch, validate_space

if TYPE_CHECKING:
    import torch

# torch and Optuna (seconds to import) are imported by the functions that sample, build, export and time models: this
# module is every latency tool's command line (fit and validate too), whose bad settings and fits need neither.

log = module_logger("nas.latency")  # lines naming a file that is not UTF-8 written readably (ReadableNames)


SELECTIONS = ("random", "cover")
COVER_POOL = 2
"""`select=cover` chooses n of this many times n random archs: the pool size its measured gain comes from
(experiments/results/latency/learning_curve_cpu.md chose 25 of 50 per space)."""


@dataclass
class LatencyToolConfig:
    """Config of the latency tools (`conf/latency.yaml`): profile, fit and validate."""

    hw: HardwareProfile = field(default_factory=HardwareProfile)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    n: int = 50  # architectures to sample and measure
    select: str = "random"  # profile: random | cover (n of COVER_POOL x n random archs, spread over the space)
    seed: int = 0
    img_size: Optional[int] = None  # profile: the input the search will feed the archs (`input_shape`)
    in_chans: Optional[int] = None
    num_classes: int = 10
    out: Optional[str] = None  # profile: measurements CSV; fit: calibrated YAML; validate: results folder
    export_only: bool = False
    warmup: int = 20
    repeats: int = 30
    rounds: int = 7
    measurements: list[str] = field(default_factory=list)  # fit / validate: measurement CSVs
    template: Optional[str] = None  # fit / validate: export folder (or its measurements.csv) filling rows without arch_json
    units: list[str] = field(default_factory=list)  # fit: optional per-unit time CSVs of the same archs
    residual_trees: int = 200  # fit with units: boosted trees on the per-unit residuals (hw.residual); 0 = none
    times_in_ms: bool = False  # fit: true fits times the unit check takes for seconds or microseconds (it refuses them)


TOOL_COUNTS: dict[str, tuple[int, int, str]] = {
    "n": (1, 10_000, "architectures to sample and measure, each exported to ONNX"),
    "warmup": (1, 100_000, "calls before timing, per model"),
    "repeats": (1, 100_000, "calls per timing block"),
    "rounds": (1, 1_000, "interleaved timing blocks per model"),
    "residual_trees": (0, RESIDUAL_TREES_MAX, "0: no residual model"),
}
"""The latency tools' counts: (least, most, what it counts) each. The upper bounds are generous, far past any use (the
defaults: 50 archs, 20 warm-up calls, 7 rounds of 30), so that only a typo such as 1000000000000 is refused, at once,
instead of a profile that never ends or fills the disk with ONNX files."""


def register_latency_configs() -> None:
    """Register the latency tools' schema with Hydra's ConfigStore (its mappings open to new keys, as the search's:
    `nas.config.schema_node`)."""
    from nas.config import schema_node

    ConfigStore.instance().store(name="latency_schema", node=schema_node(LatencyToolConfig))


def to_tool_config(cfg: DictConfig | LatencyToolConfig) -> LatencyToolConfig:
    """Typed, validated config of the latency tools."""
    tool = cfg if isinstance(cfg, LatencyToolConfig) else structured(cfg, LatencyToolConfig)
    tool.hw.validate()
    validate_space(tool.space)
    if tool.img_size is not None and not MIN_IMG_SIZE <= tool.img_size <= IMG_SIZE_MAX:
        # as data.img_size says it: the archs' own check named arch.img_size, a setting the user never typed
        default = f", or null ({DEFAULT_INPUT['img_size']}, Fashion-MNIST's)" if tool.space.name == DEFAULT_SPACE else ""
        raise ConfigError(f"img_size={tool.img_size!r} is too {'small' if tool.img_size < MIN_IMG_SIZE else 'large'}; "
                          f"allowed: an integer in [{MIN_IMG_SIZE}, {IMG_SIZE_MAX}] (the search's data.img_size){default}")
    for key, (least, most, why) in TOOL_COUNTS.items():
        check_count(getattr(tool, key), key, least=least, most=most, why=why)
    if tool.num_classes < 1:  # its upper bound is the memory its head needs (`_input_fits_in_memory`)
        raise ConfigError(f"num_classes={tool.num_classes!r} must be >= 1")
    if tool.select not in SELECTIONS:
        raise ConfigError(f"select={tool.select!r} is unknown; allowed: {list(SELECTIONS)}")
    check_seed(tool.seed, "seed")
    for key, null in (("out", "the tool's default path"), ("template", "no template")):
        value = getattr(tool, key)
        if isinstance(value, str) and value.strip().lower() == "none":  # YAML's and Hydra's no value is null
            raise ConfigError(f"{key}={value!r} would be a path named {value.strip()}; allowed: a path or null (not none: "
                              f"{null}); a file of that name is written ./{value.strip()}")
    if tool.in_chans not in (None, 1, 3):  # the search builds its models for data.channels, 1 or 3
        raise ConfigError(f"in_chans={tool.in_chans!r}; allowed: 1 (grey images), 3 (colour) or null, as data.channels")
    _input_fits_in_memory(tool)
    return tool


def _input_fits_in_memory(tool: LatencyToolConfig) -> None:
    """`ConfigError` when the head's weights (num_classes x the space's widest last stage) alone need more memory than
    is available: num_classes=1e12 ended in a traceback from torch's allocator. (img_size has a fixed bound,
    `IMG_SIZE_MAX`, whose input takes megabytes.)"""
    from nas.memory import available_memory_bytes, gib

    available = available_memory_bytes()
    if available is None:
        return
    widest = max((max(stage.widths) for stage in tool.space.stages[-1:] if stage.widths), default=1)
    n_bytes = 4 * tool.num_classes * (widest + 1)
    if n_bytes > available:
        raise ConfigError(f"num_classes={tool.num_classes!r}: a model of space {tool.space.name} needs about "
                          f"{gib(n_bytes)} of memory for it alone, more than the {gib(available)} available; allowed: "
                          "the classes your data has")


def measuring_config(cfg: DictConfig | LatencyToolConfig) -> LatencyToolConfig:
    """`to_tool_config` for a command that measures or exports and predicts nothing (`python -m nas.latency.profile`):
    where the chip's calibration is refused (most often a key it was fitted for changed: `hw=cpu hw.precision=int8`
    on a profile fitted in fp32, `HardwareProfile.fitted_for`), the chip is loaded without it, with one line saying
    so, instead of refusing the measurements that a refit at the new settings needs. Any other error is raised."""
    try:
        return to_tool_config(cfg)
    except ConfigError as refused:
        if not isinstance(cfg, DictConfig):  # a built profile was validated whole when it was built
            raise
        bare = copy.deepcopy(cfg)  # the caller's config stays as it was
        unset = HardwareProfile(name=str(bare.hw.get("name") or ""))
        for key in (*FITTED_FIELDS, "fitted"):
            bare.hw[key] = getattr(unset, key)
        tool = to_tool_config(bare)  # the datasheet part, or the error that is not the calibration's
        log.info("%s. Left out here: measuring uses no calibration, and these measurements are what a refit at these "
                 "settings needs", refused)
        return tool


DEFAULT_SPACE = "metaformer_t"
"""The space `python -m nas.search` searches by default (conf/search.yaml), on its default data, Fashion-MNIST."""
DEFAULT_INPUT = {"img_size": 28, "in_chans": 1}
"""Fashion-MNIST's images (28x28 grey): the input `DEFAULT_SPACE` is profiled at unless told otherwise."""


def input_shape(tool: LatencyToolConfig) -> dict[str, int]:
    """The input the profiled archs are built for: `img_size`, `in_chans` and `num_classes` as set, a key left null
    taking Fashion-MNIST's value with the search's default space. Another space has no such default: its archs run on
    the user's data (metaformer_s on data=imagefolder at data.img_size, grey or colour), and a latency measured on
    another input size fits and validates a predictor at a size the search never builds, so `ConfigError` names the
    keys to set."""
    missing = [k for k in DEFAULT_INPUT if getattr(tool, k) is None]
    if missing and tool.space.name != DEFAULT_SPACE:
        raise ConfigError(f"space={tool.space.name} has no default input: set {' '.join(f'{k}=...' for k in missing)} to "
                          "what the search feeds it (img_size=data.img_size; in_chans=1 for grey images, 3 for colour), "
                          f"e.g. img_size=64 in_chans=3; the 28x28 grey default is Fashion-MNIST's, for space={DEFAULT_SPACE}")
    shape = {k: DEFAULT_INPUT[k] if getattr(tool, k) is None else getattr(tool, k) for k in DEFAULT_INPUT}
    return {**shape, "num_classes": tool.num_classes}


def sample_archs(space: SpaceConfig, n: int, *, seed: int, in_chans: int, img_size: int, num_classes: int,
                 exclude: Sequence[ArchConfig] = ()) -> list[ArchConfig]:
    """`n` distinct random architectures of `space` (none of them in `exclude`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seen = {a.arch_id for a in exclude}
    out: list[ArchConfig] = []
    for _ in range(200 * n):
        trial = study.ask()
        arch = sample_arch(trial, space, in_chans=in_chans, img_size=img_size, num_classes=num_classes)
        study.tell(trial, 0.0)
        if arch.arch_id not in seen:
            seen.add(arch.arch_id)
            out.append(arch)
            if len(out) == n:
                return out
    raise ConfigError(f"space {space.name!r} holds fewer than {n} distinct architectures beyond the excluded ones")


def arch_descriptor(arch: ArchConfig, *, stages: int) -> np.ndarray:
    """An arch as numbers for choosing archs that cover a space: per stage its mixer (one-hot), log width,
    depth / 2, log resolution and log MLP width; zeros for the stages it lacks, up to `stages`."""
    res = arch.stage_resolutions()
    out: list[float] = []
    for i in range(stages):
        if i < len(arch.stages):
            s = arch.stages[i]
            out += [float(s.mixer == m) for m in MIXERS]
            out += [float(np.log(s.width)), s.depth / 2, float(np.log(res[i])), float(np.log(s.mlp_hidden))]
        else:
            out += [0.0] * (len(MIXERS) + 4)
    return np.array(out)


def choose_covering(archs: Sequence[ArchConfig], n: int) -> list[ArchConfig]:
    """`n` of `archs` spread over what they span (greedy k-center on `arch_descriptor`): first the arch farthest
    from their mean, then again and again the one farthest from all chosen so far. Deterministic.

    For calibration: a fit learns from the shapes it has seen, and held-out archs unlike any measured one are
    where it errs (on hw=cpu, 50 chosen this way from 100 gave +1.8 points within +-10% over 50 random ones, mean
    of 20 splits, standard error 1.0; experiments/results/latency/learning_curve_cpu.md; in one fresh timing
    session -2 points against the random 50 timed beside them: predictor_cpu_cover.md).
    """
    if not 1 <= n <= len(archs):
        raise ConfigError(f"n={n} must be between 1 and the {len(archs)} archs to choose from")
    stages = max(len(a.stages) for a in archs)
    feats = np.stack([arch_descriptor(a, stages=stages) for a in archs])
    chosen = [int(np.argmax(np.linalg.norm(feats - feats.mean(axis=0), axis=1)))]
    dist = np.linalg.norm(feats - feats[chosen[0]], axis=1)
    while len(chosen) < n:
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(feats - feats[j], axis=1))
    return [archs[j] for j in chosen]


def profile_archs(tool: LatencyToolConfig) -> list[ArchConfig]:
    """The `tool.n` archs `profile` measures: random samples of the space, or (`select=cover`) those of
    `COVER_POOL * n` random samples that cover it best (`choose_covering`)."""
    shape = input_shape(tool)
    if tool.select == "random":
        return sample_archs(tool.space, tool.n, seed=tool.seed, **shape)
    try:
        pool = sample_archs(tool.space, COVER_POOL * tool.n, seed=tool.seed, **shape)
    except ConfigError:
        raise ConfigError(f"select=cover chooses n={tool.n} of {COVER_POOL * tool.n} random archs, but space "
                          f"{tool.space.name!r} holds fewer; use select=random or a smaller n") from None
    return choose_covering(pool, tool.n)


def export_archs(archs: Sequence[ArchConfig], folder: Path, *, seed: int = 0, precision: str = "fp32") -> list[Path]:
    """Export each arch (random weights: latency does not depend on values) to `folder/<arch_id>.onnx`.

    `precision="int8"` writes what the compression ships: NNCF PTQ, then standard QDQ ONNX
    (`compress.export.export_int8_onnx`), which onnxruntime and OpenVINO both run in int8.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
    import torch

    from nas.model import build_model

    paths = []
    for i, arch in enumerate(archs, start=1):
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = build_model(arch).eval()
        path = folder / f"{arch.arch_id}.onnx"
        if precision == "int8":
            paths.append(export_int8(model, arch, path, seed=seed))
        else:
            paths.append(export_onnx(model, path, in_chans=arch.in_chans, img_size=arch.img_size))
        # One line per model: an int8 export (an NNCF PTQ) takes seconds, and n=50 of them minutes
        log.info("exported %d/%d: %s (%s, %.1f s)", i, len(archs), path.name, precision, time.perf_counter() - started)
    return paths


INT8_CALIBRATION_IMAGES = 8
"""How many random images `export_int8` quantizes a model on."""
EXPORT_SEED = 0
"""The seed of the random weights `measure_archs` exports the archs with (latency does not depend on their values)."""


def export_subfolder(precision: str, *, seed: int = EXPORT_SEED) -> str:
    """The name of the folder `measure_archs` keeps its exports of `precision` in: `<precision>_<10 hex digits>`, a
    digest of what an exported file depends on besides its arch (its file name, `<arch_id>.onnx`, covers the arch
    and its input shape): the weights' seed, the ONNX opset, the versions of torch and onnx, and for int8 those of
    NNCF, the calibration images and the form of this package's int8 file (`compress.export.INT8_EXPORT_FORMAT`).
    Files exported otherwise (another torch, say) are in another folder, never reused as these; another change to this
    package's own export code is not seen."""
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    import torch

    key = {"precision": precision, "seed": seed, "opset": ONNX_OPSET, "torch": torch.__version__, "onnx": version("onnx")}
    if precision == "int8":
        from compress.export import INT8_EXPORT_FORMAT  # here: compress builds on nas, and only int8 needs it back

        key |= {"nncf": version("nncf"), "calibration_images": INT8_CALIBRATION_IMAGES, "int8_form": INT8_EXPORT_FORMAT}
    return f"{precision}_{hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]}"


def export_int8(model: torch.nn.Module, arch: ArchConfig, path: Path, *, seed: int = 0) -> Path:
    """`model` (of `arch`) as the int8 QDQ ONNX file the compression ships, quantized on random images: the file int8
    profiles time (its latency depends on which layers run in int8, not on the calibrated ranges)."""
    # Imported here: compress builds on nas, and only int8 profiling needs it back.
    import torch

    from compress.export import export_int8_onnx
    from compress.quantize import quantize_ptq
    from nas.data import Split

    # Which layers run in int8 sets the latency, not the calibrated ranges: random images are enough.
    n = INT8_CALIBRATION_IMAGES
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, arch.in_chans, arch.img_size, arch.img_size), dtype=torch.uint8, generator=gen)
    # NNCF's two progress bars per model (~100 lines for n=50) are hidden there: `export_archs` says one line per model
    quantized, _ = quantize_ptq(model, Split(x=images, y=torch.zeros(n, dtype=torch.long)), size=n, seed=seed)
    return export_int8_onnx(quantized, path, in_chans=arch.in_chans, img_size=arch.img_size)


def check_timeable(hw: HardwareProfile) -> None:
    """`ConfigError` in one line when `hw` cannot be timed on this host: it has no runtime here, or its precision is
    one the runtimes here do not time (fp16: there is no fp16 export; a chip that runs it compiles float32 files).
    Both are said before the archs are sampled and exported, and each names what to do instead: `export_only=true`."""
    if not hw.runtime:
        raise ConfigError(f"hw={hw.name!r} has no runtime on this host (hw.runtime is empty); use profile export_only=true "
                          "and measure with the chip's own tools")
    if hw.precision not in PRECISIONS:
        raise ConfigError(f"hw.precision={hw.precision!r} cannot be timed on this host: {hw.runtime} (hw.runtime) times "
                          f"{' or '.join(PRECISIONS)} here; for a chip that runs {hw.precision}, export_only=true exports "
                          "float32 ONNX files for the chip's own compiler to cast and its profiler to time (README "
                          "'Onboarding a chip')")


def measure_archs(archs: Sequence[ArchConfig], hw: HardwareProfile, *, warmup: int = 20, repeats: int = 30,
                  rounds: int = 7, export_dir: Path | None = None) -> list[Measurement]:
    """Export and time every arch in `hw.runtime` (interleaved rounds, see nas.latency.measure).

    `export_dir`: keep the exported files there and reuse those already present (`<arch_id>.onnx` in the
    `export_subfolder` of this precision and export settings), so a second timing session of the same archs skips the
    export (an NNCF PTQ each for int8). Each file is renamed into place whole (`nas.checkpoint.replacing`), so one
    present is complete, also after a kill mid-export.
    """
    check_timeable(hw)
    import torch

    torch.set_num_threads(hw.threads)
    # Without an export_dir the files live only as long as the timing needs them.
    with tempfile.TemporaryDirectory() if export_dir is None else contextlib.nullcontext(export_dir) as base:
        folder = Path(base) / export_subfolder(hw.precision, seed=EXPORT_SEED)
        folder.mkdir(parents=True, exist_ok=True)
        missing = [a for a in archs if not (folder / f"{a.arch_id}.onnx").is_file()]
        export_archs(missing, folder, seed=EXPORT_SEED, precision=hw.precision)
        paths = [folder / f"{a.arch_id}.onnx" for a in archs]
        runners = [make_runner(p, runtime=hw.runtime, precision=hw.precision, threads=hw.threads,
                               input_shape=(1, a.in_chans, a.img_size, a.img_size)) for p, a in zip(paths, archs)]
        rng = np.random.default_rng(0)
        inputs = [rng.random((1, a.in_chans, a.img_size, a.img_size), dtype=np.float32) for a in archs]
        timings = time_runners(runners, inputs, warmup=warmup, repeats=repeats, rounds=rounds)
    machine = machine_info()
    return [Measurement(arch=a, runtime=hw.runtime, precision=hw.precision, threads=hw.threads, median_ms=t[0],
                        p10_ms=t[1], p90_ms=t[2], n_calls=t[3], machine=machine) for a, t in zip(archs, timings)]


def run_profile(cfg: DictConfig | LatencyToolConfig) -> Path:
    """Sample, export and (unless export_only) measure; return the CSV written. Stopped by Ctrl-C or SIGTERM (a
    KeyboardInterrupt), it writes no measurements and keeps the models exported so far, as a kill does, for a rerun with
    the same out= to reuse (export_only: in that folder; else beside out=, once this process has exited)."""
    tool = measuring_config(cfg)  # its calibration is not used: a refused one does not stop the measurements
    if not tool.export_only:
        check_timeable(tool.hw)  # before the sampling (seconds of imports), not after it
    archs = profile_archs(tool)
    # Said with the result: the archs' input shape is in each row's arch_json, but a wrong one is found only there.
    shape = f"input {archs[0].in_chans}x{archs[0].img_size}x{archs[0].img_size}, {archs[0].num_classes} classes"
    default = (f"latency/{tool.hw.name}_{tool.space.name}_n{tool.n}_seed{tool.seed}"
               + ("_cover" if tool.select == "cover" else ""))
    if tool.export_only:
        folder = make_folder(tool.out or f"{default}_onnx", setting=f"out={tool.out!r}")
        clear_killed_writes(folder)
        template = folder / "measurements.csv"
        _check_export_folder(folder, archs, setting=f"out={tool.out or folder}")
        # An fp16 chip gets float32 files, which its compiler casts to fp16 as it compiles them (the rows say fp16, as
        # the profile predicts): there is no fp16 export, and `export_archs` refused hw.precision=fp16.
        exported = "int8" if tool.hw.precision == "int8" else "fp32"
        # A rerun (after a kill, or to add the template back) keeps the files exported with the same settings, as a
        # profile's own exports are kept (measure_archs): an NNCF PTQ each for int8.
        present = _reusable_exports(folder, archs, precision=exported)
        export_archs([a for a in archs if a.arch_id not in present], folder, seed=EXPORT_SEED, precision=exported)
        rows = [Measurement(arch=a, runtime=TEMPLATE_PLACEHOLDERS["runtime"], precision=tool.hw.precision, threads=0,
                            median_ms=float("nan"), p10_ms=float("nan"), p90_ms=float("nan"), n_calls=0,
                            machine=TEMPLATE_PLACEHOLDERS["machine"]) for a in archs]
        # The user fills median_ms (and optionally p10/p90) per row, from the file named <arch_id>.onnx.
        write_measurements(template, rows)
        log.info("exported %d models (%s) to %s%s; fill median_ms in %s%s", len(archs) - len(present), shape, folder,
                 f" ({len(present)} more were there, exported with the same settings, and are kept)" if present else "",
                 template, f" (the files are {exported}: compile them for {tool.hw.precision}, as hw={tool.hw.name} runs)"
                 if exported != tool.hw.precision else "")
        return template
    out = Path(tool.out or f"{default}.csv")
    writable_file(out, setting=f"out={tool.out!r}")  # before the minutes of timing, not after
    # The exports beside `out`, not in /tmp: a profile killed while timing (SIGTERM, OOM killer) leaves them in a folder
    # (n files of up to tens of MB each: 12 MB on average for metaformer_s at 64x64) that its next run with this out=
    # takes over and reuses what fits (measure_archs), and other tools writing there delete.
    # kept if Ctrl-C or SIGTERM stops it, as after a kill: the next run takes the exports over
    with scratch_folder(out.parent, out.name, kept_if_interrupted=True) as exports:
        if (killed := take_over_scratch(exports)) is not None:  # before the cleanup, which would delete it
            folder = exports / export_subfolder(tool.hw.precision, seed=EXPORT_SEED)
            reused = sum((folder / f"{a.arch_id}.onnx").is_file() for a in archs)
            log.info("took over the exports of a profile into %s that was killed (%s): %d of the %d models to time are "
                     "among them, %s", out, killed.name, reused, len(archs),
                     "none to export" if reused == len(archs) else "the others are exported")
        clear_killed_writes(out.parent)
        rows = measure_archs(archs, tool.hw, warmup=tool.warmup, repeats=tool.repeats, rounds=tool.rounds, export_dir=exports)
    # Written once, when all are timed: the rounds interleave the archs, so no row is final before the last round.
    write_measurements(out, rows)
    warning = noise_warning(rows)
    if warning:
        log.warning("%s: %s", out, warning)
    log.info("measured %d archs (%s) in %s/%s: median %.3f ms (min %.3f, max %.3f) -> %s", len(rows), shape,
             tool.hw.runtime, tool.hw.precision, float(np.median([r.median_ms for r in rows])), min(r.median_ms for r in rows),
             max(r.median_ms for r in rows), out)
    return out


EXPORT_RECORD = ".exported_with"
"""The file in an `export_only` folder that names the settings its ONNX files were exported with (`export_subfolder`)."""


def _reusable_exports(folder: Path, archs: Sequence[ArchConfig], *, precision: str) -> set[str]:
    """The arch_ids of `archs` whose `<arch_id>.onnx` in the `export_only` folder `folder` an earlier run exported with
    the settings of this one (`export_subfolder`: precision, seed, opset, package versions), as its `EXPORT_RECORD`
    says. Where it says other settings, or nothing (a folder of an earlier version), the files of `archs` there are
    deleted, then the record names this run's settings: a file present is then one of them, complete (each is renamed
    into place whole), also after a kill mid-export. The folder keeps the flat layout the vendor's tools are given."""
    settings = export_subfolder(precision, seed=EXPORT_SEED)
    record = folder / EXPORT_RECORD
    try:
        recorded = record.read_text().strip()
    except FileNotFoundError:
        recorded = None
    files = {a.arch_id: folder / f"{a.arch_id}.onnx" for a in archs}
    if recorded == settings:
        return {arch_id for arch_id, path in files.items() if path.is_file()}
    for path in files.values():  # exported otherwise (another precision or torch, say): never taken for this run's
        path.unlink(missing_ok=True)
    atomic_write_text(record, settings + "\n")
    return set()


def _check_export_folder(folder: Path, archs: Sequence[ArchConfig], *, setting: str) -> None:
    """Refuse an `export_only` folder that holds another set's work: a measurements.csv with times filled in (hours with
    the vendor's profiler, which the new template would overwrite; README step 5 measures 'another set' and step 2's
    command with another seed= wrote it into the same folder) or ONNX files of archs not in this sample (they would be
    measured along, without a row to fill)."""
    from nas.errors import DataError
    from nas.latency.measure import _csv_rows

    template = folder / "measurements.csv"
    if template.exists():
        try:
            filled = sum(1 for _, row in _csv_rows(template, ("median_ms",), "measurements") if (row["median_ms"] or "").strip())
        except (DataError, OSError):
            filled = -1  # not a template this command wrote: someone's file all the same
        if filled:
            what = f"holds {filled} filled-in median_ms" if filled > 0 else "is not a template of this command"
            raise ConfigError(f"{setting}: {template} {what}; pass another out= folder for this set (or move that file), "
                              "so the measurements are not overwritten")
    wanted = {f"{a.arch_id}.onnx" for a in archs}
    others = sorted(p.name for p in folder.glob("*.onnx") if p.name not in wanted)
    if others:
        raise ConfigError(f"{setting}: {folder} holds {counted(len(others), 'ONNX file')} of another sample ({others[0]}, ...), "
                          "which would be measured without a row in the template; pass an empty or new out= folder")


def clear_killed_writes(folder: Path) -> None:
    """Delete the temporary files and folders that a latency tool killed mid-write (or while timing) left in `folder`
    (not in its subfolders: `out=` may be any folder), once their writer's process is gone; log what was removed."""
    if removed := remove_dead_writers_temps(folder, recursive=False):
        log.info("removed %s left in %s by a run that was killed: %s", counted(len(removed), "temporary file"), folder,
                 ", ".join(p.name for p in removed))


INTERRUPTED = "interrupted: no file was left half-written (each is written whole); rerun the same command"
"""What a latency tool stopped by Ctrl-C or SIGTERM prints (`latency_cli`)."""

PROFILE_INTERRUPTED = ("interrupted: no measurements were written; the models exported so far are kept, and the same "
                       "command reuses them: rerun it")
"""What `python -m nas.latency.profile` stopped by Ctrl-C or SIGTERM prints: its exports are kept (`run_profile`)."""


def latency_cli(command: Callable[[LatencyToolConfig], str], *, help_line: str, reads_fitted: bool = True,
                predicts: bool = True, needs_hw: str | None = None, interrupted: str = INTERRUPTED) -> None:
    """Run `command` as a Hydra CLI on `conf/latency.yaml`: print its result, or one `error:` line. `help_line`, what
    the tool does, is the first line of its `--help` (the three tools share one config, whose Hydra help cannot tell
    them apart). With `reads_fitted=False` (the fit) the profile's fitted file (`hw.fitted`) is not read: the command
    replaces it. With `predicts=False` (the profile, which only measures or exports) a calibration refused at the
    settings given is left out with one line (`measuring_config`), not the command refused. With `needs_hw` the tool's
    name (`"fit"`, which rewrites the profile's files; `"validate"`, which scores the profile) a command line that names
    no `hw=` is refused (`missing_hw_problem`), not run on the default hw=cpu. Ctrl-C and SIGTERM stop it
    with the line `interrupted` on stderr and exit status 130 / 143, also where the process ignores SIGINT (a script's
    background job: `nas.errors.interrupts_honoured`)."""
    register_latency_configs()

    def tool_config(cfg: DictConfig) -> LatencyToolConfig:
        if not reads_fitted and cfg.hw.get("fitted"):
            # A fit starts from the datasheet part alone and rewrites the fitted file; a missing or damaged one, which
            # loading the profile refuses with "refit with python -m nas.latency.fit", must not stop that very refit.
            cfg.hw.fitted = ""
        return to_tool_config(cfg) if predicts else measuring_config(cfg)

    # hw=typo: one line, not Hydra's; and the tool's values checked as the search's are, before Hydra runs the tool:
    # each value of a -m sweep before the sweep launches (a bad second value was refused after the first job's minutes)
    if (problem := precheck_overrides(sys.argv[1:], config_name="latency", check=tool_config)) is not None:
        exit_with_error(problem)
    asks_help = any(a in ("-h", "--help") for a in sys.argv[1:])
    if needs_hw and (problem := missing_hw_problem(sys.argv[1:], tool=needs_hw)) is not None:
        exit_with_error(problem)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="latency")
    def main(cfg: DictConfig) -> None:
        for group in ("hw", "space"):  # a copied file that kept the original's name: outputs and labels go by that name
            if (named := name_warning(group)) is not None:
                log.warning("%s", named)
        try:
            with interrupts_honoured():  # `sh -c 'python -m nas.latency.profile ... &'` ignored `kill -INT` to its end
                cfg = mappings_replaced(cfg)  # hw.efficiency={conv: 0.5} is the value, not merged into the chip file's
                tool = tool_config(cfg)
                # a chip file that set one of the two and not the other: every byte moved is priced so; an efficiency
                # set for a calibrated chip, whose fitted costs ignore it (a fit, which starts from the datasheet
                # numbers, reads it)
                for line in (element_size_warning(tool.hw), ignored_efficiency_warning(tool.hw) if reads_fitted else None):
                    if line is not None:
                        log.warning("%s", line)
                print(command(tool))
        except KeyboardInterrupt as e:  # a traceback before; every file is written whole, so nothing half-done is left
            print(interrupted, file=sys.stderr)
            sys.exit(128 + interrupting_signal(e))  # the shell's codes for death by SIGINT (130) / SIGTERM (143)
        except NasError as e:
            exit_with_error(str(e))
        except OSError as e:  # a disk that fills up or a file that vanishes mid-run: one line, not a stack trace
            exit_with_error(_write_failed_line(e) if e.errno in WRITE_ERRNOS else str(e), code=DISK_EXIT)
        except Exception as e:  # noqa: BLE001 - only a write the disk refused, inside a runtime's own error, is one line
            if (failed := disk_failure(e, errnos=WRITE_ERRNOS)) is None:
                raise
            exit_with_error(_write_failed_line(failed), code=DISK_EXIT)

    if not asks_help:
        with closed_stdout_ends_quietly():  # `... | head -1`: a quiet end, the files written all the same
            main()
        return
    with help_on_stdout():  # `--help | head -3`: a quiet end, not a BrokenPipeError traceback
        print(f"{help_line}\n\n{hw_help(sys.argv[1:], config_name='latency')}\n")  # Hydra's names the hw= choices alone
        main()  # Hydra prints its help and exits


def missing_hw_problem(argv: Sequence[str], *, tool: str = "fit") -> str | None:
    """One line for a `python -m nas.latency.<tool>` command line (`fit` or `validate`) that names no `hw=`, else None
    (and for --help, --cfg or --info, which run nothing). conf/latency.yaml's default, hw=cpu, is this host's shipped
    calibrated profile: a fit of a chip's measurements typed without hw=<chip> recalibrated it on them, and rewrote
    conf/hw/cpu.yaml's fitted file, and a validate scored them against this host's predictor; rows without runtime and
    precision cells (only arch_json and median_ms are required) gave no refusal either way."""
    if any(a in ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info") or a.startswith(("--cfg=", "--info="))
           for a in argv):
        return None
    if any(a.lstrip("+").startswith("hw=") for a in argv):
        return None
    # A --config-dir given is where the chip's file is (README, 'Onboarding a chip', step 1): the example keeps it
    _, config_dir = split_config_dir(argv)
    folder, own = (config_dir, f"--config-dir {shlex.quote(config_dir)} ") if config_dir else ("<config folder>", "")
    if tool == "validate":
        return ("hw= is required: the chip whose profile's predictions the measurements are scored against "
                f"({folder}/hw/<chip>.yaml), e.g. python -m nas.latency.validate {own}hw=<chip> 'measurements=[m.csv]'; "
                "hw=cpu validates this host's profile (README, 'Onboarding a chip', step 5)")
    return (f"hw= is required: the chip whose profile the fit calibrates and rewrites ({folder}/hw/<chip>.yaml), e.g. "
            f"python -m nas.latency.fit {own}hw=<chip> 'measurements=[m.csv]'; hw=cpu refits this host's profile (README, "
            "'Onboarding a chip', step 4)")


def _write_failed_line(e: OSError) -> str:
    """The latency tools' line for a write that failed (a full disk or quota, a read-only or unwritable folder, a file
    over the size limit): the file and why, as every command says it; "[Errno 28] No space left on device: '...'" read
    as Python's, not the tool's."""
    return f"{disk_failure_text(e)}; fix that (free space, the folder's permissions, the file size limit) and rerun the same command"


def _profile_command(tool: LatencyToolConfig) -> str:
    return str(run_profile(tool))


HELP_LINE = ("python -m nas.latency.profile: time n sampled architectures of the space (n=, space=) on this host in the "
             "runtime and precision of hw= (a host-timed profile: cpu, cpu_int8, ...), writing a measurements CSV for "
             "nas.latency.fit; export_only=true writes their ONNX files and a CSV template for a chip's own profiler "
             "instead.")
"""The first line of `python -m nas.latency.profile --help`."""

if __name__ == "__main__":
    latency_cli(_profile_command, help_line=HELP_LINE, predicts=False, interrupted=PROFILE_INTERRUPTED)
