"""End-to-end search on a tiny generated dataset: files, resume, interruption, budget, errors."""

import contextlib
import csv
import dataclasses
import datetime


import errno
import gc
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import optuna
import pytest
import torch

import nas
import nas.study_export as rebuild_mod
import nas.run_folder as run_folder_mod
import nas.search as search_mod
import nas.search_checks as checks_mod
import nas.trials as trials_mod
from nas.config import to_run_config
from nas.errors import ConfigError, Terminated, counted
from nas.search import export_study, run_search
from nas.stats import accuracy_interval
from nas.sweep import catches
from conftest import deliver_signal, signal_when_there

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ["study.db", "config.yaml", "search.log", "trials.csv", "pareto.csv", "pareto.json", "report.html", "report.md",
             "pareto.png", "latency_breakdown.png", "mixers.png"]
MEMBER_FILES = ["arch.json", "metrics.json", "model.onnx", "model.pt", "test_predictions.csv"]


# compress=smoke with fewer images to calibrate int8 on (NNCF feeds them one at a time: most of a compression's time)
# and to recover and fine-tune on, for the tests that check which files a compression writes and what they say, not
# how accurate they are.
_SMALL_COMPRESSION = ("compress.recover.subset=64", "compress.quantize.qat.subset=64", "compress.quantize.calibration_size=8")


def _overrides(tiny_idx_root, tmp_path, *extra):
    """The tiny search the tests run: its trainings on one thread (on a 2-core machine whose other core is busy, a
    training's two threads keep waiting on each other); `extra` after it, so a test may ask for more (train.threads=2)."""
    return [f"data.root={tiny_idx_root}", "train=smoke", "train.subset=128", "train.batch_size=32", "train.threads=1",
            "final_train.threads=1",
            f"search.runs_dir={tmp_path}", "search.study_name=t", "search.progress=false", "compress=none", "final_train=none", *extra]


@pytest.fixture(scope="module")
def finished_search(tiny_idx_root, tmp_path_factory, compose_cfg):
    """A finished one-trial search (`_overrides(..., "search.n_trials=1")`), run once for the tests that start from such
    a run folder; each takes its own copy with `_copy_of(finished_search, tmp_path)`."""
    return run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path_factory.mktemp("finished"), "search.n_trials=1")))


def _copy_of(result, tmp_path):
    """`result`'s run folder copied to `tmp_path/t` (a run folder can be moved: README), and its result there, as the
    search with `search.runs_dir=tmp_path` would have returned it."""
    shutil.copytree(result.run_dir, tmp_path / "t")
    return dataclasses.replace(result, run_dir=(tmp_path / "t").resolve(),
                               files={name: (tmp_path / "t" / name).resolve() for name in result.files})


def _rows(run_dir):
    return _rows_of(run_dir / "trials.csv")


def _rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _few(tiny_idx_root, tmp_path, *extra):
    """`_overrides` with half the proxy-training images (two steps a trial): for the tests that check which files a
    search writes and what they say, not how well its candidates learn."""
    return ["train.subset=64" if o == "train.subset=128" else o for o in _overrides(tiny_idx_root, tmp_path, *extra)]


def test_tiny_search_writes_every_file_and_resumes(tiny_idx_root, tmp_path, compose_cfg):
    result = run_search(compose_cfg(*_few(tiny_idx_root, tmp_path, "search.n_trials=2")))
    run_dir = tmp_path / "t"
    assert result.run_dir == run_dir.resolve() and result.n_complete == 2 and not result.interrupted
    for name in RUN_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    rows = _rows(run_dir)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert all(0 <= float(r["val_acc"]) <= 1 and float(r["latency_ms"]) > 0 and int(r["params"]) > 0 for r in rows)

    pareto = json.loads((run_dir / "pareto.json").read_text())
    members = pareto["members"]
    assert members and pareto["hw"] == "edge_npu" and "not calibrated" in pareto["latency_predictor"]
    # when it was written, with its UTC offset (the report shows it; a bare local time is ambiguous across machines)
    assert datetime.datetime.fromisoformat(pareto["created"]).utcoffset() is not None
    # edge_npu has no runtime here: its members are not timed, and the report says why its column is all '–'
    assert all(m["measured_latency_ms"] is None for m in members)
    assert pareto["measured_latency_missing"].startswith("hw=edge_npu has no runtime on this host (its hw.runtime is "
                                                         "empty), so its latencies are predicted, not timed; profiles "
                                                         "timed here: hw=cpu, ")
    assert f"'measured on host' is empty: {pareto['measured_latency_missing']}." in (run_dir / "report.md").read_text()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(m["arch_id"] for m in members)
    for m in members:
        folder = run_dir / m["checkpoint"]
        assert sorted(p.name for p in folder.iterdir()) == MEMBER_FILES
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["input"]["shape"] == [None, 1, 28, 28] and len(metrics["output"]["class_names"]) == 10
        assert metrics["input"]["preprocessing"] == "idx grey images as stored; uint8 / 255"
        # each class's test images, which compress.run's refusal of other test images names the changed classes from
        by_class = metrics["test_images"]["per_class"]
        assert len(by_class) == 10 and sum(n for n, _ in by_class) == pareto["data"]["images"]["test"]
        assert all(re.fullmatch(r"[0-9a-f]{8}", d) for _, d in by_class) and len({d for _, d in by_class}) == 10
        per_class, names = metrics["test_acc_per_class"], metrics["output"]["class_names"]
        assert sorted(per_class) == sorted(names) and all(v is None or 0 <= v <= 1 for v in per_class.values())
        assert 0 <= metrics["test_acc"] <= 1 and metrics["test_acc_onnx"] == pytest.approx(metrics["test_acc"], abs=0.011)
        low, high = metrics["test_acc_ci95"]  # how far the test split lets one trust it, in pareto.json too
        assert low < metrics["test_acc"] < high and m["test_acc_ci95"] == [low, high]
        n_val = pareto["data"]["images"]["val"]  # ... and the val accuracy the search ranked it by, from the val images
        assert m["val_acc_ci95"] == list(accuracy_interval(round(m["val_acc"] * n_val), n_val))
        with open(folder / "test_predictions.csv") as f:  # model.pt's verdict on each test image
            predictions = list(csv.DictReader(f))
        assert len(predictions) == 100 and {r["label"] for r in predictions} <= set(names)
        assert np.mean([r["label"] == r["predicted"] for r in predictions]) == pytest.approx(metrics["test_acc"])
        assert sum(l["ms"] for l in metrics["latency_breakdown"]) == pytest.approx(metrics["latency_ms"])
        # the checkpoint alone rebuilds the model; the ONNX file alone runs it (deployment contract)
        model = nas.load_checkpoint(folder)
        assert model.meta["classes"] == metrics["output"]["class_names"]  # the weights know what their logits mean
        assert model.meta["data_root"] == str(tiny_idx_root.resolve())  # and where their images were (compress.run names it)
        x = torch.rand(2, 1, 28, 28)
        onnx_out = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"pixels": x.numpy()})[0]
        np.testing.assert_allclose(onnx_out, model(x).detach().numpy(), atol=1e-4, rtol=1e-4)

    # Members compared image by image: each with the next faster one, and with the most accurate one
    first, best = members[0], max(members, key=lambda m: m["test_acc"])
    assert first["vs_faster"] is None and best["vs_best"] is None
    for faster, m in zip(members, members[1:]):
        assert m["vs_faster"]["arch_id"] == faster["arch_id"] and 0 < m["vs_faster"]["p_value"] <= 1
    assert all(m["vs_best"]["arch_id"] == best["arch_id"] for m in members if m is not best)
    predictions = run_dir / first["checkpoint"] / "test_predictions.csv"
    kept = predictions.read_text()
    predictions.unlink()  # a member folder from before the file existed: written again from its model.pt

    # config.yaml edited by hand (it is the run's record, not read): kept aside, and search.log says where settings go
    edited = (run_dir / "config.yaml").read_text().replace("n_trials: 2", "n_trials: 5")
    (run_dir / "config.yaml").write_text(edited)

    # Same study name again with a larger target: the finished trials are kept, one is added.
    result2 = run_search(compose_cfg(*_few(tiny_idx_root, tmp_path, "search.n_trials=3")))
    assert (run_dir / "config.yaml.edited").read_text() == edited and "n_trials: 3" in (run_dir / "config.yaml").read_text()
    assert "config.yaml was edited since a search wrote it: kept as config.yaml.edited" in (run_dir / "search.log").read_text()
    assert predictions.read_text() == kept  # (the seeded third trial leaves the first member on the front)
    rows2 = _rows(run_dir)
    assert result2.n_complete == 3 and len(rows2) == 3
    # The resumed sampler does not replay the first run's random start-up trials (trial 2 was trial 0's arch again)
    assert len({r["arch_id"] for r in rows2}) == 3
    for before, after in zip(rows, rows2):
        assert (before["number"], before["arch_id"], before["val_acc"]) == (after["number"], after["arch_id"], after["val_acc"])

    # A front member's trial weights deleted by hand: its up-to-date folder is all the files need, and it is kept.
    (run_dir / "trials" / f"{first['arch_id']}.pt").unlink()
    again = export_study(compose_cfg(*_few(tiny_idx_root, tmp_path, "search.n_trials=3")))
    assert first["arch_id"] in [m["arch_id"] for m in again.pareto] and (run_dir / first["checkpoint"] / "model.pt").is_file()
    # Its folder out of date as well (another final_train recipe): a final training starts from scratch and needs only
    # the trial's seed (nas.results.train_seed), so the member is final-trained without the trial's file. (Few images:
    # which members train is checked.)
    again = run_search(compose_cfg(*_few(tiny_idx_root, tmp_path, "search.n_trials=3", "final_train=smoke",
                                         "final_train.subset=64", "final_train.threads=1")))
    assert first["arch_id"] in [m["arch_id"] for m in again.pareto]
    assert nas.load_checkpoint(run_dir / first["checkpoint"]).meta["final_train"]["epochs"] == 2
    # With final_train=none the proxy weights are the member: its folder gone too, it is left out with a warning
    shutil.rmtree(run_dir / first["checkpoint"])
    again = run_search(compose_cfg(*_few(tiny_idx_root, tmp_path, "search.n_trials=3", "final_train=none")))
    assert first["arch_id"] not in [m["arch_id"] for m in again.pareto]
    assert f"Pareto member {first['arch_id']} (trial {first['number']}) is left out of the run's files" in (
        run_dir / "search.log").read_text()
    assert next(r for r in _rows(run_dir) if r["arch_id"] == first["arch_id"])["is_pareto"] == "True"


def test_interrupt_keeps_finished_trials_and_rerun_completes(tiny_idx_root, tmp_path, compose_cfg, monkeypatch, capfd):
    calls = {"n": 0}
    real_train = trials_mod.train_candidate

    def train_then_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trials_mod, "train_candidate", train_then_ctrl_c)
    cfg = compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=3"))
    result = run_search(cfg)
    assert result.interrupted and result.n_complete == 1
    assert (tmp_path / "t" / "report.html").is_file()
    first = _rows(tmp_path / "t")
    assert [r["state"] for r in first] == ["COMPLETE", "FAIL", "WAITING"]  # the interrupted one, queued to run again
    assert first[1]["fail_reason"] == "interrupted (Ctrl-C or SIGTERM); rerun the same command to resume"
    assert "Traceback" not in capfd.readouterr().err  # Optuna's 80-line traceback of the KeyboardInterrupt is not shown

    # Ctrl-C again, during the members' final training: the pareto files and the report agree with trials.csv.
    import nas.results as results_mod

    monkeypatch.setattr(trials_mod, "train_candidate", real_train)
    monkeypatch.setattr(results_mod, "final_train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=3"), "final_train=smoke"))
    assert result.interrupted and result.n_complete == 3
    # The interrupted trial's architecture was queued again and trained first, not sampled past.
    assert _rows(tmp_path / "t")[2]["arch_id"] == first[1]["arch_id"] and _rows(tmp_path / "t")[2]["state"] == "COMPLETE"
    assert json.loads((tmp_path / "t" / "pareto.json").read_text())["n_trials_finished"] == 3
    assert "**Trials finished:** 3\n" in (tmp_path / "t" / "report.md").read_text()
    # The last line counted pareto.json's members ("0 on the Pareto front") while trials.csv marked the front: it counts
    # the front, and says how many of it the run's files hold yet.
    front_ids = {r["arch_id"] for r in _rows(tmp_path / "t") if r["is_pareto"] == "True"}
    front = len(front_ids)
    assert front >= 1 and not json.loads((tmp_path / "t" / "pareto.json").read_text())["members"]
    # pareto.json read alone says so: the front's members it lacks, for the rerun to add
    assert set(json.loads((tmp_path / "t" / "pareto.json").read_text())["members_missing"]) == front_ids
    assert (tmp_path / "t" / "search.log").read_text().splitlines()[-1].endswith(
        f"; {front} on the Pareto front, 0 of them in pareto.json (the report says why the others are left out)")

    monkeypatch.undo()
    result = run_search(cfg)
    rows = _rows(tmp_path / "t")
    assert result.n_complete == 3 and not result.interrupted
    assert json.loads((tmp_path / "t" / "pareto.json").read_text())["members_missing"] == []  # the whole front
    assert rows[0]["val_acc"] == first[0]["val_acc"]

    # An emptied study database opens as a new study: refused, instead of retraining over trials/.
    weights = sorted((tmp_path / "t" / "trials").iterdir())
    (tmp_path / "t" / "study.db").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"study 't' holds no trials, but .*trials.csv lists 4: its database was lost"):
        run_search(cfg)
    assert sorted((tmp_path / "t" / "trials").iterdir()) == weights and len(_rows(tmp_path / "t")) == 4


def test_crashing_candidates_are_recorded_as_failed_and_the_search_goes_on(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    from nas.train import TrainingDiverged

    real_train = trials_mod.train_candidate
    calls = {"n": 0}

    def crash_first_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            torch.zeros(2, 3) @ torch.zeros(2, 3)  # a genuine shape error from torch
        if calls["n"] == 2:
            raise MemoryError("cannot allocate 4 GiB")
        if calls["n"] == 3:
            raise TrainingDiverged("training loss became nan (lr=0.003); the candidate is unstable")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trials_mod, "train_candidate", crash_first_three)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.sampler=random")))
    rows = _rows(tmp_path / "t")
    assert result.n_complete == 2 and [r["state"] for r in rows] == ["FAIL", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    reasons = [r["fail_reason"] for r in rows[:3]]
    assert reasons[0].startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied")
    assert reasons[1] == "MemoryError: cannot allocate 4 GiB"
    assert reasons[2].startswith("TrainingDiverged: training loss became nan")
    assert all(r["arch_id"] for r in rows)  # failed trials still say which architecture failed


def test_latency_budget_prunes_without_training(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    trained = []
    real_train = trials_mod.train_candidate
    monkeypatch.setattr(trials_mod, "train_candidate", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    budget = 0.30
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", f"search.latency_budget_ms={budget}",
                                                "search.sampler=random")))
    rows = _rows(tmp_path / "t")
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert len(complete) == 2 == len(trained) and result.n_complete == 2
    assert all(float(r["latency_ms"]) <= budget and r["feasible"] == "True" for r in complete)
    assert all(float(r["latency_ms"]) > budget and r["feasible"] == "False" and "budget" in r["fail_reason"] for r in pruned)
    assert all(m["latency_ms"] <= budget for m in result.pareto)
    # A budget just above the space's fastest arch: the search gives up after its cap of samples, and says why. (A cap
    # of 5, not the 50 a search takes: each sample is a trial in the study; the 50 of a real search pruned none more.)
    monkeypatch.undo()
    monkeypatch.setattr(trials_mod, "SAMPLES_PER_TRIAL", 5)
    collections = []  # a trial pruned before training built nothing for a full gc.collect to free (it was a large share)
    real_collect = trials_mod.gc.collect
    monkeypatch.setattr(trials_mod.gc, "collect", lambda *a: collections.append(1) or real_collect(*a))
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.latency_budget_ms=0.172",
                                                "search.sampler=random", "search.study_name=tight")))
    log_text = (tmp_path / "tight" / "search.log").read_text()
    assert result.n_complete == 0 and ("gave up after 5 sampled architectures with 0 of 1 trial finished: 5 in the "
                                       "study were over search.latency_budget_ms=0.172") in log_text
    assert len(_rows(tmp_path / "tight")) == 5 and collections == []
    # a rerun of the study with a looser budget or another space is refused (nas.study): the advice says to start a new one
    assert ("the budget admits few architectures of this space: raise it, or narrow the space to faster ones, in a new "
            "study (search.study_name=...): a study keeps its budget and space") in log_text
    # ... and a search stopped by its time limit says so. It reads the hw profiles (for its hints) once: each read
    # parses every hw file; it read them three times.
    monkeypatch.undo()
    reads = []
    real_profiles = search_mod.hw_profiles
    for module in (search_mod, checks_mod, nas.results):
        monkeypatch.setattr(module, "hw_profiles", lambda *a: reads.append(1) or real_profiles(*a))
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.timeout_s=0.001",
                                       "search.study_name=short")))
    assert re.search(r"search.timeout_s=0.001 reached: [01] of 2 trials finished; rerun the same command to go on",
                     (tmp_path / "short" / "search.log").read_text())
    assert len(reads) == 1


def test_a_test_size_fashion_mnist_does_not_use_is_named_in_search_log(tiny_idx_root, tmp_path, compose_cfg):
    # data=fashion_mnist keeps its own 10k test split: data.test_size=0.3 held nothing out, and the run said nothing.
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.sampler=random",
                                                "data.test_size=0.3")))
    log_text = (result.run_dir / "search.log").read_text()
    said = ("data.test_size=0.3 is not used: data=fashion_mnist has its own test split (100 images) from its idx files; "
            "leave it out")
    assert said in log_text and log_text.index(said) < log_text.index("study t: hw=")  # warned while the data loaded


def test_the_command_line_passes_the_keys_it_sets_to_run_search(tmp_path):
    # `python -m nas.search data.test_size=0.2` (the default) is a setting the user asked for: main hands run_search the
    # keys its command line set (Hydra's overrides), so that the warning about an unused split size is given for it too.
    code = ("import sys, nas.search as s\n"
            "def fake(cfg, *, overridden=()):\n"
            "    print('keys:', sorted(overridden), cfg.data.test_size); sys.exit(0)\n"
            "s.run_search = fake\n"
            "sys.argv = ['nas.search', *sys.argv[1:]]\n"
            "s.main()\n")
    out = subprocess.run([sys.executable, "-c", code, "data.test_size=0.2", "++search.seed=3", f"search.runs_dir={tmp_path}"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "keys: ['data.test_size', 'search.runs_dir', 'search.seed'] 0.2" in out


def test_a_study_made_before_a_rare_class_got_a_val_image_resumes_on_its_split(tmp_path, compose_cfg, monkeypatch):
    # 20, 20 and 4 images: val took none of the 4-image class before (0.34 of an image). Now it takes one, and a study
    # made then was refused as made with other images, its trials lost; it resumes on its own split, and says so.
    from PIL import Image
    from tests.test_data import _split_as_before

    rng = np.random.default_rng(0)
    for name, n in (("a", 20), ("b", 20), ("rare", 4)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    (tmp_path / "images" / "a" / "phone.heic").write_bytes(b"")  # left out, with a warning, by every read of the folder
    args = ["data=imagefolder", f"data.root={tmp_path / 'images'}", "train=smoke", "train.batch_size=8",
            f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=old", "search.progress=false", "compress=none",
            "final_train=none"]
    with monkeypatch.context() as m:
        _split_as_before(m, one_for_each=False)
        run_search(compose_cfg(*args, "search.n_trials=1"))
    result = run_search(compose_cfg(*args, "search.n_trials=2"))
    assert result.n_complete == 2
    log_text = (result.run_dir / "search.log").read_text()
    kept = (f"kept the split of {tmp_path / 'images'} that the study or checkpoint was made with, from before held-out "
            "images were chosen by their file paths and before a class rounded to none got a held-out image: a new "
            "study (or search) keeps each image in its split when photos are added or removed, and gets one in val")
    gap = ("class 'rare' (4 images) has no val image: the split a study or checkpoint was made with, from before a "
           "class rounded to none got one; a new search.study_name gets one; the val accuracy (which the search "
           "maximises) never looks at it")
    assert log_text.index(kept) < log_text.rindex(gap)  # both of the resumed run
    # The resumed run split its images the study's way without reading them again: their warning once a run.
    unread = f"{tmp_path / 'images'}: 1 image file of formats that are not read is left out"
    assert log_text.count(unread) == 2  # once for each run
    export_study(compose_cfg(*args))  # python -m nas.report's rebuild as well
    assert (result.run_dir / "search.log").read_text().count(unread) == 3


def test_host_profile_search_measures_its_pareto_members(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    import nas.config
    import nas.latency.profile
    from nas.latency.measure import cpu_model, cpu_signature, machine_info

    # The profile says it was fitted on another CPU model than this host's: the run warns, and says where it measured.
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "hw=cpu",
                                                "hw.calibrated_on=OtherCPU")))
    (member,) = result.pareto
    assert member["measured_latency_ms"] > 0
    assert json.loads((result.run_dir / "pareto.json").read_text())["measured_latency_missing"] is None
    metrics = json.loads((result.run_dir / member["checkpoint"] / "metrics.json").read_text())
    assert metrics["measured_latency_ms"] == member["measured_latency_ms"]
    assert "openvino fp32, 1 thread," in metrics["measured_latency_how"]
    assert metrics["measured_latency_on"] == cpu_signature(machine_info())  # as precisely as calibrated_on
    report = (result.run_dir / "report.md").read_text()
    assert "measured on host (ms)" in report
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert "calibrated on measurements from OtherCPU" in pareto["latency_predictor"]
    # and how far off the fit was on held-out archs, as hw=cpu's fitted file records it, in both reports
    cv = nas.config.load_hw_profile("cpu").cross_validated
    held_out = (f"; cross-validated ({cv['folds']} folds): {cv['within_10pct']:.0%} within +-10%, RMSPE {cv['rmspe']:.1%}")
    assert pareto["latency_predictor"].endswith(held_out)
    assert held_out in report and held_out in (result.run_dir / "report.html").read_text()
    warning = f"hw=cpu was calibrated on 'OtherCPU', but this host is {cpu_model(machine_info())!r}"
    assert pareto["latency_warning"].startswith(warning)
    assert any(line.startswith(warning) for line in _warnings_section(result.run_dir / "report.md"))
    assert warning in (result.run_dir / "search.log").read_text()
    # An int8 host profile times an int8 file of the member (model.onnx is float32: timed, it ran in float); quantized
    # on 2 random images, not 8, whose NNCF statistics took a good part of the test, and which the words name.
    monkeypatch.setattr(nas.latency.profile, "INT8_CALIBRATION_IMAGES", 2)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "hw=cpu_int8",
                                                "search.study_name=int8")))
    metrics = json.loads((result.run_dir / result.pareto[0]["checkpoint"] / "metrics.json").read_text())
    assert metrics["measured_latency_ms"] > 0 and metrics["measured_latency_how"].startswith(
        "an int8 QDQ export of model.pt (NNCF PTQ on 2 random images, as latency profiling exports) in openvino int8")


# Slow-only (`make test-slow`): the search's compression of its members and the report's table of them run in the fast
# suite in test_final_training_retrains_the_members_and_compression_follows_the_new_weights and
# test_own_rgb_images_go_through_search_compression_and_int8_export.
@pytest.mark.slow
def test_search_compresses_its_winners_and_the_report_shows_them(tiny_idx_root, tmp_path, compose_cfg):
    # few images for the int8 calibration (the slowest part, one image at a time through NNCF's hooks) and the trainings:
    # what is checked is which member is compressed and what its files and the report say, not how well
    overrides = [*(o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=2") if o != "compress=none"),
                 *_SMALL_COMPRESSION]
    result = run_search(compose_cfg(*overrides, "compress=smoke"))  # top_k=1, prune ratio 0.25
    best = max(result.pareto, key=lambda m: m["val_acc"])
    for m in result.pareto:
        folder = result.run_dir / m["checkpoint"]
        compressed = (folder / "compressed_metrics.json").is_file()
        assert compressed == (m["arch_id"] == best["arch_id"])  # only the top-1 member
    metrics = json.loads((result.run_dir / best["checkpoint"] / "compressed_metrics.json").read_text())
    assert metrics["pruned"]["pruned"] and metrics["int8"]["test_acc"] is not None
    for name in ("model_int8.onnx", "model_int8.xml", "model_int8.bin", "model_pruned.pt"):
        assert (result.run_dir / best["checkpoint"] / name).is_file()
    report = (result.run_dir / "report.md").read_text()
    assert "Compressed winners" in report and f"| {best['arch_id']} | int8 |" in report
    change = metrics["int8"]["changed_vs_before"]  # read from the run's files: images that changed from the pruned file
    assert f"vs model_pruned.onnx: {counted(change['now_wrong'], 'test image')} now wrong, {change['now_right']:,} now right" in report
    assert "Test accuracies in [brackets]: the 95% interval" in report
    whole = metrics["summary"]["int8_vs_fp32"]  # and the search's log says what shipping int8 changes, image by image
    assert (f"test acc fp32 {metrics['summary']['test_acc_fp32']:.2%} -> int8 {metrics['summary']['test_acc_int8']:.2%} ({whole['now_wrong']} "
            f"test image{'' if whole['now_wrong'] == 1 else 's'} now wrong, {whole['now_right']} now right, p") in (result.run_dir / "search.log").read_text()
    assert "compressed int8" in (result.run_dir / "report.html").read_text()
    # pareto.csv gives the compressed member's int8 model, as its files say; the others' int8 columns are empty
    rows = {r["arch_id"]: r for r in _rows_of(result.run_dir / "pareto.csv")}
    assert rows[best["arch_id"]]["int8_test_acc"] == f"{metrics['int8']['test_acc']:.6g}"
    assert rows[best["arch_id"]]["int8_macs"] == str(metrics["pruned"]["macs"])
    assert (result.run_dir / rows[best["arch_id"]]["int8_file"]).is_file()
    assert all(r["int8_test_acc"] == r["int8_file"] == "" for a, r in rows.items() if a != best["arch_id"])
    # A rerun with the same settings reuses the compressed files instead of redoing them.
    stamp = (result.run_dir / best["checkpoint"] / "model_int8.onnx").stat().st_mtime_ns
    run_search(compose_cfg(*overrides, "compress=smoke"))
    assert (result.run_dir / best["checkpoint"] / "model_int8.onnx").stat().st_mtime_ns == stamp


def test_pareto_csv_gives_the_int8_models_the_search_compressed_and_a_rebuild_gives_the_same_file(
        tiny_idx_root, tmp_path, compose_cfg, monkeypatch, capsys):
    # pareto.csv was written before the members were compressed: its int8 columns stayed empty after the search's
    # compression. The compression is stubbed (its files as compress.pipeline writes them): the search's part is asked.
    import compress.pipeline as pipeline_mod
    from nas.report import main

    def compress_front(run_dir, members, **kwargs):
        for m in members:
            (run_dir / m["checkpoint"] / "compressed_metrics.json").write_text(json.dumps({
                "hw": "edge_npu", "fp32": {"macs": 900}, "pruned": {"pruned": False},
                "int8": {"params": 321, "latency_ms": 0.04, "test_acc": 0.5, "test_acc_ci95": [0.25, 0.75],
                         "file": "model_int8.onnx"}}))
        return {}

    monkeypatch.setattr(pipeline_mod, "compress_front", compress_front)
    base = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")
            if o != "compress=none"]
    result = run_search(compose_cfg(*base, "compress=smoke"))
    (member,) = result.pareto
    written = (result.run_dir / "pareto.csv").read_text()
    (row,) = csv.DictReader(io.StringIO(written))
    assert {k: row[k] for k in ("int8_test_acc", "int8_test_acc_ci95_low", "int8_test_acc_ci95_high", "int8_latency_ms",
                                "int8_hw", "int8_params", "int8_macs", "int8_file", "int8_error")} == {
        "int8_test_acc": "0.5", "int8_test_acc_ci95_low": "0.25", "int8_test_acc_ci95_high": "0.75",
        "int8_latency_ms": "0.04", "int8_hw": "edge_npu", "int8_params": "321", "int8_macs": "900",
        "int8_file": f"checkpoints/{member['arch_id']}/model_int8.onnx", "int8_error": ""}
    # pareto.json damaged (cut short by a full disk, a copy): the read-only report names the rebuild from the study,
    # and that rebuild writes it, and pareto.csv, again
    (result.run_dir / "pareto.json").write_text((result.run_dir / "pareto.json").read_text()[:100])
    with pytest.raises(SystemExit) as refused:
        main([str(result.run_dir)])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pareto.json is not valid JSON (line ") and err.count("\n") == 1, err
    assert (f") in {result.run_dir}: damaged; rebuild the run folder's files from its study: python -m nas.report "
            f"search.runs_dir={tmp_path} search.study_name=t ") in err
    # `python -m nas.report` rebuilding the folder from its study (compress=none: the compressed files are kept)
    assert main(_overrides(tiny_idx_root, tmp_path, "search.export_onnx=false")) == 0
    assert (result.run_dir / "pareto.csv").read_text() == written
    assert json.loads((result.run_dir / "pareto.json").read_text())["members"][0]["arch_id"] == member["arch_id"]


def test_a_report_after_the_compression_was_interrupted_says_so_and_how_to_finish_it(
        tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    # Ctrl-C or SIGTERM in the members' compression: pareto.json was written before it and the run marker removed
    # before the report, which then said only "No compressed members (compress.members=none, or compression has not
    # run yet)". The compression is stubbed: the search's part is asked.
    import compress.pipeline as pipeline_mod

    def stopped(run_dir, members, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_mod, "compress_front", stopped)
    base = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")
            if o != "compress=none"]
    result = run_search(compose_cfg(*base, "compress=smoke"))
    assert result.stopped_by == signal.SIGINT
    said = "rerun the same command to compress the rest"
    assert said in json.loads((result.run_dir / "pareto.json").read_text())["compression_stopped"]
    report = (result.run_dir / "report.md").read_text()
    top = report.split("## ")[0]  # at its top, as a killed search's
    assert "**Not finished:** The search's compression of the Pareto members was interrupted (Ctrl-C)" in top
    assert said in top
    assert "No compressed members yet: the compression was stopped" in report
    assert "compression has not run yet" not in report
    assert said in (result.run_dir / "report.html").read_text()
    # the rerun that compresses them writes pareto.json anew: no such record is left
    monkeypatch.setattr(pipeline_mod, "compress_front", lambda run_dir, members, **kwargs: {})
    again = run_search(compose_cfg(*base, "compress=smoke"))
    assert again.stopped_by is None
    assert "compression_stopped" not in json.loads((again.run_dir / "pareto.json").read_text())
    assert "Not finished" not in (again.run_dir / "report.md").read_text()


def test_the_count_of_files_that_are_not_images_reaches_search_log(tmp_path, compose_cfg):
    # The info line counting the files of the class folders that are not images was logged while the data loaded,
    # before search.log existed, and only warnings were held for it: it reached the terminal alone. Windows' Thumbs.db
    # and desktop.ini, which a copied photo folder brings along, are skipped without being counted.
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
        (tmp_path / "images" / name / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (tmp_path / "images" / name / "desktop.ini").write_text("[.ShellClassInfo]")
    (tmp_path / "images" / "cat" / "notes.txt").write_text("my notes")
    result = run_search(compose_cfg(
        "data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=16", "train=smoke", "final_train=none",
        "compress=none", "search.n_trials=1", f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=own",
        "search.progress=false"))
    log_text = (result.run_dir / "search.log").read_text()
    said = f"{tmp_path / 'images'}: skipped 1 file that is not an image (e.g. {Path('cat', 'notes.txt')}); only "
    assert said in log_text and log_text.count(said) == 1
    assert log_text.index(said) < log_text.index("study own: hw=")  # where it happened: as the data loaded
    assert "][INFO] - " + said in log_text  # an info line, as on the terminal
    # not a warning about the setup: pareto.json (and the report's Warnings) do not list it
    assert not [w for w in json.loads((result.run_dir / "pareto.json").read_text())["setup_warnings"] if "skipped" in w]


def test_own_rgb_images_go_through_search_compression_and_int8_export(tmp_path, compose_cfg):
    # A user's image folder: 3 colour-coded classes of 20x20 RGB JPEGs, resized to 16x16 at load time.
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = ["red", "green", "blue"]
    for c, name in enumerate(classes):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(24):
            pixels = (rng.random((20, 20, 3)) * 80).astype(np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.jpg")
    (tmp_path / "images" / "red" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # a phone photo, not read
    result = run_search(compose_cfg(
        "data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=16", "train=smoke", "final_train=none",
        # PTQ on 8 images, not the smoke config's 32, whose NNCF statistics took most of the test: the int8 file is
        # checked to run and to take the images' shape, not for its accuracy
        "compress=smoke", "compress.quantize.calibration_size=8", "search.n_trials=1",
        f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=own", "search.progress=false"))
    # Warned while the data loaded, before the run folder existed: search.log has it too, ahead of the run's first line.
    log_text = (result.run_dir / "search.log").read_text()
    assert "1 image file of formats that are not read is left out (1 .heic" in log_text
    assert log_text.index("formats that are not read") < log_text.index("study own: hw=")
    (member,) = result.pareto
    folder = result.run_dir / member["checkpoint"]
    arch = json.loads((folder / "arch.json").read_text())
    assert (arch["in_chans"], arch["img_size"], arch["num_classes"]) == (3, 16, 3)
    assert json.loads((folder / "metrics.json").read_text())["input"]["preprocessing"] == (
        "decoded with Pillow, turned upright as the EXIF orientation says, converted to RGB "
        "(transparency dropped: the colours stored under transparent pixels are used as they are), 16-bit grey as round(value / 257), 16-bit colour as its high byte (value // 256); JPEGs decoded at 1/2, 1/4 or 1/8 scale where "
        "that keeps 2x the target size; the whole image stretched to 16x16 (bilinear, antialiased; not cropped); uint8 / 255")
    assert json.loads((folder / "metrics.json").read_text())["input"]["background"] is None  # compress.predict reads it
    assert json.loads((folder / "compressed_metrics.json").read_text())["int8"]["test_acc"] is not None
    assert [nas.load_checkpoint(folder / f).meta["classes"] for f in ("model.pt", "model_pruned.pt")] == [
        ["blue", "green", "red"]] * 2
    # The deployable files take raw [0, 1] RGB pixels of the training size and give one logit per class folder.
    image = np.asarray(Image.open(tmp_path / "images" / "blue" / "0.jpg").resize((16, 16)), dtype=np.float32) / 255
    for name in ("model.onnx", "model_int8.onnx"):
        session = ort.InferenceSession(str(folder / name))
        assert session.get_inputs()[0].shape[1:] == [3, 16, 16]
        (logits,) = session.run(None, {session.get_inputs()[0].name: image.transpose(2, 0, 1)[None]})
        assert logits.shape == (1, 3) and np.isfinite(logits).all()
    data = json.loads((result.run_dir / "pareto.json").read_text())["data"]
    assert data["classes"] == 3 and data["input"] == [3, 16, 16] and sum(data["images"].values()) == 72
    # 24 images per class, stratified: every class gives the same share to test (20%: 14 of 72, 4-5 per class)
    assert sum(data["per_class"]["test"].values()) == data["images"]["test"] and set(data["per_class"]["test"].values()) <= {4, 5}
    assert f"**Dataset:** imagefolder ({tmp_path / 'images'}): 3 classes, 3x16x16 images;" in (result.run_dir / "report.md").read_text()
    # Another folder under the same (default-like) study name: refused before any trial, not mixed into this front.
    for name in ("cat", "dog"):
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                (tmp_path / "other" / name).mkdir(parents=True, exist_ok=True) or tmp_path / "other" / name / f"{i}.png")
    with pytest.raises(ConfigError, match=r"study 'own' was made with other images \(classes: blue, green, red then, cat, "
                                          r"dog now; train/val/test images: 52/6/14 then, 17/2/5 now\)"):
        run_search(compose_cfg("data=imagefolder", f"data.root={tmp_path / 'other'}", "data.img_size=16", "train=smoke",
                               "final_train=none", "compress=none", "search.n_trials=2",
                               f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=own", "search.progress=false"))
    assert len(json.loads((result.run_dir / "pareto.json").read_text())["members"]) == 1


# Slow-only (`make test-slow`): an image folder searched and compressed, as
# test_own_rgb_images_go_through_search_compression_and_int8_export does in the fast suite, here scored by
# balanced accuracy (whose computation tests/test_train.py checks in the fast suite).
@pytest.mark.slow
def test_unbalanced_images_searched_for_balanced_accuracy_score_every_file_that_way(tmp_path, compose_cfg):
    # A defect folder: 36 'good' parts, 6 'crack', 6 'dent' (colour-coded so a tiny candidate learns something).
    from PIL import Image

    from compress.run import run_compress
    from nas.config import register_configs
    from tests.conftest import CONF_DIR

    rng = np.random.default_rng(1)
    for c, (name, n) in enumerate((("good", 36), ("crack", 6), ("dent", 6))):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(n):
            pixels = (rng.random((12, 12, 3)) * 80).astype(np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    overrides = ("data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=12", "data.val_size=0.25",
                 "train=smoke", "final_train=none", "compress=smoke", *_SMALL_COMPRESSION, "search.n_trials=1",
                 f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=parts", "search.progress=false")
    result = run_search(compose_cfg(*overrides, "data.metric=balanced_accuracy"))
    (member,) = result.pareto
    folder = result.run_dir / member["checkpoint"]
    assert json.loads((result.run_dir / "pareto.json").read_text())["metric"] == "balanced_accuracy"
    assert member["val_acc_ci95"] is None  # its interval needs each class's right count on val, which trials do not keep
    metrics = json.loads((folder / "metrics.json").read_text())
    int8 = json.loads((folder / "compressed_metrics.json").read_text())
    assert metrics["metric"] == int8["metric"] == "balanced_accuracy"
    # Every test accuracy is the mean of its per-class accuracies, not the share of images right.
    test_counts = json.loads((result.run_dir / "pareto.json").read_text())["data"]["per_class"]["test"]
    for scored in (metrics, int8["fp32"], int8["int8"]):
        per_class = [v for v in scored["test_acc_per_class"].values() if v is not None]
        assert len(per_class) == 3 and scored["test_acc"] == pytest.approx(sum(per_class) / 3)
        # ... and its interval combines the classes' own uncertainties (the rare classes' 2 test images dominate it)
        total = [test_counts[c] for c in scored["test_acc_per_class"]]
        right = [round(scored["test_acc_per_class"][c] * n) for c, n in zip(scored["test_acc_per_class"], total)]
        assert scored["test_acc_ci95"] == pytest.approx(list(accuracy_interval(right, total, balanced=True)))
    # The trial's val score is the balanced accuracy of its checkpoint on the val split.
    from nas.config import DataConfig, DataFormat, Metric
    from nas.data import load_dataset
    from nas.train import evaluate

    data = load_dataset(DataConfig(name="imagefolder", format=DataFormat.imagefolder, root=str(tmp_path / "images"),
                                   img_size=12, val_size=0.25, metric=Metric.balanced_accuracy))
    trial = nas.load_checkpoint(result.run_dir / "trials" / f"{member['arch_id']}.pt")
    assert trial.meta["metric"] == "balanced_accuracy"
    assert member["val_acc"] == pytest.approx(evaluate(trial, data.val, balanced=True))
    log_text = (result.run_dir / "search.log").read_text()
    assert "images, 3x12x12, scored by balanced accuracy); 0 of 1 trial done" in log_text
    assert "unbalanced classes" not in log_text  # the warning's advice is what this run does
    assert "**Accuracy:** balanced accuracy (data.metric)" in (result.run_dir / "report.md").read_text()
    # The study and its checkpoints are kept to the metric they were searched for.
    with pytest.raises(ConfigError, match=r'other data settings \(data.metric: "balanced_accuracy" then, "accuracy" now\)'):
        run_search(compose_cfg(*overrides))
    register_configs()
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="compress_run", overrides=[f"checkpoint={folder}", "data=imagefolder",
                                                              f"data.root={tmp_path / 'images'}", "data.img_size=12"])
    with pytest.raises(ConfigError, match=r"was trained and selected for balanced_accuracy, not data.metric='accuracy'; "
                                          r"pass data.metric=balanced_accuracy"):
        run_compress(cfg)
    # Another split of the same folder: its test images would include some the model was trained on. Refused.
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="compress_run", overrides=[
            f"checkpoint={folder}", "data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=12",
            "data.metric=balanced_accuracy", "data.split_seed=7", "data.test_size=0.3"])
    with pytest.raises(ConfigError, match=r"was tested on other images \(10 test images then, 14 here\); tested on these it "
                                          r"may be scored on images it was trained on: pass data.split_seed=0 data.val_size=0.25 "
                                          r"data.test_size=0.2 as its search did"):
        run_compress(cfg)


# Slow-only (`make test-slow`): two more processes sharing one study; the fast suite runs workers on one study in
# tests/test_faults.py (test_sigkilled_worker_on_postgres_is_retried_and_the_study_completes) and
# tests/test_study.py (test_workers_starting_together_on_a_fresh_database_all_join).
@pytest.mark.slow
def test_joblib_multirun_workers_share_one_study(tiny_idx_root, tmp_path):
    # The documented way to run N local workers: Hydra's joblib launcher, one job per search.worker value.
    cmd = [sys.executable, "-m", "nas.search", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "search.worker=0,1",
           *_overrides(tiny_idx_root, tmp_path, "search.n_trials=3", "train.threads=1", "search.export_onnx=false")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(tmp_path / "t")
    assert sum(r["state"] == "COMPLETE" for r in rows) == 3  # a study-wide total, not 3 per worker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # Hydra writes no folders of its own
    assert not (ROOT / "multirun.yaml").exists()
    log_text = (tmp_path / "t" / "search.log").read_text()
    assert len(set(re.findall(r"\[pid (\d+)\]", log_text))) == 2  # both workers ran and logged


def test_final_training_retrains_the_members_and_compression_follows_the_new_weights(tiny_idx_root, tmp_path, compose_cfg):
    # Few images for each training and for the int8 calibration (fed one at a time through NNCF's hooks, the slowest
    # part): what is checked is which weights are trained, compressed and reported, not how well.
    overrides = [*(o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")
                   if o not in ("compress=none", "final_train=none")),
                 "final_train.subset=64", "compress.recover.subset=64", "compress.quantize.qat.subset=64",
                 "compress.quantize.calibration_size=8"]
    result = run_search(compose_cfg(*overrides, "final_train=smoke", "compress=smoke"))
    (member,) = result.pareto
    folder = result.run_dir / member["checkpoint"]
    metrics = json.loads((folder / "metrics.json").read_text())
    final = metrics["final_train"]
    assert final["epochs"] == 2 and final["recipe"]["epochs"] == 2 and final["seconds"] > 0
    assert metrics["val_acc"] == final["val_acc"] == member["val_acc_final"]
    assert metrics["val_acc_proxy"] == member["val_acc"]  # the front is still ranked by the proxy
    # the shipped weights' val accuracy comes with its interval, in pareto.json, pareto.csv and the report's front table
    n_val = json.loads((result.run_dir / "pareto.json").read_text())["data"]["images"]["val"]
    low, high = member["val_acc_final_ci95"]
    assert (low, high) == accuracy_interval(round(member["val_acc_final"] * n_val), n_val)
    with open(result.run_dir / "pareto.csv") as f:
        (row,) = csv.DictReader(f)
    # (pareto.csv writes 6 significant digits: up to 5e-6 relative off)
    assert (float(row["val_acc_final_ci95_low"]), float(row["val_acc_final_ci95_high"])) == pytest.approx((low, high), rel=5e-6)
    assert "| val acc (final) |" in (result.run_dir / "report.md").read_text()
    shipped, proxy = nas.load_checkpoint(folder), nas.load_checkpoint(result.run_dir / "trials" / f"{member['arch_id']}.pt")
    assert any(not torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), proxy.state_dict().values()))
    assert shipped.meta["final_train"]["epochs"] == 2 and shipped.meta["data_root"] == str(tiny_idx_root.resolve())
    from nas.data import load_dataset
    from nas.config import DataConfig
    from nas.train import evaluate

    test = load_dataset(DataConfig(name="tiny", root=str(tiny_idx_root))).test
    assert metrics["test_acc"] == pytest.approx(evaluate(shipped, test))  # reported from the shipped weights

    # Same settings: nothing is retrained or recompressed. Another recipe: both are redone.
    stamps = {n: (folder / n).stat().st_mtime_ns for n in ("model.pt", "model_int8.onnx")}
    run_search(compose_cfg(*overrides, "final_train=smoke", "compress=smoke"))
    assert {n: (folder / n).stat().st_mtime_ns for n in stamps} == stamps
    # Nor under settings that change only the final training's speed (another worker, another machine).
    run_search(compose_cfg(*overrides, "final_train=smoke", "final_train.threads=2", "final_train.channels_last=false",
                           "final_train.eval_batch_size=64", "final_train.keep_freed_memory=false", "compress=smoke"))
    assert {n: (folder / n).stat().st_mtime_ns for n in stamps} == stamps
    old = {n: (folder / n).read_bytes() for n in ("model.pt", "model_int8.onnx", "compressed_metrics.json")}
    run_search(compose_cfg(*overrides, "final_train=smoke", "final_train.epochs=3", "compress=smoke"))
    assert all((folder / n).stat().st_mtime_ns != t for n, t in stamps.items())
    assert json.loads((folder / "metrics.json").read_text())["final_train"]["epochs"] == 3
    # the replaced weights and their int8 files (a user may have shipped) are kept, moved to retired/, not deleted
    retired = result.run_dir / "retired" / member["arch_id"]
    assert {n: (retired / n).read_bytes() for n in old} == old
    assert (f"Pareto member {member['arch_id']} is final-trained again: its folder as it was is moved to "
            f"retired/{member['arch_id']}/" in (result.run_dir / "search.log").read_text())
    # final_train=none trains nothing: the final-trained weights (and their compressed files) stay, not the proxy's.
    stamps = {n: (folder / n).stat().st_mtime_ns for n in ("model.pt", "model_int8.onnx")}
    run_search(compose_cfg(*overrides, "final_train=none", "compress=smoke"))
    assert {n: (folder / n).stat().st_mtime_ns for n in stamps} == stamps
    assert json.loads((folder / "metrics.json").read_text())["final_train"]["epochs"] == 3
    assert "keeps its final-trained weights (3 epochs): final_train=none trains nothing" in (
        result.run_dir / "search.log").read_text()


def test_thread_warning_names_the_recipes_that_ask_for_more_threads_than_cpus(compose_cfg):
    from nas.config import to_run_config
    from nas.search import thread_warning

    def warning(*overrides, cpus=2):
        return thread_warning(to_run_config(compose_cfg("data.root=/unused", *overrides)), cpus=cpus)

    assert warning("train.threads=2", "final_train.threads=1") is None
    assert warning("train.threads=8", "final_train=none") == (
        "train.threads=8 is more than the 2 CPUs this process may use: training will run many times slower; "
        "set it to 2 or fewer")
    assert warning("train.threads=4", "final_train.threads=4").startswith("train.threads=4 and final_train.threads=4 are")
    assert warning("train.threads=4", cpus=4) is None


def test_memory_budget_over_the_machines_memory_is_warned_at_the_start(tiny_idx_root, monkeypatch, compose_cfg):
    # A budget past this machine's memory lets candidates through to the OOM killer: warned (a study's workers may run
    # on larger machines), named with the memory; the warning is among the setup warnings search.log and the report give
    from nas.data import load_dataset
    from nas.search import memory_warning, setup_warnings

    def run(*overrides):
        return to_run_config(compose_cfg(f"data.root={tiny_idx_root}", "train.threads=1", "final_train.threads=1", *overrides))

    gb = 2**30
    assert memory_warning(run("search.memory_budget_gb=8"), machine=(16 * gb, "RAM")) is None
    assert memory_warning(run(), machine=(gb, "RAM")) is None  # null: a share of the memory available
    assert memory_warning(run("search.memory_budget_gb=512"), machine=None) is None
    assert memory_warning(run("search.memory_budget_gb=512"), machine=(12 * gb, "its cgroup's memory limit")) == (
        "search.memory_budget_gb=512 is more than this machine's memory (12 GiB, its cgroup's memory limit): candidates "
        "too large for it are let through and the out-of-memory killer ends the search instead of failing them with "
        "their reason; set it below 12 on this machine (null: 70% of the memory available)")
    monkeypatch.setattr(checks_mod, "machine_memory_bytes", lambda: (3 * gb, "RAM"))
    warned = setup_warnings(run("search.memory_budget_gb=4"), load_dataset(run().data))
    assert [w for w in warned if w.startswith("search.memory_budget_gb=4 is more than this machine's memory (3 GiB, RAM)")]
    # A rebuild from the study (python -m nas.report) trains no candidate: where it may final-train or compress members
    # it says so in its terms, of those not done yet (it may have none left: it said the OOM killer ends it, though
    # nothing trained); where it does neither (the tables and the report alone) the budget sizes nothing
    assert memory_warning(run("search.memory_budget_gb=512"), machine=(12 * gb, "RAM"), recipes=("final_train",)) == (
        "search.memory_budget_gb=512 is more than this machine's memory (12 GiB, RAM): members it final-trains or "
        "compresses (those not done yet, if any) are let through when too large for it, and the out-of-memory killer "
        "may end the rebuild instead of refusing them with their reason; set it below 12 on this machine (null: 70% of "
        "the memory available)")
    assert memory_warning(run("search.memory_budget_gb=512", "final_train=none"), machine=(12 * gb, "RAM"),
                          recipes=("final_train",)) is not None  # it compresses them
    report_alone = run("search.memory_budget_gb=4", "final_train=none", "compress=none")
    assert memory_warning(report_alone, machine=(3 * gb, "RAM"), recipes=("final_train",)) is None
    assert not [w for w in setup_warnings(report_alone, load_dataset(run().data), recipes=("final_train",))
                if w.startswith("search.memory_budget_gb=")]
    assert memory_warning(report_alone, machine=(3 * gb, "RAM")) is not None  # a search's trials: warned


def test_a_population_or_min_reference_that_n_trials_never_reaches_is_warned_at_the_start(tiny_idx_root, compose_cfg):
    # NSGA-II never breeds and the early stop never stops within such a run: warned (the study may be extended later),
    # naming both values, in one line; only where the setting acts, and not in a rebuild, which runs no trial
    from nas.data import load_dataset
    from nas.search import setup_warnings, trial_count_warning

    def run(*overrides):
        return to_run_config(compose_cfg(f"data.root={tiny_idx_root}", "train.threads=1", "final_train.threads=1",
                                         "train.epochs=2", *overrides))

    assert trial_count_warning(run("search.n_trials=9", "search.sampler=nsga2", "search.population_size=8")) is None
    assert trial_count_warning(run("search.n_trials=4", "search.population_size=8")) is None  # tpe: no population
    assert trial_count_warning(run("search.n_trials=3", "search.early_stop.min_reference=5")) is None  # disabled
    assert trial_count_warning(run("search.n_trials=8", "search.sampler=nsga2", "search.population_size=8")) == (
        "search.population_size=8 is not below search.n_trials=8: NSGA-II's first generation takes every trial, so it "
        "never breeds (each trial is sampled at random) until search.n_trials is raised; lower it or raise search.n_trials")
    both = run("search.n_trials=4", "search.sampler=nsga2", "search.early_stop.enabled=true",
               "search.early_stop.min_reference=6")
    assert trial_count_warning(both) == (
        "search.population_size=8 is not below search.n_trials=4: NSGA-II's first generation takes every trial, so it "
        "never breeds (each trial is sampled at random); search.early_stop.min_reference=6 is not below "
        "search.n_trials=4: the early stop waits for that many fully trained trials, so it never stops a candidate "
        "until search.n_trials is raised; lower them or raise search.n_trials")
    data = load_dataset(both.data)
    assert trial_count_warning(both) in setup_warnings(both, data)
    assert trial_count_warning(both) not in setup_warnings(both, data, recipes=("final_train",))


def test_setup_warnings_name_test_images_copied_from_the_training_images(tmp_path, compose_cfg):
    # As the data's other warnings: search.log and the report's Warnings section give what setup_warnings returns.
    import shutil

    from nas.data import load_dataset
    from nas.search import setup_warnings
    from tests.test_data import _split_folders

    _split_folders(tmp_path, {"train": 6, "val": 2, "test": 3})

    def warned() -> list[str]:
        run = to_run_config(compose_cfg("data=imagefolder", f"data.root={tmp_path}", "data.img_size=8", "train.threads=1",
                                        "final_train.threads=1"))
        return [w for w in setup_warnings(run, load_dataset(run.data)) if w.startswith("training images repeated")]

    assert warned() == []
    shutil.copy(tmp_path / "train" / "cat" / "4.png", tmp_path / "test" / "cat" / "a.png")
    shutil.copy(tmp_path / "train" / "dog" / "0.png", tmp_path / "test" / "dog" / "b.png")
    assert warned() == ["training images repeated in test: 2 of the 8 test images (25%), the first test/cat/a.png (same "
                        "pixels as train/cat/4.png); the test accuracy counts them as unseen; delete one file of each pair"]



def test_setup_warnings_name_a_picture_saved_into_two_class_folders(tmp_path, compose_cfg):
    # A photo saved into cat/ and dog/ while sorting taught the model two labels for it, without a word where both
    # copies were training images (the copies warning looks at test and val alone).
    import shutil

    from nas.data import load_dataset
    from nas.search import setup_warnings
    from tests.test_data import _png

    for c, v in (("cat", 10), ("dog", 100)):
        for i in range(6):
            _png(tmp_path / c / f"{i}.png", 8, v + i)

    def warned() -> list[str]:
        run = to_run_config(compose_cfg("data=imagefolder", f"data.root={tmp_path}", "data.img_size=8", "train.threads=1",
                                        "final_train.threads=1", "data.test_size=2", "data.val_size=2"))
        data = load_dataset(run.data)
        return [w for w in setup_warnings(run, data) if "more than one class folder" in w]

    assert warned() == []
    shutil.copy(tmp_path / "cat" / "0.png", tmp_path / "dog" / "copy.png")
    shutil.copy(tmp_path / "dog" / "0.png", tmp_path / "dog" / "again.png")  # within one class: not a clash
    [said] = warned()
    assert said.startswith("1 picture is in more than one class folder, the same pixels under two labels: the first ")
    assert {"cat/0.png (class 'cat')", "dog/copy.png (class 'dog')"} <= set(re.split(r" and |: the first |; ", said))
    assert said.endswith("; the model is taught both labels and scored wrong on one: delete the copy in the wrong "
                         "class folder")


@pytest.mark.parametrize("names, said", [
    # Kaggle's GTSRB ships Train/0 .. Train/42: logit 2 is class '10', and a deployment taking logit i for class i
    # labelled every class from 2 on wrongly without a word
    ([str(i) for i in range(12)], "logit 2 is class '10', not '2'; map predictions to classes by the class_names that "
                                  "metrics.json (output.class_names) and each .onnx file record, or zero-pad the folder "
                                  "names (00, 01, ..., 11) to order them as numbers"),
    (["00", "01", "02", "10", "11"], None),  # zero-padded: text and numbers agree
    (["1", "2", "3"], None),  # one digit each: likewise
    (["1", "10", "cat"], None),  # not all numbers: names, ordered as text
])
def test_class_folders_named_by_numbers_out_of_numeric_order_are_named_in_a_setup_warning(tmp_path, compose_cfg, names,
                                                                                          said):
    from nas.data import load_dataset
    from nas.search import setup_warnings
    from tests.test_data import _png

    for i, name in enumerate(names):
        for j in range(3):
            _png(tmp_path / name / f"{j}.png", 8, 20 * i + j)
    run = to_run_config(compose_cfg("data=imagefolder", f"data.root={tmp_path}", "data.img_size=8", "train.threads=1",
                                    "final_train.threads=1", f"data.test_size={len(names)}", f"data.val_size={len(names)}"))
    data = load_dataset(run.data)
    assert data.classes == tuple(sorted(names))  # the order is torchvision's, as before: only said
    warned = [w for w in setup_warnings(run, data) if w.startswith("the class folders are numbers")]
    assert warned == ([] if said is None else
                      ["the class folders are numbers, ordered as text as torchvision's ImageFolder orders them: " + said])


def test_a_data_root_above_datasets_side_by_side_is_a_setup_warning(tmp_path, compose_cfg):
    # two datasets under one data.root were searched as 2 classes, one per dataset, without a word
    from nas.data import load_dataset
    from nas.search import setup_warnings
    from tests.test_data import _png

    for i, path in enumerate(("shapes/circle", "shapes/square", "flowers/rose", "flowers/tulip")):
        for j in range(3):
            _png(tmp_path / path / f"{j}.png", 8, 20 * i + j)
    run = to_run_config(compose_cfg("data=imagefolder", f"data.root={tmp_path}", "data.img_size=8", "train.threads=1",
                                    "final_train.threads=1", "data.test_size=2", "data.val_size=2"))
    warned = [w for w in setup_warnings(run, load_dataset(run.data)) if w.startswith("every class folder of")]
    assert len(warned) == 1 and warned[0].endswith(f"data.root is one folder down, e.g. data.root={tmp_path / 'flowers'}")


def test_a_search_start_hashes_each_image_once_for_the_studys_record_and_the_copies_warning(tiny_idx_root, tmp_path,
                                                                                          compose_cfg, monkeypatch):
    # data_identity (the study's record) and held_out_copies_warning (a setup warning) each hashed every image of every
    # split: twice per start, seconds for a large image folder. Stopped where the trials would start.
    import nas.data
    import nas.data_records

    class Stop(Exception):
        pass

    hashed: list[int] = []
    real = nas.data_records.image_digests
    monkeypatch.setattr(nas.data_records, "image_digests", lambda split: hashed.append(len(split)) or real(split))
    monkeypatch.setattr(search_mod, "run_trials", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    with pytest.raises(Stop):
        run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    data = nas.data.load_dataset(to_run_config(compose_cfg(*_overrides(tiny_idx_root, tmp_path))).data)
    assert sorted(hashed) == sorted(len(s) for s in (data.train, data.val, data.test))  # each split once


def test_a_resumed_search_hashes_each_split_once_for_the_comparison_with_its_study_and_the_check(tmp_path, compose_cfg,
                                                                                               monkeypatch):
    # A study's split was compared with its record (split_as_recorded_and_digests), then the data checked against that
    # record (data_identity): an image folder's training pixels hashed twice per resumed start. Stopped where trials
    # would start.
    from PIL import Image

    import nas.data
    import nas.data_records

    class Stop(Exception):
        pass

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    args = ["data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=16", "train=smoke",
            f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=r", "search.progress=false", "search.n_trials=1",
            "compress=none", "final_train=none"]
    monkeypatch.setattr(search_mod, "run_trials", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    with pytest.raises(Stop):
        run_search(compose_cfg(*args))  # creates the study, with its record of the data
    hashed: list[int] = []
    real = nas.data.split_digest
    for where in (nas.data, nas.data_records):  # where split_as_recorded_and_digests, data_identity look it up
        monkeypatch.setattr(where, "split_digest", lambda split: hashed.append(len(split)) or real(split))
    with pytest.raises(Stop):
        run_search(compose_cfg(*args))  # resumes it
    data = nas.data.load_dataset(to_run_config(compose_cfg(*args)).data)
    assert sorted(hashed) == sorted(len(s) for s in (data.train, data.val, data.test))  # each split once

def test_sampler_seeds_of_many_workers_stay_in_the_samplers_range(compose_cfg):
    # search.seed + an offset per worker and per trial already held would leave numpy's range (Optuna: ValueError).
    from nas.search import make_sampler

    for sampler in ("tpe", "nsga2", "random"):
        run = to_run_config(compose_cfg(f"search.sampler={sampler}", "search.seed=4294967295", "search.worker=5000"))
        assert make_sampler(run, trials_before=10**6) is not None


def test_early_stop_verdict_grants_the_largest_gain_seen():
    from nas.search import early_stop_verdict

    # (final val acc, latency ms, val acc after the judged epoch) of fully trained trials; largest gain 0.05
    refs = [(0.90, 0.5, 0.85), (0.88, 0.3, 0.86), (0.80, 0.2, 0.78)]
    kw = dict(min_reference=3, safety=1.5, slack=0.01)  # allowed gain 0.05 * 1.5 + 0.01 = 0.085
    assert "70.00% + allowed gain 8.50 pt < 90.00%" in early_stop_verdict(0.70, 0.6, refs, **kw)
    assert early_stop_verdict(0.82, 0.6, refs, **kw) is None  # 0.905 could beat 0.90
    assert early_stop_verdict(0.70, 0.35, refs, **kw) is not None  # 0.785 < 0.88 at 0.3 ms
    assert early_stop_verdict(0.72, 0.25, refs, **kw) is None  # only the 0.80 trial is no slower: 0.805 could beat it ...
    assert early_stop_verdict(0.72, 0.25, refs, min_reference=3, safety=1.0, slack=0.0) is not None  # ... 0.77 cannot
    assert early_stop_verdict(0.10, 0.1, refs, **kw) is None  # faster than every reference: it is on the front
    assert early_stop_verdict(0.10, 0.6, refs[:2], **kw) is None  # too few references to know the gain


def test_early_stop_records_stopped_candidates_as_complete_and_excludes_them_as_references(
        tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    references_seen = []

    def stop_once_a_reference_exists(acc, latency_ms, references, **_):
        references_seen.append(len(references))
        return "stopped early: test" if references else None

    monkeypatch.setattr(trials_mod, "early_stop_verdict", stop_once_a_reference_exists)
    result = run_search(compose_cfg(*_overrides(
        tiny_idx_root, tmp_path, "search.n_trials=3", "search.sampler=random", "train.epochs=2",
        "search.early_stop.enabled=true", "search.early_stop.min_reference=1")))
    rows = _rows(tmp_path / "t")
    assert result.n_complete == 3 and [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert references_seen == [0, 1, 1]  # stopped trials never become references
    assert "3 COMPLETE (2 of them stopped early as hopeless)" in (tmp_path / "t" / "report.md").read_text()
    assert rows[0]["early_stop"] == ""
    assert all(r["early_stop"] == "stopped early: test, after 1 of 2 epochs" for r in rows[1:])
    trials = {t.number: t for t in optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}").trials}
    assert "judged_val_acc" in trials[0].user_attrs  # fully trained, with its mid-training accuracy
    for n in (1, 2):  # stopped: the reported accuracy is the one judged
        assert trials[n].values[0] == trials[n].user_attrs["judged_val_acc"]


def test_a_rerun_of_a_full_study_says_n_trials_is_reached_not_more_of_fewer(tiny_idx_root, tmp_path, compose_cfg,
                                                                          finished_search):
    # A finished study rerun with a lower search.n_trials said "6 of 4 trials done" in its first line; once the study
    # holds n_trials (or more) the line says so plainly, and that no trial is left to run.
    from nas.search import trials_done_text

    assert trials_done_text(3, 4) == "3 of 4 trials done"
    assert trials_done_text(6, 4) == "6 trials done, search.n_trials=4 reached: nothing to run"
    _copy_of(finished_search, tmp_path)
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    log = (tmp_path / "t" / "search.log").read_text()
    starts = [line.split(" - ", 1)[1].rsplit("; ", 1)[1] for line in log.splitlines() if " - study t: " in line]
    assert starts[-1] == "1 trial done, search.n_trials=1 reached: nothing to run", starts
    # in one line: "resuming study 't': 1 trial already finished, search.n_trials=1 reached: nothing to run" repeated it
    assert "resuming study" not in log and log.count("nothing to run") == 1, log


def test_seed_archs_are_evaluated_first_and_only_when_the_study_is_new(tiny_idx_root, tmp_path, compose_cfg):
    from nas.families import family_arch

    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "arch.json").write_text(family_arch("resnet-S").to_json(indent=2))  # a checkpoint folder's file
    seeds = f"search.seed_archs=[convformer-S,'{tmp_path / 'seed'}']"
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path / "runs", "search.n_trials=3", seeds)))
    rows = _rows(tmp_path / "runs" / "t")
    expected = [family_arch("convformer-S").arch_id, family_arch("resnet-S").arch_id]
    assert [r["arch_id"] for r in rows[:2]] == expected and rows[2]["arch_id"] not in expected
    assert all(r["state"] == "COMPLETE" for r in rows)
    # Resuming (one more trial) does not queue the seeds again: the study's history is kept as it is.
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path / "runs", "search.n_trials=4", seeds)))
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'runs' / 't' / 'study.db'}")
    assert len(study.trials) == 4 and sum(bool(t.user_attrs.get("seeded")) for t in study.trials) == 2
    log = (tmp_path / "runs" / "t" / "search.log").read_text()
    assert "seed_archs" not in log  # the same seeds, already evaluated: nothing to say
    # Each run starts its lines with what it searches and how far the study is; the seeds queued are logged there too.
    starts = [line.split(" - ", 1)[1] for line in log.splitlines() if " - study t: " in line]
    assert [s.rsplit("; ", 1)[1] for s in starts] == ["0 of 3 trials done", "3 of 4 trials done"]
    assert starts[0].startswith("study t: hw=edge_npu space=metaformer_t data=")
    assert "queued 2 seed architectures to evaluate first" in log
    # A seed added to a resumed study is not evaluated either, and the run's log says so instead of keeping quiet.
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path / "runs", "search.n_trials=4",
                                       "search.seed_archs=[convformer-S,poolformer-S]")))
    assert (f"search.seed_archs: {family_arch('poolformer-S').summary()} not queued: seeds only start a new study, "
            "and this one has 4 trials") in (tmp_path / "runs" / "t" / "search.log").read_text()


def test_seed_families_take_the_layout_of_the_space(compose_cfg):
    from types import SimpleNamespace

    from nas.families import family_arch
    from nas.search import resolve_seed_archs

    data = SimpleNamespace(in_chans=3, img_size=64, num_classes=5)
    cfg = compose_cfg("space=metaformer_s", "search.seed_archs=[caformer-S,resnet-M]")
    run = to_run_config(cfg)
    archs = resolve_seed_archs(run, data)
    assert archs == [family_arch(n, n_stages=4, in_chans=3, img_size=64, num_classes=5) for n in ("caformer-S", "resnet-M")]
    run.space.stages = run.space.stages[:2]  # a space of a depth no family layout has
    with pytest.raises(ConfigError, match=r"^search.seed_archs has 'caformer-S', but space 'metaformer_s' has 2 stages: "
                                          r"model family 'caformer-S' with n_stages=2: the families come in \[3, 4\] stages; "
                                          r"seed it with the arch.json \(or checkpoint folder\) of a run of that space instead$"):
        resolve_seed_archs(run, data)


def test_a_re_proposed_architecture_names_the_trial_it_reuses(tiny_idx_root, tmp_path, compose_cfg):
    # A space of one architecture: the second trial can only re-propose the first one's, and reuses its result.
    one = ("space.stem_kernels=[3]", "space.norms=[bn]", "space.acts=[relu]",
           "space.stages=[{mixers:[pool],depths:[1],widths:[16],kernels:[3],mlp_ratios:[2],head_dims:[8],expands:[2]}]")
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.sampler=random", *one)))
    rows = _rows(result.run_dir)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"] and rows[0]["arch_id"] == rows[1]["arch_id"]
    assert [r["duplicate_of"] for r in rows] == ["", "0"]
    assert rows[0]["train_precision"] in ("fp32", "bf16") and rows[1]["train_precision"] == ""  # the copy trained nothing
    report = (result.run_dir / "report.md").read_text()
    assert "2 trials: 2 COMPLETE (1 of them re-proposed an architecture already trained and reused its result)" in report
    # The space was narrowed on the command line: its name alone no longer says what was searched.
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert pareto["space_changed"] == ["stem_kernels", "norms", "acts", "stages"] and pareto["hw_changed"] == []
    assert "metaformer_t (changed from its file: stem_kernels, norms, acts, stages; config.yaml holds" in report


def test_member_stopped_after_its_new_weights_keeps_its_old_files_and_stays_listed(tiny_idx_root, tmp_path, compose_cfg,
                                                                                    monkeypatch):
    # A member retrained under another final_train recipe and stopped right after its new weights were made (Ctrl-C,
    # SIGTERM before its metrics.json): its files must still describe one and the same weights, and a rerun must not find
    # the old metrics.json "up to date" beside new weights. Its old files, deleted before the training, are now kept
    # until the new ones are complete: the member stays usable, listed by a rerun with final_train=none.
    import nas.results as results_mod

    overrides = [*(o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")
                   if o != "final_train=none"), "final_train.subset=64"]  # few images: which weights, not how good
    result = run_search(compose_cfg(*overrides, "final_train=smoke"))
    (member,) = result.pareto
    folder = result.run_dir / member["checkpoint"]
    before = {n: (folder / n).read_bytes() for n in ("metrics.json", "model.pt", "test_predictions.csv")}
    monkeypatch.setattr(results_mod, "torch_logits", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert run_search(compose_cfg(*overrides, "final_train=smoke", "final_train.epochs=3")).interrupted
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # nor a temporary folder left in it
    assert not (result.run_dir / "retired").exists()  # nothing moved before the new files are complete
    monkeypatch.undo()
    again = run_search(compose_cfg(*overrides, "final_train=none"))
    assert [m["arch_id"] for m in again.pareto] == [member["arch_id"]]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["final_train"]["epochs"] == nas.load_checkpoint(folder).meta["final_train"]["epochs"] == 2


def test_ctrl_c_of_the_search_starts_no_final_training_and_the_rerun_does_it(tiny_idx_root, tmp_path, compose_cfg,
                                                                             monkeypatch):
    import nas.results as results_mod

    calls = {"train": 0, "final": 0}
    real_train, real_final = trials_mod.train_candidate, results_mod.final_train

    def train_then_ctrl_c(*args, **kwargs):
        calls["train"] += 1
        if calls["train"] == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    def counted_final(*args, **kwargs):
        calls["final"] += 1
        return real_final(*args, **kwargs)

    monkeypatch.setattr(trials_mod, "train_candidate", train_then_ctrl_c)
    monkeypatch.setattr(results_mod, "final_train", counted_final)
    cfg = compose_cfg(*[o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.export_onnx=false")
                        if o != "final_train=none"], "final_train=smoke", "final_train.subset=64", "final_train.threads=1")
    result = run_search(cfg)
    assert result.interrupted and result.n_complete == 1 and calls["final"] == 0  # stopped, not training for minutes
    assert result.stopped_by == signal.SIGINT  # Ctrl-C's (not SIGTERM's): the command exits 130
    assert result.pareto == [] and "is not final-trained: the search was interrupted" in (tmp_path / "t" / "search.log").read_text()
    result = run_search(cfg)  # the same command: the search finishes and its members are final-trained
    assert not result.interrupted and result.stopped_by is None and result.pareto and calls["final"] == len(result.pareto)
    assert all(m["val_acc_final"] is not None for m in result.pareto)


@pytest.mark.parametrize("cause, shown", [
    (OSError(28, "No space left on device", "/runs/t/trials/a.pt"), "/runs/t/trials/a.pt: No space left on device"),
    (PermissionError(13, "Permission denied", "/runs/t/trials"), "/runs/t/trials: Permission denied"),
])
def test_a_full_or_unwritable_disk_stops_the_command_in_one_line(cause, shown, compose_cfg, monkeypatch, capsys):
    def fails(cfg, **_):  # as Optuna reports it: its own assertion, raised while failing the trial the disk broke
        try:
            raise cause
        except OSError:
            raise AssertionError("Should not reach.")

    monkeypatch.setattr(search_mod, "run_search", fails)
    with pytest.raises(SystemExit) as exit_info:
        search_mod.main(compose_cfg("data.root=/unused"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: cannot write the run ({shown}); the finished trials are kept in the study")


def test_a_disk_that_fills_in_a_resumed_search_says_how_many_finished_trials_are_kept(tiny_idx_root, tmp_path,
                                                                                    compose_cfg, finished_search,
                                                                                    monkeypatch, capsys):
    # The failed-write line said "the finished trials are kept in the study" whatever the study held; with some it
    # says how many (and with none that nothing is lost: the test below).
    _copy_of(finished_search, tmp_path)

    def disk_full(obj, f, *args, **kwargs):  # the next trial's weights fill the disk
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(SystemExit) as exit_info:
        search_mod.main(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2")))
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: cannot write the run (") and "No space left on device); the study's 1 finished trial " \
        "is kept: fix that" in err and err.endswith("rerun the same command to resume\n"), err


@pytest.mark.parametrize("name, code, said", [
    # the disk's state: the search's failed write (exit 1), as one later in the run is said
    # (no study yet: nothing of it is lost, where the line said "the finished trials are kept in the study")
    ("ENOSPC", 1, "error: cannot write the run ({run}: No space left on device); no trial had finished, so nothing is "
                  "lost: fix that (free space, the run folder's permissions or entries, the database server) and rerun "
                  "the same command\n"),
    # a folder this user may not write in stays bad input (exit 2), naming the setting and what to pass
    ("EACCES", 2, "error: search.runs_dir={runs!r}: cannot create the folder {run!r} (Permission denied); pass a writable one"),
])
def test_a_run_folder_a_full_disk_refuses_before_the_trials_is_a_failed_write_not_bad_input(
        name, code, said, tiny_idx_root, tmp_path, compose_cfg, monkeypatch, capsys):
    # A full disk or quota met as the run folder is made was refused as bad input, "pass a writable one", exit 2.
    run = tmp_path / "t"
    mkdir = Path.mkdir

    def refused(self, *args, **kwargs):
        if self == run:
            number = getattr(errno, name)
            raise OSError(number, os.strerror(number), str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(SystemExit) as exit_info:
        search_mod.main(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    err = capsys.readouterr().err
    assert exit_info.value.code == code and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(said.format(run=str(run), runs=str(tmp_path))), err
    assert not run.exists()


class _FullDisk(io.StringIO):
    """A log file's stream on a full disk: the write is buffered, its flush refused (and close flushes)."""

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self.flush()


def test_a_search_log_the_disk_refuses_is_said_once_in_one_line_and_the_terminal_keeps_its_lines(tmp_path, capsys):
    # Every line logged to search.log on a full disk made logging print a many-line "--- Logging error ---" traceback
    # on stderr, burying the run's one-line error; and its close, on leaving the run, raised the disk's error anew.
    terminal = io.StringIO()
    shown = logging.StreamHandler(terminal)
    logging.getLogger("nas").addHandler(shown)
    said = (f"warning: search.log cannot be written ({tmp_path / 'search.log'}: No space left on device): this process's "
            "log lines go to the terminal only\n")
    try:
        with run_folder_mod.run_log(tmp_path):
            (handler,) = [h for h in logging.getLogger("nas").handlers if isinstance(h, logging.FileHandler)]
            handler.stream.close()
            handler.stream = _FullDisk()
            for i in range(3):
                logging.getLogger("nas.search").warning("line %d", i)
        assert capsys.readouterr().err == said  # once, and no traceback
        assert terminal.getvalue() == "line 0\nline 1\nline 2\n"

        with run_folder_mod.run_log(tmp_path):  # only the close fails (a quota checked as the file is closed)
            (handler,) = [h for h in logging.getLogger("nas").handlers if isinstance(h, logging.FileHandler)]
            logging.getLogger("nas.search").warning("kept")
            handler.stream.close()
            handler.stream = _FullDisk()
            handler.stream.write("refused")
        assert capsys.readouterr().err == said
        assert "kept" in (tmp_path / "search.log").read_text()
    finally:
        logging.getLogger("nas").removeHandler(shown)


def test_a_search_called_under_a_warnings_only_logging_setup_logs_its_info_lines_to_search_log_only(
        tiny_idx_root, tmp_path, finished_search, compose_cfg, console):
    # run_search from a notebook or script whose logging setup shows warnings (`console`: root at WARNING) lowered
    # the "nas" and "compress" loggers to INFO for search.log, and every INFO line of the search reached the console.
    result = _copy_of(finished_search, tmp_path)
    before = (result.run_dir / "search.log").read_text()
    levels = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in ("nas", "compress")}
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    added = (result.run_dir / "search.log").read_text()[len(before):]
    assert "][INFO] - study t: hw=" in added  # the run's record keeps its INFO lines
    assert not [r for r in console.records if r.name.split(".")[0] in ("nas", "compress") and r.levelno < logging.WARNING]
    assert {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in levels} == levels


def test_report_from_the_study_shows_the_final_training_it_does(tiny_idx_root, tmp_path, finished_search, capsys,
                                                                monkeypatch):
    # Workers searched with final_train=none; `python -m nas.report search.study_name=... search.runs_dir=...` then
    # final-trains the members (minutes with the default recipe): it said nothing at all until it was done.
    from nas.report import main

    result = _copy_of(finished_search, tmp_path)
    capsys.readouterr()
    assert main(_overrides(tiny_idx_root, tmp_path, "final_train=smoke")) == 0
    out = capsys.readouterr()
    (member,) = result.pareto
    assert f"final training of {member['arch_id']}: " in out.err
    assert str(result.run_dir / "report.html") in out.out and "final training" not in out.out
    # Interrupted (Ctrl-C, SIGTERM) during that final training: it says so and exits 130, as the search does.
    import nas.results as results_mod

    monkeypatch.setattr(results_mod, "final_train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(_overrides(tiny_idx_root, tmp_path, "final_train=smoke", "final_train.epochs=3")) == 130
    assert "interrupted: members not final-trained or compressed yet are left to a rerun" in capsys.readouterr().err
    # SIGTERM there (nas.errors.Terminated): 143, as the shell reports death by SIGTERM (it exited 130, as after Ctrl-C)
    monkeypatch.setattr(results_mod, "final_train", lambda *a, **k: (_ for _ in ()).throw(Terminated))
    assert main(_overrides(tiny_idx_root, tmp_path, "final_train=smoke", "final_train.epochs=3")) == 143
    assert "interrupted: members not final-trained or compressed yet are left to a rerun" in capsys.readouterr().err


def test_sigterm_during_the_members_final_training_or_compression_exits_143(tiny_idx_root, tmp_path, compose_cfg,
                                                                            monkeypatch, capsys):
    # `python -m nas.search` stopped by SIGTERM (nas.errors.Terminated, as stop_on_sigterm raises it) while it
    # final-trains or compresses its members exited 130, as after Ctrl-C: the search kept only that it was interrupted,
    # not by which signal. The shell's codes for death by each: 143 after SIGTERM, 130 after Ctrl-C.
    import compress.pipeline as pipeline_mod
    import nas.results as results_mod

    def stop(error: type[KeyboardInterrupt]):
        def raise_it(*args, **kwargs):
            raise error
        return raise_it

    base = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")
            if o not in ("final_train=none", "compress=none")]

    def exit_status(*overrides: str) -> int:
        with pytest.raises(SystemExit) as exit_info:
            search_mod.main(compose_cfg(*base, *overrides))
        err = capsys.readouterr().err
        # one line on stderr saying which signal stopped it and how to resume (there was none: the log lines went to
        # stdout, and a SIGTERM'd search ended with status 143 and nothing on stderr)
        stopped = "stopped by SIGTERM" if exit_info.value.code == 143 else "interrupted (Ctrl-C)"
        assert err.splitlines()[-1:] == [f"{stopped}: the finished trials and members are kept in {tmp_path / 't'}; "
                                         "rerun the same command to resume"], err
        return exit_info.value.code

    with monkeypatch.context() as m:
        m.setattr(results_mod, "final_train", stop(Terminated))
        assert exit_status("final_train=smoke", "compress=none") == 143
        m.setattr(results_mod, "final_train", stop(KeyboardInterrupt))
        assert exit_status("final_train=smoke", "compress=none") == 130
    with monkeypatch.context() as m:
        m.setattr(pipeline_mod, "compress_front", stop(Terminated))
        assert exit_status("final_train=none", "compress=smoke") == 143
        m.setattr(pipeline_mod, "compress_front", stop(KeyboardInterrupt))
        assert exit_status("final_train=none", "compress=smoke") == 130


def _struck_as_trials_csv_is_made(monkeypatch):
    """SIGTERM (`Terminated`) strikes as the search makes its first trials.csv, its trials done: before it reaches the
    Pareto members."""
    import nas.results as results_mod

    real, calls = results_mod.trials_csv, []

    def struck_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise Terminated
        return real(*args, **kwargs)

    monkeypatch.setattr(results_mod, "trials_csv", struck_once)


@pytest.mark.parametrize("final_train, before", [("final_train=none", "the Pareto members' files were made"),
                                                 ("final_train=smoke", "the final training started")])
def test_sigterm_before_the_files_are_written_still_writes_them_and_removes_the_marker(tiny_idx_root, tmp_path,
                                                                                       compose_cfg, monkeypatch,
                                                                                       final_train, before):
    # SIGTERM as the search began writing its files, its trials done (before trials.csv, on a first run: no
    # pareto.json yet): write_outputs returned at once, leaving no trials.csv, the run marker without why it stopped
    # (the report then read the search as killed) and, `python -m nas.search` exiting 143, no line on stderr. Its log
    # line then said "interrupted during the final training", though none had started (or would: final_train=none).
    from nas.report import RUN_MARKER_PREFIX

    _struck_as_trials_csv_is_made(monkeypatch)
    overrides = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1") if o != "final_train=none"]
    result = run_search(compose_cfg(*overrides, final_train, "final_train.subset=64"))
    assert result.stopped_by == signal.SIGTERM  # `python -m nas.search` exits 143
    assert [r["state"] for r in _rows(result.run_dir)] == ["COMPLETE"]  # trials.csv written: the rerun resumes from it
    assert (result.run_dir / "pareto.json").is_file() and (result.run_dir / "report.html").is_file()
    assert not list(result.run_dir.glob(RUN_MARKER_PREFIX + "*"))  # the search reached its report: no marker left
    log = (result.run_dir / "search.log").read_text()
    assert f"interrupted before {before}: writing the run's files without training; rerun the same command" in log
    assert "during the final training" not in log
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    # final_train=smoke: the member that needs its final training is left to the rerun, and named as missing
    assert len(pareto["members"]) == (final_train == "final_train=none") and len(pareto["members_missing"]) == (
        final_train != "final_train=none")


@pytest.mark.parametrize("final_train", ["final_train=none", "final_train=smoke"])
def test_a_second_signal_as_the_files_are_written_after_a_stop_says_so(tiny_idx_root, tmp_path, compose_cfg,
                                                                       monkeypatch, final_train):
    # Ctrl-C stopped the trials, and SIGTERM struck as the files were then written (trials.csv being made): search.log
    # said "interrupted before the Pareto members' files were made" (or "before the final training started"), as of a
    # first stop as the trials ended, though the files were being written after a stop and no training would run.
    real_trials = search_mod.run_trials

    def stopped_by_ctrl_c(*args, **kwargs):
        real_trials(*args, **kwargs)
        return signal.SIGINT, None  # the trials' stop: the files are written after it, without training

    monkeypatch.setattr(search_mod, "run_trials", stopped_by_ctrl_c)
    _struck_as_trials_csv_is_made(monkeypatch)
    overrides = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1") if o != "final_train=none"]
    result = run_search(compose_cfg(*overrides, final_train, "final_train.subset=64"))
    assert result.stopped_by == signal.SIGINT  # the first stop's, as the command's exit status (130) says
    assert [r["state"] for r in _rows(result.run_dir)] == ["COMPLETE"]
    log = (result.run_dir / "search.log").read_text()
    assert ("stopped again by SIGTERM while the run's files were written after the stop, before the Pareto members' "
            "files were made: writing them again without training; rerun the same command to resume") in log
    assert "interrupted before" not in log


def test_a_second_signal_once_the_members_are_made_after_a_stop_says_so(tiny_idx_root, tmp_path, compose_cfg,
                                                                         finished_search, monkeypatch):
    import nas.results as results_mod

    result = _copy_of(finished_search, tmp_path)
    real_trials, real_compare, calls = search_mod.run_trials, results_mod.compare_members, []

    def stopped_by_ctrl_c(*args, **kwargs):
        real_trials(*args, **kwargs)
        return signal.SIGINT, None

    def struck_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(search_mod, "run_trials", stopped_by_ctrl_c)
    monkeypatch.setattr(results_mod, "compare_members", struck_once)
    stopped = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    assert stopped.stopped_by == signal.SIGINT
    log = (result.run_dir / "search.log").read_text()
    assert ("interrupted again (Ctrl-C) as the run's files were written after the stop, every Pareto member's files "
            "made: they are kept; rerun the same command to resume") in log
    assert "interrupted before" not in log and "interrupted as the run's files" not in log


def test_sigterm_once_the_members_are_made_keeps_them_and_says_so(tiny_idx_root, tmp_path, compose_cfg,
                                                                 finished_search, monkeypatch):
    # Struck after the last member's files were made (comparing the members), before pareto.json was written: the
    # members were written again without training and search.log said "interrupted before the final training started".
    import nas.results as results_mod

    result = _copy_of(finished_search, tmp_path)  # its study is full: the search goes straight to the members
    real, calls = results_mod.compare_members, []

    def struck_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise Terminated
        return real(*args, **kwargs)

    monkeypatch.setattr(results_mod, "compare_members", struck_once)
    stopped = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    assert stopped.stopped_by == signal.SIGTERM
    assert [m["arch_id"] for m in stopped.pareto] == [m["arch_id"] for m in finished_search.pareto]
    log = (result.run_dir / "search.log").read_text()
    assert "interrupted as the run's files were written, every Pareto member's files made: they are kept" in log
    assert "interrupted before" not in log


def test_sigterm_before_the_files_are_written_on_a_rerun_writes_this_runs_front(tiny_idx_root, tmp_path, compose_cfg,
                                                                               finished_search, monkeypatch):
    # Struck there on a rerun whose folder held an earlier run's pareto.json, the search took that file, written
    # before this run's trials, for this run's: the result, the report and the file itself gave the earlier front.
    result = _copy_of(finished_search, tmp_path)
    _struck_as_trials_csv_is_made(monkeypatch)
    stopped = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2")))
    assert stopped.stopped_by == signal.SIGTERM and stopped.n_complete == 2
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert pareto["n_trials_finished"] == 2  # this study's, not the earlier run's 1
    front = {r["arch_id"] for r in _rows(result.run_dir) if r["is_pareto"] == "True"}
    assert {m["arch_id"] for m in stopped.pareto} == {m["arch_id"] for m in pareto["members"]} == front


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads a process's handlers from /proc")
@pytest.mark.parametrize("signum, said", [(signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGINT, "interrupted (Ctrl-C)"),
                                          (signal.SIGUSR2, "stopped by SIGUSR2")])
def test_a_signal_while_the_command_starts_stops_it_in_one_line(signum, said, tmp_path):
    # SIGTERM in a search's first seconds (torch and Optuna importing, before main() set its handler) killed it with
    # exit 143 and no line at all; Ctrl-C there printed a traceback from deep inside an import. SIGUSR2 (a scheduler's
    # warning before its time limit) killed it silently too.
    started = subprocess.Popen([sys.executable, "-m", "nas.search", f"search.runs_dir={tmp_path}", "data.root=/unused"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        # sent once the command has its handlers (its first lines; SIGUSR2's is the last set), not after a fixed time a
        # loaded machine may not give
        while not catches(pid=started.pid, signum=signal.SIGUSR2) and started.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        started.send_signal(signum)
        out, err = started.communicate(timeout=60)
    finally:
        started.kill()
    assert started.returncode == 128 + signum, err
    assert err == f"{said} while starting; nothing was written\n" and out == ""
    assert list(tmp_path.iterdir()) == []


_SWEEP_HELD_AFTER_ITS_RECORD = """
import runpy, sys, time
from omegaconf import OmegaConf

real = OmegaConf.save


def save_then_wait(config, f, resolve=False):  # Hydra's record of the sweep written, the sweep held there a while
    real(config, f, resolve)
    if str(f).endswith("multirun.yaml"):
        time.sleep(60)


OmegaConf.save = save_then_wait
sys.argv = ["nas.search", *sys.argv[1:]]
runpy.run_module("nas.search", run_name="__main__", alter_sys=True)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads a process's handlers from /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_in_a_sweep_after_hydra_recorded_it_says_where_in_one_line(tmp_path, signum):
    # `python -m nas.search -m ...` stopped by Ctrl-C as Hydra's sweeper had written multirun.yaml (outside any search
    # job, which say their own) ended in a traceback from Hydra's code; a stop before that said "nothing was written".
    # SIGTERM there said "sweep stopped by SIGTERM; rerun the same command to resume", naming no record.
    sweep = subprocess.Popen([sys.executable, "-c", _SWEEP_HELD_AFTER_ITS_RECORD, "-m", f"search.runs_dir={tmp_path}",
                              "search.study_name=s", "data.root=/unused", "search.worker=0,1"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "s" / "multirun.yaml"
    out, err = signal_when_there(sweep, record, signum)
    # SIGTERM ends it at once by the signal's default action, which the shell reports as 143
    assert sweep.returncode == (130 if signum == signal.SIGINT else -signal.SIGTERM), err
    said = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "stopped by SIGTERM"
    assert err == (f"sweep {said}: Hydra's record of the sweep is in {record}, and a search job that had "
                   "started keeps what it finished (its search.log says how far it got); rerun the same command to "
                   "resume\n")
    assert search_mod.sweep_interrupted_text(signal.SIGTERM, record=None) == (
        "sweep stopped by SIGTERM as it started, before Hydra recorded it; nothing was written")


_SIGINT_WHILE = """
import importlib, os, signal, sys, time

module, name = sys.argv.pop(1).split(":")

def signalled(*args, **kwargs):  # `kill -INT <pid>` while the member is final-trained (compressed)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the work going on: a signal ignored lets it run to its end
    raise RuntimeError("SIGINT was ignored")

setattr(importlib.import_module(module), name, signalled)
from nas.search import main
main()
"""


_MEMBER_STEPS = [("nas.results:train_candidate", "final_train=smoke", "interrupted during the final training"),
                 ("compress.pipeline:compress_checkpoint", "compress=smoke", "interrupted while compressing")]


@pytest.mark.parametrize(("target", "step", "said"), _MEMBER_STEPS, ids=["final-training", "compression"])
def test_final_training_and_compression_stop_on_sigint_in_a_process_that_ignores_it(tiny_idx_root, tmp_path,
                                                                                    finished_search, compose_cfg,
                                                                                    monkeypatch, caplog, target, step, said):
    # A search started as a background job of a script (`sh -c 'python -m nas.search ... &'`) inherits SIGINT ignored.
    # Its trials take a `kill -INT` as a stop all the same (_interrupts_at_safe_points); the members' final training and
    # compression went on to their end as if nothing had been sent. (The job itself, through the shell: the slow
    # test_a_background_search_stops_its_final_training_and_compression_on_sigint.)
    import importlib

    result = _copy_of(finished_search, tmp_path)  # its study is full: the search goes straight to the members
    overrides = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1") if o.split("=")[0] != step.split("=")[0]]
    module, name = target.split(":")

    def signalled(*args, **kwargs):  # `kill -INT <pid>` while the member is final-trained (compressed)
        deliver_signal(signal.SIGINT)
        time.sleep(5)  # the work going on: a signal ignored lets it run to its end
        raise RuntimeError("SIGINT was ignored")

    monkeypatch.setattr(importlib.import_module(module), name, signalled)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stopped = run_search(compose_cfg(*overrides, step))
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # as the process had it (no lasting state)
    finally:
        signal.signal(signal.SIGINT, before)
    assert stopped.stopped_by == signal.SIGINT  # `python -m nas.search` exits 130, as after Ctrl-C at a terminal
    assert f"{said}: finished members are kept; rerun the same command to resume" in caplog.text
    (member,) = finished_search.pareto
    if step.startswith("final_train"):
        assert stopped.pareto == []  # not final-trained: left out, for the rerun to train
    else:
        assert not (result.run_dir / "checkpoints" / member["arch_id"] / "compressed_metrics.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT-ignored", "SIGTERM-default"])
def test_a_search_stops_on_a_signal_while_it_hashes_its_data_in_a_process_that_ignores_it(tiny_idx_root, tmp_path,
                                                                                         compose_cfg, monkeypatch, signum):
    # A background job of a script (`sh -c 'python -m nas.search ... &'`) inherits SIGINT ignored; a library caller
    # leaves SIGTERM at its default (which killed it at once, without a line). Before the trials the search loads and
    # hashes its data (minutes for a large image folder): a `kill -INT` there was ignored until the trials began.
    def signalled(*args, **kwargs):  # the signal while each image is hashed
        deliver_signal(signum)
        time.sleep(5)  # the hashing going on: a signal ignored lets it run to its end
        raise RuntimeError(f"{signal.Signals(signum).name} was ignored")

    monkeypatch.setattr(search_mod, "split_image_digests", signalled)
    before = signal.signal(signum, signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)
    try:
        with pytest.raises(search_mod.SearchInterrupted) as stopped:
            run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
        assert signal.getsignal(signum) == (signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)  # as it was
    finally:
        signal.signal(signum, before)
    assert isinstance(stopped.value, Terminated) == (signum == signal.SIGTERM)  # `python -m nas.search` exits 143 / 130
    assert "nothing is lost; rerun the same command to start it" in str(stopped.value)


# Slow-only (`make test-slow`): the fast suite stops the same two steps in-process with SIGINT ignored
# (test_final_training_and_compression_stop_on_sigint_in_a_process_that_ignores_it); this one starts the search as a
# shell's background job and reruns it.
@pytest.mark.slow
@pytest.mark.parametrize(("target", "step", "said"), _MEMBER_STEPS, ids=["final-training", "compression"])
def test_a_background_search_stops_its_final_training_and_compression_on_sigint(tiny_idx_root, tmp_path, finished_search,
                                                                                 compose_cfg, target, step, said):
    # `sh -c 'python -m nas.search ... &'`: a shell starts its background jobs with SIGINT ignored. The trials take a
    # `kill -INT` as a stop all the same (_interrupts_at_safe_points); the members' final training and compression went
    # on to their end as if nothing had been sent, and the command exited 0.
    result = _copy_of(finished_search, tmp_path)  # its study is full: the search goes straight to the members
    overrides = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1") if o.split("=")[0] != step.split("=")[0]]
    stopped = subprocess.run(["sh", "-c", '"$@" & wait $!', "sh", sys.executable, "-c", _SIGINT_WHILE, target,
                              *overrides, step], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = stopped.stdout + stopped.stderr
    assert stopped.returncode == 130, out  # as a foreground search Ctrl-C'd there exits
    assert f"{said}: finished members are kept; rerun the same command to resume" in out and "Traceback" not in out, out
    (member,) = finished_search.pareto
    folder = result.run_dir / "checkpoints" / member["arch_id"]
    if step.startswith("compress"):
        assert not (folder / "compressed_metrics.json").exists()  # left to a rerun, which compresses it
        return
    assert json.loads((result.run_dir / "pareto.json").read_text())["members"] == []  # not final-trained: left out
    resumed = run_search(compose_cfg(*overrides, step))  # the same command resumes: the member is trained
    assert [m["arch_id"] for m in resumed.pareto] == [member["arch_id"]] and resumed.pareto[0]["val_acc_final"] is not None


def test_a_run_starts_by_removing_the_temporary_files_of_writers_killed_mid_write(tiny_idx_root, tmp_path, compose_cfg,
                                                                                   finished_search):
    from conftest import start_writer, stop

    _copy_of(finished_search, tmp_path)  # an earlier run's folder (its study full: the rerun trains nothing)
    killed, temp_of = start_writer(tmp_path / "t" / "trials" / "0123abcd.pt")  # kill -9 of an earlier run mid-write
    dead = temp_of()
    stop(killed)
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    assert not dead.exists() and not list((tmp_path / "t").rglob("*.tmp"))
    assert "removed 1 temporary file left by writers that were killed mid-write: trials/" in (
        tmp_path / "t" / "search.log").read_text()


def test_a_trial_stopped_by_a_full_disk_records_why(tiny_idx_root, tmp_path, compose_cfg, monkeypatch, caplog):
    import errno

    def disk_full(obj, f, *args, **kwargs):  # saving the trial's weights; the study's database still takes writes
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", disk_full)
    with (pytest.raises(OSError, match="No space left on device"),  # the search stops: no candidate could be saved
          caplog.at_level(logging.WARNING, logger="optuna")):
        run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")))
    trial = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}").trials[0]
    reason = trial.user_attrs.get("fail_reason") or ""  # it had none: trials.csv and the report said nothing of why
    assert trial.state == optuna.trial.TrialState.FAIL and reason.startswith("stopped the search: cannot write the run (")
    assert f"{tmp_path / 't' / 'trials'}" in reason and reason.endswith(": No space left on device)")
    assert re.search(r"/t/trials/\w+\.pt: No", reason) and ".tmp" not in reason  # the file saved, not its temporary one
    assert f"trial 0 {reason}" in (tmp_path / "t" / "search.log").read_text()
    # that line, not Optuna's 30-line traceback of the trial before it (nor its "failed with value None")
    assert not [r for r in caplog.records if r.name.startswith("optuna") and "Trial 0 failed" in r.getMessage()]


def test_report_from_the_study_appends_its_lines_to_search_log_marked_as_a_rebuild(tiny_idx_root, tmp_path,
                                                                                     finished_search, capsys):
    # `python -m nas.report search.study_name=...` final-trains members (minutes): its lines reached only the terminal,
    # so search.log, the run's one log, did not say who trained the members or when.
    from nas.report import main

    result = _copy_of(finished_search, tmp_path)
    log_file = result.run_dir / "search.log"
    before = log_file.read_text()
    assert main(_overrides(tiny_idx_root, tmp_path, "final_train=smoke")) == 0
    capsys.readouterr()
    added = log_file.read_text()[len(before):].splitlines()  # appended: the search's lines are kept
    (member,) = result.pareto
    assert "rebuild of the run's files from study t (python -m nas.report, no new trials): 1 trial finished" in added[0]
    assert any(f"final training of {member['arch_id']}: " in line for line in added[1:])
    assert "rebuild done (" in added[-1] and added[-1].endswith("1 on the Pareto front")


def test_report_from_the_study_refuses_to_retrain_members_final_trained_with_another_recipe_unless_named(
        tiny_idx_root, tmp_path, compose_cfg, finished_search, capsys):
    # `python -m nas.report search.runs_dir=... search.study_name=...` of a final_train=smoke run trained every member
    # again for final_train=default's 6 epochs (its files deleted first): interrupted, the report listed no members.
    from nas.report import main

    _copy_of(finished_search, tmp_path)  # its study is full: the search final-trains its member, training no trial
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "final_train=smoke")))
    (member,) = result.pareto
    metrics = result.run_dir / "checkpoints" / member["arch_id"] / "metrics.json"
    before = metrics.read_text()
    rebuild = [f"data.root={tiny_idx_root}", f"search.runs_dir={tmp_path}", "search.study_name=t", "compress=none"]
    with pytest.raises(SystemExit) as exited:
        main(rebuild)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: final_train: 1 member of the run folder final-trained with another recipe than final_train's "
                   f"default (6 epochs): {member['arch_id']} (2 epochs); the rebuild would train them again from scratch. "
                   "Pass final_train=none to keep their weights, or name the final_train to train them with "
                   "(final_train=default). Its search ran with final_train=smoke (config.yaml), which rebuilds the files "
                   "as they are")
    assert metrics.read_text() == before  # nothing trained, nothing deleted
    # refused for compress too (a member compressed otherwise): one line for both, not a second refusal after
    # final_train=none, and the settings the search ran with for both
    from compress.pipeline import FORMAT

    compressed = metrics.parent / "compressed_metrics.json"
    compressed.write_text(json.dumps({"format": FORMAT, "fingerprint": "0", "files": {}, "hw": "edge_npu",
                                      "config": {"prune": {"ratio": 0.5}}}))
    with pytest.raises(SystemExit):
        main(rebuild[:-1])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: final_train: 1 member of the run folder final-trained ")
    assert (f"(final_train=default). compress: 1 member of the run folder compressed with other settings than compress's "
            f"default: {member['arch_id']} (other ") in err
    assert err.endswith("(compress=default). Its search ran with final_train=smoke compress=none (config.yaml), which "
                        "rebuilds the files as they are")
    compressed.unlink()
    assert main([*rebuild, "final_train=none"]) == 0  # keeps the weights: the report is rebuilt from the files
    assert json.loads(metrics.read_text())["final_train"]["epochs"] == 2
    assert main([*rebuild, "final_train=smoke"]) == 0  # the same recipe: nothing to retrain, nothing refused


# Slow-only (`make test-slow`): the same refusal of a rebuild from the study as
# test_report_from_the_study_refuses_to_retrain_members_final_trained_with_another_recipe_unless_named checks in the
# fast suite, here for compress, after a search that compresses (seconds more).
@pytest.mark.slow
def test_report_from_the_study_refuses_to_compress_again_members_compressed_with_other_settings_unless_named(
        tiny_idx_root, tmp_path, compose_cfg, capsys):
    # As final_train above: a rebuild of a compress=smoke run that named no compress compressed every member again with
    # compress=default (minutes, not seconds), replacing the files the report was to be rebuilt from.
    from nas.report import main

    overrides = [o for o in _overrides(tiny_idx_root, tmp_path, "search.n_trials=1") if o != "compress=none"]
    result = run_search(compose_cfg(*overrides, "compress=smoke", *_SMALL_COMPRESSION))
    (member,) = result.pareto
    folder = result.run_dir / "checkpoints" / member["arch_id"]
    before = (folder / "compressed_metrics.json").read_text()
    stamp = (folder / "model_int8.onnx").stat().st_mtime_ns
    rebuild = [f"data.root={tiny_idx_root}", f"search.runs_dir={tmp_path}", "search.study_name=t", "final_train=none"]
    with pytest.raises(SystemExit) as exited:
        main(rebuild)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    # (not eval_images: smoke's 1000 is more than either of the tiny data's splits holds, so it scored every image,
    # as the default's null does)
    assert err.startswith(f"error: compress: 1 member of the run folder compressed with other settings than compress's "
                          f"default: {member['arch_id']} (other top_k, recover, quantize, measure_latency); the rebuild "
                          "would compress them again, replacing their files. Pass compress=none to keep their compressed "
                          "files, or name the compress settings to compress them with (compress=default). Its search ran "
                          "with compress=smoke ")
    assert err.endswith(" (config.yaml), which rebuilds the files as they are")
    assert all(f" {o}" in err for o in _SMALL_COMPRESSION)  # the settings it was compressed with, in the config's order
    assert (folder / "compressed_metrics.json").read_text() == before  # nothing compressed, nothing replaced
    assert main([*rebuild, "compress=none"]) == 0  # keeps the files: the report is rebuilt from them
    assert (folder / "compressed_metrics.json").read_text() == before
    assert f"| {member['arch_id']} | int8 |" in (result.run_dir / "report.md").read_text()
    assert main([*rebuild, "compress=smoke", *_SMALL_COMPRESSION]) == 0  # the same settings: nothing to redo, nothing refused
    assert (folder / "model_int8.onnx").stat().st_mtime_ns == stamp


def test_a_candidate_whose_training_batch_cannot_fit_fails_with_its_reason_and_evaluation_runs_in_batches_that_fit(
        tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    from nas.families import family_arch
    from nas.memory import fitting_batch_size

    eval_batches = []
    real_train = trials_mod.train_candidate
    monkeypatch.setattr(trials_mod, "train_candidate",
                        lambda model, data, cfg, **k: eval_batches.append(cfg.eval_batch_size) or real_train(model, data, cfg, **k))
    # A fake budget of 40 MiB (28 of a training step's estimate are the kernels' code, nas.memory.TRAINING_CODE_BYTES):
    # caformer-M's training step at batch 24 needs more (its attention), poolformer-S's fits, and its evaluation batch
    # of 512 does not: it is evaluated in the batch that fits (over its 40 validation images: a step's code leaves no
    # budget that trains a batch and splits 40 images; test_memory checks that pieces score as one batch).
    common = ("train.batch_size=24", "search.sampler=random", "search.n_trials=1", "search.export_onnx=false")
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, *common, "search.memory_budget_gb=0.04",
                                                "search.seed_archs=[caformer-M,poolformer-S]")))
    rows = _rows(tmp_path / "t")
    assert result.n_complete == 1 and [r["state"] for r in rows] == ["FAIL", "COMPLETE"]
    assert rows[0]["arch_id"] == family_arch("caformer-M").arch_id and rows[1]["arch_id"] == family_arch("poolformer-S").arch_id
    assert rows[0]["fail_reason"].startswith("out of memory: training at train.batch_size=24 needs about ")
    assert "over the memory budget of 0.04 GiB (search.memory_budget_gb); a batch of " in rows[0]["fail_reason"]
    fit = fitting_batch_size(family_arch("poolformer-S"), batch_size=512, budget_bytes=int(0.04 * 2**30))
    assert eval_batches == [fit] and 0 < fit < 512  # one trained candidate, evaluated in the batch that fits
    # The same candidate under the machine's own budget: evaluated in one batch, to the same accuracy.
    eval_batches.clear()
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, *common, "search.study_name=roomy",
                                       "search.seed_archs=[poolformer-S]")))
    roomy = _rows(tmp_path / "roomy")
    assert [r["state"] for r in roomy] == ["COMPLETE"] and eval_batches == [512]
    assert roomy[0]["arch_id"] == rows[1]["arch_id"] and roomy[0]["val_acc"] == rows[1]["val_acc"]
    assert "memory budget for activations: " in (tmp_path / "roomy" / "search.log").read_text()


def test_a_member_whose_final_training_batch_cannot_fit_stops_in_one_line_and_members_are_scored_in_batches_that_fit(
        tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    import nas.results as results_mod
    from nas.families import family_arch
    from nas.memory import fitting_batch_size

    member = family_arch("poolformer-S")
    common = [*_overrides(tiny_idx_root, tmp_path, "train.batch_size=8", "search.n_trials=1", "search.export_onnx=false",
                          "search.seed_archs=[poolformer-S]", "search.memory_budget_gb=0.032")]
    common[common.index("final_train=none")] = "final_train=smoke"
    # few steps of each training (poolformer-S is large): what is checked is which batches fit, not what is learnt (64
    # final-training images: fewer would cap its batch of 64, which the refusal below names)
    common[common.index("train.subset=128")] = "train.subset=16"
    common += ["final_train.subset=64", "train.threads=1", "final_train.threads=1"]
    # the proxy training at batch 8 fits the 32 MiB budget (28 MiB of its estimate are the kernels' code), the final
    # training at smoke's batch of 64 does not
    with pytest.raises(ConfigError) as err:
        run_search(compose_cfg(*common, "final_train.epochs=1"))
    assert str(err.value).startswith(f"final training of Pareto member {member.arch_id}: out of memory: training at "
                                     "final_train.batch_size=64 needs about ")
    assert "\n" not in str(err.value) and _rows(tmp_path / "t")[0]["state"] == "COMPLETE"  # the trial is kept
    batches = []
    real_logits = results_mod.torch_logits
    monkeypatch.setattr(results_mod, "torch_logits", lambda m, split, *, batch_size: batches.append(batch_size) or
                        real_logits(m, split, batch_size=batch_size))
    result = run_search(compose_cfg(*common, "final_train.epochs=1", "final_train.batch_size=8"))
    fit = fitting_batch_size(member, batch_size=512, budget_bytes=int(0.032 * 2**30))
    assert [m["arch_id"] for m in result.pareto] == [member.arch_id] and batches == [fit] and 0 < fit < 100  # 100 test images


def test_a_search_on_an_input_its_calibrated_profile_never_measured_warns_in_search_log(tiny_idx_root, tmp_path,
                                                                                        compose_cfg):
    # hw=cpu records the inputs of its measurements (1x28x28 and 3x64x64); here one fitted on 64x64 colour alone meets
    # the 28x28 grey data: its latencies are extrapolated, which the run said nowhere. (runtime '': nothing timed here)
    overrides = _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false", "hw=cpu", "hw.runtime=''")
    warning = ("hw=cpu was calibrated on inputs 3x64x64, not on this data's 1x28x28: in_chans=1 is not among the measured 3 "
               "and img_size=28 is below the smallest measured, 64, so its predicted latencies are extrapolated")
    cfg = compose_cfg(*overrides, "hw.measured_inputs=['3x64x64']")
    cfg.hw.measured_extent = {"mixers": ["conv", "pool", "sepconv"]}  # nor on archs with attention (extent_warning)
    result = run_search(cfg)
    assert warning in (tmp_path / "t" / "search.log").read_text()
    # ... and in pareto.json and the report's Warnings section, near its top, as the other setup warnings
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert pareto["latency_warning"].startswith(warning) and pareto["setup_warnings"][0].startswith(warning)
    assert "; space=metaformer_t reaches outside the archs hw=cpu was fitted on (its measured_extent): mixer=attn, so " in (
        pareto["latency_warning"])
    # its command samples the search's space (the profile's default space may be another), with the data's classes
    assert ("(`python -m nas.latency.profile hw=cpu space=metaformer_t in_chans=1 img_size=28 num_classes=10 "
            "export_only=true ...`, timed with the chip's own tools, then `python -m nas.latency.fit hw=cpu ...`; README") in (
        pareto["latency_warning"])
    # ... as does the extent's, at the data's input and classes (profile builds any space's archs for them, never at its
    # own default)
    assert ("(`python -m nas.latency.profile hw=cpu space=metaformer_t in_chans=1 img_size=28 num_classes=10 "
            "export_only=true ...`, "
            "timed with the chip's own tools, then `python -m nas.latency.fit hw=cpu ...` on those") in (
        pareto["latency_warning"])
    assert _warnings_section(result.run_dir / "report.md") == pareto["setup_warnings"]
    shipped = run_search(compose_cfg(*overrides, "search.study_name=shipped"))  # the shipped file measured this input
    assert "calibrated on inputs" not in (tmp_path / "shipped" / "search.log").read_text()
    assert json.loads((shipped.run_dir / "pareto.json").read_text())["latency_warning"] is None
    assert "calibrated on inputs" not in (shipped.run_dir / "report.md").read_text()


def _warnings_section(report_md: Path) -> list[str]:
    """The lines of report.md's Warnings section (which comes before the Pareto front), as the search gave them."""
    text = report_md.read_text()
    assert text.index("## Warnings") < text.index("## Pareto front")
    section = text[text.index("## Warnings"):text.index("## Pareto front")]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_the_report_shows_the_warnings_the_search_gave_about_its_setup(tmp_path, compose_cfg):
    # Unbalanced classes and a photo in a format that is not read: the search warned on the terminal and in search.log
    # only, and the report, the file a user is told to trust, said nothing of either.
    from PIL import Image

    from nas.report import main as report_main

    rng = np.random.default_rng(0)
    for name, n in (("good", 40), ("crack", 3)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    (tmp_path / "images" / "crack" / "photo.heic").write_bytes(b"not read")
    overrides = ("data=imagefolder", f"data.root={tmp_path / 'images'}", "data.img_size=12", "train=smoke",
                 "final_train=none", "compress=none", "search.n_trials=1", f"search.runs_dir={tmp_path / 'runs'}",
                 "search.study_name=parts", "search.progress=false")
    result = run_search(compose_cfg(*overrides))
    log_text = (result.run_dir / "search.log").read_text()
    warned = json.loads((result.run_dir / "pareto.json").read_text())["setup_warnings"]
    unbalanced = next(w for w in warned if w.startswith("unbalanced classes: 'good' has "))
    unread = next(w for w in warned if "1 image file of formats that are not read is left out (1 .heic" in w)
    assert unbalanced in log_text and unread in log_text  # word for word as the search gave them
    assert "trial 0 [" not in " ".join(warned)  # the trials' lines are not the setup's
    assert _warnings_section(result.run_dir / "report.md") == warned
    report_html = (result.run_dir / "report.html").read_text()
    assert f"<li>{html.escape(unbalanced)}</li>" in report_html and f"<li>{html.escape(unread)}</li>" in report_html
    # A rebuild from the study gives them again (its report would otherwise drop them) ...
    export_study(compose_cfg(*overrides))
    assert _warnings_section(result.run_dir / "report.md") == warned
    # ... and so does the report rebuilt from the run folder's files alone
    (result.run_dir / "report.md").unlink()
    assert report_main([str(result.run_dir)]) == 0
    assert _warnings_section(result.run_dir / "report.md") == warned


def test_a_worker_killed_while_this_search_ran_is_not_named_as_unfinished_once_this_one_ends(tiny_idx_root, tmp_path,
                                                                                            compose_cfg, monkeypatch):
    # Two workers of one machine, one killed (kill -9) mid-trial: the other re-ran its trial and finished the study, but
    # the killed one's marker stayed, and the finished report said at its top that a search "stopped before it finished
    # ... what follows is the state before it", though its tables held all of that search's work.
    import os

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real pid whose process is gone: the killed worker
    run_trials = search_mod.run_trials

    def a_worker_is_killed_meanwhile(run, data, run_dir, study):
        with monkeypatch.context() as m:  # its marker, as it wrote it when it started beside this search
            m.setattr(os, "getpid", lambda: child.pid)
            run_folder_mod.mark_started(run_dir, warnings=())
        assert len(list(run_dir.glob(".running.*"))) == 2
        return run_trials(run, data, run_dir, study)

    monkeypatch.setattr(search_mod, "run_trials", a_worker_is_killed_meanwhile)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.export_onnx=false")))
    assert not list(result.run_dir.glob(".running.*"))
    assert "Not finished" not in (result.run_dir / "report.md").read_text()


def test_a_memory_budget_in_which_no_candidate_can_train_is_refused_before_the_run(tiny_idx_root, tmp_path, compose_cfg):
    # Every candidate failed at once ('out of memory: training at train.batch_size=...'), and the search sampled 50
    # architectures per trial asked for (minutes of failures) before it gave up with 0 trials and exit status 0.
    # 30 MiB: the leanest candidate's step at batch 32 needs more, a smaller one fits (28 MiB of each: the kernels' code)
    cfg = compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.memory_budget_gb=0.03"))
    with pytest.raises(ConfigError) as e:
        run_search(cfg)
    said = str(e.value)
    assert said.startswith("search.memory_budget_gb=0.03 cannot train any architecture of space 'metaformer_t' at "
                           "train.batch_size=32: the leanest (") and "\n" not in said
    # the number is the estimate's whole: the kernels' code as well as the activations
    assert re.search(r"\) needs about [0-9.]+ GiB of working memory \(activations and the kernels' code\); ", said)
    assert "{" not in said
    fit = int(re.search(r"set train.batch_size=(\d+) or lower, or raise the budget$", said)[1])
    assert not (tmp_path / "t").exists()  # nothing written
    # the batch it names fits the leanest candidate: passed
    from nas.data import load_dataset

    run = to_run_config(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.memory_budget_gb=0.03",
                                                f"train.batch_size={fit}")))
    search_mod.check_budget(run, load_dataset(run.data))


def test_an_interrupt_outside_the_trials_stops_the_command_in_one_line(tiny_idx_root, tmp_path, compose_cfg,
                                                                         finished_search, monkeypatch, capsys):
    # SIGTERM (SLURM's preemption) or Ctrl-C while the data loads, before any trial: a 40-line traceback, for the search
    # and for `python -m nas.report` from a study alike.
    from nas.report import main as report_main

    _copy_of(finished_search, tmp_path)  # a finished run: its study has a trial to resume
    capsys.readouterr()

    def interrupted(cfg, **_):  # load_dataset's keywords (overridden=...) taken as it takes them
        raise KeyboardInterrupt

    for module in (search_mod, rebuild_mod):  # where the search and the rebuild from the study look it up
        monkeypatch.setattr(module, "load_dataset", interrupted)
    try:
        with pytest.raises(SystemExit) as exit_info:
            search_mod.main(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2")))
    except KeyboardInterrupt:  # not for pytest to stop the session on
        pytest.fail("the interrupt escaped the search's command as a traceback")
    err = capsys.readouterr().err
    assert exit_info.value.code == 130 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("interrupted: the finished trials are kept in the study; rerun the same command to resume")
    try:
        assert report_main(_overrides(tiny_idx_root, tmp_path)) == 130
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped nas.report's command as a traceback")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted: ")

    # SIGTERM there (nas.errors.Terminated, as stop_on_sigterm raises it): the same line, and exit status 143, as the
    # shell reports death by SIGTERM; both commands exited 130, as after Ctrl-C
    def terminated(cfg, **_):
        raise Terminated

    for module in (search_mod, rebuild_mod):
        monkeypatch.setattr(module, "load_dataset", terminated)
    with pytest.raises(SystemExit) as exit_info:
        search_mod.main(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2")))
    err = capsys.readouterr().err
    assert exit_info.value.code == 143 and err.startswith("interrupted: the finished trials are kept in the study"), err
    assert report_main(_overrides(tiny_idx_root, tmp_path)) == 143
    assert capsys.readouterr().err.startswith("interrupted: ")


def test_an_interrupt_outside_the_trials_says_whether_there_is_a_study_to_resume(tiny_idx_root, tmp_path, compose_cfg,
                                                                                   finished_search, monkeypatch, capsys):
    # Ctrl-C while the data loaded on a first run said "the finished trials are kept in the study; rerun the same command
    # to resume": there was no study, and nothing to resume.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def stopped(*overrides: str) -> str:
        try:
            with pytest.raises(SystemExit) as exit_info:
                search_mod.main(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.export_onnx=false", *overrides)))
        except KeyboardInterrupt:  # not for pytest to stop the session on
            pytest.fail("the interrupt escaped the search's command as a traceback")
        err = capsys.readouterr().err
        assert exit_info.value.code == 130 and err.count("\n") == 1 and "Traceback" not in err, err
        return err.strip()

    with monkeypatch.context() as m:  # the first run, while its data loads
        m.setattr(search_mod, "load_dataset", interrupted)
        assert stopped("search.n_trials=1") == ("interrupted before the search started: there was no study yet and no "
                                                "trial ran, so nothing is lost; rerun the same command to start it")
        assert not (tmp_path / "t").exists()
        shared = f"search.storage=sqlite:///{tmp_path / 'shared.db'}"  # a shared storage is not asked while interrupted
        assert stopped(shared) == ("interrupted before the search opened its study (no trial of this run had started); "
                                   "rerun the same command to start or resume it")
    with monkeypatch.context() as m:  # its study open, before its first trial
        m.setattr(search_mod, "remove_leftovers", interrupted)
        assert stopped("search.n_trials=1") == ("interrupted before any trial finished: the study holds none yet, so "
                                                "nothing is lost; rerun the same command to start it")
    shutil.rmtree(tmp_path / "t")  # that run's study, empty, becomes one with a finished trial
    _copy_of(finished_search, tmp_path)
    capsys.readouterr()
    with monkeypatch.context() as m:  # a rerun that would add a trial, before it
        m.setattr(search_mod, "remove_leftovers", interrupted)
        assert stopped("search.n_trials=2") == "interrupted: the study's 1 finished trial is kept; rerun the same command to resume"


def test_a_worker_follows_the_tighter_budget_another_worker_joined_with(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    # Worker A searches with no budget; B joins with search.latency_budget_ms=1.0, which becomes the study's. A read
    # its own budget only: it went on training candidates over 1.0 ms and, finishing last, wrote its front and
    # pareto.json at no budget, the members over 1.0 ms included.
    from nas.study import check_search

    run_trials = search_mod.run_trials

    def b_joins_meanwhile(run, data, run_dir, study):
        check_search(study, to_run_config(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.latency_budget_ms=1.0"))))
        return run_trials(run, data, run_dir, study)

    monkeypatch.setattr(search_mod, "run_trials", b_joins_meanwhile)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.export_onnx=false")))
    rows = _rows(result.run_dir)
    trained = [float(r["latency_ms"]) for r in rows if r["state"] == "COMPLETE"]
    assert len(trained) == 2 and max(trained) <= 1.0, rows
    assert any(r["state"] == "PRUNED" for r in rows)  # the seeded sampler's first candidate (2.6 ms) is over it
    pareto = json.loads((result.run_dir / "pareto.json").read_text())
    assert pareto["latency_budget_ms"] == 1.0 and all(m["latency_ms"] <= 1.0 for m in pareto["members"])
    assert "search.latency_budget_ms is 1 now, the study's" in (result.run_dir / "search.log").read_text()


def test_a_search_that_gives_up_names_the_budget_its_trials_applied(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    # Worker A searches with no budget; B joins with search.latency_budget_ms=0.172 (just above the space's fastest), which
    # the trials then apply: A gave up after its 50 samples saying "50 in the study failed", naming no budget, as its
    # own was none.
    from nas.study import check_search

    run_trials = search_mod.run_trials

    def b_joins_meanwhile(run, data, run_dir, study):
        check_search(study, to_run_config(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.latency_budget_ms=0.172",
                                                                  "search.sampler=random"))))
        return run_trials(run, data, run_dir, study)

    monkeypatch.setattr(search_mod, "run_trials", b_joins_meanwhile)
    monkeypatch.setattr(trials_mod, "SAMPLES_PER_TRIAL", 5)  # not 50: each sample is a trial; 50 pruned none more
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.sampler=random",
                                                "search.export_onnx=false")))
    log_text = (result.run_dir / "search.log").read_text()
    assert result.n_complete == 0 and ("gave up after 5 sampled architectures with 0 of 1 trial finished: 5 in the study "
                                       "were over search.latency_budget_ms=0.172 (the study's, which a worker joined with; "
                                       "this one's is none) (pruned without training; the fastest of them was ") in log_text, \
        log_text[-1500:]
    # This worker cannot raise the study's budget by its own setting (it had none): the advice says how it can search
    # at a looser one. It told it to "raise it", which its own setting, none, could not.
    assert ("the budget admits few architectures of this space: a worker's own setting cannot raise the study's (a budget "
            "may only tighten): to search at a looser budget, or in a space narrowed to faster ones, start a new study "
            "(search.study_name=...)") in log_text
    assert "raise it" not in log_text


def test_search_log_gives_accuracies_in_percent_as_the_report_does():
    # search.log's trial lines read "val_acc=0.8731" and "best val acc 0.8731" while the report says 87.31%; trials.csv
    # and the JSON files keep fractions.
    from nas.trials import _best_text, _trial_text, early_stop_verdict

    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, ms in ((0.8731, 0.25), (0.9012, 0.5)):
        study.add_trial(optuna.trial.create_trial(values=[acc, ms], user_attrs={"arch_id": f"a{ms}", "latency_ms": ms}))
    line = _trial_text(study.trials[0])
    assert "val_acc=87.31% (" in line and "0.8731" not in line
    assert _best_text(study) == "val acc 90.12% @ 0.500 ms"
    verdict = early_stop_verdict(0.70, 0.6, [(0.90, 0.5, 0.85)], min_reference=1, safety=1.0, slack=0.0)
    assert verdict == "stopped early: val acc 70.00% + allowed gain 5.00 pt < 90.00% of a trial no slower (1 reference)"


def test_a_search_stopped_by_a_signal_names_which_in_its_run_marker(tmp_path):
    # The marker (and the report quoting it) said "interrupted (Ctrl-C or SIGTERM)": a user who pressed nothing could
    # not tell that a scheduler's time limit or a kill had stopped the search.
    from nas.errors import Terminated, interruption_text

    marker = run_folder_mod._marker(tmp_path)
    for raised, said in ((KeyboardInterrupt, "interrupted (Ctrl-C)"), (Terminated, "stopped by SIGTERM")):
        marker.write_text(json.dumps({"pid": 1}))
        with pytest.raises(raised), run_folder_mod.stop_recorded(tmp_path):
            raise raised
        assert json.loads(marker.read_text()) == {"pid": 1, "stopped": said}
    assert interruption_text(stopped_by=signal.SIGHUP) == "stopped by SIGHUP"
    assert interruption_text(stopped_by=signal.SIGHUP, again=True) == "stopped again by SIGHUP"


def test_help_says_what_each_hw_choice_is_and_lists_a_config_dirs_own(tmp_path):
    # `--help` named the hw= choices alone ("hw: cpu, cpu_int8, ..."): nothing said which is an NPU, which is timed on
    # this host, or which was calibrated on this host's CPU; README is where it was. Now a block before Hydra's help.
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "my_npu.yaml").write_text("name: my_npu\ndescription: my board's NPU\nprecision: int8\n")
    proc = subprocess.run([sys.executable, "-m", "nas.search", "--help", "--config-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # what the command does comes first, Hydra's "search is powered by Hydra." header is this config's line on its settings
    head, _, hydra_help = proc.stdout.partition("Settings (conf/search.yaml): group=option picks a group's file")
    assert head.startswith(f"{search_mod.HELP_LINE}\n\nTarget chip: hw=<name>") and "powered by Hydra." not in proc.stdout
    assert "== Configuration groups ==" in hydra_help
    lines = {line.split()[0]: line for line in head.splitlines() if line.startswith("  ")}
    assert {"edge_npu", "mobile_cpu", "cpu", "cpu_zen2", "cpu_xeon", "cpu_ort", "cpu_int8", "my_npu"} <= set(lines)
    assert "(default): generic 4 TOPS int8 edge NPU" in lines["edge_npu"]
    assert "int8, predicted only; datasheet numbers (uncalibrated): my board's NPU" in lines["my_npu"]
    assert "calibrated on 'AMD EPYC; family 23 model 49; avx2'" in lines["cpu_zen2"]
    assert "This host: " in head


def test_run_search_leaves_the_callers_threads_random_states_and_optuna_verbosity_as_they_were(tiny_idx_root, tmp_path,
                                                                                               compose_cfg):
    # From a notebook: the search set torch to train.threads (2) for good, seeded every generator (the user's "random"
    # draws after it came out the same on every run) and turned Optuna's INFO lines off for the user's own studies.
    import random

    threads, verbosity = torch.get_num_threads(), optuna.logging.get_verbosity()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    random.seed(123), np.random.seed(123), torch.manual_seed(123)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "train.threads=2")))
        assert result.n_complete == 1
        assert torch.get_num_threads() == 1 and optuna.logging.get_verbosity() == optuna.logging.INFO
        assert random.getstate() == states[0] and torch.equal(torch.get_rng_state(), states[2])
        assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:3], states[1][1:3]))
        with pytest.raises(TypeError, match=r"^cfg=\['train=smoke'\] is a list; pass the DictConfig that "
                                            r"nas\.compose_search_config"):
            run_search(["train=smoke"])  # the overrides themselves, not the config they compose
    finally:
        torch.set_num_threads(threads)
        optuna.logging.set_verbosity(verbosity)


def _open_files_named(name):
    """The files of this process's open descriptors whose name is `name`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # a descriptor closed while listing
            if (target := os.readlink(f"/proc/self/fd/{fd}")).endswith(f"/{name}"):
                found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files from /proc")
def test_run_search_and_the_rebuild_leave_no_connection_to_the_study_open(tiny_idx_root, finished_search, tmp_path,
                                                                          compose_cfg):
    # From a notebook: each run_search left its study.db open (its storage's pooled connection, freed only when a
    # garbage collection happened to reach the study's reference cycles), one more file handle per run.
    run_dir = _copy_of(finished_search, tmp_path).run_dir
    cfg = compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1"))
    gc.disable()  # the cycles stay: what the caller sees until a collection runs, which nothing schedules
    try:
        for run in (run_search, export_study):
            assert run(cfg).run_dir == run_dir
            assert str(run_dir / "study.db") not in _open_files_named("study.db"), run.__name__
    finally:
        gc.enable()


def test_a_search_whose_candidates_all_fail_in_training_stops_after_a_few_in_a_row(tiny_idx_root, tmp_path, compose_cfg,
                                                                                    monkeypatch, caplog):
    # train.lr=1e9: every candidate's loss became NaN, and the search went on sampling 50 architectures per trial it still
    # needed (500 proxy trainings for the default 10 trials), each failing alike, with two lines of Optuna's each
    # ("failed with parameters: {...} because of the following error: The value nan is not acceptable").
    from nas.train import TrainingDiverged

    trained = []

    def diverge(*args, **kwargs):
        trained.append(1)
        raise TrainingDiverged("training loss became nan (lr=1000000000.0); the candidate is unstable")

    monkeypatch.setattr(trials_mod, "train_candidate", diverge)
    with caplog.at_level(logging.WARNING, logger="optuna"):
        result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.sampler=random",
                                                    "search.max_failures_in_a_row=3", "search.export_onnx=false")))
    assert len(trained) == 3 and result.n_complete == 0 and not result.interrupted
    assert [r["state"] for r in _rows(result.run_dir)] == ["FAIL"] * 3
    log_text = (result.run_dir / "search.log").read_text()
    assert ("stopped after 3 trials in a row failed in training, each with: TrainingDiverged: training loss became nan "
            "(lr=1000000000.0); the candidate is unstable; 0 of 2 trials finished: failures this many in a row point at "
            "the training settings (train.*) or the data rather than the candidates (see fail_reason in trials.csv); fix "
            "them under a new search.study_name (a study keeps its train settings and images), or raise "
            "search.max_failures_in_a_row and rerun the same command (failed trials do not count towards "
            "search.n_trials)") in log_text, log_text[-1500:]
    assert "gave up" not in log_text
    # the search said each trial's reason in one line: Optuna's two lines about the NaN it was handed are left out
    assert not [r for r in caplog.records if "is not acceptable" in r.getMessage() or "failed with value" in r.getMessage()]


def test_failures_in_a_row_are_counted_afresh_after_a_finished_trial(tiny_idx_root, tmp_path, compose_cfg, monkeypatch):
    # unstable candidates here and there are results, not a broken recipe: only an unbroken run of failures stops
    from nas.train import TrainingDiverged

    real_train = trials_mod.train_candidate
    calls = {"n": 0}

    def fail_all_but_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            return real_train(*args, **kwargs)
        raise TrainingDiverged("training loss became nan (lr=0.003); the candidate is unstable")

    monkeypatch.setattr(trials_mod, "train_candidate", fail_all_but_the_third)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=2", "search.sampler=random",
                                                "search.max_failures_in_a_row=3", "search.export_onnx=false")))
    assert [r["state"] for r in _rows(result.run_dir)] == ["FAIL", "FAIL", "COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert "stopped after 3 trials in a row failed in training, each with: " in (result.run_dir / "search.log").read_text()


def test_a_search_that_gives_up_on_its_budget_names_the_fastest_architecture_it_sampled(tiny_idx_root, tmp_path,
                                                                                        compose_cfg, monkeypatch):
    # "gave up after 5 sampled architectures ...: 5 in the study were over search.latency_budget_ms=0.172": how far over,
    # the line did not say, so the user had to guess the next budget
    monkeypatch.setattr(trials_mod, "SAMPLES_PER_TRIAL", 5)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.sampler=random",
                                                "search.latency_budget_ms=0.172", "search.export_onnx=false")))
    rows = _rows(result.run_dir)
    fastest = min(float(r["latency_ms"]) for r in rows)
    assert result.n_complete == 0 and len(rows) == 5 and fastest > 0.172
    log_text = (result.run_dir / "search.log").read_text()
    assert (f"5 in the study were over search.latency_budget_ms=0.172 (pruned without training; the fastest of them was "
            f"{fastest:.3f} ms, the space's fastest architecture 0.171 ms)") in log_text, log_text[-1500:]


def test_a_timeout_that_strikes_in_the_last_trial_does_not_ask_for_a_rerun(tiny_idx_root, tmp_path, compose_cfg,
                                                                           monkeypatch):
    # search.timeout_s=1 with one trial of 50 s logged "search.timeout_s=1 reached: 1 of 1 trial finished; rerun the same
    # command to go on": the study was full, and a rerun has nothing to do
    real_train = trials_mod.train_candidate

    def slow_train(*args, **kwargs):
        time.sleep(1.0)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trials_mod, "train_candidate", slow_train)
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.timeout_s=0.5",
                                                "search.export_onnx=false")))
    log_text = (result.run_dir / "search.log").read_text()
    assert result.n_complete == 1 and "1 trial finished" in log_text
    assert "reached" not in log_text and "rerun the same command" not in log_text, log_text[-1000:]


def test_a_training_subset_smaller_than_the_classes_is_warned_about_in_search_log(tiny_idx_root, tmp_path, compose_cfg):
    # train.subset=5 on 10 classes ran without a word: every candidate trained on 5 images, never saw half the classes,
    # and the search's val accuracies (about chance) ranked nothing
    from nas.search import subset_warning

    def warning(*overrides):
        return subset_warning(to_run_config(compose_cfg("data.root=/unused", *overrides)), num_classes=10)

    assert warning("train.subset=10", "final_train.subset=null") is None and warning("train.subset=null") is None
    assert warning("train.subset=5", "final_train=none") == (
        "train.subset=5 is fewer images than the 10 classes: at least 5 classes are never seen in training, so the "
        "accuracies it gives say little; give it 10 or more (null: the whole training split)")
    assert warning("train.subset=5", "final_train.subset=3").startswith(
        "train.subset=5 and final_train.subset=3 are fewer images than the 10 classes: at least 5 classes are never seen")
    overrides = _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "train.subset=4", "search.export_onnx=false")
    result = run_search(compose_cfg(*overrides))
    assert "train.subset=4 is fewer images than the 10 classes" in (result.run_dir / "search.log").read_text()
    assert "train.subset=4 is fewer images" in (result.run_dir / "report.md").read_text()
    # A rebuild from the study (python -m nas.report search.study_name=...) trains no candidate, yet its report shows
    # the val accuracies of the study's proxy training: it dropped the warning the search's report gave
    export_study(compose_cfg(*overrides))
    assert "train.subset=4 is fewer images" in (result.run_dir / "report.md").read_text()


def test_a_batch_size_leaving_one_step_per_epoch_is_warned_about_in_search_log(tiny_idx_root, tmp_path, compose_cfg):
    # A folder of 162 photos (117 training images) searched with the defaults, batch_size=128 sized for Fashion-MNIST,
    # trained each candidate for one optimizer step (1 epoch of one batch) and the final training for 6, without a word:
    # the search ranked candidates after a single step on 13 val images
    from nas.search import batch_warning

    def warning(*overrides, images=117):
        return batch_warning(to_run_config(compose_cfg("data.root=/unused", *overrides)), train_images=images)

    assert warning(images=54_000) is None and warning(images=256) is None  # two steps per epoch or more
    assert warning("final_train=none") == (
        "train.batch_size=128 leaves a single optimizer step per epoch (train: 1 step in all on 117 images, "
        "train.epochs=1), so the models are barely trained and the accuracies it gives say little; lower the batch size "
        "below half the training images or raise the epochs")
    assert warning().startswith(  # the final training's 6 epochs are 6 steps
        "train.batch_size=128 and final_train.batch_size=128 leave a single optimizer step per epoch (train: 1 step in "
        "all on 117 images, train.epochs=1; final_train: 6 steps in all on 117 images, final_train.epochs=6), so")
    assert warning("train.subset=100", "train.batch_size=64", "final_train.batch_size=32", images=5000).startswith(
        "train.batch_size=64 leaves a single optimizer step per epoch (train: 1 step in all on 100 images")
    assert warning("train.batch_size=16", "final_train.batch_size=16") is None
    result = run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "train.batch_size=128",
                                                "search.export_onnx=false")))
    expected = "train.batch_size=128 leaves a single optimizer step per epoch (train: 1 step in all on 128 images"
    assert expected in (result.run_dir / "search.log").read_text()
    assert expected in (result.run_dir / "report.md").read_text()


def test_a_search_over_a_folder_whose_trials_csv_was_deleted_says_it_writes_the_files_again(tmp_path, caplog):
    # Marking the earlier report as out of date, a search over a run folder whose trials.csv was deleted warned "no
    # trials.csv in ...; run `python -m nas.search` first", though that was the command running.
    import logging

    from nas.run_folder import mark_started

    (tmp_path / "report.md").write_text("# an earlier run's report\n")
    (tmp_path / "pareto.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        mark_started(tmp_path, warnings=())
    assert [r.getMessage() for r in caplog.records if r.name == "nas.search"] == [
        "the report of the earlier run is not marked as out of date: trials.csv is gone from the run folder; this search "
        "writes it again at its end"]


def test_a_run_folder_copied_to_another_name_says_whose_study_its_database_holds(tmp_path):
    # A run folder copied (or renamed) from runs/r1 to runs/r2 and searched with search.study_name=r2 was refused as a
    # lost or replaced database ("restore it"), though its study.db was whole: it holds study 'r1', which resumes only
    # in a folder of that name.
    from nas.search import _check_study_not_lost

    run_dir = tmp_path / "r2"
    run_dir.mkdir()
    storage = f"sqlite:///{run_dir / 'study.db'}"
    old = optuna.create_study(study_name="r1", storage=storage)
    for value in (0.5, 0.6):
        old.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    (run_dir / "trials.csv").write_text("number,state\n0,COMPLETE\n1,COMPLETE\n")
    with pytest.raises(ConfigError) as err:
        _check_study_not_lost(optuna.create_study(study_name="r2", storage=storage), run_dir, own_storage=True)
    assert str(err.value) == (
        f"study 'r2' holds no trials, but {run_dir / 'trials.csv'} lists 2: the folder's database holds study 'r1' "
        f"(2 trials), so the folder was copied or renamed from a run of that name, and a study resumes only under its "
        f"own name: move the folder back to {tmp_path / 'r1'} and rerun with search.study_name=r1, or pass a new "
        f"search.study_name=... (or remove {run_dir} to start over)")


def test_a_file_where_the_run_needs_a_folder_is_named_in_one_line_not_a_traceback():
    # A member's checkpoints/<arch_id> replaced by a file (or a folder where the run writes a file) ended the rerun of
    # the search in a 40-line FileExistsError traceback: it is a run-folder problem like a full disk, said in one line.
    import errno

    from nas.search import storage_or_disk_problem

    folder = "/runs/r1/checkpoints/d13a90aaf1"
    assert storage_or_disk_problem(FileExistsError(errno.EEXIST, "File exists", folder)) == (
        f"{folder}: File exists (a file stands where the run needs a folder: move it away)")
    assert storage_or_disk_problem(NotADirectoryError(errno.ENOTDIR, "Not a directory", f"{folder}/model.pt")) == (
        f"{folder}/model.pt: Not a directory (a file stands where the run needs a folder: move it away)")
    try:
        raise RuntimeError("wrapped") from IsADirectoryError(errno.EISDIR, "Is a directory", "/runs/r1/report.html")
    except RuntimeError as e:
        assert storage_or_disk_problem(e) == (
            "/runs/r1/report.html: Is a directory (a folder stands where the run writes a file: move it away)")
    assert storage_or_disk_problem(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None


def test_a_file_over_the_size_limit_stops_the_search_in_one_line_as_a_full_disk_does():
    # A trial's weights over the file size limit (`ulimit -f`, a file system's largest file): EFBIG was not among the
    # disk's failures, so the search ended in its traceback instead of "error: cannot write the run (...)".
    import errno

    from nas.search import storage_or_disk_problem

    try:
        raise RuntimeError("PytorchStreamWriter failed writing file") from OSError(errno.EFBIG, "File too large",
                                                                                   "/runs/r1/trials/7.pt")
    except RuntimeError as e:
        assert storage_or_disk_problem(e) == "/runs/r1/trials/7.pt: File too large"


def test_a_search_that_ends_with_no_finished_trial_exits_1_after_writing_its_files(tiny_idx_root, tmp_path, compose_cfg,
                                                                                   finished_search, monkeypatch, capsys):
    # Every trial failed (the failure stop) or every architecture sampled was over the budget (the give-up): the command
    # exited 0, so `python -m nas.search ... && deploy` carried on with no model. From Python the result says so.
    from nas.train import TrainingDiverged

    def diverge(*args, **kwargs):
        raise TrainingDiverged("training loss became nan (lr=1000000000.0); the candidate is unstable")

    with monkeypatch.context() as m:
        m.setattr(trials_mod, "train_candidate", diverge)
        failing = _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.sampler=random",
                             "search.max_failures_in_a_row=2", "search.export_onnx=false")
        result = run_search(compose_cfg(*failing))
        assert result.found_nothing and result.n_complete == 0 and not result.interrupted
        assert result.ended_early.startswith("stopped after 2 trials in a row failed in training, each with: "
                                             "TrainingDiverged: training loss became nan")
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            search_mod.main(compose_cfg(*failing))
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"run folder: {result.run_dir}"  # the last line as before
    assert (result.run_dir / "report.md").is_file() and [r["state"] for r in _rows(result.run_dir)] == ["FAIL"] * 4
    # the log lines saying why go to stdout (and search.log): stderr had nothing beside the exit status 1
    why = (f"no trial finished in study {result.study_name!r}, so there is no model to deploy: 4 failed (last: "
           "TrainingDiverged: training loss became nan (lr=1000000000.0); the candidate is unstable); see search.log and "
           f"the fail_reason column of trials.csv in {result.run_dir}")
    assert err.splitlines() == [f"error: {why}"] and result.found_nothing_reason.startswith(why[:60])
    assert export_study(compose_cfg(*failing)).found_nothing_reason == why  # the rebuild from its study says the same

    monkeypatch.setattr(trials_mod, "SAMPLES_PER_TRIAL", 3)  # not 50: each sample is a trial in the study
    over = _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "search.sampler=random", "search.study_name=over",
                      "search.latency_budget_ms=0.172", "search.export_onnx=false")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        search_mod.main(compose_cfg(*over))
    assert exit_info.value.code == 1 and (tmp_path / "over" / "report.md").is_file()
    assert capsys.readouterr().err.splitlines() == [
        "error: no trial finished in study 'over', so there is no model to deploy: 3 over search.latency_budget_ms=0.172 "
        f"(not trained); see search.log and the fail_reason column of trials.csv in {tmp_path / 'over'}"]
    result = run_search(compose_cfg(*over))  # resumed: gives up again
    assert result.found_nothing and result.ended_early.startswith("gave up after 3 sampled architectures with 0 of 1 "
                                                                  "trial finished: 6 in the study were over")
    # a search with a finished trial exits 0 (main returns), and its result says it found something
    _copy_of(finished_search, tmp_path / "ok")
    ok = _overrides(tiny_idx_root, tmp_path / "ok", "search.n_trials=1")
    assert search_mod.main(compose_cfg(*ok)) is None
    result = run_search(compose_cfg(*ok))
    assert not result.found_nothing and result.ended_early is None and result.n_complete == 1
    assert result.found_nothing_reason is None


def test_run_search_from_python_warns_about_the_settings_its_composed_overrides_asked_for(tiny_idx_root, tmp_path,
                                                                                          monkeypatch, caplog):
    # run_search(compose_search_config([..., "data.test_size=0.2"])) never said that the test size did nothing
    # (fashion_mnist has its own test split): `overridden` was empty unless passed, unlike the command's. And a str
    # passed as `overridden` was matched as a substring ("data.test_size" in "data.test_size=0.2").
    from nas import compose_search_config

    overrides = _overrides(tiny_idx_root, tmp_path, "search.n_trials=1", "data.test_size=0.2", "search.export_onnx=false")
    with pytest.raises(TypeError, match=r"^overridden='data\.test_size' is a str; pass a collection of config keys, "
                                        r"e\.g\. \{'data\.test_size'\} \(nas\.config\.overridden_keys\(overrides\) makes "
                                        r"it from overrides\)$"):
        run_search(compose_search_config(overrides), overridden="data.test_size")
    with pytest.raises(TypeError, match=r"^overridden='data\.test_size' is a str"):
        export_study(compose_search_config(overrides), overridden="data.test_size")

    def stop(*args, **kwargs):
        raise ConfigError("stopped once the data is loaded")  # the warning is given while it loads

    monkeypatch.setattr(search_mod, "check_image_size", stop)

    def warned(**kwargs) -> bool:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nas.data"), pytest.raises(ConfigError, match="stopped once"):
            run_search(compose_search_config(overrides), **kwargs)
        return any(r.getMessage().startswith("data.test_size=0.2 is not used: data=fashion_mnist has its own test split")
                   for r in caplog.records)

    # by default the keys compose_search_config recorded; those given instead when given, none among them too
    assert warned() and warned(overridden={"data.test_size"}) and not warned(overridden=())


def test_a_search_on_a_host_profile_that_is_not_calibrated_warns_in_its_setup(tiny_idx_root, compose_cfg):
    # hw=cpu_ort: its predictions were the datasheet roofline of a CPU (several times this host's measured times), and
    # neither search.log nor the report's Warnings said so; edge_npu, predicted only, is uncalibrated by design
    from nas.data import load_dataset
    from nas.search import setup_warnings

    def warned(hw: str) -> list[str]:
        run = to_run_config(compose_cfg(f"hw={hw}", f"data.root={tiny_idx_root}", "train.threads=1",
                                        "final_train.threads=1"))
        return [w for w in setup_warnings(run, load_dataset(run.data)) if "not calibrated" in w]

    assert [w[:52] for w in warned("cpu_ort")] == ["hw=cpu_ort is timed on this host (onnxruntime) but n"]
    assert warned("edge_npu") == [] and warned("mobile_cpu") == []


def test_a_search_on_a_profile_fitted_on_few_archs_warns_in_its_setup(tiny_idx_root, compose_cfg):
    # The fit warns below 20 measured archs, but a search with the profile it wrote (another day, another user) said
    # nothing, ranking its candidates by predictions fitted on a handful of measurements.
    from nas.data import load_dataset
    from nas.search import setup_warnings

    run = to_run_config(compose_cfg("hw=cpu", f"data.root={tiny_idx_root}", "train.threads=1", "final_train.threads=1"))
    data = load_dataset(run.data)

    def warned(**changes) -> list[str]:
        return [w for w in setup_warnings(dataclasses.replace(run, hw=dataclasses.replace(run.hw, **changes)), data)
                if "fitted on" in w]

    assert len(run.hw.fitted_archs) == 50 and warned() == []  # the shipped profile
    assert warned(fitted_archs=run.hw.fitted_archs[:8]) == [
        "hw=cpu was fitted on 8 measured archs (its fitted_archs), fewer than 20: below that a fit's held-out error grows "
        "fast, so its predicted latencies, which the search ranks candidates by, may be well off; measure more archs (the "
        "onboarding exports 50) and refit on all of them (README, 'Onboarding a chip', steps 2 and 4)"]
    assert warned(fitted_archs=run.hw.fitted_archs[:20]) == []
    assert warned(fitted_archs=[]) == []  # fitted before the field existed: not judged


def test_a_search_with_an_efficiency_set_for_its_calibrated_chip_warns_once_in_its_setup(tiny_idx_root, compose_cfg):
    # hw=cpu hw.efficiency.add=0.5: the fitted costs replace the efficiencies, so the setting changed nothing, silently
    from nas.data import load_dataset
    from nas.search import setup_warnings

    run = to_run_config(compose_cfg("hw=cpu", "hw.efficiency.add=0.5", f"data.root={tiny_idx_root}", "train.threads=1",
                                    "final_train.threads=1"))
    warned = [w for w in setup_warnings(run, load_dataset(run.data)) if "changes no latency" in w]
    assert len(warned) == 1 and warned[0].startswith("hw.efficiency.add=0.5: hw=cpu is calibrated")


def test_a_search_with_an_efficiency_dropped_on_the_command_line_warns_once_in_its_setup(tiny_idx_root, compose_cfg):
    # hw=edge_npu ~hw.efficiency.conv: conv priced at the chip's peak, not its file's 0.6, silently
    from nas.data import load_dataset
    from nas.search import setup_warnings

    run = to_run_config(compose_cfg("hw=edge_npu", "~hw.efficiency.conv", f"data.root={tiny_idx_root}", "train.threads=1",
                                    "final_train.threads=1"))
    warned = [w for w in setup_warnings(run, load_dataset(run.data)) if "at 1.0, the chip's peak" in w]
    assert len(warned) == 1 and warned[0].startswith("hw.efficiency has no conv, which hw=edge_npu's file sets (conv: 0.6)")


def test_a_search_whose_space_reaches_outside_the_archs_its_profile_was_fitted_on_warns_in_its_setup(tiny_idx_root,
                                                                                                    compose_cfg):
    # A profile fitted on one space's archs (its measured_extent) and searched with another's: the archs it never
    # measured (attention, wider, deeper) are predicted by extrapolation, which the run said nowhere.
    from nas.data import load_dataset
    from nas.latency.hardware import extent_warning
    from nas.search import setup_warnings

    shipped = to_run_config(compose_cfg("hw=cpu", f"data.root={tiny_idx_root}", "train.threads=1", "final_train.threads=1"))
    data = load_dataset(shipped.data)
    # the shipped profile's extent (of its 50 fitted archs, of both shipped spaces) holds the shipped space
    assert shipped.hw.measured_extent["stages"] == [3, 4] and set(shipped.hw.measured_extent["mixers"]) >= {"attn", "sepconv"}
    assert [w for w in setup_warnings(shipped, data) if "reaches outside" in w] == []
    run = dataclasses.replace(shipped, hw=dataclasses.replace(shipped.hw, measured_extent={"mixers": ["conv", "pool"]}))
    warned = [w for w in setup_warnings(run, data) if "reaches outside" in w]
    assert warned == [extent_warning(run.hw, run.space, in_chans=1, img_size=28, num_classes=data.num_classes)]
    # the profile command builds the archs' head for the data's classes (profile's default is 10)
    assert "mixer=attn, mixer=sepconv, so" in warned[0] and f" in_chans=1 img_size=28 num_classes={data.num_classes} " in warned[0]


def test_a_search_starting_over_a_damaged_pareto_json_says_it_writes_it_again_not_to_rebuild_it(tmp_path, caplog):
    # The warning of a search that could not mark the earlier run's report as out of date named the rebuild from the
    # study (`python -m nas.report search.runs_dir=...`) for a damaged pareto.json that the search itself writes again.
    from nas.run_folder import mark_started

    (tmp_path / "report.md").write_text("# earlier run\n")
    (tmp_path / "trials.csv").write_text("number,state,arch_id\n")
    (tmp_path / "pareto.json").write_text('{"members": [')  # cut short
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        mark_started(tmp_path, warnings=())
    [line] = [r.getMessage() for r in caplog.records if "out of date" in r.getMessage()]
    assert line == ("the report of the earlier run could not be marked as out of date: pareto.json is not valid JSON "
                    f"(line 1) in {tmp_path}; this search writes it again at its end")


def test_a_hand_edited_config_yaml_is_kept_as_config_yaml_edited_before_a_search_writes_its_record(tmp_path):
    # A run folder's config.yaml edited by hand (to change a setting for the next run) was overwritten by that run
    # without a word: the search never reads it. The edit is kept aside, and the warning says where settings go.
    from nas.run_folder import CONFIG_WRITTEN, write_config_record

    config = tmp_path / "config.yaml"
    assert write_config_record(tmp_path, b"train:\n  epochs: 2\n") is None  # a new folder
    assert config.read_bytes() == b"train:\n  epochs: 2\n" and (tmp_path / CONFIG_WRITTEN).is_file()
    # a later run with other settings replaces its own record without a word
    assert write_config_record(tmp_path, b"train:\n  epochs: 3\n") is None
    assert config.read_bytes() == b"train:\n  epochs: 3\n" and not (tmp_path / "config.yaml.edited").exists()
    config.write_bytes(b"train:\n  epochs: 9\n")  # edited by hand
    warning = write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    assert warning == ("config.yaml was edited since a search wrote it: kept as config.yaml.edited; config.yaml is the "
                       "record of a run's settings, which the search does not read: give settings on the command line "
                       "(python -m nas.search <key>=<value> ...)")
    assert (tmp_path / "config.yaml.edited").read_bytes() == b"train:\n  epochs: 9\n"
    assert config.read_bytes() == b"train:\n  epochs: 3\n"
    assert write_config_record(tmp_path, b"train:\n  epochs: 3\n") is None  # the record again: nothing edited
    # edited to what this run writes anyway: nothing is lost
    config.write_bytes(b"train:\n  epochs: 4\n")
    assert write_config_record(tmp_path, b"train:\n  epochs: 4\n") is None
    # a folder from before the digest cannot tell an edit from an earlier run's record: written as before
    (tmp_path / CONFIG_WRITTEN).unlink()
    (tmp_path / "config.yaml.edited").unlink()
    config.write_bytes(b"train:\n  epochs: 7\n")
    assert write_config_record(tmp_path, b"train:\n  epochs: 4\n") is None
    assert not (tmp_path / "config.yaml.edited").exists()


def test_every_hand_edit_of_config_yaml_is_kept_not_only_the_last(tmp_path):
    # A second hand edit (after a later search wrote config.yaml again) replaced config.yaml.edited: the first edit
    # was lost. Each edit is kept in a copy of its own, and the warning names the copy that holds it.
    from nas.run_folder import write_config_record

    config = tmp_path / "config.yaml"
    write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    config.write_bytes(b"train:\n  epochs: 9\n")
    assert "kept as config.yaml.edited;" in write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    config.write_bytes(b"train:\n  epochs: 8\n")  # edited again
    warning = write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    assert warning.startswith("config.yaml was edited since a search wrote it: kept as config.yaml.edited.2; config.yaml")
    assert (tmp_path / "config.yaml.edited").read_bytes() == b"train:\n  epochs: 9\n"
    assert (tmp_path / "config.yaml.edited.2").read_bytes() == b"train:\n  epochs: 8\n"
    config.write_bytes(b"train:\n  epochs: 9\n")  # the first edit again: kept already, not a third copy
    assert "kept as config.yaml.edited;" in write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    config.write_bytes(b"train:\n  epochs: 7\n")
    assert "kept as config.yaml.edited.3;" in write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    assert sorted(p.name for p in tmp_path.glob("config.yaml*")) == [
        "config.yaml", "config.yaml.edited", "config.yaml.edited.2", "config.yaml.edited.3"]
    assert config.read_bytes() == b"train:\n  epochs: 3\n"


def test_the_digests_of_written_config_yaml_files_stay_bounded_and_still_tell_an_edit(tmp_path):
    # .config.yaml.sha256 grew by a line for every other config a folder's searches wrote, without end.
    from nas.run_folder import CONFIG_DIGESTS_KEPT, CONFIG_WRITTEN, write_config_record

    config, stamp = tmp_path / "config.yaml", tmp_path / CONFIG_WRITTEN
    records = [f"train:\n  epochs: {i}\n".encode() for i in range(CONFIG_DIGESTS_KEPT + 50)]
    for record in records:  # each run with other settings: none of them read as edited
        assert write_config_record(tmp_path, record) is None
    lines = stamp.read_text().splitlines()
    assert len(lines) == CONFIG_DIGESTS_KEPT and lines[-1] == hashlib.sha256(records[-1]).hexdigest()
    assert len(set(lines)) == len(lines)
    # a config written again moves to the end, not kept twice
    assert write_config_record(tmp_path, records[-30]) is None
    lines = stamp.read_text().splitlines()
    assert len(lines) == CONFIG_DIGESTS_KEPT and lines[-1] == hashlib.sha256(records[-30]).hexdigest()
    assert lines.count(lines[-1]) == 1
    # an edit after all those rewrites is still told from the records
    config.write_bytes(b"train:\n  epochs: 999\n")
    assert "kept as config.yaml.edited;" in write_config_record(tmp_path, records[0])
    assert (tmp_path / "config.yaml.edited").read_bytes() == b"train:\n  epochs: 999\n"
    # a record put back from a recent run is no edit
    config.write_bytes(records[-2])
    assert write_config_record(tmp_path, records[1]) is None
    # a file that grew long before the bound is cut to it by the next write, keeping the latest
    stamp.write_text("".join(hashlib.sha256(str(i).encode()).hexdigest() + "\n" for i in range(300)))
    config.write_bytes(str(299).encode())
    assert write_config_record(tmp_path, records[2]) is None
    assert stamp.read_text().splitlines() == [
        *(hashlib.sha256(str(i).encode()).hexdigest() for i in range(300 - CONFIG_DIGESTS_KEPT + 1, 300)),
        hashlib.sha256(records[2]).hexdigest()]


def test_two_workers_starting_on_a_hand_edited_config_yaml_both_keep_the_edit(tmp_path, monkeypatch):
    # Two workers started together both read the edited config.yaml; the first moved it aside and wrote its record,
    # and the second then renamed that record onto config.yaml.edited: the edit was lost (or, a moment earlier, its
    # rename found no config.yaml and the worker died of FileNotFoundError).
    from nas.run_folder import CONFIG_WRITTEN, write_config_record

    write_config_record(tmp_path, b"train:\n  epochs: 3\n")
    (tmp_path / "config.yaml").write_bytes(b"train:\n  epochs: 9\n")  # edited by hand
    read_text = Path.read_text
    other_worker: list[str | None] = []

    def between_the_reads(self, *args, **kwargs):
        # this worker has read config.yaml; the other one runs its whole write before this one reads the digests
        if self.name == CONFIG_WRITTEN and not other_worker:
            monkeypatch.setattr(Path, "read_text", read_text)
            other_worker.append(write_config_record(tmp_path, b"train:\n  epochs: 4\n"))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", between_the_reads)
    warning = write_config_record(tmp_path, b"train:\n  epochs: 5\n")
    assert other_worker[0] is not None and warning == other_worker[0]  # each says the edit was kept aside
    assert (tmp_path / "config.yaml.edited").read_bytes() == b"train:\n  epochs: 9\n"
    assert (tmp_path / "config.yaml").read_bytes() == b"train:\n  epochs: 5\n"


def test_setup_warnings_kept_for_pareto_json_show_a_name_that_is_not_utf8_as_their_log_lines_do():
    # A warning computed by the search (held_out_copies_warning naming a test file and a training file) reached
    # pareto.json with the lone surrogate Python holds for a Latin-1 byte, while its log line read \xe9.
    import logging
    import os

    from nas.study_export import joined

    name = os.fsdecode(b"cat/caf\xe9.png")
    earlier = logging.LogRecord("nas.data", logging.WARNING, __file__, 1, "%s", ("left out (e.g. \\xe9t\\xe9.png)",), None)
    assert joined([earlier], [f"1 test image has the pixels of a training image: {name}", "plain"]) == [
        "left out (e.g. \\xe9t\\xe9.png)", "1 test image has the pixels of a training image: cat/caf\\xe9.png", "plain"]


def test_a_members_model_onnx_carries_what_its_metrics_json_states_and_a_rerun_keeps_an_older_file_as_it_is(
        tiny_idx_root, tmp_path, compose_cfg, finished_search):
    # model.onnx held no class names, input contract or preprocessing: only metrics.json beside it did. The file now
    # carries the same record (its image counts aside) in its metadata; a file exported before keeps working, and a
    # rerun that keeps it leaves it untouched (rewritten, its SHA-256 recorded in metrics.json would no longer hold).
    import onnx
    from PIL import Image

    from compress.predict import predict
    from nas.arch import ArchConfig
    from nas.checkpoint import onnx_metadata

    result = _copy_of(finished_search, tmp_path)
    [folder] = [p for p in (result.run_dir / "checkpoints").iterdir() if (p / "metrics.json").is_file()]
    metrics = json.loads((folder / "metrics.json").read_text())
    meta = ort.InferenceSession(str(folder / "model.onnx")).get_modelmeta().custom_metadata_map
    arch = ArchConfig.from_json((folder / "arch.json").read_text())
    assert meta == onnx_metadata(arch=arch, contract=metrics, precision="fp32", dataset=metrics["dataset"],
                                 metric=metrics["metric"])
    assert (meta["dataset"], meta["metric"]) == ("fashion_mnist", "accuracy")  # what it was trained on and scored for
    assert json.loads(meta["class_names"]) == metrics["output"]["class_names"] and meta["arch_id"] == metrics["arch_id"]
    assert meta["preprocessing"] == metrics["input"]["preprocessing"]
    assert (int(meta["img_size"]), int(meta["in_chans"])) == (metrics["input"]["img_size"], metrics["input"]["channels"])
    # the file as a version before 2026-12-07 exported it: no metadata
    old = onnx.load(str(folder / "model.onnx"))
    del old.metadata_props[:]
    onnx.save(old, str(folder / "model.onnx"))
    before = (folder / "model.onnx").read_bytes()
    run_search(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    assert (folder / "model.onnx").read_bytes() == before
    assert json.loads((folder / "metrics.json").read_text())["output"] == metrics["output"]
    image = tmp_path / "one.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    assert predict(folder / "model.onnx", [image], top=1)[0].classes[0] in metrics["output"]["class_names"]
def test_trial_lines_and_the_bar_say_when_the_study_holds_more_than_n_trials(tiny_idx_root, tmp_path, compose_cfg,
                                                                              monkeypatch, caplog):
    # Other workers of the study (with a higher search.n_trials) finished trials while this one's ran: its line read
    # "trial 0 [3/1]", and the bar "3/1"; a rerun with a lower n_trials than the study holds showed "6/4" on the bar.
    run = to_run_config(compose_cfg(*_overrides(tiny_idx_root, tmp_path, "search.n_trials=1")))
    study = optuna.create_study(directions=["maximize", "minimize"])

    def objective(trial):
        for acc in (0.5, 0.6):  # another worker's two trials finish meanwhile
            trial.study.add_trial(optuna.trial.create_trial(values=[acc, 1.0], user_attrs={"arch_id": "elsewhere"}))
        trial.set_user_attr("arch_id", "aaaa000001")
        trial.set_user_attr("latency_ms", 0.5)
        return 0.9, 0.5

    monkeypatch.setattr(trials_mod, "make_objective", lambda *args, **kwargs: objective)
    with caplog.at_level(logging.INFO, logger="nas.search"):
        assert trials_mod.run_trials(run, None, tmp_path, study) == (None, None)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial 0 ")]
    assert line.startswith("trial 0 [3 done, search.n_trials=1 reached] aaaa000001 ")
    assert trials_mod.trial_count_text(1, target=4) == "1/4" and trials_mod.trial_count_text(4, target=4) == "4/4"

    bar = trials_mod._Progress(total=4, done=6, enabled=False)  # the rerun's bar: all six done, the setting reached
    (task, _) = bar.progress.tasks
    assert (task.completed, task.total) == (6, 6) and "search.n_trials=4 reached" in task.description
    bar.on_trial(7, "val acc 90.00% @ 0.500 ms")
    assert (task.completed, task.total) == (7, 7)
    assert task.description == "trials (search.n_trials=4 reached; best val acc 90.00% @ 0.500 ms)"
    bar = trials_mod._Progress(total=4, done=1, enabled=False)
    bar.on_trial(2, "-")
    (task, _) = bar.progress.tasks
    assert (task.completed, task.total, task.description) == (2, 4, "trials (best -)")


def test_a_searchs_pareto_csv_gives_each_members_model_onnx_size(finished_search):
    # The search writes its members' model.onnx before pareto.csv: the CSV's onnx_size_bytes is that file's size, as the
    # report's front table gives it, not left empty until a later `python -m nas.report`.
    (member,) = finished_search.pareto
    (row,) = _rows_of(finished_search.run_dir / "pareto.csv")
    onnx = finished_search.run_dir / member["checkpoint"] / "model.onnx"
    assert row["onnx_size_bytes"] == str(onnx.stat().st_size) and onnx.stat().st_size > 0
