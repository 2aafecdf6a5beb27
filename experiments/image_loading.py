"""Benchmark: reading an image folder of phone-sized JPEG photos (`data=imagefolder`), as before and as now.

    python experiments/image_loading.py                 # 48 photos of 4000x3000, ~2 min on 2 cores

Before: every file decoded at full size in one thread, then resized (Pillow, bilinear). Now (`nas.data._read_folder`):
JPEGs decoded at the smallest 1/2, 1/4 or 1/8 scale that keeps at least twice the target size (Pillow's draft mode, as
its `thumbnail()` does), and files read by a thread pool; with `data.cache_dir`, loads after the first read the decoded
arrays from the cache instead (`nas.images.cache_file`). Each variant reads the same folder in interleaved rounds
(median seconds of `--rounds`); the photos are synthetic (smooth colour gradients plus noise, JPEG quality 90, about 4
MB each), written to a temporary folder first. Also reported: how far the draft-decoded 32x32 images are from the
full-size-decoded ones (mean and max absolute difference in 0-255 levels), since a deployed model should see what it
was trained on. Writes experiments/results/<name>.{json,md} (name: image_loading unless --name).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, one_line_on_failed_write, write_results  # noqa: E402

from nas.data import _read_folder  # noqa: E402
from nas.latency.measure import machine_info  # noqa: E402

VARIANTS = {  # name: (draft, threads, cache)
    "before: full decode, 1 thread": (False, 1, False),
    "draft decode, 1 thread": (True, 1, False),
    "full decode, thread pool": (False, None, False),
    "now: draft decode, thread pool": (True, None, False),
    "now, read again with data.cache_dir": (True, None, True),
}


def write_photos(folder: Path, *, n: int, width: int, height: int) -> None:
    """`n` synthetic photos in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        base = np.stack([(xx * 255 // width + 40 * i) % 256, yy * 255 // height, (xx + yy + 17 * i) % 256], -1)
        pixels = (base + rng.integers(0, 24, base.shape)).clip(0, 255).astype(np.uint8)
        (folder / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"class{i % 2}" / f"{i}.jpg", quality=90)


def main(*, n: int, width: int, height: int, size: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_photos(folder, n=n, width=width, height=height)
        megabytes = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 1e6
        classes = ("class0", "class1")
        cache = Path(tmp) / "cache"  # beside the class folders, not one of them
        t0 = time.perf_counter()  # the first load with a cache: decoded, then written to it
        _read_folder(folder, classes, size=size, mode="RGB", cache=cache)
        first_cached_load = time.perf_counter() - t0
        seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
        images = {}
        for _ in range(rounds):
            for name, (draft, threads, cached) in VARIANTS.items():
                t0 = time.perf_counter()
                split = _read_folder(folder, classes, size=size, mode="RGB", draft=draft, threads=threads,
                                     cache=cache if cached else None)
                seconds[name].append(time.perf_counter() - t0)
                images[name] = split.x.numpy().astype(np.int16)
    full = images["before: full decode, 1 thread"]
    rows = []
    for name in VARIANTS:
        diff = np.abs(images[name] - full)
        median = statistics.median(seconds[name])
        rows.append({"variant": name, "seconds": median, "ms_per_image": 1000 * median / n,
                     "seconds_all": seconds[name], "mean_abs_diff": float(diff.mean()), "max_abs_diff": int(diff.max())})
    before = rows[0]["seconds"]
    for r in rows:
        r["speedup"] = before / r["seconds"]
    return {"command": command_line("image_loading.py"), "machine": machine_info(), "python": platform.python_version(),
            "date": str(date.today()), "photos": n, "photo_size": [width, height], "megabytes": megabytes,
            "target_size": size, "rounds": rounds, "rows": rows, "first_cached_load_seconds": first_cached_load}


def render(result: dict) -> str:
    w, h = result["photo_size"]
    lines = [
        "# Reading an image folder of photos: full decode vs JPEG draft decode, one thread vs a pool",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; Python {result['python']}; {result['date']}",
        "",
        f"{result['photos']} synthetic {w}x{h} JPEG photos ({result['megabytes']:.0f} MB), read as RGB and resized to "
        f"{result['target_size']}x{result['target_size']} (`nas.data._read_folder`); seconds = median of "
        f"{result['rounds']} interleaved rounds. Difference = absolute difference of the resulting pixels from the full "
        "decode's, in 0-255 levels.",
        "",
        "| variant | s | ms / image | vs before | mean diff | max diff |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['seconds']:.3f} | {r['ms_per_image']:.2f} | {r['speedup']:.2f}x | "
                     f"{r['mean_abs_diff']:.2f} | {r['max_abs_diff']} |")
    if "first_cached_load_seconds" in result:
        lines += ["", f"With `data.cache_dir`, the first load decodes as 'now' does and writes the arrays: "
                      f"{result['first_cached_load_seconds']:.2f} s here (one load, before the rounds). Later loads of the "
                      "unchanged files read them from the cache (the last row)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--photos", type=int, default=48)
        parser.add_argument("--width", type=int, default=4000)
        parser.add_argument("--height", type=int, default=3000)
        parser.add_argument("--size", type=int, default=32, help="data.img_size")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--name", default="image_loading", help="results file stem under experiments/results/")
        args = parser.parse_args()
        write_results(args.name, main(n=args.photos, width=args.width, height=args.height, size=args.size,
                                            rounds=args.rounds), render_md=render)
