"""Checkpoints (weights + the ArchConfig that rebuilds them) and ONNX export.

`model.pt` is a plain dict of tensors and JSON-compatible values, so it loads with
`torch.load(path, weights_only=True)`: loading a checkpoint never executes pickled code.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from nas.arch import ArchConfig, require_arch
from nas.errors import PREEMPTION_SIGNALS, CheckpointError, ConfigError, module_logger, require_path

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch
    from torch import nn

    from nas.data import Split
    from nas.model import MetaFormer

# torch (and nas.data, nas.model, which import it) is imported by the functions that use it: the file helpers here
# (atomic writes, dead writers' temporary files) serve the latency tools and every command line's start, which would
# otherwise wait seconds for torch to load before a bad setting could be named.

log = module_logger(__name__)  # lines naming a folder that is not UTF-8 written readably (ReadableNames)

FORMAT = "metaformer-nas/checkpoint-v1"
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"


def _umask() -> int:
    mask = os.umask(0)  # reading it means setting it: set it straight back
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file here (usually 0644)


def pid_namespace() -> str | None:
    """This process's pid namespace (an inode number): pids are only comparable between processes that share it (a
    container on the same host, even under the host's name, has its own). None where it cannot be told (not Linux)."""
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or None
    except OSError:
        return None


def writer_tag() -> str:
    """`<pid>@<host>~<pid namespace>` of this process, for the names of the files it is writing: a later run can tell
    a temporary file whose writer died (kill -9 during the write) from one another worker is writing now."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "_"  # no '@', '~' or '/': the tag stays parseable
    return f"{os.getpid()}@{host}~{pid_namespace() or '-'}"


# .<target name>.<mkstemp's random part>.<writer_tag()>.tmp (a file, or a folder of files written together)
_TEMP_TAG = r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9._-]+)~(?P<ns>\d+|-)\.tmp"
_TEMP_NAME = re.compile(rf"^\..+\.{_TEMP_TAG}$")


def process_gone(pid: Any) -> bool:
    """Whether no process `pid` exists in this pid namespace (False when it cannot be told)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


# What fsync of a folder raises on a file system that cannot sync folders (EINVAL on some network and FUSE file systems,
# ENOTSUP on others): the rename is done and stays done, only its durability across a power loss is not assured there.
# Any other error (EIO: the disk failed) is raised, as it is for a file's fsync.
_NO_FOLDER_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def fsync_folder(folder: Path) -> None:
    """Flush `folder`'s entries to disk (a file just renamed into it, a folder just made in it): until then a power loss
    or kernel crash can undo the rename. Best effort where the file system or the folder's permissions refuse it."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: a folder cannot be opened to sync it (NTFS journals the rename itself)
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:  # a folder we may write into but not list (mode 0333): nothing to sync it with
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_FOLDER_FSYNC:
            raise
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush the data of `path` (written and closed by a library: torch.save, onnx.save, OpenVINO) to disk. Renamed
    without it, the new name can survive a power loss while the data does not: a zero-length or partly zero file
    (XFS, ext4 mounted noauto_da_alloc, network file systems), i.e. a finished trial's corrupt checkpoint."""
    fd = os.open(path, os.O_RDONLY)  # fsync needs no write access on POSIX
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_synced_folder(folder: Path) -> None:
    """`folder.mkdir(parents=True, exist_ok=True)`, each folder it makes synced into its parent: a file renamed into a
    new folder (a first trial's trials/) is lost with it if the folder's own entry never reached the disk. (Checking a
    user's output setting is `nas.errors.make_folder`'s job.)"""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)  # another worker making it at the same moment is fine
        fsync_folder(made.parent)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temp file in `path`'s folder (for the rename), with the permissions of a file written plainly: mkstemp's
    owner-only 0600 would make run folders shared by a team (or over NFS) unreadable to the others. Its name ends in
    its writer's `writer_tag()`, so `remove_dead_writers_temps` can clear it if the writer is killed mid-write."""
    make_synced_folder(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{writer_tag()}.tmp")
    os.chmod(tmp, _FILE_MODE)
    return fd, tmp


def remove_dead_writers_temps(folder: Path, *, recursive: bool = True, target: str | None = None) -> list[Path]:
    """Delete the temporary files (and folders, `replacing_together`, `scratch_folder`) of atomic writes under `folder`
    (recursively, or in `folder` itself only: a tool writing into any folder the user names, their home say, must not
    walk all of it) whose writer process is gone: killed (kill -9, OOM killer, reboot) between creating one and renaming
    it. Only files written on this host in this pid namespace are judged; a live writer's file (another worker writing
    now) and another machine's are kept, as are temporary files of other names (they cannot be attributed). `target`:
    only those of writes of the file of that name (a tool writing one file into a folder the user names clears its
    own, not what other tools left there). Returns the deleted paths."""
    removed = []
    for p in _dead_writers_temps(folder, recursive=recursive, target=target):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:  # another worker starting at the same moment removed it first
            continue
        removed.append(p)
    return removed


def _is_temp_of(name: str, target: str) -> bool:
    """Whether `name` is that of a temporary file or folder `_temp_beside` or `scratch_folder` makes for `target`."""
    return name.startswith(f".{target}.") and name.endswith(".tmp")


@contextlib.contextmanager
def _named_as(path: Path, *, unnamed: bool = True) -> Iterator[None]:
    """Around an atomic write of `path`: an `OSError` (a full disk, a read-only one, the disk failing) about its
    temporary file or folder (`.<name>.<random>.<writer_tag()>.tmp`), or about a file in that folder, or about no file
    at all (a write or sync of it; not with `unnamed=False`, for a block that does more than write), is raised as the
    same error (errno and message kept) about `path`, or about the file of `path`'s folder it was to become. Left as it
    was, the one-line error a user gets and the reason a stopped search records named a temporary file that no longer
    exists rather than the file being written. Errors about any other file are raised as they are."""
    try:
        yield
    except OSError as e:
        name = e.filename
        if e.errno is None or not (name is None or isinstance(name, (str, os.PathLike))) or (name is None and not unnamed):
            raise
        about = None if name is None else Path(os.path.abspath(os.fsdecode(name)))  # mkstemp may give it absolute
        folder = Path(os.path.abspath(path.parent))
        if about is None or (about.parent == folder and _is_temp_of(about.name, path.name)):
            target = path
        elif about.parent.parent == folder and _is_temp_of(about.parent.name, path.name):
            target = path.parent / about.name  # a file written into `replacing_together`'s folder
        else:
            raise
        raise OSError(e.errno, e.strerror, str(target)) from e


# Below this much space left to this process, a library's failed write is taken to be the disk's: the write that failed
# took what there was (a write that does not fit writes what fits, then fails), so what is left is at most a few blocks.
_FULL_BELOW = 2**20


def _disk_refusal(path: Path) -> OSError | None:
    """The `OSError` that `path`'s disk gives now to a write of `_FULL_BELOW` bytes beside `path` (synced, as some
    filesystems, NFS, check a quota only then): EDQUOT where the user's quota is full, which statvfs does not show (its
    free space is the disk's); None where the disk takes them. The probe file is deleted."""
    try:
        fd, tmp = _temp_beside(path)
    except OSError as e:
        return e
    refusal = None
    try:
        chunk = memoryview(bytes(2**16))
        left = _FULL_BELOW
        while left:
            left -= os.write(fd, chunk[:left])  # a short write: the next one says why
        os.fsync(fd)
    except OSError as e:
        refusal = e
    finally:
        try:
            os.close(fd)
        except OSError as e:
            refusal = refusal or e
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return refusal


@contextlib.contextmanager
def _full_disk_said(path: Path) -> Iterator[None]:
    """Around a library's write of `path` (into a temporary file or folder beside it): an error that is not an `OSError`
    while `path`'s disk has no space left (`_FULL_BELOW`) is raised as `OSError(ENOSPC)` about `path`, from it; while the
    disk shows space but refuses a write beside `path` (`_disk_refusal`: the user's quota is full), as that refusal's
    `OSError` (EDQUOT) about `path`. torch.save reports a failed write as a RuntimeError ("[enforce fail at
    inline_container.cc] unexpected pos ...", "PytorchStreamWriter failed writing file ...: file write failed"), with
    no errno, which the search could not tell from a bug: it stopped with its traceback instead of its one line ("cannot
    write the run (...)"), and its report said it was killed. Checked before the partly written file is deleted, which
    frees its space again."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        try:
            st = os.statvfs(path.parent)
        except (OSError, AttributeError):  # gone, or no statvfs (Windows): not known to be the disk
            st = None
        if st is not None and st.f_bavail * st.f_frsize < _FULL_BELOW:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        refusal = _disk_refusal(path) if st is not None else None
        if refusal is None or refusal.errno is None:
            raise
        raise OSError(refusal.errno, refusal.strerror, str(path)) from e


def _dead_writers_temps(folder: Path, *, recursive: bool, target: str | None, replacing: bool = False) -> list[Path]:
    """The temporary files and folders under `folder` that `remove_dead_writers_temps` judges left by a dead writer;
    with `replacing`, only the folders of complete new files a killed `replacing_folder` or `replacing_described` left
    (`REPLACES_FILE`), which are otherwise never among them (`finish_replacing` puts them in place)."""
    ns = pid_namespace()
    if ns is None or not folder.is_dir():
        return []
    host = writer_tag().split("@", 1)[1].rsplit("~", 1)[0]
    # the target's name, then mkstemp's random part (no dots), then the tag: `.p.csv.bak.<random>...` is not p.csv's
    name = _TEMP_NAME if target is None else re.compile(rf"^\.{re.escape(target)}\.[a-z0-9_]+\.{_TEMP_TAG}$")
    dead = []
    # listed first: a folder the caller removes must not be walked into
    for p in sorted(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        m = name.match(p.name)
        if (m is not None and m["host"] == host and m["ns"] == ns and process_gone(int(m["pid"]))
                and (p / REPLACES_FILE).is_file() == replacing):
            dead.append(p)
    return dead


_TAKEN = ".taken_over"  # a dead writer's folder, claimed by its rename into this process's own (see take_over_scratch)


def take_over_scratch(folder: Path) -> Path | None:
    """Move into `folder`, this process's `scratch_folder(parent, name)`, what the latest folder of the same `name` in
    `parent` holds whose writer is gone (killed while working in it: kill -9, OOM killer), and return that folder's
    former path; None when there is none. The caller reuses what it can tell is complete and made as it would make it
    now (files renamed into place whole, under names that say what they hold); the rest goes with `folder`.

    The temporary files of writes the dead writer had under way are deleted. The folder is claimed by renaming it into
    `folder` first, so that of two processes taking over at the same moment one gets it and the other nothing, and a
    kill in between leaves it inside a folder the next run takes over in turn. Folders of other names and of live
    writers are left alone (`remove_dead_writers_temps` deletes the other dead ones)."""
    m = _TEMP_NAME.match(folder.name)
    if m is None:
        raise ValueError(f"take_over_scratch takes a scratch_folder(), not {folder}")
    name = folder.name[1:m.start("pid")].rsplit(".", 2)[0]  # .<name>.<random>.<pid>@...: the name may hold dots
    left = [p for p in _dead_writers_temps(folder.parent, recursive=False, target=name) if p.is_dir() and not p.is_symlink()]
    for dead in sorted(left, key=_mtime, reverse=True):
        claimed = folder / _TAKEN
        try:
            os.rename(dead, claimed)
        except FileNotFoundError:  # another run took it (or removed it) first
            continue
        for entry in claimed.iterdir():
            if entry.name != _TAKEN and not (folder / entry.name).exists():  # (_TAKEN: a claim its killed taker left)
                os.rename(entry, folder / entry.name)
        shutil.rmtree(claimed, ignore_errors=True)
        remove_dead_writers_temps(folder)
        return dead
    return None


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # removed since it was listed: it sorts last, and its rename fails
        return -1


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` (named as `_temp_beside` names them) for a library that writes to a file name
    (torch.save, torch.onnx.export, onnx.save): synced to disk and renamed onto `path` when the block ends (its folder
    synced after), deleted if it raises. A writer killed inside the block leaves a file that `remove_dead_writers_temps`
    clears. An error about the temporary file names `path` (`_named_as`); a library's own error on a full disk or a
    full quota is raised as the disk's (`_full_disk_said`)."""
    with _named_as(path):
        fd, tmp = _temp_beside(path)
        os.close(fd)
        try:
            with _full_disk_said(path):
                yield Path(tmp)
            fsync_file(tmp)  # the library closed its file without syncing it
            os.replace(tmp, path)
        except BaseException:
            # Emptied first: a library that failed may keep the file open (torch.save's writer, held by the traceback),
            # and a deleted file's space comes back only once it is closed; the run's next writes (its run marker
            # saying why it stopped) need that space on a full disk.
            with contextlib.suppress(OSError):
                os.truncate(tmp, 0)
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_folder(path.parent)


@contextlib.contextmanager
def replacing_together(*paths: Path) -> Iterator[Path]:
    """A temporary folder beside `paths` (all in one folder) for a library that writes several files in one call
    (OpenVINO's .xml and the .bin it names after it): the block writes each under its own name into the yielded
    folder; each is synced to disk, they are renamed onto `paths` in the order given (the file that refers to the others
    last; the folder synced after each rename, so that after a power loss too a new .xml never meets an old .bin) and the
    folder is removed. One tagged folder rather than one temporary name per file, because the library chooses the names of
    the files beside the first (model.tmp.xml gives model.tmp.bin, a name the cleanup could not attribute); a writer
    killed inside the block leaves a folder that `remove_dead_writers_temps` clears, the files in it included. An error
    about a file in the temporary folder names the file of `paths` it was to become (`_named_as`); a library's own error
    on a full disk or a full quota is raised as the disk's (`_full_disk_said`)."""
    parent = paths[-1].parent
    if any(p.parent != parent for p in paths):
        raise ValueError(f"replacing_together renames within one folder; got {[str(p) for p in paths]}")
    with _named_as(paths[-1]), scratch_folder(parent, paths[-1].name) as tmp:
        with _full_disk_said(paths[-1]):
            yield tmp
        for p in paths:
            with _named_as(p):  # a sync's error names no file: said of the file it is to become, not the last one
                fsync_file(tmp / p.name)
        for p in paths:
            os.replace(tmp / p.name, p)
            fsync_folder(parent)


@contextlib.contextmanager
def replacing_described(*paths: Path, description: Path) -> Iterator[Path]:
    """A temporary folder beside `paths` and `description` (all in one folder) in which the block writes, each under its
    own name, the new versions of files that the file `description` vouches for (a Pareto member's model.pt, model.onnx,
    test_predictions.csv and its metrics.json), `description` among them. The old files stay in place, whole and
    described, until the block has made every new one: a stop inside it (Ctrl-C or SIGTERM during minutes of training,
    a crash, kill -9) leaves them as they were, where deleting them first lost a usable member. When the block ends,
    the old `description` is deleted, each of `paths` replaced by its new file (or deleted where the block wrote none:
    the old one belongs to the old description), then the new `description` renamed in, each step synced to disk
    (the files before the renames): a stop between the renames leaves no description, never one beside files it does
    not describe, and a reader takes the folder as out of date. Before the renames the temporary folder gets its
    `REPLACES_FILE`, as `replacing_folder`'s does: Ctrl-C and SIGTERM take effect once the renames are done
    (`_signals_held`), and a kill -9 or an error between them leaves the new files, complete, for the next run's
    `finish_replacing` to put in place (deleted as a dead writer's folder, a first final training's new model.pt was
    left without its metrics.json, and the next run trained the member again). A writer killed inside the block leaves
    a folder that `remove_dead_writers_temps` clears. An error about a file in the folder names the file it was to
    become."""
    parent = description.parent
    if any(p.parent != parent for p in paths):
        raise ValueError(f"replacing_described renames within one folder; got {[str(p) for p in (*paths, description)]}")
    tmp = _scratch_beside(parent, description.name)
    try:
        # not about no file: the block may train for minutes, and an error of its own is not about `description`
        with _named_as(description, unnamed=False):
            yield tmp
        with _named_as(description):
            made = [p.name for p in paths if (tmp / p.name).is_file()]
            for name in (description.name, *made):  # a block that wrote no description fails here
                fsync_file(tmp / name)
            record = {"described": description.name, "files": [p.name for p in paths], "made": made,
                      "replaces": _identity(description)}
            atomic_write_json(tmp / REPLACES_FILE, record)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with _named_as(description):
        _put_described(parent, tmp, record=record)
    shutil.rmtree(tmp, ignore_errors=True)


def _put_described(folder: Path, new: Path, *, record: Mapping[str, Any]) -> bool:
    """The renames of `replacing_described`, as its `REPLACES_FILE` `record` in the folder `new` inside `folder` lists
    them: the old description deleted, each of its "files" replaced by its new one ("made") or deleted, the new
    description renamed in last, each step synced. False where they were done already (the description gone from `new`:
    a writer killed after its last rename); files renamed already by a killed writer are not in `new` and are skipped.
    Ctrl-C and SIGTERM take effect once it is done (`_signals_held`)."""
    description = record["described"]
    with _signals_held():
        if not (new / description).is_file():
            return False
        (folder / description).unlink(missing_ok=True)
        fsync_folder(folder)  # gone from the disk before any file it described is replaced
        for name in record["files"]:
            if name not in record["made"]:
                (folder / name).unlink(missing_ok=True)
            elif (new / name).is_file():
                os.replace(new / name, folder / name)
        fsync_folder(folder)  # the new files on disk before the description that vouches for them
        os.replace(new / description, folder / description)
        fsync_folder(folder)
    return True


def _retired_name(name: str, *, retired: Path) -> Path:
    """Where a retire into `retired` puts what it keeps under `name` now: `retired/<name>`, else the first of `<name>.2`,
    `.3`, ... that is free."""
    k = 1
    while (dest := retired / (name if k == 1 else f"{name}.{k}")).exists() or dest.is_symlink():
        k += 1
    return dest


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C (SIGINT), SIGTERM, SIGUSR1 and SIGUSR2 that arrive while the block runs take effect as it ends, by the
    handlers there were before it (a `nas.errors.Terminated` raised after the block, say), for a few renames that must
    not be stopped between them. By swapping the handlers of Python's rather than blocking the signals
    (`signal.pthread_sigmask`): a signal blocked in the main thread is taken by another thread (torch's), and Python
    runs its handler in the main thread all the same. Outside the main thread, and for a signal whose handler was set
    outside Python, nothing is held (signals cannot be handled there, or that handler could not be put back). SIGUSR1
    and SIGUSR2 are held only where a Python function handles them: Python reports a handler set in C
    (`faulthandler.register`) as SIG_DFL, and putting SIG_DFL back would make their next arrival kill the process."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if signum not in arrived:
            arrived.append(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)}
    held = {s: h for s, h in previous.items() if h is not None and (s not in PREEMPTION_SIGNALS or callable(h))}
    for signum in held:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in arrived:
            signal.raise_signal(signum)  # the handler put back takes it now (a Python one raises here)


def retire_folder(folder: Path, *, retired: Path) -> Path:
    """Move `folder` whole, as it is, into the folder `retired` under its own name, or `<name>.2`, `.3`, ... where that
    is taken (an earlier one kept there), by one rename on the same file system (atomic: a kill leaves it in one place or
    the other, never half moved); return where it went. Its `MEMBER_LOCK` file, which the caller may hold, is not kept
    there: a process waiting on that lock then finds the file gone from its path and opens the lock there anew."""
    make_synced_folder(retired)
    while True:
        dest = _retired_name(folder.name, retired=retired)
        try:
            os.replace(folder, dest)  # (onto an empty folder made meanwhile too; a non-empty one refuses)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):  # made under that name meanwhile
                continue
            raise
        fsync_folder(retired)
        fsync_folder(folder.parent)
        (dest / MEMBER_LOCK).unlink(missing_ok=True)
        return dest


def retire_files(files: Sequence[Path], *, name: str, retired: Path) -> Path | None:
    """Move the `files` (all in one folder; those that are not there skipped) into a new folder `retired/<name>` (or
    `<name>.2`, `.3`, ... where that is taken), as `retire_folder` moves a whole folder, and return it; None where none
    of them is there. Each moves by a rename on the same file system, in the order given (a record of the others last:
    a kill between two renames leaves it beside the files still to move, for a rerun to find them), with Ctrl-C and
    SIGTERM held until all have moved (`_signals_held`)."""
    there = [p for p in files if p.is_file()]
    if not there:
        return None
    make_synced_folder(retired)
    with _signals_held():
        while True:
            dest = _retired_name(name, retired=retired)
            try:
                os.mkdir(dest, 0o777)  # claims the name: a folder made under it meanwhile refuses
                break
            except FileExistsError:
                continue
        for p in there:
            os.replace(p, dest / p.name)
        fsync_folder(dest)
        fsync_folder(retired)
        fsync_folder(there[0].parent)
    return dest


CHECKPOINTS_FOLDER = "checkpoints"
"""The run folder's folder of its members' folders (`<run>/checkpoints/<arch_id>/`), the only folders whose swaps
`finish_replacing` finishes (`REPLACES_FILE`)."""

REPLACES_FILE = ".replaces.json"
"""The record in the temporary folder of `replacing_folder` and `replacing_described`, written once the new files in it
are complete and synced, before the renames that put them in place: `{"into": the folder it replaces, relative to the
run's retired/ folder (`../checkpoints/<arch_id>`: a record naming another one is not finished), "keep": the names
moved over from it}` (`replacing_folder`), `{"described": the description's
name, "files": the names of the files it describes, "made": those the block wrote, "replaces": the old description's
size, mtime and inode, or null where there was none}` (`replacing_described`). A writer
killed between those renames (kill -9) leaves it with its files, which `finish_replacing` puts in place instead of
`remove_dead_writers_temps` deleting them (the new weights: hours of training)."""


@contextlib.contextmanager
def replacing_folder(folder: Path, *, retired: Path, keep: Sequence[str] = (),
                     on_retired: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """A temporary folder inside `folder` in which the block writes the folder's new files; when the block has made
    them all, `folder` as it was moves into `retired` (`retire_folder`) and the temporary folder takes its place, whole,
    by a rename: the old files are never deleted, and a stop inside the block (minutes of training) leaves `folder` as it
    was. The files of `folder` named in `keep` (a training's resume state) go to the new folder, not the old one. Its
    `MEMBER_LOCK`, which the caller may hold, is linked into the new folder (one file at both paths): the lock held is
    at `folder`'s path throughout, where moving it away let a process (`python -m compress.run`) make a new one there
    and take it. Ctrl-C and SIGTERM between the two renames take effect once both are done (`_signals_held`): stopped
    between them, `folder` was missing and its new files were in the moved one. Before the renames the temporary folder
    gets its `REPLACES_FILE`: a kill -9 or an error from there on leaves it, complete, for the next run's
    `finish_replacing` to put in place (the cleanup of dead writers' files deleted it). `on_retired` is called with
    where the old folder went (`retired/<name>`, or `<name>.2`, ...), once the new one is in place."""
    tmp = _scratch_beside(folder, "new")
    try:
        yield tmp
        for p in tmp.iterdir():
            if p.is_file():
                fsync_file(p)
        atomic_write_json(tmp / REPLACES_FILE, {"into": os.path.relpath(folder, retired), "keep": list(keep)})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(folder, tmp, retired=retired, keep=keep, on_retired=on_retired)


def _swap_in(folder: Path, new: Path, *, retired: Path, keep: Sequence[str],
             on_retired: Callable[[Path], object] | None = None) -> Path:
    """The renames of `replacing_folder`: the folder `new` inside `folder` takes its place, `folder` as it was moving
    into `retired`; returns where it went. `new`'s `REPLACES_FILE` is deleted once it is in place. Ctrl-C and SIGTERM
    take effect once it is done (`_signals_held`)."""
    with _signals_held():
        for name in keep:
            if (folder / name).is_file():
                os.replace(folder / name, new / name)
        if (folder / MEMBER_LOCK).is_file():
            try:
                os.link(folder / MEMBER_LOCK, new / MEMBER_LOCK)
            except FileExistsError:  # linked already by a writer killed before the renames
                pass
            except OSError:  # a file system without hard links: moved, as it was
                os.replace(folder / MEMBER_LOCK, new / MEMBER_LOCK)
        fsync_folder(new)
        dest = retire_folder(folder, retired=retired)
        try:
            os.replace(dest / new.name, folder)
        except FileNotFoundError:
            if not folder.is_dir():
                raise
            # `finish_replacing` of another run that found it in retired/ renamed it into place first (both finishing
            # a killed swap, on a file system without flock): done
        fsync_folder(folder.parent)
        (folder / REPLACES_FILE).unlink(missing_ok=True)
        if on_retired is not None:  # (said before a stop held meanwhile is raised)
            on_retired(dest)
    return dest


class FinishedReplacing(NamedTuple):
    """A replacing of a folder that `finish_replacing` finished: `folder`, the one replaced; `new`, where its new files
    are now (`folder`, or a folder of retired/ where `folder` was made again since the writer was killed); `old`, the
    folder of retired/ that holds it as it was (None for `replacing_described`'s files: the old ones it replaces are
    deleted, as they are by the writer)."""
    folder: Path
    new: Path
    old: Path | None


def finish_replacing(root: Path, *, retired: Path, into: Path | None = None) -> list[FinishedReplacing]:
    """Finish the `replacing_folder`s and `replacing_described`s under `root` whose writer was killed (kill -9, OOM
    killer, a reboot) once the new files were complete (`REPLACES_FILE`), and return them; `into`: only those of that
    folder. Killed before the old folder moved, its new files are swapped in now (under the folder's `member_lock`,
    not waited for: a live process holding it is left to finish it); killed after, they are renamed into the folder's
    place; where another run made that folder (or its described files) again meanwhile, they move into `retired`
    beside the old one (`<name>.2`, ...), kept. Described files are renamed in under the folder's `member_lock`, those
    the writer renamed already left as they are. A rename is the claim: of two runs finishing the
    same one, one does it and the other finds it gone. The `REPLACES_FILE` of a swap finished by a writer killed before
    it deleted the record (harmless, and moved with the new files) is deleted too (of `into` only, where given)."""
    finished = []
    for left in _dead_writers_temps(root, recursive=True, target=None, replacing=True):
        record = _replaces(left)
        if isinstance(record, str):
            if into is None or _same_folder(left.parent, into):
                log.warning("%s: the new files a killed run left there are left as they are: its %s %s", left,
                            REPLACES_FILE, record)
            continue
        folder = left.parent if "described" in record else Path(os.path.normpath(retired / record["into"]))
        if into is not None and os.path.abspath(folder) != os.path.abspath(into):
            continue
        done = (_finish_described(left, record=record, retired=retired) if "described" in record else
                _finish_swap(left, folder=folder, keep=record["keep"], retired=retired))
        if done is not None:
            finished.append(done)
    strays = root.rglob(REPLACES_FILE) if into is None else [into / REPLACES_FILE] if into.is_dir() else []
    for stray in strays:
        if _TEMP_NAME.match(stray.parent.name) is None:  # not a temporary folder's: a swap finished
            stray.unlink(missing_ok=True)
    return finished


def _finish_described(left: Path, *, record: Mapping[str, Any], retired: Path) -> FinishedReplacing | None:
    """`finish_replacing` of the folder of new files a `replacing_described` left; None where there was nothing left to
    do (another run did it, or the writer was killed after its last rename: the folder is removed all the same), or
    where a live process holds the member's lock (a final training of it: it, or a later run, finishes it). Where the
    member's description is no longer the one the record says it replaces, nor gone (deleted by the killed writer's
    first step), the member was made again since: its newer files stay, and the new files left move into `retired`
    (`<name>`, or `<name>.2`, ...), kept."""
    folder = left.parent
    with member_lock(folder, doing="putting in place the new files a killed run made", wait=False) as free:
        if not free or not left.is_dir():  # (not there: another run finished it meanwhile)
            return None
        if not (left / record["described"]).is_file():  # all renamed in already: the record alone is left
            shutil.rmtree(left, ignore_errors=True)
            return None
        now = _identity(folder / record["described"])
        if now is not None and now != record.get("replaces"):  # (no "replaces": a record of an older version)
            new = _retire_as(left, name=folder.name, retired=retired)
            if new is None:
                return None
            (new / REPLACES_FILE).unlink(missing_ok=True)
            return FinishedReplacing(folder, new, None)
        put = _put_described(folder, left, record=record)
        shutil.rmtree(left, ignore_errors=True)
    return FinishedReplacing(folder, folder, None) if put else None


def _identity(path: Path) -> list[int] | None:
    """[size, mtime in ns, inode] of the file `path`, None where there is none: a file written again (atomically: a new
    inode) or edited since differs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _finish_swap(left: Path, *, folder: Path, keep: Sequence[str], retired: Path) -> FinishedReplacing | None:
    """`finish_replacing` of the folder of new files a `replacing_folder` of `folder` left; None where another run
    finished it first."""
    if _same_folder(left.parent, folder):  # killed before the renames: `folder` is as it was
        with member_lock(folder, doing="putting in place the new files a killed run made", wait=False) as free:
            # (another run finished it meanwhile, or a live process final-trains the member: it, or a later run, will)
            if not free or not left.is_dir():
                return None
            old = _swap_in(folder, left, retired=retired, keep=keep)
        return FinishedReplacing(folder, folder, old)
    old, new = left.parent, folder
    # the killed writer's lock, linked in with its files: no process holds it, nor waits on it at this path
    (left / MEMBER_LOCK).unlink(missing_ok=True)
    make_synced_folder(folder.parent)
    try:
        if folder.exists() or folder.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder))
        os.rename(left, folder)
    except FileNotFoundError:  # another run finished it first
        return None
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        new = _retire_as(left, name=folder.name, retired=retired)  # made again since: both kept
        if new is None:
            return None
    fsync_folder(folder.parent)
    (new / REPLACES_FILE).unlink(missing_ok=True)
    return FinishedReplacing(folder, new, old)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # `b` is gone (moved to retired/ by the killed writer)
        return False


def _retire_as(folder: Path, *, name: str, retired: Path) -> Path | None:
    """Move `folder` into `retired` as `name` (or `<name>.2`, ...: `retire_folder` under another name); None where it is
    gone (another run moved it first)."""
    make_synced_folder(retired)
    while True:
        dest = _retired_name(name, retired=retired)
        try:
            os.rename(folder, dest)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue
            raise
        fsync_folder(retired)
        fsync_folder(folder.parent)
        return dest


def _replaces(folder: Path) -> dict[str, Any] | str:
    """What the `REPLACES_FILE` in `folder` records, or why it is not used: it cannot be read, or it names a file
    outside the folder, or a folder to replace other than a member's `../checkpoints/<name>` (a record edited by hand:
    its renames would move other files, or the new ones out of the run folder)."""
    try:
        said = json.loads((folder / REPLACES_FILE).read_text())
    except (OSError, ValueError) as e:
        return f"it cannot be read ({getattr(e, 'strerror', None) or e})"
    if not isinstance(said, dict):
        return "it holds no record"
    if "described" in said:
        lists = ("files", "made")
        names = [said["described"], *(n for k in lists if isinstance(said.get(k), list) for n in said[k])]
        valid = all(isinstance(said.get(k), list) for k in lists) and all(_plain_name(n) for n in names)
    else:
        into = said.get("into")
        parts = into.split(os.sep) if isinstance(into, str) else []
        valid = (len(parts) == 3 and parts[:2] == ["..", CHECKPOINTS_FOLDER] and _plain_name(parts[2])
                 and isinstance(said.get("keep"), list) and all(_plain_name(k) for k in said["keep"]))
    return said if valid else "it names files outside the member's folder, or no member's folder"


def _plain_name(name: Any) -> bool:
    """Whether `name` is the name of a file in a folder (no path)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


FILES_LOCK = ".files.lock"
"""The file in a run folder that `run_folder_lock` locks while one process writes the run's files."""


@contextlib.contextmanager
def run_folder_lock(run_dir: Path, *, name: str = FILES_LOCK, waiting: str | None = None,
                    say: Callable[[str], None] | None = None, where_writable: bool = False) -> Iterator[None]:
    """Exclusive lock on the run folder while one process writes its files: a search's workers take turns through it
    (others wait, then find them up to date), and `python -m compress.run` of a member and `python -m nas.report <run
    folder>` refresh the run's report and pareto.csv under it. `flock` works across processes of one machine and on
    most network file systems. `name`: the empty file locked; another name is a lock of its own (`nas.run_folder` keeps
    config.yaml's records under one held briefly, not behind the members' final training that this one may be held
    for). `waiting`: the line said once where another process holds the lock (a worker's turn may last its members'
    final training: minutes), by `say` (logged at INFO when None: a command with no log handler passes a print to
    stderr). `where_writable`: the folder is not made, and where it is missing or its lock file cannot be opened for
    writing (a read-only disk, a folder this user may not write in) the block runs unlocked, leaving the folder as it
    is (no lock file made there), so that the block's own writes fail as they would without the lock, with their own
    error (nobody else writes such a folder either)."""
    import fcntl

    if where_writable:
        try:
            fd = os.open(run_dir / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:  # no folder, a read-only one, one not ours: nothing to take turns with there
            yield
            return
        lock_file = os.fdopen(fd, "w")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(run_dir / name, "w")
    with lock_file as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                (say or (lambda line: log.info("%s", line)))(waiting)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


MEMBER_LOCK = ".member.lock"
"""The file in a checkpoint folder that `member_lock` locks while a process final-trains or compresses it."""

# How often a process waiting for another's `member_lock` tries it again (and reads again who holds it).
_MEMBER_LOCK_POLL_SECONDS = 0.2

# The member locks this process holds, by (lock file, thread), with how deep each is nested: a compression of the
# front (`compress.pipeline.compress_front`) holds a member's lock while it calls `compress_checkpoint`, which takes it
# too, and a second flock of the same file from this thread would wait on itself.
_held_member_locks: dict[tuple[str, int], int] = {}


@contextlib.contextmanager
def member_lock(folder: Path, *, doing: str, wait: bool = True) -> Iterator[bool]:
    """An exclusive `flock` on `folder`'s `MEMBER_LOCK` while the block final-trains or compresses the checkpoint there,
    so that a second process doing either to the same folder (`python -m compress.run` of a member the search is
    compressing, two such commands, a script calling `compress_checkpoint`) waits for the first to finish, then finds
    its files, instead of writing them at the same time: the two wrote over each other's files (a folder mixing two
    compressions, an int8 file of the old weights recorded as the new ones'). A waiting process says so once per holder,
    naming it (pid, `doing`, since when). The kernel releases the lock however its holder dies (kill -9, OOM killer):
    a file left by a dead holder blocks nothing. The holder deletes the file as it releases it. Nested in the same
    thread it is taken once. Where the folder does not exist, or the file cannot be made or locked (a read-only folder,
    a file system without flock), the block runs unlocked: the writes that follow fail or succeed as they did.
    `wait=False`: where another process holds the lock, the block runs at once without it, given False (True
    otherwise), for work that can be left to that process or a later one."""
    lock = folder / MEMBER_LOCK
    key = (os.path.abspath(lock), threading.get_ident())
    if key in _held_member_locks:
        _held_member_locks[key] += 1
        try:
            yield True
        finally:
            _held_member_locks[key] -= 1
        return
    fd = _take_member_lock(lock, doing=doing, wait=wait)
    if fd is None or fd == _LOCK_BUSY:
        yield fd is None
        return
    _held_member_locks[key] = 1
    try:
        yield True
    finally:
        del _held_member_locks[key]
        try:
            lock.unlink()  # while locked: a process waiting on this file takes it, then finds it gone and opens anew
        except OSError:
            pass
        os.close(fd)


_LOCK_BUSY = -1  # what `_take_member_lock` without waiting returns where another process holds the lock


def _take_member_lock(lock: Path, *, doing: str, wait: bool = True) -> int | None:
    """A descriptor holding the flock on `lock` (`member_lock`), waited for while another process holds it, with this
    process's record written in it; None where the file cannot be opened or locked; `wait=False`: `_LOCK_BUSY` where
    another process holds it."""
    import fcntl

    named: object = False  # no line said yet
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError:
            return None
        try:
            if wait:
                named = flock_waiting(fd, holder=_member_lock_holder,
                                      waiting=lambda who: _member_lock_waiting(lock, who),
                                      poll_seconds=_MEMBER_LOCK_POLL_SECONDS, logger=log, named=named)
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return _LOCK_BUSY
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
        except BaseException as e:  # no lock (or Ctrl-C while waiting): the descriptor closed all the same
            os.close(fd)
            if isinstance(e, OSError):
                return None
            raise
        if same:
            break
        os.close(fd)  # the holder deleted the file as it released it: the lock is on the file now at that name
    record = f"{os.getpid()} {time.time():.0f} {socket.gethostname()} {doing}\n".encode()
    try:
        os.pwrite(fd, record, 0)  # written over a dead holder's, then cut to length
        os.ftruncate(fd, len(record))
    except OSError:  # a full disk: the work goes on, a waiter only names no process
        pass
    return fd


def flock_waiting(fd: int, *, holder: Callable[[int], Any], waiting: Callable[[Any], str], poll_seconds: float,
                  logger: logging.Logger, named: object = False) -> object:
    """Take an exclusive `flock` on `fd`, waiting while another process holds it: polled every `poll_seconds` rather
    than blocked in flock, so that the wait can say whom it waits for. `holder(fd)` reads the holder's record from the
    file (None where it says nothing readable yet); `waiting(record)` is the line `logger` says, once per holder:
    again only when another process takes its turn first, so a wait behind several holders does not read as one stuck
    since the first line. `named`: the record a line was said for already (False: none); returns the last one, for a
    caller that opens the file anew and waits again. An OSError of flock (a file system without it) is raised."""
    import fcntl

    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return named
        except BlockingIOError:
            who = holder(fd)
            # a record not readable (being written) is not a new holder, once a line has been said
            if named is False or (who is not None and who != named):
                logger.info("%s", waiting(who))
                named = who
            time.sleep(poll_seconds)


def _member_lock_holder(fd: int) -> tuple[int, float, str, str] | None:
    """(pid, time it took the lock, host, what it does) of the process holding the flock on `fd`'s file, as it wrote
    them there; None where the file says nothing readable (not written yet)."""
    try:
        pid, since, host, doing = os.pread(fd, 1024, 0).decode().split("\n", 1)[0].split(" ", 3)
        return int(pid), float(since), host, doing
    except (OSError, ValueError):
        return None


def _member_lock_waiting(lock: Path, holder: tuple[int, float, str, str] | None) -> str:
    """The line a process waiting for `member_lock` says, naming the holder where its record says who it is."""
    if holder is None:
        return f"{lock.parent}: waiting for another process to finish with this folder ({lock.name})..."
    pid, since, host, doing = holder
    where = "" if host == socket.gethostname() else f" on {host}"
    return (f"{lock.parent}: waiting for another process (pid {pid}{where}, {doing} since "
            f"{time.strftime('%H:%M:%S', time.localtime(since))}) to finish with this folder ({lock.name})...")


def _scratch_beside(parent: Path, name: str) -> Path:
    """A new empty folder `.<name>.<random>.<writer_tag()>.tmp` in `parent` (`scratch_folder`)."""
    make_synced_folder(parent)  # `replacing_together` renames into it
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=f".{writer_tag()}.tmp"))
    os.chmod(tmp, 0o777 & ~_umask())  # not mkdtemp's owner-only 0700: a teammate's run may have to remove it
    return tmp


@contextlib.contextmanager
def scratch_folder(parent: Path, name: str, *, kept_if_interrupted: bool = False) -> Iterator[Path]:
    """A temporary folder `.<name>.<random>.<writer_tag()>.tmp` in `parent`, deleted with its files when the block
    ends, for files needed only inside it (models exported to be timed). Not `tempfile.TemporaryDirectory()`: SIGTERM
    and kill -9 run no cleanup, and nothing would delete the folder a killed writer left in /tmp (hundreds of MB of
    ONNX files for a profile); this one carries its writer's tag, so `remove_dead_writers_temps(parent)` clears it.
    `kept_if_interrupted`: a KeyboardInterrupt (Ctrl-C, SIGTERM as `nas.errors.Terminated`) leaves the folder as a kill
    leaves it, for the next run to take over once this process has exited (`take_over_scratch`): a stop asked for
    politely must not lose what a kill -9 keeps."""
    tmp = _scratch_beside(parent, name)
    try:
        yield tmp
    except KeyboardInterrupt:
        if not kept_if_interrupted:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | os.PathLike) -> str | None:
    """The hex SHA-256 of the file at `path`; None when it cannot be read. What compressed_metrics.json's file_sha256
    records, and what the two host timings of one model.onnx (metrics.json's, compressed_metrics.json's) record of it."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file, synced to disk, renamed onto `path` (its folder synced after), so that neither a killed
    process nor a power loss or kernel crash leaves a half-written or empty file at `path`: the old file or the new.
    An error (a full disk) names `path`, not the temporary file (`_named_as`)."""
    with _named_as(path):
        fd, tmp = _temp_beside(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) written atomically to `path`. A symlink at `path` stays a symlink: its target is replaced, as a
    plain write would have written through it (a hw profile linked into conf/hw/ from the user's own repository)."""
    atomic_write_bytes(Path(path).resolve(), text.encode())


def json_bytes(obj: Any) -> bytes:
    """`obj` as the toolkit's JSON files hold it (indented, sorted keys, a final newline; UTF-8)."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    """`obj` written atomically as JSON (`json_bytes`)."""
    atomic_write_bytes(path, json_bytes(obj))


def save_checkpoint(path: str | os.PathLike, model: nn.Module, arch: ArchConfig, *, meta: dict[str, Any] | None = None) -> Path:
    """Save weights + arch spec (+ JSON-compatible `meta`) to `path` atomically."""
    require_arch(arch, "arch")
    path = Path(path)
    payload = {
        "format": FORMAT,
        "arch": arch.to_json(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": json.dumps(meta or {}),
    }
    import torch

    with replacing(path) as tmp:
        torch.save(payload, tmp)
    return path


def _resolve(path: str | os.PathLike) -> Path:
    p = require_path(path, "path")  # None (a member's lookup that found nothing) named as the argument, not by pathlib
    if p.is_dir():
        # a run folder, or its checkpoints/ folder: name its members' folders to choose from
        where = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        members = sorted(q.name for q in where.iterdir() if (q / "model.pt").is_file()) if where.is_dir() else []
        if members and not (p / "model.pt").is_file():
            shown = ", ".join(str(where / m) for m in members[:5]) + (f" (and {len(members) - 5} more)" if len(members) > 5 else "")
            raise CheckpointError(f"{p} is a run folder, not a checkpoint; pass one of its members: {shown}")
        p = p / "model.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found{near_member(p)}; expected a model.pt file or a folder "
                              "holding one")
    return p


def near_member(path: Path) -> str:
    """' (did you mean <folder>?)' naming the member folder (one holding model.pt) beside a missing checkpoint `path`, or
    beside the folder of a missing model file (`path` with a suffix: model.pt, model_int8.onnx), whose name is closest
    to its own (an arch_id mistyped or cut short in a paste); '' where none is close: 'checkpoint
    runs/x/checkpoints/fba1243e9 not found' left the user to compare ten hex digits by eye."""
    import difflib

    folder = path.parent if path.suffix else path
    try:
        names = [q.name for q in folder.parent.iterdir() if (q / "model.pt").is_file()]
    except OSError:
        return ""
    close = difflib.get_close_matches(folder.name, names, n=1, cutoff=0.75)
    return f" (did you mean {folder.parent / close[0]}?)" if close else ""


def read_checkpoint(path: str | os.PathLike) -> tuple[ArchConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """(arch, state_dict, meta) of a checkpoint file or folder; `CheckpointError` if unusable."""
    p = _resolve(path)  # a path that is no checkpoint is named before torch loads (seconds)
    import torch

    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled code refused by weights_only, ...
        # Only the error's kind: torch's own text for a refused pickle is terminal-coloured advice on how to load
        # untrusted files anyway, which is not what a user of this tool should do.
        raise CheckpointError(f"checkpoint {p} is corrupt or not a metaformer-nas checkpoint "
                              f"(torch.load: {type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {p} has format {found!r}; expected {FORMAT!r}")
    try:
        arch = ArchConfig.from_json(payload["arch"])
        meta = json.loads(payload.get("meta") or "{}")
    except (ConfigError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {p} has an invalid arch spec: {e}") from None
    return arch, payload["state_dict"], meta


def load_checkpoint(path: str | os.PathLike, *,
                    read: tuple[ArchConfig, dict[str, torch.Tensor], dict[str, Any]] | None = None) -> MetaFormer:
    """Rebuild the model of a checkpoint (file or folder) from its ArchConfig and load its weights; `read`: what
    `read_checkpoint(path)` returned, where the caller has it (the file, read whole by torch.load, is not read again).

    Returns the model in eval mode; `model.arch` holds its ArchConfig and `model.meta` the saved metadata. torch's
    random state is as it was: the random initial weights the checkpoint's replace are drawn from a forked generator.
    """
    import torch

    from nas.model import build_model

    arch, state, meta = read_checkpoint(path) if read is None else read
    # A seeded notebook's draws after loading a model to score came out otherwise than without the load (the discarded
    # initial weights advanced torch's global generator).
    with torch.random.fork_rng(devices=[]):
        model = build_model(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {_resolve(path)} weights do not fit its arch spec: {str(e).splitlines()[0]}") from None
    model.arch = arch
    model.meta = meta
    return model.eval()


class ImageCounts(NamedTuple):
    """Of the images a data set's loading read, every split together: how many, and how many of them loading changed
    beyond scale, as `nas.images.reshaped_images_warnings` counts them: not square (stretched to data.img_size) and with
    transparent pixels (dropped, or composited onto data.background); and how many the model got with no colour (`grey`:
    one channel, or the same value in every channel at every pixel, as `compress.predict` judges a photo given a colour
    model; None where not known, as in records written before it was kept). `nas.data.Dataset.image_counts` holds them
    and each member records them in its input contract (`io_contract`), so that `compress.predict` can say whether new
    photos are made as the model's were. Here, not in nas.data: compress.predict reads the record without torch."""

    images: int
    not_square: int
    transparent: int
    grey: int | None = None


IMAGE_COUNT_KEYS = ("images", "not_square", "transparent", "grey")
"""The keys of an input record (`io_contract`'s "input") that hold its `ImageCounts`, in their order ("grey" absent
from records written before it was kept)."""


def recorded_image_counts(said: dict[str, Any], *, file: str | os.PathLike) -> ImageCounts | None:
    """The `ImageCounts` an input record (`io_contract`'s "input", as read from `file`) holds; None where it holds
    none of images, not_square and transparent, or only some (a record from before they were kept: unknown); its grey
    None where the record lacks it (kept from 2026-12-07). `CheckpointError` in one line naming `file`, the key and its
    value where one is not a whole number >= 0, or not_square, transparent or grey exceeds images (a hand-edited
    record): int() took "2.5" as 2 and -3 as it is, and "many" gave a generic "not a metrics.json"."""
    required = IMAGE_COUNT_KEYS[:3]
    if not all(k in said for k in required):
        return None
    present = [k for k in IMAGE_COUNT_KEYS if k in said]
    for key in present:
        value = said[key]
        # bool is an int to Python; true is no count
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{file}: input.{key} is {json.dumps(value)}; allowed: a whole number >= 0 (how "
                                  "many of the images the model was trained and tested on)")
    counts = ImageCounts(*(said.get(k) for k in IMAGE_COUNT_KEYS))
    for key in present[1:]:
        if getattr(counts, key) > counts.images:
            raise CheckpointError(f"{file}: input.{key} is {getattr(counts, key)}, more than input.images "
                                  f"({counts.images}); allowed: a whole number from 0 to input.images")
    return counts


def io_contract(*, arch: ArchConfig, classes: Sequence[str], mean: Sequence[float], std: Sequence[float],
                preprocessing: str, background: int | None,
                image_counts: ImageCounts | None = None) -> dict[str, dict[str, Any]]:
    """What every exported file of `arch` takes and gives (`export_onnx`'s contract), as metrics.json and
    compressed_metrics.json record it under "input" and "output": a deployment makes its frames as `preprocessing` says
    (`nas.images.preprocessing`) and reads logit i as `classes[i]`. `mean`/`std`: the normalisation the graph holds.
    `image_counts` (`nas.data.Dataset.image_counts`): how many images the data set's loading read, and how many of
    them were not square, had transparent pixels or were grey, recorded as "images", "not_square", "transparent" and
    "grey" (left out where None: unknown, as in records written before they were kept)."""
    # compress.predict tells a deployer whose photos are not square, or grey, whether the training images were too
    counts = {} if image_counts is None else {
        "images": int(image_counts.images), "not_square": int(image_counts.not_square),
        "transparent": int(image_counts.transparent),
        **({} if image_counts.grey is None else {"grey": int(image_counts.grey)})}
    return {
        "input": {
            "name": INPUT_NAME, "dtype": "float32", "layout": "NCHW",
            "shape": [None, arch.in_chans, arch.img_size, arch.img_size],
            "range": [0.0, 1.0], "normalization": "inside the model (mean/std of the training split)",
            "channels": arch.in_chans, "img_size": arch.img_size,
            "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "preprocessing": preprocessing,
            "background": background,  # grey level transparency was composited onto (null: dropped)
            **counts,
        },
        "output": {"name": OUTPUT_NAME, "num_classes": arch.num_classes, "class_names": list(classes)},
    }


EXPORT_PRECISIONS = ("fp32", "int8")
"""What an exported file's `precision` metadata says its weights are."""


def onnx_metadata(*, arch: ArchConfig, contract: Mapping[str, Any], precision: str, dataset: str | None,
                  metric: str | None) -> dict[str, str]:
    """The deployment contract that an exported file of `arch` carries in its ONNX `metadata_props` (string keys and
    values, lists and JSON objects written as JSON), so that the file alone says what it takes and gives: `contract` is
    `io_contract`'s record (metrics.json's "input" and "output"; {} where none is known: then only the arch's keys),
    `precision` fp32 or int8, `dataset` the data set it was trained on (data.name) and `metric` how its accuracies are
    scored (accuracy or balanced_accuracy), each left out where None (not known). The image counts are left out: they
    describe the training images, not the file, and a rerun adds them to an older metrics.json without exporting
    model.onnx again. `contract_of_metadata` reads it back."""
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: {', '.join(EXPORT_PRECISIONS)}")
    import nas

    said, out = contract.get("input") or {}, contract.get("output") or {}
    meta = {
        "producer": f"metaformer-nas {nas.__version__}", "precision": precision,
        "arch_id": arch.arch_id, "arch_json": arch.to_json(),
        "in_chans": str(arch.in_chans), "img_size": str(arch.img_size),
        "input_shape": json.dumps([None, arch.in_chans, arch.img_size, arch.img_size]),
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "input_range": "[0, 1] float32 NCHW", "num_classes": str(arch.num_classes),
    }
    if said:  # input_range stays the export's own (normalisation is inside the graph), whatever a record says
        meta |= {key: said[key] for key in ("normalization", "preprocessing") if key in said}
        meta |= {key: json.dumps(said[key]) for key in ("mean", "std", "background") if key in said}
    if "class_names" in out:
        meta["class_names"] = json.dumps(list(out["class_names"]))
    # a file handed over alone: compress.predict scores its class folders as the run did, and names the training data
    meta |= {key: value for key, value in (("dataset", dataset), ("metric", metric)) if value is not None}
    return {key: str(value) for key, value in meta.items()}


def contract_of_metadata(meta: Mapping[str, str]) -> dict[str, Any] | None:
    """The "input" and "output" record (as `io_contract` makes it, without image counts) that an exported file's
    metadata (`onnx_metadata`) states, plus its "arch_id" and "precision", and its "dataset" and "metric" where it
    states them (as metrics.json does; a file exported before they were added does not); None where it states no class
    names and input size (a file exported before 2026-12-07, or by another tool) or they are not what `onnx_metadata`
    writes."""
    try:
        classes = json.loads(meta["class_names"])
        channels, size = int(meta["in_chans"]), int(meta["img_size"])
        extra = {key: json.loads(meta[key]) for key in ("mean", "std", "background") if key in meta}
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return None
    said = {"name": meta.get("input_name", INPUT_NAME), "shape": [None, channels, size, size], "channels": channels,
            "img_size": size, **extra, **{key: meta[key] for key in ("normalization", "preprocessing") if key in meta}}
    return {"arch_id": meta.get("arch_id"), "precision": meta.get("precision"), "input": said,
            "output": {"name": meta.get("output_name", OUTPUT_NAME), "num_classes": len(classes), "class_names": classes},
            **{key: meta[key] for key in ("dataset", "metric") if meta.get(key)}}


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `metadata_props` of the ONNX file at `path` as a dict; {} where it has none or cannot be read (the runtime
    that loads it says why)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (OSError, DecodeError, ValueError):
        return {}
    return {prop.key: prop.value for prop in model.metadata_props}


def export_onnx(model: nn.Module, path: str | os.PathLike, *, in_chans: int, img_size: int,
                metadata: Mapping[str, str] | None = None) -> Path:
    """Export to ONNX (opset 17, dynamic batch): input `pixels` float32 NCHW in [0, 1], output `logits`; `metadata`
    (`onnx_metadata`: the deployment contract) written into the file's `metadata_props` before it appears at `path`,
    so that every digest taken of the file is of the file with it."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; export_onnx writes a file: pass e.g. {path / 'model.onnx'}")
    model = model.eval()
    dummy = torch.rand(1, in_chans, img_size, img_size)
    # A tagged temporary name (not a fixed .model.onnx.tmp) so that a run after a kill -9 mid-export removes the file.
    # One file: the TorchScript exporter writes tensors as external data only for models over protobuf's 2 GiB.
    with replacing(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices are not for users
        torch.onnx.export(
            model, (dummy,), str(tmp), opset_version=ONNX_OPSET, dynamo=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        if metadata:
            _set_onnx_metadata(tmp, metadata)
    return path


def _set_onnx_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Write `metadata` into the `metadata_props` of the ONNX file at `path` (in place: a temporary file being made)."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, dict(metadata))
    onnx.save(model, str(path))


def onnx_session(path: str | os.PathLike, *, threads: int = 2, reference: bool = False) -> ort.InferenceSession:
    """An onnxruntime CPU session for an exported model.

    `reference=True` keeps onnxruntime to its basic graph optimisations (constant folding, float-only fusions), not the
    extended ones that fuse QuantizeLinear/DequantizeLinear pairs into int8 kernels: an int8 file then runs operator by
    operator, DequantizeLinear followed by float operators. It checks what a file computes apart from this CPU's int8
    arithmetic (those kernels saturate on x86 CPUs without VNNI: `nas.latency.measure.int8_saturates`).
    """
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if reference:  # the QDQ -> QLinearConv (int8 kernel) fusion is an extended optimisation
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # onnxruntime's load errors derive from Exception only, one class per cause; each means the file is not a model
    load_errors = (ort_state.Fail, ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.InvalidArgument,
                   ort_state.NoSuchFile, ort_state.NoModel, ort_state.NotImplemented, ort_state.RuntimeException)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except load_errors as e:
        raise CheckpointError(f"{path} is not a readable ONNX model: {str(e).strip().splitlines()[0][:200]}") from None


def onnx_runner(path: str | os.PathLike, *, threads: int = 2,
                reference: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Logits of a float32 pixel batch computed by onnxruntime from the exported file alone (one session, many calls);
    `reference`: as `onnx_session`."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} not found; re-run the step that writes it")
    sess = onnx_session(p, threads=threads, reference=reference)
    return lambda x: sess.run(None, {INPUT_NAME: x})[0]


def onnx_logits(path: str | os.PathLike, split: Split, *, batch_size: int = 512, threads: int = 2,
                reference: bool = False) -> np.ndarray:
    """Logits of `split` computed by onnxruntime from the exported file alone; `reference`: as `onnx_session`."""
    from nas.data import iterate_batches

    run = onnx_runner(path, threads=threads, reference=reference)
    return np.concatenate([run(x.numpy()) for x, _ in iterate_batches(split, batch_size=batch_size)])


def torch_logits(model: nn.Module, split: Split, *, batch_size: int = 512) -> np.ndarray:
    """Logits of `split` from a torch model in eval mode."""
    import torch

    from nas.data import iterate_batches

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(x).numpy() for x, _ in iterate_batches(split, batch_size=batch_size)])
