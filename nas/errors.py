"""Errors the toolkit raises for bad input.

Each carries a one-line message that names the offending value and what is allowed; the command-line
entry points print that line and exit instead of showing a stack trace.
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of every user-facing error of metaformer-nas."""


class ConfigError(NasError, ValueError):
    """A configuration value (architecture, search space, hardware profile, run option) is invalid."""


class DataError(NasError):
    """A dataset is missing, unreadable or inconsistent."""


class CheckpointError(NasError):
    """A checkpoint is missing, truncated, corrupt or of an unknown format."""
