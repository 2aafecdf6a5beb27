"""The compressed table (fp32 -> pruned -> int8 per member) and its notes; with the wording that
compress.pipeline and compress.run reuse, so that their lines read as the report's int8 row."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

# the names compress.pipeline writes, shared with it (no compress imports here: nas.layout holds constants alone)
from nas.layout import COMPRESSED_JSON

from nas.report.values import (_MISSING, _counted, _fmt_acc, _fmt_acc_ci, _fmt_count, _fmt_kib, _fmt_ms, _to_float,
                               _to_int)
from nas.report.files import MISSING_FILE_MARK, _Member, _STAGES
from nas.report.notes import _change_text, _image_worth, _largest_class_drop, _weakest_class


def _val_cut(member: _Member) -> tuple[int, int] | None:
    """(val images scored, val images) of a compressed member scored on part of them (`scored_images`), else None."""
    c = member.compressed or {}
    return None if c.get("error") else scored_images(c).get("val")


def _cut_text(cut: tuple[int, int], split: str) -> str:
    """'1,000 of the 6,000 val images': a split's images scored of all (`scored_images`), as the note under the
    compressed table (`_scored_images_note`), the int8 stars' legend and their hover text say it."""
    return f"{cut[0]:,} of the {cut[1]:,} {split} images"


# How a star's val acc was computed, by int8 test_acc_source (`compress.pipeline.int8_headline_source`)
_INT8_VAL_SOURCE = {"onnxruntime": "its ONNX file in onnxruntime",
                    "reference": "its ONNX file run operator by operator: the int8 kernels of the CPU that compressed "
                                 "it saturate"}


def int8_test_acc_source(int8: Any) -> str:
    """The runtime a compressed_metrics.json's int8 `test_acc` is from, as recorded (its `test_acc_source`: 'openvino',
    'onnxruntime' or `compress.pipeline.INT8_SOURCE_SATURATED`); 'openvino' for files written before the field, whose
    test_acc was always OpenVINO's. The report, `python -m compress.run`'s closing lines and the search's compression
    log all read it here, so an old file names the same runtime in each."""
    source = int8.get("test_acc_source") if isinstance(int8, dict) else None
    return source if isinstance(source, str) and source else "openvino"


def _int8_source(int8: Any) -> str:
    """'openvino', 'onnxruntime' or 'reference': `int8_test_acc_source`, its saturated-host reference shortened."""
    source = int8_test_acc_source(int8)
    return "reference" if source.startswith("reference") else source


def int8_source_text(int8: dict[str, Any]) -> str:
    """Which runtime the int8 row's test acc is from (compressed_metrics.json's int8 `test_acc_source`), with the
    others' beside it: 'test acc from model_int8.xml in OpenVINO; model_int8.onnx in onnxruntime 89.10%'. The file run
    operator by operator is the headline for a chip other than the compressing CPU when that CPU's int8 kernels
    saturate (x86 without VNNI): its runtimes then give less than the chip will. Worded for the CPU that compressed
    it, not 'this CPU': the report may be rebuilt on another machine."""
    onnx, ir = int8.get("file") or "model_int8.onnx", int8.get("file_ir") or "model_int8.xml"
    ov, ort = _fmt_acc(_to_float(int8.get("test_acc_openvino"))), _fmt_acc(_to_float(int8.get("test_acc_onnx")))
    source = _int8_source(int8)
    if source == "onnxruntime":  # a profile timed in onnxruntime here (hw=cpu_ort): the file is shipped to run so
        return f"test acc from {onnx} in onnxruntime, the chip's runtime; {ir} in OpenVINO {ov}"
    if source == "reference":
        return (f"test acc from {onnx} run operator by operator, as a chip accumulating int8 in 32 bits computes it "
                f"(the int8 kernels of the CPU that compressed it saturate); there OpenVINO {ov}, onnxruntime {ort}")
    return f"test acc from {ir} in OpenVINO; {onnx} in onnxruntime {ort}"


def _other_chip(compressed: dict[str, Any] | None, hw: Any) -> str | None:
    """The chip a member's compression predicted latencies for when it is not the run's `hw` (compress.run with
    another hw=), else None."""
    chip = (compressed or {}).get("hw")
    return str(chip) if hw and chip and chip != hw else None


def _int8_points(members: Sequence[_Member], hw: Any = None) -> list[tuple[str, float, float]]:
    """(arch_id, predicted latency, val acc from the int8 file) of every member compressed for the run's chip `hw`."""
    out = []
    for m in members:
        if _other_chip(m.compressed, hw):  # its latency is another chip's: not on this chip's plot
            continue
        int8 = (m.compressed or {}).get("int8") or {}
        ms, acc = _to_float(int8.get("latency_ms")), _to_float(int8.get("val_acc_file"))
        if ms is not None and acc is not None:
            out.append((m.arch_id, ms, acc))
    return out


_COMPRESSED_HEAD = ("member", "stage", "test acc (from the file)", "predicted latency (ms)", "host OpenVINO (ms)",
                    "host torch eager (ms)", "params", "size on disk (KiB)", "file", "notes")


def _note_row(arch_id: str, stage: str, note: str) -> list[str]:
    """A compressed table row with no file to show (unfinished, failed, not pruned): '–' in every column but its
    member, stage and note."""
    return [arch_id, stage, *[_MISSING] * (len(_COMPRESSED_HEAD) - 3), note]


def _compressed_rows(members: Sequence[_Member], hw: Any = None) -> list[list[str]]:
    """Rows of the fp32 -> pruned -> int8 table (one block per compressed member); latencies predicted for another
    chip than the run's `hw` say which."""
    rows = []
    for m in members:
        c = m.compressed
        if not c and (left := getattr(m, "unfinished_compression", ())):
            # after a kill mid-compression the table was left out, the report saying "No compressed members
            # (compress.members=none, or compression has not run yet)" beside the files it had written
            rows.append(_note_row(m.arch_id, "unfinished",
                                  f"compression interrupted (or still running): its folder holds {', '.join(left)} but "
                                  f"no {COMPRESSED_JSON}, which it writes last; rerunning the command that compressed "
                                  "it (the search's, or python -m compress.run's) redoes it"))
        if not c:
            continue
        chip = _other_chip(c, hw)
        if c.get("error"):
            rows.append(_note_row(m.arch_id, "failed", str(c["error"])))
            continue
        before = None  # test_acc_per_class of the previous file (pruned when pruned, else fp32)
        for stage in _STAGES:
            s = c.get(stage) or {}
            if stage == "pruned" and not s.get("pruned"):
                # the reason recorded (compress.pipeline.not_pruned_reason); a file from before it: either
                rows.append(_note_row(m.arch_id, stage, f"not pruned: {s['reason']}" if s.get("reason")
                                      else "not pruned (compress.prune sets no target, or the target was already met)"))
                continue
            host = s.get("host_latency_ms") or {}
            size = _to_float(s.get("size_bytes"))
            notes = []
            if stage == "fp32" and (val := _to_float(s.get("val_acc"))) is not None:  # the model pruning starts from
                notes.append(_fp32_val_text(val, _val_cut(m)))
            if stage == "pruned":
                notes.append(f"ratio {s.get('ratio')}, val acc {_fmt_acc(_to_float(s.get('val_acc_before_recovery')))} "
                             f"before / {_fmt_acc(_to_float(s.get('val_acc')))} after distillation")
            if stage == "int8":
                # the row's accuracy is the one the chip should see (test_acc_source); the size is the QDQ ONNX file's
                quantized = "pruned" if (c.get("pruned") or {}).get("pruned") is True else "fp32"
                notes.append(f"{int8_source_text(s)}; QAT epochs {s.get('qat_epochs', 0)}{_qat_why(s, quantized)}")
                if (val := _to_float(s.get("val_acc_file"))) is not None:  # as the Pareto plot's int8 points
                    notes.append(f"val acc {_fmt_acc(val)} (run as the test acc)")
                if s.get("note"):
                    notes.append(str(s["note"]))
                if (off := int8_file_tolerance_text(s, quantized=quantized, float_file=_float_file(c))) is not None:
                    notes.append(off)
                if (saturated := _saturated_text(s.get("agreement"), s.get("test_acc_reference"),
                                                 headline_is_reference=_int8_source(s) == "reference")) is not None:
                    notes.append(saturated)
                ir = _to_float(s.get("size_bytes_ir"))
                if ir is not None:
                    notes.append(f"IR {ir / 1024:.0f} KiB")
            if (change := _change_text(s.get("changed_vs_before"))) is not None:
                notes.append(change)
            if stage == "int8" and (whole := _whole_way_text(c)) is not None:
                notes.append(whole)
            if stage != "fp32" and (drop := _largest_class_drop(before, s.get("test_acc_per_class"))) is not None:
                notes.append(drop)
            if s.get("test_acc_per_class"):
                notes.append(f"weakest class {_weakest_class(s['test_acc_per_class'])}")
                before = s["test_acc_per_class"]
            if chip and stage == "fp32":
                notes.insert(0, f"latencies predicted for hw={chip} (compress.run), not this run's {hw}")
            rows.append([m.arch_id, stage, _fmt_acc_ci(_to_float(s.get("test_acc")), s.get("test_acc_ci95")),
                         _fmt_ms(_to_float(s.get("latency_ms")), m.ms_decimals) + (f" ({chip})" if chip else ""),
                         _fmt_ms(_to_float(host.get("openvino"))), _fmt_ms(_to_float(host.get("torch_eager"))),
                         _fmt_count(_to_int(s.get("params"))), _fmt_kib(size),
                         _file_cell(s.get("file"), getattr(m, "missing_files", ())), "; ".join(notes)])
    return rows


def _float_file(compressed: dict[str, Any]) -> str:
    """The float file the int8 file was quantized from: model_pruned.onnx where pruned, else model.onnx."""
    stage = "pruned" if (compressed.get("pruned") or {}).get("pruned") is True else "fp32"
    return str((compressed.get(stage) or {}).get("file") or ("model_pruned.onnx" if stage == "pruned" else "model.onnx"))


def _fp32_val_text(val: float, cut: tuple[int, int] | None) -> str:
    """'val acc (compression) 50.60% on 1,000 of the 6,000 val images (compress.eval_images; the front table's on
    all)': the fp32 row's val accuracy, model.pt's as the compression scored it, on the val images `cut` scored where
    compress.eval_images cut them (`_val_cut`). A plain 'val acc 50.60%' read as a third score of the member beside the
    front table's 'val acc (search)' and 'val acc (final)' (50.73%, the same weights on every val image)."""
    where = f" on {_cut_text(cut, 'val')} (compress.eval_images; the front table's on all)" if cut else ""
    return f"val acc (compression) {_fmt_acc(val)}{where}"


def _file_cell(name: Any, missing: Sequence[str]) -> str:
    """A compressed row's file, marked where it is gone from the member's folder."""
    if not name:
        return _MISSING
    return f"{name}{MISSING_FILE_MARK}" if str(name) in missing else str(name)


def _qat_why(int8: dict[str, Any], quantized: str = "fp32") -> str:
    """' (PTQ lost 0.20 pt of val accuracy vs the pruned model, within compress.quantize.max_acc_drop=0.3)': why QAT
    ran or not, beside 'QAT epochs N' ('' for files without these fields; 'PTQ gained ...' where int8 scored higher).
    'QAT epochs 0' under a config of QAT epochs read as QAT skipped or broken; it runs only while int8 loses more than
    max_acc_drop. `quantized`: the row of the float model quantized ("pruned", or "fp32" when not pruned), whose val
    accuracy the drop is from (its fp32_val_acc): beside the fp32 row's, "lost 0.10 pt" of a member whose pruning had
    lost 34 pt read as the drop from model.onnx."""
    fp32, ptq, most = (_to_float(int8.get(k)) for k in ("fp32_val_acc", "ptq_val_acc", "max_acc_drop"))
    if fp32 is None or ptq is None or most is None:
        return ""
    drop = round((fp32 - ptq) * 100.0, 9)  # as compress.quantize judges it
    # a gain said as one: "lost -0.80 pt" read as a misprint (a gain is always within max_acc_drop, which is >= 0)
    change = f"gained {-drop:.2f}" if drop < 0 else f"lost {drop_text(drop, limit=most)}"
    return (f" (PTQ {change} pt of val accuracy vs the {quantized} model, {'over' if drop > most else 'within'} "
            f"compress.quantize.max_acc_drop={most:g})")


def _val_drops(int8: dict[str, Any]) -> tuple[float, float, float, float, float] | None:
    """(quantized model's val acc, NNCF int8 model's, int8 file's, NNCF drop pt, file drop pt) of a compressed_metrics.json's
    int8 entry, drops rounded as compress.quantize judges them; None where one is not recorded (files before val_acc_file)."""
    before, torch, file = (_to_float(int8.get(k)) for k in ("fp32_val_acc", "val_acc", "val_acc_file"))
    if before is None or torch is None or file is None:
        return None
    return before, torch, file, round((before - torch) * 100.0, 9), round((before - file) * 100.0, 9)


def file_within_tolerance(int8: dict[str, Any]) -> bool | None:
    """Whether the int8 file itself (its val accuracy, run as its test acc: `val_acc_file`) loses no more val accuracy
    than compress.quantize.max_acc_drop against the model quantized: the verdict of what ships, which the compression
    records as `within_tolerance`. None where the numbers are not recorded."""
    drops, most = _val_drops(int8), _to_float(int8.get("max_acc_drop"))
    return None if drops is None or most is None else drops[4] <= most


def int8_file_tolerance_text(int8: dict[str, Any], *, quantized: str = "fp32", float_file: str = "model.onnx") -> str | None:
    """The int8 row's note where the int8 file and the NNCF int8 model it was exported from fall on different sides of
    compress.quantize.max_acc_drop on the same val images: the tolerance (and QAT, which stops once within it) judged
    the NNCF model, while the file is what ships. `quantized`: the row of the float model quantized, `float_file` its
    file. None where both are on the same side or the numbers are not recorded (files before val_acc_file): a file
    within it 40.00% → 33.33% on 15 val images read as within. A file whose within_tolerance is its NNCF model's
    (written before within_tolerance_torch) is told so, with how to record the file's."""
    drops, most = _val_drops(int8), _to_float(int8.get("max_acc_drop"))
    if drops is None or most is None:
        return None
    before, torch, file, torch_drop, file_drop = drops
    if (file_drop > most) == (torch_drop > most):
        return None
    lost = f"lost {drop_text(file_drop, limit=most)}" if file_drop >= 0 else f"gained {-file_drop:.2f}"
    said = (f"int8 file (run as the test acc) {lost} pt of val accuracy vs the {quantized} model ({_fmt_acc(before)} → "
            f"{_fmt_acc(file)})")
    # A file compressed before within_tolerance_torch was recorded (2026-12-07, still reused: its fingerprint has no
    # code version) stores the NNCF model's verdict as within_tolerance
    older = "within_tolerance" in int8 and "within_tolerance_torch" not in int8
    stored = ("; its within_tolerance, recorded before the file's own verdict was, is the NNCF model's: compress it "
              "again to record the file's (python -m compress.run checkpoint=<its folder> with the settings it was "
              f"compressed with, or delete its {COMPRESSED_JSON} and rerun the search's command)") if older else ""
    if file_drop <= most:
        return (f"{said}, within compress.quantize.max_acc_drop={most:g}, though the NNCF int8 model it was exported "
                f"from scored {_fmt_acc(torch)}" + (stored or ": within_tolerance is the file's"))
    fix = f"ship {float_file} ({quantized}, float) where that loss matters"
    if torch_drop > 0:  # QAT stopped once the NNCF model was within: a stricter allowance trains on
        fix += (f", or compress again with compress.quantize.max_acc_drop under {drop_text(torch_drop, limit=most)} "
                "so that QAT trains on")
    return (f"{said}, more than compress.quantize.max_acc_drop={most:g}, though the NNCF int8 model it was exported "
            f"from scored {_fmt_acc(torch)}, within it (QAT judged that model): the file is outside the tolerance; {fix}"
            + stored)


def drop_text(drop: float, *, limit: float) -> str:
    """Accuracy points `drop` to 2 decimals, or to as many more (up to the 9 that `compress.quantize` rounds a drop to
    before judging it) as it takes for the printed number to compare with `limit` (compress.quantize.max_acc_drop) as
    the drop itself does: a drop of 0.304 pt over max_acc_drop=0.3 printed as "0.30" read as within it."""
    for places in range(2, 10):
        text = f"{drop:.{places}f}"
        if (float(text) > limit) == (drop > limit):
            break
    return text


def _whole_way_text(compressed: dict[str, Any]) -> str | None:
    """'fp32 → int8 in all (pruning included): 90.00% → 88.50% (-1.50 pt); vs model.onnx: 20 test images now wrong, 5
    now right (p=...)': what shipping the int8 file instead of model.onnx changes (compressed_metrics.json's summary;
    its int8_vs_fp32, absent before 2026-12-05, gives the images). The int8 row's other change is against the pruned
    file only, so a member's whole change was left to subtracting two rows. None without the summary's accuracies."""
    summary = compressed.get("summary") or {}
    before, after = _to_float(summary.get("test_acc_fp32")), _to_float(summary.get("test_acc_int8"))
    if before is None or after is None:
        return None
    pruned = ((compressed.get("pruned") or {}).get("pruned")) is True
    text = (f"fp32 → int8 in all{' (pruning included)' if pruned else ''}: {_fmt_acc(before)} → {_fmt_acc(after)} "
            f"({100 * (after - before):+.2f} pt)")
    fp32_file = (compressed.get("fp32") or {}).get("file") or "model.onnx"
    # not pruned, the int8 row's change vs the file before is this one already: not repeated
    if pruned and (change := _change_text({**(summary.get("int8_vs_fp32") or {}), "file": fp32_file})) is not None:
        text += f"; {change}"
    return text


def scored_images(compressed: Any) -> dict[str, tuple[int, int]]:
    """{split: (images scored, images the split holds)} of the splits a compressed_metrics.json's accuracies were
    scored on only part of (its eval_images: compress.eval_images=N, a fixed random N of each split), test first; {}
    when every image was scored and for files from before the field. `python -m compress.run`'s table and the report
    say it beside those accuracies."""
    recorded = compressed.get("eval_images") if isinstance(compressed, dict) else None
    if not isinstance(recorded, dict):
        return {}
    out = {}
    for split in ("test", "val"):
        n, of = _to_int(recorded.get(split)), _to_int(recorded.get(f"{split}_of"))
        if n is not None and of is not None and n < of:
            out[split] = (n, of)
    return out


def _scored_images_note(members: Sequence[_Member]) -> str:
    """Which compressed members' accuracies (the table's test accs and its notes' val accs, the Pareto plot's int8
    stars) are of part of the images (`scored_images`), and of how many; '' when every member's are of them all.
    Without it a capped member's 88.50% read as of the whole test split."""
    cuts: dict[str, list[str]] = {}  # the cut in words: the members scored so
    for m in members:
        c = m.compressed or {}
        if not c.get("error") and (scored := scored_images(c)):
            # the header's "one test image = 0.01 pt" is of the whole test split: of a cut one, an image weighs more
            # (a balanced accuracy's image weighs by its class, which the cut's counts do not say)
            text = " and ".join(_cut_text((n, of), split) + (
                f" (one test image = {_image_worth(n)} pt)" if split == "test" and n > 0
                and c.get("metric") != "balanced_accuracy" else "") for split, (n, of) in scored.items())
            cuts.setdefault(text, []).append(m.arch_id)
    if not cuts:
        return ""
    said = "; ".join(f"{', '.join(ids)}: on {text}" for text, ids in cuts.items())
    return (f"Compressed accuracies scored on part of the images (compress.eval_images, a fixed random subset of each "
            f"split; their intervals are of that many): {said}.")


def _predicted_precision_note(members: Sequence[_Member]) -> str:
    """`predicted_precision_note` of the chips the compressed members record with their precision
    (compressed_metrics.json's hw and hw_precision), and of the rows their int8 rows repeat; '' when none does."""
    seen: dict[str, str] = {}  # chip: its precision
    repeated: set[str] = set()  # the rows whose prediction an int8 row repeats: the pruned one, or fp32 when not pruned
    for m in members:
        c = m.compressed or {}
        if c.get("hw") and c.get("hw_precision") and not c.get("error"):
            seen.setdefault(str(c["hw"]), str(c["hw_precision"]))
            repeated.add("pruned" if (c.get("pruned") or {}).get("pruned") is True else "fp32")
    return predicted_precision_note(seen, int8_repeats=repeated)


def _host_latency_note(members: Sequence[_Member]) -> str:
    """How the compressed table's 'host' columns were timed (compressed_metrics.json's host_latency.how up to its first
    ';': batch 1, threads, rounds) and on which machine (its host_latency.machine: CPU model, cpus, flags; each member's
    where they differ), which members' were timed on a busy machine (its host_latency.busy, the front table's caveat),
    and which members' are empty because compress.measure_latency=false (compress=smoke) timed nothing; '' when no
    member says. Without it those columns gave ms without a batch or thread count, and their
    '–' no reason."""
    hows: list[str] = []
    untimed: list[str] = []
    machines: dict[str, str] = {}  # arch_id -> host_latency.machine: which CPU the host milliseconds are of
    # arch_id -> host_latency.busy: the caveat of a busy machine that the front table's 'measured on host' gets in its
    # note (compress.pipeline.busy_host_timing, in nas.latency.measure.busy_timing's words); without it these columns
    # showed times that single calls spread several hundred % around with no word of it
    busy: dict[str, str] = {}
    for m in members:
        c = m.compressed or {}
        if not c or c.get("error"):
            continue
        if (c.get("config") or {}).get("measure_latency") is False:
            untimed.append(m.arch_id)
        elif isinstance(how := (c.get("host_latency") or {}).get("how"), str):
            if how.split(";")[0] not in hows:
                hows.append(how.split(";")[0])
            if isinstance(machine := c["host_latency"].get("machine"), str) and machine:
                machines[m.arch_id] = machine
            if isinstance(caveat := c["host_latency"].get("busy"), str) and caveat:
                busy[m.arch_id] = caveat
    if len(set(machines.values())) == 1:
        on = f" ({next(iter(machines.values()))})"
    else:  # members compressed on different machines (a compress.run of one member elsewhere): each its own
        on = f" ({'; '.join(f'{a}: {mc}' for a, mc in machines.items())})" if machines else ""
    parts = [f"Host latencies: {'; '.join(hows)}, on the machine that compressed the member{on}." if hows else "",
             *(f"{a}'s host latencies were timed on a busy machine ({text})." for a, text in busy.items()),
             f"'host' columns are empty for {', '.join(untimed)}: compressed with compress.measure_latency=false "
             "(as compress=smoke is), which times nothing." if untimed else ""]
    return " ".join(p for p in parts if p)


def _same_file_timings_note(members: Sequence[_Member]) -> str:
    """The two host timings of one model.onnx in OpenVINO fp32, related: the front table's 'measured on host'
    (metrics.json's measured_latency_ms, the file's SHA-256 in its measured_latency_file) and the compressed table's
    fp32 row (compressed_metrics.json's host_latency, model_onnx_sha256), made in separate sessions. Shown side by side
    they read as two models' times (0.338 vs 0.252 ms on a busy machine). They stay separate: the compressed table's
    rows are timed together, interleaved, so a busy machine slows them alike and their ratios hold; the front table's
    time put in its place would compare two sessions. '' where no member has both, of the same digest, or files from
    before the digests (2026-12-07), which say nothing of which file was timed."""
    same, other = [], []
    for m in members:
        c = m.compressed or {}
        timed = (m.metrics or {}).get("measured_latency_file") if isinstance(m.metrics, dict) else None
        host = c.get("host_latency") if isinstance(c.get("host_latency"), dict) else {}
        here = _to_float(((c.get("fp32") or {}).get("host_latency_ms") or {}).get("openvino"))
        if (m.measured_ms is None or m.measured_ms <= 0 or here is None or not isinstance(timed, dict) or timed.get("runtime") != "openvino"
                or timed.get("precision") != "fp32" or not isinstance(digest := host.get("model_onnx_sha256"), str)
                or not isinstance(timed.get("sha256"), str) or c.get("error")):
            continue
        if timed["sha256"] != digest:
            other.append(m.arch_id)
            continue
        threads, threads_here = timed.get("threads"), (c.get("config") or {}).get("latency_threads")
        # other threads time the file otherwise: part of the difference is theirs, not the machine's
        apart = (f", {_counted(int(threads), 'thread')} there and {_counted(int(threads_here), 'thread')} here"
                 if isinstance(threads, int) and isinstance(threads_here, int) and threads != threads_here else "")
        same.append(f"{m.arch_id}: {_fmt_ms(m.measured_ms)} ms there, {_fmt_ms(here)} ms here "
                    f"({here / m.measured_ms - 1:+.0%}{apart})")
    parts = []
    if same:
        parts.append("model.onnx in OpenVINO fp32 is timed twice, in separate sessions of the same file (the same "
                     "SHA-256): for the front table's 'measured on host' and, interleaved with the compressed files, for "
                     f"this table's fp32 row; {'; '.join(same)}. The difference is the machine's between the sessions, "
                     "not the model's: compare this table's host times with each other.")
    if other:
        parts.append(f"The front table's 'measured on host' of {', '.join(other)} timed another model.onnx than this "
                     "table's fp32 row (its SHA-256 differs: the file was made again between the timings).")
    return " ".join(parts)


def _repeated_row_text(rows: Collection[str]) -> str:
    """'the pruned one's', 'the fp32 one's', or both for a table of members pruned and not: the row whose architecture
    an int8 row's prediction repeats (the file quantized is the pruned model, or the fp32 one when nothing was pruned)."""
    if set(rows) == {"fp32"}:
        return "the fp32 one's"
    return "the pruned one's" + (" (the fp32 one's for a member not pruned)" if "fp32" in rows else "")


def predicted_precision_note(chips: dict[str, str], *, int8_repeats: Collection[str]) -> str:
    """What a compressed table's predicted latencies are, for `chips` ({hw name: its hw.precision}): the chip's
    prediction at its own precision for each row's architecture. Without it an int8 chip's 'fp32' row reads as the fp32
    model's time on the chip, and on an fp32 profile (hw=cpu) the int8 row repeats the pruned row's float prediction as
    if it were the int8 file's. `int8_repeats` names the rows the int8 rows repeat: "pruned", and "fp32" for a member
    not pruned (its table has no pruned row, and it was said to repeat one). The report and `python -m compress.run`
    word it alike. '' for no chips."""
    if not chips:
        return ""
    precisions = set(chips.values())
    row = _repeated_row_text(int8_repeats)
    if precisions == {"int8"}:
        then = f"so the fp32 row is not the float model's time on the chip, and the int8 row repeats {row}"
    elif "int8" not in precisions:
        then = f"so the int8 row repeats {row} {' / '.join(sorted(precisions))} time, not the int8 file's"
    else:
        then = f"so the int8 row repeats {row}"
    named = " and ".join(f"{hw}'s in {precision}" for hw, precision in chips.items())
    return (f"Predicted latencies are {named} (its hw.precision) for each row's architecture, whatever the file's "
            f"number format, {then}.")


# In place of the compressed table where no member has compression files.
_NO_COMPRESSED = "No compressed members (compress.members=none, or compression has not run yet)."


def _no_compressed_text(header: dict[str, Any]) -> str:
    """The note in place of the compressed table: `_NO_COMPRESSED`, or, where pareto.json (`header`) records that the
    search's compression was stopped (`compression_stopped`), that none was finished and how to finish them."""
    if isinstance(header.get("compression_stopped"), str):
        return ("No compressed members yet: the compression was stopped before any member was finished; rerun the same "
                "command to compress them.")
    return _NO_COMPRESSED


def _compressed_notes(members: Sequence[_Member]) -> list[str]:
    """The notes under the compressed table, in their order in both reports; '' for one that does not apply."""
    return [_scored_images_note(members), _predicted_precision_note(members), _host_latency_note(members),
            _same_file_timings_note(members)]


def logit_diff_text(share: float) -> str:
    """'3%', '0.4%': a max relative logit difference as a percent, whole from 1% up and with one decimal below it, where
    a whole percent printed '0%' for a file that is not exact. The report and the compression's log word it alike."""
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}"


def _near_ties_text(run: dict[str, Any]) -> str:
    """', 98.8% but for 25 near ties': the top-1 share that the tolerance judges, where flips on near-tied images were
    excused (`compress.export.agreement`); '' when none were or for files from before it."""
    decided, near = _to_float(run.get("top1_agreement_decided")), _to_float(run.get("near_tie_flips"))
    # '1 near tie', not '1 near ties'
    return f", {decided:.1%} but for {_counted(round(near), 'near tie')}" if decided is not None and near else ""


def top1_text(run: dict[str, Any]) -> str:
    """'98.3% the same top-1 class, 98.8% but for 25 near ties': a run of the int8 file's top-1 agreement with the int8
    model, and the share judged against the tolerance where near ties were excused. The report and the compression's
    log word it alike."""
    return f"{float(run['top1_agreement']):.1%} the same top-1 class{_near_ties_text(run)}"


def _judged_top1(run: dict[str, Any]) -> float | None:
    """The top-1 share held against the tolerance: near-tie flips excused where recorded, else the raw share."""
    decided = _to_float(run.get("top1_agreement_decided"))
    return decided if decided is not None else _to_float(run.get("top1_agreement"))


def _agreement_within(run: dict[str, Any], tolerance: dict[str, Any], *, excuse_near_ties: bool = False) -> bool:
    """Whether a run of the int8 file is within compressed_metrics.json's stated tolerance of the int8 model: both
    its max relative logit difference and its top-1 agreement (`excuse_near_ties`, for the file run operator by
    operator: flips on near-tied images excused, where recorded), as `compress.pipeline` judges it (a missing value is
    not held against it)."""
    top1 = _judged_top1(run) if excuse_near_ties else _to_float(run.get("top1_agreement"))
    rel = _to_float(run.get("max_rel_diff"))
    rel_tol, top1_tol = _to_float(tolerance.get("max_rel_diff")), _to_float(tolerance.get("top1_agreement"))
    return not ((rel is not None and rel_tol is not None and rel > rel_tol)
                or (top1 is not None and top1_tol is not None and top1 < top1_tol))


def _decided_flips(run: dict[str, Any]) -> int | None:
    """A run's top-1 flips on images whose two top classes are not nearly tied (None where not recorded)."""
    flips, near = _to_int(run.get("top1_flips")), _to_int(run.get("near_tie_flips"))
    return None if flips is None or near is None else flips - near


def flips_as_the_file(run: dict[str, Any], ref: dict[str, Any], *, max_rel_diff: float) -> bool:
    """Whether a runtime's `run` of the int8 file is off its int8 model only as the file run operator by operator
    (`ref`) is: its logits within `max_rel_diff` (the tolerance's), its top-1 flips no more than `ref`'s, and those not
    on near-tied images no more than `ref`'s either (False where either does not record them); where `run` records
    `shared_flips` (`compress.export.agreement`), each of its flips an image `ref` flips too. The compression's log
    (`compress.pipeline.int8_agreement_warning`) and the report's int8 row judge it here alike, and word it with
    `file_flips_text`."""
    decided, ref_decided = _decided_flips(run), _decided_flips(ref)
    rel, top1, ref_top1 = _to_float(run.get("max_rel_diff")), _to_float(run.get("top1_agreement")), _to_float(
        ref.get("top1_agreement"))
    if decided is None or ref_decided is None or rel is None or top1 is None or ref_top1 is None:
        return False
    # equal counts are not the same images: OpenVINO's 16 flips beside the file's 17 were called the file's own
    shared, flips = _to_int(run.get("shared_flips")), _to_int(run.get("top1_flips"))
    if "shared_flips" in run and (shared is None or shared != flips):
        return False
    return rel <= max_rel_diff and decided <= ref_decided and top1 >= ref_top1


def file_flips_text(runs: Sequence[dict[str, Any]], *, kernels: str) -> tuple[str, str]:
    """How the log and the report's int8 row say that `runs` (each `flips_as_the_file`) are off as the file run
    operator by operator is: (what was compared, what follows), `kernels` naming the CPU's int8 kernels. Where each run
    records `shared_flips`, its flips are the very images the file flips: the file classifies them otherwise. Files from
    before it give counts alone, which say no more than that the kernels flip no more images."""
    if all("shared_flips" in run for run in runs):
        return ("as the file itself does run operator by operator",
                f"the int8 file itself classifies those images otherwise than the int8 model, not {kernels}")
    return ("with no more top-1 flips, nor more that are not near ties, than the file's own operator-by-operator run",
            f"{kernels} flip no more images than the file itself (which images, this file does not record)")


def _saturated_text(agree: Any, reference_acc: Any, *, headline_is_reference: bool = False) -> str | None:
    """The int8 row's note when a runtime's int8 kernels moved the file's logits past the stated tolerance (its max
    relative logit difference or its top-1 agreement, as the compression's log judges them). On the compressing CPU
    (x86 without VNNI) while the file itself, run operator by operator, was within it: the row's accuracy is then that
    CPU's, and the note gives the file's own (unless the row's is the file's own already: `headline_is_reference`).
    When the file run operator by operator is outside it too, the export is at fault, as the log says, whatever the
    CPU. On a CPU that does not saturate, the runs outside it and the file's own run, which is within it. None when
    every run is within it and for files from before these fields."""
    if not isinstance(agree, dict):
        return None
    runs = {name: agree.get(name) for name in ("onnx", "openvino", "onnx_reference", "tolerance")}
    if not all(isinstance(d, dict) for d in runs.values()):
        return None
    tol = runs["tolerance"]
    diff = {name: _to_float(d.get("max_rel_diff")) for name, d in runs.items()}
    if any(v is None for v in diff.values()):
        return None
    top1 = {name: _to_float(runs[name].get("top1_agreement")) for name in ("onnx", "openvino", "onnx_reference")}
    top1_tol = _to_float(tol.get("top1_agreement"))
    labels = (("openvino", "OpenVINO"), ("onnx", "onnxruntime"))
    off = [(name, label) for name, label in labels if not _agreement_within(runs[name], tol)]
    if not off:
        return None
    # the tolerance has two parts: name the runs outside each (a top-1 agreement of 94% within 15% of the logits
    # was outside it, yet no note said so)
    by_logit = [f"{label} {diff[name]:.0%}" for name, label in off if diff[name] > diff["tolerance"]]
    by_top1 = [f"{label} {top1[name]:.1%}" for name, label in off
               if top1[name] is not None and top1_tol is not None and top1[name] < top1_tol]
    parts = ([f"logits off the int8 model's by {', '.join(by_logit)} (tolerance {diff['tolerance']:.0%})"] if by_logit
             else []) + ([f"the same top-1 class as the int8 model for {', '.join(by_top1)} of the test images "
                          f"(tolerance {top1_tol:.0%})"] if by_top1 else [])
    reference = runs["onnx_reference"]
    if not _agreement_within(reference, tol, excuse_near_ties=True):  # compress.pipeline.int8_agreement_warning says the same in the log
        ref_top1 = f", {top1_text(reference)}" if top1["onnx_reference"] is not None else ""
        return (f"int8 files outside the tolerance: {' and '.join(parts)}; the file run operator by operator too "
                f"({logit_diff_text(diff['onnx_reference'])} off{ref_top1}): the exported file does not compute the int8 model "
                "its accuracies were measured on (an export problem: please report it)")
    if all(flips_as_the_file(runs[name], reference, max_rel_diff=diff["tolerance"]) for name, _ in off):
        # each runtime flips what the file's own run flips (or, in older files, no more images, nor more that are not
        # near ties): "outside the tolerance on the CPU that compressed it" read as that CPU's fault; worded as the log
        compared, why = file_flips_text([runs[name] for name, _ in off],
                                        kernels="the int8 kernels of the CPU that compressed it")
        return (f"int8 files outside the tolerance: {' and '.join(parts)}; {compared} "
                f"({logit_diff_text(diff['onnx_reference'])} off, {top1_text(reference)}): {why}")
    if agree.get("int8_saturates") is not True:
        # runtimes off on a CPU that does not saturate (or a file from before the field): the compression's log warns
        # (compress.pipeline.int8_agreement_warning) and the row said nothing; the facts, the file's own run beside them
        ref_top1 = f", {top1_text(reference)}" if top1["onnx_reference"] is not None else ""
        return (f"int8 files outside the tolerance on the CPU that compressed it: {' and '.join(parts)}; the file itself "
                f"is within it run operator by operator ({logit_diff_text(diff['onnx_reference'])} off{ref_top1})")
    acc = _to_float(reference_acc)
    text = f"int8 kernels saturate on the CPU that compressed it (x86 without VNNI): {' and '.join(parts)}; "
    if headline_is_reference:  # the row's test acc is that run's already: not repeated
        return text + f"the row's is the file's own, run operator by operator ({logit_diff_text(diff['onnx_reference'])} off)"
    return text + "the file run operator by operator " + (
        f"has test acc {_fmt_acc(acc)}" if acc is not None else f"is {logit_diff_text(diff['onnx_reference'])} off")
