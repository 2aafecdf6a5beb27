"""Shared fixtures: a tiny generated idx dataset, Hydra composition of `conf/search.yaml`, a PostgreSQL server, a
logging setup that shows warnings only (`console`)."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from nas.config import register_configs

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@pytest.fixture(autouse=True)
def _signal_handlers_put_back() -> Iterator[None]:
    """A command's main run in-process (`nas.errors.stop_on_sigterm`) sets SIGTERM's, SIGUSR1's and SIGUSR2's handlers
    for its process, as a command should: put back after each test, so that a later test finds them as the process
    had them (a test asserting SIGUSR2 at its default failed after one that ran compress.run's main)."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for signum, handler in saved.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


def fitted_calibration(entries: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """`entries` as a whole calibration, as a fit writes it: invoke's fixed cost and each op kind's three terms that
    they leave out set to 0, which is what the predictor makes of a term that is not there. A profile refuses a
    calibration of a few terms alone (`HardwareProfile.validate`), whose other op kinds would be priced at 0 unsaid."""
    from nas.latency.ops import OP_KINDS

    whole = {"invoke": {"fixed": 0.0}, **{kind: {"fixed": 0.0, "per_work": 0.0, "per_byte": 0.0} for kind in OP_KINDS}}
    for entry, terms in entries.items():
        whole[entry] = {**whole.get(entry, {}), **terms}
    return whole
# OpenVINO's telemetry, on wherever no consent file (~/intel/openvino_telemetry) says otherwise, posts a message on
# openvino's import and on each model conversion, each from a process it forks from a thread of the test run: tests post
# nothing to the network, and one such child, deadlocked in the resolver on a lock held at the fork, kept a test run from
# ending. CI=true is OpenVINO's own switch for CI jobs (before openvino is imported); subprocesses of the tests inherit it.
os.environ.setdefault("CI", "true")


def assert_faulthandler_keeps_sigusr1(block: str) -> None:
    """Run `block` (Python lines, with `errors` = nas.errors, `ckpt` = nas.checkpoint, logging imported) in a process
    whose SIGUSR1 is faulthandler's (a C handler Python reports as SIG_DFL), then send it SIGUSR1: assert the process
    dumped its stacks and lived on, i.e. the block did not take the signal over nor put SIG_DFL back."""
    import sys

    script = f"""
import faulthandler, logging, os, signal, sys, time
import nas.checkpoint as ckpt
import nas.errors as errors
faulthandler.register(signal.SIGUSR1)
{block}
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.05)
print("alive")
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "alive"), done.stderr[-500:]
    assert "Current thread" in done.stderr or "Stack" in done.stderr  # faulthandler's dump


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx format (gzip if the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def make_idx_dataset(root: Path, *, n_train: int = 400, n_test: int = 100, size: int = 28, classes: int = 10, seed: int = 0) -> Path:
    """Fashion-MNIST-shaped idx files whose classes differ in where a bright square sits (learnable)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
        for i, c in enumerate(labels):
            r, col = divmod(int(c), 4)
            images[i, 2 + r * 8 : 8 + r * 8, 2 + col * 6 : 7 + col * 6] = 230
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def tiny_idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("tiny_fmnist"))


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """compose_cfg(*overrides) -> the DictConfig `python -m nas.search <overrides>` would get."""
    register_configs()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="search", overrides=list(overrides))

    return _compose


class KeptRecords(logging.Handler):
    """A log handler that keeps the records it gets; `said()`: their levels and messages."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def said(self) -> list[tuple[str, str]]:
        return [(r.levelname, r.getMessage()) for r in self.records]


@pytest.fixture
def console() -> Iterator[KeptRecords]:
    """The root logger as `logging.basicConfig(level=logging.WARNING)` leaves it: at WARNING, with a handler (a
    `KeptRecords`, standing for the console); its level and handlers put back after the test."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.WARNING)
    kept = KeptRecords()
    root.addHandler(kept)
    try:
        yield kept
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def killed_after_changes(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], contextlib.AbstractContextManager[dict]]:
    """`with killed_after_changes(n) as kill:` lets the block's first `n` renames and deletions of files (os.replace,
    os.unlink: each change an atomic write makes to a folder) happen, then stops it with a KeyboardInterrupt, as a kill
    there would (the block's cleanup after it runs unhindered and is not counted). The interrupt ends the `with` quietly;
    `kill["killed"]` says whether it came (False: the block made fewer changes and finished)."""

    @contextlib.contextmanager
    def killing(n: int) -> Iterator[dict]:
        kill = {"left": n, "killed": False}
        real = {"replace": os.replace, "unlink": os.unlink}

        def changing(name: str) -> Callable:
            def change(*args, **kwargs):
                if not kill["killed"]:
                    if kill["left"] == 0:
                        kill["killed"] = True
                        raise KeyboardInterrupt
                    kill["left"] -= 1
                return real[name](*args, **kwargs)
            return change

        with monkeypatch.context() as m:
            for name in real:
                m.setattr(os, name, changing(name))
            try:
                yield kill
            except KeyboardInterrupt:
                if not kill["killed"]:
                    raise

    return killing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database for the scale-out tests.

    `NAS_TEST_POSTGRES_URL` points at an existing server; otherwise a throwaway cluster is created with
    the Debian package's binaries (`make test` installs them), listening on loopback only.
    """
    if os.environ.get("NAS_TEST_POSTGRES_URL"):
        yield os.environ["NAS_TEST_POSTGRES_URL"]
        return
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; `make test` does it as root)")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the package's user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    init = pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nas", "--no-sync", "-E", "UTF8")
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL initdb failed: {init.stderr.strip()[:300]}")
    # Each pytest process (several may run at once: pytest-xdist workers, two checkouts) starts its own cluster: its own folder and socket directory, and a
    # port free when asked for. Another worker's server (or any process) may take that port before this one binds it:
    # then a new port is tried, rather than skipping the tests.
    for _attempt in range(5):
        port = _free_port()
        (root / "server.log").unlink(missing_ok=True)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        start = pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "start")
        log_text = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        if start.returncode == 0 or "already in use" not in start.stderr + log_text:
            break
    if start.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {(start.stderr + log_text).strip()[-300:]}")
    try:
        created = pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "nas", "nas_test")
        assert created.returncode == 0, created.stderr
        yield f"postgresql://nas@127.0.0.1:{port}/nas_test"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


_HOLD_A_TEMP = """
import sys, time
from pathlib import Path
from nas.checkpoint import _temp_beside
_, tmp = _temp_beside(Path(sys.argv[1]))
print(tmp, flush=True)
time.sleep(120)
"""


def start_writer(target: Path) -> tuple[subprocess.Popen, Callable[[], Path]]:
    """A real process that stops in the middle of an atomic write of `target` (its temporary file made, not renamed);
    returns it and a function that waits for its temporary file's path."""
    return _start(_HOLD_A_TEMP, str(target))


# Runs `call` (a writer of the package, given its arguments as argv[1:]) with os.replace stopping the process: the
# writer's temporary file (or folder) is complete and not renamed yet, as when kill -9 lands there.
_STOP_AT_THE_RENAME = """
import os, sys, time
from pathlib import Path
{setup}
def _stop(src, dst):
    print(src, flush=True)
    time.sleep(120)
os.replace = _stop
{call}
"""


def start_stopped_writer(setup: str, call: str, *args: str) -> tuple[subprocess.Popen, Callable[[], Path]]:
    """A real process running the writer `call` (Python, after the imports in `setup`; `args` are its sys.argv[1:])
    that stops where it would rename its temporary file onto the target; returns it and a function that waits for the
    path it would have renamed (for a folder of files written together, one of the files in it)."""
    return _start(_STOP_AT_THE_RENAME.format(setup=setup, call=call), *args)


def _start(code: str, *args: str) -> tuple[subprocess.Popen, Callable[[], Path]]:
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=root, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, lambda: Path(proc.stdout.readline().strip())  # type: ignore[union-attr]


def stop(proc: subprocess.Popen) -> None:
    """kill -9 `proc` and reap it: its pid is then dead."""
    proc.kill()
    proc.wait()


def run_into_closed_pipe(argv: list[str], *, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `argv` (after the Python interpreter) with stdout a pipe whose reader is gone before it starts, as after
    `| head -1` once head has its line: every write to stdout finds no reader. stderr is captured (text)."""
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, *argv], cwd=cwd or Path(__file__).resolve().parent.parent, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    finally:
        os.close(write_end)


def deliver_signal(signum: int) -> None:
    """What the delivery of `signum` to this process does at Python's level, here and now: its Python handler runs (a
    signal ignored, or at its default, does nothing here; at its default the OS would end the process). The in-process
    signal tests use it instead of `os.kill(os.getpid(), signum)`: in the fast suite's long-lived process, after the
    earlier tests, a signal this process sent itself ended it with SIGSEGV inside kill(). The cause, since fixed: two
    OpenVINO runners freed in the order made (test_bound_io_runner_gives_the_same_outputs_as_the_default_call) left
    the thread on the unmapped alternate signal stack of OpenVINO's CPU plugin (nas.sigstack). What they check is
    which handler the code installs and what raising from it does; the OS's own delivery to a fresh process is in the
    slow background-job tests (test_a_background_search_stops_its_final_training_and_compression_on_sigint)."""
    import signal

    handler = signal.getsignal(signum)
    if callable(handler):
        handler(signum, None)


def signal_when_there(proc: subprocess.Popen, ready: Path, signum: int, *, wait_s: float = 60,
                      end_s: float = 60) -> tuple[str, str]:
    """Send `signum` to `proc` once the file `ready` exists (or `proc` ended, or `wait_s` passed), then its (stdout,
    stderr) as it ends within `end_s`; `proc` is killed in any case, so no test leaves it behind."""
    try:
        deadline = time.monotonic() + wait_s
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signum)
        return proc.communicate(timeout=end_s)
    finally:
        proc.kill()


def relu_onnx(path: Path, *, shape: tuple[int, ...] = (1, 1, 4, 4)) -> Path:
    """A one-node ONNX model (Relu) of input `shape`, written to `path` in milliseconds (no torch export): for tests of
    what compiling and freeing a model does, not of its outputs."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def over_quota(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The user's quota full under `folder` while statvfs still shows the disk's free space: a write or sync of a file
    there through `os.write` / `os.fsync` is refused with EDQUOT (NFS checks a quota at the sync), as the kernel refuses
    it. Tells the files apart by /proc/self/fd (skip a test that uses it where there is none)."""
    import errno
    import stat

    def refusing(real: Callable[..., object]) -> Callable[..., object]:
        def call(fd: int, *args: object) -> object:
            if stat.S_ISREG(os.fstat(fd).st_mode) and os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
            return real(fd, *args)
        return call

    monkeypatch.setattr(os, "write", refusing(os.write))
    monkeypatch.setattr(os, "fsync", refusing(os.fsync))


def lock_held_elsewhere(path: Path) -> bool:
    """Whether another open file description (another process's, as flock sees it) holds an exclusive flock on `path`."""
    import fcntl

    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False
