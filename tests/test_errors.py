"""Tests of nas.errors' helpers."""

import subprocess
import sys

import pytest

from conftest import run_into_closed_pipe
from nas.errors import CLOSED_STDOUT_EXIT, counted

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
