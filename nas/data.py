"""Datasets held in memory as uint8 tensors, with batch-level (vectorised) augmentation.

Two on-disk layouts: MNIST-style idx files (Fashion-MNIST, the embedded default) and an image
folder. The validation split is always carved out of the *training* split with a fixed seed; the
test split is only read for final reports, never during the search.

This module reads the data and binds it into a `Dataset`; an image folder's layout is in `nas.image_folder`, decoding
image files in `nas.images`, the held-out splits in `nas.splits` and what a study records of its images in
`nas.data_records`, whose names code imports from here as before the split (`__all__` lists them).
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Collection, Iterator

import numpy as np
import torch

from nas.checkpoint import ImageCounts  # what `Dataset.image_counts` holds; there for compress.predict, without torch
from nas.config import DataConfig, DataFormat, Metric
from nas.data_records import (CLASS_SUMMARY, SPLIT_NAMES, SPLIT_SETTINGS, SplitImageDigests, absolute_root,
                              class_changes, class_summary, cross_class_copies_warning, data_identity,
                              held_out_copies_warning, image_digests, per_class_test_images, split_digest,
                              split_image_digests, split_record, system_folders_may_explain)
from nas.errors import DataError, counted, make_folder, module_logger, readable_repr
from nas.image_folder import (IMAGE_SUFFIXES, OS_FOLDER_FILES, SYSTEM_FOLDERS, class_dirs, class_mismatch,
                              dataset_one_folder_down, empty_classes_message, image_files_in, image_folders_in,
                              is_image_file, loose_images_warning, misnamed_split_folders, nested_classes_warning,
                              non_image_files_note, not_a_class_folder, not_a_folder, numbered_classes_warning,
                              shared_images_message, system_folders_note, unread_images_warning)
from nas.images import (GREY_REPEATED, Original, UnreadableImageError, available_cpus, cache_file, detect_mode,
                        drop_stale_cache_files, grey_image_count, notable_file, notable_images, preprocessing,
                        read_image, read_images, read_notable, reshaped_images_warnings, unreadable_message)
from nas.memory import available_memory_bytes, gib
from nas.overrides import shell_override
from nas.splits import held_out_gaps_warning, hold_out, imbalance_warning, unused_split_sizes

# nas.data's public names: its own, and those of the modules split from it that code and tests import from here, where
# they were before nas/data.py was split.
__all__ = ["CLASS_SUMMARY", "Dataset", "ERASE_AREA", "ERASE_LOG_ASPECT", "FASHION_MNIST_CLASSES",
           "FASHION_MNIST_INSTALL", "GREY_REPEATED", "IMAGE_SUFFIXES", "ImageCounts", "LOAD_BYTES_PER_VALUE",
           "OS_FOLDER_FILES", "Original", "SPLIT_SETTINGS", "SYSTEM_FOLDERS", "Split", "SplitImageDigests",
           "UnreadableImageError", "absolute_root", "augment", "available_cpus", "channel_stats",
           "class_changes", "class_summary", "cross_class_copies_warning", "data_identity",
           "held_out_copies_warning", "held_out_gaps_warning", "image_digests", "image_files_in",
           "imbalance_warning", "is_image_file", "iterate_batches", "load_dataset", "load_search_data",
           "nested_classes_warning", "non_image_files_note", "notable_images", "numbered_classes_warning",
           "per_class_test_images",
           "preprocessing", "read_idx", "read_image", "read_images", "reshaped_images_warnings",
           "split_as_recorded_and_digests", "split_digest", "split_image_digests", "split_record",
           "system_folders_may_explain", "system_folders_note", "unread_images_warning", "unreadable_message"]

log = module_logger(__name__)  # lines naming a file that is not UTF-8 written readably (ReadableNames)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_INSTALL = "sudo apt-get install -y dataset-fashion-mnist"


# Bytes of memory per uint8 value of the loaded images that loading them takes at its peak: the decoded images, a second
# copy while they are stacked into one array (or resized, for idx data), and the float32 copy of the training images
# the normalisation statistics are computed from (`channel_stats`).
LOAD_BYTES_PER_VALUE = 6


@dataclass(frozen=True)
class Split:
    """Images `x` (N, C, H, W) uint8 and labels `y` (N,) int64; for an image folder also `paths`, each image's file
    relative to data.root as the folder layout names it ("cat/IMG_1.jpg", "test/cat/IMG_1.jpg"), so a prediction by
    position can be traced to its file (test_predictions.csv); None for idx files, which have no file per image."""

    x: torch.Tensor
    y: torch.Tensor
    # names, not images (small beside the pixels); left out of repr, which would list every file, and of ==
    paths: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def select(self, index: torch.Tensor) -> Split:
        """The images at `index` (positions, in the order given), with their labels and paths."""
        paths = None if self.paths is None else tuple(self.paths[i] for i in index.tolist())
        return Split(self.x[index], self.y[index], paths)


@dataclass(frozen=True)
class Dataset:
    """Train / val / test splits plus what a deployed model must know about its input."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of [0, 1] pixels of the training split
    std: tuple[float, ...]
    metric: Metric = Metric.accuracy  # how predictions are scored (data.metric)
    held_out: tuple[str, ...] = ()  # the splits held out of the training images ("test", "val"), in the order drawn
    # the held-out splits in which a class rounded to none was given an image (`_one_for_each`): splits that differ from
    # those made before that rule (2026-12-05), which studies and checkpoints of then recorded
    rounded_up: tuple[str, ...] = ()
    # of every split's images, as read (`ImageCounts`); None where unknown (a stand-in reader told nothing, or a
    # Dataset made by hand)
    image_counts: ImageCounts | None = None

    @property
    def balanced(self) -> bool:
        """Scored by balanced accuracy (the mean of the per-class accuracies), with class-weighted training."""
        return self.metric == Metric.balanced_accuracy

    @property
    def in_chans(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def img_size(self) -> int:
        return int(self.train.x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# -- idx files ---------------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Read an idx(.gz) file (the MNIST format) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read idx file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 idx file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: header needs {header} bytes, file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} has {len(raw)} bytes but its header {shape} implies {expected}: file truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"dataset file {stem}(.gz) not found in data.root={root}; install Fashion-MNIST with "
        f"`{FASHION_MNIST_INSTALL}` or set data.root to a folder holding the four idx files"
    )


def _load_idx_dataset(root: Path, *, name: str = "fashion_mnist") -> tuple[Split, Split, tuple[str, ...]]:
    if not root.is_dir():
        raise DataError(
            f"data.root={root} {not_a_folder(root)}; install Fashion-MNIST with `{FASHION_MNIST_INSTALL}` "
            "or set data.root to a folder holding the four idx files"
        )
    if not any((root / f"train-images-idx3-ubyte{gz}").is_file() for gz in (".gz", "")):
        # data.root=/my/images given without data=imagefolder (the data group defaults to Fashion-MNIST): the line
        # about a missing idx file and installing Fashion-MNIST sent the user the wrong way
        if folders := image_folders_in(root):
            shown = ", ".join(folders[:5]) + (f", ... ({len(folders)} in all)" if len(folders) > 5 else "")
            raise DataError(
                f"data.root={root} holds folders of images ({shown}), not the idx files that data={name} reads: for "
                "your own images pass data=imagefolder too (root/<class>/*.png|jpg or root/train/<class>/...)"
            )
        # data.root one folder above such a folder (the one an archive unpacked into): named as the data.root to pass
        if (down := dataset_one_folder_down(root)) is not None:
            folder, inner = down
            folders = [f"{folder.name}/{f}" for f in inner]
            shown = ", ".join(folders[:5]) + (f", ... ({len(folders)} in all)" if len(folders) > 5 else "")
            raise DataError(
                f"data.root={root} holds folders of images one folder down ({shown}), not the idx files that "
                f"data={name} reads: for your own images pass data=imagefolder "
                f"{shell_override(key='data.root', value=str(folder.resolve()))}"
            )
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{root}: {prefix} images {images.shape} and labels {labels.shape} do not match")
        splits.append(Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))))
    n_classes = int(max(splits[0].y.max(), splits[1].y.max())) + 1
    classes = FASHION_MNIST_CLASSES if n_classes == 10 else tuple(str(i) for i in range(n_classes))
    return splits[0], splits[1], classes


def _check_fits_memory(n_images: int, *, channels: int, size: int | None, where: Path) -> None:
    """`DataError` when `n_images` images of `where` at `channels` x `size` x `size` (`data.img_size`) cannot be loaded in
    the memory available now: a typo such as data.img_size=100000 would otherwise decode each photo to gigabytes until
    the OOM killer ends the process, without a word. Nothing is checked for native sizes (`size` None), which are
    known only once decoded, or where the available memory cannot be read."""
    available = available_memory_bytes()
    if size is None or available is None:
        return
    need = n_images * channels * size * size * LOAD_BYTES_PER_VALUE
    if need > available:
        amount = f"{need / 2**30:,.0f} GiB" if need >= 1000 * 2**30 else gib(need)  # 2.16e+05 GiB reads as a typo
        raise DataError(f"data.img_size={size}: the {counted(n_images, 'image')} of {where} at {channels}x{size}x{size} "
                        f"need about {amount} of memory to load, more than the {gib(available)} available now; pass a "
                        "smaller data.img_size (the side in pixels each image is resized to)")


def _conform(split: Split, *, size: int | None, channels: int | None) -> Split:
    """Idx images at `data.img_size` and `data.channels`: resized (bilinear, antialiased, by torch's interpolate, as
    `preprocessing` names it) to size x size, and grey repeated into 3 equal channels when 3 are asked for."""
    x = split.x
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return Split(x, split.y, split.paths)


# -- image folders -----------------------------------------------------------------------------
def _read_folder(root: Path, classes: tuple[str, ...], *, size: int | None, mode: str, draft: bool = True,
                 background: int | None = None, threads: int | None = None, cache: Path | None = None,
                 fix: str = "add images to {it}", data_root: Path | None = None,
                 notable: list[tuple[str, Original]] | None = None, untold: list[Path] | None = None) -> Split:
    """The images of `root`'s class folders, in `classes`' order and sorted within each (`image_files_in`), each with
    its path relative to `data_root` (`root` itself when None). Where `notable` is given, the images that are not
    square or have transparent pixels are appended to it (`notable_images`), from the cache too; where `untold` is
    given, `root` is appended to it when the read could not tell which those are (a stand-in `read_image`)."""
    files, ys, other, empty, non_images = [], [], [], [], []
    for label, name in enumerate(classes):
        folder = root / name
        found = image_files_in(folder, other_images=other, other_files=non_images) if folder.is_dir() else []
        empty += [] if found else [folder]
        files += found
        ys += [label] * len(found)
    if (unread := unread_images_warning(root, other, non_images=non_images)) is not None:
        log.warning("%s", unread)  # before the error below: a class whose photos are all .heic is empty
    elif (note := non_image_files_note(root, non_images)) is not None:  # info: notes.txt is skipped by design
        log.info("%s", note)
    if empty:  # every one at once, with what to do: the first alone was named, one per run, with no word of a fix
        raise DataError(empty_classes_message(empty, fix))
    if (shared := shared_images_message(files, ys, classes)) is not None:
        raise DataError(shared)
    _check_fits_memory(len(files), channels=1 if mode == "L" else 3, size=size, where=root)
    y = torch.tensor(ys, dtype=torch.int64)
    # From the listing, which a cached read makes too: a cache file holds the pixels alone, so those written before
    # the paths were kept serve as they are. Relative to the folder as found, not resolved: a class folder that links
    # to another disk keeps the name the layout gives it.
    paths = tuple(p.relative_to(data_root or root).as_posix() for p in files)
    how = {"size": size, "mode": mode, "draft": draft, "background": background}
    cached = cache_file(cache, root, files, **how) if cache is not None else None
    if cached is not None and cached.is_file():
        try:
            x = np.load(cached, allow_pickle=False)
            kept = read_notable(notable_file(cached), len(files))
            if x.dtype == np.uint8 and x.ndim == 4 and x.shape[0] == len(files) and kept is not None:
                if notable is not None:
                    notable.extend((paths[i], o) for i, o in kept)
                return Split(torch.from_numpy(x), y, paths)
        except (OSError, ValueError):  # a truncated or foreign file: decoded again and written anew
            pass
    originals: list[Original] = []
    x = read_images(files, **how, threads=threads, originals=originals)
    # None: a stand-in read_image told nothing
    found = notable_images(originals) if len(originals) == len(files) else None
    if notable is not None:
        notable.extend((paths[i], o) for i, o in found or [])
    if untold is not None and found is None:
        untold.append(root)
    if cached is not None and found is not None:
        import io
        import json

        from nas.checkpoint import atomic_write_bytes, atomic_write_text  # workers loading at once each write a whole file

        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        try:
            # the images' notes first: a cache file is read only with them beside it
            atomic_write_text(notable_file(cached), json.dumps([[i, *o] for i, o in found]))
            atomic_write_bytes(cached, buf.getvalue())
            drop_stale_cache_files(cached)
        except OSError as e:  # a full disk, say: the images are loaded all the same, only not cached
            log.warning("data.cache_dir: could not write %s (%s); the images will be decoded again next time",
                        cached, e.strerror or e)
    return Split(torch.from_numpy(x), y, paths)


def _load_imagefolder(cfg: DataConfig) -> tuple[Split, Split | None, Split | None, tuple[str, ...], ImageCounts | None]:
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"data.root={root} {not_a_folder(root)}; expected root/<class>/*.png or root/train/<class>/...")
    has_split_dirs = (root / "train").is_dir()
    misnamed_split_folders(root, has_split_dirs)
    train_root = root / "train" if has_split_dirs else root
    classes = tuple(p.name for p in class_dirs(train_root))
    if len(classes) < 2:
        layout = (f" ({root} holds a folder named 'train', so it was read as root/train/<class>/images beside root/test; "
                  "a class named 'train' needs another folder name)" if has_split_dirs else "")
        # data.root set to one class's folder (the images of cat/, not the folder above cat/ and dog/) is a likely slip;
        # so is it where that class keeps some photos in a subfolder (cat/2024-06/), which read as its one class folder
        loose = 0 if has_split_dirs else sum(
            1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        beside = f" beside its folder {classes[0]}" if classes else ""
        one_class = (f" (it holds {counted(loose, 'image file')} itself{beside}, as one class's folder does: data.root is "
                     f"the folder above the class folders, e.g. "
                     f"{shell_override(key='data.root', value=str(root.resolve().parent))})" if loose else "")
        # data.root one folder too high (the folder an archive unpacked into, holding the dataset's folder): its one
        # folder holds the class folders; said where it holds no image itself, as a class's folder would
        nested = ""
        if not loose and (down := dataset_one_folder_down(train_root)) is not None:
            folder, inner = down
            nested = (f" (its one folder {folder.name} holds {counted(len(inner), 'folder')} of images ("
                      f"{', '.join(inner[:5])}{', ...' if len(inner) > 5 else ''}): data.root is one folder down, e.g. "
                      f"{shell_override(key='data.root', value=str(folder.resolve()))})")
        raise DataError(f"{train_root} has {counted(len(classes), 'class folder')}; an image-folder dataset needs >= 2 "
                        f"(root/<class>/images){layout}{one_class}{nested}")
    not_a_class_folder(root, train_root, classes)
    for where in (root, train_root, root / "val", root / "test") if has_split_dirs else (root,):
        if (loose := loose_images_warning(where)) is not None:
            log.warning("%s", loose)
    # the class folders whose images are read (a missing one is named below, once the classes are compared)
    read = [split_root / c for split_root in (train_root, root / "val", root / "test") for c in classes
            if (split_root / c).is_dir()]
    mode = {1: "L", 3: "RGB"}.get(cfg.channels or 0) or detect_mode(read)
    cache = make_folder(cfg.cache_dir, setting=f"data.cache_dir={cfg.cache_dir!r}") if cfg.cache_dir else None
    notable: list[tuple[str, Original]] = []  # of every split, warned about once below
    untold: list[Path] = []  # the split folders whose notable images are not known
    train = _read_folder(train_root, classes, size=cfg.img_size, mode=mode, background=cfg.background, cache=cache,
                         data_root=root, notable=notable, untold=untold, fix=f"every folder of {train_root} is a class: add images to {{it}}, or remove {{it}}")
    val = test = None
    if has_split_dirs:
        for split_name in ("val", "test"):
            split_root = root / split_name
            if split_root.is_dir():
                found = tuple(p.name for p in class_dirs(split_root))
                if found != classes:
                    import unicodedata

                    # macOS writes accents decomposed (e + U+0301), Linux tools composed: one name, two spellings that
                    # print the same, so the message shows their code points
                    if sorted(unicodedata.normalize("NFC", n) for n in found) == sorted(
                            unicodedata.normalize("NFC", n) for n in classes):
                        spell = lambda names: "[" + ", ".join(ascii(n) for n in names) + "]"  # noqa: E731
                        raise DataError(f"{split_root} has classes {spell(found)} but train has {spell(classes)}: the "
                                        "same names with accents written in another Unicode form (as macOS and Linux "
                                        f"write them); rename the class folders of {split_root} or of train to one form (convmv --nfc)")
                    raise DataError(class_mismatch(split_root, train_root, found, classes, cfg))
                # its class folders cannot go (they must be train's), but the split folder can
                split = _read_folder(split_root, classes, size=cfg.img_size, mode=mode, background=cfg.background,
                                     cache=cache, data_root=root, notable=notable, untold=untold, fix=f"add images to {{it}}, or remove {split_root} to hold {split_name} "
                                     f"images out of train (data.{split_name}_size={getattr(cfg, f'{split_name}_size'):g})")
                val, test = (split, test) if split_name == "val" else (val, split)
    images = sum(len(s) for s in (train, val, test) if s is not None)
    for warning in reshaped_images_warnings(notable, images=images, root=root, size=cfg.img_size,
                                            background=cfg.background):
        log.warning("%s", warning)
    counts = None if untold else ImageCounts(images, sum(o.width != o.height for _, o in notable),
                                             sum(o.transparent for _, o in notable),
                                             sum(grey_image_count(s.x) for s in (train, val, test) if s is not None))
    return train, val, test, classes, counts


# -- splitting and statistics --------------------------------------------------------------------
def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    xf = x.float().div_(255.0)
    mean = xf.mean(dim=(0, 2, 3))
    std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def load_dataset(cfg: DataConfig, *, one_for_each: bool = True, overridden: Collection[str] = ()) -> Dataset:
    """Load the dataset `cfg` describes; raise `DataError` with a one-line fix when it is missing. `one_for_each`
    false splits it as before a class rounded to none got a held-out image (`split_as_recorded_and_digests`).
    `overridden`: the config keys the user set on the command line (`nas.config.overridden_keys`): a split size named
    there for data with that split of its own is warned about even at its default value."""
    return _split_loaded(cfg, _read_unsplit(cfg, overridden=overridden), one_for_each=one_for_each)


_Unsplit = tuple[Split, Split | None, Split | None, tuple[str, ...], ImageCounts | None]
"""The images as read, before any is held out: train, the val and test splits the data brings (None where it brings
none), the class names, and what loading changed of the images (`ImageCounts`; None: unknown)."""


def _read_unsplit(cfg: DataConfig, *, overridden: Collection[str] = ()) -> _Unsplit:
    """The images `cfg` names, read and not yet split (`_Unsplit`), with the warning of a split size that holds nothing
    out (`unused_split_sizes`)."""
    if cfg.format == DataFormat.idx:
        train, test, classes = _load_idx_dataset(Path(cfg.root), name=cfg.name)
        _check_fits_memory(len(train) + len(test), channels=cfg.channels or train.x.shape[1], size=cfg.img_size,
                           where=Path(cfg.root))
        train, test = (_conform(s, size=cfg.img_size, channels=cfg.channels) for s in (train, test))
        val = None
        # square grey images, stored opaque
        counts: ImageCounts | None = ImageCounts(len(train) + len(test), 0, 0, len(train) + len(test))
    else:
        train, val, test, classes, counts = _load_imagefolder(cfg)
    if (unused := unused_split_sizes(cfg, val=val, test=test, overridden=overridden)) is not None:
        log.warning("%s", unused)
    return train, val, test, classes, counts


def _split_loaded(cfg: DataConfig, loaded: _Unsplit, *, one_for_each: bool = True, keyed: bool = True) -> Dataset:
    """The `Dataset` of images read by `_read_unsplit`, with test and val held out of train where the data brings no
    such split (`hold_out`; `one_for_each` and `keyed` false give the splits of before,
    `split_as_recorded_and_digests`)."""
    train, val, test, classes, image_counts = loaded
    held_out, rounded_up = [], []  # the splits held out of the training images, in the order drawn
    # Test first, from all the images, then val from what test left: a class too small for both (2 images: one stays in
    # training) gives its one held-out image to test. On purpose: test is where a class is measured, val where
    # architectures are selected, and a class's accuracy on one val image is 0 or 1, noise the search would select on
    # (with data.metric=balanced_accuracy a whole class's weight), while a test accuracy silent on the class would
    # report the shipped model as covering it; and the test images stay those of data.test_size and the seed alone,
    # whatever data.val_size is, so members of studies with other val sizes are tested on the same images. Changing
    # the order would also change the test split of every folder with such a class, which studies and checkpoints
    # record (`split_as_recorded_and_digests` restores only the splits of before `_one_for_each` and of before
    # `_path_ranks`).
    if test is None:
        train, test, moved = hold_out(train, cfg.test_size, seed=cfg.split_seed + 1, what="data.test_size",
                                      stratify=cfg.stratify, one_for_each=one_for_each, keyed=keyed)
        held_out.append("test")
        rounded_up += ["test"] if moved else []
    if val is None:
        train, val, moved = hold_out(train, cfg.val_size, seed=cfg.split_seed, what="data.val_size",
                                     stratify=cfg.stratify, one_for_each=one_for_each, keyed=keyed)
        held_out.append("val")
        rounded_up += ["val"] if moved else []
    counts = torch.bincount(train.y, minlength=len(classes)).tolist()
    if 0 in counts:  # a model cannot learn a class it never sees, and val and test would count it wrong every time
        raise DataError(f"class {readable_repr(classes[counts.index(0)])} has no training images left after holding out test and val "
                        f"(data.test_size={cfg.test_size:g}, data.val_size={cfg.val_size:g}); hold out less, or give "
                        "the class more images")
    mean, std = channel_stats(train.x)
    return Dataset(name=cfg.name, train=train, val=val, test=test, classes=classes, mean=mean, std=std,
                   metric=Metric(cfg.metric), held_out=tuple(held_out), rounded_up=tuple(rounded_up),
                   image_counts=image_counts)


def load_search_data(cfg: Any, *, overridden: Collection[str] | None = None,
                     run_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The data of the search (or compression) `cfg` describes, loaded and split as `run_search` and `run_compress` load
    it (`load_dataset` on its `data` settings): its `test` split holds the images the report's test accuracies are of.
    Score a model on it as the report scores a Pareto member with `nas.train.evaluate(model, data.test,
    balanced=data.balanced)` (balanced accuracy where `data.metric=balanced_accuracy`).

    `cfg`: the DictConfig that `nas.compose_search_config` (or `compress.compose_compress_config`) returns, a
    `RunConfig`, or a `DataConfig`. `overridden`: as `run_search` takes it (the keys whose setting is warned about when it
    does nothing); None: those of the overrides `cfg` records. A bad value is a one-line `ConfigError`, missing data a
    `DataError`.

    `run_dir`: the run folder of a search (`SearchResult.run_dir`) whose split to give. A study made before a class
    rounded to none got a held-out image (2026-12-05) keeps its older split, which its searches and reports use
    (`split_as_recorded_and_digests`); without `run_dir` this gives the split a new study gets. The study is read (not
    changed) from the folder's study.db, or from `cfg`'s `search.storage` where it names a shared one, under the
    folder's name (the study name: runs_dir/study_name). `ConfigError` when there is no such study, or when it was made
    with other images than `cfg`'s data settings give, as a search resuming it would refuse them."""
    from omegaconf import DictConfig

    from nas.config import overridden_or_recorded, structured, validate_data_config
    from nas.errors import wrong_type

    keys = overridden_or_recorded(cfg, overridden)
    if isinstance(cfg, DictConfig) and isinstance(cfg.get("data"), DictConfig):
        data_cfg = structured(cfg.data, DataConfig)
    elif isinstance(cfg, DataConfig) or isinstance(getattr(cfg, "data", None), DataConfig):
        data_cfg = cfg if isinstance(cfg, DataConfig) else cfg.data
    else:
        raise wrong_type("cfg", cfg, "pass the DictConfig that nas.compose_search_config([\"key=value\", ...]) returns "
                                     "(or a RunConfig, or a DataConfig)")
    validate_data_config(data_cfg)
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):  # before the images: they may take a while
        raise wrong_type("run_dir", run_dir, "pass the run folder of a search (a path, e.g. SearchResult.run_dir)")
    data = load_dataset(data_cfg, overridden=keys)
    if run_dir is None:
        return data
    search = cfg.get("search") if isinstance(cfg, DictConfig) else getattr(cfg, "search", None)
    storage = search.get("storage") if isinstance(search, DictConfig) else getattr(search, "storage", None)
    return _split_as_study(data_cfg, data, Path(run_dir), storage=storage)


def _split_as_study(cfg: DataConfig, data: Dataset, run_dir: Path, *, storage: str | None) -> Dataset:
    """`data` split as the study of `run_dir` (in `storage`, a shared study's URL, else the folder's study.db) keeps
    it (`split_as_recorded_and_digests`); `ConfigError` when there is no such study or it was made with other images.
    The storage is opened to read the study's record only, and closed."""
    import dataclasses

    import optuna

    from nas.config import RunConfig
    from nas.errors import ConfigError
    from nas.study import check_data, masked, open_storage, recorded_digests, storage_url

    if storage is None and not (run_dir / "study.db").is_file():  # opening it would create an empty database there
        raise ConfigError(f"run_dir={str(run_dir)!r} holds no study.db: pass the run folder of a search (its "
                          "search.runs_dir/search.study_name), or a config whose search.storage names its shared study")
    run = RunConfig(data=cfg)
    run = dataclasses.replace(run, search=dataclasses.replace(run.search, storage=storage, study_name=run_dir.name))
    url = storage_url(run, run_dir)
    opened = open_storage(run, run_dir)
    try:
        names = optuna.get_all_study_names(opened)
        if run_dir.name not in names:
            raise ConfigError(f"run_dir={str(run_dir)!r}: {masked(url)} holds no study {run_dir.name!r} (a run folder "
                              f"is named after its study); studies there: {', '.join(sorted(names)) or 'none'}")
        study = optuna.load_study(study_name=run_dir.name, storage=opened)
        data, known = split_as_recorded_and_digests(cfg, data, recorded_digests(opened, study.study_name))
        # as a search resuming the study refuses other images: a split of them is not the one its report scored
        check_data(study, data_identity(data, split_digests=known), record=False, images_from=cfg,
                   fix=f"pass the data settings its search used (this one's data.root={cfg.root})")
    finally:
        opened.engine.dispose()  # no connection (or SQLite file handle) left open in the caller's process
    return data


def _said_before(record: logging.LogRecord) -> bool:
    """A logging filter that drops every record: those of a second read of the images repeat the first read's."""
    return False


def _unsplit(data: Dataset) -> _Unsplit | None:
    """An image folder's images as `_read_unsplit` read them, put back together from `data`'s splits (None for idx
    data, whose images have no paths): the held-out splits returned to train in the folder's order, by class and then
    by path as `image_files_in` sorts them (every path of a class shares its class folder, so the sort of the relative
    paths' parts is that of the files'). Saves reading a large folder again just to draw its split another way."""
    if data.train.paths is None or any(getattr(data, name).paths is None for name in data.held_out):
        return None
    parts = [data.train, *(getattr(data, name) for name in data.held_out)]
    paths = [path for part in parts for path in part.paths or ()]
    y = torch.cat([part.y for part in parts])
    labels = y.tolist()
    order = torch.tensor(sorted(range(len(paths)), key=lambda i: (labels[i], PurePosixPath(paths[i]).parts)),
                         dtype=torch.int64)
    train = Split(torch.cat([part.x for part in parts]), y, tuple(paths)).select(order)
    return (train, None if "val" in data.held_out else data.val, None if "test" in data.held_out else data.test,
            data.classes, data.image_counts)


def split_as_recorded_and_digests(cfg: DataConfig, data: Dataset,
                                  digests: dict[str, str] | None) -> tuple[Dataset, dict[str, str]]:
    """`data`, or its images split again as an earlier version split them where `digests` (`split_digest` by split
    name: a study's record, or a checkpoint's test split) are of that split and not of `data`'s: held out by a random
    draw in the listing's order, before images were held out by their paths (`_path_ranks`, 2026-12-06), and before
    that also without a held-out image for a class rounded to none (2026-12-05). A study made then resumes on the val
    images its trials were scored on, and a checkpoint is tested on the images it was not trained on, rather than being
    refused as made with other images. An image folder's images are split again from `data` (`_unsplit`); idx data's
    are read again, and only then, without giving that read's warnings again: they are of the same files and settings
    as those of the read that made `data`, which gave them, and search.log would carry each twice.

    With it, the `split_digest` of the returned splits that the comparison computed, by split name (those `digests`
    names; none where nothing was compared), for `data_identity(..., split_digests=)`: each hashes every pixel of its
    split, and a caller checking the study's record after this hashed the training images a second time."""
    # an image folder's held-out splits were drawn at random before; idx data (no paths) still is, and only its counts
    # can have changed
    keyed = bool(data.held_out) and data.train.paths is not None
    if not (keyed or data.rounded_up) or not digests:
        return data, {}

    def recorded(d: Dataset, known: dict[str, str]) -> bool:
        # in the record's order, up to the first that differs, each split hashed once: `known` keeps its digest
        for k, v in digests.items():
            if k in SPLIT_NAMES:
                if k not in known:
                    known[k] = split_digest(getattr(d, k))
                if known[k] != v:
                    return False
        return True

    known: dict[str, str] = {}
    if recorded(data, known):
        return data, known
    # newest first; the counts do not depend on the draw, so before _one_for_each only where it changed them
    ways = [(False, True)] * keyed + [(False, False)] * bool(data.rounded_up)
    if (loaded := _unsplit(data)) is None:  # idx data: its images' order is read from the files again
        log.addFilter(_said_before)  # on this module's logger only, and only while it reads the images again
        try:
            loaded = _read_unsplit(cfg)
        finally:
            log.removeFilter(_said_before)
    for way_keyed, one_for_each in ways:
        before = _split_loaded(cfg, loaded, one_for_each=one_for_each, keyed=way_keyed)
        known_before: dict[str, str] = {}
        if recorded(before, known_before):
            since = ([("held-out images were chosen by their file paths",
                       "keeps each image in its split when photos are added or removed")] if keyed else []) + (
                [("a class rounded to none got a held-out image", f"gets one in {' and '.join(data.rounded_up)}")]
                if not one_for_each else [])
            log.warning("kept the split of %s that the study or checkpoint was made with, from before %s: a new study "
                        "(or search) %s", cfg.root, " and before ".join(what for what, _ in since),
                        ", and ".join(then for _, then in since))
            return before, known_before
    return data, known  # other images: the caller refuses them as it did


# -- batches -----------------------------------------------------------------------------------
# Random-erasing rectangle: area share and aspect-ratio range of Zhong et al. 2017 (and timm's defaults).
ERASE_AREA = (0.02, 1.0 / 3.0)
ERASE_LOG_ASPECT = (math.log(0.3), math.log(1.0 / 0.3))


def augment(x: torch.Tensor, *, max_shift: int, hflip: bool, generator: torch.Generator,
            erase_prob: float = 0.0) -> torch.Tensor:
    """Random translation (zero padded), horizontal flip and random erasing of a float batch, without
    Python loops. Erasing fills one rectangle per chosen image with uniform noise in [0, 1]."""
    b, _, h, w = x.shape
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    if max_shift > 0:
        p = max_shift
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        rows = (dy.view(b, 1) + torch.arange(h)).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * p)
        padded = padded.gather(2, rows)
        cols = (dx.view(b, 1) + torch.arange(w)).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
        x = padded.gather(3, cols)
    if erase_prob > 0:
        x = _random_erase(x, erase_prob, generator)
    return x


def _random_erase(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    area = torch.empty(b).uniform_(*ERASE_AREA, generator=generator) * (h * w)
    aspect = torch.exp(torch.empty(b).uniform_(*ERASE_LOG_ASPECT, generator=generator))
    eh = torch.sqrt(area * aspect).round().clamp(1, h).long()
    ew = torch.sqrt(area / aspect).round().clamp(1, w).long()
    top = (torch.rand(b, generator=generator) * (h - eh + 1)).floor().long()
    left = (torch.rand(b, generator=generator) * (w - ew + 1)).floor().long()
    chosen = torch.rand(b, generator=generator) < prob
    rows = torch.arange(h).view(1, h)
    cols = torch.arange(w).view(1, w)
    in_rows = (rows >= top.view(b, 1)) & (rows < (top + eh).view(b, 1))
    in_cols = (cols >= left.view(b, 1)) & (cols < (left + ew).view(b, 1))
    mask = (in_rows.view(b, 1, h, 1) & in_cols.view(b, 1, 1, w) & chosen.view(b, 1, 1, 1))
    noise = torch.rand(x.shape, generator=generator)
    return torch.where(mask, noise, x)


def iterate_batches(
    split: Split,
    *,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    max_shift: int = 0,
    hflip: bool = False,
    drop_last: bool = False,
    erase_prob: float = 0.0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float32 pixels in [0, 1], labels) batches; augmentation only when asked."""
    n = len(split)
    gen = generator or torch.Generator().manual_seed(0)
    order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x = split.x[idx].float().div_(255.0)
        if max_shift or hflip or erase_prob:
            x = augment(x, max_shift=max_shift, hflip=hflip, generator=gen, erase_prob=erase_prob)
        yield x, split.y[idx]
