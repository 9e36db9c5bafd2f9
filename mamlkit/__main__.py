"""``python -m mamlkit``: see ``mamlkit.cli``."""

import sys

try:
    from mamlkit.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still being imported: one line, not a traceback
    if __name__ == "__main__":
        print("interrupted", file=sys.stderr)
    sys.exit(130)  # in a lane's worker process (mamlkit.plumbing.lanes) too, where this module is imported at start-up

if __name__ == "__main__":  # worker processes (mamlkit.plumbing.lanes) import this module without running the CLI
    sys.exit(main())
