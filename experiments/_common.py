"""Helpers shared by the benchmark scripts in experiments/ (run as `python experiments/<name>.py`)."""

from __future__ import annotations

import json
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def one_line_on_failed_write() -> Iterator[None]:
    """Every script's `if __name__ == "__main__":` block runs inside it: a write the disk refused (`DISK_ERRNOS`: a full
    disk or quota, a read-only file system, a file over the size limit, a failing disk), as the OSError itself or inside
    a library's exception around it, ends the script with the toolkit commands' one line on stderr,
    `error: cannot write <file> (<why>); ...`, and exit status `DISK_EXIT` (1). The scripts call the toolkit's
    functions directly (`nas.data.load_dataset` creating data.cache_dir, their results folder), outside the commands
    that say so, and a full disk ended them in a traceback that read as a bug. Any other error is left as it is."""
    from nas.errors import DISK_EXIT, disk_failure, disk_failure_text, exit_with_error

    try:
        yield
    except Exception as e:  # noqa: BLE001 - only a write the disk refused becomes one line
        if (failed := disk_failure(e)) is None:
            raise
        exit_with_error(f"{disk_failure_text(failed)}; fix that (free space, a read-only disk, the file size limit) and "
                        "rerun the same command", code=DISK_EXIT)


def command_line(script: str, argv: list[str] | None = None) -> str:
    """How the benchmark was run, for its results: `python experiments/<script> <args>`, each argument quoted as a
    shell needs it (a Hydra override with spaces or brackets stays one argument). `argv`: the script's arguments
    (default: this process's)."""
    return "python " + shlex.join([f"experiments/{script}", *(sys.argv[1:] if argv is None else argv)])


def compose_run(*overrides: str):
    """The typed `RunConfig` of `python -m nas.search <overrides>`."""
    from nas.config import RunConfig, compose_search_config, structured

    return structured(compose_search_config(overrides), RunConfig)


def compose_latency(*overrides: str):
    """The config of `python -m nas.latency.profile <overrides>` (Hydra's `latency` config: `hw`, `space`, ...)."""
    from hydra import compose, initialize_config_dir

    from nas.latency.profile import CONF_DIR, register_latency_configs

    register_latency_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="latency", overrides=list(overrides))


def write_results(stem: str, result: dict[str, Any], *, render_md: Callable[[dict], str],
                  render_plot: Callable[[dict, Path], None] | None = None, folder: Path = RESULTS,
                  write_json: bool = True) -> None:
    """Write <folder>/<stem>.json, .png (if a plot) and .md (folder: experiments/results), and print the Markdown.
    `write_json=False` (a script's --render): only the .md and .png, the measured .json stays as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    if write_json:
        (folder / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    if render_plot is not None:
        render_plot(result, folder / f"{stem}.png")
    (folder / f"{stem}.md").write_text(render_md(result))
    print((folder / f"{stem}.md").read_text())
