"""``affect prepare``: the entry :mod:`affect.cli` dispatches to; the command line is :mod:`affect.store.cli`.

``python -m affect.prepare ...`` runs the same command line without the ``affect`` front end (no
LightningCLI import: quick to start; mistakes end in a traceback instead of one line).
"""

from __future__ import annotations

from affect.store.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    import sys

    sys.exit(main())
