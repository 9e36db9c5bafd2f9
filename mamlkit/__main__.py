"""``python -m mamlkit``: see ``mamlkit.cli``."""

import sys

from mamlkit.cli import main

sys.exit(main())
