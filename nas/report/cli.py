"""The command line: ``python -m nas.report <run_dir>``, or ``python -m nas.report search.storage=...
search.study_name=...`` to rebuild the run folder's files from a study first (`main`)."""

from __future__ import annotations

import argparse
import errno
import pathlib
import sys
from collections.abc import Sequence

from nas.errors import DISK_EXIT, exit_with_error, readable_text

from nas.report.hints import _moved_from, _rebuild_command
from nas.report.files import REPORT_FILES, ReportInputError, _load_run
from nas.report.notes import _say_incomplete_front
from nas.report.write import _write_reports


def _from_study(overrides: Sequence[str]) -> int:
    """``python -m nas.report search.storage=... search.study_name=...``: rebuild the run folder's files
    from a (shared) study and the trials' weights, then the report. Needs the full toolkit (torch, optuna). Returns the
    exit code: 1 for a study with no finished trial (`SearchResult.found_nothing`), after writing the files."""
    from nas.config import compose_search_config, overridden_keys
    from nas.overrides import override_syntax_problem
    from nas.errors import exit_on_error, interrupting_signal, lines_on_stderr, stop_on_sigterm, storage_or_disk_problem

    # before nas.study_export imports torch and Optuna (seconds): a path Hydra's syntax refuses unquoted is named at once
    if (problem := next((p for o in overrides if (p := override_syntax_problem(o)) is not None), None)) is not None:
        exit_with_error(problem)
    from nas.study_export import export_study

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
    shared by workers, see `nas.study_export.export_study`); prints the written paths, returns the exit code (0; 1 for a
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
