"""The searches' run markers in a run folder (`RUN_MARKER_PREFIX`): which searches have not finished, in
words, and the setup warnings they recorded; and the writer's tag in the names of temporary files."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
from collections.abc import Sequence
from typing import Any

RUN_MARKER_PREFIX = ".running."
"""A search writes `<run folder>/.running.<pid>@<host>~<pid namespace>` (JSON: started, host, pid, pid_namespace,
setup_warnings: its warnings about its setup, as pareto.json's, and pareto_created: the `created` of the pareto.json it
found) when it starts and removes it just before it writes its final report: one left behind is a run that is still
going or was killed, and the report says so at its top (its tables describe the state before that run) and lists that
run's setup warnings, not those of the run that wrote pareto.json (unless that one wrote it after the marker's run
started: a worker that finished beside it, whose own are listed first). A
search that stops on its own before that (a one-line error, Ctrl-C or SIGTERM outside the trials) adds `stopped`: why, in one
line."""


# The helpers below repeat nas.checkpoint's on purpose: this module imports nothing from nas (see nas.report's docstring).
def _pid_namespace() -> str | None:
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or None
    except OSError:
        return None


def _process_gone(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _writer_tag() -> str:
    # nas.checkpoint.writer_tag: the search's cleanup (remove_dead_writers_temps) reads it in the temporary files' names
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "_"
    return f"{os.getpid()}@{host}~{_pid_namespace() or '-'}"


def _read_markers(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The run markers of `run_dir` (`RUN_MARKER_PREFIX`) in name order, each a JSON object with started, pid and host;
    one half-written by a worker starting right now, or not ours, is left out."""
    marks = []
    for path in sorted(run_dir.glob(RUN_MARKER_PREFIX + "*")):
        try:
            mark = json.loads(path.read_text())
            if isinstance(mark, dict) and all(key in mark for key in ("started", "pid", "host")):
                marks.append(mark)
        except (OSError, ValueError):
            continue
    return marks


def _markers_warnings(marks: Sequence[dict[str, Any]]) -> list[str] | None:
    """The setup warnings the searches of `marks` recorded as they started, each once, one line each (as
    `_setup_warnings`); None when none of them recorded any (no marker, or only markers of older versions)."""
    recorded = [mark["setup_warnings"] for mark in marks if isinstance(mark.get("setup_warnings"), list)]
    if not recorded:
        return None
    return list(dict.fromkeys(" ".join(str(w).splitlines()) for warnings in recorded for w in warnings if w))


def _written_since(header: dict[str, Any], marks: Sequence[dict[str, Any]]) -> bool:
    """Whether pareto.json (`header`) was written after each search of `marks` started: a marker records the `created`
    of the pareto.json its search found then (`pareto_created`, None when there was none), so another one means a
    search that finished meanwhile (a worker of the same study) wrote it. False for markers of older versions."""
    created = header.get("created")
    return bool(marks) and isinstance(created, str) and all(
        "pareto_created" in mark and mark["pareto_created"] != created for mark in marks)


def _marker_state(mark: dict[str, Any]) -> str:
    """What a run marker (`_read_markers`) says of its search: "stopped" (it ended on its own and recorded why in
    `stopped`), "gone" (a search of this machine whose process is gone: killed or crashed), else "running" (or of
    another machine, which cannot be checked from here)."""
    if isinstance(mark.get("stopped"), str):
        return "stopped"
    here = mark.get("host") == socket.gethostname() and mark.get("pid_namespace") == _pid_namespace()
    return "gone" if here and _process_gone(mark.get("pid")) else "running"


def _unfinished_before(name: str, marks: Sequence[dict[str, Any]]) -> str:
    """': the search started ... (pid N on host) was killed or crashed before it wrote pareto.json (its process is gone):
    rerun the search command to resume it, or' for a run file `name` that is missing while the run markers `marks`
    (`_read_markers`) show a search that has not finished (stopped, killed, or running); '' when none do."""
    parts = []
    for mark in marks:
        who = f"the search started {mark['started']} (pid {mark['pid']} on {mark['host']})"
        if (state := _marker_state(mark)) == "stopped":
            parts.append(f"{who} stopped before it wrote {name}: {mark['stopped'].rstrip('.')}")
        elif state == "gone":
            parts.append(f"{who} was killed or crashed before it wrote {name} (its process is gone)")
        else:
            parts.append(f"{who} has not written {name} yet (it writes it when it ends; if that process is no longer "
                         "running, it was killed or crashed)")
    if not parts:
        return ""
    return f": {'; '.join(parts)}: rerun the search command to resume a stopped search, or"


def _unfinished_text(marks: Sequence[dict[str, Any]]) -> str:
    """What the run markers `marks` (`_read_markers`) say: searches still running, or stopped without finishing (a marker
    that says why, or whose process is gone on this machine); '' when there are none. The text must stay true if the
    search is killed after writing it: a report written by a search as it starts is not rewritten then."""
    parts = []
    for mark in marks:
        who = f"started {mark['started']} (pid {mark['pid']} on {mark['host']})"
        if (state := _marker_state(mark)) == "stopped":  # it ended on its own (a one-line error, Ctrl-C, SIGTERM), said why
            parts.append(f"A search {who} stopped before it finished: {mark['stopped'].rstrip('.')}.")
        elif state == "gone":
            parts.append(f"A search {who} stopped before it finished (killed or crashed: its process is gone).")
        else:
            parts.append(f"A search {who} has not finished (if that process is no longer running, it was killed or "
                         "crashed).")
    if not parts:
        return ""
    return (" ".join(parts) + f" What follows is the state before {'it' if len(parts) == 1 else 'them'}: rerun the same "
            "command to resume a stopped search; a running one rewrites this report when it ends.")
