"""Calibrate a hardware profile from measured latencies.

Model: each op of kind k costs `fixed_k + per_work_k * work + per_byte_k * bytes` microseconds
(work = MACs for matrix kinds, elementwise operations for vector kinds; bytes = activations in/out
plus weights), ops the chip folds cost nothing, and each inference pays `invoke_us`. That is linear
in the coefficients, so it is fitted by non-negative least squares on *relative* errors, with a
ridge pull toward the uncalibrated roofline profile (the prior), whose strength is chosen by
cross-validation. Few measurements therefore fall back gracefully on the datasheet numbers (scaled
by one global factor fitted first).

With per-unit times (a per-layer profile summed per block, downsampling, stem and head; see
`nas.latency.measure.profile_units`), each op also gets terms specific to the type of unit it sits
in (`sepconv/pwconv`: a 1x1 conv inside a sepconv block), and each unit a fixed cost. Those are
fitted on the unit times, about ten samples per measured model instead of one. With enough unit
times, boosted depth-2 regression trees (scikit-learn) then learn each unit's log residual from its
shape (`nas.latency.ops.unit_shape`) and linear cost: a kernel's speed changes with the sizes it meets
in ways a model linear in MACs and bytes misses. The trees travel in the profile as plain numbers
(`HardwareProfile.residual`), so predicting needs numpy only. Last, one scale, the per-inference
overhead and a per-unit overhead are fitted on the totals, because a profile leaves out what the
runtime does between nodes. (Which per-unit models were tried, and what each got on held-out
archs: experiments/results/latency/unit_models_cpu.md.)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import operator
import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from nas.arch import ArchConfig, StageConfig
from nas.errors import DISK_ERRNOS, ConfigError, DataError, counted, module_logger, writable_file
from nas.latency.hardware import FEW_FIT, FITTED_FIELDS, WEIGHT_SPILL, HardwareProfile, calibration_basis, input_name
from nas.latency.ops import (
    MATRIX_KINDS, OP_KINDS, UNIT_SHAPE_FIELDS, UNIT_TYPES, Op, channel_mlp_ops, downsample_ops, head_ops, stage_unit_shape,
    stem_ops, token_mixer_ops, unit_of, unit_shape, unit_type,
)

if TYPE_CHECKING:
    from nas.config import SpaceConfig
    from nas.latency.profile import LatencyToolConfig  # profile imports this module

log = module_logger("nas.latency")  # lines naming a file that is not UTF-8 written readably (ReadableNames)

KINDS: tuple[str, ...] = tuple(sorted(OP_KINDS))
TERMS: tuple[str, ...] = ("fixed", "per_work", "per_byte")
N_GLOBAL = 1 + len(KINDS) * len(TERMS)  # invoke + per kind (fixed, per_work, per_byte)
# Then per unit type: its per-unit fixed cost, and per kind the same three terms for ops of that unit type.
_PER_TYPE = 1 + len(KINDS) * len(TERMS)
WEIGHTS = N_GLOBAL + len(UNIT_TYPES) * _PER_TYPE
"""Index of the last feature: the weight bytes of the ops (not folded away). Its coefficient is the per-byte cost of
weights that spill out of a cache, paid only by models whose weights do not stay cached between inferences (`spills`);
calibration entry `weight_spill` {per_byte, above_bytes}."""
N_COEF = WEIGHTS + 1
_BASE = {kind: 1 + i * len(TERMS) for i, kind in enumerate(KINDS)}  # first coefficient of each kind
_TYPE_BASE = {t: N_GLOBAL + i * _PER_TYPE for i, t in enumerate(UNIT_TYPES)}  # the unit's fixed cost; its kinds follow


def _global_features(ops: Sequence[Op], fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    """The per-kind part of the features of `ops` (count, work, bytes per op kind), N_GLOBAL long, then their
    weight bytes."""
    x = np.zeros(N_GLOBAL + 1)
    for op in ops:
        if op.foldable and op.kind in fused:
            continue  # the runtime folds it into its neighbour
        base = _BASE[op.kind]
        x[base] += 1.0
        x[base + 1] += op.work
        x[base + 2] += op.bytes_moved(bytes_per_element)
        x[N_GLOBAL] += op.params * bytes_per_element
    return x


def _typed(g: np.ndarray, utype: str) -> np.ndarray:
    # All ops of a unit share its type: the per-type terms repeat the per-kind ones in that type's slots.
    x = np.zeros(N_COEF)
    x[:N_GLOBAL] = g[:N_GLOBAL]
    tb = _TYPE_BASE[utype]
    x[tb] = 1.0
    x[tb + 1 : tb + _PER_TYPE] = g[1:N_GLOBAL]
    x[WEIGHTS] = g[N_GLOBAL]
    return x


def _features(ops: Sequence[Op], fused: frozenset[str], bytes_per_element: int, utype: str) -> np.ndarray:
    """Features of one unit's ops (all of type `utype`), counting the unit once."""
    return _typed(_global_features(ops, fused, bytes_per_element), utype)


@lru_cache(maxsize=65536)
def _block_features(mixer: str, width: int, kernel: int, mlp_ratio: float, head_dim: int, expand: float,
                    num_heads: int | None, res: int, norm: str, act: str, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # Keyed on the fields a block's ops depend on (depth left out), so all depths of a stage share it; built
    # from its two halves, cached apart: fresh blocks mostly pair a mixer and an MLP seen before.
    return _typed(_mixer_half(mixer, width, kernel, head_dim, expand, num_heads, res, norm, act, fused, bytes_per_element)
                  + _mlp_half(width, mlp_ratio, res, norm, act, fused, bytes_per_element), mixer)


@lru_cache(maxsize=65536)
def _mixer_half(mixer: str, width: int, kernel: int, head_dim: int, expand: float, num_heads: int | None, res: int,
                norm: str, act: str, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    block = StageConfig(mixer=mixer, depth=1, width=width, kernel=kernel, head_dim=head_dim, expand=expand, num_heads=num_heads)
    return _global_features(token_mixer_ops("b", 0, block, res, norm=norm, act=act), fused, bytes_per_element)


@lru_cache(maxsize=65536)
def _mlp_half(width: int, mlp_ratio: float, res: int, norm: str, act: str, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    block = StageConfig(mixer="identity", depth=1, width=width, mlp_ratio=mlp_ratio)
    return _global_features(channel_mlp_ops("b", 0, block, res, norm=norm, act=act), fused, bytes_per_element)


@lru_cache(maxsize=65536)
def _down_features(prev_width: int, width: int, res_in: int, res_out: int, norm: str, fused: frozenset[str],
                   bytes_per_element: int) -> np.ndarray:
    ops = downsample_ops(0, prev_width=prev_width, width=width, res_in=res_in, res_out=res_out, norm=norm)
    return _features(ops, fused, bytes_per_element, "down")


@lru_cache(maxsize=65536)
def _stage_features(stage: StageConfig, prev_width: int | None, res_in: int, res_out: int, norm: str, act: str,
                    fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # A stage's blocks are identical, so features are cached per block and per downsampling: fresh
    # architectures mostly recombine blocks seen before (speed: experiments/results/latency/predictor_cpu.md).
    x = _block_features(stage.mixer, stage.width, stage.kernel, stage.mlp_ratio, stage.head_dim, stage.expand,
                        stage.num_heads, res_out, norm, act, fused, bytes_per_element) * stage.depth
    if prev_width is not None:
        x = x + _down_features(prev_width, stage.width, res_in, res_out, norm, fused, bytes_per_element)
    return x


@lru_cache(maxsize=4096)
def _end_units(key: tuple, fused: frozenset[str], bytes_per_element: int) -> tuple[tuple[tuple[float, ...], np.ndarray], ...]:
    # (shape, features) of the stem and of the head of the archs with these ends (`_ends_key`).
    ends = _stand_in(*key)
    return tuple((unit_shape(ends, u), _features(ops(ends), fused, bytes_per_element, u))
                 for u, ops in (("stem", stem_ops), ("head", head_ops)))


def _stand_in(in_chans: int, img_size: int, stem_kernel: int, stem_stride: int, first_width: int, last_width: int,
              n_stages: int, num_classes: int, norm: str, act: str) -> ArchConfig:
    # Stem and head depend on a few fields only: an arch with the same ends has the same stem and head ops.
    stages = (StageConfig(mixer="identity", depth=1, width=first_width),
              *[StageConfig(mixer="identity", depth=1, width=last_width)] * (n_stages - 1))
    return ArchConfig(stages=stages, stem_kernel=stem_kernel, stem_stride=stem_stride, norm=norm, act=act, in_chans=in_chans,
                      img_size=img_size, num_classes=num_classes)


def _ends_key(arch: ArchConfig) -> tuple:
    return (arch.in_chans, arch.img_size, arch.stem_kernel, arch.stem_stride, arch.stages[0].width, arch.stages[-1].width,
            len(arch.stages), arch.num_classes, arch.norm, arch.act)


@lru_cache(maxsize=4096)
def _ends_features(key: tuple, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # Stem, head and the per-inference term: cached on the few fields they depend on (`_ends_key`), since
    # every fresh architecture needs them.
    (_, stem), (_, head) = _end_units(key, fused, bytes_per_element)
    x = stem + head
    x[0] = 1.0  # the per-inference overhead
    return x


@lru_cache(maxsize=65536)
def _arch_features(arch: ArchConfig, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # Searches re-use stage configurations constantly: features are summed from per-stage caches.
    x = _ends_features(_ends_key(arch), fused, bytes_per_element).copy()
    res = arch.stage_resolutions()
    for i, s in enumerate(arch.stages):
        prev = arch.stages[i - 1].width if i > 0 else None
        x += _stage_features(s, prev, res[i - 1] if i > 0 else res[0], res[i], arch.norm, arch.act, fused, bytes_per_element)
    return x


class UnitTable(NamedTuple):
    """The units of a batch of archs (`unit_table`), each unit of the batch once, as arrays.

    A unit is a stem, a head, a stage's downsampling or one of its blocks (all alike). Distinct feature vectors
    are the rows of `features` (without the per-inference term); distinct units, a feature vector with one
    `unit_shape`, the rows of `shapes`, with their feature row in `feature_of`. Entry k of `arch`, `unit` and
    `count` says that arch `arch[k]` has unit `unit[k]` `count[k]` times (a stage's blocks: its depth).
    """

    features: np.ndarray
    shapes: np.ndarray
    feature_of: np.ndarray
    arch: np.ndarray
    unit: np.ndarray
    count: np.ndarray


_STAGE_FIELDS = operator.attrgetter("mixer", "width", "kernel", "mlp_ratio", "head_dim", "expand", "num_heads")
# What a block's features depend on, with its resolution, norm and activation (`_block_features`).


_PREV_WIDTH = UNIT_SHAPE_FIELDS.index("prev_width")


def unit_table(archs: Sequence[ArchConfig], hw: HardwareProfile) -> UnitTable:
    """The units of `archs` for the linear latency model of `hw`: per arch, its units' features times their counts
    sum to `arch_features(arch, hw)` minus its per-inference term. Feature vectors come from the per-block,
    per-downsampling and per-end caches; the rest is built per call. Units are told apart by what those caches
    are keyed on, so archs that share a stem, head, block or downsampling share its unit: a batch costs it once."""
    fused, bpe = frozenset(hw.fused_kinds), int(hw.bytes_per_element)
    features: list[np.ndarray] = []
    # A unit's shape is a base row with its own previous width written in: one base per block feature row (the
    # stage's fields, resolution, norm and activation) for its blocks, one for the downsamplings into that stage.
    bases: list[tuple[float, ...]] = []
    feature_of: list[int] = []
    base_of: list[int] = []
    prev_of: list[float] = []
    rows: list[int] = []  # (arch, unit, count) after one another: one flat list converts fastest
    # Batch-local indices: feature rows by what they are cached on, units by (feature row, what else their shape
    # depends on). A few dict lookups per stage, as this loop runs for every batch of a search.
    block_row: dict[tuple, int] = {}
    down_row: dict[tuple, int] = {}
    block_base: dict[int, int] = {}
    down_base: dict[int, int] = {}
    block_unit: dict[tuple[int, int], int] = {}
    down_unit: dict[tuple[int, int, int], int] = {}
    end_units: dict[tuple, tuple[int, int]] = {}

    def add_unit(row: int, base: int, prev_width: float) -> int:
        feature_of.append(row)
        base_of.append(base)
        prev_of.append(prev_width)
        return len(feature_of) - 1

    for i, arch in enumerate(archs):
        norm, act = arch.norm, arch.act
        key = _ends_key(arch)
        ends = end_units.get(key)
        if ends is None:
            ids = []
            for shape, x in _end_units(key, fused, bpe):
                features.append(x)
                bases.append(shape)
                ids.append(add_unit(len(features) - 1, len(bases) - 1, shape[_PREV_WIDTH]))
            ends = end_units[key] = (ids[0], ids[1])
        rows += (i, ends[0], 1, i, ends[1], 1)
        res = arch.stage_resolutions()
        prev, res_in = None, res[0]
        for stage, r in zip(arch.stages, res):
            fields = _STAGE_FIELDS(stage)
            bkey = (*fields, r, norm, act)
            b = block_row.get(bkey)
            if b is None:
                b = block_row[bkey] = len(features)
                features.append(_block_features(*bkey, fused, bpe))
                block_base[b] = len(bases)
                bases.append(stage_unit_shape(stage, stage.mixer, res=r, prev_width=None, norm=norm, act=act))
            width = fields[1]
            pw = width if prev is None else prev
            u = block_unit.get((b, pw))
            if u is None:
                u = block_unit[(b, pw)] = add_unit(b, block_base[b], pw)
            if prev is not None:
                d = down_unit.get((b, prev, res_in))
                if d is None:
                    dkey = (prev, width, res_in, r, norm)
                    row = down_row.get(dkey)
                    if row is None:
                        row = down_row[dkey] = len(features)
                        features.append(_down_features(*dkey, fused, bpe))
                    if b not in down_base:
                        down_base[b] = len(bases)
                        bases.append(stage_unit_shape(stage, "down", res=r, prev_width=None, norm=norm, act=act))
                    d = down_unit[(b, prev, res_in)] = add_unit(row, down_base[b], prev)
                rows += (i, d, 1)
            rows += (i, u, stage.depth)
            prev, res_in = width, r
    shapes = np.array(bases, dtype=float).reshape(-1, len(UNIT_SHAPE_FIELDS))[base_of]
    shapes[:, _PREV_WIDTH] = prev_of
    r = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return UnitTable(np.array(features).reshape(-1, N_COEF), shapes, np.array(feature_of, dtype=np.int64), r[:, 0], r[:, 1],
                     r[:, 2].astype(float))


def clear_caches() -> None:
    """Empty the feature caches that fill as architectures are predicted (each is bounded): to time a cold start,
    as in a new process, or to free their memory. Predictions do not change."""
    for cached in (_block_features, _mixer_half, _mlp_half, _down_features, _stage_features, _end_units, _ends_features,
                   _arch_features):
        cached.cache_clear()


def arch_features(arch: ArchConfig, hw: HardwareProfile) -> np.ndarray:
    """Feature vector of `arch` for the linear latency model (cached; do not modify)."""
    return _arch_features(arch, frozenset(hw.fused_kinds), int(hw.bytes_per_element))


def unit_features(arch: ArchConfig, hw: HardwareProfile) -> dict[str, np.ndarray]:
    """Feature vector of each unit of `arch` ('stem', 'stages.1.blocks.0', ...), without the per-inference term.

    They sum to `arch_features(arch, hw)` minus its invoke term; per-unit fits use them one by one.
    """
    from nas.latency.ops import enumerate_ops

    fused, bpe = frozenset(hw.fused_kinds), int(hw.bytes_per_element)
    ops_of: dict[str, list[Op]] = {}
    for op in enumerate_ops(arch):
        ops_of.setdefault(unit_of(op.name), []).append(op)
    return {u: _features(ops, fused, bpe, unit_type(arch, u)) for u, ops in ops_of.items()}


def calibration_key(index: int) -> tuple[str, str]:
    """(calibration entry, term) of coefficient `index`: ('invoke', 'fixed'), ('conv', 'per_work'),
    ('sepconv/pwconv', 'per_byte'), ('sepconv/unit', 'fixed') ..."""
    if index == 0:
        return "invoke", "fixed"
    if index < N_GLOBAL:
        return KINDS[(index - 1) // len(TERMS)], TERMS[(index - 1) % len(TERMS)]
    if index == WEIGHTS:
        return WEIGHT_SPILL, "per_byte"
    t, rest = divmod(index - N_GLOBAL, _PER_TYPE)
    if rest == 0:
        return f"{UNIT_TYPES[t]}/unit", "fixed"
    return f"{UNIT_TYPES[t]}/{KINDS[(rest - 1) // len(TERMS)]}", TERMS[(rest - 1) % len(TERMS)]


def coefficients(hw: HardwareProfile) -> np.ndarray:
    """The profile's coefficient vector: its calibration if it has one, else the roofline prior."""
    if hw.calibration:
        theta = np.zeros(N_COEF)
        for i in range(N_COEF):
            entry, term = calibration_key(i)
            theta[i] = hw.calibration.get(entry, {}).get(term, hw.invoke_overhead_us if i == 0 else 0.0)
        return theta
    return prior_coefficients(hw)


def spill_bytes(hw: HardwareProfile) -> float:
    """Model weight bytes above which a calibrated profile charges `weight_spill` per weight byte (inf: never)."""
    return float(hw.calibration.get(WEIGHT_SPILL, {}).get("above_bytes", np.inf)) if hw.calibration else np.inf


def spills(features: np.ndarray, above_bytes: float) -> np.ndarray:
    """Whether each arch's weights (the `WEIGHTS` slot of its `arch_features`, rows or one vector) exceed `above_bytes`."""
    return np.asarray(features)[..., WEIGHTS] > above_bytes


def _calibration(theta: np.ndarray, above_bytes: float = np.inf) -> dict[str, dict[str, float]]:
    # Per-unit-type entries only where they are non-zero: a profile fitted on totals alone looks as before.
    out: dict[str, dict[str, float]] = {}
    for i, value in enumerate(theta):
        entry, term = calibration_key(i)
        if i < N_GLOBAL or value > 0:
            out.setdefault(entry, {})[term] = float(value)
    if WEIGHT_SPILL in out:
        out[WEIGHT_SPILL]["above_bytes"] = float(above_bytes)
    return out


def prior_coefficients(hw: HardwareProfile) -> np.ndarray:
    """Linearised roofline: launch overhead per op and peak-times-efficiency throughput per unit of work."""
    theta = np.zeros(N_COEF)
    theta[0] = hw.invoke_overhead_us
    for i, kind in enumerate(KINDS):
        eff = hw.efficiency.get(kind, 1.0)
        rate = hw.mac_per_s if kind in MATRIX_KINDS else hw.vector_ops_per_s
        theta[1 + i * len(TERMS)] = hw.launch_overhead_us
        theta[1 + i * len(TERMS) + 1] = 1e6 / (rate * eff)
    return theta


def _scales(hw: HardwareProfile) -> np.ndarray:
    # Natural unit of each coefficient, so one ridge strength fits all of them.
    s = prior_coefficients(hw).copy()
    for i in range(len(KINDS)):
        base = 1 + i * len(TERMS)
        s[base] = max(s[base], 1.0)
        s[base + 2] = 1e6 / hw.dram_bytes_per_s
    s[0] = max(s[0], 1.0)
    for t in UNIT_TYPES:  # per-unit-type terms in the units of their global counterparts
        tb = _TYPE_BASE[t]
        s[tb] = 1.0
        s[tb + 1 : tb + _PER_TYPE] = s[1:N_GLOBAL]
    s[WEIGHTS] = 1e6 / hw.dram_bytes_per_s
    return s


def _solve(X: np.ndarray, y: np.ndarray, prior: np.ndarray, scale: np.ndarray, lam: float) -> np.ndarray:
    from scipy.optimize import nnls  # only fitting needs scipy; predictions stay light to import

    # Relative residuals (x.theta - y) / y, variables phi = theta / scale >= 0, ridge toward the prior.
    A = np.vstack([X * scale / y[:, None], np.sqrt(lam) * np.eye(len(scale))])
    b = np.concatenate([np.ones_like(y), np.sqrt(lam) * prior / scale])
    phi, _ = nnls(A, b, maxiter=50 * A.shape[1])
    return phi * scale


@dataclass(frozen=True)
class FitResult:
    """A calibrated profile and how the ridge strength was chosen.

    `cv_rmspe` is over totals, or over unit times when the fit used them (`n_units` > 0).
    """

    profile: HardwareProfile
    lam: float
    cv_rmspe: float
    n_measurements: int
    n_units: int = 0
    # With `check_units`: cross-validated RMSPE of the totals {"with unit times": ..., "totals only": ...}.
    form_cv: dict[str, float] | None = None

    def summary(self) -> str:
        """How the fit went, for the note above a calibration block: ridge strength, CV error, residual trees."""
        spill = self.profile.calibration.get(WEIGHT_SPILL)
        form = ""
        if self.form_cv:
            form = (f"unit times {'kept' if self.n_units else 'left out'}: totals' cross-validated RMSPE "
                    f"{self.form_cv['with unit times']:.1%} with them, {self.form_cv['totals only']:.1%} without; ")
        return (form + f"ridge lambda {self.lam:g}, cross-validated RMSPE {self.cv_rmspe:.1%}"
                + (" (of unit times)" if self.n_units else "")
                + (f"; weight spill above {spill['above_bytes'] / 1e6:.1f} MB" if spill else "")
                + (f"; residual: {len(self.profile.residual) - 1} boosted trees" if self.profile.residual else ""))


def _choose_lambda(X: np.ndarray, y: np.ndarray, groups: np.ndarray, theta0: np.ndarray, scale: np.ndarray,
                   lambdas: Sequence[float], folds: int, seed: int) -> tuple[float, float]:
    """(cross-validated RMSPE, lambda) of the best ridge strength; folds split whole groups (one arch's units)."""
    rmspe, lam, _ = _cross_validate(X, y, groups, theta0, scale, lambdas, folds, seed)
    return rmspe, lam


def _cross_validate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, theta0: np.ndarray, scale: np.ndarray,
                    lambdas: Sequence[float], folds: int, seed: int) -> tuple[float, float, np.ndarray]:
    """`_choose_lambda`'s (RMSPE, lambda), and the held-out relative errors at that lambda (fold by fold, each row once)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    fold_of_group = dict(zip(ids, rng.permutation(len(ids)) % min(folds, len(ids))))
    fold_of = np.array([fold_of_group[g] for g in groups])
    best = (np.inf, lambdas[0], np.array([]))
    for lam in lambdas:
        errs = []
        for f in range(fold_of.max() + 1):
            train, test = fold_of != f, fold_of == f
            theta = _solve(X[train], y[train], theta0, scale, lam)
            errs.append((X[test] @ theta - y[test]) / y[test])
        rel = np.concatenate(errs)
        rmspe = float(np.sqrt(np.mean(rel**2)))
        if rmspe < best[0]:
            best = (rmspe, lam, rel)
    return best


def cross_validated_record(errors: np.ndarray, *, folds: int) -> dict[str, float]:
    """`HardwareProfile.cross_validated` of held-out relative errors `errors` ((predicted - measured) / measured, one per
    measurement) from `folds` folds: how many, the folds, the share within +-10% (as `nas.latency.validate` counts it)
    and the RMSPE."""
    e = np.asarray(errors, dtype=float)
    return {"measurements": int(len(e)), "folds": int(folds), "within_10pct": float(np.mean(np.abs(e) <= 0.10)),
            "rmspe": float(np.sqrt(np.mean(e**2)))}


def fit_profile(
    archs: Sequence[ArchConfig],
    latencies_ms: Sequence[float],
    prior: HardwareProfile,
    *,
    unit_times: Sequence[dict[str, float] | None] | None = None,
    lambdas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    folds: int = 5,
    seed: int = 0,
    residual_trees: int = 200,
    weight_spill: bool = True,
    check_units: bool = False,
) -> FitResult:
    """Fit per-op-kind costs to measured latencies; returns `prior` with a `calibration` block.

    `unit_times`: optional per-arch {unit: microseconds} from a per-layer profile (None for an arch
    without one), e.g. `read_unit_times(...)[arch.arch_id]`; with them the fit also learns per-unit-type
    costs (see the module docstring) and, from at least `MIN_RESIDUAL_UNITS` unit times, a `residual`
    model of `residual_trees` boosted trees (0: none) and, unless `weight_spill` is False, a `weight_spill` cost
    for the weights of models above a size (chosen by cross-validation; none if that does not help).
    `check_units`: keep the unit times only if they predict held-out *totals* better (`folds`-fold cross-validation
    of both fits on the measured archs, `FitResult.form_cv`); else return the totals-only fit. Unit times from a
    profiling session that ran the models at other relative speeds than the timing session can make things worse
    (experiments/results/latency/predictor_cpu_xeon.md). It costs 2 x `folds` extra fits.
    The profile records how far off held-out totals were (`HardwareProfile.cross_validated`): for a fit on totals, in the
    cross-validation that chose the ridge strength (`cv_rmspe`); for one that kept unit times, in the check's (`form_cv`).
    A fit on unit times without the check records none: its cross-validation scored unit times, not models.
    """
    if len(archs) != len(latencies_ms) or len(archs) < MIN_FIT:
        raise DataError(f"need >= {MIN_FIT} measurements with one latency each to fit; got {len(archs)} archs, {len(latencies_ms)} latencies")
    if not (isinstance(residual_trees, int) and not isinstance(residual_trees, bool)
            and 0 <= residual_trees <= RESIDUAL_TREES_MAX):  # worded as the command line's (`nas.latency.profile.TOOL_COUNTS`)
        raise ConfigError(f"residual_trees={residual_trees!r} must be an integer in [0, {RESIDUAL_TREES_MAX}] "
                          "(0: no residual model)")
    prior = uncalibrated = copy.deepcopy(prior.without_calibration())  # whatever the profile held, fits start from the datasheet
    X = np.stack([arch_features(a, uncalibrated) for a in archs])
    y = np.asarray(latencies_ms, dtype=float) * 1000.0
    form_cv = None
    if unit_times is not None and any(unit_times):
        with_units = _fit_with_units(archs, X, y, unit_times, prior, uncalibrated, lambdas=lambdas, folds=folds, seed=seed,
                                     residual_trees=residual_trees, weight_spill=weight_spill)
        if not check_units or len(archs) < 2 * folds:  # too few archs to hold any out and still fit
            return with_units
        settings = dict(lambdas=lambdas, folds=folds, seed=seed, residual_trees=residual_trees, weight_spill=weight_spill)
        try:
            held_out = {"with unit times": _cv_of_totals(archs, y, prior, unit_times, **settings),
                        "totals only": _cv_of_totals(archs, y, prior, None, **settings)}
        except DataError:  # a fold left too few archs with unit times to fit on: nothing to compare
            return with_units
        form_cv = {form: float(np.sqrt(np.mean(errors**2))) for form, errors in held_out.items()}
        if form_cv["with unit times"] <= form_cv["totals only"]:
            # The record says how far off held-out models' totals were (the unit times' own cross-validation scores units)
            kept = dataclasses.replace(with_units.profile,
                                       cross_validated=cross_validated_record(held_out["with unit times"], folds=folds))
            return dataclasses.replace(with_units, profile=kept, form_cv=form_cv)
    g = slice(0, N_GLOBAL)  # totals alone cannot tell unit types apart: global terms only
    theta0, scale = prior_coefficients(uncalibrated)[g], _scales(uncalibrated)[g]
    # Datasheet numbers get the *shape* (relative op costs) right far more often than the absolute
    # level; one global factor fitted first keeps the ridge from pulling toward the wrong level.
    level = float(np.median(y / (X[:, g] @ theta0)))
    theta0, scale = theta0 * level, scale * level
    best = _cross_validate(X[:, g], y, np.arange(len(y)), theta0, scale, lambdas, folds, seed)
    theta = np.zeros(N_COEF)
    theta[g] = _solve(X[:, g], y, theta0, scale, best[1])
    profile = copy.deepcopy(prior)
    profile.calibration = _calibration(theta)
    profile.fitted_archs = fitted_arch_ids(archs)
    profile.measured_inputs = measured_inputs(archs)
    profile.measured_extent = measured_extent(archs)
    profile.fitted_for = calibration_basis(profile)
    profile.cross_validated = cross_validated_record(best[2], folds=min(folds, len(y)))
    return FitResult(profile=profile, lam=best[1], cv_rmspe=best[0], n_measurements=len(y), form_cv=form_cv)


def fitted_arch_ids(archs: Sequence[ArchConfig]) -> list[str]:
    """The arch_ids a calibration fitted on `archs` records (`HardwareProfile.fitted_archs`): each once, sorted."""
    return sorted({a.arch_id for a in archs})


def measured_inputs(archs: Sequence[ArchConfig]) -> list[str]:
    """The inputs a calibration fitted on `archs` records (`HardwareProfile.measured_inputs`): '<in_chans>x<img_size>x
    <img_size>' of each arch, each once, sorted."""
    return sorted({input_name(in_chans=a.in_chans, img_size=a.img_size) for a in archs})


def measured_extent(archs: Sequence[ArchConfig]) -> dict[str, list]:
    """The extent a calibration fitted on `archs` records (`HardwareProfile.measured_extent`): [smallest, largest] stage
    count, stage width and stage depth, and the mixers, norms and activations they have, each once, sorted."""
    stages = [s for a in archs for s in a.stages]
    return {"stages": [min(len(a.stages) for a in archs), max(len(a.stages) for a in archs)],
            "widths": [min(s.width for s in stages), max(s.width for s in stages)],
            "depths": [min(s.depth for s in stages), max(s.depth for s in stages)],
            "mixers": sorted({s.mixer for s in stages}), "norms": sorted({a.norm for a in archs}),
            "acts": sorted({a.act for a in archs})}


def input_counts(archs: Sequence[ArchConfig]) -> dict[str, int]:
    """How many of `archs` take each input ('<in_chans>x<img_size>x<img_size>', sorted, as in `measured_inputs`): what a
    fit's note and the benchmark's report count, since a fit spanning several inputs knows each only as well as its
    archs there."""
    return dict(sorted(Counter(input_name(in_chans=a.in_chans, img_size=a.img_size) for a in archs).items()))


def _cv_of_totals(archs: Sequence[ArchConfig], y_us: np.ndarray, prior: HardwareProfile,
                  unit_times: Sequence[dict[str, float] | None] | None, *, folds: int, seed: int, **settings) -> np.ndarray:
    """Relative errors of held-out totals over `folds` folds of the archs, each fitted (with or without unit times) on
    the rest: one per arch, fold by fold."""
    from nas.latency.predictor import predict_latency_batch

    order = np.random.default_rng(seed).permutation(len(archs))
    errors = []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        fitted = fit_profile([archs[i] for i in rest], y_us[rest] / 1000.0, prior, folds=folds, seed=seed,
                             unit_times=[unit_times[i] for i in rest] if unit_times is not None else None, **settings)
        errors.append(predict_latency_batch([archs[i] for i in part], fitted.profile) * 1000.0 / y_us[part] - 1.0)
    return np.concatenate(errors)


def _fit_with_units(archs, X, y, unit_times, prior, uncalibrated, *, lambdas, folds, seed, residual_trees,
                    weight_spill) -> FitResult:
    from scipy.optimize import nnls

    from nas.latency.predictor import corrected_unit_sums

    if len(unit_times) != len(archs):
        raise DataError(f"unit_times has {len(unit_times)} entries for {len(archs)} archs; give one per arch (None where missing)")
    rows, shapes, targets, groups = [], [], [], []
    for k, (arch, times) in enumerate(zip(archs, unit_times)):
        for unit, x in unit_features(arch, uncalibrated).items() if times else ():
            if times.get(unit, 0.0) > 0:  # a unit whose ops were all fused away has no time of its own
                rows.append(x)
                shapes.append(unit_shape(arch, unit))
                targets.append(times[unit])
                groups.append(k)
    if len(set(groups)) < 3:
        raise DataError(f"need unit times of >= 3 archs to fit per unit; got {len(set(groups))}")
    U, t, groups = np.array(rows), np.array(targets), np.array(groups)
    # 1. Unit costs from unit times: relative errors, ridge toward zero in each column's own scale (the
    #    prior's shape does not carry over to a profile that leaves out the runtime's work between nodes).
    #    Models whose weights exceed a threshold pay per weight byte on top (their weights no longer stay cached
    #    between inferences: the same block ran up to 1.9x slower inside a bigger model); the threshold is chosen by
    #    cross-validation with the ridge strength, among the fit archs' own sizes (inf: no such cost).
    best = None
    for above in _spill_candidates(X[:, WEIGHTS]) if weight_spill else [np.inf]:
        Ua = U.copy()
        Ua[:, WEIGHTS] *= spills(X[groups], above)
        used = np.flatnonzero(np.abs(Ua).max(axis=0) > 0)
        scale = 1.0 / np.abs(Ua[:, used] / t[:, None]).max(axis=0)
        cv_rmspe, lam = _choose_lambda(Ua[:, used], t, groups, np.zeros(len(used)), scale, lambdas, folds, seed)
        if best is None or cv_rmspe < best[0]:
            best = (cv_rmspe, lam, above, Ua, used, scale)
    _, _, above, U, used, scale = best
    theta = np.zeros(N_COEF)
    theta[used] = _solve(U[:, used], t, np.zeros(len(used)), scale, best[1])
    # 2. Boosted trees on each unit's log residual (when there are enough unit times): what a model linear in
    #    the op sizes misses, e.g. a kernel whose speed changes with the width and resolution it meets.
    #    Unit cost = linear x exp(trees); as a profile's `residual` rows, with no per-unit overhead yet.
    residual = (_fit_residual(np.array(shapes), U @ theta, t, trees=residual_trees, seed=seed)
                if residual_trees and len(t) >= MIN_RESIDUAL_UNITS else [])
    # 3. Totals = scale * (sum of unit costs) + per-inference overhead + per-unit overhead, on all archs.
    n_units = X[:, [_TYPE_BASE[u] for u in UNIT_TYPES]].sum(axis=1)
    nodes = X @ theta - ~spills(X, above) * X[:, WEIGHTS] * theta[WEIGHTS]
    if residual:
        nodes = corrected_unit_sums(archs, uncalibrated, theta, residual, above_bytes=above)
    F = np.stack([nodes, np.ones_like(y), n_units], axis=1)
    (a, invoke, per_unit), _ = nnls(F / y[:, None], np.ones_like(y))
    theta *= a
    theta[0] = invoke
    for u in UNIT_TYPES:
        theta[_TYPE_BASE[u]] += per_unit
    profile = copy.deepcopy(prior)
    profile.calibration = _calibration(theta, above)
    profile.fitted_archs = fitted_arch_ids(archs)
    profile.measured_inputs = measured_inputs(archs)
    profile.measured_extent = measured_extent(archs)
    profile.fitted_for = calibration_basis(profile)
    if residual:
        # The trees read log(unit cost - per-unit overhead), which the scale moved by log(a).
        shift = lambda f, thr: thr + (np.log(a) if int(f) == LOG_COST else 0.0)  # noqa: E731
        profile.residual = [[residual[0][0], float(per_unit)]] + [
            [r[0], shift(r[0], r[1]), r[2], shift(r[2], r[3]), r[4], shift(r[4], r[5]), *r[6:]] for r in residual[1:]]
    return FitResult(profile=profile, lam=best[1], cv_rmspe=best[0], n_measurements=len(y), n_units=len(t))


def _spill_candidates(model_bytes: np.ndarray) -> list[float]:
    # No spill first (a tie keeps the simpler model), then thresholds between the fit archs' own sizes: a
    # threshold is only identifiable where measured models lie on both sides of it.
    return [np.inf, *sorted(set(np.quantile(model_bytes, (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)).tolist()))]


MIN_FIT = 3
"""Fewest measured archs `fit_profile` (and `python -m nas.latency.fit`) takes."""
LEARNING_CURVE = {10: (0.630, 0.148), 20: (0.784, 0.087), 50: (0.859, 0.070)}
"""Measured archs in a fit -> (share of held-out archs predicted within +-10%, RMSPE), means of 20 splits of hw=cpu's
150 measured archs for the shipped method (experiments/results/latency/learning_curve_cpu.md; a test checks them)."""
MIN_RESIDUAL_UNITS = 200
"""Fewer unit times than this (about 20 models): no residual trees; boosting would memorise them."""
RESIDUAL_TREES_MAX = 10_000
"""The most residual trees (`residual_trees=`; the default 200): each is boosted one after another and stored in the
profile's YAML, and every prediction walks them all."""
LOG_COST = len(UNIT_SHAPE_FIELDS)
"""Index of the residual trees' last feature, log(unit cost - per-unit overhead); the unit's shape comes before it."""
_FAR = 1e30  # threshold of a split sklearn did not make: everything goes left


def _fit_residual(shapes: np.ndarray, linear_us: np.ndarray, unit_us: np.ndarray, *, trees: int, seed: int) -> list[list[float]]:
    """Boosted depth-2 regression trees (scikit-learn) of log(unit time / linear cost) on the unit's shape and
    log(linear cost), as `HardwareProfile.residual` rows: [[init, 0], tree, ...] (see `residual_factors`)."""
    from sklearn.ensemble import GradientBoostingRegressor

    log_linear = np.log(np.maximum(linear_us, 1e-3))
    D = np.column_stack([shapes, log_linear])
    model = GradientBoostingRegressor(n_estimators=trees, max_depth=2, learning_rate=0.1, random_state=seed)
    model.fit(D, np.log(unit_us) - log_linear)
    out = [[float(model.init_.constant_.ravel()[0]), 0.0]]
    for (tree,) in model.estimators_:
        t = tree.tree_
        value = lambda n: float(t.value[n].ravel()[0]) * model.learning_rate  # noqa: E731

        def split(n: int) -> tuple[list[float], list[float]]:
            # A node's (feature, threshold) and its two children's leaf values; a leaf splits nowhere.
            if t.children_left[n] < 0:
                return [0.0, _FAR], [value(n), value(n)]
            return [float(t.feature[n]), float(t.threshold[n])], [value(t.children_left[n]), value(t.children_right[n])]

        if t.children_left[0] < 0:
            out.append([0.0, _FAR, 0.0, _FAR, 0.0, _FAR, *[value(0)] * 4])
            continue
        left, right = split(t.children_left[0]), split(t.children_right[0])
        out.append([float(t.feature[0]), float(t.threshold[0]), *left[0], *right[0], *left[1], *right[1]])
    return out


CALIBRATION_MARKER = "# --- calibration (generated by `python -m nas.latency.fit`; refit instead of editing) ---"


def _yaml_float(value: float, digits: int | None = 7) -> str:
    # Always a YAML float (never "0" or "1e-05", which typed configs or YAML 1.1 read as int / str). Seven
    # significant digits keep a reloaded profile's units on the same side of every residual tree's threshold;
    # None: the shortest text that reads back exactly.
    mantissa, e, exponent = (repr(float(value)) if digits is None else f"{value:.{digits}g}").partition("e")
    return (mantissa if "." in mantissa else mantissa + ".0") + (f"e{exponent}" if e else "")


def calibrated_yaml(source_text: str, profile: HardwareProfile, *, note: str) -> str:
    """`source_text` (a conf/hw/*.yaml) with its calibration block replaced by `profile.calibration`.

    Everything above the marker line (the datasheet numbers and their comments) is kept verbatim, but for its top-level
    `name:`, which says `profile.name` (added first where the source has none), and its `description:`, which says
    `profile.description` where that differs (`refitted_description`; left out where the source has none).
    """
    head = _named(source_text.split(CALIBRATION_MARKER)[0].rstrip(), profile.name)
    head = _described(head, profile.description) + "\n\n"
    lines = [CALIBRATION_MARKER, f"# {note}", "# per op kind, in microseconds: fixed per op, per unit of work (MAC or element op), per byte moved",
             *(["# <unit type>/<op kind>: added to the op kind's terms for ops in that type of unit; <unit type>/unit: per unit"]
               if any("/" in k for k in profile.calibration) else []),
             *([f"# {WEIGHT_SPILL}: per weight byte, in models with more weight bytes than above_bytes (weights no longer cached)"]
               if WEIGHT_SPILL in profile.calibration else []),
             # a search compares it with the host's CPU only for a profile timed on the host (a runtime): a chip's says so not
             *([f"calibrated_on: {json.dumps(profile.calibrated_on)}  # the machine measured"
                + (" (on another CPU, a search warns)" if profile.runtime else "")] if profile.calibrated_on else []),
             *_fitted_archs_yaml(profile.fitted_archs),
             *([f"measured_inputs: [{', '.join(json.dumps(i) for i in profile.measured_inputs)}]  # channels x size x size "
                "(a search at another input warns)"] if profile.measured_inputs else []),
             *([f"measured_extent: {json.dumps(profile.measured_extent)}  # of the archs fitted on (a search whose space "
                "reaches outside it warns)"] if profile.measured_extent else []),
             *([f"fitted_for: {json.dumps(profile.fitted_for)}  # the profile's keys the costs depend on: "
                "change one, and refit"] if profile.fitted_for else []),
             *_cross_validated_yaml(profile.cross_validated),
             "calibration:"]
    for kind, terms in profile.calibration.items():
        # The threshold exactly: rounded, a model right at it could change sides.
        body = ", ".join(f"{t}: {_yaml_float(v, None if t == 'above_bytes' else 7)}" for t, v in terms.items())
        lines.append(f"  {kind}: {{{body}}}")
    if profile.residual:
        lines += ["# per-unit correction: unit cost = (cost - overhead) x exp(init + trees) + overhead; row 0 [init, overhead],",
                  "# then one tree per row: [feature, threshold, left: feature, threshold, right: feature, threshold, 4 leaves],",
                  *textwrap.wrap(", ".join(f"{i}:{f}" for i, f in enumerate((*UNIT_SHAPE_FIELDS, "log(cost-overhead)"))),
                                 width=110, initial_indent="# features: ", subsequent_indent="#   ", break_on_hyphens=False),
                  "residual:"]
        # Tree thresholds and leaves exactly: 200 rounded leaves would add up to a visible error.
        lines += ["  - [" + ", ".join(_yaml_float(v, None) for v in row) + "]" for row in profile.residual]
    return head + "\n".join(lines) + "\n"


def split_calibrated(text: str, *, fitted_name: str) -> tuple[str, str]:
    """`calibrated_yaml`'s `text` as the two files a fit writes: the profile, its datasheet part then the marker line and
    `fitted: <fitted_name>`, and the fitted numbers (from the marker line on, comments kept), the file that names.

    Composing `hw=<chip>` builds every value of the profile's file as a config node, hundreds of fitted numbers
    included; in their own file they are read only when the profile is loaded (`nas.config.load_fitted`)."""
    head, marker, section = text.partition(CALIBRATION_MARKER)
    if not marker:
        return text, ""
    profile = f"{head}{marker}\nfitted: {fitted_name}  # {', '.join(FITTED_FIELDS)}: in that file\n"
    return profile, marker + section


def write_calibrated(out: Path, text: str) -> Path:
    """Write `calibrated_yaml`'s `text` to `out` and its fitted numbers beside it (`split_calibrated`,
    `nas.config.fitted_file_name`; where `out` is a link, beside the file it links to, where loading it looks), as a
    pair: both are written whole into a temporary folder beside them first, then renamed in, the fitted numbers first;
    returns their file. A write that fails (a full disk) leaves the old pair as it was and no temporary file."""
    from nas.checkpoint import replacing_together
    from nas.config import fitted_file_name

    target = out.resolve()  # a link stays a link: the file it links to is replaced
    sidecar = target.with_name(fitted_file_name(out.stem))
    profile, fitted = split_calibrated(text, fitted_name=sidecar.name)
    # Both written before either is renamed: written one after the other in place, a profile whose write failed (a
    # full disk) stayed beside the numbers of the new fit, which it did not describe. The numbers are renamed first:
    # a kill between the two renames leaves the new numbers with the old profile, never a profile naming a file not
    # yet there.
    with replacing_together(sidecar, target) as tmp:
        for final, data in ((sidecar, fitted), (target, profile)):
            try:
                (tmp / final.name).write_bytes(data.encode())
            except OSError as e:
                if e.filename is not None:
                    raise
                # a failed write's own error (a file over the size limit) names no file: said of the one it was to be
                raise OSError(e.errno, e.strerror, str(final)) from e
    return sidecar


def _top_level_line(key: str) -> re.Pattern[str]:
    """The line of a hw file's top-level `key:` (a plain or quoted one-line value), its comment as `comment`."""
    return re.compile(rf"^{key}:[ \t]*(?:\"[^\"\n]*\"|'[^'\n]*'|[^#\n]*?)(?P<comment>[ \t]+#[^\n]*)?[ \t]*$",
                      re.MULTILINE)


def _described(head: str, description: str) -> str:
    """`head` (the datasheet part of a hw file) with its top-level `description:` value set to `description` where it
    says another (its comment kept); as it was where it has none, or says that already (its quoting kept)."""
    import yaml

    try:
        now = yaml.safe_load(head)
    except yaml.YAMLError:
        return head
    if not isinstance(now, dict) or "description" not in now or now["description"] == description:
        return head
    return _top_level_line("description").sub(
        lambda m: f"description: {json.dumps(description)}{m.group('comment') or ''}", head, count=1)


_REFITTED = re.compile(r", refitted on [^\n]*$")


def refitted_description(description: str, *, machine: str, renamed: bool) -> str:
    """The `description` of a profile fitted on `machine` (a `machine_info` string): a copy under a new name (`renamed`)
    says `<description>, refitted on <its CPU>`, since the original's names the CPU the original was made for ("host
    CPU (AMD EPYC Zen 4)"), which the copy's report set beside its own `calibrated_on`; a description that says so
    already gets this machine's CPU instead. Rows with an empty `machine` (a chip's vendor tool fills none) name no
    machine: "refitted on measurements naming no machine", not a dangling "refitted on ". Else, and when empty, as
    it is."""
    from nas.latency.measure import cpu_signature

    if not description or not (renamed or _REFITTED.search(description)):
        return description
    return f"{_REFITTED.sub('', description)}, refitted on {cpu_signature(machine) or 'measurements naming no machine'}"


def _named(head: str, name: str) -> str:
    """`head` (the datasheet part of a hw file) with its top-level `name:` value set to `name` (its comment kept)."""
    value = name if re.fullmatch(r"[A-Za-z_][\w.-]*", name) else json.dumps(name)  # plain when YAML reads it as a string
    line = _top_level_line("name")
    if line.search(head):
        return line.sub(lambda m: f"name: {value}{m.group('comment') or ''}", head, count=1)
    return f"name: {value}\n{head}" if head else f"name: {value}"


def _cross_validated_yaml(record: dict[str, float]) -> list[str]:
    # Counts as integers, the share and the RMSPE to 4 digits: what the report's predictor line shows of them
    if not record:
        return []
    body = ", ".join(f"{k}: {int(v)}" if k in ("measurements", "folds") else f"{k}: {_yaml_float(v, 4)}"
                     for k, v in record.items())
    return [f"cross_validated: {{{body}}}  # each measurement predicted by the fit on the other folds (the report shows it)"]


def _fitted_archs_yaml(arch_ids: Sequence[str]) -> list[str]:
    # Quoted: an arch_id of digits only ("0123456789") would read back as a number and lose its leading zero.
    if not arch_ids:
        return []
    return ["# the archs (arch_id) fitted on: `python -m nas.latency.validate` warns when given them as held-out",
            *textwrap.wrap("fitted_archs: [" + ", ".join(json.dumps(a) for a in arch_ids) + "]", width=110,
                           subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)]


def few_fit_warning(n_archs: int) -> str | None:
    """One line when a fit has fewer than `FEW_FIT` measured archs, citing the learning curve it comes from; else None."""
    if n_archs >= FEW_FIT:
        return None
    def listed(texts: list[str]) -> str:
        return ", ".join(texts[:-1]) + f" and {texts[-1]}"

    sizes = list(LEARNING_CURVE)
    shares = listed([f"{LEARNING_CURVE[n][0]:.0%}" for n in sizes])
    rmspe = listed([f"{LEARNING_CURVE[n][1]:.1%}" for n in sizes])
    return (f"fitting on {counted(n_archs, 'measured arch')}, fewer than {FEW_FIT}: fitted on {listed([str(n) for n in sizes])} "
            f"of hw=cpu's, the predictor put {shares} of held-out archs within +-10% (RMSPE {rmspe}; "
            "experiments/results/latency/learning_curve_cpu.md); measure more (README's onboarding measures 50)")


def hw_source(name: str) -> Path:
    """The YAML file `hw=<name>` was composed from, the one a fit keeps the datasheet part of and by default rewrites.

    In a Hydra run: the first folder of Hydra's config search path holding `hw/<choice>.yaml`, as Hydra itself
    looks (a user's `--config-dir` with their chip's file, beside the shipped conf/); elsewhere `conf/hw/<name>.yaml`.
    """
    from nas.config import HW_DIR, group_file

    return group_file("hw", name) or HW_DIR / f"{name}.yaml"


def datasheet_yaml(hw: HardwareProfile) -> str:
    """`hw`'s datasheet part as the text of a hw file (every field but its name, `FITTED_FIELDS` and `fitted`), for a fit
    of a profile that has no file to copy it from with its comments (a `HardwareProfile` built or loaded in Python from
    a folder outside the config search path): loaded back, it gives the same profile."""
    def text(value: object) -> str:
        if isinstance(value, bool) or value is None:
            raise TypeError(f"not a datasheet value: {value!r}")
        if isinstance(value, float):
            return _yaml_float(value, None)  # exactly: these are the numbers the calibration was fitted from
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {_yaml_float(float(v), None)}" for k, v in value.items()) + "}"
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"

    skipped = {"name", "fitted", *FITTED_FIELDS}
    lines = ["# datasheet numbers of the HardwareProfile given to nas.latency.fit.fit_command: it had no hw/<name>.yaml to "
             "copy them from with their comments"]
    lines += [f"{f.name}: {text(getattr(hw, f.name))}" for f in dataclasses.fields(hw) if f.name not in skipped]
    return "\n".join(lines) + "\n"


def stray_units_warning(archs: Sequence[ArchConfig], unit_times: Sequence[dict[str, float] | None], *,
                        units: Sequence[str]) -> str | None:
    """One line when some of the per-unit times name a unit their arch does not have (`stages.3.blocks.0` of a model
    with 3 stages), else None. The fit uses a unit's time only where the arch has that unit, so such times went unused
    without a word, and the units numbered from 1 (the most likely cause) put each time on the wrong unit."""
    from nas.latency.ops import enumerate_ops

    strays: list[tuple[str, str, list[str]]] = []
    for arch, times in zip(archs, unit_times):
        if times:
            have = list(dict.fromkeys(unit_of(op.name) for op in enumerate_ops(arch)))
            strays += [(arch.arch_id, u, have) for u in sorted(set(times) - set(have) - {"nodes", "call"})]
    if not strays:
        return None
    arch_id, unit, have = strays[0]
    n = len(strays)
    return (f"units={list(units)}: {n} unit time{'s' * (n > 1)} name{'s' * (n == 1)} no unit of {'its' if n == 1 else 'their'} "
            f"arch, and {'is' if n == 1 else 'are'} not used (arch {arch_id} has no {unit!r}; its units: {', '.join(have)}); "
            "stages and blocks are numbered from 0, as in the exported layer names (/stages/stages.0/blocks/blocks.0/...)")


def unmeasured_choices_warning(archs: Sequence[ArchConfig], space: SpaceConfig) -> str | None:
    """One line naming the mixers, norms and activations `space` offers that none of the measured `archs` has, else
    None. The fit prices each op kind from the archs measured: one that none of them has (attention's matmul and
    softmax, say, in a small sample without an attn stage) keeps the datasheet's guess, scaled by the level of the rest,
    and a search ranks the archs that have it by that guess. ('identity' adds no ops of its own.)"""
    offered = {"mixer": {m for stage in space.stages for m in stage.mixers} - {"identity"},
               "norm": set(space.norms), "act": set(space.acts)}
    measured = {"mixer": {s.mixer for a in archs for s in a.stages}, "norm": {a.norm for a in archs},
                "act": {a.act for a in archs}}
    lacking = [f"{what}={name}" for what, names in offered.items() for name in sorted(names - measured[what])]
    if not lacking:
        return None
    them = "them" if len(lacking) > 1 else "it"
    return (f"none of the {len(archs)} measured archs has {', '.join(lacking)}, which space={space.name} offers: no time "
            f"measured {them}, so the fit prices {them} from the datasheet numbers, and a search ranks the archs that have "
            f"{them} by that guess; measure archs that have {them} (more archs, or select=cover, which spreads over the "
            "space) and refit")


def fit_command(tool: LatencyToolConfig) -> str:
    """CLI body: `python -m nas.latency.fit hw=<chip> 'measurements=[a.csv]' ['units=[u.csv]'] [out=file.yaml]`."""
    from datetime import date

    from nas.config import CONF_DIR, CONF_INSTALLED, hw_folders
    from nas.latency.measure import measured_on, read_measurements_for, read_unit_times, spreadsheet_hint, template_file
    from nas.latency.profile import clear_killed_writes
    from nas.latency.validate import time_unit_warning

    if not tool.measurements:
        raise DataError("measurements=[file.csv,...] is required: the CSVs to fit on (see README 'Onboarding a chip')")
    source = hw_source(tool.hw.name)
    if tool.out is None and not source.is_file():
        # From Python with a profile of a folder outside the search path (`load_hw_profile("/lab/hw/chip.yaml")`): the
        # default out= would be a new file in the project's conf/hw, not the one the profile came from.
        raise ConfigError(f"hw={tool.hw.name} has no file hw/{tool.hw.name}.yaml in the config search path "
                          f"({', '.join(str(f) for f in hw_folders())}) to rewrite; pass out=<folder>/hw/{tool.hw.name}.yaml, "
                          "or run the fit as `python -m nas.latency.fit --config-dir <folder> hw=<name> ...`")
    if tool.out is None and CONF_INSTALLED and source.resolve().parent.parent == CONF_DIR:
        # Rewriting a file inside site-packages: lost with the next install, and shared by every user of that Python.
        # The copy needs a name of its own: Hydra takes the shipped file over one of the same name in --config-dir, so
        # a search with <your folder>/hw/<same name>.yaml is refused (nas.overrides.precheck_overrides).
        mine = f"my_{source.stem}"
        raise ConfigError(f"hw={source.stem} is a profile shipped inside the installed package ({source}); pass "
                          f"out=<your config folder>/hw/{mine}.yaml (named {mine} after its file) and use it as "
                          f"--config-dir <your config folder> hw={mine} (a file named {source.stem}.yaml there "
                          "would clash with the shipped one)")
    if tool.out is not None and Path(tool.out).suffix != ".yaml":
        # Written as asked, the calibrated profile could not be searched with: Hydra offers only <name>.yaml files
        given = Path(tool.out)  # chip.yml -> chip.yaml, but chip.v2 -> chip.v2.yaml (a dot inside a chip's name)
        meant = given.with_suffix(".yaml") if given.suffix.lower() in (".yml", ".yaml", ".txt") else f"{given}.yaml"
        raise ConfigError(f"out={tool.out!r} must be a .yaml file: hw= chooses a chip by its <name>.yaml (e.g. out={meant})")
    rows, warnings = read_measurements_for(tool.hw, tool.measurements, template=tool.template)
    if len(rows) < MIN_FIT:  # said here, naming the files: fit_profile's own refusal counts archs and latencies
        raise DataError(f"measurements={list(tool.measurements)}: need >= {MIN_FIT} measurements to fit, got {len(rows)} "
                        "(README's onboarding measures 50)")
    slip = time_unit_warning([m.arch for m in rows], [m.median_ms for m in rows], tool.hw)
    for warning in warnings:  # the rows' own (an arch measured twice): worth fixing along with a refusal below
        log.warning("%s", warning)
    if slip and not tool.times_in_ms:
        # Refused, not warned: a profile fitted on times 1000x off misprices every later search, which then meets any
        # latency budget (or none), and a warning scrolls by while the file is written all the same.
        raise DataError(f"measurements={list(tool.measurements)}: {slip}; nothing written: fix the times, or pass "
                        "times_in_ms=true where they are milliseconds after all")
    # Only for a fit that goes on: before the refusal above, "measure more" was said of times that were not used
    for warning in (few_fit_warning(len({m.arch.arch_id for m in rows})), slip if tool.times_in_ms else None):
        if warning:
            log.warning("%s", warning)
    machine = measured_on(rows, what=f"measurements={list(tool.measurements)}")
    units: dict[str, dict[str, float]] = {}
    for path in tool.units:  # a compiled file's name (`<arch_id>.rknn`) is read as its arch's where the arch was measured
        units.update(read_unit_times(path, arch_ids={m.arch.arch_id for m in rows}))
    unit_times = [units.get(m.arch.arch_id) for m in rows] if units else None
    if units and not any(unit_times):
        raise DataError(f"units={list(tool.units)}: no arch_id in them matches a measured arch of {list(tool.measurements)}"
                        + next(filter(None, map(spreadsheet_hint, units)), ""))
    # Some unmatched (another sample's archs, a mistyped id): said, as their times go unused
    if unmatched := sorted(set(units) - {m.arch.arch_id for m in rows}):
        shown = ", ".join(repr(a) for a in unmatched[:3]) + (f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else "")
        log.warning("units=%s: arch_id %s (%d of the %d in them) %s no measured arch of measurements=%s: %s unit times "
                    "are not used%s", list(tool.units), shown, len(unmatched), len(units), "is" if len(unmatched) == 1 else "are",
                    list(tool.measurements), "its" if len(unmatched) == 1 else "their",
                    next(filter(None, map(spreadsheet_hint, unmatched)), ""))
    if warning := unmeasured_choices_warning([m.arch for m in rows], tool.space):
        log.warning("%s", warning)
    if warning := stray_units_warning([m.arch for m in rows], unit_times or [], units=tool.units):
        log.warning("%s", warning)
    # Before the fit, not after; but once the inputs are read: a missing or malformed CSV left out='s new folder behind.
    out = writable_file(tool.out or source, setting=f"out={tool.out!r}")
    clear_killed_writes(out.parent)
    result = fit_profile([m.arch for m in rows], [m.median_ms for m in rows], tool.hw, unit_times=unit_times, check_units=True,
                         residual_trees=tool.residual_trees)
    # The file's name is its `hw=` choice: `out=my_chip.yaml` is hw=my_chip, and a copy that kept the source's `name: cpu`
    # called itself cpu in the search log, the report, pareto.json and the host hint (whose `hw=cpu` is another file).
    profile = dataclasses.replace(result.profile, calibrated_on=machine, name=out.stem, description=refitted_description(
        result.profile.description, machine=machine, renamed=out.stem != source.stem))
    # The inputs measured, as in each row's arch_json: a profile fitted at 28x28 grey describes a 64x64 colour search
    # only by extrapolation, so the note counts the archs per input it has seen (`measured_inputs` lists them for the
    # search's warning; a mix is fine: the predictor costs each arch's own shape).
    inputs = input_counts([m.arch for m in rows])
    # template=: where the arch_json of rows without one came from, as the measurements are recorded
    templated = f"; arch_json by arch_id from the template {template_file(tool.template)}" if tool.template is not None else ""
    note = (f"fitted {date.today()} on {len(rows)} measurements ({', '.join(tool.measurements)}{templated}; inputs "
            + ", ".join(f"{shape}: {n}" for shape, n in inputs.items()) + ")"
            + (f" + {result.n_units} unit times ({', '.join(tool.units)})" if result.n_units else "")
            + f"; {result.summary()}")
    # Atomically: by default `out` is the user's hand-written datasheet file, which a kill mid-write would cut short.
    try:
        # Without a file of the profile's name, its datasheet numbers come from the profile given, which the fit started
        # from: a profile of the calibration alone would be predicted on the generic NPU's numbers wherever it is used.
        datasheet = source.read_text() if source.is_file() else datasheet_yaml(tool.hw)
        sidecar = write_calibrated(out, calibrated_yaml(datasheet, profile, note=note))
    except OSError as e:
        if e.errno in DISK_ERRNOS:  # the disk's failure (full, over quota, ...), not the setting's: the command's one
            raise                   # line for a failed write, exit status 1 (`latency_cli`), not a refused out=
        # A place `writable_file` could not tell from a writable one (as root, os.access says yes to /proc; a read-only
        # mount, a full disk): the error named the file without saying it was the out= setting that chose it.
        setting = f"out={tool.out!r}" if tool.out is not None else f"hw={tool.hw.name}'s file {str(out)!r}"
        failed = f"{e.filename}: " if e.filename and str(e.filename) != str(out) else ""
        raise ConfigError(f"{setting}: the calibrated profile cannot be written there ({failed}{e.strerror or e}); pass "
                          "out=<a .yaml file in a writable folder>") from None
    return f"calibrated profile written to {out}, its fitted numbers to {sidecar} ({note})"


HELP_LINE = ("python -m nas.latency.fit measurements=[a.csv,...]: calibrate the latency predictor of hw= on measured "
             "latencies (nas.latency.profile's CSVs, or a chip profiler's), writing the profile's fitted file "
             "(out= writes a copy elsewhere).")
"""The first line of `python -m nas.latency.fit --help`."""

if __name__ == "__main__":
    from nas.latency.profile import latency_cli

    latency_cli(fit_command, help_line=HELP_LINE, reads_fitted=False, needs_hw="fit")
