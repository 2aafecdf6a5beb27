"""Writing the report's files into the run folder, each atomically (`write_reports`)."""

from __future__ import annotations

import errno
import os
import pathlib
import secrets
from collections.abc import Iterable

# the names compress.pipeline writes, shared with it (no compress imports here: nas.layout holds constants alone)
from nas.layout import COMPRESSED_JSON

from nas.report.markers import _writer_tag
from nas.report.files import METRICS_JSON, PARETO_JSON, REPORT_FILES, TRIALS_CSV, _Run, _load_run
from nas.report.plots import _breakdown_png, _mixers_png, _pareto_png
from nas.report.render import _render_html, _render_markdown


def _write_atomic(path: pathlib.Path, data: bytes | str) -> pathlib.Path:
    """Write via a temporary file, synced, + rename (the folder synced after) so a reader (browser, CI upload) never sees
    a half-written file, nor an empty one after a power loss."""
    # Named as nas.checkpoint names its temporary files (.<name>.<random>.<pid>@<host>~<pid namespace>.tmp): the next
    # search removes one whose writer was killed mid-write, and a report written by the search and one by
    # `python -m nas.report` at the same moment do not write into one file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.{_writer_tag()}.tmp")
    if isinstance(data, str):
        from nas.errors import readable_text  # here: this module imports nothing of nas at its top

        # a warning or class name naming a file that is not UTF-8, shown as its `\\xNN` bytes rather than unwritable
        data = readable_text(data)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        # a plain open(): the permissions of any file written here; outside the inner try: never ours to delete
        fh = tmp.open("xb")
        try:
            with fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())  # renamed unsynced, a power loss can leave an empty file under the new name
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)
    except OSError as e:
        # as nas.checkpoint's atomic writes: a full disk's error names the file being written, not its temporary one
        if e.errno is None or (e.filename is not None and str(e.filename) != str(tmp)):
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e
    return path


def _fsync_folder(folder: pathlib.Path) -> None:
    # nas.checkpoint.fsync_folder: the rename reaches the disk; skipped where the file system cannot sync a folder
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _mtime_ns(path: pathlib.Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # not there (a member's folder deleted, compressed_metrics.json not written yet)
        return None


def _plots_up_to_date(folder: pathlib.Path, run: _Run, names: Iterable[str]) -> set[str]:
    """The PNGs of `names` in `folder` last written no earlier than every file they are drawn from last changed: trials.csv,
    pareto.json, the front members' metrics.json and compressed_metrics.json, and the folders these are renamed into
    (which a member's file created or deleted changes). Drawn again from the same files, they would be the same."""
    sources = [folder / TRIALS_CSV, folder / PARETO_JSON, folder / "checkpoints"]
    sources += [folder / m.checkpoint / name for m in run.members for name in ("", METRICS_JSON, COMPRESSED_JSON)]
    newest = max((t for t in map(_mtime_ns, sources) if t is not None), default=0)
    return {name for name in names if (_mtime_ns(folder / name) or -1) >= newest}


def write_reports(run_dir: str | os.PathLike[str], *, redraw_plots: bool = True) -> dict[str, pathlib.Path]:
    """Write the report of one search run into its run folder.

    Reads ``trials.csv``, ``pareto.json``, ``checkpoints/*/metrics.json`` (and ``compressed_metrics.json``) and the run
    markers in ``run_dir`` and writes
    ``report.html`` (self-contained, interactive), ``report.md`` and the PNGs it embeds (``pareto.png``,
    ``latency_breakdown.png``, ``mixers.png``), each atomically. A run without finished trials or Pareto
    members still gets a report with placeholders; a member whose checkpoint folder is missing is listed
    without a breakdown.

    Args:
        run_dir: the run folder a ``python -m nas.search`` run wrote.
        redraw_plots: False keeps each PNG written since the files it is drawn from last changed (drawing them is
            most of a report's cost); one older or missing is drawn. A search passes False when it only marks
            the report as under way or stopped: the run markers change the two pages' text, never the plots.

    Returns:
        ``{file name: path}`` of the five files written (or kept), e.g. ``{"report.html": run_dir / "report.html"}``.

    Raises:
        MissingRunFileError: ``run_dir``, ``trials.csv`` or ``pareto.json`` does not exist.
        ReportInputError: ``pareto.json`` is not a JSON object, or ``trials.csv`` not a readable CSV file.
        TypeError: ``run_dir`` is not a path (a str or a pathlib.Path).
    """
    if not isinstance(run_dir, (str, os.PathLike)):  # pathlib's "expected str, bytes or os.PathLike object, not NoneType"
        shown = repr(run_dir)  # (nas.errors.wrong_type's wording: this module imports nothing of nas at its top)
        raise TypeError(f"run_dir={shown if len(shown) <= 60 else shown[:57] + '...'} is a {type(run_dir).__name__}; pass "
                        "the run folder's path (a str or a pathlib.Path), e.g. SearchResult.run_dir")
    folder = pathlib.Path(run_dir)
    return _write_reports(folder, _load_run(folder), redraw_plots=redraw_plots)


def _write_reports(folder: pathlib.Path, run: _Run, *, redraw_plots: bool = True) -> dict[str, pathlib.Path]:
    """`write_reports` of the run folder `folder`, read as `run`."""
    drawers = {"pareto.png": _pareto_png, "latency_breakdown.png": _breakdown_png, "mixers.png": _mixers_png}
    kept = set() if redraw_plots else _plots_up_to_date(folder, run, drawers)
    # PNGs first so report.md never links to images that are not there yet.
    contents: dict[str, bytes | str] = {name: draw(run) for name, draw in drawers.items() if name not in kept}
    contents |= {"report.md": _render_markdown(run), "report.html": _render_html(run)}
    written = {name: _write_atomic(folder / name, data) for name, data in contents.items()}
    return {name: written.get(name, folder / name) for name in REPORT_FILES}
