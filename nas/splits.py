"""The test and val splits held out of the training images where the data brings none of its own: how many of each
class (stratified, every class that can spare an image given one), which ones (by a keyed hash of each image's path,
or a seeded draw), and the warnings about the splits' classes (a class a held-out split has no image of, classes far
from balanced, a split size that holds nothing out)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Collection, Sequence

import torch

from nas.config import DataConfig, DataFormat
from nas.errors import DataError, counted, readable_repr

if TYPE_CHECKING:  # nas.data imports this module
    from nas.data import Dataset, Split


def _count(size: float, n: int, what: str) -> int:
    k = int(round(size * n)) if size < 1 else int(size)
    if k < 1:  # a fraction of a few images rounds to none
        raise DataError(f"{what}={size:g} holds out 0 of {n} images; choose a larger fraction or a count (e.g. {what}=1)")
    if k >= n:  # :g: a count is held as a float, and was echoed 93.0 where 93 was typed
        raise DataError(f"{what}={size:g} holds out {k} of {n} images and leaves none for training; choose a smaller value")
    return k


def _stratified_counts(labels: torch.Tensor, k: int, *, one_for_each: bool = True) -> dict[int, int]:
    """How many of each class's images a held-out split of `k` takes: the class's share of `k`, the remainders
    going to the largest fractions first, while every class keeps at least one image where it can; then every class
    that can spare an image (2 or more) and was rounded to none gets one (`_one_for_each`; not with `one_for_each`
    false: the counts of before, for the splits studies and checkpoints made then recorded)."""
    classes, sizes = (t.tolist() for t in labels.unique(return_counts=True))
    n = sum(sizes)
    exact = [k * size / n for size in sizes]
    counts = {c: min(math.floor(e), max(size - 1, 0)) for c, e, size in zip(classes, exact, sizes)}
    by_remainder = sorted(range(len(classes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    for keep_one in (True, False):  # a class gives up its last image only when the others cannot make up k
        grew = True
        while grew and sum(counts.values()) < k:
            grew = False
            for i in by_remainder:
                if sum(counts.values()) < k and counts[classes[i]] < sizes[i] - keep_one:
                    counts[classes[i]] += 1
                    grew = True
    if not one_for_each:
        return counts
    return _one_for_each(counts, classes=classes, sizes=sizes, exact=exact, by_remainder=by_remainder)


def _one_for_each(counts: dict[int, int], *, classes: list[int], sizes: list[int], exact: list[float],
                  by_remainder: list[int]) -> dict[int, int]:
    """`counts` with one image for each class rounded to none that can spare one, still `k` in all: each is given back
    by the class most over its exact share (of equal ones, the last the remainders reached). A 4-image class among
    100-image ones took 0.3 of a val image, rounded to none, and the val accuracy never looked at it. Counts that give
    every such class one already are returned as they are: the split of such data (every balanced folder), whose
    digests studies record, stays the same."""
    counts = dict(counts)
    place = {i: rank for rank, i in enumerate(by_remainder)}
    # the largest classes first, should k be too small to give every class one
    for i in sorted((i for i in range(len(classes)) if counts[classes[i]] == 0 and sizes[i] >= 2),
                    key=lambda i: (-exact[i], i)):
        donors = [j for j in range(len(classes)) if counts[classes[j]] >= 2]
        if not donors:  # fewer held-out images than classes: the rest go without (held_out_gaps_warning)
            break
        j = max(donors, key=lambda j: (counts[classes[j]] - exact[j], place[j]))
        counts[classes[j]] -= 1
        counts[classes[i]] = 1
    return counts


def _path_ranks(paths: Sequence[str], seed: int) -> torch.Tensor:
    """Each image's rank (0 first) when ordered by a keyed hash of `seed` and its path (Unicode NFC, so a name written
    by macOS and by Linux is one key): a rank decided by the image's own path alone, not by its place in the listing."""
    import hashlib
    import unicodedata

    # surrogatepass: a file name that is not UTF-8 (Latin-1 from an old zip, on Linux) holds a lone surrogate for each
    # undecodable byte, which strict UTF-8 refuses; any other name gives the bytes it always gave
    keys = [hashlib.blake2b(f"{seed}:{unicodedata.normalize('NFC', p)}".encode("utf-8", "surrogatepass"),
                            digest_size=8).digest() for p in paths]
    order = sorted(range(len(paths)), key=lambda i: (keys[i], paths[i]))  # the path breaks a tie of the 8-byte hashes
    ranks = torch.empty(len(paths), dtype=torch.int64)
    ranks[torch.tensor(order, dtype=torch.int64)] = torch.arange(len(paths))
    return ranks


def hold_out(split: Split, size: float, *, seed: int, what: str, stratify: bool, one_for_each: bool = True,
             keyed: bool = True) -> tuple[Split, Split, bool]:
    """`split` less a held-out split of `size` (a fraction or a count), the held-out split, and whether a class rounded
    to none was given an image (`_stratified_counts`).

    Images with paths (an image folder's) are held out by `_path_ranks`: the lowest ranks of each class (of all images
    without `stratify`). Whether an image is held out then depends on its own path, the seed and its class's count, not
    on the other images: deleting or adding a photo moves no other image between the splits, except at the edge of a
    class's count: the image that takes a deleted held-out photo's place (or gives its place to an added one), and one
    where rounding changes the count. A draw with `torch.randperm` in the listing's order (idx data, which
    has no paths, keeps it: the split of every committed Fashion-MNIST result; `keyed` false for an image folder: its
    split before 2026-12-06, `split_as_recorded_and_digests`) moved most of a class's held-out images when one photo
    was deleted, and every later class's too, the generator being shared."""
    k = _count(size, len(split), what)
    if keyed and split.paths is not None:
        ranks = _path_ranks(split.paths, seed)

        def first(members: torch.Tensor, count: int) -> torch.Tensor:
            return members[ranks[members].argsort()[:count]]
    else:
        generator = torch.Generator().manual_seed(seed)

        def first(members: torch.Tensor, count: int) -> torch.Tensor:
            return members[torch.randperm(len(members), generator=generator)[:count]]
    rounded_up = False
    if stratify:
        held_parts = []
        counts = _stratified_counts(split.y, k, one_for_each=one_for_each)
        rounded_up = one_for_each and counts != _stratified_counts(split.y, k, one_for_each=False)
        for c, count in counts.items():  # in class order: the random draw's generator is shared, class after class
            held_parts.append(first((split.y == c).nonzero().flatten(), count))
        held = torch.cat(held_parts).sort().values
    else:
        held = first(torch.arange(len(split)), k).sort().values
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[held] = False
    return split.select(keep.nonzero().flatten()), split.select(held), rounded_up


def held_out_gaps_warning(data: Dataset, cfg: DataConfig) -> str | None:
    """One line naming each class that a split held out of the training images has no image of, with its image count,
    why and what to do; else None. That split's accuracy never looks at such a class: val's is what the search
    maximises, and the per-class test accuracies have none for it."""
    def per_class(split: Split) -> list[int]:
        return torch.bincount(split.y, minlength=data.num_classes).tolist()

    order = list(data.held_out)
    kept, taken = per_class(data.train), {s: per_class(getattr(data, s)) for s in order}
    groups: dict[str, list[str]] = {}  # why -> the classes it explains, so the advice is said once
    for c, name in enumerate(data.classes):
        lacks = [s for s in order if taken[s][c] == 0]
        if not lacks:
            continue
        total = kept[c] + sum(taken[s][c] for s in order)
        # the class's images left when the first split it lacks was drawn (each split draws from what the last left)
        left = kept[c] + sum(taken[s][c] for s in order[order.index(lacks[0]):])
        small = [s for s in lacks if len(getattr(data, s)) < data.num_classes]
        if not cfg.stratify:
            why = (f"data.stratify=false draws held-out images at random (data.stratify=true gives one to every class of "
                   f"{1 + len(order)} or more images)")
        elif left < 2:
            why = (f"too few: a class needs {1 + len(order)} images (one for training and one for each of "
                   f"{' and '.join(order)}); give such a class more images")
        elif small:  # a held-out split of fewer images than classes
            why = "; ".join(f"data.{s}_size={getattr(cfg, f'{s}_size'):g} holds out {counted(len(getattr(data, s)), 'image')} "
                            f"for {data.num_classes} classes" for s in small) + f"; hold out {data.num_classes} or more"
        else:  # split_as_recorded_and_digests
            why = ("the split a study or checkpoint was made with, from before a class rounded to none got one; a new "
                   "search.study_name gets one")
        groups.setdefault(why, []).append(f"{readable_repr(name)} ({counted(total, 'image')}) has no "
                                          f"{' or '.join(lacks)} image")
    if not groups:
        return None
    unseen = [s for s in order if 0 in taken[s]]
    blind = " and ".join({"val": "the val accuracy (which the search maximises)", "test": "the test accuracy"}[s]
                         for s in unseen)
    them = "it" if sum(map(len, groups.values())) == 1 else "them"
    return "; ".join(f"class {' and '.join(names)}: {why}" for why, names in groups.items()) + (
        f"; {blind} never look{'s' if len(unseen) == 1 else ''} at {them}")


def unused_split_sizes(cfg: DataConfig, *, val: Split | None, test: Split | None,
                       overridden: Collection[str] = ()) -> str | None:
    """One line naming data.test_size / data.val_size when set (not at their defaults, or named in `overridden` at any
    value) for data that comes with that split of its own (the idx files' test split, an image folder's test/ or val/),
    where they hold nothing out; else None. A warning, not a refusal: the value also sits in studies made with it, which
    must resume with the same settings."""
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(DataConfig)}
    unused = [(f"data.{name}={getattr(cfg, name):g}", split, len(given)) for name, split, given in
              (("test_size", "test", test), ("val_size", "val", val))
              if given is not None and (getattr(cfg, name) != defaults[name] or f"data.{name}" in overridden)]
    if not unused:
        return None
    where = ("its idx files" if cfg.format == DataFormat.idx
             else f"its {' and '.join(f'{s}/' for _, s, _ in unused)} folder{'s' if len(unused) > 1 else ''}")
    return (f"{' and '.join(n for n, _, _ in unused)} {'is' if len(unused) == 1 else 'are'} not used: data={cfg.name} has "
            f"its own {' and '.join(f'{s} split ({k:,} images)' for _, s, k in unused)} from {where}; leave "
            f"{'it' if len(unused) == 1 else 'them'} out")


IMBALANCE_WARN_RATIO = 10.0
"""A training split whose largest class has this many times the images of its smallest is worth a warning."""


def imbalance_warning(data: Dataset) -> str | None:
    """One line when the training split's classes are far from balanced and the run is scored by plain accuracy, else
    None: accuracy then rewards predicting the large classes, and the weak ones show only in the per-class accuracies."""
    if data.balanced:  # what the warning would advise
        return None
    counts = torch.bincount(data.train.y, minlength=len(data.classes)).tolist()
    large, small = max(range(len(counts)), key=counts.__getitem__), min(range(len(counts)), key=counts.__getitem__)
    if counts[small] * IMBALANCE_WARN_RATIO > counts[large]:
        return None
    return (f"unbalanced classes: {readable_repr(data.classes[large])} has {counts[large]:,} training images, "
            f"{readable_repr(data.classes[small])} "
            f"{counts[small]:,}; accuracy, which the search maximises, rewards predicting the large classes: set "
            "data.metric=balanced_accuracy (every class counts the same), or balance the folders")
