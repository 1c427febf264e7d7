"""``python -m du_framework`` runs the ``du`` command line."""

import sys

from .cli import entry

sys.exit(entry())
