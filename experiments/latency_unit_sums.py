"""Why the latency predictor misses +-10% for some archs: what the measured unit times themselves allow (issue 3).

    python experiments/latency_unit_sums.py    # ~20 s, no timing: reads the committed CSVs

For each committed session of the pool (`cpu`, `cpu_zen2`, `cpu_xeon`: `<name>_fit.csv` with its per-unit profile
`<name>_fit_units.csv`, and `<name>_val.csv` / `<name>_val_units.csv` where they exist), per family (metaformer_t;
metaformer_s with a stride-2 stem; metaformer_s with a stride-4 stem):
1. oracle unit sums: each arch's *measured* unit times summed, through the fit's totals step (total = scale x unit sum
   + per-call + per-unit overhead, fitted on the fit archs' totals as `nas.latency.fit` does), against the measured
   totals; on the fit archs (in-sample) and on the validation archs (held out). No predictor of unit times can beat
   this by more than its totals step can, so it bounds what the predictor's form reaches with perfect unit costs.
   Also the same with the overheads fitted on each family's own fit archs (in-sample): how far a per-family total
   step would go.
2. the gap between the profiled call and its units (`call` minus the sum of the units, us: the runtime's work between
   nodes, which no unit owns): median and 10th-90th percentile per family, and its correlation with the model's
   weight size (MB, fp32) and with its unit count, over all archs with a unit profile (fit and validation).
3. the fitted unit model's held-out bias: 5-fold cross-validation on the fit archs with `fit_profile(...,
   unit_times=...)` as shipped (weight spill, residual trees); for each held-out arch the predicted unit sum (the
   prediction less its per-call overhead) against its measured unit sum. Median per family, and that median relative
   to the median over all archs: a bias one global scale cannot remove. Also the held-out totals within +-10%.
Writes experiments/results/latency/unit_sums.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _common import command_line, one_line_on_failed_write, write_results  # (also puts the project on sys.path)

OUT = Path(__file__).resolve().parent / "results" / "latency"
SESSIONS = ("cpu", "cpu_zen2", "cpu_xeon")
FAMILIES = ("metaformer_t", "metaformer_s stride 2", "metaformer_s stride 4")
FOLDS = 5


def family(arch) -> str:
    """The arch's family: its space (by input), and for metaformer_s its stem's stride."""
    from latency_predictor import SPACES

    if arch.img_size == SPACES["metaformer_t"]["img_size"]:
        return "metaformer_t"
    return f"metaformer_s stride {arch.stem_stride}"


def _load(name: str, which: str, hw) -> dict | None:
    """One set's archs, totals (us), measured unit sums, profiled calls (us), unit counts and weight MB; None if the
    set or its unit profile is not committed."""
    from nas.latency import fit
    from nas.latency.measure import read_measurements, read_unit_times

    paths = OUT / f"{name}_{which}.csv", OUT / f"{name}_{which}_units.csv"
    if not all(p.is_file() for p in paths):
        return None
    rows, units = read_measurements(paths[0]), read_unit_times(paths[1])
    rows = [r for r in rows if r.arch.arch_id in units]
    archs = [r.arch for r in rows]
    X = np.stack([fit.arch_features(a, hw) for a in archs])
    times = [units[a.arch_id] for a in archs]
    return {
        "archs": archs, "unit_times": times, "family": np.array([family(a) for a in archs]),
        "y_us": np.array([r.median_ms for r in rows]) * 1e3,
        "unit_sum": np.array([sum(v for u, v in t.items() if u not in ("call", "nodes")) for t in times]),
        "call": np.array([t.get("call", np.nan) for t in times]),
        "n_units": X[:, [fit._TYPE_BASE[u] for u in fit.UNIT_TYPES]].sum(axis=1),
        "weight_mb": X[:, fit.WEIGHTS] / 1e6,
    }


def _per_family(fam: np.ndarray, pred: np.ndarray, meas: np.ndarray) -> dict[str, dict]:
    from nas.latency.validate import accuracy_metrics

    out = {"all": {**accuracy_metrics(pred, meas), "n": len(meas)}}
    for f in FAMILIES:
        m = fam == f
        if m.sum() >= 2:
            out[f] = {**accuracy_metrics(pred[m], meas[m]), "n": int(m.sum())}
    return out


def _overheads(total) -> dict[str, float]:
    """The coefficients of `latency_unit_models._totals_fit`'s total step."""
    invoke = float(total(0.0, 0.0))
    return {"scale": float(total(1.0, 0.0)) - invoke, "invoke_us": invoke, "per_unit_us": float(total(0.0, 1.0)) - invoke}


def oracle(fit_set: dict, val_set: dict | None) -> dict:
    """Item 1: measured unit sums through the totals step, in-sample, held out, and with per-family overheads."""
    from latency_unit_models import _totals_fit

    total = _totals_fit(fit_set["unit_sum"], fit_set["n_units"], fit_set["y_us"])
    out = {"overheads": _overheads(total),
           "fit": _per_family(fit_set["family"], total(fit_set["unit_sum"], fit_set["n_units"]), fit_set["y_us"])}
    if val_set is not None:
        out["val"] = _per_family(val_set["family"], total(val_set["unit_sum"], val_set["n_units"]), val_set["y_us"])
    own = np.zeros(len(fit_set["y_us"]))
    for f in FAMILIES:
        m = fit_set["family"] == f
        if m.sum() >= 3:
            own[m] = _totals_fit(fit_set["unit_sum"][m], fit_set["n_units"][m], fit_set["y_us"][m])(
                fit_set["unit_sum"][m], fit_set["n_units"][m])
    out["fit_own_overheads"] = _per_family(fit_set["family"], own, fit_set["y_us"])
    return out


def gap(sets: list[dict]) -> dict[str, dict]:
    """Item 2: call minus the sum of its units, per family, over `sets` together."""
    fam = np.concatenate([s["family"] for s in sets])
    g = np.concatenate([s["call"] - s["unit_sum"] for s in sets])
    call = np.concatenate([s["call"] for s in sets])
    wmb = np.concatenate([s["weight_mb"] for s in sets])
    nu = np.concatenate([s["n_units"] for s in sets])
    out = {}
    for f in ("all", *FAMILIES):
        m = (fam == f if f != "all" else np.ones(len(fam), bool)) & np.isfinite(g)
        if m.sum() < 3:
            continue
        out[f] = {"n": int(m.sum()), "median_us": float(np.median(g[m])),
                  "p10_us": float(np.percentile(g[m], 10)), "p90_us": float(np.percentile(g[m], 90)),
                  "median_pct_of_call": float(np.median(g[m] / call[m])),
                  "corr_weight_mb": float(np.corrcoef(wmb[m], g[m])[0, 1]),
                  "slope_us_per_mb": float(np.polyfit(wmb[m], g[m], 1)[0]),
                  "corr_n_units": float(np.corrcoef(nu[m], g[m])[0, 1]),
                  "weight_mb_range": [float(wmb[m].min()), float(wmb[m].max())]}
    return out


def held_out_bias(fit_set: dict, hw) -> dict:
    """Item 3: `FOLDS`-fold CV of the shipped fit on the fit archs; predicted vs measured unit sums per family."""
    from nas.latency.fit import fit_profile
    from nas.latency.predictor import predict_latency

    archs, y = fit_set["archs"], fit_set["y_us"]
    pred_units, pred_total = np.zeros(len(archs)), np.zeros(len(archs))
    order = np.random.default_rng(0).permutation(len(archs))  # the folds `fit_profile`'s own CV draws (seed 0)
    for part in np.array_split(order, FOLDS):
        rest = np.setdiff1d(order, part)
        profile = fit_profile([archs[i] for i in rest], y[rest] / 1e3, hw,
                              unit_times=[fit_set["unit_times"][i] for i in rest]).profile
        for i in part:
            report = predict_latency(archs[i], profile)
            pred_total[i] = report.total_ms * 1e3
            pred_units[i] = pred_total[i] - sum(l.ms for l in report.layers if l.name == "invoke") * 1e3
    ratio = pred_units / fit_set["unit_sum"]
    overall = float(np.median(ratio))
    out = {"all": {"n": len(ratio), "median_unit_sum_err": overall - 1.0}}
    for f in FAMILIES:
        m = fit_set["family"] == f
        if m.any():
            med = float(np.median(ratio[m]))
            out[f] = {"n": int(m.sum()), "median_unit_sum_err": med - 1.0, "relative_to_all": med / overall - 1.0}
    totals = _per_family(fit_set["family"], pred_total, y)
    for f, m in totals.items():
        out.setdefault(f, {})["total_within_10pct"] = m["within_10pct"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from nas.config import load_hw_profile
    from nas.latency.measure import machine_info

    started = time.perf_counter()
    sessions = {}
    for name in SESSIONS:
        hw = load_hw_profile(name).without_calibration()
        fit_set, val_set = _load(name, "fit", hw), _load(name, "val", hw)
        if fit_set is None:
            continue
        sessions[name] = {
            "n_fit": len(fit_set["archs"]), "n_val_with_units": 0 if val_set is None else len(val_set["archs"]),
            "oracle": oracle(fit_set, val_set), "gap": gap([s for s in (fit_set, val_set) if s is not None]),
            "held_out_bias": held_out_bias(fit_set, hw)}
        print(f"{name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    result = {"command": command_line("latency_unit_sums.py", argv), "machine": machine_info(),
              "date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - started, "sessions": sessions}
    write_results("unit_sums", result, render_md=render_md, folder=OUT)
    return 0


def _pct(v: float | None, signed: bool = False) -> str:
    return "-" if v is None else (f"{v:+.1%}" if signed else f"{v:.0%}")


def render_md(r: dict) -> str:
    """The Markdown report of a result of `main`."""
    lines = [
        "# Measured unit sums vs totals, and the unit model's bias per family (issue 3)", "",
        f"Command: `{r['command']}` (reads the committed CSVs; no timing)  ",
        f"Machine: {r['machine']}; {r['date']}; {r['seconds']:.0f} s", "",
        "Per session (`<name>_fit.csv` + `<name>_fit_units.csv`, and the validation set's where it has a unit profile) "
        "and family. See the module docstring for each table.", "",
        *summary(r), "",
    ]
    cols = ("all", *FAMILIES)
    lines += ["## 1. Oracle unit sums: measured units + fitted overheads vs measured totals", "",
              "Within +-10% / within +-5% / RMSPE (n). `fit`: overheads fitted on these archs; `val`: the validation "
              "archs' own unit sums through the fit archs' overheads; `fit, own overheads`: each family fitted alone.", "",
              "| session | set | overheads (scale, per call, per unit) | " + " | ".join(cols) + " |",
              "|---|---|---|" + "--:|" * len(cols)]
    for name, s in r["sessions"].items():
        o = s["oracle"]
        oh = o["overheads"]
        for key, label in (("fit", "fit"), ("val", "val"), ("fit_own_overheads", "fit, own overheads")):
            if key not in o:
                continue
            cells = [f"{_pct(o[key][c]['within_10pct'])} / {_pct(o[key][c]['within_5pct'])} / {o[key][c]['rmspe']:.1%} "
                     f"({o[key][c]['n']})" if c in o[key] else "-" for c in cols]
            ohs = (f"{oh['scale']:.3f}, {oh['invoke_us']:.0f} us, {oh['per_unit_us']:.1f} us"
                   if key != "fit_own_overheads" else "per family")
            lines.append(f"| {name} | {label} | {ohs} | " + " | ".join(cells) + " |")
    lines += ["", "## 2. The call's time outside its units (call minus unit sum)", "",
              "Over all archs with a unit profile. Median [10th-90th percentile] us, median share of the call; Pearson "
              "correlation with the weight MB (and its slope) and with the unit count.", "",
              "| session | family | n | gap, us | share of call | weight MB | corr with weight MB | us per MB | corr with units |",
              "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, s in r["sessions"].items():
        for f, g in s["gap"].items():
            lines.append(f"| {name} | {f} | {g['n']} | {g['median_us']:.0f} [{g['p10_us']:.0f}-{g['p90_us']:.0f}] | "
                         f"{g['median_pct_of_call']:.0%} | {g['weight_mb_range'][0]:.2f}-{g['weight_mb_range'][1]:.2f} | "
                         f"{g['corr_weight_mb']:+.2f} | {g['slope_us_per_mb']:.0f} | {g['corr_n_units']:+.2f} |")
    lines += ["", f"## 3. The fitted unit model's held-out bias ({FOLDS}-fold CV on the fit archs)", "",
              "Median of predicted / measured unit sum - 1; in brackets that median relative to the median over all "
              "archs (what one global scale leaves); then the held-out totals within +-10%.", "",
              "| session | " + " | ".join(cols) + " |", "|---|" + "--:|" * len(cols)]
    for name, s in r["sessions"].items():
        b = s["held_out_bias"]
        cells = [(f"{_pct(b[c]['median_unit_sum_err'], True)}"
                  + (f" [{_pct(b[c]['relative_to_all'], True)}]" if "relative_to_all" in b[c] else "")
                  + f"; totals {_pct(b[c].get('total_within_10pct'))} ({b[c]['n']})") if c in b else "-" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(r: dict) -> list[str]:
    """The paragraph on what the tables mean for issue 3's target (>= 90% of held-out archs within +-10%)."""
    s = r["sessions"]
    s4 = FAMILIES[2]

    def each(get) -> str:
        return ", ".join(f"{name} {get(v)}" for name, v in s.items())

    val = {name: v["oracle"]["val"] for name, v in s.items() if "val" in v["oracle"]}
    above = [name for name, v in val.items() if v["all"]["within_10pct"] >= 0.9]
    below = [name for name in val if name not in above]
    text = ("**What this means for the +-10% target.** Row `val` of table 1 gives each validation arch its own *measured* "
            "unit times, i.e. a perfect model of every unit, and keeps only the fit's totals step (one scale, a per-call "
            "and a per-unit overhead): within +-10% for " + ", ".join(
                f"{name} {_pct(v['all']['within_10pct'])} (stride-4 metaformer_s {_pct(v[s4]['within_10pct']) if s4 in v else '-'})"
                for name, v in val.items()) + ". ")
    if above:
        text += (f"On {', '.join(above)} that clears 90% overall, with little margin "
                 "and not for the stride-4 models: better unit costs would reach the target there, and the fitted unit model's per-family bias (table 3, in "
                 "brackets: the family's median relative to all archs', which one global scale cannot remove) is what to "
                 "fix: stride-4 metaformer_s " + each(
                     lambda v: _pct(v["held_out_bias"][s4]["relative_to_all"], True) if s4 in v["held_out_bias"] else "-")
                 + ", metaformer_t " + each(
                     lambda v: _pct(v["held_out_bias"]["metaformer_t"]["relative_to_all"], True)
                     if "metaformer_t" in v["held_out_bias"] else "-") + ". ")
    if below:
        text += (f"On {', '.join(below)} even perfect unit costs stay under 90%: the totals step, or the unit profile "
                 "itself, limits. ")
    text += ("For the stride-4 models, what the totals step leaves out is the profiled call's time outside its units "
             "(table 2): its median share of the call " + each(
                 lambda v: _pct(v["gap"][s4]["median_pct_of_call"]) if s4 in v["gap"] else "-")
             + ", varying from arch to arch (10th-90th percentile " + each(
                 lambda v: f"{v['gap'][s4]['p10_us']:.0f} to {v['gap'][s4]['p90_us']:.0f} us" if s4 in v["gap"] else "-")
             + "), with a correlation with the weight MB of " + each(
                 lambda v: f"{v['gap'][s4]['corr_weight_mb']:+.2f}" if s4 in v["gap"] else "-") + ". "
             "A negative gap (units summing to more than their call) says the unit profile and the call ran at different "
             "speeds: on such a session the profile itself bounds the oracle.")
    return [text]


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
