"""``python -m mamlkit``: see ``mamlkit.cli``."""

import sys

from mamlkit.cli import main

if __name__ == "__main__":  # worker processes (mamlkit.lanes) import this module without running the CLI
    sys.exit(main())
