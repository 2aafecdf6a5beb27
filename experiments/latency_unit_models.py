"""Ablation: which way of using per-unit profiles predicts held-out totals best (hw=cpu, issue 3).

    python experiments/latency_predictor.py --units     # once: the per-unit profiles (committed)
    python experiments/latency_unit_models.py           # this ablation (~6 min, no timing: reads the committed CSVs)

All rows fit on the 50 fit archs (`cpu_fit.csv`, and `cpu_fit_units.csv` where a row uses unit times) and
are checked on the 100 held-out archs' committed medians (`cpu_val.csv`), like `latency_predictor.py`:
1. totals only: the per-op-kind linear model fitted on the 50 totals (the former `hw=cpu` predictor);
2. per-unit linear: `fit_profile(..., unit_times=..., residual_trees=0)`, what `conf/hw/cpu.yaml` shipped before 2b;
   2b. `fit_profile(..., unit_times=...)` as shipped before its `weight_spill` term (no row here has that term; see
   latency_predictor.py): row 2 times 200 boosted residual trees carried in the
   profile (`hw.residual`); it should equal row 4d, which builds the same model here from scikit-learn directly;
3. per-unit linear + a log-linear correction per unit type on the unit's shape (resolution, widths,
   kernel, norm, act), fitted on the unit times' log residuals (ridge);
4. per-unit extra-trees (scikit-learn) on the unit's shape and the linear prediction, on log time;
   4b. the same trees on the linear prediction's log residual (unit time = linear x exp(trees));
   4c, 4d. small residual models instead (30 extra-trees with >= 5 units per leaf; 200 boosted trees of depth 2):
   the size a serialised profile could carry;
5. oracle: the held-out archs' own profiled node sums (`cpu_val_units.csv`), scaled by the same
   totals fit. No predictor sees those; the row bounds what any per-unit predictor can reach here.
Rows 3-5 use the same last step as row 2: total = scale x (sum of units) + per-call + per-unit overhead,
fitted on the 50 totals. Then every row again on 3 other 50/100 splits of the 150 archs (seeded), since
one split of 100 held-out archs moves a row by several points. Writes
experiments/results/latency/unit_models_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _common import compose_latency, one_line_on_failed_write, write_results  # (also puts the project on sys.path)
from nas.latency.ops import UNIT_TYPES

OUT = Path(__file__).resolve().parent / "results" / "latency"
RESPLITS = 3


def _shape(arch, unit: str) -> np.ndarray:
    """A unit's shape as numbers (`nas.latency.ops.unit_shape`): type one-hot, resolution, widths, kernel, expand/heads, norm, act."""
    from nas.latency.ops import unit_shape

    return np.array(unit_shape(arch, unit))


def _totals_fit(node_sums_fit: np.ndarray, n_units_fit: np.ndarray, y_fit: np.ndarray):
    from scipy.optimize import nnls

    F = np.stack([node_sums_fit, np.ones_like(y_fit), n_units_fit], axis=1)
    coef, _ = nnls(F / y_fit[:, None], np.ones_like(y_fit))
    return lambda nodes, n: coef[0] * nodes + coef[1] + coef[2] * n


def _rows(hw, archs_f: list, y_f: np.ndarray, archs_v: list, y_v: np.ndarray, units: dict) -> tuple[dict[str, dict], int]:
    """Each row's metrics for one split: fit on `archs_f` (totals `y_f` in us, their unit times), check on `archs_v`."""
    import nas.latency.fit as fit
    from nas.latency import predict_latency_batch
    from nas.latency.validate import accuracy_metrics

    rows: dict[str, dict] = {}

    def record(name: str, pred_us: np.ndarray) -> None:
        rows[name] = accuracy_metrics(pred_us / 1e3, y_v / 1e3)

    record("1. totals only (per-op-kind linear)", predict_latency_batch(archs_v, fit.fit_profile(archs_f, y_f / 1e3, hw).profile) * 1e3)
    unit_times = [units.get(a.arch_id) for a in archs_f]
    # Every row without the `weight_spill` term (it came later: latency_predictor.py's rows show what it adds).
    linear_units = fit.fit_profile(archs_f, y_f / 1e3, hw, unit_times=unit_times, residual_trees=0, weight_spill=False)
    record("2. per-unit linear (residual_trees=0)", predict_latency_batch(archs_v, linear_units.profile) * 1e3)
    with_trees = fit.fit_profile(archs_f, y_f / 1e3, hw, unit_times=unit_times, weight_spill=False)
    record("2b. shipped: per-unit linear x boosted residual trees in the profile", predict_latency_batch(archs_v, with_trees.profile) * 1e3)

    # The unit-level linear model again (step 1 of fit_profile, before its totals step), for rows 3-4.
    feats_f = [fit.unit_features(a, hw) for a in archs_f]
    samples = [(a, u, x, units[a.arch_id][u]) for a, fx in zip(archs_f, feats_f) for u, x in fx.items()
               if units[a.arch_id].get(u, 0.0) > 0]
    U = np.array([s[2] for s in samples])
    U[:, fit.WEIGHTS] = 0.0  # no weight_spill term here either
    t = np.array([s[3] for s in samples])
    used = np.flatnonzero(np.abs(U).max(axis=0) > 0)
    theta = np.zeros(fit.N_COEF)
    theta[used] = fit._solve(U[:, used], t, np.zeros(len(used)), 1.0 / np.abs(U[:, used] / t[:, None]).max(axis=0), linear_units.lam)
    lin = U @ theta

    def per_unit_total(unit_pred) -> np.ndarray:
        def node_sum(a):
            fx = fit.unit_features(a, hw)
            return sum(unit_pred(a, u, x) for u, x in fx.items()), len(fx)
        nf = np.array([node_sum(a) for a in archs_f])
        total = _totals_fit(nf[:, 0], nf[:, 1], y_f)
        return np.array([total(*node_sum(a)) for a in archs_v])

    # 3. log-linear correction per unit type (ridge on standardised log shape features).
    logs = np.log(np.maximum(lin, 1e-3))
    resid = np.log(t) - logs
    corr = {}
    for ty in UNIT_TYPES:
        idx = [k for k, s in enumerate(samples) if _shape(s[0], s[1])[UNIT_TYPES.index(ty)]]
        if len(idx) < 5:
            continue
        P = np.log1p(np.array([_shape(samples[k][0], samples[k][1])[len(UNIT_TYPES):] for k in idx]))
        mu, sd = P.mean(axis=0), P.std(axis=0)
        sd[sd == 0] = 1.0
        Z = np.hstack([np.ones((len(idx), 1)), (P - mu) / sd])
        beta = np.linalg.solve(Z.T @ Z + np.eye(Z.shape[1]), Z.T @ resid[idx])
        corr[ty] = (beta, mu, sd)

    def corrected(a, u, x):
        base = max(float(x @ theta), 1e-3)
        sh = _shape(a, u)
        ty = UNIT_TYPES[int(np.argmax(sh[: len(UNIT_TYPES)]))]
        if ty not in corr:
            return base
        beta, mu, sd = corr[ty]
        z = np.concatenate([[1.0], (np.log1p(sh[len(UNIT_TYPES):]) - mu) / sd])
        return base * float(np.exp(z @ beta))

    record("3. per-unit linear + log-linear correction per unit type", per_unit_total(corrected))

    # 4. extra-trees on the unit's shape and the linear prediction (log time), if scikit-learn is installed.
    try:
        from sklearn.ensemble import ExtraTreesRegressor
    except ImportError:  # an optional row: scikit-learn comes with nncf, but is not pinned by this project
        ExtraTreesRegressor = None
    if ExtraTreesRegressor is not None:
        D = np.array([np.append(_shape(s[0], s[1]), lg) for s, lg in zip(samples, logs)])
        trees = ExtraTreesRegressor(n_estimators=300, min_samples_leaf=2, random_state=0).fit(D, np.log(t))

        def tree_pred(a, u, x):
            return float(np.exp(trees.predict(np.append(_shape(a, u), np.log(max(float(x @ theta), 1e-3)))[None])[0]))

        record("4. per-unit extra-trees on shape + linear prediction", per_unit_total(tree_pred))

        # 4b. the same trees fitted on the linear model's log residual instead of the log time.
        res_trees = ExtraTreesRegressor(n_estimators=300, min_samples_leaf=2, random_state=0).fit(D, np.log(t) - logs)

        def residual_pred(a, u, x):
            lg = np.log(max(float(x @ theta), 1e-3))
            return float(np.exp(lg + res_trees.predict(np.append(_shape(a, u), lg)[None])[0]))

        record("4b. per-unit linear x extra-trees on its log residual", per_unit_total(residual_pred))

        # 4c/4d. Small residual models, of a size a shipped profile could carry (4b's 300 full trees could not).
        from sklearn.ensemble import GradientBoostingRegressor

        for name, small in (("4c. as 4b with 30 trees of >= 5 units per leaf",
                             ExtraTreesRegressor(n_estimators=30, min_samples_leaf=5, random_state=0)),
                            ("4d. as 4b with 200 boosted trees of depth 2",
                             GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.1, random_state=0))):
            small.fit(D, np.log(t) - logs)

            def small_pred(a, u, x, small=small):
                lg = np.log(max(float(x @ theta), 1e-3))
                return float(np.exp(lg + small.predict(np.append(_shape(a, u), lg)[None])[0]))

            record(name, per_unit_total(small_pred))

    # 5. oracle: the held-out archs' own node sums, through the same totals step (fitted on the fit archs' node sums).
    nodes_f = np.array([units[a.arch_id]["nodes"] for a in archs_f])
    n_f = np.array([len(fit.unit_features(a, hw)) for a in archs_f])
    total = _totals_fit(nodes_f, n_f, y_f)
    record("5. oracle: held-out archs' own profiled node sums",
           np.array([total(units[a.arch_id]["nodes"], len(fit.unit_features(a, hw))) for a in archs_v]))
    return rows, len(samples)


def prior_hw():
    """hw=cpu without its calibration: what every row fits against."""
    from omegaconf import OmegaConf


    hw = OmegaConf.to_object(compose_latency("hw=cpu").hw).without_calibration()
    return hw


def resplit(rows_of, archs: list, y: np.ndarray, n_fit: int) -> list[dict[str, float]]:
    """Within +-10% of each row on RESPLITS other splits of `archs` (seeds 0..): `n_fit` fit archs, the rest held out.

    `rows_of(archs_f, y_f, archs_v, y_v)` returns {row name: metrics} for one split.
    """
    out = []
    for seed in range(RESPLITS):
        perm = np.random.default_rng(seed).permutation(len(archs))
        f, v = perm[:n_fit], perm[n_fit:]
        got = rows_of([archs[i] for i in f], y[f], [archs[i] for i in v], y[v])
        out.append({name: m["within_10pct"] for name, m in got.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from nas.latency.measure import machine_info, read_measurements, read_unit_times

    started = time.perf_counter()
    hw = prior_hw()
    fit_rows, val_rows = read_measurements(OUT / "cpu_fit.csv"), read_measurements(OUT / "cpu_val.csv")
    units = {**read_unit_times(OUT / "cpu_fit_units.csv"), **read_unit_times(OUT / "cpu_val_units.csv")}
    archs_f, archs_v = [r.arch for r in fit_rows], [r.arch for r in val_rows]
    y_f = np.array([r.median_ms for r in fit_rows]) * 1e3
    y_v = np.array([r.median_ms for r in val_rows]) * 1e3
    rows, n_samples = _rows(hw, archs_f, y_f, archs_v, y_v, units)
    # The same rows on other 50/100 splits of the 150 archs (seeded): how much of a row's number is the split.
    resplits = resplit(lambda *split: _rows(hw, *split, units)[0], archs_f + archs_v, np.concatenate([y_f, y_v]), len(archs_f))

    result = {"command": "python experiments/latency_unit_models.py", "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "seconds": time.perf_counter() - started, "n_fit": len(archs_f), "n_val": len(archs_v),
              "n_unit_samples": n_samples, "rows": rows, "resplits": resplits}
    write_results("unit_models_cpu", result, render_md=render_md, folder=OUT)
    return 0


def render_md(r: dict) -> str:
    lines = [
        "# Per-unit latency models, hw=cpu: which use of the unit profiles predicts held-out totals best (issue 3)", "",
        f"Command: `{r['command']}` (reads the committed CSVs; no timing)  ",
        f"Machine: {r['machine']}; {r['date']}; {r['seconds']:.0f} s", "",
        f"Fit on {r['n_fit']} archs ({r['n_unit_samples']} unit times from `cpu_fit_units.csv`), checked on the "
        f"{r['n_val']} held-out archs' committed medians (`cpu_val.csv`). See the module docstring for each row.", "",
        *rows_table(r["rows"]),
    ]
    if r.get("resplits"):
        k = len(r["resplits"])
        lines += ["", f"## The same rows on {k} other splits of the 150 archs", "",
                  f"50 fit / 100 held out, drawn with seeds 0-{k - 1} from the fit and validation archs together (all 150 have "
                  "unit profiles). Within +-10% on each split, then the mean of the committed split and these.", "",
                  *resplits_table(r["rows"], r["resplits"])]
    return "\n".join(lines) + "\n"


def rows_table(rows: dict[str, dict]) -> list[str]:
    """Markdown table of each row's metrics on one split."""
    return ["| model | within +-5% | within +-10% | RMSPE | Kendall tau |", "|---|--:|--:|--:|--:|"] + [
        f"| {name} | {m['within_5pct']:.0%} | {m['within_10pct']:.0%} | {m['rmspe']:.1%} | {m['kendall_tau']:.3f} |"
        for name, m in rows.items()]


def resplits_table(rows: dict[str, dict], resplits: list[dict[str, float]]) -> list[str]:
    """Markdown table of each row's within +-10% on every other split, and the mean with the committed split's."""
    k = len(resplits)
    lines = ["| model | " + " | ".join(f"seed {i}" for i in range(k)) + " | mean of all splits |", "|---|" + "--:|" * (k + 1)]
    for name, m in rows.items():
        got = [s[name] for s in resplits]
        lines.append(f"| {name} | " + " | ".join(f"{g:.0%}" for g in got) + f" | {np.mean([m['within_10pct'], *got]):.1%} |")
    return lines


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
