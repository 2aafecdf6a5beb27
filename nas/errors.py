"""Errors the toolkit raises for bad input.

Each carries a one-line message that names the offending value and what is allowed; the command-line
entry points print that line and exit instead of showing a stack trace.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class NasError(Exception):
    """Base class of every user-facing error of metaformer-nas."""


class ConfigError(NasError, ValueError):
    """A configuration value (architecture, search space, hardware profile, run option) is invalid."""


class DataError(NasError):
    """A dataset is missing, unreadable or inconsistent."""


class CheckpointError(NasError):
    """A checkpoint is missing, truncated, corrupt or of an unknown format."""


@contextmanager
def exit_on_error(code: int = 2) -> Iterator[None]:
    """For command-line entry points: a `NasError` becomes `error: <message>` on stderr and exit `code`."""
    try:
        yield
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(code)
