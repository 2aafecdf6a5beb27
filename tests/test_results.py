import csv
import dataclasses
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from nas.arch import ArchConfig, StageConfig
from nas.pareto_csv import pareto_csv, write_pareto_csv
from nas.results import TRIAL_COLUMNS, TrialRecord, front_records, hypervolume, pareto_front, trials_csv

# pareto.csv's columns after pareto.json's: a compressed member's int8 model, from its compressed_metrics.json
INT8_CSV_COLUMNS = ["int8_test_acc", "int8_test_acc_ci95_low", "int8_test_acc_ci95_high", "int8_test_acc_source",
                    "int8_latency_ms", "int8_hw", "int8_hw_precision", "int8_params", "int8_macs", "int8_file", "int8_error",
                    "int8_size_bytes", "int8_test_images", "int8_fp32_test_acc", "int8_pruned_test_acc"]


def test_pareto_front_on_a_hand_made_case():
    # (accuracy up, latency down)
    pts = [(0.90, 1.0), (0.85, 0.5), (0.80, 0.6), (0.92, 2.0), (0.90, 1.5), (0.85, 0.5), (0.70, 0.2)]
    # 2 is dominated by 1; 4 by 0; 5 duplicates 1 (kept once); result sorted by latency
    assert pareto_front(pts) == [6, 1, 0, 3]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0)]) == [0]


def _rec(n, acc, lat, *, state="COMPLETE", feasible=True, width=16):
    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=width),))
    return TrialRecord(n, state, arch, acc, lat, 100, 1000, feasible, 1.0, "")


def test_hypervolume_on_a_hand_made_case():
    ref = (0.5, 10.0)
    # One point: a box (0.9 - 0.5) x (10 - 2).
    assert hypervolume([(0.9, 2.0)], ref) == pytest.approx(0.4 * 8)
    # Staircase: (0.7, 1) and (0.9, 4): 0.2 x 9 + 0.2 x 6; a dominated point and points beyond ref add nothing.
    pts = [(0.9, 4.0), (0.7, 1.0), (0.6, 5.0), (0.4, 0.5), (0.95, 12.0)]
    assert hypervolume(pts, ref) == pytest.approx(0.2 * 9 + 0.2 * 6)
    assert hypervolume([], ref) == 0.0
    # Adding a point never lowers it; an improving one raises it.
    assert hypervolume(pts + [(0.8, 0.5)], ref) > hypervolume(pts, ref)


def test_front_ignores_infeasible_unfinished_and_duplicate_archs():
    recs = [
        _rec(0, 0.80, 1.0, width=8),
        _rec(1, 0.95, 0.5, feasible=False, width=16),  # best, but over budget
        _rec(2, None, 0.1, state="PRUNED", width=24),
        _rec(3, 0.85, 2.0, width=32),
        _rec(4, 0.85, 2.0, width=32),  # same arch again
    ]
    assert [r.number for r in front_records(recs)] == [0, 3]


def test_trials_csv_has_the_documented_columns_and_marks_the_front():
    recs = [_rec(0, 0.8, 1.0, width=8), _rec(1, None, 3.0, state="PRUNED", width=16)]
    rows = list(csv.DictReader(io.StringIO(trials_csv(recs, {recs[0].arch_id}))))
    assert tuple(rows[0]) == TRIAL_COLUMNS
    assert rows[0]["is_pareto"] == "True" and rows[1]["is_pareto"] == "False"
    assert rows[1]["val_acc"] == "" and rows[1]["state"] == "PRUNED"
    assert ArchConfig.from_json(rows[0]["arch_json"]) == recs[0].arch


def test_test_predictions_round_trip_and_refuse_other_test_images(tmp_path):
    from nas.results import read_test_predictions, test_predictions_csv

    classes = ("T-shirt, top", "Bag", "Shirt")  # a comma in a class name stays one cell
    truth, predicted = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])
    path = tmp_path / "test_predictions.csv"
    path.write_text(test_predictions_csv(predicted, truth, classes))
    assert path.read_text().splitlines()[:2] == ["index,label,predicted", '0,"T-shirt, top","T-shirt, top"']
    np.testing.assert_array_equal(read_test_predictions(path, truth, classes), predicted)
    # made on other test images (other labels or length), for other classes, or missing: nothing to compare
    assert read_test_predictions(path, np.array([0, 1, 2, 0]), classes) is None
    assert read_test_predictions(path, truth[:3], classes) is None
    assert read_test_predictions(path, truth, ("T-shirt, top", "Bag")) is None
    assert read_test_predictions(tmp_path / "none.csv", truth, classes) is None


def test_members_are_compared_image_by_image_with_the_next_faster_and_the_best():
    from nas.results import compare_members
    from nas.stats import paired_change

    truth = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    predicted = {"fast": np.array([0, 0, 0, 3, 0, 0, 0, 3]),  # 4 of 8 right
                 "mid": np.array([0, 1, 2, 3, 0, 0, 0, 3]),  # 6 right: 2 more than fast
                 "slow": np.array([0, 1, 2, 3, 0, 1, 1, 3]),  # 7 right: the best
                 "slowest": None}  # no predictions file: nothing to compare
    members = [{"arch_id": a, "test_acc": acc} for a, acc in (("fast", 0.5), ("mid", 0.75), ("slow", 0.875), ("slowest", 0.8))]
    compare_members(members, predicted, truth)
    fast, mid, slow, slowest = members
    assert fast["vs_faster"] is None and slow["vs_best"] is None and slowest["vs_faster"] is None
    assert mid["vs_faster"] == {"arch_id": "fast", **paired_change(predicted["fast"], predicted["mid"], truth)}
    assert (mid["vs_faster"]["now_wrong"], mid["vs_faster"]["now_right"]) == (0, 2)
    assert fast["vs_best"] == {"arch_id": "slow", "now_wrong": 3, "now_right": 0,
                               "p_value": pytest.approx(0.25)}  # 3 of 3 changed images one way: p = 2 / 2**3
    assert slow["vs_faster"]["arch_id"] == "mid" and slowest["vs_best"] is None
    # the next faster member has no predictions (say its files were made before test_predictions.csv): the one before
    # it is compared, and named, rather than nothing
    compare_members(members, {**predicted, "mid": None, "slowest": predicted["slow"]}, truth)
    assert members[2]["vs_faster"] == {"arch_id": "fast", **paired_change(predicted["fast"], predicted["slow"], truth)}
    assert members[1]["vs_faster"] is None and members[3]["vs_faster"]["arch_id"] == "slow"
    tie = [{"arch_id": "fast", "test_acc": 0.75}, {"arch_id": "mid", "test_acc": 0.75}]
    compare_members(tie, predicted, truth)
    assert tie[0]["vs_best"] is None and tie[1]["vs_best"]["arch_id"] == "fast"  # a tie goes to the faster member


def test_members_finished_before_a_ctrl_c_are_compared_in_the_pareto_files(tmp_path, monkeypatch):
    # Ctrl-C during the third member's final training: the two finished members went to pareto.json without vs_faster
    # and vs_best, so the report of the interrupted run compared nothing.
    import optuna
    import torch

    import nas.results as results_mod

    truth = np.array([0, 1, 2, 3])
    predicted = {"fast": np.array([0, 0, 2, 3]), "mid": np.array([0, 1, 2, 3]), "slow": None}
    records = [SimpleNamespace(arch_id=a, number=i, val_acc=0.5, latency_ms=0.1 * (i + 1), params=1, macs=1, arch=None)
               for i, a in enumerate(predicted)]

    def materialize(run_dir, record, data, run, train=True, test_images=None):
        if predicted[record.arch_id] is None:
            raise KeyboardInterrupt
        acc = float((predicted[record.arch_id] == truth).mean())
        metrics = {"final_train": None, "test_acc": acc, "test_acc_ci95": None, "test_acc_onnx": None,
                   "measured_latency_ms": None}
        return metrics, predicted[record.arch_id]

    written = {}
    monkeypatch.setattr(results_mod, "front_records", lambda _: records)
    monkeypatch.setattr(results_mod, "materialize_member", materialize)
    monkeypatch.setattr(results_mod, "record_of_test_images", lambda **k: {})  # of the images, which this data has none of
    monkeypatch.setattr(results_mod, "_write_pareto_files", lambda *a, **k: written.setdefault("members", a[-1]))
    run = SimpleNamespace(search=SimpleNamespace(latency_budget_ms=None))
    data = SimpleNamespace(test=SimpleNamespace(y=torch.from_numpy(truth)), val=[None] * 4, balanced=False)
    with pytest.raises(KeyboardInterrupt):
        results_mod.write_run_files(tmp_path, optuna.create_study(), data, run)
    fast, mid = written["members"]
    assert mid["vs_faster"]["arch_id"] == "fast" and fast["vs_best"]["arch_id"] == "mid" and mid["vs_best"] is None
    assert (mid["vs_faster"]["now_wrong"], mid["vs_faster"]["now_right"]) == (0, 1)


def test_pareto_json_names_the_front_members_an_interrupted_run_left_out(tmp_path, monkeypatch):
    # An interrupted run's pareto.json listed the members finished so far and said nothing of the others: read alone (a
    # script, a user after Ctrl-C), it passed for the whole front.
    import optuna
    import torch

    import nas.results as results_mod

    records = [SimpleNamespace(arch_id=a, number=i, val_acc=0.5, latency_ms=0.1 * (i + 1), params=1, macs=1, arch=None)
               for i, a in enumerate(("fast", "mid", "slow"))]
    stop_at: dict[str, str | None] = {"arch_id": "slow"}

    def materialize(run_dir, record, data, run, train=True, test_images=None):
        if record.arch_id == stop_at["arch_id"]:
            raise KeyboardInterrupt  # Ctrl-C during its final training
        if record.arch_id == "mid" and not train:
            return None  # it needs a final training, which an interrupted search does not start
        metrics = {"final_train": None, "test_acc": 0.5, "test_acc_ci95": None, "test_acc_onnx": None,
                   "measured_latency_ms": None}
        return metrics, None

    written: dict[str, list] = {}
    monkeypatch.setattr(results_mod, "front_records", lambda _: records)
    monkeypatch.setattr(results_mod, "materialize_member", materialize)
    monkeypatch.setattr(results_mod, "record_of_test_images", lambda **k: {})
    monkeypatch.setattr(results_mod, "_write_pareto_files",
                        lambda *a, **k: written.update(members=[m["arch_id"] for m in a[-1]], missing=k["missing"]))
    run = SimpleNamespace(search=SimpleNamespace(latency_budget_ms=None))
    data = SimpleNamespace(test=SimpleNamespace(y=torch.zeros(4, dtype=torch.long)), val=[None] * 4, balanced=False)
    with pytest.raises(KeyboardInterrupt):
        results_mod.write_run_files(tmp_path, optuna.create_study(), data, run, train=False)
    assert written == {"members": ["fast"], "missing": ["mid", "slow"]}  # by latency, as the front
    stop_at["arch_id"] = None  # the rerun finishes them all: none missing
    results_mod.write_run_files(tmp_path, optuna.create_study(), data, run)
    assert written == {"members": ["fast", "mid", "slow"], "missing": []}


def test_a_member_that_falls_off_the_front_moves_to_retired_whole_with_one_line(tmp_path, monkeypatch, caplog):
    # New trials that dominated a member deleted its folder (shutil.rmtree): its final-trained model.pt (minutes to
    # hours of training) and the model_int8.onnx a user had shipped from it were gone; trials/ keeps the proxy's only.
    import logging

    import torch

    import nas.results as results_mod

    def trial(arch_id, acc, lat):
        return SimpleNamespace(arch_id=arch_id, number=0, state="COMPLETE", feasible=True, val_acc=acc, latency_ms=lat,
                               params=1, macs=1, arch=None)

    trials = [trial("old", 0.5, 0.2), trial("slow", 0.7, 0.3)]
    monkeypatch.setattr(results_mod, "trial_record", lambda t, budget=None: t)
    monkeypatch.setattr(results_mod, "trials_csv", lambda *a: "")
    monkeypatch.setattr(results_mod, "materialize_member", lambda run_dir, r, *a, **k: (
        {"final_train": None, "test_acc": 0.5, "test_acc_ci95": None, "test_acc_onnx": None,
         "measured_latency_ms": None}, None))
    monkeypatch.setattr(results_mod, "record_of_test_images", lambda **k: {})
    monkeypatch.setattr(results_mod, "_write_pareto_files", lambda *a, **k: None)
    run = SimpleNamespace(search=SimpleNamespace(latency_budget_ms=None))
    data = SimpleNamespace(test=SimpleNamespace(y=torch.zeros(2, dtype=torch.long)), val=[None] * 4, balanced=False)
    study = SimpleNamespace(get_trials=lambda deepcopy: trials)
    files = {"model.pt": b"final-trained", "model_int8.onnx": b"shipped", "metrics.json": b"{}"}
    for arch_id in ("old", "slow"):
        (tmp_path / "checkpoints" / arch_id).mkdir(parents=True)
        for name, content in files.items():
            (tmp_path / "checkpoints" / arch_id / name).write_bytes(content)
    (tmp_path / "checkpoints" / ".scratch.tmp").mkdir()  # not a member: left alone

    def write_run_files():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nas.results"):
            results_mod.write_run_files(tmp_path, study, data, run, profiles=[])
        return [r.getMessage() for r in caplog.records if "retired" in r.getMessage()]

    assert write_run_files() == []  # both on the front: nothing moves
    trials.append(trial("new", 0.6, 0.1))  # as accurate and faster: "old" falls off
    assert write_run_files() == [
        "Pareto member old fell off the Pareto front (dominated by new): its folder as it was is moved to retired/old/"]
    assert not (tmp_path / "checkpoints" / "old").exists() and (tmp_path / "checkpoints" / "slow").is_dir()
    retired = tmp_path / "retired" / "old"
    assert sorted(p.name for p in retired.iterdir()) == sorted(files)  # no .member.lock left there
    assert {n: (retired / n).read_bytes() for n in files} == files
    assert (tmp_path / "checkpoints" / ".scratch.tmp").is_dir()
    # a second one of the same name (a member that came back and fell off again) does not replace the first
    (tmp_path / "checkpoints" / "old").mkdir()
    (tmp_path / "checkpoints" / "old" / "model.pt").write_bytes(b"second")
    assert write_run_files() == [
        "Pareto member old fell off the Pareto front (dominated by new): its folder as it was is moved to retired/old.2/"]
    assert (retired / "model.pt").read_bytes() == b"final-trained"
    assert (tmp_path / "retired" / "old.2" / "model.pt").read_bytes() == b"second"


def _pareto_members(tmp_path, monkeypatch, records, final_of) -> dict[bool, list[dict]]:
    """pareto.json's members as write_run_files builds them of the front `records`, by data.metric (balanced or not),
    with 40 val images; materialize_member stubbed: each member's final_train is `final_of[arch_id]`."""
    import optuna
    import torch

    import nas.results as results_mod

    written = {}
    monkeypatch.setattr(results_mod, "front_records", lambda _: records)
    monkeypatch.setattr(results_mod, "materialize_member", lambda run_dir, r, *a, **k: (
        {"final_train": final_of[r.arch_id], "test_acc": 0.5, "test_acc_ci95": None, "test_acc_onnx": None,
         "measured_latency_ms": None}, None))
    monkeypatch.setattr(results_mod, "record_of_test_images", lambda **k: {})  # of the images, which this data has none of
    monkeypatch.setattr(results_mod, "_write_pareto_files", lambda *a, **k: written.setdefault("members", a[-1]))
    run = SimpleNamespace(search=SimpleNamespace(latency_budget_ms=None))
    out = {}
    for balanced in (False, True):
        written.clear()
        data = SimpleNamespace(test=SimpleNamespace(y=torch.zeros(2, dtype=torch.long)), val=[None] * 40, balanced=balanced)
        results_mod.write_run_files(tmp_path, optuna.create_study(), data, run)
        out[balanced] = written["members"]
    return out


def test_each_member_gets_the_interval_of_its_val_accuracy_from_the_number_of_val_images(tmp_path, monkeypatch):
    # The report showed a 95% interval for test accuracy but none for the val accuracy the search ranks by.
    from nas.stats import accuracy_interval

    records = [SimpleNamespace(arch_id=a, number=i, val_acc=acc, latency_ms=0.1 * (i + 1), params=1, macs=1, arch=None)
               for i, (a, acc) in enumerate((("fast", 36 / 40), ("slow", 1.0)))]
    members = _pareto_members(tmp_path, monkeypatch, records, {"fast": None, "slow": None})
    # balanced: a mean of per-class shares, its interval needs each class's right count, which no trial keeps
    assert all(m["val_acc_ci95"] is None for m in members[True])
    fast, slow = members[False]
    # 36 of 40 val images right: Agresti-Coull's [0.764, 0.966] (nas.stats), not the test split's interval
    assert fast["val_acc_ci95"] == accuracy_interval(36, 40) == pytest.approx((0.7638, 0.9661), abs=1e-4)
    assert slow["val_acc_ci95"] == accuracy_interval(40, 40) and slow["val_acc_ci95"][1] == 1.0


def test_the_final_trained_weights_val_accuracy_gets_its_interval_too(tmp_path, monkeypatch):
    # val_acc_final, the val accuracy of the shipped weights after the final training, came without the interval that
    # the search's val_acc has: the same one, from the number of val images; none where no final training ran.
    from nas.stats import accuracy_interval

    records = [SimpleNamespace(arch_id=a, number=i, val_acc=0.5, latency_ms=0.1 * (i + 1), params=1, macs=1, arch=None)
               for i, a in enumerate(("trained", "proxy"))]
    final = {"trained": {"epochs": 2, "val_acc": 37 / 40}, "proxy": None}  # proxy: final_train=none
    for balanced, (trained, proxy) in _pareto_members(tmp_path, monkeypatch, records, final).items():
        assert trained["val_acc_final"] == 37 / 40 and proxy["val_acc_final"] is None
        assert proxy["val_acc_final_ci95"] is None
        # balanced accuracy: a mean of per-class shares, whose interval needs each class's right count (not kept)
        assert trained["val_acc_final_ci95"] == (None if balanced else accuracy_interval(37, 40))


def test_pareto_csv_holds_the_accuracy_intervals_of_pareto_json_as_two_columns_each():
    # pareto.csv, pareto.json's members flat, left out the intervals pareto.json gives each accuracy.
    members = [{"number": 3, "arch_id": "aaaa000001", "val_acc": 0.9, "val_acc_ci95": (0.85, 0.93), "val_acc_final": 0.92,
                "val_acc_final_ci95": (0.875, 0.95), "test_acc": 0.91, "test_acc_ci95": [0.905, 0.915],
                "test_acc_onnx": 0.91, "latency_ms": 0.25, "measured_latency_ms": None, "params": 1000, "macs": 20000,
                "summary": "bn/relu pool, conv", "checkpoint": "checkpoints/aaaa000001"},
               {"number": 5, "arch_id": "bbbb000002", "val_acc": 0.8, "val_acc_ci95": None, "val_acc_final": None,
                "val_acc_final_ci95": None, "test_acc": 0.81, "test_acc_ci95": None, "test_acc_onnx": None,
                "latency_ms": 0.125, "measured_latency_ms": 0.2, "params": 900, "macs": 10000, "summary": "bn/relu pool",
                "checkpoint": "checkpoints/bbbb000002"}]
    rows = list(csv.DictReader(io.StringIO(pareto_csv(members))))
    assert list(rows[0]) == [
        "number", "arch_id", "val_acc", "val_acc_ci95_low", "val_acc_ci95_high", "val_acc_final", "val_acc_final_ci95_low",
        "val_acc_final_ci95_high", "test_acc", "test_acc_ci95_low", "test_acc_ci95_high", "test_acc_onnx", "latency_ms",
        "hw", "hw_precision", "measured_latency_ms", "params", "macs", "summary", "checkpoint", *INT8_CSV_COLUMNS,
        "onnx_size_bytes"]
    assert {k: rows[0][k] for k in rows[0] if "_ci95_" in k and not k.startswith("int8_")} == {
        "val_acc_ci95_low": "0.85", "val_acc_ci95_high": "0.93", "val_acc_final_ci95_low": "0.875",
        "val_acc_final_ci95_high": "0.95", "test_acc_ci95_low": "0.905", "test_acc_ci95_high": "0.915"}
    assert all(rows[1][k] == "" for k in rows[1] if "_ci95_" in k) and rows[1]["val_acc_final"] == ""  # none: empty
    assert rows[0]["summary"] == "bn/relu pool, conv" and rows[1]["measured_latency_ms"] == "0.2"


def test_pareto_csv_gives_a_compressed_members_int8_model_from_its_files_and_leaves_the_others_empty(tmp_path):
    # After compression a user opening pareto.csv saw only the float results: the deployable int8 model's accuracy,
    # predicted latency and file were in each member's compressed_metrics.json alone.
    members = [{"number": n, "arch_id": a, "val_acc": 0.9, "test_acc": 0.9, "latency_ms": lat, "params": 1000,
                "macs": 20000, "summary": "bn/relu pool", "checkpoint": f"checkpoints/{a}"}
               for n, a, lat in ((1, "aaaa000001", 0.125), (2, "bbbb000002", 0.25), (3, "cccc000003", 0.5),
                                 (4, "dddd000004", 1.0))]
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "pareto.json").write_text(json.dumps({"hw": "edge_npu", "members": members}))
    for m in members:
        (run_dir / m["checkpoint"]).mkdir()
    compressed = {  # as compress.pipeline writes it (the fields read here), pruned: the int8 file's architecture is smaller
        "format": "metaformer-nas/compressed-v1", "hw": "edge_npu", "hw_precision": "int8",
        "fp32": {"params": 1000, "macs": 20000, "latency_ms": 0.125, "test_acc": 0.9, "file": "model.onnx"},
        "pruned": {"pruned": True, "params": 700, "macs": 14000, "latency_ms": 0.1, "test_acc": 0.895},
        "int8": {"params": 700, "latency_ms": 0.1, "test_acc": 0.8875, "test_acc_ci95": [0.86, 0.91],
                 "test_acc_source": "openvino", "test_acc_openvino": 0.8875, "test_acc_onnx": 0.885,
                 "file": "model_int8.onnx", "file_ir": "model_int8.xml"}}
    (run_dir / "checkpoints" / "aaaa000001" / "compressed_metrics.json").write_text(json.dumps(compressed))
    # not pruned (compress.prune.ratio=0), from before test_acc_source and the interval: OpenVINO's, as the report says
    not_pruned = {"hw": "cpu", "fp32": {"params": 1000, "macs": 30000}, "pruned": {"pruned": False},
                  "int8": {"params": 1000, "latency_ms": 0.3, "test_acc": 0.85, "file": "model_int8.onnx"}}
    (run_dir / "checkpoints" / "bbbb000002" / "compressed_metrics.json").write_text(json.dumps(not_pruned))
    (run_dir / "checkpoints" / "cccc000003" / "compressed_metrics.json").write_text(json.dumps(
        {"format": "metaformer-nas/compressed-v1", "hw": "edge_npu", "error": "prune target 0.01 ms is unreachable"}))
    write_pareto_csv(run_dir)  # the members of the folder's pareto.json
    with open(run_dir / "pareto.csv", newline="") as f:
        rows = {r["arch_id"]: r for r in csv.DictReader(f)}
    # appended after pareto.json's columns (model.onnx's size, of every member, after them)
    assert list(rows["aaaa000001"])[-len(INT8_CSV_COLUMNS) - 1:-1] == INT8_CSV_COLUMNS
    int8 = {a: {c: rows[a][c] for c in INT8_CSV_COLUMNS} for a in rows}
    assert int8["aaaa000001"] == {
        "int8_test_acc": "0.8875", "int8_test_acc_ci95_low": "0.86", "int8_test_acc_ci95_high": "0.91",
        "int8_test_acc_source": "openvino", "int8_latency_ms": "0.1", "int8_hw": "edge_npu", "int8_hw_precision": "int8", "int8_params": "700",
        "int8_macs": "14000", "int8_file": "checkpoints/aaaa000001/model_int8.onnx", "int8_error": "",
        "int8_size_bytes": "", "int8_test_images": "", "int8_fp32_test_acc": "0.9", "int8_pruned_test_acc": "0.895"}
    assert int8["bbbb000002"] == {
        "int8_test_acc": "0.85", "int8_test_acc_ci95_low": "", "int8_test_acc_ci95_high": "",
        "int8_test_acc_source": "openvino", "int8_latency_ms": "0.3", "int8_hw": "cpu", "int8_hw_precision": "", "int8_params": "1000",
        "int8_macs": "30000", "int8_file": "checkpoints/bbbb000002/model_int8.onnx", "int8_error": "",
        "int8_size_bytes": "", "int8_test_images": "", "int8_fp32_test_acc": "", "int8_pruned_test_acc": ""}
    assert int8["cccc000003"] == {**{c: "" for c in INT8_CSV_COLUMNS}, "int8_error": "prune target 0.01 ms is unreachable"}
    assert int8["dddd000004"] == {c: "" for c in INT8_CSV_COLUMNS}  # not compressed
    assert rows["aaaa000001"]["params"] == "1000" and rows["aaaa000001"]["latency_ms"] == "0.125"  # the float model's
    # Read from the run's files alone: written with the members in hand (as the search does) it is the same file.
    text = (run_dir / "pareto.csv").read_text()
    write_pareto_csv(run_dir, members=members, header={"hw": "edge_npu", "members": members})
    assert (run_dir / "pareto.csv").read_text() == text


def test_a_trial_over_the_current_budget_leaves_the_front_even_if_it_finished_under_a_looser_one():
    """A study resumed with a tighter search.latency_budget_ms: its old trials' stored constraints say feasible, but
    pareto.json states the new budget, so a member above it would sit on the wrong side of the report's budget line."""
    import optuna
    from optuna.trial import create_trial

    from nas.results import trial_record

    def finished(width, acc, lat):
        arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=width),))
        return create_trial(values=[acc, lat], constraints={"latency_budget": 0.0},  # no budget when it ran
                            user_attrs={"arch": arch.to_json(), "latency_ms": lat, "params": 1, "macs": 1})

    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in (finished(8, 0.80, 0.3), finished(16, 0.90, 2.5)):
        study.add_trial(t)
    trials = study.get_trials()
    assert [trial_record(t, 1.0).feasible for t in trials] == [True, False]
    assert [r.number for r in front_records([trial_record(t, 1.0) for t in trials])] == [0]
    assert [trial_record(t, None).feasible for t in trials] == [True, True]  # no budget: both count
    assert [trial_record(t, 2.5).feasible for t in trials] == [True, True]  # at the budget is within it


def test_a_distilled_final_training_counts_its_largest_teachers_forward_pass_in_the_memory_check(compose_cfg, monkeypatch):
    # experiments/final_recipe.py --teacher distils through final_train(loss_fn=...): its memory check counted the
    # student alone, though the teachers run their forward passes on the same batch while the student's activations wait
    import torch

    import nas.results as results_mod
    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.errors import ConfigError
    from nas.memory import activation_bytes, gib, step_bytes

    S = StageConfig
    student = ArchConfig(stages=(S("conv", 1, 16), S("pool", 1, 32)))
    small, large = ArchConfig(stages=(S("conv", 1, 32), S("pool", 1, 48))), ArchConfig(stages=(S("attn", 2, 64, head_dim=16),))
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    data = Dataset("t", Split(x, torch.arange(40) % 10), Split(x[:10], torch.arange(10)), Split(x[:10], torch.arange(10)),
                   tuple(map(str, range(10))), (0.5,), (0.25,))
    run = to_run_config(compose_cfg("data.root=/unused", "final_train=smoke", "final_train.batch_size=32"))
    monkeypatch.setattr(results_mod, "train_candidate", lambda *a, **k: pytest.fail("trained"))
    alone = activation_bytes(student, batch_size=32, training=True)
    with_large = step_bytes(student, batch_size=32, training=True, teacher=large)
    with_both = with_large + step_bytes(student, batch_size=32, training=True, teacher=small) - alone
    assert alone < with_large < with_both
    run.search.memory_budget_gb = alone / 2**30  # the student alone fits; with either teacher's forward pass it does not
    with pytest.raises(pytest.fail.Exception, match="trained"):  # the check passes without teachers
        results_mod.final_train(student, data, run, seed=0, loss_fn=lambda logits, x, y: logits.sum())
    with pytest.raises(ConfigError) as err:
        results_mod.final_train(student, data, run, seed=0, loss_fn=lambda logits, x, y: logits.sum(), teachers=[small, large])
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"final training of Pareto member {student.arch_id}: out of memory: training "
                                                f"at final_train.batch_size=32 needs about {gib(with_large)} of working memory")
    # which of the two teachers holds the most is named: the second one given, by its summary
    assert (f"(the student's training step {gib(alone)} + the forward pass of teacher 2 of 2, the largest "
            f"({large.summary()}), {gib(with_large - alone)}; " in line)
    # run one after another, the teachers' forward passes are never alive together: the largest one's is what counts
    run.search.memory_budget_gb = with_large / 2**30
    with pytest.raises(pytest.fail.Exception, match="trained"):
        results_mod.final_train(student, data, run, seed=0, loss_fn=lambda logits, x, y: logits.sum(), teachers=[small, large])


def test_the_final_training_log_line_says_when_final_train_subset_limited_the_training_images(compose_cfg, monkeypatch,
                                                                                              caplog):
    # final_train=smoke trains 2 epochs on 512 images: search.log said "final training of X: 2 epochs", which reads as
    # 2 epochs on the whole split (the report's 'Weights tested' line said how many images; the log did not)
    import logging

    import torch

    import nas.results as results_mod
    from nas.config import to_run_config
    from nas.data import Dataset, Split

    arch = ArchConfig(stages=(StageConfig("conv", 1, 16),))
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    data = Dataset("t", Split(x, torch.arange(40) % 10), Split(x[:10], torch.arange(10)), Split(x[:10], torch.arange(10)),
                   tuple(map(str, range(10))), (0.5,), (0.25,))
    stop = RuntimeError("trained")

    def train(*args, **kwargs):
        raise stop

    monkeypatch.setattr(results_mod, "train_candidate", train)
    for subset, said in ((16, "2 epochs on 16 of the 40 training images"), (None, "2 epochs"), (40, "2 epochs")):
        run = to_run_config(compose_cfg("data.root=/unused", "final_train=smoke", f"final_train.subset={subset or 'null'}"))
        run.search.memory_budget_gb = None
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nas.results"), pytest.raises(RuntimeError, match="trained"):
            results_mod.final_train(arch, data, run, seed=0)
        assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("final training of")] == [
            f"final training of {arch.arch_id}: {said}"]


def test_pareto_json_records_a_relative_data_root_as_the_absolute_folder_the_search_read(tmp_path, compose_cfg, monkeypatch):
    # data.root=photos was recorded as given: compress.run of a member (which names pareto.json's root in its hints) and
    # python -m nas.report, run from another folder, resolved it from there, i.e. to another folder or none.
    import json

    import optuna
    import torch

    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.results import write_run_files

    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("imagefolder", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)),
                   Split(x[:3], torch.arange(3)), ("a", "b", "c"), (0.5,), (0.25,))
    (tmp_path / "then").mkdir()
    monkeypatch.chdir(tmp_path / "then")
    run = to_run_config(compose_cfg("data=imagefolder", "data.root=photos", "data.img_size=8"))
    pareto = write_run_files(tmp_path / "run", optuna.create_study(directions=["maximize", "minimize"]), data, run)
    recorded = json.loads((tmp_path / "run" / "pareto.json").read_text())["data"]["root"]
    assert recorded == pareto["data"]["root"] == str(tmp_path / "then" / "photos")


def test_pareto_json_records_the_proxy_training_recipe_and_which_groups_ran_on_smoke_settings(tmp_path, compose_cfg):
    # The report never said how the search trained its candidates (train=smoke: 1 epoch on 512 images, which explains
    # its low val accuracies) nor that a run on smoke settings has accuracies that mean nothing: pareto.json records both
    import json

    import optuna
    import torch

    from nas.config import smoke_groups, to_run_config
    from nas.data import Dataset, Split
    from nas.results import write_run_files

    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("imagefolder", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)),
                   Split(x[:3], torch.arange(3)), ("a", "b", "c"), (0.5,), (0.25,))
    run = to_run_config(compose_cfg("data=imagefolder", "data.root=photos", "data.img_size=8", "train=smoke",
                                    "compress=smoke"))
    write_run_files(tmp_path / "run", optuna.create_study(directions=["maximize", "minimize"]), data, run)
    pareto = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert pareto["train"]["epochs"] == 1 and pareto["train"]["subset"] == 512
    assert "threads" not in pareto["train"]  # speed settings change no accuracy
    assert pareto["smoke_settings"] == ["train", "compress"]
    # outside a Hydra run a group counts as smoke where its values are its smoke file's: one changed value is not
    assert smoke_groups(to_run_config(compose_cfg("data.root=/unused"))) == []
    assert smoke_groups(to_run_config(compose_cfg("data.root=/unused", "train=smoke", "train.epochs=3",
                                                  "final_train=smoke"))) == ["final_train"]


def test_pareto_json_names_the_settings_set_beside_a_smoke_group(tmp_path, compose_cfg):
    # `final_train=smoke final_train.epochs=3` trains otherwise than final_train=smoke's file, and the report named the
    # group alone: pareto.json's smoke_changed records such settings, those that change no accuracy aside
    import json

    import optuna
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from nas.config import CONF_DIR, register_configs, to_run_config
    from nas.data import Dataset, Split
    from nas.results import smoke_changed, write_run_files

    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("imagefolder", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)),
                   Split(x[:3], torch.arange(3)), ("a", "b", "c"), (0.5,), (0.25,))
    overrides = ["final_train=smoke", "final_train.epochs=3", "final_train.eval_batch_size=64", "compress=smoke"]
    run = to_run_config(compose_cfg("data=imagefolder", "data.root=photos", "data.img_size=8", *overrides))
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as in `python -m nas.search`, whose choices say which groups are smoke
    try:
        write_run_files(tmp_path / "run", optuna.create_study(directions=["maximize", "minimize"]), data, run)
    finally:
        HydraConfig.instance().cfg = None
    pareto = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert pareto["smoke_settings"] == ["final_train", "compress"]
    assert pareto["smoke_changed"] == ["final_train.epochs=3"]  # eval_batch_size changes the speed alone
    # a group whose values are its smoke file's has none
    assert smoke_changed(run, ["compress"]) == []


def test_a_members_measured_latency_names_the_cpu_as_precisely_as_calibrated_on_and_old_folders_keep_the_name(
        tmp_path, compose_cfg, monkeypatch):
    # measured_latency_on recorded the model name only ("AMD EPYC"), which the pool's Zen 2 and Zen 4 machines share;
    # calibrated_on and the host check also know the family/model numbers and vector instructions.
    import dataclasses
    import json

    import nas.results as results_mod
    from nas.report.files import _Member
    from nas.report.notes import _measured_note

    zen4 = "AMD EPYC; 2 cpus; Linux 6.18.44-fc-v1272; family 25 model 17 stepping 1; avx512f"
    arch, data, run, record = _one_member(tmp_path, compose_cfg, hw="cpu")
    monkeypatch.setattr(results_mod, "machine_info", lambda: zen4)
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: (0.25, 0.1))
    metrics, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert metrics["measured_latency_on"] == "AMD EPYC; family 25 model 17; avx512f"  # the stepping, kernel, cores left out
    path = tmp_path / "checkpoints" / arch.arch_id / "metrics.json"
    assert json.loads(path.read_text())["measured_latency_on"] == metrics["measured_latency_on"]

    # A member folder written before 2026-12-06 names the model only: a rerun keeps it as it is, timing nothing again.
    path.write_text(json.dumps({**json.loads(path.read_text()), "measured_latency_on": "AMD EPYC"}))
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: pytest.fail("timed again"))
    monkeypatch.setattr(results_mod, "machine_info", lambda: pytest.fail("asked the host"))
    old, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert old["measured_latency_on"] == "AMD EPYC" and old["measured_latency_ms"] == 0.25

    def note(m: dict) -> str:
        fields = {f.name: None for f in dataclasses.fields(_Member)}
        return _measured_note([_Member(**{**fields, "arch_id": arch.arch_id, "measured_ms": 0.25, "metrics": m})])

    assert note(metrics).endswith(", on AMD EPYC; family 25 model 17; avx512f.")
    assert note(old).endswith(", on AMD EPYC.")


def test_a_runs_members_share_one_record_of_test_images_made_once(tmp_path, compose_cfg, monkeypatch):
    # Each Pareto member written hashed the test split again, class by class (per_class_test_images), though every
    # member of a run has the same test images: write_run_files makes the record once and hands it down.
    import json

    import optuna
    import torch

    import nas.results as results_mod
    from nas.checkpoint import save_checkpoint
    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.model import build_model

    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("t", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)), Split(x[3:9], torch.arange(6) % 3),
                   ("a", "b", "c"), (0.5,), (0.25,))
    run = to_run_config(compose_cfg("data.root=/unused", "final_train=none", "hw=cpu", "search.export_onnx=false"))
    records = []
    for n, width in enumerate((8, 16, 24)):
        arch = ArchConfig(stages=(StageConfig("conv", 1, width),), in_chans=1, img_size=8, num_classes=3)
        save_checkpoint(tmp_path / "trials" / f"{arch.arch_id}.pt", build_model(arch), arch, meta={"seed": 0})
        records.append(TrialRecord(number=n, state="COMPLETE", arch=arch, val_acc=0.5 + n / 10, latency_ms=0.1 * (n + 1),
                                   params=1, macs=1, feasible=True, duration_s=1.0, fail_reason=""))
    expected = results_mod.record_of_test_images(data=data, run=run)
    calls = []
    summary = results_mod.per_class_test_images
    monkeypatch.setattr(results_mod, "per_class_test_images", lambda d: calls.append(d) or summary(d))
    monkeypatch.setattr(results_mod, "front_records", lambda _: records)
    results_mod.write_run_files(tmp_path, optuna.create_study(directions=["maximize", "minimize"]), data, run)
    assert len(calls) == 1
    for r in records:  # each member's metrics.json records its test images as before
        folder = tmp_path / "checkpoints" / r.arch_id
        assert json.loads((folder / "metrics.json").read_text())["test_images"] == expected
    assert expected["count"] == 6 and [row[0] for row in expected["per_class"]] == [2, 2, 2]


def test_test_predictions_of_an_image_folder_name_each_images_file_and_old_files_without_them_are_still_read(tmp_path):
    from nas.results import read_test_predictions, test_predictions_csv

    classes = ("cat", "dog")
    truth, predicted = np.array([0, 1]), np.array([1, 1])
    paths = ("cat/a, b.png", "dog/1.png")  # a comma in a file name stays one cell
    path = tmp_path / "test_predictions.csv"
    path.write_text(test_predictions_csv(predicted, truth, classes, paths))
    assert path.read_text().splitlines() == ["index,label,predicted,path", '0,cat,dog,"cat/a, b.png"', "1,dog,dog,dog/1.png"]
    np.testing.assert_array_equal(read_test_predictions(path, truth, classes, paths), predicted)
    np.testing.assert_array_equal(read_test_predictions(path, truth, classes), predicted)  # the paths not asked about
    # the same labels of other files (a renamed photo, another split): not the images the other members were scored on
    assert read_test_predictions(path, truth, classes, ("cat/c.png", "dog/1.png")) is None
    # a file without the column (idx data, or written before 2026-12-06) is read by its labels, as before
    path.write_text(test_predictions_csv(predicted, truth, classes))
    assert path.read_text().splitlines()[0] == "index,label,predicted"
    np.testing.assert_array_equal(read_test_predictions(path, truth, classes, paths), predicted)


def test_test_predictions_name_a_file_and_class_that_are_not_utf8_as_backslash_x_and_read_back(tmp_path):
    # A Latin-1 name from an old zip (b'caf\xe9'), held by Python as a lone surrogate: .encode() of the CSV raised
    # UnicodeEncodeError as a member was written, ending the search.
    import os

    from nas.results import read_test_predictions, test_predictions_csv

    classes = (os.fsdecode(b"caf\xe9"), "dog")
    truth, predicted = np.array([0, 1]), np.array([1, 0])
    paths = (os.fsdecode(b"caf\xe9/\xe9t\xe9.png"), "dog/\u00e9t\u00e9.png")
    path = tmp_path / "test_predictions.csv"
    path.write_bytes(test_predictions_csv(predicted, truth, classes, paths).encode("utf-8"))
    assert path.read_text(encoding="utf-8").splitlines() == [
        "index,label,predicted,path", "0,caf\\xe9,dog,caf\\xe9/\\xe9t\\xe9.png", "1,dog,caf\\xe9,dog/\u00e9t\u00e9.png"]
    # read back against the same test split (the next run's member comparison), names and all
    np.testing.assert_array_equal(read_test_predictions(path, truth, classes, paths), predicted)
    assert read_test_predictions(path, truth, classes, (paths[0], "dog/other.png")) is None


def test_trials_csv_names_the_trial_that_reran_an_interrupted_one_instead_of_asking_for_a_rerun():
    # "rerun the same command to resume" stayed on an interrupted trial whose retry had since finished
    from nas.study import INTERRUPTED_REASON

    stopped, other = (dataclasses.replace(_rec(n, None, None, state="FAIL", width=w), fail_reason=INTERRUPTED_REASON)
                      for n, w in ((0, 8), (1, 16)))
    retry = _rec(2, 0.8, 1.0, width=8)  # trial 0's architecture, finished by the rerun
    rows = list(csv.DictReader(io.StringIO(trials_csv([stopped, other, retry], set()))))
    assert rows[0]["fail_reason"] == "interrupted (Ctrl-C or SIGTERM); run again as trial 2"
    assert rows[1]["fail_reason"] == INTERRUPTED_REASON  # not rerun yet: the hint stays true


def test_trials_csv_writes_a_fail_reason_naming_a_file_that_is_not_utf8_with_backslash_x():
    import os

    failed = TrialRecord(0, "FAIL", None, None, None, None, None, False, None, os.fsdecode(b"cannot read caf\xe9.png"))
    text = trials_csv([failed], set())
    assert list(csv.DictReader(io.StringIO(text.encode("utf-8").decode())))[0]["fail_reason"] == "cannot read caf\\xe9.png"


def _member_of_photos(tmp_path, compose_cfg, *, test_size: int):
    """The run config, data and trial record of a one-stage member trained on nothing, its checkpoint in
    tmp_path/trials, for the 8x8 grey photos in tmp_path/photos (two classes; val 2 images, test `test_size`)."""
    from nas.checkpoint import save_checkpoint
    from nas.config import to_run_config
    from nas.data import load_dataset
    from nas.model import build_model

    run = to_run_config(compose_cfg("data=imagefolder", f"data.root={tmp_path / 'photos'}", "data.img_size=8",
                                    f"data.test_size={test_size}", "data.val_size=2", "final_train=none",
                                    "hw=edge_npu", "search.export_onnx=false"))
    data = load_dataset(run.data)
    arch = ArchConfig(stages=(StageConfig("conv", 1, 8),), in_chans=1, img_size=8, num_classes=2)
    save_checkpoint(tmp_path / "trials" / f"{arch.arch_id}.pt", build_model(arch), arch, meta={"seed": 0})
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")
    return run, data, record


def test_a_members_test_predictions_name_the_image_folders_files_and_an_old_file_gains_them_without_the_model(
        tmp_path, compose_cfg, monkeypatch):
    # test_predictions.csv's index is a position in the test split: which photos were misclassified could not be told.
    import csv as csv_mod

    from PIL import Image

    import nas.results as results_mod

    for c, base in (("cat", 10), ("dog", 100)):
        for i in range(8):
            (tmp_path / "photos" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), base + i, dtype=np.uint8), mode="L").save(tmp_path / "photos" / c / f"{i}.png")
    run, data, record = _member_of_photos(tmp_path, compose_cfg, test_size=6)
    arch = record.arch
    _, predicted = results_mod.materialize_member(tmp_path, record, data, run)
    csv_path = tmp_path / "checkpoints" / arch.arch_id / "test_predictions.csv"
    with csv_path.open(newline="") as f:
        rows = list(csv_mod.DictReader(f))
    assert list(rows[0]) == ["index", "label", "predicted", "path"] and len(rows) == len(data.test) == 6
    for row in (rows[0], rows[-1]):  # the row's file is the test image at its index: its pixels and its class folder
        i = int(row["index"])
        pixel = np.asarray(Image.open(tmp_path / "photos" / row["path"]))[0, 0]
        assert pixel == int(data.test.x[i, 0, 0, 0]) and row["path"].split("/")[0] == row["label"] == data.classes[data.test.y[i]]
        assert row["predicted"] == data.classes[predicted[i]]
    assert rows[0]["path"].startswith("cat/") and rows[-1]["path"].startswith("dog/")

    # A member folder written before 2026-12-06 (no path column): a rerun adds the paths, its predictions kept as they
    # are, without running the model again.
    new = csv_path.read_text()
    csv_path.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in new.splitlines()))
    monkeypatch.setattr(results_mod, "torch_logits", lambda *a, **k: pytest.fail("ran the model again"))
    _, again = results_mod.materialize_member(tmp_path, record, data, run)
    assert csv_path.read_text() == new and np.array_equal(again, predicted)

    # Data without files (idx, as Fashion-MNIST): the three columns of before, unchanged.
    plain = dataclasses.replace(data, test=dataclasses.replace(data.test, paths=None))
    results_mod.materialize_member(tmp_path, record, plain, run)
    assert csv_path.read_text().splitlines()[0] == "index,label,predicted"
    assert csv_path.read_text() == "".join(line.rsplit(",", 1)[0] + "\n" for line in new.splitlines())


def test_a_members_input_record_counts_its_images_that_were_not_square_or_transparent(tmp_path, compose_cfg, monkeypatch):
    # compress.predict could only say "whether the model's training images were square is not recorded" of a deployer's
    # non-square photos: the member's metrics.json now records how many of the images it was trained and tested on
    # loading stretched or found transparent pixels in (nas.data.Dataset.image_counts).
    from PIL import Image

    import nas.results as results_mod
    from nas.checkpoint import IMAGE_COUNT_KEYS, io_contract

    for c, base in (("cat", 10), ("dog", 100)):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), base + i, dtype=np.uint8), mode="L").save(tmp_path / "photos" / c / f"{i}.png")
    Image.fromarray(np.full((8, 12), 50, dtype=np.uint8), mode="L").save(tmp_path / "photos" / "cat" / "wide.png")
    run, data, record = _member_of_photos(tmp_path, compose_cfg, test_size=2)
    arch = record.arch
    metrics, _ = results_mod.materialize_member(tmp_path, record, data, run)
    on_disk = json.loads((tmp_path / "checkpoints" / arch.arch_id / "metrics.json").read_text())
    assert on_disk["input"] == metrics["input"]
    assert [on_disk["input"][k] for k in IMAGE_COUNT_KEYS] == [13, 1, 0, 13]  # stored grey: all of them
    # A member folder written before the counts were kept, reused by a resumed search (nothing trained or run again):
    # its record is written again from the data the study checked to be the same images, the counts with it.
    path = tmp_path / "checkpoints" / arch.arch_id / "metrics.json"
    path.write_text(json.dumps({**on_disk, "input": {k: v for k, v in on_disk["input"].items()
                                                     if k not in IMAGE_COUNT_KEYS}}))
    monkeypatch.setattr(results_mod, "torch_logits", lambda *a, **k: pytest.fail("ran the model again"))
    results_mod.materialize_member(tmp_path, record, data, run)
    assert json.loads(path.read_text())["input"] == on_disk["input"]
    # unknown (a Dataset made by hand): left out, as in a record from before they were kept
    unknown = io_contract(arch=arch, classes=data.classes, mean=data.mean, std=data.std, preprocessing="",
                          background=None)
    assert not set(IMAGE_COUNT_KEYS) & set(unknown["input"])


def test_pareto_json_records_the_precision_its_latencies_are_predicted_at(tmp_path, compose_cfg):
    # latency_ms is the chip's prediction at its hw.precision (edge_npu: int8, hw=cpu: fp32); pareto.json named the chip
    # only, so the report could not say whether a member's predicted time is its int8 model's or model.pt's.
    import json

    import optuna
    import torch

    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.results import write_run_files

    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("imagefolder", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)),
                   Split(x[:3], torch.arange(3)), ("a", "b", "c"), (0.5,), (0.25,))
    for hw, precision in (("edge_npu", "int8"), ("cpu", "fp32")):
        run = to_run_config(compose_cfg(f"hw={hw}", "data=imagefolder", f"data.root={tmp_path}", "data.img_size=8"))
        write_run_files(tmp_path / hw, optuna.create_study(directions=["maximize", "minimize"]), data, run)
        assert json.loads((tmp_path / hw / "pareto.json").read_text())["hw_precision"] == precision


def _member_final_trained(tmp_path, compose_cfg, monkeypatch):
    """A Pareto member of tiny data final-trained (by a stand-in for `final_train`: weights seeded by the recipe's epochs,
    so that another recipe gives other weights) with final_train=smoke's 2 epochs, its model.onnx exported; returns
    `materialize(*overrides)` of the member, its folder, the data and the stand-in."""
    import torch

    import nas.results as results_mod
    from nas.checkpoint import save_checkpoint
    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig("conv", 1, 8),), in_chans=1, img_size=8, num_classes=3)
    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = Dataset("t", Split(x, torch.arange(12) % 3), Split(x[:3], torch.arange(3)), Split(x[3:9], torch.arange(6) % 3),
                   ("a", "b", "c"), (0.5,), (0.25,))
    save_checkpoint(tmp_path / "trials" / f"{arch.arch_id}.pt", build_model(arch), arch, meta={"seed": 0})
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")

    def final_train(arch, data, run, *, seed, **kwargs):
        torch.manual_seed(run.final_train.epochs)
        model = build_model(arch).eval()
        model.meta = {"seed": seed}
        return model, {"epochs": run.final_train.epochs, "val_acc": 0.5, "seconds": 1.0, "images_per_s": 1.0,
                       "precision": "fp32"}

    monkeypatch.setattr(results_mod, "final_train", final_train)

    def materialize(*overrides: str):
        run = to_run_config(compose_cfg("data.root=/unused", "hw=edge_npu", "final_train=smoke", *overrides))
        return results_mod.materialize_member(tmp_path, record, data, run)

    assert materialize() is not None
    return SimpleNamespace(materialize=materialize, folder=tmp_path / "checkpoints" / arch.arch_id, data=data,
                           final_train=final_train)


MEMBER_FILES = ("metrics.json", "model.pt", "model.onnx", "test_predictions.csv", "arch.json")


def test_a_stop_during_a_members_new_final_training_keeps_its_files_whole_and_the_member_listed(
        tmp_path, compose_cfg, monkeypatch):
    # A rerun with another final_train deleted the member's metrics.json, model.onnx and test_predictions.csv before
    # training it again: stopped during that training (Ctrl-C, SIGTERM, a crash), the member was left out of pareto.json
    # and the report until a rerun trained it again, though its files had been usable.
    import nas.results as results_mod
    from nas.checkpoint import load_checkpoint

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    materialize, folder = member.materialize, member.folder
    before = {n: (folder / n).read_bytes() for n in MEMBER_FILES}
    monkeypatch.setattr(results_mod, "final_train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        materialize("final_train.epochs=3")
    assert {n: (folder / n).read_bytes() for n in MEMBER_FILES} == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(MEMBER_FILES)  # no temporary folder left
    # Stopped once the new weights are made (their test accuracy being taken): the same
    monkeypatch.setattr(results_mod, "final_train", member.final_train)
    monkeypatch.setattr(results_mod, "onnx_logits", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        materialize("final_train.epochs=3")
    assert {n: (folder / n).read_bytes() for n in MEMBER_FILES} == before
    assert not (tmp_path / "retired").exists()  # nothing moved before the new files are complete
    # rebuilt with final_train=none, the member is listed with the weights it had
    with monkeypatch.context() as m:
        m.setattr(results_mod, "torch_logits", lambda *a, **k: pytest.fail("ran the model again"))
        metrics, _ = materialize("final_train=none")
    assert metrics["final_train"]["epochs"] == load_checkpoint(folder).meta["final_train"]["epochs"] == 2
    # the rerun that trains it through: its folder as it was moves to retired/, the new one takes its place
    from nas.checkpoint import onnx_logits

    monkeypatch.setattr(results_mod, "onnx_logits", onnx_logits)
    metrics, _ = materialize("final_train.epochs=3")
    retired = tmp_path / "retired" / folder.name
    assert {n: (retired / n).read_bytes() for n in MEMBER_FILES} == before
    assert sorted(p.name for p in retired.iterdir()) == sorted(MEMBER_FILES)
    assert metrics["final_train"]["epochs"] == load_checkpoint(folder).meta["final_train"]["epochs"] == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(MEMBER_FILES)


def test_a_member_final_trained_again_says_which_recipe_settings_changed(tmp_path, compose_cfg, monkeypatch, caplog):
    # Rerunning the search with final_train.epochs=30 to train the winners longer logged only "final training of
    # <arch_id>", as for a new member: nothing said that the member's weights were being replaced, nor why.
    import logging

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    with caplog.at_level(logging.INFO, logger="nas.results"):
        member.materialize("final_train.epochs=3", "final_train.lr=0.01")
    said = [r.getMessage() for r in caplog.records if "final-trained again" in r.getMessage()]
    assert said == [f"Pareto member {member.folder.name} is final-trained again, from scratch: its model.pt was "
                    "final-trained with final_train.epochs=2 final_train.lr=0.003, this run's recipe has "
                    "final_train.epochs=3 final_train.lr=0.01; its files stay as they are until the new ones are "
                    "complete, then its folder as it was (weights, compressed files) moves to retired/",
                    # where it went, said once it has (the name taken before hours of training may be taken by then)
                    f"Pareto member {member.folder.name} is final-trained again: its folder as it was is moved to "
                    f"retired/{member.folder.name}/"]
    # the same recipe (speed settings aside) trains nothing and says nothing of it
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        member.materialize("final_train.epochs=3", "final_train.lr=0.01", "final_train.threads=1")
    assert not [r for r in caplog.records if "final-trained" in r.getMessage()]
    # a member that shipped the proxy's weights (final_train=none) is said to be final-trained now
    from nas.results import _retraining_text

    assert _retraining_text({"arch_id": "x", "final_train": None}, final={"epochs": 6}) == (
        "its model.pt held the search's proxy weights (final_train=none)")
    assert _retraining_text({}, final={"epochs": 6}) is None  # a new member
    # values as a command line writes them: None as null, only the settings that differ
    done = {"arch_id": "x", "final_train": {"recipe": {"max_shift": None, "lr": 0.003, "erase_prob": 0.0}}}
    assert _retraining_text(done, final={"max_shift": 2, "lr": 0.003, "erase_prob": 0.25}) == (
        "its model.pt was final-trained with final_train.max_shift=null final_train.erase_prob=0.0, "
        "this run's recipe has final_train.max_shift=2 final_train.erase_prob=0.25")
    # an enum as the command line spells it (it read final_train.precision=Precision.bf16, which no command takes)
    from nas.config import Precision

    done = {"arch_id": "x", "final_train": {"recipe": {"precision": "fp32"}}}
    assert _retraining_text(done, final={"precision": Precision.bf16}) == (
        "its model.pt was final-trained with final_train.precision=fp32, this run's recipe has final_train.precision=bf16")


def _compress_settings(name: str) -> dict:
    """conf/compress/<name>.yaml over the defaults, as a compression records them in compressed_metrics.json."""
    from nas.rebuild import _group
    from nas.config import CompressConfig

    return json.loads(json.dumps(_group(name, "compress", CompressConfig), default=str))


def test_a_members_compressed_files_of_weights_it_no_longer_has_leave_its_folder_with_those_weights(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # A member final-trained again by a run that compresses nothing (final_train.epochs=30 compress=none, to compress
    # the one chosen member later) kept the int8 files and compressed_metrics.json of its old weights beside the new
    # model.pt, and the report and pareto.csv showed them as the member's.
    import hashlib
    import logging

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    folder = member.folder

    def compressed(*, weights: bool) -> None:
        (folder / "model_int8.onnx").write_bytes(b"int8")
        record = {"format": 1, "hw": "cpu", "files": {"int8": "model_int8.onnx"},
                  "config": {**_compress_settings("smoke"), "members": "top_k", "top_k": 2}}
        if weights:
            record["weights_sha256"] = hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
        (folder / "compressed_metrics.json").write_text(json.dumps(record))

    compressed(weights=True)
    # not trained again (the same recipe, or final_train=none): the compression describes model.pt and stays
    for overrides in ((), ("final_train=none",)):
        member.materialize(*overrides)
        assert (folder / "model_int8.onnx").is_file() and (folder / "compressed_metrics.json").is_file()
    old = {n: (folder / n).read_bytes() for n in (*MEMBER_FILES, "model_int8.onnx", "compressed_metrics.json")}
    member.materialize("final_train.epochs=3")
    assert not (folder / "model_int8.onnx").exists() and not (folder / "compressed_metrics.json").exists()
    # they went with the weights they were made from, to retired/ (deleted, the int8 file a user shipped was lost)
    retired = tmp_path / "retired" / folder.name
    assert {n: (retired / n).read_bytes() for n in old} == old
    # a compression from before weights_sha256 goes with the replaced weights too
    compressed(weights=False)
    member.materialize("final_train.epochs=3")  # up to date: kept
    assert (folder / "model_int8.onnx").is_file()
    member.materialize("final_train.epochs=4")
    assert not (folder / "model_int8.onnx").exists() and not (folder / "compressed_metrics.json").exists()
    assert (tmp_path / "retired" / f"{folder.name}.2" / "model_int8.onnx").is_file()
    # one that records other weights than model.pt's (a run killed between the new model.pt and the removal) goes on
    # the next run, though that run replaces nothing, with one line
    compressed(weights=True)
    record = json.loads((folder / "compressed_metrics.json").read_text())
    (folder / "compressed_metrics.json").write_text(json.dumps({**record, "weights_sha256": "0" * 64}))
    with caplog.at_level(logging.INFO, logger="nas.results"):
        member.materialize("final_train.epochs=4")
    assert not (folder / "model_int8.onnx").exists()
    assert [r.getMessage() for r in caplog.records if "compressed files" in r.getMessage()] == [
        f"Pareto member {folder.name}: its compressed files (model_int8.onnx, compressed_metrics.json) were made from "
        f"the weights its model.pt held before and are moved to retired/{folder.name}.3/; compressing it again makes "
        f"them from the new ones (a search with compress, or python -m compress.run checkpoint={folder} hw=cpu "
        "compress=smoke)"]
    # moved, not deleted (a user may have shipped the int8 file), by themselves: the member's weights stay
    stale = tmp_path / "retired" / f"{folder.name}.3"
    assert sorted(p.name for p in stale.iterdir()) == ["compressed_metrics.json", "model_int8.onnx"]
    assert json.loads((stale / "compressed_metrics.json").read_text())["weights_sha256"] == "0" * 64
    # a member whose model.pt is gone is trained again beside them: they go to retired/ too (they were deleted)
    compressed(weights=True)
    (folder / "model.pt").unlink()
    member.materialize("final_train.epochs=4")
    stale = tmp_path / "retired" / f"{folder.name}.4"
    assert sorted(p.name for p in stale.iterdir()) == ["compressed_metrics.json", "model_int8.onnx"]
    assert (folder / "model.pt").is_file() and not (folder / "model_int8.onnx").exists()


def test_a_kill_while_a_retrained_members_files_move_in_never_leaves_metrics_of_other_weights(
        tmp_path, compose_cfg, monkeypatch, killed_after_changes):
    # The new files are renamed in one by one: killed between two renames, metrics.json must not describe other weights
    # than the model.pt beside it (a rerun would take it as up to date), nor model.onnx or the predictions be of others.
    import json
    import shutil

    from nas.checkpoint import load_checkpoint, onnx_logits, torch_logits

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    materialize, folder, test = member.materialize, member.folder, member.data.test
    shutil.copytree(folder, tmp_path / "old")
    old_weights = (folder / "model.pt").read_bytes()
    seen = []
    for killed_at in range(50):  # before each deletion or rename in the member's folder and its temporary one, until none
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp_path / "retired", ignore_errors=True)
        shutil.copytree(tmp_path / "old", folder)
        with killed_after_changes(killed_at) as kill:
            materialize("final_train.epochs=3")
        # the old weights are never lost: in the member's folder until the swap, then in retired/
        kept = [p for p in (folder / "model.pt", tmp_path / "retired" / folder.name / "model.pt") if p.is_file()]
        assert old_weights in [p.read_bytes() for p in kept], killed_at
        if not (folder / "metrics.json").is_file():
            seen.append(None)
            continue
        metrics = json.loads((folder / "metrics.json").read_text())
        model = load_checkpoint(folder)
        assert metrics["final_train"]["epochs"] == model.meta["final_train"]["epochs"], killed_at
        logits = torch_logits(model, test)
        assert np.allclose(onnx_logits(folder / "model.onnx", test), logits, atol=1e-4), killed_at
        predicted = [row["predicted"] for row in csv.DictReader(io.StringIO((folder / "test_predictions.csv").read_text()))]
        assert predicted == [("a", "b", "c")[i] for i in logits.argmax(1)], killed_at
        seen.append(metrics["final_train"]["epochs"])
        if not kill["killed"]:
            break
    # killed before the swap: the old files; during it: no metrics.json (a rerun trains again); after: the new ones
    assert seen[0] == 2 and seen[-1] == 3
    # and the member is without metrics.json only for the moment of the swap, not while its new files are made: from
    # the old folder's move to retired/ to the new one's rename into its place
    assert seen.count(None) == 2
    assert seen == sorted(seen, key=lambda s: {2: 0, None: 1, 3: 2}[s])


def _one_member(tmp_path, compose_cfg, *, hw: str):
    """A one-stage arch with its trial's weights in tmp_path/trials, a 6-image data set, a final_train=none run on `hw`
    and the trial's record: what `materialize_member` needs to write the member's files."""
    import torch

    from nas.checkpoint import save_checkpoint
    from nas.config import to_run_config
    from nas.data import Dataset, Split
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig("conv", 1, 8),), in_chans=1, img_size=8, num_classes=3)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    data = Dataset("t", Split(x, torch.arange(6) % 3), Split(x[:3], torch.arange(3)), Split(x[:3], torch.arange(3)),
                   ("a", "b", "c"), (0.5,), (0.25,))
    run = to_run_config(compose_cfg("data.root=/unused", "final_train=none", f"hw={hw}"))
    save_checkpoint(tmp_path / "trials" / f"{arch.arch_id}.pt", build_model(arch), arch, meta={"seed": 0})
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")
    return arch, data, run, record


def test_a_members_host_timing_on_a_busy_machine_says_so_beside_its_median(tmp_path, compose_cfg, monkeypatch, caplog):
    # On the pool's Zen 2 host, shared with other jobs, a member predicted 0.568 ms on hw=cpu_zen2 (calibrated there)
    # was "measured on host" at 1.439 ms, its single calls spread from 0.53 to 11 ms: the report gave the median as the
    # model's latency, with no word that the machine was busy. The spread is kept, and a busy timing is named.
    import logging

    import nas.results as results_mod
    from nas.report.files import _Member
    from nas.report.notes import _measured_note

    arch, data, run, record = _one_member(tmp_path, compose_cfg, hw="cpu_zen2")

    def note(m: dict) -> str:
        fields = {f.name: None for f in dataclasses.fields(_Member)}
        return _measured_note([_Member(**{**fields, "arch_id": arch.arch_id, "measured_ms": m["measured_latency_ms"],
                                          "metrics": m})])

    monkeypatch.setattr(results_mod, "machine_info", lambda: "AMD EPYC; 2 cpus; Linux 6.18; family 23 model 49 stepping 0; avx2")
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: (1.439, 3.57))
    with caplog.at_level(logging.WARNING, logger="nas.results"):
        busy, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert busy["measured_latency_ms"] == 1.439 and busy["measured_latency_spread"] == 3.57
    said = ("single calls spread 357% around the median, p10 to p90, where quiet timings stay under 35%: the machine was "
            "busy, so this time is the load's as much as the model's")
    assert busy["measured_latency_how"].endswith(f"20 calls ({said})") and f"({said}), on AMD EPYC" in note(busy)
    assert any(said in r.getMessage() and arch.arch_id in r.getMessage() for r in caplog.records)

    (tmp_path / "checkpoints" / arch.arch_id / "metrics.json").unlink()  # timed again, on a quiet machine
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: (0.57, 0.2))
    quiet, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert quiet["measured_latency_spread"] == 0.2 and "spread" not in quiet["measured_latency_how"]


def test_a_member_whose_model_onnx_is_gone_gets_it_exported_again_from_its_model_pt_without_training_again(
        tmp_path, compose_cfg, monkeypatch):
    # A member folder with its model.onnx deleted (by hand, a cleanup) was trained again from scratch from the trial's
    # proxy weights (minutes with the default recipe), and its new model.pt then made the compression redo its work too.
    import json

    import nas.results as results_mod
    from nas.checkpoint import load_checkpoint, onnx_logits, torch_logits

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    folder = member.folder
    weights = (folder / "model.pt").read_bytes()
    before = json.loads((folder / "metrics.json").read_text())
    (folder / "model.onnx").unlink()
    monkeypatch.setattr(results_mod, "final_train", lambda *a, **k: pytest.fail("trained the member again"))
    metrics, _ = member.materialize()
    assert (folder / "model.pt").read_bytes() == weights
    assert metrics["final_train"] == before["final_train"] and metrics["test_acc"] == before["test_acc"]
    assert np.allclose(onnx_logits(folder / "model.onnx", member.data.test),
                       torch_logits(load_checkpoint(folder), member.data.test), atol=1e-4)
    assert sorted(p.name for p in folder.iterdir()) == sorted(MEMBER_FILES)


def test_a_member_whose_trial_weights_are_cut_short_is_final_trained_from_its_seed_or_left_out_with_one_line(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # trials/<arch_id>.pt cut short (a copy, the disk) stopped the rerun of the search with "checkpoint ... is corrupt"
    # when the member had to be made again, though a final training starts from scratch and needs only the trial's seed
    # (`train_seed`, as the search trains it); with final_train=none (the proxy weights are the member's) it is left out
    # with a warning naming the file, as a missing one is.
    import logging
    import shutil

    import nas.results as results_mod
    from nas.checkpoint import load_checkpoint

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    arch_id = member.folder.name
    (tmp_path / "trials" / f"{arch_id}.pt").write_bytes(b"cut short")
    shutil.rmtree(member.folder)
    metrics, _ = member.materialize()
    assert metrics["final_train"]["epochs"] == 2
    assert load_checkpoint(member.folder).meta["seed"] == results_mod.train_seed(
        load_checkpoint(member.folder).arch, search_seed=0)
    shutil.rmtree(member.folder)
    with caplog.at_level(logging.WARNING, logger="nas.results"):
        assert member.materialize("final_train=none") is None
    assert f"its weights {tmp_path / 'trials' / f'{arch_id}.pt'} are damaged (" in caplog.text
    assert not member.folder.exists()  # left out: no folder made for its lock stays behind, empty


def test_a_member_final_trained_again_reads_its_trials_seed_from_the_trial_checkpoint_once(tmp_path, compose_cfg,
                                                                                           monkeypatch):
    # The seed was taken by checking the trial's file (`_unusable`, a whole read) and then reading it again
    import shutil
    from pathlib import Path

    import nas.results as results_mod
    from nas.checkpoint import load_checkpoint, save_checkpoint

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    trial = tmp_path / "trials" / f"{member.folder.name}.pt"
    arch = load_checkpoint(trial).arch
    save_checkpoint(trial, load_checkpoint(trial), arch, meta={"seed": 1234})
    shutil.rmtree(member.folder)
    reads = []
    real = results_mod.read_checkpoint
    monkeypatch.setattr(results_mod, "read_checkpoint", lambda path, *a, **k: reads.append(Path(path)) or real(path, *a, **k))
    metrics, _ = member.materialize()
    assert metrics["final_train"]["epochs"] == 2 and load_checkpoint(member.folder).meta["seed"] == 1234
    assert reads.count(trial) == 1


def test_a_member_whose_model_pt_is_cut_short_is_made_again_not_taken_as_up_to_date(tmp_path, compose_cfg, monkeypatch,
                                                                                    caplog):
    # A member's model.pt cut short (a copy, the disk) beside a whole metrics.json was taken as up to date: the member
    # stayed broken, and the compression, which could not load it, recorded an error and deleted the member's int8 files.
    import logging

    from nas.checkpoint import load_checkpoint

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    weights = (member.folder / "model.pt").read_bytes()
    (member.folder / "model.pt").write_bytes(weights[:100])
    (member.folder / "model_int8.onnx").write_bytes(b"int8")
    import nas.results as results_mod

    # retired/<arch_id> taken while the new files are made (another run retiring the member meanwhile): the line
    # names where the folder went, not the name that was free before (it once named the other one)
    earlier = tmp_path / "retired" / member.folder.name
    real_save = results_mod.save_checkpoint
    monkeypatch.setattr(results_mod, "save_checkpoint", lambda *a, **k: (
        earlier.mkdir(parents=True), (earlier / "model.pt").write_bytes(b"earlier"), real_save(*a, **k))[-1])
    with caplog.at_level(logging.INFO, logger="nas.results"):
        metrics, _ = member.materialize()
    assert metrics["final_train"]["epochs"] == 2
    assert load_checkpoint(member.folder).meta["final_train"]["epochs"] == 2  # whole again
    # its folder as it was is kept, its int8 file too (not deleted with the weights it was made from), with one line
    retired = tmp_path / "retired" / f"{member.folder.name}.2"
    assert (retired / "model.pt").read_bytes() == weights[:100] and (retired / "model_int8.onnx").read_bytes() == b"int8"
    assert (earlier / "model.pt").read_bytes() == b"earlier"
    said = [r.getMessage() for r in caplog.records if "retired/" in r.getMessage()]
    assert len(said) == 2 and said[0].startswith(f"Pareto member {member.folder.name} is made again (its model.pt is "
                                                 "damaged (") and said[0].endswith(
        "its folder as it is moves to retired/ once the new files are complete")
    assert said[1] == (f"Pareto member {member.folder.name} is made again: its folder as it was is moved to "
                       f"retired/{member.folder.name}.2/")


# A member's final training (final_train.epochs=15: about 13 minutes per member on a laptop CPU) stopped by Ctrl-C,
# SIGTERM, kill -9 or the OOM killer lost every finished epoch: the rerun trained the member again from epoch 0. Each
# epoch's state is now kept in the member's folder (final_train.partial.pt) and a rerun goes on from it. The trainings
# below run in fp32 on 1 thread (a final training is deterministic for a given seed and thread count), 2 epochs of
# 240 images of 8x8 pixels.


def _final_training(compose_cfg, *overrides: str):
    """A one-stage arch, 240 random 8x8 images of 3 classes, and a run whose final_train trains 2 epochs of 8 steps."""
    import torch

    from nas.config import to_run_config
    from nas.data import Dataset, Split

    arch = ArchConfig(stages=(StageConfig("conv", 1, 8),), in_chans=1, img_size=8, num_classes=3)
    x = torch.randint(0, 256, (240, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = Dataset("t", Split(x, torch.arange(240) % 3), Split(x[:12], torch.arange(12) % 3),
                   Split(x[12:24], torch.arange(12) % 3), ("a", "b", "c"), (0.5,), (0.25,))
    run = to_run_config(compose_cfg("data.root=/unused", "data.max_shift=1", "hw=edge_npu", "search.export_onnx=false",
                                    "final_train=smoke", "final_train.subset=null", "final_train.batch_size=30",
                                    "final_train.precision=fp32", "final_train.threads=1", *overrides))
    run.search.memory_budget_gb = None
    return arch, data, run


def _stopped_in_epoch(epoch: int, monkeypatch) -> None:
    """Make the next training raise KeyboardInterrupt (as Ctrl-C does) as epoch `epoch` starts, after the one before
    it finished: `fit` draws each epoch's batches from one `iterate_batches` call."""
    import nas.train

    calls, real = [], nas.train.iterate_batches

    def batches(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            monkeypatch.setattr(nas.train, "iterate_batches", real)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(nas.train, "iterate_batches", batches)


def _same_weights(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _partial_state(path):
    import torch

    payload = torch.load(path, weights_only=True)
    return json.loads(payload["key"]), payload["state"]["epochs_done"]


def test_a_final_training_stopped_after_an_epoch_goes_on_from_its_partial_file_to_the_same_weights(
        tmp_path, compose_cfg, monkeypatch, caplog):
    import logging

    import torch

    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    straight, info = final_train(arch, data, run, seed=3)  # no file: the training as it ever was
    state_after = torch.get_rng_state()
    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        final_train(arch, data, run, seed=3, partial=partial)
    assert _partial_state(partial)[1] == 1
    with caplog.at_level(logging.INFO, logger="nas.results"):
        resumed, resumed_info = final_train(arch, data, run, seed=3, partial=partial)
    assert f"resuming final training of {arch.arch_id} at epoch 1/2" in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # epoch 2 drew the same batches and shifts, from the same weights and AdamW moments, at the same learning rates
    assert _same_weights(resumed, straight)
    assert torch.equal(torch.get_rng_state(), state_after)  # and left torch's global generator where the training did
    assert resumed_info["val_acc"] == info["val_acc"]
    assert _partial_state(partial)[1] == 2  # the last epoch too: a stop while the member's files are written loses none


def test_a_final_trainings_partial_file_of_another_recipe_is_ignored_with_a_warning_and_overwritten(
        tmp_path, compose_cfg, monkeypatch, caplog):
    import logging

    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        final_train(arch, data, run, seed=3, partial=partial)
    _, _, other = _final_training(compose_cfg, "final_train.lr=1e-3")
    straight, _ = final_train(arch, data, other, seed=3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        trained, _ = final_train(arch, data, other, seed=3, partial=partial)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{partial} is ignored and will be overwritten: it is of another final training (it differs in recipe.lr)"]
    assert not any(r.getMessage().startswith("resuming") for r in caplog.records)
    assert _same_weights(trained, straight)  # trained from epoch 0 with lr=1e-3
    key, done = _partial_state(partial)
    assert key["recipe"]["lr"] == 1e-3 and done == 2
    # the speed settings are not in the key: a rerun with other threads goes on from the file
    _, _, more_threads = _final_training(compose_cfg, "final_train.lr=1e-3", "final_train.threads=2")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        final_train(arch, data, more_threads, seed=3, partial=partial)
    assert f"resuming final training of {arch.arch_id} at epoch 2/2" in [r.getMessage() for r in caplog.records]


def test_a_distillations_partial_file_is_of_its_teachers_weights_not_only_their_archs(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # The key named the teachers' arch ids only: a teacher retrained between the runs (same arch, other weights) had the
    # rerun go on from epochs distilled from the old one, and end with weights of neither teacher's training.
    import copy
    import logging

    import torch

    from compress.recover import teacher_loss
    from nas.model import build_model
    from nas.results import PARTIAL_FILE, _weights_digest, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE

    def teacher(seed):  # as nas.checkpoint.load_checkpoint returns one: a model carrying its arch
        torch.manual_seed(seed)
        model = build_model(arch).eval()
        model.arch = arch
        return model

    def distilled(teacher_model, **kwargs):
        loss_fn = teacher_loss([teacher_model], alpha=0.5, temperature=2.0)
        return final_train(arch, data, run, seed=3, loss_fn=loss_fn, teachers=[teacher_model], **kwargs)[0]

    old, retrained = teacher(1), teacher(2)
    assert _weights_digest(old) != _weights_digest(retrained)
    assert _weights_digest(old) == _weights_digest(copy.deepcopy(old).to(memory_format=torch.channels_last))
    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        distilled(old, partial=partial)
    straight = distilled(retrained)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        trained = distilled(retrained, partial=partial)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{partial} is ignored and will be overwritten: it is of another final training (it differs in teacher_weights)"]
    assert _same_weights(trained, straight)  # distilled from the retrained teacher, from epoch 0
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):  # the same teacher again: its file goes on
        distilled(retrained, partial=partial)
    assert f"resuming final training of {arch.arch_id} at epoch 2/2" in [r.getMessage() for r in caplog.records]
    # a teacher named by its arch alone cannot be told from a retrained one: refused in one line before any training
    with pytest.raises(ValueError, match=r"^teachers\[0\] is an ArchConfig .*needs the teacher models") as refused:
        final_train(arch, data, run, seed=3, loss_fn=teacher_loss([retrained], alpha=0.5, temperature=2.0),
                    teachers=[arch], partial=partial)
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match=r"^teachers\[0\] is a MetaFormer: allowed are models carrying their \.arch"):
        final_train(arch, data, run, seed=3, teachers=[build_model(arch)])  # no .arch: its arch is unknown


def test_a_distillations_partial_file_is_of_its_alpha_and_temperature(tmp_path, compose_cfg, monkeypatch, caplog):
    # The key held the teachers but not the distillation loss's settings: a rerun with another alpha (or temperature)
    # went on from epochs distilled with the old one. A file written before the key held them starts again too.
    import logging

    import torch

    from compress.recover import teacher_loss
    from nas.model import build_model
    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    torch.manual_seed(1)
    teacher = build_model(arch).eval()
    teacher.arch = arch

    def distilled(alpha, **kwargs):
        loss_fn = teacher_loss([teacher], alpha=alpha, temperature=2.0)
        return final_train(arch, data, run, seed=3, loss_fn=loss_fn, teachers=[teacher], **kwargs)[0]

    def warned(alpha):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nas.results"):
            model = distilled(alpha, partial=partial)
        return model, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        distilled(0.5, partial=partial)
    key, done = _partial_state(partial)
    assert done == 1 and key["distillation"] == {"alpha": 0.5, "temperature": 2.0, "fast": False}
    trained, said = warned(0.7)
    assert said == [f"{partial} is ignored and will be overwritten: it is of another final training (it differs in "
                    "distillation.alpha)"]
    assert _same_weights(trained, distilled(0.7))  # distilled with alpha 0.7 from epoch 0
    # a file of a distillation written before its key held the settings: of another training, in one warning
    payload = torch.load(partial, weights_only=True)
    key = json.loads(payload["key"])
    del key["distillation"]
    payload["key"] = json.dumps(key)
    torch.save(payload, partial)
    assert warned(0.7)[1] == [f"{partial} is ignored and will be overwritten: it is of another final training (it "
                              "differs in distillation)"]


@pytest.mark.parametrize("damage", ["garbage", "cut short"])
def test_a_final_trainings_unreadable_partial_file_is_ignored_with_one_warning_not_a_traceback(
        tmp_path, compose_cfg, monkeypatch, caplog, damage):
    import logging

    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    straight, _ = final_train(arch, data, run, seed=3, partial=partial)
    whole = partial.read_bytes()
    partial.write_bytes(b"not a checkpoint\n" if damage == "garbage" else whole[:len(whole) // 2])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        trained, _ = final_train(arch, data, run, seed=3, partial=partial)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(f"{partial} is ignored and will be overwritten: it cannot be read as a final training's "
                                "resume state (torch.load: ")
    assert _same_weights(trained, straight)  # trained from epoch 0
    assert _partial_state(partial)[1] == 2  # readable again


def _resumed_from_damaged_state(tmp_path, compose_cfg, monkeypatch, caplog, damage):
    """A final training stopped after its first epoch, run again on its partial file after `damage(payload)` changed
    what the file holds, written so that torch.load reads it whole: (its warnings, the weights trained, those of a
    training without the file, the file)."""
    import logging

    import torch

    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    straight, _ = final_train(arch, data, run, seed=3)
    _stopped_in_epoch(2, monkeypatch)  # epoch 2 is still to train: a resume puts back and uses every part of the state
    with pytest.raises(KeyboardInterrupt):
        final_train(arch, data, run, seed=3, partial=partial)
    payload = torch.load(partial, weights_only=True)
    damage(payload)
    torch.save(payload, partial)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas.results"):
        trained, _ = final_train(arch, data, run, seed=3, partial=partial)
    assert not any(r.getMessage().startswith("resuming") for r in caplog.records)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING], trained, straight, partial


def _damaged_rng(what):
    def damage(payload):
        rng = payload["state"]["rng"]
        if what == "generator state missing":
            del rng["generator"]
        elif what == "torch state cut short":
            rng["torch"] = rng["torch"][:100]
        elif what == "python state not a tuple":
            rng["python"] = 3
        else:
            payload["state"]["rng"] = [rng]
    return damage


@pytest.mark.parametrize("damage", ["generator state missing", "torch state cut short", "python state not a tuple",
                                    "not a dict"])
def test_a_final_trainings_partial_file_with_broken_random_states_is_ignored_with_one_warning(
        tmp_path, compose_cfg, monkeypatch, caplog, damage):
    # A file torch.load reads whole, its weights of the arch, but its random states hand-made or damaged: `fit` failed
    # putting them back (KeyError, RuntimeError from torch's set_rng_state, ...), a traceback instead of a fresh start.
    warned, trained, straight, partial = _resumed_from_damaged_state(tmp_path, compose_cfg, monkeypatch, caplog,
                                                                     _damaged_rng(damage))
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(f"{partial} is ignored and will be overwritten: it cannot be read as a final training's "
                                "resume state (its random states ")
    assert _same_weights(trained, straight)  # trained from epoch 0
    assert _partial_state(partial)[1] == 2  # whole again


def _damaged_optimizer_or_counts(what):
    def damage(payload):
        state = payload["state"]
        if what == "optimizer state empty":
            state["optimizer"] = {}
        elif what == "moments of another shape":
            state["optimizer"]["state"][0]["exp_avg"] = state["optimizer"]["state"][0]["exp_avg"].flatten()[:1]
        elif what == "step count missing":
            del state["optimizer"]["state"][0]["step"]
        elif what == "more epochs than the recipe's":  # 1 epoch of 8 steps of 30 images done, of 2
            state.update(epochs_done=3, step=24, images_seen=720)
        elif what == "steps not the epochs'":
            state["step"] = 7
        elif what == "images not the steps'":
            state["images_seen"] = 239
        else:
            state["epochs_done"] = "1"
    return damage


@pytest.mark.parametrize("damage, reason", [
    ("optimizer state empty", "its optimizer state is damaged: KeyError"),
    ("moments of another shape", "its optimizer state is damaged: its moments are not of the weights' shapes"),
    ("step count missing", "its optimizer state is damaged: KeyError"),
    ("epochs a string", "its counts are damaged"),
    # numbers, but not where this training stands after an epoch: fit's own ValueError, deep in a traceback
    ("more epochs than the recipe's", "its counts are damaged: 3 epochs done of 2"),
    ("steps not the epochs'", "its counts are damaged: 7 steps done in 1 epoch of 8 steps"),
    ("images not the steps'", "its counts are damaged: 239 images seen in 8 steps of 30 images")])
def test_a_final_trainings_partial_file_with_a_broken_optimizer_state_or_counts_is_ignored_with_one_warning(
        tmp_path, compose_cfg, monkeypatch, caplog, damage, reason):
    # As broken random states: AdamW's load_state_dict or its fused step, or fit's own arithmetic, failed deep in fit.
    warned, trained, straight, partial = _resumed_from_damaged_state(tmp_path, compose_cfg, monkeypatch, caplog,
                                                                     _damaged_optimizer_or_counts(damage))
    assert warned == [f"{partial} is ignored and will be overwritten: it cannot be read as a final training's resume "
                      f"state ({reason})"]
    assert _same_weights(trained, straight)  # trained from epoch 0
    assert _partial_state(partial)[1] == 2  # whole again


def test_a_member_stopped_during_its_final_training_resumes_on_the_rerun_and_its_partial_file_goes_with_it(
        tmp_path, compose_cfg, monkeypatch, caplog):
    import logging

    import nas.results as results_mod
    from nas.checkpoint import load_checkpoint

    arch, data, run = _final_training(compose_cfg)
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")
    folder = tmp_path / "checkpoints" / arch.arch_id
    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        results_mod.materialize_member(tmp_path, record, data, run)
    assert sorted(p.name for p in folder.iterdir()) == [results_mod.PARTIAL_FILE]  # epoch 1 kept, nothing else
    with caplog.at_level(logging.INFO, logger="nas.results"):
        metrics, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert f"resuming final training of {arch.arch_id} at epoch 1/2" in [r.getMessage() for r in caplog.records]
    assert not (folder / results_mod.PARTIAL_FILE).exists()  # gone once model.pt is written
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "metrics.json", "model.pt", "test_predictions.csv"]
    straight, _ = results_mod.final_train(arch, data, run, seed=results_mod.train_seed(arch, search_seed=run.search.seed))
    assert _same_weights(load_checkpoint(folder), straight) and metrics["final_train"]["epochs"] == 2


def test_a_run_that_leaves_a_members_partial_file_says_so_in_one_line_naming_it(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # A member stopped in its final training, then made by a final_train=none run: its partial file (three times the
    # size of model.pt) stayed in its folder with nothing in the log to say what it was or that it could go.
    import copy
    import logging

    import nas.results as results_mod
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model

    arch, data, run = _final_training(compose_cfg)
    none = copy.deepcopy(run)
    none.final_train.epochs = 0  # final_train=none
    save_checkpoint(tmp_path / "trials" / f"{arch.arch_id}.pt", build_model(arch), arch, meta={"seed": 0})
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")
    folder = tmp_path / "checkpoints" / arch.arch_id
    partial = folder / results_mod.PARTIAL_FILE
    left = (f"Pareto member {arch.arch_id}: {partial} is left as it is, the state of a final training stopped before "
            "it ended, which this run does not go on from (it trains the member no further); a run that final-trains "
            "the member with that training's recipe goes on from it, and deleting it is safe (that training then "
            "starts from epoch 0)")

    def said(run):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nas.results"):
            results_mod.materialize_member(tmp_path, record, data, run)
        return [r.getMessage() for r in caplog.records]

    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        results_mod.materialize_member(tmp_path, record, data, run)
    before = partial.read_bytes()
    assert said(none).count(left) == 1
    assert partial.read_bytes() == before  # left as it was, for the run below
    messages = said(run)
    assert f"resuming final training of {arch.arch_id} at epoch 1/2" in messages and left not in messages
    assert not partial.exists()
    assert left not in said(none)  # no file, no line


def test_a_partial_file_of_the_recipe_a_members_model_pt_has_is_deleted_by_the_rerun_with_one_line(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # Killed after the member's metrics.json was written but before its partial file was deleted: the file (of the
    # recipe model.pt already has) stayed, no rerun went on from it, and each rerun's line said one would.
    import copy
    import logging
    from pathlib import Path

    import nas.results as results_mod

    arch, data, run = _final_training(compose_cfg)
    record = TrialRecord(number=0, state="COMPLETE", arch=arch, val_acc=0.5, latency_ms=0.1, params=1, macs=1,
                         feasible=True, duration_s=1.0, fail_reason="")
    folder = tmp_path / "checkpoints" / arch.arch_id
    partial = folder / results_mod.PARTIAL_FILE
    unlink = Path.unlink

    def killed_before_deleting_it(self, *args, **kwargs):
        if self == partial:
            raise KeyboardInterrupt  # as kill -9 between the member's files and the file's deletion
        return unlink(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", killed_before_deleting_it)
        with pytest.raises(KeyboardInterrupt):
            results_mod.materialize_member(tmp_path, record, data, run)
    assert (folder / "metrics.json").is_file() and _partial_state(partial)[1] == 2  # the finished training's state

    def said(run):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nas.results"):
            results_mod.materialize_member(tmp_path, record, data, run)
        return [r.getMessage() for r in caplog.records if "partial" in r.getMessage()]

    deleted = (f"Pareto member {arch.arch_id}: {partial} is deleted, the state of a final training with the recipe its "
               "model.pt already has (left by a run stopped after writing the member's files)")
    faster = copy.deepcopy(run)
    faster.final_train.threads = 2  # a speed setting: the same recipe
    assert said(faster) == [deleted]
    assert not partial.exists() and (folder / "model.pt").is_file()
    # a partial file of another recipe (3 epochs) beside a model.pt of this one is left, for a run of that recipe
    longer = copy.deepcopy(run)
    longer.final_train.epochs = 3
    _stopped_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        results_mod.materialize_member(tmp_path, record, data, longer)
    assert _partial_state(partial)[0]["recipe"]["epochs"] == 3
    (left,) = said(run)
    assert left.startswith(f"Pareto member {arch.arch_id}: {partial} is left as it is") and partial.is_file()


@pytest.mark.parametrize("refusal", ["full disk", "full quota"])
def test_a_final_training_whose_partial_file_cannot_be_written_goes_on_with_one_warning(
        tmp_path, compose_cfg, monkeypatch, caplog, refusal):
    # A full disk (or a quota) refused the epoch's resume state: the OSError stopped the training, losing the epoch
    # just trained and those to come, for a file three times the size of the model.pt the training writes. On a full
    # quota torch.save raises a RuntimeError of its own (no errno) while statvfs still shows space: that stopped it too.
    import errno
    import logging
    import os

    import torch

    from nas.results import PARTIAL_FILE, final_train

    arch, data, run = _final_training(compose_cfg)
    partial = tmp_path / PARTIAL_FILE
    straight, _ = final_train(arch, data, run, seed=3)
    save, write, refused = torch.save, os.write, []

    def disk_full_once(obj, f, *args, **kwargs):  # the first epoch's file does not fit; space is freed before the next
        if not refused:
            refused.append(f)
            if refusal == "full disk":
                raise OSError(errno.ENOSPC, "No space left on device", str(f))
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
        refused.append(f)  # the quota freed
        save(obj, f, *args, **kwargs)

    def over_quota(fd, data):  # a write into the member's folder while the quota is full
        if len(refused) == 1 and os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return write(fd, data)

    monkeypatch.setattr(torch, "save", disk_full_once)
    monkeypatch.setattr(os, "write", over_quota)
    with caplog.at_level(logging.INFO, logger="nas.results"):
        trained, _ = final_train(arch, data, run, seed=3, partial=partial)
    assert _same_weights(trained, straight)  # trained to its end
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    why = "No space left on device" if refusal == "full disk" else "Disk quota exceeded"
    assert warned == [f"could not write {partial} ({why}): the final training goes on, but a stop "
                      "before it ends goes on from the last epoch saved there (if any), not from epoch 1"]
    assert _partial_state(partial)[1] == 2  # the next epoch's file was written
    assert [p.name for p in tmp_path.iterdir()] == [PARTIAL_FILE]  # no temporary file left


def test_a_member_another_process_is_final_training_is_waited_for_and_then_found_up_to_date_not_trained_again(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # Two processes reaching one member's final training at once both trained it, for minutes, through the same
    # final_train.partial.pt, the later one's files replacing the earlier one's.
    import logging
    import threading
    import time

    import nas.results as results_mod
    from nas.checkpoint import member_lock

    member = _member_final_trained(tmp_path, compose_cfg, monkeypatch)
    trained: list[int] = []

    def counted_final_train(*args, **kwargs):
        trained.append(threading.get_ident())
        return member.final_train(*args, **kwargs)

    monkeypatch.setattr(results_mod, "final_train", counted_final_train)
    held, release, made = threading.Event(), threading.Event(), []

    def first() -> None:  # the process that got there first: it holds the member's lock, then trains it
        with member_lock(member.folder, doing="making its files"):
            held.set()
            release.wait(10)
            made.append(member.materialize("final_train.epochs=3"))

    holder = threading.Thread(target=first, daemon=True)
    holder.start()
    assert held.wait(10)
    caplog.set_level(logging.INFO, logger="nas.checkpoint")
    second: list = []
    waiter = threading.Thread(target=lambda: second.append(member.materialize("final_train.epochs=3")), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 10
    while not caplog.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiter.is_alive() and not trained  # waiting, not training
    assert "making its files since" in caplog.messages[0]
    release.set()
    holder.join(10)
    waiter.join(10)
    assert trained == [holder.ident]  # once, by the first
    # the second found the first's files up to date: the same weights' record
    assert second[0][0]["final_train"] == made[0][0]["final_train"] and second[0][0]["final_train"]["epochs"] == 3
    assert second[0][0]["test_acc"] == made[0][0]["test_acc"]


def test_a_members_host_timing_records_which_model_onnx_it_timed_by_its_sha256(tmp_path, compose_cfg, monkeypatch):
    # The compressed table times model.onnx again in OpenVINO fp32 (another session): the report could not tell that
    # the front table's 'measured on host' was of the same file. metrics.json now names it by its SHA-256, with the
    # runtime, precision and threads, and a rerun that times nothing keeps the record.
    import hashlib

    import nas.results as results_mod
    from nas.config import load_hw_profile

    arch, data, run, record = _one_member(tmp_path, compose_cfg, hw="cpu")
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: (0.25, 0.1))
    metrics, _ = results_mod.materialize_member(tmp_path, record, data, run)
    onnx = tmp_path / "checkpoints" / arch.arch_id / "model.onnx"
    assert metrics["measured_latency_file"] == {
        "file": "model.onnx", "sha256": hashlib.sha256(onnx.read_bytes()).hexdigest(), "runtime": run.hw.runtime,
        "precision": "fp32", "threads": run.hw.threads}
    monkeypatch.setattr(results_mod, "_measure_member", lambda *a: pytest.fail("timed again"))
    kept, _ = results_mod.materialize_member(tmp_path, record, data, run)
    assert kept["measured_latency_file"] == metrics["measured_latency_file"]
    # an int8 profile times an export made for the timing, not model.onnx: no file to relate
    assert results_mod.timed_file_record(onnx, load_hw_profile("cpu_int8")) is None


def test_pareto_csv_is_renamed_into_place_before_pareto_json_and_a_kill_between_them_is_repaired(tmp_path, monkeypatch):
    # pareto.json and pareto.csv were written one after the other, JSON first: a reader between them found the old CSV
    # next to the new pareto.json. Both are made first now, then renamed CSV first and pareto.json last: once the new
    # pareto.json is there, the CSV beside it is of it too.
    import os

    import nas.checkpoint as checkpoint_mod
    from nas.checkpoint import remove_dead_writers_temps
    from nas.results import replace_pareto_files

    def member(arch_id):
        return {"number": 1, "arch_id": arch_id, "val_acc": 0.9, "latency_ms": 0.3, "checkpoint": f"checkpoints/{arch_id}"}

    def csv_ids():
        with open(tmp_path / "pareto.csv", newline="") as f:
            return [row["arch_id"] for row in csv.DictReader(f)]

    def json_ids():
        return [m["arch_id"] for m in json.loads((tmp_path / "pareto.json").read_text())["members"]]

    old = {"hw": "cpu", "hw_precision": "fp32", "members": [member("aaaa000001")]}
    replace_pareto_files(tmp_path, pareto=old)
    assert csv_ids() == json_ids() == ["aaaa000001"]
    real, renamed = os.replace, []

    def recorded(src, dst):
        renamed.append(os.path.basename(dst))
        return real(src, dst)

    new = {**old, "members": [member("aaaa000001"), member("bbbb000002")]}
    monkeypatch.setattr(checkpoint_mod.os, "replace", recorded)
    replace_pareto_files(tmp_path, pareto=new)
    assert renamed == ["pareto.csv", "pareto.json"]
    assert csv_ids() == json_ids() == ["aaaa000001", "bbbb000002"]

    # Killed between the two renames (the second rename never happens; the process gone, its temporary folder stays):
    # the new CSV lies beside the old pareto.json, which the report reads; its rewrite of the CSV from pareto.json
    # (`python -m nas.report <run folder>`) puts the pair back in agreement, and the next search clears the folder.
    class Killed(BaseException):
        pass

    def killed_at_json(src, dst):
        if os.path.basename(dst) == "pareto.json":
            raise Killed
        return real(src, dst)

    monkeypatch.setattr(checkpoint_mod.os, "replace", killed_at_json)
    monkeypatch.setattr(checkpoint_mod.shutil, "rmtree", lambda *a, **k: None)  # a kill runs no cleanup
    with pytest.raises(Killed):
        replace_pareto_files(tmp_path, pareto={**old, "members": [member("cccc000003")]})
    monkeypatch.undo()
    assert (csv_ids(), json_ids()) == (["cccc000003"], ["aaaa000001", "bbbb000002"])
    assert write_pareto_csv(tmp_path)  # what `python -m nas.report <run folder>` does
    assert csv_ids() == json_ids() == ["aaaa000001", "bbbb000002"]
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".pareto.json.")]
    monkeypatch.setattr(checkpoint_mod, "process_gone", lambda pid: True)  # its writer gone, as after a kill
    assert remove_dead_writers_temps(tmp_path) == [left]


def test_the_compress_run_named_for_a_stale_compression_reaches_hydra_with_a_folder_of_spaces_and_accents(
        tmp_path, caplog):
    # The command was built with shlex.join: checkpoint=/my runs é/... as one shell word, which Hydra's override parser
    # refused (the space, the 'é'); quoted as the other hints quote a path, it reaches Hydra as the folder's path.
    import logging
    import shlex

    import nas.results as results_mod

    folder = tmp_path / "my runs é" / "checkpoints" / "m"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"new weights")
    (folder / "model_int8.onnx").write_bytes(b"int8")
    (folder / "compressed_metrics.json").write_text(json.dumps({"hw": "cpu", "weights_sha256": "0" * 64}))
    run = SimpleNamespace(hw=SimpleNamespace(name="cpu"))
    with caplog.at_level(logging.INFO, logger="nas.results"):
        results_mod._retire_stale_compression(folder, run, retired=tmp_path / "retired", replaced=False, before=None)
    said = [r.getMessage() for r in caplog.records if "compress.run" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith(")")
    command = shlex.split(said[0].rsplit("(a search with compress, or ", 1)[1][:-1])
    assert command == ["python", "-m", "compress.run", f"checkpoint='{folder}'", "hw=cpu"]
    assert sorted(p.name for p in (tmp_path / "retired" / "m").iterdir()) == ["compressed_metrics.json", "model_int8.onnx"]
