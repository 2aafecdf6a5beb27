"""What the latency predictor's form misses on hw=cpu_zen4b, and three form changes tried on every instance (issue 3).

    python experiments/latency_zen4b_form.py      # no timing: reads the committed CSVs (~10 min on 2 cores)

On the cpu_zen4b session (predictor_cpu_zen4b.md) the predictor put 70% of the 100 validation archs within +-10%,
72% in-sample on all 150 (fitted on the totals only), while its two timing sessions agreed for 97% of the archs. For
each committed session with per-unit profiles of both sets (`cpu`, `cpu_zen2`, `cpu_xeon`, `cpu_zen4b`: `<name>_{fit,val}.csv` and
`<name>_{fit,val}_units.csv`) this reports, per family (metaformer_t; metaformer_s with a stride-2 / stride-4 stem):
1. session agreement: each unit profile's own timed call (`call`) against the timing session's median, after one
   common scale; the share of archs within +-10%, per units file (fit archs, validation archs); 1b. units of the
   same shape (same kind, input and `unit_shape`) profiled in both files: median ratio of their times, fit archs'
   profile / validation archs' profile, per kind of unit and input;
2. oracle: each validation arch's *measured* unit sum through the totals step (total = scale x unit sum + per-call
   + per-unit overhead, fitted as `nas.latency.fit` does) on half the validation archs (25 + 25, seeded), checked on
   the other half, mean over SPLITS splits: what perfect unit costs would reach with the predictor's totals step,
   every number from one units session;
3. unit costs: the shipped fit (on the fit archs) against the validation archs' measured unit times, per family and
   unit type: median of predicted / measured (the per-unit overhead of the totals step taken off the prediction), as
   a ratio to the median over all units (one scale is free), and the share of units within +-10% of that; and each
   family's share of the measured time;
4. forms, each the shipped pipeline (`nas.latency.fit._fit_with_units`, re-built here; row `shipped` is checked
   against `fit_profile`) with one change:
   - `time-weighted`: each unit time weighs in the unit fit (linear step, its cross-validation and the residual
     trees) by its share of its arch's unit sum (normalised to mean 1), instead of equally: a head of 3 us counted
     as much as a block of 900 us, though only the total matters;
   - `screened`: the unit profiles of archs whose profiled call disagrees with the timing session by more than 10%
     (after one common scale, item 1) are left out of the unit fit (their totals stay): such a profile ran that
     model at another relative speed;
   - `per-input scale`: the totals step fits one scale per input (channels x size: here metaformer_t's 1x28x28 and
     metaformer_s's 3x64x64) instead of one, the per-call and per-unit overheads shared: a unit profile that ran
     the small models at another speed, relative to the big ones, than the timing session did (item 1b) leaves a
     bias per input in the unit costs that one scale cannot take out;
   - `screened + per-input scale`: both.
   Also in-sample on each session's 150 archs (the form's ceiling): as shipped, screened, and with the fit archs'
   unit profile left out (their totals kept). Held-out checks: fitted on the fit archs, checked on the 100
   validation archs of each session (the committed split); and on SPLITS seeded splits of each session's 150 archs
   (`latency_learning_curve.split`: 50 held out, fit on 25 + 25 of the rest), mean within +-10% and the paired
   difference to `shipped` with its standard error; and, for more measurements instead of another form, the
   shipped form fitted on all 100 archs of each split's pool.
Writes experiments/results/latency/zen4b_form.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from _common import command_line, one_line_on_failed_write, write_results  # (also puts the project on sys.path)

OUT = Path(__file__).resolve().parent / "results" / "latency"
SESSIONS = ("cpu", "cpu_zen2", "cpu_xeon", "cpu_zen4b")
FORMS = ("shipped", "time-weighted", "screened", "per-input scale", "screened + per-input scale")
SPLITS = 10
MORE = "shipped, fitted on the 100 archs of the pool"
SCREEN_TOL = 0.10


def call_agreement(data: dict) -> np.ndarray:
    """Per arch: its profiled call / its timed median, over the median of that ratio (1: as the rest)."""
    r = data["call"] / data["y_us"]
    return r / np.nanmedian(r)


def screened(unit_times: list, agreement: np.ndarray) -> list:
    """`unit_times` with None for the archs whose profiled call is off by more than SCREEN_TOL (`call_agreement`)."""
    return [t if not np.isfinite(q) or abs(q - 1) <= SCREEN_TOL else None for t, q in zip(unit_times, agreement)]


def _weighted_solve(X, y, prior, scale, lam, w):
    from scipy.optimize import nnls

    sw = np.sqrt(w)[:, None]
    A = np.vstack([X * scale / y[:, None] * sw, np.sqrt(lam) * np.eye(len(scale))])
    b = np.concatenate([sw[:, 0], np.sqrt(lam) * prior / scale])
    phi, _ = nnls(A, b, maxiter=50 * A.shape[1])
    return phi * scale


def _weighted_lambda(X, y, groups, theta0, scale, lambdas, folds, seed, w):
    # `nas.latency.fit._choose_lambda` with each unit's squared relative error weighted by w.
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    fold_of_group = dict(zip(ids, rng.permutation(len(ids)) % min(folds, len(ids))))
    fold_of = np.array([fold_of_group[g] for g in groups])
    best = (np.inf, lambdas[0])
    for lam in lambdas:
        num = den = 0.0
        for f in range(fold_of.max() + 1):
            train, test = fold_of != f, fold_of == f
            theta = _weighted_solve(X[train], y[train], theta0, scale, lam, w[train])
            num += float(np.sum(w[test] * ((X[test] @ theta - y[test]) / y[test]) ** 2))
            den += float(np.sum(w[test]))
        rmspe = float(np.sqrt(num / den))
        if rmspe < best[0]:
            best = (rmspe, lam)
    return best


def _weighted_residual(shapes, linear_us, unit_us, w, *, trees, seed):
    # `nas.latency.fit._fit_residual` with sample weights.
    from sklearn.ensemble import GradientBoostingRegressor

    from nas.latency import fit

    log_linear = np.log(np.maximum(linear_us, 1e-3))
    model = GradientBoostingRegressor(n_estimators=trees, max_depth=2, learning_rate=0.1, random_state=seed)
    model.fit(np.column_stack([shapes, log_linear]), np.log(unit_us) - log_linear, sample_weight=w)
    out = [[float(model.init_.constant_.ravel()[0]), 0.0]]
    for (tree,) in model.estimators_:
        t = tree.tree_
        value = lambda n: float(t.value[n].ravel()[0]) * model.learning_rate  # noqa: E731

        def split(n):
            if t.children_left[n] < 0:
                return [0.0, fit._FAR], [value(n), value(n)]
            return [float(t.feature[n]), float(t.threshold[n])], [value(t.children_left[n]), value(t.children_right[n])]

        if t.children_left[0] < 0:
            out.append([0.0, fit._FAR, 0.0, fit._FAR, 0.0, fit._FAR, *[value(0)] * 4])
            continue
        left, right = split(t.children_left[0]), split(t.children_right[0])
        out.append([float(t.feature[0]), float(t.threshold[0]), *left[0], *right[0], *left[1], *right[1]])
    return out


def fit_form(archs, y_us, unit_times, hw, *, weighted: bool, per_input: bool = False,
             lambdas=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), folds=5, seed=0, trees=200):
    """`nas.latency.fit._fit_with_units` step by step (weight spill, residual trees, totals step), each unit time
    weighted by its share of its arch's unit sum where `weighted`, else equally (as shipped); with `per_input`, the
    totals step fits one scale per input (channels x size) instead of one. Returns (the profile of the one-scale
    totals step, a function from archs to predicted us of the form)."""
    from scipy.optimize import nnls

    from nas.latency import fit
    from nas.latency.ops import unit_shape
    from nas.latency.predictor import corrected_unit_sums

    prior = copy.deepcopy(hw.without_calibration())
    X = np.stack([fit.arch_features(a, prior) for a in archs])
    y = np.asarray(y_us, dtype=float)
    rows, shapes, targets, groups = [], [], [], []
    for k, (arch, times) in enumerate(zip(archs, unit_times)):
        for unit, x in fit.unit_features(arch, prior).items() if times else ():
            if times.get(unit, 0.0) > 0:
                rows.append(x)
                shapes.append(unit_shape(arch, unit))
                targets.append(times[unit])
                groups.append(k)
    U, t, groups = np.array(rows), np.array(targets), np.array(groups)
    if weighted:
        w = t / np.bincount(groups, weights=t)[groups]
        w = w / w.mean()
    else:
        w = np.ones_like(t)
    best = None
    for above in fit._spill_candidates(X[:, fit.WEIGHTS]):
        Ua = U.copy()
        Ua[:, fit.WEIGHTS] *= fit.spills(X[groups], above)
        used = np.flatnonzero(np.abs(Ua).max(axis=0) > 0)
        scale = 1.0 / np.abs(Ua[:, used] / t[:, None]).max(axis=0)
        cv_rmspe, lam = _weighted_lambda(Ua[:, used], t, groups, np.zeros(len(used)), scale, lambdas, folds, seed, w)
        if best is None or cv_rmspe < best[0]:
            best = (cv_rmspe, lam, above, Ua, used, scale)
    _, lam, above, U, used, scale = best
    theta = np.zeros(fit.N_COEF)
    theta[used] = _weighted_solve(U[:, used], t, np.zeros(len(used)), scale, lam, w)
    residual = (_weighted_residual(np.array(shapes), U @ theta, t, w, trees=trees, seed=seed)
                if trees and len(t) >= fit.MIN_RESIDUAL_UNITS else [])
    n_units = X[:, [fit._TYPE_BASE[u] for u in fit.UNIT_TYPES]].sum(axis=1)
    nodes = X @ theta - ~fit.spills(X, above) * X[:, fit.WEIGHTS] * theta[fit.WEIGHTS]
    if residual:
        nodes = corrected_unit_sums(archs, prior, theta, residual, above_bytes=above)
    F = np.stack([nodes, np.ones_like(y), n_units], axis=1)
    (a, invoke, per_unit), _ = nnls(F / y[:, None], np.ones_like(y))
    predict = None
    if per_input:
        inputs = sorted({(x.in_chans, x.img_size) for x in archs})
        of = np.array([inputs.index((x.in_chans, x.img_size)) for x in archs])
        Fi = np.column_stack([nodes * (of == k) for k in range(len(inputs))] + [np.ones_like(y), n_units])
        coef, _ = nnls(Fi / y[:, None], np.ones_like(y))
        scale_of = dict(zip(inputs, coef[: len(inputs)]))
        theta_units, residual_units = theta.copy(), residual

        def predict(new):  # an input not fitted on gets the one-scale fit's scale and overheads
            sums = corrected_unit_sums(new, prior, theta_units, residual_units, above_bytes=above)
            nu = np.array([fit.arch_features(x, prior)[[fit._TYPE_BASE[u] for u in fit.UNIT_TYPES]].sum() for x in new])
            known = np.array([(x.in_chans, x.img_size) in scale_of for x in new])
            s = np.array([scale_of.get((x.in_chans, x.img_size), a) for x in new])
            return np.where(known, s * sums + coef[-2] + coef[-1] * nu, a * sums + invoke + per_unit * nu)
    theta *= a
    theta[0] = invoke
    for u in fit.UNIT_TYPES:
        theta[fit._TYPE_BASE[u]] += per_unit
    profile = copy.deepcopy(prior)
    profile.calibration = fit._calibration(theta, above)
    if residual:
        shift = lambda f, thr: thr + (np.log(a) if int(f) == fit.LOG_COST else 0.0)  # noqa: E731
        profile.residual = [[residual[0][0], float(per_unit)]] + [
            [r[0], shift(r[0], r[1]), r[2], shift(r[2], r[3]), r[4], shift(r[4], r[5]), *r[6:]] for r in residual[1:]]
    if predict is None:
        from nas.latency import predict_latency_batch

        def predict(new):
            return predict_latency_batch(new, profile) * 1e3
    return profile, predict


def fit_named(form: str, archs, y_us, unit_times, agreement, hw):
    """(profile, predict) of `form` (one of FORMS) fitted on `archs` (`fit_form`)."""
    if "screened" in form:
        unit_times = screened(unit_times, agreement)
    return fit_form(archs, y_us, unit_times, hw, weighted="time-weighted" in form, per_input="per-input" in form)


def _family_metrics(pred, meas, fam) -> dict:
    from latency_unit_sums import FAMILIES

    from nas.latency.validate import accuracy_metrics

    out = {"all": accuracy_metrics(pred, meas)}
    for f in FAMILIES:
        m = fam == f
        if m.sum() >= 2:
            out[f] = accuracy_metrics(pred[m], meas[m])
    return out


def _half_splits(fam: np.ndarray, n: int):
    """SPLITS seeded halves of a validation set: 25 metaformer_t + 25 metaformer_s fitted, the rest checked."""
    for seed in range(n):
        rng = np.random.default_rng(seed)
        t = rng.permutation(np.flatnonzero(fam == "metaformer_t"))
        s = rng.permutation(np.flatnonzero(fam != "metaformer_t"))
        yield np.concatenate([t[:25], s[:25]]), np.concatenate([t[25:], s[25:]])


def unit_errors(profile, data: dict) -> dict:
    """Item 3: predicted / measured unit time per family and unit type, relative to the median over all units."""
    from nas.latency import predict_latency
    from nas.latency.ops import unit_of, unit_type

    per_unit = profile.residual[0][1] if profile.residual else 0.0
    rows = []
    for a, times, fam in zip(data["archs"], data["unit_times"], data["family"]):
        pred = defaultdict(float)
        for layer in predict_latency(a, profile).layers:
            if layer.name != "invoke":
                pred[unit_of(layer.name.removesuffix(".overhead"))] += layer.ms * 1e3
        for u, us in pred.items():
            if times.get(u, 0.0) > 0:
                rows.append((fam, unit_type(a, u), max(us - per_unit, 1e-3), times[u]))
    log_ratio = np.log([r[2] / r[3] for r in rows])
    log_ratio -= np.median(log_ratio)
    total = sum(r[3] for r in rows)
    groups = defaultdict(list)
    for r, e in zip(rows, log_ratio):
        groups[(r[0], r[1])].append((e, r[3]))
        groups[(r[0], "all")].append((e, r[3]))
    out = {}
    for (fam, ut), v in sorted(groups.items()):
        e, us = np.array(v).T
        out.setdefault(fam, {})[ut] = {"n": len(e), "median_ratio": float(np.exp(np.median(e))),
                                       "within_10pct": float(np.mean(np.abs(np.exp(e) - 1) <= 0.10)),
                                       "share_of_time": float(us.sum() / total)}
    return out


def session(name: str, hw, log) -> dict:
    """Items 1-4 for one session."""
    from latency_learning_curve import split
    from latency_unit_models import _totals_fit
    from latency_unit_sums import _load

    from nas.latency import predict_latency_batch
    from nas.latency.fit import fit_profile

    f, v = _load(name, "fit", hw), _load(name, "val", hw)
    out: dict = {"n_fit": len(f["archs"]), "n_val": len(v["archs"])}
    agree_f, agree_v = call_agreement(f), call_agreement(v)
    out["agreement"] = {which: {"within_10pct": float(np.mean(np.abs(q - 1) <= SCREEN_TOL)),
                                "off_by_family": {fam: int(np.sum((d["family"] == fam) & (np.abs(q - 1) > SCREEN_TOL)))
                                                  for fam in sorted(set(d["family"]))}}
                        for which, d, q in (("fit", f, agree_f), ("val", v, agree_v))}
    # 1b. the same units in both profiles
    from nas.latency.ops import unit_shape

    same = defaultdict(lambda: ([], []))
    for k, d in enumerate((f, v)):
        for a, times in zip(d["archs"], d["unit_times"]):
            for u, us in times.items():
                if u not in ("call", "nodes"):
                    kind = "block" if ".blocks." in u else u.split(".")[-1]
                    same[(kind, f"{a.in_chans}x{a.img_size}x{a.img_size}", unit_shape(a, u))][k].append(us)
    ratios = defaultdict(list)
    for (kind, inp, _), (tf, tv) in same.items():
        if tf and tv:
            ratios[f"{kind} {inp}"].append(np.median(tf) / np.median(tv))
    out["same_units"] = {k: {"n": len(r), "median_ratio": float(np.median(r))} for k, r in sorted(ratios.items())}
    # 2. oracle on halves of the validation set (one units session)
    oracle = []
    for tr, te in _half_splits(v["family"], SPLITS):
        total = _totals_fit(v["unit_sum"][tr], v["n_units"][tr], v["y_us"][tr])
        m = _family_metrics(total(v["unit_sum"][te], v["n_units"][te]), v["y_us"][te], v["family"][te])
        oracle.append({k: x["within_10pct"] for k, x in m.items()})
    out["oracle_val_halves"] = {k: float(np.mean([o[k] for o in oracle])) for k in oracle[0]}
    total = _totals_fit(f["unit_sum"], f["n_units"], f["y_us"])
    out["oracle_fit_to_val"] = {k: x["within_10pct"] for k, x in _family_metrics(
        total(v["unit_sum"], v["n_units"]), v["y_us"], v["family"]).items()}
    log(f"{name}: agreement and oracle done")
    # 4a. committed split, every form; row `shipped` checked against fit_profile
    committed, profiles = {}, {}
    for form in FORMS:
        profiles[form], predict = fit_named(form, f["archs"], f["y_us"], f["unit_times"], agree_f, hw)
        pred = predict(v["archs"])
        committed[form] = _family_metrics(pred, v["y_us"], v["family"])
    shipped = fit_profile(f["archs"], f["y_us"] / 1e3, hw, unit_times=f["unit_times"]).profile
    ref = predict_latency_batch(v["archs"], shipped)
    out["shipped_vs_fit_profile_max_rel_diff"] = float(np.max(np.abs(
        predict_latency_batch(v["archs"], profiles["shipped"]) / ref - 1)))
    out["committed"] = committed
    # 3. unit errors of the shipped form and of the best other form, on the validation archs' unit times
    out["unit_errors"] = {form: unit_errors(profiles[form], v) for form in ("shipped", "time-weighted")}
    log(f"{name}: committed split done")
    # 4c. in-sample on all 150 archs (the ceiling of a form, not a validation): as the predictor report fits it (every
    #     unit profile), screened, and with the fit archs' unit profile left out (only the validation archs' one)
    archs = f["archs"] + v["archs"]
    y = np.concatenate([f["y_us"], v["y_us"]])
    units = f["unit_times"] + v["unit_times"]
    agree = np.concatenate([agree_f, agree_v])
    fam = np.concatenate([f["family"], v["family"]])
    in_sample = {}
    for label, form, times in (("shipped, both profiles", "shipped", units), ("screened, both profiles", "screened", units),
                               ("shipped, validation archs' profile only", "shipped",
                                [None] * len(f["archs"]) + v["unit_times"])):
        _, predict = fit_named(form, archs, y, times, agree, hw)
        in_sample[label] = {k: m["within_10pct"] for k, m in _family_metrics(predict(archs), y, fam).items()}
    out["in_sample"] = in_sample
    # 4b. seeded splits of all 150 archs
    spaces = sorted({a.img_size for a in archs})
    splits = []
    for seed in range(SPLITS):
        held, pool = split(archs, seed)
        fit_idx = [i for s in spaces for i in pool[s][:25]]
        row = {}
        for form in FORMS:
            _, predict = fit_named(form, [archs[i] for i in fit_idx], y[fit_idx], [units[i] for i in fit_idx],
                                   agree[fit_idx], hw)
            pred = predict([archs[i] for i in held])
            row[form] = float(np.mean(np.abs(pred / y[held] - 1) <= 0.10))
        # More measurements instead of another form: the shipped form on all 100 archs of the pool.
        pool_idx = [i for s in spaces for i in pool[s]]
        _, predict = fit_named("shipped", [archs[i] for i in pool_idx], y[pool_idx], [units[i] for i in pool_idx],
                               agree[pool_idx], hw)
        row[MORE] = float(np.mean(np.abs(predict([archs[i] for i in held]) / y[held] - 1) <= 0.10))
        splits.append(row)
        log(f"{name}: split {seed}: " + ", ".join(f"{k} {x:.0%}" for k, x in row.items()))
    out["splits"] = splits
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", nargs="+", default=list(SESSIONS), choices=SESSIONS)
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the committed .json")
    args = ap.parse_args(argv)
    if args.render:
        import json

        result = json.loads((OUT / "zen4b_form.json").read_text())
        write_results("zen4b_form", result, render_md=render_md, folder=OUT, write_json=False)
        return 0
    from latency_unit_models import prior_hw

    from nas.latency.measure import machine_info

    started = time.perf_counter()
    hw = prior_hw()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:.0f} s] {text}", flush=True)

    sessions = {name: session(name, hw, log) for name in args.sessions}
    result = {"command": command_line("latency_zen4b_form.py", argv), "machine": machine_info(),
              "date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - started, "splits": SPLITS,
              "forms": list(FORMS), "sessions": sessions}
    write_results("zen4b_form", result, render_md=render_md, folder=OUT)
    return 0


def _pct(v: float) -> str:
    return f"{v:.0%}"


def findings(r: dict) -> list[str]:
    """The paragraphs on what the tables say, each number read from `r`."""
    s = r["sessions"]
    z = s.get("cpu_zen4b")
    out = []
    if z:
        same = [v["median_ratio"] for k, v in z["same_units"].items() if "28x28" in k]
        units_ok = z["unit_errors"]["shipped"]
        share = sum(e["all"]["within_10pct"] * e["all"]["n"] for e in units_ok.values()) / sum(
            e["all"]["n"] for e in units_ok.values())
        out.append(
            "**cpu_zen4b.** The form is not the ceiling it looked like: the in-sample fit on totals only "
            "(predictor_cpu_zen4b.md's in-sample section) is not the shipped form; the shipped form, "
            "unit times and all, fitted on all 150 puts "
            f"{_pct(z['in_sample']['shipped, both profiles']['all'])} of them within +-10% "
            f"(table 4). Perfect unit costs would do better still: the validation archs' measured unit sums through the "
            f"totals step reach {_pct(z['oracle_val_halves']['all'])} on held-out halves (table 2), but only "
            f"{_pct(z['oracle_fit_to_val']['all'])} (metaformer_t {_pct(z['oracle_fit_to_val']['metaformer_t'])}) when "
            "the totals step is fitted on the fit archs with their own unit profile. That profile ran at other relative "
            f"speeds than the timing session: its calls agree with it for {_pct(z['agreement']['fit']['within_10pct'])} "
            f"of the archs (the validation archs' profile {_pct(z['agreement']['val']['within_10pct'])}), and units of "
            f"the same shape on 1x28x28 took {min(same):.2f}-{max(same):.2f}x their time in the validation archs' "
            "profile (table 1). Held out, the unit costs learnt from it miss: "
            f"{share:.0%} of the validation archs' units within +-10% of their measured time after one scale (table 3), "
            "metaformer_s with a stride-2 stem (70% of the time) at "
            f"{units_ok['metaformer_s stride 2']['all']['median_ratio']:.2f}, metaformer_t at "
            f"{units_ok['metaformer_t']['all']['median_ratio']:.2f}.")
    means = {form: float(np.mean([np.mean([x[form] for x in v["splits"]]) for v in s.values()])) for form in r["forms"]}
    helped = {form: [name for name, v in s.items()
                     if np.mean([x[form] - x["shipped"] for x in v["splits"]]) > 1e-9
                     and v["committed"][form]["all"]["within_10pct"] >= v["committed"]["shipped"]["all"]["within_10pct"]]
              for form in r["forms"] if form != "shipped"}
    every = [form for form, names in helped.items() if len(names) == len(s)]
    out.append("**Forms**, held out (tables 4 and 5): " + "; ".join(
        f"`{form}` {means[form]:.1%} over the sessions' splits (shipped {means['shipped']:.1%}), better on the splits "
        f"and not worse on the committed split on {', '.join(helped[form]) or 'none'}" for form in helped)
        + ". " + (f"Better on every session: {', '.join(every)}." if every else
                  "None is better on every session: nothing is adopted."))
    if all(MORE in x for v in s.values() for x in v["splits"]):
        out.append("**More measurements** instead (table 5, last row): the shipped form fitted on 100 archs instead of 50, "
                   "checked on the same held-out 50 of each split, " + ", ".join(
                       f"{name} {np.mean([x[MORE] for x in v['splits']]):.1%} (50: "
                       f"{np.mean([x['shipped'] for x in v['splits']]):.1%})" for name, v in s.items()) + ".")
    return out


def render_md(r: dict) -> str:
    """The Markdown report of a result of `main`."""
    from latency_unit_sums import FAMILIES

    s = r["sessions"]
    cols = ("all", *FAMILIES)
    lines = ["# What the latency predictor's form misses on cpu_zen4b; three form changes on every instance (issue 3)", "",
             f"Command: `{r['command']}` (reads the committed CSVs; no timing)  ",
             f"Machine: {r['machine']}; {r['date']}; {r['seconds']:.0f} s", "",
             "See the module docstring for each table. Within +-10% unless said otherwise.", "",
             *[line for p in findings(r) for line in (p, "")],
             "## 1. Unit profiles against the timing session", "",
             "Each unit profile's timed call against the timing session's median, after one common scale: share of archs "
             "within +-10%; in brackets the archs outside, per family.", "",
             "| session | fit archs' profile | validation archs' profile |", "|---|--:|--:|"]
    for name, v in s.items():
        cells = [f"{_pct(v['agreement'][w]['within_10pct'])} ("
                 + ", ".join(f"{fam}: {n}" for fam, n in v["agreement"][w]["off_by_family"].items() if n) + ")"
                 for w in ("fit", "val")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Units of the same shape in both profiles: median ratio of their times, fit archs' profile / validation "
              "archs' profile (number of distinct shapes in brackets).", ""]
    kinds = sorted({k for v in s.values() for k in v["same_units"]})
    lines += ["| session | " + " | ".join(kinds) + " |", "|---|" + "--:|" * len(kinds)]
    for name, v in s.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{v['same_units'][k]['median_ratio']:.2f} ({v['same_units'][k]['n']})" if k in v["same_units"] else "-"
            for k in kinds) + " |")
    lines += ["", "## 2. Oracle: measured unit sums through the totals step", "",
              f"`val halves`: overheads fitted on 25 + 25 validation archs, checked on the other 50, mean over {r['splits']} "
              "splits (one units session); `fit -> val`: overheads fitted on the fit archs (their own units session).", "",
              "| session | set | " + " | ".join(cols) + " |", "|---|---|" + "--:|" * len(cols)]
    for name, v in s.items():
        for key, label in (("oracle_val_halves", "val halves"), ("oracle_fit_to_val", "fit -> val")):
            lines.append(f"| {name} | {label} | " + " | ".join(_pct(v[key][c]) if c in v[key] else "-" for c in cols) + " |")
    lines += ["", "## 3. Unit costs of the shipped form on the validation archs", "",
              "Predicted / measured unit time (per-unit overhead taken off), relative to the median over all units; in "
              "brackets the share of units within +-10% of that; then the family's share of the measured unit time.", ""]
    types = sorted({ut for v in s.values() for fam in v["unit_errors"]["shipped"].values() for ut in fam})
    types = ["all"] + [t for t in types if t != "all"]
    lines += ["| session | family | share of time | " + " | ".join(types) + " |", "|---|---|--:|" + "--:|" * len(types)]
    for name, v in s.items():
        for fam, e in v["unit_errors"]["shipped"].items():
            cells = [f"{e[t]['median_ratio']:.2f} ({_pct(e[t]['within_10pct'])})" if t in e else "-" for t in types]
            lines.append(f"| {name} | {fam} | {_pct(e['all']['share_of_time'])} | " + " | ".join(cells) + " |")
    lines += ["", "## 4. Forms, fitted on the fit archs, checked on the 100 validation archs", "",
              "Within +-10% (RMSPE) per family.", "",
              "| session | form | " + " | ".join(cols) + " |", "|---|---|" + "--:|" * len(cols)]
    for name, v in s.items():
        for form, m in v["committed"].items():
            lines.append(f"| {name} | {form} | " + " | ".join(
                f"{_pct(m[c]['within_10pct'])} ({m[c]['rmspe']:.1%})" if c in m else "-" for c in cols) + " |")
    lines += ["", "In-sample on all 150 archs (fitted and checked on the same archs: the ceiling of the form, not a "
              "validation):", "", "| session | fit | " + " | ".join(cols) + " |", "|---|---|" + "--:|" * len(cols)]
    for name, v in s.items():
        for label, m in v["in_sample"].items():
            lines.append(f"| {name} | {label} | " + " | ".join(_pct(m[c]) if c in m else "-" for c in cols) + " |")
    lines += ["", "Row `shipped` predicts what `fit_profile` (without `check_units`) does to within "
              + ", ".join(f"{name} {v['shipped_vs_fit_profile_max_rel_diff']:.2%}" for name, v in s.items()) + ".", "",
              f"## 5. Forms on {r['splits']} seeded splits of each session's 150 archs", "",
              "Within +-10% of the 50 held-out archs, mean over the splits; in brackets the paired difference to `shipped` "
              "and its standard error, in points.", "",
              "| form | " + " | ".join(s) + " | mean over sessions |", "|---|" + "--:|" * (len(s) + 1)]
    for form in [*r["forms"], MORE]:
        cells, means = [], []
        for v in s.values():
            got = np.array([x[form] for x in v["splits"]])
            base = np.array([x["shipped"] for x in v["splits"]])
            d = (got - base) * 100
            means.append(got.mean())
            cells.append(f"{got.mean():.1%}" + ("" if form == "shipped" else
                                                f" ({d.mean():+.1f} ± {d.std(ddof=1) / np.sqrt(len(d)):.1f})"))
        lines.append(f"| {form} | " + " | ".join(cells) + f" | {np.mean(means):.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
