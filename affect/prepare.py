"""``affect prepare``: the entry :mod:`affect.cli` dispatches to; the command line is :mod:`affect.store.cli`.

``python -m affect.prepare ...`` is ``affect prepare ...`` (one-line errors included).
"""

from __future__ import annotations

from affect.store.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    import sys

    from affect.cli import main as affect_main

    sys.exit(affect_main(["prepare", *sys.argv[1:]]))
