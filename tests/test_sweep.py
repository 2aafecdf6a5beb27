"""A local sweep's process (`python -m nas.search -m hydra/launcher=joblib ...`, nas.sweep): a stop passed on to its
busy workers and waited for, a job's exit status returned rather than raised, a dead worker in one line, no idle worker
left behind. The in-process tests check the pieces; the subprocess ones (slow: a sweep starts two searches) the whole."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from joblib.externals.loky.process_executor import TerminatedWorkerError
from optuna.trial import TrialState, create_trial

import nas.sweep
from nas.sweep import how_it_died, kept_text, run_job, search_workers

ROOT = Path(__file__).resolve().parent.parent
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _child(handler: str, *, signum: int = signal.SIGTERM) -> subprocess.Popen:
    """A child process with `signum`'s `handler` ('catch': a Python handler, as a search worker has; 'default', as an
    idle joblib worker has; 'ignore', as joblib's helpers have), ready once it has printed 'ready'."""
    code = {"catch": f"signal.signal({int(signum)}, lambda *a: sys.exit(0))",
            "default": f"signal.signal({int(signum)}, signal.SIG_DFL)",
            "ignore": f"signal.signal({int(signum)}, signal.SIG_IGN)"}[handler]
    child = subprocess.Popen([sys.executable, "-c", f"import signal, sys, time\n{code}\nprint('ready', flush=True)\n"
                              "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    return child


def test_only_the_workers_busy_with_a_search_are_passed_the_stop():
    # An idle joblib worker (SIGTERM at its default) dies of a SIGTERM, which breaks joblib's executor: it then kills
    # the other workers at once, whatever they were writing. joblib's helpers ignore it. Only a busy worker catches it.
    children = {handler: _child(handler) for handler in ("catch", "default", "ignore")}
    try:
        assert search_workers(pid=os.getpid(), signum=signal.SIGTERM) == [children["catch"].pid]
    finally:
        for child in children.values():
            child.kill()
            child.wait()


def test_sigterm_to_a_sweeps_process_alone_is_passed_on_to_its_local_jobs(tmp_path, monkeypatch, capfd):
    # `kill <pid>` of `python -m nas.search -m hydra/launcher=joblib ...` ended that process (143) and left its joblib
    # workers, its children, searching on as orphans, trial after trial, unseen. Outside a launch (no jobs to wait for)
    # the sweep's SIGTERM handler passes the signal on to its busy children, says so in one line naming Hydra's record
    # of the sweep (as Ctrl-C there does; it did not), then ends as the default action does. (A child stands in for a
    # worker; the handler's own end, a SIGTERM to this process, is recorded instead of sent; it strikes inside Hydra's
    # `sweep`, which holds the sweep's folder.)
    record = tmp_path / "multirun.yaml"
    record.write_text("hydra: {}\n")

    def sweep(sweep_dir: Path) -> None:  # as Hydra's BasicSweeper.sweep names it
        nas.sweep._sweep_stopped(signal.SIGTERM, sys._getframe())

    got = tmp_path / "got"
    worker = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(got)!r}).write_text('SIGTERM'), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "ready\n"
        real_kill, ended, reset = os.kill, [], []

        def kill(pid: int, signum: int) -> None:
            if pid == os.getpid():
                ended.append(signum)
            else:
                real_kill(pid, signum)

        monkeypatch.setattr(os, "kill", kill)
        monkeypatch.setattr(signal, "signal", lambda signum, handler: reset.append((signum, handler)))
        sweep(tmp_path)
        assert worker.wait(30) == 0
    finally:
        worker.kill()
    assert got.read_text() == "SIGTERM"  # the worker was told
    assert ended == [signal.SIGTERM] and reset == [(signal.SIGTERM, signal.SIG_DFL)]  # then it ends as before: 143
    assert capfd.readouterr().err == (f"sweep stopped by SIGTERM (passed on to its search workers, pids {worker.pid}: "
                                      "each stops at its next training step or trial end and writes its files, in "
                                      f"search.log): Hydra's record of the sweep is in {record}, and a search job that "
                                      "had started keeps what it finished (its search.log says how far it got); rerun "
                                      "the same command to resume\n")


def test_sigterm_to_a_sweep_with_no_record_but_busy_workers_says_how_to_resume(monkeypatch, capfd):
    # Where Hydra's record of the sweep is not found (a stop outside its `sweep`) but busy workers were passed the stop,
    # the line read "(passed on to its search workers, pids ...) as it started, before Hydra recorded it; nothing was
    # written": those workers write their files as they stop, and the rerun resumes from them.
    worker = _child("catch")
    real_kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, signum: None if pid == os.getpid() else real_kill(pid, signum))
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    try:
        nas.sweep._sweep_stopped(signal.SIGTERM, None)  # no frame: no record
        assert worker.wait(30) == 0  # told
    finally:
        worker.kill()
    assert capfd.readouterr().err == (f"sweep stopped by SIGTERM (passed on to its search workers, pids {worker.pid}: "
                                      "each stops at its next training step or trial end and writes its files, in "
                                      "search.log); rerun the same command to resume\n")
    # nothing passed on: nothing was written, as before
    assert nas.sweep.sweep_interrupted_text(signal.SIGTERM, record=None) == (
        "sweep stopped by SIGTERM as it started, before Hydra recorded it; nothing was written")


def _in_a_launch(monkeypatch: pytest.MonkeyPatch, *, stop_file: Path) -> tuple["nas.sweep._Launch", list[int]]:
    """The sweep's process as during a joblib launch (`nas.sweep._launch` set), its alarms recorded instead of set and
    its handlers left as they are: the launch, and the alarms' seconds."""
    launch = nas.sweep._Launch(stop_file=stop_file)
    monkeypatch.setattr(nas.sweep, "_launch", launch)
    alarms: list[int] = []
    monkeypatch.setattr(signal, "alarm", alarms.append)
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    return launch, alarms


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["sigterm", "sigusr2"])
def test_a_sweep_stopped_while_its_jobs_run_marks_the_stop_and_waits_for_them(tmp_path, monkeypatch, capfd, signum):
    # During a launch the handler returns instead of ending the process (the sweep ends once its jobs have returned,
    # their files written), after marking the stop for jobs not started yet and setting the bound of its wait; a second
    # SIGTERM ends it at once with the stop's status. SIGUSR2 (SLURM's `--signal=USR2@...` before the time limit,
    # which reaches the sweep's process too) is passed on and waited for alike, and ends the sweep with 140.
    worker = _child("catch", signum=signum)
    (tmp_path / "launch").mkdir()
    launch, alarms = _in_a_launch(monkeypatch, stop_file=tmp_path / "launch" / "stopped")
    exits = []

    def _exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", _exit)
    try:
        nas.sweep._sweep_stopped(signum, None)  # returns: the process goes on, waiting
        assert worker.wait(30) == 0  # told
    finally:
        worker.kill()
    assert launch.stopped_by == signum and launch.stop_file.exists() and alarms == [nas.sweep.WORKERS_WAIT_S]
    assert capfd.readouterr().err == (
        f"sweep stopped by {signum.name} (passed on to its search workers, pids {worker.pid}: each stops at its next "
        f"training step or trial end and writes its files, in search.log); waiting up to {nas.sweep.WORKERS_WAIT_S} s "
        "for them to end (send it again to end at once); rerun the same command to resume\n")
    with pytest.raises(SystemExit):
        nas.sweep._sweep_stopped(signal.SIGTERM, None)
    assert exits == [128 + signum]
    assert capfd.readouterr().err == "sweep: stopped waiting for its workers on a second SIGTERM\n"
    # os._exit skips the launch's TemporaryDirectory cleanup: every stopped sweep left its nas-sweep-* folder behind
    assert not (tmp_path / "launch").exists()


def test_a_sweeps_process_takes_sigusr1_and_sigusr2_as_sigterm(monkeypatch):
    # SLURM's `--signal=USR2@...` (submitit's, or a batch script's without B:) reaches every process of the job, the
    # sweep's too: that one kept `python -m nas.search`'s start-up handler for them, and ended at once with "stopped by
    # SIGUSR2 while starting; nothing was written", its workers left searching without it. Now the sweep takes them as
    # SIGTERM: passed on to its busy workers and waited for (`_sweep_stopped`).
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

    monkeypatch.setattr(JoblibLauncher, "launch", JoblibLauncher.launch)  # install() patches it for good: undone here
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    before = {signum: signal.getsignal(signum) for signum in signums}
    try:
        for signum in (signal.SIGUSR1, signal.SIGUSR2):  # as `python -m nas.search` sets them as it starts
            signal.signal(signum, lambda *a: None)
        nas.sweep.install()
        assert {signum: signal.getsignal(signum) for signum in signums} == dict.fromkeys(signums,
                                                                                          nas.sweep._sweep_stopped)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_job_is_stopped_by_sigusr2_as_by_sigterm_and_leaves_the_sweeps_handler_as_it_was(tmp_path):
    # In the sweep's own process (joblib's n_jobs=1) the job found the sweep's handler for SIGUSR1/SIGUSR2, which only
    # waits for workers: the search went on until the sweep stopped waiting and ended it mid-trial. The job takes them
    # as SIGTERM (`stop_on_sigterm`: its search stops, its files written, 128 + the signal); the sweep's is back after.
    import time

    def stopped(cfg):
        # else the signal below would end pytest (the sweep's handler ends the process outside a launch)
        assert signal.getsignal(signal.SIGUSR2) not in (nas.sweep._sweep_stopped, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(5)  # the handler raises here

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        for signum in before:
            signal.signal(signum, nas.sweep._sweep_stopped)
        assert run_job("a", task_function=stopped, stop_file=str(tmp_path / "stopped"), sweep=os.getpid()) == 140
        assert [signal.getsignal(signum) for signum in before] == [nas.sweep._sweep_stopped] * 2
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_job_returns_its_exit_status_and_leaves_the_workers_signal_handlers_as_they_were(tmp_path):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    ran = []

    def ends(code):
        def task(cfg):
            ran.append(cfg)
            sys.exit(code)
        return task

    stop_file = str(tmp_path / "stopped")
    assert run_job("a", task_function=ends(2), stop_file=stop_file) == 2
    assert run_job("b", task_function=ends(None), stop_file=stop_file) == 0
    assert run_job("c", task_function=ran.append, stop_file=stop_file) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    Path(stop_file).touch()  # the sweep was stopped before this job started: it does not start
    assert run_job("d", task_function=ran.append, stop_file=stop_file) == 143 and ran == ["a", "b", "c"]
    # the launch has ended (a sweep that stopped waiting removed the stop file's folder as it ended): nor does it
    assert run_job("e", task_function=ran.append, stop_file=str(tmp_path / "gone" / "stopped")) == 143
    assert ran == ["a", "b", "c"]


def test_a_job_whose_sweep_ended_meanwhile_ends_its_worker(tmp_path, monkeypatch):
    # An orphan worker (its sweep stopped waiting, or was killed) waited 5 minutes for work nobody would give it.
    parents, exits, ran = iter([100, 1]), [], []
    monkeypatch.setattr(os, "getppid", lambda: next(parents))
    monkeypatch.setattr(os, "_exit", exits.append)
    run_job("a", task_function=lambda cfg: (ran.append(cfg), sys.exit(143)), stop_file=str(tmp_path / "stopped"),
            sweep=100)
    assert exits == [143] and ran == ["a"]
    # a sweep that died before the job started (its stop file's folder left behind): the job does not start
    monkeypatch.setattr(os, "getppid", lambda: 1)
    run_job("b", task_function=ran.append, stop_file=str(tmp_path / "stopped"), sweep=100)
    assert exits == [143, 143] and ran == ["a"]


_WORKER = """
import os, pathlib, sys, time
import nas.sweep

out = pathlib.Path(sys.argv[1])


def task(cfg):
    try:
        print("ready", os.getpid(), flush=True)
        time.sleep(float(sys.argv[2]))
        out.write_text("finished")
    except KeyboardInterrupt as e:  # SIGTERM, as the search takes it (nas.errors.stop_on_sigterm)
        out.write_text(type(e).__name__)
        raise


nas.sweep.run_job(None, task_function=task, stop_file=str(out.parent / "stopped"), sweep=os.getppid())
"""

_SWEEP_OF_ONE_WORKER = f"""
import subprocess, sys, threading

started = []


def start():  # from a thread that ends once the worker's job has started, as joblib's executor may start one
    worker = subprocess.Popen([sys.executable, "-c", {_WORKER!r}, *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
    print(worker.stdout.readline(), end="", flush=True)
    started.append(worker)


thread = threading.Thread(target=start)
thread.start()
thread.join()
sys.exit(started[0].wait())
"""


def _sweep_of_one_worker(out: Path, *, job_s: float) -> tuple[subprocess.Popen, int]:
    """A process standing in for a sweep, and its worker's pid once the worker runs a job of `job_s` seconds (its end
    written to `out`: 'finished', or the KeyboardInterrupt that stopped it)."""
    sweep = subprocess.Popen([sys.executable, "-c", _SWEEP_OF_ONE_WORKER, str(out), str(job_s)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    said = sweep.stdout.readline()
    assert said.startswith("ready "), said
    return sweep, int(said.split()[1])


@pytest.mark.skipif(not (sys.platform.startswith("linux") and nas.sweep.SWEEP_DIED), reason="Linux's PR_SET_PDEATHSIG")
def test_a_worker_whose_sweep_is_killed_outright_stops_its_search_as_on_sigterm(tmp_path):
    # `kill -9` of the sweep's process (or the out-of-memory killer) left its workers searching to the end, alone.
    out = tmp_path / "job"
    sweep, worker = _sweep_of_one_worker(out, job_s=60)
    try:
        sweep.kill()
        sweep.wait(30)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker)
        assert out.read_text() == "Terminated"  # stopped as SIGTERM stops a search: its files written
    finally:
        with contextlib.suppress(OSError):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and nas.sweep.SWEEP_DIED), reason="Linux's PR_SET_PDEATHSIG")
def test_a_search_stopped_because_its_sweep_died_says_so_not_sigterm(tmp_path, capfd):
    # The worker stops as on SIGTERM (its trials kept), but its line said "SIGTERM: stopping the search ...", a signal
    # nobody sent: it names the sweep's death. A real SIGTERM after the job says SIGTERM again.
    from nas.errors import Terminated
    from nas.trials import _interrupts_at_safe_points

    # -1: not its parent; the sweep's folder there, without a stop file: it died unannounced
    with nas.sweep._stops_with_its_sweep(sweep=-1, stop_file=tmp_path / "stopped"), \
            _interrupts_at_safe_points() as stop_if_asked:
        os.kill(os.getpid(), nas.sweep.SWEEP_DIED)  # as the kernel sends it when the sweep's process dies
        time.sleep(0.01)
        with pytest.raises(Terminated):
            stop_if_asked()
    assert capfd.readouterr().err == (
        "the sweep's process died (kill -9, or the out-of-memory killer): stopping the search as on SIGTERM, at its next "
        "training step or trial end (send SIGTERM to stop at once)\n")
    with pytest.raises(Terminated), _interrupts_at_safe_points() as stop_if_asked:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        stop_if_asked()
    assert capfd.readouterr().err.startswith("SIGTERM: stopping the search at its next training step or trial end")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and nas.sweep.SWEEP_DIED), reason="Linux's PR_SET_PDEATHSIG")
def test_a_worker_goes_on_when_the_sweeps_thread_that_started_it_ends(tmp_path):
    # The kernel sends the parent-death signal when the thread that started the worker ends, the sweep alive.
    out = tmp_path / "job"
    sweep, worker = _sweep_of_one_worker(out, job_s=1)
    try:
        assert sweep.wait(30) == 0
    finally:
        sweep.kill()
        with contextlib.suppress(OSError):
            os.kill(worker, signal.SIGKILL)
    assert out.read_text() == "finished"


_WORKER_STOPPING = """
import os, pathlib, signal, sys, time
import nas.sweep

stop_file, out = sys.argv[1], pathlib.Path(sys.argv[2])
sweep = os.getppid()


def task(cfg):
    got = []
    signal.signal(signal.SIGTERM, lambda *a: got.append("SIGTERM"))  # a search's: a stop asked, a second at once
    print("ready", os.getpid(), flush=True)
    deadline = time.monotonic() + 30
    while os.getppid() == sweep and time.monotonic() < deadline:  # stopping: writing its files
        time.sleep(0.01)
    time.sleep(0.5)  # writing on, its sweep gone
    out.write_text(" ".join(got))


nas.sweep.run_job(None, task_function=task, stop_file=stop_file, sweep=sweep)
"""

_SWEEP_STOPPED = f"""
import os, pathlib, signal, subprocess, sys
import nas.sweep

folder = pathlib.Path(sys.argv[1]) / "launch"
folder.mkdir()
nas.sweep._launch = nas.sweep._Launch(stop_file=folder / "stopped")  # as during a joblib launch
worker = subprocess.Popen([sys.executable, "-c", {_WORKER_STOPPING!r}, str(folder / "stopped"), sys.argv[2]],
                          stdout=subprocess.PIPE, text=True)
print(worker.stdout.readline(), end="", flush=True)
nas.sweep._sweep_stopped(signal.SIGTERM, None)  # passed on to the worker; the sweep waits
if sys.argv[3] == "again":
    nas.sweep._sweep_stopped(signal.SIGTERM, None)  # it stops waiting and ends at once (os._exit)
os.kill(os.getpid(), signal.SIGKILL)  # a scheduler killing it after the stop
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and nas.sweep.SWEEP_DIED), reason="Linux's PR_SET_PDEATHSIG")
@pytest.mark.parametrize("end", ["again", "killed"])
def test_a_worker_whose_stopped_sweep_ends_is_not_stopped_a_second_time(tmp_path, end):
    # A stopped sweep that stops waiting (a second SIGTERM, or after WORKERS_WAIT_S) ends with os._exit, or is killed
    # after its stop: the parent-death signal then made its workers, stopping already, send themselves a second SIGTERM,
    # which stops a search at once, wherever it is (inside Optuna, or mid-write), though the sweep's line said they go
    # on alone. The worker now finishes its files, stopped once.
    out = tmp_path / "job"
    sweep = subprocess.Popen([sys.executable, "-c", _SWEEP_STOPPED, str(tmp_path), str(out), end], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = None
    try:
        said = sweep.stdout.readline()
        assert said.startswith("ready "), said
        worker = int(said.split()[1])
        _, err = sweep.communicate(timeout=30)
        assert sweep.returncode == (143 if end == "again" else -signal.SIGKILL), err
        if end == "again":
            assert f"sweep: stopped waiting for its workers on a second SIGTERM (pids {worker} go on alone" in err, err
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker)  # ended with its job, an orphan
    finally:
        sweep.kill()
        with contextlib.suppress(OSError, TypeError):
            os.kill(worker, signal.SIGKILL)
    assert out.read_text() == "SIGTERM"  # the sweep's stop alone


class _Launcher(SimpleNamespace):
    """What `_launch_caring` uses of Hydra's joblib launcher: its task function, its config, and its context's config
    loader (which composes a job's config from its overrides)."""


def _launcher(compose_cfg) -> _Launcher:
    loader = SimpleNamespace(load_sweep_config=lambda config, overrides: compose_cfg(*overrides))
    return _Launcher(task_function=None, config=None, hydra_context=SimpleNamespace(config_loader=loader))


def _in_process(launcher, job_overrides, initial_job_idx):
    """A launch that runs each job here, one after the other, as joblib's workers would."""
    return [JobReturn(status=JobStatus.COMPLETED, _return_value=launcher.task_function(list(o))) for o in job_overrides]


def test_a_sweep_ends_with_a_jobs_nonzero_status_once_every_job_has_ended(compose_cfg, capfd):
    # A job's `sys.exit(n)` (its `error:` line) raised in the sweep's process made joblib kill the other workers at once;
    # returned, the others end as they would, and the sweep then ends with the first nonzero status.
    ran = []

    def task(overrides):
        ran.append(overrides)
        if overrides == ["search.worker=0"]:
            print("error: the first job's line", file=sys.stderr)
            sys.exit(2)

    launcher = _launcher(compose_cfg)
    launcher.task_function = task
    with pytest.raises(SystemExit) as ended:
        nas.sweep._launch_caring(_in_process, launcher, [["search.worker=0"], ["search.worker=1"]], 0)
    assert ended.value.code == 2 and ran == [["search.worker=0"], ["search.worker=1"]]
    assert launcher.task_function is task and nas.sweep._launch is None  # as they were
    assert capfd.readouterr().err == "error: the first job's line\n"
    launcher.task_function = lambda overrides: None  # all ended well: the launcher's results, as before
    assert [r.return_value for r in nas.sweep._launch_caring(_in_process, launcher, [["search.worker=0"]], 0)] == [0]


def test_a_sweep_removes_the_folders_of_sweeps_killed_outright_never_a_running_ones(tmp_path, compose_cfg, monkeypatch):
    # A sweep killed with kill -9 (or by the OOM killer) ran no cleanup: its nas-sweep-* folder stayed in the temporary
    # directory for good. Each launch's folder now names its sweep's pid and start time, and the next sweep removes
    # those whose sweep is gone (its pid gone, or reused by a process started later); a running sweep's is kept.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    start = nas.sweep._start_time
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead_start = start(dead.pid)
    dead.kill()
    dead.wait()
    live = _child("catch")
    try:
        folders = {"dead": f"nas-sweep-{dead.pid}-{dead_start}-abc", "live": f"nas-sweep-{live.pid}-{start(live.pid)}-abc",
                   "reused": f"nas-sweep-{os.getpid()}-{int(start(os.getpid())) - 1}-abc", "old": "nas-sweep-k2j4x"}
        for name in folders.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "stopped").touch()
        seen = []
        launcher = _launcher(compose_cfg)
        launcher.task_function = lambda overrides: seen.append(nas.sweep._launch.stop_file.parent)
        nas.sweep._launch_caring(_in_process, launcher, [["search.worker=0"]], 0)
    finally:
        live.kill()
        live.wait()
    assert seen[0].parent == tmp_path and seen[0].name.startswith(f"nas-sweep-{os.getpid()}-{start(os.getpid())}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folders["live"], folders["old"]])
    assert nas.sweep.remove_dead_sweeps_folders(tmp_path) == [tmp_path / folders["live"]]  # ended since


def test_a_dead_worker_ends_the_sweep_in_one_line_saying_what_the_study_keeps(tmp_path, compose_cfg, capfd):
    # joblib's TerminatedWorkerError (a worker killed with -9 or by the OOM killer; joblib kills the others) ended the
    # command in Hydra's 40-line traceback.
    def dies(launcher, job_overrides, initial_job_idx):
        raise TerminatedWorkerError("A worker process managed by the executor was unexpectedly terminated. [...]\n\nThe "
                                    "exit codes of the workers are {SIGKILL(-9)}\nDetailed tracebacks [...]")

    overrides = [[f"search.runs_dir={tmp_path}", "search.study_name=t", f"search.worker={w}"] for w in (0, 1)]
    launcher = _launcher(compose_cfg)
    launcher.task_function = lambda cfg: None
    with pytest.raises(SystemExit) as ended:
        nas.sweep._launch_caring(dies, launcher, overrides, 0)
    assert ended.value.code == 1 and not (tmp_path / "t").exists()  # nothing made to count from
    assert capfd.readouterr().err == (
        "error: a search worker of the sweep was killed (SIGKILL: kill -9, or the out-of-memory killer: check dmesg), "
        "and joblib stopped its other workers with it; no trial of the study had finished, so nothing is lost: rerun "
        "the same command to resume (the trials they were running are run again)\n")
    (tmp_path / "t").mkdir()
    study = optuna.create_study(study_name="t", storage=f"sqlite:///{tmp_path / 't' / 'study.db'}",
                                directions=["maximize", "minimize"])
    for value in (0.5, 0.6):
        study.add_trial(create_trial(values=[value, 1.0], params={}, distributions={}))
    study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))
    with pytest.raises(SystemExit):
        nas.sweep._launch_caring(dies, launcher, overrides, 0)
    assert "; the study's 2 finished trials are kept: rerun the same command" in capfd.readouterr().err


def test_a_worker_dead_after_a_stop_ends_the_sweep_with_the_stops_status(tmp_path, compose_cfg, capfd):
    # A stopped sweep whose worker then died (joblib killing the rest) ended with 1, not the stop's 143 or 130: a
    # script or scheduler took the stop it had asked for for a failure.
    for signum in (signal.SIGTERM, signal.SIGINT):
        def dies(launcher, job_overrides, initial_job_idx):
            nas.sweep._launch.stopped_by = signum  # as `_sweep_stopped` marks it
            raise TerminatedWorkerError("A worker process [...] terminated.\nThe exit codes of the workers are "
                                        "{SIGKILL(-9)}\nDetailed tracebacks [...]")

        launcher = _launcher(compose_cfg)
        launcher.task_function = lambda cfg: None
        with pytest.raises(SystemExit) as ended:
            nas.sweep._launch_caring(dies, launcher, [[f"search.runs_dir={tmp_path}", "search.study_name=t"]], 0)
        assert ended.value.code == 128 + signum and nas.sweep._launch is None
        assert capfd.readouterr().err.startswith("error: a search worker of the sweep was killed (SIGKILL")


def test_how_a_worker_died_is_read_from_joblibs_exit_codes():
    said = "A worker process [...] terminated.\nThe exit codes of the workers are {%s}\nDetailed tracebacks [...]"
    assert how_it_died(TerminatedWorkerError(said % "SIGSEGV(-11)")) == "died of SIGSEGV"
    assert how_it_died(TerminatedWorkerError(said % "EXIT(3)")) == "exited with status 3"
    assert how_it_died(TerminatedWorkerError("no codes")) == "died"
    assert kept_text([("sqlite:///a.db", "a"), ("sqlite:///b.db", "b")]) == "the finished trials are kept in the studies"


# --- the whole, with real processes -------------------------------------------------------------------------------

def _sweep(tiny_idx_root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.search", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "search.worker=0,1", f"data.root={tiny_idx_root}", "train=smoke", "train.subset=128", "train.batch_size=32",
            "train.threads=1", f"search.runs_dir={tmp_path}", "search.study_name=t", "search.progress=false",
            "search.export_onnx=false", "compress=none", "final_train=none", *extra]


def _trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    if not (run_dir / "study.db").is_file():
        return []
    try:
        return optuna.load_study(study_name="t", storage=f"sqlite:///{run_dir / 'study.db'}").get_trials()
    except Exception:  # noqa: BLE001 - not created yet, or being created
        return []


def _both_training(proc: subprocess.Popen, run_dir: Path, timeout: float = 240) -> list[int]:
    """The pids of the sweep's two workers, once each trains a trial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        pids = {t.user_attrs["worker"]["pid"] for t in _trials(run_dir)
                if t.state == TrialState.RUNNING and "arch" in t.user_attrs and "worker" in t.user_attrs}
        if len(pids) == 2:
            return sorted(pids)
        time.sleep(0.1)
    raise AssertionError("the two workers never trained at once")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_worker_killed_outright_ends_the_sweep_in_one_line_and_the_rerun_resumes(tiny_idx_root, tmp_path):
    proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        killed, other = _both_training(proc, tmp_path / "t")
        os.kill(killed, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    trials = _trials(tmp_path / "t")
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    assert proc.returncode == 1 and "Traceback" not in err, err
    kept = f"the study's {done} finished trial{' is' if done == 1 else 's are'} kept" if done else \
        "no trial of the study had finished, so nothing is lost"
    assert err.splitlines()[-1] == (
        "error: a search worker of the sweep was killed (SIGKILL: kill -9, or the out-of-memory killer: check dmesg), and "
        f"joblib stopped its other workers with it; {kept}: rerun the same command to resume (the trials they were "
        "running are run again)")
    assert not _alive(other)  # joblib killed it: its trial is left running in the study, for the rerun to find
    left = [t for t in trials if t.state == TrialState.RUNNING]
    assert {t.user_attrs["worker"]["pid"] for t in left} == {killed, other}
    rerun = subprocess.run(_sweep(tiny_idx_root, tmp_path, f"search.n_trials={done + 1}"), cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = _trials(tmp_path / "t")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == done + 1
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for t in left:  # failed as a dead worker's, and queued again
        assert "died while the trial ran" in trials[t.number].user_attrs["fail_reason"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["sigterm", "sigusr2"])
def test_a_stopped_sweep_ends_after_its_workers_have_written_their_files(tiny_idx_root, tmp_path, signum):
    # It ended with 143 at once while its workers were still stopping: a scheduler that kills the process group next
    # cut them mid-write. Now both have ended, their files written, when it ends; and none lingers idle. SIGUSR2
    # (SLURM's warning before the time limit) ended the sweep at once with "stopped by SIGUSR2 while starting; nothing
    # was written" (`python -m nas.search`'s start-up handler), its workers left searching: now it is taken as SIGTERM.
    proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        workers = _both_training(proc, tmp_path / "t")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=nas.sweep.WORKERS_WAIT_S + 60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert not [pid for pid in workers if _alive(pid)]
    assert err.splitlines()[0] == (
        f"sweep stopped by {signum.name} (passed on to its search workers, pids {', '.join(map(str, workers))}: each "
        f"stops at its next training step or trial end and writes its files, in search.log); waiting up to "
        f"{nas.sweep.WORKERS_WAIT_S} s for them to end (send it again to end at once); rerun the same command to resume")
    log = (tmp_path / "t" / "search.log").read_text()
    for pid in workers:  # each wrote its outputs, the last thing a stopped search does
        assert re.search(rf"\[pid {pid}\]\[nas.search\]\[INFO\] - \d+ trials finished", log), log
    assert (tmp_path / "t" / "pareto.json").is_file()
    assert not [t for t in _trials(tmp_path / "t") if t.state == TrialState.RUNNING]  # each queued its trial again


@pytest.mark.slow
def test_workers_a_sweep_stopped_waiting_for_end_with_their_job_not_minutes_later(tiny_idx_root, tmp_path):
    # A second SIGTERM ends the sweep at once; its workers go on stopping alone, and then ended 5 minutes later (joblib
    # keeps an idle worker waiting for more work that long, orphan or not). Now each ends as its job does.
    err_file, temp = tmp_path / "err", tmp_path / "tmp"
    temp.mkdir()
    with open(err_file, "w") as err:  # not a pipe: the workers, outliving the sweep, hold it open
        proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err, text=True, env={**os.environ, "TMPDIR": str(temp)})
    try:
        workers = _both_training(proc, tmp_path / "t")
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while "sweep stopped by SIGTERM" not in err_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        said = err_file.read_text()
        assert "sweep: stopped waiting for its workers on a second SIGTERM (pids " in said, said
        assert not list(temp.glob("nas-sweep-*"))  # its os._exit skipped TemporaryDirectory's cleanup: one left each time
        deadline = time.monotonic() + 120
        while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        proc.kill()
        for pid in workers if "workers" in locals() else ():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    log = (tmp_path / "t" / "search.log").read_text()
    for pid in workers:  # their files written all the same
        assert re.search(rf"\[pid {pid}\]\[nas.search\]\[INFO\] - \d+ trials finished", log), log


@pytest.mark.slow
def test_workers_of_a_sweep_killed_outright_stop_and_write_their_files(tiny_idx_root, tmp_path):
    # `kill -9` of the sweep's process (the out-of-memory killer's way) left its workers training trial after trial.
    err_file = tmp_path / "err"
    with open(err_file, "w") as err:  # not a pipe: the workers, outliving the sweep, hold it open
        proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        workers = _both_training(proc, tmp_path / "t")
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 120
        while [pid for pid in workers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], err_file.read_text()
    finally:
        proc.kill()
        for pid in workers if "workers" in locals() else ():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    log = (tmp_path / "t" / "search.log").read_text()
    for pid in workers:  # each stopped as on SIGTERM: its files written, its trial queued again
        assert re.search(rf"\[pid {pid}\]\[nas.search\]\[INFO\] - \d+ trials finished", log), log
    assert not [t for t in _trials(tmp_path / "t") if t.state == TrialState.RUNNING]


def test_sigint_in_a_sweep_is_passed_on_to_its_workers_as_a_ctrl_c_they_may_have_had(tmp_path, monkeypatch, capfd):
    # `kill -INT <pid>` of a background sweep reached it alone: it waited 60 s and its workers searched on. It is passed
    # on as SWEEP_INTERRUPTED, which a worker takes as Ctrl-C unless the terminal's reached it already (the test below);
    # joblib answered the sweep's KeyboardInterrupt by killing the workers as they wrote their files. Outside a launch:
    # as before.
    with pytest.raises(KeyboardInterrupt):
        nas.sweep._sweep_stopped(signal.SIGINT, None)
    got = tmp_path / "got"
    worker = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)\n"  # busy with a search
        f"signal.signal(signal.SIGINT, lambda *a: pathlib.Path({str(got)!r}).write_text('SIGINT'))\n"
        f"signal.signal({nas.sweep.SWEEP_INTERRUPTED}, lambda *a: (pathlib.Path({str(got)!r}).write_text('passed on'), "
        "sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    launch, alarms = _in_a_launch(monkeypatch, stop_file=tmp_path / "stopped")
    try:
        assert worker.stdout.readline() == "ready\n"
        nas.sweep._sweep_stopped(signal.SIGINT, None)
        assert worker.wait(30) == 0
    finally:
        worker.kill()
    assert got.read_text() == "passed on"  # not a second SIGINT
    assert launch.stopped_by == signal.SIGINT and launch.stop_file.exists() and alarms == [nas.sweep.WORKERS_WAIT_S]
    assert capfd.readouterr().err == (
        f"sweep interrupted (Ctrl-C) (passed on to its search workers, pids {worker.pid}, where it had not reached them: "
        "each stops at its next training step or trial end and writes its files, in search.log); waiting up to "
        f"{nas.sweep.WORKERS_WAIT_S} s for them to end (send it again to end at once); rerun the same command to resume\n")


_WORKER_TAKING_CTRL_C = """
import os, pathlib, signal, sys, time
import nas.sweep

out = pathlib.Path(sys.argv[1])


def task(cfg):
    got = []
    signal.signal(signal.SIGINT, lambda *a: got.append("SIGINT"))  # a search's trials: a stop asked, a second at once
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not got:
        time.sleep(0.01)
    time.sleep(1)  # for a second one
    out.write_text(" ".join(got))


nas.sweep.run_job(None, task_function=task, stop_file=str(out.parent / "stopped"), sweep=os.getppid())
"""


@pytest.mark.skipif(not nas.sweep.SWEEP_INTERRUPTED, reason="real-time signals")
@pytest.mark.parametrize("terminal", [False, True])
def test_a_worker_takes_its_sweeps_sigint_once_whether_or_not_the_terminals_reached_it(tmp_path, terminal):
    # A worker that the terminal's Ctrl-C (or a `kill -INT` of the process group) reached already is not given a second
    # one by its sweep, which would stop its search at once, wherever it was; one it did not reach (`kill -INT <pid>` of
    # the sweep) is given one.
    out = tmp_path / "job"
    worker = subprocess.Popen([sys.executable, "-c", _WORKER_TAKING_CTRL_C, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert worker.stdout.readline() == "ready\n"
        if terminal:
            worker.send_signal(signal.SIGINT)
        worker.send_signal(nas.sweep.SWEEP_INTERRUPTED)  # as the sweep passes its SIGINT on
        assert worker.wait(30) == 0
    finally:
        worker.kill()
    assert out.read_text() == "SIGINT"


_IDLE_WORKER_SIGNALLED = """
import os, signal, sys, time
import nas.sweep

nas.sweep.run_job(None, task_function=lambda cfg: None, stop_file=os.path.join(sys.argv[1], "stopped"),
                  sweep=os.getppid())
# idle again: as the sweep sends them to a worker it read as busy just before its job ended
for signum in (nas.sweep.SWEEP_INTERRUPTED, nas.sweep.SWEEP_DIED):
    print(signum, nas.sweep.catches(pid=os.getpid(), signum=signum), flush=True)
    os.kill(os.getpid(), signum)
    time.sleep(0.05)
print("alive", flush=True)
"""


@pytest.mark.skipif(not nas.sweep.SWEEP_INTERRUPTED, reason="real-time signals")
def test_a_sweeps_signal_sent_as_its_workers_job_ends_leaves_the_idle_worker_alive(tmp_path):
    # The sweep reads which workers catch SWEEP_INTERRUPTED, then sends it: a job ending in between left its worker at
    # the signal's default, which ends the process (a real-time signal), and joblib then killed the other workers
    # mid-write. Leaving a job ignores the sweep's signals instead, which still leaves the idle worker out of those that
    # catch them.
    worker = subprocess.run([sys.executable, "-c", _IDLE_WORKER_SIGNALLED, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (worker.returncode, worker.stdout) == (0, f"{nas.sweep.SWEEP_INTERRUPTED} False\n{nas.sweep.SWEEP_DIED} "
                                                     "False\nalive\n"), worker.stderr


@pytest.mark.slow
def test_ctrl_c_in_a_sweeps_terminal_ends_it_after_its_workers_have_written_their_files(tiny_idx_root, tmp_path):
    # Ctrl-C reaches the whole foreground process group: the sweep and each worker.
    proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = _both_training(proc, tmp_path / "t")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=nas.sweep.WORKERS_WAIT_S + 60)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not [pid for pid in workers if _alive(pid)]
    log = (tmp_path / "t" / "search.log").read_text()
    for pid in workers:  # each wrote its outputs, the last thing a stopped search does
        assert re.search(rf"\[pid {pid}\]\[nas.search\]\[INFO\] - \d+ trials finished", log), log
    assert not [t for t in _trials(tmp_path / "t") if t.state == TrialState.RUNNING]  # each queued its trial again


@pytest.mark.slow
def test_kill_int_of_a_background_sweeps_pid_stops_its_workers_too(tiny_idx_root, tmp_path):
    # `kill -INT <pid>` reaches the sweep's process alone: it waited 60 s for workers that searched on, then left them.
    proc = subprocess.Popen(_sweep(tiny_idx_root, tmp_path, "search.n_trials=50"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = _both_training(proc, tmp_path / "t")
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=nas.sweep.WORKERS_WAIT_S + 60)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert time.monotonic() - started < nas.sweep.WORKERS_WAIT_S and "stopped waiting" not in err, err
    assert f"(passed on to its search workers, pids {', '.join(map(str, workers))}, where it had not reached them" in err
    assert not [pid for pid in workers if _alive(pid)]
    log = (tmp_path / "t" / "search.log").read_text()
    for pid in workers:  # each wrote its outputs, the last thing a stopped search does
        assert re.search(rf"\[pid {pid}\]\[nas.search\]\[INFO\] - \d+ trials finished", log), log
    assert not [t for t in _trials(tmp_path / "t") if t.state == TrialState.RUNNING]  # each queued its trial again
