"""An image folder's layout: which files are images (and which are left out, with the lines that say so), the class
folders, the split folders (train/, test/, val/ and their other names) and the folders systems add (a NAS's @eaDir/),
and the checks of a data.root that is not laid out as one (a folder too high, split folders misnamed, a run folder
among the classes). Files and folders only: `nas.images` decodes the files, `nas.data` reads them into splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

from nas.config import DataConfig, DataFormat
from nas.errors import DataError, counted, readable_repr
from nas.overrides import shell_override


# torchvision's ImageFolder suffixes (Netpbm's .ppm and .pgm among them: GTSRB ships .ppm) plus .pbm, .pnm, .gif and
# .jfif (a JPEG as Windows saves one from the web); all of them Pillow reads.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".ppm", ".pgm", ".pbm", ".pnm"})


# Image formats a class folder may hold that are not read (iPhones' HEIC, cameras' raw files, formats Pillow reads only
# in some builds): named in a warning, so photos are not left out of training unseen.
OTHER_IMAGE_SUFFIXES = frozenset({".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".jpe", ".tga", ".ico", ".psd",
                                  ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raw", ".qoi", ".apng"})


# The files an operating system leaves in a folder of photos (Windows' thumbnail cache and folder settings; macOS's
# .DS_Store is hidden, so skipped anyway), by lower-case name, with what each is: skipped without a word, as hidden
# files are. Counted among the files that are not images, they made an info line about litter the user never put
# there. compress.predict refuses one named among the images as what it is (`photos/*` takes Thumbs.db along).
OS_FOLDER_FILES = {"thumbs.db": "Windows' thumbnail cache", "ehthumbs.db": "Windows Media Center's thumbnail cache",
                   "ehthumbs_vista.db": "Windows Media Center's thumbnail cache",
                   "desktop.ini": "Windows' folder settings", ".ds_store": "macOS Finder's folder settings"}


# Archives a dataset is downloaded as: a data.root naming one is told to unpack it rather than only "is a file".
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".7z",
                    ".rar")


def not_a_folder(root: Path) -> str:
    """What a data.root that is not a folder is, in words: a file (an archive to unpack), or missing, with the folder
    beside it of a name close to its own where there is one (a typo: `shape` for `shapes`)."""
    if root.exists():  # a file (one image, or the zip the images came in) is not "missing": say what it is
        if root.name.lower().endswith(ARCHIVE_SUFFIXES):
            return "is an archive, not a folder: unpack it and pass the folder it unpacks into"
        return "is a file, not a folder"
    if str(root).startswith("~"):  # neither the shell (after "data.root=") nor Hydra expands it
        return f"does not exist: ~ is not expanded, write the whole path (data.root={root.expanduser()})"
    if near := _near_folder(root):
        return f"does not exist (did you mean {shell_override(key='data.root', value=str(near))}?)"
    return "does not exist"


def _near_folder(root: Path) -> Path | None:
    """The folder beside a missing `root` whose name is closest to its name (case aside too), if one is close; None
    where none is or its parent cannot be listed."""
    import difflib

    try:
        with os.scandir(root.parent) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return None
    by_lower = {name.lower(): name for name in names}
    close = difflib.get_close_matches(root.name.lower(), list(by_lower), n=1, cutoff=0.75)
    return root.parent / by_lower[close[0]] if close else None


def image_folders_in(root: Path) -> list[str]:
    """The folders of `root` (of `root/train` where there is one) that hold image files directly, as an image folder's
    class folders do, relative to `root` (`cat`, `train/cat`); empty where none does. Each folder is scanned until its
    first image, so a large folder costs little."""
    base = root / "train" if (root / "train").is_dir() else root
    try:
        folders = class_dirs(base)
    except OSError:
        return []
    found = []
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                if any(is_image_file(Path(e.path)) for e in entries):
                    found.append(folder.relative_to(root).as_posix())
        except OSError:
            continue
    return found


def dataset_one_folder_down(base: Path) -> tuple[Path, list[str]] | None:
    """`base`'s one folder and its folders of images (`image_folders_in`, relative to it) where `base` is the folder an
    archive unpacked into, one folder above the dataset: its one folder holds >= 2 folders of images (or train/ with
    them) and no image itself, as a class's folder with dated subfolders would. None otherwise."""
    try:
        folders = class_dirs(base)
        if len(folders) != 1 or any(is_image_file(p) for p in folders[0].iterdir()):
            return None
    except OSError:
        return None
    inner = image_folders_in(folders[0])
    return (folders[0], inner) if len(inner) >= 2 else None


def is_image_file(path: Path) -> bool:
    """Whether `path` is an image file the toolkit reads: an image suffix, and not hidden."""
    # Hidden files are skipped as hidden folders are: macOS writes "._<name>.png" metadata files beside every image
    # it copies to a USB stick or network share, and they are not images.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def image_files_in(folder: Path, *, other_images: list[Path] | None = None,
                   other_files: list[Path] | None = None) -> list[Path]:
    """The image files in `folder` and its subfolders, sorted (torchvision's ImageFolder reads a class folder's
    subfolders too: photos sorted by day or camera); hidden files and hidden folders are skipped. Linked subfolders
    are followed, each folder once; `DataError` names an unreadable subfolder or a link to an image that is gone.
    Files of image formats that are not read (`OTHER_IMAGE_SUFFIXES`) are appended to `other_images` if given, and
    the other files that are neither hidden nor the system's own (`OS_FOLDER_FILES`: Thumbs.db, desktop.ini), such as
    notes.txt and labels.xml, to `other_files` if given."""
    def unreadable(e: OSError) -> None:
        raise DataError(f"cannot read the folder {e.filename}: {e.strerror or e}; make it readable or remove it")

    found: list[Path] = []
    seen: set[str] = set()
    # os.walk, not Path.rglob: rglob does not enter linked subfolders (a class folder gathered from links to other
    # disks lost their images without a word) and skips unreadable ones as silently. A folder reached twice (a link to
    # an ancestor, or two links to one folder) is walked once, so a link cycle ends and no image is read twice.
    for top, dirs, files in os.walk(folder, followlinks=True, onerror=unreadable):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not _skipped_folder(d)]
        for name in files:
            path = Path(top, name)
            if path.suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".") and not path.exists():
                # a link whose target is gone (an unmounted disk, a moved folder): an image the user meant to train on
                raise DataError(f"image {path} is a link to {os.readlink(path)}, which does not exist; restore its "
                                "target or remove the link")
            if is_image_file(path):
                found.append(path)
            elif name.startswith(".") or name.lower() in OS_FOLDER_FILES:
                continue
            elif path.suffix.lower() in OTHER_IMAGE_SUFFIXES:
                if other_images is not None:
                    other_images.append(path)
            elif other_files is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
                other_files.append(path)
    return sorted(found)


def unread_images_warning(where: Path, other: Sequence[Path], *, to: str = "train on",
                          non_images: Sequence[Path] = ()) -> str | None:
    """One line counting the files of `other` (image formats that are not read, `OTHER_IMAGE_SUFFIXES`, as
    `image_files_in` collects them) found under `where` by suffix, naming one, and what to convert them to in order to
    `to` them (a verb: "train on", "classify"); None when there are none. Training and `compress.predict` warn with it, so a photo is left out in neither
    without a word. The files of `non_images` (`image_files_in`'s `other_files`) are counted at its end, naming one,
    rather than in a line of their own (`non_image_files_note`)."""
    if not other:
        return None
    from collections import Counter

    kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(Counter(p.suffix.lower() for p in other).items()))
    is_, them = ("is", "it") if len(other) == 1 else ("are", "them")
    also = ""
    if non_images:
        one = len(non_images) == 1
        also = (f"; {counted(len(non_images), 'other file')} that {'is not an image is' if one else 'are not images are'} "
                f"skipped too (e.g. {_under(min(non_images), where)})")
    return (f"{where}: {counted(len(other), 'image file')} of formats that are not read {is_} left out ({kinds}; e.g. "
            f"{min(other)}); convert {them} to one of {' '.join(sorted(IMAGE_SUFFIXES))} to {to} {them}{also}")


def non_image_files_note(where: Path, files: Sequence[Path]) -> str | None:
    """One info line counting the files of `files` (`image_files_in`'s `other_files`: neither hidden nor of an image
    suffix) found under `where`, naming one relative to it: a notes.txt in a class folder is meant to be skipped, but
    photos saved under another suffix (.svg, .jpg_large) were left out without a word. None when there are none."""
    if not files:
        return None
    one = len(files) == 1
    return (f"{where}: skipped {counted(len(files), 'file')} that {'is not an image' if one else 'are not images'} "
            f"(e.g. {_under(min(files), where)}); only {' '.join(sorted(IMAGE_SUFFIXES))} are read")


def _under(path: Path, where: Path) -> Path:
    """`path` relative to `where` where it lies under it (as `image_files_in` finds it), else as it is."""
    return path.relative_to(where) if path.is_relative_to(where) else path


# Folders that systems, not users, make among photos, by lower-case name (hidden ones aside): a Synology NAS's thumbnail
# cache in every folder it indexes (@eaDir/IMG_1.JPG/SYNOPHOTO_THUMB_XL.jpg: each photo again at five sizes, which
# multiplied a class's images and put thumbnails of test photos into training), its recycle bin, and what the root of a
# USB disk holds (Windows' recycle bin of deleted photos and its system folder, ext4's lost+found, not readable by the
# user), which became classes where data.root was such a disk.
SYSTEM_FOLDERS = frozenset({"@eadir", "#recycle", "$recycle.bin", "system volume information", "lost+found"})


def _skipped_folder(name: str) -> bool:
    """Hidden folders, the __MACOSX/ folder unzipping a Mac's zip leaves beside the images (its ._ files are metadata),
    and the system's own (`SYSTEM_FOLDERS`): none is a class nor holds training images."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in SYSTEM_FOLDERS


def loose_images_warning(where: Path) -> str | None:
    """One line counting the image files that lie in `where` itself, beside its class (or split) folders, where no
    image is read: a few photos saved into the root instead of their class folder were left out of training (and of
    the counts it prints) without a word. None when there are none."""
    if not where.is_dir():
        return None
    loose = sorted(p for p in where.iterdir() if is_image_file(p))
    if not loose:
        return None
    lie, is_, them = ("lies", "is", "it") if len(loose) == 1 else ("lie", "are", "them")
    return (f"{where}: {counted(len(loose), 'image file')} {lie} outside the class folders and {is_} left out (e.g. "
            f"{loose[0].name}); only root/<class>/ (or root/train/<class>/, root/test/<class>/, root/val/<class>/) is "
            f"read: move {them} into {'its' if len(loose) == 1 else 'their'} class folder to train on {them}")


def class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not _skipped_folder(p.name))


def empty_classes_message(empty: Sequence[Path], fix: str) -> str:
    """One line naming every class folder in `empty` (none of its images is read) and `fix`, in which "{it}" stands for
    "it" or "them"."""
    one = len(empty) == 1
    return (f"class folder{'' if one else 's'} {', '.join(map(str, empty))} {'has' if one else 'have'} no images "
            f"({' '.join(sorted(IMAGE_SUFFIXES))}), in {'it or its' if one else 'them or their'} subfolders; "
            + fix.format(it="it" if one else "them"))


def shared_images_message(files: Sequence[Path], labels: Sequence[int], classes: Sequence[str]) -> str | None:
    """One line naming the first image file that two class folders share (a link in one class's folder to another
    class's folder, or one file linked into both) and counting such files; None when every file is in one class.
    `image_files_in` walks a linked folder once within a class, not across classes: such an image was read into
    both classes with conflicting labels, without a word."""
    owner: dict[str, int] = {}  # resolved path -> index into files of its first listing
    shared: list[tuple[int, int]] = []
    for i, (path, label) in enumerate(zip(files, labels)):
        first = owner.setdefault(os.path.realpath(path), i)
        if first != i and labels[first] != label:
            shared.append((first, i))
    if not shared:
        return None
    first, i = shared[0]
    return (f"image {files[i]} (class {readable_repr(classes[labels[i]])}) is the same file as {files[first]} (class "
            f"{readable_repr(classes[labels[first]])}), through a link: {counted(len(shared), 'image file')} "
            f"{'is' if len(shared) == 1 else 'are'} in two class folders with conflicting labels; each image must be in "
            "one class folder only: remove the link or the image from the class it does not belong to")


# Other names of split folders (any case), and the name the split layout reads: Kaggle's "Training"/"Testing", Roboflow's
# "valid", or "Train" on a case-sensitive disk.
SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test",
                      "val": "val", "valid": "val", "validation": "val"}


def misnamed_split_folders(root: Path, has_split_dirs: bool) -> None:
    """`DataError` when folders of `root` are split folders by another name, so their images would be read wrongly:
    as classes (root/Training/<class> and root/Testing/<class> made a model that tells training from test images), or
    not at all (root/valid beside root/train)."""
    split_like = [p.name for p in class_dirs(root) if p.name.lower() in SPLIT_FOLDER_NAMES]
    if has_split_dirs:
        unread = [name for name in split_like if not (root / SPLIT_FOLDER_NAMES[name.lower()]).is_dir()]
        if unread:
            renames = ", ".join(f"{name} -> {SPLIT_FOLDER_NAMES[name.lower()]}" for name in unread)
            raise DataError(f"{root} holds {', '.join(unread)}, which would not be read: the split layout reads "
                            f"root/train, root/test and root/val (lower case); rename {renames}")
        # Another spelling beside the folder that is read (root/valid beside root/val, root/Train beside root/train on a
        # case-sensitive disk): its images would be left out unseen. One folder under two spellings (a disk that
        # ignores case) is fine.
        beside = [name for name in split_like if SPLIT_FOLDER_NAMES[name.lower()] != name
                  and not os.path.samefile(root / name, root / SPLIT_FOLDER_NAMES[name.lower()])]
        if beside:
            pairs = ", ".join(f"{name} beside {SPLIT_FOLDER_NAMES[name.lower()]}" for name in beside)
            raise DataError(f"{root} holds {pairs}: only root/train, root/test and root/val are read, so the images of "
                            f"{', '.join(beside)} would be left out; move them into the folder that is read, or remove it")
    elif split_like and len(split_like) == len(class_dirs(root)):  # another folder beside them: they are classes
        renames = [f"{name} -> {SPLIT_FOLDER_NAMES[name.lower()]}" for name in split_like
                   if SPLIT_FOLDER_NAMES[name.lower()] != name]
        raise DataError(f"{root} holds split folders ({', '.join(split_like)}) but no 'train' folder, so they would be "
                        "read as classes; the split layout is root/train/<class>, root/test/<class> and optionally "
                        "root/val/<class> (lower case)" + (f": rename {', '.join(renames)}" if renames else ""))


RUN_FOLDER_MARKS = ("pareto.json", "study.db", "checkpoints")
"""Files (and the folder of members' weights, checkpoints/<arch_id>/model.pt) a search's run folder holds and no
dataset does: a class folder that is or holds such a folder is a run folder or runs_dir, not a class (its report PNGs
would be trained on as images of that class)."""


def _split_folder(folder: Path, split: str) -> Path | None:
    """`folder`'s subfolder for `split` (train, test or val) under any name `SPLIT_FOLDER_NAMES` gives it (in lower
    case or capitalised: 'Training'), or None. Stat calls, not a listing: a class folder of many images costs little."""
    names = [name for name, meant in SPLIT_FOLDER_NAMES.items() if meant == split]
    return next((folder / n for name in names for n in (name, name.capitalize()) if (folder / n).is_dir()), None)


def _holds_a_dataset(folder: Path) -> bool:
    """Whether `folder` holds a split dataset: a train folder of >= 2 folders (classes) beside a test or val folder."""
    train = _split_folder(folder, "train")
    try:
        return (train is not None and (_split_folder(folder, "test") or _split_folder(folder, "val")) is not None
                and len(class_dirs(train)) >= 2)
    except OSError:
        return False


def _run_folder_in(folder: Path) -> tuple[Path, str] | None:
    """(the run folder, the mark it holds) where `folder` is a search's run folder or holds one (`RUN_FOLDER_MARKS`:
    runs/<study>/pareto.json), else None."""
    try:
        with os.scandir(folder) as entries:
            inside = sorted(Path(e.path) for e in entries if e.is_dir() and not _skipped_folder(e.name))
    except OSError:
        return None
    def marked(run: Path, mark: str) -> bool:
        if mark != "checkpoints":
            return (run / mark).is_file()
        # a folder named so is not enough (a class's photos may be): a member's folder with its weights is
        return (run / mark).is_dir() and any((member / "model.pt").is_file() for member in (run / mark).iterdir())

    try:
        return next(((run, mark) for run in (folder, *inside) for mark in RUN_FOLDER_MARKS if marked(run, mark)), None)
    except OSError:
        return None


def not_a_class_folder(root: Path, train_root: Path, classes: Sequence[str]) -> None:
    """`DataError` where a class folder of `train_root` is surely none, as where data.root is one folder too high, at a
    folder holding the dataset beside others: a class folder that holds a split dataset (train/ of >= 2 folders beside
    test/ or val/) where not every class folder is split so, or that is or holds a search's run folder
    (`_run_folder_in`). Each would be read as one class, its images (and a report's PNGs) mixed into it. The message
    names the likely data.root."""
    def override(folder: Path) -> str:
        return shell_override(key="data.root", value=str(folder.resolve()))

    def split_shaped(folder: Path) -> bool:  # train/ beside test/ or val/, whatever train/ holds
        return _split_folder(folder, "train") is not None and (
            _split_folder(folder, "test") or _split_folder(folder, "val")) is not None

    # Where every class folder is split so (class/split/source: defect/train/cam1/, defect/val/cam1/, ok/... alike) they
    # are classes whose photos are sorted that way, read as before; one among other folders is a dataset beside them.
    holding = next((name for name in classes if _holds_a_dataset(train_root / name)), None)
    if holding is not None and not all(split_shaped(train_root / name) for name in classes):
        folder = train_root / holding
        # the split folders as named there: "train/ ... beside test/ or val/" described Kaggle's Training/ and Testing/
        train, held = _split_folder(folder, "train"), _split_folder(folder, "test") or _split_folder(folder, "val")
        raise DataError(f"data.root={root}: its class folder {folder} holds a dataset of its own ({train.name}/ of 2 "
                        f"or more class folders beside {held.name}/), which would be read as one class: data.root is "
                        f"that folder, e.g. {override(folder)}")
    for name in classes:
        if (found := _run_folder_in(folder := train_root / name)) is None:
            continue
        run, mark = found
        # the other folders may be classes (the run folder is then what is out of place) or datasets themselves
        datasets = [c for c in classes if c != name and (_holds_a_dataset(train_root / c)
                                                         or len(image_folders_in(train_root / c)) >= 2)]
        fix = (f"data.root is the dataset's folder, e.g. {override(train_root / datasets[0])}, or move {folder} out of "
               "it" if datasets else f"move {folder} out of data.root, or set data.root to the dataset's folder")
        told = "; a run's config.yaml names the data.root it searched" if run == folder else ""
        raise DataError(f"data.root={root}: its class folder {folder} {'is' if run == folder else 'holds'} a search's "
                        f"run folder ({run} holds {mark}), which would be read as a class of images: {fix}{told}")


def class_mismatch(split_root: Path, train_root: Path, found: Sequence[str], classes: Sequence[str],
                   cfg: DataConfig) -> str:
    """One line for a val/ or test/ folder whose class folders differ from train/'s: which ones it lacks or has over,
    and the fixes the layout supports. Listing both whole sets ("val has classes [...] but train has [...]") left the
    user to find the difference, and said nothing of what to do."""
    missing = [c for c in classes if c not in found]
    extra = [c for c in found if c not in classes]
    what = "; ".join(
        ([f"it lacks the class folder{'s' * (len(missing) > 1)} {', '.join(map(readable_repr, missing))} that {train_root} has"] if missing else [])
        + ([f"it has {', '.join(map(readable_repr, extra))}, which {train_root} lacks"] if extra else []))
    fixes = ([f"add {', '.join(str(split_root / c) for c in missing)} with images"] if missing else []) + (
        [f"add {', '.join(str(train_root / c) for c in extra)} with images or remove "
         f"{', '.join(str(split_root / c) for c in extra)}"] if extra else [])
    # Without the folder, the split is held out of train/ (load_dataset), stratified by class, so every class has one.
    size = f"data.{split_root.name}_size={getattr(cfg, f'{split_root.name}_size'):g}"
    return (f"{split_root}: {what}; every split needs train's class folders: {' and '.join(fixes)}, or remove "
            f"{split_root} to hold {split_root.name} images out of train ({size})")


def system_folders_note(cfg: DataConfig) -> str | None:
    """One clause for the refusal of a study or checkpoint made with other images than `cfg` gives, where `cfg` is an
    image folder whose data.root holds `SYSTEM_FOLDERS` with images in them: until 2026-12-07 they were read (their
    images among their class's, one at the root as a class of its own) and are skipped since, so a study or member made
    before then had images no data.root gives now, which the caller says (where `system_folders_may_explain`). None for
    other data, or a root without such a folder. Each kind found is named, with how many folders of it there are and
    the first below the root (a NAS share has @eaDir/ in every folder, #recycle/ in one). Linked subfolders are followed
    as the loader follows them, each folder once; the folders are listed as the loader lists them, and each system
    folder is looked into up to its first image only: a NAS share of a million photos is not read through for one
    clause (its thumbnails are many more files than its photos)."""
    if cfg.format != DataFormat.imagefolder or not Path(cfg.root).is_dir():
        return None

    def first_visit(top: str, seen: set[tuple[int, int]]) -> bool:
        # (st_dev, st_ino): a folder reached twice (a link to an ancestor, two links to one folder) is walked once
        try:
            st = os.stat(top)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    def has_images(folder: Path) -> bool:
        seen: set[tuple[int, int]] = set()

        def images() -> Iterator[Path]:
            # unreadable folders ($RECYCLE.BIN, System Volume Information) are skipped: no images read there either
            for top, subfolders, files in os.walk(folder, followlinks=True):
                if not first_visit(top, seen):
                    subfolders[:] = []
                    continue
                yield from (p for name in files if is_image_file(p := Path(top, name)))

        return next(images(), None) is not None

    root, seen = Path(cfg.root), set()
    found: dict[str, list[Path]] = {}  # by lower-case name, in the order the walk meets them
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        if not first_visit(folder, seen):
            subfolders[:] = []
            continue
        for name in sorted(subfolders):
            if name.lower() in SYSTEM_FOLDERS and has_images(Path(folder, name)):
                found.setdefault(name.lower(), []).append(Path(folder, name))
        subfolders[:] = sorted(name for name in subfolders if not _skipped_folder(name))  # as they are read
    if not found:
        return None

    def kind(folders: list[Path]) -> str:
        below = next((f"{p.relative_to(root)}/" for p in folders if p.parent != root), None)
        if len(folders) == 1:
            return f"{folders[0].name}/" + (f" ({below})" if below else "")
        return f"{folders[0].name}/ ({len(folders)} folders{f', e.g. {below}' if below else ''})"

    kinds = [kind(folders) for folders in found.values()]
    named = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
    at_root = [p.name for folders in found.values() for p in folders if p.parent == root]
    one = sum(map(len, found.values())) == 1
    return (f"data.root holds {named}, "
            f"{'a folder' if one else 'folders'} a NAS or a USB disk adds, whose images were read until 2026-12-07 and "
            "are skipped since"
            + (f" ({', '.join(map(repr, at_root))} {'was a class' if len(at_root) == 1 else 'were classes'})"
               if at_root else ""))


def nested_classes_warning(root: Path, classes: Sequence[str]) -> str | None:
    """One line where no class folder of `root` (of `root/train` in the split layout) holds an image of its own and each
    holds 2 or more subfolders of images, else None: as where data.root is one folder too high, over datasets side by
    side (`shapes/circle/`, `flowers/rose/`), each then read as one class and the search scoring how well it tells the
    datasets apart. Photos sorted by date under each class (`cat/2024-06/`) look the same, so it warns rather than
    refuses; a single such folder is refused when the data loads (`dataset_one_folder_down`)."""
    if len(classes) < 2:
        return None
    base = root / "train" if (root / "train").is_dir() else root
    inner: dict[str, list[str]] = {}
    for name in classes:
        folder = base / name
        try:
            with os.scandir(folder) as entries:
                if any(is_image_file(Path(e.path)) for e in entries):
                    return None
        except OSError:
            return None
        if len(subfolders := image_folders_in(folder)) < 2:
            return None
        inner[name] = subfolders
    shown = "; ".join(f"{name}: {', '.join(subs[:3])}{', ...' if len(subs) > 3 else ''}"
                      for name, subs in list(inner.items())[:2])
    first = base / classes[0]
    return (f"every class folder of {base} holds its images in 2 or more subfolders, none of its own ({shown}): each "
            f"is read as one class ({', '.join(map(readable_repr, classes[:5]))}{', ...' if len(classes) > 5 else ''}); "
            "if the subfolders are the classes (datasets side by side), data.root is one folder down, e.g. "
            f"{shell_override(key='data.root', value=os.path.abspath(first))}")


def numbered_classes_warning(classes: Sequence[str]) -> str | None:
    """One line when the class folders are named by numbers that their order as text, the logits' order (sorted as
    torchvision's ImageFolder sorts them), puts out of numeric order ("0" .. "42", as Kaggle's GTSRB ships them:
    "10" sorts before "2"), else None. A deployment that takes logit i for class i then gives wrong labels without a
    word; the class names the model's files record are right, and zero-padded names keep both orders alike."""
    if not classes or not all(name.isascii() and name.isdigit() for name in classes):
        return None
    numeric = sorted(classes, key=int)
    if list(classes) == numeric:
        return None
    i = next(i for i, (a, b) in enumerate(zip(classes, numeric)) if a != b)
    width = max(len(name) for name in classes)
    padded = ", ".join(str(n).zfill(width) for n in (0, 1)) + f", ..., {int(numeric[-1]):0{width}d}"
    return (f"the class folders are numbers, ordered as text as torchvision's ImageFolder orders them: logit {i} is "
            f"class '{classes[i]}', not '{numeric[i]}'; map predictions to classes by the class_names that metrics.json "
            f"(output.class_names) and each .onnx file record, or zero-pad the folder names ({padded}) to order them "
            "as numbers")
