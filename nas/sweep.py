"""The process of a local sweep (`python -m nas.search -m hydra/launcher=joblib ...`), which searches nothing itself: its
launcher runs the search jobs in worker processes, its children (joblib's loky executor). What it adds to that launcher:

* **A stop waits for the workers.** SIGTERM (or SIGUSR1/SIGUSR2, a scheduler's warning before its time limit) to the
  sweep's process is passed on to the workers busy with a job (each stops as a search does: its trial queued again,
  its files written), and the sweep waits up to `WORKERS_WAIT_S` for them to end before it ends with 143 (138, 140),
  so that a scheduler killing the process group next cuts no file in half; after SIGINT (Ctrl-C, which the terminal
  gives every worker itself, or `kill -INT`: passed on to the workers it has not reached) it waits as well and ends
  with 130. A job the launcher would start after the stop returns at once instead of starting a search.
* **A worker's exit status comes back as a value.** A job's `sys.exit(n)` (an `error:` line, a stop) raised in the
  sweep's process made joblib kill the other workers at once, whatever they were writing: it is returned instead, and
  the sweep ends, once every job has, with the first job's nonzero status (the stop's 128 + signal after a stop).
* **A dead worker is one line.** A worker killed outright (`kill -9`, the out-of-memory killer) makes joblib kill the
  others and raise `TerminatedWorkerError`, which Hydra printed as a 40-line traceback: it is one `error:` line naming
  how the worker ended and the study's finished trials, which the rerun keeps, and exit status 1 (the stop's 128 + signal
  where the sweep had been stopped).
* **No idle worker lingers.** joblib keeps its workers waiting for more work for 5 minutes, as orphans where the sweep
  has ended: the executor's workers are shut down as the sweep ends, and a worker whose sweep ended during its job (it
  stopped waiting, or was killed) ends with that job.
* **No worker searches on alone.** A sweep's process killed outright (`kill -9`, the out-of-memory killer) left its
  workers searching to the end: each stops its search as on SIGTERM (Linux: `SWEEP_DIED`). The temporary folder it
  left (no cleanup ran) is removed by the next sweep (`remove_dead_sweeps_folders`).

`install()` puts these in place; `python -m nas.search` calls it for a sweep, before Hydra starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterable, Iterator, Sequence

from nas.errors import PREEMPTION_SIGNALS, interrupting_signal, interruption_text, stop_on_sigterm

WORKERS_WAIT_S = 60
"""How long a stopped sweep waits for its workers to write their files and end before it ends without them (they go on
alone): a search stops at its next training step, and writes its files in seconds."""

SWEEP_DIED = getattr(signal, "SIGRTMIN", 0)
"""The signal the kernel sends a worker busy with a job whose sweep's process died (Linux's PR_SET_PDEATHSIG, set as the
job starts): the worker then stops its search as on SIGTERM. A real-time signal, which nothing else sends (0 where the
system has none): it also comes when the thread of the sweep that started the worker ends (joblib's executor starts
workers from its own thread too), the sweep alive, so the worker checks its parent before it stops; and as a stopped
sweep ends, the worker then stopping already (`_stops_with_its_sweep` tells the two apart)."""

SWEEP_INTERRUPTED = SWEEP_DIED + 1 if SWEEP_DIED else 0
"""The signal a sweep interrupted (SIGINT: Ctrl-C, `kill -INT`) sends its workers busy with a job: each takes it as
Ctrl-C unless a SIGINT reached it already. The terminal's Ctrl-C reaches every process of the foreground job itself,
and so does a `kill -INT` of the process group (`kill -INT %1`), but a `kill -INT <pid>` of the sweep reaches it
alone; the sweep cannot tell which it got, and a second SIGINT stops a search at once, wherever it is."""


@dataclass
class _Launch:
    """The jobs a sweep's process is running through its launcher: where a stop is marked for the jobs not started yet,
    and the signal that stopped it (None while it runs)."""

    stop_file: Path
    stopped_by: int | None = None


_launch: _Launch | None = None  # the launch in progress; None outside one (before it, after it, or another launcher)

SWEEP_DIED_TEXT = "the sweep's process died (kill -9, or the out-of-memory killer)"
"""What a worker's stop line names in place of SIGTERM where its sweep died (`sweep_died`)."""

_sweep_died = False  # set in a worker as its sweep's death stops it: its stop line says so (`sweep_died`)


def sweep_died() -> bool:
    """Whether this process is a sweep's worker whose sweep's process died during its job (kill -9, the out-of-memory
    killer): the SIGTERM it then sends itself stops the search, whose line names that instead of SIGTERM."""
    return _sweep_died


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, read from /proc (Linux); [] where /proc cannot be read."""
    children = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after the command's name, which may hold spaces and parens
        if len(fields) > 1 and fields[1] == str(pid).encode():
            children.append(int(entry))
    return sorted(children)


def catches(*, pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (/proc/<pid>/status's SigCgt mask; False where it
    cannot be read). A sweep's busy workers catch SIGTERM (the search's handler); its idle workers (`run_job` restores
    their default) and joblib's helpers (which ignore it) do not."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return False
    found = re.search(r"^SigCgt:\s*([0-9a-fA-F]+)$", status, re.MULTILINE)
    return found is not None and bool(int(found.group(1), 16) >> (signum - 1) & 1)


def search_workers(*, pid: int, signum: int) -> list[int]:
    """The children of `pid` that take `signum` as a search does: the workers running a search job. An idle joblib
    worker dies of a SIGTERM and breaks the executor (joblib then kills the others mid-write), so it is left out."""
    return [child for child in child_pids(pid) if catches(pid=child, signum=signum)]


def sweep_record(frames: Iterable[FrameType]) -> Path | None:
    """The record Hydra's sweeper writes of a sweep (`<hydra.sweep.dir>/multirun.yaml`), found among the `frames` of the
    code a stop struck (an interrupt's traceback, or a signal handler's stack) inside its `sweep` (its local
    `sweep_dir`, set as the sweep starts), where that file is there; None where the stop struck before the sweep began
    (or in a sweeper that names no such local)."""
    # Hydra's private names: BasicSweeper.sweep and its local sweep_dir, as in hydra-core 1.3.8 (pyproject.toml's pin).
    # A Hydra that renames them makes this None, and the line then says "nothing was written" beside Hydra's record:
    # test_ctrl_c_in_a_sweep_after_hydra_recorded_it_says_where_in_one_line (tests/test_search.py) fails on that.
    for frame in frames:
        sweep_dir = frame.f_locals.get("sweep_dir") if frame.f_code.co_name == "sweep" else None
        if isinstance(sweep_dir, Path) and (sweep_dir / "multirun.yaml").is_file():
            return sweep_dir / "multirun.yaml"
    return None


def sweep_interrupted_text(signum: signal.Signals, *, record: Path | None, passed: str = "") -> str:
    """The one line of a sweep (`python -m nas.search -m ...`) that Ctrl-C or SIGTERM stopped outside its search jobs
    (which say their own), as Hydra composed, recorded or launched them: where Hydra's `record` of the sweep
    (multirun.yaml) is, which 'nothing was written' would deny, or that nothing was written before it (None); `passed`
    says to which processes the stop was passed on, if any: search workers that write their files as they stop, so
    that without a record the line says how to resume rather than that nothing was written."""
    said = f"sweep {interruption_text(stopped_by=signum)}{passed}"
    if record is None:
        return f"{said}; rerun the same command to resume" if passed else \
            f"{said} as it started, before Hydra recorded it; nothing was written"
    return (f"{said}: Hydra's record of the sweep is in {record}, and a search job that had started keeps what it "
            "finished (its search.log says how far it got); rerun the same command to resume")


def _sweep_stopped(signum: int, frame: Any) -> None:
    """SIGTERM's handler in a sweep's process, and SIGUSR1's and SIGUSR2's (`nas.errors.PREEMPTION_SIGNALS`): the jobs
    its launcher runs on this machine (`hydra/launcher=joblib`: worker processes) are its children, which a `kill` of
    its pid alone left running as orphans, training trial after trial. It passes the signal on to the workers busy with
    a job, says so in one line, and, during a joblib launch, returns to wait for them (`_launch_caring`), up to
    `WORKERS_WAIT_S` (a second SIGTERM: at once); outside one it ends as the default action would (143; 138, 140). Jobs
    that are not its children (SLURM's) get nothing from it. SIGINT (Ctrl-C): `_interrupted`."""
    launch = _launch
    if launch is not None and launch.stopped_by is not None:  # asked twice: the user will not wait
        _stop_waiting(signum, frame)
    if signum == signal.SIGINT:
        _interrupted(launch)
        return
    if launch is not None:  # first: a job starting between the two steps finds the mark, or is among the workers
        with contextlib.suppress(OSError):
            os.close(os.open(launch.stop_file, os.O_CREAT | os.O_WRONLY, 0o600))
    workers = search_workers(pid=os.getpid(), signum=signum)
    for pid in workers:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.kill(pid, signum)
    passed = f" (passed on to its search workers, pids {', '.join(map(str, workers))}: each stops at its next training " \
        "step or trial end and writes its files, in search.log)" if workers else ""
    if launch is None:  # where Hydra's record of the sweep is, as after Ctrl-C there
        record = sweep_record(f for f, _ in traceback.walk_stack(frame)) if frame is not None else None
        os.write(2, f"{sweep_interrupted_text(signal.Signals(signum), record=record, passed=passed)}\n".encode())
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    said = f"sweep {interruption_text(stopped_by=signal.Signals(signum))}"
    launch.stopped_by = signum
    waits = f"; waiting up to {WORKERS_WAIT_S} s for them to end (send it again to end at once)" if workers else ""
    os.write(2, f"{said}{passed}{waits}; rerun the same command to resume\n".encode())
    signal.signal(signal.SIGALRM, _stop_waiting)
    signal.alarm(WORKERS_WAIT_S)


def _interrupted(launch: _Launch | None) -> None:
    """Ctrl-C (SIGINT) in a sweep's process. During a joblib launch it is passed on to the busy workers that it has not
    reached already (`SWEEP_INTERRUPTED`: a `kill -INT <pid>` of the sweep reached it alone, and its workers searched
    on), and the sweep waits for them as after SIGTERM: joblib answered Ctrl-C by killing them as they wrote their
    files, and the command ended in a KeyboardInterrupt traceback. Outside one, KeyboardInterrupt as before."""
    if launch is None:
        raise KeyboardInterrupt
    with contextlib.suppress(OSError):  # jobs not started yet do not start
        os.close(os.open(launch.stop_file, os.O_CREAT | os.O_WRONLY, 0o600))
    launch.stopped_by = signal.SIGINT
    workers = search_workers(pid=os.getpid(), signum=signal.SIGTERM)
    told = [pid for pid in workers if SWEEP_INTERRUPTED and catches(pid=pid, signum=SWEEP_INTERRUPTED)]
    for pid in told:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.kill(pid, SWEEP_INTERRUPTED)
    passed = f" (passed on to its search workers, pids {', '.join(map(str, told))}, where it had not reached them: each " \
        "stops at its next training step or trial end and writes its files, in search.log)" if told else ""
    them = "them" if told == workers else f"its search workers (pids {', '.join(map(str, workers))})"
    waits = f"; waiting up to {WORKERS_WAIT_S} s for {them} to end (send it again to end at once)" if workers else ""
    said = f"sweep {interruption_text(stopped_by=signal.SIGINT)}"
    os.write(2, f"{said}{passed}{waits}; rerun the same command to resume\n".encode())
    signal.signal(signal.SIGALRM, _stop_waiting)
    signal.alarm(WORKERS_WAIT_S)


def _stop_waiting(signum: int, frame: Any) -> None:
    """The end of a stopped sweep's wait (SIGALRM after `WORKERS_WAIT_S`, or a second stop): one line naming the workers
    still running, which go on writing their files alone, and the stop's exit status at once (os._exit: joblib's
    cleanup would kill them). os._exit skips the launch's TemporaryDirectory cleanup: the stop file's folder is removed
    here, which also tells a job the launcher would still start that the launch has ended (`run_job`), and a worker
    whose job goes on that the sweep's end is not a death to stop it for (`_stops_with_its_sweep`): it is stopping."""
    launch = _launch
    if launch is not None:  # else every stopped sweep left a nas-sweep-* folder in the temporary directory
        shutil.rmtree(launch.stop_file.parent, ignore_errors=True)
    stopped_by = launch.stopped_by if launch is not None and launch.stopped_by is not None else signum
    left = search_workers(pid=os.getpid(), signum=signal.SIGTERM)
    why = f"after {WORKERS_WAIT_S} s" if signum == signal.SIGALRM else f"on a second {signal.Signals(signum).name}"
    still = f" (pids {', '.join(map(str, left))} go on alone: see search.log for their end)" if left else ""
    os.write(2, f"sweep: stopped waiting for its workers {why}{still}\n".encode())
    os._exit(128 + stopped_by)


def exit_status(code: Any) -> int:
    """The exit status Python gives a process that `sys.exit(code)` ends: 0 for None, the number for an int, 1 for
    anything else (whose text `sys.exit` prints)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@functools.cache
def _prctl() -> Any:
    """libc's prctl (Linux), None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG = 1, 2  # <linux/prctl.h>


def _death_signal() -> int | None:
    """The signal the kernel sends this process when the thread that started it ends (0: none); None where it cannot
    tell (no prctl)."""
    prctl, got = _prctl(), ctypes.c_int(0)
    if prctl is None or prctl(PR_GET_PDEATHSIG, ctypes.addressof(got), 0, 0, 0) != 0:
        return None
    return got.value


def _die_with(signum: int) -> bool:
    """Have the kernel send this process `signum` when the thread that started it ends (0: nothing); whether it
    could."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0


def _idle_handler(handler: Any) -> Any:
    """What a worker leaving a job sets a sweep's signal (`SWEEP_DIED`, `SWEEP_INTERRUPTED`) to: the handler it had
    before the job (`handler`, None where not Python's), but ignored where that was the default. The sweep reads which
    workers catch the signal, then sends it: a job ending in between left its worker at the default, whose action for a
    real-time signal is to end the process, and joblib answered that idle worker's death by killing the others
    mid-write. An ignored signal is not among those caught (/proc's SigCgt), so an idle worker is still left out."""
    return signal.SIG_IGN if handler in (None, signal.SIG_DFL) else handler


@contextlib.contextmanager
def _stops_with_its_sweep(*, sweep: int, stop_file: str | Path) -> Iterator[None]:
    """While a job runs in a worker: where the sweep's process `sweep` dies (kill -9, the out-of-memory killer), which
    left its workers searching to the end, alone, the worker stops its search as on SIGTERM (its trial queued again, its
    files written; its line says the sweep died: `sweep_died`). Not where the sweep had been stopped (its `stop_file`
    is there: the stop was passed on to the worker already) or stopped waiting for its workers (the file's folder is
    gone: `_stop_waiting` removes it as it ends): the worker is stopping as asked, and a second SIGTERM would stop its
    search at once, wherever it is (inside Optuna, or mid-write), where the sweep's line said it goes on alone. Nothing
    where the system cannot (no prctl, no real-time signals) or outside the worker's main thread, which alone takes
    signals. Left as before on leaving, the signal ignored where it was at its default
    (`_idle_handler`): an idle worker that the signal ended would break joblib's executor, whose other workers joblib
    then kills."""
    global _sweep_died

    def died(signum: int, frame: Any) -> None:
        global _sweep_died
        if os.getppid() == sweep:  # a thread of the sweep ended, the one that started this worker
            return
        if os.path.exists(stop_file) or not os.path.isdir(os.path.dirname(stop_file)):  # an end it announced
            return
        _sweep_died = True  # before the SIGTERM, whose handler reads it
        os.kill(os.getpid(), signal.SIGTERM)

    before = _death_signal()
    if before is None:
        yield
        return
    try:
        handler = signal.signal(SWEEP_DIED, died)
    except (ValueError, OSError):  # not the main thread, or no such signal (SWEEP_DIED 0)
        yield
        return
    try:
        _die_with(SWEEP_DIED)
        yield
    finally:
        _die_with(before)
        signal.signal(SWEEP_DIED, _idle_handler(handler))
        _sweep_died = False  # the job's stop line has been said


@contextlib.contextmanager
def _takes_a_passed_ctrl_c() -> Iterator[None]:
    """While a job runs in a worker: `SWEEP_INTERRUPTED` (its sweep's SIGINT, passed on) stops the search as Ctrl-C does,
    with a SIGINT, unless one reached the worker already since the job started. Python's C-level handler writes the
    number of each signal it catches to the wakeup fd as the signal arrives: a pipe here, read when the sweep's comes.
    The terminal's (or the process group's) SIGINT was sent before the sweep could pass its own on, and a process takes
    its pending signals lowest number first, so it is there by then. Nothing where the wakeup fd is taken (an event
    loop's) or outside the main thread; left as before on leaving, the signal ignored where it was at its default
    (`_idle_handler`: the sweep's, sent as the job ended, would end the idle worker)."""
    if not SWEEP_INTERRUPTED:
        yield
        return
    read, write = os.pipe()
    heard: list[int] = []

    def sweep_interrupted(signum: int, frame: Any) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read, 4096):
                heard.extend(chunk)
        current = signal.set_wakeup_fd(write, warn_on_full_buffer=False)  # still ours? (else it cannot tell: nothing)
        signal.set_wakeup_fd(current, warn_on_full_buffer=False)
        if current == write and signal.SIGINT not in heard:
            os.kill(os.getpid(), signal.SIGINT)

    try:
        for fd in (read, write):
            os.set_blocking(fd, False)
        try:
            before = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread, which alone takes signals
            yield
            return
        if before != -1:  # another's (an event loop's): given back, nothing done
            signal.set_wakeup_fd(before)
            yield
            return
        try:
            handler = signal.signal(SWEEP_INTERRUPTED, sweep_interrupted)
            try:
                yield
            finally:
                signal.signal(SWEEP_INTERRUPTED, _idle_handler(handler))
        finally:
            signal.set_wakeup_fd(-1)
    finally:
        os.close(read)
        os.close(write)


def run_job(cfg: Any, *, task_function: Callable[[Any], Any], stop_file: str, sweep: int | None = None) -> int:
    """One job of a local sweep, in its worker process: `task_function(cfg)` (nas.search's `main`), its exit status
    returned (0 when it returns) rather than raised as SystemExit, which joblib answered in the sweep's process by
    killing the other workers. It does not start where the sweep was stopped before it (`stop_file` exists) or its
    launch has ended (`stop_file`'s folder is gone: a sweep that stopped waiting removed it as it ended), and leaves
    SIGINT and SIGTERM as the worker had them, so that an idle worker is not taken for a busy one (`search_workers`).
    SIGUSR1 and SIGUSR2 stop the job as SIGTERM does (`stop_on_sigterm`), also in the sweep's own process (joblib's
    n_jobs=1), where the sweep's handler for them, which only waits for workers, let the search run on; they are put
    back as they were after the job.
    A sweep's process that dies during the job stops it as SIGTERM does (`_stops_with_its_sweep`); where it has ended
    meanwhile (it stopped waiting, or was killed), the worker ends with the job: nobody is left to take its result or
    give it more work, and joblib kept it waiting 5 minutes for that. `sweep`: the pid of the sweep's process (the
    worker's parent as the job starts where None)."""
    sweep = os.getppid() if sweep is None else sweep
    # joblib runs the jobs in the sweep's own process where n_jobs=1: no worker, no sweep to lose
    worker = os.getpid() != sweep
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)}
    status = 0
    try:
        for signum in PREEMPTION_SIGNALS:  # at their default, which `stop_on_sigterm` takes over: not the sweep's
            signal.signal(signum, signal.SIG_DFL)
        stop_on_sigterm()  # before the check: a stop in between is taken as the search takes it
        # before the check too: a sweep that died before it is seen there
        with _stops_with_its_sweep(sweep=sweep, stop_file=stop_file) if worker else contextlib.nullcontext(), \
                _takes_a_passed_ctrl_c() if worker else contextlib.nullcontext():
            if os.path.exists(stop_file) or not os.path.isdir(os.path.dirname(stop_file)) or \
                    (worker and os.getppid() != sweep):
                status = 128 + signal.SIGTERM
            else:
                task_function(cfg)
    except SystemExit as e:
        status = exit_status(e.code)
    except KeyboardInterrupt as e:  # a stop before the search's own handling began
        status = 128 + interrupting_signal(e)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if worker and os.getppid() != sweep:  # an orphan now
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
    return status


def how_it_died(error: BaseException) -> str:
    """How a worker ended, from joblib's TerminatedWorkerError ('The exit codes of the workers are {SIGKILL(-9)}')."""
    codes = [int(c) for c in re.findall(r"\w+\((-?\d+)\)", str(error).rpartition("are {")[2])]
    if not codes:
        return "died"
    code = codes[0]
    if code == -signal.SIGKILL:
        return "was killed (SIGKILL: kill -9, or the out-of-memory killer: check dmesg)"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"died of {signal.Signals(-code).name}"
        return f"died of signal {-code}"
    return f"exited with status {code}"


def finished_trials(*, storage: str, study_name: str) -> int | None:
    """The COMPLETE trials of study `study_name` in `storage` (an Optuna storage URL): 0 where the study (or its SQLite
    file) does not exist yet, None where it cannot be read."""
    try:
        import optuna
        from optuna.trial import TrialState
        from sqlalchemy.engine import make_url

        url = make_url(storage)
        if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
            return 0  # not created: opening it would make an empty file
        rdb = optuna.storages.RDBStorage(storage)
        try:
            study_id = rdb.get_study_id_from_name(study_name)
        except KeyError:
            return 0
        return len(rdb.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)))
    except Exception:  # noqa: BLE001 - a count for a message: without it, the message says less
        return None


def kept_text(studies: Sequence[tuple[str, str]]) -> str:
    """What the studies of a sweep's jobs keep ((storage URL, study name) pairs), for its error line."""
    if len(set(studies)) != 1:
        return "the finished trials are kept in the studies"
    storage, study_name = studies[0]
    n = finished_trials(storage=storage, study_name=study_name)
    if n is None:
        return "the finished trials are kept in the study"
    if n == 0:
        return "no trial of the study had finished, so nothing is lost"
    return f"the study's {n:,} finished trial{' is' if n == 1 else 's are'} kept"


def _studies_of(launcher: Any, job_overrides: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """The (storage URL, study name) of each job, composed as the launcher composes each job's config; [] where one
    cannot be composed."""
    from omegaconf import open_dict

    from nas.config import to_run_config
    from nas.study import storage_url

    studies = []
    try:
        for overrides in job_overrides:
            cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
            if "hydra" in cfg:  # as Hydra gives the job its config: without its own node
                with open_dict(cfg):
                    del cfg["hydra"]
            run = to_run_config(cfg)
            studies.append((storage_url(run, Path(run.search.runs_dir) / run.search.study_name), run.search.study_name))
    except Exception:  # noqa: BLE001 - for a message only
        return []
    return studies


def shut_down_workers() -> None:
    """End the idle worker processes of joblib's executor now: they waited 5 minutes for more work after the sweep, as
    orphans once it had ended (joblib's way, `get_reusable_executor().shutdown(wait=True)`)."""
    from joblib.externals.loky import get_reusable_executor

    with contextlib.suppress(Exception):  # noqa: BLE001 - the sweep's own end matters more
        get_reusable_executor(reuse=True).shutdown(wait=True)


SWEEP_FOLDER_PREFIX = "nas-sweep-"
"""The start of the name of a launch's temporary folder (in `tempfile.gettempdir()`), which holds its stop file:
`nas-sweep-<pid>-<start>-<random>`, the sweep's pid and its start time (/proc/<pid>/stat's, 0 where unknown), so that a
later sweep can tell the folder of one that was killed outright (kill -9, the out-of-memory killer: no cleanup ran) from
that of one still running (`remove_dead_sweeps_folders`)."""


def _start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat's 22nd field), None where it cannot be
    read (gone, or no /proc). With its pid it names one process: a pid is reused, a pid and start time are not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # from the 3rd field on: the command's name may hold spaces and parens
    return fields[19].decode() if len(fields) > 19 else None


def _sweep_alive(pid: int, start: str) -> bool:
    """Whether the sweep that started as process `pid` at `start` (`_start_time`; '0': unknown) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        pass
    now = _start_time(pid)
    return start == "0" or now is None or now == start  # another start: the pid was reused, the sweep is gone


def remove_dead_sweeps_folders(temp: str | Path) -> list[Path]:
    """Remove the launch folders (`SWEEP_FOLDER_PREFIX`) in `temp` that this user's sweeps killed outright left behind:
    those whose sweep's process is gone. A running sweep's folder is kept (its workers read it), and so is one whose
    name carries no pid (from before they did) or another user's. Returns those removed."""
    removed = []
    for folder in Path(temp).glob(f"{SWEEP_FOLDER_PREFIX}*"):
        owner = re.fullmatch(rf"{SWEEP_FOLDER_PREFIX}(\d+)-(\d+)-.+", folder.name)
        try:
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
        except OSError:  # removed meanwhile
            continue
        if owner and mine and not _sweep_alive(int(owner.group(1)), owner.group(2)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _launch_caring(launch: Callable[..., Any], launcher: Any, job_overrides: Sequence[Sequence[str]],
                   initial_job_idx: int) -> Any:
    """The joblib launcher's `launch` (`launch`) with what this module adds (its docstring); ends the process (SystemExit,
    which Hydra lets through) where a job ended nonzero, the sweep was stopped or a worker died."""
    from hydra.core.utils import JobStatus
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    global _launch
    task_function = launcher.task_function
    temp = tempfile.gettempdir()
    remove_dead_sweeps_folders(temp)  # a sweep killed outright (kill -9, the out-of-memory killer) left its folder
    prefix = f"{SWEEP_FOLDER_PREFIX}{os.getpid()}-{_start_time(os.getpid()) or 0}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=temp) as folder:
        _launch = _Launch(stop_file=Path(folder) / "stopped")
        # cfg positional: Hydra's run_job calls the task function with the job's config alone
        launcher.task_function = functools.partial(run_job, task_function=task_function,
                                                   stop_file=str(_launch.stop_file), sweep=os.getpid())
        try:
            runs = launch(launcher, job_overrides, initial_job_idx)
        except TerminatedWorkerError as e:
            print(f"error: a search worker of the sweep {how_it_died(e)}, and joblib stopped its other workers with it; "
                  f"{kept_text(_studies_of(launcher, job_overrides))}: rerun the same command to resume (the trials they "
                  "were running are run again)", file=sys.stderr)
            # after a stop, the stop's status (130, 143), as the sweep ends otherwise then: a script reads it as stopped
            sys.exit(128 + _launch.stopped_by if _launch.stopped_by is not None else 1)
        finally:
            signal.alarm(0)
            launcher.task_function = task_function
            stopped_by = _launch.stopped_by
            _launch = None
            shut_down_workers()
    if stopped_by is not None:
        sys.exit(128 + stopped_by)
    # a job that raised (not SystemExit) is FAILED: Hydra reports it as it did
    statuses = [run.return_value for run in runs if run.status == JobStatus.COMPLETED]
    if failed := next((s for s in statuses if isinstance(s, int) and s != 0), None):
        sys.exit(failed)
    return runs


def install() -> None:
    """In a sweep's process (`python -m nas.search -m ...`), before Hydra runs: SIGTERM, SIGUSR1 and SIGUSR2 passed on
    to the local workers and Ctrl-C waiting for them (`_sweep_stopped`; SIGUSR1/SIGUSR2 kept the handler of
    `python -m nas.search`'s start, which ended the sweep at once, its workers left searching), and the joblib
    launcher's jobs run with the care this module describes (nothing of that where the joblib launcher is not
    installed). Both are for the sweep's process alone: the handlers replace the process's own, and
    `JoblibLauncher.launch` is patched on the class, for every launcher of the process, for good (never undone; a
    second call leaves it as it is)."""
    for signum in (signal.SIGTERM, signal.SIGINT, *PREEMPTION_SIGNALS):
        signal.signal(signum, _sweep_stopped)
    try:
        from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
    except ImportError:
        return
    launch = JoblibLauncher.launch
    if getattr(launch, "cares_for_workers", False):
        return

    @functools.wraps(launch)
    def caring(self: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        return _launch_caring(launch, self, job_overrides, initial_job_idx)

    caring.cares_for_workers = True  # type: ignore[attr-defined]
    JoblibLauncher.launch = caring  # type: ignore[method-assign]
