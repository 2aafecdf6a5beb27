"""Validate a latency predictor on held-out measurements: `python -m nas.latency.validate hw=cpu measurements=[...]`.

Reports the share of architectures predicted within +-5% / +-10%, RMSPE, Kendall tau and Spearman rho,
for the profile's predictor and for two naive baselines (latency proportional to MACs / to params,
each with the one scale factor that fits the validation data best, which flatters the baselines).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.checkpoint import atomic_write_bytes, atomic_write_text
from nas.latency.hardware import HardwareProfile, arch_extent_warning, few_archs_warning, input_warning
from nas.latency.ops import count_macs, count_params
from nas.latency.predictor import predict_latency_batch

if TYPE_CHECKING:
    from nas.latency.profile import LatencyToolConfig  # profile imports this module


def accuracy_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """within_5pct, within_10pct (shares), rmspe, kendall_tau, spearman_rho, n."""
    from scipy import stats  # here, not at the top: the command line names a bad setting without loading SciPy

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = np.abs(p - m) / m
    return {
        "n": int(len(m)),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "rmspe": float(np.sqrt(np.mean(((p - m) / m) ** 2))),
        "kendall_tau": float(stats.kendalltau(p, m).statistic),
        "spearman_rho": float(stats.spearmanr(p, m).statistic),
    }


def proportional_baseline(feature: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """Predictions `k * feature` with the k minimising the relative squared error on `measured`."""
    f, m = np.asarray(feature, float), np.asarray(measured, float)
    r = f / m
    return (r.sum() / (r**2).sum()) * f


def compare_predictors(archs: Sequence[ArchConfig], measured_ms: Sequence[float], hw: HardwareProfile,
                       *, extra: dict[str, HardwareProfile] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of `hw`'s predictor, of any `extra` profiles, and of the MACs / params baselines."""
    out = {f"predictor ({hw.name})": accuracy_metrics(predict_latency_batch(archs, hw), measured_ms)}
    for name, profile in (extra or {}).items():
        out[name] = accuracy_metrics(predict_latency_batch(archs, profile), measured_ms)
    out["MACs-proportional"] = accuracy_metrics(proportional_baseline([count_macs(a) for a in archs], measured_ms), measured_ms)
    out["params-proportional"] = accuracy_metrics(proportional_baseline([count_params(a) for a in archs], measured_ms), measured_ms)
    return out


def plot_predicted_vs_measured(path: Path, measured: Sequence[float], series: dict[str, Sequence[float]], *, title: str) -> None:
    """Log-log scatter of predicted vs measured latency with the +-10% band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.6), dpi=110)
    ax = fig.add_subplot()
    m = np.asarray(measured, float)
    lo, hi = m.min() * 0.7, m.max() * 1.4
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", lw=1, label="predicted = measured")
    ax.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, label="+-10%")
    for (name, pred), marker in zip(series.items(), "os^v"):
        ax.scatter(m, pred, s=14, marker=marker, alpha=0.75, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buf.getvalue())


def metrics_markdown(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of `compare_predictors` output."""
    lines = ["| predictor | n | within +-5% | within +-10% | RMSPE | Kendall tau | Spearman rho |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['n']} | {r['within_5pct']:.1%} | {r['within_10pct']:.1%} | {r['rmspe']:.1%} | "
                     f"{r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} |")
    return "\n".join(lines)


MIN_VALIDATION = 3
"""Fewer measurements than this: Kendall tau is undefined (nan) and the baselines' fitted scale matches them exactly."""


def validate_command(tool: LatencyToolConfig) -> str:
    """CLI body: `python -m nas.latency.validate hw=<chip> 'measurements=[val.csv]' [out=folder]`."""
    from nas.errors import DataError, make_folder
    from nas.latency.measure import cpu_difference, measured_on, noise_warning, read_measurements_for
    from nas.latency.profile import clear_killed_writes

    if not tool.measurements:
        raise DataError("measurements=[file.csv,...] is required: held-out measurements not used for fitting")
    rows, warnings = read_measurements_for(tool.hw, tool.measurements, template=tool.template)
    if len(rows) < MIN_VALIDATION:
        raise DataError(f"measurements={list(tool.measurements)}: need >= {MIN_VALIDATION} measurements to validate, got "
                        f"{len(rows)} (with fewer, Kendall tau is undefined and the baselines fit them exactly)")
    machine = measured_on(rows, what=f"measurements={list(tool.measurements)}")
    # Made once the measurements are read: a missing or malformed CSV left an empty out= folder behind.
    out = make_folder(tool.out or f"latency/validate_{tool.hw.name}", setting=f"out={tool.out!r}")
    clear_killed_writes(out)
    archs, measured = [r.arch for r in rows], [r.median_ms for r in rows]
    results = compare_predictors(archs, measured, tool.hw)
    plot_predicted_vs_measured(out / "validation.png", measured, {tool.hw.name: predict_latency_batch(archs, tool.hw)},
                               title=f"{tool.hw.name}: predicted vs measured")
    scored = scored_what(tool, n=len(rows), machine=machine)
    ratio = measured_over_predicted(archs, measured_ms=measured, hw=tool.hw)
    atomic_write_text(out / "validation.json", json.dumps({**scored, "scores": results, "measured_over_predicted": ratio},
                                                          indent=2) + "\n")
    # Noisy held-out timings cap what any predictor can score: say so next to the scores.
    warnings += [w for w in (noise_warning(rows),) if w]
    # The model name, and the family/model numbers and vector instructions where both sides record them.
    if machine and tool.hw.calibrated_on and cpu_difference(machine, tool.hw.calibrated_on):
        warnings.append(f"hw={tool.hw.name} was calibrated on {tool.hw.calibrated_on!r} and these measurements come "
                        f"from {machine!r}: the scores above compare two machines")
    # A profile fitted on a handful of archs: the line a search with it gives (these scores show how far off it is).
    warnings += [w for w in (few_archs_warning(tool.hw),) if w]
    # Scores on archs the profile was fitted on flatter it: say so, as for noise.
    warnings += [w for w in (fitted_on_warning(archs, tool.hw),) if w]
    # Archs at an input the calibration never measured are predicted by extrapolation: the line a search at it gives.
    warnings += unmeasured_input_warnings(archs, tool.hw)
    # and so are archs beyond those it was fitted on (more stages, wider, an op kind never timed): as a search's space
    warnings += [w for w in (arch_extent_warning(tool.hw, archs),) if w]
    warnings += [w for w in (time_unit_warning(archs, measured, tool.hw),) if w]
    text = (scored_line(scored) + "\n\n" + metrics_markdown(results) + "\n\n" + ratio_line(ratio, hw=tool.hw.name, n=len(rows))
            + "".join(f"\n\nwarning: {w}" for w in warnings))
    atomic_write_text(out / "validation.md", text + "\n")
    return text + f"\n(written to {out})"


def measured_over_predicted(archs: Sequence[ArchConfig], *, measured_ms: Sequence[float], hw: HardwareProfile) -> float:
    """The median over `archs` of measured / predicted latency: 1.0 where `hw` predicts the measuring machine's speed."""
    return float(np.median(np.asarray(measured_ms, float) / predict_latency_batch(archs, hw)))


def ratio_line(ratio: float, *, hw: str, n: int) -> str:
    """validation.md's line under the scores: how far `hw`'s predictions are off the measurements as a whole.

    One common factor (a profile calibrated on another machine of the same model name, a busy session) shows here,
    where the +-10% share alone would not tell it from a predictor that misses model by model."""
    return (f"Measured / predicted, median over the {n}: {ratio:.2f}x (1.00x: hw={hw} predicts this machine's speed; "
            "far from it, its predictions are off by one common factor)")


def scored_what(tool: LatencyToolConfig, *, n: int, machine: str) -> dict:
    """What a validation scored, for its files (read later, beside other runs' and the profile refitted since): the
    measurement CSVs (absolute paths) and how many rows they gave (`n`), the profile (its name, the file `hw=` reads,
    null for one built in Python, and the CPU its calibration was fitted on, "" for none), the machine the
    measurements name (`measured_on`; "" where the CSV's `machine` column is empty), the date (UTC), and the template
    whose arch_json filled the rows without one (`template=`: its measurements.csv, absolute; null when not given)."""
    from datetime import datetime, timezone

    from nas.config import group_file
    from nas.latency.measure import template_file

    file = group_file("hw", tool.hw.name)
    template = str(template_file(tool.template).absolute()) if tool.template is not None else None
    return {"measurements": [str(Path(m).absolute()) for m in tool.measurements], "n": n, "template": template,
            "profile": {"name": tool.hw.name, "file": str(file) if file else None, "calibrated": bool(tool.hw.calibration),
                        "calibrated_on": tool.hw.calibrated_on},
            "measured_on": machine, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def scored_line(scored: dict) -> str:
    """`scored_what` as validation.md's first line."""
    profile = scored["profile"]
    calibration = (f"calibrated on {profile['calibrated_on']}" if profile["calibrated_on"] else
                   "calibrated" if profile["calibrated"] else "uncalibrated: its datasheet numbers")
    where = f"{profile['file']}, " if profile["file"] else ""
    return (f"Validation of hw={profile['name']} ({where}{calibration}) on {scored['n']} measurements from "
            f"{', '.join(scored['measurements'])}"
            + (f" (arch_json by arch_id from the template {scored['template']})" if scored["template"] else "")
            + f", measured on {scored['measured_on'] or 'a machine the CSV does not name'}; validated {scored['date']}.")


UNIT_SLIP = 30.0
"""How far (a factor, either way) the median measured time may lie from the datasheet roofline's prediction before the
times are warned about as perhaps in another unit: the committed `cpu_fit.csv` and `cpu_xeon_fit.csv` ran at 0.3x and
0.7x hw=cpu's roofline in the median, while a slip of seconds or microseconds for milliseconds is 1000x."""


def time_unit_warning(archs: Sequence[ArchConfig], measured_ms: Sequence[float], hw: HardwareProfile) -> str | None:
    """One line when the measured times lie more than `UNIT_SLIP` times below or above what `hw`'s datasheet numbers
    (its roofline, without calibration) predict for `archs` (the median ratio), else None.

    A fit takes any positive numbers, so times written in seconds (or microseconds) into the millisecond columns
    would be fitted as they are: every cost 1000x off, and a search would then meet any latency budget (or none)."""
    measured = np.asarray(measured_ms, dtype=float)
    predicted = predict_latency_batch(archs, hw.without_calibration())
    ratio = float(np.median(measured / predicted))
    if 1.0 / UNIT_SLIP <= ratio <= UNIT_SLIP:
        return None
    far, unit = (f"1/{1.0 / ratio:.0f}", "seconds") if ratio < 1.0 else (f"{ratio:.0f}x", "microseconds")
    # The times as written beside the datasheet's: the slip shows in the user's own numbers
    values = f"median_ms {np.median(measured):.3g}, predicted {np.median(predicted):.3g} ms"
    return (f"median_ms is {far} of what hw={hw.name}'s datasheet numbers predict (median over {len(archs)} archs: {values}): are the "
            f"times in {unit}? median_ms, p10_ms and p90_ms are milliseconds (0.42 for 0.42 ms); if they are, check the "
            f"datasheet numbers in hw={hw.name}'s file")


def unmeasured_input_warnings(archs: Sequence[ArchConfig], hw: HardwareProfile) -> list[str]:
    """`input_warning`'s line for each input of `archs` (in_chans x img_size, each once, sorted) outside the inputs
    `hw` was calibrated on (`HardwareProfile.measured_inputs`); [] when all lie within them, or `hw` records none."""
    inputs = sorted({(a.in_chans, a.img_size) for a in archs})
    return [w for chans, size in inputs if (w := input_warning(hw, in_chans=chans, img_size=size)) is not None]


def fitted_on_warning(archs: Sequence[ArchConfig], hw: HardwareProfile) -> str | None:
    """One line when some of `archs` are among those `hw` was fitted on (`HardwareProfile.fitted_archs`), else None.

    Profiles fitted before that record was written say nothing, so neither does this."""
    ids = {a.arch_id for a in archs}
    used = len(ids & set(hw.fitted_archs))
    if not used:
        return None
    return (f"{used} of {len(ids)} archs were used for fitting hw={hw.name}: these scores are not held-out; validate on "
            "archs measured apart from the fit (another seed=)")


HELP_LINE = ("python -m nas.latency.validate measurements=[a.csv,...]: score the latency predictor of hw= on held-out "
             "measurements (share within +-5%/+-10%, RMSPE, Kendall tau, Spearman rho) beside MACs and params "
             "baselines, writing validation.md and validation.json (out= names the folder).")
"""The first line of `python -m nas.latency.validate --help`."""

if __name__ == "__main__":
    from nas.latency.profile import latency_cli

    latency_cli(validate_command, help_line=HELP_LINE, needs_hw="validate")
