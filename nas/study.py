"""The Optuna study of a search, on a storage that several workers may share.

Any SQLAlchemy URL Optuna's `RDBStorage` takes works: the default is a SQLite file in the run folder (one
machine), PostgreSQL serves many workers on many machines. Workers join a study by its name and each
trains whole trials; this module holds what makes that safe:

* **Heartbeats.** Every running trial records one each `search.heartbeat_s`. A trial without one for
  `search.grace_s` belongs to a lost worker (SIGKILL, OOM killer, machine gone): it is failed and
  re-queued with the same architecture (`RetryHeartbeatStaleTrialCallback`, up to `search.max_retry`).
* **Dead local workers** are found at once, without waiting for the grace period: each trial records
  its worker's host, kernel boot and pid; a RUNNING trial whose worker process on this machine no
  longer exists is failed and re-queued the same way. This is what makes a rerun after `kill -9`
  continue immediately.
* **A study-wide trial count.** `search.n_trials` counts COMPLETE trials of the whole study. A worker
  starts a trial only while `complete + running < n_trials`, and a trial whose slot another worker took
  first (both asked at the same moment) steps aside: trials ahead of it in number order have priority.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import random
import socket
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Collection

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from nas.checkpoint import process_gone
from nas.config import SPEED_SETTINGS, DataConfig, RunConfig, group_file, group_presets  # SPEED_SETTINGS: nas.results reads it here
from nas.data import CLASS_SUMMARY, absolute_root, class_changes, system_folders_may_explain, system_folders_note
from nas.errors import ConfigError, module_logger

log = module_logger(__name__)  # lines naming a file that is not UTF-8 written readably (ReadableNames)

# Config groups whose change makes old trials incomparable; a resumed study must match them.
FINGERPRINT_KEYS = ("hw", "space", "data", "train")
_SETTINGS_ATTR = "settings"  # the full hw/space/data/train of the study, so a report can rebuild from it alone


def storage_url(run: RunConfig, run_dir: Path) -> str:
    """The study's storage URL: `search.storage`, or a SQLite file in the run folder."""
    return run.search.storage or f"sqlite:///{run_dir / 'study.db'}"


def masked(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: validate_storage_url already said so; never echo a secret
        return "<storage url>"


def _error_line(e: BaseException) -> str:
    if isinstance(e, ImportError):  # Optuna wraps the driver's ModuleNotFoundError
        cause = e if isinstance(e, ModuleNotFoundError) else e.__cause__ or e.__context__
        module = getattr(cause, "name", None)
        return f"its driver is not installed (Python module {module!r} is missing)" if module else "its driver is not installed"
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _disk_refused(e: BaseException) -> bool:
    """Whether `e` (SQLAlchemy's error) is SQLite's database file refused by its disk: full or over quota
    (SQLITE_FULL), failing or over the file size limit (SQLITE_IOERR_*), read-only (SQLITE_READONLY_*). Refused as the
    search.storage setting, it said "cannot be opened" with exit status 2, where every write that fails exits 1."""
    name = getattr(getattr(e, "orig", None), "sqlite_errorname", None)
    return isinstance(name, str) and name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY"))


def open_storage(run: RunConfig, run_dir: Path) -> optuna.storages.RDBStorage:
    """Connect to the study's storage with heartbeats and retries of lost trials; `ConfigError` if it fails, but for a
    SQLite file its disk refuses (`_disk_refused`), whose SQLAlchemy error is raised as it is: the run's failed write
    (`nas.errors.storage_or_disk_problem`), not a bad setting."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    url = storage_url(run, run_dir)
    s = run.search
    backend = make_url(url).get_backend_name()
    # Without a timeout, an unreachable PostgreSQL host hangs for minutes; SQLite waits for a lock
    # held by another local worker instead of failing at once.
    connect_args = {"postgresql": {"connect_timeout": 10}, "sqlite": {"timeout": 60}}.get(backend, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat API
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=s.max_retry)
        for attempt in range(1, 6):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs={"connect_args": connect_args, "pool_pre_ping": True},
                    heartbeat_interval=s.heartbeat_s, grace_period=s.grace_s, heartbeat_stale_trial_callback=retry,
                )
            except (IntegrityError, OperationalError, ProgrammingError) as e:
                # Workers that start together on a fresh database race to create Optuna's tables; the
                # loser finds them made on its next try. PostgreSQL reports the race as a duplicate key
                # (IntegrityError) or as DuplicateTable (ProgrammingError, "relation ... already exists").
                # Other errors (refused, bad password) are final.
                racing = isinstance(e, IntegrityError) or "already exists" in str(e) or "locked" in str(e)
                if _disk_refused(e):  # the run folder's disk, not the setting: the search's one line for it, exit 1
                    raise
                if not racing or attempt == 5:
                    raise ConfigError(f"search.storage={masked(url)!r} cannot be opened: {_error_line(e)}") from None
                time.sleep(0.2 * attempt + random.random() * 0.3)
            except Exception as e:  # unreachable server, missing driver, unwritable file
                raise ConfigError(f"search.storage={masked(url)!r} cannot be opened: {_error_line(e)}") from None
    raise AssertionError("unreachable")


def _settings(run: RunConfig) -> dict[str, Any]:
    d = json.loads(json.dumps(asdict(run), default=lambda v: v.value if hasattr(v, "value") else str(v)))
    # the root absolute, as the run's files record it: a report rebuilt from the study in another folder takes it
    d["data"]["root"] = absolute_root(run.data.root)
    return {k: d[k] for k in FINGERPRINT_KEYS}


def _as_of_now(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored settings of an older study in today's terms: keys added since take the value the old code
    behaved as (training was float32 before `train.precision` existed, shifted as `data.max_shift` said
    and erased nothing before the recipe had its own augmentation; held-out splits were drawn at random
    before `data.stratify`, scored by plain accuracy before `data.metric`, and transparency was dropped before
    `data.background`)."""
    stored = copy.deepcopy(stored)
    if isinstance(stored.get("data"), dict):
        stored["data"].setdefault("stratify", False)
        stored["data"].setdefault("metric", "accuracy")
        stored["data"].setdefault("background", None)
    if isinstance(stored.get("train"), dict):
        stored["train"].setdefault("precision", "fp32")
        stored["train"].setdefault("max_shift", None)
        stored["train"].setdefault("erase_prob", 0.0)
    return stored




def fingerprint(run: RunConfig) -> dict[str, Any]:
    """The settings a resumed study must share with the one that created it (data location, hardware description
    and `SPEED_SETTINGS` excluded)."""
    fp = _settings(run)
    fp["data"] = {k: v for k, v in fp["data"].items() if k != "root"}  # moving the data is fine
    # the description, which archs (at which inputs, of what extent) a calibration was fitted on, what it was fitted for
    # and its cross-validated error change no prediction; `fitted`, the file a profile's fitted numbers were read from,
    # is "" once they are (their values are compared), and older studies' fingerprints lack it, `fitted_for`,
    # `cross_validated` and `measured_extent`
    fp["hw"] = {k: v for k, v in fp["hw"].items() if k not in ("description", "fitted_archs", "measured_inputs",
                                                                "measured_extent", "fitted_for", "cross_validated", "fitted")}
    return _comparable(fp)


def _comparable(fp: dict[str, Any]) -> dict[str, Any]:
    """`fp` without `SPEED_SETTINGS` (fingerprints stored by older versions kept some of them)."""
    fp = copy.deepcopy(fp)
    for group, keys in SPEED_SETTINGS.items():
        if isinstance(fp.get(group), dict):
            fp[group] = {k: v for k, v in fp[group].items() if k not in keys}
    hw = fp.get("hw")
    if isinstance(hw, dict) and isinstance(hw.get("efficiency"), dict):
        # An op kind's efficiency of 1.0 and none at all predict the same (1.0 is the default): a profile that writes
        # out a default (as the shipped ones now do for every kind they run) keeps its studies resumable.
        hw["efficiency"] = {k: v for k, v in hw["efficiency"].items() if v != 1.0}
    return fp


def _stored_fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    """A study's stored fingerprint as `fingerprint` would write it today."""
    return _comparable(_as_of_now(config))


MAX_DIFFERENCES_SHOWN = 6  # another hw profile differs in a dozen datasheet numbers: the message stays one readable line


def _differences(stored: dict[str, Any], now: dict[str, Any]) -> str:
    """`train.epochs: 1 then, 3 now; ...` for the settings that differ (long values shortened)."""
    def short(value: Any) -> str:
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    lines = []
    for group in FINGERPRINT_KEYS:
        then, current = stored.get(group) or {}, now.get(group) or {}
        # a group's name first (hw.name: edge_npu then, cpu now says most of it), then the rest alphabetically
        keys = sorted(set(then) | set(current), key=lambda k: (k != "name", k))
        lines += [f"{group}.{key}: {short(then.get(key))} then, {short(current.get(key))} now"
                  for key in keys if then.get(key) != current.get(key)]
    shown = MAX_DIFFERENCES_SHOWN
    return "; ".join(lines[:shown]) + (f"; and {len(lines) - shown} more" if len(lines) > shown else "")


def _presets_of(stored: dict[str, Any], run: RunConfig, groups: Collection[str]) -> list[str]:
    """`<group>=<name>` for each of `groups` whose settings in `stored` (a study's fingerprint) are exactly those of one
    of the group's files (`nas.config.group_presets`: conf/<group>/<name>.yaml, or the user's under --config-dir): the
    one thing to type to resume. A group whose settings are no file's is left out."""
    hints = []
    for group in groups:
        # the fingerprint leaves data.root out, which data=imagefolder's file leaves required: the run's stands in
        missing = {"root": run.data.root} if group == "data" else None
        for name, preset in group_presets(group, type(getattr(run, group)), missing=missing).items():
            # compared as the refusal compares (speed settings, a chip's description aside), via `fingerprint`
            if fingerprint(dataclasses.replace(run, **{group: preset})).get(group) == stored.get(group):
                hints.append(f"{group}={name}")
                break
    return hints


_ABSENT = object()


def _overrides_to_drop(stored: dict[str, Any], now: dict[str, Any], groups: Collection[str],
                       overridden: Collection[str]) -> list[str]:
    """`key=value` (the value now) of each of `overridden` (the command line's keys, `nas.config.overridden_keys`)
    inside `groups` whose value in `now` differs from the one in `stored` (fingerprints): with a group named by its
    file (train=smoke), such an override (train.lr=0.01) is what keeps the settings from the study's, and typing the
    file's name alone does not undo it. Keys the fingerprint leaves out (data.root, speed settings) are never named."""
    def at(fp: dict[str, Any], key: str) -> Any:
        value: Any = fp
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return _ABSENT
            value = value[part]
        return value

    drops = []
    for group in groups:
        for key in sorted(k for k in overridden if k.startswith(f"{group}.")):
            if (value := at(now, key)) is not _ABSENT and value != at(stored, key):
                drops.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return drops


# The search.* settings every worker of a study must share (a resumed run included), with why; they change what a
# trial's result means or what the sampler optimizes, so one study under two values would mix two searches. The others
# may differ between workers: n_trials is a stopping rule (each worker stops once the study holds its own total; a rerun
# with a larger one is how a study is extended), and worker, timeout_s, max_retry, storage, runs_dir, export_onnx,
# progress and seed_archs (only a new study queues them; a joiner's are named in a warning) concern one process.
SHARED_SEARCH_SETTINGS = {
    "seed": "which sets each candidate's training seed and images, and a re-proposed architecture reuses the result",
    "latency_budget_ms": ("which decided the candidates trained: those over it never were, so only a tighter budget "
                          "can follow"),
    "sampler": "which proposes every worker's candidates from the same history",
    "n_startup_trials": "the trials TPE samples at random before its model",
    "population_size": "NSGA-II's generation size, which its trials' generations are counted in",
    "early_stop": "which decides whether a trial's accuracy is of a fully trained candidate",
    "heartbeat_s": "how often a trial shows it is alive: beyond another worker's grace_s, live trials are failed as lost",
    "grace_s": "how long another worker's trial may go without a heartbeat before it is failed as lost",
}
_SEARCH_ATTR = "search"  # search_record of the run that created the study
# The latency budget the study was created with, kept when a later run tightens the record's (`check_search`): a
# refusal then says whose budget the study holds, not that it was created with it.
_CREATED_BUDGET_ATTR = "search_budget_created"


def search_record(run: RunConfig) -> dict[str, Any]:
    """The `SHARED_SEARCH_SETTINGS` of `run` by their names under `search.`, as the study stores them (JSON values). A
    sampler's own option is kept only for that sampler, and early stopping's options only when it is on: the others
    change nothing."""
    s = run.search
    sampler = getattr(s.sampler, "value", s.sampler)
    record: dict[str, Any] = {"seed": s.seed, "latency_budget_ms": s.latency_budget_ms, "sampler": sampler,
                              "heartbeat_s": s.heartbeat_s, "grace_s": s.grace_s}
    if sampler == "tpe":
        record["n_startup_trials"] = s.n_startup_trials
    if sampler == "nsga2":
        record["population_size"] = s.population_size
    es = asdict(s.early_stop)
    record.update({f"early_stop.{k}": v for k, v in es.items()} if s.early_stop.enabled else {"early_stop.enabled": False})
    return json.loads(json.dumps(record))


def _as_override(value: Any) -> str:
    """A setting's value as a command-line override spells it."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_search(study: optuna.Study, run: RunConfig) -> None:
    """`ConfigError` naming each setting, its value in the study and in `run`, when `run` would search the study with
    other `SHARED_SEARCH_SETTINGS` than the run that created it. A study without a record takes `run`'s as its own."""
    stored, now = study.user_attrs.get(_SEARCH_ATTR), search_record(run)
    if stored is None:
        study.set_user_attr(_SEARCH_ATTR, now)  # a study from before the record (or its creator): these become it
        return
    # A key on one side only follows from one that differs (another sampler, early stopping turned on or off).
    differ = [k for k in stored if k in now and stored[k] != now[k]]
    then_ms, now_ms = stored.get("latency_budget_ms"), now["latency_budget_ms"]
    # A tighter budget only drops members (the front is judged at the current budget, nas.results.trial_record) and
    # keeps every trial's result: the way to focus a study's next trials on faster models. A looser one (or none)
    # would leave the candidates the study's budget skipped untrained, holes in the front nobody would see.
    tighter = now_ms is not None and (then_ms is None or now_ms < then_ms)
    if tighter and "latency_budget_ms" in differ:
        differ.remove("latency_budget_ms")
    if not differ:
        if tighter:  # the study's budget from now on: a worker still at the looser one is refused
            if _CREATED_BUDGET_ATTR not in study.user_attrs:  # the first tightening: the creator's budget
                study.set_user_attr(_CREATED_BUDGET_ATTR, then_ms)
            study.set_user_attr(_SEARCH_ATTR, {**stored, "latency_budget_ms": now_ms})
        return
    # A budget a later run tightened is that run's: "created with 0.31" was said of a study created with none.
    tightened = "latency_budget_ms" in differ and _CREATED_BUDGET_ATTR in study.user_attrs
    created_ms = study.user_attrs.get(_CREATED_BUDGET_ATTR)

    def then(k: str) -> str:
        if k == "latency_budget_ms" and tightened:
            return (f"{_as_override(stored[k])} then (a later run's, tighter than the {_as_override(created_ms)} the "
                    "study was created with)")
        return f"{_as_override(stored[k])} then"

    said = "; ".join(f"search.{k}: {then(k)}, {_as_override(now[k])} now, {SHARED_SEARCH_SETTINGS[k.split('.')[0]]}"
                     for k in differ)
    same = " ".join(f"search.{k}={_as_override(stored[k])}" for k in differ)
    raise ConfigError(f"study {study.study_name!r} was {'searched' if tightened else 'created'} with other search "
                      f"settings ({said}); every worker of a study searches with the same ones: pass {same}, or a new "
                      "search.study_name=...")


def study_budget_ms(study: optuna.Study, budget_ms: float | None) -> float | None:
    """The latency budget to judge `study`'s candidates and front by: the tighter of `budget_ms` (this worker's) and the
    study's record, which `check_search` tightens when a worker joins with a tighter one. Read again before each trial:
    a worker started at the looser budget went on training candidates over the study's new one, and, finishing last,
    wrote a front and pareto.json at its own."""
    record = study.user_attrs.get(_SEARCH_ATTR)
    recorded = record.get("latency_budget_ms") if isinstance(record, dict) else None
    budgets = [b for b in (budget_ms, recorded) if b is not None]
    return min(budgets) if budgets else None


RECORD_WAIT_S = 10.0
"""How long a worker that joins a study another has just created waits for that worker's record of its settings."""


def _record_of_new_study(study: optuna.Study, wait_s: float) -> Any:
    """The study's stored fingerprint, waiting up to `wait_s` for it while the study is still empty: workers started
    together (Hydra's joblib launcher) race to create it, and the winner writes its record just after creating it."""
    deadline = time.monotonic() + wait_s
    while (stored := study.user_attrs.get("config")) is None and not study.get_trials(deepcopy=False):
        if time.monotonic() >= deadline:
            break  # its creator died in between: this worker's settings become the record, as for an older study
        time.sleep(0.1)
    return stored


def open_study(run: RunConfig, storage: optuna.storages.BaseStorage, sampler: optuna.samplers.BaseSampler,
               *, data: dict[str, Any] | None = None, wait_s: float = RECORD_WAIT_S,
               overridden: Collection[str] = ()) -> optuna.Study:
    """Create or join the study `search.study_name`; refuse to join one created with other settings, or with other
    images than `data` (`nas.data_records.data_identity`, checked by `check_data`). A worker that joins a study created
    a moment ago by another waits up to `wait_s` for its creator's record of the settings and the data. `overridden`:
    the config keys set on the command line (`nas.config.overridden_keys`), for the refusal to name those to drop."""
    try:
        # Which worker creates the study is settled by the storage (a unique name), so only the creator writes the
        # record; a joiner that found none and wrote its own overwrote the creator's, and both searched with their own.
        study = optuna.create_study(study_name=run.search.study_name, storage=storage, sampler=sampler,
                                    directions=["maximize", "minimize"])
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=run.search.study_name, storage=storage, sampler=sampler)
        created = False
    fp = fingerprint(run)
    stored = None if created else _record_of_new_study(study, wait_s)
    if stored is not None:
        stored = _stored_fingerprint(stored)
    if stored is None:
        # The record, with "config" written last: joiners wait for it (`_record_of_new_study`), so whatever else the
        # record holds (the data, the search settings, the full settings) is there when they compare. The data written
        # after "config" let a joiner with other images find none and write its own: one study, two val sets.
        if data is not None:
            check_data(study, data)
        check_search(study, run)
        study.set_user_attr(_SETTINGS_ATTR, _settings(run))
        study.set_user_attr("config", fp)
        return study
    if stored != fp:
        changed = [k for k in FINGERPRINT_KEYS if stored.get(k) != fp.get(k)]
        said = f"study {run.search.study_name!r} was created with other {', '.join(changed)} settings ({_differences(stored, fp)})"
        presets = _presets_of(stored, run, changed)
        # the study's settings of a group are one of its files (train=smoke): that name is what to type
        groups = [p.split("=")[0] for p in presets]
        # an override of one of that file's keys (train=smoke train.lr=0.01) is refused again with the file's name:
        # it is named to drop
        drops = _overrides_to_drop(stored, fp, groups, overridden)
        without = f" without {' '.join(drops)}" if drops else ""
        same = (f" ({' '.join(presets)}{without}: the study's "
                f"{' and '.join(filter(None, (', '.join(groups[:-1]), groups[-1])))} settings)" if presets else "")
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            # every trial failed (a recipe that diverged, which the search stops on) or none ran: the fix is a new study,
            # and it costs nothing (still refused: a worker of the study may be training under its settings)
            raise ConfigError(f"{said}; no trial of it has finished, so nothing is lost: pass a new search.study_name=..., "
                              f"or rerun with the same ones to resume{same}")
        raise ConfigError(f"{said}; rerun with the same ones to resume{same}, or pass a new search.study_name=...")
    if data is not None:
        # other images are refused before check_search records a tighter budget: a refused worker changed the study
        check_data(study, data, record=False, images_from=run.data)
    check_search(study, run)
    if _SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(_SETTINGS_ATTR, _settings(run))  # a study from before settings were kept
    if data is not None:
        check_data(study, data, images_from=run.data)  # a study from before the data was kept takes this run's as its own
    return study


_DATA_ATTR = "data"  # nas.data_records.data_identity of the data the study was made with


def recorded_digests(storage: optuna.storages.BaseStorage, study_name: str) -> dict[str, str] | None:
    """The split digests (`nas.data_records.data_identity`) of the data study `study_name` of `storage` was made with;
    None for a study not there yet, or one from before the digests were kept."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return (storage.get_study_user_attrs(study_id).get(_DATA_ATTR) or {}).get("digests")


def check_data(study: optuna.Study, identity: dict[str, Any], *, record: bool = True, fix: str | None = None,
               images_from: DataConfig | None = None) -> None:
    """`ConfigError` when the study was made with other data than `identity` (`nas.data_records.data_identity`): its
    trials' val accuracies were scored on other images. A study without a record takes `identity` as its own (`record`).
    `fix`: what the error tells the user to do, for a caller that resumes nothing (`nas.data.load_search_data`); by
    default how to resume the study or start another. `images_from`: the data settings `identity` was read with, whose
    image folder's NAS or USB-disk folders the refusal names (`nas.image_folder.system_folders_note`) where they can
    explain the difference (`nas.data_records.system_folders_may_explain`): a study made before they were skipped cannot
    be resumed on any data.root."""
    stored = study.user_attrs.get(_DATA_ATTR)
    if stored is None:
        if record:
            study.set_user_attr(_DATA_ATTR, identity)
        return

    def compared(i: dict[str, Any], *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
        # the per-class summary only says what changed; the digests decide whether anything did
        return {k: v for k, v in i.items() if k not in (CLASS_SUMMARY, *leave_out)}

    if compared(stored) == compared(identity) or (
            "digests" not in stored and compared(stored) == compared(identity, leave_out=("digests",))):
        # the same data; a study from before the digests (or the class summary) were kept takes this run's record:
        # its classes, shape and counts are these
        if record and identity.keys() - stored.keys():
            study.set_user_attr(_DATA_ATTR, identity)
        return

    def shape(i: dict[str, Any]) -> str:
        return "x".join(map(str, i.get("input") or []))

    def images(i: dict[str, Any]) -> str:
        n = i.get("images") or {}
        return "/".join(f"{n.get(k, '?'):,}" if isinstance(n.get(k), int) else "?" for k in ("train", "val", "test"))

    def classes(i: dict[str, Any]) -> str:
        names = list(i.get("classes") or [])
        return ", ".join(names[:6]) + (f", ... ({len(names)})" if len(names) > 6 else "")

    then, now = stored, identity
    # which classes changed, where both records say (a study from before the class summary does not)
    by_class = class_changes(then, now)
    diffs = [f"{what}: {fmt(then)} then, {fmt(now)} now"
             for what, fmt in (("classes", classes), ("input", shape), ("train/val/test images", images))
             if fmt(then) != fmt(now) and not (by_class and what == "classes")] + by_class
    if not diffs:  # the same classes, shape and counts: another folder of the same make-up, or files replaced
        other = [k for k in ("train", "val", "test") if (then.get("digests") or {}).get(k) != (now.get("digests") or {}).get(k)]
        which = " and ".join(filter(None, (", ".join(other[:-1]), other[-1]))) + " " if other else ""
        # one clause: the refusal already holds it in brackets, and a bracket inside those read as a slip
        diffs = [f"the same classes and image counts, but the {which}images' content differs, as their digests show"]
    said = f"study {study.study_name!r} was made with other images ({'; '.join(diffs)})"
    note = ""
    if images_from is not None and system_folders_may_explain(then, now) and (
            folders := system_folders_note(images_from)) is not None:
        # a study of such a folder made before they were skipped: no data.root gives its images again. The last clause
        # of whichever refusal is raised, whose own advice holds for a study made since
        note = (f"; {folders}: made before then, "
                + ("its images cannot be read again" if fix is not None else "it cannot be resumed on any data.root"))
    if fix is not None:
        raise ConfigError(f"{said}; {fix}{note}")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        # Ctrl-C before the first trial finished, a photo added: no score to protect, but still refused (a worker of the
        # study may be training on its images), and the way out costs nothing
        raise ConfigError(f"{said}; no trial of it has finished, so nothing is lost: pass a new search.study_name=..., or "
                          f"resume with the data it was made with (data.root may move){note}")
    raise ConfigError(f"{said}, and its trials' val accuracies were scored on them; resume with the data it was made "
                      f"with (data.root may move), or pass a new search.study_name=...{note}")


def load_existing_study(run: RunConfig, storage: optuna.storages.BaseStorage, url: str) -> optuna.Study:
    """The study `search.study_name` of `storage`; `ConfigError` listing the studies there if it is absent."""
    names = optuna.get_all_study_names(storage)
    if run.search.study_name not in names:
        raise ConfigError(
            f"search.study_name={run.search.study_name!r} is not in {masked(url)}; studies there: "
            f"{', '.join(sorted(names)) or 'none'}"
        )
    return optuna.load_study(study_name=run.search.study_name, storage=storage)


def _root_given(data: DataConfig) -> bool:
    """Whether `data.root` was set on the command line: it is not the root of the file its data group was read from
    (`python -m nas.report ... data.root=/here` without `data=`, whose group is then the default fashion_mnist)."""
    path = group_file("data", data.name)
    return path is not None and OmegaConf.load(path).get("root") != data.root


def _with_study_budget(run: RunConfig, study: optuna.Study) -> RunConfig:
    """`run` with the study's `search.latency_budget_ms` (`check_search` keeps the tightest a run searched with): the
    front is judged at the run's budget (`nas.results.trial_record`), so a report rebuilt at none put the members a
    tighter resume had dropped back on the front, and pareto.json stated no budget. A tighter budget given here judges
    this report's front at it (no trial is run, the study keeps its own); `ConfigError` for a looser one, since the
    candidates over the study's budget were never trained."""
    record = study.user_attrs.get(_SEARCH_ATTR)
    if not isinstance(record, dict) or "latency_budget_ms" not in record:  # a study from before the record
        return run
    budget, given = record["latency_budget_ms"], run.search.latency_budget_ms
    if given is not None and (budget is None or given <= budget):
        return run  # the study's own, or tighter: a front of the members under it
    if given is not None:
        raise ConfigError(f"search.latency_budget_ms={given:g} is looser than the budget of study {study.study_name!r} "
                          f"({_as_override(budget)}): its candidates over {_as_override(budget)} ms were never trained; "
                          "leave it out, or give a tighter one")
    return dataclasses.replace(run, search=dataclasses.replace(run.search, latency_budget_ms=budget))


def with_study_settings(run: RunConfig, study: optuna.Study) -> RunConfig:
    """`run` with the hw/space/data/train the study was created with (the data root stays this machine's when the
    dataset is the same one, or when data.root was given) and the study's `search.latency_budget_ms`, so a report can
    be rebuilt from the storage without repeating them."""
    run = _with_study_budget(run, study)
    stored = study.user_attrs.get(_SETTINGS_ATTR)
    if stored is None:  # a study from before settings were stored: the fingerprint check must pass instead
        config = study.user_attrs.get("config")
        if config is not None and _stored_fingerprint(config) != fingerprint(run):
            raise ConfigError(f"study {study.study_name!r} was created with other settings; pass the same hw/space/data/train")
        return run
    stored = _as_of_now(stored)
    # data.root alone (README: "if the dataset lives elsewhere on this machine, pass data.root=...") is this machine's
    # root of the study's dataset: it was dropped for a study of another data group than the default, and the error
    # then named the root of the machine the study was made on
    if stored["data"].get("name") == run.data.name or _root_given(run.data):
        stored["data"]["root"] = run.data.root
    base = OmegaConf.structured(run)
    # A mapping of the study's (hw.efficiency, hw.calibration) replaces this command's rather than merging into it: a
    # rebuild of a hw=cpu_zen2 study that left hw= out (as the README's rebuild line does) took edge_npu's efficiency
    # of relu, bn and add beside cpu_zen2's, so pareto.json said hw.efficiency was changed from its file and the
    # members' compressions, whose fingerprint holds the chip, were all redone
    for group, values in stored.items():
        if isinstance(values, dict) and group in base:
            for key, value in values.items():
                if isinstance(value, dict) and key in base[group] and OmegaConf.get_type(base[group], key) is dict:
                    base[group][key] = {}
    merged = OmegaConf.merge(base, stored)
    result = OmegaConf.to_object(merged)
    assert isinstance(result, RunConfig)
    return result


def settings_the_study_replaced(given: RunConfig, used: RunConfig, *, overridden: Collection[str],
                                study_name: str) -> str | None:
    """One line naming the settings of `overridden` (the keys set on the command line, `nas.config.overridden_keys`)
    that `with_study_settings` replaced: `given` is the run as composed, `used` as the study's settings left it. A report
    rebuilt from a study takes hw/space/data/train from the study, so `data.test_size=0.3` typed there did nothing,
    silently. A group choice (`hw=cpu_ort`) counts by its name; data.root is this machine's and stays. None when every
    such setting is the study's already (a worker's own command line repeated)."""
    was, now = OmegaConf.structured(given), OmegaConf.structured(used)

    def text(node: Any) -> str:
        value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        return _as_override(value.value if hasattr(value, "value") else value)

    replaced = []
    for key in sorted(overridden):
        if key.split(".")[0] not in FINGERPRINT_KEYS or key == "data.root":
            continue
        # a group choice by its name (its file's other values are the study's too); a group without names whole
        path = f"{key}.name" if key in FINGERPRINT_KEYS and OmegaConf.select(was, f"{key}.name") is not None else key
        before, after = OmegaConf.select(was, path, default=None), OmegaConf.select(now, path, default=None)
        if text(before) != text(after):
            replaced.append((key, text(before), text(after)))
    if not replaced:
        return None
    return (f"{', '.join(f'{k}={v}' for k, v, _ in replaced)} {'is' if len(replaced) == 1 else 'are'} not used: a report "
            f"from a study takes hw/space/data/train from the study, and study {study_name!r} has "
            f"{', '.join(f'{k}={v}' for k, _, v in replaced)}; leave {'it' if len(replaced) == 1 else 'them'} out")


# ------------------------------------------------------------------------------------------ workers


def _worker_key() -> str | None:
    """Identifies this machine's pid namespace: pids are only comparable between processes that share it."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{socket.gethostname()}/{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # not Linux: liveness falls back to heartbeats alone
        return None


def worker_info(trial_number: int) -> dict[str, Any]:
    """What a trial records about the process that runs it (`trial` guards against copies in retries)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "key": _worker_key(), "trial": trial_number}


INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "interrupted (Ctrl-C or SIGTERM); rerun the same command to resume"
"""The fail_reason of a trial stopped by Ctrl-C or SIGTERM."""


def _retry_policy(storage: optuna.storages.BaseStorage) -> Any:
    """The storage's own retry policy (the RetryHeartbeatStaleTrialCallback of `open_storage`), or None for a storage
    without heartbeats: lost, dead and interrupted trials are all re-queued by it, up to `search.max_retry` times."""
    get_retry = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    return get_retry() if get_retry else None


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Re-queue the trials this process was running when it was interrupted (Ctrl-C, SIGTERM), as a lost worker's are
    (the storage's retry policy, `search.max_retry`): the rerun trains the same architecture first instead of
    sampling past it. Returns their numbers."""
    me = (os.getpid(), _worker_key())
    mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if str(t.user_attrs.get("fail_reason", "")).startswith(INTERRUPTED)
            and ((w := t.user_attrs.get("worker") or {}).get("pid"), w.get("key")) == me]
    retry = _retry_policy(study._storage)
    if retry is None:
        return []
    queued = {t.system_attrs.get("failed_trial") for t in study.get_trials(deepcopy=False)}
    requeued = []
    for t in mine:
        if t.number not in queued:  # once: a second interrupt must not queue it again
            retry(study, copy.deepcopy(t))
            requeued.append(t.number)
    return requeued


STOPPED = "stopped the search: "
"""What search.log says after `trial N ` when a trial stopped the whole search (a full disk, the study's database
failing): `fail_lost_trials` takes a dead worker's reason from that line when the study could not record it."""


def _logged_stop(log_file: Path | None, pid: Any, number: int) -> str | None:
    """Why worker `pid` stopped the search during trial `number`, as its line in `log_file` says; None if no line."""
    if log_file is None or not isinstance(pid, int):
        return None
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    worker, said = f"[pid {pid}]", f" trial {number} {STOPPED}"
    for line in reversed(lines):  # the latest: a pid of an earlier boot may have written older lines
        if worker in line and said in line:
            return line.split(said, 1)[1].strip()
    return None


def fail_lost_trials(study: optuna.Study, *, grace_s: float = 120, log_file: Path | None = None) -> list[int]:
    """Fail RUNNING trials whose worker is dead and re-queue them; returns the failed trial numbers.

    Local workers are checked by pid (immediate); others through Optuna's heartbeat grace period.
    A RUNNING trial older than `grace_s` that never recorded its worker is failed too. A dead worker that logged why
    it stopped the search (`STOPPED`, e.g. a full disk, which the study itself could then not record) in `log_file`
    (search.log) gets that reason rather than only that it died.
    """
    storage = study._storage  # Optuna exposes no public setter for another process's trial
    key = _worker_key()
    now = datetime.datetime.now()
    failed: list[FrozenTrial] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker")
        if isinstance(w, dict) and w.get("trial") == t.number:
            if not (key and w.get("key") == key and process_gone(w.get("pid"))):
                continue  # alive, or on another machine: the heartbeat decides
            reason = f"worker {w.get('host')}:{w.get('pid')} died while the trial ran"
            if (logged := _logged_stop(log_file, w.get("pid"), t.number)) is not None:
                # It did not just die: it stopped on an error it could log but not record in the study (the disk full).
                reason = f"{STOPPED}{logged} (from search.log: the worker exited before the study could record it)"
        elif t.datetime_start and (now - t.datetime_start).total_seconds() > grace_s:
            # A live worker records itself first thing; this one died at once (or predates that record).
            reason = "its worker stopped before recording itself"
        else:
            continue
        try:  # another worker may close the same trial first: then it raises and we skip it
            storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                failed.append(storage.get_trial(t._trial_id))
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue
    retry = _retry_policy(storage)  # a dead local worker's trial is retried exactly like a heartbeat-stale one
    for t in failed:
        log.warning("trial %d failed (%s); re-queued unless its retries are used up", t.number, t.user_attrs.get("fail_reason"))
        if retry is not None:
            retry(study, copy.deepcopy(t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # lost workers elsewhere: no heartbeat within grace_s
    return [t.number for t in failed]


def counts(study: optuna.Study) -> tuple[int, int]:
    """(complete, running) trials of the whole study."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def slot_taken(study: optuna.Study, number: int, target: int) -> bool:
    """Whether trial `number` would overshoot `target`: finished trials plus running or waiting trials ahead of it
    (lower numbers, which started or were queued first) already fill it. Waiting ones count: a lost trial's retry (or a
    seed) queued by one worker just after another found the queue empty and made a new trial gets the lower number;
    left out, the new trial ran, and so did the retry once popped (the new one is not ahead of it), one trial more than
    `target` (a rerun with search.n_trials=1 after a killed sweep finished 2)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
    ahead = sum(t.state == TrialState.COMPLETE or t.number < number for t in trials if t.number != number)
    return ahead >= target
