"""The run folder's files written at the end of a search or of its rebuild from the study (`nas.search`): trials.csv
and the Pareto files with the members' final training, their compression and the report, under the run folder's lock
that workers take turns on; a Ctrl-C or SIGTERM meanwhile keeps what was finished and says what it stopped."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from nas.checkpoint import run_folder_lock
from nas.config import RunConfig
from nas.data import Dataset
from nas.errors import interrupting_signal, interrupts_honoured, interruption_text, module_logger
from nas.latency.hardware import HardwareProfile
from nas.pareto_csv import write_pareto_csv
from nas.results import replace_pareto_files, write_run_files
from nas.run_folder import remove_dead_markers
from nas.study import study_budget_ms
from nas.train import reset_autocast

if TYPE_CHECKING:  # only the study's type
    import optuna

log = module_logger("nas.search")  # the search's lines, under its logger's name (search.log shows it; users set its level)


def write_outputs(run: RunConfig, data: Dataset, run_dir: Path, study: optuna.Study, *, compress: bool,
                  marker: Path | None = None, warnings: Sequence[str] = (),
                  profiles: Sequence[HardwareProfile] | None = None, after_stop: signal.Signals | None = None,
                  ) -> tuple[dict[str, Any], dict[str, Path], signal.Signals | None]:
    """trials.csv, pareto files, the members' checkpoints (compressed if asked) and the report. `marker`, the search's
    run marker (`mark_started`), is removed just before the report, which then says no more that this search runs.
    `warnings`: this process's warnings about its setup, which pareto.json keeps for the report (`setup_warnings`);
    `profiles`: the hardware profiles its hints may name (`write_run_files`); `after_stop`: the signal that stopped the
    trials (the files are then written after that stop, without training), for the line a second one gives.

    Workers sharing the run folder take turns (file lock); whoever comes second finds the members'
    files up to date and only refreshes the tables and the report. Returns (pareto, report files, the signal that
    interrupted the members' final training or compression: SIGINT for Ctrl-C, SIGTERM; None when neither was).
    """
    stopped_by: signal.Signals | None = None
    # the front is judged at the study's budget: another worker may have tightened it while this one ran
    run = dataclasses.replace(run, search=dataclasses.replace(
        run.search, latency_budget_ms=study_budget_ms(study, run.search.latency_budget_ms)))
    with interrupts_honoured(), run_folder_lock(run_dir):  # a wait on another worker's turn too
        earlier_pareto = _file_version(run_dir / "pareto.json")  # an earlier run's, or another worker's: not this one's
        trains = compress and run.final_train.epochs > 0  # whether members may be final-trained here
        try:
            # includes the members' final training, which a Ctrl-C of the search must not start (minutes per member)
            pareto = write_run_files(run_dir, study, data, run, train=compress, warnings=warnings, profiles=profiles)
        except KeyboardInterrupt as e:
            reset_autocast()  # the process (a notebook's, say) goes on: no forward pass may stay in bf16
            compress, stopped_by = False, interrupting_signal(e)
            if _file_version(run_dir / "pareto.json") != earlier_pareto:
                # write_run_files reached the members: it wrote the pareto files of those finished so far
                pareto = json.loads((run_dir / "pareto.json").read_text())
                log.warning("%s", _interrupted_members_text(trains=trains, all_made=not pareto["members_missing"],
                                                            again=stopped_by if after_stop is not None else None))
            else:
                # Struck before write_run_files reached the members (trials.csv not written yet, say): returning here
                # left no trials.csv, the marker without why it stopped and no line on stderr, and reading the
                # pareto.json there was gave an earlier run's front as this one's. The files are written as after a stop
                # in the trials: without training (seconds); a second signal stops at once, and the marker then
                # records it (`stop_recorded`).
                if after_stop is not None:  # a second signal, as the files were written after the trials' stop
                    log.warning("%s while the run's files were written after the stop, before the Pareto members' "
                                "files were made: writing them again without training; rerun the same command to resume",
                                interruption_text(stopped_by=stopped_by, again=True))
                else:
                    log.warning("interrupted before %s: writing the run's files without training; rerun the same "
                                "command to resume",
                                "the final training started" if trains else "the Pareto members' files were made")
                pareto = write_run_files(run_dir, study, data, run, train=False, warnings=warnings, profiles=profiles)
        if compress and run.compress.members.value != "none" and pareto["members"]:
            from compress.pipeline import compress_front  # the search orchestrates; compress builds on nas

            try:
                compress_front(run_dir, pareto["members"], hw=run.hw, data=data, cfg=run.compress, augment=run.data,
                               eval_batch_size=run.train.eval_batch_size, memory_budget_gb=run.search.memory_budget_gb)
            except KeyboardInterrupt as e:
                reset_autocast()
                stopped_by = interrupting_signal(e)
                log.warning("interrupted while compressing: finished members are kept; rerun the same command to resume")
                # pareto.json, written before the compression, is the report's record of it: without this the report
                # said only "No compressed members (compress.members=none, or compression has not run yet)"
                pareto = {**pareto, "compression_stopped": compression_stopped_text(stopped_by)}
                replace_pareto_files(run_dir, pareto=pareto)
            # pareto.csv was written before the members were compressed: its int8 columns are read from their files now
            write_pareto_csv(run_dir)
        from nas.report import write_reports

        if marker is not None:
            marker.unlink(missing_ok=True)
            # A worker of this machine killed while this search ran left its marker, and the report said "stopped before
            # it finished ... what follows is the state before it", though this search re-ran its trial and the tables
            # hold its work: its trials were reaped as lost (fail_lost_trials), so its search is this one's now.
            remove_dead_markers(run_dir)
        files = write_reports(run_dir)
    return pareto, files, stopped_by


def _file_version(path: Path) -> tuple[int, int] | None:
    """Which version of the file at `path` is there (inode, modification time), None where there is none: a file
    written again (atomically, `atomic_write_bytes`: a new file renamed over the old) is another version."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _interrupted_members_text(*, trains: bool, all_made: bool, again: signal.Signals | None = None) -> str:
    """search.log's line for a stop while the Pareto members' files were made (their pareto files then written):
    `trains`, whether the members could be final-trained; `all_made`, whether every member's files were made by then;
    `again`: the signal of a second stop, struck as the files were written after the trials' stop (no member trained)."""
    if again is not None:
        made = ("every Pareto member's files made: they are kept" if all_made else "the members finished so far are "
                "kept, those that need their final training left to the rerun")
        return f"{interruption_text(stopped_by=again, again=True)} as the run's files were written after the stop, {made}; rerun the same command to resume"
    if all_made:
        return ("interrupted as the run's files were written, every Pareto member's files made: they are kept; rerun "
                "the same command to resume")
    doing = "during the final training" if trains else "while the Pareto members' files were made"
    return f"interrupted {doing}: finished members are kept; rerun the same command to resume"


def compression_stopped_text(stopped_by: signal.Signals) -> str:
    """pareto.json's `compression_stopped`, which the report shows at its top: the members' compression stopped by
    `stopped_by` (SIGINT for Ctrl-C, SIGTERM), in one line saying how to finish it."""
    return (f"the search's compression of the Pareto members was {interruption_text(stopped_by=stopped_by)}: the members "
            "compressed so far are kept; rerun the same command to compress the rest")
