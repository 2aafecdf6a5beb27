"""Hardware profile: the numbers the roofline predictor needs about a chip (`conf/hw/*.yaml`).

The same dataclass is the Hydra schema of the `hw` config group, so a misspelt key or a wrong type
fails when the config is composed; `validate()` checks the values, on construction and again after any change.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, counted
from nas.latency.ops import OP_KINDS, UNIT_SHAPE_FIELDS, UNIT_TYPES

if TYPE_CHECKING:
    from nas.arch import ArchConfig
    from nas.config import SpaceConfig


MAX_THREADS = 1024
"""The most threads a setting of threads (hw.threads, train.threads, compress.latency_threads) takes: more than the
logical CPUs of the largest servers, so only a typo is refused. torch failed each trial on a count past a C int
("Overflow when unpacking long"), after the run folder was made, and OpenVINO refused one only when timing."""


def check_threads(value: object, *, name: str, what: str = "threads") -> None:
    """`ConfigError` unless `value` is a thread count in [1, MAX_THREADS] (a typo such as 1e12 failed every trial);
    `what` says in the message what the count is of."""
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_THREADS):
        raise ConfigError(f"{name}={value!r} must be an integer in [1, {MAX_THREADS}] ({what})")


def check_name(value: object, *, name: str) -> None:
    """`ConfigError` unless `value` is a non-empty name (hw.name, data.name, space.name): a group's name goes into the
    default study name, the run folder, the report's title and the latency tools' file names, where '' or spaces left
    a name such as 'metaformer_t--fashion_mnist'."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}={value!r} is empty; allowed: a name, usually its file's (it names the study, the "
                          "run folder and the report)")


MAX_CHANNEL_MULTIPLE = 256
"""The largest `hw.channel_multiple` taken: as wide as the widest MAC arrays (a TPU's MXU is 128 or 256 channels). Pruning
rounds each width to it and leaves a layer no wider than one multiple as it is, so a larger value (1e12, a typo) made
every compression's pruning remove no channel, and a latency target was refused as unreachable "with 90% pruned"."""

PRECISIONS = ("int8", "fp16", "fp32")
WEIGHT_SPILL = "weight_spill"
"""Calibration entry for the extra cost of weights in models too big to keep them cached: {per_byte, above_bytes}."""
FITTED_FIELDS = ("calibrated_on", "fitted_archs", "measured_inputs", "measured_extent", "fitted_for", "cross_validated",
                 "calibration", "residual")
"""The fields of a hw profile that `python -m nas.latency.fit` writes (into the file its `fitted` names)."""
EXTENT_RANGES = ("stages", "widths", "depths")
"""`HardwareProfile.measured_extent`'s ranges, [smallest, largest] over the archs fitted on: stage count, and each
stage's width and depth (blocks)."""
EXTENT_CHOICES = ("mixers", "norms", "acts")
"""`HardwareProfile.measured_extent`'s choices, each name the archs fitted on have (a stage's mixer, an arch's norm and
activation), sorted."""
CROSS_VALIDATED_KEYS = ("measurements", "folds", "within_10pct", "rmspe")
"""`HardwareProfile.cross_validated`'s keys: the measurements predicted held-out (each once), the folds they were split
into, the share of them predicted within +-10% and the RMSPE (root mean squared relative error)."""
FIELD_UNITS: dict[str, tuple[str, str]] = {
    "bytes_per_element": ("in bytes", "int8 1, fp16 2, fp32 4"),
    "mac_per_s": ("in MAC/s", "1 MAC = 2 ops: 4 TOPS is 2.0e12"),
    "vector_ops_per_s": ("in ops/s", "100 GOPS is 1.0e11"),
    "sram_bytes": ("in bytes", "2 MiB is 2097152"),
    "dram_bytes_per_s": ("in bytes/s", "8 GB/s is 8.0e9"),
    "launch_overhead_us": ("in microseconds", "5 us is 5.0"),
    "invoke_overhead_us": ("in microseconds", "0.06 ms is 60.0"),
    "host_ops_per_s": ("in ops/s", "4 GOPS is 4.0e9"),
    "host_link_bytes_per_s": ("in bytes/s", "4 GB/s is 4.0e9"),
    "host_sync_us": ("in microseconds", "0.15 ms is 150.0"),
    "channel_multiple": ("in channels", "16"),
    "threads": ("of threads", "1"),
    "efficiency": ("in (0, 1], the fraction of the peak", "60% is 0.6"),
}
"""For each number of a hw profile (an `efficiency.<kind>` under `efficiency`): the unit it is written in, plainly,
without the unit (`mac_per_s: 2.0e12`, not `4 TOPS`), and an example, as the shipped files' comments give them; for
the one-line refusal of a value with its unit (`nas.config`)."""
_INPUT = re.compile(r"(?P<chans>[1-9]\d*)x(?P<size>[1-9]\d*)x(?P=size)")  # an ArchConfig's input is square


def input_name(*, in_chans: int, img_size: int) -> str:
    """`HardwareProfile.measured_inputs`' name of an input: '<in_chans>x<img_size>x<img_size>', e.g. '3x64x64'."""
    return f"{in_chans}x{img_size}x{img_size}"


def calibration_basis(hw: HardwareProfile) -> str:
    """What a calibration of `hw` depends on among its datasheet keys, as `HardwareProfile.fitted_for` records it:
    'precision=int8; bytes_per_element=1; fused_kinds=[bn, relu]'. The fitted per-op costs are per byte moved (at
    `bytes_per_element`), zero for the ops of `fused_kinds`, and of times taken at `precision`; the other datasheet
    numbers are not used once a profile is calibrated."""
    return (f"precision={hw.precision}; bytes_per_element={hw.bytes_per_element}; "
            f"fused_kinds=[{', '.join(sorted(hw.fused_kinds))}]")


PRECISION_BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
"""The bytes per value of each precision: what `bytes_per_element` says for a chip that keeps its values in it
(`FIELD_UNITS`: int8 1, fp16 2, fp32 4)."""


def element_size_warning(hw: HardwareProfile) -> str | None:
    """One line when `hw.bytes_per_element` is not the size of `hw.precision`'s values (2 with int8, 1 with fp32), else
    None. Not refused: a chip may keep int8 values in 16-bit buffers, and then moves 2 bytes per value. But a file copied
    from another chip's that changed one of the two and not the other prices every byte moved wrongly (and a fit then
    records the pair as what it was fitted for), without a word."""
    expected = PRECISION_BYTES.get(hw.precision)
    if expected is None or hw.bytes_per_element == expected:
        return None
    return (f"hw={hw.name}: bytes_per_element={hw.bytes_per_element} with precision={hw.precision}, whose values take "
            f"{expected} byte{'s' * (expected > 1)}; every byte moved is priced at {hw.bytes_per_element}: set "
            f"bytes_per_element: {expected}, unless the chip does keep {hw.precision} values in {hw.bytes_per_element}-byte "
            "buffers")


FEW_FIT = 20
"""Fewer measured archs than this: `python -m nas.latency.fit` warns, and so does a search with a profile fitted on
fewer (`few_archs_warning`). The smallest count in experiments/results/latency/learning_curve_cpu.md whose held-out
RMSPE is under 10% (14.8% from 10 archs, 8.7% from 20); past it each 10 more archs add at most 5 points within +-10%,
below it 15."""


def few_archs_warning(hw: HardwareProfile) -> str | None:
    """One line when a calibrated `hw` records that it was fitted on fewer than `FEW_FIT` archs (`fitted_archs`), else
    None. The fit warned, but a search with the profile (often another day, or another user's) did not: it ranks its
    candidates by those predictions. A profile that records no fitted archs (fitted before the field existed) is not
    judged."""
    if not (hw.calibration and hw.fitted_archs) or len(hw.fitted_archs) >= FEW_FIT:
        return None
    return (f"hw={hw.name} was fitted on {counted(len(hw.fitted_archs), 'measured arch')} (its fitted_archs), fewer than "
            f"{FEW_FIT}: below that a fit's held-out error grows fast, so its predicted latencies, which the search ranks "
            "candidates by, may be well off; measure more archs (the onboarding exports 50) and refit on all of them "
            "(README, 'Onboarding a chip', steps 2 and 4)")


def config_dir_option(name: str) -> str:
    """'--config-dir <folder> ' where, in a Hydra run, the file `hw=<name>` composed is `<folder>/hw/<name>.yaml` of a
    folder of the user's own (README 'Onboarding a chip', step 1), not the project's conf/: a command a hint suggests
    for the chip finds that file only with it. '' where the file is conf/'s, and outside a Hydra run (which reads
    conf/ alone)."""
    import shlex

    from nas.config import CONF_DIR, group_file, hw_folders  # nas.config imports this module

    path = group_file("hw", name, folders=hw_folders())  # by `name`: not the run's own hw= choice, whatever its name
    if path is None or path.parent.parent.resolve() == CONF_DIR.resolve():
        return ""
    return f"--config-dir {shlex.quote(str(path.parent.parent))} "


def extent_warning(hw: HardwareProfile, space: SpaceConfig, *, in_chans: int, img_size: int,
                   num_classes: int) -> str | None:
    """One line when a calibrated `hw` records the extent of the archs it was fitted on (`measured_extent`) and the
    search's `space` reaches outside it, else None: more or fewer stages, widths or depths beyond the measured range, or
    a mixer, norm or activation none of them had. A profile fitted on one space and searched with another predicts
    those archs by extrapolation: an op kind never timed keeps the datasheet's guess (`unmeasured_choices_warning` says
    so at the fit, of the space it is given), and past the measured sizes cache effects were never timed.
    `in_chans`, `img_size`, `num_classes`: the search's input and classes, which the line's profile command builds the
    archs for (profile refuses a space other than metaformer_t without one, and times metaformer_t's at its 28x28 grey
    default, with 10 classes, whose head is another size)."""
    if not (hw.calibration and hw.measured_extent):
        return None
    offered = {"stages": [len(space.stages)], "widths": [w for stage in space.stages for w in stage.widths],
               "depths": [d for stage in space.stages for d in stage.depths],
               "mixers": {m for stage in space.stages for m in stage.mixers}, "norms": set(space.norms),
               "acts": set(space.acts)}
    outside = _outside_extent(hw.measured_extent, offered)
    if not outside:
        return None
    return (f"space={space.name} reaches outside the archs hw={hw.name} was fitted on (its measured_extent): "
            f"{outside}, so their predicted latencies are extrapolated {_EXTRAPOLATED}; measure archs of this space and refit "
            + _refit_hint(hw, space=space.name, in_chans=in_chans, img_size=img_size, num_classes=num_classes))


def arch_extent_warning(hw: HardwareProfile, archs: Sequence[ArchConfig], *, space: str | None = None) -> str | None:
    """`extent_warning` for the archs a command prices rather than a search's space: one line when a calibrated `hw`
    records `measured_extent` and some of `archs` reach outside it (`python -m compress.run`'s checkpoint, the archs
    `python -m nas.latency.validate` scores), else None. `space`: the name of the space they were searched in, which
    the line's profile command samples (None: left to it); its input and classes are the archs', where they share one."""
    if not (hw.calibration and hw.measured_extent and archs):
        return None
    beyond = [a for a in archs if _outside_extent(hw.measured_extent, _arch_extent(a))]
    if not beyond:
        return None
    merged = {key: [v for a in archs for v in _arch_extent(a)[key]] for key in (*EXTENT_RANGES, *EXTENT_CHOICES)}
    subject, which, what = ((f"arch {beyond[0].arch_id} reaches", "it", "its predicted latency is") if len(archs) == 1
                            else (f"{len(beyond)} of the {len(archs)} archs reach", "them", "their predicted latencies are"))
    inputs = {(a.in_chans, a.img_size, a.num_classes) for a in beyond}
    in_chans, img_size, num_classes = inputs.pop() if len(inputs) == 1 else (None, None, None)
    return (f"{subject} outside the archs hw={hw.name} was fitted on (its measured_extent): "
            f"{_outside_extent(hw.measured_extent, merged)}, so {what} extrapolated {_EXTRAPOLATED}; measure archs like "
            f"{which} and refit "
            + _refit_hint(hw, space=space, in_chans=in_chans, img_size=img_size, num_classes=num_classes))


_EXTRAPOLATED = "(an op kind never timed is priced from the datasheet numbers)"


def _arch_extent(arch: ArchConfig) -> dict[str, list]:
    # what `nas.latency.fit.measured_extent` records of an arch it fits on, for `_outside_extent`
    return {"stages": [len(arch.stages)], "widths": [s.width for s in arch.stages], "depths": [s.depth for s in arch.stages],
            "mixers": [s.mixer for s in arch.stages], "norms": [arch.norm], "acts": [arch.act]}


def _outside_extent(extent: Mapping[str, list], offered: Mapping[str, Sequence | set]) -> str:
    """What of `offered` (`EXTENT_RANGES`' values and `EXTENT_CHOICES`' names, as a space or archs have them) lies
    outside a profile's `extent` ('stages 3 (measured 2), mixer=attn'); '' where nothing does."""
    outside = []
    for key in EXTENT_RANGES:
        values = offered[key]
        if key in extent and values and not extent[key][0] <= min(values) <= max(values) <= extent[key][1]:
            outside.append(f"{key} {_span(min(values), max(values))} (measured {_span(*extent[key])})")
    ignored = {"mixers": {"identity"}}  # adds no ops of its own: none to measure
    outside += [f"{key[:-1]}={name}" for key in EXTENT_CHOICES if key in extent
                for name in sorted(set(offered[key]) - set(extent[key]) - ignored.get(key, set()))]
    return ", ".join(outside)


def _refit_hint(hw: HardwareProfile, *, space: str | None, in_chans: int | None, img_size: int | None,
                num_classes: int | None) -> str:
    """The commands that measure archs for `hw` and refit it, for a line saying its latencies are extrapolated: the
    profile command with each of `space`, `in_chans`, `img_size`, `num_classes` that is given."""
    own = config_dir_option(hw.name)
    export, timed = ("", "") if hw.runtime else (" export_only=true", ", timed with the chip's own tools")
    given = "".join(f" {key}={value}" for key, value in (("space", space), ("in_chans", in_chans), ("img_size", img_size),
                                                         ("num_classes", num_classes)) if value is not None)
    return (f"(`python -m nas.latency.profile {own}hw={hw.name}{given}{export} ...`{timed}, then "
            f"`python -m nas.latency.fit {own}hw={hw.name} ...` on those measurements and the earlier ones; README, "
            "'Onboarding a chip')")


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def input_warning(hw: HardwareProfile, *, in_chans: int, img_size: int, space: str | None = None,
                  num_classes: int | None = None) -> str | None:
    """One line when a calibrated `hw` records the inputs it was measured at (`measured_inputs`) and this input lies
    outside them, else None. `space`: the name of the search's space, which the line's profile command samples (the
    command's default, metaformer_t, is another space's archs at that input where the search's is another).
    `num_classes`: the data's classes, which the command's archs get as heads (its default, 10, is Fashion-MNIST's;
    None: left to it).

    Outside means another channel count than those measured, or an img_size below the smallest or above the largest
    measured. Between measured sizes the fitted costs interpolate: every op's work and bytes grow with its tokens, the
    terms are linear in them, and the residual trees split on unit shapes seen across that range; beyond it, the caches
    that held the measured models' activations (and the trees, flat past their last split) were never tested. The
    channel count enters only the stem, whose cost the fit saw at the measured counts alone; a count between two
    measured ones is no better known than any other."""
    if not (hw.calibration and hw.measured_inputs):
        return None
    measured = [_INPUT.fullmatch(s) for s in hw.measured_inputs]
    chans = sorted({int(m["chans"]) for m in measured if m})
    sizes = sorted({int(m["size"]) for m in measured if m})
    if not (chans and sizes):
        return None
    why = []
    if in_chans not in chans:
        why.append(f"in_chans={in_chans} is not among the measured {'/'.join(map(str, chans))}")
    if not sizes[0] <= img_size <= sizes[-1]:
        side = f"below the smallest measured, {sizes[0]}" if img_size < sizes[0] else f"above the largest measured, {sizes[-1]}"
        why.append(f"img_size={img_size} is {side}")
    if not why:
        return None
    # A chip without a runtime here is measured with its own tools: `profile` without export_only=true is refused for it
    export, timed = ("", "") if hw.runtime else (" export_only=true", ", timed with the chip's own tools")
    own = config_dir_option(hw.name)
    return (f"hw={hw.name} was calibrated on inputs {', '.join(hw.measured_inputs)}, not on this data's "
            f"{input_name(in_chans=in_chans, img_size=img_size)}: {' and '.join(why)}, so its predicted latencies are "
            f"extrapolated; measure archs at this input and refit (`python -m nas.latency.profile {own}hw={hw.name} "
            + (f"space={space} " if space else "") + f"in_chans={in_chans} img_size={img_size}"
            + (f" num_classes={num_classes}" if num_classes is not None else "") + f"{export} ...`{timed}, "
            f"then `python -m nas.latency.fit {own}hw={hw.name} ...`; README, 'Onboarding a chip')")


class IncompleteCalibration(ConfigError):
    """A calibration that lacks entries a fit writes (`calibration_lacks`), refused by `HardwareProfile.validate`: a
    class of its own, so that a fitted file's reader names the file's missing entries (`incomplete_calibration_message`)."""


def calibration_lacks(calibration: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The entries a fit writes that `calibration` lacks ('invoke.fixed', 'conv.per_byte'): invoke's fixed cost and the
    three terms of each op kind (its per-unit-type entries and weight_spill only where fitted), in a fixed order (op
    kinds sorted: OP_KINDS is a set, whose order changes from process to process). The predictor prices a term that is
    not there at 0."""
    return [f"{kind}.{term}" for kind, terms in (("invoke", ("fixed",)),
                                                 *((kind, ("fixed", "per_work", "per_byte")) for kind in sorted(OP_KINDS)))
            for term in terms if term not in calibration.get(kind, {})]


def _whole_calibration(calibration: Mapping[str, Mapping[str, float]]) -> bool:
    return not calibration_lacks(calibration)


def incomplete_calibration_message(hw: HardwareProfile, *, fitted_file: Mapping[str, Any] | None = None) -> str:
    """The refusal of `hw`'s calibration (or that of `fitted_file`, a fitted file's contents) that lacks entries a fit
    writes (`calibration_lacks`): for one that came from a fit (a fitted file damaged by hand; a fitted profile, with
    its `calibrated_on` or `fitted_archs`, whose calibration was replaced in Python without a term) the entries it
    lacks, else `lone_calibration_message`."""
    if fitted_file is None and not (hw.calibrated_on or hw.fitted_archs):
        return lone_calibration_message(hw)
    lacks = calibration_lacks(hw.calibration if fitted_file is None else fitted_file["calibration"])
    named = ", ".join(lacks[:4]) + (f" and {len(lacks) - 4} more" if len(lacks) > 4 else "")
    return (f"hw={hw.name}'s calibration lacks {named} (a fit writes invoke.fixed and fixed/per_work/per_byte of every "
            f"op kind, and the predictor would price a missing one at 0): refit with `python -m nas.latency.fit "
            f"{config_dir_option(hw.name)}hw={hw.name} measurements=[...]` (README, 'Onboarding a chip')")


def lone_calibration_message(hw: HardwareProfile) -> str:
    """The refusal of a calibration that is not a fit's (`hw.calibration.conv.fixed=2.0` on a chip with no fitted
    calibration, on the command line or in a profile built in Python): one term given alone, which the predictor takes
    as the chip's whole calibration, pricing every other op kind at 0."""
    kind, terms = next(iter(hw.calibration.items()))
    term, value = next(iter(terms.items()), ("", None))
    key = f"hw.calibration.{kind}.{term}={value!r}" if term else f"hw.calibration.{kind}"
    return (f"{key}: hw={hw.name} has no fitted calibration, and a term given alone would price every other op kind at "
            f"0; a calibration comes from `python -m nas.latency.fit {config_dir_option(hw.name)}hw={hw.name} "
            "measurements=[...]` (README, 'Onboarding a chip'); to adjust its datasheet predictor, set "
            "hw.efficiency.<op kind>=<share of peak> instead")


@dataclass
class HardwareProfile:
    """A target chip for batch-1 inference.

    Times are modelled per layer as `max(compute, memory) + launch_overhead`, where compute uses
    `mac_per_s` (matrix engine) or `vector_ops_per_s` scaled by the op kind's `efficiency`, and
    memory counts weights streamed from DRAM plus activations that do not fit in `sram_bytes`.
    Op kinds in `host_kinds` run on the host CPU and pay a transfer both ways.
    """

    name: str = "???"
    description: str = ""
    precision: str = "int8"
    bytes_per_element: int = 1
    mac_per_s: float = 2.0e12
    vector_ops_per_s: float = 1.0e11
    sram_bytes: int = 2 * 1024 * 1024
    dram_bytes_per_s: float = 8.0e9
    launch_overhead_us: float = 5.0
    invoke_overhead_us: float = 50.0
    efficiency: dict[str, float] = field(default_factory=dict)
    fused_kinds: list[str] = field(default_factory=lambda: ["bn", "relu"])
    host_kinds: list[str] = field(default_factory=list)
    host_ops_per_s: float = 2.0e9
    host_link_bytes_per_s: float = 2.0e9
    host_sync_us: float = 100.0
    channel_multiple: int = 8
    runtime: str = ""  # where this chip is measured here: openvino | onnxruntime | "" (not on this host)
    threads: int = 2  # runtime threads when measuring
    # The CPU model (the measurements' `machine`, up to the first ";") the calibration was fitted on; "" when not
    # known. For a profile of this host (`runtime` set), a search on another CPU model warns (measure.host_mismatch).
    calibrated_on: str = ""
    # Fitted per-op-kind costs (nas.latency.fit): {kind: {fixed, per_work, per_byte}, invoke: {fixed}}, in us, and
    # optionally weight_spill: {per_byte, above_bytes}: each weight byte costs per_byte more in a model with more
    # weight bytes than above_bytes (they no longer stay cached between inferences).
    # When present, the predictor uses them instead of the roofline numbers above.
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    # Fitted per-unit correction on top of a per-unit calibration (nas.latency.fit, from per-unit profiles):
    # row 0 [init, per-unit overhead in us], then one depth-2 regression tree per row of 10 numbers; see
    # nas.latency.predictor.residual_factors. Empty: no correction.
    residual: list[list[float]] = field(default_factory=list)
    # The arch_ids the calibration was fitted on (nas.latency.fit), so that validating on them warns that the scores
    # are not held-out; empty in profiles fitted before it was recorded, and in uncalibrated ones.
    fitted_archs: list[str] = field(default_factory=list)
    # The inputs of the archs the calibration was fitted on, "<in_chans>x<img_size>x<img_size>" each once, sorted
    # (nas.latency.fit), so that a search on another input warns that its latencies are extrapolated (`input_warning`);
    # empty in profiles fitted before it was recorded, and in uncalibrated ones (then nothing is checked).
    measured_inputs: list[str] = field(default_factory=list)
    # The extent of the archs the calibration was fitted on (nas.latency.fit): [smallest, largest] of `EXTENT_RANGES`
    # and the names of `EXTENT_CHOICES`, so that a search whose space reaches outside it warns that its latencies are
    # extrapolated (`extent_warning`); empty in profiles fitted before it was recorded, and in uncalibrated ones.
    measured_extent: dict[str, list] = field(default_factory=dict)
    # The datasheet keys the calibration was fitted with (`calibration_basis`, nas.latency.fit), so that a profile edited
    # after its fit (`fused_kinds: [bn]` where it was fitted with [bn, relu]) is refused rather than predicting with
    # costs fitted for other features; "" in profiles fitted before it was recorded, and in uncalibrated ones.
    fitted_for: str = ""
    # How far held-out models' latencies were off in the fit's cross-validation (nas.latency.fit), for the report's
    # predictor line: {measurements, folds, within_10pct, rmspe} (`CROSS_VALIDATED_KEYS`); empty in profiles fitted
    # before it was recorded, in uncalibrated ones, and in fits whose cross-validation scored unit times, not models.
    cross_validated: dict[str, float] = field(default_factory=dict)
    # The file beside this profile's own (or an absolute path) that holds the fields a fit writes (`FITTED_FIELDS`:
    # the calibration and its residual trees, hundreds of numbers), so that composing `hw=<chip>` does not build them
    # as config nodes. nas.config reads it when it loads the profile (`nas.config.load_fitted`), which then says "";
    # "" too in a profile with those fields inline or none.
    fitted: str = ""

    def __post_init__(self) -> None:
        # Checked on construction, so a profile built by hand (e.g. from yaml.safe_load, which reads 2.0e12 as a
        # string) fails here in one line instead of as a TypeError deep inside the predictor.
        self.validate()
        # Every term is a float (3 set as hw.calibration.conv.fixed=3 or in a chip's file is 3.0), as the schema's float
        # made it: the compression fingerprint and the study's digest hash the profile, and 3 would change them. After
        # the check, whose messages give the value as typed.
        self.calibration = {kind: {term: float(value) if type(value) is int else value for term, value in terms.items()}
                            for kind, terms in self.calibration.items()}

    def without_calibration(self) -> "HardwareProfile":
        """A copy with the datasheet numbers only: no calibration, no residual model (what fits start from)."""
        return dataclasses.replace(self, calibration={}, residual=[], calibrated_on="", fitted_archs=[], measured_inputs=[],
                                   measured_extent={}, fitted_for="", cross_validated={}, fitted="")

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid value."""
        check_name(self.name, name="hw.name")
        for key, kind in (("efficiency", Mapping), ("calibration", Mapping), ("fused_kinds", Sequence),
                          ("host_kinds", Sequence), ("residual", Sequence), ("fitted_archs", Sequence),
                          ("measured_inputs", Sequence), ("measured_extent", Mapping)):
            value = getattr(self, key)
            if not isinstance(value, kind) or isinstance(value, str):  # a str would be read letter by letter
                form = "a mapping" if kind is Mapping else "a list"
                raise ConfigError(f"hw.{key}={value!r} must be {form}, as in conf/hw/edge_npu.yaml")
        if not isinstance(self.fitted_for, str):
            raise ConfigError(f"hw.fitted_for={self.fitted_for!r} must be a string, as a fit writes it")
        if not isinstance(self.fitted, str):
            raise ConfigError(f"hw.fitted={self.fitted!r} must be a file name (the fit's numbers beside the profile) or ''")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"hw.precision={self.precision!r} is unknown; allowed: {list(PRECISIONS)}")
        for key in ("bytes_per_element", "mac_per_s", "vector_ops_per_s", "sram_bytes", "dram_bytes_per_s",
                    "host_ops_per_s", "host_link_bytes_per_s"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"hw.{key}={value!r} must be a finite number > 0")
        if self.bytes_per_element not in (1, 2, 4):  # 8 is a datasheet's bits, which costs every byte moved 8x
            raise ConfigError(f"hw.bytes_per_element={self.bytes_per_element!r} must be 1, 2 or 4 (bytes per weight or activation "
                              "value, not bits: int8 1, fp16 2, fp32 4)")
        for key in ("launch_overhead_us", "invoke_overhead_us", "host_sync_us"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"hw.{key}={value!r} must be a finite number >= 0")
        for kind, eff in self.efficiency.items():
            if kind not in OP_KINDS:
                raise ConfigError(f"hw.efficiency has unknown op kind {kind!r}; allowed: {sorted(OP_KINDS)}")
            if not (isinstance(eff, (int, float)) and 0 < eff <= 1):
                raise ConfigError(f"hw.efficiency.{kind}={eff!r} must be in (0, 1]")
        multiple = self.channel_multiple
        if not (isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and math.isfinite(multiple)
                and float(multiple).is_integer() and 1 <= multiple <= MAX_CHANNEL_MULTIPLE):
            raise ConfigError(f"hw.channel_multiple={multiple!r} must be an integer in [1, {MAX_CHANNEL_MULTIPLE}] (the "
                              "channels pruning rounds each width to; 1: no rounding)")
        # The runtimes refuse a negative count only when a model is timed (after a search's training); 0 would be their
        # "all cores", which the profile's timings and a calibration's `threads` would then not say.
        check_threads(self.threads, name="hw.threads", what="runtime threads when timing on this host")
        if self.runtime not in ("", "openvino", "onnxruntime"):
            raise ConfigError(f"hw.runtime={self.runtime!r} is unknown; allowed: openvino, onnxruntime or '' (not measurable here)")
        for kind, terms in self.calibration.items():
            utype, _, op_kind = kind.rpartition("/")
            if kind not in ("invoke", WEIGHT_SPILL) and (op_kind not in OP_KINDS and not (utype and op_kind == "unit")
                                                         or utype and utype not in UNIT_TYPES):
                raise ConfigError(f"hw.calibration has unknown entry {kind!r}; allowed: invoke, {WEIGHT_SPILL}, an op kind "
                                  f"{sorted(OP_KINDS)}, or <unit type>/<op kind> and <unit type>/unit with unit types "
                                  f"{list(UNIT_TYPES)}")
            allowed = ("per_byte", "above_bytes") if kind == WEIGHT_SPILL else ("fixed", "per_work", "per_byte")
            for term, value in terms.items():
                if term not in allowed or not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                               and math.isfinite(value) and value >= 0):
                    raise ConfigError(f"hw.calibration.{kind}.{term}={value!r}: terms of {kind} are {'/'.join(allowed)}, "
                                      "finite and >= 0")
            if kind == WEIGHT_SPILL and set(terms) != set(allowed):
                raise ConfigError(f"hw.calibration.{kind}={dict(terms)!r} needs both per_byte and above_bytes")
        if self.calibration and not self.fitted and not _whole_calibration(self.calibration):
            # held in a fitted file (`fitted`), the terms are those a command line merges into the file's
            raise IncompleteCalibration(incomplete_calibration_message(self))
        if self.residual:
            self._validate_residual()
        for arch_id in self.fitted_archs:
            if not (isinstance(arch_id, str) and arch_id.strip()):
                raise ConfigError(f"hw.fitted_archs has {arch_id!r}; allowed: arch_ids (non-empty strings), as a fit writes them")
        for shape in self.measured_inputs:
            if not (isinstance(shape, str) and _INPUT.fullmatch(shape)):
                raise ConfigError(f"hw.measured_inputs has {shape!r}; allowed: <in_chans>x<img_size>x<img_size> of positive "
                                  "integers, e.g. '3x64x64', as a fit writes them")
        self._validate_measured_extent()
        for list_name in ("fused_kinds", "host_kinds"):
            for kind in getattr(self, list_name):
                if kind not in OP_KINDS:
                    raise ConfigError(f"hw.{list_name} has unknown op kind {kind!r}; allowed: {sorted(OP_KINDS)}")
        if self.calibration and self.fitted_for:
            self._validate_fitted_for()
        self._validate_cross_validated()

    def _validate_measured_extent(self) -> None:
        # Written by a fit, compared with a search's space (`extent_warning`): a hand-edited value would warn wrongly.
        for key, value in self.measured_extent.items():
            if key in EXTENT_RANGES:
                ok = (isinstance(value, Sequence) and len(value) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value) and value[0] <= value[1])
                allowed = "[smallest, largest], whole numbers >= 1"
            else:
                ok = (key in EXTENT_CHOICES and isinstance(value, Sequence) and not isinstance(value, str)
                      and all(isinstance(v, str) for v in value))
                allowed = "a list of names"
            if key not in (*EXTENT_RANGES, *EXTENT_CHOICES):
                raise ConfigError(f"hw.measured_extent has unknown key {key!r}; allowed: "
                                  f"{', '.join((*EXTENT_RANGES, *EXTENT_CHOICES))}, as a fit writes them")
            if not ok:
                raise ConfigError(f"hw.measured_extent.{key}={value!r} must be {allowed}, as a fit writes it")

    def _validate_cross_validated(self) -> None:
        # Written by a fit, read by the report: a hand-edited or partial record would show a wrong or half line.
        record = self.cross_validated
        if not isinstance(record, Mapping) or (record and set(record) != set(CROSS_VALIDATED_KEYS)):
            raise ConfigError(f"hw.cross_validated={record!r} must be a mapping of {', '.join(CROSS_VALIDATED_KEYS)}, as a "
                              "fit writes it (or left out)")
        for key, value in record.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if key in ("measurements", "folds"):
                ok, allowed = number and float(value).is_integer() and value >= 1, "a whole number >= 1"
            elif key == "within_10pct":
                ok, allowed = number and 0 <= value <= 1, "a share in [0, 1]"
            else:
                ok, allowed = number and value >= 0, "a finite number >= 0"
            if not ok:
                raise ConfigError(f"hw.cross_validated.{key}={value!r} must be {allowed}, as a fit writes it")

    def _validate_fitted_for(self) -> None:
        # A key edited after the fit (or overridden on the command line) changes what each fitted cost multiplies, so the
        # predictions would silently be of another chip: refuse, naming the keys that differ.
        now = calibration_basis(self)
        if self.fitted_for == now:
            return
        was, is_ = self.fitted_for.split("; "), now.split("; ")
        differ = [i for i in range(len(is_)) if i >= len(was) or was[i] != is_[i]]
        keys = " and ".join(is_[i].split("=", 1)[0] for i in differ)
        fitted = "; ".join(was[i] for i in differ if i < len(was)) or self.fitted_for
        raise ConfigError(f"hw.calibration was fitted for {fitted}, but the profile says {'; '.join(is_[i] for i in differ)}; "
                          f"the fitted costs hold only for what they were fitted for: set {keys} back, or refit with "
                          f"`python -m nas.latency.fit {config_dir_option(self.name)}hw={self.name} measurements=[...]` "
                          "(README, 'Onboarding a chip')")

    def _validate_residual(self) -> None:
        n_features = len(UNIT_SHAPE_FIELDS) + 1  # the unit's shape, then log(unit cost)
        if not any(k.endswith("/unit") for k in self.calibration):
            raise ConfigError("hw.residual needs a calibration fitted on per-unit times (<unit type>/unit entries); "
                              f"refit with `python -m nas.latency.fit {config_dir_option(self.name)}hw={self.name} "
                              "measurements=[...] units=[...]` or remove hw.residual")
        for i, row in enumerate(self.residual):
            size = 2 if i == 0 else 10
            if len(row) != size or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in row):
                raise ConfigError(f"hw.residual[{i}]={list(row)!r} must be {size} finite numbers "
                                  + ("([init, per-unit overhead])" if i == 0 else "(a depth-2 tree: 3 x [feature, threshold], 4 leaves)"))
            if i and not all(float(f).is_integer() and 0 <= f < n_features for f in row[0:6:2]):
                raise ConfigError(f"hw.residual[{i}] has feature {[row[0], row[2], row[4]]!r}; allowed: integers 0-{n_features - 1}")
