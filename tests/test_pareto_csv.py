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
