import re

import pytest
import torch

import nas
from nas.arch import ArchConfig, StageConfig
from nas.checkpoint import atomic_write_bytes, atomic_write_json, atomic_write_text, read_checkpoint, save_checkpoint
from nas.errors import CheckpointError
from nas.model import build_model

ARCH = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16), StageConfig(mixer="attn", depth=1, width=32)), norm="ln")


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(ARCH).eval()
    model.set_normalization([0.2], [0.3])
    path = save_checkpoint(tmp_path / "ck" / "model.pt", model, ARCH, meta={"val_acc": 0.5})
    return model, path


def test_round_trip_rebuilds_the_model_from_its_spec(saved):
    model, path = saved
    loaded = nas.load_checkpoint(path.parent)  # folder or file both work
    assert loaded.arch == ARCH and not loaded.training
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    arch, state, meta = read_checkpoint(path)
    assert meta == {"val_acc": 0.5} and arch.arch_id == ARCH.arch_id


def test_loading_a_checkpoint_leaves_torchs_random_state_as_it_was(saved):
    # From a notebook: the initial weights load_checkpoint drew (and replaced) advanced the caller's seeded generator.
    _, path = saved
    torch.manual_seed(123)
    state = torch.get_rng_state()
    nas.load_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), state)


def test_checkpoint_loads_with_plain_torch_weights_only(saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    assert ArchConfig.from_json(payload["arch"]) == ARCH
    assert "pixel_mean" in payload["state_dict"]


def test_no_temp_files_left_behind(saved):
    _, path = saved
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_onnx_export_to_a_folder_is_named_and_a_failed_export_leaves_no_temporary_file(saved, tmp_path, monkeypatch):
    import nas.checkpoint as checkpoint

    model, _ = saved
    with pytest.raises(CheckpointError, match=r"is a folder; export_onnx writes a file: pass e.g. .*model\.onnx"):
        checkpoint.export_onnx(model, tmp_path, in_chans=1, img_size=28)

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", full_disk)  # the file written, its rename failing
    with pytest.raises(OSError, match="No space left"):
        checkpoint.export_onnx(model, tmp_path / "out" / "m.onnx", in_chans=1, img_size=28)
    assert list((tmp_path / "out").iterdir()) == []  # the temporary file is removed, not left beside the target


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_gives_one_line_error(saved, damage):
    _, path = saved
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"\x00not a zip" * 50, "empty": b""}[damage])
    with pytest.raises(CheckpointError) as err:
        nas.load_checkpoint(path)
    assert "corrupt" in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        nas.load_checkpoint(tmp_path / "nope")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected 'metaformer-nas/checkpoint-v1'"):
        nas.load_checkpoint(tmp_path / "other.pt")


def test_weights_that_do_not_fit_the_spec(saved, tmp_path):
    model, _ = saved
    other = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=24), StageConfig(mixer="attn", depth=1, width=32)), norm="ln")
    path = save_checkpoint(tmp_path / "bad.pt", model, other)  # spec says width 24, weights are 16
    with pytest.raises(CheckpointError, match="do not fit its arch spec"):
        nas.load_checkpoint(path)


def test_a_run_folder_given_as_checkpoint_names_its_members(tmp_path):
    run = tmp_path / "run"
    for member in ("b222", "a111"):
        save_checkpoint(run / "checkpoints" / member / "model.pt", build_model(ARCH), ARCH)
    for given in (run, run / "checkpoints"):
        with pytest.raises(CheckpointError) as err:
            nas.load_checkpoint(given)
        assert str(err.value) == (f"{given} is a run folder, not a checkpoint; pass one of its members: "
                                  f"{run / 'checkpoints' / 'a111'}, {run / 'checkpoints' / 'b222'}")
    assert nas.load_checkpoint(run / "checkpoints" / "a111").arch == ARCH  # a member folder still loads


def test_a_mistyped_member_folder_names_the_member_of_the_closest_name(tmp_path):
    # "checkpoint runs/x/checkpoints/fba1243e9 not found" (an arch_id cut short in a paste) left the user to compare
    # ten hex digits by eye; compress.predict said the same of the folder and of a model file in it
    from compress.predict import model_file

    members = tmp_path / "run" / "checkpoints"
    for member in ("fba1243e96", "5003f8ee31"):
        save_checkpoint(members / member / "model.pt", build_model(ARCH), ARCH)
    meant = f" (did you mean {members / 'fba1243e96'}?)"
    for given in (members / "fba1243e9", members / "fba1243e9" / "model.pt"):
        with pytest.raises(CheckpointError) as err:
            nas.load_checkpoint(given)
        assert str(err.value) == f"checkpoint {given} not found{meant}; expected a model.pt file or a folder holding one"
    for given in (members / "fba1243e9", members / "fba1243e9" / "model_int8.onnx"):
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(given))} not found{re.escape(meant)}; pass a "):
            model_file(given)
    with pytest.raises(CheckpointError, match=r"zzz not found; expected"):  # nothing close: no guess
        nas.load_checkpoint(members / "zzz")


def test_files_written_atomically_get_the_usual_permissions_not_owner_only(tmp_path):
    import os
    import stat

    from nas.checkpoint import atomic_write_bytes

    mask = os.umask(0)  # read the process's umask (and put it back): a plain open() gives 0o666 & ~mask
    os.umask(mask)
    atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    save_checkpoint(tmp_path / "model.pt", build_model(ARCH), ARCH)
    (tmp_path / "plain.txt").write_bytes(b"")
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    for name in ("metrics.json", "model.pt"):  # not mkstemp's owner-only 0o600: a team shares run folders
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected == 0o666 & ~mask, name


def test_a_writer_killed_mid_write_leaves_a_temporary_file_that_only_its_dead_pid_on_this_host_lets_remove(
        tmp_path, monkeypatch):
    import os
    import socket
    from pathlib import Path

    from conftest import start_writer, stop
    import nas.checkpoint as checkpoint

    killed, temp_of = start_writer(tmp_path / "trials" / "a1.pt")  # a real process, stopped mid-write
    dead = temp_of()
    stop(killed)  # kill -9 during the atomic write: its pid is dead
    _, writing = checkpoint._temp_beside(tmp_path / "trials" / "c3.pt")  # this live process writing right now
    with monkeypatch.context() as m:  # a worker on another machine sharing the folder (NFS) whose pid is dead here
        m.setattr(socket, "gethostname", lambda: "node7.cluster")
        m.setattr(os, "getpid", lambda: killed.pid)
        _, elsewhere = checkpoint._temp_beside(tmp_path / "b2.pt")
    unknown = tmp_path / ".report.md.tmp"  # a name that says nothing of its writer
    unknown.write_bytes(b"")
    assert dead.is_file() and f".{killed.pid}@" in dead.name and f".{killed.pid}@node7.cluster~" in elsewhere
    assert checkpoint.remove_dead_writers_temps(tmp_path) == [dead]
    assert not dead.exists() and Path(elsewhere).is_file() and Path(writing).is_file() and unknown.is_file()


def test_an_onnx_export_killed_before_its_rename_leaves_a_file_the_next_run_removes(tmp_path):
    from conftest import start_stopped_writer, stop
    from nas.checkpoint import remove_dead_writers_temps

    folder = tmp_path / "checkpoints" / "a1"
    killed, temp_of = start_stopped_writer(
        "from nas.arch import ArchConfig\nfrom nas.checkpoint import export_onnx\nfrom nas.model import build_model",
        "export_onnx(build_model(ArchConfig.from_json(sys.argv[2])), Path(sys.argv[1]), in_chans=1, img_size=28)",
        str(folder / "model.onnx"), ARCH.to_json())
    left = temp_of()
    stop(killed)  # kill -9 with the export written, not renamed (it was a fixed .model.onnx.tmp, which nothing removed)
    assert left.parent == folder and left.stat().st_size > 0
    assert remove_dead_writers_temps(tmp_path) == [left]
    assert list(folder.iterdir()) == []


@pytest.fixture()
def syncs(monkeypatch):
    """The fsync and rename calls made while the test runs, in order: ('fsync', inode, 'dir' or 'file') and
    ('replace', inode of the renamed file, target path). A renamed file keeps its inode, so its fsync can be told."""
    import os
    import stat
    from pathlib import Path

    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", st.st_ino, "dir" if stat.S_ISDIR(st.st_mode) else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino, Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def _assert_durably_renamed(events: list[tuple], path) -> None:
    """`path` was renamed into place after its data was synced to disk, and its folder was synced after the rename:
    else a power loss or kernel crash can leave the new name on an empty or partly written file."""
    renames = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == path]
    assert renames, f"{path.name} was not renamed into place: {events}"
    i = renames[-1]
    ino = events[i][1]
    assert path.stat().st_ino == ino
    assert ("fsync", ino, "file") in events[:i], f"{path.name} renamed before its data was synced: {events}"
    assert ("fsync", path.parent.stat().st_ino, "dir") in events[i + 1:], f"{path.parent} not synced after the rename: {events}"


def _report_write(path, data):
    from nas.report.write import _write_atomic

    _write_atomic(path, data)


WRITERS = {
    "atomic_write_bytes": lambda p: atomic_write_bytes(p, b"\x00" * 4096),
    "atomic_write_json": lambda p: atomic_write_json(p, {"val_acc": 0.5}),
    "atomic_write_text": lambda p: atomic_write_text(p, "name: chip\n"),
    "save_checkpoint": lambda p: save_checkpoint(p, build_model(ARCH), ARCH, meta={"trial": 3}),
    "report": lambda p: _report_write(p, "# report\n"),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_file_written_atomically_is_synced_before_its_rename_and_its_folder_after(writer, tmp_path, syncs):
    path = tmp_path / "run" / "out.bin"
    path.parent.mkdir()
    WRITERS[writer](path)  # a new file
    _assert_durably_renamed(syncs, path)
    syncs.clear()
    WRITERS[writer](path)  # replacing the previous one
    _assert_durably_renamed(syncs, path)


def test_a_first_trials_checkpoint_in_a_new_folder_is_synced_with_the_folders_made_for_it(tmp_path, syncs):
    run = tmp_path / "run"
    path = save_checkpoint(run / "trials" / "a1.pt", build_model(ARCH), ARCH)
    _assert_durably_renamed(syncs, path)
    first_rename = next(i for i, e in enumerate(syncs) if e[0] == "replace")
    # run/ made: tmp_path synced; trials/ made: run/ synced; both before the file is renamed into trials/
    for made_in in (tmp_path, run):
        assert ("fsync", made_in.stat().st_ino, "dir") in syncs[:first_rename], f"{made_in} not synced: {syncs}"


def test_files_written_together_are_each_synced_before_the_renames_and_the_folder_after_each(tmp_path, syncs):
    from nas.checkpoint import replacing_together

    xml, bin_ = tmp_path / "model_int8.xml", tmp_path / "model_int8.bin"
    with replacing_together(bin_, xml) as tmp:  # as OpenVINO's save_model writes its pair
        (tmp / xml.name).write_text("<net/>")
        (tmp / bin_.name).write_bytes(b"\x01" * 1024)
    for p in (bin_, xml):
        _assert_durably_renamed(syncs, p)
    renames = [i for i, e in enumerate(syncs) if e[0] == "replace"]
    assert [syncs[i][2] for i in renames] == [bin_, xml]
    # the folder synced between the renames: after a power loss too, a new .xml is never beside an old .bin
    assert ("fsync", tmp_path.stat().st_ino, "dir") in syncs[renames[0] + 1:renames[1]]


def test_files_replaced_with_their_description_stay_whole_until_the_new_ones_are_made_and_the_description_moves_last(
        tmp_path, syncs):
    # A Pareto member retrained (nas.results.materialize_member) deleted its metrics.json, model.onnx and predictions
    # before its final training: a stop during it (minutes) left no usable member until a rerun trained it again.
    import errno
    import os

    from nas.checkpoint import replacing_described

    weights, onnx, notes, description = (tmp_path / n for n in ("model.pt", "model.onnx", "notes.csv", "metrics.json"))
    old = {weights: b"old weights", onnx: b"old onnx", notes: b"old notes", description: b"old description"}
    for p, data in old.items():
        p.write_bytes(data)

    def state() -> dict:
        return {p: p.read_bytes() for p in old if p.is_file()}

    with pytest.raises(KeyboardInterrupt):  # stopped while the new files are made (training)
        with replacing_described(weights, onnx, notes, description=description) as tmp:
            (tmp / weights.name).write_bytes(b"new weights")
            raise KeyboardInterrupt
    assert state() == old and sorted(os.listdir(tmp_path)) == sorted(p.name for p in old)  # no temporary folder left
    with pytest.raises(FileNotFoundError):  # a block that wrote no description changes nothing
        with replacing_described(weights, description=description) as tmp:
            (tmp / weights.name).write_bytes(b"new weights")
    assert state() == old and sorted(os.listdir(tmp_path)) == sorted(p.name for p in old)
    assert not any(e[0] == "replace" for e in syncs)
    # an error about a new file (a full disk) names the file it was to become; one about no file (the training's own)
    # is left as it is, not taken for the description's
    for error, named in ((lambda tmp: OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.pt")), str(weights)),
                         (lambda tmp: OSError(errno.ENOMEM, "Cannot allocate memory"), None)):
        with pytest.raises(OSError) as raised:
            with replacing_described(weights, description=description) as tmp:
                raise error(tmp)
        assert raised.value.filename == named and state() == old

    syncs.clear()
    with replacing_described(weights, onnx, notes, description=description) as tmp:
        (tmp / weights.name).write_bytes(b"new weights")
        (tmp / notes.name).write_bytes(b"new notes")  # no new model.onnx: the old one, of the old weights, goes
        (tmp / description.name).write_bytes(b"new description")
        assert state() == old  # nothing touched before the block ends
    assert state() == {weights: b"new weights", notes: b"new notes", description: b"new description"}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.pt", "notes.csv"]
    for p in (weights, notes, description):
        _assert_durably_renamed(syncs, p)
    renames = [i for i, e in enumerate(syncs) if e[0] == "replace"]
    assert syncs[renames[-1]][2] == description  # the description last, the folder synced before it
    assert ("fsync", tmp_path.stat().st_ino, "dir") in syncs[renames[-2] + 1:renames[-1]]


def test_a_kill_between_the_renames_of_described_files_never_leaves_a_description_of_other_files(
        tmp_path, killed_after_changes):
    import shutil

    from nas.checkpoint import replacing_described

    folder = tmp_path / "member"
    names = ("model.pt", "model.onnx", "preds.csv")

    def rewrite(tag: str) -> None:
        with replacing_described(*(folder / n for n in names), description=folder / "metrics.json") as tmp:
            for n in (*names, "metrics.json"):
                (tmp / n).write_text(f"{tag} {n}")

    rewrite("old")
    shutil.copytree(folder, tmp_path / "old")
    seen = []
    # before each change (the record's write, each deletion and rename in the folder, the record's deletion with its
    # temporary folder); the last: none
    for killed_at in range(len(names) + 5):
        shutil.rmtree(folder)
        shutil.copytree(tmp_path / "old", folder)
        with killed_after_changes(killed_at) as kill:
            rewrite("new")
        assert kill["killed"] == (killed_at < len(names) + 4)
        files = {p.name: p.read_text().split()[0] for p in folder.iterdir() if not p.name.startswith(".")}
        if "metrics.json" in files:  # a description only ever beside the files it describes
            assert set(files.values()) == {files["metrics.json"]}, (killed_at, files)
        seen.append(files.get("metrics.json", "none"))
    # the old description deleted before any file is replaced, the new one renamed in after the last
    assert seen == ["old", "old", *["none"] * (len(names) + 1), "new", "new"]


@pytest.mark.parametrize("code", ["EINVAL", "ENOTSUP"])
def test_a_file_system_that_cannot_sync_a_folder_still_gets_the_file(code, tmp_path, monkeypatch):
    import errno
    import os
    import stat

    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # as some network and FUSE file systems answer
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_bytes(tmp_path / "pareto.json", b"{}\n")
    save_checkpoint(tmp_path / "model.pt", build_model(ARCH), ARCH)
    assert (tmp_path / "pareto.json").read_bytes() == b"{}\n" and read_checkpoint(tmp_path / "model.pt")[0] == ARCH


@pytest.mark.parametrize("step", ["sync", "rename"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_during_an_atomic_write_names_the_file_being_written_not_its_temporary_one(writer, step, tmp_path,
                                                                                            monkeypatch):
    # The error (and so the one-line message and the reason a stopped search records) named the temporary file,
    # .out.bin.<random>.<pid>@<host>~<ns>.tmp, already deleted and unknown to the user.
    import errno
    import os

    def sync(fd):  # a write the disk takes only as it is synced (delayed allocation, NFS): no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def rename(src, dst):  # as os.replace reports it: both names, the temporary one first
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src, dst)

    monkeypatch.setattr(os, "fsync" if step == "sync" else "replace", sync if step == "sync" else rename)
    path = tmp_path / "out.bin"
    with pytest.raises(OSError) as raised:
        WRITERS[writer](path)
    e = raised.value
    assert (e.errno, e.strerror, e.filename, e.filename2) == (errno.ENOSPC, "No space left on device", str(path), None)
    assert ".tmp" not in str(e) and not list(tmp_path.iterdir())


def test_an_error_about_a_temporary_file_of_an_atomic_write_names_the_file_it_was_to_become(tmp_path, monkeypatch):
    import errno
    import os
    import tempfile

    from nas.checkpoint import replacing, replacing_together

    def full(name):
        return OSError(errno.ENOSPC, "No space left on device", str(name))

    def no_temp_file(*, dir, prefix, suffix):  # a full disk that cannot take one more folder entry
        raise full(f"{dir}/{prefix}x1y2{suffix}")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", no_temp_file)
        with pytest.raises(OSError) as raised:
            atomic_write_bytes(tmp_path / "pareto.json", b"{}")
    assert raised.value.filename == str(tmp_path / "pareto.json")

    with monkeypatch.context() as m:  # torch.save, as a trial saves its weights
        m.setattr(torch, "save", lambda obj, f, *a, **k: (_ for _ in ()).throw(full(f)))
        with pytest.raises(OSError) as raised:
            save_checkpoint(tmp_path / "trials" / "a1.pt", build_model(ARCH), ARCH)
    assert raised.value.filename == str(tmp_path / "trials" / "a1.pt") and raised.value.errno == errno.ENOSPC

    xml, bin_ = tmp_path / "model_int8.xml", tmp_path / "model_int8.bin"
    with pytest.raises(OSError) as raised:
        with replacing_together(bin_, xml) as folder:  # OpenVINO writing the .bin into the temporary folder
            raise full(folder / bin_.name)
    assert raised.value.filename == str(bin_)

    fsync = os.fsync

    def bin_not_synced(fd):  # a sync's error names no file (a network file system reports a full disk there)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == bin_.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    with monkeypatch.context() as m, pytest.raises(OSError) as raised:
        m.setattr(os, "fsync", bin_not_synced)
        with replacing_together(bin_, xml) as folder:
            (folder / bin_.name).write_bytes(b"\x01")
            (folder / xml.name).write_text("<net/>")
    assert raised.value.filename == str(bin_)  # not the .xml, the last of the pair
    assert not bin_.exists() and not xml.exists()

    with pytest.raises(FileNotFoundError) as raised:  # about another file: as it was
        with replacing(tmp_path / "model.onnx"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/weights.bin")
    assert raised.value.filename == "/elsewhere/weights.bin"
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_library_failing_on_a_full_disk_raises_the_disks_error_naming_the_file_and_frees_its_space(tmp_path,
                                                                                                      monkeypatch):
    # torch.save reports a full disk as a RuntimeError ("[enforce fail at inline_container.cc:672] . unexpected pos
    # ..."): the search could not tell it from a bug and stopped with a traceback; and its writer, kept alive by the
    # traceback, held the deleted file's space, so the run marker saying why the search stopped did not fit either.
    import errno
    import os
    from types import SimpleNamespace

    held = []

    def disk_full(obj, f, *args, **kwargs):
        held.append(open(f, "ab"))  # kept open, as torch's writer is
        held[-1].write(b"\x00" * 8192)
        held[-1].flush()
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", disk_full)
    path = tmp_path / "trials" / "a1.pt"
    with pytest.raises(RuntimeError, match="unexpected pos"):  # space left: not the disk's doing, raised as it is
        save_checkpoint(path, build_model(ARCH), ARCH)
    statvfs = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_bavail=0, f_frsize=statvfs(p).f_frsize))
    with pytest.raises(OSError) as raised:
        save_checkpoint(path, build_model(ARCH), ARCH)
    e = raised.value
    assert (e.errno, e.strerror, e.filename) == (errno.ENOSPC, "No space left on device", str(path))
    assert isinstance(e.__cause__, RuntimeError)
    assert os.fstat(held[-1].fileno()).st_size == 0 and not list(tmp_path.rglob("*.tmp"))  # emptied though still open
    for f in held:
        f.close()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="tells the files apart by /proc/self/fd")
def test_a_full_quota_is_raised_as_the_disks_error_naming_the_file(tmp_path, monkeypatch):
    # On a full quota torch.save fails with a RuntimeError of its own (no errno in it) while statvfs still shows the
    # disk's free space: it was raised as it was, and model.pt's write stopped the search with a traceback.
    import errno

    from conftest import over_quota

    def quota_full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    path = tmp_path / "ck" / "model.pt"
    save_checkpoint(path, build_model(ARCH), ARCH)  # the folder made before the quota fills
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", quota_full)
    over_quota(monkeypatch, tmp_path)
    with pytest.raises(OSError) as raised:
        save_checkpoint(path, build_model(ARCH), ARCH)
    e = raised.value
    assert (e.errno, e.strerror, e.filename) == (errno.EDQUOT, "Disk quota exceeded", str(path))
    assert isinstance(e.__cause__, RuntimeError)
    with pytest.raises(OSError) as raised:  # a plain write: the OSError the kernel gave, naming the file
        atomic_write_bytes(tmp_path / "ck" / "metrics.json", b"{}")
    assert (raised.value.errno, raised.value.filename) == (errno.EDQUOT, str(tmp_path / "ck" / "metrics.json"))
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    monkeypatch.undo()  # the quota freed: a library's own error is raised as it is, no disk's error made up
    monkeypatch.setattr(torch, "save", quota_full)
    with pytest.raises(RuntimeError, match="file write failed"):
        save_checkpoint(path, build_model(ARCH), ARCH)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_a_disk_error_while_syncing_is_raised_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno
    import os
    import stat

    path = tmp_path / "metrics.json"
    atomic_write_bytes(path, b"old\n")
    real_fsync = os.fsync
    failing = {"file"}

    def fsync(fd):
        if ("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file") in failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for write in (lambda: atomic_write_bytes(path, b"new\n"), lambda: save_checkpoint(tmp_path / "model.pt", build_model(ARCH), ARCH)):
        with pytest.raises(OSError, match="Input/output error"):
            write()  # the data may not be on disk: not renamed over the previous file, and said
    assert path.read_bytes() == b"old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    failing = {"dir"}  # the file synced and renamed, its folder's entry not: the error is not swallowed either
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write_bytes(path, b"new\n")


def test_a_scratch_folder_takes_over_the_latest_one_of_its_name_that_a_dead_writer_left(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import nas.checkpoint as checkpoint

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is dead

    def left_by_the_dead(name: str, files: dict[str, bytes], mtime: int) -> Path:
        with monkeypatch.context() as m:
            m.setattr(os, "getpid", lambda: gone.pid)
            folder = Path(tempfile.mkdtemp(dir=tmp_path, prefix=f".{name}.", suffix=f".{checkpoint.writer_tag()}.tmp"))
            for rel, data in files.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
            _, cut_short = checkpoint._temp_beside(folder / "fp32_k" / "c.onnx")  # killed mid-write of c.onnx
        os.utime(folder, ns=(mtime, mtime))
        return folder

    older = left_by_the_dead("m.csv", {"fp32_k/a.onnx": b"older"}, mtime=1_000_000_000)
    latest = left_by_the_dead("m.csv", {"fp32_k/a.onnx": b"latest", "fp32_k/b.onnx": b"b", "int8_k/a.onnx": b"q"},
                              mtime=2_000_000_000)
    other_name = left_by_the_dead("n.csv", {"fp32_k/a.onnx": b"n"}, mtime=3_000_000_000)
    with checkpoint.scratch_folder(tmp_path, "m.csv") as live, checkpoint.scratch_folder(tmp_path, "m.csv") as ours:
        assert checkpoint.take_over_scratch(ours) == latest and not latest.exists()
        # its files, in this process's folder, without the temporary file of the write cut short
        assert sorted(str(p.relative_to(ours)) for p in ours.rglob("*")) == [
            "fp32_k", "fp32_k/a.onnx", "fp32_k/b.onnx", "int8_k", "int8_k/a.onnx"]
        assert (ours / "fp32_k" / "a.onnx").read_bytes() == b"latest"
        assert older.is_dir() and other_name.is_dir() and live.is_dir()  # left for the cleanup, or alive
        assert list(live.iterdir()) == []
        with pytest.raises(ValueError, match="takes a scratch_folder"):
            checkpoint.take_over_scratch(tmp_path)
    assert checkpoint.remove_dead_writers_temps(tmp_path, recursive=False) == sorted([older, other_name])



def test_a_scratch_folder_kept_if_interrupted_stays_for_the_next_run_after_ctrl_c_and_goes_after_an_error(tmp_path):
    # A profile's exports (kept_if_interrupted) were deleted by Ctrl-C, where kill -9 leaves them for its next run to
    # take over; an error, or a folder not asked to be kept, still takes its files with it.
    from nas.checkpoint import scratch_folder
    from nas.errors import Terminated

    def left_after(error: BaseException, *, kept: bool) -> list[str]:
        with pytest.raises(type(error)), scratch_folder(tmp_path, "m.csv", kept_if_interrupted=kept) as folder:
            (folder / "a.onnx").write_bytes(b"a")
            raise error
        found = [p.name for p in tmp_path.glob(".m.csv.*.tmp/*")]
        for p in tmp_path.glob(".m.csv.*.tmp"):
            (p / "a.onnx").unlink()
            p.rmdir()
        return found

    assert left_after(KeyboardInterrupt(), kept=True) == ["a.onnx"]
    assert left_after(Terminated(), kept=True) == ["a.onnx"]  # SIGTERM, as stop_on_sigterm raises it
    assert left_after(KeyboardInterrupt(), kept=False) == []
    assert left_after(RuntimeError("failed"), kept=True) == []
    with scratch_folder(tmp_path, "m.csv", kept_if_interrupted=True):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_readmes_deployment_block_runs_a_members_files_from_their_recorded_contract(tmp_path, capsys, monkeypatch):
    # README's "Deployment contract" block, with the member folder filled in and run beside the two image files it
    # names, runs the exported files as metrics.json's "input" and "output" (nas.checkpoint.io_contract) describe them,
    # without this project.
    import re
    import shutil
    from pathlib import Path

    import numpy as np

    from compress.export import export_openvino
    from nas.checkpoint import export_onnx, io_contract, onnx_metadata

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)),
                      num_classes=3)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    model.set_normalization([0.3], [0.4])
    folder = tmp_path / "member"
    contract = io_contract(arch=arch, classes=["cat", "dog", "T-shirt/top"], mean=[0.3], std=[0.4],
                           preprocessing="idx grey images as stored; uint8 / 255", background=None)
    export_onnx(model, folder / "model.onnx", in_chans=1, img_size=28,
                metadata=onnx_metadata(arch=arch, contract=contract, precision="fp32", dataset="fashion_mnist",
                                       metric="accuracy"))
    export_openvino(folder / "model.onnx", folder / "model_int8.xml", in_chans=1, img_size=28)  # (float here)
    shutil.copy(folder / "model.onnx", folder / "model_int8.onnx")  # float too: the block runs it as test_acc_reference was
    atomic_write_json(folder / "metrics.json", contract)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("### Deployment contract\n")
    [block] = re.findall(r"```python\n(.*?)```", readme[start:readme.index("\n#", start + 4)], flags=re.S)
    placeholder = '"runs/<study>/checkpoints/<arch_id>/"'
    assert placeholder in block
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("photo.jpg", "shirt.png"):  # the files the block reads, in the folder it runs in
        Image.fromarray(rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.replace(placeholder, repr(f"{folder}/")), "README.md (Deployment contract)", "exec"), scope)
    images = scope["images"]
    assert images.shape == (2, 1, 28, 28) and images.dtype == np.uint8  # grey, at the contract's size
    assert scope["classes"] == contract["output"]["class_names"]  # read from model.onnx's own metadata
    with torch.no_grad():
        expected = model(torch.from_numpy(images).float() / 255.0).numpy()
    assert np.allclose(scope["logits"], expected, atol=1e-4)  # model_int8.onnx's basic session, the block's last
    assert np.allclose(scope["sess"].run(None, {contract["input"]["name"]: scope["pixels"]})[0], expected, atol=1e-4)  # model.onnx
    assert np.allclose(scope["compiled"](scope["pixels"])[0], expected, atol=1e-4)  # the OpenVINO IR
    printed = capsys.readouterr().out.strip()
    assert printed == str([contract["output"]["class_names"][i] for i in expected.argmax(1)])


@pytest.mark.parametrize("path", [None, 3])
def test_load_checkpoint_names_a_path_of_the_wrong_type(path):
    # pathlib's "expected str, bytes or os.PathLike object, not NoneType" named neither the argument nor the function
    with pytest.raises(TypeError, match=rf"^path={path!r} is an? {type(path).__name__}; pass a path \(a str or a pathlib\.Path\)$"):
        nas.load_checkpoint(path)


def _waiting_for_member_lock(folder, caplog, *, work=lambda: None):
    """A thread that takes `folder`'s member_lock (then runs `work`), started with INFO lines of nas.checkpoint
    captured; returned once it has said its first waiting line (or 10 s have passed), with the list it appends
    "done" to once it holds the lock."""
    import logging
    import threading
    import time

    from nas.checkpoint import member_lock

    done: list[str] = []

    def take() -> None:
        with member_lock(folder, doing="compressing it"):
            work()
            done.append("done")

    caplog.set_level(logging.INFO, logger="nas.checkpoint")
    waiter = threading.Thread(target=take, daemon=True)
    waiter.start()
    deadline = time.monotonic() + 10
    while not caplog.messages and waiter.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return waiter, done


def test_a_member_lock_held_by_another_process_is_waited_for_naming_it_and_a_killed_holder_blocks_nothing(
        tmp_path, caplog):
    # Two processes final-training or compressing one checkpoint folder wrote over each other's files: the second now
    # waits, saying which process it waits for; killed (kill -9: no cleanup), the holder leaves its file, not its lock.
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nas.checkpoint import MEMBER_LOCK

    folder = tmp_path / "ck"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from nas.checkpoint import member_lock\n"
         "with member_lock(Path(sys.argv[1]), doing='final-training it'):\n print('held', flush=True); time.sleep(60)",
         str(folder)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline() == "held\n"
        since = time.strftime("%H:%M:%S", time.localtime(int((folder / MEMBER_LOCK).read_text().split()[1])))
        waiter, done = _waiting_for_member_lock(folder, caplog)
        assert waiter.is_alive() and not done
        assert caplog.messages == [f"{folder}: waiting for another process (pid {holder.pid}, final-training it since "
                                   f"{since}) to finish with this folder ({MEMBER_LOCK})..."]
        holder.send_signal(signal.SIGKILL)
        waiter.join(10)
    finally:
        holder.kill()
        holder.wait()
    assert done == ["done"] and len(caplog.messages) == 1
    assert not (folder / MEMBER_LOCK).exists()  # the dead holder's file went with the next holder's release


def test_a_member_lock_nests_in_one_thread_and_leaves_no_file_nor_a_folder_that_was_not_there(tmp_path, caplog):
    # compress_front holds a member's lock while compress_checkpoint takes it again: a second flock of the same file
    # from the same thread would wait on itself.
    from nas.checkpoint import MEMBER_LOCK, member_lock

    folder = tmp_path / "ck"
    folder.mkdir()
    with member_lock(folder, doing="compressing it"):
        with member_lock(folder, doing="compressing it"):
            assert (folder / MEMBER_LOCK).is_file()
        waiter, done = _waiting_for_member_lock(folder, caplog)  # another thread still waits: the outer one holds it
        assert waiter.is_alive() and not done
    waiter.join(10)
    assert done == ["done"] and list(folder.iterdir()) == []
    with member_lock(tmp_path / "typo", doing="compressing it"):  # no folder: unlocked, and none is made for a lock
        pass
    assert not (tmp_path / "typo").exists()


def test_file_sha256_is_the_digest_of_the_files_bytes_and_none_when_it_cannot_be_read(tmp_path):
    # What compressed_metrics.json's file_sha256 and the host timings' model_onnx_sha256 record: the FIPS 180-2 test
    # vectors, so a digest of something else (the path, a text decoding) would not match.
    from nas.checkpoint import file_sha256

    (tmp_path / "abc").write_bytes(b"abc")
    assert file_sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(str(tmp_path / "empty")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    (tmp_path / "million_a").write_bytes(b"a" * 1_000_000)  # past any read buffer
    assert file_sha256(tmp_path / "million_a") == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    assert file_sha256(tmp_path / "missing") is None and file_sha256(tmp_path) is None  # gone, or a folder


def test_an_exported_file_carries_its_contract_in_its_metadata_and_one_without_it_still_runs(saved, tmp_path):
    # A deployment engineer handed model.onnx alone could not tell the class order, input size or preprocessing: they
    # were in metrics.json only. The file now carries them, as the record metrics.json states them (io_contract).
    import json

    import onnxruntime as ort

    from nas.checkpoint import (ImageCounts, contract_of_metadata, export_onnx, io_contract, onnx_metadata, onnx_runner,
                                read_onnx_metadata)

    model, _ = saved
    contract = io_contract(arch=ARCH, classes=["T-shirt/top", "café", "bag"] + [f"c{i}" for i in range(7)],
                           mean=[0.2], std=[0.3], preprocessing="idx grey images as stored; uint8 / 255", background=None,
                           image_counts=ImageCounts(10, 2, 1, 10))
    path = export_onnx(model, tmp_path / "model.onnx", in_chans=1, img_size=28,
                       metadata=onnx_metadata(arch=ARCH, contract=contract, precision="fp32",
                                              dataset="fashion_mnist", metric="balanced_accuracy"))
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == contract["output"]["class_names"]
    assert (meta["in_chans"], meta["img_size"], json.loads(meta["input_shape"])) == ("1", "28", [None, 1, 28, 28])
    assert meta["input_range"] == "[0, 1] float32 NCHW" and meta["input_name"] == "pixels"
    assert meta["preprocessing"] == "idx grey images as stored; uint8 / 255" and meta["precision"] == "fp32"
    assert ArchConfig.from_json(meta["arch_json"]) == ARCH and meta["arch_id"] == ARCH.arch_id
    assert meta["producer"] == f"metaformer-nas {nas.__version__}"
    # what it was trained on and how its accuracies were scored (data.name, data.metric), as metrics.json says them
    assert (meta["dataset"], meta["metric"]) == ("fashion_mnist", "balanced_accuracy")
    assert (json.loads(meta["mean"]), json.loads(meta["std"]), json.loads(meta["background"])) == ([0.2], [0.3], None)
    assert "images" not in meta and "not_square" not in meta  # the training images' counts are no part of the file
    # read back as the record it came from, the image counts aside
    said = contract_of_metadata(read_onnx_metadata(path))
    assert said["output"] == contract["output"] and said["precision"] == "fp32" and said["arch_id"] == ARCH.arch_id
    assert (said["dataset"], said["metric"]) == ("fashion_mnist", "balanced_accuracy")
    unknown = onnx_metadata(arch=ARCH, contract=contract, precision="fp32", dataset=None, metric=None)
    assert "dataset" not in unknown and "metric" not in unknown  # not known: not said
    assert "dataset" not in contract_of_metadata(unknown) and "metric" not in contract_of_metadata(unknown)
    assert said["input"] == {k: v for k, v in contract["input"].items()
                             if k not in ("images", "not_square", "transparent", "grey", "dtype", "layout", "range")}
    # A record edited by hand (a range that is no pair of numbers) does not change what the file takes, nor fail
    edited = {**contract, "input": {**contract["input"], "range": "0-255", "dtype": "uint8"}}
    assert onnx_metadata(arch=ARCH, contract=edited, precision="fp32", dataset=None,
                         metric=None)["input_range"] == "[0, 1] float32 NCHW"
    # A file exported without it (before 2026-12-07): no metadata, no contract, and it runs as before
    old = export_onnx(model, tmp_path / "old.onnx", in_chans=1, img_size=28)
    assert read_onnx_metadata(old) == {} and contract_of_metadata({}) is None
    assert ort.InferenceSession(str(old)).get_modelmeta().custom_metadata_map == {}
    x = torch.rand(2, 1, 28, 28).numpy()
    assert (onnx_runner(old)(x) == onnx_runner(path)(x)).all()
    assert read_onnx_metadata(tmp_path / "missing.onnx") == {}
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 10)
    assert read_onnx_metadata(tmp_path / "junk.onnx") == {}


def _old_folder(tmp_path):
    """checkpoints/m with an old model.pt and an int8 file, and the run's retired/ folder (not made yet)."""
    folder = tmp_path / "checkpoints" / "m"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"old")
    (folder / "model_int8.onnx").write_bytes(b"shipped")
    return folder, tmp_path / "retired"


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_between_the_renames_of_a_replaced_folder_takes_effect_once_the_new_folder_is_in_place(
        tmp_path, monkeypatch, signum):
    # Ctrl-C or SIGTERM (raised as Terminated) just after the old folder moved to retired/ left checkpoints/<id> missing
    # and the new weights (hours of training) in retired/<id>/.new.*.tmp, which the next run deleted as a dead writer's.
    import os
    import signal

    import nas.checkpoint as ckpt
    from nas.errors import Terminated, stop_on_sigterm

    folder, retired = _old_folder(tmp_path)
    real = ckpt.retire_folder

    def retire_then_stopped(folder, *, retired):
        dest = real(folder, retired=retired)
        os.kill(os.getpid(), getattr(signal, signum))
        return dest

    monkeypatch.setattr(ckpt, "retire_folder", retire_then_stopped)
    said = []
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt) as stopped:
            with ckpt.replacing_folder(folder, retired=retired, on_retired=said.append) as tmp:
                (tmp / "model.pt").write_bytes(b"new")
        assert isinstance(stopped.value, Terminated) == (signum == "SIGTERM")  # the handler there was raised it
        # the handlers are those there were
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"] and (folder / "model.pt").read_bytes() == b"new"
    assert sorted(p.name for p in (retired / "m").iterdir()) == ["model.pt", "model_int8.onnx"]
    assert said == [retired / "m"]  # where it went, said before the stop


def test_a_replaced_folders_member_lock_stays_at_its_path_throughout_and_goes_to_the_new_folder(tmp_path, monkeypatch):
    # The held .member.lock was moved into the new folder before the old one moved: in between, a compress.run of the
    # member made a fresh lock file in the old folder and took it, working beside the process that held the lock.
    import os

    import nas.checkpoint as ckpt

    folder, retired = _old_folder(tmp_path)
    real = ckpt.retire_folder
    seen = []

    def retire(folder, *, retired):
        seen.append(os.stat(folder / ckpt.MEMBER_LOCK).st_ino)  # FileNotFoundError where it was moved away
        return real(folder, retired=retired)

    monkeypatch.setattr(ckpt, "retire_folder", retire)
    with ckpt.member_lock(folder, doing="making its files"):
        held = os.stat(folder / ckpt.MEMBER_LOCK).st_ino
        with ckpt.replacing_folder(folder, retired=retired, keep=("partial.pt",)) as tmp:
            (folder / "partial.pt").write_bytes(b"state")
            (tmp / "model.pt").write_bytes(b"new")
        assert seen == [held] and os.stat(folder / ckpt.MEMBER_LOCK).st_ino == held  # the lock held, at its path
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt", "partial.pt"]  # released: its file goes
    assert sorted(p.name for p in (retired / "m").iterdir()) == ["model.pt", "model_int8.onnx"]  # no lock kept there


def test_retired_files_move_into_a_folder_of_their_own_next_to_earlier_ones_and_nothing_is_made_for_none(tmp_path):
    from nas.checkpoint import retire_files

    folder, retired = _old_folder(tmp_path)
    (retired / "m").mkdir(parents=True)  # an earlier one of the member
    (folder / "compressed_metrics.json").write_text("{}")
    names = ["model_pruned.pt", "model_int8.onnx", "compressed_metrics.json"]
    dest = retire_files([folder / n for n in names], name="m", retired=retired)
    assert dest == retired / "m.2"
    assert sorted(p.name for p in dest.iterdir()) == ["compressed_metrics.json", "model_int8.onnx"]
    assert (dest / "model_int8.onnx").read_bytes() == b"shipped"
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    assert retire_files([folder / n for n in names], name="m", retired=retired) is None
    assert sorted(p.name for p in retired.iterdir()) == ["m", "m.2"]


_KILLED_SWAP = """
import os, sys
from pathlib import Path
import nas.checkpoint as ckpt

run, when = Path(sys.argv[1]), sys.argv[2]
weights = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else b"new"  # a real checkpoint's, where given
folder = run / "checkpoints" / "m"
real, real_replace = ckpt.retire_folder, os.replace

def retire_then_killed(folder, *, retired):
    if when == "before":  # killed with the new files complete, the old folder not moved yet
        os._exit(9)
    real(folder, retired=retired)
    os._exit(9)  # killed between the two renames: the old folder in retired/, the new files inside it

def replace_then_killed(src, dst):
    real_replace(src, dst)
    if Path(dst) == folder:  # killed right after the last rename: the swap done, its record not deleted yet
        os._exit(9)

if when == "after":
    os.replace = replace_then_killed
else:
    ckpt.retire_folder = retire_then_killed
with ckpt.member_lock(folder, doing="making its files"):
    with ckpt.replacing_folder(folder, retired=run / "retired", keep=("partial.pt",)) as tmp:
        (tmp / "model.pt").write_bytes(weights)
        (tmp / "metrics.json").write_text("{}")
"""

_KILLED_DESCRIBED = """
import os, sys
from pathlib import Path
import nas.checkpoint as ckpt

folder, after, weights = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real = os.replace

def replace_then_killed(src, dst):
    real(src, dst)
    if Path(dst) == folder / after:  # killed right after that file's rename into the member's folder
        os._exit(9)

os.replace = replace_then_killed
names = ("model.pt", "model.onnx", "test_predictions.csv")
with ckpt.member_lock(folder, doing="making its files"):
    with ckpt.replacing_described(*(folder / n for n in names), description=folder / "metrics.json") as tmp:
        (tmp / "model.pt").write_bytes(weights.read_bytes())
        (tmp / "model.onnx").write_bytes(b"new onnx")
        (tmp / "metrics.json").write_text("{}")
"""


def killed_writer(script: str, *args) -> None:
    """Run `script` (`_KILLED_SWAP`, `_KILLED_DESCRIBED`) with `args` in a Python process, which kills itself (exit 9)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env)
    assert killed.returncode == 9


@pytest.mark.parametrize("when", ["before", "between", "between, made again"])
def test_new_files_of_a_swap_killed_before_or_between_its_renames_are_put_in_place_by_the_next_run(
        tmp_path, caplog, when):
    # A kill -9 between the old folder's move to retired/ and the new folder's rename into its place left the new
    # weights (hours of final training) in retired/<id>/.new.*.tmp, which the next run's cleanup deleted as a dead
    # writer's temporary folder; checkpoints/<id> was gone too.
    import logging
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    folder, retired = _old_folder(tmp_path)
    (folder / "partial.pt").write_bytes(b"state")  # a training's resume state: goes with the new files
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_SWAP, str(tmp_path), when.split(",")[0]], env=env)
    assert killed.returncode == 9
    assert folder.is_dir() == (when == "before")
    # a compression's cleanup of the member's folder, or of the run, does not delete them either
    assert ckpt.remove_dead_writers_temps(tmp_path) == []
    if when == "between, made again":  # another run made the member's folder since
        folder.mkdir()
        (folder / "model.pt").write_bytes(b"made again")
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)  # the next run's start
    said = [r.getMessage() for r in caplog.records if "swapped them in" in r.getMessage()]
    new = retired / "m.2" if when == "between, made again" else folder
    assert {p.name: p.read_bytes() for p in new.iterdir()} == {"model.pt": b"new", "metrics.json": b"{}",
                                                               "partial.pt": b"state"}
    assert {p.name: p.read_bytes() for p in (retired / "m").iterdir()} == {"model.pt": b"old",
                                                                         "model_int8.onnx": b"shipped"}
    if when == "between, made again":
        assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
        assert said == ["checkpoints/m/: the new files that a run killed as it swapped them in left complete are kept "
                        "in retired/m.2/ (the folder was made again since); the folder as it was is in retired/m/"]
    else:
        assert said == ["checkpoints/m/: the new files that a run killed as it swapped them in left complete are put in "
                        "place; the folder as it was is in retired/m/"]
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(ckpt.REPLACES_FILE))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)  # nothing more to do
    assert not caplog.records


@pytest.mark.parametrize("after", ["model.pt", "metrics.json"])
def test_new_files_of_a_first_final_training_killed_between_their_renames_are_put_in_place_by_the_next_run(
        tmp_path, caplog, after):
    # A kill -9 after a first final training's new model.pt was renamed into the member's folder, before its
    # metrics.json: the next run deleted the temporary folder holding metrics.json and model.onnx as a dead writer's,
    # moved the undescribed model.pt to retired/ and trained the member again (the finished training's result lost).
    import logging

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    folder = tmp_path / "checkpoints" / "m"
    folder.mkdir(parents=True)
    (folder / "final_train.partial.pt").write_bytes(b"state")  # the training's resume state: not the swap's
    weights = tmp_path / "weights"
    weights.write_bytes(b"new weights")
    killed_writer(_KILLED_DESCRIBED, folder, after, weights)
    assert (folder / "model.pt").read_bytes() == b"new weights"
    assert (folder / "metrics.json").is_file() == (after == "metrics.json")
    assert ckpt.remove_dead_writers_temps(tmp_path) == []  # a compression's cleanup does not delete them either
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)  # the next run's start
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "model.pt": b"new weights", "model.onnx": b"new onnx", "metrics.json": b"{}", "final_train.partial.pt": b"state"}
    said = [r.getMessage() for r in caplog.records if "swapped them in" in r.getMessage()]
    # killed after its last rename, it had done all: its temporary folder (the record alone) goes without a word
    assert said == ([] if after == "metrics.json" else
                    ["checkpoints/m/: the new files that a run killed as it swapped them in left complete are put in place"])
    assert not (tmp_path / "retired").exists()


def test_the_record_of_a_swap_killed_after_its_last_rename_is_removed_by_the_next_run(tmp_path, caplog):
    # Killed between the last rename and the deletion of .replaces.json, which went into the member's folder with its
    # new files: nothing removed it.
    import logging

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    folder, retired = _old_folder(tmp_path)
    killed_writer(_KILLED_SWAP, tmp_path, "after")
    assert (folder / ckpt.REPLACES_FILE).is_file()
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)
    assert not list(tmp_path.rglob(ckpt.REPLACES_FILE)) and not list(tmp_path.rglob("*.tmp"))
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ckpt.MEMBER_LOCK} == {
        "model.pt": b"new", "metrics.json": b"{}"}
    assert sorted(p.name for p in (retired / "m").iterdir()) == ["model.pt", "model_int8.onnx"]
    assert not [r for r in caplog.records if "swapped them in" in r.getMessage()]  # nothing was left to finish


def test_a_signal_handled_by_faulthandler_still_is_after_the_renames_hold_signals():
    # faulthandler.register(SIGUSR1)'s handler is set in C, which Python reports as SIG_DFL: the held signals put
    # SIG_DFL back after the renames, and the next SIGUSR1 (asking for a stack dump) killed the process.
    from conftest import assert_faulthandler_keeps_sigusr1

    assert_faulthandler_keeps_sigusr1("with ckpt._signals_held():\n    pass")


def _dead_tag() -> str:
    """The writer tag of a process of this machine that has exited (`nas.checkpoint.writer_tag`'s form)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nas.checkpoint as ckpt

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", "import nas.checkpoint as c; print(c.writer_tag())"],
                          capture_output=True, text=True, check=True, env=env)
    tag = done.stdout.strip()
    assert tag.split("@", 1)[1] == ckpt.writer_tag().split("@", 1)[1]
    return tag


@pytest.mark.parametrize("into", ["../../outside/stolen", "<tmp>/elsewhere/stolen", "../checkpoints/m/../../x",
                                  "../other/m"])
def test_a_swap_record_naming_a_folder_outside_the_runs_checkpoints_is_left_alone_with_a_warning(tmp_path, caplog,
                                                                                                  into):
    # A hand-edited .replaces.json moved the new files wherever its "into" pointed (out of the run folder; an absolute
    # path on another file system raised EXDEV and stopped the run's start).
    import json
    import logging

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    left = tmp_path / "retired" / "m" / f".new.xyz.{_dead_tag()}.tmp"
    left.mkdir(parents=True)
    (left / "model.pt").write_text("new weights")
    into = into.replace("<tmp>", str(tmp_path))  # an absolute path
    (left / ckpt.REPLACES_FILE).write_text(json.dumps({"into": into, "keep": []}))
    before = sorted(map(str, tmp_path.rglob("*")))
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)
    assert sorted(str(p) for p in tmp_path.rglob("*") if not p.name.endswith(".lock")) == before
    assert (left / "model.pt").read_text() == "new weights" and not (tmp_path / "checkpoints").exists()
    assert not (tmp_path.parent / "outside").exists() and not (tmp_path / "elsewhere").exists()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"{left}: the new files a killed run left there are left as they are")
    assert caplog.records[0].levelno == logging.WARNING


def _killed_between_renames(tmp_path):  # (before them: the old folder not moved yet)
    """A swap of checkpoints/m killed before its renames (by a process of this machine now gone): the member's folder
    with its old model.pt and a temporary folder of new files with their record; returns (folder, retired)."""
    import json

    import nas.checkpoint as ckpt

    folder, retired = _old_folder(tmp_path)
    left = folder / f".new.xyz.{_dead_tag()}.tmp"
    left.mkdir()
    (left / "model.pt").write_bytes(b"new")
    (left / ckpt.REPLACES_FILE).write_text(json.dumps({"into": "../checkpoints/m", "keep": []}))
    return folder, retired


def test_two_runs_starting_together_finish_a_killed_swap_once_the_second_waiting_for_the_first(tmp_path, monkeypatch,
                                                                                              caplog):
    # Two workers of a sweep starting at once: the second scanned retired/ between the first's two renames and moved
    # the new folder itself; the first then failed with FileNotFoundError and its search did not start.
    import logging
    import threading

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    folder, retired = _killed_between_renames(tmp_path)
    real = ckpt.retire_folder
    second_done, waited, failed = threading.Event(), threading.Event(), []

    class Waited(logging.Handler):
        def emit(self, record):
            if "waiting for another run" in record.getMessage():
                waited.set()

    def second():
        try:
            remove_leftovers(tmp_path)
        except BaseException as e:  # noqa: BLE001 (said by the test)
            failed.append(e)
        second_done.set()

    def retire_then_second_run_starts(folder, *, retired):
        dest = real(folder, retired=retired)
        threading.Thread(target=second).start()
        assert waited.wait(10) or second_done.wait(0)  # it waits for the first, or (unlocked) finishes in between
        second_done.wait(0.2)
        return dest

    monkeypatch.setattr(ckpt, "retire_folder", retire_then_second_run_starts)
    logging.getLogger("nas").addHandler(handler := Waited())
    try:
        with caplog.at_level(logging.INFO):
            remove_leftovers(tmp_path)  # the first
            assert second_done.wait(10)
    finally:
        logging.getLogger("nas").removeHandler(handler)
    assert not failed and waited.is_set()
    said = [r.getMessage() for r in caplog.records if "swapped them in" in r.getMessage()]
    assert said == ["checkpoints/m/: the new files that a run killed as it swapped them in left complete are put in "
                    "place; the folder as it was is in retired/m/"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"model.pt": b"new"}
    assert sorted(p.name for p in retired.iterdir()) == ["m"]


def test_a_killed_swap_moved_into_place_by_another_run_meanwhile_is_done_for_the_run_that_moved_the_old_folder(
        tmp_path, monkeypatch):
    # Where the run folder's lock cannot hold the other run back (a file system without flock): the new folder, found
    # in retired/ by another run and renamed into place, made this one's own rename fail with FileNotFoundError.
    import os

    import nas.checkpoint as ckpt

    folder, retired = _killed_between_renames(tmp_path)
    real = ckpt.retire_folder

    def retire_then_other_run_moves_it(folder, *, retired):
        dest = real(folder, retired=retired)
        (new,) = [p for p in dest.iterdir() if p.name.startswith(".new.")]
        os.rename(new, folder)
        return dest

    monkeypatch.setattr(ckpt, "retire_folder", retire_then_other_run_moves_it)
    done = ckpt.finish_replacing(folder, retired=retired)
    assert done == [ckpt.FinishedReplacing(folder, folder, retired / "m")]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"model.pt": b"new"}


def _described_left(folder, *, replaces):
    """A replacing_described of `folder`'s metrics.json killed before its renames (by a process now gone), whose
    record says it replaces the description of identity `replaces`; returns its temporary folder."""
    import json

    import nas.checkpoint as ckpt

    left = folder / f".metrics.json.q.{_dead_tag()}.tmp"
    left.mkdir()
    (left / "model.pt").write_text("A old")
    (left / "metrics.json").write_text('{"A": 1}')
    record = {"described": "metrics.json", "files": ["model.pt"], "made": ["model.pt"], "replaces": replaces}
    (left / ckpt.REPLACES_FILE).write_text(json.dumps(record))
    return left


@pytest.mark.parametrize("before", ["none", "an older one"])
def test_new_files_a_killed_run_left_do_not_replace_the_members_files_made_again_since(tmp_path, caplog, before):
    # A live worker made the member again after the kill: finishing the old record deleted its newer metrics.json and
    # renamed the killed run's older files over its new ones.
    import logging
    import os

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    folder = tmp_path / "checkpoints" / "m"
    folder.mkdir(parents=True)
    replaces = None
    if before == "an older one":
        (folder / "metrics.json").write_text('{"old": 1}')
        replaces = ckpt._identity(folder / "metrics.json")
        os.remove(folder / "metrics.json")
    _described_left(folder, replaces=replaces)
    (folder / "model.pt").write_text("B fresh weights")  # the member made again since
    ckpt.atomic_write_json(folder / "metrics.json", {"B": 1})
    with caplog.at_level(logging.INFO):
        remove_leftovers(tmp_path)
    assert {p.name: p.read_text() for p in folder.iterdir() if p.name != ckpt.MEMBER_LOCK} == {
        "model.pt": "B fresh weights", "metrics.json": '{\n  "B": 1\n}\n'}
    kept = tmp_path / "retired" / "m"
    assert {p.name: p.read_text() for p in kept.iterdir()} == {"model.pt": "A old", "metrics.json": '{"A": 1}'}
    said = [r.getMessage() for r in caplog.records if "swapped them in" in r.getMessage()]
    assert said == ["checkpoints/m/: the new files that a run killed as it swapped them in left complete are kept in "
                    "retired/m/ (the folder was made again since)"]


@pytest.mark.parametrize("left_by", ["replacing_described", "replacing_folder"])
def test_a_runs_start_does_not_wait_for_a_live_process_holding_the_lock_of_a_member_a_killed_run_left_files_in(
        tmp_path, caplog, left_by):
    # A live worker final-training the member (hours) held its lock: the next run's start waited for it to finish.
    import fcntl
    import logging
    import os
    import threading
    import time

    import nas.checkpoint as ckpt
    from nas.run_folder import remove_leftovers

    if left_by == "replacing_described":
        folder = tmp_path / "checkpoints" / "m"
        folder.mkdir(parents=True)
        left = _described_left(folder, replaces=None)
    else:  # killed before its renames
        folder, _ = _killed_between_renames(tmp_path)
        (left,) = folder.glob(".new.*.tmp")
    fd = os.open(folder / ckpt.MEMBER_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live process's lock (released after a while, not to hang without the fix)
    release = threading.Timer(3, fcntl.flock, args=(fd, fcntl.LOCK_UN))
    release.start()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            remove_leftovers(tmp_path)
        took = time.monotonic() - started
    finally:
        release.cancel()
        os.close(fd)
    made = {"replacing_described": ("metrics.json", '{"A": 1}'), "replacing_folder": ("model.pt", "new")}[left_by]
    now = (folder / made[0]).read_text() if (folder / made[0]).is_file() else None
    assert took < 2.5 and left.is_dir() and now != made[1]
    assert not [r for r in caplog.records if "waiting for another process" in r.getMessage()]
    remove_leftovers(tmp_path)  # the lock released: the next run finishes it
    assert (folder / made[0]).read_text() == made[1] and not left.exists()
