"""Latency predictor: a per-layer model of a chip, a roofline from its datasheet numbers or, for a profile with a
`calibration:` block, per-op costs fitted on measurements (with per-unit terms, weight spill and residual trees where
fitted). Pure functions, no I/O."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from nas.arch import ArchConfig, require_arch
from nas.errors import ConfigError, wrong_type
from nas.latency.hardware import WEIGHT_SPILL, HardwareProfile
from nas.latency.ops import MATRIX_KINDS, Op, enumerate_ops, unit_of, unit_shape, unit_type


@dataclass(frozen=True)
class LayerLatency:
    """Predicted time of one layer. `bound`: compute | memory | host | fused | overhead, or calibrated (a calibrated
    profile's ops and unit overheads)."""

    name: str
    kind: str
    stage: int
    ms: float
    bound: str
    macs: int


@dataclass(frozen=True)
class LatencyReport:
    """Predicted batch-1 latency of an architecture on a chip, with its per-layer breakdown."""

    total_ms: float
    layers: tuple[LayerLatency, ...]
    params: int
    macs: int

    def by_stage(self) -> dict[str, float]:
        """Milliseconds per part of the network: 'overhead', 'stem', 'stage0'..., 'head'."""
        n_stages = max((l.stage for l in self.layers), default=0)
        out: dict[str, float] = {}
        for layer in self.layers:
            if layer.bound == "overhead":
                key = "overhead"
            elif layer.stage < 0:
                key = "stem"
            elif layer.stage == n_stages and layer.name.startswith("head"):
                key = "head"
            else:
                key = f"stage{layer.stage}"
            out[key] = out.get(key, 0.0) + layer.ms
        return out

    def by_kind(self) -> dict[str, float]:
        """Milliseconds per op kind (conv, dwconv, matmul, softmax, ...)."""
        out: dict[str, float] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0.0) + layer.ms
        return out


def layer_latency_us(op: Op, hw: HardwareProfile, *, utype: str | None = None, spills: bool = False) -> tuple[float, str]:
    """Predicted microseconds of one op on `hw` and what bounds it.

    `utype`: the type of unit the op sits in (`nas.latency.ops.unit_type`), for calibrations fitted
    on per-unit times; without it only the per-kind terms count. `spills`: the op's model has more weight
    bytes than a calibration's `weight_spill.above_bytes`, so its weights cost that entry's `per_byte` too.
    """
    if hw.calibration:
        return _calibrated_us(op, hw, utype, spills)
    if op.kind in hw.host_kinds:
        # Unsupported on the accelerator: ship activations to the host and back, compute there.
        transfer = (op.in_elems + op.out_elems) * 4 / hw.host_link_bytes_per_s
        compute = (2 * op.macs + op.vec_ops) / hw.host_ops_per_s
        return (transfer + compute) * 1e6 + hw.host_sync_us, "host"
    if op.foldable and op.kind in hw.fused_kinds:
        return 0.0, "fused"
    eff = hw.efficiency.get(op.kind, 1.0)
    if op.kind in MATRIX_KINDS:
        compute = op.macs / (hw.mac_per_s * eff)
    else:
        compute = op.vec_ops / (hw.vector_ops_per_s * eff)
    bpe = hw.bytes_per_element
    act_bytes = (op.in_elems + op.out_elems) * bpe
    # Weights stream from DRAM every inference; activations only when they overflow the SRAM.
    mem_bytes = op.params * bpe + (act_bytes if act_bytes > hw.sram_bytes else 0)
    memory = mem_bytes / hw.dram_bytes_per_s
    bound = "compute" if compute >= memory else "memory"
    return max(compute, memory) * 1e6 + hw.launch_overhead_us, bound


def _calibrated_us(op: Op, hw: HardwareProfile, utype: str | None, spills: bool) -> tuple[float, str]:
    if op.foldable and op.kind in hw.fused_kinds:
        return 0.0, "fused"
    us = 0.0
    for entry in (op.kind, f"{utype}/{op.kind}") if utype else (op.kind,):
        c = hw.calibration.get(entry, {})
        us += c.get("fixed", 0.0) + c.get("per_work", 0.0) * op.work + c.get("per_byte", 0.0) * op.bytes_moved(hw.bytes_per_element)
    if spills:
        us += hw.calibration.get(WEIGHT_SPILL, {}).get("per_byte", 0.0) * op.params * hw.bytes_per_element
    return us, "calibrated"


def _invoke_us(hw: HardwareProfile) -> float:
    if hw.calibration:
        return hw.calibration.get("invoke", {}).get("fixed", 0.0)
    return hw.invoke_overhead_us


def residual_factors(residual: Sequence[Sequence[float]], shapes: np.ndarray, unit_us: np.ndarray) -> np.ndarray:
    """Per-unit correction factors of a profile's `residual` model (see `HardwareProfile.residual`).

    `shapes`: one `nas.latency.ops.unit_shape` per row; `unit_us`: each unit's calibrated cost, its
    per-unit overhead included. Row 0 of `residual` is [init, per-unit overhead in us]; every further row
    is a depth-2 regression tree [feature, threshold, left feature, left threshold, right feature,
    right threshold, 4 leaf values], going left where a value is <= the threshold, on the unit's shape
    plus log(unit cost - overhead) as the last feature. The factor is exp(init + sum of the leaves).
    """
    init, per_unit = residual[0]
    trees = np.asarray(residual[1:], dtype=float).reshape(-1, 10)
    X = np.column_stack([np.asarray(shapes, dtype=float).reshape(len(unit_us), -1),
                         np.log(np.maximum(np.asarray(unit_us, dtype=float) - per_unit, 1e-3))])
    return np.exp(init + _tree_sums(trees, X))


def _tree_sums(trees: np.ndarray, X: np.ndarray) -> np.ndarray:
    feat, thr, leaves = trees[:, 0:6:2].astype(int), trees[:, 1:6:2], trees[:, 6:]
    if len(X) <= _FEW_UNITS:
        # Units x trees at once: one arch's dozen units cost a few numpy calls.
        right = X[:, feat[:, 0]] > thr[:, 0]
        right2 = np.take_along_axis(X, np.where(right, feat[:, 2], feat[:, 1]), axis=1) > np.where(right, thr[:, 2], thr[:, 1])
        return leaves[np.arange(len(trees)), 2 * right + right2].sum(axis=1)
    # Tree by tree over whole feature rows: for a batch's thousands of units, half the time of the above.
    XT = np.ascontiguousarray(X.T)
    out = np.zeros(len(X))
    for (f0, fl, fr), (t0, tl, tr), (v0, v1, v2, v3) in zip(feat, thr, leaves):
        right = XT[f0] > t0
        right2 = np.where(right, XT[fr] > tr, XT[fl] > tl)
        out += np.where(right, np.where(right2, v3, v2), np.where(right2, v1, v0))
    return out


_FEW_UNITS = 2000


def _corrected(residual: Sequence[Sequence[float]], shapes: np.ndarray, unit_us: np.ndarray) -> np.ndarray:
    # A unit's calibrated cost is its ops' costs plus a fixed per-unit overhead; the residual model scales
    # the former and keeps the latter, as it was fitted (nas.latency.fit).
    if not residual or not len(unit_us):
        return unit_us
    per_unit = residual[0][1]
    return (unit_us - per_unit) * residual_factors(residual, shapes, unit_us) + per_unit


def describe_predictor(hw: HardwareProfile) -> str:
    """What predicts latency on `hw`, in a few words for reports: how far to trust the numbers (for a calibrated
    profile, the machine measured, how many archs it was fitted on and its cross-validated error, where it records
    them)."""
    _require_loaded(hw)
    if not hw.calibration:
        return "roofline from the datasheet numbers (not calibrated on measurements)"
    per_unit = any(k.endswith("/unit") for k in hw.calibration)
    text = ("calibrated on measurements" + (f" from {hw.calibrated_on}" if hw.calibrated_on else "") + ": per op kind"
            + (" and unit type, from per-unit profiles" if per_unit else ""))
    residual = len(hw.residual) - 1 if hw.residual else 0
    text += f", with {residual} residual tree{'s' if residual > 1 else ''} per unit" if residual else ""
    # How much the fit saw, as it recorded it (`fitted_archs`): a calibration on 5 archs reads the same as one on 150
    # otherwise; and how far off it was on models held out of it (`cross_validated`), where the fit recorded that.
    n = len(hw.fitted_archs)
    text += f"; fitted on {n} measured arch{'s' if n != 1 else ''}" if n else ""
    if cv := hw.cross_validated:
        text += (f"; cross-validated ({int(cv['folds'])} folds): {cv['within_10pct']:.0%} within +-10%, "
                 f"RMSPE {cv['rmspe']:.1%}")
    return text


def _require_hw(hw: object) -> None:
    # A name or a Hydra node would otherwise fail as an AttributeError deep inside the cost model.
    if not isinstance(hw, HardwareProfile):
        raise wrong_type("hw", hw, "pass a HardwareProfile, e.g. nas.load_hw_profile('edge_npu')")
    _require_loaded(hw)


def _require_loaded(hw: HardwareProfile) -> None:
    # A profile whose fitted numbers were never read in would be predicted by its datasheet roofline, without a word.
    if hw.fitted:
        raise ConfigError(f"hw={hw.name}: its fitted numbers ({hw.fitted}) are not read in; load the profile with "
                          f"nas.config.load_hw_profile({hw.name!r})")


def predict_latency(arch: ArchConfig, hw: HardwareProfile) -> LatencyReport:
    """Predicted batch-1 latency (ms) of `arch` on `hw`, with a per-layer breakdown.

    The layers' times plus one fixed per-inference overhead (driver call, input/output DMA) sum
    exactly to `total_ms`. A calibration fitted on per-unit times adds one `<unit>.overhead` layer
    (kind "unit") per block, downsampling, stem and head; a profile's `residual` model scales each
    unit's layers by that unit's factor.
    """
    _require_hw(hw)
    ops = enumerate_ops(arch)
    spill = False
    if hw.calibration:
        from nas.latency.fit import arch_features, spill_bytes, spills

        spill = bool(spills(arch_features(arch, hw), spill_bytes(hw)))
    units: dict[str, list[tuple[Op, float, str]]] = {}
    for op in ops:
        unit = unit_of(op.name)
        units.setdefault(unit, []).append((op, *layer_latency_us(op, hw, utype=unit_type(arch, unit), spills=spill)))
    # A calibration fitted on per-unit times: each unit's own overhead, once.
    overhead = {u: hw.calibration.get(f"{unit_type(arch, u)}/unit", {}).get("fixed", 0.0) if hw.calibration else 0.0
                for u in units}
    factor = dict.fromkeys(units, 1.0)
    residual = hw.residual if hw.calibration else []  # a correction of the calibration, not of the roofline
    if residual:
        cost = np.array([overhead[u] + sum(us for _, us, _ in items) for u, items in units.items()])
        per_unit = residual[0][1]
        # Python floats, as every other time here: numpy scalars would leak into reports (a numpy bool from comparing
        # two predictions is not JSON)
        factors = residual_factors(residual, np.array([unit_shape(arch, u) for u in units]), cost)
        factor = dict(zip(units, map(float, factors)))
    layers = [LayerLatency("invoke", "overhead", -1, _invoke_us(hw) / 1000.0, "overhead", 0)]
    for unit, items in units.items():
        f = factor[unit]
        if overhead[unit]:
            us = (overhead[unit] - per_unit) * f + per_unit if residual else overhead[unit]
            layers.append(LayerLatency(f"{unit}.overhead", "unit", items[0][0].stage, us / 1000.0, "calibrated", 0))
        layers += [LayerLatency(op.name, op.kind, op.stage, us * f / 1000.0, bound, op.macs) for op, us, bound in items]
    return LatencyReport(
        total_ms=sum(l.ms for l in layers),
        layers=tuple(layers),
        params=sum(op.params for op in ops),
        macs=sum(op.macs for op in ops),
    )


def predict_latency_batch(archs: Iterable[ArchConfig], hw: HardwareProfile) -> np.ndarray:
    """Predicted latency (ms) of many architectures at once (fast path for searches and fits).

    Equal to `predict_latency(a, hw).total_ms` for calibrated profiles (each distinct unit of the batch
    costed once from cached features, `corrected_unit_sums`); uncalibrated roofline profiles are
    evaluated arch by arch. `archs` may be any iterable (a generator too); the result has one entry per arch, in order.
    """
    _require_hw(hw)
    archs = list(archs)  # a generator was used up by the type check below, and gave an empty array without a word
    for i, arch in enumerate(archs):
        require_arch(arch, f"archs[{i}]")
    if not hw.calibration:
        return np.array([predict_latency(a, hw).total_ms for a in archs])
    # Fresh archs allocate many short-lived objects (op lists) that reference counting frees anyway; without
    # a pause the cyclic collector keeps re-scanning the feature caches meanwhile (~1/3 of the time here).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _calibrated_batch(archs, hw)
    finally:
        if was_enabled:
            gc.enable()


def _calibrated_batch(archs: Sequence[ArchConfig], hw: HardwareProfile) -> np.ndarray:
    from nas.latency.fit import coefficients, spill_bytes

    theta = coefficients(hw)
    return (theta[0] + corrected_unit_sums(archs, hw, theta, hw.residual, above_bytes=spill_bytes(hw))) / 1000.0


def corrected_unit_sums(archs: Sequence[ArchConfig], hw: HardwareProfile, theta: np.ndarray,
                        residual: Sequence[Sequence[float]], *, above_bytes: float = np.inf) -> np.ndarray:
    """Per arch, the sum of its units' costs (us, coefficients `theta`) corrected by `residual`; no invoke term.

    `hw` gives only what the features depend on (fused kinds, bytes per element). The weight-bytes term of `theta`
    counts only for archs with more weight bytes than `above_bytes`. Archs share units (the same stem and head, a
    block seen in stages of other depths or archs): each distinct unit is costed and corrected once per call, for
    each of the two cases that occurs (`nas.latency.fit.unit_table`), all at once in numpy.
    """
    from nas.latency.fit import WEIGHTS, unit_table

    t = unit_table(archs, hw)
    linear = t.features @ theta
    feature = t.feature_of[t.unit]
    if theta[WEIGHTS] and above_bytes < np.inf:
        weight_bytes = np.bincount(t.arch, weights=t.features[feature, WEIGHTS] * t.count, minlength=len(archs))
        spilled = (weight_bytes > above_bytes)[t.arch]
    else:
        spilled = np.zeros(len(t.arch), dtype=bool)
    # Distinct (unit, spills) pairs: a unit inside a spilling and inside a cached model costs differently.
    pairs, inverse = np.unique(t.unit * 2 + spilled, return_inverse=True)
    unit, spills = pairs >> 1, (pairs & 1).astype(bool)
    f = t.feature_of[unit]
    costs = linear[f] - ~spills * t.features[f, WEIGHTS] * theta[WEIGHTS]
    corrected = _corrected(residual, t.shapes[unit], costs)
    return np.bincount(t.arch, weights=corrected[inverse] * t.count, minlength=len(archs))
