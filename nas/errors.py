"""Errors the toolkit raises for bad input.

Each carries a one-line message that names the offending value and what is allowed; the command-line
entry points print that line and exit instead of showing a stack trace.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager, redirect_stdout, suppress
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn


class NasError(Exception):
    """Base class of every user-facing error of metaformer-nas."""


class ConfigError(NasError, ValueError):
    """A configuration value (architecture, search space, hardware profile, run option) is invalid."""


class DataError(NasError):
    """A dataset is missing, unreadable or inconsistent."""


class CheckpointError(NasError):
    """A checkpoint is missing, truncated, corrupt or of an unknown format."""


def readable_text(text: str) -> str:
    """`text` (a file name, or a line or file naming one) in characters UTF-8 can write: each byte of a file name that
    is not UTF-8 (Latin-1 from an old zip, on Linux), which Python holds as a lone surrogate (`os.fsdecode`'s
    surrogateescape: b'caf\\xe9.png' is 'caf\\udce9.png'), written as the four characters `\\xNN` (`caf\\xe9.png`, as
    `ascii()` shows a byte; each `\\xNN` read back as the byte NN gives the name's bytes); any other lone surrogate as
    `\\uNNNN`. Text without them comes back as it is. CSV files, the report's HTML and log lines that name a file go
    through it: `str.encode()` raised UnicodeEncodeError on such a name, and a log handler printed a traceback."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_escaped, text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def readable_repr(name: str) -> str:
    """`repr(name)`, quoted as a warning quotes a class name ('cat'), with each byte of a name that is not UTF-8 written
    as `readable_text` writes it, `\\xNN`: repr() gave Python's lone surrogate, 'caf\\udce9', where the rest of the
    toolkit (a file's name, the CSV files, the report) writes caf\\xe9."""
    shown = repr(name)
    return shown if name.isascii() else _REPR_SURROGATE.sub(_repr_escaped, shown)


# In repr()'s text each backslash begins an escape: a backslash of the name's own is the pair "\\\\", matched first so
# that a name holding the characters "\\udce9" is not taken for the escape of a byte.
_REPR_SURROGATE = re.compile(r"\\\\|\\udc([89a-f][0-9a-f])")


def _repr_escaped(found: re.Match[str]) -> str:
    return f"\\x{found[1]}" if found[1] else found[0]


class ReadableNames(logging.Filter):
    """A logger's filter that gives each record naming a file whose name is not UTF-8 its message as `readable_text`
    writes it, formatted once (`record.msg`, no `record.args`). Every handler the record reaches then writes it: a
    stream or file of strict UTF-8 (Hydra's console on stdout or stderr in a UTF-8 locale, search.log) raised
    UnicodeEncodeError on the name and logging printed its many-line "--- Logging error ---" instead of the line, and the
    warnings a run keeps for pareto.json and its report hold the same line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message (a bug): left to logging's own report
            return True
        if not message.isascii() and (readable := readable_text(message)) != message:
            record.msg, record.args = readable, None
        return True


def module_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with a `ReadableNames` filter (added once): the logger of a module whose lines may name
    an image file."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ReadableNames) for f in logger.filters):
        logger.addFilter(ReadableNames())
    return logger


def wrong_type(name: str, value: Any, expected: str) -> TypeError:
    """The one-line `TypeError` for a public function's argument `name` given `value` of the wrong type: its value (cut
    to 60 characters) and type, then `expected`, what to pass and how to make it (e.g. "pass an ArchConfig (build one
    with ArchConfig.from_dict(...))"). Python's own ("expected str, bytes or os.PathLike object, not NoneType") named
    neither the argument nor what the toolkit takes there."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    kind = type(value).__name__
    return TypeError(f"{name}={shown} is {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}; {expected}")


def require_path(value: Any, name: str) -> Path:
    """`value` as a `Path` when it is a str or an `os.PathLike`, else `wrong_type`'s one-line `TypeError` naming `name`."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise wrong_type(name, value, "pass a path (a str or a pathlib.Path)")


class Terminated(KeyboardInterrupt):
    """The KeyboardInterrupt that `stop_on_sigterm` raises on SIGTERM (and `preemption_stops` on SIGUSR1/SIGUSR2, its
    `signum`): caught wherever Ctrl-C is, and told apart only where the exit code says which signal stopped the run
    (128 + 15 = 143 rather than Ctrl-C's 130)."""

    def __init__(self, *args: object, signum: int = signal.SIGTERM) -> None:
        super().__init__(*args)
        self.signum = signal.Signals(signum)


def interrupting_signal(e: KeyboardInterrupt) -> signal.Signals:
    """The signal that stopped a command with `e`: SIGTERM (or the `signum` it carries) for `Terminated`, SIGINT
    (Ctrl-C) for any other KeyboardInterrupt. A command stopped by one exits with 128 + its number, as the shell reports
    death by it (130 after Ctrl-C, 143 after SIGTERM): a scheduler or supervisor reads from it whether the job was
    stopped from outside."""
    return getattr(e, "signum", signal.SIGTERM) if isinstance(e, Terminated) else signal.SIGINT


def interruption_text(*, stopped_by: signal.Signals, again: bool = False) -> str:
    """What stopped a command, for a record read later (a search's run marker, and the report that quotes it) and for
    the lines saying so: "interrupted (Ctrl-C)" for SIGINT, "stopped by SIGTERM" for SIGTERM (a scheduler's time limit,
    `kill`): which of the two it was tells a user who pressed nothing what to look at. `again`: a second stop, after a
    first ("interrupted again (Ctrl-C)", "stopped again by SIGTERM")."""
    if stopped_by == signal.SIGINT:
        return f"interrupted{' again' if again else ''} (Ctrl-C)"
    return f"stopped{' again' if again else ''} by {signal.Signals(stopped_by).name}"


PREEMPTION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2") if hasattr(signal, name))
"""The signals a batch scheduler sends a job shortly before its time limit or preemption, where asked to: SLURM's
`--signal=USR2@<s>`, which submitit asks for (SIGUSR2 `<s>` seconds before the limit: submitit's own default 90,
hydra-submitit-launcher's `hydra.launcher.signal_delay_s` default 120), or a batch script's `--signal=USR1@60`.
At their default they kill the process at once; the commands take them as SIGTERM (`stop_on_sigterm`,
`interrupts_honoured`), and a search hands them on to a scheduler's handler once its files are written
(`preemption_stops`)."""


def set_outside_python(signum: int) -> bool:
    """Whether the process's handler for `signum` is one set in C that Python reports as SIG_DFL
    (`faulthandler.register(signal.SIGUSR1)`'s stack dump): taking the signal over and putting SIG_DFL back on leaving
    would make its next arrival kill the process. Asked of the C library (`sigaction`), as Python keeps no record of
    it; where that cannot be asked (no C library found), False."""
    if signal.getsignal(signum) != signal.SIG_DFL:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        held = ctypes.create_string_buffer(512)  # a struct sigaction, its handler first (Linux, macOS)
        if libc.sigaction(signum, None, held) != 0:
            return False
        return ctypes.c_void_p.from_buffer(held).value not in (None, 0)
    except (OSError, AttributeError, ValueError):
        return False


def _raise_interrupt(signum: int, frame: Any) -> None:
    """The handler `stop_on_sigterm` and `interrupts_honoured` set: `signal_interrupt(signum)` raised where the signal
    strikes. One function, so that `preemption_stops` tells it from a handler of the process's own to hand a signal on
    to (raising the signal again for it would only stop the command a second time)."""
    raise signal_interrupt(signum)


def stop_on_sigterm() -> None:
    """SIGTERM (SLURM's preemption and time limit, `kill`, systemd) stops the command as Ctrl-C does, by raising
    `Terminated` (a KeyboardInterrupt) where it strikes, instead of the process dying at once: whatever cleans up after
    Ctrl-C (a search failing its running trial and queueing it for the rerun, a temporary file deleted, the one line
    saying how to rerun) runs for it too. So do SIGUSR1 and SIGUSR2 (`PREEMPTION_SIGNALS`) where they are at their
    default, which killed the process at once; a handler of the process's own for them (submitit's, faulthandler's)
    is kept. Here, not
    in nas.search: compress.run and nas.report install it too, and nas.search imports torch and Optuna (seconds at every
    start)."""
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        for signum in PREEMPTION_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_DFL and not set_outside_python(signum):
                signal.signal(signum, _raise_interrupt)
    except ValueError:  # not the main thread (a launcher running the job in a thread): leave the default
        pass


def signal_interrupt(signum: int) -> KeyboardInterrupt:
    """What the signal `signum` raises where a command takes it: a plain KeyboardInterrupt for SIGINT (Ctrl-C),
    `Terminated` carrying `signum` for any other (SIGTERM, as `stop_on_sigterm` raises; SIGUSR1/SIGUSR2)."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum=signum)


@contextmanager
def preemption_stops(log: logging.Logger) -> Iterator[Callable[[int | None], None]]:
    """While the block runs, SIGUSR1 and SIGUSR2 (`PREEMPTION_SIGNALS`) stop it as SIGTERM does, by raising `Terminated`
    carrying the signal, instead of killing the process (their default) or running the handler of Python's the process
    had for them where it struck: submitit's requeues its job and calls sys.exit from inside the handler, which cut the
    search off with its running trial left RUNNING and the run's files unwritten. The callable yielded,
    `hand_on(signum)`, is called once the work's files are written with the signal that stopped it (None: none did):
    for one of these, it puts the earlier handlers back and, where the one for `signum` was Python's (not
    `stop_on_sigterm`'s, which stops as this does), logs a line on `log` and raises the signal again for it
    (submitit's then requeues the job, which resumes the study, and exits). A signal ignored, or handled outside
    Python, is left as it is; the handlers before are restored on leaving (no lasting state)."""
    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum=signum)

    previous: dict[int, Any] = {}
    try:
        for signum in PREEMPTION_SIGNALS:
            if ((handler := signal.getsignal(signum)) is not None and handler is not signal.SIG_IGN
                    and not set_outside_python(signum)):
                previous[signum] = signal.signal(signum, stop)
    except ValueError:  # not the main thread (a launcher running the job in a thread): signals cannot reach it
        pass

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def hand_on(signum: int | None) -> None:
        if signum is None or signum not in previous:
            return
        restore()
        if callable(previous[signum]) and previous[signum] is not _raise_interrupt:
            log.warning("%s: the run's files are written; handing the signal on to the process's own handler for it "
                        "(a job scheduler's, which may requeue the job)", signal.Signals(signum).name)
            signal.raise_signal(signum)  # the handler runs here, in this thread, as for the signal itself

    try:
        yield hand_on
    finally:
        restore()


@contextmanager
def interrupts_honoured() -> Iterator[None]:
    """While the block runs, Ctrl-C (SIGINT) and SIGTERM stop it by raising where they strike (`signal_interrupt`), as
    Ctrl-C at a terminal does, also where the process has no handler of Python's for them (SIGUSR1 and SIGUSR2 too,
    where at their default, which killed the process at once; an ignored one stays ignored): a command started as a
    background job of a script (`sh -c 'python -m compress.run ... &'`) inherits SIGINT ignored, and went on to its end
    as if `kill -INT` had not been sent; a library caller's SIGTERM, at its default, killed the process at once, with no
    cleanup and no line. The command then keeps what it finished, as after Ctrl-C. A handler of Python's
    (`stop_on_sigterm`'s, a notebook's, a search's `_interrupts_at_safe_points` inside) is left as it is; the handlers
    before are restored on leaving (no lasting state). Here, not in nas.search: compress.run, compress.predict and the
    latency tools use it too."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS):
            handler = signal.getsignal(signum)
            if signum in PREEMPTION_SIGNALS and (handler != signal.SIG_DFL or set_outside_python(signum)):
                continue  # one ignored on purpose stays so, as does faulthandler's
            if not callable(handler):  # SIG_IGN, SIG_DFL, or one set outside Python (None)
                previous[signum] = signal.signal(signum, _raise_interrupt)
    except ValueError:  # not the main thread (a launcher running the job in a thread): signals cannot reach it
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def counted(n: int, noun: str, *, plural: str | None = None) -> str:
    """`n` and `noun` in the number it takes: '1 trial', '0 trials', '1,200 images' (`plural` where it is not noun + 's',
    e.g. 'classes'), for lines whose count may be 1 ('1 trials finished' read as a slip)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def exit_with_error(message: str, *, code: int = 2) -> NoReturn:
    """For command-line entry points: `error: <message>` on stderr, one line, and exit `code` (SystemExit, 2 for bad
    input), as every command of the toolkit refuses its input (`exit_on_error` for a `NasError`); a file name that is
    not UTF-8 in it as `readable_text` shows it."""
    print(f"error: {readable_text(message)}", file=sys.stderr)
    sys.exit(code)


@contextmanager
def exit_on_error(code: int = 2) -> Iterator[None]:
    """For command-line entry points: a `NasError` becomes `error: <message>` on stderr and exit `code` (a file name
    that is not UTF-8 in it as `readable_text` shows it, as in the warnings)."""
    try:
        yield
    except NasError as e:
        exit_with_error(str(e), code=code)


# The exit status of a command that a closed stdout ends: 128 + SIGPIPE, what a shell shows for one killed by the signal
# (`yes | head -1`), which Python ignores to raise BrokenPipeError instead.
CLOSED_STDOUT_EXIT = 128 + signal.SIGPIPE


class _ClosedStdoutGuard:
    """`sys.stdout` inside `closed_stdout_ends_quietly`: writes and flushes go to the stream it wraps; the first that
    finds the reader gone points the stream's file at devnull (Python's recipe in the signal module's docs), so that
    this write and every later one, a flush at exit included, succeed unread instead of raising BrokenPipeError."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        finally:
            os.close(devnull)
        self.reader_gone = True
        self.stream.flush()  # what the stream still held, gone the same way (devnull takes it)

    def __getattr__(self, name: str) -> Any:  # the rest (fileno, isatty, encoding, buffer) is the stream's
        return getattr(self.stream, name)


@contextmanager
def closed_stdout_ends_quietly() -> Iterator[None]:
    """For command-line entry points: a reader of stdout that goes away before the command is done
    (`python -m nas.report <run> | head -1`, `python -m nas.search ... | head -3`) loses the command its output, not
    its work. What is printed after goes nowhere, the command runs to its end (the search its trials and files,
    compress.predict its --csv) with its lines on stderr as they were, and it exits with `CLOSED_STDOUT_EXIT`, as a
    shell tool that SIGPIPE ends, where it would have exited 0; an exit status of its own (an error's 1 or 2, Ctrl-C's
    130) is kept. Without it the first write after the reader was gone raised BrokenPipeError: a traceback (inside
    Hydra, printed as its error, exit 1), every log line a "--- Logging error ---" traceback on stderr, or "Exception
    ignored ... BrokenPipeError" at exit. Nested blocks (a help printed inside a command's) leave the end to the
    outermost."""
    # None: stdout closed before the start (`>&-`), where print() writes nothing; a guard's own: the outer one ends it
    if sys.stdout is None or isinstance(sys.stdout, _ClosedStdoutGuard):
        yield
        return
    guard = _ClosedStdoutGuard(sys.stdout)
    sys.stdout = guard  # type: ignore[assignment]  # Hydra's log handler on stdout, set up inside the block, takes it too
    try:
        try:
            yield
        finally:
            guard.flush()  # what the block printed reaches the pipe now, while a closed one is still caught
            sys.stdout = guard.stream
    except SystemExit as e:
        if guard.reader_gone and not e.code:
            raise SystemExit(CLOSED_STDOUT_EXIT) from None
        raise
    if guard.reader_gone:
        raise SystemExit(CLOSED_STDOUT_EXIT)


@contextmanager
def help_on_stdout() -> Iterator[None]:
    """For command-line entry points printing their help (or config): what the block prints reaches stdout when it
    ends (also by `sys.exit`, as Hydra's help does), in one write. A reader that closed stdout early
    (`--help | head -3`) ends the command quietly with exit status `CLOSED_STDOUT_EXIT` (`closed_stdout_ends_quietly`),
    not with a BrokenPipeError traceback: Hydra's help wrote in parts, and one written after the reader was gone raised
    inside Hydra, which printed it as a stack trace."""
    printed = io.StringIO()
    with closed_stdout_ends_quietly():
        try:
            with redirect_stdout(printed):
                yield
        finally:
            sys.stdout.write(printed.getvalue())


class RecordKeeper(logging.Handler):
    """A handler that keeps records out of the user's sight (a run's log file, warnings held for it). For Python's
    no-handler rule it is not one: where a record meets no other handler, its warnings still reach stderr
    (`logging.lastResort`) as they would without it, so a script or notebook with no logging setup is warned."""


class BelowWarning(logging.Filter):
    """The filter of the Hydra commands' stdout log handler (conf/hydra/job_logging/terminal.yaml): only the records
    under WARNING pass, as the handler beside it on stderr takes the warnings and errors. Each line is then written
    once, and a command's stderr (`2>err.log`, a CI job's) holds all its warnings: they were on stdout alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class LogFileOnly(logging.Filter):
    """The filter of the Hydra commands' console log handlers (conf/hydra/job_logging/terminal.yaml): a record logged
    with `extra={"log_file_only": True}` is kept for the log file (search.log) and not shown, because the command's
    last stderr line says the same (the search's "stopped before it finished: <reason>" beside its `error:` line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "log_file_only", False)


class _PassedOn(logging.Handler):
    """Stands in for a logger's own handlers and its propagation while `logging_to` has lowered the logger to INFO: a
    record reaching it goes on to the handlers it met before the block (`_handlers_met`), each at its own level, the
    user's only when the record is at a level the logging setup let through without the blocks
    (`_level_without_blocks`), the blocks' (on another lowered logger up the chain) always. The blocks' INFO lines thus
    reach their handlers, not the console of a user whose logging setup shows warnings only."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.level_before = logger.level  # NOTSET: its parent's
        self.propagated = logger.propagate
        self.own = list(logger.handlers)  # the logger's handlers before the block

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        origin = logging.root.manager.loggerDict.get(record.name)  # the logger the record was made by
        origin = origin if isinstance(origin, logging.Logger) else self.logger
        shown = record.levelno >= _level_without_blocks(origin)
        # whether the record meets a handler, for Python's no-handler rule (below): on a logger it passed on its way
        # here or from here on, a block's RecordKeeper left out, one a stand-in passes on to counted as Python did before
        found = any(not isinstance(h, RecordKeeper) for lg in _loggers_between(origin, self.logger) for h in lg.handlers)
        for logger, handler, users in _handlers_met(self.logger, self):
            found = found or not isinstance(handler, RecordKeeper) or (users and _passed_on(logger) is not None)
            # the handlers beside this stand-in on its logger (the blocks') get the record from Python itself
            if (shown if users else logger is not self.logger) and record.levelno >= handler.level:
                handler.handle(record)
        # Without a logging setup Python shows warnings on stderr (logging.lastResort) where a record meets no handler;
        # a block's RecordKeeper counts as one for Python, so that is done here: a notebook calling run_search saw none
        if not found and shown and logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


def _handlers_met(logger: logging.Logger, stand_in: _PassedOn | None = None
                  ) -> Iterator[tuple[logging.Logger, logging.Handler, bool]]:
    """The handlers a record of `logger` meets from there on as the logging setup had them without the `logging_to`
    blocks, each with its logger and whether it is the user's (given what their setup let through) rather than a
    block's (given every record). On a logger a block lowered, its stand-in (the `_PassedOn` among its handlers;
    `stand_in` on `logger`, the one at work there: a logger lowered again after the user raised its level in a block has
    two) is read as the handlers it passes on to, the user's, and the propagation it had; the handlers beside it are the
    blocks'. On any other logger each handler is the user's but for the blocks' own."""
    chain: logging.Logger | None = logger
    while chain is not None:
        passed_on = stand_in if chain is logger and stand_in is not None else _passed_on(chain)
        for handler in passed_on.own if passed_on is not None else ():
            yield chain, handler, True
        for handler in chain.handlers:
            if handler is not passed_on:
                yield chain, handler, passed_on is None and not _blocks_own(handler)
        chain = chain.parent if (passed_on.propagated if passed_on is not None else chain.propagate) else None


def _loggers_between(origin: logging.Logger, logger: logging.Logger) -> list[logging.Logger]:
    """The loggers a record made by `origin` passes before it reaches `logger` by propagation (`origin` first, `logger`
    left out); none where it does not reach `logger`."""
    between: list[logging.Logger] = []
    chain: logging.Logger | None = origin
    while chain is not None and chain is not logger:
        between.append(chain)
        chain = chain.parent if chain.propagate else None
    return between if chain is logger else []


def _passed_on(logger: logging.Logger) -> _PassedOn | None:
    """The `_PassedOn` of a logger that a `logging_to` block lowered, or None."""
    return next((h for h in logger.handlers if isinstance(h, _PassedOn)), None)


def _level_without_blocks(logger: logging.Logger) -> int:
    """`logger`'s effective level with the levels the `logging_to` blocks lowered read as they were before. Read at each
    record, not kept from a block's start: a level the user sets during the block counts."""
    chain: logging.Logger | None = logger
    while chain is not None:
        passed_on = _passed_on(chain)
        level = passed_on.level_before if passed_on is not None else chain.level
        if level:
            return level
        chain = chain.parent
    return logging.NOTSET


def _loggers_below(loggers: list[logging.Logger]) -> list[logging.Logger]:
    """The loggers made so far that lie below one of `loggers` (a descendant, not the logger itself)."""
    made = [lg for lg in list(logging.root.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    return [lg for lg in made if any(_is_below(lg, above) for above in loggers)]


def _is_below(logger: logging.Logger, above: logging.Logger) -> bool:
    chain = logger.parent
    while chain is not None and chain is not above:
        chain = chain.parent
    return chain is above


# Held while a `logging_to` block changes loggers or puts them back: two threads entering at once would both lower one
# logger, and the second would then keep the first one's INFO as the level to put back.
_LOGGERS_CHANGING = threading.Lock()
# The handlers the `logging_to` blocks running now gave their loggers, one entry per block, changed under the lock above:
# a logger a block lowered below one it did not (a user's WARNING on "nas.search", their INFO on "nas") passes its
# records on to them all, and to the user's handlers there only what the user's setup let through.
_BLOCKS_HANDLERS: list[logging.Handler] = []


def _blocks_own(handler: logging.Handler) -> bool:
    """Whether `handler` is one a running `logging_to` block gave its loggers."""
    return any(handler is h for h in _BLOCKS_HANDLERS)


@contextmanager
def logging_to(handler: logging.Handler, *names: str) -> Iterator[None]:
    """While the block runs, the named loggers also send their records to `handler`, at INFO at least; as they were
    afterwards (also after an exception). A logger quieter than INFO (as Python leaves them without a logging setup, or
    `logging.basicConfig(level=logging.WARNING)` does), or one below them set quieter itself (a user's WARNING on
    "nas.search"), is set to INFO for the block, so that `handler` gets its INFO lines, but the records it did not let
    through before reach no other handler: its own handlers, those up its chain (the root's console) and those of the
    loggers below it (a user's on "nas.search", whose logger is lowered and stood in for with it) get what they got
    before (`_PassedOn`). A logger at INFO already, as inside another block for it, only gains `handler`. Blocks nest;
    of blocks that overlap on a logger without nesting (threads), the one that lowered it puts it back on leaving, and
    the others' handlers then get what the logger lets through."""
    loggers = [logging.getLogger(name) for name in names]
    lowered: list[_PassedOn] = []
    with _LOGGERS_CHANGING:
        quiet = [lg for lg in loggers if lg.getEffectiveLevel() > logging.INFO]
        # the quiet loggers below the named ones: with a level of their own (a user's WARNING on "nas.search"), which
        # kept their INFO lines from `handler`, and with handlers of their own (a user's on "nas.search"), which would
        # get the INFO lines the user's setup kept from them once lowered with the logger above, so stood in for likewise
        below = [lg for lg in _loggers_below(loggers) if (lg.level or lg.handlers) and lg.getEffectiveLevel() > logging.INFO]
        for lg in dict.fromkeys([*quiet, *below]):  # each once, levels read before any is changed
            passed_on = _PassedOn(lg)
            lowered.append(passed_on)
            lg.handlers[:] = [passed_on]
            lg.propagate = False
            lg.setLevel(logging.INFO)
        for lg in loggers:
            lg.addHandler(handler)
        _BLOCKS_HANDLERS.append(handler)
    try:
        yield
    finally:
        with _LOGGERS_CHANGING:
            for lg in loggers:
                lg.removeHandler(handler)
            _BLOCKS_HANDLERS.remove(handler)  # one entry: a handler in two nested blocks stays for the outer one
            for passed_on in reversed(lowered):
                lg = passed_on.logger
                # its handlers from before first, then any added during the block (by another block) still there
                lg.handlers[:] = [*passed_on.own, *(h for h in lg.handlers if h is not passed_on and h not in passed_on.own)]
                lg.propagate = passed_on.propagated
                lg.setLevel(passed_on.level_before)


class _StderrLines(logging.StreamHandler):
    """`lines_on_stderr`'s handler: a record as a plain line on stderr, but for one that a handler of the user's own
    logging setup (not a block's) writes to the terminal already: a `logging.StreamHandler` on stderr or stdout, as
    `logging.basicConfig` makes, or one on a file that is stderr or stdout itself (a `logging.FileHandler` of
    /dev/stderr), that the record meets (`_handlers_met`) at a level the setup let through without the blocks
    (`_level_without_blocks`) and that its filters let through. A script with `logging.basicConfig(level=logging.WARNING)`
    calling a tool's `main` saw each warning twice, in its format and as the tool's line. A log file of the user's does
    not count: the terminal still needs the line; nor does a handler whose filters drop the record (one kept to the
    script's own logger, `logging.Filter("myapp")`): the line was shown nowhere."""

    def __init__(self, *, warning_prefix: str = "") -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.warning_prefix = warning_prefix

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno == logging.WARNING and not line.startswith(self.warning_prefix):
            return self.warning_prefix + line
        return line

    def emit(self, record: logging.LogRecord) -> None:
        origin = logging.root.manager.loggerDict.get(record.name)
        if isinstance(origin, logging.Logger) and record.levelno >= _level_without_blocks(origin):
            terminals = [s for s in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__) if s is not None]
            if any(users and not _blocks_own(h) and isinstance(h, logging.StreamHandler) and record.levelno >= h.level
                   and _writes_to(h.stream, terminals) and h.filter(record) for _, h, users in _handlers_met(origin)):
                return
        super().emit(record)


def _writes_to(stream: Any, terminals: list[Any]) -> bool:
    """Whether `stream` is one of `terminals`, or writes to the same open file as one (a stream of its own opened on
    /dev/stderr or /dev/stdout: the same pipe, terminal or file, by its device and inode)."""
    if any(stream is s for s in terminals):
        return True
    if stream is None:
        return False
    try:
        mine = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file under it (a StringIO), or closed
        return False
    for terminal in terminals:
        try:
            theirs = os.fstat(terminal.fileno())
        except (AttributeError, OSError, ValueError):  # pytest's capture, a notebook's stream: no file of its own
            continue
        if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            return True
    return False


@contextmanager
def lines_on_stderr(*names: str, warning_prefix: str = "") -> Iterator[None]:
    """For command-line entry points without Hydra (which sets up logging itself): the named loggers' info and
    warning lines reach stderr as plain lines while the block runs. Without a handler Python shows only warnings,
    so a tool's info lines (what it did on its own, such as removing a killed run's files) were lost. A line that the
    caller's own logging setup shows on the terminal already (a script's `logging.basicConfig`) is not written again.
    `warning_prefix` (`"warning: "`) starts each warning line that does not start with it already, as a tool's own
    printed warnings do, so that its stderr tells warnings from info lines alike (info lines stay plain)."""
    with logging_to(_StderrLines(warning_prefix=warning_prefix), *names):
        yield


# A write the disk refused, whichever file it was: no space left, the user's quota full, a read-only file system, a file
# over the size limit (`ulimit -f`, or the largest file the file system takes), the disk failing. Not the input's fault:
# every command says so in one line naming the file and exits `DISK_EXIT`, not 2 (bad input).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})
# With a folder this user may not write in (not permitted), for a command's own output folder.
WRITE_ERRNOS = DISK_ERRNOS | {errno.EACCES, errno.EPERM}
DISK_EXIT = 1
"""The exit status of every command stopped by a write that failed (`DISK_ERRNOS`, `WRITE_ERRNOS`)."""
# The disk's own state (full, over quota, a file over the size limit, failing), which freeing space or fixing the disk
# cures: met by the check of an output folder before the work, it is said as a failed write (`disk_failure_text`, exit
# `DISK_EXIT`), not as the folder refused. A read-only file system is the folder's: bad input, "pass a writable one".
DISK_STATE_ERRNOS = DISK_ERRNOS - {errno.EROFS}


def disk_failure(e: BaseException, *, errnos: frozenset[int] = DISK_ERRNOS) -> OSError | None:
    """The `OSError` with an errno of `errnos` that `e` is, or that `e` was raised from or while handling (a runtime's or
    library's own exception around the failed write: NNCF, OpenVINO, Optuna), else None."""
    seen: set[int] = set()
    link: BaseException | None = e
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno in errnos:
            return link
        link = link.__cause__ or link.__context__
    return None


def disk_failure_text(e: OSError) -> str:
    """`cannot write <file> (<the problem>)`: the start of a command's one line about the failed write `e` (the folder
    or file it names, or none where the error names none)."""
    why = e.strerror or str(e)
    return f"cannot write {readable_text(os.fsdecode(e.filename))} ({why})" if e.filename else f"cannot write ({why})"


def error_text(e: BaseException) -> str:
    """`Type: first line of the message` (at most 300 characters of it), as trials.csv's fail_reason shows errors."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def storage_or_disk_problem(e: BaseException) -> str | None:
    """What went wrong, in one line, when `e` (or an exception it was raised from) is the disk or the study database
    failing under the run (full, read-only, not permitted, locked): Optuna then reports only its own
    "Should not reach" assertion or a commit error, with the cause deep in a 100-line traceback. None otherwise."""
    from sqlalchemy.exc import OperationalError

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:  # a file over the size limit (`ulimit -f`) among them
            return f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
        # a run folder's entry of the wrong kind, made by hand (a member's folder replaced by a file): not the code's fault
        if isinstance(e, OSError) and e.filename and e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            wrong = ("a folder stands where the run writes a file" if e.errno == errno.EISDIR
                     else "a file stands where the run needs a folder")
            return f"{e.filename}: {e.strerror} ({wrong}: move it away)"
        if isinstance(e, OperationalError):  # SQLite: "database or disk is full", "database is locked", "readonly database"
            return f"the study database: {str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__}"
        # the cause, or the exception being handled when it was raised (not when raised `from None`)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)  # type: ignore[assignment]
    return None


def make_folder(folder: str | os.PathLike, *, setting: str) -> Path:
    """Create `folder` (and its parents) for output, or raise `ConfigError` naming `setting` (e.g. "out=...") when it
    cannot be made or written: checked before the work whose results would go there, so none is lost. A disk that
    refuses it for its own state (`DISK_STATE_ERRNOS`: full, over quota) raises that `OSError` instead, naming the
    folder: the command's failed write (`disk_failure_text`, exit `DISK_EXIT`), as "pass a writable one" misleads there."""
    path = Path(folder)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{setting}: {str(blocker)!r} is a file, so the folder {str(path)!r} cannot be made; pass another")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # no permission, a read-only disk
        if e.errno in DISK_STATE_ERRNOS:
            raise
        raise ConfigError(f"{setting}: cannot create the folder {str(path)!r} ({e.strerror or e}); pass a writable one") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting}: the folder {str(path)!r} is not writable; pass a writable one")
    return path


def writable_file(path: str | os.PathLike, *, setting: str) -> Path:
    """`path` as an output file whose folder exists (created) and takes a file, or `ConfigError` naming `setting`. The
    folder is tried with a probe file created and deleted there: as root `os.access` says yes to /proc or a read-only
    mount, and the write after minutes of work was the first to find out; a byte is written to it, as a full disk
    creates an empty file all the same. A disk that refuses the probe for its own state (`DISK_STATE_ERRNOS`: full,
    over quota) raises that `OSError` instead, naming `path`, as `make_folder` does."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{setting}: {str(path)!r} is a folder; pass a file path")
    folder = make_folder(path.parent, setting=setting)
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        raise _probe_refused(e, path, folder, setting=setting) from None
    refused: OSError | None = None
    try:
        # A byte too: a full disk or quota still takes an empty file (an inode), and refuses only its first block.
        os.write(handle, b"\n")
        os.close(handle)  # a network file system may report the write's failure only here
    except OSError as e:
        refused = e
        with suppress(OSError):
            os.close(handle)
    with suppress(OSError):  # written, so the folder takes files; a probe left behind is harmless
        os.unlink(probe)
    if refused is not None:
        raise _probe_refused(refused, path, folder, setting=setting) from None
    return path


def _probe_refused(e: OSError, path: Path, folder: Path, *, setting: str) -> Exception:
    """What `writable_file` raises when its probe file in `folder` could not be written: for the disk's own state
    (`DISK_STATE_ERRNOS`) the `OSError`, named as `path`, the file the command is to write (not the probe's random name);
    else the `ConfigError` refusing `setting`."""
    if e.errno in DISK_STATE_ERRNOS:
        return OSError(e.errno, e.strerror, str(path))
    return ConfigError(f"{setting}: cannot write a file in the folder {str(folder)!r} ({e.strerror or e}); pass a path in a "
                       "writable folder")
