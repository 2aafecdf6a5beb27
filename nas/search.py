"""Hardware-aware multi-objective architecture search: `python -m nas.search hw=edge_npu`.

An Optuna study maximises validation accuracy (proxy training) and minimises the latency predicted
for the target chip, under an optional latency budget (Optuna's constraint API). The study lives in
a storage (SQLite in the run folder by default), so rerunning the same command resumes it with its finished trials
kept; Ctrl-C or SIGTERM stops after writing the files of the finished trials, exiting 130 after Ctrl-C and 143 after
SIGTERM (the shell's codes for death by each); so do SIGUSR1 and SIGUSR2 (a scheduler's warning before its time
limit: 138, 140), which then go on to the handler the process had for them (submitit's requeues its job). Several
workers (processes, machines) can share one study through a common storage, e.g. PostgreSQL; see `nas.study` for how
lost workers are detected and how `search.n_trials` stays a study-wide total.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Sequence


def _stopped_while_starting(signum: int, frame: Any) -> None:
    """Ctrl-C's, SIGTERM's, SIGUSR1's and SIGUSR2's handler while `python -m nas.search` starts (its command line
    checked, torch and Optuna imported: seconds), until `main` installs the search's own: one line on stderr and the
    shell's exit status for death by the signal (130, 143). SIGTERM killed the process there with no line at all, and
    Ctrl-C printed a traceback from deep inside an import. Nothing is written before `main` runs (Hydra writes nothing
    on a plain run)."""
    # The phrases of nas.errors.interruption_text, not imported: an import inside a signal handler can deadlock on an
    # import the signal interrupted. os.write and os._exit: nothing of the interrupted import runs on (no traceback).
    said = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    os.write(2, f"{said} while starting; nothing was written\n".encode())
    os._exit(128 + signum)


# those `_stopped_while_starting` takes (nas.errors, which names SIGUSR1/SIGUSR2 too, is not imported yet)
_STARTING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
                          if hasattr(signal, name))

if __name__ == "__main__":  # first, before even nas.config's import (a second): a signal from the start is said
    for _signum in _STARTING_SIGNALS:
        signal.signal(_signum, _stopped_while_starting)

from nas.overrides import exit_on_bad_overrides, mappings_replaced  # noqa: E402 - after the handlers above

HELP_LINE = ("python -m nas.search: hardware-aware architecture search. An Optuna study proxy-trains candidates of the space "
             "and predicts each one's latency on the target chip (hw=), then final-trains and compresses the Pareto "
             "members into the run folder (search.runs_dir/search.study_name); rerun the same command to resume.")
"""The first line of `python -m nas.search --help` (Hydra's said "search is powered by Hydra")."""

if __name__ == "__main__":  # before torch and Optuna load (seconds): a typo on the command line is named at once
    exit_on_bad_overrides(sys.argv[1:], config_name="search")
    # Hydra answers --cfg, --help, --info and the like itself, without running the search: given here, without torch and
    # Optuna, the same config (same file, so the same job name) prints in a second instead of several.
    if any(a in ("-c", "--cfg", "-h", "--help", "--hydra-help", "--version", "-i", "--info", "-sc", "--shell-completion")
           or a.startswith(("--cfg=", "--info=", "--shell-completion=")) for a in sys.argv[1:]):
        import hydra

        from nas.config import CONF_DIR, hw_help
        from nas.errors import help_on_stdout

        with help_on_stdout():  # `--help | head -3`: a quiet end, not a BrokenPipeError traceback
            if any(a in ("-h", "--help") for a in sys.argv[1:]):  # Hydra's help names the hw= choices, not what each is
                print(f"{HELP_LINE}\n\n{hw_help(sys.argv[1:], config_name='search')}\n")
            hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")(lambda cfg: None)()
        sys.exit(0)

import hydra
import optuna
from omegaconf import DictConfig, OmegaConf

from nas.arch import ArchConfig
from nas.config import (CONF_DIR, RunConfig, hw_profiles,
                        command_line_keys, overridden_or_recorded, register_configs, to_run_config)
from nas.data import (
    Dataset, SplitImageDigests, data_identity, load_dataset, split_as_recorded_and_digests, split_image_digests,
)
from nas.errors import (ConfigError, NasError, Terminated, closed_stdout_ends_quietly, counted, exit_on_error,
                        interrupting_signal, interrupts_honoured, interruption_text, module_logger, preemption_stops,
                        stop_on_sigterm, storage_or_disk_problem)
from nas.outputs import write_outputs
from nas.study_export import (SearchResult, close_storage, export_study, joined, moved_root_error, on_front,
                             run_settings_kept, with_memory_budget)
from nas.run_folder import (held_lines, make_run_dir, mark_started, remove_leftovers, run_log, stop_recorded,
                            write_config_record)
from nas.search_checks import (batch_warning, check_budget, check_image_size, enqueue_seed_archs, memory_warning,
                               resolve_seed_archs, seeds_left_out, setup_warnings, subset_warning, thread_warning,
                               trial_count_warning)
from nas.study import open_storage, open_study, recorded_digests
from nas.sweep import sweep_interrupted_text, sweep_record
from nas.trials import early_stop_verdict, make_sampler, n_complete, nothing_found_text, run_trials, trials_done_text

# The search's public names: its own, and those of nas.search_checks, nas.trials, nas.study_export and nas.errors that code
# and tests import from here, where they were before nas/search.py was split.
__all__ = ["HELP_LINE", "SearchInterrupted", "SearchResult", "SearchTerminated", "batch_warning", "check_budget",
           "check_image_size", "early_stop_verdict", "export_study", "main", "make_sampler", "memory_warning",
           "moved_root_error", "resolve_seed_archs", "run_search", "setup_warnings", "storage_or_disk_problem",
           "subset_warning", "thread_warning", "trial_count_warning", "trials_done_text"]

log = module_logger("nas.search")  # lines naming a file that is not UTF-8 written readably (ReadableNames)


def _open(run: RunConfig, run_dir: Path) -> optuna.storages.RDBStorage:
    if run.search.storage is None:
        make_run_dir(run_dir)  # the default SQLite file lives in the run folder
    storage = open_storage(run, run_dir)  # a shared storage is checked before the run folder is made
    if run.search.storage is not None:
        make_run_dir(run_dir)
    return storage


def run_search(cfg: DictConfig | RunConfig, *, overridden: Collection[str] | None = None) -> SearchResult:
    """Run (or resume, or join as one more worker) the search described by `cfg` (`nas.compose_search_config(...)`),
    write the run folder's files, and return a `SearchResult` (the run folder, its Pareto members, the report's files).
    `overridden`: the config keys set on the command line (`nas.config.overridden_keys`; `python -m nas.search` passes
    them), for the warnings about settings that were asked for and do nothing, even at their default values; None (the
    default): those of the overrides `compose_search_config` recorded in `cfg` (`nas.config.composed_overrides`).

    Nothing is written before the input is validated, the data loaded and the storage opened. The caller's torch
    threads, random states, Optuna verbosity, NNCF's log level and the environment variables a run sets are as they
    were when it returns (`run_settings_kept`). Ctrl-C and SIGTERM stop it as a KeyboardInterrupt (`Terminated`
    for SIGTERM), also in a process that ignores SIGINT or leaves SIGTERM at its default (`nas.errors.interrupts_honoured`):
    raised before the trials, as `SearchInterrupted` saying what the study keeps; in them or after, as a result whose
    `stopped_by` names the signal. A write that fails under it (a full disk, a read-only folder, the study database
    failing: `storage_or_disk_problem` names it) is raised as it is, with `finished_trials` set on it: the finished
    trials the study keeps (0 where none had finished, so nothing is lost; None where that is not known).
    SIGUSR1 and SIGUSR2 (a scheduler's warning before its time limit) stop it as SIGTERM does (`Terminated` carrying
    the signal); once the run's files are written, a handler of Python's the process had for that signal (submitit's,
    which requeues its job and exits) is given it (`nas.errors.preemption_stops`). A SystemExit raised during the
    trials (a handler of the process's own for another signal) goes on as it is, after the run's files are written.
    """
    overridden = overridden_or_recorded(cfg, overridden)
    run = to_run_config(cfg)
    # Ctrl-C and SIGTERM stop it from the start, also in a process that ignores SIGINT (a script's background job): the
    # data loaded and hashed before the trials (minutes for a large image folder) went on as if `kill -INT` had not been
    # sent. The trials take them at safe points instead (`_interrupts_at_safe_points`).
    # SIGUSR1/SIGUSR2 (a scheduler's warning before its time limit) stop it as SIGTERM does; the handler the process
    # had for the signal (submitit's requeue) is given it once the run's files are written (`preemption_stops`)
    with run_settings_kept(), interrupts_honoured(), preemption_stops(log) as hand_on:
        try:
            result = _run_search(run, overridden=overridden)
        except Terminated as e:  # before the trials (SearchTerminated), or a second signal as the files were written
            hand_on(interrupting_signal(e))
            raise
        hand_on(result.stopped_by)
        return result


def _run_search(run: RunConfig, *, overridden: Collection[str]) -> SearchResult:
    """`run_search` once its config is resolved."""
    run_dir = Path(run.search.runs_dir) / run.search.study_name
    before_study = _interrupted_before_study(run, run_dir)  # now: opening the default study creates its file
    # a first run with the default storage: before its study is open, a failed write loses no finished trial
    no_study_yet = run.search.storage is None and not (run_dir / "study.db").is_file()
    with contextlib.ExitStack() as closing:
        with _says_if_interrupted(lambda: before_study), _kept_if_a_write_fails(lambda: 0 if no_study_yet else None):
            with held_lines() as earlier:  # e.g. images left out of the data: for search.log, once it may be written
                data = load_dataset(run.data, overridden=overridden)  # fails fast, before a study or folder is created
                check_image_size(data, run)
                check_budget(run, data)
                seeds = resolve_seed_archs(run, data)  # bad names or files fail here, before the study exists
            storage = _open(run, run_dir)
            closing.callback(close_storage, storage)
            with held_lines() as kept:  # a study made before a class rounded to none got a held-out image keeps its split
                data, known = split_as_recorded_and_digests(run.data, data,
                                                            recorded_digests(storage, run.search.study_name))
            # another folder under the same study name: refused, not mixed in (the data is part of the study's record)
            # each image hashed once for the study's record and the setup warnings (held_out_copies_warning), not once each,
            # and each split once for the record and the comparison with it that kept the split (`known`)
            digests = split_image_digests(data)
            study = open_study(run, storage, make_sampler(run),
                               data=data_identity(data, digests=digests, split_digests=known), overridden=overridden)
        with (_says_if_interrupted(lambda: _interrupted_with_study(study)),
              _kept_if_a_write_fails(lambda: n_complete(study))):
            return _search(run, data, run_dir, study, seeds=seeds, earlier=[*earlier, *kept], digests=digests)


@contextlib.contextmanager
def _kept_if_a_write_fails(finished: Callable[[], int | None]) -> Iterator[None]:
    """A failed write raised in the block (the disk or the study database failing: `storage_or_disk_problem`) goes on
    as it is, carrying `finished_trials`: how many finished trials the study keeps, from `finished()` (0: none, so
    nothing is lost; None: not known), for `main`'s line, which said "the finished trials are kept in the study" also
    where no trial had run. Set where it is first raised through one of these, the innermost."""
    try:
        yield
    except Exception as e:
        if storage_or_disk_problem(e) is not None and not hasattr(e, "finished_trials"):
            try:
                n = finished()
            except Exception:  # the study database may be what failed: not known
                n = None
            with contextlib.suppress(AttributeError):  # an exception type without attributes of its own: not known
                e.finished_trials = n  # type: ignore[attr-defined]
        raise


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM outside the trials (which handle their own), carrying one line on what it means for the study:
    whether there is one yet, and how many finished trials it keeps. `python -m nas.search` prints that line."""


class SearchTerminated(SearchInterrupted, Terminated):
    """`SearchInterrupted` by SIGTERM (or SIGUSR1/SIGUSR2, its `signum`): a `Terminated` too, so the command's exit
    status still says which signal it was."""


@contextlib.contextmanager
def _says_if_interrupted(what: Callable[[], str]) -> Iterator[None]:
    """A KeyboardInterrupt in the block becomes `SearchInterrupted` saying `what()` (`SearchTerminated` for SIGTERM's)."""
    try:
        yield
    except SearchInterrupted:
        raise
    except KeyboardInterrupt as e:
        if isinstance(e, Terminated):
            raise SearchTerminated(what(), signum=interrupting_signal(e)) from None
        raise SearchInterrupted(what()) from None


def _interrupted_before_study(run: RunConfig, run_dir: Path) -> str:
    """What an interrupt before the study is open means: with the default SQLite file, whether there was a study to
    resume (a first run has none: nothing to lose); a shared storage is not asked (it may be the slow part)."""
    if run.search.storage is not None:
        return ("interrupted before the search opened its study (no trial of this run had started); rerun the same "
                "command to start or resume it")
    if (run_dir / "study.db").is_file():
        return "interrupted: the finished trials are kept in the study; rerun the same command to resume"
    return ("interrupted before the search started: there was no study yet and no trial ran, so nothing is lost; rerun "
            "the same command to start it")


def _interrupted_with_study(study: optuna.Study) -> str:
    """What an interrupt outside the trials of an open study means: how many finished trials it keeps."""
    try:
        n = n_complete(study)
    except Exception:  # the database may be what the user gave up waiting on
        return "interrupted: the finished trials are kept in the study; rerun the same command to resume"
    if n == 0:
        return ("interrupted before any trial finished: the study holds none yet, so nothing is lost; rerun the same "
                "command to start it")
    return (f"interrupted: the study's {counted(n, 'finished trial')} {'is' if n == 1 else 'are'} kept; rerun the same "
            "command to resume")


def _search(run: RunConfig, data: Dataset, run_dir: Path, study: optuna.Study, *, seeds: Sequence[ArchConfig],
            earlier: Sequence[logging.LogRecord], digests: SplitImageDigests) -> SearchResult:
    """`run_search` once its input is checked and its study open: the trials, then the run folder's files. `digests`:
    `split_image_digests(data)`, computed where the study was opened."""
    _check_study_not_lost(study, run_dir, own_storage=not run.search.storage)
    if before := len(study.get_trials(deepcopy=False)):  # resumed: random start-up trials must not replay the first run's
        study.sampler = make_sampler(run, trials_before=before)
    left_out = seeds_left_out(study, seeds)
    edited = write_config_record(run_dir, OmegaConf.to_yaml(OmegaConf.structured(run)).encode())
    started = time.perf_counter()
    with run_log(run_dir, earlier=earlier):
        # search.log gathers every run and worker of the study: each starts with what it searches and how far it is
        log.info("study %s: hw=%s space=%s data=%s (%s train / %s val / %s test images, %s%s); %s",
                 study.study_name, run.hw.name, run.space.name, data.name, *(f"{len(s):,}" for s in (data.train, data.val, data.test)),
                 "x".join(map(str, (data.in_chans, data.img_size, data.img_size))),
                 ", scored by balanced accuracy" if data.balanced else "", trials_done_text(n_complete(study), run.search.n_trials))
        if edited is not None:
            log.warning("%s", edited)
        enqueue_seed_archs(study, seeds, run.space)  # its line in search.log too
        remove_leftovers(run_dir)
        # before the marker, which carries them: the report a search rewrites as it starts or stops lists its warnings,
        # not those of the run that wrote pareto.json (the memory budget set below changes none of them)
        profiles = hw_profiles()  # once: the setup warnings and pareto.json's hints name them
        warned = setup_warnings(run, data, seeds_left_out=left_out, profiles=profiles, digests=digests)
        with stop_recorded(run_dir):  # a one-line error or Ctrl-C from here on: the marker says so, not a crash
            marker = mark_started(run_dir, warnings=joined(earlier, warned))
            run = with_memory_budget(run)  # its line in search.log too
            for line in warned:  # the search still runs: each may be wanted on purpose, or fixed for the next run
                log.warning("%s", line)
            try:
                trials_stopped_by, ended_early = run_trials(run, data, run_dir, study)  # SIGINT, SIGTERM, ... or None
            except SystemExit:  # a handler of the process's own ended it (its trial queued again): the files first
                write_outputs(run, data, run_dir, study, compress=False, marker=marker,
                              warnings=joined(earlier, warned), profiles=profiles)
                raise
            pareto, files, stopped = write_outputs(run, data, run_dir, study, compress=trials_stopped_by is None,
                                                   marker=marker, warnings=joined(earlier, warned), profiles=profiles,
                                                   after_stop=trials_stopped_by)
        n = n_complete(study)
        log.info("%s finished (%.0f s this run); %s", counted(n, "trial"), time.perf_counter() - started,
                 on_front(study, run, pareto["members"]))
    return SearchResult(
        run_dir=run_dir.resolve(), study_name=study.study_name, n_complete=n, pareto=pareto["members"],
        files=files, stopped_by=trials_stopped_by if trials_stopped_by is not None else stopped,
        ended_early=ended_early, found_nothing_reason=None if n else nothing_found_text(study, run, run_dir),
    )


def _check_study_not_lost(study: optuna.Study, run_dir: Path, *, own_storage: bool) -> None:
    """`ConfigError` when the study holds no trial but the run folder's trials.csv lists some: its database was emptied
    or replaced (a 0-byte study.db opens as a new study), and running on would retrain them and overwrite trials/; or,
    where the storage is the folder's own study.db (`own_storage`), the folder was copied or renamed from another run's."""
    listed = run_dir / "trials.csv"
    if study.get_trials(deepcopy=False) or not listed.is_file():
        return
    n = max(0, len(listed.read_text(errors="replace").splitlines()) - 1)  # rows after the header
    if not n:
        return
    # A folder copied or renamed from runs/<other> keeps its database whole, with the study of that name in it: which
    # resumes only in a folder of its name (the run folder is runs_dir/study_name), not "lost; restore it". Only for the
    # folder's own study.db (no search.storage): a shared storage holds other studies of right
    others = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(study._storage, include_best_trial=False)
              if s.study_name != study.study_name and s.n_trials} if own_storage else {}
    if len(others) == 1:
        (name, trials), = others.items()
        raise ConfigError(
            f"study {study.study_name!r} holds no trials, but {listed} lists {n}: the folder's database holds study "
            f"{name!r} ({counted(trials, 'trial')}), so the folder was copied or renamed from a run of that name, and a "
            f"study resumes only under its own name: move the folder back to {run_dir.parent / name} and rerun with "
            f"search.study_name={name}, or pass a new search.study_name=... (or remove {run_dir} to start over)")
    raise ConfigError(f"study {study.study_name!r} holds no trials, but {listed} lists {n}: its database was lost or "
                      f"replaced; restore it, or pass a new search.study_name=... (or remove {run_dir} to start over)")


register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg: DictConfig) -> None:
    """CLI entry point: a thin wrapper that turns errors into one line and an exit code."""
    # SIGTERM stops the search as Ctrl-C does: the trial running is failed with its reason and queued to run first on
    # the rerun (`nas.study.requeue_interrupted`), and the files are written, instead of the process dying at once.
    # SIGUSR1 and SIGUSR2 (a scheduler's warning before its time limit) likewise, where the start-up handler has them
    # (at their default for `stop_on_sigterm`); a scheduler's own (submitit's) gets them once the files are written
    for signum in _STARTING_SIGNALS:
        if signum not in (signal.SIGINT, signal.SIGTERM) and signal.getsignal(signum) is _stopped_while_starting:
            signal.signal(signum, signal.SIG_DFL)
    stop_on_sigterm()
    if signal.getsignal(signal.SIGINT) is _stopped_while_starting:  # set as the command started: Ctrl-C raises again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with exit_on_error():
        try:
            # the command line's own settings: a data.test_size=0.2 typed there is one the user expects to act
            # hw.efficiency={conv: 0.5} is the value, not merged into the chip file's
            result = run_search(mappings_replaced(cfg), overridden=command_line_keys())
        except KeyboardInterrupt as e:
            # Ctrl-C or SIGTERM outside the trials (loading the data, which takes seconds, opening the study, writing the
            # report): the trials handle their own; here it ended in a 40-line traceback. Every file is written
            # atomically, so nothing finished is lost; SearchInterrupted says whether there is a study to resume at all.
            print(str(e) if isinstance(e, SearchInterrupted) else "interrupted: nothing finished is lost (every file is "
                  "written whole); rerun the same command to start or resume the search", file=sys.stderr)
            sys.exit(128 + interrupting_signal(e))  # the shell's codes for death by SIGINT (130) / SIGTERM (143)
        except NasError:
            raise  # already one line naming the value (an unreachable storage URL among them)
        except Exception as e:  # noqa: BLE001 - only the disk and database failures below become one line
            if (problem := storage_or_disk_problem(e)) is None:
                raise
            n = getattr(e, "finished_trials", None)  # set by run_search (`_kept_if_a_write_fails`); None: not known
            kept = ("no trial had finished, so nothing is lost" if n == 0 else "the finished trials are kept in the study"
                    if n is None else f"the study's {counted(n, 'finished trial')} {'is' if n == 1 else 'are'} kept")
            print(f"error: cannot write the run ({problem}); {kept}: fix that (free space, the run folder's permissions "
                  f"or entries, the database server) and rerun the same command{'' if n == 0 else ' to resume'}",
                  file=sys.stderr)
            sys.exit(1)
    print(f"run folder: {result.run_dir}")
    if result.stopped_by is not None:  # inside a trial, or in the members' final training or compression
        # on stderr, as a stop before the trials says it: the log lines saying so went to stdout, and a SIGTERM in the
        # members' final training or compression ended with exit status 143 and no line on stderr at all
        print(f"{interruption_text(stopped_by=result.stopped_by)}: the finished trials and members are kept in "
              f"{result.run_dir}; rerun the same command to resume", file=sys.stderr)
        sys.exit(128 + result.stopped_by)
    if result.found_nothing:  # every trial failed, or was over the budget: `nas.search && deploy` must not go on
        # said last, in one line: the warning saying why (stderr) may lie far above it, among the trials' lines (stdout)
        print(f"error: {result.found_nothing_reason}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # its command line was checked at the top
    sweep = any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in sys.argv[1:])
    if sweep:
        # a sweep: its launcher may run the jobs (and their `main`) in other processes, so this one's Ctrl-C and
        # SIGTERM do not say "nothing was written" beside running jobs: SIGTERM is passed on to the local jobs (a `kill`
        # of this pid alone left them searching), and joblib's workers are looked after (nas.sweep: a stopped sweep
        # waits for its workers' files, a dead worker is one line, no idle worker is left behind); Ctrl-C outside a
        # joblib launch raises KeyboardInterrupt, said below in one line
        from nas.sweep import install

        install()
    # `nas.search ... | head -3`: the log lines after go nowhere, and the search runs to its end as it would have
    with closed_stdout_ends_quietly():
        try:
            main()
        except KeyboardInterrupt as e:  # a sweep's, outside its jobs (a job's `main` ends with its own line and status)
            if not sweep:
                raise
            # Hydra's code (composing the sweep, writing multirun.yaml, between the basic launcher's jobs) ended in a
            # traceback; the line says what Hydra had written by then
            record = sweep_record(frame for frame, _ in traceback.walk_tb(e.__traceback__))
            print(sweep_interrupted_text(interrupting_signal(e), record=record), file=sys.stderr)
            sys.exit(128 + interrupting_signal(e))
