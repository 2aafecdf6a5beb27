"""compress.predict: classifying image files with a checkpoint's deployable files."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compress.export import export_openvino
from compress.predict import main, predict
from nas.arch import ArchConfig, StageConfig
from nas.checkpoint import export_onnx, save_checkpoint
from nas.data import UnreadableImageError, read_image
from nas.errors import CheckpointError, ConfigError, DataError
from nas.model import build_model
from nas.stats import accuracy_interval
from conftest import deliver_signal

ARCH = ArchConfig(img_size=16, in_chans=3, num_classes=3,
                  stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
CLASSES = ["blue", "green", "red"]


@pytest.fixture()
def checkpoint(tmp_path):
    """A checkpoint folder as a search leaves it: model.pt, model.onnx, metrics.json (the input contract)."""
    torch.manual_seed(0)
    model = build_model(ARCH).eval()
    model.set_normalization((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", model, ARCH, meta={"classes": CLASSES})
    export_onnx(model, folder / "model.onnx", in_chans=3, img_size=16)
    (folder / "metrics.json").write_text(json.dumps({"input": {"channels": 3, "img_size": 16},
                                                    "output": {"class_names": CLASSES}}))
    return folder, model


@pytest.fixture()
def photos(tmp_path):
    """Square opaque photos of another size than the model's: nothing to warn of beyond what a test adds."""
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "photos" / "sub").mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "photos" / "sub" / f"{i}.png")
    (tmp_path / "photos" / ".hidden.png").write_bytes(b"not an image")
    return tmp_path / "photos"


def test_every_file_gives_the_model_applied_to_the_images_made_as_for_training(checkpoint, photos):
    folder, model = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    # What training saw: Pillow RGB, the whole image stretched to 16x16 (bilinear), uint8 / 255.
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((16, 16), Image.BILINEAR),
                                                 dtype=np.float32) / 255).permute(2, 0, 1) for f in files])
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    export_openvino(folder / "model.onnx", folder / "model_fp32.xml", in_chans=3, img_size=16)
    for name in ("model.pt", "model.onnx", "model_fp32.xml"):
        predictions = predict(folder / name, [photos], top=3)
        assert [p.path for p in predictions] == files  # the folder's images, recursively; the hidden file skipped
        for p, probs in zip(predictions, expected):
            assert list(p.classes) == [CLASSES[j] for j in np.argsort(-probs, kind="stable")]
            np.testing.assert_allclose(p.probabilities, np.sort(probs)[::-1], atol=1e-5)


def test_cut_outs_are_composited_onto_the_background_the_training_images_had(checkpoint, tmp_path):
    folder, _ = checkpoint
    rng = np.random.default_rng(1)
    rgba = (rng.random((16, 16, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = np.where(rng.random((16, 16)) < 0.5, 0, 255)  # half the pixels transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    on_white = np.where(rgba[..., 3:] == 255, rgba[..., :3], 255).astype(np.uint8)
    Image.fromarray(on_white).save(tmp_path / "flat.png")
    metrics = json.loads((folder / "metrics.json").read_text())
    (dropped,), (flat,) = predict(folder / "model.pt", [tmp_path / "cut.png"]), predict(folder / "model.pt", [tmp_path / "flat.png"])
    metrics["input"]["background"] = 255  # the run composited transparency onto white (data.background=255)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (composited,) = predict(folder / "model.pt", [tmp_path / "cut.png"])
    assert composited.probabilities == pytest.approx(flat.probabilities) and composited.classes == flat.classes
    assert dropped.probabilities != pytest.approx(flat.probabilities)


def test_a_checkpoint_folder_runs_its_int8_ir_when_it_has_one(checkpoint, photos, monkeypatch):
    folder, _ = checkpoint
    ran = []
    monkeypatch.setattr("compress.predict._runner", lambda path, contract, **_: ran.append(path.name) or (lambda x: np.zeros((len(x), 3))))
    predict(folder, [photos])
    (folder / "model_int8.xml").write_text("<net/>")
    predict(folder, [photos])
    assert ran == ["model.onnx", "model_int8.xml"]


def test_bad_input_is_one_line(checkpoint, photos, tmp_path):
    folder, _ = checkpoint
    (folder / "arch.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"arch\.json is not a model file; allowed: \.xml, \.onnx, \.pt files"):
        predict(folder / "arch.json", [photos])
    with pytest.raises(DataError, match="image .*none.png not found"):
        predict(folder, [tmp_path / "none.png"])
    assert len(predict(folder, str(photos))) == len(predict(folder, [photos]))  # one path alone: not its characters
    with pytest.raises(ConfigError, match="top=4 must be between 1 and the model's 3 classes"):
        predict(folder, [photos], top=4)
    (folder / "broken.onnx").write_bytes(b"garbage")  # a truncated download, say: onnxruntime's error in one line
    with pytest.raises(CheckpointError, match=r"broken\.onnx is not a readable ONNX model: .*Protobuf parsing failed"):
        predict(folder / "broken.onnx", [photos])
    export_openvino(folder / "model.onnx", folder / "copied.xml", in_chans=3, img_size=16)
    (folder / "copied.bin").unlink()  # an IR copied without its weights: OpenVINO's own cause, not its source files
    with pytest.raises(CheckpointError, match=r"copied\.xml is not a readable OpenVINO IR: [^\n]*bin file cannot be found"):
        predict(folder / "copied.xml", [photos])
    (folder / "metrics.json").unlink()
    with pytest.raises(CheckpointError, match="no metrics.json in .*ck: it says what input the model takes"):
        predict(folder, [photos])



@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"], ids=["SIGINT-ignored", "SIGTERM-default"])
def test_cli_stops_on_a_signal_in_a_process_that_ignores_it_in_one_line_and_leaves_the_csv(checkpoint, photos, tmp_path,
                                                                                           monkeypatch, capsys, signum):
    # `sh -c 'python -m compress.predict model photos/ &'`: a script's background job inherits SIGINT ignored, and
    # `kill -INT` let it read and classify a large folder to its end; Ctrl-C at a terminal ended in a traceback, and
    # SIGTERM killed it without a line.
    import signal
    import time

    import compress.predict as predict_mod

    folder, _ = checkpoint
    sig = signal.Signals[signum]

    def signalled(*args, **kwargs):  # while a batch of images is read
        deliver_signal(sig)
        time.sleep(5)  # the reading going on: a signal ignored lets it run to its end
        raise RuntimeError(f"{signum} was ignored")

    monkeypatch.setattr(predict_mod, "_pixels", signalled)
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("an earlier run's\n")
    as_it_was = signal.SIG_IGN if sig == signal.SIGINT else signal.SIG_DFL
    before = signal.signal(sig, as_it_was)
    try:
        assert main([str(folder), str(photos), "--csv", str(csv_file)]) == 128 + sig  # 130, 143: as the shell says
        assert signal.getsignal(sig) == as_it_was  # as the process had it (no lasting state)
    finally:
        signal.signal(sig, before)
    assert capsys.readouterr().err == (f"interrupted: --csv {csv_file} was not written (a file there is as it was); rerun "
                                       "the same command to classify the images\n")
    assert csv_file.read_text() == "an earlier run's\n"


def test_cli_prints_one_line_per_image_and_writes_csv(checkpoint, photos, tmp_path, capsys):
    folder, _ = checkpoint
    assert main([str(folder), str(photos), "--top", "2", "--csv", str(tmp_path / "out" / "p.csv")]) == 0
    said = capsys.readouterr()
    lines = said.out.splitlines()  # "sub" is no class name: no accuracy line
    assert len(lines) == 3 and lines[0].startswith(str(photos / "sub" / "0.png") + "  ") and lines[0].endswith("%")
    # which file the folder ran (its int8 IR, else model.onnx: this one has no IR) and where the CSV went; on stderr
    assert said.err == (f"classified with {(folder / 'model.onnx').resolve()} in onnxruntime; predictions written to "
                        f"{(tmp_path / 'out' / 'p.csv').resolve()}\n")
    rows = (tmp_path / "out" / "p.csv").read_text().splitlines()
    assert rows[0] == "path,class_1,probability_1,class_2,probability_2" and len(rows) == 4
    # New photos sorted into class folders: the accuracy on them too, from the folder names.
    for name in CLASSES:
        (tmp_path / "labelled" / name).mkdir(parents=True)
        for f in sorted((photos / "sub").glob("*.png")):
            (tmp_path / "labelled" / name / f.name).write_bytes(f.read_bytes())
    assert main([str(folder / "model.pt"), str(tmp_path / "labelled")]) == 0
    said = capsys.readouterr()
    assert said.err == f"classified with {(folder / 'model.pt').resolve()} in torch\n"
    lines = said.out.splitlines()
    # the same 3 images in each of the 3 folders: whatever the model answers, it is right for exactly one folder
    # ... with how little 9 images can tell (nas.stats' interval for 3 of 9)
    low, high = accuracy_interval([3], [9])
    assert len(lines) == 10 and lines[-1] == ("top-1 accuracy on the 9 images whose folder names their class: 33.33% "
                                              f"(3 of 9; 95% interval {100 * low:.1f}-{100 * high:.1f}%)")
    assert 0.10 < low < 0.3333 < high < 0.7
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(tmp_path / "missing.jpg")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip() == f"error: image {tmp_path / 'missing.jpg'} not found"


def test_cli_into_a_closed_pipe_ends_quietly_with_the_csv_written(checkpoint, photos, tmp_path):
    # `python -m compress.predict <model> <images> --csv p.csv | head -3`: the predictions printed after head was gone
    # ended in a BrokenPipeError traceback, before the --csv was written (the predictions made were lost).
    from conftest import run_into_closed_pipe
    from nas.errors import CLOSED_STDOUT_EXIT

    folder, _ = checkpoint
    out = tmp_path / "p.csv"
    done = run_into_closed_pipe(["-m", "compress.predict", str(folder), str(photos), "--csv", str(out)])
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == CLOSED_STDOUT_EXIT == 141, done.stderr
    assert len(out.read_text().splitlines()) == 4  # the header and the 3 images: the work is kept
    assert f"predictions written to {out.resolve()}" in done.stderr  # the lines on stderr are as they were


def test_a_csv_cut_short_mid_write_leaves_the_previous_file_whole(checkpoint, photos, tmp_path):
    # --csv was written in place: a kill or a full disk mid-write left a truncated file that reads as complete.
    import subprocess
    import sys

    from tests.test_latency_tools import _cut_short_at

    folder, _ = checkpoint
    out = tmp_path / "p.csv"
    assert main([str(folder), str(photos), "--top", "3", "--csv", str(out)]) == 0
    before = out.read_bytes()
    assert len(before) > 300  # the limit below cuts the next write short, after its first 300 bytes
    argv = [sys.executable, "-m", "compress.predict", str(folder), str(photos / "sub"), "--top", "2", "--csv", str(out)]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, preexec_fn=_cut_short_at(300))
    assert done.returncode == 1, done.stderr[-2000:]
    # one line (it was a 30-line traceback) naming the file and why, after the predictions it printed
    # in every command's words for a failed write: "cannot write <file> (<why>)" (it was "--csv <file> cannot be written")
    assert done.stderr.splitlines()[-1] == (f"error: cannot write {out} (File too large); the predictions above are not "
                                            "saved in it: free space, or pass another --csv, and rerun")
    assert "Traceback" not in done.stderr and len(done.stdout.splitlines()) == 3
    assert out.read_bytes() == before  # the previous file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "p.csv", "photos"]  # nor a temporary file left


@pytest.mark.parametrize("number, code, said", [
    # the disk's state, not the setting's: said as the failed write after the predictions is, with its exit status 1
    (28, 1, "error: cannot write {out} (No space left on device); free space, or pass another --csv, and rerun"),
    # a folder this user may not write in stays bad input (exit 2), naming the setting and what to pass
    (13, 2, "error: --csv: cannot write a file in the folder '{folder}' (Permission denied); pass a path in a writable folder"),
])
def test_a_csv_folder_the_disk_refuses_before_the_work_is_its_failed_write_not_bad_input(checkpoint, photos, tmp_path,
                                                                                          monkeypatch, capsys, number,
                                                                                          code, said):
    # A full disk or quota met by the check of --csv's folder was refused as bad input, "pass a path in a writable
    # folder", exit 2: the folder was fine, and another one on the same disk fails alike.
    import os
    import tempfile

    folder, _ = checkpoint
    out = tmp_path / "preds" / "p.csv"

    def refused(*args, dir=None, **kwargs):  # the probe file the check creates there
        raise OSError(number, os.strerror(number), os.path.join(str(dir), ".p.csv.x.probe"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    try:  # a refusal is SystemExit(2), as exit_on_error gives it; a failed write the returned status
        status = main([str(folder), str(photos), "--csv", str(out)])
    except SystemExit as e:
        status = e.code
    assert status == code
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == said.format(out=out, folder=out.parent) and "Traceback" not in captured.err
    assert captured.out == "" and not out.exists()  # before the work: nothing classified


def test_a_csv_write_killed_before_its_rename_leaves_a_temporary_file_the_next_run_removes(checkpoint, photos, tmp_path,
                                                                                          capsys):
    # The CSV is written to a tagged temporary file renamed onto it; a kill -9 in between left that file forever.
    import os

    from conftest import start_stopped_writer, stop
    from nas.checkpoint import _temp_beside

    folder, _ = checkpoint
    out = tmp_path / "p.csv"
    killed, temp_of = start_stopped_writer("from nas.checkpoint import atomic_write_text",
                                           "atomic_write_text(Path(sys.argv[1]), 'path,class_1\\n')", str(out))
    left = temp_of()
    stop(killed)
    # a killed writer of another file in the folder (p.csv.bak, whose temporary names also start .p.csv.): not this one's
    other, other_temp_of = start_stopped_writer("from nas.checkpoint import atomic_write_text",
                                                "atomic_write_text(Path(sys.argv[1]), 'x')", str(tmp_path / "p.csv.bak"))
    others_left = other_temp_of()
    stop(other)
    fd, writing = _temp_beside(out)  # a live writer of the same file (this process) is left alone
    os.close(fd)
    assert left.parent == tmp_path and left.name.startswith(".p.csv.") and others_left.name.startswith(".p.csv.bak.")
    capsys.readouterr()
    assert main([str(folder), str(photos), "--csv", str(out)]) == 0
    assert not left.exists() and others_left.is_file() and Path(writing).is_file()
    # the command says what it removed on its own (an info line: without a handler Python showed only warnings)
    assert f"removed 1 temporary file left beside {out.resolve()} by a run that was killed: {left.name}" in capsys.readouterr().err
    assert out.read_text().splitlines()[0] == "path,class_1,probability_1" and len(out.read_text().splitlines()) == 4


def test_cli_adds_balanced_accuracy_for_a_checkpoint_scored_by_it(checkpoint, photos, tmp_path, capsys):
    from compress.predict import folder_balanced_accuracy

    folder, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    answer = {f.name: predict(folder, [f])[0].classes[0] for f in files}
    # Unequal class folders: all 3 images under the class the model gives the first one, that one alone under another.
    right, other = answer[files[0].name], next(c for c in CLASSES if c != answer[files[0].name])
    for name, chosen in ((right, files), (other, files[:1])):
        (tmp_path / "labelled" / name).mkdir(parents=True)
        for f in chosen:
            (tmp_path / "labelled" / name / f.name).write_bytes(f.read_bytes())
    predictions = predict(folder, [tmp_path / "labelled"])
    right_in = sum(answer[f.name] == right for f in files)
    assert folder_balanced_accuracy(predictions, CLASSES) == pytest.approx((right_in / 3 + 0 / 1) / 2)
    main([str(folder), str(tmp_path / "labelled")])
    assert not any(line.startswith("balanced accuracy") for line in capsys.readouterr().out.splitlines())  # plain run
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "metric": "balanced_accuracy"}))
    main([str(folder), str(tmp_path / "labelled")])
    low, high = accuracy_interval([right_in, 0], [3, 1], balanced=True)  # the folders' own uncertainties, combined
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"balanced accuracy (the mean over the 2 class folders): {100 * (right_in / 3) / 2:.2f}% "
        f"(95% interval {100 * low:.1f}-{100 * high:.1f}%)")


def test_class_folders_with_subfolders_are_labelled_as_for_training(checkpoint, photos, tmp_path, capsys):
    folder, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    answer = {f.name: predict(folder, [f])[0].classes[0] for f in files}
    # new photos sorted as a training folder may be: class folders holding a subfolder per day
    for name in CLASSES:
        (tmp_path / "new" / name / "2024-06").mkdir(parents=True)
        for f in files:
            (tmp_path / "new" / name / "2024-06" / f.name).write_bytes(f.read_bytes())
    right = sum(answer[f.name] == name for name in CLASSES for f in files)  # 3: one class folder is right per image
    assert main([str(folder), str(tmp_path / "new")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        f"top-1 accuracy on the 9 images whose folder names their class: {100 * right / 9:.2f}% ({right} of 9;")
    # one class folder given: its subfolders' images are that class
    from compress.predict import folder_labels

    assert folder_labels(predict(folder, [tmp_path / "new" / "red"]), CLASSES) == ["red"] * 3
    # a folder named like a class above the folder given labels nothing: /home/me/red/unsorted/ is not sorted
    (tmp_path / "red" / "unsorted").mkdir(parents=True)
    (tmp_path / "red" / "unsorted" / "a.png").write_bytes(files[0].read_bytes())
    assert folder_labels(predict(folder, [tmp_path / "red" / "unsorted"]), CLASSES) is None


def test_an_image_named_twice_is_classified_and_counted_once(checkpoint, photos, tmp_path, capsys, caplog):
    # `compress.predict ck new/red/a.png new/` (a photo checked alone, then its folder): the photo was printed and
    # counted twice, "top-1 accuracy on the 4 images" of 3, its verdict weighing double and the interval narrower.
    folder, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    (tmp_path / "new" / "red").mkdir(parents=True)
    for f in files:
        (tmp_path / "new" / "red" / f.name).write_bytes(f.read_bytes())
    once = predict(folder, [tmp_path / "new"])
    # at_level: a Hydra run earlier in the session (compress.run's tests) leaves the loggers' levels where caplog misses it
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        twice = predict(folder, [tmp_path / "new" / "red" / files[0].name, tmp_path / "new", tmp_path / "new" / "red"])
    assert [p.path for p in twice] == [tmp_path / "new" / "red" / files[0].name] + [p.path for p in once[1:]]
    assert "4 image files named more than once are classified once" in caplog.text  # the photo, and new/red/ again
    assert main([str(folder), str(tmp_path / "new" / "red" / files[0].name), str(tmp_path / "new")]) == 0
    assert "top-1 accuracy on the 3 images whose folder names their class" in capsys.readouterr().out


def test_a_class_name_with_a_slash_is_found_in_a_folder_named_with_an_underscore(tmp_path):
    from compress.predict import Prediction, folder_accuracy, folder_labels

    classes = ["T-shirt/top", "Trouser"]  # Fashion-MNIST's class 0: no folder name can hold the "/"
    predictions = [Prediction(tmp_path / folder / "a.png", (top, "x"), (0.9, 0.1))
                   for folder, top in (("T-shirt_top", "T-shirt/top"), ("Trouser", "T-shirt/top"))]
    assert folder_labels(predictions, classes) == ["T-shirt/top", "Trouser"]
    assert folder_accuracy(predictions, classes) == (1, 2)
    assert folder_labels([Prediction(tmp_path / "Shirt" / "a.png", ("Trouser",), (1.0,))], classes) is None


def test_a_class_folder_named_in_another_unicode_form_is_its_class(tmp_path):
    import unicodedata

    from compress.predict import Prediction, folder_accuracy, folder_labels

    classes = ["carr\u00e9", "rond"]  # composed, as Linux tools write it (the run's class names)
    mac = unicodedata.normalize("NFD", classes[0])  # "carre\u0301": the same name as a Mac writes it
    predictions = [Prediction(tmp_path / mac / "a.png", (classes[0],), (1.0,)),
                   Prediction(tmp_path / "rond" / "b.png", (classes[0],), (1.0,))]
    assert folder_labels(predictions, classes) == classes
    assert folder_accuracy(predictions, classes) == (1, 2)
    # and the other way round: a run trained on a Mac's names, new photos sorted on Linux
    assert folder_labels([Prediction(tmp_path / classes[0] / "a.png", (mac,), (1.0,))], [mac, "rond"]) == [mac]


def test_predictions_of_a_file_and_class_that_are_not_utf8_are_written_with_backslash_x(tmp_path):
    # Latin-1 names from an old zip: the --csv's write (str.encode) raised UnicodeEncodeError after the whole run, and
    # the lines on a strict UTF-8 stdout (a UTF-8 locale) raised too.
    import os

    from compress.predict import Prediction, format_predictions, predictions_csv

    latin1 = os.fsdecode(b"caf\xe9")
    predictions = [Prediction(Path(latin1) / os.fsdecode(b"\xe9t\xe9.png"), (latin1, "dog"), (0.75, 0.25)),
                   Prediction(Path("dog") / "\u00e9t\u00e9.png", ("dog", latin1), (0.5, 0.5))]
    text = predictions_csv(predictions)
    text.encode("utf-8")
    assert text.splitlines() == ["path,class_1,probability_1,class_2,probability_2",
                                 "caf\\xe9/\\xe9t\\xe9.png,caf\\xe9,0.750000,dog,0.250000",
                                 "dog/\u00e9t\u00e9.png,dog,0.500000,caf\\xe9,0.500000"]
    assert format_predictions(predictions).splitlines() == ["caf\\xe9/\\xe9t\\xe9.png  caf\\xe9 75.0%  dog 25.0%",
                                                            "dog/\u00e9t\u00e9.png  dog 50.0%  caf\\xe9 50.0%"]


@pytest.mark.parametrize("name", ["model.pt", "model.onnx", "model.xml"])
def test_a_model_file_that_takes_other_images_than_metrics_json_says_is_one_line(checkpoint, photos, name):
    folder, _ = checkpoint
    export_openvino(folder / "model.onnx", folder / "model.xml", in_chans=3, img_size=16)
    # metrics.json of another member (1 channel, 20 px), as when a model file is copied into the wrong folder
    (folder / "metrics.json").write_text(json.dumps({"input": {"channels": 1, "img_size": 20},
                                                    "output": {"class_names": CLASSES}}))
    with pytest.raises(CheckpointError, match=rf"{name} takes 3x16x16 \(channels x height x width\) images but "
                                              r".*metrics\.json describes 1x20x20"):
        predict(folder / name, [photos])


def test_a_run_folder_as_model_names_its_checkpoint_folders(checkpoint, photos, tmp_path):
    folder, _ = checkpoint  # tmp_path/ck
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    folder.rename(run / "checkpoints" / "abc123")
    (run / "checkpoints" / "not_a_member").mkdir()  # no metrics.json: not named
    member = run / "checkpoints" / "abc123"
    for given in (run, run / "checkpoints"):  # the run folder a search printed, or its checkpoints/ folder
        with pytest.raises(CheckpointError, match=rf"{given} is no checkpoint folder; pass one of its members: "
                                                  rf"{member}$"):
            predict(given, [photos])
    assert len(predict(member, [photos])) == 3


def test_a_folder_without_images_names_the_image_suffixes_read(checkpoint, tmp_path):
    folder, _ = checkpoint
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"docs holds no image files \(.*\.jpg .*\.png .*\), in it or its subfolders"):
        predict(folder, [tmp_path / "docs"])


def test_photos_of_formats_that_are_not_read_are_named_in_a_warning_as_in_training(checkpoint, photos, caplog):
    import nas.data

    folder, _ = checkpoint
    (photos / "sub" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # an iPhone photo beside the .pngs
    (photos / "IMG_0002.avif").write_bytes(b"\x00\x00\x00\x1cftypavif")
    (photos / "notes.txt").write_text("not an image: counted at the end of the line, not in one of its own")
    with caplog.at_level(logging.INFO, logger="compress.predict"):
        predictions = predict(folder, [photos])
    assert len(predictions) == 3  # the .pngs only
    assert [r.getMessage() for r in caplog.records if r.name == "compress.predict"] == [
        f"{photos}: 2 image files of formats that are not read are left out (1 .avif, 1 .heic; e.g. "
        f"{photos / 'IMG_0002.avif'}); convert them to one of {' '.join(sorted(nas.data.IMAGE_SUFFIXES))} to classify "
        "them; 1 other file that is not an image is skipped too (e.g. notes.txt)"]


def test_files_that_are_not_images_in_a_folder_given_are_counted_in_one_plain_line(checkpoint, photos, capsys):
    # notes.txt beside the photos (or one saved as .svg) was skipped without a word: one info line, not a warning
    import nas.data

    folder, _ = checkpoint
    (photos / "notes.txt").write_text("my notes")
    (photos / "sub" / "logo.svg").write_text("<svg/>")
    assert main([str(folder), str(photos)]) == 0
    said = capsys.readouterr()
    assert len(said.out.splitlines()) == 3
    assert said.err.splitlines()[0] == (f"{photos}: skipped 2 files that are not images (e.g. notes.txt); only "
                                        f"{' '.join(sorted(nas.data.IMAGE_SUFFIXES))} are read")
    assert said.err.splitlines()[1].startswith("classified with ")


def test_the_command_run_with_python_m_shows_its_info_lines_and_marks_its_warnings(checkpoint, photos, tmp_path):
    # Run as `python -m compress.predict`, the module is "__main__": its logger was "__main__", outside the "compress"
    # loggers the command shows, so the line counting notes.txt was lost and the not-square warning lacked "warning: "
    # (main() called from Python, as the tests above do, was fine).
    import subprocess
    import sys

    folder, _ = checkpoint
    (photos / "notes.txt").write_text("my notes")
    Image.new("RGB", (30, 20)).save(photos / "wide.png")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "compress.predict", str(folder), str(photos)], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"{photos}: skipped 1 file that is not an image (e.g. notes.txt)"), done.stderr
    assert lines[1].startswith("warning: 1 of 4 images is not square"), done.stderr


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "photo.avif", "notes.txt", "photo"])
def test_a_single_file_of_a_format_that_is_not_read_is_one_line_naming_the_formats_read(checkpoint, tmp_path, capsys, name):
    # A folder leaves such files out with a warning; one named itself failed with Pillow's "cannot identify image file",
    # which named no format that works.
    import nas.data

    folder, _ = checkpoint
    (tmp_path / name).write_bytes(b"\x00\x00\x00\x18ftypheic")
    said = (f"{tmp_path / name} is not of an image format that is read ({Path(name).suffix or 'no suffix'}); convert it "
            f"to one of {' '.join(sorted(nas.data.IMAGE_SUFFIXES))} to classify it")
    with pytest.raises(DataError) as refused:
        predict(folder, [tmp_path / name])
    assert str(refused.value) == said
    with pytest.raises(SystemExit) as exited:
        main([str(folder), str(tmp_path / name)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err == f"error: {said}\n" and "cannot identify" not in err


@pytest.mark.parametrize(("name", "what"), [("Thumbs.db", "Windows' thumbnail cache"),
                                            ("desktop.ini", "Windows' folder settings"),
                                            ("ehthumbs.db", "Windows Media Center's thumbnail cache"),
                                            (".DS_Store", "macOS Finder's folder settings")])
def test_a_file_the_os_leaves_among_photos_is_named_as_what_it_is(checkpoint, photos, capsys, caplog, name, what):
    # `photos/*` takes Thumbs.db along: it was refused with advice to convert it to an image format, as if it were a
    # photo of another format.
    import nas.data

    folder, _ = checkpoint
    (photos / "sub" / name).write_bytes(b"\x00" * 64)
    said = (f"{photos / 'sub' / name} is {what}, not an image: leave it out, or name its folder, which skips it (the "
            f"image formats read: {' '.join(sorted(nas.data.IMAGE_SUFFIXES))})")
    with pytest.raises(DataError) as refused:
        predict(folder, [photos / "sub" / "0.png", photos / "sub" / name])
    assert str(refused.value) == said
    with pytest.raises(SystemExit) as exited:
        main([str(folder), str(photos / "sub" / name)])
    assert exited.value.code == 2 and capsys.readouterr().err == f"error: {said}\n"
    with caplog.at_level(logging.WARNING, logger="compress.predict"):  # as said: its folder skips it, without a word
        assert len(predict(folder, [photos / "sub"])) == 3
    assert not [r for r in caplog.records if r.name == "compress.predict"]


def test_images_are_read_and_classified_one_batch_at_a_time_as_one_pass_over_all_of_them(checkpoint, tmp_path, monkeypatch):
    import nas.data

    folder, _ = checkpoint
    rng = np.random.default_rng(2)
    for i in range(7):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    export_openvino(folder / "model.onnx", folder / "model_fp32.xml", in_chans=3, img_size=16)
    read = []
    real_read = nas.data.read_images  # imported by compress.predict where it reads a batch
    monkeypatch.setattr(nas.data, "read_images", lambda files, **k: read.append(len(files)) or real_read(files, **k))
    for name in ("model.pt", "model.onnx", "model_fp32.xml"):
        read.clear()
        whole = predict(folder / name, [tmp_path], top=3)  # the 7 images in one batch of 64
        assert read == [7]
        read.clear()
        pieces = predict(folder / name, [tmp_path], top=3, batch_size=3)
        # memory holds 3 images at a time, not every image given; each image is scored as in the one batch
        assert read == [3, 3, 1] and [p.path for p in pieces] == [p.path for p in whole]
        assert [p.classes for p in pieces] == [p.classes for p in whole]
        np.testing.assert_allclose([p.probabilities for p in pieces], [p.probabilities for p in whole], rtol=0, atol=1e-6)


def test_the_batch_shrinks_to_what_fits_the_memory_budget(checkpoint, tmp_path, monkeypatch, capsys):
    import nas.data
    from nas.memory import activation_bytes

    folder, _ = checkpoint
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    read = []
    real_read = nas.data.read_images  # imported by compress.predict where it reads a batch
    monkeypatch.setattr(nas.data, "read_images", lambda files, **k: read.append(len(files)) or real_read(files, **k))
    budget_gb = activation_bytes(ARCH, batch_size=2) / 2**30  # a fake budget: the forward pass of 2 images, not 3
    roomy = predict(folder / "model.pt", [tmp_path], top=3)
    read.clear()
    tight = predict(folder / "model.pt", [tmp_path], top=3, memory_budget_gb=budget_gb)  # the checkpoint's own arch
    assert read == [2, 2, 1] and [p.classes for p in tight] == [p.classes for p in roomy]
    np.testing.assert_allclose([p.probabilities for p in tight], [p.probabilities for p in roomy], rtol=0, atol=1e-6)
    # a deployed file is sized by its folder's arch.json (as a search writes it); without one, batches are as asked
    read.clear()
    predict(folder / "model.onnx", [tmp_path], memory_budget_gb=budget_gb)
    assert read == [5]
    (folder / "arch.json").write_text(ARCH.to_json())
    read.clear()
    predict(folder / "model.onnx", [tmp_path], memory_budget_gb=budget_gb)
    assert read == [2, 2, 1]
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(tmp_path), "--memory-budget-gb", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: --memory-budget-gb=0.0 must be a number in (0, 65536]: GiB of working memory "
                                               "(activations and the kernels' code) one batch of images may take (left "
                                               "out: 70% of the memory available)")


def test_a_memory_budget_above_the_machines_memory_is_warned_about_as_a_search_warns(checkpoint, photos, monkeypatch,
                                                                                      capsys, caplog):
    # --memory-budget-gb 4 on a machine of 3 GiB sized its batches for 4 GiB without a word, to the out-of-memory
    # killer; a search given such a search.memory_budget_gb is warned. Named as the caller typed it.
    import compress.predict

    folder, _ = checkpoint
    monkeypatch.setattr(compress.predict, "machine_memory_bytes", lambda: (3 * 2**30, "RAM"))
    assert main([str(folder), str(photos), "--memory-budget-gb", "4"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        "warning: --memory-budget-gb=4 is more than this machine's memory (3 GiB, RAM): batches too large for it are "
        "not made smaller and the out-of-memory killer ends the command instead; set it below 3 on this machine (left "
        "out: 70% of the memory available)")
    caplog.clear()  # the command's line
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [photos], memory_budget_gb=2.5)
        assert not [r for r in caplog.records if "memory" in r.getMessage()]
        predict(folder, [photos], memory_budget_gb=3.5)
    assert [r.getMessage() for r in caplog.records if "memory" in r.getMessage()] == [
        "memory_budget_gb=3.5 is more than this machine's memory (3 GiB, RAM): batches too large for it are not made "
        "smaller and the out-of-memory killer ends the command instead; set it below 3 on this machine (left out: 70% "
        "of the memory available)"]


def test_bad_settings_are_named_as_the_caller_typed_them(checkpoint, photos, capsys):
    # `python -m compress.predict ... --top 4` said "top=4 must be ...": a keyword of the Python function, which the
    # command-line user never typed; Python callers keep their keywords' names.
    folder, _ = checkpoint
    for argv, said in ((["--top", "4"], "--top=4 must be between 1 and the model's 3 classes"),
                       (["--top", "0"], "--top=0 must be between 1 and the model's 3 classes"),
                       (["--memory-budget-gb", "-1"], "--memory-budget-gb=-1.0 must be a number in (0, 65536]: GiB of"),
                       # inf ended in a traceback (OverflowError) when the budget was turned into bytes
                       (["--memory-budget-gb", "inf"], "--memory-budget-gb=inf must be a number in (0, 65536]: GiB of")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(folder), str(photos), *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {said}") and "\n" not in err
    with pytest.raises(ConfigError, match=r"^top=4 must be between 1 and the model's 3 classes$"):
        predict(folder, [photos], top=4)
    with pytest.raises(ConfigError, match=r"^memory_budget_gb=-1 must be a number in \(0, 65536\]"):
        predict(folder, [photos], memory_budget_gb=-1)


def _compressed_alone(folder: Path, *, channels: int, img_size: int, classes: list[str]) -> None:
    """The folder as `python -m compress.run` leaves a checkpoint compressed outside a search: no metrics.json, the
    contract in compressed_metrics.json."""
    (folder / "metrics.json").unlink()
    (folder / "compressed_metrics.json").write_text(json.dumps({
        "input": {"channels": channels, "img_size": img_size}, "output": {"class_names": classes}}))


def test_an_input_shape_mismatch_names_compressed_metrics_json_where_the_contract_came_from_it(checkpoint, photos):
    # It named <folder>/metrics.json, which a checkpoint compressed alone does not have.
    folder, _ = checkpoint
    _compressed_alone(folder, channels=1, img_size=20, classes=CLASSES)
    with pytest.raises(CheckpointError, match=rf"model.onnx takes 3x16x16 \(channels x height x width\) images but "
                                              rf"{folder / 'compressed_metrics.json'} describes 1x20x20"):
        predict(folder / "model.onnx", [photos])


def test_a_logit_count_mismatch_names_compressed_metrics_json_where_the_contract_came_from_it(checkpoint, photos):
    folder, _ = checkpoint
    _compressed_alone(folder, channels=3, img_size=16, classes=[*CLASSES, "grey"])
    with pytest.raises(CheckpointError, match=r"model.onnx gives 3 logits but compressed_metrics.json names 4 classes$"):
        predict(folder / "model.onnx", [photos])


def test_a_model_file_whose_recorded_sha256_differs_is_one_line_saying_to_compress_again(checkpoint, photos, capsys,
                                                                                          monkeypatch):
    import hashlib

    folder, _ = checkpoint
    export_openvino(folder / "model.onnx", folder / "model_int8.xml", in_chans=3, img_size=16)
    (folder / "model_pruned.onnx").write_bytes((folder / "model.onnx").read_bytes())
    names = ("model_int8.bin", "model_int8.xml", "model_pruned.onnx")
    record = {"file_sha256": {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}}
    (folder / "compressed_metrics.json").write_text(json.dumps(record))
    hashed: list[str] = []
    digest = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, *a, **k: hashed.append(Path(f.name).name) or digest(f, *a, **k))
    assert main([str(folder), str(photos)]) == 0  # the IR runs: its .xml and the .bin of its weights checked, once each
    assert sorted(hashed) == ["model_int8.bin", "model_int8.xml"]
    capsys.readouterr()
    hashed.clear()
    assert len(predict(folder / "model.onnx", [photos])) == 3  # the search's file: no digest recorded, none computed
    assert hashed == []

    for name, runs in (("model_int8.bin", folder), ("model_pruned.onnx", folder / "model_pruned.onnx")):
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0xFF  # a damaged copy of the same size
        (folder / name).write_bytes(bytes(data))
        with pytest.raises(SystemExit) as exited:
            main([str(runs), str(photos)])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err == (f"error: {folder / name} is not the file compressed_metrics.json records (its SHA-256 differs: "
                       f"damaged or changed since it was written); rerun python -m compress.run checkpoint={folder} to "
                       "write it again\n")

    # a compression before file_sha256: nothing to check the damaged file against, so it runs
    (folder / "compressed_metrics.json").write_text(json.dumps({}))
    assert len(predict(folder / "model_int8.xml", [photos])) == 3


def test_a_three_channel_model_trained_on_grey_idx_images_gets_each_photo_grey_repeated_as_in_training(checkpoint,
                                                                                                       photos):
    # data=fashion_mnist data.channels=3 trains on grey images repeated into 3 channels (metrics.json's
    # input.preprocessing says so), but compress.predict fed it a colour photo as RGB: an input unlike any it was trained
    # or tested on, so its predictions were not what the deployed model gets from frames made as the contract says.
    folder, model = checkpoint
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"]["preprocessing"] = "idx grey images resized to 16x16 (bilinear, antialiased); grey repeated into 3 channels; uint8 / 255"
    (folder / "metrics.json").write_text(json.dumps(metrics))
    files = sorted((photos / "sub").glob("*.png"))
    grey = [np.asarray(Image.open(f).convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32) / 255 for f in files]
    x = torch.from_numpy(np.stack([np.stack([g, g, g]) for g in grey]))
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    for p, probs in zip(predict(folder / "model.onnx", [photos], top=3), expected):
        np.testing.assert_allclose(p.probabilities, np.sort(probs)[::-1], atol=1e-5)


@pytest.mark.parametrize("argv, said", [
    (["ck", "a.jpg", "--frob"], "unrecognized arguments: --frob"),
    (["ck", "a.jpg", "--top", "x"], "argument --top: invalid int value: 'x'"),
    (["ck"], "the following arguments are required: images"),
])
def test_a_command_line_argparse_refuses_is_one_line_and_exit_2_as_every_refusal(argv, said, capsys):
    # argparse printed its usage (four lines in an 80-column terminal), then "python -m compress.predict: error: ...":
    # five lines, where every other refusal of the toolkit's commands (nas.report's of its command line too) is one.
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err == (f"error: {said}; python -m compress.predict takes a model and image files or folders, with the options "
                   "--top, --csv, --memory-budget-gb, --skip-unreadable (python -m compress.predict --help says what each "
                   "is)\n")


def test_help_names_every_model_file_it_runs_and_ends_its_description_with_a_full_stop(capsys):
    # --help named model_int8.xml / model.onnx / model.pt only, though model_int8.onnx (the int8 file an NPU compiler
    # takes) runs too, and its description ended in the docstring's ":".
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "model_int8.onnx" in text and "model_int8.xml" in text
    assert "its training images were made." in text and "made:" not in text


def test_a_damaged_files_message_reruns_compress_run_for_the_chip_it_was_compressed_for(tmp_path):
    # "rerun python -m compress.run checkpoint=<folder>" compressed for the default chip, not the one recorded: the
    # command now names compressed_metrics.json's hw (quoted as a pasted command needs), and only checkpoint= without it.
    from compress.predict import _check_recorded_digests

    folder = tmp_path / "my ck"
    folder.mkdir()
    (folder / "model_int8.onnx").write_bytes(b"damaged")
    recorded = {"file_sha256": {"model_int8.onnx": "0" * 64}}
    for metrics, command in (({**recorded, "hw": "edge_npu"}, f"\"checkpoint='{folder}'\" hw=edge_npu"),
                             (recorded, f"\"checkpoint='{folder}'\"")):
        (folder / "compressed_metrics.json").write_text(json.dumps(metrics))
        with pytest.raises(CheckpointError) as e:
            _check_recorded_digests(folder / "model_int8.onnx")
        assert str(e.value).endswith(f"; rerun python -m compress.run {command} to write it again"), str(e.value)


def test_photos_partly_sorted_into_class_folders_say_why_no_accuracy_is_printed(checkpoint, photos, tmp_path, capsys):
    # New photos sorted into class folders, one folder misnamed ("Red", the class is "red") or left unsorted: the
    # accuracy line was silently missing, and nothing said which folder stopped it.
    folder, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    for name in ("blue", "green", "Red"):
        (tmp_path / "new" / name).mkdir(parents=True)
        for f in files:
            (tmp_path / "new" / name / f.name).write_bytes(f.read_bytes())
    assert main([str(folder), str(tmp_path / "new")]) == 0
    said = capsys.readouterr()
    assert len(said.out.splitlines()) == 9 and "accuracy" not in said.out
    assert said.err.splitlines()[0] == (
        f"no top-1 accuracy: 3 of 9 images lie in no folder named after a class (e.g. {tmp_path / 'new' / 'Red'}); "
        "that folder is named as the class 'red' but for case, and folder names are matched exactly: "
        "rename it 'red'; the model's classes: blue, green, red")  # the folder named once, not twice
    # photos in no class folder at all (the usual case): nothing to say
    assert main([str(folder), str(photos)]) == 0
    assert capsys.readouterr().err.startswith("classified with ")


def test_photos_sorted_into_folders_named_as_the_classes_but_for_case_say_so(checkpoint, photos, tmp_path, capsys):
    # Every new photo sorted into "Blue", "Green", "Red" for the classes blue, green and red: neither the accuracy nor
    # a word about it, as for photos in no class folder at all.
    folder, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    for name in ("Blue", "GREEN", "Red"):
        (tmp_path / "new" / name / "2024").mkdir(parents=True)
        for f in files:
            (tmp_path / "new" / name / "2024" / f.name).write_bytes(f.read_bytes())
    assert main([str(folder), str(tmp_path / "new")]) == 0
    said = capsys.readouterr()
    assert "accuracy" not in said.out
    assert said.err.splitlines()[0] == (
        f"no top-1 accuracy: 9 of 9 images lie in no folder named after a class (e.g. {tmp_path / 'new' / 'Blue' / '2024'}); "
        f"{tmp_path / 'new' / 'Blue'} is named as the class 'blue' but for case, and folder names are matched exactly: "
        "rename it 'blue'; the model's classes: blue, green, red")
    # the folder given is no class folder, though named as one but for case: a folder above the photos says nothing
    assert main([str(folder), str(tmp_path / "new" / "Red" / "2024")]) == 0
    assert capsys.readouterr().err.startswith("classified with ")


def _damaged_int8_member(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder and its member a1 whose model_int8.onnx no longer has the digest compressed_metrics.json records."""
    run = tmp_path / "runs" / "study"
    folder = run / "checkpoints" / "a1"
    folder.mkdir(parents=True)
    (folder / "model_int8.onnx").write_bytes(b"damaged")
    (folder / "compressed_metrics.json").write_text(json.dumps({"file_sha256": {"model_int8.onnx": "0" * 64},
                                                                "hw": "edge_npu"}))
    return run, folder


def test_a_damaged_files_rerun_command_names_the_image_folder_settings_of_the_members_search(tmp_path):
    # A member searched on an image folder: "rerun python -m compress.run checkpoint=<folder> hw=<chip>" was refused by
    # compress.run in turn, naming data=imagefolder, the data.root, size, channels and background to pass (and then the
    # split and data.metric): a second step. The command now names them, from the member's metrics.json and its run's
    # pareto.json, each one shell argument that reaches Hydra as compress.run needs it.
    import shlex

    from hydra import compose, initialize_config_dir

    from compress.predict import _check_recorded_digests
    from nas.config import CONF_DIR

    root = tmp_path / "my photos"  # a space: quoted as the data-shape refusal quotes it
    root.mkdir()
    run, folder = _damaged_int8_member(tmp_path)
    (run / "pareto.json").write_text(json.dumps({"data": {"root": str(root)}}))
    split = {"split_seed": 3, "val_size": 0.1, "test_size": 0.3, "stratify": True}
    (folder / "metrics.json").write_text(json.dumps({
        "dataset": "imagefolder", "metric": "balanced_accuracy", "input": {"channels": 3, "img_size": 64, "background": 255},
        "output": {"class_names": CLASSES}, "test_images": {"digest": "0" * 16, "count": 9, "split": split}}))
    with pytest.raises(CheckpointError) as e:
        _check_recorded_digests(folder / "model_int8.onnx")
    command = (f"python -m compress.run checkpoint={folder} hw=edge_npu data=imagefolder \"data.root='{root}'\" "
               "data.img_size=64 data.channels=3 data.background=255 data.split_seed=3 data.test_size=0.3 "
               "data.metric=balanced_accuracy")
    assert str(e.value).endswith(f"; rerun {command} to write it again"), str(e.value)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # as the shell hands it to Hydra
        data = compose(config_name="compress_run", overrides=shlex.split(command)[3:]).data
    assert (data.name, data.root, data.img_size, data.channels, data.background, data.split_seed, data.test_size,
            data.metric) == ("imagefolder", str(root), 64, 3, 255, 3, 0.3, "balanced_accuracy")

    # Fashion-MNIST scored for accuracy (compress.run's default data) needs no data settings: the line stays as it was
    (folder / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist", "metric": "accuracy",
                                                    "input": {"channels": 1, "img_size": 28}}))
    with pytest.raises(CheckpointError) as e:
        _check_recorded_digests(folder / "model_int8.onnx")
    assert str(e.value).endswith(f"; rerun python -m compress.run checkpoint={folder} hw=edge_npu to write it again")


def test_a_damaged_files_rerun_command_names_the_size_fashion_mnist_was_searched_at(tmp_path):
    # Fashion-MNIST searched at data.img_size=32 data.channels=3: "rerun python -m compress.run checkpoint=<folder>
    # hw=<chip>" loaded it at its native 1x28x28 and was refused, naming data.img_size=32 data.channels=3: a second
    # step. The command now names them, from the run's config.yaml (the native size is known only from the files).
    import shlex

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from compress.predict import _check_recorded_digests
    from nas.config import CONF_DIR, register_configs

    register_configs()
    run, folder = _damaged_int8_member(tmp_path)
    (folder / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist", "metric": "accuracy",
                                                    "input": {"channels": 3, "img_size": 32}}))

    def rerun(*searched: str) -> str:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # the search's config.yaml
            (run / "config.yaml").write_text(OmegaConf.to_yaml(compose(config_name="search", overrides=list(searched))))
        with pytest.raises(CheckpointError) as e:
            _check_recorded_digests(folder / "model_int8.onnx")
        return str(e.value).split("; rerun ")[-1].removesuffix(" to write it again")

    command = rerun("data.img_size=32", "data.channels=3")
    assert command == (f"python -m compress.run checkpoint={folder} hw=edge_npu data=fashion_mnist data.img_size=32 "
                       "data.channels=3")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # as the shell hands it to Hydra
        data = compose(config_name="compress_run", overrides=shlex.split(command)[3:]).data
    assert (data.name, data.img_size, data.channels) == ("fashion_mnist", 32, 3)
    # only the setting that differs from compress.run's default; at its native size, none
    assert rerun("data.channels=3").endswith("hw=edge_npu data=fashion_mnist data.channels=3")
    assert rerun().endswith(f"checkpoint={folder} hw=edge_npu")
    (run / "config.yaml").write_text("data: [")  # unreadable: the line as before, compress.run's refusal names the rest
    with pytest.raises(CheckpointError) as e:
        _check_recorded_digests(folder / "model_int8.onnx")
    assert str(e.value).endswith(f"checkpoint={folder} hw=edge_npu to write it again")


def test_a_damaged_files_rerun_command_names_the_split_and_root_the_search_recorded(tmp_path):
    # The command named the data settings the member's metrics.json records alone: a search of Fashion-MNIST in
    # another folder at data.val_size=0.2 data.split_seed=3 got none of them (pasted, it loaded another split), and an
    # image folder moved since its search was named at its old place, as if the images were there.
    import yaml

    from compress.predict import _check_recorded_digests

    fashion = tmp_path / "fashion"
    fashion.mkdir()
    run, folder = _damaged_int8_member(tmp_path)
    (folder / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist", "metric": "accuracy",
                                                    "input": {"channels": 1, "img_size": 28}}))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "fashion_mnist", "format": "idx",
                                                              "root": str(fashion), "val_size": 0.2, "split_seed": 3}}))

    def rerun() -> str:
        with pytest.raises(CheckpointError) as e:
            _check_recorded_digests(folder / "model_int8.onnx")
        return str(e.value).split("; rerun ")[-1].removesuffix(" to write it again")

    assert rerun() == (f"python -m compress.run checkpoint={folder} hw=edge_npu data=fashion_mnist data.root={fashion} "
                       "data.val_size=0.2 data.split_seed=3")
    images = tmp_path / "images"  # an image folder searched at its own split, moved since
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "imagefolder", "format": "imagefolder",
                                                              "root": "images", "img_size": 12, "val_size": 0.25}}))
    (run / "pareto.json").write_text(json.dumps({"data": {"root": str(images)}}))
    (folder / "metrics.json").write_text(json.dumps({"dataset": "imagefolder", "metric": "accuracy",
                                                    "input": {"channels": 3, "img_size": 12}}))
    assert rerun() == (f"python -m compress.run checkpoint={folder} hw=edge_npu data=imagefolder "
                       f"data.root=<its image folder, {images} when searched> data.img_size=12 data.val_size=0.25")


def _camera_dump(photos: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A folder of the photos' 3 images with two files that cannot be decoded among them: one cut short to nothing, one
    that is no image at all (a camera's half-written file, a sidecar saved under .jpg)."""
    dump = tmp_path / "dump"
    dump.mkdir()
    for f in sorted((photos / "sub").glob("*.png")):
        (dump / f.name).write_bytes(f.read_bytes())
    (dump / "1b.jpg").write_bytes(b"")
    (dump / "2b.jpg").write_bytes(b"not an image")
    return dump, sorted(dump.glob("?.png"))


def test_unreadable_images_stop_the_run_in_one_line_that_names_the_option_to_skip_them(checkpoint, photos, tmp_path, capsys):
    folder, _ = checkpoint
    dump, _ = _camera_dump(photos, tmp_path)
    with pytest.raises(DataError, match=r"cannot read 2 images: .*1b\.jpg .*2b\.jpg .*; replace or remove them, or pass "
                                         r"skip_unreadable=True to classify the other images$"):
        predict(folder, [dump])
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(dump)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: cannot read 2 images: ") and err.endswith(
        "; replace or remove them, or pass --skip-unreadable to classify the other images")


def test_unreadable_images_in_several_batches_are_all_named_and_the_model_is_not_run_after_the_first(
        checkpoint, photos, tmp_path, monkeypatch, capsys):
    # The run stopped at the first batch of 64 holding a broken file, naming only that batch's: the user replaced them,
    # reran, decoded the folder again and learnt of the next batch's. Batches of 2 put 1b.jpg and 2b.jpg in two batches.
    import compress.predict as predict_module

    folder, _ = checkpoint
    dump, _ = _camera_dump(photos, tmp_path)
    runner, batches_run = predict_module._runner, []

    def counting_runner(path, contract, **kw):
        run = runner(path, contract, **kw)
        return lambda x: (batches_run.append(len(x)), run(x))[1]

    monkeypatch.setattr(predict_module, "_runner", counting_runner)
    with pytest.raises(DataError, match=r"cannot read 2 images: .*1b\.jpg .*; .*2b\.jpg .*; replace or remove them"):
        predict(folder, [dump], batch_size=2)
    assert batches_run == [2]  # 0.png and 1.png, before the first broken file; none after it
    # the command line: one line on stderr naming both, and no prediction printed before it
    real_predict = predict_module._predictions_and_contract
    monkeypatch.setattr(predict_module, "_predictions_and_contract", lambda *a, **k: real_predict(*a, **k, batch_size=2))
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(dump)])
    said = capsys.readouterr()
    assert exit_info.value.code == 2 and said.out == "" and len(said.err.strip().splitlines()) == 1
    assert said.err.startswith("error: cannot read 2 images: ") and "1b.jpg" in said.err and "2b.jpg" in said.err


def test_skip_unreadable_classifies_the_other_images_and_warns_once_naming_the_count_and_the_first(
        checkpoint, photos, tmp_path, capsys, caplog):
    folder, _ = checkpoint
    dump, readable = _camera_dump(photos, tmp_path)
    whole = predict(folder, [photos / "sub"], top=2)
    with pytest.raises(UnreadableImageError) as error:
        read_image(dump / "1b.jpg", size=16, mode="RGB")
    first_reason = error.value.reason
    for batch_size in (64, 2):  # the unreadable files in one batch, or in batches of their own among the others
        with caplog.at_level(logging.WARNING, logger="compress.predict"):
            caplog.clear()
            skipped = predict(folder, [dump], top=2, batch_size=batch_size, skip_unreadable=True)
        # the same predictions as of the readable files alone, each for its own file
        assert [p.path for p in skipped] == readable
        assert [p.classes for p in skipped] == [p.classes for p in whole]
        np.testing.assert_allclose([p.probabilities for p in skipped], [p.probabilities for p in whole], atol=1e-6)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"skipped 2 image files that cannot be read (skip_unreadable=True), left out of the "
                            f"predictions; the first: {dump / '1b.jpg'} ({first_reason})"]
    # the command line: exit 0, one line per image read, the warning naming the flag, the CSV without the skipped files
    assert main([str(folder), str(dump), "--skip-unreadable", "--csv", str(tmp_path / "p.csv")]) == 0
    said = capsys.readouterr()
    assert [line.split("  ")[0] for line in said.out.splitlines()] == [str(f) for f in readable]
    assert [line for line in said.err.splitlines() if "cannot be read" in line] == [  # a warning, said as one
        f"warning: skipped 2 image files that cannot be read (--skip-unreadable), left out of the predictions; the first: "
        f"{dump / '1b.jpg'} ({first_reason})"]
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == [str(f) for f in readable]
    # nothing readable at all: an error (exit 2), not an empty success
    for f in readable:
        f.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), str(dump), "--skip-unreadable"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: no image to classify: cannot read 2 images: ")


def test_an_int8_file_run_on_a_cpu_whose_int8_kernels_saturate_gets_a_warning(checkpoint, photos, monkeypatch, capsys):
    # On an x86 CPU without VNNI (this pool's AMD EPYC) OpenVINO's and onnxruntime's int8 kernels saturate: a smoke run's
    # model_int8.xml agreed with the int8 model on 92.5% of the test images, and compress.predict printed its
    # predictions and accuracy without a word, as if they were what the chip will give.
    folder, _ = checkpoint
    (folder / "model_int8.xml").write_text("<net/>")
    (folder / "compressed_metrics.json").write_text(json.dumps({"int8": {"agreement": {
        "openvino": {"top1_agreement": 0.925}, "onnx": {"top1_agreement": 0.973}}}}))
    monkeypatch.setattr("compress.predict._runner", lambda path, contract, **_: lambda x: np.zeros((len(x), 3)))
    monkeypatch.setattr("compress.predict.int8_saturates", lambda: True)
    assert main([str(folder), str(photos)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1].startswith("classified with ")
    assert err[0] == ("warning: this CPU's int8 kernels saturate (x86 without VNNI), so model_int8.xml in OpenVINO can "
                      "classify otherwise here than the int8 model and the target chip (92.5% the same top-1 class on "
                      "the test images where it was compressed); model_int8.onnx run operator by operator gives the "
                      "chip's (README, 'Deployment contract')")
    (folder / "model_int8.onnx").write_text("x")
    assert main([str(folder / "model_int8.onnx"), str(photos)]) == 0
    assert "model_int8.onnx in onnxruntime can classify otherwise here than the int8 model and the target chip (97.3%" in (
        capsys.readouterr().err)
    assert main([str(folder / "model.onnx"), str(photos)]) == 0  # a float file: no warning
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr("compress.predict.int8_saturates", lambda: False)  # a VNNI CPU: no warning
    assert main([str(folder), str(photos)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_images_of_the_folder_the_model_was_searched_on_are_named_as_not_new_beside_the_accuracy(checkpoint, photos,
                                                                                                 tmp_path, capsys):
    # A user's photos at hand are the folder the search ran on: predicting on it printed an accuracy over the model's own
    # training images as if it were a check on new photos. Its test images (test_predictions.csv's paths) are new.
    import shutil

    ck, _ = checkpoint
    files = sorted((photos / "sub").glob("*.png"))
    data = tmp_path / "my photos"
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, data / name / f.name)
    run = tmp_path / "runs" / "study"
    folder = run / "checkpoints" / "a1"
    shutil.copytree(ck, folder)
    (run / "pareto.json").write_text(json.dumps({"data": {"root": str(data)}}))
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "dataset": "imagefolder"}))
    (folder / "test_predictions.csv").write_text("index,label,predicted,path\n0,red,red,red/0.png\n1,blue,red,blue/2.png\n")
    assert main([str(folder), str(data)]) == 0
    said = capsys.readouterr()
    assert said.out.splitlines()[-1].startswith("top-1 accuracy on the 9 images whose folder names their class")
    assert said.err.splitlines()[0] == (
        f"warning: 7 of the 9 images are not new to the model: they lie in the folder its search loaded ({data}) and "
        "are not among its test images (test_predictions.csv), so the model was trained on them or chosen by them (its "
        "val images), and the accuracy above can be higher than on new photos; the test accuracies recorded beside it "
        "(metrics.json) are of its test images only")
    # one image: "1 of the 1 images are not new ... they lie" read as a slip
    assert main([str(folder), str(data / "red" / files[1].name)]) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith(
        f"warning: the image is not new to the model: it lies in the folder its search loaded ({data}) and is not among "
        "its test images (test_predictions.csv), so the model was trained on it or chosen by it (its val images)")
    # its test images alone, and photos from elsewhere sorted into class folders, are new: no warning
    for name in CLASSES:
        shutil.copytree(data / name, tmp_path / "new" / name)
    for images in ([data / "red" / "0.png", data / "blue" / "2.png"], [tmp_path / "new"]):
        assert main([str(folder), *map(str, images)]) == 0
        assert capsys.readouterr().err.startswith("classified with "), images
    # a member folder from before test_predictions.csv named files: every image of the folder is counted
    (folder / "test_predictions.csv").write_text("index,label,predicted\n0,red,red\n")
    assert main([str(folder), str(data / "red")]) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith(
        f"warning: all 3 images lie in the folder the model's search loaded ({data}), which holds its training")
    assert main([str(folder), str(data / "red" / files[0].name)]) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith(
        f"warning: the image lies in the folder the model's search loaded ({data}), which holds its training")


@pytest.mark.parametrize("background", [None, 255])
def test_non_square_and_transparent_photos_get_the_pixels_training_made_of_them(tmp_path, background):
    # The training warnings say compress.predict stretches and composites new photos as training did: the very pixels
    # of a non-square JPEG (decoded at a reduced scale) and of a non-square cut-out, from the contract alone.
    from compress.predict import Contract, _pixels
    from nas.config import DataConfig, DataFormat
    from nas.data import load_dataset

    rng = np.random.default_rng(2)
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for name in ("wide.jpg", "wide2.jpg"):  # 3 images a class: whichever 2 of the 6 are held out, both keep one
            Image.fromarray((rng.random((120, 200, 3)) * 255).astype(np.uint8)).save(tmp_path / "img" / c / name)
        rgba = (rng.random((30, 20, 4)) * 255).astype(np.uint8)
        rgba[..., 3] = np.where(rng.random((30, 20)) < 0.5, 0, 255)
        Image.fromarray(rgba, "RGBA").save(tmp_path / "img" / c / "cut.png")
    data = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "img"), img_size=16,
                                   background=background, val_size=1, test_size=1, stratify=False))
    contract = Contract(channels=3, img_size=16, classes=["a", "b"], metric="accuracy", background=background)
    for split in (data.train, data.val, data.test):
        files = [tmp_path / "img" / p for p in split.paths]
        np.testing.assert_array_equal(_pixels(files, contract), split.x.float().div(255).numpy())


@pytest.mark.parametrize("background", [None, 255])
def test_non_square_and_transparent_photos_are_each_warned_about_once_as_training_warns(checkpoint, photos, tmp_path,
                                                                                         capsys, caplog, background):
    # Training warns of images it stretches or whose transparency it drops; compress.predict made new photos the same
    # way without a word: a deployer's 4:3 camera photos were stretched to the model's square input unseen.
    folder, _ = checkpoint
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"]["background"] = background  # data.background of the model's search
    (folder / "metrics.json").write_text(json.dumps(metrics))
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(4)
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(new / "a_square.png")
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save(new / "b_wide.png")  # 30 wide, 20 high
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).save(new / "c_tall.jpg")
    cut = (rng.random((24, 24, 4)) * 255).astype(np.uint8)
    cut[..., 3] = 255
    Image.fromarray(cut, "RGBA").save(new / "d_opaque.png")  # an alpha channel, nothing transparent: not counted
    cut[0, 0, 3] = 0
    Image.fromarray(cut, "RGBA").save(new / "e_cut.png")
    (new / "f_broken.png").write_bytes(b"")  # skipped: not among the images counted
    # the fixture's metrics.json counts none of the model's own images (a record from before they were kept)
    stretched = (f"2 of 5 images are not square (e.g. {new / 'b_wide.png'} 30x20): each is stretched to 16x16, the "
                 "model's input, which changes their aspect ratio; whether the model's training images were square is "
                 "not recorded: if they were, crop or pad them to square first to keep their shape")
    transparent = f"1 of 5 images has transparent pixels (e.g. {new / 'e_cut.png'}): " + (
        "the transparency is dropped, as it was for the model's training images (data.background=null), so the model "
        "sees the colours stored under those pixels" if background is None else
        "its transparent pixels are composited onto grey level 255, as the model's training images were "
        "(data.background=255)")
    reshaped = lambda: [r.getMessage() for r in caplog.records  # noqa: E731
                        if "not square" in r.getMessage() or "transparent pixels" in r.getMessage()]
    for batch_size in (64, 2):  # once per call, counting over every batch
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="compress.predict"):
            assert len(predict(folder, [new], batch_size=batch_size, skip_unreadable=True)) == 5
        assert reshaped() == [stretched, transparent]
    # the command line: on stderr, stdout and the --csv the predictions alone
    assert main([str(folder), str(new), "--skip-unreadable", "--csv", str(tmp_path / "p.csv")]) == 0
    said = capsys.readouterr()
    assert [line.split("  ")[0] for line in said.out.splitlines()] == [str(f) for f in sorted(new.glob("[a-e]*"))]
    # on stderr each a warning line, as compress.predict's printed warnings are
    warned = [f"warning: {stretched}", f"warning: {transparent}"]
    assert [line for line in said.err.splitlines() if line in warned] == warned
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 6
    # square opaque photos (one with an alpha channel, everywhere opaque): no warning
    (photos / "sub" / "opaque.png").write_bytes((new / "d_opaque.png").read_bytes())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        assert len(predict(folder, [photos])) == 4
    assert reshaped() == []
    assert main([str(folder), str(photos)]) == 0
    assert capsys.readouterr().err.startswith("classified with ")


@pytest.mark.parametrize("recorded", ["all square", "some stretched", "all stretched"])
def test_the_warnings_on_new_photos_say_what_the_models_recorded_training_images_were(checkpoint, tmp_path, caplog,
                                                                                      monkeypatch, recorded):
    # "whether the model's training images were square is not recorded" left the deployer to guess whether to crop:
    # a member's record counts its images that were not square or had transparent pixels, and the warnings say it.
    folder, _ = checkpoint
    counts = {"all square": (1000, 0, 0), "some stretched": (1000, 40, 3), "all stretched": (1000, 1000, 0)}[recorded]
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"].update(images=counts[0], not_square=counts[1], transparent=counts[2])
    (folder / "metrics.json").write_text(json.dumps(metrics))
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(new / "wide.png")
    cut = np.full((24, 24, 4), 255, np.uint8)
    cut[0, 0, 3] = 0
    Image.fromarray(cut, "RGBA").save(new / "cut.png")
    monkeypatch.setattr("compress.predict._runner", lambda path, contract, **_: lambda x: np.zeros((len(x), 3)))
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [new])
    said = [r.getMessage() for r in caplog.records if "not square" in r.getMessage() or "transparent" in r.getMessage()]
    stretch = (f"1 of 2 images is not square (e.g. {new / 'wide.png'} 30x20): it is stretched to 16x16, the model's "
               "input, which changes its aspect ratio")
    assert said == [stretch + {
        "all square": "; the 1,000 images the model was trained and tested on were all square: crop or pad it to "
                      "square first to keep its shape",
        "some stretched": ", as training did to 40 of the 1,000 images the model was trained and tested on",
        "all stretched": ", as training did to all 1,000 images the model was trained and tested on"}[recorded],
        f"1 of 2 images has transparent pixels (e.g. {new / 'cut.png'}): the transparency is dropped, as it was for "
        "the model's training images (data.background=null), so the model sees the colours stored under those pixels; "
        + ("3 of the" if recorded == "some stretched" else "none of the")
        + " 1,000 images the model was trained and tested on had transparent pixels"]


@pytest.mark.parametrize("edit, said", [
    ({"images": "many"}, 'input.images is "many"; allowed: a whole number >= 0'),
    ({"images": -3}, "input.images is -3; allowed: a whole number >= 0"),
    ({"not_square": 2.5}, "input.not_square is 2.5; allowed: a whole number >= 0"),
    ({"transparent": True}, "input.transparent is true; allowed: a whole number >= 0"),
    ({"not_square": 1001}, "input.not_square is 1001, more than input.images (1000); allowed: a whole number from 0 "
                           "to input.images"),
    ({"grey": "some"}, 'input.grey is "some"; allowed: a whole number >= 0'),
    ({"grey": 1001}, "input.grey is 1001, more than input.images (1000); allowed: a whole number from 0 to "
                     "input.images"),
], ids=["word", "negative", "fraction", "bool", "more-than-images", "grey-word", "grey-more-than-images"])
@pytest.mark.parametrize("name", ["metrics.json", "compressed_metrics.json"])
def test_a_malformed_image_count_in_the_input_record_is_one_line_naming_the_file_key_and_value(
        checkpoint, photos, capsys, edit, said, name):
    # A hand-edited count was read by int(): "many" gave the generic "is not a checkpoint's metrics.json (ValueError:
    # invalid literal for int() ...)", and 2.5 or -3 were taken as 2 and -3, for the warnings to count with.
    folder, _ = checkpoint
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"].update({"images": 1000, "not_square": 40, "transparent": 3, **edit})
    if name == "compressed_metrics.json":  # compressed by compress.run alone: its record is the only one
        (folder / "metrics.json").unlink()
    (folder / name).write_text(json.dumps(metrics))
    with pytest.raises(CheckpointError) as e:
        predict(folder, [photos])
    what = "" if "more than" in said else " (how many of the images the model was trained and tested on)"
    assert str(e.value) == f"{folder / name}: {said}{what}"
    with pytest.raises(SystemExit) as exited:
        main([str(folder), str(photos)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {folder / name}: {said}{what}"]


def test_grey_photos_given_to_a_colour_model_are_counted_in_one_warning(checkpoint, photos, tmp_path, capsys, caplog):
    # A colour model given grey photos (a camera in its infrared night mode, a scan) gets them with R = G = B and
    # answered without a word, though it learnt colour: 2 of a deployer's 30 photos were classified so unseen.
    folder, _ = checkpoint
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(5)
    colour = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
    Image.fromarray(colour).save(new / "a_colour.png")
    Image.fromarray(colour).convert("L").save(new / "b_grey.png")  # stored grey
    Image.fromarray(colour).convert("L").convert("RGB").save(new / "c_grey_as_rgb.jpg")  # grey pixels stored as RGB
    said = (f"2 of 3 images are grey (e.g. {new / 'b_grey.png'}: the same value in R, G and B at every pixel): the "
            "model takes colour (RGB) images, so it gets each grey in all 3 channels and sees no colour; a model "
            "trained on colour photos can classify grey ones worse: check their predictions, or add such photos to "
            "its training folder")
    greys = lambda: [r.getMessage() for r in caplog.records if "are grey" in r.getMessage()]  # noqa: E731
    for batch_size in (64, 1):  # once per call, counting over every batch
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="compress.predict"):
            assert len(predict(folder, [new], batch_size=batch_size)) == 3
        assert greys() == [said]
    assert main([str(folder), str(new)]) == 0
    assert f"warning: {said}" in capsys.readouterr().err.splitlines()
    # colour photos alone: no warning; nor for a 3-channel model trained on grey photos (its channels' statistics the
    # same), or on grey idx images repeated into 3 channels
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [photos])
    assert not [r for r in caplog.records if "grey" in r.getMessage()]
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"].update(mean=[0.4, 0.4, 0.4], std=[0.2, 0.2, 0.2])
    (folder / "metrics.json").write_text(json.dumps(metrics))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder / "model.onnx", [new])
    assert not [r for r in caplog.records if "grey" in r.getMessage()]
    metrics["input"].update(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])  # colour photos
    metrics["input"]["preprocessing"] = "idx grey images resized to 16x16 (bilinear, antialiased); grey repeated into 3 channels; uint8 / 255"
    (folder / "metrics.json").write_text(json.dumps(metrics))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder / "model.onnx", [new])
    assert not [r for r in caplog.records if "grey" in r.getMessage()]


@pytest.mark.parametrize("recorded", ["no grey", "some grey", "all grey", "before the grey count", "no counts"])
def test_the_grey_photos_warning_says_how_many_of_the_models_recorded_training_images_were_grey(
        checkpoint, tmp_path, caplog, recorded):
    # A colour model trained on an image folder that held grey photos (a user's probe: 24 of 162) was said to classify
    # grey ones worse, and the deployer told to add such photos to its training folder: the record counts them now.
    folder, _ = checkpoint
    metrics = json.loads((folder / "metrics.json").read_text())
    counts = {"no grey": {"grey": 0}, "some grey": {"grey": 24}, "all grey": {"grey": 162},
              "before the grey count": {}}.get(recorded)
    if counts is not None:
        metrics["input"].update(images=162, not_square=0, transparent=0, **counts)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray((np.random.default_rng(5).random((16, 16)) * 255).astype(np.uint8)).save(new / "grey.png")
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [new])
    head = (f"1 of 1 image is grey (e.g. {new / 'grey.png'}: the same value in R, G and B at every pixel): the model "
            "takes colour (RGB) images, so it gets that grey in all 3 channels and sees no colour")
    advice = "check its prediction, or add such photos to its training folder"
    assert [r.getMessage() for r in caplog.records if " is grey " in r.getMessage()] == [head + {
        "no grey": "; none of the 162 images the model was trained and tested on were grey, and a model trained on "
                   f"colour photos alone can classify grey ones worse: {advice}",
        "some grey": ", as in 24 of the 162 images the model was trained and tested on",
        "all grey": ", as in all 162 images the model was trained and tested on",
        # not recorded: the advice of before
        "before the grey count": f"; a model trained on colour photos can classify grey ones worse: {advice}",
        "no counts": f"; a model trained on colour photos can classify grey ones worse: {advice}"}[recorded]]


def test_a_floating_point_tiff_is_skipped_with_skip_unreadable_and_named_with_the_other_unreadable_files(
        checkpoint, photos, tmp_path, capsys):
    # A float TIFF (a depth map, a scientific export) among the photos stopped the run at the first one alone, with
    # --skip-unreadable too: the user could neither skip it nor learn of the other broken files in one run.
    folder, _ = checkpoint
    dump, readable = _camera_dump(photos, tmp_path)
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(dump / "3f.tif")
    with pytest.raises(DataError, match=r"^cannot read 3 images: .*1b\.jpg .*2b\.jpg .*3f\.tif \(floating-point pixels "
                                         r"\(mode F\), whose range is not defined: save it as 8-bit grey or colour, or "
                                         r"16-bit grey\); replace or remove them, or pass skip_unreadable=True"):
        predict(folder, [dump])
    assert main([str(folder), str(dump), "--skip-unreadable"]) == 0
    said = capsys.readouterr()
    assert [line.split("  ")[0] for line in said.out.splitlines()] == [str(f) for f in readable]
    assert "skipped 3 image files that cannot be read (--skip-unreadable)" in said.err


def test_the_accuracy_on_one_photo_in_its_class_folder_says_one_image(checkpoint, photos, tmp_path, capsys):
    # "top-1 accuracy on the 1 images whose folder names their class" for one photo named in a folder of its class
    folder, _ = checkpoint
    (tmp_path / "red").mkdir()
    photo = tmp_path / "red" / "new.png"
    photo.write_bytes(next((photos / "sub").glob("*.png")).read_bytes())
    assert main([str(folder), str(photo)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "top-1 accuracy on the 1 image whose folder names its class: ")


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # where `sudo apt-get install -y dataset-fashion-mnist` puts it
FASHION_MNIST_MEAN = 0.2858695387840271  # input.mean of a model trained on it (its training split's)


def _trained_on(folder: Path, *, mean: float, dataset: str | None) -> None:
    """Record in the checkpoint's metrics.json training images of `mean` (grey, repeated into 3 channels, as
    data=fashion_mnist data.channels=3 makes them) from `dataset` (None: not recorded)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["input"].update(mean=[mean] * 3, std=[0.35] * 3, preprocessing="idx grey images resized to 16x16 "
                            "(bilinear, antialiased); grey repeated into 3 channels; uint8 / 255")
    metrics.pop("dataset", None)
    metrics.update({} if dataset is None else {"dataset": dataset})
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_photos_far_lighter_than_the_training_images_get_one_warning_naming_both_means(checkpoint, tmp_path, capsys,
                                                                                       caplog):
    # A shirt photographed on a white table, given a model of Fashion-MNIST (light clothes on black), was classified
    # with confidence as something else without a word.
    folder, _ = checkpoint
    _trained_on(folder, mean=FASHION_MNIST_MEAN, dataset="fashion_mnist")
    new = tmp_path / "table"
    new.mkdir()
    pixels = []
    for i, shirt in enumerate((150, 100, 200)):  # of the model's size: the mean is that of the files' pixels
        image = np.full((16, 16), 235, dtype=np.uint8)
        image[4:12, 4:12] = shirt
        Image.fromarray(image).save(new / f"{i}.png")
        pixels.append(image)
    said = (f"the model was trained on images of mean pixel value 0.29 (data=fashion_mnist: light clothes on a black "
            f"background); these 3 images have {np.mean(pixels) / 255:.2f} (on [0, 1], after its preprocessing), far "
            "lighter: photos on a light background, where its images had a dark one, can read as other things with "
            "confidence; invert them (255 - value) if so, or train it on images like them")
    assert f"{np.mean(pixels) / 255:.2f}" == "0.84"  # a third of the image a shirt, the rest the table
    lines = lambda: [r.getMessage() for r in caplog.records if "mean pixel value" in r.getMessage()]  # noqa: E731
    for batch_size in (64, 1):  # once per call, over every batch
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="compress.predict"):
            assert len(predict(folder, [new], batch_size=batch_size)) == 3
        assert lines() == [said]
    assert main([str(folder), str(new)]) == 0
    assert f"warning: {said}" in capsys.readouterr().err.splitlines()

    # the other way round, for a model whose data set is recorded without a description (an image folder's), or none
    night = np.full((16, 16), 20, dtype=np.uint8)
    night[4:12, 4:12] = 100
    Image.fromarray(night).save(tmp_path / "night.png")
    for dataset, named in (("imagefolder", " (data=imagefolder)"), (None, "")):
        _trained_on(folder, mean=0.7, dataset=dataset)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="compress.predict"):
            predict(folder, [tmp_path / "night.png"])
        assert lines() == [f"the model was trained on images of mean pixel value 0.70{named}; this image has "
                           f"{night.mean() / 255:.2f} (on [0, 1], after its preprocessing), far darker: photos on a "
                           "dark background, where its images had a light one, can read as other things with "
                           "confidence; invert them (255 - value) if so, or train it on images like them"]
    # within the margin, or with no training mean recorded (a metrics.json from before it was kept): no warning
    _trained_on(folder, mean=0.6, dataset="fashion_mnist")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [new])
        predict(folder / "model.pt", [new])
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["input"]["mean"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder, [new])
    assert lines() == []


@pytest.mark.skipif(not Path(FASHION_MNIST).is_dir(), reason="Fashion-MNIST is not installed")
def test_fashion_mnists_own_test_images_get_no_brightness_warning(checkpoint, tmp_path, caplog):
    # Its per-image means spread widely (a sandal is mostly black, a pullover fills the frame): its own images, alone
    # or together, are what the model was trained on, and must not be told to be inverted.
    from nas.data import _find_idx, read_idx

    folder, _ = checkpoint
    _trained_on(folder, mean=FASHION_MNIST_MEAN, dataset="fashion_mnist")
    own = tmp_path / "own"
    own.mkdir()
    for i, image in enumerate(read_idx(_find_idx(Path(FASHION_MNIST), "t10k-images-idx3-ubyte"))[:12]):
        Image.fromarray(image).save(own / f"{i:02d}.png")
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        assert len(predict(folder / "model.onnx", [own])) == 12
        for file in sorted(own.iterdir()):
            predict(folder / "model.onnx", [file])
        # the same images inverted (dark clothes on a light background) are warned of
        inverted = tmp_path / "inverted"
        inverted.mkdir()
        for file in own.iterdir():
            Image.fromarray(255 - np.asarray(Image.open(file))).save(inverted / file.name)
        assert not [r for r in caplog.records if "mean pixel value" in r.getMessage()]
        predict(folder / "model.onnx", [inverted])
    warned = [r.getMessage() for r in caplog.records if "mean pixel value" in r.getMessage()]
    assert len(warned) == 1 and re.match(r"the model was trained on images of mean pixel value 0\.29 \(data="
                                         r"fashion_mnist: light clothes on a black background\); these 12 images "
                                         r"have 0\.7\d \(on \[0, 1\], after its preprocessing\), far lighter",
                                         warned[0]), warned


def _with_metadata(folder, model, classes):
    """model.onnx exported again carrying the contract of `classes` in its metadata, as a search now writes it."""
    from nas.checkpoint import io_contract, onnx_metadata

    contract = io_contract(arch=ARCH, classes=classes, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), background=None,
                           preprocessing="decoded with Pillow, ...; uint8 / 255")
    return export_onnx(model, folder / "model.onnx", in_chans=3, img_size=16,
                       metadata=onnx_metadata(arch=ARCH, contract=contract, precision="fp32", dataset="imagefolder",
                                              metric="accuracy"))


def test_a_file_handed_over_alone_is_run_by_the_contract_in_its_own_metadata(checkpoint, photos, tmp_path):
    # Without its folder's metrics.json a model.onnx was refused ("no metrics.json"): the file now carries its contract,
    # and OpenVINO keeps it in an IR converted from it.
    folder, model = checkpoint
    _with_metadata(folder, model, ["cat", "dog", "bird"])
    (folder / "metrics.json").write_text(json.dumps({"input": {"channels": 3, "img_size": 16},
                                                    "output": {"class_names": ["cat", "dog", "bird"]}}))
    expected = predict(folder / "model.onnx", [photos], top=3)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    export_openvino(alone / "model.onnx", alone / "model_int8.xml", in_chans=3, img_size=16)
    for given in (alone / "model.onnx", alone):  # the file, and the folder (its IR)
        got = predict(given, [photos], top=3)
        assert [p.classes for p in got] == [p.classes for p in expected]
        for p, q in zip(got, expected):
            np.testing.assert_allclose(p.probabilities, q.probabilities, atol=1e-5)
    # A file from before 2026-12-07 carries none: still refused as before, naming what to pass
    export_onnx(model, alone / "model.onnx", in_chans=3, img_size=16)
    with pytest.raises(CheckpointError, match="no metrics.json in .*alone: it says what input the model takes"):
        predict(alone / "model.onnx", [photos])


def test_a_file_handed_over_alone_is_scored_and_described_as_its_metadata_says(checkpoint, photos, tmp_path, capsys):
    # A model.onnx of a data.metric=balanced_accuracy search, handed over without its folder, printed plain accuracy
    # only on class folders, and its brightness warning named no data set: its metadata said neither. A file exported
    # before they were added is read as before: plain accuracy, no data set.
    from compress.predict import _contract
    from nas.checkpoint import io_contract, onnx_metadata, read_onnx_metadata

    _, model = checkpoint
    alone = tmp_path / "alone"
    alone.mkdir()
    contract = io_contract(arch=ARCH, classes=CLASSES, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), background=None,
                           preprocessing="decoded with Pillow, ...; uint8 / 255")
    export_onnx(model, alone / "model.onnx", in_chans=3, img_size=16,
                metadata=onnx_metadata(arch=ARCH, contract=contract, precision="fp32", dataset="fashion_mnist",
                                       metric="balanced_accuracy"))
    meta = read_onnx_metadata(alone / "model.onnx")
    said = _contract(alone, alone / "model.onnx", meta)
    assert (said.metric, said.dataset) == ("balanced_accuracy", "fashion_mnist")
    older = {key: value for key, value in meta.items() if key not in ("dataset", "metric")}
    said = _contract(alone, alone / "model.onnx", older)
    assert (said.metric, said.dataset) == ("accuracy", None)
    labelled = tmp_path / "labelled"
    for name, file in zip(CLASSES, sorted((photos / "sub").glob("*.png"))):
        (labelled / name).mkdir(parents=True)
        (labelled / name / file.name).write_bytes(file.read_bytes())
    assert main([str(alone / "model.onnx"), str(labelled)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("balanced accuracy (the mean over the 3 class folders): ")


def test_a_predict_command_reads_the_model_files_metadata_once(checkpoint, photos, tmp_path, monkeypatch, capsys):
    # onnx.load parses the whole model to read its metadata: a file handed over alone was read three times per command
    # (for its contract, for the check of its class names, and for the contract again to print the accuracy).
    import nas.checkpoint

    folder, model = checkpoint
    alone = tmp_path / "alone"
    alone.mkdir()
    _with_metadata(alone, model, CLASSES)
    (folder / "model.onnx").write_bytes((alone / "model.onnx").read_bytes())
    reader, reads = nas.checkpoint.read_onnx_metadata, []
    monkeypatch.setattr(nas.checkpoint, "read_onnx_metadata", lambda path: reads.append(Path(path)) or reader(path))
    for given in (alone / "model.onnx", folder / "model.onnx"):  # by its metadata alone; beside its metrics.json
        reads.clear()
        assert main([str(given), str(photos)]) == 0
        assert reads == [given]
        reads.clear()
        assert len(predict(given, [photos])) == 3
        assert reads == [given]
    said = capsys.readouterr()
    assert said.out.count("0.png") == 2 and "metadata" not in said.err  # classified, by the same classes


def test_a_file_whose_metadata_names_other_classes_than_its_folders_record_gets_one_warning(checkpoint, photos, caplog):
    # A model.onnx copied from another member's folder was labelled by this folder's metrics.json without a word.
    folder, model = checkpoint
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder / "model.onnx", [photos])  # a file without metadata (before 2026-12-07): nothing to compare
        _with_metadata(folder, model, CLASSES)
        predict(folder / "model.onnx", [photos])  # the same classes: nothing to say
    assert "metadata" not in caplog.text
    _with_metadata(folder, model, ["blue", "red", "green"])
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        got = predict(folder / "model.onnx", [photos], top=3)
    said = [r.getMessage() for r in caplog.records if "metadata" in r.getMessage()]
    assert said == ["model.onnx carries other class names in its own metadata than metrics.json beside it (logit 1 is "
                    "'red' there but 'green' in metrics.json): the file was exported for another model (copied from "
                    "another member's folder?), and its predictions here are labelled by metrics.json; run it from "
                    "the folder it was written to"]
    assert set(got[0].classes) == set(CLASSES)  # labelled as documented: by the folder's record


def test_a_checkpoint_whose_classes_are_not_its_folders_records_gets_the_same_warning(checkpoint, photos, caplog):
    # An ONNX file's class names were compared with its folder's metrics.json, a model.pt's (its meta holds them) not.
    folder, model = checkpoint
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder / "model.pt", [photos])  # the same classes: nothing to say
        save_checkpoint(folder / "model.pt", model, ARCH, meta={})  # from before 2026-12-04: nothing to compare
        predict(folder / "model.pt", [photos])
    assert "metadata" not in caplog.text
    save_checkpoint(folder / "model.pt", model, ARCH, meta={"classes": ["blue", "red", "green"]})
    with caplog.at_level(logging.WARNING, logger="compress.predict"):
        predict(folder / "model.pt", [photos])
    said = [r.getMessage() for r in caplog.records if "metadata" in r.getMessage()]
    assert said == ["model.pt carries other class names in its own metadata than metrics.json beside it (logit 1 is "
                    "'red' there but 'green' in metrics.json): the file was exported for another model (copied from "
                    "another member's folder?), and its predictions here are labelled by metrics.json; run it from "
                    "the folder it was written to"]


def test_a_checkpoint_file_is_read_once(checkpoint, photos, monkeypatch):
    # torch.load reads a .pt whole: compress.predict read it for the batch size, again for its input shape and a third
    # time for its weights. Now once, with the same predictions.
    folder, _ = checkpoint
    expected = predict(folder / "model.pt", [photos], top=3)
    loads: list[str] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(str(f)) or real_load(f, *a, **k))
    assert predict(folder / "model.pt", [photos], top=3) == expected
    assert [Path(f).resolve() for f in loads] == [(folder / "model.pt").resolve()]
