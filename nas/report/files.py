"""Reading a run folder's files (``trials.csv``, ``pareto.json``, the members' ``metrics.json`` and
``compressed_metrics.json``, the run markers) into a `_Run`, and the one-line refusals of a folder that cannot be
reported on (`ReportInputError`)."""

from __future__ import annotations

import csv
import json
import pathlib
from dataclasses import dataclass, replace
from typing import Any

# NasError: the base of every error the toolkit raises, so that `except NasError` around a notebook's calls catches a
# report's refusal too (nas.errors imports nothing but the standard library)
from nas.errors import NasError

# the names compress.pipeline writes, shared with it (no compress imports here: nas.layout holds constants alone)
from nas.layout import COMPRESSED_JSON, COMPRESSION_MODEL_FILES, RETIRED_FOLDER

from nas.report.values import _change_of, _fmt_ms, _ms_decimals, _to_float, _to_int, _to_interval
from nas.report.hints import _rebuild_hint, _rebuild_text, _searched
from nas.report.markers import _markers_warnings, _read_markers, _unfinished_before, _unfinished_text, _written_since

TRIALS_CSV = "trials.csv"
PARETO_JSON = "pareto.json"
METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "test_predictions.csv"  # as nas.results.PREDICTIONS_FILE (no nas imports here)
_STAGES = ("fp32", "pruned", "int8")
REPORT_FILES = ("report.html", "report.md", "pareto.png", "latency_breakdown.png", "mixers.png")

# A file of a member's records that its folder lacks, after its name: in the compressed table and pareto.csv's int8_file
MISSING_FILE_MARK = " (missing)"
_SEARCH_HINT = "run `python -m nas.search` first"


class ReportInputError(NasError):
    """The run folder cannot be reported on; the message is one line meant for the user (a `NasError`, as every error
    the toolkit raises for bad input). `problem`: what is wrong
    without what to do about it, for a caller that does it itself (a search, which writes the run's files again);
    the message where not given."""

    def __init__(self, message: str, *, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = message if problem is None else problem


class MissingRunFileError(ReportInputError, FileNotFoundError):
    """The run folder, ``trials.csv`` or ``pareto.json`` does not exist (the search has not run yet)."""


@dataclass(frozen=True)
class _Trial:
    """One row of trials.csv, parsed; None where the CSV cell is empty or unparsable."""

    number: int | None
    state: str
    arch_id: str
    val_acc: float | None
    latency_ms: float | None
    params: int | None
    macs: int | None
    feasible: bool
    mixers: tuple[str, ...]
    summary: str
    stopped_early: bool = False  # search.early_stop cut its proxy training short
    duplicate: bool = False  # re-proposed an arch already trained: its result was reused, nothing trained
    fail_reason: str = ""  # why a FAIL/PRUNED trial has no result (trials.csv's fail_reason)
    on_front: bool = False  # trials.csv's is_pareto: on the front, whether or not pareto.json could list it


@dataclass(frozen=True)
class _Member:
    """One Pareto-front member of pareto.json plus its checkpoint's metrics.json (if readable)."""

    number: int | None
    arch_id: str
    val_acc: float | None
    test_acc: float | None
    test_acc_onnx: float | None
    latency_ms: float | None
    measured_ms: float | None  # latency of model.onnx timed on this host (profiles with a runtime here)
    params: int | None
    macs: int | None
    summary: str
    mixers: tuple[str, ...]
    checkpoint: str
    checkpoint_exists: bool
    metrics: dict[str, Any] | None
    metrics_problem: str  # why metrics is None, e.g. "checkpoint folder missing"
    compressed: dict[str, Any] | None = None  # checkpoints/<arch_id>/compressed_metrics.json, if any
    test_ci: tuple[float, float] | None = None  # 95% interval of test_acc (runs from before 2026-12-05 lack it)
    val_ci: tuple[float, float] | None = None  # ... of val_acc (none before 2026-12-05, nor for balanced accuracy)
    # val accuracy of the shipped weights after the final training (None where it did not run) and its interval
    # (none in runs from before it was written, nor for balanced accuracy)
    val_final: float | None = None
    val_final_ci: tuple[float, float] | None = None
    vs_faster: dict[str, Any] | None = None  # pareto.json: compared image by image with the next faster member
    vs_best: dict[str, Any] | None = None  # ... and with the member of the best test accuracy
    ms_decimals: int = 3  # decimals of the run's predicted latencies (_ms_decimals): the same for every member
    has_predictions: bool = True  # its folder holds test_predictions.csv (what members are compared image by image on)
    # files its records describe (model.pt, model.onnx, the compressed files) that are not in its folder: deleted by hand
    missing_files: tuple[str, ...] = ()
    # files of a compression in its folder without the compressed_metrics.json written last: one killed (or running)
    unfinished_compression: tuple[str, ...] = ()
    # size on disk of its model.onnx, the float file to budget flash by (no record holds it): None where there is none
    onnx_bytes: int | None = None

    @property
    def label(self) -> str:
        return f"{self.arch_id} · {_fmt_ms(self.latency_ms, self.ms_decimals)} ms"


@dataclass(frozen=True)
class _Run:
    header: dict[str, Any]
    trials: list[_Trial]
    members: list[_Member]
    unfinished: str = ""  # the searches of this folder that have not finished (`RUN_MARKER_PREFIX`), in words
    # the setup warnings those searches recorded in their markers; None when none did (no marker, or older ones)
    unfinished_warnings: list[str] | None = None
    # pareto.json was written after every one of those searches started (`_written_since`): by a worker that finished
    # while they ran, so its setup_warnings are of the tables below, not of the run before them
    written_since: bool = False
    retired: int = 0  # former members' folders in retired/ (`nas.layout.RETIRED_FOLDER`), which the report reads nothing of
    retired_bytes: int = 0  # the size of their files, which no run deletes

    @property
    def complete(self) -> list[_Trial]:
        """Finished trials that can be placed on the accuracy/latency plane."""
        return [t for t in self.trials
                if t.state == "COMPLETE" and t.val_acc is not None and t.latency_ms is not None]

    @property
    def budget_ms(self) -> float | None:
        return _to_float(self.header.get("latency_budget_ms"))

    @property
    def max_stages(self) -> int:
        return max((len(m.mixers) for m in self.members), default=0)


def _split_mixers(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(part for part in str(value or "").split("-") if part)


def _read_trials(path: pathlib.Path) -> list[_Trial]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(f"{path.name} is not a readable CSV file ({exc}) in {path.parent}; {_SEARCH_HINT}",
                               problem=f"{path.name} is not a readable CSV file ({exc}) in {path.parent}") from exc

    def cell(row: dict[str, str | None], key: str) -> str:
        # DictReader gives None for cells missing from a short (e.g. half-written) last line.
        return (row.get(key) or "").strip()

    return [_Trial(number=_to_int(cell(r, "number")), state=cell(r, "state").upper(),
                   arch_id=cell(r, "arch_id"), val_acc=_to_float(cell(r, "val_acc")),
                   latency_ms=_to_float(cell(r, "latency_ms")), params=_to_int(cell(r, "params")),
                   macs=_to_int(cell(r, "macs")), feasible=cell(r, "feasible").lower() != "false",
                   mixers=_split_mixers(cell(r, "mixers")), summary=cell(r, "summary"),
                   stopped_early=bool(cell(r, "early_stop")), duplicate=bool(cell(r, "duplicate_of")),
                   fail_reason=cell(r, "fail_reason"), on_front=cell(r, "is_pareto").lower() == "true")
            for r in rows]


def read_pareto_json(path: pathlib.Path) -> dict[str, Any]:
    """A run folder's pareto.json (at `path`) as the report reads it: a JSON object whose `members`, where there, is a
    list. `ReportInputError` (one line naming the file and the rebuild from the study) for one that is not (cut short
    by a full disk or a copy, edited by hand); `OSError` where it cannot be read. `nas.pareto_csv` reads it here too."""
    def damaged(what: str) -> ReportInputError:
        problem = f"{what} in {path.parent}"
        return ReportInputError(f"{problem}: {_rebuild_hint(path.parent)}", problem=problem)

    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise damaged(f"{path.name} is not valid JSON (line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise damaged(f"{path.name} is not UTF-8 text") from exc
    if not isinstance(header, dict):
        raise damaged(f"{path.name} holds no JSON object")
    members = header.get("members")
    if members is not None and not isinstance(members, list):  # a dict's keys were read as members, an int a traceback
        kind = type(members).__name__
        raise damaged(f"{path.name}'s members is not a list ({'an' if kind[0] in 'aeiou' else 'a'} {kind})")
    return header


def _read_metrics(folder: pathlib.Path) -> tuple[dict[str, Any] | None, str]:
    """Return (metrics, problem); a broken checkpoint must not stop the rest of the report."""
    if not folder.is_dir():
        return None, "checkpoint folder missing"
    path = folder / METRICS_JSON
    if not path.is_file():
        return None, f"{METRICS_JSON} missing"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{METRICS_JSON} unreadable"
    if not isinstance(metrics, dict):
        return None, f"{METRICS_JSON} unreadable"
    return metrics, ""


def read_compressed(folder: pathlib.Path) -> dict[str, Any] | None:
    """A member folder's compressed_metrics.json as the report reads it (a failed compression's too, which holds its
    `error`); None when absent or unreadable. pareto.csv's int8 columns read it here (`nas.pareto_csv.write_pareto_csv`), so
    they and the report's compressed table show the same files."""
    try:
        data = json.loads((folder / COMPRESSED_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _missing_files(folder: pathlib.Path, metrics: dict[str, Any] | None, compressed: dict[str, Any] | None
                   ) -> tuple[str, ...]:
    """The files a member's records describe that its folder lacks: model.pt (a search's metrics.json records its
    final_train), model.onnx (its test_acc_onnx) and the files of its compression (compressed_metrics.json's
    `files`). () for a folder that is gone: the front table says that."""
    if not folder.is_dir():
        return ()
    named = []
    if metrics is not None:
        named += ["model.pt"] * ("final_train" in metrics) + ["model.onnx"] * (metrics.get("test_acc_onnx") is not None)
    files = (compressed or {}).get("files")
    if isinstance(files, dict) and not (compressed or {}).get("error"):
        named += sorted(str(name) for name in files.values())
    return tuple(name for name in dict.fromkeys(named) if not (folder / name).is_file())


def _file_size(path: pathlib.Path) -> int | None:
    """`path`'s size in bytes; None where it is no file (missing, or unreadable: nothing to show)."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _unfinished_compression(folder: pathlib.Path) -> tuple[str, ...]:
    """The files of a compression in a member folder without compressed_metrics.json, which a compression writes last:
    one killed before it finished (or still running). () where the file is there, or no such file is."""
    if (folder / COMPRESSED_JSON).exists():
        return ()
    return tuple(name for name in COMPRESSION_MODEL_FILES if (folder / name).is_file())


def _read_members(header: dict[str, Any], run_dir: pathlib.Path) -> list[_Member]:
    members = []
    for raw in header.get("members") or []:
        if not isinstance(raw, dict):
            continue
        arch_id = str(raw.get("arch_id") or "")
        checkpoint = str(raw.get("checkpoint") or f"checkpoints/{arch_id}")
        folder = run_dir / checkpoint
        metrics, problem = _read_metrics(folder)
        compressed = read_compressed(folder)  # once: the compressed table and the missing files both read it
        members.append(_Member(
            number=_to_int(raw.get("number")), arch_id=arch_id, val_acc=_to_float(raw.get("val_acc")),
            test_acc=_to_float(raw.get("test_acc")), test_acc_onnx=_to_float(raw.get("test_acc_onnx")),
            latency_ms=_to_float(raw.get("latency_ms")), measured_ms=_to_float(raw.get("measured_latency_ms")),
            params=_to_int(raw.get("params")),
            macs=_to_int(raw.get("macs")), summary=str(raw.get("summary") or ""),
            mixers=_split_mixers(raw.get("mixers")), checkpoint=checkpoint,
            checkpoint_exists=folder.is_dir(), metrics=metrics, metrics_problem=problem,
            compressed=compressed, test_ci=_to_interval(raw.get("test_acc_ci95")),
            val_ci=_to_interval(raw.get("val_acc_ci95")), val_final=_to_float(raw.get("val_acc_final")),
            val_final_ci=_to_interval(raw.get("val_acc_final_ci95")),
            vs_faster=_change_of(raw.get("vs_faster")), vs_best=_change_of(raw.get("vs_best")),
            has_predictions=(folder / PREDICTIONS_CSV).is_file(),
            missing_files=_missing_files(folder, metrics, compressed),
            unfinished_compression=_unfinished_compression(folder), onnx_bytes=_file_size(folder / "model.onnx")))
    # Every predicted latency the report shows (members and their compressed files) gets the decimals that tell them
    # apart: at 3, members sorted 0.2404 < 0.2399... read as two equal 0.240 ms.
    shown = [m.latency_ms for m in members] + [_to_float(((m.compressed or {}).get(stage) or {}).get("latency_ms"))
                                               for m in members for stage in _STAGES]
    decimals = _ms_decimals(shown)
    members = [replace(m, ms_decimals=decimals) for m in members]
    # pareto.json promises latency order, but the plots and tables rely on it, so do not trust blindly.
    return sorted(members, key=lambda m: (m.latency_ms is None, m.latency_ms or 0.0))


def _is_run(folder: pathlib.Path) -> bool:
    return (folder / TRIALS_CSV).is_file() and (folder / PARETO_JSON).is_file()


def _near_run_hint(path: pathlib.Path) -> str | None:
    """The run folder(s) to pass instead of `path`, when `path` is a file or member folder inside a run, or the
    search.runs_dir that holds runs: "run `python -m nas.search` first" misled there, as a search had run. None else."""
    inside = next((p for p in (path.parent, path.parent.parent) if str(p) not in ("", ".") and _is_run(p)), None)
    if inside is not None and path.exists():
        return f"{path} is inside the run folder {inside}; pass that folder"
    if path.is_dir() and (runs := sorted(str(p) for p in path.iterdir() if p.is_dir() and _is_run(p))):
        return f"{path} holds run folders, not a run's files; pass one of them: {', '.join(runs)}"
    return None


def _near_run_name(run_dir: pathlib.Path) -> pathlib.Path | None:
    """The run folder beside a missing `run_dir` whose name is closest to its own, if one is close; else None."""
    import difflib

    try:
        runs = {p.name: p for p in run_dir.parent.iterdir() if p.is_dir() and _is_run(p)}
    except OSError:
        return None
    close = difflib.get_close_matches(run_dir.name, list(runs), n=1, cutoff=0.75)
    return runs[close[0]] if close else None


def _load_run(run_dir: pathlib.Path) -> _Run:
    if not _is_run(run_dir) and (hint := _near_run_hint(run_dir)) is not None:
        raise MissingRunFileError(hint)
    if not run_dir.is_dir():
        parent = run_dir.parent if str(run_dir.parent) else pathlib.Path(".")
        # a study name mistyped (imagefoldr): "run `python -m nas.search` first" sent the user to search again
        near = _near_run_name(run_dir)
        raise MissingRunFileError(f"no run folder '{run_dir.name}' in {parent}; "
                                  + (f"did you mean {near}?" if near else _SEARCH_HINT))
    for name in (TRIALS_CSV, PARETO_JSON):
        if not (run_dir / name).is_file():
            if not _searched(run_dir):
                raise MissingRunFileError(f"no {name} in {run_dir}; {_SEARCH_HINT}")
            # a first search killed (kill -9, OOM) or still running before it wrote the file: the line only offered the
            # rebuild from the study, and said nothing of the search that the README says the report names as killed
            unfinished = _unfinished_before(name, _read_markers(run_dir))
            raise MissingRunFileError(f"no {name} in {run_dir}{unfinished or ';'} {_rebuild_text(run_dir)}")
    header = read_pareto_json(run_dir / PARETO_JSON)
    marks = _read_markers(run_dir)
    return _Run(header=header, trials=_read_trials(run_dir / TRIALS_CSV), members=_read_members(header, run_dir),
                unfinished=_joined_unfinished(header, marks), unfinished_warnings=_markers_warnings(marks),
                written_since=_written_since(header, marks), **_retired(run_dir))


def _joined_unfinished(header: dict[str, Any], marks: list[dict[str, Any]]) -> str:
    """The report's "Not finished" line: pareto.json's (`header`) record of the search's compression stopped before it
    finished (`compression_stopped`), then what the run markers `marks` say (`_unfinished_text`); '' for neither."""
    stopped = header.get("compression_stopped")
    compression = f"{stopped[:1].upper()}{stopped[1:].rstrip('.')}." if isinstance(stopped, str) and stopped else ""
    return " ".join(part for part in (compression, _unfinished_text(marks)) if part)


def _retired(run_dir: pathlib.Path) -> dict[str, int]:
    """How many former members' folders the run keeps in retired/ (`RETIRED_FOLDER`), and the size of their files
    (`retired`, `retired_bytes`); 0 where there is none."""
    try:
        folders = [p for p in (run_dir / RETIRED_FOLDER).iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # none (or unreadable: nothing to say of it)
        return {"retired": 0, "retired_bytes": 0}
    size = 0
    for folder in folders:
        for p in folder.rglob("*"):
            try:
                if p.is_file() and not p.is_symlink():
                    size += p.stat().st_size
            except OSError:  # removed meanwhile (a user clearing it)
                continue
    return {"retired": len(folders), "retired_bytes": size}
