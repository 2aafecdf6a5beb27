"""The rebuild of a run folder's files from its study (`export_study`: `python -m nas.report search.runs_dir=...
search.study_name=...`), on any machine: no new trials, the members' final training and compression where not done yet,
then the tables and the report. With it, what `run_search` (`nas.search`, which imports this module) shares with it:
`SearchResult`, the caller's settings kept (`run_settings_kept`), the storage's connections closed (`close_storage`),
the run's memory budget (`with_memory_budget`), the warnings pareto.json lists (`joined`) and the end line's count of
the front (`on_front`). The settings that rebuild a run as it was searched are `nas.rebuild`'s (light: the report's
hints name them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

import optuna
from omegaconf import DictConfig

from nas.config import RunConfig, hw_profiles, overridden_or_recorded, to_run_config, validate_run_config
from nas.data import data_identity, load_dataset, split_as_recorded_and_digests, split_image_digests
from nas.errors import ConfigError, DataError, counted, interrupts_honoured, module_logger, readable_text
from nas.memory import DEFAULT_BUDGET_SHARE, gib, memory_budget
from nas.outputs import write_outputs
from nas.results import final_trained_otherwise, front_records, trial_record
from nas.run_folder import held_lines, make_run_dir, remove_leftovers, run_log
from nas.search_checks import setup_warnings
from nas.study import (check_data, load_existing_study, masked, open_storage, recorded_digests,
                       settings_the_study_replaced, storage_url, study_budget_ms, with_study_settings)
from nas.train import caller_settings_kept
from nas.trials import n_complete, nothing_found_text

__all__ = ["SearchResult", "close_storage", "export_study", "joined", "moved_root_error", "on_front",
           "run_settings_kept", "with_memory_budget"]

log = module_logger("nas.search")  # the search's lines, under its logger's name (search.log shows it; users set its level)


@dataclass(frozen=True)
class SearchResult:
    """What `run_search` (and `export_study`) produced: `run_dir`, the run folder (absolute); `study_name`; `n_complete`,
    the study's finished trials (all workers'); `pareto`, pareto.json's `members` (one dict per Pareto member, fastest
    first: `arch_id`, `latency_ms`, `val_acc`, `test_acc` (its `model.pt`'s: the final-trained weights, or the trial's
    where no final training ran), `checkpoint` (its folder, relative to `run_dir`), `arch` (its `ArchConfig.to_dict()`),
    ...); `files`, the report's files by name (`{"report.html": <path>, ...}`); `stopped_by`, the signal that stopped the
    run early, None when it finished; `ended_early`, why its trials ended, without a signal, before the study held
    `search.n_trials` finished ones (the line search.log gives: trials failing in training in a row, the give-up on the
    latency budget, `search.timeout_s`), None otherwise. A search that ends, not interrupted, with `n_complete == 0` found
    nothing to deploy (`found_nothing`): `python -m nas.search` then exits 1, after writing its files, and prints
    `found_nothing_reason` on stderr (one line: what became of the study's trials, the last failure's reason, where to
    read more; None when something was found)."""

    run_dir: Path
    study_name: str
    n_complete: int
    pareto: list[dict[str, Any]]
    files: dict[str, Path]
    # The signal that stopped the run before it finished (SIGINT for Ctrl-C, SIGTERM), None when it finished: the
    # commands exit with 128 + its number, as the shell reports death by it.
    stopped_by: signal.Signals | None = None
    ended_early: str | None = None
    found_nothing_reason: str | None = None

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C or SIGTERM stopped the run before it finished (`stopped_by` says which)."""
        return self.stopped_by is not None

    @property
    def found_nothing(self) -> bool:
        """Whether the search ended, not interrupted, with no finished trial in its study (every trial failed, or every
        architecture sampled was over the latency budget): there is no model to deploy (`ended_early` says why)."""
        return self.n_complete == 0 and self.stopped_by is None


@contextlib.contextmanager
def run_settings_kept() -> Iterator[None]:
    """`nas.train.caller_settings_kept`, and Optuna's verbosity, which a search lowers to warnings: its per-trial INFO
    lines repeat what search.log says."""
    verbosity = optuna.logging.get_verbosity()
    try:
        with caller_settings_kept():
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def joined(earlier: Sequence[logging.LogRecord], warned: Sequence[str]) -> list[str]:
    """The warnings held while the data loaded (`held_lines`: its info lines left out), then `warned`, each once
    (`split_as_recorded_and_digests` may read idx data twice but gives its warnings once; a line given twice all the
    same is listed once), a file or class name that is not UTF-8 in them as their log lines show it (`readable_text`),
    for pareto.json and the report."""
    held = [record.getMessage() for record in earlier if record.levelno >= logging.WARNING]
    return list(dict.fromkeys(readable_text(line) for line in [*held, *warned]))


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close the connections `storage` keeps in its pool: the study and its storage form reference cycles, so without
    this a notebook that ran searches kept each run's study.db open (one file handle per run, until a garbage collection
    happened to free them), and a PostgreSQL server kept a connection per run."""
    engine = getattr(storage, "engine", None)  # an RDBStorage; others (in memory) hold no connection
    if engine is not None:
        engine.dispose()


def with_memory_budget(run: RunConfig) -> RunConfig:
    """`run` with `search.memory_budget_gb` fixed for the whole run: read from the memory available at its start when
    null. Read once: with `train.keep_freed_memory` the process keeps its freed activation memory for later trials, so
    the memory available later would shrink by what this very process can reuse."""
    budget = memory_budget(run.search.memory_budget_gb)
    if budget is None or run.search.memory_budget_gb is not None:
        return run
    log.info("memory budget for activations: %s (%.0f%% of the memory available; search.memory_budget_gb sets it)", gib(budget),
             100 * DEFAULT_BUDGET_SHARE)
    return dataclasses.replace(run, search=dataclasses.replace(run.search, memory_budget_gb=budget / 2**30))


def on_front(study: optuna.Study, run: RunConfig, members: Sequence[dict[str, Any]]) -> str:
    """How many trials are on the study's Pareto front (trials.csv's is_pareto), and how many of them pareto.json's
    `members` hold where fewer: after Ctrl-C the members not final-trained yet are left out of the files, and counting
    the files alone said "0 on the Pareto front" beside a trials.csv that marks the front."""
    try:
        budget = study_budget_ms(study, run.search.latency_budget_ms)
        front = len(front_records([trial_record(t, budget) for t in study.get_trials(deepcopy=False)]))
    except Exception:  # the database may be what failed or was given up on: the files' count is all there is
        front = len(members)
    if len(members) >= front:
        return f"{len(members)} on the Pareto front"
    return f"{front} on the Pareto front, {len(members)} of them in pareto.json (the report says why the others are left out)"


def export_study(cfg: DictConfig | RunConfig, *, overridden: Collection[str] | None = None) -> SearchResult:
    """Rebuild a run folder's files and report from an existing study, on any machine.

    Reads the study from `search.storage` (the hw/space/data/train it was created with come from the
    study itself) and the trials' weights from `search.runs_dir`; runs no new trials. The members' final
    training and compression run where they are not done yet (`final_train=none` / `compress=none` skip them).
    `final_train` and `compress` are this command's, not the study's: members final-trained or compressed with other
    settings are refused in one line naming them (`ConfigError`) unless the command names that step's settings
    (`overridden`), rather than done again with its defaults.
    `overridden`: the config keys set on the command line (`nas.config.overridden_keys`; `python -m nas.report` passes
    them), for the warnings about settings that were asked for and do nothing: those the study's replace, and a split
    size of data with that split of its own, even at its default value (as `run_search` warns); None (the default):
    those of the overrides `compose_search_config` recorded in `cfg`.
    """
    overridden = overridden_or_recorded(cfg, overridden)
    run = to_run_config(cfg)
    with run_settings_kept(), interrupts_honoured():  # from the start, as `run_search`: the data loaded first
        return _export_study(run, overridden=overridden)


def _export_study(run: RunConfig, *, overridden: Collection[str]) -> SearchResult:
    """`export_study` once its config is resolved."""
    run_dir = Path(run.search.runs_dir) / run.search.study_name
    url = storage_url(run, run_dir)
    if run.search.storage is None and not (run_dir / "study.db").is_file():
        raise ConfigError(f"no study at {run_dir / 'study.db'}; pass search.runs_dir=... and search.study_name=... of a run, "
                          "or search.storage=<url> of a shared study")
    if (db := _sqlite_file(url)) is not None and not db.is_file():  # opening it would create an empty database there
        raise ConfigError(f"search.storage={masked(url)!r}: no such file; pass the storage of the study to rebuild")
    storage = open_storage(run, run_dir)
    try:
        return _export_from(run, storage, run_dir=run_dir, url=url, overridden=overridden)
    finally:
        close_storage(storage)  # as run_search does: no connection left open in the caller's process


def _export_from(run: RunConfig, storage: optuna.storages.BaseStorage, *, run_dir: Path, url: str,
                 overridden: Collection[str]) -> SearchResult:
    """`export_study` once its storage (`url`) is open."""
    study = load_existing_study(run, storage, url)
    given, given_root = run, run.data.root
    run = with_study_settings(run, study)
    validate_run_config(run)
    # final_train and compress are this command's, not the study's: a rebuild meant to rewrite the report (of a
    # final_train=smoke or compress=smoke run, say) trained every member again for final_train=default's 6 epochs,
    # replacing the weights the report was to be rebuilt from (an interrupted rebuild left a report of no members while
    # its files were deleted before the training); and compressed every member again with compress=default. Only a
    # final_train / compress named on the command line redoes them.
    from compress.pipeline import compressed_otherwise  # the search orchestrates; compress builds on nas

    # Both steps' refusals in one line, with the settings the search ran with: refused for final_train, the rebuild given
    # final_train=none was refused in turn for compress, a second step, and neither named the run's own settings.
    refusals = [refusal for refusal in (
        _redoing_refusal("final_train", overridden, {
            arch_id: f"{epochs} epochs" for arch_id, epochs in final_trained_otherwise(run_dir, run.final_train).items()},
            done=f"final-trained with another recipe than final_train's default ({counted(run.final_train.epochs, 'epoch')})",
            redo="train them again from scratch", keep="their weights", name="the final_train to train them with"),
        _redoing_refusal("compress", overridden, {
            arch_id: f"other {keys}" for arch_id, keys in compressed_otherwise(run_dir, run.compress).items()},
            done="compressed with other settings than compress's default", redo="compress them again, replacing their files",
            keep="their compressed files",
            name="the compress settings to compress them with")) if refusal is not None]
    if refusals:
        from nas.rebuild import rebuild_settings

        refused = tuple(refusal.split(":", 1)[0] for refusal in refusals)  # the keys: final_train, compress
        searched = [s for s in rebuild_settings(run_dir) or [] if s.split("=", 1)[0].split(".", 1)[0] in refused]
        as_run = (f". Its search ran with {' '.join(searched)} (config.yaml), which rebuilds the files as they are"
                  if searched else "")
        raise ConfigError(". ".join(refusals) + as_run)
    # About this command's input, not the results: to the terminal, not among the report's setup warnings
    if (replaced := settings_the_study_replaced(given, run, overridden=overridden, study_name=study.study_name)) is not None:
        log.warning("%s", replaced)
    with held_lines() as earlier:  # e.g. images left out of the data: for search.log, as the search keeps them
        try:
            loaded = load_dataset(run.data, overridden=overridden)
        except DataError:
            if run.data.root != given_root and (moved := moved_root_error(run.data.root, study.study_name)) is not None:
                raise moved from None
            raise
        data, known = split_as_recorded_and_digests(run.data, loaded, recorded_digests(storage, study.study_name))
    digests = split_image_digests(data)  # once, for the check and the setup warnings
    # the members' test images are the study's; each split hashed once, for the comparison and the check (`known`)
    check_data(study, data_identity(data, digests=digests, split_digests=known), record=False, images_from=run.data)
    weights = run_dir / "trials"
    n = n_complete(study)
    have = len(list(weights.glob("*.pt"))) if weights.is_dir() else 0
    if n and not have:
        raise ConfigError(f"study {study.study_name!r} has {n} finished trials but {weights} holds no weights; "
                          "point search.runs_dir=... at the folder the workers wrote to")
    make_run_dir(run_dir)  # a shared study without finished trials may have no run folder yet
    started = time.perf_counter()
    # The rebuild may final-train and compress members for minutes, or leave some out: search.log, the run's one log,
    # must say so beside the search's lines, marked as a rebuild (no trials run) so its lines are not read as a search's.
    with run_log(run_dir, earlier=earlier):
        log.info("rebuild of the run's files from study %s (python -m nas.report, no new trials): %s finished; "
                 "members not done yet get final_train=%s and compress.members=%s", study.study_name, counted(n, "trial"),
                 counted(run.final_train.epochs, "epoch") if run.final_train.epochs else "none", run.compress.members.value)
        remove_leftovers(run_dir)
        # The report shows the setup warnings of whoever wrote its files last: a rebuild gives them again (the data's
        # and the chip's are the study's), or its report would drop them. It trains no candidates: train.threads is moot.
        profiles = hw_profiles()  # once: the setup warnings and pareto.json's hints name them
        warned = setup_warnings(run, data, recipes=("final_train",), profiles=profiles, digests=digests)
        for line in warned:
            log.warning("%s", line)
        pareto, files, stopped_by = write_outputs(with_memory_budget(run), data, run_dir, study, compress=True,
                                                  warnings=joined(earlier, warned), profiles=profiles)
        log.info("rebuild %s (%.0f s); %s", "done" if stopped_by is None else "interrupted",
                 time.perf_counter() - started, on_front(study, run, pareto["members"]))
    return SearchResult(run_dir=run_dir.resolve(), study_name=study.study_name, n_complete=n, pareto=pareto["members"],
                        files=files, stopped_by=stopped_by,
                        found_nothing_reason=None if n else nothing_found_text(study, run, run_dir))


def _redoing_refusal(key: str, overridden: Collection[str], members: dict[str, str], *, done: str, redo: str, keep: str,
                     name: str) -> str | None:
    """Why a rebuild that would redo the `key` step (final_train, compress) of `members` ({arch_id: how it was done}),
    done with other settings than the command's, is refused when the command names no `key` setting (the rebuild would
    otherwise redo them with defaults nobody asked for, replacing their files), starting "<key>:"; None otherwise."""
    if not members or any(k == key or k.startswith(f"{key}.") for k in overridden):
        return None
    listed = ", ".join(f"{arch_id} ({how})" for arch_id, how in members.items())
    return (f"{key}: {counted(len(members), 'member')} of the run folder {done}: {listed}; the rebuild would "
            f"{redo}. Pass {key}=none to keep {keep}, or name {name} ({key}=default)")


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite storage URL (relative to the working folder, as SQLite opens it); None for other
    databases and an in-memory one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def moved_root_error(root: str, study_name: str) -> DataError | None:
    """The error for a data.root taken from study `study_name`'s record that is not on this machine (the images moved,
    or the study was made on another machine), saying where the path came from and how to give the images' new place;
    None when `root` exists (its own error, about what is in it, stands). The bare 'data.root=... does not exist' read
    as a setting the user had given, with nothing saying that this command takes data.root."""
    if Path(root).exists():
        return None
    if not Path(root).is_absolute():  # a study from before 2026-12-05 recorded data.root as given
        return DataError(f"data.root={root} does not exist here: study {study_name!r} recorded it relative to the folder "
                         "its search ran in; run this command from that folder, or pass data.root=/its/absolute/place")
    return DataError(f"data.root={root} does not exist: it is where study {study_name!r} recorded its images; if they have "
                     "moved (or the study was made on another machine), pass data.root=/new/place to this command")
