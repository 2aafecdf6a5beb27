"""Tests of nas.errors' helpers."""

import ast
import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KeptRecords, run_into_closed_pipe
from nas.errors import (CLOSED_STDOUT_EXIT, DataError, counted, exit_on_error, exit_with_error, logging_to, module_logger,
                        readable_repr, readable_text)

# A command's shape as the entry points have it: output on stdout (print, and log lines through a handler on stdout, as
# Hydra's), work after it (a file written), a line on stderr, then the exit status given as argv[2].
COMMAND = """
import logging, pathlib, sys
from nas.errors import closed_stdout_ends_quietly
with closed_stdout_ends_quietly():
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")  # set up inside, as Hydra's is
    for i in range(3):
        print("line", i, flush=True)
        logging.info("log line %d", i)
    pathlib.Path(sys.argv[1]).write_text("done")
    print("said on stderr", file=sys.stderr)
    sys.exit(None if sys.argv[2] == "none" else int(sys.argv[2]))
"""


def test_counted_gives_the_noun_in_the_number_it_takes():
    assert counted(1, "trial") == "1 trial"
    assert [counted(n, "image") for n in (0, 2, 1200)] == ["0 images", "2 images", "1,200 images"]
    assert counted(1, "class", plural="classes") == "1 class" and counted(3, "class", plural="classes") == "3 classes"


@pytest.mark.parametrize("code, expected", [("none", CLOSED_STDOUT_EXIT), ("0", CLOSED_STDOUT_EXIT), ("2", 2)])
def test_a_closed_stdout_loses_the_output_not_the_work_and_ends_quietly(tmp_path, code, expected):
    # `<command> | head -1`: the first print after head was gone raised BrokenPipeError (a traceback, the work after it
    # not done), each log line was a "--- Logging error ---" traceback, and a flush at exit "Exception ignored".
    done = run_into_closed_pipe(["-c", COMMAND, str(tmp_path / "work"), code], timeout=60)
    assert done.stderr == "said on stderr\n"  # no traceback, no "Logging error", no "Exception ignored"
    assert (tmp_path / "work").read_text() == "done"
    assert done.returncode == expected == (141 if code != "2" else 2)  # an exit status of the command's own is kept


def test_a_stdout_read_to_its_end_is_as_without_the_guard(tmp_path):
    done = subprocess.run([sys.executable, "-c", COMMAND, str(tmp_path / "work"), "0"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == "said on stderr\n"
    assert done.stdout == "".join(f"line {i}\nlog line {i}\n" for i in range(3))


def _state(*names):
    return [(logging.getLogger(n).level, logging.getLogger(n).propagate, list(logging.getLogger(n).handlers)) for n in names]


def test_a_block_s_handler_gets_info_lines_and_a_console_set_to_warnings_does_not(console):
    # logging_to lowered "nas" to INFO for search.log: a notebook whose logging setup shows warnings only got every
    # INFO line of the search on its console.
    before = _state("nas", "compress", "nas.x")
    run_log = KeptRecords()
    with logging_to(run_log, "nas", "compress"):
        logging.getLogger("nas.x").info("trial 0 done")
        logging.getLogger("nas.x").warning("a warning")
        logging.getLogger("compress.y").info("compressed")
        logging.getLogger("other").info("not ours")  # a logger not named: as before
    assert run_log.said() == [("INFO", "trial 0 done"), ("WARNING", "a warning"), ("INFO", "compressed")]
    assert console.said() == [("WARNING", "a warning")]
    assert _state("nas", "compress", "nas.x") == before


def test_the_loggers_are_put_back_after_an_exception_and_a_handler_on_them_keeps_its_level(console):
    mine = KeptRecords()
    logging.getLogger("nas").addHandler(mine)  # a user's own handler on "nas": it got warnings only, and still does
    try:
        before = _state("nas", "compress")
        run_log = KeptRecords()
        with pytest.raises(RuntimeError), logging_to(run_log, "nas", "compress"):
            logging.getLogger("nas.x").info("trial 0 done")
            logging.getLogger("nas.x").error("failed")
            raise RuntimeError("stopped")
        assert _state("nas", "compress") == before
        assert run_log.said() == [("INFO", "trial 0 done"), ("ERROR", "failed")]
        assert mine.said() == console.said() == [("ERROR", "failed")]
    finally:
        logging.getLogger("nas").removeHandler(mine)


def test_a_user_s_handler_below_a_lowered_logger_gets_what_their_setup_let_through(console):
    # logging_to lowered "nas" to INFO for search.log: a handler of the user's on "nas.search" (no level of its own,
    # under a setup at WARNING) got every INFO line of the search, as its logger then passed them all.
    mine, below = KeptRecords(), KeptRecords()
    logging.getLogger("nas.search").addHandler(mine)
    logging.getLogger("nas.search.sub").addHandler(below)
    try:
        before = _state("nas", "nas.search", "nas.search.sub")
        run_log = KeptRecords()
        with logging_to(run_log, "nas", "compress"):
            logging.getLogger("nas.search").info("trial 0 done")
            logging.getLogger("nas.search.sub").info("deeper")
            logging.getLogger("nas.search").warning("a warning")
        assert _state("nas", "nas.search", "nas.search.sub") == before
    finally:
        logging.getLogger("nas.search").removeHandler(mine)
        logging.getLogger("nas.search.sub").removeHandler(below)
    assert run_log.said() == [("INFO", "trial 0 done"), ("INFO", "deeper"), ("WARNING", "a warning")]
    assert mine.said() == console.said() == [("WARNING", "a warning")]
    assert below.said() == []


@pytest.mark.parametrize("nas_level", [logging.NOTSET, logging.INFO])  # "nas" lowered by the block, or at INFO already
def test_a_block_s_handler_gets_the_info_lines_of_a_logger_below_that_the_user_set_quieter(console, nas_level):
    # search.log keeps a run's INFO lines whatever the logging setup: "nas.search" set to WARNING by the user (to quiet
    # their console) kept its INFO lines from it, as only the loggers named were lowered.
    logging.getLogger("nas").setLevel(nas_level)
    logging.getLogger("nas.search").setLevel(logging.WARNING)
    try:
        before = _state("nas", "nas.search")
        run_log = KeptRecords()
        with logging_to(run_log, "nas", "compress"):
            logging.getLogger("nas.search").info("trial 0 done")
            logging.getLogger("nas.search").warning("a warning")
        assert _state("nas", "nas.search") == before
    finally:
        logging.getLogger("nas.search").setLevel(logging.NOTSET)
        logging.getLogger("nas").setLevel(logging.NOTSET)
    assert run_log.said() == [("INFO", "trial 0 done"), ("WARNING", "a warning")]
    assert console.said() == [("WARNING", "a warning")]


def test_nested_blocks_both_get_info_lines_and_a_logger_the_user_set_to_info_still_reaches_the_console(console):
    # `python -m nas.report`'s rebuild: lines_on_stderr's handler around the run's search.log handler
    outer, inner = KeptRecords(), KeptRecords()
    logging.getLogger("nas.results").setLevel(logging.INFO)  # the user asked for these lines
    try:
        with logging_to(outer, "nas", "compress"):
            with logging_to(inner, "nas", "compress"):
                logging.getLogger("nas.x").info("trial 0 done")
                logging.getLogger("nas.results").info("final training of a")
            logging.getLogger("nas.x").info("after")
    finally:
        logging.getLogger("nas.results").setLevel(logging.NOTSET)
    assert inner.said() == [("INFO", "trial 0 done"), ("INFO", "final training of a")]
    assert outer.said() == [*inner.said(), ("INFO", "after")]
    assert console.said() == [("INFO", "final training of a")]


def test_a_console_set_to_info_gets_the_info_lines_as_before(console):
    logging.getLogger().setLevel(logging.INFO)
    before = _state("nas")
    with logging_to(KeptRecords(), "nas"):
        assert _state("nas")[0][:2] == before[0][:2]  # nothing to lower: left as it is
        logging.getLogger("nas.x").info("trial 0 done")
    assert console.said() == [("INFO", "trial 0 done")]


@pytest.mark.parametrize("level, on_terminal, expected", [
    (logging.WARNING, True, ["removed 1 temporary file", "user: WARNING the model saturates"]),
    (logging.INFO, True, ["user: INFO removed 1 temporary file", "user: WARNING the model saturates"]),
    (logging.WARNING, False, ["removed 1 temporary file", "the model saturates"]),  # a log file only: the tool says both
])
def test_a_tool_s_stderr_lines_leave_out_what_the_user_s_console_shows_already(capsys, level, on_terminal, expected):
    # compress.predict's or nas.report's main called from a script with `logging.basicConfig(level=WARNING)`: each
    # warning was shown twice, by the script's handler on stderr and as the tool's own line (INFO lines too at INFO).
    import io

    from nas.errors import lines_on_stderr

    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    mine = logging.StreamHandler(sys.stderr if on_terminal else io.StringIO())  # as basicConfig makes it (to a file)
    mine.setFormatter(logging.Formatter("user: %(levelname)s %(message)s"))
    root.handlers[:], root.level = [mine], level
    try:
        with lines_on_stderr("nas", "compress"):
            logging.getLogger("compress.predict").info("removed 1 temporary file")
            logging.getLogger("compress.predict").warning("the model saturates")
    finally:
        root.handlers[:], root.level = saved[1], saved[0]
    assert capsys.readouterr().err.splitlines() == expected


def test_a_tool_s_stderr_lines_are_written_where_the_user_s_console_filters_them_out(capsys):
    # A script's handler on stderr kept to its own logger (logging.Filter("myapp")) shows none of the tool's lines: they
    # were left out as shown already, and so shown nowhere.
    from nas.errors import lines_on_stderr

    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    mine = logging.StreamHandler(sys.stderr)
    mine.setFormatter(logging.Formatter("user: %(message)s"))
    mine.addFilter(logging.Filter("myapp"))
    root.handlers[:], root.level = [mine], logging.INFO
    try:
        with lines_on_stderr("nas", "compress"):
            logging.getLogger("compress.predict").info("removed 1 temporary file")
            logging.getLogger("compress.predict").warning("the model saturates")
            logging.getLogger("myapp").warning("the script's own")
    finally:
        root.handlers[:], root.level = saved[1], saved[0]
    assert capsys.readouterr().err.splitlines() == ["removed 1 temporary file", "the model saturates",
                                                    "user: the script's own"]


def test_a_tool_s_stderr_warning_lines_can_start_with_a_prefix_its_info_lines_do_not_get(capsys):
    # compress.predict printed some warnings as "warning: ..." and logged others ("skipped 1 image file ...") plain:
    # its stderr did not tell its warnings from its info lines alike. A warning already prefixed is not prefixed twice.
    from nas.errors import lines_on_stderr

    with lines_on_stderr("compress", warning_prefix="warning: "):
        logging.getLogger("compress.predict").info("removed 1 temporary file")
        logging.getLogger("compress.predict").warning("skipped 1 image file")
        logging.getLogger("compress.predict").warning("warning: the model saturates")
    with lines_on_stderr("compress"):  # the default: plain lines
        logging.getLogger("compress.predict").warning("2 of 5 images are not square")
    assert capsys.readouterr().err.splitlines() == ["removed 1 temporary file", "warning: skipped 1 image file",
                                                    "warning: the model saturates", "2 of 5 images are not square"]


_FILE_HANDLER_ON_STDERR = """
import logging
from nas.errors import lines_on_stderr
mine = logging.FileHandler("/dev/stderr")  # the user's log "file" is stderr itself
mine.setFormatter(logging.Formatter("user: %(message)s"))
logging.getLogger().addHandler(mine)
logging.getLogger().setLevel(logging.INFO)
with lines_on_stderr("nas"):
    logging.getLogger("nas.report").info("final training of a")
    logging.getLogger("nas.report").warning("a warning")
"""


def test_a_user_s_file_handler_on_dev_stderr_counts_as_the_console_so_each_line_is_shown_once():
    # A FileHandler opened on /dev/stderr writes to the same pipe or terminal as sys.stderr through a stream of its own:
    # it was not taken for the console, and each line was shown twice.
    done = subprocess.run([sys.executable, "-c", _FILE_HANDLER_ON_STDERR], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["user: final training of a", "user: a warning"]


_NO_LOGGING_SETUP = """
import logging, sys, tempfile
from pathlib import Path
from nas.errors import lines_on_stderr
from nas.run_folder import held_lines, run_log
with held_lines():  # while the data loads, before the run folder exists
    logging.getLogger("nas.data").warning("held warning")
with run_log(Path(tempfile.mkdtemp())):
    logging.getLogger("nas.search").info("trial 0 done")
    logging.getLogger("compress.pipeline").warning("run warning")
with lines_on_stderr("nas"):  # a tool's own stderr lines: not also Python's
    logging.getLogger("nas.x").warning("tool warning")
"""


def test_without_a_logging_setup_a_search_s_warnings_reach_stderr_once_and_its_info_lines_do_not():
    # Python shows warnings on stderr where a record meets no handler; search.log's handler, and the one holding
    # warnings for it, counted as handlers, so a script or notebook calling run_search with no logging setup saw none.
    done = subprocess.run([sys.executable, "-c", _NO_LOGGING_SETUP], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["held warning", "run warning", "tool warning"]


_HANDLER_BELOW_ONLY = """
import logging
from nas.errors import logging_to, RecordKeeper
class Kept(RecordKeeper):
    def emit(self, record):
        print("kept:", record.getMessage())
class Mine(logging.Handler):
    def emit(self, record):
        print("mine:", record.getMessage())
logging.getLogger("nas.search").addHandler(Mine())  # the user's only logging setup
with logging_to(Kept(), "nas"):
    logging.getLogger("nas.search").warning("a warning")
"""


def test_a_warning_a_user_s_handler_below_a_block_took_is_not_also_python_s_on_stderr():
    # Python shows a warning on stderr only where it meets no handler: one that met the user's handler on "nas.search"
    # was shown there and again on stderr, as the block's stand-in for "nas" counted no handler below it.
    done = subprocess.run([sys.executable, "-c", _HANDLER_BELOW_ONLY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("mine: a warning\nkept: a warning\n", "")
_HANDLERS_BELOW = """
import logging, sys
from nas.errors import RecordKeeper, logging_to
class Kept(RecordKeeper):
    def emit(self, record):
        pass
mine = logging.StreamHandler(sys.stderr)
mine.setFormatter(logging.Formatter("mine: %(message)s"))
logging.getLogger("nas.search").addHandler(mine)  # a user's handler on one module's logger, none on the root
with logging_to(Kept(), "nas", "compress"):
    logging.getLogger("nas.search").warning("shown by mine")
    logging.getLogger("nas.data").warning("shown by Python")
logging.getLogger("nas.search").removeHandler(mine)
with logging_to(Kept(), "nas.search"), logging_to(Kept(), "nas"):  # both lowered, one below the other
    logging.getLogger("nas.search.x").warning("lowered twice")
logging.getLogger().addHandler(mine)
with logging_to(Kept(), "nas.search"), logging_to(Kept(), "nas"):
    logging.getLogger("nas.search.x").warning("on the root")
"""


def test_a_warning_shown_by_a_handler_below_or_above_the_lowered_loggers_is_not_shown_again_by_python():
    # Python's no-handler rule counts every handler from the record's own logger up: a user's handler on nas.search
    # showed the warning and lastResort printed it again, and with two loggers lowered each block's stand-in did
    done = subprocess.run([sys.executable, "-c", _HANDLERS_BELOW], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["mine: shown by mine", "shown by Python", "lowered twice", "mine: on the root"]


def test_readable_text_writes_each_byte_of_a_name_that_is_not_utf8_as_backslash_x():
    # b'caf\xe9.png' (Latin-1, from an old zip) is 'caf\udce9.png' in Python, which str.encode() refuses.
    name = os.fsdecode(b"dog/caf\xe9 \xc3\xa9t\xe9.png")
    assert readable_text(name) == "dog/caf\\xe9 \u00e9t\\xe9.png"  # the valid UTF-8 é kept as it is
    assert readable_text(name).encode("utf-8")
    assert readable_text("caf\u00e9 \\x41.png") == "caf\u00e9 \\x41.png"  # text without surrogates unchanged
    assert readable_text("a\ud800b") == "a\\ud800b"  # a surrogate that no byte makes: its code point


def test_a_module_logger_line_naming_a_latin1_file_reaches_a_strict_utf8_stream_readably():
    # Hydra's console (stdout) and search.log are strict UTF-8 streams: the name raised UnicodeEncodeError in the
    # handler, which printed "--- Logging error ---" with a traceback in place of the line.
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = module_logger("nas.test_readable_names")
    assert module_logger("nas.test_readable_names").filters == logger.filters and len(logger.filters) == 1
    errors = io.StringIO()
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stderr(errors):  # where logging's handleError prints
            logger.warning("left out (e.g. %s); %d", os.fsdecode(b"\xe9t\xe9.png"), 1)
            logger.warning("%s", "caf\u00e9.png")
    finally:
        logger.removeHandler(handler)
    assert errors.getvalue() == ""
    assert raw.getvalue().decode("utf-8") == "left out (e.g. \\xe9t\\xe9.png); 1\ncaf\u00e9.png\n"


def test_an_error_naming_a_file_that_is_not_utf8_is_printed_as_the_warnings_show_it(capsys):
    with pytest.raises(SystemExit):
        with exit_on_error():
            raise DataError(f"image {os.fsdecode(b'dog/caf' + bytes([0xE9]) + b'.png')} is truncated")
    assert capsys.readouterr().err == "error: image dog/caf\\xe9.png is truncated\n"
    # the line the commands' own refusals say (nas.report's, compress.predict's command line), with its exit status
    with pytest.raises(SystemExit) as exited:
        exit_with_error(f"cannot write {os.fsdecode(b'caf' + bytes([0xE9]))}/report.md", code=1)
    assert exited.value.code == 1 and capsys.readouterr().err == "error: cannot write caf\\xe9/report.md\n"


def test_readable_repr_quotes_a_name_with_its_bytes_that_are_not_utf8_written_as_readable_text_writes_them():
    # repr() wrote a Latin-1 class name as 'caf\udce9', Python's lone surrogate, where the rest of the toolkit writes caf\xe9
    assert readable_repr(os.fsdecode(b"caf\xe9")) == "'caf\\xe9'"
    assert readable_repr("cat") == "'cat'" and readable_repr("it's") == '"it\'s"' and readable_repr("café") == "'café'"
    assert readable_repr(os.fsdecode(b"a\\\xe9")) == "'a\\\\\\xe9'"  # its own backslash stays escaped, as repr() writes it
    assert readable_repr("a\\udce9") == repr("a\\udce9")  # the characters \udce9 of a name are not a byte


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nas", "compress")


def _package_logger_calls(source: str) -> list[tuple[int, str]]:
    """The line and text of each `getLogger(...)` call in `source` (any spelling: logging.getLogger, an alias, a
    `from logging import getLogger`) that gets a package's logger: `__name__`, or a name of `PACKAGES`' own
    ("nas.search", f"compress.{x}"). The root logger and third-party ones (nncf, optuna) are not this check's."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) != "getLogger" or not node.args:
            continue
        arg = node.args[0]
        if isinstance(arg, ast.JoinedStr):  # an f-string: what it starts with
            arg = arg.values[0] if arg.values else arg
        named = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        if (isinstance(arg, ast.Name) and arg.id == "__name__") or (
                named is not None and any(named == p or named.startswith(p + ".") for p in PACKAGES)):
            found.append((node.lineno, ast.get_source_segment(source, node) or "getLogger(...)"))
    return found


def test_every_package_logger_is_a_module_logger():
    # A module that took logging.getLogger(__name__) lacked the ReadableNames filter: its lines naming a file that is
    # not UTF-8 raised UnicodeEncodeError in a strict UTF-8 handler ("--- Logging error ---") instead of showing \xNN.
    # nas/errors.py is where module_logger (and logging_to, which only routes loggers by name) is made.
    modules = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(modules) > 20  # the scan found the packages
    bad = [f"{path.relative_to(ROOT)}:{line}: {call}" for path in modules if path != ROOT / "nas" / "errors.py"
           for line, call in _package_logger_calls(path.read_text(encoding="utf-8"))]
    assert bad == [], "use nas.errors.module_logger(name) for a package logger, not: " + "; ".join(bad)


@pytest.mark.parametrize(("source", "flagged"), [
    ("import logging\nlog = logging.getLogger(__name__)", True),
    ("import logging as lg\nlog = lg.getLogger('nas.latency')", True),
    ("from logging import getLogger\nlog = getLogger(f'compress.{1}')", True),
    ("import logging\nlog = logging.getLogger('nncf')", False),  # a library's logger: its level is set, nothing logged
    ("import logging\nroot = logging.getLogger()", False),
    ("import logging\nlog = logging.getLogger('nasty')", False),
    ("from nas.errors import module_logger\nlog = module_logger(__name__)", False),
])
def test_the_package_logger_scan_tells_a_package_logger_from_others(source, flagged):
    assert bool(_package_logger_calls(source)) == flagged


def test_a_write_the_disk_refused_is_found_inside_a_librarys_own_error_and_named_in_the_commands_words():
    # The commands' one line for a failed write (nas.search, nas.report, compress.run, the latency tools): the OSError
    # found where a runtime wrapped it (torch.save's RuntimeError, NNCF's, OpenVINO's), the file and the problem named.
    import errno

    from nas.errors import DISK_ERRNOS, WRITE_ERRNOS, disk_failure, disk_failure_text

    too_large = OSError(errno.EFBIG, "File too large", "/runs/r/caf\udce9.onnx")  # a file name that is not UTF-8
    try:
        raise RuntimeError("PytorchStreamWriter failed writing file") from too_large
    except RuntimeError as e:
        assert disk_failure(e) is too_large
    assert disk_failure_text(too_large) == "cannot write /runs/r/caf\\xe9.onnx (File too large)"
    assert disk_failure_text(OSError(errno.ENOSPC, "No space left on device")) == "cannot write (No space left on device)"
    denied = PermissionError(errno.EACCES, "Permission denied", "/runs/r/report.html")
    assert disk_failure(denied) is None and disk_failure(denied, errnos=WRITE_ERRNOS) is denied  # the folder, not the disk
    assert disk_failure(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
    assert {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO} == DISK_ERRNOS


@pytest.mark.parametrize("name, disk", [("ENOSPC", True), ("EDQUOT", True), ("EFBIG", True), ("EIO", True),
                                        ("EROFS", False), ("EACCES", False)])
def test_an_output_folder_check_the_disks_state_fails_is_a_failed_write_and_an_unwritable_folder_bad_input(
        tmp_path, monkeypatch, name, disk):
    # A full disk or quota (ENOSPC, EDQUOT), a file over the size limit (EFBIG), a failing disk (EIO) met by the check
    # before the work was a ConfigError, "pass a writable one" (exit 2): the commands' failed write now (the OSError,
    # naming the file or folder, exit 1); a read-only disk (EROFS) or no permission (EACCES) is still the folder's.
    import errno
    import tempfile

    from nas.errors import ConfigError, make_folder, writable_file

    number = getattr(errno, name)

    def refused(*args, dir=None, **kwargs):  # mkstemp's error names the probe file, a random name
        raise OSError(number, os.strerror(number), os.path.join(str(dir), ".m.csv.x.probe"))

    def refused_mkdir(self, *args, **kwargs):
        raise OSError(number, os.strerror(number), str(self))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    out = tmp_path / "m.csv"
    with pytest.raises((OSError, ConfigError)) as failed:
        writable_file(out, setting="out='m.csv'")
    assert isinstance(failed.value, ConfigError) is not disk
    if disk:
        assert (failed.value.errno, failed.value.filename) == (number, str(out))  # the file to write, not the probe
    else:
        assert str(failed.value) == (f"out='m.csv': cannot write a file in the folder {str(tmp_path)!r} "
                                     f"({os.strerror(number)}); pass a path in a writable folder")
    monkeypatch.setattr(Path, "mkdir", refused_mkdir)
    with pytest.raises((OSError, ConfigError)) as failed:
        make_folder(tmp_path / "runs", setting="search.runs_dir='runs'")
    if disk:
        assert type(failed.value) is OSError and (failed.value.errno, failed.value.filename) == (number, str(tmp_path / "runs"))
    else:
        assert isinstance(failed.value, ConfigError) and str(failed.value) == (
            f"search.runs_dir='runs': cannot create the folder {str(tmp_path / 'runs')!r} ({os.strerror(number)}); pass "
            "a writable one")


def test_the_output_file_check_finds_a_disk_that_takes_an_empty_file_but_not_a_byte(tmp_path):
    # A full disk or quota still creates an empty file (an inode), so the probe file alone passed, and the write after
    # the work was the first to fail. The file size limit at 0 (`ulimit -f 0`) refuses the first byte likewise, here.
    import errno
    import resource
    import signal

    from nas.errors import writable_file

    out = tmp_path / "m.csv"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as Python sets it: the write fails with EFBIG instead
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
        try:
            writable_file(out, setting="out='m.csv'")
        except OSError as e:
            failed: OSError | None = e
        else:
            failed = None
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, before)
    assert failed is not None and (failed.errno, failed.filename) == (errno.EFBIG, str(out))
    assert list(tmp_path.iterdir()) == []  # the probe file deleted, as after a probe that passed
    assert writable_file(out, setting="out='m.csv'") == out and list(tmp_path.iterdir()) == []
