"""What a study or checkpoint records of the images it was made with, and compares with a later run's: the class names,
input and split sizes with a digest of each split (`data_identity`), each class's counts and digest (`class_summary`,
which `class_changes` names the changes from), the split settings (`split_record`), the data.root as recorded; and the
warnings read from the same per-image digests (test or val images that repeat a training image, one picture in two
class folders)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.config import DataConfig
from nas.errors import counted, readable_repr
from nas.image_folder import SYSTEM_FOLDERS

if TYPE_CHECKING:  # nas.data imports this module
    from nas.data import Dataset, Split


SplitImageDigests = dict[str, list[bytes]]
"""`image_digests` of each split of a dataset by its name ("train", "val", "test"): `split_image_digests`."""


SPLIT_NAMES = ("train", "val", "test")


def data_identity(data: Dataset, *, digests: SplitImageDigests | None = None,
                  split_digests: dict[str, str] | None = None) -> dict[str, object]:
    """What a resumed study must find again in its data: the class names, the input shape, the images per split and a
    digest of each split's images (`split_digest`); with them each class's counts and digest (`class_summary`, from
    `digests`: `split_image_digests(data)` where the caller needs them for more, else computed here), which only name
    what changed. Another folder (or images added to one, or replaced) changes it, so trials scored on other val images
    would not be mixed; moving the folder, or caching it, does not. `split_digests`: the `split_digest` of some of
    `data`'s splits by name where the caller has them (`split_as_recorded_and_digests`), the others computed here."""
    splits = (("train", data.train), ("val", data.val), ("test", data.test))
    known = dict(split_digests or {})
    if unknown := sorted(set(known) - set(SPLIT_NAMES)):
        raise ValueError(f"split_digests names no split {unknown[0]!r}: pass split digests by split name "
                         f"({', '.join(SPLIT_NAMES)})")
    # The digests, not only the counts: two folders of the same classes and counts (a second camera's 100 photos per
    # class, say) were taken for one, and a study resumed on the other mixed val accuracies of different images.
    return {"classes": list(data.classes), "input": [data.in_chans, data.img_size, data.img_size],
            "images": {name: len(split) for name, split in splits},
            "digests": {name: known[name] if name in known else split_digest(split) for name, split in splits},
            CLASS_SUMMARY: class_summary(data, digests=digests)}


CLASS_SUMMARY = "per_class"
"""The key of `data_identity`'s `class_summary`: what a refusal names, not what it compares (`class_changes`)."""


def class_summary(data: Dataset, *, digests: SplitImageDigests | None = None) -> list[list[int | str]]:
    """For each of `data.classes`, in order: its train, val and test image counts and a digest (8 hex digits) of its
    images whatever split holds them, so a study's record of other images can say which classes changed
    (`class_changes`). A list beside the class names, not a mapping by name: a study records it, and 1,000 classes must
    stay small. `digests`: `split_image_digests(data)`, computed here when not given."""
    import hashlib

    names = range(len(data.classes))
    counts = [torch.bincount(s.y, minlength=len(names)).tolist() for s in (data.train, data.val, data.test)]
    images: list[list[bytes]] = [[] for _ in names]
    for name in SPLIT_NAMES:
        split: Split = getattr(data, name)
        for digest, c in zip(_image_digests_of(data, name, digests), split.y.tolist()):
            images[c].append(digest)
    # Of the class's images as a set, not of each split's: each class's held-out count follows the others' sizes, so
    # images added to one class can move another class's image at the edge of its count between train, val and test
    # (and moved most of them while the draw was random, before 2026-12-06), and that class did not change.
    return [[*(n[c] for n in counts), hashlib.sha256(b"".join(sorted(images[c]))).hexdigest()[:8]] for c in names]


def image_digests(split: Split) -> list[bytes]:
    """A digest (blake2b, 8 bytes) of each image's pixels as loaded, in the split's order, labels left out: two images
    share one only when every pixel is the same (8-byte digests do not collide by chance below billions of images)."""
    import hashlib

    return [hashlib.blake2b(image.tobytes(), digest_size=8).digest() for image in np.ascontiguousarray(split.x.numpy())]


def split_image_digests(data: Dataset) -> SplitImageDigests:
    """`image_digests` of each of `data`'s splits by name: what `data_identity` (through `class_summary`) and
    `held_out_copies_warning` both read. A search start computes them once and passes them to both as `digests=`: each
    hashed every image itself, twice the pixels of a large folder per start."""
    return {name: image_digests(getattr(data, name)) for name in SPLIT_NAMES}


def _image_digests_of(data: Dataset, name: str, digests: SplitImageDigests | None) -> list[bytes]:
    """The split `name`'s `image_digests`: from `digests` when given (checked to be of as many images: those of other
    data would give a record or warning of other images), else hashed now."""
    split: Split = getattr(data, name)
    if digests is None:
        return image_digests(split)
    if len(digests[name]) != len(split):
        raise ValueError(f"digests[{name!r}] holds {len(digests[name])} digests for {len(split)} images: pass "
                         "split_image_digests(data) of this data")
    return digests[name]


def per_class_test_images(data: Dataset) -> list[list[int | str]]:
    """`class_summary` of the test split alone, [test images, digest of them] for each of `data.classes`: what a
    checkpoint keeps of its test images (metrics.json's `test_images`), so `compress.run`'s refusal of other test images
    can name the classes that changed (`class_changes`, given `[0, 0, *row]`)."""
    import dataclasses

    # a Split of no images, made from the test split: the class is nas.data's, which imports this module
    empty = dataclasses.replace(data.test, x=data.test.x[:0], y=data.test.y[:0], paths=None)
    return [row[2:] for row in class_summary(dataclasses.replace(data, train=empty, val=empty))]


def class_changes(then: dict[str, Any], now: dict[str, Any], *, shown: int = 5,
                  then_was: str = "in the study") -> list[str]:
    """The classes whose images differ between two `data_identity` records (a study's, then this run's), a clause each
    ("class 'cat': 150 images in the study, 148 now (train 120 -> 118, val 15, test 15)", see `_recounted`; "class
    'dog' is new (40 images)"), the first `shown` and a count of the rest (`then_was`: where `then` is from, "in the
    study"); [] when either has no `class_summary` (a record from before it was kept), when they share no class name
    (other data altogether, which the class lists say better), or when they are of the same images. A change of content
    alone is left out where the input shape differs: that changes every image."""
    if CLASS_SUMMARY not in then or CLASS_SUMMARY not in now:
        return []
    old = dict(zip(then.get("classes") or [], then[CLASS_SUMMARY]))
    new = dict(zip(now.get("classes") or [], now[CLASS_SUMMARY]))
    if not old.keys() & new.keys():
        return []
    same_input = then.get("input") == now.get("input")
    renamed = {name: other for name in old.keys() - new.keys() for other in new.keys() - old.keys()
               if same_input and old[name][3] == new[other][3]}  # the same images under another folder name
    said = []
    for name in [*old, *(n for n in new if n not in old)]:
        if name in renamed.values():
            continue
        if name in renamed:
            said.append(f"class {readable_repr(name)} is now {readable_repr(renamed[name])}")
        elif name not in new:
            said.append(f"class {readable_repr(name)} is gone ({counted(sum(old[name][:3]), 'image')} {then_was})")
        elif name not in old:
            said.append(f"class {readable_repr(name)} is new ({counted(sum(new[name][:3]), 'image')})")
        elif old[name][3] != new[name][3]:
            clause = _recounted(old[name][:3], new[name][:3], then_was=then_was, same_input=same_input)
            if clause:
                said.append(f"class {readable_repr(name)}: {clause}")
    if (not said and old.keys() == new.keys() and all(old[n][3] == new[n][3] for n in old)
            and then.get("digests") != now.get("digests")):
        # files renamed within a class (the draw picks by position) or moved between its train/ val/ test/ folders
        return ["each class has the images it had in the study, split otherwise into train/val/test"]
    if len(said) > shown:
        said = said[:shown] + [f"{counted(len(said) - shown, 'more class', plural='more classes')} differ"
                               f"{'s' if len(said) - shown == 1 else ''}"]
    return said


def _recounted(then: list[int], now: list[int], *, then_was: str, same_input: bool) -> str | None:
    """What `class_changes` says of a class whose images differ, given its train/val/test counts then and now: its
    total then and now, then each split's count, with an arrow where it changed ("40 images in the study, 39 now (train
    28, val 4 -> 3, test 8)"), or "as many images ..., other ones"; None for a change of content alone where the input
    shape differs (`same_input` false). Led by the total: a photo deleted from a class read "4 val images in the study,
    3 now", of a split the user never touched (the held-out draw follows the counts)."""
    splits = ("train", "val", "test")
    held = [i for i in range(3) if then[i] or now[i]]  # a split empty then and now says nothing
    moved = [i for i in held if then[i] != now[i]]
    if len(held) == 1 and moved:
        # the class's images are one split's (a checkpoint's record holds test images alone): a bare total would
        # not say which
        i = held[0]
        return f"{counted(then[i], f'{splits[i]} image')} {then_was}, {now[i]:,} now"
    detail = ", ".join(f"{splits[i]} {then[i]:,}" + (f" -> {now[i]:,}" if i in moved else "") for i in held)
    if sum(then) != sum(now):
        return f"{counted(sum(then), 'image')} {then_was}, {sum(now):,} now ({detail})"
    if not moved and not same_input:
        return None
    return f"as many images as {then_was} ({sum(then):,}), other ones" + (f" ({detail})" if moved else "")


def system_folders_may_explain(then: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether a record `then` of a study's or checkpoint's images differs from `now` (`data_identity`'s keys: classes,
    images, `CLASS_SUMMARY`; any may be missing) as the `SYSTEM_FOLDERS` read until 2026-12-07 can make it differ: a
    class of `then` bears one's name (one at the root was a class), or a class's image count differs (theirs were among
    their class's), or where no per-class counts are recorded, the total does. Not a difference of input size or split
    settings alone: a Synology share has @eaDir/ in every folder, and naming it there sent the user the wrong way."""
    if any(str(c).lower() in SYSTEM_FOLDERS for c in then.get("classes") or ()):
        return True

    def per_class(i: dict[str, Any]) -> dict[str, int] | None:
        names, rows = list(i.get("classes") or ()), list(i.get(CLASS_SUMMARY) or ())
        if not rows or len(rows) != len(names):
            return None
        try:
            return {str(n): sum(int(k) for k in r[:3]) for n, r in zip(names, rows)}
        except (TypeError, ValueError):  # a record not of this shape: judged by the totals
            return None

    def total(i: dict[str, Any]) -> int | None:
        counts = [n for n in (i.get("images") or {}).values() if isinstance(n, int)]
        return sum(counts) if counts else None

    a, b = per_class(then), per_class(now)
    if a is not None and b is not None:
        return any(a[n] != b[n] for n in a.keys() & b.keys())
    return None not in (total(then), total(now)) and total(then) != total(now)


def absolute_root(root: str | os.PathLike) -> str:
    """`root` (a data.root) as a run's files record it (a checkpoint's `data_root`, pareto.json's, a study's settings):
    absolute, resolved from the folder the search runs in. A relative one recorded as given (`data.root=images`) was
    resolved again from wherever a later tool ran (`python -m compress.run`, `python -m nas.report`), i.e. wrongly."""
    return str(Path(root).resolve())


# The data.* settings that decide which images of a folder become the test images (besides the folder itself).
SPLIT_SETTINGS = ("split_seed", "val_size", "test_size", "stratify")


def split_record(cfg: DataConfig, data: Dataset) -> dict[str, object]:
    """The `SPLIT_SETTINGS` that drew `data`'s splits, as `metrics.json` records them (`test_images.split`): a size whose
    split the data brings itself (Fashion-MNIST's test split, an image folder's test/ or val/) held nothing out, so it is
    recorded as "own test split" / "own val split" rather than as a setting's value that was not used."""
    return {k: (getattr(cfg, k) if not k.endswith("_size") or k[:-5] in data.held_out else f"own {k[:-5]} split")
            for k in SPLIT_SETTINGS}


def split_digest(split: Split) -> str:
    """A short digest (sha256, 16 hex digits) of a split's images and labels in their order: the same images give
    the same digest on any machine, other files or another split of them another one."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(split.x.numpy()).tobytes())
    h.update(np.ascontiguousarray(split.y.numpy().astype("<i8")).tobytes())
    return h.hexdigest()[:16]


def held_out_copies_warning(data: Dataset, *, digests: SplitImageDigests | None = None) -> str | None:
    """One line when test or val images have the pixels of a training image, else None: how many of each split and
    their share, the first of them (an image folder's: its file and the training file it repeats; idx data's: its
    position in its split), and what that does. The test accuracy counts them as unseen images, though the model
    trained on them, and the val accuracy (which the search maximises) rewards remembering them: files copied into both
    train/ and test/ by mistake, or one photo twice in a folder the held-out images are drawn from. Images repeated
    within one split are left alone: they leak nothing from training. `digests`: `split_image_digests(data)`, computed
    here when not given."""
    # Warned at any one, not above a share: Fashion-MNIST, the default data, has no test or val image that is a
    # training image (tests/test_data.py checks it where it is installed), so a default run never gives it; and a few
    # copies among a small folder's test images move its test accuracy by points.
    train: dict[bytes, int] = {}
    for j, digest in enumerate(_image_digests_of(data, "train", digests)):
        train.setdefault(digest, j)  # the first training image of those pixels, the one named
    counts, first, hit = [], "", []
    for name in ("test", "val"):
        split: Split = getattr(data, name)
        copies = [(i, train[d]) for i, d in enumerate(_image_digests_of(data, name, digests)) if d in train]
        if not copies:
            continue
        hit.append(name)
        counts.append(f"{len(copies):,} of the {counted(len(split), f'{name} image')} ({_percent(len(copies), len(split))})")
        if not first:
            i, j = copies[0]
            # idx data: no training image named, as its position in the training split (what the val draw left of the
            # file) would lead nowhere
            first = (f"{name} image {i:,}" if split.paths is None or data.train.paths is None
                     else f"{split.paths[i]} (same pixels as {data.train.paths[j]})")
    if not hit:
        return None
    what = {"test": "the test accuracy counts them as unseen",
            "val": "the val accuracy (which the search maximises) rewards remembering them"}
    fix = "delete one file of each pair" if data.train.paths is not None else "remove one image of each pair from the data"
    return (f"training images repeated in {' and '.join(hit)}: {' and '.join(counts)}, the first {first}; "
            f"{' and '.join(what[n] for n in hit)}; {fix}")


def cross_class_copies_warning(data: Dataset, *, digests: SplitImageDigests | None = None) -> str | None:
    """One line when an image folder holds one picture (the same pixels, as loaded) in more than one class folder, in
    any splits, else None: how many such pictures, and the first two files of another class, with their classes. The
    model is taught two labels for it, and it scores as wrong wherever it is held out: a photo saved into two folders
    while sorting, which `held_out_copies_warning` names only where one copy lies in test or val. Idx data is left
    out: it names no file to delete. `digests`: `split_image_digests(data)`, computed here when not given."""
    if data.train.paths is None:
        return None
    first: dict[bytes, tuple[int, str]] = {}  # each picture's first label and file
    clashes: dict[bytes, tuple[str, int, str, int]] = {}
    for name in SPLIT_NAMES:
        split: Split = getattr(data, name)
        if split.paths is None:
            continue
        for digest, label, path in zip(_image_digests_of(data, name, digests), split.y.tolist(), split.paths):
            label0, path0 = first.setdefault(digest, (label, path))
            if label != label0 and digest not in clashes:
                clashes[digest] = (path0, label0, path, label)
    if not clashes:
        return None
    path0, label0, path, label = next(iter(clashes.values()))
    n = len(clashes)
    return (f"{counted(n, 'picture')} {'is' if n == 1 else 'are'} in more than one class folder, the same pixels under "
            f"two labels: the first {path0} (class {readable_repr(data.classes[label0])}) and {path} (class "
            f"{readable_repr(data.classes[label])}); the model is taught both labels and scored wrong on one: delete "
            "the copy in the wrong class folder")


def _percent(part: int, whole: int) -> str:
    """`part` of `whole` (0 < part <= whole) as a percent of two significant digits, never rounded to 0% or, short of
    all, to 100%."""
    share = 100 * part / whole
    return f"{share:.2g}%" if share < 10 else f"{min(round(share), 100 if part == whole else 99)}%"
