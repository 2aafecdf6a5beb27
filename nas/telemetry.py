"""OpenVINO's usage statistics kept off the toolkit's own OpenVINO and NNCF calls unless the user opted in to them.

OpenVINO's telemetry (package `openvino_telemetry`) sends a message to Google Analytics on `import openvino` (which
imports its converter; `import nncf` imports openvino), several on each `ov.convert_model`, and NNCF's on each
`nncf.quantize`: wherever no consent file (`~/intel/openvino_telemetry`) says otherwise, since OpenVINO and NNCF make
their telemetry with no opt-in dialog.
Each message goes from a thread pool to a process that thread forks to post it; on a machine without internet one such
child deadlocked in the resolver on a lock held at the fork, ignored SIGTERM, and outlived the test run that made it.
`openvino_telemetry_off` drops every message sent during a block unless the consent file says the user opted in
(`opt_in_out --opt_in` writes "1" there), and leaves the library as it was after the block.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["openvino_telemetry_off", "openvino_telemetry_opted_in"]


def openvino_telemetry_opted_in() -> bool:
    """Whether the user opted in to OpenVINO's telemetry explicitly: its consent file says so ("1", as
    `opt_in_out --opt_in` writes it). No file, "0", an unreadable file or no `openvino_telemetry` installed: False."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

        return OptInChecker().check(enable_opt_in_dialog=False) == ConsentCheckResult.ACCEPTED
    except Exception:  # not installed, or a version with another API: nothing says the user opted in
        return False


def _unsent(self: Any, backend: Any, message: Any) -> None:
    """`TelemetrySender.send` while a block of `openvino_telemetry_off` runs: the message is dropped, so no thread of
    the sender's pool starts and no process is forked to post it."""


class _Withheld:
    """How many `openvino_telemetry_off` blocks run now, in any thread, and the `TelemetrySender.send` they replaced:
    the first to enter replaces it, the last to leave puts it back, so blocks that overlap in threads leave it right."""

    lock = threading.Lock()
    depth = 0
    send: Any = None


@contextmanager
def openvino_telemetry_off() -> Iterator[None]:
    """Wrap the toolkit's calls into OpenVINO and NNCF (`import openvino`, `import nncf`, `ov.convert_model`,
    `nncf.quantize`): unless the user opted in (`openvino_telemetry_opted_in`, read as the block starts), every
    telemetry message sent during the block is dropped, so the block sends nothing and starts no thread or process to
    send it. The consent file, the environment and the library's own state are left as they are: after the block
    OpenVINO sends what it would have sent without the toolkit (the caller's own conversions included). Messages sent
    meanwhile by other threads of the process are dropped too (the library's sender is one per process). With the user
    opted in, or no `openvino_telemetry` installed (OpenVINO then sends nothing), it does nothing."""
    try:
        from openvino_telemetry.utils.sender import TelemetrySender
    except Exception:  # not installed, or another layout: OpenVINO's converter then uses a stub that sends nothing
        yield
        return
    if openvino_telemetry_opted_in() or not callable(getattr(TelemetrySender, "send", None)):
        yield
        return
    # Dropped at the sender, the one place every message of the library passes through (OpenVINO's and NNCF's share it):
    # the library decides consent once per `Telemetry` set-up, which a conversion may or may not repeat, and reads CI=true
    # only then, so neither the consent nor the environment can be switched for one call alone.
    with _Withheld.lock:
        if _Withheld.depth == 0:
            _Withheld.send = TelemetrySender.__dict__.get("send")
            TelemetrySender.send = _unsent
        _Withheld.depth += 1
    try:
        yield
    finally:
        with _Withheld.lock:
            _Withheld.depth -= 1
            if _Withheld.depth == 0:
                if _Withheld.send is None:  # inherited, not the class's own: remove ours to uncover it
                    del TelemetrySender.send
                else:
                    TelemetrySender.send = _Withheld.send
                _Withheld.send = None
