"""``python -m nas.report``: the command line, `nas.report.main`."""

import sys

from nas.errors import closed_stdout_ends_quietly
from nas.report import main

if __name__ == "__main__":
    with closed_stdout_ends_quietly():  # `nas.report <run> | head -1`: a quiet end, the reports written all the same
        sys.exit(main())
