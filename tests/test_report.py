"""Tests of nas.report on synthetic run folders (no search, no torch: the report only reads files)."""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import os
import pathlib
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

import nas.report
from nas.report import REPORT_FILES, MissingRunFileError, ReportInputError, main, read_pareto_json, write_reports

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["number", "state", "arch_id", "val_acc", "latency_ms", "params", "macs", "feasible", "is_pareto",
           "duration_s", "norm", "act", "n_stages", "mixers", "summary", "fail_reason", "arch_json"]
FAST, SLOW, GONE = "aaaa000001", "bbbb000002", "cccc000003"  # GONE: checkpoint folder missing


def _refused(args: list[str]) -> int | str | None:
    """The exit code of `main(args)`'s refusal of bad input: SystemExit, as every command's main refuses (`None` from a
    main that returned instead fails the test)."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    return exited.value.code


def _trial(number: int, state: str, arch_id: str, val_acc: str, latency: str, mixers: str, *,
           feasible: bool = True, pareto: bool = False, fail_reason: str = "") -> dict[str, str]:
    return {"number": str(number), "state": state, "arch_id": arch_id, "val_acc": val_acc,
            "latency_ms": latency, "params": "120000", "macs": "5000000", "feasible": str(feasible),
            "is_pareto": str(pareto), "duration_s": "12.5", "norm": "bn", "act": "relu",
            "n_stages": str(len(mixers.split("-"))), "mixers": mixers,
            "summary": f"bn/relu {mixers} | <b>&", "fail_reason": fail_reason,
            "arch_json": json.dumps({"mixers": mixers.split("-")})}


def _member(number: int, arch_id: str, acc: float, test: float | None, latency: float,
            mixers: list[str]) -> dict[str, Any]:
    return {"number": number, "arch_id": arch_id, "val_acc": acc, "test_acc": test, "test_acc_onnx": test,
            "latency_ms": latency, "params": 147786, "macs": 6197056,
            "summary": f"bn/relu {'-'.join(mixers)} | x", "mixers": mixers, "checkpoint": f"checkpoints/{arch_id}"}


def _metrics(arch_id: str, n_stages: int) -> dict[str, Any]:
    by_stage = {"overhead": 0.05, "stem": 0.005, **{f"stage{i}": 0.06 + 0.02 * i for i in range(n_stages)},
                "head": 0.015}
    ops = [{"name": "stem.conv", "kind": "conv", "stage": -1, "ms": 0.004, "bound": "compute"},
           {"name": "stage0.mixer.dw", "kind": "dwconv", "stage": 0, "ms": 0.03, "bound": "memory"},
           {"name": "stage0.norm", "kind": "bn", "stage": 0, "ms": 0.0, "bound": "fused"}]
    return {"arch_id": arch_id, "val_acc": 0.89, "test_acc": 0.88, "latency_ms": sum(by_stage.values()),
            "params": 1, "macs": 1, "latency_by_stage": by_stage, "latency_breakdown": ops}


def _write_run(run_dir: pathlib.Path, trials: list[dict[str, str]], members: list[dict[str, Any]],
               *, budget: float | None = 0.5) -> pathlib.Path:
    """Write the files a search run leaves behind: trials.csv, pareto.json, checkpoints/*/metrics.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "trials.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(trials)
    header = {"study_name": "metaformer_t-edge_npu-fashion_mnist", "hw": "edge_npu",
              "hw_description": "toy NPU <int8>", "latency_predictor": "roofline from the datasheet numbers",
              "space": "metaformer_t", "dataset": "fashion_mnist",
              "latency_budget_ms": budget, "n_trials_finished": len(trials), "created": "2026-11-22T10:00:00",
              "members": members}
    (run_dir / "pareto.json").write_text(json.dumps(header), encoding="utf-8")
    return run_dir


@pytest.fixture()
def run_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    trials = [
        _trial(0, "COMPLETE", FAST, "0.85", "0.30", "sepconv-conv", pareto=True),
        _trial(1, "COMPLETE", SLOW, "0.90", "0.45", "sepconv-conv-attn", pareto=True),
        _trial(2, "COMPLETE", GONE, "0.91", "0.60", "conv-conv-attn", feasible=False, pareto=True),
        _trial(3, "COMPLETE", "dddd000004", "0.80", "0.40", "pool-pool-conv"),
        _trial(4, "PRUNED", "eeee000005", "", "0.20", "identity-pool"),
        _trial(5, "FAIL", "ffff000006", "", "", "attn-attn", fail_reason="out of memory"),
    ]
    # Out of latency order on purpose: the report must sort the front itself.
    members = [_member(2, GONE, 0.91, 0.905, 0.60, ["conv", "conv", "attn"]),
               _member(0, FAST, 0.85, None, 0.30, ["sepconv", "conv"]),
               _member(1, SLOW, 0.90, 0.89, 0.45, ["sepconv", "conv", "attn"])]
    folder = _write_run(tmp_path / "run", trials, members)
    for arch_id, n_stages in ((FAST, 2), (SLOW, 3)):
        (folder / "checkpoints" / arch_id).mkdir(parents=True)
        metrics = _metrics(arch_id, n_stages)
        if arch_id == SLOW:  # FAST's metrics.json is from before per-class accuracies
            metrics["test_acc_per_class"] = {"Bag": 0.97, "Shirt": 0.611, "Coat": 0.8, "Sandal": None}
        (folder / "checkpoints" / arch_id / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture()
def written(run_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    return write_reports(run_dir)


def _markdown(run_dir: pathlib.Path) -> str:
    """The report.md `write_reports(run_dir)` writes, rendered without drawing the PNGs (most of a report's cost), for
    the tests that read only the markdown; test_writes_all_files_non_empty_and_atomically and others check the files."""
    return nas.report.render._render_markdown(nas.report.files._load_run(run_dir))


def test_writes_all_files_non_empty_and_atomically(run_dir: pathlib.Path,
                                                   written: dict[str, pathlib.Path]) -> None:
    assert set(written) == set(REPORT_FILES)
    for name, path in written.items():
        assert path == run_dir / name
        assert path.stat().st_size > 0, name
    for name in ("pareto.png", "latency_breakdown.png", "mixers.png"):
        assert written[name].read_bytes().startswith(PNG_MAGIC), name
    assert not list(run_dir.glob("*.tmp")), "temporary files must be renamed away"


def test_html_is_self_contained_with_one_plotly_bundle(written: dict[str, pathlib.Path]) -> None:
    page = written["report.html"].read_text(encoding="utf-8")
    assert "<script src=" not in page
    assert not re.search(r"<script[^>]+src=[\"']?https?://", page)
    assert len(re.findall(r"plotly\.js v\d", page)) == 1, "plotly.js must be inlined exactly once"
    # Pareto scatter + by-stage + by-kind charts.
    assert page.count('class="plotly-graph-div"') == 3
    assert page.count("Plotly.newPlot") >= 3


def test_html_content(written: dict[str, pathlib.Path]) -> None:
    page = written["report.html"].read_text(encoding="utf-8")
    for arch_id in (FAST, SLOW, GONE):
        assert arch_id in page
    assert "metaformer_t-edge_npu-fashion_mnist" in page
    assert "toy NPU &lt;int8&gt;" in page and "<int8>" not in page  # header text is escaped
    assert "<b>&" not in page  # so is the free-form summary in the hover text
    # The front is the search's proxy accuracy (an int8 star of a final-trained member may sit above it): said so.
    assert "Pareto front (proxy val acc, as searched)" in page
    assert "6 trials: 4 COMPLETE, 1 PRUNED, 1 FAIL" in page
    assert f"{GONE} (checkpoint folder missing)" in page
    assert '<a href="checkpoints/aaaa000001">' in page
    assert "attn</td>" in page  # mixer table cells
    # Front table rows are sorted by latency although pareto.json listed them out of order.
    table = page[page.index("<h2>Front members</h2>"):]
    assert table.index(FAST) < table.index(SLOW) < table.index(GONE)
    assert "–" in table  # FAST has no test accuracy


def test_markdown_has_front_table_and_image_links(written: dict[str, pathlib.Path]) -> None:
    md = written["report.md"].read_text(encoding="utf-8")
    for image in ("pareto.png", "latency_breakdown.png", "mixers.png"):
        assert f"]({image})" in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == [f"`{FAST}`", f"`{SLOW}`", f"`{GONE}`"]
    fast_row = rows[0]
    assert "| – |" in fast_row  # null test accuracy
    assert "[checkpoints/aaaa000001](checkpoints/aaaa000001)" in fast_row
    assert rows[2].rstrip().endswith("| missing |")
    assert "\\|" in fast_row  # the '|' inside the summary does not break the table
    assert rows[1].count("| Shirt 61.10% |") == 1 and "| – |" in rows[0]  # weakest class, and none recorded for FAST
    assert "**Latency budget:** 0.5 ms" in md
    assert "toy NPU &lt;int8>" in md
    assert "**Latency predictor:** roofline from the datasheet numbers" in md


def test_free_text_with_markup_characters_shows_as_written_in_both_reports(run_dir: pathlib.Path) -> None:
    # report.md escaped '<' in its header facts and warnings only: in the smoke line, the notes under the tables and the
    # compressed table a '<arch_id>' or 'hw=<name>' was raw HTML and vanished once rendered, and '&lt;' showed as '<'.
    # Rendered as Markdown, each text now reads as report.html shows it.
    markdown_it = pytest.importorskip("markdown_it")
    weird = "<arch_id> & hw=<name> &lt; <!-- c --> <1@c.d> p < 0.05"
    header = json.loads((run_dir / "pareto.json").read_text())
    header |= {"smoke_settings": [weird], "setup_warnings": [f"warning {weird}"], "members_missing": [weird]}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(json.dumps({"error": f"error {weird}"}))
    shown = html.escape(weird, quote=False)
    page = nas.report.render._render_html(nas.report.files._load_run(run_dir))
    md = _markdown(run_dir)
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    for where in (rendered, page):
        assert f"{shown}=smoke" in where  # the smoke line
        assert f"<li>warning {shown}</li>" in where  # a warning
        assert f"Not in this table, though on the Pareto front (trials.csv, is_pareto): {shown}." in where  # a note
        assert f"<td>error {shown}</td>" in where  # a compressed table cell
    assert "p < 0.05" in md  # a '<' that opens nothing is left as typed in the file


def test_compressed_table_names_the_weakest_class_and_the_largest_class_drop() -> None:
    from nas.report.compressed import _compressed_rows

    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.9, "test_acc_per_class": {"Shirt": 0.70, "Bag": 0.95}},
        "pruned": {"pruned": False},
        "int8": {"test_acc": 0.89, "test_acc_per_class": {"Shirt": 0.66, "Bag": 0.96}, "qat_epochs": 0}})
    fp32, pruned, int8 = (row[-1] for row in _compressed_rows([member]))
    assert fp32 == "weakest class Shirt 70.00%" and pruned.startswith("not pruned")
    assert int8.endswith("largest class drop vs the file before: Shirt -4.00 pt; weakest class Shirt 66.00%")
    # No class lost accuracy (equal, or better): said so, not as a "drop" of +0.00 or +1.00 pt.
    for after in ({"Shirt": 0.70, "Bag": 0.95}, {"Shirt": 0.71, "Bag": 0.95}):
        member.compressed["int8"]["test_acc_per_class"] = after
        int8 = [row[-1] for row in _compressed_rows([member])][2]
        assert "no class dropped vs the file before; weakest class Shirt" in int8 and "largest class drop" not in int8


def test_the_largest_class_drop_names_every_class_tied_at_it() -> None:
    """Two classes that lost 4 points each must not read as one ('Shirt -4.00 pt' hid Bag's equal drop); float
    subtraction leaves 0.70-0.66 and 0.95-0.91 apart by 1e-16, so ties are judged as printed."""
    from nas.report.compressed import _compressed_rows

    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.9, "test_acc_per_class": {"Shirt": 0.70, "Bag": 0.95, "Coat": 0.80}},
        "pruned": {"pruned": False},
        "int8": {"test_acc": 0.89, "test_acc_per_class": {"Shirt": 0.66, "Bag": 0.91, "Coat": 0.79}, "qat_epochs": 0}})
    int8 = _compressed_rows([member])[2][-1]
    assert "largest class drop vs the file before: Shirt, Bag -4.00 pt;" in int8
    member.compressed["int8"]["test_acc_per_class"] = {"Shirt": 0.70 - 1e-12, "Bag": 0.95, "Coat": 0.80}
    assert "no class dropped vs the file before" in _compressed_rows([member])[2][-1]  # not a drop of '-0.00 pt'


def test_a_member_compressed_for_another_chip_says_so_and_stays_off_the_runs_plot() -> None:
    from nas.report.compressed import _compressed_rows, _int8_points

    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "cpu", "fp32": {"test_acc": 0.9, "latency_ms": 0.368}, "pruned": {"pruned": False},
        "int8": {"test_acc": 0.89, "latency_ms": 0.161, "val_acc_file": 0.88, "qat_epochs": 0}})
    fp32, _, int8 = _compressed_rows([member], "edge_npu")  # `compress.run hw=cpu` on an edge_npu run's member
    assert fp32[3] == "0.368 (cpu)" and int8[3] == "0.161 (cpu)"
    assert fp32[-1].startswith("latencies predicted for hw=cpu (compress.run), not this run's edge_npu")
    assert _int8_points([member], "edge_npu") == [] and _int8_points([member], "cpu") == [("aaaa000001", 0.161, 0.88)]
    assert _compressed_rows([member], "cpu")[0][3] == "0.368"  # the run's own chip: nothing added
    member.compressed["int8"].update(file="model_int8.onnx", file_ir="model_int8.xml", test_acc_onnx=0.891)
    assert _compressed_rows([member], "cpu")[2][-1].startswith(  # whose accuracy the row shows: the IR's
        "test acc from model_int8.xml in OpenVINO; model_int8.onnx in onnxruntime 89.10%; QAT epochs 0")



def test_an_int8_row_says_when_int8_kernels_saturated_on_the_cpu_that_compressed_it() -> None:
    from nas.report.compressed import _compressed_rows

    def run(rel: float) -> dict[str, float]:
        return {"max_rel_diff": rel, "top1_agreement": 1.0}

    agree = {"onnx": run(0.336), "onnx_reference": run(0.015), "openvino": run(0.377), "int8_saturates": True,
             "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99}}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "cpu", "fp32": {"test_acc": 0.9, "latency_ms": 0.368}, "pruned": {"pruned": False},
        "int8": {"test_acc": 0.89, "latency_ms": 0.161, "qat_epochs": 0, "agreement": agree, "test_acc_reference": 0.8925}})
    note = ("int8 kernels saturate on the CPU that compressed it (x86 without VNNI): logits off the int8 model's by "
            "OpenVINO 38%, onnxruntime 34% (tolerance 15%); the file run operator by operator has test acc 89.25%")
    assert note in _compressed_rows([member], "cpu")[2][-1]
    # within tolerance, a VNNI CPU, a file off its model however run, or a file from before these fields: no such note
    for change in ({"onnx": run(0.02), "openvino": run(0.01)}, {"int8_saturates": False}, {"onnx_reference": run(0.3)},
                   {"int8_saturates": None}):
        member.compressed["int8"]["agreement"] = {**agree, **change}
        assert "saturate" not in _compressed_rows([member], "cpu")[2][-1], change
    del member.compressed["int8"]["agreement"]
    assert "saturate" not in _compressed_rows([member], "cpu")[2][-1]


def test_an_int8_row_says_when_runtimes_are_outside_the_tolerance_on_a_cpu_that_does_not_saturate() -> None:
    # A compress=smoke run on a VNNI CPU: onnxruntime and OpenVINO agreed with the int8 model on 98.3% and 98.4% of the
    # test images (tolerance 99%), the file run operator by operator on 99.9% but for 16 near ties. The compression's
    # log warned; the report's int8 row said nothing, though README says both say it.
    from nas.report.compressed import _compressed_rows

    def run(rel: float, top1: float, decided: float | None = None, near: int = 0) -> dict[str, Any]:
        return {"max_rel_diff": rel, "top1_agreement": top1, "near_tie_flips": near,
                **({"top1_agreement_decided": decided} if decided is not None else {})}

    agree = {"onnx": run(0.044, 0.983, 0.999, 16), "onnx_reference": run(0.044, 0.983, 0.999, 16),
             "openvino": run(0.034, 0.984, 0.999, 15), "int8_saturates": False,
             "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99}}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.425}, "pruned": {"pruned": False},
        "int8": {"test_acc": 0.42, "test_acc_reference": 0.421, "qat_epochs": 0, "agreement": agree}})
    assert ("int8 files outside the tolerance on the CPU that compressed it: the same top-1 class as the int8 model for "
            "OpenVINO 98.4%, onnxruntime 98.3% of the test images (tolerance 99%); the file itself is within it run "
            "operator by operator (4% off, 98.3% the same top-1 class, 99.9% but for 16 near ties)"
            ) in _compressed_rows([member], "edge_npu")[2][-1]
    # ... and with their flips as that run recorded them (onnxruntime's the very ones of the file run operator by
    # operator, OpenVINO's fewer): the file classifies those images so, not that CPU's kernels, as the log now says
    flips = {"onnx": (17, 16), "onnx_reference": (17, 16), "openvino": (16, 15)}
    for name, (n, near) in flips.items():
        agree[name] = {**agree[name], "top1_flips": n, "near_tie_flips": near}
    assert _compressed_rows([member], "edge_npu")[2][-1].endswith(
        "int8 files outside the tolerance: the same top-1 class as the int8 model for OpenVINO 98.4%, onnxruntime 98.3% "
        "of the test images (tolerance 99%); with no more top-1 flips, nor more that are not near ties, than the "
        "file's own operator-by-operator run (4% off, 98.3% the same top-1 class, 99.9% but for 16 near ties): the "
        "int8 kernels of the CPU that compressed it flip no more images than the file itself (which images, this file "
        "does not record)")
    # where the runtimes' flips are the very images the file's own run flips (shared_flips), the file is named, as the
    # log names it; OpenVINO's 16 on other images than the file's 17 are that CPU's kernels' doing, counts alike or not
    agree["onnx"], agree["openvino"] = agree["onnx"] | {"shared_flips": 17}, agree["openvino"] | {"shared_flips": 16}
    assert _compressed_rows([member], "edge_npu")[2][-1].endswith(
        "(tolerance 99%); as the file itself does run operator by operator (4% off, 98.3% the same top-1 class, 99.9% "
        "but for 16 near ties): the int8 file itself classifies those images otherwise than the int8 model, not the "
        "int8 kernels of the CPU that compressed it")
    agree["openvino"] = agree["openvino"] | {"shared_flips": 0}
    assert "outside the tolerance on the CPU that compressed it" in _compressed_rows([member], "edge_npu")[2][-1]
    agree["openvino"] = agree["openvino"] | {"shared_flips": 16}
    agree["openvino"] = {**agree["openvino"], "top1_agreement": 0.982, "top1_flips": 18}  # more than the file's own
    assert "outside the tolerance on the CPU that compressed it" in _compressed_rows([member], "edge_npu")[2][-1]
    agree.update(onnx=run(0.02, 1.0), openvino=run(0.01, 0.995))  # every run within it: no note
    assert "tolerance" not in _compressed_rows([member], "edge_npu")[2][-1]


def test_the_int8_rows_agreement_note_judges_top1_agreement_too_and_names_an_export_problem() -> None:
    # The compression's log judges a run of the int8 file by both parts of the tolerance (logits within 15%, the same
    # top-1 class for 99% of the images); the report looked at the logits alone. A runtime at 94.4% top-1 agreement but
    # 13% off the logits got no note, and a file that run operator by operator agreed on only 98.8% (the log: "an
    # export problem: please report it") was called "the file's own, run operator by operator (3% off)".
    from nas.report.compressed import _compressed_rows

    def run(rel: float, top1: float = 1.0) -> dict[str, float]:
        return {"max_rel_diff": rel, "top1_agreement": top1}

    agree = {"onnx": run(0.076, 0.972), "onnx_reference": run(0.004, 0.997), "openvino": run(0.128, 0.944),
             "int8_saturates": True, "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99}}
    int8 = {"test_acc": 0.19, "test_acc_source": "reference (host int8 kernels saturate)", "test_acc_reference": 0.19,
            "test_acc_openvino": 0.193, "test_acc_onnx": 0.189, "qat_epochs": 1, "agreement": agree}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, metrics={}, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.5}, "pruned": {"pruned": False}, "int8": int8})
    assert ("int8 kernels saturate on the CPU that compressed it (x86 without VNNI): the same top-1 class as the int8 "
            "model for OpenVINO 94.4%, onnxruntime 97.2% of the test images (tolerance 99%); the row's is the file's "
            "own, run operator by operator (0.4% off)") in _compressed_rows([member], "edge_npu")[2][-1]  # not "0% off": not exact
    agree.update(onnx=run(0.166, 0.953), openvino=run(0.180, 0.944), onnx_reference=run(0.034, 0.988))
    note = _compressed_rows([member], "edge_npu")[2][-1]
    assert ("int8 files outside the tolerance: logits off the int8 model's by OpenVINO 18%, onnxruntime 17% (tolerance "
            "15%) and the same top-1 class as the int8 model for OpenVINO 94.4%, onnxruntime 95.3% of the test images "
            "(tolerance 99%); the file run operator by operator too (3% off, 98.8% the same top-1 class): the exported "
            "file does not compute the int8 model its accuracies were measured on (an export problem: please report "
            "it)") in note
    assert "the row's is the file's own" not in note
    agree["int8_saturates"] = False  # an export problem whatever the CPU
    assert "an export problem" in _compressed_rows([member], "edge_npu")[2][-1]


def test_the_int8_row_says_why_qat_ran_or_not() -> None:
    # compress=smoke sets a QAT epoch; a member's row said "QAT epochs 0" and nothing on why (PTQ lost 0.20 pt of val
    # accuracy, within compress.quantize.max_acc_drop=0.3), which read as QAT skipped or broken.
    from nas.report.compressed import _compressed_rows

    int8 = {"test_acc": 0.422, "qat_epochs": 0, "fp32_val_acc": 0.435, "ptq_val_acc": 0.433, "max_acc_drop": 0.3}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.5}, "pruned": {"pruned": False}, "int8": int8})
    assert ("QAT epochs 0 (PTQ lost 0.20 pt of val accuracy vs the fp32 model, within "
            "compress.quantize.max_acc_drop=0.3)" in _compressed_rows([member], "edge_npu")[2][-1])
    int8.update(qat_epochs=1, fp32_val_acc=0.179, ptq_val_acc=0.175)
    assert ("QAT epochs 1 (PTQ lost 0.40 pt of val accuracy vs the fp32 model, over "
            "compress.quantize.max_acc_drop=0.3)" in _compressed_rows([member], "edge_npu")[2][-1])
    int8.update(ptq_val_acc=0.176)  # exactly the allowance: within, as compress.quantize judges it
    assert "PTQ lost 0.30 pt of val accuracy vs the fp32 model, within" in _compressed_rows([member], "edge_npu")[2][-1]
    int8.update(ptq_val_acc=0.17596)  # 0.304 pt: "0.30 ... over 0.3" read as a wrong verdict; decimals enough to differ
    assert "PTQ lost 0.304 pt of val accuracy vs the fp32 model, over" in _compressed_rows([member], "edge_npu")[2][-1]
    del int8["ptq_val_acc"]  # a file without the fields: as before
    assert _compressed_rows([member], "edge_npu")[2][-1].endswith("QAT epochs 1")


def test_the_int8_rows_ptq_drop_names_the_model_it_is_from() -> None:
    # A pruned member quantizes the pruned model: its int8 row said "PTQ lost 0.10 pt of val accuracy" two rows below
    # an fp32 row of val acc 50.60% and beside an int8 val acc of 16.00%, which read as the drop from model.onnx.
    from nas.report.compressed import _compressed_rows

    int8 = {"test_acc": 0.146, "qat_epochs": 0, "fp32_val_acc": 0.162, "ptq_val_acc": 0.161, "max_acc_drop": 0.3}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.501, "val_acc": 0.506},
        "pruned": {"pruned": True, "ratio": 0.25, "test_acc": 0.155, "val_acc": 0.162}, "int8": int8})
    assert ("QAT epochs 0 (PTQ lost 0.10 pt of val accuracy vs the pruned model, within "
            "compress.quantize.max_acc_drop=0.3)") in _compressed_rows([member], "edge_npu")[2][-1]


def test_val_accuracies_show_their_interval_and_older_runs_render_without(run_dir: pathlib.Path) -> None:
    from nas.stats import accuracy_interval

    def row(md: str, arch_id: str) -> list[str]:
        return next(line for line in md.splitlines() if line.startswith(f"| `{arch_id}`")).split(" | ")

    md = _markdown(run_dir)
    assert row(md, SLOW)[3] == "90.00%" and "Val accuracies in [brackets]" not in md  # pareto.json without val_acc_ci95
    header = json.loads((run_dir / "pareto.json").read_text())
    for m in header["members"]:
        if m["arch_id"] == SLOW:  # 5,400 of 6,000 val images right (nas.results writes nas.stats' interval)
            m["val_acc_ci95"] = list(accuracy_interval(5400, 6000))
        elif m["arch_id"] == FAST:
            m["val_acc_ci95"] = "garbled"  # hand-edited: shown without, no crash
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    md = files["report.md"].read_text(encoding="utf-8")
    # Agresti-Coull of 5400/6000 by hand: p' = 5401.92/6003.84 = 0.89974, +- 1.96 sqrt(p'(1 - p')/6003.84) = 0.00760
    assert row(md, SLOW)[3] == "90.00% [89.21–90.73]" and row(md, FAST)[3] == "85.00%"
    assert "Val accuracies in [brackets]: the 95% interval that the number of val images allows" in md
    assert "90.00% [89.21–90.73]" in files["report.html"].read_text(encoding="utf-8")


def test_the_final_trained_weights_val_accuracy_has_its_own_column_where_final_training_ran(run_dir: pathlib.Path) -> None:
    # pareto.json's val_acc_final (the shipped weights' val accuracy) was in no table: the front table showed the proxy's
    # val accuracy beside the shipped weights' test accuracy, so neither what final training gained on the images the
    # search scored nor the val-test gap of one set of weights could be read off it.
    from nas.stats import accuracy_interval

    def front(md: str) -> dict[str, list[str]]:
        lines = [line for line in md.splitlines() if line.startswith("| arch_id") or line.startswith("| `")]
        return {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in lines}

    md = _markdown(run_dir)
    assert "val acc (final)" not in md  # no member final-trained (final_train=none): no column of '–'
    header = json.loads((run_dir / "pareto.json").read_text())
    for m in header["members"]:
        if m["arch_id"] == SLOW:  # 5,520 of 6,000 val images right
            m["val_acc_final"], m["val_acc_final_ci95"] = 0.92, list(accuracy_interval(5520, 6000))
        elif m["arch_id"] == GONE:  # a pareto.json from before val_acc_final_ci95
            m["val_acc_final"] = 0.93
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    md = files["report.md"].read_text(encoding="utf-8")
    rows = front(md)
    assert rows["arch_id"][3:6] == ["val acc (search)", "val acc (final)", "test acc"]
    # Agresti-Coull of 5520/6000 by hand: p' = 5521.92/6003.84 = 0.91974, +- 1.96 sqrt(p'(1 - p')/6003.84) = 0.00687
    assert rows[SLOW][3:6] == ["90.00%", "92.00% [91.29–92.66]", "89.00%"]
    assert rows[GONE][4] == "93.00%" and rows[FAST][4] == "–"  # FAST was not final-trained
    # val_acc is the shipped weights' in metrics.json, the proxy's in pareto.json: the note names which key each is
    said = ("'val acc (final)': the val accuracy of the shipped weights (model.pt) after the final training "
            "(metrics.json's val_acc, pareto.json's val_acc_final), on the same val images as 'val acc (search)' "
            "(pareto.json's val_acc), the proxy training's score the search ranked members by; '–' for a member "
            "not final-trained, whose weights are the proxy's. The search chose the members on these val images, so "
            "judge the shipped weights by their test accuracy.")
    assert said in md
    assert ("Val accuracies in [brackets]: the 95% interval that the number of val images allows, which says how far "
            "each member's val accuracy, the score the search ranked it by and the final-trained weights', can be "
            "trusted.") in md
    page = files["report.html"].read_text(encoding="utf-8")
    assert "<th>val acc (final)</th>" in page and "92.00% [91.29–92.66]" in page and said.replace("'", "&#x27;") in page


def test_test_accuracies_show_their_interval_and_what_changed_image_by_image(run_dir: pathlib.Path) -> None:
    from nas.report.compressed import _compressed_rows

    md = _markdown(run_dir)
    assert "95% interval" not in md  # a run from before the intervals: no brackets, and no note about them
    header = json.loads((run_dir / "pareto.json").read_text())
    for m in header["members"]:
        if m["arch_id"] == SLOW:
            m["test_acc_ci95"] = [0.8838, 0.8959]
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    md = files["report.md"].read_text(encoding="utf-8")
    slow_row = next(line for line in md.splitlines() if line.startswith(f"| `{SLOW}`"))
    assert "| 89.00% [88.38–89.59] |" in slow_row
    assert "Test accuracies in [brackets]: the 95% interval" in md
    assert "89.00% [88.38–89.59]" in files["report.html"].read_text(encoding="utf-8")
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.9, "test_acc_ci95": [0.894, 0.906]},
        "pruned": {"pruned": True, "test_acc": 0.895, "changed_vs_before": {
            "file": "model.onnx", "now_wrong": 120, "now_right": 70, "p_value": 0.00035}},
        "int8": {"test_acc": 0.8951, "qat_epochs": 0, "changed_vs_before": {
            "file": "model_pruned.onnx", "now_wrong": 12, "now_right": 13, "p_value": 1.0}}})
    fp32, pruned, int8 = _compressed_rows([member])
    assert fp32[2] == "90.00% [89.40–90.60]" and pruned[2] == "89.50%"  # the pruned file recorded no interval
    assert "vs model.onnx: 120 test images now wrong, 70 now right (p=0.00035, a real drop)" in pruned[-1]
    assert "vs model_pruned.onnx: 12 test images now wrong, 13 now right (p=1, not shown to differ)" in int8[-1]
    member.compressed["pruned"]["changed_vs_before"]["p_value"] = 1e-300  # a tiny p is a bound, not "p=0"
    assert "(p<0.0001, a real drop)" in _compressed_rows([member])[1][-1]
    member.compressed["pruned"]["changed_vs_before"] = {"now_wrong": "x"}  # a hand-edited file: left out, no crash
    assert "now wrong" not in _compressed_rows([member])[1][-1]


def test_front_members_show_their_gain_over_the_next_faster_and_which_cannot_be_told_from_the_best(
        run_dir: pathlib.Path) -> None:
    md = _markdown(run_dir)
    assert "Best test accuracy" not in md and "vs next faster" in md  # a run from before: the column shows "–"
    header = json.loads((run_dir / "pareto.json").read_text())
    by_id = {m["arch_id"]: m for m in header["members"]}  # FAST 0.30 ms (no test acc), SLOW 0.45 ms 89%, GONE 0.60 ms 90.5%
    by_id[SLOW]["vs_faster"] = {"arch_id": FAST, "now_wrong": 3, "now_right": 9, "p_value": 0.15}
    by_id[GONE]["vs_faster"] = {"arch_id": SLOW, "now_wrong": 40, "now_right": 70, "p_value": 0.0054}
    by_id[SLOW]["vs_best"] = {"arch_id": GONE, "now_wrong": 70, "now_right": 40, "p_value": 0.0054}
    by_id[FAST]["vs_best"] = {"arch_id": GONE, "now_wrong": 30, "now_right": 24, "p_value": 0.5}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    md = files["report.md"].read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in md.splitlines() if line.startswith("| `")}
    assert "| +1.50 pt, p=0.0054 (a real gain) |" in rows[GONE]
    assert "| – |" in rows[SLOW] and "p=0.15" not in rows[SLOW]  # FAST has no test accuracy to subtract
    note = ("Best test accuracy: cccc000003 (90.50%, 0.600 ms). Faster members the test images cannot tell from it "
            "(p >= 0.05, image by image): aaaa000001 (0.300 ms, –). The fastest of them, aaaa000001, buys its speed at "
            "no accuracy loss this test split can show.")
    assert note in md and html.escape(note) in files["report.html"].read_text(encoding="utf-8")
    assert "'vs next faster' is the gain over the next faster member" in md
    by_id[FAST]["vs_best"]["p_value"] = 0.01  # now every faster member is worse for real
    (run_dir / "pareto.json").write_text(json.dumps(header))
    md = _markdown(run_dir)
    assert "Every faster member is less accurate for real (p < 0.05, image by image)." in md
    del by_id[FAST]["vs_best"]  # one faster member compared
    (run_dir / "pareto.json").write_text(json.dumps(header))
    md = _markdown(run_dir)
    assert f"The faster member {SLOW} is less accurate for real (p < 0.05, image by image)." in md


def test_dataset_line_names_the_data_and_the_test_split_size(run_dir: pathlib.Path) -> None:
    # The fixture's pareto.json predates the "data" entry: the line is the name alone.
    assert "**Dataset:** fashion_mnist\n" in _markdown(run_dir)
    header = json.loads((run_dir / "pareto.json").read_text())
    header["data"] = {"root": "/data/parts", "classes": 3, "input": [3, 32, 32],
                      "images": {"train": 1080, "val": 120, "test": 300}}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    md = _markdown(run_dir)
    assert ("**Dataset:** fashion_mnist (/data/parts): 3 classes, 3x32x32 images; 1,080 train / 120 val / 300 test "
            "(one test image = 0.33 pt)\n") in md  # a run from before per-class counts: no more than that
    header["data"]["per_class"] = {"train": {"bolt": 360, "nut": 600, "crack": 120}, "test": {"bolt": 100, "nut": 100, "crack": 100}}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    md = _markdown(run_dir)
    assert ("(one test image = 0.33 pt); images per class: train 120 (crack) to 600 (nut), test 100 each\n") in md
    # Scored by balanced accuracy: an image of a rare class weighs more, and a class without test images is left out.
    header["metric"] = "balanced_accuracy"
    header["data"]["per_class"]["test"] = {"bolt": 200, "nut": 99, "crack": 1, "dent": 0}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    md = _markdown(run_dir)
    assert ("300 test (balanced accuracy: one test image = 0.17 pt (bolt) to 33 pt (crack); dent: no test images, left "
            "out of the mean); images per class:") in md
    header["data"]["per_class"]["test"] = {"bolt": 100, "nut": 100, "crack": 100}  # equal classes: one worth
    (run_dir / "pareto.json").write_text(json.dumps(header))
    assert "300 test (balanced accuracy: one test image = 0.33 pt); images" in _markdown(run_dir)
    header["data"] = {"root": "/x", "images": "broken"}  # a hand-edited file: the name, not a crash
    (run_dir / "pareto.json").write_text(json.dumps(header))
    assert "**Dataset:** fashion_mnist\n" in _markdown(run_dir)


def test_a_run_scored_by_balanced_accuracy_says_so_in_the_header(run_dir: pathlib.Path) -> None:
    assert "**Accuracy:**" not in _markdown(run_dir)  # plain accuracy
    header = json.loads((run_dir / "pareto.json").read_text())
    (run_dir / "pareto.json").write_text(json.dumps({**header, "metric": "balanced_accuracy"}))
    files = write_reports(run_dir)
    line = ("balanced accuracy (data.metric): the mean over the classes of each class's accuracy; every accuracy in "
            "this report is scored so")
    assert f"**Accuracy:** {line}\n" in files["report.md"].read_text(encoding="utf-8")
    assert html.escape(line) in files["report.html"].read_text(encoding="utf-8")


def test_empty_run_still_writes_reports(tmp_path: pathlib.Path) -> None:
    folder = _write_run(tmp_path / "empty", [], [], budget=None)
    written = write_reports(folder)
    for name, path in written.items():
        assert path.stat().st_size > 0, name
    assert written["mixers.png"].read_bytes().startswith(PNG_MAGIC)
    page = written["report.html"].read_text(encoding="utf-8")
    assert "No finished trials yet." in page and "No Pareto members yet." in page
    assert "<script src=" not in page
    md = written["report.md"].read_text(encoding="utf-8")
    assert "No finished trials yet" in md and "**Latency budget:** none" in md


def test_only_pruned_trials_and_no_front(tmp_path: pathlib.Path) -> None:
    folder = _write_run(tmp_path / "pruned", [_trial(0, "PRUNED", "p0", "", "0.2", "pool"),
                                              _trial(1, "RUNNING", "r1", "", "0.3", "conv")], [])
    written = write_reports(folder)
    page = written["report.html"].read_text(encoding="utf-8")
    assert "2 trials: 1 PRUNED, 1 RUNNING" in page and "No finished trials yet." in page


def test_missing_input_raises(tmp_path: pathlib.Path) -> None:
    with pytest.raises(MissingRunFileError, match="no run folder"):
        write_reports(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "trials.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(MissingRunFileError, match=r"no pareto\.json in .*nas\.search"):
        write_reports(tmp_path / "half")


def test_a_mistyped_run_folder_names_the_run_of_the_closest_name(tmp_path: pathlib.Path) -> None:
    # "no run folder 'shapes-edge_npu-imagefoldr' in runs; run `python -m nas.search` first" sent the user to search
    # again for a run that was there under the name they mistyped
    _write_run(tmp_path / "shapes-edge_npu-imagefolder", [_trial(0, "COMPLETE", "a0", "0.8", "0.2", "pool")], [])
    with pytest.raises(MissingRunFileError) as err:
        write_reports(tmp_path / "shapes-edge_npu-imagefoldr")
    assert str(err.value) == (f"no run folder 'shapes-edge_npu-imagefoldr' in {tmp_path}; did you mean "
                              f"{tmp_path / 'shapes-edge_npu-imagefolder'}?")
    with pytest.raises(MissingRunFileError, match=r"no run folder 'zebra' in \S+; run `python -m nas.search` first$"):
        write_reports(tmp_path / "zebra")


def test_report_refusals_are_nas_errors(tmp_path: pathlib.Path) -> None:
    # A notebook wrapping its calls in `except NasError` (the base of the toolkit's one-line errors) let a report's
    # refusal of a folder through as a bare Exception.
    from nas.errors import NasError

    with pytest.raises(NasError, match="no run folder"):
        write_reports(tmp_path / "nope")
    _write_run(tmp_path / "damaged", [_trial(0, "COMPLETE", "a0", "0.8", "0.2", "pool")], [])
    (tmp_path / "damaged" / "pareto.json").write_text("{not json")
    with pytest.raises(NasError) as error:
        write_reports(tmp_path / "damaged")
    assert isinstance(error.value, ReportInputError) and len(str(error.value).splitlines()) == 1


def test_unreadable_pareto_json_is_a_one_line_error(run_dir: pathlib.Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "pareto.json").write_text("{not json")
    assert _refused([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pareto.json is not valid JSON") and err.count("\n") == 1


def test_main_prints_paths(run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import nas.pareto_csv

    read = []  # pareto.json is read once: pareto.csv is written from the report's reading (it was read again for it)
    for module in (nas.report.files, nas.pareto_csv):
        monkeypatch.setattr(module, "read_pareto_json", lambda path: read.append(path) or read_pareto_json(path))
    assert main([str(run_dir)]) == 0
    assert read == [run_dir / "pareto.json"]
    printed = capsys.readouterr().out.splitlines()
    # pareto.csv too: the fixture's folder has none, and the report writes it from pareto.json
    assert sorted(pathlib.Path(p).name for p in printed) == sorted([*REPORT_FILES, "pareto.csv"])


# pareto.csv's int8 columns (nas.pareto_csv.INT8_COLUMNS, each interval two columns)
INT8_CSV_COLUMNS = ["int8_test_acc", "int8_test_acc_ci95_low", "int8_test_acc_ci95_high", "int8_test_acc_source",
                    "int8_latency_ms", "int8_hw", "int8_hw_precision", "int8_params", "int8_macs", "int8_file", "int8_error",
                    "int8_size_bytes", "int8_test_images", "int8_fp32_test_acc", "int8_pruned_test_acc"]


def test_the_report_of_a_run_folder_refreshes_its_pareto_csv_only_when_it_changed(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A folder compressed by a version before pareto.csv's int8 columns kept a CSV without them: only a rebuild from the
    # study (torch, Optuna, the trials' weights) wrote it again. The read-only form writes it from the folder's files.
    (run_dir / "checkpoints" / SLOW / "compressed_metrics.json").write_text(json.dumps({
        "hw": "edge_npu", "fp32": {"macs": 6197056}, "pruned": {"pruned": True, "macs": 4000000},
        "int8": {"params": 90000, "latency_ms": 0.25, "test_acc": 0.885, "test_acc_ci95": [0.87, 0.9],
                 "test_acc_source": "onnxruntime", "file": "model_int8.onnx"}}))
    old = "number,arch_id,val_acc,test_acc,latency_ms,checkpoint\n"  # an older version's columns
    (run_dir / "pareto.csv").write_text(old)
    assert main([str(run_dir)]) == 0
    assert str(run_dir / "pareto.csv") in capsys.readouterr().out.splitlines()  # among the files written
    with open(run_dir / "pareto.csv", newline="") as f:
        rows = {r["arch_id"]: r for r in csv.DictReader(f)}
    assert list(rows) == [GONE, FAST, SLOW]  # pareto.json's order
    assert list(rows[SLOW])[-len(INT8_CSV_COLUMNS) - 1:-1] == INT8_CSV_COLUMNS
    assert {c: rows[SLOW][c] for c in INT8_CSV_COLUMNS} == {
        "int8_test_acc": "0.885", "int8_test_acc_ci95_low": "0.87", "int8_test_acc_ci95_high": "0.9",
        "int8_test_acc_source": "onnxruntime", "int8_latency_ms": "0.25", "int8_hw": "edge_npu", "int8_hw_precision": "", "int8_params": "90000",
        "int8_macs": "4000000", "int8_file": f"checkpoints/{SLOW}/model_int8.onnx", "int8_error": "",
        "int8_size_bytes": "", "int8_test_images": "", "int8_fp32_test_acc": "", "int8_pruned_test_acc": ""}
    assert all(rows[a][c] == "" for a in (GONE, FAST) for c in INT8_CSV_COLUMNS)  # not compressed
    assert rows[FAST]["latency_ms"] == "0.3" and rows[GONE]["test_acc"] == "0.905"
    # Up to date, it is left as it is (not written again: a reader never sees it replaced for nothing)
    before = (run_dir / "pareto.csv").stat()
    assert main([str(run_dir)]) == 0
    assert str(run_dir / "pareto.csv") not in capsys.readouterr().out.splitlines()
    after = (run_dir / "pareto.csv").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_report_of_a_run_folder_writes_pareto_csv_without_torch_or_optuna(run_dir: pathlib.Path) -> None:
    # the CSV's code lives outside nas.results (torch): the read-only form must still run with the run folder alone
    code = ("import sys; from nas.report import main; rc = main([sys.argv[1]]); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'optuna'}); "
            "print(bad); sys.exit(rc or (1 if bad else 0))")
    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run_dir / "pareto.csv").read_text().startswith("number,arch_id,val_acc,")


@pytest.mark.parametrize("text, what", [
    ('{"members": [{"arch_id": "aaaa0', "pareto.json is not valid JSON (line 1)"),  # cut short by a full disk, a copy
    ("[1, 2]", "pareto.json holds no JSON object"),
    ('{"members": 5}', "pareto.json's members is not a list (an int)"),
    ('{"members": {"arch_id": "aaaa000001"}}', "pareto.json's members is not a list (a dict)"),
    (b"\xff\xfe\x00garbage", "pareto.json is not UTF-8 text"),
])
def test_a_damaged_pareto_json_is_one_line_naming_the_file_and_the_rebuild_from_the_study(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], text: str | bytes, what: str) -> None:
    # 'run python -m nas.search first' sent the user to a search that had run; a members that is no list was a traceback
    path = run_dir / "pareto.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (run_dir / "pareto.csv").write_text("kept\n")
    assert _refused([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {what} in {run_dir}: damaged; rebuild the run folder's files from its study: "
                          f"python -m nas.report search.runs_dir={run_dir.parent} search.study_name={run_dir.name}"), err
    assert (run_dir / "pareto.csv").read_text() == "kept\n"  # not written from a file it cannot read


@pytest.mark.parametrize("runs", ["my runs", "it's runs"])
def test_the_rebuild_commands_quote_the_runs_dir_for_hydra_as_well_as_the_shell(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], runs: str) -> None:
    # In the shell's quotes alone ('search.runs_dir=/x/my runs'), the space or quote reached Hydra, which refused the
    # override or read another folder: each hint's runs_dir, split as the shell does and parsed as Hydra does, is the path.
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    run_dir = tmp_path / runs / "study x"
    run_dir.mkdir(parents=True)
    (run_dir / "pareto.json").write_text('{"members": [')
    with pytest.raises(ReportInputError) as error:
        read_pareto_json(run_dir / "pareto.json")
    damaged = str(error.value).split("python -m nas.report ", 1)[1].split(" with the search's settings", 1)[0]
    assert _refused([str(run_dir), "final_train=smoke"]) == 2
    refused = capsys.readouterr().err.split("name the study instead: ", 1)[1]
    parser = OverridesParser.create()
    for hint in (damaged, refused):
        args = shlex.split(hint)
        values = {o.key_or_group: o.value() for o in parser.parse_overrides(args[:2])}
        assert values == {"search.runs_dir": str(tmp_path / runs), "search.study_name": "study x"}, hint
    assert shlex.split(refused)[2:] == ["final_train=smoke"]


def test_a_damaged_pareto_json_names_the_complete_rebuild_from_the_runs_config_yaml(run_dir: pathlib.Path) -> None:
    # The line said "with the search's settings (its data.root, final_train and compress: config.yaml holds them)": the
    # user had to find them in config.yaml and spell them, or the rebuild refused the members final-trained and
    # compressed otherwise (or took the default data's images). Read without torch or Optuna, as the report runs.
    from omegaconf import OmegaConf

    from nas.config import compose_search_config

    searched = compose_search_config(["final_train=smoke", "final_train.epochs=3", "compress=smoke",
                                      "compress.prune.ratio=0.5"])
    searched.data.root = "/data/my fashion"  # a space: one shell argument, quoted as Hydra reads it
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(searched))
    (run_dir / "pareto.json").write_text('{"members": [')
    code = ("import sys; from nas.report import main\ntry: rc = main([sys.argv[1]])\nexcept SystemExit as e: rc = e.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'optuna'}); "
            "print(bad); sys.exit(rc if rc != 2 else (3 if bad else 2))")
    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stdout.strip() == "[]", result.stdout + result.stderr
    assert result.stderr == (
        f"error: pareto.json is not valid JSON (line 1) in {run_dir}: damaged; rebuild the run folder's files from its "
        f"study: python -m nas.report search.runs_dir={run_dir.parent} search.study_name={run_dir.name} "
        "\"data.root='/data/my fashion'\" final_train=smoke final_train.epochs=3 compress=smoke compress.prune.ratio=0.5 "
        "(and search.storage=... for a study not in its study.db)\n")
    # the defaults name nothing; a search that compressed none, compress=none (a rebuild would compress every member)
    searched = compose_search_config(["compress=none"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(searched))
    with pytest.raises(ReportInputError) as error:
        read_pareto_json(run_dir / "pareto.json")
    assert str(error.value).endswith(f"search.study_name={run_dir.name} compress=none (and search.storage=... for a "
                                     "study not in its study.db)")
    (run_dir / "config.yaml").write_text("data: [")  # unreadable: the wording as before, naming the settings to pass
    with pytest.raises(ReportInputError, match=r"with the search's settings \(its data.root, final_train and compress: "
                                               r"config.yaml holds them"):
        read_pareto_json(run_dir / "pareto.json")


def test_a_run_folder_with_settings_says_which_form_takes_them(run_dir: pathlib.Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _refused([str(run_dir), "final_train=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a run folder is read as it is, without settings (final_train=none); to rebuild it "
                          "from its study with settings, name the study instead: search.runs_dir=") and "\n" not in err


def test_cli_missing_folder_exits_2_with_one_line(tmp_path: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nas.report", str(tmp_path / "missing_run")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "python -m nas.search" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_into_a_closed_pipe_ends_quietly_with_the_reports_written(run_dir: pathlib.Path) -> None:
    # `python -m nas.report <run> | head -1`: the paths printed after head was gone ended in a BrokenPipeError traceback
    # (or "Exception ignored ... BrokenPipeError" at exit, and exit status 120).
    from conftest import run_into_closed_pipe
    from nas.errors import CLOSED_STDOUT_EXIT

    result = run_into_closed_pipe(["-m", "nas.report", str(run_dir)], timeout=120)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert result.returncode == CLOSED_STDOUT_EXIT == 141, result.stderr  # as a shell tool killed by SIGPIPE ends
    assert all((run_dir / name).is_file() for name in ("report.md", "report.html", "pareto.csv"))  # the work is done


def test_module_reads_files_only() -> None:
    """The report must run where only the run folder exists: no torch/optuna, no other part of nas but nas.layout, the
    file names it shares with compress.pipeline (constants, importing nothing), and nas.errors, the base of its errors
    (the standard library alone)."""
    code = ("import sys, nas.report; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'optuna'} "
            "or (m.startswith('nas.') and m.split('.')[:2] != ['nas', 'report'] and m not in {'nas.layout', 'nas.errors'})); print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_run_whose_trials_all_failed_says_why_and_not_yet(tmp_path: pathlib.Path) -> None:
    trials = [_trial(0, "FAIL", "f0", "", "", "conv", fail_reason="RuntimeError: out of memory"),
              _trial(1, "FAIL", "f1", "", "", "attn", fail_reason="RuntimeError: out of memory"),
              _trial(2, "FAIL", "f2", "", "", "pool", fail_reason="ValueError: NaN loss")]
    written = write_reports(_write_run(tmp_path / "failed", trials, [], budget=None))
    md = written["report.md"].read_text(encoding="utf-8")
    page = written["report.html"].read_text(encoding="utf-8")
    for text in (md, page):
        assert "2 × RuntimeError: out of memory; 1 × ValueError: NaN loss" in text
        assert "none of the 3 trials completed" in text
        assert "yet" not in text.replace("has not run yet", "")  # the search is over, nothing is coming


def test_a_front_empty_because_every_finished_trial_is_over_the_budget_says_so(tmp_path: pathlib.Path) -> None:
    trials = [_trial(0, "COMPLETE", "a0", "0.8", "0.6", "conv", feasible=False),
              _trial(1, "COMPLETE", "a1", "0.7", "0.7", "pool", feasible=False)]
    written = write_reports(_write_run(tmp_path / "over", trials, [], budget=0.5))
    for name in ("report.md", "report.html"):
        text = written[name].read_text(encoding="utf-8")
        assert "none of the 2 finished trials is within the latency budget (0.5 ms)" in text, name
        assert "No Pareto members yet" not in text, name


def test_the_weakest_class_names_every_class_tied_at_the_lowest_score(run_dir: pathlib.Path) -> None:
    """Three classes never recognised must not read as one ('Bag 0.00%' hid Shirt and Sneaker at 0.00% too)."""
    path = run_dir / "checkpoints" / SLOW / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test_acc_per_class"] = {"Bag": 0.0, "Coat": 0.8, "Shirt": 0.0, "Sneaker": 0.0, "Sandal": 0.9}
    path.write_text(json.dumps(metrics))
    written = write_reports(run_dir)
    for name in ("report.md", "report.html"):
        assert "Bag, Shirt, Sneaker 0.00%" in written[name].read_text(encoding="utf-8"), name


def test_a_slower_member_that_is_really_less_accurate_is_called_a_real_loss():
    from nas.report.files import _Member
    from nas.report.notes import _vs_member_text

    def member(arch_id, acc):
        fields = {f.name: None for f in dataclasses.fields(_Member)}
        return _Member(**{**fields, "arch_id": arch_id, "test_acc": acc})

    fast, slow = member("fast", 0.90), member("slow", 0.85)
    change = {"arch_id": "fast", "now_wrong": 600, "now_right": 100, "p_value": 1e-9}
    assert _vs_member_text(slow, change, [fast, slow]) == "-5.00 pt, p<0.0001 (a real loss)"
    assert _vs_member_text(slow, {**change, "p_value": 0.3}, [fast, slow]) == "-5.00 pt, p=0.3 (within noise)"


def test_measured_latencies_say_how_and_on_which_cpu_they_were_timed():
    from nas.report.files import _Member
    from nas.report.notes import _measured_note

    def member(arch_id, ms, metrics):
        fields = {f.name: None for f in dataclasses.fields(_Member)}
        return _Member(**{**fields, "arch_id": arch_id, "measured_ms": ms, "metrics": metrics})

    how = {"measured_latency_how": "openvino fp32, 1 thread, batch 1", "measured_latency_on": "AMD EPYC 9B14"}
    members = [member("a", 0.2, how), member("b", 0.3, dict(how)), member("c", None, None)]
    assert _measured_note(members) == "'measured on host': openvino fp32, 1 thread, batch 1, on AMD EPYC 9B14."
    assert _measured_note([member("c", None, None)]) == ""  # nothing measured: no note
    # each member timed otherwise (its own spread, a busy machine): each text names its members, which were unnamed
    busy = {**how, "measured_latency_how": "openvino fp32, 1 thread, batch 1 (single calls spread 769%)"}
    assert _measured_note([member("a", 0.2, how), member("b", 0.3, busy), member("d", 0.4, dict(how))]) == (
        "'measured on host': a, d: openvino fp32, 1 thread, batch 1, on AMD EPYC 9B14; "
        "b: openvino fp32, 1 thread, batch 1 (single calls spread 769%), on AMD EPYC 9B14.")
    # a chip without a runtime here: the note says why the column is all '–' (a run from before the field: no note)
    why = "hw=edge_npu has no runtime on this host (its hw.runtime is empty), so its latencies are predicted, not timed"
    assert _measured_note([member("c", None, None)], {"measured_latency_missing": why}) == f"'measured on host' is empty: {why}."
    assert _measured_note([member("c", None, None)], {"measured_latency_missing": None}) == ""


def test_a_run_whose_chip_is_not_timed_here_says_why_its_measured_column_is_empty(run_dir: pathlib.Path) -> None:
    why = "hw=edge_npu has no runtime on this host (its hw.runtime is empty), so its latencies are predicted, not timed"
    header = json.loads((run_dir / "pareto.json").read_text())
    written = write_reports(run_dir)  # the fixture's pareto.json predates the field: rendered without the note
    assert "is empty" not in written["report.md"].read_text()
    (run_dir / "pareto.json").write_text(json.dumps({**header, "measured_latency_missing": why}))
    written = write_reports(run_dir)
    assert f"_'measured on host' is empty: {why}._" in written["report.md"].read_text()
    assert html.escape(f"'measured on host' is empty: {why}.") in written["report.html"].read_text()


def test_searches_that_have_not_finished_are_named_at_the_top(run_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    from nas.run_folder import mark_started  # the markers as a search writes them when it starts

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real pid whose process is gone (killed, say)
    with monkeypatch.context() as m:  # a worker on another machine: nothing can be told of its process from here
        m.setattr(socket, "gethostname", lambda: "node7")
        m.setattr(os, "getpid", lambda: child.pid)
        mark_started(run_dir, warnings=())
    mark_started(run_dir, warnings=())  # this process: still running
    with monkeypatch.context() as m:
        m.setattr(os, "getpid", lambda: child.pid)
        mark_started(run_dir, warnings=())  # a search of this machine that was killed
    write_reports(run_dir)
    md = (run_dir / "report.md").read_text(encoding="utf-8").splitlines()
    assert md[2].startswith("> **Not finished:** A search started ") and md[2].count("A search started") == 3
    host = socket.gethostname()
    assert f"(pid {child.pid} on {host}) stopped before it finished (killed or crashed: its process is gone)." in md[2]
    assert f"(pid {os.getpid()} on {host}) has not finished (if that process is no longer running" in md[2]
    assert f"(pid {child.pid} on node7) has not finished (if that process" in md[2]
    assert "Not finished:</strong> A search started" in (run_dir / "report.html").read_text(encoding="utf-8")

    for marker in run_dir.glob(".running.*"):  # every search of the folder finished: nothing is said
        marker.unlink()
    write_reports(run_dir)
    assert "Not finished" not in (run_dir / "report.md").read_text() + (run_dir / "report.html").read_text()


def test_latencies_get_the_decimals_that_tell_distinct_members_apart(run_dir: pathlib.Path) -> None:
    """Members at 0.2396 and 0.2404 ms both read '0.240' at 3 decimals, as if equal; every predicted latency of the
    report then gets 4, and values too close for any prediction to matter stop at 6."""
    from nas.report.values import _ms_decimals

    assert _ms_decimals([0.30, 0.45, None]) == 3 and _ms_decimals([]) == 3
    assert _ms_decimals([0.2396, 0.2404, 0.2404]) == 4  # equal values need no more
    assert _ms_decimals([0.24, 0.24 + 1e-12]) == 6
    header = json.loads((run_dir / "pareto.json").read_text())
    by_id = {m["arch_id"]: m for m in header["members"]}
    by_id[FAST]["latency_ms"], by_id[SLOW]["latency_ms"] = 0.2404, 0.2396  # SLOW is now the faster one
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    md = files["report.md"].read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert [r.split("|")[2].strip() for r in rows] == ["0.2396", "0.2404", "0.6000"]
    assert f"{SLOW} · 0.2396 ms" in files["report.html"].read_text(encoding="utf-8")  # the mixer table's labels too
    # the Pareto plot's hover texts too, a trial's as a member's: a trial at 0.2404 read '0.240' beside the member's
    import nas.report

    figure = nas.report.plots._pareto_figure(nas.report.files._load_run(run_dir))
    hovers = {t.name: list(t.hovertext) for t in figure.data}
    front = nas.report.plots._FRONT_LABEL
    assert hovers["trials"] and hovers[front]
    assert all(re.search(r"predicted latency \d+\.\d{4} ms", h) for h in hovers["trials"] + hovers[front])


def test_vs_next_faster_names_the_member_compared_or_says_why_none_was(run_dir: pathlib.Path) -> None:
    """The 'vs next faster' cell was blank ('–') when the next faster member had no test predictions to compare, as if
    nothing were missing; it now names the faster member it was compared with instead, or says why there is none."""
    def rows() -> dict[str, str]:
        md = _markdown(run_dir)
        return {line.split("|")[1].strip(" `"): line.split("|")[7].strip() for line in md.splitlines()
                if line.startswith("| `")}

    header = json.loads((run_dir / "pareto.json").read_text())
    by_id = {m["arch_id"]: m for m in header["members"]}  # FAST 0.30 ms, SLOW 0.45 ms 89%, GONE 0.60 ms 90.5%
    by_id[FAST]["test_acc"] = 0.88
    by_id[GONE]["vs_faster"] = {"arch_id": FAST, "now_wrong": 40, "now_right": 65, "p_value": 0.019}  # SLOW skipped
    (run_dir / "pareto.json").write_text(json.dumps(header))
    cells = rows()
    assert cells[FAST] == "–"  # the fastest member has no faster one
    assert cells[GONE] == f"vs {FAST} ({SLOW} has no test predictions): +2.50 pt, p=0.019 (a real gain)"
    assert cells[SLOW] == "n/a (no test predictions)"  # neither folder holds test_predictions.csv
    (run_dir / "checkpoints" / SLOW / "test_predictions.csv").write_text("index,label,predicted\n")
    assert rows()[SLOW] == f"n/a ({FAST} has no test predictions)"
    (run_dir / "checkpoints" / FAST / "test_predictions.csv").write_text("index,label,predicted\n")
    assert rows()[SLOW] == "n/a (pareto.json compares no members; rerun the search command to compare them)"
    by_id[FAST]["test_acc"] = None
    by_id[SLOW]["vs_faster"] = {"arch_id": FAST, "now_wrong": 3, "now_right": 9, "p_value": 0.15}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    assert rows()[SLOW] == f"n/a ({FAST} has no test accuracy)"


def test_a_fastest_member_that_is_also_the_most_accurate_is_said_to_be(run_dir: pathlib.Path) -> None:
    """The best-member note was left out when the most accurate member was the fastest, though that is the run's
    finding: every slower member costs latency for no test accuracy."""
    header = json.loads((run_dir / "pareto.json").read_text())
    by_id = {m["arch_id"]: m for m in header["members"]}  # FAST 0.30 ms, SLOW 0.45 ms 89%, GONE 0.60 ms 90.5%
    by_id[FAST]["test_acc"] = 0.92
    by_id[SLOW]["vs_best"] = {"arch_id": FAST, "now_wrong": 300, "now_right": 0, "p_value": 1e-90}
    by_id[GONE]["vs_best"] = {"arch_id": FAST, "now_wrong": 30, "now_right": 15, "p_value": 0.036}
    (run_dir / "pareto.json").write_text(json.dumps(header))
    files = write_reports(run_dir)
    note = ("Best test accuracy: aaaa000001 (92.00%, 0.300 ms). It is also the fastest member: no slower member is more "
            "accurate on the test split: bbbb000002 (0.450 ms, -3.00 pt, p<0.0001 (a real loss)); cccc000003 (0.600 ms, "
            "-1.50 pt, p=0.036 (a real loss)).")
    assert note in files["report.md"].read_text(encoding="utf-8")
    assert html.escape(note) in files["report.html"].read_text(encoding="utf-8")


_NPU_NOTE = ("Predicted latencies are edge_npu's in int8 (its hw.precision) for each row's architecture, whatever the "
             "file's number format, so the fp32 row is not the float model's time on the chip, and the int8 row repeats ")


def test_each_members_compressed_metrics_is_read_once_per_report(run_dir, monkeypatch):
    # the compressed table and the files-gone note read the same file: it was read twice for each member
    read = []
    real = nas.report.read_compressed
    monkeypatch.setattr(nas.report.files, "read_compressed", lambda folder: read.append(folder.name) or real(folder))
    nas.report.files._load_run(run_dir)
    assert sorted(read) == sorted([FAST, SLOW, GONE])


def test_the_report_command_reads_each_members_compressed_metrics_once_for_the_report_and_pareto_csv(
        run_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m nas.report <run folder>` read each member's compressed_metrics.json for the report, then again for
    # pareto.csv's int8 columns: it now hands pareto.csv what the report read, and the CSV is the same as read afresh.
    stages = {"fp32": {"test_acc": 0.9, "latency_ms": 0.25}, "pruned": {"pruned": False},
              "int8": {"test_acc": 0.89, "test_acc_ci95": [0.87, 0.91], "latency_ms": 0.2, "params": 100,
                       "file": "model_int8.onnx"}}
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(json.dumps({"hw": "edge_npu", **stages}))
    (run_dir / "checkpoints" / SLOW / "compressed_metrics.json").write_text(json.dumps({"error": "out of memory"}))
    monkeypatch.setattr(nas.report.cli, "_write_reports", lambda folder, run: {})  # the drawing: not what is tested
    read = []
    real = pathlib.Path.read_text
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **kw: (
        read.append(self.parent.name) if self.name == "compressed_metrics.json" else None) or real(self, *a, **kw))
    assert main([str(run_dir)]) == 0
    assert sorted(read) == sorted([FAST, SLOW, GONE])  # GONE's folder is missing: tried once all the same
    written = (run_dir / "pareto.csv").read_bytes()
    assert b"0.89" in written and b"out of memory" in written  # the int8 columns of what was read
    (run_dir / "pareto.csv").unlink()
    from nas.pareto_csv import write_pareto_csv

    assert write_pareto_csv(run_dir) and (run_dir / "pareto.csv").read_bytes() == written  # as read from the files


def _both_reports_say(run_dir: pathlib.Path, note: str) -> bool:
    """Whether report.md (as its italic note) and report.html, written again, both hold `note` under the table."""
    files = write_reports(run_dir)
    return (f"_{note}_" in files["report.md"].read_text(encoding="utf-8")
            and html.escape(note) in files["report.html"].read_text(encoding="utf-8"))


def test_the_compressed_tables_predicted_latencies_say_they_are_the_chips_at_its_precision(run_dir: pathlib.Path) -> None:
    """On an int8 chip the 'fp32' row's predicted latency is its architecture's int8 time (it read as the float model's),
    and on an fp32 profile the int8 row's is the pruned architecture's float time: the table now says which."""
    stages = {"fp32": {"test_acc": 0.9, "latency_ms": 0.252}, "pruned": {"pruned": True, "test_acc": 0.89, "latency_ms": 0.24},
              "int8": {"test_acc": 0.89, "latency_ms": 0.24, "qat_epochs": 0}}
    path = run_dir / "checkpoints" / FAST / "compressed_metrics.json"
    path.write_text(json.dumps({"hw": "edge_npu", **stages}))  # a file from before hw_precision: no claim made
    assert "Predicted latencies are" not in _markdown(run_dir)
    path.write_text(json.dumps({"hw": "edge_npu", "hw_precision": "int8", **stages}))
    assert _both_reports_say(run_dir, _NPU_NOTE + "the pruned one's.")
    path.write_text(json.dumps({"hw": "cpu", "hw_precision": "fp32", **stages}))  # a float profile: the other way round
    assert ("Predicted latencies are cpu's in fp32 (its hw.precision) for each row's architecture, whatever the file's "
            "number format, so the int8 row repeats the pruned one's fp32 time, not the int8 file's.") in \
        _markdown(run_dir)


def test_the_front_notes_name_members_really_less_accurate_as_int8(run_dir: pathlib.Path) -> None:
    # A run's best-member note called d13a90aaf1 the most accurate and the fastest (50.77%) while its int8 file, what an
    # int8 chip runs, scored 14.60% (-35.50 pt, p<0.0001): said only deep in the compressed table's int8 notes.
    def compressed(fp32: float, int8: float, wrong: int, right: int, p: float) -> str:
        return json.dumps({"hw": "edge_npu", "fp32": {"test_acc": fp32}, "pruned": {"pruned": True, "test_acc": int8},
                           "int8": {"test_acc": int8, "qat_epochs": 0},
                           "summary": {"test_acc_fp32": fp32, "test_acc_int8": int8,
                                       "int8_vs_fp32": {"now_wrong": wrong, "now_right": right, "p_value": p}}})

    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(compressed(0.501, 0.146, 398, 43, 4e-73))
    (run_dir / "checkpoints" / SLOW / "compressed_metrics.json").write_text(compressed(0.425, 0.42, 84, 79, 0.75))
    note = ("Really less accurate as int8 (the compressed table's 'fp32 → int8 in all', pruning included; p < 0.05, "
            f"image by image): {FAST} 50.10% → 14.60% (-35.50 pt, p<0.0001). The test accuracies above are model.pt's: "
            "judge a member shipped as int8 by its int8 row.")
    assert _both_reports_say(run_dir, note)  # SLOW's -0.50 pt is within noise: not named
    # scored on part of the test images (compress.eval_images): said, beside the front table's of them all
    cut = json.loads(compressed(0.501, 0.146, 398, 43, 4e-73))
    cut["eval_images"] = {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(json.dumps(cut))
    assert "(-35.50 pt, p<0.0001; on 1,000 of the 10,000 test images)." in _markdown(run_dir)
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(compressed(0.501, 0.49, 20, 9, 0.06))
    assert "Really less accurate as int8" not in _markdown(run_dir)


def test_the_compressed_tables_note_names_the_fp32_row_for_a_member_not_pruned(run_dir: pathlib.Path) -> None:
    """A member compressed with compress.prune.ratio=0 has no pruned row ('not pruned'), yet the note said its int8 row
    repeats the pruned one's: it repeats the fp32 row's. Members pruned and not in one table name both."""
    fp32, int8 = {"test_acc": 0.9, "latency_ms": 0.252}, {"test_acc": 0.89, "latency_ms": 0.252, "qat_epochs": 0}
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text(json.dumps(
        {"hw": "edge_npu", "hw_precision": "int8", "fp32": fp32, "pruned": {"pruned": False}, "int8": int8}))
    assert _both_reports_say(run_dir, _NPU_NOTE + "the fp32 one's.")
    (run_dir / "checkpoints" / SLOW / "compressed_metrics.json").write_text(json.dumps(
        {"hw": "edge_npu", "hw_precision": "int8", "fp32": fp32, "pruned": {"pruned": True, "latency_ms": 0.24}, "int8": int8}))
    assert _both_reports_say(run_dir, _NPU_NOTE + "the pruned one's (the fp32 one's for a member not pruned).")


def test_front_members_missing_from_pareto_json_are_named_under_the_table(run_dir: pathlib.Path) -> None:
    """A front member left out of pareto.json (not final-trained after a Ctrl-C, or its weights missing) vanished from
    the report without a word: the table read as the whole front, and 'vs next faster' as a comparison with it."""
    assert "Not in this table" not in _markdown(run_dir)
    with (run_dir / "trials.csv").open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        for number in (6, 7):  # trial 7 re-proposed trial 6's architecture: named once
            writer.writerow(_trial(number, "COMPLETE", "hhhh000008", "0.88", "0.35", "pool-conv", pareto=True))
    files = write_reports(run_dir)
    note = ("Not in this table, though on the Pareto front (trials.csv, is_pareto): hhhh000008 (trial 6, 0.350 ms). Not "
            "final-trained because the search was interrupted, or their weights are missing (search.log says which); "
            "rerun the search command to add them.")
    assert f"_{note}_" in files["report.md"].read_text(encoding="utf-8")
    assert html.escape(note) in files["report.html"].read_text(encoding="utf-8")
    (run_dir / "pareto.json").write_text(json.dumps({**json.loads((run_dir / "pareto.json").read_text()), "members": []}))
    md = _markdown(run_dir)  # none listed (a first run stopped in its final training): named all the same, they were not
    assert ("_No Pareto members in pareto.json although 6 trials finished; on the Pareto front (trials.csv, is_pareto): "
            "aaaa000001 (trial 0, 0.300 ms), hhhh000008 (trial 6, 0.350 ms), bbbb000002 (trial 1, 0.450 ms), cccc000003 "
            "(trial 2, 0.600 ms). Not final-trained because the search was interrupted, or their weights are missing "
            "(search.log says which); rerun the search command to write them._") in md
    assert "Not in this table" not in md


_INCOMPLETE = ("incomplete front: 3 on the Pareto front, 2 of them in pareto.json and the report; not in them: cccc000003 "
               "(trial 2, 0.600 ms), not final-trained because the search was interrupted, or their weights are missing "
               "(search.log says which); rerun {} to add them\n")


def test_the_report_command_says_in_one_line_that_pareto_json_lacks_members_of_the_front(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # After a Ctrl-C pareto.json lists the members finished so far: `python -m nas.report` printed its files as for the
    # whole front, and only a note inside the report said that any were missing.
    assert main([str(run_dir)]) == 0 and capsys.readouterr().err == ""  # the whole front: nothing to say
    header = json.loads((run_dir / "pareto.json").read_text())
    listed = [m for m in header["members"] if m["arch_id"] != GONE]
    (run_dir / "pareto.json").write_text(json.dumps({**header, "members": listed, "members_missing": [GONE]}))
    assert main([str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 6 and err == _INCOMPLETE.format("the search command")  # stdout: the files, for scripts
    # the field names them, not trials.csv (which marks GONE on the front all the same), and [] is the whole front
    (run_dir / "pareto.json").write_text(json.dumps({**header, "members": listed, "members_missing": []}))
    assert main([str(run_dir)]) == 0 and capsys.readouterr().err == ""
    assert "Not in this table" not in _markdown(run_dir)
    # a pareto.json from before the field: trials.csv's front tells
    (run_dir / "pareto.json").write_text(json.dumps({**header, "members": listed}))
    assert main([str(run_dir)]) == 0 and capsys.readouterr().err == _INCOMPLETE.format("the search command")


def test_the_rebuild_from_the_study_says_in_one_line_that_the_front_is_incomplete(
        run_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import nas.errors
    import nas.study_export
    from nas.study_export import SearchResult

    header = json.loads((run_dir / "pareto.json").read_text())
    listed = [m for m in header["members"] if m["arch_id"] != GONE]
    (run_dir / "pareto.json").write_text(json.dumps({**header, "members": listed, "members_missing": [GONE]}))
    result = SearchResult(run_dir=run_dir, study_name="run", n_complete=6, pareto=listed,
                          files={"report.html": run_dir / "report.html"})
    monkeypatch.setattr(nas.study_export, "export_study", lambda cfg, *, overridden=(): result)
    monkeypatch.setattr(nas.errors, "stop_on_sigterm", lambda: None)
    assert main([f"search.runs_dir={run_dir.parent}", "search.study_name=run"]) == 0
    assert capsys.readouterr().err == _INCOMPLETE.format("the same command")


def test_a_class_and_a_warning_naming_a_file_that_is_not_utf8_are_shown_with_backslash_x(run_dir: pathlib.Path) -> None:
    """An image folder's Latin-1 names (an old zip on Linux) reach the JSON files as lone surrogates (json's \\udce9):
    writing report.md and report.html raised UnicodeEncodeError, ending the search and `python -m nas.report`."""
    latin1 = os.fsdecode(b"caf\xe9")
    metrics_path = run_dir / "checkpoints" / SLOW / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "test_acc_per_class": {latin1: 0.5, "Bag": 0.97}}))
    header = json.loads((run_dir / "pareto.json").read_text())
    loose = os.fsdecode(b"\xe9t\xe9.png")
    warning = f"1 image file lies outside the class folders and is left out (e.g. {loose})"
    (run_dir / "pareto.json").write_text(json.dumps({**header, "setup_warnings": [warning]}))
    assert main([str(run_dir)]) == 0
    md, page = (run_dir / "report.md").read_text(encoding="utf-8"), (run_dir / "report.html").read_text(encoding="utf-8")
    for text in (md, page):
        assert "caf\\xe9 50.00%" in text and "left out (e.g. \\xe9t\\xe9.png)" in text


def test_the_time_in_the_header_says_it_is_when_pareto_json_was_written(run_dir: pathlib.Path) -> None:
    """'Created: ...' read as the run's start or the report's time; it is pareto.json's, written after the search and
    before compression (whose table the same report shows)."""
    files = write_reports(run_dir)
    assert "- **Front written (pareto.json):** 2026-11-22T10:00:00\n" in files["report.md"].read_text(encoding="utf-8")
    assert "<dt>Front written (pareto.json)</dt><dd>2026-11-22T10:00:00</dd>" in files["report.html"].read_text(encoding="utf-8")


def test_the_warnings_the_search_gave_about_its_setup_are_shown_near_the_top(run_dir: pathlib.Path) -> None:
    """Extrapolated latencies, a class val never looks at: said on the terminal and in search.log only, the report's
    reader never learned them. pareto.json keeps them (setup_warnings) and both reports list them, one line each."""
    header = json.loads((run_dir / "pareto.json").read_text())
    extrapolated = ("hw=cpu was calibrated on inputs 3x64x64, not on this data's 1x28x28: ... so its predicted latencies "
                    "are extrapolated")
    gap = "class 'rare' (4 images) has no val image: data.stratify=false; the val accuracy never looks at it"
    # a run folder from before the field: no section, and its latency warning is still shown beside the predictor
    (run_dir / "pareto.json").write_text(json.dumps({**header, "latency_warning": extrapolated}))
    written = write_reports(run_dir)
    md, page = written["report.md"].read_text(), written["report.html"].read_text()
    assert "Warnings" not in md + page and f"- **Latency warning:** {extrapolated}\n" in md
    (run_dir / "pareto.json").write_text(json.dumps({**header, "latency_warning": extrapolated,
                                                    "setup_warnings": [extrapolated, gap, "two\nlines <b>"]}))
    assert main([str(run_dir)]) == 0  # python -m nas.report <run dir>: from the files alone
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    section = md[md.index("\n## Warnings\n"):md.index("\n## Pareto front\n")]
    assert [line for line in section.splitlines() if line.startswith("- ")] == [
        f"- {extrapolated}", f"- {gap}", "- two lines &lt;b>"]
    assert md.count(extrapolated) == 1  # listed once: not also as the predictor's latency warning
    assert md.index("- **Trials by state:**") < md.index("## Warnings")  # the run's facts first, then its warnings
    items = re.findall(r"<li>(.*?)</li>", page[page.index("<h2>Warnings</h2>"):page.index("<h2>Pareto front")])
    assert items == [html.escape(extrapolated), html.escape(gap), "two lines &lt;b&gt;"] and page.count("extrapolated") == 1
    (run_dir / "pareto.json").write_text(json.dumps({**header, "setup_warnings": []}))  # none given: no section
    assert "Warnings" not in _markdown(run_dir)


def test_a_search_under_way_lists_its_own_setup_warnings_not_those_of_the_run_before(run_dir: pathlib.Path) -> None:
    """A search rewrites the folder's report as it starts (and stops) while pareto.json is still the previous run's: its
    Warnings listed that run's setup warnings (a train.threads the user had since fixed, say) as this run's. Its marker
    carries its own, which the report lists while it is under way."""
    from nas.run_folder import mark_started

    header = json.loads((run_dir / "pareto.json").read_text())
    before = "train.threads=8 is more than the 2 CPUs this process may use: training will run many times slower"
    now = "class 'rare' (4 images) has no val image: data.stratify=false; the val accuracy never looks at it"
    (run_dir / "pareto.json").write_text(json.dumps({**header, "setup_warnings": [before]}))
    marker = mark_started(run_dir, warnings=[now, "two\nlines <b>"])  # no report yet: rendered below
    written = write_reports(run_dir)
    md, page = written["report.md"].read_text(), written["report.html"].read_text()
    assert before not in md + page and "\n## Warnings\n" in md
    section = md[md.index("\n## Warnings\n"):md.index("\n## Pareto front\n")]
    assert [line for line in section.splitlines() if line.startswith("- ")] == [f"- {now}", "- two lines &lt;b>"]
    assert "_What the search(es) named above as not finished warned about their setup as they started" in section
    items = re.findall(r"<li>(.*?)</li>", page[page.index("<h2>Warnings</h2>"):page.index("<h2>Pareto front")])
    assert items == [html.escape(now), "two lines &lt;b&gt;"]

    assert mark_started(run_dir, warnings=[]) == marker  # a search with none: no section, not the previous run's
    md = _markdown(run_dir)
    assert "Not finished" in md and "Warnings" not in md and before not in md
    # a marker of an older version (no setup_warnings): pareto.json's, as before
    old = json.loads(marker.read_text())
    marker.write_text(json.dumps({k: v for k, v in old.items() if k != "setup_warnings"}))
    assert f"- {before}" in _markdown(run_dir)
    marker.unlink()  # finished: the warnings of the run that wrote pareto.json
    md = _markdown(run_dir)
    assert "Not finished" not in md and f"- {before}" in md and "_What the search that wrote pareto.json" in md


def test_the_int8_row_gives_the_members_whole_change_from_fp32_pruning_included() -> None:
    from nas.report.compressed import _compressed_rows

    # the int8 row's change is against the pruned file: a member's whole fp32 -> int8 change was nowhere
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.9, "file": "model.onnx"},
        "pruned": {"pruned": True, "test_acc": 0.895, "file": "model_pruned.onnx"},
        "int8": {"test_acc": 0.885, "qat_epochs": 0,
                 "changed_vs_before": {"now_wrong": 3, "now_right": 1, "p_value": 0.625, "file": "model_pruned.onnx"}},
        "summary": {"test_acc_fp32": 0.9, "test_acc_int8": 0.885,
                    "int8_vs_fp32": {"now_wrong": 20, "now_right": 5, "p_value": 0.004}}})
    int8 = _compressed_rows([member])[2][-1]
    assert ("vs model_pruned.onnx: 3 test images now wrong, 1 now right (p=0.62, not shown to differ); fp32 → int8 in "
            "all (pruning included): 90.00% → 88.50% (-1.50 pt); vs model.onnx: 20 test images now wrong, 5 now right "
            "(p=0.004, a real drop)") in int8
    del member.compressed["summary"]["int8_vs_fp32"]  # a file from before 2026-12-05: the points alone
    assert "fp32 → int8 in all (pruning included): 90.00% → 88.50% (-1.50 pt)" in _compressed_rows([member])[2][-1]
    assert "vs model.onnx" not in _compressed_rows([member])[2][-1]
    member.compressed["pruned"] = {"pruned": False}  # the row's own change is then model.onnx's: not repeated
    assert _compressed_rows([member])[2][-1].count("now wrong") == 1
    del member.compressed["summary"]  # older still: renders without the note
    assert "in all" not in _compressed_rows([member])[2][-1]


def test_a_report_writer_killed_before_its_rename_leaves_a_file_the_next_run_removes(tmp_path: pathlib.Path) -> None:
    from conftest import start_stopped_writer, stop

    from nas.checkpoint import remove_dead_writers_temps  # the search's cleanup (this module imports nothing from nas)

    killed, temp_of = start_stopped_writer("from nas.report.write import _write_atomic",
                                           "_write_atomic(Path(sys.argv[1]), '# report')", str(tmp_path / "report.md"))
    left = temp_of()
    stop(killed)  # kill -9 with the report written, not renamed (it was a fixed report.md.tmp, which nothing removed)
    assert left.parent == tmp_path and left.read_text() == "# report"
    assert remove_dead_writers_temps(tmp_path) == [left]
    assert list(tmp_path.iterdir()) == []


def test_the_front_tables_latency_column_says_it_is_predicted(written: dict[str, pathlib.Path]) -> None:
    # Beside "measured on host (ms)", a bare "latency (ms)" left open whether it was timed or predicted.
    md = written["report.md"].read_text(encoding="utf-8")
    assert "| arch_id | predicted latency (ms) | measured on host (ms) |" in md
    assert "<th>arch_id</th><th>predicted latency (ms)</th>" in written["report.html"].read_text(encoding="utf-8")


def test_the_pareto_pngs_legend_covers_no_trial(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A dominated trial lies slow and less accurate: the lower right corner, where the legend used to be drawn over it.
    trials = [_trial(0, "COMPLETE", FAST, "0.85", "0.30", "sepconv-conv", pareto=True),
              _trial(1, "COMPLETE", SLOW, "0.90", "0.45", "sepconv-conv-attn", pareto=True),
              _trial(2, "COMPLETE", "dddd000004", "0.80", "2.60", "pool-pool-conv")]
    members = [_member(0, FAST, 0.85, 0.84, 0.30, ["sepconv", "conv"]), _member(1, SLOW, 0.90, 0.89, 0.45, ["sepconv", "conv", "attn"])]
    run_dir = _write_run(tmp_path / "run", trials, members, budget=None)
    import nas.report.plots as report

    figures = []
    real = report._png_bytes
    monkeypatch.setattr(report, "_png_bytes", lambda fig: figures.append(fig) or real(fig))
    write_reports(run_dir)
    (ax,) = next(f for f in figures if f.axes and f.axes[0].get_title().startswith("Pareto front")).axes
    legend = ax.get_legend().get_window_extent()
    points = ax.transData.transform([(float(t["latency_ms"]), 100 * float(t["val_acc"])) for t in trials])
    assert not any(legend.contains(x, y) for x, y in points)


def test_the_pareto_pngs_legend_covers_no_int8_star(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A compress=smoke run: the fastest member's int8 star lay low at the left, under the long legend that "best" had
    # nowhere else to put, and the plot showed one star for two compressed members.
    trials = [_trial(0, "COMPLETE", "dddd000004", "0.278", "2.603", "pool-conv-pool"),
              _trial(1, "COMPLETE", "eeee000005", "0.294", "0.327", "pool-conv-sepconv"),
              _trial(2, "COMPLETE", FAST, "0.3455", "0.252", "pool-sepconv-conv", pareto=True),
              _trial(3, "COMPLETE", SLOW, "0.4193", "2.520", "sepconv-pool-pool", pareto=True)]
    members = [_member(2, FAST, 0.3455, 0.51, 0.252, ["pool", "sepconv", "conv"]),
               _member(3, SLOW, 0.4193, 0.44, 2.520, ["sepconv", "pool", "pool"])]
    run_dir = _write_run(tmp_path / "run", trials, members, budget=None)
    stars = {FAST: (0.240, 0.212), SLOW: (2.467, 0.437)}
    for arch_id, (ms, acc) in stars.items():
        (run_dir / "checkpoints" / arch_id).mkdir(parents=True)
        (run_dir / "checkpoints" / arch_id / "compressed_metrics.json").write_text(json.dumps({
            "hw": "edge_npu", "fp32": {"test_acc": 0.5}, "pruned": {"pruned": True, "ratio": 0.25},
            "int8": {"test_acc": acc, "latency_ms": ms, "val_acc_file": acc, "qat_epochs": 1,
                     "test_acc_source": "reference (host int8 kernels saturate)"}}))
    import nas.report.plots as report

    figures = []
    real = report._png_bytes
    monkeypatch.setattr(report, "_png_bytes", lambda fig: figures.append(fig) or real(fig))
    write_reports(run_dir)
    figure = next(f for f in figures if f.axes and f.axes[0].get_title().startswith("Pareto front"))
    (ax,) = figure.axes
    figure.canvas.draw()  # the legend's place is settled by drawing
    legend = ax.get_legend().get_window_extent()
    points = ax.transData.transform([(float(t["latency_ms"]), 100 * float(t["val_acc"])) for t in trials]
                                    + [(ms, 100 * acc) for ms, acc in stars.values()])
    assert not any(legend.contains(x, y) for x, y in points)


def test_the_header_says_which_weights_the_test_accuracies_are_of(run_dir: pathlib.Path) -> None:
    # final_train=none tests the search's proxy weights: nothing in the report said so, and its test accuracies read as
    # those of final-trained models.
    assert "Weights tested" not in _markdown(run_dir)  # metrics.json from before the field

    def with_final(arch_id: str, final: dict[str, Any] | None) -> None:
        path = run_dir / "checkpoints" / arch_id / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "final_train": final}))

    with_final(FAST, None)
    with_final(SLOW, None)
    written = write_reports(run_dir)
    line = "the search's proxy-trained weights (final_train=none; not trained further)"
    assert f"- **Weights tested:** {line}\n" in written["report.md"].read_text()
    assert f"<dt>Weights tested</dt><dd>{html.escape(line)}</dd>" in written["report.html"].read_text()
    with_final(SLOW, {"epochs": 6, "val_acc": 0.9, "seconds": 100.0})
    assert (f"- **Weights tested:** final-trained from scratch (6 epochs, final_train): {SLOW}; the search's proxy-trained "
            f"weights (final_train=none; not trained further): {FAST}\n") in _markdown(run_dir)
    with_final(FAST, {"epochs": 6, "val_acc": 0.85, "seconds": 90.0})
    assert "- **Weights tested:** final-trained from scratch (6 epochs, final_train)\n" in _markdown(run_dir)


def test_the_int8_stars_legend_says_whose_weights_were_compressed() -> None:
    # After final_train=none the stars are the proxy weights compressed; the legend called them "the final-trained member".
    from nas.report.plots import _int8_label

    def member(arch_id: str, final: Any) -> SimpleNamespace:
        metrics = {} if final == "absent" else {"final_train": final}
        return SimpleNamespace(arch_id=arch_id, metrics=metrics, compressed={
            "hw": "edge_npu", "int8": {"latency_ms": 0.2, "val_acc_file": 0.8}})

    proxy, final, old = member("a", None), member("b", {"epochs": 6}), member("c", "absent")
    assert _int8_label([proxy], "edge_npu") == (
        "compressed int8 of the member's proxy weights (final_train=none; val acc from its OpenVINO file)")
    assert _int8_label([final], "edge_npu") == _int8_label([old], "edge_npu") == (
        "compressed int8 of the final-trained member (val acc from its OpenVINO file)")
    assert _int8_label([proxy, final], "edge_npu") == (
        "compressed int8 of the member's model.pt (see 'Weights tested'; val acc from its OpenVINO file)")
    assert _int8_label([proxy], "cpu").startswith("compressed int8 of the final-trained")  # no star on this chip's plot


def test_the_compressed_tables_host_columns_say_how_they_were_timed_or_why_they_are_empty() -> None:
    # 'host OpenVINO (ms)' gave no batch or thread count, and after compress=smoke (measure_latency=false) only '–'.
    from nas.report.compressed import _host_latency_note

    how = ("batch 1, 1 thread, interleaved rounds, median of block medians; OpenVINO CPU with "
           "INFERENCE_PRECISION_HINT=f32 (int8 layers run in int8); *_bound: pre-bound input/output tensors")
    timed = SimpleNamespace(arch_id="a", compressed={"config": {"measure_latency": True}, "host_latency": {"how": how}})
    smoke = SimpleNamespace(arch_id="b", compressed={"config": {"measure_latency": False}, "host_latency": {"how": how}})
    failed = SimpleNamespace(arch_id="c", compressed={"error": "out of memory"})
    assert _host_latency_note([timed, failed]) == (
        "Host latencies: batch 1, 1 thread, interleaved rounds, median of block medians, on the machine that "
        "compressed the member.")
    assert _host_latency_note([smoke]) == ("'host' columns are empty for b: compressed with compress.measure_latency=false "
                                           "(as compress=smoke is), which times nothing.")
    assert _host_latency_note([timed, smoke]).count("Host latencies: batch 1,") == 1 and "empty for b:" in _host_latency_note([timed, smoke])
    assert _host_latency_note([failed, SimpleNamespace(arch_id="d", compressed=None)]) == ""


def test_a_folder_beside_a_run_names_the_run_folder_to_pass(run_dir: pathlib.Path) -> None:
    # The runs_dir, a member's checkpoint folder or a file of the run said "no trials.csv ...; run `python -m nas.search`
    # first", although a search had run: the line names the run folder instead.
    from nas.report import MissingRunFileError

    member = run_dir / "checkpoints" / FAST
    for inside in (member, run_dir / "checkpoints", run_dir / "trials.csv"):
        with pytest.raises(MissingRunFileError) as err:
            write_reports(inside)
        assert str(err.value) == f"{inside} is inside the run folder {run_dir}; pass that folder"
    with pytest.raises(MissingRunFileError) as err:
        write_reports(run_dir.parent)
    assert str(err.value) == f"{run_dir.parent} holds run folders, not a run's files; pass one of them: {run_dir}"
    (member / "empty").mkdir()  # two levels below the run: nothing of a run next to it
    with pytest.raises(MissingRunFileError, match=r"no trials\.csv in .*; run `python -m nas\.search` first"):
        write_reports(member / "empty")
    assert write_reports(run_dir)  # the run folder itself


def test_the_int8_row_names_whose_accuracy_it_shows_and_keeps_the_others() -> None:
    # compress for hw=edge_npu on a CPU whose int8 kernels saturate: the row's test acc is the file's own (run operator
    # by operator), and the note gives what this CPU's runtimes got; hw=cpu_ort: onnxruntime's; older files: OpenVINO's.
    # Said of the CPU that compressed it, not 'this CPU': `python -m nas.report <run folder>` may run on another machine.
    from nas.report.compressed import _compressed_rows, _int8_points
    from nas.report.plots import _int8_label

    def run(rel: float) -> dict[str, float]:
        return {"max_rel_diff": rel, "top1_agreement": 1.0}

    agree = {"onnx": run(0.336), "onnx_reference": run(0.015), "openvino": run(0.377), "int8_saturates": True,
             "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99}}
    int8 = {"test_acc": 0.8925, "test_acc_source": "reference (host int8 kernels saturate)", "test_acc_reference": 0.8925,
            "test_acc_openvino": 0.855, "test_acc_onnx": 0.881, "latency_ms": 0.161, "val_acc_file": 0.88,
            "qat_epochs": 0, "agreement": agree, "file": "model_int8.onnx", "file_ir": "model_int8.xml"}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, metrics={}, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.9, "latency_ms": 0.368}, "pruned": {"pruned": False}, "int8": int8})
    row = _compressed_rows([member], "edge_npu")[2]
    assert row[2].startswith("89.25%")
    assert row[-1].startswith(
        "test acc from model_int8.onnx run operator by operator, as a chip accumulating int8 in 32 bits computes it "
        "(the int8 kernels of the CPU that compressed it saturate); there OpenVINO 85.50%, onnxruntime 88.10%; QAT epochs 0")
    assert ("logits off the int8 model's by OpenVINO 38%, onnxruntime 34% (tolerance 15%); the row's is the file's own, "
            "run operator by operator (2% off)") in row[-1] and "has test acc" not in row[-1]
    assert _int8_points([member], "edge_npu") == [("aaaa000001", 0.161, 0.88)]
    assert _int8_label([member], "edge_npu") == ("compressed int8 of the final-trained member (val acc from its ONNX file "
                                                 "run operator by operator: the int8 kernels of the CPU that compressed "
                                                 "it saturate)")
    int8["test_acc_source"] = "onnxruntime"
    assert _compressed_rows([member], "edge_npu")[2][-1].startswith(
        "test acc from model_int8.onnx in onnxruntime, the chip's runtime; model_int8.xml in OpenVINO 85.50%; QAT epochs 0")
    assert "the file run operator by operator has test acc 89.25%" in _compressed_rows([member], "edge_npu")[2][-1]
    assert "val acc from its ONNX file in onnxruntime" in _int8_label([member], "edge_npu")
    for old in ("openvino", None):  # OpenVINO's, said as before; a file from before test_acc_source renders as it did
        int8.pop("test_acc_source")
        if old:
            int8["test_acc_source"] = old
        assert _compressed_rows([member], "edge_npu")[2][-1].startswith(
            "test acc from model_int8.xml in OpenVINO; model_int8.onnx in onnxruntime 88.10%; QAT epochs 0")
        assert _int8_label([member], "edge_npu").endswith("(val acc from its OpenVINO file)")
    other = SimpleNamespace(arch_id="bbbb000002", ms_decimals=3, metrics={}, compressed={
        **member.compressed, "int8": {**int8, "test_acc_source": "reference (host int8 kernels saturate)"}})
    assert _int8_label([member, other], "edge_npu").endswith("(val acc from its int8 file, run as its int8 row's note says)")


def test_compressed_rows_give_the_fp32_and_int8_files_val_accuracy_as_the_pruned_row_does() -> None:
    # Only the pruned row said its val accuracy (before / after distillation); the fp32 row's, the model pruning starts
    # from, is recorded too (compressed_metrics.json's fp32.val_acc), and the int8 file's (val_acc_file).
    from nas.report.compressed import _compressed_rows

    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.9, "val_acc": 0.9123},
        "pruned": {"pruned": True, "ratio": 0.2, "val_acc_before_recovery": 0.85, "val_acc": 0.9},
        "int8": {"test_acc": 0.89, "val_acc_file": 0.8977, "qat_epochs": 0, "file_ir": "model_int8.xml"}})
    fp32, pruned, int8 = (row[-1] for row in _compressed_rows([member]))
    assert fp32 == "val acc (compression) 91.23%"
    assert pruned.startswith("ratio 0.2, val acc 85.00% before / 90.00% after distillation")
    assert "; val acc 89.77% (run as the test acc)" in int8
    del member.compressed["fp32"]["val_acc"], member.compressed["int8"]["val_acc_file"]  # files from before: no note
    fp32, _, int8 = (row[-1] for row in _compressed_rows([member]))
    assert fp32 == "" and "val acc" not in int8


def test_the_int8_row_says_where_the_shipped_file_is_outside_the_tolerance_its_nncf_model_was_within() -> None:
    # A fresh user's member: QAT brought the NNCF model to 40.00% val (the pruned model's), the exported file scored
    # 33.33% on the same 15 val images, and the row showed the file's accuracy without a word of the tolerance.
    from nas.report import file_within_tolerance
    from nas.report.compressed import _compressed_rows

    int8 = {"test_acc": 0.3, "fp32_val_acc": 0.4, "ptq_val_acc": 0.3, "val_acc": 0.4, "val_acc_file": 0.3333,
            "max_acc_drop": 0.3, "qat_epochs": 2, "note": "", "file_ir": "model_int8.xml"}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "fp32": {"test_acc": 0.5, "file": "model.onnx"},
        "pruned": {"pruned": True, "ratio": 0.2, "val_acc": 0.4, "file": "model_pruned.onnx"}, "int8": int8})
    notes = _compressed_rows([member])[2][-1]
    assert ("int8 file (run as the test acc) lost 6.67 pt of val accuracy vs the pruned model (40.00% → 33.33%), more "
            "than compress.quantize.max_acc_drop=0.3, though the NNCF int8 model it was exported from scored 40.00%, "
            "within it (QAT judged that model): the file is outside the tolerance; ship model_pruned.onnx (pruned, "
            "float) where that loss matters") in notes
    assert "so that QAT trains on" not in notes  # the NNCF model lost nothing: no stricter allowance trains on
    assert file_within_tolerance(int8) is False
    int8["val_acc"] = 0.398  # lost 0.2 pt, within: an allowance under it runs QAT on
    assert "or compress again with compress.quantize.max_acc_drop under 0.20 so that QAT trains on" in (
        _compressed_rows([member])[2][-1])
    # the other way round: the file within, its NNCF model not (QAT ran out of epochs): the verdict is the file's
    int8.update(val_acc=0.39, val_acc_file=0.4, note="int8 loses 1.00 pt of val accuracy after 2 QAT epochs, more than ...")
    assert file_within_tolerance(int8) is True
    assert ("int8 file (run as the test acc) lost 0.00 pt of val accuracy vs the pruned model (40.00% → 40.00%), within "
            "compress.quantize.max_acc_drop=0.3, though the NNCF int8 model it was exported from scored 39.00%: "
            "within_tolerance is the file's") in _compressed_rows([member])[2][-1]
    # both on the same side, and files from before val_acc_file (or its drop allowance): no note
    for same in ({"val_acc": 0.4, "val_acc_file": 0.399}, {"val_acc": 0.3, "val_acc_file": 0.33}):
        int8.update(same)
        assert "int8 file (run as the test acc)" not in _compressed_rows([member])[2][-1]
    int8.update(val_acc=0.4, val_acc_file=0.3333)
    for key in ("val_acc_file", "max_acc_drop"):
        old = {k: v for k, v in int8.items() if k != key}
        member.compressed["int8"] = old
        assert "int8 file (run as the test acc)" not in _compressed_rows([member])[2][-1]
        assert file_within_tolerance(old) is None


def test_the_fp32_rows_val_accuracy_is_labelled_as_the_compressions_and_says_on_how_many_val_images(
        run_dir: pathlib.Path) -> None:
    # A real run's fp32 row said "val acc 50.60%" under a front table of 'val acc (search)' 34.63% and 'val acc (final)'
    # 50.73%: a third val accuracy of the member, the same weights (model.pt) scored by the compression on the 1,000
    # val images compress.eval_images kept, explained only by the note on scored images.
    header = json.loads((run_dir / "pareto.json").read_text())
    for m in header["members"]:
        m["val_acc_final"] = 0.5073
    (run_dir / "pareto.json").write_text(json.dumps(header))
    stages = {"fp32": {"test_acc": 0.501, "val_acc": 0.506}, "pruned": {"pruned": False}, "int8": {"test_acc": 0.5}}
    fast, slow = (run_dir / "checkpoints" / a / "compressed_metrics.json" for a in (FAST, SLOW))
    fast.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    slow.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 6000, "val_of": 6000}}))
    md = _markdown(run_dir)
    fp32 = {line.split(" | ")[0].strip("| "): line.split(" | ")[-1] for line in md.splitlines()
            if line.startswith("| ") and " | fp32 | " in line}
    assert fp32[FAST] == ("val acc (compression) 50.60% on 1,000 of the 6,000 val images (compress.eval_images; the "
                          "front table's on all) |")
    assert fp32[SLOW] == "val acc (compression) 50.60% |"  # every val image scored: nothing to qualify
    assert "val acc 50.60%" not in md


def test_the_front_table_gives_each_members_model_onnx_size_in_both_reports(run_dir: pathlib.Path) -> None:
    # A user choosing a member for a flash budget found params and MACs in the front table but no file size: only the
    # compressed table gave one, for compressed members. model.onnx's size on disk, in KiB as that table gives it.
    from nas.report.render import _render_html

    (run_dir / "checkpoints" / FAST / "model.onnx").write_bytes(b"\0" * (973 * 1024 + 100))
    md = _markdown(run_dir)
    lines = [line.split(" | ") for line in md.splitlines() if line.startswith("| arch_id") or line.startswith("| `")]
    column = lines[0].index("model.onnx size (KiB)")
    assert lines[0][column - 2:column + 1] == ["params", "MACs", "model.onnx size (KiB)"]
    sizes = {cells[0].strip("| `"): cells[column] for cells in lines[1:]}
    assert sizes == {FAST: "973", SLOW: "–", GONE: "–"}  # SLOW has no model.onnx, GONE no folder
    page = _render_html(nas.report.files._load_run(run_dir))
    assert "<th>model.onnx size (KiB)</th>" in page and '<td class="num">973</td>' in page


def test_report_lines_give_counts_in_the_number_they_take_and_shapes_as_channels_first() -> None:
    # "1 trials", "1 test images now wrong" and "28x28x1 images" (search.log and the models' input say 1x28x28).
    from nas.report.notes import _change_text, _dataset_text, _no_trials_note, _state_counts_text, _weights_text

    trial = SimpleNamespace(state="FAIL", stopped_early=False, duplicate=False)
    assert _state_counts_text([trial]) == "1 trial: 1 FAIL"
    assert _no_trials_note(SimpleNamespace(complete=[], trials=[trial])).startswith(
        "No finished trials: none of the 1 trial completed")
    change = {"file": "model.onnx", "now_wrong": 1, "now_right": 1, "p_value": 1.0}
    assert _change_text(change) == "vs model.onnx: 1 test image now wrong, 1 now right (p=1, not shown to differ)"
    one_epoch = SimpleNamespace(arch_id="a", metrics={"final_train": {"epochs": 1}})
    assert _weights_text([one_epoch]) == "final-trained from scratch (1 epoch, final_train)"
    header = {"dataset": "fashion_mnist", "data": {"root": "/d", "classes": 10, "input": [1, 28, 28],
                                                   "images": {"train": 54000, "val": 6000, "test": 10000}}}
    assert _dataset_text(header).startswith("fashion_mnist (/d): 10 classes, 1x28x28 images; 54,000 train")


def test_a_rebuild_from_a_study_hands_its_command_line_keys_to_export_study(monkeypatch, tmp_path) -> None:
    # export_study warns about settings typed on nas.report's command line that do nothing (the study's replace them; a
    # split size of data with that split of its own), but nas.report gave it none of the keys typed.
    import nas.errors
    import nas.study_export

    given = {}

    def fake_export(cfg, *, overridden=()):
        given["keys"] = set(overridden)
        return SimpleNamespace(run_dir=tmp_path / "s", files={}, stopped_by=None, found_nothing=False)

    monkeypatch.setattr(nas.study_export, "export_study", fake_export)
    monkeypatch.setattr(nas.errors, "stop_on_sigterm", lambda: None)
    assert main([f"search.runs_dir={tmp_path}", "search.study_name=s", "hw=cpu", "data.test_size=0.2"]) == 0
    assert given["keys"] == {"search.runs_dir", "search.study_name", "hw", "data.test_size"}


def test_a_worker_finishing_beside_a_running_one_lists_its_own_setup_warnings_and_says_whose_the_others_are(
        run_dir: pathlib.Path) -> None:
    # Worker A finished while worker B still ran: A's final report listed only B's setup warnings (from B's marker,
    # under a note saying they were the running search's) and none of its own, though A had just written pareto.json.
    from nas.run_folder import mark_started

    header = json.loads((run_dir / "pareto.json").read_text())
    shared = "class 'rare' (4 images) has no val image: data.stratify=false; the val accuracy never looks at it"
    theirs, mine = "train.threads=8 is more than the 2 CPU(s) this process may use", "seed archs left out: 2 of 3"
    (run_dir / "pareto.json").write_text(json.dumps({**header, "created": "2026-12-06T03:00:00+00:00",
                                                     "setup_warnings": ["of the run before"]}))
    mark_started(run_dir, warnings=[theirs, shared])  # B, still running (this process stands for it)
    md = _markdown(run_dir)  # B's start: the run before's are not listed, as before
    assert f"- {theirs}" in md and "of the run before" not in md

    (run_dir / "pareto.json").write_text(json.dumps({**header, "created": "2026-12-06T03:05:00+00:00",
                                                     "setup_warnings": [shared, mine]}))  # A's final write
    written = write_reports(run_dir)
    md, page = written["report.md"].read_text(), written["report.html"].read_text()
    section = md[md.index("\n## Warnings\n"):md.index("\n## Pareto front\n")]
    writer = section.index("_What the search that wrote pareto.json")
    besides = section.index("_What the search(es) named above as not finished warned besides")
    assert writer < besides
    assert [line for line in section[writer:besides].splitlines() if line.startswith("- ")] == [f"- {shared}", f"- {mine}"]
    assert [line for line in section[besides:].splitlines() if line.startswith("- ")] == [f"- {theirs}"]
    groups = re.findall(r'<ul class="warnings">(.*?)</ul>', page)
    assert [re.findall(r"<li>(.*?)</li>", g) for g in groups] == [[html.escape(shared), html.escape(mine)], [html.escape(theirs)]]
    assert "Not finished" in md  # B still runs


def test_a_search_marking_the_report_as_under_way_or_stopped_keeps_the_plots_its_files_still_give(
        run_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from nas.run_folder import _record_stop, mark_started

    write_reports(run_dir)  # an earlier run's report
    pngs = {name: (run_dir / name).read_bytes() for name in ("pareto.png", "latency_breakdown.png", "mixers.png")}
    drawn: list[Any] = []
    real = nas.report.plots._png_bytes
    monkeypatch.setattr(nas.report.plots, "_png_bytes", lambda fig: drawn.append(fig) or real(fig))
    # A search starting or stopping changes the pages' top, never what the plots are drawn from: none is drawn again
    # (most of a report's cost, on the search's way in and out).
    mark_started(run_dir, warnings=["one warning"])
    _record_stop(run_dir, "error: something mid-run")
    assert drawn == []
    for name in ("report.md", "report.html"):
        page = (run_dir / name).read_text(encoding="utf-8")
        assert "Not finished" in page and "something mid-run" in page and "one warning" in page, name
    assert {name: (run_dir / name).read_bytes() for name in pngs} == pngs

    # One missing is drawn (report.md links to all three), the others kept.
    (run_dir / "mixers.png").unlink()
    written = write_reports(run_dir, redraw_plots=False)
    assert len(drawn) == 1 and written["mixers.png"].read_bytes() == pngs["mixers.png"]
    assert set(written) == set(REPORT_FILES) and all(p.is_file() for p in written.values())
    # A file they are drawn from changed since (a search killed between writing a member's files and its report): all
    # are drawn again, so the pages' tables and the plots show the same run.
    later = (run_dir / "pareto.png").stat().st_mtime_ns + 10**9
    (run_dir / "checkpoints" / FAST / "compressed_metrics.json").write_text("{}")
    os.utime(run_dir / "checkpoints" / FAST / "compressed_metrics.json", ns=(later, later))
    drawn.clear()
    write_reports(run_dir, redraw_plots=False)
    assert len(drawn) == 3
    drawn.clear()
    write_reports(run_dir)  # by default (python -m nas.report, a search's final report) every plot is drawn
    assert len(drawn) == 3


def test_rebuild_from_a_study_names_a_value_to_quote_before_loading_the_search(tmp_path, capsys):
    # `python -m nas.report search.storage=... data.root=/data/Photos (2024)` imported the search (torch, Optuna) and
    # then printed Hydra's "mismatched input ' (' expecting <EOF>"; now one line with the quoted value, and no run folder.
    storage = f"sqlite:///{tmp_path}/study.db"
    code = _refused([f"search.storage={storage}", "search.study_name=x", f"search.runs_dir={tmp_path}",
                     "data=imagefolder", "data.root=/data/Photos (2024)"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("error: data.root=/data/Photos (2024): Hydra's override syntax takes '(', ')' only inside "
                                 "quotes; quote the value: \"data.root='/data/Photos (2024)'\"\n"), err
    assert not any(tmp_path.iterdir())


def test_compressed_accuracies_scored_on_part_of_the_images_say_of_how_many(run_dir: pathlib.Path) -> None:
    # compress.eval_images=N scores each file on a fixed random N of the val and test images (compressed_metrics.json's
    # eval_images); the compressed table's accuracies read as of every image. A note under it says which are of how
    # many; members scored on every image, or compressed before eval_images, are not named.
    from nas.report import scored_images

    stages = {"hw": "edge_npu", "fp32": {"test_acc": 0.9}, "pruned": {"pruned": False}, "int8": {"test_acc": 0.89}}
    fast, slow = (run_dir / "checkpoints" / a / "compressed_metrics.json" for a in (FAST, SLOW))
    fast.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    slow.write_text(json.dumps(stages))
    note = ("Compressed accuracies scored on part of the images (compress.eval_images, a fixed random subset of each "
            f"split; their intervals are of that many): {FAST}: on 1,000 of the 10,000 test images (one test image = "
            "0.1 pt) and 1,000 of the 6,000 val images.")
    assert _both_reports_say(run_dir, note)
    slow.write_text(json.dumps({**stages, "eval_images": {"test": 1, "test_of": 10000, "val": 600, "val_of": 600}}))
    assert f"; {SLOW}: on 1 of the 10,000 test images (one test image = 100 pt)." in _markdown(run_dir)
    fast.write_text(json.dumps({**stages, "eval_images": {"test": 1, "test_of": 10000, "val": 600, "val_of": 600}}))
    assert (f"split; their intervals are of that many): {FAST}, {SLOW}: on 1 of the 10,000 test images (one test image = "
            "100 pt).") in _markdown(run_dir)
    for whole in ({"test": 10000, "test_of": 10000, "val": 6000, "val_of": 6000}, None):
        for path in (fast, slow):
            path.write_text(json.dumps({**stages, "eval_images": whole} if whole else stages))
        assert "scored on part of the images" not in _markdown(run_dir)
    assert scored_images({"eval_images": {"test": 30, "test_of": 100, "val": 40, "val_of": 40}}) == {"test": (30, 100)}
    assert scored_images({"error": "out of memory"}) == scored_images(None) == {}


def test_int8_stars_scored_on_part_of_the_val_images_say_so_in_their_legend_and_hover(run_dir: pathlib.Path) -> None:
    # compress.eval_images=N scores the int8 file on N val images; the note under the table said so, but the Pareto
    # plot's star (its hover text in report.html, its legend in pareto.png too) gave its val acc as of every image.
    import nas.report
    from nas.report.plots import _int8_label

    stages = {"hw": "edge_npu", "fp32": {"test_acc": 0.9}, "pruned": {"pruned": False},
              "int8": {"test_acc": 0.89, "latency_ms": 0.2, "val_acc_file": 0.8}}
    fast, slow = (run_dir / "checkpoints" / a / "compressed_metrics.json" for a in (FAST, SLOW))
    fast.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    slow.write_text(json.dumps(stages))

    def star() -> tuple[str, list[str]]:
        run = nas.report.files._load_run(run_dir)
        (trace,) = [t for t in nas.report.plots._pareto_figure(run).data if t.marker.symbol == "star"]
        assert trace.name == _int8_label(run.members, "edge_npu")  # the PNG's legend is the same label
        return trace.name, list(trace.hovertext)

    label, hover = star()
    assert label == ("compressed int8 of the final-trained member (val acc from its OpenVINO file, some on part of the "
                     "val images: compress.eval_images, see the note under the table)")
    assert hover == [f"{FAST} int8<br>val acc 80.00% (on 1,000 of the 6,000 val images: compress.eval_images)<br>"
                     "predicted latency 0.200 ms on edge_npu", f"{SLOW} int8<br>val acc 80.00%<br>predicted latency "
                     "0.200 ms on edge_npu"]
    slow.write_text(fast.read_text())  # every star on the same part: the legend says on how many
    assert star()[0].endswith("(val acc from its OpenVINO file, on 1,000 of the 6,000 val images)")
    slow.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 500, "val_of": 6000}}))
    assert star()[0].endswith(", on part of the val images: compress.eval_images, see the note under the table)")
    for path in (fast, slow):  # every val image scored (the test images capped): as before
        path.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 6000, "val_of": 6000}}))
    label, hover = star()
    assert label.endswith("(val acc from its OpenVINO file)") and all("compress.eval_images" not in h for h in hover)


@pytest.mark.parametrize("flag", ["--cfg", "-m", "--config-dir=/x", "--info"])
def test_hydra_flags_are_refused_by_name_not_read_as_a_run_folder(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `nas.report search.storage=... search.study_name=... --cfg job` said "a run folder is read as it is, without
    # settings": the flag had been taken for a run folder.
    assert _refused(["search.storage=sqlite:///x.db", "search.study_name=s", flag, "job"]) == 2
    err = capsys.readouterr().err.strip()
    name = flag.split("=")[0]
    assert err == (f"error: {name} is not supported by nas.report (it is a flag of Hydra's, which python -m nas.search "
                   "takes); nas.report takes a run folder, or search.storage=<url> search.study_name=<name> "
                   "[key=value ...]"), err


def test_help_beside_settings_prints_the_usage_of_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search.storage=sqlite:///x.db", "search.study_name=s", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m nas.report <run_dir> | search.storage=<url> search.study_name=<name> "
                          "[key=value ...]"), out


def test_a_run_folder_with_settings_suggests_each_key_once_from_its_path(tmp_path: pathlib.Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "my runs" / "exp1"
    # the runs_dir quoted for Hydra inside the shell's quotes (`shell_override`), as the other rebuild hints are
    runs = f"\"search.runs_dir='{tmp_path / 'my runs'}'\""
    assert _refused([str(folder), "final_train=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"name the study instead: {runs} search.study_name=exp1 "
                        "final_train=none"), err
    # a study_name given among the settings is suggested once, as given
    assert _refused([str(folder), "search.study_name=s", "final_train=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"name the study instead: {runs} search.study_name=s "
                        "final_train=none") and err.count("search.study_name=") == 2, err  # the given list, the command


def test_a_renamed_run_folder_with_settings_names_the_study_its_study_db_holds(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # runs/r1 renamed to runs/r2: the refusal named search.study_name=r2, which the rebuild refused in turn (its
    # study.db holds study 'r1', and the rebuild reads the run folder search.runs_dir/search.study_name)
    import optuna

    folder = tmp_path / "r2"
    folder.mkdir()
    optuna.create_study(study_name="r1", storage=f"sqlite:///{folder / 'study.db'}")
    capsys.readouterr()  # Optuna's line that it created the study
    assert _refused([str(folder), "final_train=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: a run folder is read as it is, without settings (final_train=none); its study.db holds study 'r1', so "
        "the folder was copied or renamed from a run of that name (the rebuild reads the run folder "
        f"search.runs_dir/search.study_name): move it back to {tmp_path / 'r1'}, then to rebuild it from its study "
        f"with settings, name the study instead: search.runs_dir={tmp_path} search.study_name=r1 final_train=none"), err


@pytest.mark.parametrize("args, said", [
    (["runs/x", "--frob"], "--frob is not an option of nas.report (its only option is -h/--help, which prints the usage)"),
    (["--frob=3", "runs/x"], "--frob is not an option of nas.report (its only option is -h/--help, which prints the usage)"),
    (["search.storage=sqlite:///x.db", "search.study_name=s", "-q"],
     "-q is not an option of nas.report (its only option is -h/--help, which prints the usage)"),
    ([], "no run folder given"),
    (["runs/x", "runs/y"], "2 run folders given (runs/x, runs/y)"),
])
def test_a_command_line_argparse_refused_is_one_line_naming_what_is_taken(args: list[str], said: str,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # argparse printed its usage line and then "python -m nas.report: error: unrecognized arguments: --frob": two lines,
    # unlike nas.report's other refusals.
    assert _refused(args) == 2
    err = capsys.readouterr().err
    takes = "nas.report takes a run folder, or search.storage=<url> search.study_name=<name> [key=value ...]"
    assert err.count("\n") == 1 and err.startswith(f"error: {said}; {takes}"), err
    assert main([*args, "--help"]) == 0 and capsys.readouterr().out.startswith("usage: python -m nas.report <run_dir>")


def test_the_compressed_note_says_what_one_test_image_is_worth_where_the_test_split_was_cut(run_dir: pathlib.Path) -> None:
    # The header's "(one test image = 0.01 pt)" is of the whole test split; a compression scored on compress.eval_images
    # (compress=smoke: 1,000 images) moves 0.1 pt per image, and nothing said so beside its accuracies.
    stages = {"hw": "edge_npu", "fp32": {"test_acc": 0.9}, "pruned": {"pruned": False}, "int8": {"test_acc": 0.89}}
    path = run_dir / "checkpoints" / FAST / "compressed_metrics.json"
    path.write_text(json.dumps({**stages, "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    said = f"{FAST}: on 1,000 of the 10,000 test images (one test image = 0.1 pt) and 1,000 of the 6,000 val images."
    files = write_reports(run_dir)
    assert said in files["report.md"].read_text(encoding="utf-8")
    assert html.escape(said) in files["report.html"].read_text(encoding="utf-8")
    # only the val split cut: the test images are the header's, worth what it says
    path.write_text(json.dumps({**stages, "eval_images": {"test": 10000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    assert f"{FAST}: on 1,000 of the 6,000 val images." in _markdown(run_dir)
    # a balanced accuracy's test image weighs by its class, which the cut does not count: no single worth is given
    path.write_text(json.dumps({**stages, "metric": "balanced_accuracy",
                                "eval_images": {"test": 1000, "test_of": 10000, "val": 1000, "val_of": 6000}}))
    assert f"{FAST}: on 1,000 of the 10,000 test images and 1,000 of the 6,000 val images." in _markdown(run_dir)


def test_the_host_latency_note_names_the_machine_the_host_columns_were_timed_on() -> None:
    # The note said "on the machine that compressed the member" without naming it, although compressed_metrics.json
    # records it (host_latency.machine): a reader could not tell which CPU the host milliseconds are of.
    from nas.report.compressed import _host_latency_note

    how = "batch 1, 1 thread, interleaved rounds, median of block medians; OpenVINO CPU"
    epyc, xeon = "AMD EPYC; 2 cpus; Linux 6.1; family 23 model 49 stepping 0; avx2", "Intel Xeon; 2 cpus; avx512_vnni"

    def timed(arch_id: str, machine: str | None) -> SimpleNamespace:
        host = {"how": how, **({"machine": machine} if machine else {})}
        return SimpleNamespace(arch_id=arch_id, compressed={"config": {"measure_latency": True}, "host_latency": host})

    assert _host_latency_note([timed("a", epyc), timed("b", epyc)]) == (
        "Host latencies: batch 1, 1 thread, interleaved rounds, median of block medians, on the machine that "
        f"compressed the member ({epyc}).")
    assert _host_latency_note([timed("a", epyc), timed("b", xeon)]).endswith(
        f"on the machine that compressed the member (a: {epyc}; b: {xeon}).")
    # a compressed_metrics.json from before the field: the note as before
    assert _host_latency_note([timed("a", None)]).endswith("on the machine that compressed the member.")


def test_host_latencies_of_a_busy_machine_carry_its_caveat_under_the_compressed_table(run_dir: pathlib.Path) -> None:
    # The front table's 'measured on host' said when single calls had spread several hundred % (a busy machine); the
    # compressed table's host columns, timed in the same run, showed their times bare. compressed_metrics.json's
    # host_latency.busy (the compression's words, nas.latency.measure.busy_timing's) is now said under the table.
    busy = ("widest, OpenVINO model.onnx: single calls spread 450% around the median, p10 to p90, where quiet timings "
            "stay under 35%: the machine was busy, so this time is the load's as much as the model's")
    host = {"openvino_fp32": 0.3, "how": "batch 1, 1 thread, interleaved rounds, median of block medians; OpenVINO CPU",
            "spread": {"openvino_fp32": 4.5}, "busy": busy}
    stages = {"fp32": {"test_acc": 0.9, "latency_ms": 0.252, "host_latency_ms": {"openvino": 0.3}},
              "pruned": {"pruned": False}, "int8": {"test_acc": 0.89, "latency_ms": 0.252, "qat_epochs": 0}}
    path = run_dir / "checkpoints" / FAST / "compressed_metrics.json"
    path.write_text(json.dumps({"hw": "cpu", "config": {"measure_latency": True}, **stages, "host_latency": host}))
    assert _both_reports_say(run_dir, "Host latencies: batch 1, 1 thread, interleaved rounds, median of block medians, on "
                                      f"the machine that compressed the member. {FAST}'s host latencies were timed on a "
                                      f"busy machine ({busy}).")
    # quiet timings (busy None), and files from before the field: no caveat
    for quiet in ({**host, "busy": None}, {k: v for k, v in host.items() if k not in ("spread", "busy")}):
        path.write_text(json.dumps({"hw": "cpu", "config": {"measure_latency": True}, **stages, "host_latency": quiet}))
        assert "busy machine" not in _markdown(run_dir)


def test_the_two_host_timings_of_one_model_onnx_are_related_where_both_tables_show_them(run_dir: pathlib.Path) -> None:
    # The same model.onnx in OpenVINO fp32 read 0.338 ms in the front table and 0.252 ms in the compressed table, with
    # nothing saying they are two sessions' timings of one file. The report now says so, with the difference, where
    # both records name the file by the same SHA-256 (timings stubbed in the files, nothing timed here).
    digest = "ab" * 32
    header = json.loads((run_dir / "pareto.json").read_text())
    for raw in header["members"]:
        raw["measured_latency_ms"] = 0.338 if raw["arch_id"] == FAST else None
    (run_dir / "pareto.json").write_text(json.dumps(header))
    folder = run_dir / "checkpoints" / FAST
    metrics = json.loads((folder / "metrics.json").read_text())

    def write(timed: dict[str, Any] | None, host_digest: str | None, threads: int = 1) -> None:
        (folder / "metrics.json").write_text(json.dumps({**metrics, "measured_latency_ms": 0.338,
                                                         "measured_latency_file": timed}))
        (folder / "compressed_metrics.json").write_text(json.dumps({
            "hw": "cpu", "config": {"measure_latency": True, "latency_threads": threads},
            "fp32": {"test_acc": 0.9, "latency_ms": 0.3, "host_latency_ms": {"openvino": 0.252}},
            "pruned": {"pruned": False}, "int8": {"test_acc": 0.89, "latency_ms": 0.3, "qat_epochs": 0},
            "host_latency": {"openvino_fp32": 0.252, "how": "batch 1, 1 thread", "model_onnx_sha256": host_digest}}))

    timed = {"file": "model.onnx", "sha256": digest, "runtime": "openvino", "precision": "fp32", "threads": 1}
    write(timed, digest)
    assert _both_reports_say(run_dir, (
        "model.onnx in OpenVINO fp32 is timed twice, in separate sessions of the same file (the same SHA-256): for the "
        "front table's 'measured on host' and, interleaved with the compressed files, for this table's fp32 row; "
        f"{FAST}: 0.338 ms there, 0.252 ms here (-25%). The difference is the machine's between the sessions, not the "
        "model's: compare this table's host times with each other."))
    write(timed, digest, threads=2)  # timed with other threads: said, part of the difference is theirs
    assert f"{FAST}: 0.338 ms there, 0.252 ms here (-25%, 1 thread there and 2 threads here)." in _markdown(run_dir)
    write(timed, "cd" * 32)  # another file: not called the same one
    md = _markdown(run_dir)
    assert "timed twice" not in md and (f"The front table's 'measured on host' of {FAST} timed another model.onnx than "
                                        "this table's fp32 row") in md
    # files from before the digests, and a front timing in another runtime: no claim either way
    for front, here in ((None, digest), (timed, None), ({**timed, "runtime": "onnxruntime"}, digest)):
        write(front, here)
        md = _markdown(run_dir)
        assert "timed twice" not in md and "another model.onnx" not in md


def test_rebuilding_the_report_from_the_same_files_writes_the_same_html(run_dir: pathlib.Path) -> None:
    # `python -m nas.report <run folder>` rebuilt report.html with other bytes each time (Plotly's random div ids), so a
    # rebuild could not be checked against the file the search wrote.
    first = write_reports(run_dir)["report.html"].read_bytes()
    assert write_reports(run_dir)["report.html"].read_bytes() == first


def test_the_plots_latency_axes_name_the_chip_the_latencies_are_predicted_for(run_dir: pathlib.Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # pareto.png and latency_breakdown.png said "predicted latency (ms)" without the chip, so a plot taken out of the
    # report (a slide, a ticket) did not say whose milliseconds they were.
    import nas.report.plots as report

    figures = []
    real = report._png_bytes
    monkeypatch.setattr(report, "_png_bytes", lambda fig: figures.append(fig) or real(fig))
    written = write_reports(run_dir)
    labels = {f.axes[0].get_title(): f.axes[0].get_xlabel() for f in figures if f.axes}
    assert labels["Pareto front: val accuracy vs. predicted latency"] == "predicted latency on edge_npu (ms)"
    assert labels["Predicted latency of the front by stage"] == "predicted latency on edge_npu (ms)"
    page = written["report.html"].read_text(encoding="utf-8")
    for title in ("predicted latency on edge_npu (ms)", "predicted latency on edge_npu by stage (ms)",
                  "predicted latency on edge_npu by op kind (ms)"):
        assert f'"text":"{title}"' in page, title


def test_the_markdown_reports_breakdown_png_shows_the_op_kinds_as_the_html_does(run_dir: pathlib.Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # report.html plots the front's latency by stage and by op kind; report.md's latency_breakdown.png had the stages
    # alone, so a member whose time was mostly one op kind (LayerNorm left to an NPU's host CPU: 2.26 of 2.52 ms) said
    # so only in the HTML.
    import nas.report.plots as report

    figures = []
    real = report._png_bytes
    monkeypatch.setattr(report, "_png_bytes", lambda fig: figures.append(fig) or real(fig))
    write_reports(run_dir)
    breakdown = next(f for f in figures if f.axes and f.axes[0].get_title().endswith("by stage"))
    assert [ax.get_title() for ax in breakdown.axes] == ["Predicted latency of the front by stage",
                                                        "Predicted latency of the front by op kind"]
    kinds = breakdown.axes[1].get_legend_handles_labels()[1]
    assert kinds == ["conv", "dwconv", "bn"]  # the fixture's op kinds, in the HTML plot's order
    # each member's bar by op kind sums its ops' milliseconds (0.034 ms in the fixture)
    widths = [sum(p.get_width() for p in c.patches if p.get_y() < 0.5) for c in breakdown.axes[1].containers]
    assert sum(widths) == pytest.approx(0.034)
    assert "by stage and by op kind" in _markdown(run_dir)


def test_the_pareto_plots_hover_texts_say_their_latency_is_predicted_and_for_which_chip(run_dir: pathlib.Path) -> None:
    # A point's hover text said "latency 0.300 ms": read alone (a screenshot, a ticket), a timing on no chip.
    import nas.report

    run = nas.report.files._load_run(run_dir)
    texts = [h for trace in nas.report.plots._pareto_figure(run).data for h in trace.hovertext]
    assert texts and all("predicted latency " in h and " ms on edge_npu" in h for h in texts), texts
    assert any(f"trial 0 · {FAST}" in h and "val acc 85.00% · predicted latency 0.300 ms on edge_npu" in h for h in texts)


def test_the_front_tables_predicted_latency_says_at_which_precision_and_for_which_chip(run_dir: pathlib.Path) -> None:
    # 'predicted latency (ms)' of the front table did not say whether edge_npu's 0.252 ms is the int8 model's time or
    # model.pt's float one; pareto.json now records the chip's hw_precision and both reports say it under the table.
    header = json.loads((run_dir / "pareto.json").read_text())
    assert "'predicted latency'" not in _markdown(run_dir)  # a pareto.json from before the field: no note
    (run_dir / "pareto.json").write_text(json.dumps({**header, "hw_precision": "int8"}))
    note = ("'predicted latency': each member's architecture on edge_npu at its hw.precision, int8 (the int8 model's "
            "time on the chip, not model.pt's float one), from the latency predictor, not timed.")
    assert f"_{note}_" in _markdown(run_dir)
    assert html.escape(note) in nas.report.render._render_html(nas.report.files._load_run(run_dir))
    (run_dir / "pareto.json").write_text(json.dumps({**header, "hw": "cpu", "hw_precision": "fp32"}))
    assert ("_'predicted latency': each member's architecture on cpu at its hw.precision, fp32, from the latency "
            "predictor, not timed._") in _markdown(run_dir)


def test_weights_final_trained_on_a_subset_of_the_training_images_say_how_many(run_dir: pathlib.Path) -> None:
    # final_train=smoke trains 2 epochs on 512 images: the header said "final-trained from scratch (2 epochs,
    # final_train)", which reads as 2 epochs on the 54,000 training images.
    header = json.loads((run_dir / "pareto.json").read_text())
    (run_dir / "pareto.json").write_text(json.dumps({**header, "data": {"images": {"train": 54000, "val": 6000,
                                                                                  "test": 10000}}}))
    for arch_id in (FAST, SLOW):
        path = run_dir / "checkpoints" / arch_id / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()),
                                    "final_train": {"epochs": 2, "recipe": {"epochs": 2, "subset": 512}}}))
    assert ("- **Weights tested:** final-trained from scratch (2 epochs on 512 of the 54,000 training images, "
            "final_train)\n") in _markdown(run_dir)
    for subset in (None, 60000):  # the whole split: said as before
        for arch_id in (FAST, SLOW):
            path = run_dir / "checkpoints" / arch_id / "metrics.json"
            path.write_text(json.dumps({**json.loads(path.read_text()),
                                        "final_train": {"epochs": 2, "recipe": {"epochs": 2, "subset": subset}}}))
        assert "- **Weights tested:** final-trained from scratch (2 epochs, final_train)\n" in _markdown(run_dir)


def test_an_interrupted_trial_run_again_since_is_not_told_to_be_resumed(tmp_path: pathlib.Path) -> None:
    # A search stopped mid-trial by Ctrl-C and resumed to the end still reported "Failed trials: 1 × interrupted (Ctrl-C
    # or SIGTERM); rerun the same command to resume": the rerun had run it (trial 1, the same architecture).
    interrupted = "interrupted (Ctrl-C or SIGTERM); rerun the same command to resume"  # nas.study.INTERRUPTED_REASON
    trials = [_trial(0, "FAIL", "a0", "", "0.3", "conv", fail_reason=interrupted),
              _trial(1, "COMPLETE", "a0", "0.8", "0.3", "conv", pareto=True),
              _trial(2, "FAIL", "a2", "", "0.4", "pool", fail_reason=interrupted),
              _trial(3, "WAITING", "a2", "", "0.4", "pool")]
    written = write_reports(_write_run(tmp_path / "resumed", trials, [], budget=None))
    for name in ("report.md", "report.html"):
        text = written[name].read_text(encoding="utf-8")
        assert ("1 × interrupted (Ctrl-C or SIGTERM), run again since (trials.csv: a later trial of its arch_id); "
                "1 × interrupted (Ctrl-C or SIGTERM); rerun the same command to resume") in text, name
    # once the second one has run again too, nothing is left to resume
    trials[3] = _trial(3, "COMPLETE", "a2", "0.7", "0.4", "pool")
    md = write_reports(_write_run(tmp_path / "done", trials, [], budget=None))["report.md"].read_text(encoding="utf-8")
    assert ("- **Failed trials:** 2 × interrupted (Ctrl-C or SIGTERM), run again since (trials.csv: a later trial of "
            "its arch_id)\n") in md
    assert "rerun the same command" not in md




def test_the_facts_give_the_searchs_proxy_training_recipe_and_old_folders_render_without(run_dir: pathlib.Path) -> None:
    # The report never said how the search trained its candidates, so train=smoke's low val accuracies (1 epoch on 512
    # images) looked like a broken search; pareto.json's `train` (its proxy recipe) is now a fact of both reports.
    assert "Search training" not in _markdown(run_dir)  # a pareto.json from before the field
    header = json.loads((run_dir / "pareto.json").read_text())
    (run_dir / "pareto.json").write_text(json.dumps({**header, "train": {"epochs": 1, "subset": 512},
                                                     "data": {"images": {"train": 54000, "val": 6000, "test": 10000}}}))
    line = ("1 epoch on 512 of the 54,000 training images per candidate (train): the search's val accuracies (the plot's, "
            "'val acc (search)') are of these proxy-trained weights")
    written = write_reports(run_dir)
    assert f"- **Search training:** {line}\n" in written["report.md"].read_text()
    assert f"<dt>Search training</dt><dd>{html.escape(line)}</dd>" in written["report.html"].read_text()
    (run_dir / "pareto.json").write_text(json.dumps({**header, "train": {"epochs": 2, "subset": None}}))
    assert "- **Search training:** 2 epochs per candidate (train): " in _markdown(run_dir)


def test_a_run_on_smoke_settings_says_at_the_top_that_its_accuracies_are_not_meaningful(run_dir: pathlib.Path) -> None:
    # Only README's dry-run line said that train/final_train/compress=smoke accuracies mean nothing: a report of such a
    # run read as a real one. pareto.json's `smoke_settings` names the groups; older files and [] show no line.
    header = json.loads((run_dir / "pareto.json").read_text())
    for smoke in (None, []):
        (run_dir / "pareto.json").write_text(json.dumps({**header, **({} if smoke is None else {"smoke_settings": smoke})}))
        assert "smoke" not in _markdown(run_dir)
    (run_dir / "pareto.json").write_text(json.dumps({**header, "smoke_settings": ["train", "compress"]}))
    line = ("train=smoke and compress=smoke: seconds-long settings to try the pipeline, so the accuracies in this report "
            "are not meaningful; do not choose or deploy a model by them")
    written = write_reports(run_dir)
    md = written["report.md"].read_text()
    title = nas.report.notes._title(nas.report.files._load_run(run_dir))
    assert md.startswith(f"# {title}\n\n> **Smoke run:** {line}\n")
    page = written["report.html"].read_text()
    assert f'<p class="smoke"><strong>Smoke run:</strong> {html.escape(line)}</p>' in page
    assert page.index("Smoke run") < page.index('<dl class="facts">')


def test_the_smoke_line_names_the_settings_set_beside_a_smoke_group(run_dir: pathlib.Path) -> None:
    # After final_train=smoke final_train.epochs=3 the line named 'final_train=smoke' alone, its file's recipe rather than
    # the one that ran: pareto.json's smoke_changed gives the settings set beside the group, named with it.
    header = json.loads((run_dir / "pareto.json").read_text())
    (run_dir / "pareto.json").write_text(json.dumps({**header, "smoke_settings": ["train", "final_train"],
                                                     "smoke_changed": ["final_train.epochs=3", "final_train.lr=0.01"]}))
    assert ("> **Smoke run:** train=smoke and final_train=smoke final_train.epochs=3 final_train.lr=0.01: seconds-long "
            "settings to try the pipeline") in _markdown(run_dir)

def test_the_pareto_plots_title_says_val_accuracy_in_every_report(run_dir: pathlib.Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # report.md said "val accuracy vs. predicted latency", report.html's section and pareto.png "accuracy vs. ...".
    title = "Pareto front: val accuracy vs. predicted latency"
    figures = []
    real = nas.report.plots._png_bytes
    monkeypatch.setattr(nas.report.plots, "_png_bytes", lambda fig: figures.append(fig) or real(fig))
    written = write_reports(run_dir)
    assert title in {f.axes[0].get_title() for f in figures if f.axes}
    assert f"<h2>{title}</h2>" in written["report.html"].read_text()
    assert f"![{title}](pareto.png)" in written["report.md"].read_text()
    assert "Pareto front: accuracy vs." not in written["report.html"].read_text()


def test_the_reports_interrupted_prefix_is_how_the_studys_interrupted_reason_starts() -> None:
    # nas.report imports nothing else of nas, so it keeps its own copy of the prefix by which it recognises a trial the
    # search recorded as interrupted; a change of nas.study's wording must not silently stop the report recognising it
    from nas.report.notes import _INTERRUPTED
    from nas.study import INTERRUPTED_REASON

    assert INTERRUPTED_REASON.startswith(_INTERRUPTED)


def test_write_reports_names_a_run_dir_that_is_no_path():
    # From Python, write_reports(result.run_dir) with a run_dir lookup that gave None failed in pathlib: "expected str,
    # bytes or os.PathLike object, not NoneType", naming neither the argument nor what it takes
    from nas.report import write_reports

    with pytest.raises(TypeError, match=r"^run_dir=None is a NoneType; pass the run folder's path \(a str or a "
                                        r"pathlib\.Path\), e\.g\. SearchResult\.run_dir$"):
        write_reports(None)


def test_a_run_whose_every_trial_was_over_the_budget_names_the_fastest_sampled_latency(tmp_path: pathlib.Path) -> None:
    # It said "none of the 3 trials completed (trials.csv's fail_reason column says why for each)": the user had to open
    # the CSV to learn that the budget left nothing to train, and how far off it was.
    trials = [_trial(0, "PRUNED", "p0", "", "0.35", "pool", feasible=False, fail_reason="predicted 0.350 ms > budget 0.2 ms"),
              _trial(1, "PRUNED", "p1", "", "0.231", "conv", feasible=False, fail_reason="predicted 0.231 ms > budget 0.2 ms"),
              _trial(2, "PRUNED", "p2", "", "2.6", "attn", feasible=False, fail_reason="predicted 2.600 ms > budget 0.2 ms")]
    written = write_reports(_write_run(tmp_path / "over", trials, [], budget=0.2))
    for name in ("report.md", "report.html"):
        text = written[name].read_text(encoding="utf-8")
        assert ("No finished trials: all 3 trials sampled were predicted slower than the latency budget (0.2 ms), so none "
                "was trained; the fastest of them was 0.231 ms") in text, name


def test_the_int8_rows_note_excuses_near_tie_flips_as_the_compressions_log_does() -> None:
    # compress=smoke models have near-tied logits: the file run operator by operator, ~1% off, agreed on top-1 for
    # ~98.3% of the images and the row called it an export problem. Where compressed_metrics.json records the share
    # with near-tie flips excused (compress.export.agreement), that share is judged, and the note gives both.
    from nas.report.compressed import _compressed_rows

    def run(rel: float, top1: float, decided: float, near: int) -> dict[str, float]:
        return {"max_rel_diff": rel, "top1_agreement": top1, "top1_agreement_decided": decided, "near_tie_flips": near}

    agree = {"onnx": run(0.076, 0.972, 0.975, 15), "onnx_reference": run(0.01, 0.983, 1.0, 85),
             "openvino": run(0.128, 0.944, 0.95, 30), "int8_saturates": True,
             "tolerance": {"max_rel_diff": 0.15, "top1_agreement": 0.99}}
    int8 = {"test_acc": 0.27, "test_acc_source": "reference (host int8 kernels saturate)", "test_acc_reference": 0.27,
            "qat_epochs": 0, "agreement": agree}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, metrics={}, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.3}, "pruned": {"pruned": False}, "int8": int8})
    note = _compressed_rows([member], "edge_npu")[2][-1]
    assert "export problem" not in note
    # the runtimes as deployed: their raw share (a saturating CPU's flips are the deployed file's answers)
    assert ("the same top-1 class as the int8 model for OpenVINO 94.4%, onnxruntime 97.2% of the test images "
            "(tolerance 99%)") in note
    agree["onnx_reference"] = run(0.01, 0.983, 0.988, 25)  # decided flips beyond the tolerance: still the file's fault
    assert ("the file run operator by operator too (1% off, 98.3% the same top-1 class, 98.8% but for 25 near ties): "
            "the exported file does not compute") in _compressed_rows([member], "edge_npu")[2][-1]
    agree["onnx_reference"] = run(0.01, 0.983, 1.0, 85)
    agree.update(onnx=run(0.02, 0.985, 0.995, 50), openvino=run(0.02, 0.985, 0.995, 50))  # near ties, yet deployed
    assert "OpenVINO 98.5%, onnxruntime 98.5% of the test images" in _compressed_rows([member], "edge_npu")[2][-1]
    agree.update(onnx=run(0.02, 1.0, 1.0, 0), openvino=run(0.02, 1.0, 1.0, 0))  # only the reference's near ties: no note
    assert "top-1" not in _compressed_rows([member], "edge_npu")[2][-1]


def test_one_near_tie_is_named_in_the_singular() -> None:
    # "100.0% but for 1 near ties" in the report's int8 notes and the compression's warning
    from nas.report import top1_text

    run = {"top1_agreement": 0.984375, "top1_agreement_decided": 1.0, "near_tie_flips": 1}
    assert top1_text(run) == "98.4% the same top-1 class, 100.0% but for 1 near tie"
    assert top1_text(run | {"top1_agreement_decided": 0.99, "near_tie_flips": 2}).endswith("99.0% but for 2 near ties")


def test_the_compressed_tables_pruned_row_gives_the_reason_it_was_not_pruned(run_dir: pathlib.Path) -> None:
    """compress.prune.ratio=0 read "not pruned (compress.prune sets no target, or the target was already met)": the
    reason compressed_metrics.json records is the row's note; a file from before it keeps the old words."""
    fp32, int8 = {"test_acc": 0.9, "latency_ms": 0.252}, {"test_acc": 0.89, "latency_ms": 0.252, "qat_epochs": 0}
    path = run_dir / "checkpoints" / FAST / "compressed_metrics.json"
    path.write_text(json.dumps({"hw": "edge_npu", "hw_precision": "int8", "fp32": fp32, "int8": int8,
                                "pruned": {"pruned": False, "reason": "compress.prune.ratio=0 removes no channel"}}))
    assert "| not pruned: compress.prune.ratio=0 removes no channel |" in _markdown(run_dir)
    path.write_text(json.dumps({"hw": "edge_npu", "hw_precision": "int8", "fp32": fp32, "int8": int8,
                                "pruned": {"pruned": False}}))
    assert "| not pruned (compress.prune sets no target, or the target was already met) |" in _markdown(run_dir)


def test_the_int8_rows_qat_reason_says_gained_where_ptq_raised_the_val_accuracy() -> None:
    # compress.prune.ratio=0.9 (a model PTQ happened to help) read "PTQ lost -0.80 pt of val accuracy, within ...": a
    # loss of minus points. A gain is said as one; the verdict against max_acc_drop is unchanged.
    from nas.report.compressed import _compressed_rows

    int8 = {"test_acc": 0.121, "qat_epochs": 0, "fp32_val_acc": 0.13, "ptq_val_acc": 0.138, "max_acc_drop": 0.3}
    member = SimpleNamespace(arch_id="aaaa000001", ms_decimals=3, compressed={
        "hw": "edge_npu", "fp32": {"test_acc": 0.5}, "pruned": {"pruned": False}, "int8": int8})
    note = _compressed_rows([member], "edge_npu")[2][-1]
    assert "QAT epochs 0 (PTQ gained 0.80 pt of val accuracy vs the fp32 model, within compress.quantize.max_acc_drop=0.3)" in note
    assert "lost -" not in note
    int8.update(ptq_val_acc=0.13, max_acc_drop=0.0)  # no change at max_acc_drop=0: within, as compress.quantize judges it
    assert "QAT epochs 0 (PTQ lost 0.00 pt of val accuracy vs the fp32 model, within compress.quantize.max_acc_drop=0)" in \
        _compressed_rows([member], "edge_npu")[2][-1]


def test_a_compression_killed_before_its_compressed_metrics_json_is_named_unfinished(run_dir: pathlib.Path) -> None:
    """A kill mid-compression left model_pruned.* in the member's folder, and the report said "No compressed members
    (compress.members=none, or compression has not run yet)": its row now says what is there and what redoes it."""
    folder = run_dir / "checkpoints" / SLOW
    for name in ("model_pruned.pt", "model_pruned.onnx"):
        (folder / name).write_bytes(b"x")
    files = write_reports(run_dir)
    note = ("compression interrupted (or still running): its folder holds model_pruned.pt, model_pruned.onnx but no "
            "compressed_metrics.json, which it writes last; rerunning the command that compressed it (the search's, or "
            "python -m compress.run's) redoes it")
    text = files["report.md"].read_text(encoding="utf-8")
    assert f"| {SLOW} | unfinished | – | – | – | – | – | – | – | {note} |" in text and "No compressed members" not in text
    assert html.escape(note) in files["report.html"].read_text(encoding="utf-8")
    (folder / "compressed_metrics.json").write_text(json.dumps(  # the files a finished compression describes: no row
        {"hw": "edge_npu", "fp32": {"test_acc": 0.9}, "pruned": {"pruned": False}, "int8": {"test_acc": 0.89}}))
    assert "unfinished" not in _markdown(run_dir)


def test_files_gone_from_a_members_folder_are_named_as_missing_with_the_command_that_makes_them_again(
        run_dir: pathlib.Path) -> None:
    """A member's model.onnx or model_int8.xml deleted by hand was still listed in the compressed table as its file,
    and nothing said it was gone: the report claimed files that were not there."""
    folder = run_dir / "checkpoints" / SLOW
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "final_train": None, "test_acc_onnx": 0.88}))
    files = {"fp32_onnx": "model.onnx", "int8_onnx": "model_int8.onnx", "int8_xml": "model_int8.xml",
             "int8_bin": "model_int8.bin"}
    (folder / "compressed_metrics.json").write_text(json.dumps(
        {"hw": "edge_npu", "files": files, "fp32": {"test_acc": 0.9, "file": "model.onnx"}, "pruned": {"pruned": False},
         "int8": {"test_acc": 0.89, "qat_epochs": 0, "file": "model_int8.onnx", "file_ir": "model_int8.xml"}}))
    for name in ("model.pt", "model.onnx", "model_int8.onnx", "model_int8.xml", "model_int8.bin"):
        (folder / name).write_bytes(b"x")
    assert "missing" not in _markdown(run_dir).split("## Compressed")[-1]
    assert "gone from" not in _markdown(run_dir)
    (folder / "model.onnx").unlink()
    (folder / "model_int8.xml").unlink()
    text = _markdown(run_dir)
    assert "| model.onnx (missing) |" in text
    note = (f"Files gone from the members' folders: {SLOW}: model.onnx, model_int8.xml. Rerun the search command to make "
            "them again (model.onnx from the kept model.pt, without training; the int8 files by compressing the member "
            "again); until then their rows describe files that are not there.")
    assert _both_reports_say(run_dir, note)
    # the OpenVINO IR alone gone: the search converts it again from model_int8.onnx, without compressing (the note said
    # "by compressing the member again", minutes of pruning and QAT)
    (folder / "model.onnx").write_bytes(b"x")
    (folder / "model_int8.bin").unlink()
    ir_note = (f"Files gone from the members' folders: {SLOW}: model_int8.bin, model_int8.xml. Rerun the search command to "
               "make them again (the OpenVINO IR converted again from the kept model_int8.onnx, without compressing the "
               "member again); until then their rows describe files that are not there.")
    assert f"_{ir_note}_" in _markdown(run_dir)
    # beside a member that needs compressing again, each is said
    other = run_dir / "checkpoints" / FAST
    (other / "compressed_metrics.json").write_text((folder / "compressed_metrics.json").read_text())
    for name in ("model.pt", "model.onnx", "model_int8.xml", "model_int8.bin"):
        (other / name).write_bytes(b"x")
    assert ("(model.onnx from the kept model.pt, without training; the int8 files by compressing the member again, or, "
            "where only the OpenVINO IR (model_int8.xml, model_int8.bin) is gone, by converting it again from the kept "
            "model_int8.onnx)") in _markdown(run_dir)


def test_a_run_folder_whose_trials_csv_or_pareto_json_was_deleted_names_the_rebuild_from_its_study(
        run_dir: pathlib.Path) -> None:
    """trials.csv or pareto.json deleted from a run folder whose search ran (its study.db and config.yaml are there) said
    "run `python -m nas.search` first": the rebuild from the study writes them again, with no training."""
    (run_dir / "study.db").write_bytes(b"")
    (run_dir / "config.yaml").write_text("data: {root: /data/fm}\ncompress: {members: none}\n")
    for name in ("trials.csv", "pareto.json"):
        kept = (run_dir / name).read_bytes()
        (run_dir / name).unlink()
        with pytest.raises(MissingRunFileError) as err:
            write_reports(run_dir)
        message = str(err.value)
        assert message.startswith(f"no {name} in {run_dir}; rebuild the run folder's files from its study: python -m "
                                  f"nas.report search.runs_dir={run_dir.parent} search.study_name=run ")
        assert "data.root=/data/fm" in message and "compress=none" in message and "nas.search` first" not in message
        (run_dir / name).write_bytes(kept)


def test_a_renamed_run_folder_missing_trials_csv_names_the_rebuild_of_its_databases_study(
        tmp_path: pathlib.Path, run_dir: pathlib.Path) -> None:
    """A run folder copied or renamed from runs/r1 to runs/r2 named the rebuild search.study_name=r2, which was refused:
    its study.db holds study 'r1', and the rebuild reads the folder runs_dir/study_name. Read from the database, without
    writing to it."""
    import optuna

    folder = run_dir.rename(tmp_path / "r2")
    storage = f"sqlite:///{folder / 'study.db'}"
    optuna.create_study(study_name="r1", storage=storage)
    (folder / "trials.csv").unlink()
    before = (folder / "study.db").stat().st_mtime_ns
    with pytest.raises(MissingRunFileError) as err:
        write_reports(folder)
    assert str(err.value).startswith(
        f"no trials.csv in {folder}; its study.db holds study 'r1', so the folder was copied or renamed from a run of "
        f"that name (the rebuild reads the run folder search.runs_dir/search.study_name): move it back to {tmp_path / 'r1'}, "
        f"then rebuild the run folder's files from its study: python -m nas.report search.runs_dir={tmp_path} "
        "search.study_name=r1 "), err.value
    assert (folder / "study.db").stat().st_mtime_ns == before and not (tmp_path / "r1").exists()
    (tmp_path / "r1").mkdir()  # the original still there: moved elsewhere under that name
    assert "move it into another folder as r1 (" in str(pytest.raises(MissingRunFileError, write_reports, folder).value)
    optuna.create_study(study_name="r0", storage=storage)  # several, none of the folder's name: the user picks one
    assert (f"its study.db holds studies 'r0', 'r1', none named 'r2': move the folder to {tmp_path}/<the name of the "
            f"study to rebuild> (the rebuild reads the run folder search.runs_dir/search.study_name), then rebuild the "
            f"run folder's files from its study: python -m nas.report search.runs_dir={tmp_path} "
            "search.study_name=<its name> ") in str(pytest.raises(MissingRunFileError, write_reports, folder).value)
    optuna.create_study(study_name="r2", storage=storage)  # the folder's own among them: its name, as before
    assert (f"no trials.csv in {folder}; rebuild the run folder's files from its study: python -m nas.report "
            f"search.runs_dir={tmp_path} search.study_name=r2 ") in str(
                pytest.raises(MissingRunFileError, write_reports, folder).value)


def test_a_run_folder_whose_first_search_was_killed_before_pareto_json_says_so_and_to_rerun_it(
        run_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first search killed (kill -9) during its members' final training leaves no pareto.json: the report of its
    folder said only "no pareto.json ...; rebuild ...", not that its search was killed, nor that rerunning it resumes."""
    import os
    import socket

    from nas.run_folder import mark_started

    (run_dir / "study.db").write_bytes(b"")
    (run_dir / "config.yaml").write_text("data: {root: /data/fm}\ncompress: {members: none}\n")
    (run_dir / "pareto.json").unlink()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a real pid whose process is gone
    with monkeypatch.context() as m:
        m.setattr(os, "getpid", lambda: child.pid)
        mark_started(run_dir, warnings=())
    with pytest.raises(MissingRunFileError) as err:
        write_reports(run_dir)
    message = str(err.value)
    assert message.startswith(f"no pareto.json in {run_dir}: the search started ")
    assert (f"(pid {child.pid} on {socket.gethostname()}) was killed or crashed before it wrote pareto.json (its process "
            "is gone): rerun the search command to resume a stopped search, or rebuild the run folder's files from its "
            "study: python -m nas.report ") in message and "\n" not in message
    for marker in run_dir.glob(".running.*"):
        marker.unlink()
    mark_started(run_dir, warnings=())  # this process: a search still running
    with pytest.raises(MissingRunFileError, match=r"has not written pareto\.json yet \(it writes it when it ends"):
        write_reports(run_dir)


def test_the_report_of_a_run_folder_refreshes_pareto_csv_once_a_members_int8_file_is_missing(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # model_int8.onnx deleted by hand: the report's compressed table marked it "(missing)", but pareto.csv, unchanged
    # by the report, still named it as the member's int8 file. It now says the same, and the report writes it again.
    folder = run_dir / "checkpoints" / SLOW
    (folder / "compressed_metrics.json").write_text(json.dumps(
        {"hw": "edge_npu", "files": {"int8_onnx": "model_int8.onnx"}, "fp32": {"test_acc": 0.9}, "pruned": {"pruned": False},
         "int8": {"test_acc": 0.89, "qat_epochs": 0, "file": "model_int8.onnx"}}))
    (folder / "model_int8.onnx").write_bytes(b"x")
    assert main([str(run_dir)]) == 0
    capsys.readouterr()
    (folder / "model_int8.onnx").unlink()
    assert main([str(run_dir)]) == 0
    assert str(run_dir / "pareto.csv") in capsys.readouterr().out.splitlines()  # written again
    with open(run_dir / "pareto.csv", newline="") as f:
        rows = {r["arch_id"]: r for r in csv.DictReader(f)}
    assert rows[SLOW]["int8_file"] == f"checkpoints/{SLOW}/model_int8.onnx (missing)"
    assert "| model_int8.onnx (missing) |" in (run_dir / "report.md").read_text()  # the report's words


@pytest.mark.parametrize("code, what", [("EROFS", "is on a read-only file system (Read-only file system)"),
                                        ("EACCES", "is not writable by this user (Permission denied)")])
def test_a_run_folder_that_is_read_only_is_one_line_naming_the_file_and_saying_the_folder_is_not_writable(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, code: str,
        what: str) -> None:
    # `python -m nas.report ro` on a read-only mount said only "error: Read-only file system in ro": neither the file it
    # was writing nor that the folder takes no files.
    import errno
    import os

    number = getattr(errno, code)
    opened = pathlib.Path.open

    def refusing_open(self, mode="r", *args, **kwargs):
        if "x" in mode:  # the report's atomic writes create their temporary file so
            raise OSError(number, os.strerror(number), str(self))
        return opened(self, mode, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refusing_open)
    assert main([str(run_dir)]) == 1  # as every command's failed write (it was 2, bad input's)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    # the file named is the one being written, not its temporary file (.pareto.png.<random>...tmp)
    assert err.startswith(f"error: cannot write {run_dir / 'pareto.png'}: the run folder {run_dir} {what}; "), err
    assert "copy the folder somewhere writable and run python -m nas.report on the copy" in err


def test_the_report_of_a_run_folder_waits_for_a_workers_turn_and_writes_holding_the_run_folders_lock(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m nas.report <run folder>` rewrote the report and pareto.csv without the run folder's .files.lock, which
    # a search's workers take turns through (and compress.run refreshes these files under): beside a worker writing the
    # run's files, its report could mix the two writers' states or be written over by an older one. It now waits for
    # the worker's turn, saying so on stderr, and reads and writes holding the lock. (The drawing is stubbed.)
    import threading

    import nas.pareto_csv
    from conftest import lock_held_elsewhere
    from nas.checkpoint import FILES_LOCK, run_folder_lock

    lock = run_dir / FILES_LOCK
    written = []
    monkeypatch.setattr(nas.report.cli, "_load_run", lambda d: written.append(("read", lock_held_elsewhere(lock)))
                        or SimpleNamespace(header={"members": []}, members=[]))
    monkeypatch.setattr(nas.report.cli, "_write_reports",
                        lambda d, run: written.append(("report", lock_held_elsewhere(lock))) or {})
    monkeypatch.setattr(nas.report.cli, "_say_incomplete_front", lambda run: None)
    monkeypatch.setattr(nas.pareto_csv, "write_pareto_csv",
                        lambda d, **given: written.append(("csv", lock_held_elsewhere(lock))))
    codes = []
    waiting = (f"{run_dir}: waiting for another process (a search's worker, or python -m compress.run) to finish "
               f"writing the run's files ({FILES_LOCK}), to write its report...\n")
    err = ""
    with run_folder_lock(run_dir):  # a worker's turn
        reporting = threading.Thread(target=lambda: codes.append(main([str(run_dir)])))
        reporting.start()
        for _ in range(600):  # until it says it waits (or ends): 30 s at most
            err += capsys.readouterr().err
            if err or not reporting.is_alive():
                break
            reporting.join(0.05)
        assert written == [] and codes == [] and reporting.is_alive()  # nothing read or written during the turn
        assert err == waiting  # said on stderr: a bare command has no log handler
    reporting.join(60)
    assert codes == [0]
    assert written == [("read", True), ("report", True), ("csv", True)]  # all of it holding the lock
    assert capsys.readouterr().err == ""  # said once


def test_ctrl_c_while_the_report_waits_for_a_workers_turn_is_one_line_and_exit_130(run_dir: pathlib.Path) -> None:
    # The wait may last a worker's final training (minutes): Ctrl-C then ended in a traceback from inside flock.
    import signal

    from nas.checkpoint import run_folder_lock

    with run_folder_lock(run_dir):  # a worker's turn
        # SIGINT as a terminal's foreground job has it: a test run in the background (nohup, `&`) hands its children
        # SIGINT ignored, which Python then leaves ignored
        report = subprocess.Popen([sys.executable, "-m", "nas.report", str(run_dir)], cwd=REPO_ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            waiting = report.stderr.readline()  # blocks until it waits (or ends)
            report.send_signal(signal.SIGINT)
            out, err = report.communicate(timeout=60)
        finally:
            report.kill()
    assert waiting.startswith(f"{run_dir}: waiting for another process (a search's worker"), waiting + err
    assert report.returncode == 130 and out == "", err
    assert err == (f"interrupted (Ctrl-C): the report of {run_dir} may be left unwritten (each of its files is whole, "
                   "written atomically); rerun the same command\n")
    assert not (run_dir / "report.md").exists()


def test_the_report_of_a_read_only_run_folder_makes_no_lock_file_there(
        run_dir: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The report takes the run folder's .files.lock where it can write; a read-only folder (a mount, another user's
    # folder) gets no lock file made in it, and its one-line error is the same as without the lock.
    import errno
    import os

    opened, os_open = pathlib.Path.open, os.open

    def refusing_open(self, mode="r", *args, **kwargs):
        if "x" in mode:  # the report's atomic writes create their temporary file so
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return opened(self, mode, *args, **kwargs)

    def refusing_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and pathlib.Path(path).parent == run_dir:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refusing_open)
    monkeypatch.setattr(os, "open", refusing_os_open)
    assert main([str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write {run_dir / 'pareto.png'}: the run folder "
                                                   f"{run_dir} is on a read-only file system"), err
    assert not (run_dir / ".files.lock").exists()


@pytest.mark.parametrize("code", ["ENOSPC", "EFBIG"])
def test_a_rebuild_from_a_study_whose_writes_fail_is_one_line_naming_the_file_and_exits_1(
        monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], code: str) -> None:
    # `python -m nas.report search.storage=...` on a full disk (or with a file over the size limit) ended in the
    # OSError's traceback, where `python -m nas.search` says the same failure in one line and exits 1.
    import errno
    import os

    import nas.errors
    import nas.study_export

    number = getattr(errno, code)
    pareto = tmp_path / "s" / "pareto.json"

    def disk_full(cfg, *, overridden=()):  # the rebuild writing the run's files
        raise RuntimeError("could not save") from OSError(number, os.strerror(number), str(pareto))

    monkeypatch.setattr(nas.study_export, "export_study", disk_full)
    monkeypatch.setattr(nas.errors, "stop_on_sigterm", lambda: None)
    assert main([f"search.runs_dir={tmp_path}", "search.study_name=s"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err, err
    assert err == (f"error: cannot write the run ({pareto}: {os.strerror(number)}); the members final-trained or "
                   "compressed so far are kept: fix that (free space, the run folder's permissions or entries, the "
                   "database server) and rerun the same command\n")


@pytest.mark.parametrize("n_complete, code", [(0, 1), (2, 0)])
def test_a_rebuild_from_a_study_with_no_finished_trial_exits_1_after_writing_its_files_as_the_search_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], n_complete: int,
        code: int) -> None:
    # `python -m nas.search` exits 1 when its study holds no finished trial (nothing to deploy), but the rebuild of the
    # same run from its study exited 0, so `python -m nas.report search.storage=... && deploy` went on.
    import nas.errors
    import nas.study_export
    from nas.study_export import SearchResult

    report = tmp_path / "s" / "report.html"
    why = "no trial finished in study 's', so there is no model to deploy: 2 failed (last: ValueError: x); see ..."
    result = SearchResult(run_dir=tmp_path / "s", study_name="s", n_complete=n_complete, pareto=[],
                          files={"report.html": report}, found_nothing_reason=None if n_complete else why)
    monkeypatch.setattr(nas.study_export, "export_study", lambda cfg, *, overridden=(): result)
    monkeypatch.setattr(nas.errors, "stop_on_sigterm", lambda: None)
    assert main([f"search.runs_dir={tmp_path}", "search.study_name=s"]) == code
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(report)]  # its files written and printed all the same
    # and why on stderr: the rebuild's log lines said it, but nothing beside the exit status did
    assert err.splitlines() == ([f"error: {why}"] if code else [])


def test_former_members_in_retired_are_counted_in_one_line_and_not_read(run_dir: pathlib.Path) -> None:
    """A member that fell off the front, or whose model.pt was final-trained again, is moved to retired/<arch_id>/ (not
    deleted): the report says in one line that such folders are kept there, and takes none of them for a member."""
    assert "retired/" not in _markdown(run_dir)
    for name in ("aaaa000009", "aaaa000009.2"):
        (run_dir / "retired" / name).mkdir(parents=True)
        (run_dir / "retired" / name / "metrics.json").write_text(json.dumps(_metrics(name, 2)))
        (run_dir / "retired" / name / "model.pt").write_bytes(bytes(3 * 2**20))  # what they take on disk is said
    (run_dir / "retired" / ".new.x.tmp").mkdir()  # a killed swap's leftover: no member's folder
    (run_dir / "retired" / ".new.x.tmp" / "model.pt").write_bytes(bytes(2**20))  # (counted nowhere)
    text = _markdown(run_dir)
    assert ("_2 former members' folders are kept in retired/ (weights and any compressed files, as they were; 6.0 MiB): "
            "moved there when a member fell off the front or its model.pt was final-trained again; this report reads "
            "nothing of them and no run deletes them: delete those you no longer need._") in text
    assert "aaaa000009" not in text
    import shutil

    shutil.rmtree(run_dir / "retired" / "aaaa000009.2")
    assert "_1 former member's folder is kept in retired/ (weights and any compressed files, as they were; 3.0 MiB)" \
        in _markdown(run_dir)


def test_an_int8_row_of_a_file_compressed_before_the_files_verdict_says_its_within_tolerance_is_the_nncf_models() -> None:
    # compressed_metrics.json written before within_tolerance_torch (still reused: its fingerprint has no code version)
    # stores the NNCF model's verdict as within_tolerance; the row said "within_tolerance is the file's" beside it.
    from nas.report.compressed import int8_file_tolerance_text

    int8 = {"fp32_val_acc": 0.4, "val_acc": 0.39, "val_acc_file": 0.4, "max_acc_drop": 0.3, "within_tolerance": False}
    older = int8_file_tolerance_text(int8, quantized="pruned")
    assert "within_tolerance is the file's" not in older
    assert older.endswith("scored 39.00%; its within_tolerance, recorded before the file's own verdict was, is the NNCF "
                          "model's: compress it again to record the file's (python -m compress.run checkpoint=<its "
                          "folder> with the settings it was compressed with, or delete its compressed_metrics.json and "
                          "rerun the search's command)")
    outside = int8_file_tolerance_text({**int8, "val_acc": 0.4, "val_acc_file": 0.3333, "within_tolerance": True})
    assert "the file is outside the tolerance; ship model.onnx" in outside and "is the NNCF model's: compress it again" in outside
    # written since: both verdicts recorded, the stored one is the file's
    assert int8_file_tolerance_text({**int8, "within_tolerance": True, "within_tolerance_torch": False}).endswith(
        "scored 39.00%: within_tolerance is the file's")
    assert "NNCF model's: compress it again" not in int8_file_tolerance_text(
        {**int8, "val_acc": 0.4, "val_acc_file": 0.3333, "within_tolerance": False, "within_tolerance_torch": True})
