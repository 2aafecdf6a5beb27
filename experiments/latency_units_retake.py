"""Does a re-taken per-unit profile make hw=cpu_zen4b's predictor meet issue 3? Two units sessions compared (issue 3).

    python experiments/latency_units_retake.py      # no timing: reads the committed CSVs (~1 min on 2 cores)

The last note on issue 3 said what would close it on this machine: a per-unit profile (`--units`) that agrees with
the timing session for the fit archs (the committed one, `cpu_zen4b_{fit,val}_units.csv`, agreed for 78% of the 50
fit archs, 95% of the 100 validation archs). It was re-taken idle on the same machine, the same 150 archs, with
`python experiments/latency_predictor.py --units --tag zen4b` (2026-12-06, 233 s; the two files it wrote renamed to
`cpu_zen4b_{fit,val}_units_retake.csv`, the committed ones put back). For each units session (first, re-take, and the
per-unit mean of both) this reports, against the same timing sessions (`cpu_zen4b_{fit,val,val_repeat}.csv`):
1. session agreement: each profile's own timed call against the timing session's median, after one common scale
   (share of archs within +-10%; as `latency_zen4b_form.call_agreement`), for the fit and the validation archs;
2. the predictor fitted as shipped (`fit_profile(..., unit_times=, check_units=True)`) on the 50 fit archs with that
   session's unit times, checked on the 100 validation archs (within +-10%, RMSPE, Kendall tau), beside the
   totals-only fit;
3. the unit times of the re-take over the first session's, per unit present in both (median, p10, p90);
4. unit profiles checked against each other before use: each session's fit with the unit times of only the fit archs
   whose two profiled calls agree within +-5% / +-10% (after one common scale), the others' totals kept.
Writes experiments/results/latency/units_retake.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

from _common import command_line, one_line_on_failed_write, write_results  # (also puts the project on sys.path)

OUT = Path(__file__).resolve().parent / "results" / "latency"
NAME = "cpu_zen4b"
SESSIONS = {"first (committed)": "", "re-take": "_retake"}
SCREEN_TOL = 0.10
TARGET = 0.90  # issue 3: within +-10% for this share of the validation archs
SESSION_TOLS = (0.05, 0.10)  # the two sessions' profiled calls agreeing within these: item 4


def _units(which: str, suffix: str) -> dict:
    from nas.latency.measure import read_unit_times

    return read_unit_times(OUT / f"{NAME}_{which}_units{suffix}.csv")


def _mean_units(a: dict, b: dict) -> dict:
    """Per arch and unit, the mean of two sessions' times (units in both only)."""
    return {k: {u: (a[k][u] + b[k][u]) / 2 for u in a[k] if u in b[k]} for k in a if k in b}


def _agreement(rows, units: dict) -> float:
    """Share of archs whose profiled call is within +-10% of the timing session's median, after one common scale."""
    r = np.array([units[row.arch.arch_id]["call"] / (row.median_ms * 1e3) for row in rows])
    return float(np.mean(np.abs(r / np.median(r) - 1) <= SCREEN_TOL))


def _ratios(a: dict, b: dict) -> dict:
    r = np.array([b[k][u] / a[k][u] for k in a if k in b for u in a[k]
                  if u in b[k] and u not in ("call", "nodes") and a[k][u] > 0])
    p10, p50, p90 = np.percentile(r, [10, 50, 90])
    return {"n_units": int(r.size), "median": float(p50), "p10": float(p10), "p90": float(p90)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from latency_unit_models import prior_hw

    from nas.latency import predict_latency_batch
    from nas.latency.fit import fit_profile
    from nas.latency.measure import read_measurements
    from nas.latency.validate import accuracy_metrics

    hw = prior_hw()
    fit_rows, val_rows, repeat_rows = (read_measurements(OUT / f"{NAME}_{w}.csv") for w in ("fit", "val", "val_repeat"))
    fit_archs, fit_ms = [r.arch for r in fit_rows], [r.median_ms for r in fit_rows]
    val_archs, val_ms = [r.arch for r in val_rows], [r.median_ms for r in val_rows]
    by_session = {label: {w: _units(w, suffix) for w in ("fit", "val")} for label, suffix in SESSIONS.items()}
    first, retake = by_session.values()
    by_session["mean of both"] = {w: _mean_units(first[w], retake[w]) for w in ("fit", "val")}

    def checked(profile) -> dict:
        return accuracy_metrics(predict_latency_batch(val_archs, profile), val_ms)

    sessions = {}
    for label, units in by_session.items():
        result = fit_profile(fit_archs, fit_ms, hw, unit_times=[units["fit"].get(a.arch_id) for a in fit_archs],
                             check_units=True)
        sessions[label] = {"agreement_fit": _agreement(fit_rows, units["fit"]),
                           "agreement_val": _agreement(val_rows, units["val"]),
                           "unit_times_kept": result.n_units, "held_out": checked(result.profile)}
    # 4. the unit profiles of the fit archs whose two sessions agree: each session's fit with those alone
    calls = np.array([retake["fit"][a.arch_id]["call"] / first["fit"][a.arch_id]["call"] for a in fit_archs])
    calls /= np.median(calls)
    screened = {}
    for tol in SESSION_TOLS:
        agree = np.abs(calls - 1) <= tol
        for label in SESSIONS:
            units = by_session[label]["fit"]
            fitted = fit_profile(fit_archs, fit_ms, hw, check_units=True,
                                 unit_times=[units.get(a.arch_id) if ok else None for a, ok in zip(fit_archs, agree)])
            screened[f"{label}, {int(agree.sum())} archs agreeing within +-{tol:.0%}"] = {
                "unit_times_kept": fitted.n_units, "held_out": checked(fitted.profile)}
    repeat = np.array([b.median_ms / a.median_ms for a, b in zip(val_rows, repeat_rows)])  # as latency_predictor.py
    result = {
        "command": command_line("latency_units_retake.py", argv),
        "machine": f"{platform.processor() or platform.machine()}; {platform.platform()}",
        "sessions": sessions,
        "totals_only": checked(fit_profile(fit_archs, fit_ms, hw).profile),
        "repeat_timing_within_10pct": float(np.mean(np.abs(repeat - 1) <= 0.10)),
        "retake_over_first": {w: _ratios(first[w], retake[w]) for w in ("fit", "val")},
        "screened": screened,
    }
    write_results("units_retake", result, render_md=render_md, folder=OUT)
    return 0


def _pct(v: float) -> str:
    return f"{v:.0%}" if v in (0.0, 1.0) else f"{v:.1%}"


def render_md(r: dict) -> str:
    rows = [f"| {label} | {_pct(s['agreement_fit'])} | {_pct(s['agreement_val'])} | {s['unit_times_kept']} | "
            f"{_pct(s['held_out']['within_10pct'])} | {_pct(s['held_out']['rmspe'])} | {s['held_out']['kendall_tau']:.3f} |"
            for label, s in r["sessions"].items()]
    t = r["totals_only"]
    rows.append(f"| totals only (no unit times) | – | – | 0 | {_pct(t['within_10pct'])} | {_pct(t['rmspe'])} | "
                f"{t['kendall_tau']:.3f} |")
    ratio = "; ".join(f"{w} archs' profiles: median {q['median']:.3f}, p10 {q['p10']:.3f}, p90 {q['p90']:.3f} "
                      f"({q['n_units']} units)" for w, q in r["retake_over_first"].items())
    screened = [f"| {label} | {s['unit_times_kept']} | {_pct(s['held_out']['within_10pct'])} | "
                f"{_pct(s['held_out']['rmspe'])} | {s['held_out']['kendall_tau']:.3f} |" for label, s in r["screened"].items()]
    best = max(s["held_out"]["within_10pct"] for s in [*r["sessions"].values(), *r["screened"].values()])
    return "\n".join([
        "# hw=cpu_zen4b: a re-taken per-unit profile (issue 3)", "",
        f"Command: `{r['command']}` (no timing; reads the committed CSVs)  ",
        f"Machine of the analysis: {r['machine']}. The unit profiles and timing sessions were taken on the cpu_zen4b "
        "machine (AMD EPYC family 25 model 17, Zen 4, 2 cores, kernel 6.18.44-fc-v1300): the first units session "
        "and the timing sessions on 2026-12-06 before 20:07 UTC, the re-take on 2026-12-06 at 22:30 UTC, idle, with "
        "`python experiments/latency_predictor.py --units --tag zen4b` (its two files renamed to "
        "`cpu_zen4b_{fit,val}_units_retake.csv`).", "",
        "Each units session's profiled calls against the timing sessions (share of archs within +-10% after one common "
        "scale), and the predictor fitted as shipped on the 50 fit archs with that session's unit times, checked on "
        "the 100 validation archs:", "",
        "| units session | fit archs agree | validation archs agree | unit times kept | held out within +-10% | RMSPE | "
        "Kendall tau |",
        "|---|--:|--:|--:|--:|--:|--:|", *rows, "",
        f"The two timing sessions of the validation archs agreed within +-10% for {_pct(r['repeat_timing_within_10pct'])}. "
        f"Unit times of the re-take over the first session's, per unit in both: {ratio}.", "",
        "Unit profiles checked against each other before use: each session's fit with the unit times of only the fit "
        "archs whose two profiled calls agree (after one common scale), the others' totals kept (the shipped check "
        "then keeps or leaves out the unit times):", "",
        "| units session, fit archs whose unit times are used | unit times kept | held out within +-10% | RMSPE | "
        "Kendall tau |",
        "|---|--:|--:|--:|--:|", *screened, "",
        "Findings:",
        (f"- Re-taking the units does not close issue 3 on this machine: the best held-out share is {_pct(best)} "
         "(target 90%). A session agreeing better for the fit archs' calls did not fit a better predictor: the unit "
         "times moved between sessions far more than the timed totals did, and not by one scale." if best < TARGET else
         f"- A fit shown here meets issue 3's target on this machine: the best held-out share is {_pct(best)} "
         "(target 90%)."),
        "- What the per-unit profile adds depends on the session: a units session is a sample, not a property of "
        "the machine; using only the archs on which two sessions agree did not reach the target either. A fit that "
        "meets it here needs more measured archs than the issue allows (see zen4b_form.md: 100 instead of 50 gave "
        "81.8% held out).",
        ""])


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
