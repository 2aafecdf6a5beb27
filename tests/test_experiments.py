"""The benchmark scripts of experiments/: the commands their committed results record still parse, and a render-only
mode rewrites the Markdown without touching the measured JSON."""

from __future__ import annotations

import argparse
import json
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import fitted_calibration

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
RESULTS = EXPERIMENTS / "results"


class _Parsed(Exception):
    pass


def _recorded_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted(RESULTS.rglob("*.json")):
        command = json.loads(path.read_text()).get("command")
        if isinstance(command, str) and command.startswith("python experiments/"):
            # default_run.py appends "  (runs: python -m nas.search ...)": what it ran, not its own arguments
            out.append((str(path.relative_to(RESULTS)), shlex.split(command.split("  (")[0])[1:]))
    return out


@pytest.mark.parametrize("name,argv", _recorded_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_recorded_command_parses_with_the_current_script(name, argv, monkeypatch):
    """A user reproducing a result runs its recorded command: the script must accept those arguments (a renamed option,
    or an argument with spaces recorded without quotes, fails here). Only the parsing runs, not the benchmark."""
    script, args = EXPERIMENTS / Path(argv[0]).name, argv[1:]
    assert script.is_file(), f"{name}: {argv[0]} does not exist"
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, a=None, namespace=None):
        original(self, a, namespace)  # exits with status 2 on an unknown or malformed argument
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # latency_predictor.py sets it before parsing
    with pytest.raises(_Parsed):
        runpy.run_path(str(script), run_name="__main__")


def test_baselines_render_rewrites_the_markdown_only(tmp_path, monkeypatch):
    # A result written before the image-by-image comparison: rendering it must not add fields to its JSON.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import baselines

    shutil.copy(RESULTS / "baselines_seeded.json", tmp_path / "baselines_seeded.json")
    before = (tmp_path / "baselines_seeded.json").read_bytes()
    monkeypatch.setattr(baselines, "RESULTS", tmp_path)
    assert baselines.main(["--render", "--name", "baselines_seeded"]) == 0
    assert (tmp_path / "baselines_seeded.json").read_bytes() == before
    md = (tmp_path / "baselines_seeded.md").read_text()
    assert "| convformer-L | 0.431 | 88.46% | searched-5cb7b4061d | 87.01% | -1.45 |" in md
    assert (tmp_path / "baselines_seeded.png").is_file()


def test_latency_predictor_report_counts_the_archs_per_input(monkeypatch):
    # The benchmark fits and validates across two inputs: its report says how many archs each input had, from the
    # archs themselves (it said "50 metaformer_t at 28x28x1, 50 metaformer_s at 64x64x3" whatever was measured).
    from nas.arch import ArchConfig, StageConfig

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_predictor

    def arch(in_chans: int, img_size: int) -> ArchConfig:
        return ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=8),), in_chans=in_chans, img_size=img_size)

    grey, colour, other = arch(1, 28), arch(3, 64), arch(3, 32)
    line = latency_predictor.sets_line(fit=[colour] * 2 + [grey] * 3, val=[grey] * 4 + [other, colour],
                                       measured_ms=[0.5, 0.1, 2.0])
    assert line == ("Fit on 5 archs (3 metaformer_t at 1x28x28, 2 metaformer_s at 3x64x64), validated on 6 other archs "
                    "(4 metaformer_t at 1x28x28, 1 at 3x32x32, 1 metaformer_s at 3x64x64; measured 0.100-2.000 ms).")


def test_latency_predictor_refits_other_sets_as_the_predictor_is_fitted_beside_the_totals_only_fit(compose_cfg, monkeypatch):
    # The report's "With more measurements" and in-sample refits were fits on the totals only, in a row labelled like
    # the predictor (cpu_zen4b: 72% in-sample where the shipped form, unit times and all, reaches 89%). They now fit as
    # the predictor is fitted (unit times, check_units=True), with the totals-only fit beside it, each row labelled.
    import numpy as np
    from omegaconf import OmegaConf

    from nas.config import load_hw_profile
    from nas.latency import fit
    from nas.latency.profile import sample_archs

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_predictor as lp

    calls = []
    quick = dict(lambdas=(1e-6, 1e-4), residual_trees=0, weight_spill=False)  # fewer fits: fast enough for a test

    def quick_fit(*args, **kwargs):  # the real fit, quick
        calls.append(kwargs)
        return fit.fit_profile(*args, **kwargs, **quick)

    monkeypatch.setattr(lp, "fit_profile", quick_fit)
    prior = load_hw_profile("cpu").without_calibration()
    archs = sample_archs(OmegaConf.to_object(compose_cfg().space), 40, seed=5, in_chans=1, img_size=28, num_classes=10)
    # A made-up chip (as in test_latency_tools): each op kind's terms the prior's times a random factor, some unit types
    # with terms of their own, which totals alone cannot separate; totals 1.1x the unit sum plus per-call/unit costs.
    rng = np.random.default_rng(0)
    g, truth = fit.prior_coefficients(prior), np.zeros(fit.N_COEF)
    for i in range(1, fit.WEIGHTS):
        entry, term = fit.calibration_key(i)
        kind = entry.split("/")[-1]
        base = g[1 + fit.KINDS.index(kind) * len(fit.TERMS) + fit.TERMS.index(term)] if kind in fit.KINDS else 2.0
        truth[i] = base * rng.uniform(0.2, 2.0) * (1.0 if "/" not in entry or rng.random() < 0.3 else 0.0)
    units = [{u: float(x @ truth) for u, x in fit.unit_features(a, prior).items()} for a in archs]
    totals = [(1.1 * sum(u.values()) + 30.0 + 2.0 * len(u)) / 1000 for u in units]
    profiles, info = lp.fitted_as_shipped(archs, totals, [("a_units.csv", units[:15]), ("b_units.csv", units[15:])], prior)
    assert list(profiles) == [lp.FITTED_AS_PREDICTOR, lp.TOTALS_ONLY] == ["fitted as the predictor (totals + unit times; "
                                                                          "check_units kept them)", "fitted on totals only"]
    assert any(c.get("check_units") and c.get("unit_times") == units for c in calls)  # the shipped fit's check
    shipped = fit.fit_profile(archs, totals, prior, unit_times=units, check_units=True, **quick)
    assert profiles[lp.FITTED_AS_PREDICTOR].calibration == shipped.profile.calibration
    assert profiles[lp.TOTALS_ONLY].calibration == fit.fit_profile(archs, totals, prior, **quick).profile.calibration
    assert info["unit_times_from"] == ["a_units.csv", "b_units.csv"] and info["n_unit_times"] == shipped.n_units > 0
    how = lp.refit_how(info)
    assert "`a_units.csv` and `b_units.csv`" in how and lp.FITTED_AS_PREDICTOR in how and lp.TOTALS_ONLY in how
    table = lp.refit_table(archs, totals, profiles)
    assert list(table) == [lp.FITTED_AS_PREDICTOR, lp.TOTALS_ONLY, "MACs-proportional", "params-proportional"]
    assert table[lp.FITTED_AS_PREDICTOR]["within_10pct"] > table[lp.TOTALS_ONLY]["within_10pct"]
    # Unit times of another session (each arch at its own speed): the check leaves them out, as the predictor's would.
    rng = np.random.default_rng(1)
    other = [{u: t * f for u, t in times.items()} for times, f in zip(units, np.exp(rng.uniform(-0.7, 0.7, len(units))))]
    profiles, info = lp.fitted_as_shipped(archs, totals, [("b_units.csv", other)], prior)
    assert list(profiles) == [lp.UNITS_LEFT_OUT, lp.WITH_LEFT_OUT_UNITS] and info["n_unit_times"] == 0
    assert profiles[lp.UNITS_LEFT_OUT].calibration == fit.fit_profile(archs, totals, prior, **quick).profile.calibration
    assert "left the same archs' unit times (`b_units.csv`) out" in lp.refit_how(info)
    # No unit profile (hw=cpu_int8): the totals-only fit alone, said so.
    profiles, info = lp.fitted_as_shipped(archs, totals, [("a_units.csv", [None] * 40)], prior)
    assert list(profiles) == [lp.NO_UNITS] and "no unit times were profiled" in lp.refit_how(info)
    with pytest.raises(ValueError, match="3 unit-time entries for 40 archs"):
        lp.fitted_as_shipped(archs, totals, [("a_units.csv", units[:3])], prior)


def test_memory_estimate_measures_under_the_searchs_default_allocator_settings(monkeypatch):
    # The benchmark measured with glibc's default malloc while a search, by default (train.keep_freed_memory: true),
    # has glibc keep freed memory (nas.train.keep_freed_memory), which moves tensors up to 32 MiB onto the heap: its
    # peaks were not those the estimate guards. Its processes now apply the search's default, and its results say so.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import memory_estimate

    from nas.arch import ArchConfig, StageConfig
    from nas.config import TrainConfig

    assert memory_estimate.search_keeps_freed_memory() is True  # what a search with the default config applies
    tiny = ArchConfig(stages=(StageConfig("conv", 1, 16), StageConfig("pool", 1, 16)), img_size=16)
    grown, applied = memory_estimate.measure(tiny, 1, "eval", keep_freed_memory=True)  # a real fresh process
    assert grown >= 0 and applied is _glibc()  # the setting took effect there (it tunes glibc's malloc only)
    assert memory_estimate.measure(tiny, 1, "eval", keep_freed_memory=False)[1] is False

    calls, written = [], {}
    monkeypatch.setattr(memory_estimate, "measure", lambda arch, batch, mode, *, keep_freed_memory:
                        calls.append(keep_freed_memory) or (1, keep_freed_memory))
    monkeypatch.setattr(memory_estimate, "write_results", lambda name, result, *, render_md:
                        written.update(result=result, md=render_md(result)))
    assert memory_estimate.main(["--name", "x"]) == 0
    assert set(calls) == {TrainConfig().keep_freed_memory} == {True} and written["result"]["keep_freed_memory"] is True
    assert "Allocator: glibc's malloc told to keep freed memory (`nas.train.keep_freed_memory`), as a search" in written["md"]
    calls.clear()
    assert memory_estimate.main(["--name", "x", "--glibc-malloc-defaults"]) == 0
    assert set(calls) == {False} and written["result"]["keep_freed_memory"] is False
    assert "Allocator: glibc's default malloc settings, not the search's default" in written["md"]
    # the committed results, measured before: their Markdown says under which settings
    old = json.loads((RESULTS / "memory_estimate_fused.json").read_text())
    assert "measured before the script applied the search's" in memory_estimate.render_md(old)


def _glibc() -> bool:
    import platform

    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_int8_saturation_findings_are_computed_from_the_rows(monkeypatch):
    # The benchmark's Findings lines and bold cells come from its rows: which runtimes are outside the tolerance, the
    # ranges of their agreement and of their accuracy against the torch int8 model, per runtime and per model kind.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import int8_saturation

    def row(name: str, attention: bool, onnx: tuple[float, float], reference: tuple[float, float], acc: float) -> dict:
        agree = {k: {"max_abs_diff": 0.0, "max_rel_diff": d, "top1_agreement": t,
                     "within_tolerance": d <= 0.15 and t >= 0.99}
                 for k, (d, t) in (("onnx", onnx), ("openvino", (0.2, 0.9)), ("onnx_reference", reference))}
        return {"name": name, "summary": "bn/relu | conv", "macs": 1000, "mixers": ["attn"] if attention else ["conv"],
                "attention": attention, "agreement": agree, "warning": None if attention else "off",
                "test_acc": {"torch_fp32": 0.9, "torch_int8": 0.8, "onnx": acc, "openvino": 0.79, "onnx_reference": 0.8}}

    result = {"command": "python experiments/int8_saturation.py", "machine": "cpu", "python": "3.11", "date": "d",
              "versions": {"onnxruntime": "1"}, "wall_s": 60.0, "train": {"epochs": 1, "subset": 100, "seed": 0},
              "calibration_size": 300, "test_images": 500, "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99},
              "runtimes": int8_saturation.RUNTIMES,
              "host_int8": {"int8_saturates": True, "vnni_flags_present": [], "vnni_flags_checked": ["avx512_vnni"],
                            "avx2": True, "avx512f": False},
              "rows": [row("a", True, (0.05, 0.995), (0.01, 0.999), 0.81), row("b", False, (0.2, 0.97), (0.01, 1.0), 0.78)]}
    md = int8_saturation.render(result)
    assert "VNNI flags present: none" in md and "`int8_saturates` = True" in md
    assert "| a (`bn/relu \\| conv`) | attn | 1,000 | 5.0% / 99.50% | **20.0% / 90.00%** | 1.0% / 99.90% |" in md
    assert ("- onnxruntime (fused int8 kernels): 1 of 2 models within tolerance; max rel diff 5.0% to 20.0%, same top-1 "
            "class 97.00% to 99.50%; test accuracy minus torch int8 -2.00 to +1.00 pt (outside: b).") in md
    assert "- onnxruntime operator by operator (reference): 2 of 2 models within tolerance; max rel diff 1.0%, " in md
    assert "- Models with attention (1): max rel diff onnxruntime fused 5.0%, OpenVINO 20.0%." in md
    assert "would warn (`int8_agreement_warning`) for 1 of 2 models" in md


def test_latency_predictor_refit_keeps_the_profiles_more_specific_calibrated_on(tmp_path, monkeypatch):
    # --reuse refits from the committed CSVs, whose rows predate the family/ISA recording ("AMD EPYC; 2 cpus; Linux ..."):
    # it rewrote conf/hw/cpu.fitted.yml's `calibrated_on: "AMD EPYC; avx512f"` as "AMD EPYC". A small synthetic CSV here.
    from nas.arch import ArchConfig, StageConfig
    from nas.errors import DataError
    from nas.latency.measure import Measurement, read_measurements, write_measurements

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_predictor

    archs = [ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=w),), in_chans=1, img_size=28) for w in (8, 16, 24)]

    def rows(machine: str) -> list:
        write_measurements(tmp_path / "fit.csv", [Measurement(a, "openvino", "fp32", 1, 0.5, 0.4, 0.6, 30, machine)
                                                  for a in archs])
        return read_measurements(tmp_path / "fit.csv")

    def profile(calibrated_on: str) -> Path:
        path = tmp_path / "chip.yaml"
        path.write_text(f"name: chip\nruntime: openvino\ncalibrated_on: {json.dumps(calibrated_on)}\n"
                        f"calibration: {json.dumps(fitted_calibration({'conv': {'fixed': 1.0}}))}\n")
        return path

    old = rows("AMD EPYC; 2 cpus; Linux 6.18.44-fc-v595")
    kept, note = latency_predictor.refit_machine(old, what="chip", shown="conf/hw/chip.yaml",
                                                 profile=profile("AMD EPYC; avx512f"))
    assert kept == "AMD EPYC; avx512f"
    assert note == ("The measurements' `machine` column records the CPU as 'AMD EPYC' (rows taken before its family/model "
                    "numbers or vector instructions were recorded); the refit keeps conf/hw/chip.yaml's more specific "
                    "`calibrated_on: AMD EPYC; avx512f`, of the same model name, which these rows do not contradict.")
    # A fresh session (no profile to keep from), another model name, or rows that say more: the rows' own, no sentence.
    assert latency_predictor.refit_machine(old, what="chip", shown="x") == ("AMD EPYC", "")
    assert latency_predictor.refit_machine(old, what="chip", shown="x", profile=profile("Intel(R) Xeon(R) Processor")) == (
        "AMD EPYC", "")
    assert latency_predictor.refit_machine(old, what="chip", shown="x", profile=tmp_path / "none.yaml") == ("AMD EPYC", "")
    zen2 = rows("AMD EPYC; 2 cpus; Linux 6.18; family 23 model 49 stepping 0; avx2")
    assert latency_predictor.refit_machine(zen2, what="chip", shown="x", profile=profile("AMD EPYC; avx512f")) == (
        "AMD EPYC; family 23 model 49; avx2", "")
    with pytest.raises(DataError, match="^chip: measurements from 2 machines"):  # rows of two machines: refused as before
        latency_predictor.refit_machine(old + rows("Intel(R) Xeon(R) Processor; 2 cpus; Linux 6.18"), what="chip",
                                        shown="x", profile=profile("AMD EPYC; avx512f"))


def test_latency_unit_sums_markdown_renders_from_its_committed_json(monkeypatch):
    # The committed Markdown (with its paragraph on the +-10% target) is what render_md makes of the committed JSON:
    # numbers quoted from it (experiments/README.md) are the measured ones.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_unit_sums

    folder = RESULTS / "latency"
    result = json.loads((folder / "unit_sums.json").read_text())
    md = latency_unit_sums.render_md(result)
    assert md == (folder / "unit_sums.md").read_text()
    assert "within +-10% for cpu 94% (stride-4 metaformer_s 83%)" in md
    assert set(result["sessions"]) == {"cpu", "cpu_zen2", "cpu_xeon"}


def test_model_dependent_units_markdown_renders_from_its_committed_json_and_its_verdict_follows_the_bar(monkeypatch):
    # The committed Markdown is what render_md makes of the committed JSON (numbers quoted from it are the measured
    # ones), and its verdict is computed: adopt only a form more than one standard error above `shipped` on the splits
    # that did not choose it, and not lower on the committed split.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_model_dependent_units as mdu

    folder = RESULTS / "latency"
    result = json.loads((folder / "model_dependent_units.json").read_text())
    assert mdu.render_md(result) == (folder / "model_dependent_units.md").read_text()
    assert "**Verdict** (the bar" in mdu.render_md(result)
    chosen = result["chosen"]
    better = json.loads(json.dumps(result))
    better["check"][chosen].update(diff=0.02, se=0.005)
    better["committed"][chosen]["within_10pct"] = better["committed"]["shipped"]["within_10pct"]
    assert mdu.render_md(better).rstrip().splitlines()[-3].endswith(": adopt.")
    better["committed"][chosen]["within_10pct"] = better["committed"]["shipped"]["within_10pct"] - 0.01
    assert mdu.render_md(better).rstrip().splitlines()[-3].endswith(": not adopted.")
    better["committed"][chosen]["within_10pct"] = better["committed"]["shipped"]["within_10pct"]
    better["check"][chosen].update(diff=0.004, se=0.008)
    assert mdu.render_md(better).rstrip().splitlines()[-3].endswith(": not adopted.")


def test_zen4b_form_markdown_renders_from_its_committed_json_and_its_rebuilt_pipeline_is_the_shipped_one(monkeypatch):
    # The committed Markdown is what render_md makes of the committed JSON (its findings are computed from it); the
    # forms compared are the shipped pipeline re-built with one change, so its `shipped` row must be `fit_profile`'s
    # predictions, and a form is called adopted only where it is better on every session.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_zen4b_form as z

    folder = RESULTS / "latency"
    result = json.loads((folder / "zen4b_form.json").read_text())
    assert z.render_md(result) == (folder / "zen4b_form.md").read_text()
    assert set(result["sessions"]) == {"cpu", "cpu_zen2", "cpu_xeon", "cpu_zen4b"}
    assert all(s["shipped_vs_fit_profile_max_rel_diff"] < 1e-6 for s in result["sessions"].values())
    assert "nothing is adopted" in z.render_md(result)
    better = json.loads(json.dumps(result))
    for s in better["sessions"].values():
        s["committed"]["per-input scale"]["all"]["within_10pct"] = 1.0
        for split in s["splits"]:
            split["per-input scale"] = split["shipped"] + 0.02
    assert "Better on every session: per-input scale." in z.render_md(better)


def test_zen4b_form_screen_leaves_out_the_unit_profiles_whose_call_ran_at_another_speed(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import numpy as np

    import latency_zen4b_form as z

    # Ratios call / median 1, 1.05, 1, 1.3, 1 and one arch without a timed call: relative to their median (1).
    data = {"call": np.array([100.0, 210.0, 300.0, 650.0, 400.0, np.nan]),
            "y_us": np.array([100.0, 200.0, 300.0, 500.0, 400.0, 80.0])}
    agreement = z.call_agreement(data)
    assert np.allclose(agreement[:5], [1.0, 1.05, 1.0, 1.3, 1.0])
    times = [{"stem": float(i)} for i in range(6)]
    # Off by 30%: left out; within 10%, or no call timed: kept.
    assert z.screened(times, agreement) == [times[0], times[1], times[2], None, times[4], times[5]]


def test_units_retake_markdown_renders_from_its_committed_json_and_names_the_best_held_out_share(monkeypatch):
    # The committed Markdown is what render_md makes of the committed JSON; its finding quotes the best held-out share
    # over every fit it shows (sessions and screened fits alike), so a better fit added to the JSON changes it.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_units_retake as u

    folder = RESULTS / "latency"
    result = json.loads((folder / "units_retake.json").read_text())
    assert u.render_md(result) == (folder / "units_retake.md").read_text()
    best = max(s["held_out"]["within_10pct"] for s in [*result["sessions"].values(), *result["screened"].values()])
    assert f"the best held-out share is {u._pct(best)} " in u.render_md(result)
    better = json.loads(json.dumps(result))
    next(iter(better["screened"].values()))["held_out"]["within_10pct"] = 0.93
    assert "meets issue 3's target on this machine: the best held-out share is 93.0% " in u.render_md(better)


_FULL_DISK_LINE = ("error: cannot write {} (No space left on device); fix that (free space, a read-only disk, the file size "
                   "limit) and rerun the same command\n")


@pytest.mark.parametrize("script", ["balanced_metric.py", "calibration_batches.py"])
def test_script_ends_a_full_disk_in_one_line(script, tmp_path, monkeypatch, capsys):
    # The scripts call nas.data.load_dataset themselves, which creates data.cache_dir: on a full disk they ended in a
    # traceback of the OSError, where every command says `cannot write <file> (<why>)` in one line and exits 1.
    import errno

    import nas.data

    cache = tmp_path / "cache"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(cache))

    monkeypatch.setattr(nas.data, "load_dataset", full_disk)
    monkeypatch.setattr(sys, "argv", [str(EXPERIMENTS / script)])
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(EXPERIMENTS / script), run_name="__main__")
    assert exited.value.code == 1
    assert capsys.readouterr().err == _FULL_DISK_LINE.format(cache)


def test_one_line_on_failed_write_names_the_file_inside_a_librarys_error_and_leaves_other_errors(monkeypatch, capsys):
    import errno

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    from _common import one_line_on_failed_write

    with pytest.raises(SystemExit) as exited, one_line_on_failed_write():
        try:
            raise OSError(errno.EFBIG, "File too large", "results/x.json")
        except OSError as e:
            raise RuntimeError("a library's own error") from e
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("error: cannot write results/x.json (File too large); fix that")
    with pytest.raises(ValueError, match="bad"), one_line_on_failed_write():
        raise ValueError("bad")
    with pytest.raises(PermissionError), one_line_on_failed_write():  # not the disk's state: Python's own message
        raise PermissionError(errno.EACCES, "Permission denied", "results")


def test_every_script_runs_its_main_block_inside_one_line_on_failed_write():
    import ast

    for path in sorted(EXPERIMENTS.glob("*.py")):
        if path.name == "_common.py":
            continue
        blocks = [node for node in ast.parse(path.read_text()).body if isinstance(node, ast.If)
                  and ast.unparse(node.test) == "__name__ == '__main__'"]
        assert len(blocks) == 1, path.name
        body = blocks[0].body
        assert len(body) == 1 and isinstance(body[0], ast.With), path.name
        assert ast.unparse(body[0].items[0].context_expr) == "one_line_on_failed_write()", path.name


def test_final_recipe_rows_go_on_from_their_partial_file_keyed_by_the_teachers_weights(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # final_recipe.py handed final_train its teachers' archs and no partial file: a distillation row stopped after
    # hours started again from epoch 0, and its folder was deleted before training. It now keeps the search's file
    # (final_train.partial.pt), whose key holds the teacher weights: a teacher retrained at the same path is another.
    import copy
    import logging
    import types

    import torch

    import nas.data
    import nas.latency.measure
    import nas.train
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import load_checkpoint, save_checkpoint
    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.model import build_model
    from nas.results import PARTIAL_FILE

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import final_recipe

    arch = ArchConfig(stages=(StageConfig("conv", 1, 8),), in_chans=1, img_size=8, num_classes=3)
    x = torch.randint(0, 256, (120, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = Dataset("t", Split(x, torch.arange(120) % 3), Split(x[:12], torch.arange(12) % 3),
                   Split(x[12:24], torch.arange(12) % 3), ("a", "b", "c"), (0.5,), (0.25,))
    monkeypatch.setattr(nas.data, "load_dataset", lambda cfg: data)
    monkeypatch.setattr(nas.latency.measure, "machine_info", lambda: {})
    compressed = {"fp32": {"test_acc_torch": 0.5, "test_acc": 0.5},
                  "int8": {"test_acc": 0.5, "test_acc_onnx": 0.5, "qat_epochs": 0}}
    monkeypatch.setitem(sys.modules, "compress.pipeline",
                        types.SimpleNamespace(compress_checkpoint=lambda folder, **kw: compressed))
    monkeypatch.setattr(final_recipe, "write_results", lambda *a, **k: None)

    composed = to_run_config(compose_cfg("data.root=/unused", "hw=edge_npu", "final_train=smoke", "final_train.subset=null",
                                         "final_train.batch_size=30", "final_train.precision=fp32", "final_train.threads=1"))
    composed.search.memory_budget_gb = None

    def run_config():  # _retrain sets the run's epochs and compression settings: a fresh copy each time
        return copy.deepcopy(composed)

    teacher_path = tmp_path / "teacher.pt"

    def write_teacher(seed):
        torch.manual_seed(seed)
        save_checkpoint(teacher_path, build_model(arch), arch, meta={"val_acc": 0.5})

    args = argparse.Namespace(epochs=[2], recipe=[], teacher=[str(teacher_path)], name="t")
    source = final_recipe.Source(arch, 3, [], None, "test", "test")
    out_dir = tmp_path / "out"

    def retrain(*, stop):
        caplog.clear()
        if stop:  # Ctrl-C as epoch 2 starts: `fit` draws each epoch's batches from one iterate_batches call
            real, calls = nas.train.iterate_batches, []

            def batches(*a, **k):
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return real(*a, **k)

            monkeypatch.setattr(nas.train, "iterate_batches", batches)
            try:
                with pytest.raises(KeyboardInterrupt):
                    final_recipe._retrain(args, [], run_config(), out_dir, source)
            finally:
                monkeypatch.setattr(nas.train, "iterate_batches", real)
            return []
        with caplog.at_level(logging.INFO, logger="nas.results"):
            assert final_recipe._retrain(args, [], run_config(), out_dir, source) == 0
        return [(r.levelno, r.getMessage()) for r in caplog.records]

    write_teacher(1)
    retrain(stop=True)
    [folder] = out_dir.iterdir()
    assert [p.name for p in folder.iterdir()] == [PARTIAL_FILE]  # epoch 1 kept
    said = retrain(stop=False)
    assert (logging.INFO, f"resuming final training of {arch.arch_id} at epoch 1/2") in said
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "model.pt"]  # the partial file gone with model.pt
    assert load_checkpoint(folder / "model.pt").meta["final_train"]["epochs"] == 2
    retrain(stop=True)
    assert (folder / PARTIAL_FILE).is_file()
    write_teacher(2)  # retrained at the same path: the same row folder, other weights
    said = retrain(stop=False)
    assert [m for level, m in said if level >= logging.WARNING] == [
        f"{folder / PARTIAL_FILE} is ignored and will be overwritten: it is of another final training (it differs in "
        "teacher_weights)"]
    assert not any(m.startswith("resuming") for _, m in said)
