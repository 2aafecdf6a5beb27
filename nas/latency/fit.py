"""Calibrate a hardware profile from measured latencies.

Model: each op of kind k costs `fixed_k + per_work_k * work + per_byte_k * bytes` microseconds
(work = MACs for matrix kinds, elementwise operations for vector kinds; bytes = activations in/out
plus weights), ops the chip folds cost nothing, and each inference pays `invoke_us`. That is linear
in the coefficients, so it is fitted by non-negative least squares on *relative* errors, with a
ridge pull toward the uncalibrated roofline profile (the prior), whose strength is chosen by
cross-validation. Few measurements therefore fall back gracefully on the datasheet numbers (scaled
by one global factor fitted first).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from nas.arch import ArchConfig, StageConfig
from nas.errors import DataError
from nas.latency.hardware import HardwareProfile
from nas.latency.ops import MATRIX_KINDS, OP_KINDS, Op, block_ops, downsample_ops, head_ops, stem_ops

KINDS: tuple[str, ...] = tuple(sorted(OP_KINDS))
TERMS: tuple[str, ...] = ("fixed", "per_work", "per_byte")
N_COEF = 1 + len(KINDS) * len(TERMS)  # invoke + per kind (fixed, per_work, per_byte)
_BASE = {kind: 1 + i * len(TERMS) for i, kind in enumerate(KINDS)}  # first coefficient of each kind


def _features(ops: Sequence[Op], fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    x = np.zeros(N_COEF)
    for op in ops:
        if op.foldable and op.kind in fused:
            continue  # the runtime folds it into its neighbour
        base = _BASE[op.kind]
        x[base] += 1.0
        x[base + 1] += op.work
        x[base + 2] += op.bytes_moved(bytes_per_element)
    return x


@lru_cache(maxsize=65536)
def _block_features(block: StageConfig, res: int, norm: str, act: str, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    return _features(block_ops(block, 0, 0, res, norm=norm, act=act), fused, bytes_per_element)


@lru_cache(maxsize=65536)
def _down_features(prev_width: int, width: int, res_in: int, res_out: int, norm: str, fused: frozenset[str],
                   bytes_per_element: int) -> np.ndarray:
    ops = downsample_ops(0, prev_width=prev_width, width=width, res_in=res_in, res_out=res_out, norm=norm)
    return _features(ops, fused, bytes_per_element)


@lru_cache(maxsize=65536)
def _stage_features(stage: StageConfig, prev_width: int | None, res_in: int, res_out: int, norm: str, act: str,
                    fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # A stage's blocks are identical, so features are cached per block (the key leaves depth out) and per
    # downsampling: fresh architectures mostly recombine blocks seen before. Batch predictions on fresh
    # archs went from 5,741/s to 14,278/s (experiments/results/latency/predictor_cpu.md).
    block = dataclasses.replace(stage, depth=1)
    x = _block_features(block, res_out, norm, act, fused, bytes_per_element) * stage.depth
    if prev_width is not None:
        x = x + _down_features(prev_width, stage.width, res_in, res_out, norm, fused, bytes_per_element)
    return x


@lru_cache(maxsize=65536)
def _arch_features(arch: ArchConfig, fused: frozenset[str], bytes_per_element: int) -> np.ndarray:
    # Searches re-use stage configurations constantly: features are summed from per-stage caches.
    x = _features(stem_ops(arch) + head_ops(arch), fused, bytes_per_element)
    x[0] = 1.0  # the per-inference overhead
    res = arch.stage_resolutions()
    for i, s in enumerate(arch.stages):
        prev = arch.stages[i - 1].width if i > 0 else None
        x += _stage_features(s, prev, res[i - 1] if i > 0 else res[0], res[i], arch.norm, arch.act, fused, bytes_per_element)
    return x


def arch_features(arch: ArchConfig, hw: HardwareProfile) -> np.ndarray:
    """Feature vector of `arch` for the linear latency model (cached; do not modify)."""
    return _arch_features(arch, frozenset(hw.fused_kinds), int(hw.bytes_per_element))


def coefficients(hw: HardwareProfile) -> np.ndarray:
    """The profile's coefficient vector: its calibration if it has one, else the roofline prior."""
    if hw.calibration:
        theta = np.zeros(N_COEF)
        theta[0] = hw.calibration.get("invoke", {}).get("fixed", hw.invoke_overhead_us)
        for i, kind in enumerate(KINDS):
            c = hw.calibration.get(kind, {})
            for j, term in enumerate(TERMS):
                theta[1 + i * len(TERMS) + j] = c.get(term, 0.0)
        return theta
    return prior_coefficients(hw)


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
    """A calibrated profile and how the ridge strength was chosen."""

    profile: HardwareProfile
    lam: float
    cv_rmspe: float
    n_measurements: int


def fit_profile(
    archs: Sequence[ArchConfig],
    latencies_ms: Sequence[float],
    prior: HardwareProfile,
    *,
    lambdas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    folds: int = 5,
    seed: int = 0,
) -> FitResult:
    """Fit per-op-kind costs to measured latencies; returns `prior` with a `calibration` block."""
    if len(archs) != len(latencies_ms) or len(archs) < 3:
        raise DataError(f"need >= 3 measurements with one latency each to fit; got {len(archs)} archs, {len(latencies_ms)} latencies")
    uncalibrated = copy.deepcopy(prior)
    uncalibrated.calibration = {}
    X = np.stack([arch_features(a, uncalibrated) for a in archs])
    y = np.asarray(latencies_ms, dtype=float) * 1000.0
    theta0, scale = prior_coefficients(uncalibrated), _scales(uncalibrated)
    # Datasheet numbers get the *shape* (relative op costs) right far more often than the absolute
    # level; one global factor fitted first keeps the ridge from pulling toward the wrong level.
    level = float(np.median(y / (X @ theta0)))
    theta0, scale = theta0 * level, scale * level
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(y)) % min(folds, len(y))
    best = (np.inf, lambdas[0])
    for lam in lambdas:
        errs = []
        for f in range(fold_of.max() + 1):
            train, test = fold_of != f, fold_of == f
            theta = _solve(X[train], y[train], theta0, scale, lam)
            errs.append(((X[test] @ theta - y[test]) / y[test]) ** 2)
        rmspe = float(np.sqrt(np.mean(np.concatenate(errs))))
        if rmspe < best[0]:
            best = (rmspe, lam)
    theta = _solve(X, y, theta0, scale, best[1])
    calibration: dict[str, dict[str, float]] = {"invoke": {"fixed": float(theta[0])}}
    for i, kind in enumerate(KINDS):
        calibration[kind] = {term: float(theta[1 + i * len(TERMS) + j]) for j, term in enumerate(TERMS)}
    profile = copy.deepcopy(prior)
    profile.calibration = calibration
    return FitResult(profile=profile, lam=best[1], cv_rmspe=best[0], n_measurements=len(y))


CALIBRATION_MARKER = "# --- calibration (generated by `python -m nas.latency.fit`; refit instead of editing) ---"


def _yaml_float(value: float) -> str:
    # Always a YAML float (never "0" or "1e-05", which typed configs or YAML 1.1 read as int / str).
    text = f"{value:.6e}" if value and (abs(value) < 1e-3 or abs(value) >= 1e6) else f"{value:.6f}"
    return text


def calibrated_yaml(source_text: str, profile: HardwareProfile, *, note: str) -> str:
    """`source_text` (a conf/hw/*.yaml) with its calibration block replaced by `profile.calibration`.

    Everything above the marker line (the datasheet numbers and their comments) is kept verbatim.
    """
    head = source_text.split(CALIBRATION_MARKER)[0].rstrip() + "\n\n"
    lines = [CALIBRATION_MARKER, f"# {note}", "# per op kind, in microseconds: fixed per op, per unit of work (MAC or element op), per byte moved",
             "calibration:"]
    for kind, terms in profile.calibration.items():
        body = ", ".join(f"{t}: {_yaml_float(v)}" for t, v in terms.items())
        lines.append(f"  {kind}: {{{body}}}")
    return head + "\n".join(lines) + "\n"


def fit_command(tool) -> str:
    """CLI body: `python -m nas.latency.fit hw=<chip> 'measurements=[a.csv]' [out=file.yaml]`."""
    from datetime import date
    from pathlib import Path

    from nas.latency.measure import read_measurements
    from nas.latency.profile import CONF_DIR

    if not tool.measurements:
        raise DataError("measurements=[file.csv,...] is required: the CSVs to fit on (see README 'Onboarding a chip')")
    rows = [m for path in tool.measurements for m in read_measurements(path)]
    result = fit_profile([m.arch for m in rows], [m.median_ms for m in rows], tool.hw)
    source = CONF_DIR / "hw" / f"{tool.hw.name}.yaml"
    out = Path(tool.out) if tool.out else source
    note = (f"fitted {date.today()} on {len(rows)} measurements ({', '.join(tool.measurements)}); "
            f"ridge lambda {result.lam:g}, cross-validated RMSPE {result.cv_rmspe:.1%}")
    out.write_text(calibrated_yaml(source.read_text() if source.is_file() else "", result.profile, note=note))
    return f"calibrated profile written to {out} ({note})"


if __name__ == "__main__":
    from nas.latency.profile import latency_cli

    latency_cli(fit_command)
