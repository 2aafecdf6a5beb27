"""Image files decoded as training and `compress.predict` read them: one file (Pillow: upright, 8-bit, composited,
resized), many at once on threads, the decoded arrays kept in data.cache_dir, the files that cannot be read named
together, what loading changes of an image beyond scale (`Original`), and those steps in words (`preprocessing`)."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

import numpy as np

from nas.checkpoint import ImageCounts
from nas.config import DataConfig, DataFormat
from nas.errors import DataError, counted
from nas.image_folder import image_files_in

if TYPE_CHECKING:  # only the type of the images grey_image_count counts; nas.data imports torch
    import torch


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Pillow modes of one grey channel; "I;16*" are 16-bit (PNG, TIFF), "LA" grey with alpha.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N"})


def _to_8bit(img, path: Path):
    """`img` with 8-bit pixels. Pillow's convert() clips 16-bit grey to 0..255 instead of scaling it (a
    16-bit PNG came out nearly all white), so 16-bit pixels are mapped to round(value / 257):
    the full 16-bit range onto 0..255, which a deployed model receives as value / 65535."""
    from PIL import Image

    # Pillow opens a 16-bit PGM (maxval over 255) as mode I, its values scaled to 0..65535: 16-bit grey as well
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PPM"):
        values = np.asarray(img)
        grey = Image.fromarray(np.rint(values.astype(np.float64) / 257.0).astype(np.uint8))
        if isinstance(img.info.get("transparency"), int):
            # a 16-bit PNG's transparent grey value (tRNS): kept as alpha, so data.background applies to it as to
            # 8-bit images (the new image has no info, and the cut-out's background stayed the stored grey)
            return Image.merge("LA", (grey, Image.fromarray(np.where(values == img.info["transparency"], 0, 255)
                                                          .astype(np.uint8))))
        return grey
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        # an unreadable file like a broken one: named with the others in one error, or skipped where asked
        # (compress.predict --skip-unreadable stopped at a float TIFF all the same, naming it alone)
        raise UnreadableImageError(path, f"{kind} pixels (mode {img.mode}), whose range is not defined: save it as "
                                         "8-bit grey or colour, or 16-bit grey")
    if img.mode == "P" and "transparency" in img.info:
        # The same colours either way, but converted straight to RGB or L Pillow prints a UserWarning from inside
        # itself into the search's output. The alpha is then dropped like any other (the contract says so).
        return img.convert("RGBA")
    return img


# JPEGs are decoded at the smallest 1/2, 1/4 or 1/8 scale that still has this many times the target size (Pillow's
# thumbnail() does the same with its reducing_gap=2): a 12-megapixel photo read for a 32x32 model decodes about 3x
# faster, and the resize after it still averages over 2 or more decoded pixels per output pixel.
DRAFT_GAP = 2


EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how to rotate or mirror the stored pixels for display


# Pillow modes with an alpha channel ("La", "RGBa": premultiplied); palette and other images may instead name one
# transparent colour in their info, which convert("RGBA") turns into alpha as well.
ALPHA_MODES = frozenset({"RGBA", "LA", "La", "RGBa", "PA"})


def _flatten(img, background: int):
    """`img` composited onto a uniform grey `background` (0..255) where it has transparency (else unchanged):
    out = alpha x pixel + (1 - alpha) x background, per 8-bit channel as Pillow's alpha_composite computes it."""
    from PIL import Image

    if img.mode not in ALPHA_MODES and "transparency" not in img.info:
        return img
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (background, background, background, 255)), rgba)


class Original(NamedTuple):
    """What an image file was before it was made into a training image: its upright size in pixels (as a viewer shows
    it, before any reduced JPEG decoding) and whether any pixel is transparent (alpha under 255): what loading changes
    beyond scale (`reshaped_images_warnings`)."""

    width: int
    height: int
    transparent: bool


def _has_transparent_pixels(img) -> bool:
    """Whether `img` (8-bit, as `_to_8bit` makes it) has a pixel of alpha under 255: an RGBA PNG saved fully opaque (a
    screenshot, say) has an alpha channel but nothing for data.background to show through."""
    if img.mode in ALPHA_MODES:
        return img.getchannel(len(img.getbands()) - 1).getextrema()[0] < 255  # the alpha band is the last
    if "transparency" in img.info:  # one transparent colour (palette, grey or RGB tRNS): where it is used
        return img.convert("RGBA").getchannel("A").getextrema()[0] < 255
    return False


# Held while Pillow's pixel limit is lifted for one Image.open (`_opened`): our reading threads take turns, and each
# puts the limit back before the next reads it.
_PILLOW_LIMIT_LIFTED = threading.Lock()


@contextmanager
def _opened(path: Path) -> Iterator[tuple[Any, int | None]]:
    """`Image.open(path)` without Pillow's decompression-bomb check of the stored size, and Pillow's pixel limit
    (`PIL.Image.MAX_IMAGE_PIXELS`, None: none) for the caller to apply to the pixels it decodes. Pillow judges the
    stored size: a phone's 200-megapixel photo (16320x12240) was refused, though it is decoded at 1/8 scale (3
    megapixels) for a model's input, and one of 108 megapixels printed Pillow's two-line warning of a "decompression
    bomb DOS attack" into the run's output. Opening reads only the header; the limit is lifted for that alone."""
    from PIL import Image

    with _PILLOW_LIMIT_LIFTED:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            img = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    with img:
        yield img, limit


def _check_decoded_pixels(img, path: Path, limit: int | None) -> None:
    """`UnreadableImageError` where `img` (after `draft()`: the size it decodes at) has more pixels than Pillow refuses
    (twice `limit`, as `Image.open` judges them): a file that would take gigabytes to decode, a decompression bomb or
    a panorama, is named with what to do, instead of stopping the run for lack of memory."""
    if limit is None:
        return
    width, height = img.size
    if width * height > 2 * limit:
        raise UnreadableImageError(path, f"{width}x{height} pixels to decode ({width * height / 1e6:.0f} megapixels), "
                                         f"over Pillow's limit of {2 * limit / 1e6:.0f} megapixels against decompression "
                                         "bombs (PIL.Image.MAX_IMAGE_PIXELS)")


def read_image(path: Path, *, size: int | None, mode: str, draft: bool = True, background: int | None = None,
               original: list[Original] | None = None) -> np.ndarray:
    """One image file as a (H, W) or (H, W, 3) uint8 array in `mode` ("L" or "RGB"), resized to `size` x `size` if
    given, transparent pixels composited onto grey level `background` if given: the steps `preprocessing` names,
    shared by image-folder training and `compress.predict`. Where `original` is given, the file's `Original` (size and
    transparency, known once it is open) is appended to it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with _opened(path) as (img, limit):
            width, height = img.size  # as stored: draft() below may decode a JPEG at a fraction of it
            if draft and size is not None:
                img.draft(None, (size * DRAFT_GAP, size * DRAFT_GAP))  # JPEG only; other formats ignore it
            _check_decoded_pixels(img, path, limit)
            if (orientation := img.getexif().get(EXIF_ORIENTATION, 1)) != 1:
                # Phones store a portrait photo as landscape pixels plus this tag; a viewer (and the user) sees it upright,
                # as a fixed camera in deployment sees the scene, so the model is trained on what the tag says.
                img = ImageOps.exif_transpose(img)
                if orientation in (5, 6, 7, 8):  # turned a quarter: upright, its width is the stored height
                    width, height = height, width
            img = _to_8bit(img, path)
            if original is not None:
                original.append(Original(width, height, _has_transparent_pixels(img)))
            if background is not None:  # before resizing, so no transparent pixel's stored colour bleeds into others
                img = _flatten(img, background)
            img = img.convert(mode)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:  # the last: over Pillow's pixel limit
        raise UnreadableImageError(path, _reason(e, path)) from None


class UnreadableImageError(DataError):
    """An image file that cannot be decoded (cut short, empty, not an image, not permitted): `path` and `reason`."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path, self.reason = path, reason


def _reason(e: BaseException, path: Path) -> str:
    """Why `path` could not be read, in one line without the path: Pillow's "cannot identify image file '<path>'" and
    an OSError's "[Errno 13] Permission denied: '<path>'" repeated it, which the message names already."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return e.strerror
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError) and _is_empty(path):
        # Pillow says "cannot identify image file" of a 0-byte file too, which sent users looking for a wrong format in
        # what is a download or copy that never wrote anything
        return "empty file, 0 bytes"
    text = str(e).replace(f" {str(path)!r}", "").strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


# How many unreadable images one error names; the rest are counted.
UNREADABLE_NAMED = 5


# Bump when what read_image makes of a file changes: older cache files are then not found (2: a 16-bit grey PNG's
# transparent value is kept for data.background). A cache file without the .json of its notable images beside it
# (`notable_file`; written before they were kept) needs no bump: it is decoded again and replaced, under its own name.
CACHE_FORMAT = 2


def cache_file(cache: Path, root: Path, files: list[Path], *, size: int | None, mode: str, draft: bool,
               background: int | None) -> Path:
    """Where the decoded arrays of `files` (the images under `root`) live in `cache`: images-<folder>-<files>.npy, the
    first part naming the folder and how it is decoded (img_size, colour mode, background), the second the files
    (path, size, modification time), so a changed, added or removed image misses and replaces that folder's file."""
    import hashlib
    import json

    stats = [(str(p.resolve()), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]]
    how = {"format": CACHE_FORMAT, "size": size, "mode": mode, "draft": draft, "background": background}
    folder = hashlib.sha1(json.dumps({**how, "root": str(root.resolve())}).encode()).hexdigest()[:8]
    content = hashlib.sha1(json.dumps(stats).encode()).hexdigest()[:16]
    return cache / f"images-{folder}-{content}.npy"


def drop_stale_cache_files(cached: Path) -> None:
    """Remove the files `cached` replaces: the same folder decoded the same way, from images since changed. Without it
    the cache grew by a whole copy of the folder at every change (a worker still reading one keeps it open)."""
    prefix = cached.name.rsplit("-", 1)[0]
    for old in [*cached.parent.glob(f"{prefix}-*.npy"), *cached.parent.glob(f"{prefix}-*.json")]:
        if old.stem != cached.stem:  # the .npy and its .json beside it (`notable_file`) stay
            old.unlink(missing_ok=True)


def notable_file(cached: Path) -> Path:
    """The file beside the cache file `cached` that keeps which of its images are `notable` (not square, or with
    transparent pixels): a load from the cache decodes nothing, and warns of them all the same."""
    return cached.with_suffix(".json")


def notable_images(originals: Sequence[Original]) -> list[tuple[int, Original]]:
    """The images whose `Original` says loading changes them beyond scale (not square: stretched; transparent pixels:
    dropped or composited), each by its index in `originals`."""
    return [(i, o) for i, o in enumerate(originals) if o.width != o.height or o.transparent]


def read_notable(path: Path, n_files: int) -> list[tuple[int, Original]] | None:
    """The notable images (`notable_images`) of a folder of `n_files` images that `path` (`notable_file`) keeps; None
    where it is missing or not such a file (a cache file written without it is then decoded again)."""
    import json

    try:
        kept = [(int(i), Original(int(w), int(h), bool(t))) for i, w, h, t in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return None
    return kept if all(0 <= i < n_files for i, _ in kept) else None


def read_images(files: Sequence[Path], *, size: int | None, mode: str, draft: bool = True,
                background: int | None = None, threads: int | None = None,
                unreadable: list[UnreadableImageError] | None = None,
                originals: list[Original] | None = None) -> np.ndarray:
    """Image files as one (N, C, H, W) uint8 array, each read by `read_image`; `DataError` naming the first image whose
    size differs from the first one's, or that is not square (without `size` they keep their own). A file that cannot
    be decoded is a `DataError` naming every such file (`unreadable_message`), or, where `unreadable` is given, appended
    to it and left out of the array (N counts the others; 0 where none could be read). Where `originals` is given,
    each read file's `Original` is appended to it, in the array's order."""
    from concurrent.futures import ThreadPoolExecutor

    def read(path: Path) -> tuple[np.ndarray, Original | None] | UnreadableImageError:
        seen: list[Original] | None = [] if originals is not None else None  # this file's alone: threads share none
        try:
            return read_image(path, size=size, mode=mode, draft=draft, background=background, original=seen), \
                (seen[0] if seen else None)
        except UnreadableImageError as e:  # kept, so that one error names every such file, not the first alone
            return e

    # Pillow decodes and resizes without holding the GIL, so threads use every core (results keep the files' order)
    with ThreadPoolExecutor(max_workers=threads or min(available_cpus(), 8)) as pool:
        read_or_not = list(pool.map(read, files))
    xs = [r if isinstance(r, UnreadableImageError) else r[0] for r in read_or_not]
    if originals is not None:
        originals.extend(r[1] for r in read_or_not if not isinstance(r, UnreadableImageError) and r[1] is not None)
    if bad := [e for e in xs if isinstance(e, UnreadableImageError)]:
        if unreadable is None:
            raise DataError(unreadable_message(bad))
        unreadable.extend(bad)
    read_ = [(path, arr) for path, arr in zip(files, xs) if not isinstance(arr, UnreadableImageError)]
    if not read_:
        return np.zeros((0, 1 if mode == "L" else 3, size or 0, size or 0), dtype=np.uint8)
    first = read_[0][1]
    for path, arr in read_:
        if arr.shape != first.shape:
            raise DataError(
                f"image {path} is {arr.shape[1]}x{arr.shape[0]} but earlier ones are {first.shape[1]}x{first.shape[0]}; "
                "set data.img_size=N to resize all images"
            )
        if arr.shape[0] != arr.shape[1]:
            raise DataError(f"image {path} is not square ({arr.shape[1]}x{arr.shape[0]}); set data.img_size=N to resize")
    # copied into one (N, C, H, W) array image by image: one copy of the images, not a second for the transposition
    # (`LOAD_BYTES_PER_VALUE`)
    chw = first[None] if first.ndim == 2 else first.transpose(2, 0, 1)
    x = np.empty((len(read_), *chw.shape), dtype=np.uint8)
    for i, (_, arr) in enumerate(read_):
        x[i] = arr if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return x


def unreadable_message(errors: Sequence[UnreadableImageError], *, otherwise: str | None = None) -> str:
    """One line for the image files that could not be read: each of the first `UNREADABLE_NAMED` with its reason, the
    rest counted, and to replace or remove them (or `otherwise`, a clause such as "pass --skip-unreadable to classify
    the other images"). A folder's broken files (a download cut short, an empty file) were named one per run, each run
    decoding the whole folder again to find the next."""
    fix = f"replace or remove {'it' if len(errors) == 1 else 'them'}" + (f", or {otherwise}" if otherwise else "")
    if len(errors) == 1:
        return f"{errors[0]}; {fix}"
    named = "; ".join(f"{e.path} ({e.reason})" for e in errors[:UNREADABLE_NAMED])
    more = f"; and {len(errors) - UNREADABLE_NAMED} more" if len(errors) > UNREADABLE_NAMED else ""
    return f"cannot read {len(errors)} images: {named}{more}; {fix}"


def _grey_palette(img) -> bool:
    """A palette image (GIF, 8-bit PNG) whose colours are all grey: grey, though its mode says "P" (read from the
    palette, without decoding the pixels)."""
    if img.mode != "P":
        return False
    palette = img.getpalette() or []  # [r, g, b, r, g, b, ...] of the colours the file defines
    return bool(palette) and all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def detect_mode(folders: list[Path]) -> str:
    """"RGB" if an image the class `folders` are read for is in colour, else "L" (the data.channels=null rule)."""
    from PIL import Image, UnidentifiedImageError

    for folder in folders:
        # the files that are read, no others: a colour copy in .ipynb_checkpoints/ (or in a folder beside
        # root/train) made a grey data set train on 3 channels
        for path in image_files_in(folder):
            try:
                with _opened(path) as (img, _):  # the mode alone: nothing is decoded
                    if img.mode not in GREY_MODES | {"I", "F"} and not _grey_palette(img):
                        return "RGB"
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
                continue  # reported with its path when the images are read
    return "L"


def grey_image_count(x: torch.Tensor, *, chunk: int = 256) -> int:
    """How many of the (N, C, H, W) images `x`, as loading made them, have no colour: all of them where they have one
    channel, else those with the same value in every channel at every pixel, as `compress.predict.grey_images` judges a
    photo given a colour model (so its warning can say whether the model's own images held such ones: a grey photo saved
    as RGB, or a colour file of grey pixels, counts as it does there). `chunk` images at a time: the comparison's
    masks of a whole large folder would take as much memory again as its pixels."""
    if x.shape[1] == 1:
        return int(x.shape[0])
    grey = 0
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk]
        same = (part[:, 1:] == part[:, :1]).all(dim=1)  # (n, H, W): every channel equals the first
        grey += int(same.flatten(1).all(dim=1).sum())
    return grey


def reshaped_images_warnings(notable: Sequence[tuple[str | Path, Original]], *, images: int, size: int | None,
                             background: int | None, root: Path | None = None, new_photos: bool = False,
                             trained_on: ImageCounts | None = None) -> list[str]:
    """One line each for the images (`images` in all, of `root` where given) that loading changes beyond scale, as
    `notable` names them (`notable_images`): those not square, stretched to `size` x `size` (data.img_size; without it
    they are refused), and those with transparent pixels, dropped or composited onto `background` (data.background).
    Training says so of its image folder: a model deployed on photos such as these must be fed them made the same way,
    as `compress.predict` makes them. With `new_photos`, `compress.predict` says so of the photos it classifies, made
    by the model's recorded `size` and `background`, and with `trained_on` (the model's recorded `ImageCounts`) how many
    of the images the model was trained and tested on were not square or had transparent pixels; without it (a record
    from before they were kept) it says that this is not recorded."""
    warnings = []
    where = "" if root is None else f" in {root}"
    # what the model's own images were, as the record counts them: every split (train, val and test) together
    seen = None if trained_on is None else f"{trained_on.images:,} images the model was trained and tested on"
    stretched = [(path, o) for path, o in notable if o.width != o.height]
    if stretched and size is not None:
        path, o = stretched[0]
        one = len(stretched) == 1
        each, its, them = ("it is", "its", "it") if one else ("each is", "their", "them")
        # A model trained on photos of the same camera saw them stretched alike; one trained on squares needs a crop.
        if new_photos and trained_on is None:
            how = (f"{each} stretched to {size}x{size}, the model's input, which changes "
                   f"{its} aspect ratio; whether the model's training images were square is not recorded: if they "
                   f"were, crop or pad {them} to square first to keep {its} shape")
        elif new_photos and trained_on.not_square == 0:
            how = (f"{each} stretched to {size}x{size}, the model's input, which changes {its} aspect ratio; the "
                   f"{seen} were all square: crop or pad {them} to square first to keep {its} shape")
        elif new_photos:
            some = ("all" if trained_on.not_square == trained_on.images else
                    f"{trained_on.not_square:,} of the")
            how = (f"{each} stretched to {size}x{size}, the model's input, which changes {its} aspect ratio, as "
                   f"training did to {some} {seen}")
        else:
            how = (f"{each} stretched to {size}x{size} (data.img_size), which changes "
                   f"{its} aspect ratio, and compress.predict stretches new photos the same way; crop or pad {them} "
                   f"to square first to keep {its} shape")
        warnings.append(f"{len(stretched):,} of {counted(images, 'image')}{where} {'is' if one else 'are'} not square "
                        f"(e.g. {path} {o.width}x{o.height}): {how}")
    transparent = [path for path, o in notable if o.transparent]
    # where recorded, how many of the model's own images had any: none, and the model never saw a cut-out
    had = "" if not new_photos or trained_on is None else (
        f"; {'none' if trained_on.transparent == 0 else f'{trained_on.transparent:,}'} of the {seen} had transparent "
        "pixels")
    if transparent:
        one = len(transparent) == 1
        what = (f"{len(transparent):,} of {counted(images, 'image')}{where} {'has' if one else 'have'} transparent "
                f"pixels (e.g. {transparent[0]}): ")
        if background is None and new_photos:
            warnings.append(what + "the transparency is dropped, as it was for the model's training images "
                            "(data.background=null), so the model sees the colours stored under those pixels" + had)
        elif background is None:
            warnings.append(what + "the transparency is dropped (data.background=null), so the model sees the colours "
                            "stored under those pixels; set data.background=0..255 to composite them onto that grey "
                            "level (255 white), the background a camera will see behind the object")
        elif new_photos:
            warnings.append(what + f"{'its' if one else 'their'} transparent pixels are composited onto grey level "
                            f"{background}, as the model's training images were (data.background={background})" + had)
        else:
            warnings.append(what + f"{'its' if one else 'their'} transparent pixels are composited onto grey level "
                            f"{background} (data.background={background}), as compress.predict composites new photos")
    return warnings


# The step of `preprocessing` for idx data read as 3 channels: compress.predict makes a file grey and repeats it too.
GREY_REPEATED = "grey repeated into 3 channels"


def preprocessing(cfg: DataConfig, *, in_chans: int, img_size: int) -> str:
    """How the images a model was trained on were made from the files, in words: a deployment must feed it frames
    made the same way (metrics.json's input contract)."""
    if cfg.format == DataFormat.idx:
        # The resize named exactly (`_conform`): Pillow's bilinear resize, which image folders and compress.predict use,
        # gives 1 level more or less on some of Fashion-MNIST's test pixels at another size, so a deployer who made the
        # test split that way to check a file's recorded accuracy fed other pixels than the model was scored on.
        steps = ["idx grey images as stored" if cfg.img_size is None else
                 f"idx grey images resized to {img_size}x{img_size} (bilinear, antialiased: torch's "
                 "interpolate(mode='bilinear', antialias=True, align_corners=False) of the uint8 values, rounded)"]
        if in_chans == 3:
            steps.append(GREY_REPEATED)
    else:
        colour = "RGB" if in_chans == 3 else "grey (Pillow 'L': 0.299 R + 0.587 G + 0.114 B)"
        alpha = ("transparency dropped: the colours stored under transparent pixels are used as they are"
                 if cfg.background is None else
                 f"transparent pixels composited onto grey level {cfg.background}: round(alpha x pixel + (1 - alpha) x "
                 f"{cfg.background}), alpha = A / 255")
        # "round": a deployment that reads the words into numpy and stores the result as uint8 truncates (astype): 1
        # level darker, on many pixels of a 16-bit grey photo or of a cut-out's edge, than training made them.
        steps = [f"decoded with Pillow, turned upright as the EXIF orientation says, converted to {colour} "
                 f"({alpha}), 16-bit grey as round(value / 257), 16-bit colour as its high byte (value // 256)",
                 "at their own size" if cfg.img_size is None else
                 f"JPEGs decoded at 1/2, 1/4 or 1/8 scale where that keeps {DRAFT_GAP}x the target size; the whole image "
                 f"stretched to {img_size}x{img_size} (bilinear, antialiased; not cropped)"]
    return "; ".join(steps) + "; uint8 / 255"
