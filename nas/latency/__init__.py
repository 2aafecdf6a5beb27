"""Latency of an `ArchConfig` on a target chip: op enumeration, hardware profile, predictor."""

from nas.latency.hardware import HardwareProfile
from nas.latency.ops import Op, count_macs, count_params, enumerate_ops
from nas.latency.predictor import LatencyReport, LayerLatency, describe_predictor, predict_latency, predict_latency_batch

__all__ = [
    "HardwareProfile",
    "LatencyReport",
    "LayerLatency",
    "Op",
    "count_macs",
    "count_params",
    "describe_predictor",
    "enumerate_ops",
    "predict_latency",
    "predict_latency_batch",
]
