"""How many measured models the hw=cpu predictor needs: held-out accuracy against the number of fit archs (issue 3).

    python experiments/latency_learning_curve.py      # ~1 min, no timing: reads the committed CSVs

The issue asks for +-10% accuracy >= 90% from <= 50 measured models; the committed split gets 85%
(predictor_cpu.md). This asks what more measurements, or other ones, would buy. On each of SPLITS seeded
splits of the 150 measured archs (`cpu_fit.csv` + `cpu_val.csv`, all with per-unit profiles):
- 50 held-out archs (25 per space), drawn first; the other 100 are the pool the fits draw from;
- the shipped method (`fit_profile` with unit times, weight spill and residual trees, as conf/hw/cpu.yaml) and the
  totals-only fit, on the first n archs of the pool in a seeded order (n/2 per space, nested: each n adds
  archs to the smaller sets), for each n in SIZES;
- at n = 50, a *chosen* calibration set instead of a random one: k-center on an arch descriptor (per stage:
  mixer, log width, depth, log resolution, log MLP width), per space, from the same pool
  (`nas.latency.profile.choose_covering`, what `python -m nas.latency.profile select=cover` does).
Every number is within +-10% on the split's 50 held-out archs, then the mean over splits. Writes
experiments/results/latency/learning_curve_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _common import one_line_on_failed_write, write_results  # (also puts the project on sys.path)

OUT = Path(__file__).resolve().parent / "results" / "latency"
SPLITS = 20
SIZES = (10, 20, 30, 40, 50, 70, 100)
N_HELD_OUT = 25  # per space


def committed_measurements() -> tuple[list, np.ndarray, dict[str, dict[str, float]]]:
    """The benchmark's 150 archs (`cpu_fit.csv` + `cpu_val.csv`), their medians (ms) and their unit times by arch id."""
    from nas.latency.measure import read_measurements, read_unit_times

    rows = read_measurements(OUT / "cpu_fit.csv") + read_measurements(OUT / "cpu_val.csv")
    units = {**read_unit_times(OUT / "cpu_fit_units.csv"), **read_unit_times(OUT / "cpu_val_units.csv")}
    return [r.arch for r in rows], np.array([r.median_ms for r in rows]), units


def split(archs: list, seed: int) -> tuple[list[int], dict[int, list[int]]]:
    """One seeded split of `archs` (positions): N_HELD_OUT held out per input size (space), then per input size the
    rest in the same seeded order, the pool that fits draw their first n from (so fits of growing n are nested)."""
    order = np.random.default_rng(seed).permutation(len(archs))
    by_space = {size: [int(i) for i in order if archs[i].img_size == size] for size in sorted({a.img_size for a in archs})}
    held = [i for ids in by_space.values() for i in ids[:N_HELD_OUT]]
    return held, {size: ids[N_HELD_OUT:] for size, ids in by_space.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from latency_unit_models import prior_hw
    from nas.latency import predict_latency_batch
    from nas.latency.fit import fit_profile
    from nas.latency.measure import machine_info
    from nas.latency.profile import choose_covering
    from nas.latency.validate import accuracy_metrics

    started = time.perf_counter()
    hw = prior_hw()
    archs, y, units = committed_measurements()
    spaces = sorted({a.img_size for a in archs})
    index = {a.arch_id: i for i, a in enumerate(archs)}  # choose_covering returns archs; the splits use positions

    def within_10(fit_idx: list[int], held: list[int], *, with_units: bool) -> dict[str, float]:
        fa = [archs[i] for i in fit_idx]
        prof = fit_profile(fa, y[fit_idx], hw, unit_times=[units.get(a.arch_id) for a in fa] if with_units else None).profile
        m = accuracy_metrics(predict_latency_batch([archs[i] for i in held], prof), y[held])
        return {"within_10pct": m["within_10pct"], "rmspe": m["rmspe"]}

    splits = []
    for seed in range(SPLITS):
        held, pool = split(archs, seed)
        result_split = {"seed": seed, "shipped": {}, "totals_only": {}}
        for n in SIZES:
            fit_idx = [i for s in spaces for i in pool[s][: n // len(spaces)]]
            result_split["shipped"][n] = within_10(fit_idx, held, with_units=True)
            result_split["totals_only"][n] = within_10(fit_idx, held, with_units=False)
        chosen = [index[a.arch_id] for s in spaces for a in choose_covering([archs[i] for i in pool[s]], 50 // len(spaces))]
        result_split["chosen_50"] = within_10(chosen, held, with_units=True)
        splits.append(result_split)
        print(f"split {seed}: " + ", ".join(f"{n}: {v['within_10pct']:.0%}" for n, v in result_split["shipped"].items())
              + f"; chosen 50: {result_split['chosen_50']['within_10pct']:.0%}", flush=True)

    result = {"command": "python experiments/latency_learning_curve.py", "machine": machine_info(),
              "date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - started, "sizes": list(SIZES),
              "n_held_out": N_HELD_OUT * len(spaces), "splits": splits}
    write_results("learning_curve_cpu", result, render_md=render_md, folder=OUT)
    return 0


def _mean(splits: list[dict], key: str, n: int, metric: str = "within_10pct") -> float:
    return float(np.mean([s[key][n][metric] for s in splits]))


def render_md(r: dict) -> str:
    splits = r["splits"]
    k = len(splits)
    lines = [
        "# How many measured models the hw=cpu latency predictor needs (issue 3)", "",
        f"Command: `{r['command']}` (reads the committed CSVs; no timing)  ",
        f"Machine: {r['machine']}; {r['date']}; {r['seconds']:.0f} s", "",
        f"On each of {k} seeded splits of the 150 measured archs: {r['n_held_out']} held out (half per space), the fits "
        "drawn from the other 100, half per space, nested. Within +-10% on the held-out archs, mean over the splits "
        "(min-max in brackets). See the module docstring.", "",
        "| measured archs in the fit | shipped: per-unit linear + weight spill, x residual trees | RMSPE | fitted on totals only |",
        "|--:|--:|--:|--:|",
    ]
    for n in r["sizes"]:
        got = [s["shipped"][n]["within_10pct"] for s in splits]
        lines.append(f"| {n} | {np.mean(got):.1%} ({min(got):.0%}-{max(got):.0%}) | {_mean(splits, 'shipped', n, 'rmspe'):.1%} "
                     f"| {_mean(splits, 'totals_only', n):.1%} |")
    chosen = [s["chosen_50"]["within_10pct"] for s in splits]
    rand50 = [s["shipped"][50]["within_10pct"] for s in splits]
    diff = np.array(chosen) - np.array(rand50)
    lines += [
        "", "## A chosen calibration set of 50", "",
        f"k-center on the arch descriptor, per space, from the same pool: {np.mean(chosen):.1%} within +-10% "
        f"({min(chosen):.0%}-{max(chosen):.0%}) against {np.mean(rand50):.1%} for the first 50 of the pool. Paired "
        f"difference {np.mean(diff) * 100:+.1f} pt, standard error {np.std(diff, ddof=1) / np.sqrt(k) * 100:.1f} pt "
        f"(per split: {', '.join(f'{d * 100:+.0f}' for d in diff)}).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
