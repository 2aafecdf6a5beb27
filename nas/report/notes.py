"""Write a human-readable report of a search run from the files the search left in its run folder.

The report only *reads* files (``trials.csv``, ``pareto.json``, ``checkpoints/<arch_id>/metrics.json`` and,
for compressed winners, ``checkpoints/<arch_id>/compressed_metrics.json``; the searches' ``.running.*`` markers),
so it can be regenerated at any time, also while a search is still running, and from a run folder it deliberately
imports nothing from the rest of ``nas`` but the file names in ``nas.layout`` and the error classes of ``nas.errors``
(both plain Python; nor torch/optuna): a run folder copied to a laptop is enough. (A damaged ``pareto.json`` is refused naming its rebuild with the settings `nas.rebuild` reads
from the run's config.yaml, which imports nas.config but not torch or Optuna. Its command line also writes
``pareto.csv`` where the folder's files give another one, with `nas.pareto_csv`, which imports only this module,
and writes both under the run folder's lock, `nas.checkpoint.run_folder_lock`, whose module imports numpy, not torch.)

Outputs, all written atomically into the run folder:

* ``report.html`` - one self-contained page (plotly.js embedded once, works offline) with an interactive
  Pareto scatter, latency breakdowns of the front, the mixer chosen per stage, a table of the front and one of
  the compressed files;
* ``report.md`` with ``pareto.png``, ``latency_breakdown.png`` and ``mixers.png`` for places that render
  Markdown (pull requests, wikis) but not JavaScript.

Command line: ``python -m nas.report <run_dir>``, or ``python -m nas.report search.storage=... search.study_name=...``
to rebuild the run folder's files from a study first (that form needs the full toolkit: `nas.search.export_study`).
"""

from __future__ import annotations

import argparse
import csv
import errno
import html
import io
import json
import os
import pathlib
import re
import secrets
import socket
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

# NasError: the base of every error the toolkit raises, so that `except NasError` around a notebook's calls catches a
# report's refusal too (nas.errors imports nothing but the standard library)
from nas.errors import DISK_EXIT, NasError, exit_with_error, readable_text

# the names compress.pipeline writes, shared with it (no compress imports here: nas.layout holds constants alone)
from nas.layout import COMPRESSED_JSON, COMPRESSION_MODEL_FILES, IR_FILES, RETIRED_FOLDER

# plotly and matplotlib (about a second to import) are imported where a page or a PNG is drawn: the rest of the
# toolkit reads this module's constants and notes (a search its run-marker prefix, compress.run its notes) without them.
if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = ["ReportInputError", "MissingRunFileError", "write_reports", "predicted_precision_note", "read_pareto_json",
           "training_text", "main"]

TRIALS_CSV = "trials.csv"
PARETO_JSON = "pareto.json"
METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "test_predictions.csv"  # as nas.results.PREDICTIONS_FILE (no nas imports here)
_STAGES = ("fp32", "pruned", "int8")
REPORT_FILES = ("report.html", "report.md", "pareto.png", "latency_breakdown.png", "mixers.png")

RUN_MARKER_PREFIX = ".running."
"""A search writes `<run folder>/.running.<pid>@<host>~<pid namespace>` (JSON: started, host, pid, pid_namespace,
setup_warnings: its warnings about its setup, as pareto.json's, and pareto_created: the `created` of the pareto.json it
found) when it starts and removes it just before it writes its final report: one left behind is a run that is still
going or was killed, and the report says so at its top (its tables describe the state before that run) and lists that
run's setup warnings, not those of the run that wrote pareto.json (unless that one wrote it after the marker's run
started: a worker that finished beside it, whose own are listed first). A
search that stops on its own before that (a one-line error, Ctrl-C or SIGTERM outside the trials) adds `stopped`: why, in one
line."""

_DPI = 110
_MISSING = "–"  # shown for unknown values (null test accuracy, pruned trial without accuracy, ...)
# A file of a member's records that its folder lacks, after its name: in the compressed table and pareto.csv's int8_file
MISSING_FILE_MARK = " (missing)"
_SEARCH_HINT = "run `python -m nas.search` first"
_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
_KIND_ORDER = ("overhead", "conv", "pwconv", "dwconv", "linear", "matmul", "bn", "ln", "relu", "gelu",
               "softmax", "add", "pool", "reduce")
_MIXER_COLOURS = {"identity": "#d9d9d9", "pool": "#9ecae1", "sepconv": "#74c476", "conv": "#fd8d3c",
                  "attn": "#9e6ac8"}
# Used for segments of stacked bars and for mixers this module does not know yet (new search spaces).
_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
            "#9d755d", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf")
_FRONT_COLOUR = "#d62728"
_TRIAL_COLOUR = "#8c8c8c"
_INT8_COLOUR = "#2ca02c"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
     padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.3rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;margin:.8rem 0}
dl.facts dt{font-weight:600} dl.facts dd{margin:0}
.note{color:#666;font-style:italic}
.unfinished,.smoke,ul.warnings{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem .8rem;border-radius:4px}
ul.warnings{padding-left:2rem}
.counts{background:#f4f4f4;padding:.4rem .7rem;border-radius:4px;display:inline-block}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mixer{text-align:center;font-weight:600;min-width:5.5rem}
.legend span{display:inline-block;padding:.1rem .5rem;margin-right:.3rem;border-radius:3px}
code{font-size:.85rem}
"""


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


# ----------------------------------------------------------------------------------------------- data


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


def _to_float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_int(value: Any) -> int | None:
    number = _to_float(value)
    return None if number is None else int(number)


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


def _rebuild_hint(run_dir: pathlib.Path) -> str:
    """What to do about a damaged pareto.json of `run_dir`: the search that wrote it ran, so not 'run it first', but
    rebuild the folder's files from its study (`_rebuild_text`)."""
    return f"damaged; {_rebuild_text(run_dir)}"


def _searched(run_dir: pathlib.Path) -> bool:
    """Whether a search ran in `run_dir` (its study.db or config.yaml is there): a file of it that is gone is written
    again by the rebuild from its study, not by running the search first."""
    return (run_dir / "study.db").is_file() or (run_dir / "config.yaml").is_file()


def _rebuild_text(run_dir: pathlib.Path) -> str:
    """'rebuild the run folder's files from its study: python -m nas.report ...' (which writes trials.csv and pareto.json
    anew), with the search's data.root, final_train and compress as its config.yaml records them
    (`nas.rebuild.rebuild_settings`: without them the rebuild was refused, or trained and compressed the members again
    with the defaults); where config.yaml cannot be read, those named."""
    settings = None
    try:
        # nas.rebuild (Hydra, OmegaConf; no torch) only here: the report of a sound run folder imports nothing from nas
        from nas.rebuild import rebuild_settings
    except ImportError:  # the report's files copied alone: the settings are named instead
        pass
    else:
        settings = rebuild_settings(run_dir)
    moved, study = _moved_from(run_dir)
    named = _rebuild_command(str(run_dir), [], study_name=study)
    if settings is None:
        return (f"{moved}rebuild the run folder's files from its study: python -m nas.report {named} with the search's "
                "settings (its data.root, final_train and compress: config.yaml holds them; search.storage for a study "
                "not in its study.db)")
    # each setting is one shell argument already (a data.root quoted as `nas.overrides.shell_override` quotes it)
    return (f"{moved}rebuild the run folder's files from its study: python -m nas.report {' '.join([named, *settings])}"
            " (and search.storage=... for a study not in its study.db)")


def _study_names(run_dir: pathlib.Path) -> list[str] | None:
    """The names of the studies in the run folder's own study.db (Optuna's `studies` table), sorted; None where it has
    none or it cannot be read. Opened read-only (a `mode=ro` URI): neither Optuna (absent where only the report runs)
    nor a connection that would create or migrate the database."""
    import contextlib
    import sqlite3

    db = run_dir / "study.db"
    if not db.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            return sorted(str(name) for name, in connection.execute("SELECT study_name FROM studies"))
    except (sqlite3.Error, OSError, ValueError):  # not a database, of another schema, locked, unreadable
        return None


# The study name of a rebuild hint for a folder whose database holds several studies, none of its name: the user's
# choice
_CHOSEN_STUDY = "<its name>"


def _moved_from(run_dir: pathlib.Path) -> tuple[str, str | None]:
    """For a run folder copied or renamed from another run's (its study.db holds no study of the folder's name): what
    to do first, and the study name its rebuild takes (`_CHOSEN_STUDY` where it holds several); else ("", None): the
    folder's name is the study's, or its study is elsewhere (search.storage) or unreadable. The rebuild reads the run
    folder search.runs_dir/search.study_name, so `search.study_name=<folder name>` was refused (the study is not in the
    database) and the study's own name alone reads another folder."""
    folder = run_dir.resolve() if run_dir.name in ("", "..") else run_dir
    names = _study_names(run_dir)
    if not names or folder.name in names:
        return "", None
    if len(names) > 1:
        return (f"its study.db holds studies {', '.join(map(repr, names))}, none named {folder.name!r}: move the "
                f"folder to {folder.parent}/<the name of the study to rebuild> (the rebuild reads the run folder "
                "search.runs_dir/search.study_name), then "), _CHOSEN_STUDY
    study = names[0]
    target = folder.parent / study
    where = (f"move it back to {target}" if not target.exists()
             else f"move it into another folder as {study} ({target} is taken) and pass that folder as search.runs_dir")
    return (f"its study.db holds study {study!r}, so the folder was copied or renamed from a run of that name (the "
            f"rebuild reads the run folder search.runs_dir/search.study_name): {where}, then "), study


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
            unfinished_compression=_unfinished_compression(folder)))
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


def _load_run(run_dir: pathlib.Path) -> _Run:
    if not _is_run(run_dir) and (hint := _near_run_hint(run_dir)) is not None:
        raise MissingRunFileError(hint)
    if not run_dir.is_dir():
        parent = run_dir.parent if str(run_dir.parent) else pathlib.Path(".")
        raise MissingRunFileError(f"no run folder '{run_dir.name}' in {parent}; {_SEARCH_HINT}")
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
                unfinished=_unfinished_text(marks), unfinished_warnings=_markers_warnings(marks),
                written_since=_written_since(header, marks), retired=_retired_count(run_dir))


def _retired_count(run_dir: pathlib.Path) -> int:
    """How many former members' folders the run keeps in retired/ (`RETIRED_FOLDER`); 0 where there is none."""
    try:
        return sum(1 for p in (run_dir / RETIRED_FOLDER).iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # none (or unreadable: nothing to say of it)
        return 0


# The helpers below repeat nas.checkpoint's on purpose: this module imports nothing from nas (see its docstring).
def _pid_namespace() -> str | None:
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or None
    except OSError:
        return None


def _process_gone(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _writer_tag() -> str:
    # nas.checkpoint.writer_tag: the search's cleanup (remove_dead_writers_temps) reads it in the temporary files' names
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "_"
    return f"{os.getpid()}@{host}~{_pid_namespace() or '-'}"


def _read_markers(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The run markers of `run_dir` (`RUN_MARKER_PREFIX`) in name order, each a JSON object with started, pid and host;
    one half-written by a worker starting right now, or not ours, is left out."""
    marks = []
    for path in sorted(run_dir.glob(RUN_MARKER_PREFIX + "*")):
        try:
            mark = json.loads(path.read_text())
            if isinstance(mark, dict) and all(key in mark for key in ("started", "pid", "host")):
                marks.append(mark)
        except (OSError, ValueError):
            continue
    return marks


def _markers_warnings(marks: Sequence[dict[str, Any]]) -> list[str] | None:
    """The setup warnings the searches of `marks` recorded as they started, each once, one line each (as
    `_setup_warnings`); None when none of them recorded any (no marker, or only markers of older versions)."""
    recorded = [mark["setup_warnings"] for mark in marks if isinstance(mark.get("setup_warnings"), list)]
    if not recorded:
        return None
    return list(dict.fromkeys(" ".join(str(w).splitlines()) for warnings in recorded for w in warnings if w))


def _written_since(header: dict[str, Any], marks: Sequence[dict[str, Any]]) -> bool:
    """Whether pareto.json (`header`) was written after each search of `marks` started: a marker records the `created`
    of the pareto.json its search found then (`pareto_created`, None when there was none), so another one means a
    search that finished meanwhile (a worker of the same study) wrote it. False for markers of older versions."""
    created = header.get("created")
    return bool(marks) and isinstance(created, str) and all(
        "pareto_created" in mark and mark["pareto_created"] != created for mark in marks)


def _marker_state(mark: dict[str, Any]) -> str:
    """What a run marker (`_read_markers`) says of its search: "stopped" (it ended on its own and recorded why in
    `stopped`), "gone" (a search of this machine whose process is gone: killed or crashed), else "running" (or of
    another machine, which cannot be checked from here)."""
    if isinstance(mark.get("stopped"), str):
        return "stopped"
    here = mark.get("host") == socket.gethostname() and mark.get("pid_namespace") == _pid_namespace()
    return "gone" if here and _process_gone(mark.get("pid")) else "running"


def _unfinished_before(name: str, marks: Sequence[dict[str, Any]]) -> str:
    """': the search started ... (pid N on host) was killed or crashed before it wrote pareto.json (its process is gone):
    rerun the search command to resume it, or' for a run file `name` that is missing while the run markers `marks`
    (`_read_markers`) show a search that has not finished (stopped, killed, or running); '' when none do."""
    parts = []
    for mark in marks:
        who = f"the search started {mark['started']} (pid {mark['pid']} on {mark['host']})"
        if (state := _marker_state(mark)) == "stopped":
            parts.append(f"{who} stopped before it wrote {name}: {mark['stopped'].rstrip('.')}")
        elif state == "gone":
            parts.append(f"{who} was killed or crashed before it wrote {name} (its process is gone)")
        else:
            parts.append(f"{who} has not written {name} yet (it writes it when it ends; if that process is no longer "
                         "running, it was killed or crashed)")
    if not parts:
        return ""
    return f": {'; '.join(parts)}: rerun the search command to resume a stopped search, or"


def _unfinished_text(marks: Sequence[dict[str, Any]]) -> str:
    """What the run markers `marks` (`_read_markers`) say: searches still running, or stopped without finishing (a marker
    that says why, or whose process is gone on this machine); '' when there are none. The text must stay true if the
    search is killed after writing it: a report written by a search as it starts is not rewritten then."""
    parts = []
    for mark in marks:
        who = f"started {mark['started']} (pid {mark['pid']} on {mark['host']})"
        if (state := _marker_state(mark)) == "stopped":  # it ended on its own (a one-line error, Ctrl-C, SIGTERM), said why
            parts.append(f"A search {who} stopped before it finished: {mark['stopped'].rstrip('.')}.")
        elif state == "gone":
            parts.append(f"A search {who} stopped before it finished (killed or crashed: its process is gone).")
        else:
            parts.append(f"A search {who} has not finished (if that process is no longer running, it was killed or "
                         "crashed).")
    if not parts:
        return ""
    return (" ".join(parts) + f" What follows is the state before {'it' if len(parts) == 1 else 'them'}: rerun the same "
            "command to resume a stopped search; a running one rewrites this report when it ends.")


# ------------------------------------------------------------------------------------- small helpers


def _fmt_acc(value: float | None) -> str:
    return _MISSING if value is None else f"{100.0 * value:.2f}%"


def _to_interval(value: Any) -> tuple[float, float] | None:
    """A [low, high] pair of accuracies from a run file, or None if absent or malformed."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = _to_float(value[0]), _to_float(value[1])
    return (low, high) if low is not None and high is not None and low <= high else None


def _fmt_acc_ci(value: float | None, interval: Any) -> str:
    """'90.45% [89.86–91.01]': an accuracy and its 95% interval (just the accuracy when the file has none)."""
    ci = _to_interval(interval)
    if value is None or ci is None:
        return _fmt_acc(value)
    return f"{_fmt_acc(value)} [{100 * ci[0]:.2f}–{100 * ci[1]:.2f}]"


def _change_of(change: Any) -> dict[str, Any] | None:
    """A run file's image-by-image comparison (`now_wrong`, `now_right`, `p_value` and what it was compared with), or
    None if absent or malformed."""
    if not isinstance(change, dict):
        return None
    wrong, right, p = _to_int(change.get("now_wrong")), _to_int(change.get("now_right")), _to_float(change.get("p_value"))
    if wrong is None or right is None or p is None:
        return None
    return {**change, "now_wrong": wrong, "now_right": right, "p_value": p}


def _fmt_p(p: float) -> str:  # as nas.stats.format_p (no nas imports here)
    if p < 1e-4:
        return "p<0.0001"
    return f"p={p:.4g}" if p < 0.05 <= float(f"{p:.2g}") else f"p={p:.2g}"


def _vs_member_text(member: _Member, change: dict[str, Any] | None, members: Sequence[_Member]) -> str:
    """'+2.23 pt, p<0.0001 (a real gain)': this member's test accuracy minus that of the member `change` compares it
    with, and whether the test images tell them apart (McNemar's p on the images whose verdict differs)."""
    other = next((o for o in members if change and o.arch_id == change.get("arch_id")), None)
    if change is None or other is None or member.test_acc is None or other.test_acc is None:
        return _MISSING
    p, gain = change["p_value"], member.test_acc - other.test_acc
    # the direction in words: a slower member that is really less accurate is worth a second look
    verdict = "within noise" if p >= 0.05 else ("a real gain" if gain > 0 else "a real loss")
    return f"{100 * gain:+.2f} pt, {_fmt_p(p)} ({verdict})"


def _vs_faster_text(member: _Member, members: Sequence[_Member]) -> str:
    """The front table's 'vs next faster' cell: the gain over the next faster member (`members` in latency order), or
    over the one before it that has test predictions, named ('vs aaaa (bbbb has no test predictions): +1.20 pt, ...');
    'n/a (why)' where no comparison is recorded, and '–' for the fastest member, which has none to have."""
    i = next(j for j, o in enumerate(members) if o is member)
    if i == 0:
        return _MISSING
    nearest, change = members[i - 1], member.vs_faster
    other = next((o for o in members[:i] if change and o.arch_id == change.get("arch_id")), None)
    if change is None or other is None:
        if not member.has_predictions:
            return "n/a (no test predictions)"
        if not any(o.has_predictions for o in members[:i]):
            return f"n/a ({nearest.arch_id} has no test predictions)" if i == 1 else "n/a (no faster member has test predictions)"
        # pareto.json from before 2026-12-05, or hand-edited: rerunning the search (0 new trials) compares them
        return "n/a (pareto.json compares no members; rerun the search command to compare them)"
    if other.test_acc is None or member.test_acc is None:
        return f"n/a ({(other if other.test_acc is None else member).arch_id} has no test accuracy)"
    text = _vs_member_text(member, change, members)
    if other is nearest:
        return text
    skipped = members[members.index(other) + 1:i]
    reason = ", ".join(o.arch_id for o in skipped) + (" has" if len(skipped) == 1 else " have")
    return f"vs {other.arch_id} ({reason} no test predictions): {text}"


def _best_member_note(members: Sequence[_Member]) -> str:
    """Which members faster than the most accurate one the test images cannot tell from it: the cheap choices."""
    best_id = next((m.vs_best["arch_id"] for m in members if m.vs_best), None)
    best = next((m for m in members if m.arch_id == best_id), None)
    if best is None or best.latency_ms is None:
        return ""
    faster = [m for m in members if m.vs_best and m.latency_ms is not None and m.latency_ms < best.latency_ms]
    head = f"Best test accuracy: {best.arch_id} ({_fmt_acc(best.test_acc)}, {_fmt_ms(best.latency_ms, best.ms_decimals)} ms). "
    if not faster:
        # the fastest member is also the most accurate: the run's main finding (every slower member is dominated on the
        # test split), which only the 'vs next faster' cells hinted at
        slower = "; ".join(f"{m.arch_id} ({_fmt_ms(m.latency_ms, m.ms_decimals)} ms, {_vs_member_text(m, m.vs_best, members)})"
                           for m in members if m.vs_best and m.latency_ms is not None and m.latency_ms > best.latency_ms)
        return (head + f"It is also the fastest member: no slower member is more accurate on the test split: {slower}."
                if slower else "")
    close = [m for m in faster if m.vs_best["p_value"] >= 0.05]
    if not close:
        which = f"The faster member {faster[0].arch_id} is" if len(faster) == 1 else "Every faster member is"
        return head + f"{which} less accurate for real (p < 0.05, image by image)."
    listed = ", ".join(f"{m.arch_id} ({_fmt_ms(m.latency_ms, m.ms_decimals)} ms, {_vs_member_text(m, m.vs_best, members)})"
                       for m in close)
    return (head + f"Faster members the test images cannot tell from it (p >= 0.05, image by image): {listed}. "
            f"The fastest of them, {close[0].arch_id}, buys its speed at no accuracy loss this test split can show.")


def _change_text(change: Any) -> str | None:
    """'vs model.onnx: 41 test images now wrong, 34 now right (p=0.49, not shown to differ)': the images whose verdict
    changed from the file before, and McNemar's p (compressed_metrics.json's changed_vs_before; None if absent)."""
    if (change := _change_of(change)) is None:
        return None
    wrong, right, p = change["now_wrong"], change["now_right"], change["p_value"]
    if p >= 0.05:
        verdict = "not shown to differ"
    else:
        verdict = "a real drop" if wrong > right else "a real gain"
    return (f"vs {change.get('file') or 'the file before'}: {_counted(wrong, 'test image')} now wrong, {right:,} now right "
            f"({_fmt_p(p)}, {verdict})")


# Under the tables that show intervals: how to read them (nas.stats).
_CI_NOTE = ("Test accuracies in [brackets]: the 95% interval that the number of test images allows. Files of the same "
            "member, and members with each other, are compared image by image: 'now wrong / now right' counts the test "
            "images whose verdict changed from the file before, 'vs next faster' is the gain over the next faster member "
            "(or, named in the cell, over the next faster one that has test predictions), "
            "and p (McNemar's exact test) is the chance of a split at least that uneven if the two were equally "
            "accurate; below 0.05 the difference is real for this data.")


def _predicted_note(members: Sequence[_Member], header: dict[str, Any]) -> str:
    """What the front table's 'predicted latency' is: the chip's prediction at its hw.precision (pareto.json's
    hw_precision), so on an int8 chip the int8 model's time and not model.pt's float one. '' without members or for a
    pareto.json from before the field."""
    hw, precision = header.get("hw"), header.get("hw_precision")
    if not (members and isinstance(hw, str) and hw and isinstance(precision, str) and precision):
        return ""
    which = f" (the {precision} model's time on the chip, not model.pt's float one)" if precision != "fp32" else ""
    return (f"'predicted latency': each member's architecture on {hw} at its hw.precision, {precision}{which}, "
            "from the latency predictor, not timed.")


def _measured_note(members: Sequence[_Member], header: dict[str, Any] | None = None) -> str:
    """How and where 'measured on host' was timed (metrics.json's measured_latency_how / _on): a time means little
    without its runtime, threads and CPU. When members were not timed, why (pareto.json's measured_latency_missing,
    absent from runs before 2026-12-05: no note then): an all-'–' column read as a failure. '' when neither."""
    why = (header or {}).get("measured_latency_missing")
    if why and any(m.measured_ms is None for m in members):
        return f"'measured on host' is empty: {why}."
    seen: dict[str, list[str]] = {}  # each text, with the members timed so
    for m in members:
        if m.measured_ms is None or not isinstance(m.metrics, dict):
            continue
        how, on = m.metrics.get("measured_latency_how"), m.metrics.get("measured_latency_on")
        text = ", ".join(str(v) for v in (how, f"on {on}" if on else None) if v)
        if text:
            seen.setdefault(text, []).append(m.arch_id)
    if len(seen) > 1:
        # The texts differ (each member's spread is in its own, a busy machine's warning too): listed bare, the note
        # read as the first member's, then the second's, and so on, with no member named
        return "'measured on host': " + "; ".join(f"{', '.join(ids)}: {text}" for text, ids in seen.items()) + "."
    return f"'measured on host': {next(iter(seen))}." if seen else ""


# ... and when the front table shows val intervals (pareto.json's val_acc_ci95 and val_acc_final_ci95; none for
# balanced accuracy)
_VAL_CI_NOTE = ("Val accuracies in [brackets]: the 95% interval that the number of val images allows, which says how "
                "far each member's val accuracy, the score the search ranked it by{}, can be trusted.")


def _ci_note(members: Sequence[_Member]) -> str:
    """_CI_NOTE when a table of the report shows a test interval or a change count, _VAL_CI_NOTE when it shows a val
    interval (both, or '')."""
    stages = [(m.compressed or {}).get(stage) or {} for m in members for stage in _STAGES]
    shown = (any(m.test_ci or m.vs_faster for m in members)
             or any(s.get("test_acc_ci95") or s.get("changed_vs_before") for s in stages))
    final = " and the final-trained weights'" * any(m.val_final_ci for m in members)
    return " ".join([_CI_NOTE] * shown + [_VAL_CI_NOTE.format(final)] * any(m.val_ci or m.val_final_ci for m in members))


def _shows_final_val(members: Sequence[_Member]) -> bool:
    """Whether the front table has its 'val acc (final)' column: some member was final-trained (else every cell would
    be '–', read as a failure)."""
    return any(m.val_final is not None for m in members)


def _final_val_note(members: Sequence[_Member]) -> str:
    """What the 'val acc (final)' column is, under the front table that shows it ('' when it does not)."""
    if not _shows_final_val(members):
        return ""
    # The search's proxy score and the shipped weights' test accuracy sat side by side: the gain of the final training
    # on the images the search scored, and the val-test gap of the same weights, could not be read off the report.
    note = ("'val acc (final)': the val accuracy of the shipped weights (model.pt) after the final training, on the "
            "same val images as 'val acc (search)', the proxy training's score the search ranked members by")
    if any(m.val_final is None for m in members):
        note += "; '–' for a member not final-trained, whose weights are the proxy's"
    return note + (". The search chose the members on these val images, so judge the shipped weights by their test "
                   "accuracy.")


def _fmt_ms(value: float | None, decimals: int = 3) -> str:
    return _MISSING if value is None else f"{value:.{decimals}f}"


def _ms_decimals(values: Iterable[float | None], *, least: int = 3, most: int = 6) -> int:
    """The fewest decimals, from `least` up to `most`, at which distinct latencies print differently: two members at
    0.2404 and 0.2396 ms both read '0.240' at 3, as if equal (or sorted wrongly). Rounding keeps the order, so
    distinct strings also read in the right order. `most` (1 ns) is past what a latency prediction means: values
    closer than that are shown equal."""
    distinct = sorted({v for v in values if v is not None})
    for decimals in range(least, most):
        if len({f"{v:.{decimals}f}" for v in distinct}) == len(distinct):
            return decimals
    return most


def _fmt_count(value: int | None) -> str:
    if value is None:
        return _MISSING
    if abs(value) >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if abs(value) >= 1_000:
        return f"{value / 1e3:.1f}k"
    return str(value)


def _counted(n: int, noun: str, *, plural: str | None = None) -> str:  # as nas.errors.counted (no nas imports here)
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _fmt_budget(budget: float | None) -> str:
    return "none" if budget is None else f"{budget:g} ms"


def _state_counts_text(trials: Sequence[_Trial]) -> str:
    counts = Counter(t.state or "UNKNOWN" for t in trials)
    states = [s for s in _STATE_ORDER if counts[s]] + sorted(s for s in counts if s not in _STATE_ORDER)
    parts = ", ".join(f"{counts[s]} {s}" for s in states)
    stopped = sum(t.stopped_early for t in trials)
    if stopped:  # complete, but with the accuracy they had when stopped
        parts += f" ({stopped} of them stopped early as hopeless)"
    duplicates = sum(t.duplicate for t in trials)
    if duplicates:  # they count against search.n_trials but explored nothing new
        parts += f" ({duplicates} of them re-proposed an architecture already trained and reused its result)"
    return _counted(len(trials), "trial") + (f": {parts}" if parts else "")


_INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"  # how nas.study.INTERRUPTED_REASON starts (no nas imports here)


def _failure_reason(trial: _Trial, trials: Sequence[_Trial]) -> str:
    """`trial`'s fail_reason for the report: an interrupted trial whose architecture a later trial finished was run
    again by the rerun, so its "rerun the same command to resume" would ask for what is done."""
    reason = trial.fail_reason or "no reason recorded"
    if reason.startswith(_INTERRUPTED) and trial.number is not None and any(
            t.state == "COMPLETE" and t.arch_id == trial.arch_id and t.number is not None and t.number > trial.number
            for t in trials):
        return f"{_INTERRUPTED}, run again since (trials.csv: a later trial of its arch_id)"
    return reason


def _failures_text(trials: Sequence[_Trial], shown: int = 3) -> str:
    """'2 × RuntimeError: out of memory; 1 × ValueError: NaN loss': the most common reasons of the failed trials (from
    trials.csv), so a run whose trials failed says why without opening the CSV; '' when none failed."""
    reasons = Counter(_failure_reason(t, trials) for t in trials if t.state == "FAIL")
    if not reasons:
        return ""
    common = reasons.most_common(shown)
    text = "; ".join(f"{n} × {reason}" for reason, n in common)
    rest = sum(reasons.values()) - sum(n for _, n in common)
    return text + (f"; {rest} with other reasons (trials.csv, column fail_reason)" if rest else "")


def _no_trials_note(run: _Run) -> str:
    """Why the Pareto plot is empty: still running, or a finished search none of whose trials completed."""
    if run.complete:
        return ""
    if not run.trials or any(t.state == "RUNNING" for t in run.trials):
        return "No finished trials yet."
    pruned = all(t.state == "PRUNED" for t in run.trials)
    budget = run.budget_ms if pruned else None
    over = [t.latency_ms for t in run.trials if budget is not None and t.latency_ms is not None and t.latency_ms > budget]
    if over and len(over) == len(run.trials):  # the budget, not training, left nothing: say how far off it was
        return (f"No finished trials: all {_counted(len(over), 'trial')} sampled were predicted slower than the latency "
                f"budget ({_fmt_budget(budget)}), so none was trained; the fastest of them was {_fmt_ms(min(over))} ms "
                "(trials.csv, latency_ms).")
    return (f"No finished trials: none of the {_counted(len(run.trials), 'trial')} completed (trials.csv's fail_reason column says "
            "why for each).")


def _no_members_note(run: _Run) -> str:
    """Why the front is empty although trials may have finished (over the budget, or members left out of pareto.json)."""
    complete = run.complete
    if not complete:
        return "No Pareto members yet." if _no_trials_note(run).endswith("yet.") else "No Pareto members: no finished trials."
    if not any(t.feasible for t in complete):
        return (f"No Pareto members: none of the {_counted(len(complete), 'finished trial')} is within the latency budget "
                f"({_fmt_budget(run.budget_ms)}).")
    if names := _left_out_names(run):
        # a first run stopped in its final training lists no member at all: the note named none of the front's, which
        # the report of a run with some members listed names (_left_out_note)
        return (f"No Pareto members in {PARETO_JSON} although {_counted(len(complete), 'trial')} finished; on the Pareto "
                f"front (trials.csv, is_pareto): {names}. {_capital(_left_out_why(to='write'))}.")
    return (f"No Pareto members in {PARETO_JSON} although {_counted(len(complete), 'trial')} finished (a member not final-trained "
            "because the search was interrupted, or whose weights are missing, is left out: search.log names it); rerun "
            "the search command to write them.")


def _left_out_ids(run: _Run) -> list[str]:
    """The front's members that pareto.json lacks, by latency: its `members_missing`, or, in a file from before that
    field, the members trials.csv marks (is_pareto) that it does not list; [] when none is missing."""
    recorded = run.header.get("members_missing")
    if isinstance(recorded, list):
        return [str(a) for a in recorded]
    listed = {m.arch_id for m in run.members}
    on_front = {t.arch_id: t for t in reversed(run.trials) if t.on_front}  # a re-proposed duplicate: its first trial
    return [t.arch_id for t in sorted(on_front.values(), key=lambda t: t.latency_ms if t.latency_ms is not None else 0.0)
            if t.arch_id not in listed]


def _left_out_names(run: _Run) -> str:
    """'f3a0cbbb22 (trial 1, 0.329 ms), ...': the front's members that pareto.json lacks (`_left_out_ids`), by latency,
    each with its trial from trials.csv where that lists it; '' when none is missing."""
    trials: dict[str, _Trial] = {}
    for t in run.trials:
        if t.state == "COMPLETE":
            trials.setdefault(t.arch_id, t)  # a re-proposed duplicate repeats its arch_id
    return ", ".join(f"{a} (trial {t.number if t.number is not None else _MISSING}, {_fmt_ms(t.latency_ms)} ms)"
                     if (t := trials.get(a)) is not None else a for a in _left_out_ids(run))


def _left_out_why(*, rerun: str = "the search command", to: str = "add") -> str:
    """'not final-trained because the search was interrupted, ...; rerun the search command to add them': why the front's
    members that pareto.json lacks (`_left_out_names`) are left out, and the command (`rerun`) that writes them, `to`
    add them to the members listed ('write' where none is). Said alike by the report's notes and `python -m nas.report`'s
    stderr line."""
    return (f"not final-trained because the search was interrupted, or their weights are missing (search.log says "
            f"which); rerun {rerun} to {to} them")


def _capital(text: str) -> str:
    """`text` with its first letter a capital, to start a sentence (str.capitalize would lower the rest: a command)."""
    return text[:1].upper() + text[1:]


def _incomplete_front_line(run: _Run, *, rerun: str = "the search command") -> str | None:
    """The line `python -m nas.report` says on stderr when pareto.json (and so the report) lacks members of the front:
    an interrupted search lists those finished only. `rerun`: the command that adds them. None when it holds the whole
    front."""
    if not (missing := _left_out_ids(run)):
        return None
    return (f"incomplete front: {len(run.members) + len(missing)} on the Pareto front, {len(run.members)} of them in "
            f"pareto.json and the report; not in them: {_left_out_names(run)}, {_left_out_why(rerun=rerun)}")


def _say_incomplete_front(run: _Run, *, rerun: str = "the search command") -> None:
    """`_incomplete_front_line` on stderr, after what was printed on stdout (the files written, for scripts)."""
    if (line := _incomplete_front_line(run, rerun=rerun)) is not None:
        sys.stdout.flush()  # after the paths in a terminal too, where stdout is buffered apart
        print(line, file=sys.stderr)


def _left_out_note(run: _Run) -> str:
    """Front members trials.csv marks (is_pareto) that pareto.json lacks: left out for now (not final-trained because the
    search was interrupted, or their weights missing). Without this the table reads as the whole front, and a 'vs next
    faster' cell as a comparison with the member just faster on the front. '' when none is missing (or no member is
    listed at all: _no_members_note names them)."""
    names = _left_out_names(run)
    if not names or not run.members:
        return ""
    return f"Not in this table, though on the Pareto front (trials.csv, is_pareto): {names}. {_capital(_left_out_why())}."


def _missing_files_note(members: Sequence[_Member]) -> str:
    """Files the members' records describe that are gone from their folders (deleted by hand), and what makes them
    again: without it the tables listed them as the members' files. '' when none is gone."""
    gone = [f"{m.arch_id}: {', '.join(m.missing_files)}" for m in members if m.missing_files]
    if not gone:
        return ""
    # where a member lacks only its OpenVINO IR, the search converts it again from model_int8.onnx
    # (compress.pipeline.convert_ir_again): "by compressing the member again" promised minutes of pruning and QAT
    ir_only = [set(m.missing_files) <= set(IR_FILES) for m in members if m.missing_files]
    how = ("the OpenVINO IR converted again from the kept model_int8.onnx, without compressing the member again"
           if all(ir_only) else
           "model.onnx from the kept model.pt, without training; the int8 files by compressing the member again"
           + (", or, where only the OpenVINO IR (model_int8.xml, model_int8.bin) is gone, by converting it again from "
              "the kept model_int8.onnx" if any(ir_only) else ""))
    return (f"Files gone from the members' folders: {'; '.join(gone)}. Rerun the search command to make them again "
            f"({how}); until then their rows describe files that are not there.")


def _header_facts(run: _Run) -> list[tuple[str, str]]:
    h = run.header
    hw = str(h.get("hw") or _MISSING) + _changed_text(h.get("hw_changed"))
    if h.get("hw_description"):
        hw = f"{hw} — {h['hw_description']}"
    # Runs from before the predictor was named in pareto.json simply lack the line.
    predictor = [("Latency predictor", str(h["latency_predictor"]))] if h.get("latency_predictor") else []
    if h.get("latency_warning") and not isinstance(h.get("setup_warnings"), list):
        # a run from before 2026-12-05; later ones list it among the setup warnings, which the Warnings section shows
        predictor.append(("Latency warning", str(h["latency_warning"])))
    # Plain accuracy needs no line (and runs from before data.metric were scored by it).
    metric = ([("Accuracy", "balanced accuracy (data.metric): the mean over the classes of each class's accuracy; "
                            "every accuracy in this report is scored so")] if h.get("metric") == "balanced_accuracy" else [])
    return [("Hardware", hw), *predictor, ("Dataset", _dataset_text(h)), *metric,
            ("Search space", str(h.get("space") or _MISSING) + _changed_text(h.get("space_changed"))),
            ("Latency budget", _fmt_budget(run.budget_ms)),
            *([("Search training", searched)] if (searched := _search_training_text(h)) else []),
            ("Trials finished", str(h.get("n_trials_finished", _MISSING))),
            *([("Weights tested", weights)] if (weights := _weights_text(run.members, train_images=_train_images(h)))
              else []),
            # pareto.json's time: not the run's start nor this report's (compression and rebuilds come later), so named
            ("Front written (pareto.json)", str(h.get("created") or _MISSING))]


def _search_training_text(header: dict[str, Any]) -> str | None:
    """How the search trained each candidate, from pareto.json's `train` (its proxy recipe), and that the search's val
    accuracies are of these weights: train=smoke's 1 epoch on 512 images explains low ones. None in a pareto.json from
    before the field."""
    recipe = header.get("train")
    if not isinstance(recipe, dict):
        return None
    how = training_text(epochs=recipe.get("epochs"), subset=recipe.get("subset"), train_images=_train_images(header))
    return (f"{how} per candidate (train): the search's val accuracies (the plot's, 'val acc (search)') are of these "
            "proxy-trained weights")


def _smoke_text(header: dict[str, Any]) -> str:
    """The report's first line where the run took settings from smoke files (pareto.json's `smoke_settings`): their
    accuracies mean nothing, which only README's dry-run line said. '' where none did, and in a pareto.json from before
    the field."""
    groups = header.get("smoke_settings")
    if not isinstance(groups, list) or not groups:
        return ""
    named = [f"{g}=smoke" for g in groups]
    which = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return (f"{which}: seconds-long settings to try the pipeline, so the accuracies in this report are not meaningful; "
            "do not choose or deploy a model by them")


def _train_images(header: dict[str, Any]) -> int | None:
    """The training split's image count pareto.json records (data.images.train); None where it records none."""
    data = header.get("data")
    images = data.get("images") if isinstance(data, dict) else None  # any shape in a hand-edited or older file
    n = images.get("train") if isinstance(images, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def training_text(*, epochs: Any, subset: Any, train_images: int | None) -> str:
    """How long a recipe trains, as the report and search.log say it: '2 epochs', and where its `subset` is fewer than
    the split's `train_images`, '2 epochs on 512 of the 54,000 training images' (final_train=smoke's 512 read as
    epochs over the whole split without it); 'its recipe' where `epochs` is not recorded."""
    how = (_counted(epochs, "epoch") if isinstance(epochs, int) and not isinstance(epochs, bool)
           else f"{epochs} epochs" if epochs is not None else "its recipe")
    if (isinstance(subset, int) and not isinstance(subset, bool) and train_images is not None
            and 0 < subset < train_images):
        how += f" on {subset:,} of the {train_images:,} training images"  # a subset epoch, not the split's
    return how


def _weights_text(members: Sequence[_Member], *, train_images: int | None = None) -> str | None:
    """Which weights the members' test accuracies are of: final-trained (`final_train`, its epochs, and its recipe's
    subset where that is fewer than the `train_images` of the split, as final_train=smoke's 512) or the search's
    proxy-trained ones (final_train=none), from each metrics.json; None when no member's says (no members, or files
    from before the field). Without it, a final_train=none run's test accuracies read as those of finished models."""
    final: dict[str, list[str]] = {}  # "6 epochs" -> arch_ids
    proxy: list[str] = []
    for m in members:
        if m.metrics is None or "final_train" not in m.metrics:
            continue
        info = m.metrics["final_train"]
        if isinstance(info, dict):
            subset = (info.get("recipe") or {}).get("subset") if isinstance(info.get("recipe"), dict) else None
            how = training_text(epochs=info.get("epochs"), subset=subset, train_images=train_images)
            final.setdefault(how, []).append(m.arch_id)
        else:
            proxy.append(m.arch_id)
    if not final and not proxy:
        return None
    mixed = len(final) + bool(proxy) > 1  # name the members only when they differ
    parts = [f"final-trained from scratch ({how}, final_train)" + (f": {', '.join(ids)}" if mixed else "")
             for how, ids in final.items()]
    if proxy:
        parts.append("the search's proxy-trained weights (final_train=none; not trained further)"
                     + (f": {', '.join(proxy)}" if mixed else ""))
    return "; ".join(parts)


_WARNINGS_NOTE = ("What the search that wrote pareto.json (or a rebuild of it) warned about its setup as it started, as "
                  "search.log has it; the search went on, so they concern the results below.")
_UNFINISHED_WARNINGS_NOTE = ("What the search(es) named above as not finished warned about their setup as they "
                             "started, as search.log has it (the tables below are of the state before them; the report "
                             "a search writes when it finishes lists its own).")


_UNFINISHED_BESIDES_NOTE = ("What the search(es) named above as not finished warned besides, about their own setup "
                             "as they started, as search.log has it (the report a search writes when it finishes lists "
                             "its own).")


def _warnings_of(run: _Run) -> list[tuple[list[str], str]]:
    """The setup warnings the report lists, in groups, each with the note that says whose they are (none when there are
    none): pareto.json's, those of the search that wrote it; but while searches have not finished and their markers
    recorded theirs, those instead (a search starting or stopping rewrites the report while pareto.json is still the
    previous run's, whose warnings would read as this one's), unless pareto.json was written after they started
    (`_Run.written_since`): a worker finishing beside them listed only theirs, as if they were its own, and not the ones
    it gave itself. It then lists its own, and theirs that it did not give."""
    own = _setup_warnings(run.header)
    if run.unfinished_warnings is None:
        return [(own, _WARNINGS_NOTE)] if own else []
    if not run.written_since:
        return [(run.unfinished_warnings, _UNFINISHED_WARNINGS_NOTE)] if run.unfinished_warnings else []
    besides = [w for w in run.unfinished_warnings if w not in own]
    return [(group, note) for group, note in ((own, _WARNINGS_NOTE), (besides, _UNFINISHED_BESIDES_NOTE)) if group]


def _setup_warnings(header: dict[str, Any]) -> list[str]:
    """pareto.json's `setup_warnings`, one line each (a line break in one would end its bullet); [] when there are none,
    also for runs from before 2026-12-05 that lack the field (their report has no Warnings section)."""
    raw = header.get("setup_warnings")
    if not isinstance(raw, list):
        return []
    return [" ".join(str(w).splitlines()) for w in raw if w]


def _changed_text(keys: Any) -> str:
    """' (changed from its file: norms, stages)' for a space or chip set on the command line, else ''."""
    if not keys or not isinstance(keys, list):
        return ""
    return f" (changed from its file: {', '.join(map(str, keys))}; config.yaml holds the values searched)"


def _dataset_text(header: dict[str, Any]) -> str:
    """`fashion_mnist (/usr/share/...): 10 classes, 1x28x28 images; 54,000 train / 6,000 val / 10,000 test (one test
    image = 0.01 pt)`; only the name for runs from before pareto.json described the data (or an unreadable entry)."""
    name = str(header.get("dataset") or _MISSING)
    d = header.get("data")
    try:
        c, hgt, wid = (int(v) for v in d["input"])
        n = {k: int(d["images"][k]) for k in ("train", "val", "test")}
        text = (f"{name} ({d['root']}): {_counted(int(d['classes']), 'class', plural='classes')}, {c}x{hgt}x{wid} images; "
                f"{n['train']:,} train / {n['val']:,} val / {n['test']:,} test")
    except (KeyError, TypeError, ValueError):
        return name
    try:  # runs from before 2026-12-04 lack per-class counts
        per_class = {split: {str(k): int(v) for k, v in d["per_class"][split].items()} for split in ("train", "test")}
    except (KeyError, TypeError, ValueError, AttributeError):
        per_class = None
    if per_class and header.get("metric") == "balanced_accuracy":
        text += _balanced_worth(per_class["test"])
    elif n["test"] > 0:
        text += f" (one test image = {_image_worth(n['test'])} pt)"
    if per_class is None:
        return text
    return text + "; images per class: " + ", ".join(f"{split} {_class_spread(per_class[split])}" for split in per_class)


def _image_worth(n: int) -> str:
    """The accuracy points one of `n` test images is worth: '0.01' of 10,000, '0.1' of 1,000 ('100' of one, not
    '1e+02')."""
    worth = 100 / n
    return f"{worth:.2g}" if worth < 100 else f"{worth:.0f}"


def _balanced_worth(test: dict[str, int]) -> str:
    """What one test image is worth in a balanced accuracy (the mean of the present classes' accuracies): 1 / (classes
    x its class's images), so a rare class's image weighs most; and which classes the mean leaves out (no test image)."""
    present = {k: v for k, v in test.items() if v > 0}
    if not present:
        return ""
    low, high = min(present, key=present.__getitem__), max(present, key=present.__getitem__)
    worth = {k: 100 / (len(present) * v) for k, v in present.items()}
    text = f" (balanced accuracy: one test image = {worth[high]:.2g} pt"  # classes of equal test images: one worth
    if worth[low] != worth[high]:
        text += f" ({high}) to {worth[low]:.2g} pt ({low})"
    absent = sorted(k for k, v in test.items() if v == 0)
    if absent:
        text += f"; {', '.join(absent)}: no test images, left out of the mean"
    return text + ")"


def _class_spread(counts: dict[str, int]) -> str:
    """`1,000 each`, or `40 (crack) to 2,400 (good)`: the fewest and most images of a class."""
    if not counts:
        return _MISSING
    low, high = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
    if counts[low] == counts[high]:
        return f"{counts[low]:,} each"
    return f"{counts[low]:,} ({low}) to {counts[high]:,} ({high})"


def _title(run: _Run) -> str:
    return f"NAS report: {run.header.get('study_name') or 'unnamed study'}"


def _mixer_colours(names: Iterable[str]) -> dict[str, str]:
    """Fixed colours for known mixers; unknown ones get palette colours in sorted (stable) order."""
    unknown = sorted({n for n in names if n not in _MIXER_COLOURS})
    colours = dict(_MIXER_COLOURS)
    colours.update({n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(unknown)})
    return colours


def _text_colour(fill: str) -> str:
    red, green, blue = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else "#ffffff"


def _stage_parts(members: Sequence[_Member]) -> list[str]:
    """Segments of the by-stage bars in pipeline order: overhead, stem, stage0..N, head, anything else."""
    seen: list[str] = []
    for m in members:
        for key in (m.metrics or {}).get("latency_by_stage") or {}:
            if key not in seen:
                seen.append(key)

    def rank(key: str) -> tuple[int, int, str]:
        if key.startswith("stage") and key[5:].isdigit():
            return (2, int(key[5:]), key)
        fixed = {"overhead": 0, "stem": 1, "head": 3}
        return (fixed.get(key, 4), 0, key)

    return sorted(seen, key=rank)


def _stage_ms(member: _Member, part: str) -> float | None:
    if member.metrics is None:
        return None
    return _to_float((member.metrics.get("latency_by_stage") or {}).get(part)) or 0.0


def _kind_totals(member: _Member) -> dict[str, float]:
    totals: dict[str, float] = {}
    for op in (member.metrics or {}).get("latency_breakdown") or []:
        if isinstance(op, dict):
            kind = str(op.get("kind") or "other")
            totals[kind] = totals.get(kind, 0.0) + (_to_float(op.get("ms")) or 0.0)
    return totals


def _kinds(members: Sequence[_Member]) -> list[str]:
    present = {k for m in members for k in _kind_totals(m)}
    return [k for k in _KIND_ORDER if k in present] + sorted(present - set(_KIND_ORDER))


def _plottable(members: Sequence[_Member]) -> list[_Member]:
    return [m for m in members if m.val_acc is not None and m.latency_ms is not None]


def _row_label(member: _Member) -> str:
    return member.label if member.metrics is not None else f"{member.label} (no breakdown)"


def _missing_breakdown_note(members: Sequence[_Member]) -> str:
    missing = [f"{m.arch_id} ({m.metrics_problem})" for m in members if m.metrics is None]
    return f"No latency breakdown for: {', '.join(missing)}." if missing else ""


def _hover(point: _Trial | _Member) -> str:
    """The Pareto plot's hover text of a trial or front member: its trial, mixers, summary, val acc, latency and size."""
    # Plotly renders a subset of HTML in hover labels, so the free-form text is escaped.
    lines = [f"trial {point.number if point.number is not None else _MISSING} · {point.arch_id}",
             f"mixers: {'-'.join(point.mixers) or _MISSING}", point.summary or _MISSING,
             f"val acc {_fmt_acc(point.val_acc)} · latency {_fmt_ms(point.latency_ms)} ms",
             f"params {_fmt_count(point.params)} · MACs {_fmt_count(point.macs)}"]
    return "<br>".join(html.escape(line) for line in lines)


def _write_atomic(path: pathlib.Path, data: bytes | str) -> pathlib.Path:
    """Write via a temporary file, synced, + rename (the folder synced after) so a reader (browser, CI upload) never sees
    a half-written file, nor an empty one after a power loss."""
    # Named as nas.checkpoint names its temporary files (.<name>.<random>.<pid>@<host>~<pid namespace>.tmp): the next
    # search removes one whose writer was killed mid-write, and a report written by the search and one by
    # `python -m nas.report` at the same moment do not write into one file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.{_writer_tag()}.tmp")
    if isinstance(data, str):
        from nas.errors import readable_text  # here: this module imports nothing of nas at its top

        # a warning or class name naming a file that is not UTF-8, shown as its `\\xNN` bytes rather than unwritable
        data = readable_text(data)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        # a plain open(): the permissions of any file written here; outside the inner try: never ours to delete
        fh = tmp.open("xb")
        try:
            with fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())  # renamed unsynced, a power loss can leave an empty file under the new name
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)
    except OSError as e:
        # as nas.checkpoint's atomic writes: a full disk's error names the file being written, not its temporary one
        if e.errno is None or (e.filename is not None and str(e.filename) != str(tmp)):
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e
    return path


def _fsync_folder(folder: pathlib.Path) -> None:
    # nas.checkpoint.fsync_folder: the rename reaches the disk; skipped where the file system cannot sync a folder
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------- plotly figures


# One legend for the HTML and PNG plots. The front and trials are the search's proxy val accuracy; an int8 star is the
# final-trained member's compressed file, so it may sit above the front without int8 having gained anything (after
# final_train=none, the proxy weights' compressed file: `_int8_label`).
_FRONT_LABEL = "Pareto front (proxy val acc, as searched)"
_INT8_LABEL = "compressed int8 of the final-trained member (val acc from its OpenVINO file)"
_INT8_LABEL_PROXY = "compressed int8 of the member's proxy weights (final_train=none; val acc from its OpenVINO file)"
_INT8_LABEL_MIXED = "compressed int8 of the member's model.pt (see 'Weights tested'; val acc from its OpenVINO file)"


def _int8_label(members: Sequence[_Member], hw: Any) -> str:
    """The int8 stars' legend: of final-trained weights, or, after final_train=none, of the search's proxy weights
    (the label said "final-trained" for those too); a run with both says to look at the header's 'Weights tested'. Stars
    scored on part of the val images (compress.eval_images) say on how many, as the note under the table does."""
    starred = {a for a, _, _ in _int8_points(members, hw)}
    proxy = {m.metrics.get("final_train") is None for m in members
             if m.arch_id in starred and m.metrics is not None and "final_train" in m.metrics}  # older files lack it
    label = _INT8_LABEL_MIXED if len(proxy) > 1 else _INT8_LABEL_PROXY if proxy == {True} else _INT8_LABEL
    # a star's val acc is from the runtime of its int8 test_acc (test_acc_source; OpenVINO in files before it)
    sources = {_int8_source((m.compressed or {}).get("int8")) for m in members if m.arch_id in starred}
    ran = (_INT8_VAL_SOURCE.get(next(iter(sources)), "") if len(sources) == 1
           else "its int8 file, run as its int8 row's note says")
    label = label.replace("its OpenVINO file", ran) if ran else label
    # compress.eval_images scored a star on part of the val images: the PNG has no hover text to say so, only this
    cuts = {_val_cut(m) for m in members if m.arch_id in starred}
    capped = [cut for cut in cuts if cut is not None]
    if not capped:
        return label
    if len(cuts) == 1:  # every star on the same part
        return label[:-1] + f", on {_cut_text(capped[0], 'val')})"
    some = "some " if None in cuts else ""  # stars scored on every val image beside capped ones, or other caps
    return label[:-1] + f", {some}on part of the val images: compress.eval_images, see the note under the table)"


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


def _latency_title(hw: object, what: str = "") -> str:
    """An axis title for the chip's predicted latencies: 'predicted latency on edge_npu (ms)', with `what` (' by stage')
    before the unit; a plot taken out of the report still says whose milliseconds they are. No chip: none named."""
    on = f" on {hw}" if isinstance(hw, str) and hw else ""
    return f"predicted latency{on}{what} (ms)"


def _pareto_figure(run: _Run) -> go.Figure | None:
    complete, members = run.complete, _plottable(run.members)
    if not complete and not members:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    for feasible, name, symbol in ((True, "trials", "circle"), (False, "trials over budget", "x-thin-open")):
        group = [t for t in complete if t.feasible is feasible]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[t.latency_ms for t in group], y=[100.0 * (t.val_acc or 0.0) for t in group],
            mode="markers", name=name, hoverinfo="text",
            hovertext=[_hover(t) for t in group],
            marker={"color": _TRIAL_COLOUR, "symbol": symbol, "size": 8, "opacity": 0.7,
                    "line": {"width": 1.5, "color": _TRIAL_COLOUR}}))
    if members:
        fig.add_trace(go.Scatter(
            x=[m.latency_ms for m in members], y=[100.0 * (m.val_acc or 0.0) for m in members],
            mode="lines+markers", name=_FRONT_LABEL, hoverinfo="text",
            hovertext=[_hover(m) for m in members],
            line={"color": _FRONT_COLOUR, "width": 2, "shape": "hv"},
            marker={"color": _FRONT_COLOUR, "size": 11, "symbol": "diamond"}))
    points = _int8_points(run.members, run.header.get("hw"))
    if points:
        cuts = {m.arch_id: _val_cut(m) for m in run.members}  # a star scored on part of the val images says so
        fig.add_trace(go.Scatter(
            x=[p[1] for p in points], y=[100.0 * p[2] for p in points], mode="markers",
            name=_int8_label(run.members, run.header.get("hw")), hoverinfo="text",
            hovertext=[f"{html.escape(a)} int8<br>val acc {_fmt_acc(acc)}"
                       + (f" (on {_cut_text(cut, 'val')}: compress.eval_images)" if (cut := cuts.get(a)) else "")
                       + f"<br>{_fmt_ms(ms)} ms" for a, ms, acc in points],
            marker={"color": _INT8_COLOUR, "size": 12, "symbol": "star"}))
    if run.budget_ms is not None:
        fig.add_vline(x=run.budget_ms, line_dash="dash", line_color="#555",
                      annotation_text=f"budget {run.budget_ms:g} ms", annotation_position="top right")
    fig.update_layout(xaxis_title=_latency_title(run.header.get("hw")), yaxis_title="val accuracy (%)",
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def _stacked_bar_figure(members: Sequence[_Member], segments: Sequence[tuple[str, list[float | None]]],
                        x_title: str) -> go.Figure:
    import plotly.graph_objects as go

    labels = [_row_label(m) for m in members]
    fig = go.Figure()
    for i, (name, values) in enumerate(segments):
        fig.add_trace(go.Bar(y=labels, x=values, name=name, orientation="h",
                             marker_color=_PALETTE[i % len(_PALETTE)],
                             hovertemplate="%{y}<br>" + html.escape(name) + ": %{x:.4f} ms<extra></extra>"))
    # Fastest member on top, matching the tables; categoryarray keeps rows that have no bars.
    fig.update_layout(barmode="stack", template="plotly_white", xaxis_title=x_title,
                      yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed"},
                      margin={"l": 10, "r": 20, "t": 20, "b": 50}, legend={"traceorder": "normal"})
    return fig


def _stage_breakdown_figure(members: Sequence[_Member], hw: object = None) -> go.Figure | None:
    if not any(m.metrics is not None for m in members):
        return None
    segments = [(part, [_stage_ms(m, part) for m in members]) for part in _stage_parts(members)]
    return _stacked_bar_figure(members, segments, _latency_title(hw, " by stage"))


def _kind_breakdown_figure(members: Sequence[_Member], hw: object = None) -> go.Figure | None:
    if not any(_kind_totals(m) for m in members):
        return None
    totals = [(_kind_totals(m) if m.metrics is not None else None) for m in members]
    segments = [(kind, [None if t is None else t.get(kind, 0.0) for t in totals]) for kind in _kinds(members)]
    return _stacked_bar_figure(members, segments, _latency_title(hw, " by op kind"))


class _PlotlyEmbedder:
    """Turns figures into <div>s, inlining plotly.js with the first one only (one bundle per page)."""

    def __init__(self) -> None:
        self._bundled = False
        self._count = 0

    def __call__(self, fig: go.Figure, height_px: int) -> str:
        import plotly.io as pio

        # Numbered div ids, not Plotly's random ones: a rebuild from the same files writes the same report.html.
        self._count += 1
        div = pio.to_html(fig, include_plotlyjs=not self._bundled, full_html=False, div_id=f"plot{self._count}",
                          default_height=f"{height_px}px", config={"displaylogo": False, "responsive": True})
        self._bundled = True
        return div


# ------------------------------------------------------------------------------------------- HTML


def _html_mixer_table(members: Sequence[_Member], n_stages: int) -> str:
    colours = _mixer_colours(mx for m in members for mx in m.mixers)
    used = sorted({mx for m in members for mx in m.mixers})
    head = "".join(f"<th>stage{i}</th>" for i in range(n_stages))
    rows = []
    for m in members:
        cells = []
        for i in range(n_stages):
            if i < len(m.mixers):
                fill = colours[m.mixers[i]]
                cells.append(f'<td class="mixer" style="background:{fill};color:{_text_colour(fill)}">'
                             f"{html.escape(m.mixers[i])}</td>")
            else:  # shallower architecture than the deepest member
                cells.append('<td class="mixer"></td>')
        rows.append(f"<tr><th>{html.escape(m.label)}</th>{''.join(cells)}</tr>")
    legend = "".join(f'<span style="background:{colours[n]};color:{_text_colour(colours[n])}">'
                     f"{html.escape(n)}</span>" for n in used)
    return (f'<p class="legend">{legend}</p><table><thead><tr><th>member (fastest first)</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _tied_at_extreme(values: dict[str, float], shown: Any, *, lowest: bool) -> tuple[str, str]:
    """('Bag, Shirt', '0.00%'): every name whose value prints as the lowest (or highest) one does, and that printed
    value. Ties are judged as printed: two classes shown at '-4.00 pt' are tied to the reader even when float
    subtraction left them 1e-16 apart, and naming one would hide that the others fare as badly."""
    extreme = (min if lowest else max)(values.values())
    text = shown(extreme)
    return ", ".join(k for k, v in values.items() if shown(v) == text), text


def _weakest_class(per_class: Any) -> str:
    """'Shirt 66.10%': the class a model gets right least often (metrics.json's test_acc_per_class); every class tied
    at that score is named ('Bag, Shirt 0.00%'), since naming one would hide that the others fail as badly."""
    scores = {str(k): float(v) for k, v in per_class.items() if _to_float(v) is not None} if isinstance(per_class, dict) else {}
    if not scores:
        return _MISSING
    names, low = _tied_at_extreme(scores, _fmt_acc, lowest=True)
    return f"{names} {low}"


def _member_weakest(m: _Member) -> str:
    return _weakest_class((m.metrics or {}).get("test_acc_per_class"))


def _largest_class_drop(before: Any, after: Any) -> str | None:
    """'largest class drop vs the file before: Shirt -1.20 pt' between two files' test_acc_per_class (every class tied
    at that drop named: 'Bag, Shirt -4.00 pt'), or 'no class dropped vs the file before' (None if either lacks it)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return None
    drops = {k: (float(before[k]) - float(after[k])) * 100 for k in before
             if _to_float(before.get(k)) is not None and _to_float(after.get(k)) is not None}
    if not drops:
        return None
    if round(max(drops.values()), 2) <= 0:  # a "drop" of +0.00 or +1.20 pt would read as a loss
        return "no class dropped vs the file before"
    # every class tied at the largest drop, as the weakest class names its ties
    names, shown = _tied_at_extreme({k: -v for k, v in drops.items()}, lambda d: f"{d:+.2f} pt", lowest=True)
    return f"largest class drop vs the file before: {names} {shown}"


def _front_head(members: Sequence[_Member]) -> list[str]:
    """The front table's column titles, in report.html and report.md alike: arch_id, the number columns of
    `_front_numbers` ('val acc (final)' where `_shows_final_val`), summary and checkpoint."""
    return ["arch_id", "predicted latency (ms)", "measured on host (ms)", "val acc (search)",
            *["val acc (final)"] * _shows_final_val(members), "test acc", "test acc (ONNX)", "vs next faster (test)",
            "weakest class (test)", "params", "MACs", "summary", "checkpoint"]


def _front_numbers(m: _Member, members: Sequence[_Member]) -> list[str]:
    """The front table's number cells of member `m` (of `members`, in latency order), between its arch_id and its
    summary, as both reports show them."""
    return [_fmt_ms(m.latency_ms, m.ms_decimals), _fmt_ms(m.measured_ms), _fmt_acc_ci(m.val_acc, m.val_ci),
            *[_fmt_acc_ci(m.val_final, m.val_final_ci)] * _shows_final_val(members),
            _fmt_acc_ci(m.test_acc, m.test_ci), _fmt_acc(m.test_acc_onnx), _vs_faster_text(m, members),
            _member_weakest(m), _fmt_count(m.params), _fmt_count(m.macs)]


def _html_front_table(members: Sequence[_Member]) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in _front_head(members)) + "</tr>"
    rows = []
    for m in members:
        link = (f'<a href="{html.escape(quote(m.checkpoint))}">{html.escape(m.checkpoint)}</a>'
                if m.checkpoint_exists else '<span class="note">missing</span>')
        rows.append(f"<tr><td><code>{html.escape(m.arch_id)}</code></td>"
                    + "".join(f'<td class="num">{html.escape(v)}</td>' for v in _front_numbers(m, members))
                    + f"<td><code>{html.escape(m.summary)}</code></td><td>{link}</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


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
                notes.append(f"val acc {_fmt_acc(val)}")
            if stage == "pruned":
                notes.append(f"ratio {s.get('ratio')}, val acc {_fmt_acc(_to_float(s.get('val_acc_before_recovery')))} "
                             f"before / {_fmt_acc(_to_float(s.get('val_acc')))} after distillation")
            if stage == "int8":
                # the row's accuracy is the one the chip should see (test_acc_source); the size is the QDQ ONNX file's
                notes.append(f"{int8_source_text(s)}; QAT epochs {s.get('qat_epochs', 0)}{_qat_why(s)}")
                if (val := _to_float(s.get("val_acc_file"))) is not None:  # as the Pareto plot's int8 points
                    notes.append(f"val acc {_fmt_acc(val)} (run as the test acc)")
                if s.get("note"):
                    notes.append(str(s["note"]))
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
                         _fmt_count(_to_int(s.get("params"))), _MISSING if size is None else f"{size / 1024:.0f}",
                         _file_cell(s.get("file"), getattr(m, "missing_files", ())), "; ".join(notes)])
    return rows


def _file_cell(name: Any, missing: Sequence[str]) -> str:
    """A compressed row's file, marked where it is gone from the member's folder."""
    if not name:
        return _MISSING
    return f"{name}{MISSING_FILE_MARK}" if str(name) in missing else str(name)


def _qat_why(int8: dict[str, Any]) -> str:
    """' (PTQ lost 0.20 pt of val accuracy, within compress.quantize.max_acc_drop=0.3)': why QAT ran or not, beside
    'QAT epochs N' ('' for files without these fields; 'PTQ gained ...' where int8 scored higher). 'QAT epochs 0' under a config of QAT epochs read as QAT
    skipped or broken; it runs only while int8 loses more than max_acc_drop."""
    fp32, ptq, most = (_to_float(int8.get(k)) for k in ("fp32_val_acc", "ptq_val_acc", "max_acc_drop"))
    if fp32 is None or ptq is None or most is None:
        return ""
    drop = round((fp32 - ptq) * 100.0, 9)  # as compress.quantize judges it
    # a gain said as one: "lost -0.80 pt" read as a misprint (a gain is always within max_acc_drop, which is >= 0)
    change = f"gained {-drop:.2f}" if drop < 0 else f"lost {drop_text(drop, limit=most)}"
    return (f" (PTQ {change} pt of val accuracy, {'over' if drop > most else 'within'} "
            f"compress.quantize.max_acc_drop={most:g})")


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


def _html_compressed_table(members: Sequence[_Member], hw: Any = None) -> str:
    rows = _compressed_rows(members, hw)
    if not rows:
        return _html_note(_NO_COMPRESSED)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _COMPRESSED_HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_compressed_table(members: Sequence[_Member], hw: Any = None) -> list[str]:
    rows = _compressed_rows(members, hw)
    if not rows:
        return [f"_{_md_text(_NO_COMPRESSED)}_"]
    lines = ["| " + " | ".join(_COMPRESSED_HEAD) + " |", "|" + "---|" * len(_COMPRESSED_HEAD)]
    return lines + ["| " + " | ".join(_md_text(c) for c in r) + " |" for r in rows]


def _front_notes(run: _Run) -> list[str]:
    """The notes under the front table, in their order in both reports; '' for one that does not apply."""
    members = run.members
    return [_left_out_note(run), _missing_files_note(members), _best_member_note(members),
            _predicted_note(members, run.header), _measured_note(members, run.header), _final_val_note(members),
            _ci_note(members), _retired_note(run.retired)]


def _retired_note(count: int) -> str:
    """One line under the front table where former members' folders are kept in retired/; '' where none is."""
    if not count:
        return ""
    whose = "1 former member's folder is" if count == 1 else f"{count:,} former members' folders are"
    return (f"{whose} kept in {RETIRED_FOLDER}/ (weights and any compressed files, as they were): moved there when a "
            "member fell off the front or its model.pt was final-trained again; this report reads nothing of them.")


def _compressed_notes(members: Sequence[_Member]) -> list[str]:
    """The notes under the compressed table, in their order in both reports; '' for one that does not apply."""
    return [_scored_images_note(members), _predicted_precision_note(members), _host_latency_note(members),
            _same_file_timings_note(members)]


def _html_note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def _html_warnings(run: _Run) -> str:
    """The Warnings section of report.html (`_warnings_of`): one item per warning, a list per group with its note; ''
    when there are none."""
    groups = _warnings_of(run)
    if not groups:
        return ""
    body = "".join(_html_note(note) + '<ul class="warnings">' + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
                   + "</ul>" for warnings, note in groups)
    return f"<section><h2>Warnings</h2>{body}</section>"


def _render_html(run: _Run) -> str:
    embed = _PlotlyEmbedder()
    members = run.members
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in _header_facts(run))
    no_trials = _html_note(_no_trials_note(run))
    pareto = _pareto_figure(run)
    hw = run.header.get("hw")
    by_stage, by_kind = _stage_breakdown_figure(members, hw), _kind_breakdown_figure(members, hw)
    bar_height = 140 + 42 * len(members)
    parts = [
        f"<h1>{html.escape(_title(run))}</h1>",
        f'<p class="smoke"><strong>Smoke run:</strong> {html.escape(smoke)}</p>' if (smoke := _smoke_text(run.header)) else "",
        f'<p class="unfinished"><strong>Not finished:</strong> {html.escape(run.unfinished)}</p>' if run.unfinished else "",
        f'<dl class="facts">{facts}</dl>',
        f'<p class="counts">{html.escape(_state_counts_text(run.trials))}</p>',
        _html_note(f"Failed trials: {failures}") if (failures := _failures_text(run.trials)) else "",
        _html_warnings(run),
        "<section><h2>Pareto front: val accuracy vs. predicted latency</h2>", no_trials,
        embed(pareto, 520) if pareto is not None else "",
        "</section><section><h2>Latency breakdown of the front</h2>",
        _html_note(_missing_breakdown_note(members)),
        "<h3>By stage</h3>" + embed(by_stage, bar_height) if by_stage is not None else "",
        "<h3>By op kind</h3>" + embed(by_kind, bar_height) if by_kind is not None else "",
        "" if by_stage is not None or by_kind is not None else _html_note("No breakdown available."),
        "</section><section><h2>Which mixer each stage chose along the front</h2>",
        _html_mixer_table(members, run.max_stages) if members else _html_note(_no_members_note(run)),
        "</section><section><h2>Front members</h2>",
        _html_front_table(members) if members else _html_note(_no_members_note(run)),
        *map(_html_note, _front_notes(run)),
        "</section><section><h2>Compressed winners: fp32 → pruned → int8</h2>",
        _html_compressed_table(members, run.header.get("hw")), *map(_html_note, _compressed_notes(members)),
        "</section>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(_title(run))}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(p for p in parts if p) + "\n</body></html>\n")


# --------------------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    """`text` for a Markdown table cell: a '|' would end the cell and a newline the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


# Where Markdown reads '<' as opening raw HTML or an autolink (before a letter, '/', '!' or '?': a tag, a comment; or
# before an '@' in the same word: an e-mail link), and '&' as starting an entity ('&lt;', '&#60;'). Elsewhere both show
# as written, so 'p < 0.05' and 'p<0.0001' are left readable in the file.
_MD_MARKUP_LT = re.compile(r"<(?=[A-Za-z/!?]|\S*@)")
_MD_ENTITY_AMP = re.compile(r"&(?=#?\w+;)")


def _md_text(text: str) -> str:
    """Free text (a note, a warning, a table cell, a header fact) as report.md writes it, so that it shows as written
    where the Markdown is rendered, as report.html's html.escape makes it show there: a '<' that would open raw HTML
    ('hw=<name>', a description '<int8>' vanished) and an '&' that would start an entity ('&lt;' showed as '<') written
    as entities; and as `_md_cell`. Not for the text of a code span, which shows entities as written."""
    return _MD_MARKUP_LT.sub("&lt;", _MD_ENTITY_AMP.sub("&amp;", _md_cell(text)))


def _md_front_table(members: Sequence[_Member]) -> list[str]:
    head = _front_head(members)
    # text columns left-aligned, the number columns (all but the first and the last two) right-aligned
    lines = ["| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 3) + "---|---|"]
    for m in members:
        # a code span shows its text as written (entities too): only the table's own escapes there
        link = f"[{_md_text(m.checkpoint)}]({quote(m.checkpoint)})" if m.checkpoint_exists else "missing"
        cells = [_md_cell(f"`{m.arch_id}`"), *map(_md_text, _front_numbers(m, members)),
                 _md_cell(f"`{m.summary}`") if m.summary else _MISSING, link]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _render_markdown(run: _Run) -> str:
    # every free text through _md_text, as report.html's through html.escape (a '<' in a note's 'hw=<name>' vanished)
    lines = [f"# {_md_text(_title(run))}", ""]
    if smoke := _smoke_text(run.header):  # first: it qualifies every accuracy below
        lines += [f"> **Smoke run:** {_md_text(smoke)}", ""]
    if run.unfinished:  # first: the tables below describe the state before a search that has not finished
        lines += [f"> **Not finished:** {_md_text(run.unfinished)}", ""]
    lines += [f"- **{k}:** {_md_text(v)}" for k, v in _header_facts(run)]
    lines += [f"- **Trials by state:** {_md_text(_state_counts_text(run.trials))}"]
    if failures := _failures_text(run.trials):
        lines += [f"- **Failed trials:** {_md_text(failures)}"]
    lines += [""]
    if note := _no_trials_note(run):
        lines += [f"_{_md_text(note)}_", ""]
    if groups := _warnings_of(run):  # first section: they qualify every number below
        lines += ["## Warnings", ""]
        for warnings, warnings_note in groups:
            lines += [f"_{_md_text(warnings_note)}_", ""] + [f"- {_md_text(w)}" for w in warnings] + [""]
    lines += ["## Pareto front", "", "![Pareto front: val accuracy vs. predicted latency](pareto.png)", "",
              "## Latency breakdown of the front", ""]
    note = _missing_breakdown_note(run.members)
    lines += [f"_{_md_text(note)}_", ""] if note else []
    lines += ["![Predicted latency by stage](latency_breakdown.png)", "",
              "## Which mixer each stage chose along the front", "", "![Mixer per stage](mixers.png)", "",
              "## Front members", ""]
    lines += _md_front_table(run.members) if run.members else [f"_{_md_text(_no_members_note(run))}_"]
    lines += [f"\n_{_md_text(note)}_" for note in _front_notes(run) if note]
    lines += ["", "## Compressed winners: fp32 → pruned → int8", ""] + _md_compressed_table(run.members, run.header.get("hw"))
    for note in _compressed_notes(run.members):
        lines += ["", f"_{_md_text(note)}_"] if note else []
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ matplotlib


def _figure(width: float, height: float) -> Figure:
    """A new matplotlib figure of `width` x `height` inches. The object-oriented Figure API renders through Agg without
    pyplot, so drawing never switches the process-wide matplotlib backend (matplotlib.use) or keeps figures alive in
    pyplot's registry."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _placeholder_png(text: str) -> bytes:
    fig = _figure(6, 2.5)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#666")
    ax.set_axis_off()
    return _png_bytes(fig)


def _pareto_png(run: _Run) -> bytes:
    complete, members = run.complete, _plottable(run.members)
    if not complete and not members:
        return _placeholder_png("no finished trials yet")
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for feasible, name, marker in ((True, "trials", "o"), (False, "trials over budget", "x")):
        group = [t for t in complete if t.feasible is feasible]
        if group:
            ax.scatter([t.latency_ms for t in group], [100.0 * (t.val_acc or 0.0) for t in group],
                       c=_TRIAL_COLOUR, marker=marker, s=30, alpha=0.7, label=name)
    if members:
        xs, ys = [m.latency_ms for m in members], [100.0 * (m.val_acc or 0.0) for m in members]
        ax.plot(xs, ys, color=_FRONT_COLOUR, marker="D", markersize=7, drawstyle="steps-post",
                label=_FRONT_LABEL, zorder=3)
        for m, x, y in zip(members, xs, ys):
            ax.annotate(m.arch_id, (x, y), textcoords="offset points", xytext=(5, -12), fontsize=7,
                        color=_FRONT_COLOUR)
    points = _int8_points(run.members, run.header.get("hw"))
    if points:
        ax.scatter([p[1] for p in points], [100.0 * p[2] for p in points], c=_INT8_COLOUR, marker="*", s=120,
                   label=_int8_label(run.members, run.header.get("hw")), zorder=4)
    if run.budget_ms is not None:
        ax.axvline(run.budget_ms, color="#555", linestyle="--", label=f"budget {run.budget_ms:g} ms")
    ax.set_xlabel(_latency_title(run.header.get("hw")))
    ax.set_ylabel("val accuracy (%)")
    ax.set_title("Pareto front: val accuracy vs. predicted latency")  # as report.md's and report.html's
    ax.grid(alpha=0.3)
    # Below the plot, not inside it: "lower right" hid the trials a front dominates, and "best" still drew its long
    # int8 label over a star where the points leave no corner free.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8)
    return _png_bytes(fig)


def _breakdown_png(run: _Run) -> bytes:
    members = run.members
    if not any(m.metrics is not None for m in members):
        return _placeholder_png("no latency breakdown (no Pareto members with metrics.json)")
    fig = _figure(9, 1.4 + 0.5 * len(members))
    ax = fig.add_subplot()
    rows = range(len(members))
    left = [0.0] * len(members)
    for i, part in enumerate(_stage_parts(members)):
        widths = [_stage_ms(m, part) or 0.0 for m in members]
        ax.barh(rows, widths, left=left, color=_PALETTE[i % len(_PALETTE)], label=part, height=0.6)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(list(rows), [_row_label(m) for m in members], fontsize=8)
    ax.invert_yaxis()  # fastest member on top, as in the tables
    ax.set_xlabel(_latency_title(run.header.get("hw")))
    ax.set_title("Predicted latency of the front by stage")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return _png_bytes(fig)


def _mixers_png(run: _Run) -> bytes:
    members, n_stages = run.members, run.max_stages
    if not members or n_stages == 0:
        return _placeholder_png("no Pareto members yet")
    from matplotlib.patches import Rectangle

    colours = _mixer_colours(mx for m in members for mx in m.mixers)
    fig = _figure(2.5 + 1.2 * n_stages, 1.0 + 0.45 * len(members))
    ax = fig.add_subplot()
    for row, m in enumerate(members):
        for col in range(n_stages):
            mixer = m.mixers[col] if col < len(m.mixers) else ""
            fill = colours[mixer] if mixer else "#ffffff"
            ax.add_patch(Rectangle((col, row), 1, 1, facecolor=fill, edgecolor="#ffffff", linewidth=2))
            if mixer:
                ax.text(col + 0.5, row + 0.5, mixer, ha="center", va="center", fontsize=9,
                        color=_text_colour(fill))
    ax.set_xlim(0, n_stages)
    ax.set_ylim(len(members), 0)  # first (fastest) member on top
    ax.set_xticks([c + 0.5 for c in range(n_stages)], [f"stage{c}" for c in range(n_stages)])
    ax.set_yticks([r + 0.5 for r in range(len(members))], [m.label for m in members], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Mixer per stage along the front (fastest first)", pad=24)
    return _png_bytes(fig)


# ---------------------------------------------------------------------------------------- public API


def _mtime_ns(path: pathlib.Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # not there (a member's folder deleted, compressed_metrics.json not written yet)
        return None


def _plots_up_to_date(folder: pathlib.Path, run: _Run, names: Iterable[str]) -> set[str]:
    """The PNGs of `names` in `folder` last written no earlier than every file they are drawn from last changed: trials.csv,
    pareto.json, the front members' metrics.json and compressed_metrics.json, and the folders these are renamed into
    (which a member's file created or deleted changes). Drawn again from the same files, they would be the same."""
    sources = [folder / TRIALS_CSV, folder / PARETO_JSON, folder / "checkpoints"]
    sources += [folder / m.checkpoint / name for m in run.members for name in ("", METRICS_JSON, COMPRESSED_JSON)]
    newest = max((t for t in map(_mtime_ns, sources) if t is not None), default=0)
    return {name for name in names if (_mtime_ns(folder / name) or -1) >= newest}


def write_reports(run_dir: str | os.PathLike[str], *, redraw_plots: bool = True) -> dict[str, pathlib.Path]:
    """Write the report of one search run into its run folder.

    Reads ``trials.csv``, ``pareto.json``, ``checkpoints/*/metrics.json`` (and ``compressed_metrics.json``) and the run
    markers in ``run_dir`` and writes
    ``report.html`` (self-contained, interactive), ``report.md`` and the PNGs it embeds (``pareto.png``,
    ``latency_breakdown.png``, ``mixers.png``), each atomically. A run without finished trials or Pareto
    members still gets a report with placeholders; a member whose checkpoint folder is missing is listed
    without a breakdown.

    Args:
        run_dir: the run folder a ``python -m nas.search`` run wrote.
        redraw_plots: False keeps each PNG written since the files it is drawn from last changed (drawing them is
            most of a report's cost); one older or missing is drawn. A search passes False when it only marks
            the report as under way or stopped: the run markers change the two pages' text, never the plots.

    Returns:
        ``{file name: path}`` of the five files written (or kept), e.g. ``{"report.html": run_dir / "report.html"}``.

    Raises:
        MissingRunFileError: ``run_dir``, ``trials.csv`` or ``pareto.json`` does not exist.
        ReportInputError: ``pareto.json`` is not a JSON object, or ``trials.csv`` not a readable CSV file.
        TypeError: ``run_dir`` is not a path (a str or a pathlib.Path).
    """
    if not isinstance(run_dir, (str, os.PathLike)):  # pathlib's "expected str, bytes or os.PathLike object, not NoneType"
        shown = repr(run_dir)  # (nas.errors.wrong_type's wording: this module imports nothing of nas at its top)
        raise TypeError(f"run_dir={shown if len(shown) <= 60 else shown[:57] + '...'} is a {type(run_dir).__name__}; pass "
                        "the run folder's path (a str or a pathlib.Path), e.g. SearchResult.run_dir")
    folder = pathlib.Path(run_dir)
    return _write_reports(folder, _load_run(folder), redraw_plots=redraw_plots)


def _write_reports(folder: pathlib.Path, run: _Run, *, redraw_plots: bool = True) -> dict[str, pathlib.Path]:
    """`write_reports` of the run folder `folder`, read as `run`."""
    drawers = {"pareto.png": _pareto_png, "latency_breakdown.png": _breakdown_png, "mixers.png": _mixers_png}
    kept = set() if redraw_plots else _plots_up_to_date(folder, run, drawers)
    # PNGs first so report.md never links to images that are not there yet.
    contents: dict[str, bytes | str] = {name: draw(run) for name, draw in drawers.items() if name not in kept}
    contents |= {"report.md": _render_markdown(run), "report.html": _render_html(run)}
    written = {name: _write_atomic(folder / name, data) for name, data in contents.items()}
    return {name: written.get(name, folder / name) for name in REPORT_FILES}


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


def _saturated_text(agree: Any, reference_acc: Any, *, headline_is_reference: bool = False) -> str | None:
    """The int8 row's note when a runtime's int8 kernels moved the file's logits past the stated tolerance (its max
    relative logit difference or its top-1 agreement, as the compression's log judges them). On the compressing CPU
    (x86 without VNNI) while the file itself, run operator by operator, was within it: the row's accuracy is then that
    CPU's, and the note gives the file's own (unless the row's is the file's own already: `headline_is_reference`).
    When the file run operator by operator is outside it too, the export is at fault, as the log says, whatever the
    CPU. None otherwise and for files from before these fields."""
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
    if agree.get("int8_saturates") is not True:
        return None
    acc = _to_float(reference_acc)
    text = f"int8 kernels saturate on the CPU that compressed it (x86 without VNNI): {' and '.join(parts)}; "
    if headline_is_reference:  # the row's test acc is that run's already: not repeated
        return text + f"the row's is the file's own, run operator by operator ({logit_diff_text(diff['onnx_reference'])} off)"
    return text + "the file run operator by operator " + (
        f"has test acc {_fmt_acc(acc)}" if acc is not None else f"is {logit_diff_text(diff['onnx_reference'])} off")


def _from_study(overrides: Sequence[str]) -> int:
    """``python -m nas.report search.storage=... search.study_name=...``: rebuild the run folder's files
    from a (shared) study and the trials' weights, then the report. Needs the full toolkit (torch, optuna). Returns the
    exit code: 1 for a study with no finished trial (`SearchResult.found_nothing`), after writing the files."""
    from nas.config import compose_search_config, overridden_keys
    from nas.errors import exit_on_error, interrupting_signal, lines_on_stderr
    from nas.overrides import override_syntax_problem

    # before nas.search imports torch and Optuna (seconds): a path Hydra's syntax refuses unquoted is named at once
    if (problem := next((p for o in overrides if (p := override_syntax_problem(o)) is not None), None)) is not None:
        exit_with_error(problem)
    from nas.search import export_study, stop_on_sigterm, storage_or_disk_problem

    stop_on_sigterm()  # SIGTERM stops it as Ctrl-C does: members finished so far are kept, the rest left to a rerun
    # Rebuilding may final-train and compress members for minutes (a study searched with final_train=none): without a
    # handler only warnings reached the terminal, and those minutes passed without a line. Shown as the search shows them.
    try:
        with lines_on_stderr("nas", "compress"), exit_on_error():  # a bad option or type: Hydra's message in one line
            result = export_study(compose_search_config(overrides), overridden=overridden_keys(overrides))
    except KeyboardInterrupt as e:  # before the members (loading the data, opening the study): a traceback without this
        print("interrupted: members not final-trained or compressed yet are left to a rerun of the same command",
              file=sys.stderr)
        return 128 + interrupting_signal(e)  # as the shell reports death by it: 130 after Ctrl-C, 143 after SIGTERM
    except Exception as e:  # noqa: BLE001 - only the disk and database failures below become one line
        # A full disk or quota, a read-only run folder, a file over the size limit: it ended in a traceback, where
        # `python -m nas.search` says the same in one line (`nas.search.main`)
        if (problem := storage_or_disk_problem(e)) is None:
            raise
        print(f"error: cannot write the run ({readable_text(problem)}); the members final-trained or compressed so far "
              "are kept: fix that (free space, the run folder's permissions or entries, the database server) and rerun "
              "the same command", file=sys.stderr)
        return DISK_EXIT
    for path in result.files.values():
        print(path)
    try:  # the files just written; a first search interrupted before its pareto.json has none to read
        _say_incomplete_front(_load_run(pathlib.Path(result.run_dir)), rerun="the same command")
    except (ReportInputError, OSError):
        pass
    if result.stopped_by is not None:  # as `python -m nas.search` after Ctrl-C: the files describe what was finished
        print("interrupted: members not final-trained or compressed yet are left to a rerun of the same command",
              file=sys.stderr)
        return 128 + result.stopped_by
    # as `python -m nas.search`: a study with no finished trial has no model to deploy, so `nas.report ... && deploy`
    # stops there (its files, saying so, are written), saying why on stderr as the search does
    if result.found_nothing:
        print(f"error: {result.found_nothing_reason}", file=sys.stderr)
        return 1
    return 0


def _rebuild_command(run_dir: str, overrides: Sequence[str], *, study_name: str | None = None) -> str:
    """The settings that rebuild the run folder `run_dir` from its study with `overrides` (its runs_dir and study_name
    from the folder's path, unless given among them: each key once; `study_name`, where given, the study's name, which
    the folder's database holds, rather than the folder's), quoted for a shell. The path's parts quoted for
    Hydra too (`nas.overrides.shell_override`): in the shell's quotes alone, a runs_dir with a space or a quote reached
    Hydra, which refused it or read another folder; `overrides` as typed, each one shell argument."""
    import shlex

    folder = pathlib.Path(run_dir)
    if folder.name in ("", ".."):  # `.`, `..`: the folder's own name is needed
        folder = folder.resolve()
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    try:
        from nas.overrides import shell_override  # Hydra, no torch; this module's files copied alone: the shell's quotes
    except ImportError:
        def shell_override(*, key: str, value: str) -> str:
            return shlex.quote(f"{key}={value}")
    named = [f"{key}={value}" if value == _CHOSEN_STUDY else shell_override(key=key, value=str(value))
             for key, value in (("search.runs_dir", folder.parent), ("search.study_name", study_name or folder.name))
             if key not in given]
    return " ".join([*named, *(shlex.quote(o) for o in overrides)])


def _writing(exc: OSError) -> bool:
    """Whether `main`'s OSError `exc` is about a file it writes (a report file, pareto.csv; or no file named), not one
    of the run folder's files it reads (pareto.json, trials.csv)."""
    return exc.filename is None or pathlib.Path(exc.filename).name in (*REPORT_FILES, "pareto.csv")


def _os_error_text(exc: OSError, run_dir: str) -> str:
    """`main`'s line for an OSError of the report of `run_dir`: the file it was reading or writing, where the error names
    one, and, for a file of its own the folder refused (a read-only disk, a folder this user may not write in), what
    the folder is and what to do. "Read-only file system in ro" named neither the file nor the remedy."""
    why = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{why} in {run_dir}"
    path = pathlib.Path(exc.filename)
    if not _writing(exc):  # reading one of its inputs (pareto.json, trials.csv)
        return f"cannot read {path} ({why})"
    if exc.errno == errno.EROFS:
        return (f"cannot write {path}: the run folder {run_dir} is on a read-only file system ({why}); copy the folder "
                "somewhere writable and run python -m nas.report on the copy")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot write {path}: the run folder {run_dir} is not writable by this user ({why}); give it write "
                "permission, or copy the folder somewhere writable and run python -m nas.report on the copy")
    return f"cannot write {path} ({why})"


# What nas.report's refusals of its command line say it takes.
_TAKES = "nas.report takes a run folder, or search.storage=<url> search.study_name=<name> [key=value ...]"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m nas.report <run_dir>`` (from the run folder's files alone) or
    ``python -m nas.report search.storage=<url> search.study_name=<name> [key=value ...]`` (from a study
    shared by workers, see `nas.search.export_study`); prints the written paths, returns the exit code (0; 1 for a
    study with no finished trial, and after one `error:` line on stderr for a write that failed: a full disk or quota,
    a folder it cannot write in; 130 or 143 after Ctrl-C or SIGTERM). Bad input (the command line, the run folder's
    files) is one `error:` line on stderr and SystemExit(2), as in every command's main."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m nas.report",
        usage="%(prog)s <run_dir> | search.storage=<url> search.study_name=<name> [key=value ...]",
        description="Write report.html/report.md (+ PNGs) for a search run folder, or, given Hydra overrides "
                    "(search.storage=... search.study_name=...), rebuild the run folder from a shared study first.")
    parser.add_argument("run_dir", help="run folder written by `python -m nas.search`")
    if any(a in ("-h", "--help") for a in args_list):  # beside settings too, which the rebuild would otherwise take
        from nas.errors import help_on_stdout  # light (no torch): the report module imports no other at its top

        with help_on_stdout():  # `--help | head -3`: a quiet end, not a BrokenPipeError traceback
            parser.print_help()
        return 0
    # Hydra's flags, which `python -m nas.search` takes: nas.report is no Hydra app, and one of them given beside
    # settings was read as a run folder (the error then spoke of the wrong thing)
    from nas.overrides import hydra_flag_names

    hydra_flags = hydra_flag_names() if any(a.startswith("-") for a in args_list) else frozenset()
    if (flag := next((a.split("=", 1)[0] for a in args_list if a.split("=", 1)[0] in hydra_flags), None)) is not None:
        exit_with_error(f"{flag} is not supported by nas.report (it is a flag of Hydra's, which python -m nas.search "
                        f"takes); {_TAKES}")
    # argparse's own refusals were two lines (its usage, then "unrecognized arguments: --frob"); said in one here
    if (flag := next((a.split("=", 1)[0] for a in args_list if a.startswith("-")), None)) is not None:
        exit_with_error(f"{flag} is not an option of nas.report (its only option is -h/--help, which prints the usage); "
                        f"{_TAKES}")
    if args_list and all("=" in a and not a.startswith("-") for a in args_list):
        return _from_study(args_list)
    overrides = [a for a in args_list if "=" in a and not a.startswith("-")]
    folders = [a for a in args_list if a not in overrides and not a.startswith("-")]
    if overrides and folders:  # `nas.report runs/x final_train=none`: two forms in one
        # a folder renamed from its run's: the study its study.db holds, not the folder's name (the rebuild refused it)
        moved, study = _moved_from(pathlib.Path(folders[0]))
        exit_with_error(f"a run folder is read as it is, without settings ({' '.join(overrides)}); {moved}to rebuild "
                        f"it from its study with settings, name the study instead: "
                        f"{_rebuild_command(folders[0], overrides, study_name=study)}")
    if len(folders) != 1:
        given = f"{len(folders)} run folders given ({', '.join(folders)})" if folders else "no run folder given"
        exit_with_error(f"{given}; {_TAKES}{', one per command' if folders else ''}")
    run_dir = folders[0]
    # nas.checkpoint's file helpers import numpy, not torch; imported here, so that importing the report loads no other
    from nas.checkpoint import FILES_LOCK, run_folder_lock

    # Read and written under the lock a search's workers take turns through (and compress.run refreshes these files
    # under): beside a worker writing the run's files, the report could describe two states of the run at once (one
    # writer's table, the other's front), or be written over by an older one. A folder it cannot write in (a read-only
    # disk) is read unlocked, with no lock file made there, and refused as before once a write fails.
    waiting = (f"{run_dir}: waiting for another process (a search's worker, or python -m compress.run) to finish "
               f"writing the run's files ({FILES_LOCK}), to write its report...")
    try:
        with run_folder_lock(pathlib.Path(run_dir), waiting=waiting, where_writable=True,
                             say=lambda line: print(line, file=sys.stderr, flush=True)):
            run = _load_run(pathlib.Path(run_dir))
            paths = list(_write_reports(pathlib.Path(run_dir), run).values())
            # pareto.csv too (its int8 columns are read from the members' compressed files, as the report's table is):
            # a folder compressed by an older version, or copied without it, gets it from its files, with no study
            # needed. nas.pareto_csv imports only this module; imported here, so that importing the report loads no
            # other.
            from nas.pareto_csv import PARETO_CSV, write_pareto_csv

            # pareto.json and the members' compressed_metrics.json as the report read them, under the same lock: not
            # read and parsed a second time
            members = [m for m in run.header.get("members") or [] if isinstance(m, dict)]
            if write_pareto_csv(run_dir, members=members, header=run.header,
                                compressed={m.checkpoint: m.compressed for m in run.members}):
                paths.append(pathlib.Path(run_dir) / PARETO_CSV)
    except KeyboardInterrupt:  # a wait for a worker's turn may last its members' final training: minutes
        print(f"interrupted (Ctrl-C): the report of {run_dir} may be left unwritten (each of its files is whole, "
              "written atomically); rerun the same command", file=sys.stderr)
        return 130
    except ReportInputError as exc:  # user-facing: one line, no traceback
        exit_with_error(str(exc))
    except OSError as exc:
        if not _writing(exc):  # one of its inputs unreadable: refused as bad input is
            exit_with_error(_os_error_text(exc, run_dir))
        # a write the folder refused (a full disk or quota, a read-only disk, no permission): exit status 1, as every
        # command's failed write; the reports it had written before are whole (each is written atomically)
        print(f"error: {readable_text(_os_error_text(exc, run_dir))}", file=sys.stderr)
        return DISK_EXIT
    for path in paths:
        print(path)
    _say_incomplete_front(run)
    return 0

