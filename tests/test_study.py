"""nas.study: storages, lost-worker detection and retries, the study-wide trial count, settings kept in the study."""

import dataclasses
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.config import DataFormat, overridden_keys, to_run_config
from nas.errors import ConfigError, DataError
from nas.search import export_study, run_search
from nas.study import (counts, fail_lost_trials, fingerprint, open_storage, open_study, slot_taken,
                       with_study_settings, worker_info)

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Trials are created with study.ask() here to stand for other processes' trials.
pytestmark = [pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize"),
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


@pytest.fixture
def storage_for(tmp_path, compose_cfg):
    """storage_for(**search options) -> an RDBStorage opened by `open_storage` on a fresh SQLite file."""
    def make(**options):
        overrides = [f"search.storage=sqlite:///{tmp_path / 's.db'}", *(f"search.{k}={v}" for k, v in options.items())]
        return open_storage(to_run_config(compose_cfg(*overrides)), tmp_path)

    return make


def _running_trial(study, *, x=3):
    """A RUNNING trial with param x, as a worker process would leave it."""
    trial = study.ask()
    trial.suggest_int("x", x, x)
    return trial


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_trial_of_a_dead_local_worker_is_failed_and_requeued_with_its_params(storage_for):
    study = optuna.create_study(storage=storage_for(), directions=["maximize", "minimize"])
    dead = _running_trial(study, x=3)
    dead.set_user_attr("worker", {**worker_info(dead.number), "pid": _dead_pid()})
    alive = _running_trial(study, x=4)
    alive.set_user_attr("worker", worker_info(alive.number))  # this very process: alive
    elsewhere = _running_trial(study, x=5)
    elsewhere.set_user_attr("worker", {**worker_info(elsewhere.number), "key": "other-host/boot/pid:[1]", "pid": _dead_pid()})

    assert fail_lost_trials(study) == [dead.number]
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[dead.number].state == TrialState.FAIL
    assert "died while the trial ran" in by_number[dead.number].user_attrs["fail_reason"]
    assert by_number[alive.number].state == by_number[elsewhere.number].state == TrialState.RUNNING  # heartbeat decides
    retries = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert len(retries) == 1 and retries[0].params == {"x": 3}
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retries[0]) == dead.number
    assert fail_lost_trials(study) == []  # idempotent: the trial is closed once and re-queued once


def test_copied_worker_record_of_a_retry_does_not_count_as_its_own(storage_for):
    # A retry copies its failed original's user attributes, worker record included; until the new worker
    # records itself, the copy (which names the original trial's number) must not make it look dead.
    study = optuna.create_study(storage=storage_for(), directions=["maximize", "minimize"])
    t = _running_trial(study)
    t.set_user_attr("worker", {**worker_info(t.number - 1), "pid": _dead_pid()})
    assert fail_lost_trials(study) == [] and study.get_trials()[0].state == TrialState.RUNNING


def _heartbeats_recorded_earlier(storage: optuna.storages.RDBStorage, *, seconds: float) -> None:
    """Move every heartbeat in `storage` `seconds` back, as if that long had passed since each was recorded."""
    import datetime

    from optuna.storages._rdb.models import TrialHeartbeatModel
    from sqlalchemy.orm import Session

    with Session(storage.engine) as session:
        beats = session.query(TrialHeartbeatModel).all()
        assert beats
        for beat in beats:
            beat.heartbeat -= datetime.timedelta(seconds=seconds)
        session.commit()


def test_trial_without_heartbeat_for_the_grace_period_is_failed_and_retried(storage_for):
    storage = storage_for(heartbeat_s=1, grace_s=2, max_retry=1)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    t = _running_trial(study, x=7)
    t.set_user_attr("worker", {**worker_info(t.number), "key": "another-machine"})
    storage.record_heartbeat(t._trial_id)  # then its machine is lost: no more heartbeats
    fail_lost_trials(study)
    assert study.get_trials()[0].state == TrialState.RUNNING  # within the grace period
    _heartbeats_recorded_earlier(storage, seconds=3.2)  # 3.2 s without one, not waited for
    fail_lost_trials(study)
    states = [(x.state, x.params) for x in study.get_trials()]
    assert states == [(TrialState.FAIL, {"x": 7}), (TrialState.WAITING, {"x": 7})]


def test_retries_stop_after_max_retry(storage_for):
    study = optuna.create_study(storage=storage_for(max_retry=1), directions=["maximize", "minimize"])
    for _ in range(2):  # the original dies, then its only retry dies too
        t = study.ask()
        t.suggest_int("x", 3, 3)
        t.set_user_attr("worker", {**worker_info(t.number), "pid": _dead_pid()})
        fail_lost_trials(study)
    assert [x.state for x in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]


def test_slot_taken_gives_priority_to_earlier_running_trials(storage_for):
    study = optuna.create_study(storage=storage_for(), directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("a", 0, 1), 1.0), n_trials=2)
    first, second = study.ask(), study.ask()
    assert counts(study) == (2, 2)
    assert not slot_taken(study, first.number, 3) and slot_taken(study, second.number, 3)
    assert not slot_taken(study, second.number, 4)
    assert slot_taken(study, first.number, 2)


def test_slot_taken_counts_a_waiting_trial_queued_ahead_of_a_new_one(storage_for):
    # A lost trial's retry queued (WAITING, the lower number) by one worker just after another worker found the queue
    # empty and made a new trial: the new trial ran, then the retry once popped, one more than search.n_trials.
    study = optuna.create_study(storage=storage_for(), directions=["maximize", "minimize"])
    study.enqueue_trial({"a": 0.5})  # the retry, queued first: the lower number
    waiting = study.get_trials(deepcopy=False)[0]
    # the other worker's new trial, made as ask() makes one after reading the queue empty just before (RUNNING)
    storage = study._storage  # noqa: SLF001 - the storage the study was opened on
    trial_id = storage.create_new_trial(storage.get_study_id_from_name(study.study_name))
    new = storage.get_trial(trial_id)
    assert new.state == TrialState.RUNNING and new.number > waiting.number
    assert study.get_trials(deepcopy=False)[0].state == TrialState.WAITING
    assert slot_taken(study, new.number, 1)  # the retry is ahead in line: the new trial stands aside
    assert not slot_taken(study, new.number, 2)


def test_unreachable_storage_is_one_line_without_the_password(tmp_path, compose_cfg, tiny_idx_root):
    url = "postgresql://nas:s3cret@127.0.0.1:1/nas"
    cfg = compose_cfg(f"data.root={tiny_idx_root}", f"search.runs_dir={tmp_path}", f"search.storage={url}")
    with pytest.raises(ConfigError) as err:
        run_search(cfg)
    message = str(err.value)
    assert message.startswith("search.storage='postgresql://nas:***@127.0.0.1:1/nas' cannot be opened")
    assert "s3cret" not in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # nothing written for a storage that does not open


def test_a_study_database_its_disk_refuses_stops_the_search_as_a_failed_write_not_a_bad_setting(tmp_path, tiny_idx_root):
    # study.db could not grow (a full disk, a file over the size limit: SQLite's "disk I/O error", "database or disk is
    # full") as the search opened it: refused as the setting, "search.storage=... cannot be opened", exit status 2.
    script = ("import resource, runpy, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"  # Optuna's tables take more
              "sys.argv = ['nas.search', *sys.argv[1:]]\n"
              "runpy.run_module('nas.search', run_name='__main__', alter_sys=True)\n")
    done = subprocess.run([sys.executable, "-c", script, f"data.root={tiny_idx_root}", f"search.runs_dir={tmp_path}",
                           "search.study_name=f", "search.progress=false", "compress=none", "final_train=none"],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: cannot write the run (the study database: disk I/O error); no trial had finished, so nothing is lost: "
        "fix that (free space, the run folder's permissions or entries, the database server) and rerun the same "
        "command"), done.stderr


def test_report_is_rebuilt_from_the_study_with_its_own_settings(tiny_idx_root, tmp_path, compose_cfg):
    base = [f"data.root={tiny_idx_root}", "train=smoke", "train.subset=128", "train.batch_size=32", "train.threads=1",
            f"search.runs_dir={tmp_path}", "search.study_name=s", "search.progress=false", "compress=none", "final_train=none",
            "search.export_onnx=false"]
    run_search(compose_cfg(*base, "hw=mobile_cpu", "search.n_trials=2"))
    run_dir = tmp_path / "s"
    for name in ("trials.csv", "pareto.json", "report.html"):
        (run_dir / name).unlink()
    # hw is not repeated: the study's own settings (mobile_cpu) are used, and nothing is trained
    result = export_study(compose_cfg(*base))
    assert result.n_complete == 2 and (run_dir / "report.html").is_file()
    assert '"hw": "mobile_cpu"' in (run_dir / "pareto.json").read_text()
    assert len(list((run_dir / "trials").glob("*.pt"))) == 2

    with pytest.raises(ConfigError, match="search.study_name='nope' is not in .*; studies there: s"):
        export_study(compose_cfg(*base[:-4], "search.study_name=nope", f"search.storage=sqlite:///{run_dir / 'study.db'}"))
    with pytest.raises(ConfigError, match="holds no weights"):
        export_study(compose_cfg(*base, f"search.storage=sqlite:///{run_dir / 'study.db'}", f"search.runs_dir={tmp_path / 'elsewhere'}"))


def _open_together(args):
    url, barrier = args
    from hydra import compose, initialize_config_dir

    from conftest import CONF_DIR
    from nas.config import register_configs
    from nas.search import make_sampler
    from nas.study import open_study

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        run = to_run_config(compose(config_name="search", overrides=[f"search.storage={url}", "search.study_name=race"]))
    barrier.wait()
    study = open_study(run, open_storage(run, Path("/nonexistent")), make_sampler(run))
    return study.study_name


@pytest.fixture(scope="module")
def four_workers():
    """Four spawned worker processes and a manager (for their barrier), started once for both backends: each start
    imports the toolkit anew, seconds of a loaded machine's time."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        yield pool, manager


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_starting_together_on_a_fresh_database_all_join(backend, tmp_path, request, four_workers):
    # Workers racing to create Optuna's tables in an empty database: the losers retry and join.
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        import psycopg

        base = request.getfixturevalue("postgres_url")
        name = f"fresh_{tmp_path.name[-20:].lower().replace('-', '_')}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = base.rsplit("/", 1)[0] + f"/{name}"
    pool, manager = four_workers
    barrier = manager.Barrier(4)
    # chunksize 1: one task to each worker, which all wait at the barrier and then open the study together
    assert pool.map(_open_together, [(url, barrier)] * 4, chunksize=1) == ["race"] * 4


@pytest.mark.parametrize(
    ("raised", "joins"),
    [("relation \"studies\" already exists", True),  # PostgreSQL's DuplicateTable: another worker made the tables
     ("permission denied for schema public", False)],  # a real error stays final
)
def test_table_creation_race_reported_as_programming_error_is_retried(raised, joins, storage_for, monkeypatch):
    # CI once saw the PostgreSQL race surface as DuplicateTable (a ProgrammingError), not a duplicate key.
    from sqlalchemy.exc import ProgrammingError

    real, calls = optuna.storages.RDBStorage, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ProgrammingError("CREATE TABLE studies ...", {}, Exception(raised))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    if joins:
        assert isinstance(storage_for(), real) and len(calls) == 2
    else:
        with pytest.raises(ConfigError, match="cannot be opened: .*permission denied"):
            storage_for()
        assert len(calls) == 1


def test_study_from_before_train_precision_resumes_as_the_float32_it_was(tmp_path, compose_cfg, tiny_idx_root):
    """A study created before `train.precision` existed stored no such key; it trained in float32."""
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    run = to_run_config(compose_cfg(*base, "train.precision=fp32"))
    storage = open_storage(run, tmp_path)
    study = open_study(run, storage, optuna.samplers.RandomSampler())
    for attr in ("config", "settings"):
        old = study.user_attrs[attr]
        for key in ("precision", "max_shift", "erase_prob"):  # none of these existed then
            del old["train"][key]
        study.set_user_attr(attr, old)
    open_study(run, storage, optuna.samplers.RandomSampler())  # float32 now too: joins
    assert with_study_settings(run, study).train.precision.value == "fp32"
    bf16 = to_run_config(compose_cfg(*base, "train.precision=bf16"))
    with pytest.raises(ConfigError, match="was created with other train settings"):
        open_study(bf16, storage, optuna.samplers.RandomSampler())


@pytest.mark.parametrize(("key", "value", "message"), [
    ("stratify", True, r"data\.stratify: false then, true now"),  # held-out splits were random draws
    ("background", 255, r"data\.background: null then, 255 now"),  # transparency was dropped
])
def test_study_from_before_a_data_setting_resumes_only_with_what_it_did_then(tmp_path, compose_cfg, tiny_idx_root,
                                                                             key, value, message):
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    run = to_run_config(compose_cfg(*base))
    storage = open_storage(run, tmp_path)
    study = open_study(run, storage, optuna.samplers.RandomSampler())
    for attr in ("config", "settings"):
        old = study.user_attrs[attr]
        del old["data"][key]  # the setting did not exist then
        study.set_user_attr(attr, old)
    assert run.data.stratify is False and run.data.background is None  # Fashion-MNIST's group: what older code did
    open_study(run, storage, optuna.samplers.RandomSampler())
    # (the setting changed directly: on these idx files data.background is refused before any study is opened)
    changed = dataclasses.replace(run, data=dataclasses.replace(run.data, **{key: value}))
    with pytest.raises(ConfigError, match=message):
        open_study(changed, storage, optuna.samplers.RandomSampler())


def test_a_refusal_for_other_settings_names_the_group_file_that_holds_the_studys(tmp_path, compose_cfg, tiny_idx_root):
    # A study searched with train=smoke, rerun with train=default: the refusal listed the fields that differ but not the
    # one thing to type, train=smoke.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    storage = open_storage(to_run_config(compose_cfg(*base)), tmp_path)
    study = open_study(to_run_config(compose_cfg(*base, "train=smoke")), storage, optuna.samplers.RandomSampler())
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    with pytest.raises(ConfigError) as e:
        open_study(to_run_config(compose_cfg(*base, "train=default")), storage, optuna.samplers.RandomSampler())
    assert str(e.value).endswith(
        "(train.batch_size: 64 then, 128 now; train.subset: 512 then, null now); rerun with the same ones to resume "
        "(train=smoke: the study's train settings), or pass a new search.study_name=...")
    # one name per group whose settings are a file's: another chip too
    with pytest.raises(ConfigError, match=r"to resume \(hw=edge_npu train=smoke: the study's hw and train settings\), or"):
        open_study(to_run_config(compose_cfg(*base, "hw=cpu", f"search.study_name={study.study_name}")), storage,
                   optuna.samplers.RandomSampler())
    # settings no file holds (train=smoke with 2 epochs): nothing to name
    epochs = [f"search.study_name={study.study_name}-2", "train=smoke"]
    open_study(to_run_config(compose_cfg(*base, *epochs, "train.epochs=2")), storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError) as e:
        open_study(to_run_config(compose_cfg(*base, *epochs)), storage, optuna.samplers.RandomSampler())
    assert str(e.value).endswith("(train.epochs: 2 then, 1 now); no trial of it has finished, so nothing is lost: pass a "
                                 "new search.study_name=..., or rerun with the same ones to resume")
    # data=imagefolder's file leaves data.root required (which the study does not record): it is named all the same
    from nas.study import _presets_of

    run = to_run_config(compose_cfg(*base))
    folder = dataclasses.replace(run.data, name="imagefolder", format=DataFormat.imagefolder, img_size=32, stratify=True,
                                 max_shift=2)
    assert _presets_of(fingerprint(dataclasses.replace(run, data=folder)), run, ["data"]) == ["data=imagefolder"]


def test_a_refusal_naming_the_group_file_names_the_overrides_of_its_keys_to_drop(tmp_path, compose_cfg, tiny_idx_root):
    # A study searched with train=smoke, rerun with train=smoke train.lr=0.01: the refusal said "(train=smoke: ...)",
    # which the command already said, not that train.lr=0.01 was what to drop.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}", "train=smoke"]
    storage = open_storage(to_run_config(compose_cfg(*base)), tmp_path)
    study = open_study(to_run_config(compose_cfg(*base)), storage, optuna.samplers.RandomSampler())
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    # train.threads (a speed setting) and train.epochs=1 (smoke's own value) keep nothing from resuming: not named
    given = ["train.lr=0.01", "train.threads=1", "train.epochs=1", "train.precision=fp32"]
    with pytest.raises(ConfigError) as e:
        open_study(to_run_config(compose_cfg(*base, *given)), storage, optuna.samplers.RandomSampler(),
                   overridden=overridden_keys([*base, *given]))
    assert str(e.value).endswith(
        "rerun with the same ones to resume (train=smoke without train.lr=0.01 train.precision=fp32: the study's train "
        "settings), or pass a new search.study_name=...")
    # overrides the caller does not name (a Python caller's composed config) are not guessed at
    with pytest.raises(ConfigError, match=r"to resume \(train=smoke: the study's train settings\), or"):
        open_study(to_run_config(compose_cfg(*base, *given)), storage, optuna.samplers.RandomSampler())
    # run_search hands open_study the command line's keys
    with pytest.raises(ConfigError, match=r"to resume \(train=smoke without train.lr=0.01 train.precision=fp32: the"):
        run_search(compose_cfg(*base, *given, f"search.runs_dir={tmp_path / 'runs'}"), overridden=overridden_keys(given))


def test_study_resumes_under_other_speed_settings_and_names_the_values_that_block_it(tmp_path, compose_cfg, tiny_idx_root):
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    storage = open_storage(to_run_config(compose_cfg(*base)), tmp_path)
    study = open_study(to_run_config(compose_cfg(*base)), storage, optuna.samplers.RandomSampler())
    # Two 1-thread workers after one 2-thread process, the allocator setting off, another eval batch: same learning.
    speed = ["train.threads=1", "train.keep_freed_memory=false", "train.eval_batch_size=64", "train.channels_last=false"]
    faster = to_run_config(compose_cfg(*base, *speed))
    # (an image cache set directly: on these idx files data.cache_dir is refused before any study is opened)
    open_study(dataclasses.replace(faster, data=dataclasses.replace(faster.data, cache_dir=str(tmp_path / "cache"))),
               storage, optuna.samplers.RandomSampler())
    # A fingerprint stored by an older version still held the thread count: it joins too.
    old = study.user_attrs["config"]
    old["train"].update(threads=2, keep_freed_memory=True, eval_batch_size=512)
    study.set_user_attr("config", old)
    open_study(to_run_config(compose_cfg(*base, "train.threads=1")), storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError, match=r"other train settings \(train\.epochs: 1 then, 2 now; train\.lr: 0\.003 then, "
                                          r"0\.01 now\); .*rerun with the same ones"):
        open_study(to_run_config(compose_cfg(*base, "train.epochs=2", "train.lr=0.01")), storage, optuna.samplers.RandomSampler())
    # Another chip differs in a dozen datasheet numbers: its name comes first, and the line stays short.
    with pytest.raises(ConfigError) as e:
        open_study(to_run_config(compose_cfg(*base, "hw=cpu", f"search.study_name={study.study_name}")), storage,
                   optuna.samplers.RandomSampler())
    assert re.search(r'other hw settings \(hw\.name: "edge_npu" then, "cpu" now; .*; and \d+ more\)', str(e.value))
    assert str(e.value).count(" then, ") == 6


def test_a_worker_that_joins_a_study_being_created_checks_the_creators_settings(tmp_path, compose_cfg, tiny_idx_root):
    # Workers started together (python -m nas.search -m hydra/launcher=joblib ...): one creates the study and, a moment
    # later, records its settings. A worker with other settings that looked in between found no record, wrote its own
    # over the creator's, and both searched one study with different recipes.
    import threading

    from nas.study import fingerprint

    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    creator, other = to_run_config(compose_cfg(*base)), to_run_config(compose_cfg(*base, "train.lr=0.01"))
    storage = open_storage(creator, tmp_path)
    made = optuna.create_study(study_name=creator.search.study_name, storage=storage, directions=["maximize", "minimize"])
    recording = threading.Timer(0.5, made.set_user_attr, ("config", fingerprint(creator)))
    recording.start()
    try:
        with pytest.raises(ConfigError, match=r"other train settings \(train\.lr: 0\.003 then, 0\.01 now\)"):
            open_study(other, storage, optuna.samplers.RandomSampler())
    finally:
        recording.join()
    assert made.user_attrs["config"] == fingerprint(creator)
    open_study(creator, storage, optuna.samplers.RandomSampler())  # the same settings join
    # A creator that died before its record: after the wait, the joiner's settings become the record.
    orphan = optuna.create_study(study_name="orphan", storage=storage, directions=["maximize", "minimize"])
    open_study(dataclasses.replace(other, search=dataclasses.replace(other.search, study_name="orphan")), storage,
               optuna.samplers.RandomSampler(), wait_s=0.2)
    assert orphan.user_attrs["config"] == fingerprint(other)


def test_workers_that_create_a_study_together_with_other_images_are_not_mixed(tmp_path, compose_cfg, tiny_idx_root):
    # Workers started together under one study name with the same settings but other images (another data.root): the
    # creator recorded its data only after its settings, so a worker that joined in between found no data record and
    # wrote its own; the study then held trials scored on two val sets (or refused its own creator).
    import threading

    run = to_run_config(compose_cfg(f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"))
    made = {"classes": ["a", "b"], "input": [1, 28, 28], "images": {"train": 90, "val": 10, "test": 20}}
    grown = {**made, "images": {"train": 99, "val": 11, "test": 22}}
    outcome: dict[str, str] = {}

    def worker(name: str, identity: dict) -> None:
        storage = open_storage(run, tmp_path)  # each worker its own connection, as separate processes have
        write = storage.set_study_user_attr

        def slowly(*args):  # a remote database: each attribute written a moment after the last
            time.sleep(0.3)
            write(*args)
        storage.set_study_user_attr = slowly
        try:
            open_study(run, storage, optuna.samplers.RandomSampler(), data=identity)
            outcome[name] = "joined"
        except ConfigError as e:
            outcome[name] = str(e)

    threads = [threading.Thread(target=worker, args=args) for args in (("made", made), ("grown", grown))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one created the study and keeps it; the other is refused, naming the images, instead of being mixed in
    assert sorted(outcome) == ["grown", "made"] and list(outcome.values()).count("joined") == 1, outcome
    (winner,) = [name for name, said in outcome.items() if said == "joined"]
    (refused,) = [said for said in outcome.values() if said != "joined"]
    assert "was made with other images (train/val/test images: " in refused
    study = optuna.load_study(study_name=run.search.study_name, storage=open_storage(run, tmp_path))
    assert study.user_attrs["data"] == {"made": made, "grown": grown}[winner]


def test_a_worker_with_other_search_settings_is_refused_naming_each_value(tmp_path, compose_cfg, tiny_idx_root):
    # Workers of one study each pass their own search.* settings (README, Many workers). Nothing compared them: a worker
    # with another seed, budget or sampler searched the same study with its own, trials trained and judged two ways.
    from nas.study import fingerprint, search_record

    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}", "train.epochs=2"]
    run = to_run_config(compose_cfg(*base, "search.latency_budget_ms=0.5"))
    storage = open_storage(run, tmp_path)
    study = open_study(run, storage, optuna.samplers.RandomSampler())
    assert study.user_attrs["search"]["latency_budget_ms"] == 0.5 and study.user_attrs["search"]["sampler"] == "tpe"
    # What concerns one worker may differ: its own total of trials, index, time limit, retries, seeds, files.
    open_study(to_run_config(compose_cfg(*base, "search.latency_budget_ms=0.5", "search.n_trials=40", "search.worker=3",
                                         "search.timeout_s=60", "search.max_retry=0", "search.export_onnx=false",
                                         "search.seed_archs=[convformer-S]", "search.population_size=4")),  # not TPE's
               storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError, match=re.escape(
            "study 'metaformer_t-edge_npu-fashion_mnist' was created with other search settings (search.latency_budget_ms: "
            "0.5 then, 1.0 now, which decided the candidates trained: those over it never were, so only a tighter budget "
            "can follow); every worker of a study searches with the same ones: pass search.latency_budget_ms=0.5, or a new "
            "search.study_name=...")):
        open_study(to_run_config(compose_cfg(*base, "search.latency_budget_ms=1.0")), storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError) as e:  # a resumed run is held to them too: its seed would retrain the same archs otherwise
        open_study(to_run_config(compose_cfg(*base, "search.seed=1", "search.sampler=nsga2", "search.early_stop.enabled=true")),
                   storage, optuna.samplers.RandomSampler())
    said = str(e.value)
    assert "\n" not in said and "search.n_startup_trials" not in said and "search.population_size" not in said
    for part in ("search.seed: 0 then, 1 now", "search.latency_budget_ms: 0.5 then, null now", "search.sampler: tpe then, nsga2 now",
                 "search.early_stop.enabled: false then, true now",
                 "pass search.seed=0 search.latency_budget_ms=0.5 search.sampler=tpe search.early_stop.enabled=false, or a new"):
        assert part in said
    assert study.user_attrs["search"] == search_record(run)  # the refused workers wrote nothing
    # A tighter budget keeps every result and only drops members: accepted, and the study's budget from then on.
    tight = to_run_config(compose_cfg(*base, "search.latency_budget_ms=0.4"))
    open_study(tight, storage, optuna.samplers.RandomSampler())
    assert study.user_attrs["search"] == search_record(tight)
    with pytest.raises(ConfigError, match=r"was searched with other search settings \(search.latency_budget_ms: 0.4 then "
                                          r"\(a later run's, tighter than the 0.5 the study was created with\), 0.5 now"):
        open_study(run, storage, optuna.samplers.RandomSampler())
    # A study from before the record takes the search settings of its next run as its own.
    old = to_run_config(compose_cfg(*base, "search.study_name=old", "search.seed=3"))
    optuna.create_study(study_name="old", storage=storage, directions=["maximize", "minimize"]).set_user_attr(
        "config", fingerprint(old))
    open_study(old, storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError, match=r"search.seed: 3 then, 0 now"):
        open_study(to_run_config(compose_cfg(*base, "search.study_name=old")), storage, optuna.samplers.RandomSampler())


def test_a_budget_a_later_run_tightened_is_not_said_to_be_the_one_the_study_was_created_with(tmp_path, compose_cfg,
                                                                                             tiny_idx_root):
    # A study created with no budget, tightened to 0.31 by a later run, refused a run at 0.5 saying it "was created with
    # other search settings (search.latency_budget_ms: 0.31 then, ...)": it was created with none.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    storage = open_storage(to_run_config(compose_cfg(*base)), tmp_path)
    open_study(to_run_config(compose_cfg(*base)), storage, optuna.samplers.RandomSampler())
    for budget in ("0.4", "0.31"):  # tightened twice: the study was created with none all the same
        open_study(to_run_config(compose_cfg(*base, f"search.latency_budget_ms={budget}")), storage,
                   optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError) as e:
        open_study(to_run_config(compose_cfg(*base, "search.latency_budget_ms=0.5")), storage, optuna.samplers.RandomSampler())
    said = str(e.value)
    assert "created with other" not in said and said.startswith(
        "study 'metaformer_t-edge_npu-fashion_mnist' was searched with other search settings (search.latency_budget_ms: "
        "0.31 then (a later run's, tighter than the null the study was created with), 0.5 now, "), said
    assert "pass search.latency_budget_ms=0.31, or a new search.study_name=..." in said
    # a study whose budget no run tightened was created with it, and says so
    other = [*base, "search.study_name=other", "search.latency_budget_ms=0.4"]
    open_study(to_run_config(compose_cfg(*other)), storage, optuna.samplers.RandomSampler())
    with pytest.raises(ConfigError, match=re.escape("was created with other search settings (search.latency_budget_ms: "
                                                    "0.4 then, null now,")):
        open_study(to_run_config(compose_cfg(*other[:-1])), storage, optuna.samplers.RandomSampler())


def test_an_efficiency_written_out_at_its_default_resumes_the_study(tmp_path, compose_cfg, tiny_idx_root):
    # mobile_cpu's file left efficiency.add out (1.0 by default) and now writes `add: 1.0`: the same predictions, so a
    # study made before resumes; another value does not.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}", "hw=mobile_cpu"]
    run = to_run_config(compose_cfg(*base))
    assert run.hw.efficiency["add"] == 1.0
    storage = open_storage(run, tmp_path)
    without = {k: v for k, v in run.hw.efficiency.items() if k != "add"}
    study = open_study(dataclasses.replace(run, hw=dataclasses.replace(run.hw, efficiency=without)), storage,
                       optuna.samplers.RandomSampler())
    open_study(run, storage, optuna.samplers.RandomSampler())
    slower = dataclasses.replace(run.hw, efficiency={**run.hw.efficiency, "add": 0.5})
    with pytest.raises(ConfigError, match="hw.efficiency"):
        open_study(dataclasses.replace(run, hw=slower), storage, optuna.samplers.RandomSampler())
    assert study.study_name == run.search.study_name


def test_a_study_made_before_its_profile_recorded_the_measured_inputs_resumes(tmp_path, compose_cfg, tiny_idx_root):
    # The shipped calibrated profiles gained measured_inputs (no refit, the same predictions): their studies resume.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}", "hw=cpu"]
    run = to_run_config(compose_cfg(*base))
    assert run.hw.measured_inputs
    storage = open_storage(run, tmp_path)
    study = open_study(dataclasses.replace(run, hw=dataclasses.replace(run.hw, measured_inputs=[])), storage,
                       optuna.samplers.RandomSampler())
    assert open_study(run, storage, optuna.samplers.RandomSampler()).study_name == study.study_name


def test_a_study_remembers_its_data_and_refuses_other_images():
    from nas.study import check_data

    study = optuna.create_study(directions=["maximize", "minimize"])
    made = {"classes": ["a", "b"], "input": [1, 28, 28], "images": {"train": 90, "val": 10, "test": 20}}
    check_data(study, made, record=False)  # a report rebuilt from a study without a record: nothing to compare, nothing kept
    assert "data" not in study.user_attrs
    check_data(study, made)  # a new study (or one from before the record) takes the data it runs with as its own
    check_data(study, dict(made))  # the same data moved elsewhere: same classes, shape and counts
    grown = {**made, "images": {"train": 99, "val": 11, "test": 22}}
    with pytest.raises(ConfigError, match=r"other images \(train/val/test images: 90/10/20 then, 99/11/22 now\)"):
        check_data(study, grown)  # images added to the folder: the val accuracies of earlier trials were on others
    with pytest.raises(ConfigError, match=r"other images \(classes: a, b then, a, c now; input: 1x28x28 then, 3x32x32 now\)"):
        check_data(study, {**made, "classes": ["a", "c"], "input": [3, 32, 32]}, record=False)


def test_a_study_refuses_other_images_of_the_same_classes_and_counts():
    from nas.study import check_data

    made = {"classes": ["a", "b"], "input": [1, 28, 28], "images": {"train": 90, "val": 10, "test": 20},
            "digests": {"train": "t1", "val": "v1", "test": "s1"}}
    study = optuna.create_study(directions=["maximize", "minimize"])
    check_data(study, made)
    check_data(study, dict(made))  # the same images (moved, or cached)
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))  # a scored trial
    other = {**made, "digests": {"train": "t2", "val": "v2", "test": "s1"}}  # another folder of the same make-up
    with pytest.raises(ConfigError, match=r"other images \(the same classes and image counts, but the train and val images' "
                                          r"content differs, as their digests show\), and its trials'") as err:
        check_data(study, other)
    inner = str(err.value).split("other images (", 1)[1].split("), and its trials'")[0]
    assert "(" not in inner and ")" not in inner  # no bracket inside the refusal's own
    with pytest.raises(ConfigError, match=r"but the train, val and test images' content differs"):
        check_data(study, {**made, "digests": {"train": "t2", "val": "v2", "test": "s2"}})
    # a study recorded before the digests: the same classes, shape and counts take this run's digests as its own
    old = optuna.create_study(directions=["maximize", "minimize"])
    old.set_user_attr("data", {k: v for k, v in made.items() if k != "digests"})
    check_data(old, made, record=False)  # a report rebuilt from it: nothing recorded
    assert "digests" not in old.user_attrs["data"]
    check_data(old, made)
    assert old.user_attrs["data"] == made
    with pytest.raises(ConfigError, match="but the train and val images. content differs"):
        check_data(old, other)


def test_a_report_from_a_study_takes_the_data_root_given_alone(tmp_path, compose_cfg):
    # README: "If the dataset lives elsewhere on this machine, pass data.root=..." (no data= group: it is the study's)
    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}"]
    made = to_run_config(compose_cfg(*storage, "data=imagefolder", "data.root=/there/images", "data.img_size=45"))
    study = open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    here = with_study_settings(to_run_config(compose_cfg(*storage, "data.root=/here/images")), study)
    assert (here.data.name, here.data.root, here.data.img_size) == ("imagefolder", "/here/images", 45)
    # nothing given: the study's own root; the data group named with a root: that root, as before
    assert with_study_settings(to_run_config(compose_cfg(*storage)), study).data.root == "/there/images"
    named = to_run_config(compose_cfg(*storage, "data=imagefolder", "data.root=/elsewhere"))
    assert with_study_settings(named, study).data.root == "/elsewhere"


def test_a_report_from_a_study_whose_images_moved_says_the_root_is_the_studys_record(tmp_path, compose_cfg):
    # python -m nas.report search.study_name=... of a study whose image folder has moved said only "data.root=/there/images
    # does not exist", a path the user never gave, and not that the command takes data.root=/new/place.
    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}", "search.study_name=photos"]
    made = to_run_config(compose_cfg(*storage, "data=imagefolder", f"data.root={tmp_path / 'there'}"))
    open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    with pytest.raises(DataError) as err:
        export_study(compose_cfg(*storage))
    assert str(err.value) == (f"data.root={tmp_path / 'there'} does not exist: it is where study 'photos' "
                              "recorded its images; if they have moved (or the study was made on another machine), pass "
                              "data.root=/new/place to this command")
    # a root given here is the user's own: its error is the plain one
    with pytest.raises(DataError, match=r"^data.root=\S+elsewhere does not exist; expected root/<class>/"):
        export_study(compose_cfg(*storage, f"data.root={tmp_path / 'elsewhere'}"))


def test_a_study_records_a_relative_data_root_as_the_absolute_folder_its_search_read(tmp_path, compose_cfg, monkeypatch):
    # data.root=images was kept as given: python -m nas.report run from another folder resolved it from there.
    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}", "search.study_name=photos"]
    (tmp_path / "then").mkdir()
    monkeypatch.chdir(tmp_path / "then")
    made = to_run_config(compose_cfg(*storage, "data=imagefolder", "data.root=images", "data.img_size=45"))
    study = open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    monkeypatch.chdir(tmp_path)
    assert with_study_settings(to_run_config(compose_cfg(*storage)), study).data.root == str(tmp_path / "then" / "images")
    # a study that recorded it as given (before 2026-12-05): its error says from where it is relative
    settings = study.user_attrs["settings"]
    settings["data"]["root"] = "images"
    study.set_user_attr("settings", settings)
    with pytest.raises(DataError) as err:
        export_study(compose_cfg(*storage))
    assert str(err.value) == ("data.root=images does not exist here: study 'photos' recorded it relative to the folder its "
                              "search ran in; run this command from that folder, or pass data.root=/its/absolute/place")


def test_a_report_from_a_study_takes_the_chips_mappings_as_the_study_has_them(tmp_path, compose_cfg):
    # A rebuild from a hw=cpu_zen2 study that left hw= out took edge_npu's (the default's) efficiency of relu, bn and
    # add beside cpu_zen2's: pareto.json then said hw.efficiency was changed from its file, and every compressed member
    # was compressed again, its fingerprint holding the chip
    from nas.config import changed_from_file

    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}"]
    made = to_run_config(compose_cfg(*storage, "hw=cpu_zen2"))
    study = open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    rebuilt = with_study_settings(to_run_config(compose_cfg(*storage)), study)
    assert rebuilt.hw.name == "cpu_zen2"
    assert rebuilt.hw.efficiency == made.hw.efficiency and rebuilt.hw.calibration == made.hw.calibration
    assert rebuilt.hw == made.hw
    assert changed_from_file("hw", rebuilt.hw) == []


def test_a_report_from_a_study_judges_its_front_at_the_budget_a_resume_tightened(tmp_path, compose_cfg):
    # A study resumed with search.latency_budget_ms=0.4 dropped its members over 0.4 from the front; nas.report from the
    # study then rebuilt at no budget (the command's default), put them back and wrote pareto.json with no budget.
    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}"]
    made = to_run_config(compose_cfg(*storage, "search.latency_budget_ms=0.5"))
    study = open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    tight = to_run_config(compose_cfg(*storage, "search.latency_budget_ms=0.4"))
    open_study(tight, open_storage(tight, tmp_path), optuna.samplers.RandomSampler())
    report = to_run_config(compose_cfg(*storage))
    assert with_study_settings(report, study).search.latency_budget_ms == 0.4
    assert with_study_settings(tight, study).search.latency_budget_ms == 0.4  # the study's own, given again
    tighter = to_run_config(compose_cfg(*storage, "search.latency_budget_ms=0.3"))  # a report of the members under 0.3
    assert with_study_settings(tighter, study).search.latency_budget_ms == 0.3
    assert study.user_attrs["search"]["latency_budget_ms"] == 0.4  # a report runs no trial: the study keeps its own
    with pytest.raises(ConfigError, match=r"^search.latency_budget_ms=0.5 is looser than the budget of study "
                                          r"'metaformer_t-edge_npu-fashion_mnist' \(0.4\): its candidates over 0.4 ms "
                                          r"were never trained; leave it out, or give a tighter one$"):
        with_study_settings(made, study)


def test_a_worker_refused_for_other_images_leaves_the_study_budget_as_it_was(tmp_path, compose_cfg):
    # The joiner's tighter search.latency_budget_ms was recorded as the study's before its images were compared: the
    # refused worker, which ran nothing, had tightened the budget every other worker then had to follow.
    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}"]
    made = to_run_config(compose_cfg(*storage, "search.latency_budget_ms=0.5"))
    images = {"classes": ["a", "b"], "input": [1, 28, 28], "images": {"train": 90, "val": 10, "test": 20}}
    study = open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler(), data=images)
    tight = to_run_config(compose_cfg(*storage, "search.latency_budget_ms=0.4"))
    other = {**images, "images": {"train": 99, "val": 11, "test": 22}}
    with pytest.raises(ConfigError, match="was made with other images"):
        open_study(tight, open_storage(tight, tmp_path), optuna.samplers.RandomSampler(), data=other)
    assert study.user_attrs["search"]["latency_budget_ms"] == 0.5
    open_study(tight, open_storage(tight, tmp_path), optuna.samplers.RandomSampler(), data=images)  # its own images: joins
    assert study.user_attrs["search"]["latency_budget_ms"] == 0.4


def test_a_report_from_a_study_names_the_settings_given_there_that_the_study_replaced(tmp_path, compose_cfg, tiny_idx_root,
                                                                                       caplog):
    # python -m nas.report search.study_name=... takes hw/space/data/train from the study: a data.test_size=0.3 or hw=...
    # typed there did nothing, and nothing said so (export_study was given no overridden keys).
    import logging

    from nas.config import overridden_keys

    storage = [f"search.storage=sqlite:///{tmp_path / 's.db'}", "search.study_name=photos"]
    made = to_run_config(compose_cfg(*storage, "data=imagefolder", f"data.root={tmp_path / 'there'}", "data.img_size=45"))
    open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())

    def warned(*given, overridden=None):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nas.search"), pytest.raises(DataError):  # its images are not there
            export_study(compose_cfg(*storage, *given),
                         overridden=overridden_keys(given) if overridden is None else overridden)
        return [r.getMessage() for r in caplog.records if r.name == "nas.search"]

    assert warned("hw=mobile_cpu", "data.test_size=0.3", "data.img_size=45", "train.epochs=5") == [
        "data.test_size=0.3, hw=mobile_cpu, train.epochs=5 are not used: a report from a study takes hw/space/data/train "
        "from the study, and study 'photos' has data.test_size=0.2, hw=edge_npu, train.epochs=1; leave them out"]
    assert warned("space.stem_strides=[1,2]")[0].startswith("space.stem_strides=[1, 2] is not used: ")
    # the study's own values (a worker's command line repeated), this machine's data.root, or no keys named: nothing
    assert warned("hw=edge_npu", "data=imagefolder", "data.img_size=45", f"data.root={tmp_path / 'here'}") == []
    assert warned("data.test_size=0.3", overridden=()) == []

    # a split size of data with that split of its own, at its default (the study's): warned as nas.search warns it
    idx = [f"search.storage=sqlite:///{tmp_path / 'idx.db'}", "search.study_name=idx", f"data.root={tiny_idx_root}",
           f"search.runs_dir={tmp_path / 'runs'}", "final_train=none", "compress=none"]
    made = to_run_config(compose_cfg(*idx))
    open_study(made, open_storage(made, tmp_path), optuna.samplers.RandomSampler())
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        export_study(compose_cfg(*idx, "data.val_size=0.1"), overridden=overridden_keys(["data.val_size=0.1"]))
    assert not [r for r in caplog.records if "not used" in r.getMessage()]  # val_size is used: idx files have no val split
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        export_study(compose_cfg(*idx, "data.test_size=0.2"), overridden=overridden_keys(["data.test_size=0.2"]))
    assert [r.getMessage() for r in caplog.records if "not used" in r.getMessage()] == [
        "data.test_size=0.2 is not used: data=fashion_mnist has its own test split (100 images) from its idx files; leave it out"]


def test_the_file_a_profiles_fitted_numbers_were_read_from_is_not_in_the_fingerprint(compose_cfg):
    # HardwareProfile gained `fitted` (their file, "" once read): in the fingerprint, every study created before would have
    # refused to resume ("created with other settings").
    from nas.config import to_run_config
    from nas.study import fingerprint

    run = to_run_config(compose_cfg("hw=cpu"))
    assert run.hw.calibration and "fitted" not in fingerprint(run)["hw"]


def test_a_profiles_cross_validated_error_is_not_in_the_fingerprint(compose_cfg):
    # A refit that only adds the record (HardwareProfile gained `cross_validated`, which predicts nothing) leaves every
    # study created before resumable.
    import dataclasses

    from nas.config import to_run_config
    from nas.study import fingerprint

    run = to_run_config(compose_cfg("hw=cpu"))
    record = {"measurements": 50, "folds": 5, "within_10pct": 0.84, "rmspe": 0.0612}
    with_record = dataclasses.replace(run, hw=dataclasses.replace(run.hw, cross_validated=record))
    without = dataclasses.replace(run, hw=dataclasses.replace(run.hw, cross_validated={}))
    assert fingerprint(with_record) == fingerprint(without) and "cross_validated" not in fingerprint(with_record)["hw"]
    # nor does `measured_extent`, the extent of the archs fitted on, added since
    with_extent = dataclasses.replace(run, hw=dataclasses.replace(run.hw, measured_extent={"stages": [4, 4]}))
    assert fingerprint(with_extent) == fingerprint(without) and "measured_extent" not in fingerprint(with_extent)["hw"]


def test_report_from_a_sqlite_file_that_is_not_there_refuses_and_creates_none(tmp_path, compose_cfg):
    # `python -m nas.report search.storage=sqlite:///<a typo>` refused ("not in ...; studies there: none") but left an
    # empty Optuna database of that name behind.
    db = tmp_path / "typo.db"
    with pytest.raises(ConfigError, match=rf"search.storage='sqlite:///{re.escape(str(db))}': no such file; "):
        export_study(compose_cfg(f"search.storage=sqlite:///{db}", "search.study_name=exp1", f"search.runs_dir={tmp_path}"))
    assert list(tmp_path.iterdir()) == []


def _folder_identity(root):
    from nas.config import DataConfig, DataFormat
    from nas.data import data_identity, load_dataset

    return data_identity(load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=8)))


def _images(folder, n, *, seed):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{seed}-{i}.png")


def test_a_refusal_of_changed_images_names_the_classes_that_changed(tmp_path):
    # "made with other images (train/val/test images: 54/6/15 then, 56/6/16 now)" could not tell 3 images added to one
    # class from another folder of the same make-up; the study records each class's counts and a digest of its images.
    import shutil

    from nas.study import check_data

    for c, name in enumerate(("cat", "dog", "owl", "yak")):
        _images(tmp_path / "a" / name, 20, seed=c)
    study = optuna.create_study(directions=["maximize", "minimize"])
    made = _folder_identity(tmp_path / "a")
    check_data(study, made)
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))  # a scored trial
    _images(tmp_path / "a" / "cat", 3, seed=10)  # 3 images added to one class: the others' are the same files
    with pytest.raises(ConfigError) as err:
        check_data(study, _folder_identity(tmp_path / "a"), record=False)
    said = str(err.value)
    assert re.search(r"other images \(train/val/test images: [\d/]+ then, [\d/]+ now; class 'cat': 20 images in the "
                     r"study, 23 now \(train \d+( -> \d+)?, val \d+( -> \d+)?, test \d+( -> \d+)?\)\), and its trials'",
                     said), said
    for other in ("dog", "owl", "yak"):
        assert other not in said  # their images moved between the splits (the draw follows the counts), nothing more
    # a class renamed, one added, one's images replaced by as many others
    shutil.rmtree(tmp_path / "a" / "cat")
    _images(tmp_path / "a" / "cat", 20, seed=0)
    (tmp_path / "a" / "owl").rename(tmp_path / "a" / "owls")
    _images(tmp_path / "a" / "emu", 12, seed=11)
    shutil.rmtree(tmp_path / "a" / "yak")
    _images(tmp_path / "a" / "yak", 20, seed=12)
    with pytest.raises(ConfigError, match=r"other images \(train/val/test images: 58/6/16 then, 67/7/18 now; class 'owl' "
                                          r"is now 'owls'; class 'yak': as many images as in the study \(20\), other ones; "
                                          r"class 'emu' is new \(12 images\)\), and its trials'"):
        check_data(study, _folder_identity(tmp_path / "a"), record=False)
    # another folder altogether: the class lists say it
    for c, name in enumerate(("red", "blue")):
        _images(tmp_path / "b" / name, 20, seed=20 + c)
    with pytest.raises(ConfigError, match=r"other images \(classes: cat, dog, owl, yak then, blue, red now; "):
        check_data(study, _folder_identity(tmp_path / "b"), record=False)


def test_a_refusal_of_a_photo_deleted_from_a_class_leads_with_the_class_total(tmp_path):
    # One photo of 'sneaker' deleted (40 -> 39) was refused as "class 'sneaker': 4 val images in the study, 3 now": the
    # held-out draw took the one fewer from val, a split the user never touched. The clause leads with the class's
    # images then and now, each split's count after it.
    from nas.study import check_data

    for c, name in enumerate(("boot", "sneaker")):
        _images(tmp_path / "a" / name, 40, seed=c)
    study = optuna.create_study(directions=["maximize", "minimize"])
    check_data(study, _folder_identity(tmp_path / "a"))
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    (tmp_path / "a" / "sneaker" / "1-0.png").unlink()
    with pytest.raises(ConfigError) as err:
        check_data(study, _folder_identity(tmp_path / "a"), record=False)
    said = str(err.value)
    assert re.search(r"; class 'sneaker': 40 images in the study, 39 now \(train \d+( -> \d+)?, val \d+( -> \d+)?, "
                     r"test \d+( -> \d+)?\)\), and its trials'", said), said
    assert said.count("->") == 1 and "boot" not in said  # one split lost the image; the other class is the same files


def test_a_study_from_before_the_class_summary_keeps_its_refusal_and_takes_the_summary_when_resumed(tmp_path):
    from nas.study import check_data

    for c, name in enumerate(("cat", "dog")):
        _images(tmp_path / "a" / name, 10, seed=c)
    made = _folder_identity(tmp_path / "a")
    old = optuna.create_study(directions=["maximize", "minimize"])
    old.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))  # a scored trial
    old.set_user_attr("data", {k: v for k, v in made.items() if k != "per_class"})  # recorded before the class summary
    _images(tmp_path / "a" / "cat", 3, seed=10)
    grown = _folder_identity(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"other images \(train/val/test images: 14/2/4 then, 16/2/5 now\), and its "):
        check_data(old, grown)  # nothing to name the class by: the message of before
    assert "per_class" not in old.user_attrs["data"]
    check_data(old, made, record=False)  # the same images, a report: nothing written
    assert "per_class" not in old.user_attrs["data"]
    check_data(old, made)  # the same images resumed: the study takes their summary, and names the class next time
    assert old.user_attrs["data"] == made
    with pytest.raises(ConfigError, match=r"14/2/4 then, 16/2/5 now; class 'cat': 10 images in the study, 13 now "
                                          r"\(train 7 -> 9, val 1, test 2 -> 3\)\)"):
        check_data(old, grown)


def test_a_study_made_before_nas_folders_were_skipped_is_refused_naming_them(tmp_path, monkeypatch):
    # A Synology's @eaDir/ (and a USB disk's $RECYCLE.BIN/ ...) were read as images, one at the root as a class, until
    # 2026-12-07: a study of such a folder was refused "resume with the data it was made with", which no data.root gives
    import nas.image_folder
    from nas.config import DataConfig, DataFormat
    from nas.study import check_data

    for c, name in enumerate(("cat", "dog")):
        _images(tmp_path / "a" / name, 10, seed=c)
    _images(tmp_path / "a" / "cat" / "@eaDir" / "0-0.png", 2, seed=5)  # its thumbnails
    with monkeypatch.context() as before:
        before.setattr(nas.image_folder, "SYSTEM_FOLDERS", frozenset())
        made = _folder_identity(tmp_path / "a")
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    study.set_user_attr("data", made)
    now, cfg = _folder_identity(tmp_path / "a"), DataConfig(format=DataFormat.imagefolder, root=str(tmp_path / "a"))
    with pytest.raises(ConfigError) as err:
        check_data(study, now, images_from=cfg)
    said = str(err.value)
    assert said.endswith("; resume with the data it was made with (data.root may move), or pass a new "
                         "search.study_name=...; data.root holds @eaDir/ (cat/@eaDir/), a folder a NAS or a USB "
                         "disk adds, whose images were read until 2026-12-07 and are skipped since: made before then, it "
                         "cannot be resumed on any data.root"), said
    assert "and its trials' val accuracies were scored on them" in said
    assert "class 'cat': 12 images in the study, 10 now" in said and "\n" not in said
    with pytest.raises(ConfigError, match=r"; pass the data settings its search used; data\.root holds @eaDir/ .*"
                                          r"\('@eaDir' was a class\): made before then, its images cannot be read "
                                          r"again$"):
        _images(tmp_path / "a" / "@eaDir", 2, seed=6)  # at the root, a class then
        check_data(study, now, images_from=cfg, fix="pass the data settings its search used")
    # a folder without them: the refusal as before
    _images(tmp_path / "b" / "cat", 3, seed=7)
    with pytest.raises(ConfigError, match=r"\), and its trials' val accuracies were scored on them; resume with the data"):
        check_data(study, now, images_from=DataConfig(format=DataFormat.imagefolder, root=str(tmp_path / "b")))


def test_nas_folders_are_named_only_in_refusals_they_can_explain(tmp_path, monkeypatch):
    # A Synology share has @eaDir/ in every folder: a study refused for another data.img_size, or for other split
    # settings, was told it "cannot be resumed on any data.root", though the size or split given back resumes it
    import nas.image_folder
    from nas.config import DataConfig, DataFormat
    from nas.data import data_identity, load_dataset
    from nas.study import check_data

    for c, name in enumerate(("cat", "dog")):
        _images(tmp_path / name, 10, seed=c)
        _images(tmp_path / name / "@eaDir" / "0-0.png", 2, seed=5 + c)
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8)
    made = data_identity(load_dataset(cfg))

    def refusal(identity, *, finished):
        study = optuna.create_study(directions=["maximize", "minimize"])
        if finished:
            study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
        study.set_user_attr("data", made)
        with pytest.raises(ConfigError) as err:
            check_data(study, identity, images_from=cfg)
        return str(err.value)

    resized = data_identity(load_dataset(dataclasses.replace(cfg, img_size=12)))
    assert "@eaDir" not in refusal(resized, finished=True)
    resplit = data_identity(load_dataset(dataclasses.replace(cfg, val_size=0.3)))
    assert "@eaDir" not in refusal(resplit, finished=True)
    # made before they were skipped (each class had their images): named, and the refusal for a study without a
    # finished trial keeps its own advice
    with monkeypatch.context() as before:
        before.setattr(nas.image_folder, "SYSTEM_FOLDERS", frozenset())
        made = data_identity(load_dataset(cfg))
    said = refusal(data_identity(load_dataset(cfg)), finished=False)
    assert "; no trial of it has finished, so nothing is lost: pass a new search.study_name=..., or resume with " in said
    assert said.endswith("@eaDir/ (2 folders, e.g. cat/@eaDir/), folders a NAS or a USB disk adds, whose images were "
                         "read until 2026-12-07 and are skipped since: made before then, it cannot be resumed on any "
                         "data.root"), said


def test_the_nas_folders_note_names_each_kind_follows_linked_folders_and_stops_at_each_ones_first_image(tmp_path,
                                                                                                     monkeypatch):
    # It named the first system folder below data.root alone: a share with @eaDir/ in every class folder and a #recycle/
    # of deleted photos in one was told of @eaDir/ only. Each kind is named, counted; a linked class folder is entered,
    # as the loader reads it; each system folder is looked into up to its first image (a share of a million photos)
    import nas.image_folder
    from nas.config import DataConfig, DataFormat
    from nas.data import system_folders_note

    _images(tmp_path / "elsewhere" / "bird" / "@eaDir" / "0-0.png", 2, seed=1)
    _images(tmp_path / "root" / "cat", 2, seed=2)
    _images(tmp_path / "root" / "cat" / "#recycle", 2, seed=5)
    (tmp_path / "root" / "bird").symlink_to(tmp_path / "elsewhere" / "bird")
    _images(tmp_path / "root" / "dog" / "@eaDir" / "0-0.png", 2, seed=3)
    (tmp_path / "root" / "dog" / "lost+found").mkdir()  # no images in it: not named
    looked: list = []
    real = nas.image_folder.is_image_file
    monkeypatch.setattr(nas.image_folder, "is_image_file", lambda p: looked.append(p) or real(p))
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "root"))
    assert system_folders_note(cfg) == (
        "data.root holds @eaDir/ (2 folders, e.g. bird/@eaDir/) and #recycle/ (cat/#recycle/), folders a NAS or a USB "
        "disk adds, whose images were read until 2026-12-07 and are skipped since")
    # the first image of each, and no other file
    assert sorted(p.parent.name for p in looked) == ["#recycle", "0-0.png", "0-0.png"], looked
    assert {p.parts[-4] for p in looked if p.parent.name == "0-0.png"} == {"bird", "dog"}
    # one folder alone, at the root: named without a count, as the class it was
    _images(tmp_path / "usb" / "cat", 1, seed=6)
    _images(tmp_path / "usb" / "$RECYCLE.BIN", 1, seed=7)
    assert system_folders_note(dataclasses.replace(cfg, root=str(tmp_path / "usb"))) == (
        "data.root holds $RECYCLE.BIN/, a folder a NAS or a USB disk adds, whose images were read until 2026-12-07 and "
        "are skipped since ('$RECYCLE.BIN' was a class)")
    # a link cycle in a folder without them ends
    _images(tmp_path / "plain" / "a", 1, seed=4)
    (tmp_path / "plain" / "a" / "loop").symlink_to(tmp_path / "plain")
    assert system_folders_note(dataclasses.replace(cfg, root=str(tmp_path / "plain"))) is None


def test_a_refusal_of_changed_images_before_any_trial_finished_says_nothing_is_lost(tmp_path):
    # Ctrl-C before the first trial finished, a photo added, the same command: "... and its trials' val accuracies were
    # scored on them", though none was. The refusal stays (a worker may be training on the study's images), and says
    # that a new study name loses nothing.
    from nas.study import check_data

    for c, name in enumerate(("cat", "dog")):
        _images(tmp_path / "a" / name, 10, seed=c)
    study = optuna.create_study(directions=["maximize", "minimize"])
    check_data(study, _folder_identity(tmp_path / "a"))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # the interrupted one
    _images(tmp_path / "a" / "cat", 1, seed=10)
    grown = _folder_identity(tmp_path / "a")
    with pytest.raises(ConfigError) as err:
        check_data(study, grown)
    said = str(err.value)
    assert said.endswith("); no trial of it has finished, so nothing is lost: pass a new search.study_name=..., or "
                         "resume with the data it was made with (data.root may move)"), said
    assert "scored on them" not in said
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    with pytest.raises(ConfigError, match=r"\), and its trials' val accuracies were scored on them; resume with"):
        check_data(study, grown)


def test_a_study_with_no_finished_trial_refused_for_other_settings_says_nothing_is_lost(tmp_path, compose_cfg,
                                                                                        tiny_idx_root):
    # A search whose every candidate diverged at train.lr=0.9 stops and asks for a fix; the rerun with train.lr=3e-3 was
    # refused as if trials were at stake ("rerun with the same ones to resume"), though the study held none finished.
    base = [f"search.storage=sqlite:///{tmp_path / 's.db'}", f"data.root={tiny_idx_root}"]
    storage = open_storage(to_run_config(compose_cfg(*base)), tmp_path)
    study = open_study(to_run_config(compose_cfg(*base, "train.lr=0.9")), storage, optuna.samplers.RandomSampler())
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    fixed = to_run_config(compose_cfg(*base, "train.lr=3e-3"))
    with pytest.raises(ConfigError) as err:
        open_study(fixed, storage, optuna.samplers.RandomSampler())
    assert str(err.value) == (
        "study 'metaformer_t-edge_npu-fashion_mnist' was created with other train settings (train.lr: 0.9 then, "
        "0.003 now); no trial of it has finished, so nothing is lost: pass a new search.study_name=..., or rerun with "
        "the same ones to resume")
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]))
    with pytest.raises(ConfigError, match=r"now\); rerun with the same ones to resume, or pass a new search.study_name"):
        open_study(fixed, storage, optuna.samplers.RandomSampler())
