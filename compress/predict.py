"""Classify image files with a winner's deployable file, made into inputs the way its training images were made:

    python -m compress.predict runs/<study>/checkpoints/<arch_id> photo.jpg more_photos/ --top 3
    python -m compress.predict runs/<study>/checkpoints/<arch_id>/model.onnx photo.jpg --csv predictions.csv

A checkpoint folder runs its int8 OpenVINO IR (`model_int8.xml`) when it has one, else `model.onnx`; a file runs as
named: `.xml` in OpenVINO, `.onnx` in onnxruntime, `.pt` in torch. The input size, channels and class names come
from the folder's metrics.json (else its compressed_metrics.json, else the model file's own metadata); a file whose
metadata names other classes than that record gets a warning, and one whose SHA-256 differs from the one
compressed_metrics.json records for it is refused. Images are decoded, converted and resized as `nas.data` reads an image folder (Pillow;
the whole image stretched to the model's size). Prints one line per image: its path and the `--top` classes with
their softmax probabilities; when every image lies in a folder named after a class, or in a subfolder of one (new
photos sorted as for training), also the top-1 accuracy on them (when only some do, a line on stderr says how many do
not instead), and a warning on stderr counting those that lie in the folder its search loaded and are not its test
images (the model was trained or chosen on them). An int8 file run on a CPU whose int8 kernels saturate (x86 without VNNI) gets a warning on stderr: its
predictions there are not the chip's. As training warns of its image folder, one line on stderr counts the images that
are not square (stretched to the model's input) and one those with transparent pixels (dropped or composited); for a
colour model, one counts the grey images (R = G = B at every pixel), in which it sees no colour. One more line warns
when the images' mean pixel value differs from that of the model's training images (metrics.json's `input.mean`) by
more than `BRIGHTNESS_MARGIN`: photos on a light background given a model trained on dark ones (Fashion-MNIST's).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, NoReturn, Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.latency.measure import int8_saturates
from nas.checkpoint import (ImageCounts, atomic_write_text, contract_of_metadata, near_member, recorded_image_counts,
                            remove_dead_writers_temps)
from nas.memory import (MEMORY_BUDGET_MAX_GB, WORKING_MEMORY, eval_batch_size, machine_memory_bytes, memory_budget,
                        over_machine_warning)
from nas.stats import accuracy_interval
from nas.telemetry import openvino_telemetry_off
from nas.errors import (DISK_EXIT, CheckpointError, ConfigError, DataError, closed_stdout_ends_quietly, counted,
                        disk_failure_text, exit_on_error, exit_with_error, help_on_stdout, interrupting_signal, interrupts_honoured, lines_on_stderr, module_logger,
                        readable_repr, readable_text, writable_file)

# torch, and nas.data and nas.train, which import it (seconds), are imported where images are read and classified:
# --help, a bad flag, a bad --top or a missing model is answered without them.
if TYPE_CHECKING:
    from nas.data import Original, UnreadableImageError

MODEL_SUFFIXES = (".xml", ".onnx", ".pt")  # OpenVINO IR, onnxruntime, torch
RUNTIMES = {".xml": "OpenVINO", ".onnx": "onnxruntime", ".pt": "torch"}  # what runs a model file of each suffix
CLI_FLAGS = {"top": "--top", "memory_budget_gb": "--memory-budget-gb", "skip_unreadable": "--skip-unreadable"}
"""The command-line flag of each of `predict`'s keywords that `main` passes on (`predict(setting_names=...)`)."""

# Fashion-MNIST's per-image means spread widely (a sandal is mostly black, a pullover fills the frame): the margin is
# wide enough that a few of its own test images together stay within it, and narrow enough that the same images
# inverted (dark clothes on a light background, as a photo on a white table gives them) lie beyond it
# (tests/test_compress_predict.py checks both on real test images); one frame-filling image alone can lie beyond it.
BRIGHTNESS_MARGIN = 0.3
"""How far (on [0, 1], after the model's preprocessing) the mean pixel value of the images classified may lie from the
training images' (`input.mean`, averaged over channels) before `brightness_warning` warns."""
DATASET_LOOKS = {"fashion_mnist": "light clothes on a black background"}
"""What the images of a data set named in metrics.json's `dataset` look like, said where new images differ in
brightness (an image folder's are the user's own: only its name is said)."""

# Named, not __name__: run as `python -m compress.predict` the module is "__main__", a logger outside "compress" that
# `lines_on_stderr` does not show, so its info lines (files skipped in a folder) were lost and its warnings lacked
# "warning: ". Lines naming a file that is not UTF-8 are written readably (ReadableNames).
log = module_logger("compress.predict")


@dataclass(frozen=True)
class Prediction:
    """The `top` classes of one image, most probable first, with their softmax probabilities."""

    path: Path
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    # The folder named on the command line that the image was found in (None: the image was named itself): a class
    # folder may sit anywhere between the two, as in training (root/cat/2024-06/img.jpg is a cat).
    folder: Path | None = None


def model_file(path: str | Path) -> Path:
    """The file to run for `path`: itself if a model file, else the checkpoint folder's int8 IR or model.onnx."""
    p = Path(path)
    if p.is_dir():
        for name in ("model_int8.xml", "model.onnx"):
            if (p / name).is_file():
                return p / name
        # a run folder, or its checkpoints/ folder: name the members to choose from
        where = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        members = sorted(q.name for q in where.iterdir() if q.is_dir() and (q / "metrics.json").is_file())
        if members:
            raise CheckpointError(f"{p} is no checkpoint folder; pass one of its members: "
                                  + ", ".join(str(where / m) for m in members))
        raise CheckpointError(f"{p} holds neither model_int8.xml nor model.onnx; pass a checkpoint folder of a search run")
    if not p.is_file():
        raise CheckpointError(f"{p} not found{near_member(p)}; pass a checkpoint folder or a model file in one "
                              "(model_int8.xml, model_int8.onnx, model.onnx, model.pt)")
    if p.suffix not in MODEL_SUFFIXES:
        raise CheckpointError(f"{p} is not a model file; allowed: {', '.join(MODEL_SUFFIXES)} files, or a checkpoint folder")
    return p


@dataclass(frozen=True)
class Contract:
    """What a checkpoint folder's metrics.json says its model takes and gives."""

    channels: int
    img_size: int
    classes: list[str]
    metric: str  # how the run scored it: accuracy or balanced_accuracy
    background: int | None  # grey level the training images' transparency was composited onto; None: dropped
    # the file of the folder it was read from, named in the errors it explains: a checkpoint compressed alone has no
    # metrics.json, and an error naming one sent the user looking for a file that is not there
    file: str = "metrics.json"
    # how the training images were made, in words (input.preprocessing): a 3-channel model trained on idx data saw grey
    # repeated into 3 channels, never colour
    preprocessing: str = ""
    # how many of the images the model was trained and tested on were not square or had transparent pixels
    # or were grey (input.images, not_square, transparent, grey); None: not recorded (a folder from before they were
    # kept), and grey None where only it is not (a folder from before it was kept)
    image_counts: ImageCounts | None = None
    # whether the training images had no colour in any channel (input.mean and std the same in all 3): an image
    # folder of grey photos trained at data.channels=3, whose model takes grey photos as it was trained on them
    trained_grey: bool = False
    # the mean pixel value of the training images on [0, 1], averaged over channels (input.mean); None: not recorded
    mean: float | None = None
    # the data set the model was trained on (metrics.json's `dataset`: fashion_mnist, imagefolder); None: not recorded
    dataset: str | None = None


def _contract(folder: Path, model: Path | None = None, metadata: Mapping[str, str] | None = None) -> Contract:
    """The input contract of the checkpoint folder's metrics.json, else of its compressed_metrics.json (a checkpoint
    compressed by `python -m compress.run` outside a search's run folder has no metrics.json), else of the metadata of
    the model file `model` (`model_metadata`: an ONNX file exported from 2026-12-07 on, or its IR, carries it, so a file
    handed over alone still runs): `metadata`, where the caller has read it already (None: read here where needed)."""
    path = folder / "metrics.json"
    if not path.is_file() and "input" in (_json_object(folder / "compressed_metrics.json") or {}):
        path = folder / "compressed_metrics.json"
    if not path.is_file() and model is not None:
        said = contract_of_metadata(model_metadata(model) if metadata is None else metadata)
        if said is not None:
            return _parsed_contract(said, file=folder / model.name, name=f"{model.name} (its metadata)")
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no metrics.json in {folder}: it says what input the model takes; pass a checkpoint "
                              "folder of a search run, or one compressed by python -m compress.run (or a file in one), "
                              "or an .onnx file that carries it in its metadata (exported from 2026-12-07 on)") from None
    except ValueError as e:
        raise CheckpointError(f"{path} is not a checkpoint's metrics.json ({type(e).__name__}: {e})") from None
    return _parsed_contract(metrics, file=path, name=path.name)


def _parsed_contract(metrics: Any, *, file: Path, name: str) -> Contract:
    """The `Contract` a record of the files' input and output states (metrics.json's, compressed_metrics.json's, or
    `nas.checkpoint.contract_of_metadata`'s), read from `file`, which errors name; `name`: `Contract.file`."""
    try:
        said = metrics["input"]
        background = said.get("background")  # absent before data.background: transparency dropped
        image_counts = recorded_image_counts(said, file=file)  # absent before 2026-12-06: not known (None)
        return Contract(int(said["channels"]), int(said["img_size"]),
                        list(metrics["output"]["class_names"]),
                        str(metrics.get("metric", "accuracy")),  # written before data.metric: plain accuracy
                        None if background is None else int(background), name,
                        str(said.get("preprocessing", "")), image_counts, _same_in_every_channel(said),
                        _channel_averaged_mean(said), _recorded_name(metrics.get("dataset")))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{file} is not a checkpoint's metrics.json ({type(e).__name__}: {e})") from None


def model_metadata(path: Path) -> dict[str, str]:
    """The metadata a model file carries (`nas.checkpoint.onnx_metadata`): an ONNX file's `metadata_props`, and what
    OpenVINO kept of them in an IR converted from one (its rt_info `framework` entries); {} for a file with none (made
    before 2026-12-07, a torch checkpoint) or one that cannot be read (running it says why)."""
    if path.suffix == ".onnx":
        from nas.checkpoint import read_onnx_metadata

        return read_onnx_metadata(path)
    if path.suffix != ".xml":
        return {}
    with openvino_telemetry_off():  # its import (the first in a process) sends a message
        import openvino as ov

    from compress.export import read_openvino

    try:
        model = read_openvino(ov.Core(), path)
        kept = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
        return {str(key): value.astype(str) for key, value in dict(kept).items()}
    except (CheckpointError, RuntimeError, TypeError, AttributeError):
        return {}


def metadata_disagreement(path: Path, *, contract: Contract, metadata: Mapping[str, str] | None = None) -> str | None:
    """A warning where the class names the model file at `path` carries in its metadata (`model_metadata`; `metadata`,
    where the caller has read it already, else read here) are not those of the record its folder holds (`contract`): a
    file copied in from another member's folder, whose predictions would be labelled with this folder's classes without
    a word. None where they agree, or the file carries none."""
    said = contract_of_metadata(model_metadata(path) if metadata is None else metadata)
    return None if said is None else classes_disagreement(path, own=said["output"]["class_names"], contract=contract)


def classes_disagreement(path: Path, *, own: Sequence[str] | None, contract: Contract) -> str | None:
    """The warning of `metadata_disagreement` where `own`, the class names the model file at `path` carries (an ONNX
    file's or IR's metadata; a checkpoint's, whose meta holds its classes), are not those of the record its folder
    holds (`contract`); None where they agree (as a contract read from that metadata does), or `own` is None (a file
    that carries none)."""
    recorded = contract.classes
    if own is None or list(own) == recorded:
        return None
    own = list(own)  # a tuple of the same names agrees, as compared above
    differ = (f"{len(own)} classes there, {len(recorded)} in {contract.file}" if len(own) != len(recorded) else
              next(f"logit {i} is {readable_repr(a)} there but {readable_repr(b)} in {contract.file}"
                   for i, (a, b) in enumerate(zip(own, recorded)) if a != b))
    return (f"{path.name} carries other class names in its own metadata than {contract.file} beside it ({differ}): "
            f"the file was exported for another model (copied from another member's folder?), and its predictions "
            f"here are labelled by {contract.file}; run it from the folder it was written to")


def _same_in_every_channel(said: Mapping[str, Any]) -> bool:
    """Whether a contract's training-image statistics (`mean`, `std`, one per channel) are the same in all of its
    channels: images with R = G = B at every pixel, such as grey photos trained at data.channels=3."""
    try:
        stats = [[float(v) for v in said[key]] for key in ("mean", "std")]
    except (KeyError, TypeError, ValueError):  # not recorded
        return False
    return all(len(values) > 1 and max(values) - min(values) < 1e-6 for values in stats)


def _channel_averaged_mean(said: Mapping[str, Any]) -> float | None:
    """The mean of a contract's per-channel training-image means (`mean`, on [0, 1]); None where none is recorded (a
    metrics.json from elsewhere) or it is no list of finite numbers."""
    try:
        values = [float(v) for v in said["mean"]]
    except (KeyError, TypeError, ValueError):
        return None
    return float(np.mean(values)) if values and all(np.isfinite(values)) else None


def _recorded_name(value: Any) -> str | None:
    """`value` if a non-empty string (a recorded data set's name), else None."""
    return value if isinstance(value, str) and value else None


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is none (absent, unreadable, not an object)."""
    try:
        said = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return said if isinstance(said, dict) else None


def _image_files_found_in(paths: Sequence[str | Path]) -> list[tuple[Path, Path | None]]:
    """The image files named, and those in the folders named (recursively, sorted; hidden files are skipped), each with
    the folder of `paths` it was found in (None for an image named itself)."""
    from nas.data import IMAGE_SUFFIXES, OS_FOLDER_FILES, image_files_in, non_image_files_note, unread_images_warning

    files: list[tuple[Path, Path | None]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            other: list[Path] = []
            non_images: list[Path] = []
            found = image_files_in(p, other_images=other, other_files=non_images)
            # as training warns: an iPhone's .heic photos in a folder of .jpgs were left out of the predictions unseen
            if (unread := unread_images_warning(p, other, to="classify", non_images=non_images)) is not None:
                log.warning("%s", unread)
            elif (note := non_image_files_note(p, non_images)) is not None:  # notes.txt: skipped by design, said once
                log.info("%s", note)
            if not found:
                raise DataError(f"{p} holds no image files ({' '.join(sorted(IMAGE_SUFFIXES))}), in it or its "
                                "subfolders; hidden files are skipped")
            files += [(f, p) for f in found]
        elif p.is_file():
            # Refused as a folder leaves it out, before Pillow's own message ("cannot identify image file") on an
            # iPhone's .heic: the model was trained on the formats read, so a file must be converted to one of them.
            # The files the operating system leaves among photos (`photos/*` takes Thumbs.db and desktop.ini along):
            # refused as what they are, not with advice to convert them; a folder named skips them (`image_files_in`),
            # which may be what was meant
            if (what := OS_FOLDER_FILES.get(p.name.lower())) is not None:
                raise DataError(f"{p} is {what}, not an image: leave it out, or name its folder, which skips it (the "
                                f"image formats read: {' '.join(sorted(IMAGE_SUFFIXES))})")
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{p} is not of an image format that is read ({p.suffix or 'no suffix'}); convert it to "
                                f"one of {' '.join(sorted(IMAGE_SUFFIXES))} to classify it")
            files.append((p, None))
        else:
            raise DataError(f"image {p} not found")
    return _once_each(files)


def _once_each(files: list[tuple[Path, Path | None]]) -> list[tuple[Path, Path | None]]:
    """`files` without the repeats of an image named more than once (a file and its folder, a folder and its subfolder,
    or a link to either), the first kept, with one warning: each was classified and counted again, so the accuracy
    printed on the class folders weighed it twice and claimed more images than there are."""
    import os

    kept: dict[str, tuple[Path, Path | None]] = {}
    repeats: list[Path] = []
    for file, folder in files:
        real = os.path.realpath(file)
        if real in kept:
            repeats.append(file)
        else:
            kept[real] = (file, folder)
    if repeats:
        first = kept[os.path.realpath(repeats[0])][0]
        log.warning("%s named more than once %s classified once (e.g. %s%s)", counted(len(repeats), "image file"),
                    "is" if len(repeats) == 1 else "are", repeats[0],
                    "" if first == repeats[0] else f", also found as {first}")
    return list(kept.values())


def predict(model_path: str | Path, images: Sequence[str | Path], *, top: int = 3, batch_size: int = 64,
            memory_budget_gb: float | None = None, skip_unreadable: bool = False,
            setting_names: Mapping[str, str] | None = None) -> list[Prediction]:
    """The `top` classes of every image in `images` (files or folders; one path alone is taken as one) by the model at
    `model_path`. The images are read and classified `batch_size` at a time, fewer where the model's forward pass on
    that many would need more working memory than `memory_budget_gb` (`nas.memory`; None: 70% of the memory
    available now): memory holds one batch of images, however many are given, and the results are those of one pass.
    Image files that cannot be decoded (cut short, empty, not an image) are a `DataError` naming them, in whichever
    batches they lie (the model is not run after the first, the rest are still decoded), and the option to skip them; with `skip_unreadable` such files are left out of the predictions instead, with one warning counting them
    and naming the first (a `DataError` where none is left). A bad `top` or `memory_budget_gb` is a `ConfigError`
    naming it as `setting_names` does (`CLI_FLAGS`: the command line's flags, which `main` passes), else by its
    keyword; so is the option to skip unreadable files. A `memory_budget_gb` above this machine's memory gets one
    warning naming both (`nas.memory.over_machine_warning`), as a search's does. The images read that are not square
    (stretched to the model's input size) and those with transparent pixels (dropped, or composited onto the model's
    background) get one warning each, counting them and naming one (`nas.images.reshaped_images_warnings`), as training
    warns of its image folder, and saying how many of the model's own images were such where its record counts them
    (`Contract.image_counts`). A colour model's grey images (`grey_images`) get one more warning, counting them and
    saying how many of the model's own images were grey where its record counts them (`grey_images_warning`), and images
    far lighter or darker than the model's training images on the whole one more (`brightness_warning`)."""
    return _predictions_and_contract(model_path, images, top=top, batch_size=batch_size,
                                     memory_budget_gb=memory_budget_gb, skip_unreadable=skip_unreadable,
                                     setting_names=setting_names)[0]


def _predictions_and_contract(model_path: str | Path, images: Sequence[str | Path], *, top: int = 3,
                              batch_size: int = 64, memory_budget_gb: float | None = None,
                              skip_unreadable: bool = False, setting_names: Mapping[str, str] | None = None,
                              ) -> tuple[list[Prediction], Contract]:
    """`predict`'s predictions, and the model's `Contract` they were made by (the command prints its accuracy by it):
    the model file's metadata is read once (onnx.load parses the whole file), for both the contract and the check that
    its class names are those of its folder's record."""
    if isinstance(images, (str, Path)):  # a single path, not a sequence of its characters
        images = [images]
    named = lambda keyword: (setting_names or {}).get(keyword, keyword)  # noqa: E731  (the name the caller typed)
    if memory_budget_gb is not None and not 0 < memory_budget_gb <= MEMORY_BUDGET_MAX_GB:  # inf: OverflowError later
        raise ConfigError(f"{named('memory_budget_gb')}={memory_budget_gb!r} must be a number in (0, "
                          f"{MEMORY_BUDGET_MAX_GB:g}]: GiB of {WORKING_MEMORY} one batch of images may take (left out: "
                          "70% of the memory available)")
    # a budget from a bigger machine, or a typo: as a search warns of its search.memory_budget_gb
    over = over_machine_warning(memory_budget_gb, setting=named("memory_budget_gb"), machine=machine_memory_bytes(),
                                lets_through="batches too large for it are not made smaller and the out-of-memory "
                                             "killer ends the command instead", unset="left out")
    if over is not None:
        log.warning("%s", over)
    path = model_file(model_path)
    metadata = model_metadata(path)
    contract = _contract(path.parent, path, metadata)
    _check_recorded_digests(path)
    if (disagree := metadata_disagreement(path, contract=contract, metadata=metadata)) is not None:
        log.warning("%s", disagree)
    classes = contract.classes
    if not 1 <= top <= len(classes):
        raise ConfigError(f"{named('top')}={top} must be between 1 and the model's {len(classes)} classes")
    found = _image_files_found_in(images)
    # A .pt read once, for its arch (the batch, the input shape) and its weights: torch.load reads the whole file
    arch = checkpoint = None
    if path.suffix == ".pt":
        from nas.checkpoint import read_checkpoint

        checkpoint = read_checkpoint(path)
        arch = checkpoint[0]
    batch = _fitting_batch(path, batch_size=batch_size, budget_bytes=memory_budget(memory_budget_gb), arch=arch)
    run = _runner(path, contract, checkpoint=checkpoint)
    from nas.data import GREY_REPEATED, notable_images, reshaped_images_warnings, unreadable_message

    skip = named("skip_unreadable")
    skip = skip if skip.startswith("-") else f"{skip}=True"  # as typed: a flag, or the keyword set
    # Read batch by batch: all the images decoded at once took memory in proportion to their number (100k colour
    # photos at 224 px are 15 GB of uint8 pixels, twice that while stacked) before one was classified.
    skipped: list[UnreadableImageError] = []
    read: list[tuple[Path, Path | None]] = []
    originals: list[Original] = []  # of the files read, in `read`'s order: what reading changes beyond scale
    scored: list[np.ndarray] = []
    # A colour model given grey photos (a camera in its infrared night mode, a scan) sees no colour in them, unlike
    # most of its training images, and its answer can change without a word: counted, to warn once
    colourless: list[Path] = []
    colour_model = (contract.channels == 3 and GREY_REPEATED not in contract.preprocessing
                    and not contract.trained_grey)
    # A shirt photographed on a white table, given a model of Fashion-MNIST (light clothes on black), was classified
    # with confidence as something else without a word: the images' mean pixel value, summed over every batch, to warn
    # once where it lies far from the training images'
    brightness = 0.0
    for i in range(0, len(found), batch):
        chunk, bad = found[i:i + batch], []
        x = _pixels([file for file, _ in chunk], contract, unreadable=bad, originals=originals)
        skipped += bad
        gone = {e.path for e in bad}
        kept = [(file, folder) for file, folder in chunk if file not in gone]
        if colour_model and len(x):
            colourless += [file for (file, _), grey in zip(kept, grey_images(x)) if grey]
        if len(x):  # every image is of the model's size: the mean of their means is that of all their pixels
            brightness += float(x.reshape(len(x), -1).mean(axis=1, dtype=np.float64).sum())
        read += kept
        # Once a file is unreadable without skip_unreadable the run fails: the model is not run on the rest, but they
        # are still decoded (once each) so that the error names every broken file, not only those of the first batch
        # with one (the user fixed one batch's files per run, each run decoding the folder again to find the next).
        if len(x) and (skip_unreadable or not skipped):
            scored.append(run(x))
    if skipped and not skip_unreadable:
        raise DataError(unreadable_message(skipped, otherwise=f"pass {skip} to classify the other images"))
    if skipped:
        if not read:
            raise DataError(f"no image to classify: {unreadable_message(skipped)}")
        # one line for a camera dump's broken files, not one each: the count, and the first to look at
        log.warning("skipped %s that cannot be read (%s), left out of the predictions; the first: %s (%s)",
                    counted(len(skipped), "image file"), skip, skipped[0].path, skipped[0].reason)
    # As training warns of its image folder: photos from a new camera (4:3, say) were stretched to the model's square
    # input, and cut-outs' transparency dropped or composited, without a word to the one deploying the model.
    if len(originals) == len(read):  # a stand-in read_image may tell nothing
        notable = [(read[i][0], o) for i, o in notable_images(originals)]
        for warning in reshaped_images_warnings(notable, images=len(read), size=contract.img_size,
                                                background=contract.background, new_photos=True,
                                                trained_on=contract.image_counts):
            log.warning("%s", warning)
    if colourless and (skip_unreadable or not skipped):
        log.warning("%s", grey_images_warning(colourless, images=len(read), trained_on=contract.image_counts))
    if read and (unlike := brightness_warning(brightness / len(read), images=len(read), contract=contract)) is not None:
        log.warning("%s", unlike)
    logits = np.concatenate(scored)
    if logits.shape[1] != len(classes):
        raise CheckpointError(f"{path} gives {logits.shape[1]} logits but {contract.file} names {len(classes)} classes")
    import torch

    probs = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=1).numpy()
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [Prediction(f, tuple(classes[j] for j in row), tuple(float(p[j]) for j in row), folder)
            for (f, folder), row, p in zip(read, order, probs)], contract


def grey_images(x: np.ndarray) -> np.ndarray:
    """Which of the (N, 3, H, W) model inputs `x` have no colour: the same value in R, G and B at every pixel, as a
    grey file (or a colour file of grey pixels) becomes once converted to RGB."""
    return ((x[:, 0] == x[:, 1]) & (x[:, 1] == x[:, 2])).reshape(len(x), -1).all(axis=1)


def grey_images_warning(grey: Sequence[Path], *, images: int, trained_on: ImageCounts | None = None) -> str:
    """One line for the `grey` images (of `images`) given to a colour model: what the model gets from them, and, by
    how many of the model's own images were grey where its record counts them (`trained_on.grey`), what to check:
    none, and a model trained on colour photos alone can classify grey ones worse (check them, or add such photos to
    its training folder); some, and it was trained on grey photos too (how many, as the other image notes say); not
    recorded (a record from before the count), the first advice."""
    one = len(grey) == 1
    head = (f"{len(grey):,} of {counted(images, 'image')} {'is' if one else 'are'} grey (e.g. {grey[0]}: the same "
            "value in R, G and B at every pixel): the model takes colour (RGB) images, so it gets "
            f"{'that' if one else 'each'} grey in all 3 channels and sees no colour")
    advice = f"check {'its prediction' if one else 'their predictions'}, or add such photos to its training folder"
    if trained_on is None or trained_on.grey is None:
        return f"{head}; a model trained on colour photos can classify grey ones worse: {advice}"
    seen = f"{trained_on.images:,} images the model was trained and tested on"
    if trained_on.grey == 0:
        return (f"{head}; none of the {seen} were grey, and a model trained on colour photos alone can classify grey "
                f"ones worse: {advice}")
    # Grey photos in the training folder (a user's probe: 24 of 162) were told to add such photos all the same.
    some = "all" if trained_on.grey == trained_on.images else f"{trained_on.grey:,} of the"
    return f"{head}, as in {some} {seen}"


def brightness_warning(mean: float, *, images: int, contract: Contract) -> str | None:
    """One line where `mean`, the mean pixel value (on [0, 1], as the model takes them) of the `images` classified,
    lies more than `BRIGHTNESS_MARGIN` from that of the model's training images (`contract.mean`): both means, the data
    set where recorded, and what to do. None where it lies closer, or the training images' mean is not recorded."""
    trained = contract.mean
    if trained is None or abs(mean - trained) <= BRIGHTNESS_MARGIN:
        return None
    lighter = mean > trained
    if contract.dataset is None:
        data = ""
    elif contract.dataset in DATASET_LOOKS:
        data = f" (data={contract.dataset}: {DATASET_LOOKS[contract.dataset]})"
    else:
        data = f" (data={contract.dataset})"
    these = "this image has" if images == 1 else f"these {images:,} images have"
    light, dark = ("light", "dark") if lighter else ("dark", "light")
    return (f"the model was trained on images of mean pixel value {trained:.2f}{data}; {these} {mean:.2f} (on [0, 1], "
            f"after its preprocessing), far {light}er: photos on a {light} background, where its images had a {dark} "
            "one, can read as other things with confidence; invert them (255 - value) if so, or train it on images "
            "like them")


def _check_recorded_digests(path: Path) -> None:
    """`CheckpointError` when the model file at `path` (and an IR's .bin, which holds its weights) is not the file its
    folder's compressed_metrics.json recorded the SHA-256 of (`file_sha256`): a copy damaged or cut short, even to the
    same size, loads and runs, and would classify with changed weights without a word. Files it records no digest of
    (model.onnx and model.pt, the search's; a compression before file_sha256) are not checked. Each file is hashed
    once per call, before it is loaded."""
    compressed = _json_object(path.parent / "compressed_metrics.json") or {}
    recorded = compressed.get("file_sha256")
    if not isinstance(recorded, dict):
        return
    rerun = lambda: _rerun_command(path.parent, compressed)  # noqa: E731  (read from the folder's files on a refusal only)
    for file in (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,):
        if file.name not in recorded:
            continue
        try:
            with open(file, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise CheckpointError(f"{file} cannot be read ({e.strerror or e}); rerun {rerun()} to write it again") from None
        if digest != recorded[file.name]:
            raise CheckpointError(f"{file} is not the file compressed_metrics.json records (its SHA-256 differs: damaged "
                                  f"or changed since it was written); rerun {rerun()} to write it again")


def _rerun_command(folder: Path, compressed: Mapping[str, Any]) -> str:
    """The `python -m compress.run` command that writes `folder`'s compressed files again, for the chip its
    compressed_metrics.json records (`hw`): without hw= it compressed for the default chip, pruned to another latency
    target. With the data settings of the member's search that its run and metrics.json record
    (`compress.run.recorded_data_settings`: every `data.*` its run's config.yaml set, with the data.root its pareto.json
    records, else an image folder's data.root, size, split, data.metric, ...): without them compress.run refused the
    command it was sent to, naming them, a second step; or, with the size alone, loaded another split of the data."""
    from nas.overrides import shell_command

    from compress.run import recorded_data_settings

    hw = compressed.get("hw")
    command = shell_command("compress.run", [f"checkpoint={folder}", *([f"hw={hw}"] if isinstance(hw, str) and hw else [])])
    # each setting is one shell argument already (a data.root quoted as `nas.overrides.shell_override` quotes it)
    return " ".join([command, *recorded_data_settings(folder)])


def _pixels(files: Sequence[Path], contract: Contract, *, unreadable: list[UnreadableImageError] | None = None,
            originals: list[Original] | None = None) -> np.ndarray:
    """The images of `files` as the model's float32 input: made as the training images were made from their files,
    scaled to [0, 1] as `nas.data.iterate_batches` scales them. A 3-channel model trained on idx data (grey images
    repeated into 3 channels) gets each file made grey and repeated the same way: a colour photo given as RGB was an
    input unlike any it was trained or tested on. Files that cannot be decoded are a `DataError`, or where `unreadable`
    is given, appended to it and left out; where `originals` is given, each read file's size and transparency is
    appended to it (`nas.images.read_images`)."""
    import torch

    from nas.data import GREY_REPEATED, read_images

    grey = contract.channels == 1 or GREY_REPEATED in contract.preprocessing
    x = read_images(files, size=contract.img_size, mode="L" if grey else "RGB", background=contract.background,
                    unreadable=unreadable, originals=originals)
    if grey and contract.channels == 3:
        x = np.repeat(x, 3, axis=1)
    return torch.from_numpy(x).float().div_(255.0).numpy()


def _fitting_batch(path: Path, *, batch_size: int, budget_bytes: int | None, arch: ArchConfig | None = None) -> int:
    """`batch_size`, or the largest smaller batch whose forward pass fits `budget_bytes` by `nas.memory`'s estimate for
    the model's architecture (a checkpoint's own, `arch` where the caller has read it, else its folder's arch.json: that
    of the unpruned model, which no pruned or int8 file outgrows); `batch_size` where neither says."""
    if arch is None and path.suffix == ".pt":
        from nas.checkpoint import read_checkpoint

        arch = read_checkpoint(path)[0]
    elif arch is None:
        try:
            arch = ArchConfig.from_json((path.parent / "arch.json").read_text())
        except (OSError, ConfigError):  # a model file from elsewhere: the estimate has nothing to go on
            arch = None
    return batch_size if arch is None else eval_batch_size(arch, batch_size=batch_size, budget_bytes=budget_bytes)


def file_input_shape(path: Path, *, arch: ArchConfig | None = None) -> tuple[int | None, int | None, int | None]:
    """(channels, height, width) of one image that the model file at `path` takes; None where the file leaves a dim
    dynamic. `arch`: a .pt file's, where the caller has read it (the file is not read again)."""
    if path.suffix == ".xml":
        with openvino_telemetry_off():  # its import (the first in a process) sends a message
            import openvino as ov

        from compress.export import read_openvino

        dims = read_openvino(ov.Core(), path).inputs[0].get_partial_shape()
        shape = [d.get_length() if d.is_static else None for d in dims]
    elif path.suffix == ".onnx":
        from nas.checkpoint import onnx_session

        shape = [d if isinstance(d, int) else None for d in onnx_session(path, threads=1).get_inputs()[0].shape]
    else:
        from nas.checkpoint import read_checkpoint

        arch = read_checkpoint(path)[0] if arch is None else arch
        shape = [None, arch.in_chans, arch.img_size, arch.img_size]
    return tuple(shape[1:4]) if len(shape) == 4 else (None, None, None)


def _check_input_shape(path: Path, contract: Contract, *, arch: ArchConfig | None = None) -> None:
    """`CheckpointError` when the model file takes other images than the (channels, height, width) that the folder's
    `contract` describes (a model file copied into another member's folder, say): the runtimes would fail deep inside
    with a shape error, and only the contract's file (metrics.json, else compressed_metrics.json) says how to make the
    images. `arch`: a .pt file's, where the caller has read it."""
    expected = (contract.channels, contract.img_size, contract.img_size)
    actual = file_input_shape(path, arch=arch)
    if any(a is not None and a != e for a, e in zip(actual, expected)):
        shown = "x".join("?" if a is None else str(a) for a in actual)
        raise CheckpointError(f"{path} takes {shown} (channels x height x width) images but {path.parent / contract.file} "
                              f"describes {'x'.join(map(str, expected))}; keep each model file in the checkpoint folder "
                              "it was written to")


def _runner(path: Path, contract: Contract, *,
            checkpoint: tuple[ArchConfig, dict, dict] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Logits of a batch of `_pixels` by the model file at `path`, loaded once for every batch; `checkpoint`: a .pt
    file's `nas.checkpoint.read_checkpoint`, where the caller has read it (the file is not read again)."""
    # as the contract's file makes them
    _check_input_shape(path, contract, arch=None if checkpoint is None else checkpoint[0])
    if path.suffix == ".xml":
        from compress.export import openvino_runner

        return openvino_runner(path)
    if path.suffix == ".onnx":
        from nas.checkpoint import onnx_runner

        return onnx_runner(path)
    import torch

    from compress.export import torch_runner
    from nas.checkpoint import load_checkpoint

    model = load_checkpoint(path, read=checkpoint)
    # its classes compared with the folder's record as an ONNX file's metadata is (`_predictions_and_contract`): a
    # model_pruned.pt copied in from another member's folder was labelled by this one's without a word. A checkpoint
    # from before 2026-12-04 holds none.
    own = model.meta.get("classes")
    own = own if isinstance(own, list) and all(isinstance(c, str) for c in own) else None
    if (disagree := classes_disagreement(path, own=own, contract=contract)) is not None:
        log.warning("%s", disagree)
    return torch_runner(model, threads=torch.get_num_threads())


def _class_folders(predictions: Sequence[Prediction], classes: Sequence[str], *,
                   ignore_case: bool = False) -> list[tuple[Path, str] | None]:
    """For each image, the nearest folder above it named after one of `classes` and that class, up to the folder it
    was found in (`Prediction.folder`); None for an image in no such folder. `ignore_case`: names compared case-folded
    (to tell a folder "Red" for the class "red" apart from one of no class; `_folder_class` compares them exactly)."""
    import unicodedata

    # Names compared in one Unicode form: macOS writes accents decomposed (e + U+0301), Linux tools composed, so photos
    # sorted on a Mac into "carré" did not match the class "carré" a Linux run was trained on, and printed no accuracy.
    def key(name: str) -> str:
        name = unicodedata.normalize("NFC", name)
        return name.casefold() if ignore_case else name

    by_folder = {key(name.replace("/", "_")): name for name in classes} | {key(name): name for name in classes}

    def found(start: Path, given: Path | None) -> tuple[Path, str] | None:
        # up to the folder given, no further: a folder above it named like a class (/home/me/cat/unsorted/) says nothing
        for folder in (start, *start.parents):
            if key(folder.name) in by_folder:
                return folder, by_folder[key(folder.name)]
            if given is None or folder == given or given not in folder.parents:
                return None
        return None

    # once per folder, not per image: thousands of photos share a few folders, and a command walks them up to 3 times
    seen: dict[tuple[Path, Path | None], tuple[Path, str] | None] = {}
    return [seen[at] if (at := (p.path.parent, p.folder)) in seen else seen.setdefault(at, found(*at))
            for p in predictions]


def _folder_class(predictions: Sequence[Prediction], classes: Sequence[str]) -> list[str | None]:
    """The class each image's folder names, None for an image in no folder named after one of `classes`. The class
    folder is the nearest one above the image, up to the folder it was found in (`Prediction.folder`): as in training,
    a class folder's subfolders hold its images too (new/cat/2024-06/img.jpg is a cat). A "/" in a class name, which no
    folder name can hold, is written "_" (Fashion-MNIST's "T-shirt/top": a folder "T-shirt_top")."""
    return [None if match is None else match[1] for match in _class_folders(predictions, classes)]


def folder_labels(predictions: Sequence[Prediction], classes: Sequence[str]) -> list[str] | None:
    """The class each image's folder names, when every image lies in a folder named after one of `classes` (new photos
    sorted into class folders, as for training), else None (`_folder_class`)."""
    labels = _folder_class(predictions, classes)
    return labels if predictions and None not in labels else None  # type: ignore[return-value]


def unsorted_note(predictions: Sequence[Prediction], classes: Sequence[str]) -> str | None:
    """Why no accuracy is printed for photos partly sorted into class folders: how many images lie in no folder named
    after a class, the folder of the first, a folder named as a class but for case with its rename, and the model's
    class names (a folder "Red" for the class "red" stopped the accuracy line without a word). None where every image
    lies in a class folder, or none does and no folder is a class's but for case."""
    labels = _folder_class(predictions, classes)
    unsorted = [p for p, label in zip(predictions, labels) if label is None]
    # A folder named as a class but for case ("Leaf" for "leaf"): said even where every folder is so, which printed
    # neither the accuracy nor a word, as photos in no class folder at all (the usual case) print none
    near = next((match for match in _class_folders(unsorted, classes, ignore_case=True) if match is not None), None)
    if not unsorted or (len(unsorted) == len(predictions) and near is None):
        return None
    first = unsorted[0].path.parent
    # the folder named once: where the example is that folder itself, "e.g. new/Apple); new/Apple is named ..." said it twice
    which = "" if near is None else "that folder" if near[0] == first else str(near[0])
    case = ("" if near is None else f"; {which} is named as the class {readable_repr(near[1])} but for case, and folder "
            f"names are matched exactly: rename it {readable_repr(near[1].replace('/', '_'))}")
    return (f"no top-1 accuracy: {len(unsorted)} of {len(predictions)} images lie in no folder named after a class "
            f"(e.g. {first}){case}; the model's classes: {', '.join(classes)}")


def folder_accuracy(predictions: Sequence[Prediction], classes: Sequence[str]) -> tuple[int, int] | None:
    """(right, total) of the top-1 classes against `folder_labels`; None when some image's folder is not a class."""
    labels = folder_labels(predictions, classes)
    if labels is None:
        return None
    return sum(p.classes[0] == label for p, label in zip(predictions, labels)), len(predictions)


def folder_balanced_accuracy(predictions: Sequence[Prediction], classes: Sequence[str]) -> float:
    """The mean over the class folders of `predictions` (`folder_labels`) of the share of each one's images whose top-1
    class is the folder's class: balanced accuracy, each class counted the same."""
    from nas.train import score

    labels = folder_labels(predictions, classes) or []
    return score(np.array([p.classes[0] for p in predictions]), np.array(labels), balanced=True)


def folder_interval(predictions: Sequence[Prediction], classes: Sequence[str], *,
                    balanced: bool = False) -> tuple[float, float] | None:
    """The 95% interval (`nas.stats.accuracy_interval`) of the accuracy `folder_accuracy` reports, or with `balanced`
    of `folder_balanced_accuracy`'s: 45 of 50 new photos right (90%) says only that the accuracy lies in 78-96%."""
    truth = np.array(folder_labels(predictions, classes) or [])
    predicted = np.array([p.classes[0] for p in predictions])
    folders = np.unique(truth)
    right = [int((predicted[truth == f] == f).sum()) for f in folders]
    total = [int((truth == f).sum()) for f in folders]
    return accuracy_interval(right, total, balanced=balanced)


def _searched_root(folder: Path) -> Path | None:
    """The image folder the search of the checkpoint in `folder` loaded (`compress.run.recorded_root`: its run's
    pareto.json, else the data_root of its model.pt), for a model searched on `data=imagefolder`; None otherwise."""
    if (_json_object(folder / "metrics.json") or {}).get("dataset") != "imagefolder":
        return None
    from compress.run import recorded_root

    root = recorded_root(folder, {})
    if root is None and (folder / "model.pt").is_file():  # a member folder copied out of its run keeps its data_root
        from nas.checkpoint import read_checkpoint

        try:
            root = recorded_root(folder, read_checkpoint(folder)[2])
        except CheckpointError:
            pass
    return Path(root) if root else None


def seen_images_note(predictions: Sequence[Prediction], folder: Path) -> str | None:
    """A warning where some of the images of `predictions` lie in the image folder the search of the checkpoint in
    `folder` loaded (its data.root, `_searched_root`) and are not among its test images (the `path` column of its
    test_predictions.csv): the model was trained on them, or the search chose it by them (its val images), so an
    accuracy on them can be higher than the model gets on new photos. None where there is none, or no data.root is
    recorded (a model of idx data, a checkpoint from elsewhere)."""
    import os

    root = _searched_root(folder)
    if root is None or not root.is_dir():
        return None
    real_root = Path(os.path.realpath(root))
    inside = [Path(os.path.realpath(p.path)) for p in predictions]
    inside = [p.relative_to(real_root).as_posix() for p in inside if p.is_relative_to(real_root)]
    test: set[str] | None = None
    try:  # `path`: each test image's file relative to data.root (nas.results), from 2026-12-06 on
        with open(folder / "test_predictions.csv", newline="") as f:
            test = {row["path"] for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        pass
    if test is not None:
        seen = [p for p in inside if p not in test]
        if not seen:
            return None
        one = len(seen) == 1
        return (f"warning: {_some_of(len(seen), len(predictions))} {'is' if one else 'are'} not new to the model: "
                f"{'it lies' if one else 'they lie'} in the folder its search loaded ({root}) and {'is' if one else 'are'} "
                f"not among its test images (test_predictions.csv), so the model was trained on {'it' if one else 'them'} "
                f"or chosen by {'it' if one else 'them'} (its val images), and the accuracy above can be higher than "
                "on new photos; the test accuracies recorded beside it (metrics.json) are of its test images only")
    if not inside:
        return None
    return (f"warning: {_some_of(len(inside), len(predictions))} {'lies' if len(inside) == 1 else 'lie'} in the folder "
            f"the model's search loaded ({root}), which holds its training and val images, so the accuracy above can "
            "be higher than on new photos; the test accuracies recorded beside it (metrics.json) are of its test images "
            "only")


def _some_of(n: int, total: int) -> str:
    """'3 of the 9 images', 'all 9 images', 'the image' (of 1), '1 of the 9 images': `n` of the `total` images a
    warning is about, as the verb after it takes them ('1 of the 1 images are' read as a slip)."""
    if total == 1:
        return "the image"
    return f"all {total:,} images" if n == total else f"{n:,} of the {total:,} images"


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """One line per image: `path  class 97.1%  class 2.0%  ...` (a file or class name that is not UTF-8 as
    `nas.errors.readable_text` shows it: a strict UTF-8 stdout refused it)."""
    lines = (f"{p.path}  " + "  ".join(f"{c} {100 * q:.1f}%" for c, q in zip(p.classes, p.probabilities))
             for p in predictions)
    return readable_text("\n".join(lines))


def predictions_csv(predictions: Sequence[Prediction]) -> str:
    """CSV with columns path, class_1, probability_1, class_2, ... (a file or class name that is not UTF-8 as
    `nas.errors.readable_text` shows it: `caf\\xe9.png`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    top = len(predictions[0].classes) if predictions else 0
    writer.writerow(["path", *[f"{kind}_{i}" for i in range(1, top + 1) for kind in ("class", "probability")]])
    for p in predictions:
        writer.writerow([str(p.path), *[v for c, q in zip(p.classes, p.probabilities) for v in (c, f"{q:.6f}")]])
    return readable_text(buf.getvalue())


def saturation_warning(path: Path) -> str | None:
    """A warning line when `path` is its folder's int8 file (compressed_metrics.json's int8 `file` / `file_ir`) and this
    CPU's int8 kernels saturate (`int8_saturates`: x86 without VNNI): OpenVINO and onnxruntime then classify some
    images otherwise than the int8 model, and the chip, do. It gives the share of test images on which that runtime
    agreed with the int8 model where it was compressed (`int8.agreement`), where recorded. None otherwise."""
    int8 = (_json_object(path.parent / "compressed_metrics.json") or {}).get("int8")
    int8 = int8 if isinstance(int8, dict) else {}
    runtime = {int8.get("file_ir") or "model_int8.xml": "openvino", int8.get("file") or "model_int8.onnx": "onnx"}
    if path.name not in runtime or path.suffix not in (".xml", ".onnx") or not int8_saturates():
        return None
    agreement = ((int8.get("agreement") or {}).get(runtime[path.name]) or {}).get("top1_agreement")
    agreed = (f" ({100 * agreement:.1f}% the same top-1 class on the test images where it was compressed)"
              if isinstance(agreement, (int, float)) else "")
    return (f"warning: this CPU's int8 kernels saturate (x86 without VNNI), so {path.name} in {RUNTIMES[path.suffix]} "
            f"can classify otherwise here than the int8 model and the target chip{agreed}; "
            f"{int8.get('file') or 'model_int8.onnx'} run operator by operator gives the chip's (README, 'Deployment "
            "contract')")


def _clear_killed_csv_writes(path: Path) -> None:
    """Delete the temporary files beside the `--csv` file that an earlier run killed mid-write (kill -9, the OOM killer)
    left, once their writer's process is gone: only those of this file's name (the folder may be any the user named,
    holding others' files), as `atomic_write_text` names them beside the file a symlink points to."""
    target = Path(path).resolve()
    if removed := remove_dead_writers_temps(target.parent, recursive=False, target=target.name):
        log.info("removed %s left beside %s by a run that was killed: %s", counted(len(removed), "temporary file"), target,
                 ", ".join(p.name for p in removed))


class _OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose refusals of the command line (a flag it lacks, `--top x`, no images) are one `error:` line
    and exit status 2, as every other refusal of the toolkit's commands: argparse printed its usage (four lines in an
    80-column terminal) and then the error."""

    def error(self, message: str) -> NoReturn:
        options = ", ".join(a.option_strings[-1] for a in self._actions if a.option_strings and a.dest != "help")
        exit_with_error(f"{message}; {self.prog} takes a model and image files or folders, with the options {options} "
                        f"({self.prog} --help says what each is)")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: errors (the command line's too) become one line and exit code 2 (SystemExit); a `--csv` file
    that cannot be written, one line after the predictions and exit code 1 (before them where the disk is full or over
    quota already); Ctrl-C or SIGTERM, one line (the --csv file is as it was: it is written whole, at the end) and exit
    code 130 or 143, also where the process ignores SIGINT (a script's background job)."""
    parser = _OneLineParser(prog="python -m compress.predict",  # the docstring's first paragraph ends in ":"
                            description=__doc__.split("\n\n")[0].rstrip(":") + ".")
    parser.add_argument("model", help="checkpoint folder (runs its model_int8.xml, else model.onnx), or a model "
                                          "file in one: .xml in OpenVINO (model_int8.xml), .onnx in onnxruntime "
                                          "(model_int8.onnx, model.onnx, model_pruned.onnx), .pt in torch")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--top", type=int, default=1, help="classes per image (default 1)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the predictions to this CSV file")
    parser.add_argument("--memory-budget-gb", type=float, default=None,
                        help=f"GiB of {WORKING_MEMORY} one batch of images may take "
                             "(default: 70%% of the memory available)")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="leave out image files that cannot be decoded (cut short, empty, not an image), with one "
                             "warning counting them, and classify the others (default: stop, naming every one)")
    with help_on_stdout():  # `--help | head -3`: a quiet end, not a BrokenPipeError traceback
        args = parser.parse_args(argv)
    # `sh -c 'python -m compress.predict model photos/ &'` ignored `kill -INT` to the end of a large folder, and Ctrl-C
    # at a terminal ended in a traceback: one line now, as the other commands say it
    try:
        with interrupts_honoured():
            return _predict_command(args)
    except KeyboardInterrupt as e:
        sys.stdout.flush()  # after the predictions printed so far, in a terminal too
        kept = f"--csv {args.csv} was not written (a file there is as it was); " if args.csv is not None else ""
        print(f"interrupted: {kept}rerun the same command to classify the images", file=sys.stderr)
        return 128 + interrupting_signal(e)  # the shell's codes for death by SIGINT (130) / SIGTERM (143)


def _predict_command(args: argparse.Namespace) -> int:
    """`main` once its arguments are parsed."""
    # "warning: " on the logged warnings too (not square, skipped files, ...), as on the ones printed here: every
    # warning line of this command starts alike, and its info lines ("classified with ...") stay plain
    with lines_on_stderr("compress", "nas", warning_prefix="warning: "), exit_on_error():
        if args.csv is not None:
            try:
                writable_file(args.csv, setting="--csv")
            except OSError as e:  # the disk full or over quota: its failed write, not a --csv refused (exit 2)
                print(f"error: {disk_failure_text(e)}; free space, or pass another --csv, and rerun", file=sys.stderr)
                return DISK_EXIT
            _clear_killed_csv_writes(args.csv)
        predictions, contract = _predictions_and_contract(
            args.model, args.images, top=args.top, memory_budget_gb=args.memory_budget_gb,
            skip_unreadable=args.skip_unreadable, setting_names=CLI_FLAGS)
        print(format_predictions(predictions))
        labelled = folder_accuracy(predictions, contract.classes)
        if labelled is None and (note := unsorted_note(predictions, contract.classes)) is not None:
            sys.stdout.flush()  # after the predictions in a terminal too
            print(readable_text(note), file=sys.stderr)
        if labelled is not None:
            right, total = labelled
            low, high = folder_interval(predictions, contract.classes)
            which = "image whose folder names its" if total == 1 else "images whose folder names their"
            print(f"top-1 accuracy on the {total} {which} class: {100 * right / total:.2f}% "
                  f"({right} of {total}; 95% interval {100 * low:.1f}-{100 * high:.1f}%)")
            if contract.metric == "balanced_accuracy":  # what the run was searched and scored for
                folders = len(set(folder_labels(predictions, contract.classes) or []))
                low, high = folder_interval(predictions, contract.classes, balanced=True)
                print(f"balanced accuracy (the mean over the {folders} class folders): "
                      f"{100 * folder_balanced_accuracy(predictions, contract.classes):.2f}% (95% interval {100 * low:.1f}-{100 * high:.1f}%)")
            # The photos a user has at hand are often the folder the search ran on: the accuracy then counts images
            # the model was trained on, and read as a check on new photos.
            if (seen := seen_images_note(predictions, model_file(args.model).parent)) is not None:
                sys.stdout.flush()  # after the accuracy in a terminal too
                print(readable_text(seen), file=sys.stderr)
        if args.csv is not None:  # atomically: a kill or a full disk mid-write leaves the previous file, not half of one
            try:
                atomic_write_text(args.csv, predictions_csv(predictions))
            except OSError as e:  # a full disk or quota, found only now (the folder was writable): it was a traceback
                sys.stdout.flush()  # after the predictions it leaves unsaved, in a terminal too
                # in every command's words for a failed write (`disk_failure_text`), naming --csv, not its temporary file
                print(f"error: cannot write {readable_text(str(args.csv))} ({e.strerror or e}); the predictions above are "
                      "not saved in it: free space, or pass another --csv, and rerun", file=sys.stderr)
                return 1
        # A folder runs model_int8.xml or model.onnx, whichever it holds: the output said neither which nor where the
        # CSV went. On stderr, so that stdout stays one line per image (and the accuracy) for scripts that read it.
        used = model_file(args.model).resolve()
        sys.stdout.flush()  # the line after the predictions in a terminal too, where stdout is buffered apart
        if (warning := saturation_warning(used)) is not None:  # its predictions and accuracy are not the chip's
            print(warning, file=sys.stderr)
        print(f"classified with {used} in {RUNTIMES[used.suffix]}"
              + (f"; predictions written to {args.csv.resolve()}" if args.csv is not None else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    with closed_stdout_ends_quietly():  # `compress.predict ... | head -3`: a quiet end, the --csv written all the same
        sys.exit(main())
