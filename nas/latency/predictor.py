"""Latency predictor v1: a per-layer roofline model of a chip. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.latency.hardware import HardwareProfile
from nas.latency.ops import MATRIX_KINDS, Op, enumerate_ops, unit_of, unit_type


@dataclass(frozen=True)
class LayerLatency:
    """Predicted time of one layer. `bound`: compute | memory | host | fused | overhead."""

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


def layer_latency_us(op: Op, hw: HardwareProfile, *, utype: str | None = None) -> tuple[float, str]:
    """Predicted microseconds of one op on `hw` and what bounds it.

    `utype`: the type of unit the op sits in (`nas.latency.ops.unit_type`), for calibrations fitted
    on per-unit times; without it only the per-kind terms count.
    """
    if hw.calibration:
        return _calibrated_us(op, hw, utype)
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


def _calibrated_us(op: Op, hw: HardwareProfile, utype: str | None) -> tuple[float, str]:
    if op.foldable and op.kind in hw.fused_kinds:
        return 0.0, "fused"
    us = 0.0
    for entry in (op.kind, f"{utype}/{op.kind}") if utype else (op.kind,):
        c = hw.calibration.get(entry, {})
        us += c.get("fixed", 0.0) + c.get("per_work", 0.0) * op.work + c.get("per_byte", 0.0) * op.bytes_moved(hw.bytes_per_element)
    return us, "calibrated"


def _invoke_us(hw: HardwareProfile) -> float:
    if hw.calibration:
        return hw.calibration.get("invoke", {}).get("fixed", 0.0)
    return hw.invoke_overhead_us


def predict_latency(arch: ArchConfig, hw: HardwareProfile) -> LatencyReport:
    """Predicted batch-1 latency (ms) of `arch` on `hw`, with a per-layer breakdown.

    The layers' times plus one fixed per-inference overhead (driver call, input/output DMA) sum
    exactly to `total_ms`. A calibration fitted on per-unit times adds one `<unit>.overhead` layer
    (kind "unit") per block, downsampling, stem and head.
    """
    ops = enumerate_ops(arch)
    layers = [LayerLatency("invoke", "overhead", -1, _invoke_us(hw) / 1000.0, "overhead", 0)]
    seen: set[str] = set()
    for op in ops:
        unit = unit_of(op.name)
        utype = unit_type(arch, unit)
        if unit not in seen:  # a calibration fitted on per-unit times: each unit's own overhead, once
            seen.add(unit)
            per_unit = hw.calibration.get(f"{utype}/unit", {}).get("fixed", 0.0) if hw.calibration else 0.0
            if per_unit:
                layers.append(LayerLatency(f"{unit}.overhead", "unit", op.stage, per_unit / 1000.0, "calibrated", 0))
        us, bound = layer_latency_us(op, hw, utype=utype)
        layers.append(LayerLatency(op.name, op.kind, op.stage, us / 1000.0, bound, op.macs))
    return LatencyReport(
        total_ms=sum(l.ms for l in layers),
        layers=tuple(layers),
        params=sum(op.params for op in ops),
        macs=sum(op.macs for op in ops),
    )


def predict_latency_batch(archs: Sequence[ArchConfig], hw: HardwareProfile) -> np.ndarray:
    """Predicted latency (ms) of many architectures at once (fast path for searches and fits).

    Equal to `predict_latency(a, hw).total_ms` for calibrated profiles (one dot product per arch on
    cached features); uncalibrated roofline profiles are evaluated arch by arch.
    """
    if not hw.calibration:
        return np.array([predict_latency(a, hw).total_ms for a in archs])
    from nas.latency.fit import arch_features, coefficients

    theta = coefficients(hw)
    return np.array([arch_features(a, hw) @ theta for a in archs]) / 1000.0
