import csv
import json

from nas.pareto_csv import write_pareto_csv


def test_pareto_csv_names_the_chip_and_number_format_of_each_predicted_latency(tmp_path):
    # pareto.csv gave latency_ms and int8_latency_ms with no word of what they are: on hw=cpu (fp32) int8_latency_ms is
    # the int8 file's architecture at float speed, not an int8 time, and latency_ms named no chip at all. A user who
    # opens the CSV alone now reads both from its columns, as pareto.json and compressed_metrics.json record them.
    member = {"number": 1, "arch_id": "aaaa000001", "val_acc": 0.9, "test_acc": 0.9, "latency_ms": 0.368,
              "measured_latency_ms": 0.647, "checkpoint": "checkpoints/aaaa000001"}
    run_dir = tmp_path / "run"
    (run_dir / member["checkpoint"]).mkdir(parents=True)
    pareto = {"hw": "cpu", "hw_precision": "fp32", "members": [member]}
    (run_dir / "pareto.json").write_text(json.dumps(pareto))
    (run_dir / member["checkpoint"] / "compressed_metrics.json").write_text(json.dumps({
        "hw": "cpu", "hw_precision": "fp32", "fp32": {"macs": 100}, "pruned": {"pruned": True, "macs": 70},
        "int8": {"params": 700, "latency_ms": 0.262, "test_acc": 0.85, "file": "model_int8.onnx"}}))
    write_pareto_csv(run_dir)
    with open(run_dir / "pareto.csv", newline="") as f:
        header = next(csv.reader(f))
        f.seek(0)
        (row,) = list(csv.DictReader(f))
    assert header[header.index("latency_ms"):header.index("latency_ms") + 4] == [
        "latency_ms", "hw", "hw_precision", "measured_latency_ms"]
    assert header[header.index("int8_latency_ms"):header.index("int8_latency_ms") + 3] == [
        "int8_latency_ms", "int8_hw", "int8_hw_precision"]
    assert (row["latency_ms"], row["hw"], row["hw_precision"]) == ("0.368", "cpu", "fp32")
    assert (row["int8_latency_ms"], row["int8_hw"], row["int8_hw_precision"]) == ("0.262", "cpu", "fp32")
    # Written by the search with pareto.json in hand it is the same file; a pareto.json from before hw_precision (or a
    # compression from before its hw_precision) leaves those cells empty.
    text = (run_dir / "pareto.csv").read_text()
    write_pareto_csv(run_dir, members=[member], header=pareto)
    assert (run_dir / "pareto.csv").read_text() == text
    (run_dir / "pareto.json").write_text(json.dumps({"hw": "edge_npu", "members": [member]}))
    write_pareto_csv(run_dir)
    with open(run_dir / "pareto.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["hw"], row["hw_precision"], row["int8_hw_precision"]) == ("edge_npu", "", "fp32")


def test_pareto_csv_marks_an_int8_file_gone_from_its_members_folder_as_missing_as_the_report_does(tmp_path):
    # A member's model_int8.onnx deleted by hand: the report's compressed table said "model_int8.onnx (missing)", while
    # pareto.csv's int8_file still named it as the member's file. Its other int8 columns (the compression's record)
    # stay as they are.
    member = {"number": 1, "arch_id": "aaaa000001", "latency_ms": 0.3, "checkpoint": "checkpoints/aaaa000001"}
    run_dir = tmp_path / "run"
    folder = run_dir / member["checkpoint"]
    folder.mkdir(parents=True)
    (run_dir / "pareto.json").write_text(json.dumps({"hw": "edge_npu", "members": [member]}))
    files = {"int8_onnx": "model_int8.onnx", "int8_xml": "model_int8.xml", "int8_bin": "model_int8.bin"}
    (folder / "compressed_metrics.json").write_text(json.dumps({
        "hw": "edge_npu", "files": files, "fp32": {"macs": 100}, "pruned": {"pruned": False},
        "int8": {"params": 700, "latency_ms": 0.2, "test_acc": 0.85, "file": "model_int8.onnx", "size_bytes": 1}}))
    for name in files.values():
        (folder / name).write_bytes(b"x")

    def row():
        with open(run_dir / "pareto.csv", newline="") as f:
            (only,) = list(csv.DictReader(f))
        return only

    assert write_pareto_csv(run_dir)
    assert row()["int8_file"] == "checkpoints/aaaa000001/model_int8.onnx"
    kept = row()
    (folder / "model_int8.onnx").unlink()
    assert write_pareto_csv(run_dir)  # the content changed: written again
    assert row()["int8_file"] == "checkpoints/aaaa000001/model_int8.onnx (missing)"
    assert {k: v for k, v in row().items() if k != "int8_file"} == {k: v for k, v in kept.items() if k != "int8_file"}
    # the IR gone (not the file int8_file names) leaves the cell as it was; the file made again unmarks it
    (folder / "model_int8.onnx").write_bytes(b"x")
    (folder / "model_int8.xml").unlink()
    assert write_pareto_csv(run_dir)
    assert row() == kept


def test_pareto_csv_gives_the_int8_files_size_and_the_test_images_its_accuracy_is_of_with_the_float_models_on_them(
        tmp_path):
    # A compress=smoke run's pareto.csv: test_acc 0.4364 (all 10,000 test images), int8_test_acc 0.42 (compress.eval_images'
    # 1,000 of them): subtracted, -1.64 pt, where model.onnx on the same 1,000 images scored 0.425 (-0.50 pt). Nor did
    # the CSV give the int8 file's size. It now gives both, from compressed_metrics.json.
    member = {"number": 3, "arch_id": "fed491d9a5", "test_acc": 0.4364, "latency_ms": 2.52,
              "checkpoint": "checkpoints/fed491d9a5"}
    run_dir = tmp_path / "run"
    folder = run_dir / member["checkpoint"]
    folder.mkdir(parents=True)
    (run_dir / "pareto.json").write_text(json.dumps({"hw": "edge_npu", "members": [member]}))
    compressed = {  # the fields of the run's compressed_metrics.json read here
        "hw": "edge_npu", "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000},
        "fp32": {"macs": 5495456, "test_acc": 0.425, "file": "model.onnx"},
        "pruned": {"pruned": True, "macs": 3010464, "test_acc": 0.42, "file": "model_pruned.onnx"},
        "int8": {"params": 71226, "latency_ms": 2.467, "test_acc": 0.42, "file": "model_int8.onnx",
                 "size_bytes": 100403},
        "summary": {"test_acc_fp32": 0.425, "test_acc_int8": 0.42}}
    (folder / "compressed_metrics.json").write_text(json.dumps(compressed))

    def row():
        write_pareto_csv(run_dir)
        with open(run_dir / "pareto.csv", newline="") as f:
            (only,) = list(csv.DictReader(f))
        return {k: only[k] for k in ("int8_test_acc", "int8_size_bytes", "int8_test_images", "int8_fp32_test_acc",
                                     "int8_pruned_test_acc")}

    assert row() == {"int8_test_acc": "0.42", "int8_size_bytes": "100403", "int8_test_images": "1000",
                     "int8_fp32_test_acc": "0.425", "int8_pruned_test_acc": "0.42"}
    # not pruned: no pruned accuracy; a file that records no size (edited by hand): the file's own on disk
    compressed["pruned"] = {"pruned": False}
    del compressed["int8"]["size_bytes"]
    (folder / "compressed_metrics.json").write_text(json.dumps(compressed))
    (folder / "model_int8.onnx").write_bytes(b"x" * 321)
    assert row() == {"int8_test_acc": "0.42", "int8_size_bytes": "321", "int8_test_images": "1000",
                     "int8_fp32_test_acc": "0.425", "int8_pruned_test_acc": ""}
    # a compression from before eval_images was recorded: no count is made up
    del compressed["eval_images"]
    (folder / "compressed_metrics.json").write_text(json.dumps(compressed))
    assert row()["int8_test_images"] == ""


def test_pareto_csv_gives_each_members_model_onnx_size_as_the_reports_front_table_does(tmp_path):
    # report.md's front table gave model.onnx's size (KiB), the float file to budget flash by, for every member; pareto.csv
    # gave only the int8 file's size, of compressed members. It gives model.onnx's too, in bytes, empty where it is gone.
    members = [{"number": n, "arch_id": a, "latency_ms": 0.1 * n, "checkpoint": f"checkpoints/{a}"}
               for n, a in ((1, "aaaa000001"), (2, "bbbb000002"))]
    run_dir = tmp_path / "run"
    for m in members:
        (run_dir / m["checkpoint"]).mkdir(parents=True)
    (run_dir / "pareto.json").write_text(json.dumps({"hw": "edge_npu", "members": members}))
    (run_dir / "checkpoints" / "aaaa000001" / "model.onnx").write_bytes(b"\0" * 4321)

    def sizes():
        with open(run_dir / "pareto.csv", newline="") as f:
            return {r["arch_id"]: r["onnx_size_bytes"] for r in csv.DictReader(f)}

    assert write_pareto_csv(run_dir)
    assert sizes() == {"aaaa000001": "4321", "bbbb000002": ""}
    # written again once the file changes on disk (the report rewrites the CSV where the folder's files give another)
    (run_dir / "checkpoints" / "aaaa000001" / "model.onnx").unlink()
    (run_dir / "checkpoints" / "bbbb000002" / "model.onnx").write_bytes(b"\0" * 7)
    assert write_pareto_csv(run_dir)
    assert sizes() == {"aaaa000001": "", "bbbb000002": "7"}
    assert not write_pareto_csv(run_dir)
