"""The calling thread's alternate signal stack, kept as it was across OpenVINO's CPU plugin (Linux).

Every signal handler CPython installs (SIGINT's, `signal.signal`'s, faulthandler's) runs on the thread's alternate
signal stack (SA_ONSTACK). OpenVINO's CPU plugin, created by a `Core`'s first use of the CPU device (`compile_model`,
`available_devices`), makes a stack of its own the calling thread's, remembering the one before; when the plugin is
freed it puts back that one if its own is still in place, and unmaps its own in every case. Two plugins freed in the
order they were made (a runner replaced by the next one in a loop, two runners alive in one function) leave the thread
on the first plugin's unmapped stack: the next signal handled by Python ended the process with SIGSEGV (Ctrl-C; a
notebook's interrupt, a SIGINT: a dead kernel instead of a search stopped with its trials kept), and had the address
been mapped again meanwhile, the kernel would write the signal's frame over whatever lives there. `signal_stack_kept`
puts the thread's stack back as soon as the plugin is made, so no plugin's stack is ever in use when it is freed.
"""

from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["signal_stack", "signal_stack_kept"]

_SS_DISABLE = 2


class _Stack(ctypes.Structure):
    """`stack_t` (sigaltstack(2)) as glibc and musl lay it out on Linux."""
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack(new: _Stack | None) -> _Stack:
    """sigaltstack(2) of the calling thread: sets `new` (None: only reads) and returns the stack before."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = _Stack()
    if libc.sigaltstack(ctypes.byref(new) if new is not None else None, ctypes.byref(old)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return old


def signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack as (address, size, flags); flags 2 (SS_DISABLE) where it has none.
    None where the platform has no sigaltstack of Linux's kind (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    s = _sigaltstack(None)
    return (s.ss_sp or 0, s.ss_size, s.ss_flags)


@contextmanager
def signal_stack_kept() -> Iterator[None]:
    """Wrap the making of OpenVINO objects (`Core.compile_model`, which makes the Core's CPU plugin): as the block
    leaves, the calling thread's alternate signal stack is put back to the one it had before the block, so the plugin's
    own (see the module's docstring) is out of use before the plugin can be freed, and freeing plugins in whatever order
    never leaves the thread on unmapped memory. Does nothing where the stack did not change, and off Linux; where the
    stack cannot be read or set (a sandbox refusing sigaltstack, a C library without it) it does nothing either: the
    block runs, and its exceptions pass, as without it."""
    before = _stack_or_none()
    try:
        yield
    finally:
        if before is not None and _stack_or_none() not in (before, None):
            sp, size, flags = before
            # the kernel refuses a stack smaller than the signal frame now needs (ENOMEM, a CPU state the plugin turned
            # on): OpenVINO's then stays in place, as it would without this
            try:
                _sigaltstack(_Stack(sp if not flags & _SS_DISABLE else None, flags & _SS_DISABLE, size))
            except Exception:  # noqa: BLE001 - as below: an OSError, or ctypes' own; the model is made all the same
                pass


def _stack_or_none() -> tuple[int, int, int] | None:
    """`signal_stack()`, or None where it cannot be read: a seccomp filter refusing sigaltstack (EPERM, ENOSYS), a C
    library without it (AttributeError from ctypes). Keeping the stack is a safeguard around OpenVINO's compile; its
    failing must not fail the compile, nor replace the compile's own exception."""
    try:
        return signal_stack()
    except Exception:  # noqa: BLE001 - whatever ctypes or libc raise, the compile goes on
        return None
