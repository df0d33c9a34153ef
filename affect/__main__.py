"""``python -m affect`` = the ``affect`` command (see :mod:`affect.cli`)."""

import sys

from affect.cli import main

if __name__ == "__main__":
    sys.exit(main())
