"""A search's own files in its run folder (`nas.search`), beside the tables `nas.results` writes: search.log (the lines
from before the folder could be written kept for it, the file given up in one line when its disk fails), config.yaml,
the record of the run's settings (one edited by hand kept aside), the run markers that tell the report a search is
under way or why it stopped, and the temporary files that killed writers left, removed."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Iterator, Sequence

from nas.checkpoint import (CHECKPOINTS_FOLDER, FinishedReplacing, atomic_write_bytes, atomic_write_json,
                            finish_replacing, pid_namespace, process_gone, remove_dead_writers_temps, run_folder_lock,
                            writer_tag)
from nas.errors import (NasError, RecordKeeper, counted, error_text, interrupting_signal, interruption_text, logging_to,
                        make_folder, module_logger, storage_or_disk_problem)
from nas.layout import RETIRED_FOLDER

log = module_logger("nas.search")  # the search's lines, under its logger's name (search.log shows it; users set its level)


def make_run_dir(run_dir: Path) -> None:
    """Make the run folder `run_dir`, or raise `ConfigError` naming search.runs_dir where it cannot be made or written."""
    make_folder(run_dir, setting=f"search.runs_dir={str(run_dir.parent)!r}")


class _Held(RecordKeeper):
    """Keeps the lines logged before the run folder may be written (while the input is validated and the data
    loaded), for search.log: they are shown at once as usual, and written to the file once it exists. The info lines
    too (the count of files in the class folders that are not images): kept at WARNING, they reached the terminal
    alone."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def held_lines() -> Iterator[list[logging.LogRecord]]:
    """The records the toolkit's loggers give in the block, INFO and up, kept for search.log (`_Held`)."""
    held = _Held()
    with logging_to(held, "nas", "compress"):  # beside the user's handlers, not instead of Python's lastResort
        yield held.records


class _RunLogFile(RecordKeeper, logging.FileHandler):
    """search.log's handler. A write that fails (a full disk, a quota, the disk failing) is said once, in one line on
    stderr, and the file is given up for the rest of the process: logging's own `handleError` printed a many-line
    "--- Logging error ---" traceback for every line logged, burying the run's one-line error. The terminal's handler
    is another handler and goes on as before. Other errors (a log call whose arguments do not fit its message: a bug)
    keep logging's own report."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.given_up = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.given_up:  # not reopened: a partly written line, then more, would garble the file workers share
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        self._give_up(error)

    def close(self) -> None:
        try:
            super().close()  # flushes first: the bytes a full disk refused are still in the buffer
        except OSError as e:
            self._give_up(e)

    def _give_up(self, error: OSError) -> None:
        if not self.given_up:
            self.given_up = True
            print(f"warning: search.log cannot be written ({self.baseFilename}: {error.strerror or error}): this "
                  "process's log lines go to the terminal only", file=sys.stderr)
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):  # its close flushes the refused bytes again, and fails again
                stream.close()


@contextlib.contextmanager
def run_log(run_dir: Path, *, earlier: Sequence[logging.LogRecord] = ()) -> Iterator[None]:
    """Append this process's log lines to `<run folder>/search.log` (workers share it; the pid tells them apart),
    `earlier` records first (warnings from before the folder could be written, e.g. images left out of the data).
    A write to it that fails is said once and the file given up (`_RunLogFile`); the run goes on."""
    handler = _RunLogFile(run_dir / "search.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][pid %(process)d][%(name)s][%(levelname)s] - %(message)s"))
    handler.setLevel(logging.INFO)
    for record in earlier:  # to the file only: they were shown when they happened
        handler.handle(record)
    try:
        with logging_to(handler, "nas", "compress"):  # INFO also when called as a library (no logging set up)
            yield
    finally:
        handler.close()


CONFIG_WRITTEN = ".config.yaml.sha256"
"""The SHA-256 of the config.yaml files searches last wrote in their run folder (the latest `CONFIG_DIGESTS_KEPT`,
oldest first), one a line: a config.yaml whose digest is not among them was edited by hand since."""


CONFIG_DIGESTS_KEPT = 100
"""How many digests `CONFIG_WRITTEN` keeps. Only the digest of the config.yaml on disk matters, and that file is one of
the last few written: workers starting together each add their digest before writing their file, and whichever writes
last wins. The file grew by a line for every other config a folder's searches ran with; 100 lines (6.5 kB) keep any
number of workers a study starts at once, and a record put back by hand from a recent run, with room to spare."""


CONFIG_RECORD_LOCK = ".config.yaml.lock"
"""The file `write_config_record` locks while it updates `CONFIG_WRITTEN` and keeps an edit aside (`run_folder_lock`):
trimming the digests rewrites their file, which lost a digest another worker appended meanwhile (its config.yaml then
read as edited), and two workers keeping edits aside must not pick the same name for different edits."""


def _edited_copies(run_dir: Path) -> dict[int, Path]:
    """The copies of hand-edited config.yaml files in `run_dir` by number: config.yaml.edited is 1, then
    config.yaml.edited.2, .3 ..."""
    copies = {}
    for path in run_dir.glob("config.yaml.edited*"):
        number = path.name.removeprefix("config.yaml.edited")
        if number == "":
            copies[1] = path
        elif number.startswith(".") and number[1:].isdigit() and not number[1:].startswith("0"):
            copies[int(number[1:])] = path
    return copies


def _keep_edit(run_dir: Path, edit: bytes) -> Path:
    """Keep `edit`, config.yaml's bytes edited by hand, in the run folder: in the copy that holds it already, else in a
    new one after the last (`_edited_copies`), so that no earlier edit is written over. Returns the copy."""
    copies = _edited_copies(run_dir)
    for number in sorted(copies):
        try:
            if copies[number].read_bytes() == edit:  # the same edit again (or kept by a worker beside this one)
                return copies[number]
        except OSError:  # a folder of that name, say: not a copy
            continue
    number = max(copies, default=0) + 1
    path = run_dir / ("config.yaml.edited" if number == 1 else f"config.yaml.edited.{number}")
    atomic_write_bytes(path, edit)
    return path


def _written_digests(stamp: Path) -> list[str]:
    """The digests `stamp` (`CONFIG_WRITTEN`) holds, oldest first; none where it is missing or unreadable."""
    try:
        return stamp.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return []


def write_config_record(run_dir: Path, text: bytes) -> str | None:
    """Write `text` as `run_dir`'s config.yaml, the record of the run's settings, adding its digest to `CONFIG_WRITTEN`
    first. A config.yaml edited since a search wrote it (its digest not among those) is kept first as
    config.yaml.edited, or config.yaml.edited.2, .3 ... where an earlier edit is kept (`_keep_edit`): the search never
    reads it, and overwriting it lost the edit without a word. Returns the warning that says so, None where nothing was
    edited (or a folder from before the digests: it cannot tell)."""
    path, stamp = run_dir / "config.yaml", run_dir / CONFIG_WRITTEN
    try:
        on_disk = path.read_bytes()
    except OSError:
        on_disk = None
    # read after config.yaml: a worker starting beside this one adds its digest before it writes its file
    written = set(_written_digests(stamp))
    edited = None
    digest = hashlib.sha256(text).hexdigest()
    with run_folder_lock(run_dir, name=CONFIG_RECORD_LOCK):  # held for a few small files, not for the search
        if written and on_disk is not None and on_disk != text and hashlib.sha256(on_disk).hexdigest() not in written:
            # the bytes read, not a rename of config.yaml: a worker starting beside this one may have moved the edit
            # aside and written its record since (a rename then failed, or put that record in place of the edit)
            kept = _keep_edit(run_dir, on_disk)
            edited = (f"config.yaml was edited since a search wrote it: kept as {kept.name}; config.yaml is the record "
                      "of a run's settings, which the search does not read: give settings on the command line "
                      "(python -m nas.search <key>=<value> ...)")
        digests = _written_digests(stamp)  # again, under the lock: with those other workers added since
        if digests[-1:] != [digest]:  # this one last, so that the oldest are the ones left out
            kept_digests = [d for d in digests if d != digest][-(CONFIG_DIGESTS_KEPT - 1):] + [digest]
            atomic_write_bytes(stamp, "".join(d + "\n" for d in kept_digests).encode("ascii"))
    atomic_write_bytes(path, text)
    return edited


REPLACING_LOCK = ".replacing.lock"
"""The file `remove_leftovers` and `finish_member_replacing` lock while they put in place the new files that killed runs
left (`run_folder_lock`): two runs finishing the same swap at once moved what the other was renaming."""


def remove_leftovers(run_dir: Path) -> None:
    """Delete the temporary files that writers killed mid-write (kill -9, OOM killer) left in the run folder: nothing
    else ever renames or removes them, and each can be as large as a checkpoint. Files of live workers and of other
    machines are kept (`remove_dead_writers_temps`). A member's new files that a writer killed as it swapped them in
    left complete (`finish_replacing`) are put in place first, in one line each, not deleted."""
    retired = run_dir / RETIRED_FOLDER
    # One run at a time (workers starting together): the second to finish a swap moved what the first was renaming.
    with run_folder_lock(run_dir, name=REPLACING_LOCK, waiting="waiting for another run of this folder to put in place "
                         f"the files that killed runs left ({REPLACING_LOCK})..."):
        # (where they can be: a member's folder, or the one moved to retired/; trials/ may hold thousands of files)
        finished = [*finish_replacing(run_dir / CHECKPOINTS_FOLDER, retired=retired),
                    *finish_replacing(retired, retired=retired)]
    for done in finished:
        log.info("%s", _finished_line(done, run_dir=run_dir))
    if removed := remove_dead_writers_temps(run_dir):
        log.info("removed %s left by writers that were killed mid-write: %s", counted(len(removed), "temporary file"),
                 ", ".join(str(p.relative_to(run_dir)) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))


def finish_member_replacing(folder: Path) -> list[str]:
    """Finish the swaps of new files into the checkpoint folder `folder` (`<run>/checkpoints/<arch_id>`) that a run
    killed as it made them left complete (`finish_replacing`), as the next search or rebuild of its run does
    (`remove_leftovers`), and return the lines saying so: a compression of the member before then (`python -m
    compress.run`) found its folder missing, its old files still in place, or new weights without their metrics.json."""
    run_dir = folder.parent.parent
    retired = run_dir / RETIRED_FOLDER
    in_run = folder.parent.name == CHECKPOINTS_FOLDER
    roots = [folder, retired] if in_run else [folder]
    # under the run's lock, as `remove_leftovers` (no lock file made beside a folder that is no run's member)
    with run_folder_lock(run_dir, name=REPLACING_LOCK, where_writable=True) if in_run else contextlib.nullcontext():
        finished = [done for root in roots for done in finish_replacing(root, retired=retired, into=folder)]
    return [_finished_line(done, run_dir=run_dir) for done in finished]


def _finished_line(done: FinishedReplacing, *, run_dir: Path) -> str:
    """The line saying that `finish_replacing` finished `done`, its folders named relative to `run_dir`."""
    folder, new = _relative(done.folder, run_dir), _relative(done.new, run_dir)
    kept = "are put in place" if done.new == done.folder else f"are kept in {new}/ (the folder was made again since)"
    line = f"{folder}/: the new files that a run killed as it swapped them in left complete {kept}"
    return line if done.old is None else f"{line}; the folder as it was is in {_relative(done.old, run_dir)}/"


def _relative(path: Path, run_dir: Path) -> str:
    """`path` relative to `run_dir` where it is inside it, else as it is."""
    try:
        return str(path.relative_to(run_dir))
    except ValueError:
        return str(path)


def remove_dead_markers(run_dir: Path) -> None:
    """Delete the run markers of searches of this machine whose process is gone, and those of searches of any machine
    that recorded why they stopped (`_record_stop`): this search takes over their study (their running trials are failed
    and re-queued as lost), so its report describes their work too."""
    from nas.report import RUN_MARKER_PREFIX

    for old in run_dir.glob(RUN_MARKER_PREFIX + "*"):
        try:
            mark = json.loads(old.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(mark, dict) and (mark.get("stopped") or (
                mark.get("host") == socket.gethostname() and mark.get("pid_namespace") == pid_namespace()
                and process_gone(mark.get("pid")))):
            old.unlink(missing_ok=True)


def _marker(run_dir: Path) -> Path:
    """This process's run marker in `run_dir` (`nas.report.RUN_MARKER_PREFIX`)."""
    from nas.report import RUN_MARKER_PREFIX

    return run_dir / f"{RUN_MARKER_PREFIX}{writer_tag()}"


@contextlib.contextmanager
def stop_recorded(run_dir: Path) -> Iterator[None]:
    """Around a search from its `mark_started` to its final report: when it stops on its own before that, on a one-line
    `NasError` (bad input found mid-run), Ctrl-C/SIGTERM outside the trials, or the disk or study database failing under
    it (`storage_or_disk_problem`: full, read-only, ...), its marker records why (`_record_stop`). Left as it was, the
    report read it as a crash ("killed or crashed: its process is gone"). A kill leaves it as is."""
    try:
        yield
    except NasError as e:
        _record_stop(run_dir, f"error: {e}")
        raise
    except KeyboardInterrupt as e:  # which signal it was: a SIGTERM nobody at the terminal sent is a scheduler's or kill's
        _record_stop(run_dir, interruption_text(stopped_by=interrupting_signal(e)))
        raise
    except Exception as e:
        # A full disk often still takes the marker's few hundred bytes (the failed write's temporary file is removed
        # first); when it does not, `_record_stop` says so in one line and the marker stays as it was.
        if (problem := storage_or_disk_problem(e)) is not None:
            _record_stop(run_dir, f"cannot write the run ({problem})")
        raise  # other errors are bugs: their traceback, and the report's "killed or crashed", stand


def _record_stop(run_dir: Path, reason: str) -> None:
    """Write `reason` into this search's run marker as `stopped`, and rewrite the folder's report, if there is one, to
    say so at its top (`mark_started` had it say a search is under way). Nothing when the marker is gone: the search had
    reached its final report."""
    from nas.report import write_reports

    marker = _marker(run_dir)
    try:
        mark = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    # for search.log: on the console the command's last stderr line (error:, cannot write, stopped by) says the same
    log.warning("the search stopped before it finished: %s", reason, extra={"log_file_only": True})
    try:
        atomic_write_json(marker, {**mark, "stopped": reason} if isinstance(mark, dict) else {"stopped": reason})
        if (run_dir / "report.md").is_file():
            with run_folder_lock(run_dir):
                write_reports(run_dir, redraw_plots=False)  # the reason changes the pages; plots are redrawn if stale
    except Exception as e:  # noqa: BLE001 - the error that stopped the search is the one to show, not this one
        log.warning("the report could not be marked as stopped: %s", error_text(e))


def _pareto_created(run_dir: Path) -> str | None:
    """The `created` of `run_dir`'s pareto.json, None when it has none (no file yet, unreadable): a marker keeps it, so
    the report can tell a pareto.json written by a worker that finished while this search ran (its warnings are of the
    tables then) from the run before this search's (`nas.report.markers._written_since`)."""
    try:
        created = json.loads((run_dir / "pareto.json").read_text()).get("created")
    except (OSError, ValueError, AttributeError):
        return None
    return created if isinstance(created, str) else None


def mark_started(run_dir: Path, *, warnings: Sequence[str]) -> Path:
    """Write this search's run marker (`nas.report.RUN_MARKER_PREFIX`), with `warnings` (its setup warnings, as
    `write_outputs` takes them) for the report to list and the `created` of the pareto.json it finds
    (`_pareto_created`), and, where the folder has a report from an
    earlier run, rewrite it to say at its top that a search is under way: killed, this search never writes its own
    report, and the old one described the earlier, finished state as the run's. Returns the marker, which
    `write_outputs` removes before the final report. Markers of earlier searches of this machine whose process is
    gone go: this search takes over (resumes) their study."""
    from nas.report import ReportInputError, write_reports  # plotting libraries: loaded once a run starts

    remove_dead_markers(run_dir)
    marker = _marker(run_dir)
    atomic_write_json(marker, {"started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                               "host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": pid_namespace(),
                               "setup_warnings": list(warnings), "pareto_created": _pareto_created(run_dir)})
    gone = [name for name in ("trials.csv", "pareto.json") if not (run_dir / name).is_file()]
    if (run_dir / "report.md").is_file() and gone:  # deleted by hand: the report is rendered from them
        log.warning("the report of the earlier run is not marked as out of date: %s %s gone from the run folder; this "
                    "search writes %s again at its end", " and ".join(gone), "is" if len(gone) == 1 else "are",
                    "it" if len(gone) == 1 else "them")
    elif (run_dir / "report.md").is_file():
        with run_folder_lock(run_dir):  # a worker finishing meanwhile writes its report under the same lock
            try:
                # the earlier run's plots are kept where its files have not changed since (drawing is most of the cost)
                write_reports(run_dir, redraw_plots=False)
            except ReportInputError as e:  # its files damaged: the search rewrites them at its end
                # what is wrong, not the rebuild the report names for it: this search writes the file again itself
                log.warning("the report of the earlier run could not be marked as out of date: %s; this search writes "
                            "it again at its end", e.problem)
    return marker
